"""The processes a benchmark run starts and stops: the OTLP sink, the agent, the floor, nginx,
and gunicorn serving the Flask app.  Each is a small class with ``start()`` / ``stop()``
(``stop()`` is idempotent) and exposes the pids whose CPU the benchmark reads.

Everything listens on 127.0.0.1 on a free port; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import procstat
from bench.procstat import die_with_parent

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


class BenchError(RuntimeError):
    """A process the benchmark needs did not start or misbehaved."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"process {proc.args!r} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"nothing listens on 127.0.0.1:{port} after {timeout:g}s")


def _terminate(proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Workdir:
    """A directory under /tmp for one benchmark invocation (configs, logs, profiles, results);
    left in place for inspection."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="erx-bench-"))
        self.path.chmod(0o755)  # nginx workers (user nobody) read the document root below it

    def file(self, name: str) -> Path:
        return self.path / name


# -- the OTLP sink ------------------------------------------------------------------------------


def _sink_preexec() -> None:
    die_with_parent()
    # The sink stands for a collector elsewhere: its decoding is not the agent's cost, so it must
    # not compete with the load at normal priority (it gets what the workloads leave, as the agent).
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


class Sink:
    """bench/otlp_sink.py in its own process (SCHED_IDLE); counts what arrives."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> "Sink":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.otlp_sink", "--port", "0"],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            preexec_fn=_sink_preexec,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("port "):
            raise BenchError(f"OTLP sink did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def _ask(self, cmd: str) -> str:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline()

    def stats(self) -> dict:
        return json.loads(self._ask("stats"))

    def reset(self) -> None:
        self._ask("reset")

    def wait_quiet(self, quiet: float = 1.0, timeout: float = 15.0) -> dict:
        """Counts once nothing has arrived for ``quiet`` seconds (or after ``timeout``)."""
        deadline = time.monotonic() + timeout
        last = self.stats()
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now = self.stats()
            if now["spans"] != last["spans"] or now["metric_points"] != last["metric_points"]:
                quiet_since, last = time.monotonic(), now
            elif time.monotonic() - quiet_since >= quiet:
                return now
        return self.stats()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                _terminate(self.proc)


# -- the agent, and the floor ---------------------------------------------------------------------

AGENT_CONFIG = """\
# Written by bench/: spans batched to the OTLP sink, metrics served for Prometheus.
receivers:
  ebpf:
    exclude_ports: [{exclude_ports}]
    exclude_pids: [{exclude_pids}]{sampler}
processors:
  batch: {{}}
exporters:
  otlp:
    endpoint: 127.0.0.1:{sink_port}
    tls: {{insecure: true}}  # default exporter settings otherwise (gzip, queue, retry): what users run
  prometheus:
    endpoint: 127.0.0.1:{metrics_port}
service:
  pipelines:
    traces: {{receivers: [ebpf], processors: [batch], exporters: [otlp]}}
    metrics: {{receivers: [ebpf], exporters: [prometheus]}}
  telemetry:
    logs: {{level: info}}
"""

_SAMPLE = re.compile(r"^(ebpf_receiver_[a-z_]+)(\{[^}]*\})?\s+([0-9.eE+-]+|NaN)$")


def parse_self_metrics(text: str) -> dict[str, float]:
    """``ebpf_receiver_*`` samples of a Prometheus text page, summed over labels, and also kept
    per label set as ``name{labels}``."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2), float(m.group(3))
        out[name] = out.get(name, 0.0) + value
        if labels:
            out[name + labels] = value
    return out


class Agent:
    """``ebpf-receiver run`` with a generated config (see AGENT_CONFIG)."""

    kind = "on"

    def __init__(self, workdir: Workdir, sink_port: int, exclude_pids: list[int], name: str = "agent",
                 sampler_ratio: float | None = None) -> None:
        self.workdir = workdir
        self.sampler_ratio = sampler_ratio  # None: every span (the default sampler)
        self.sink_port = sink_port
        self.metrics_port = free_port()
        self.exclude_pids = exclude_pids
        self.name = name
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir.file(f"{name}.log")

    def start(self, timeout: float = 60.0) -> "Agent":
        config = self.workdir.file(f"{self.name}.yaml")
        config.write_text(AGENT_CONFIG.format(
            exclude_ports=", ".join(str(p) for p in (self.sink_port, self.metrics_port)),
            exclude_pids=", ".join(str(p) for p in self.exclude_pids),
            sink_port=self.sink_port,
            metrics_port=self.metrics_port,
            sampler="" if self.sampler_ratio is None else
            f"\n    sampler: {{name: parentbased_traceidratio, ratio: {self.sampler_ratio}}}",
        ))
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "ebpf-receiver"), "run", "--config", str(config)],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"agent exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            if "running (pid" in self.log_path.read_text():
                break
            time.sleep(0.1)
        else:
            raise BenchError(f"agent not running after {timeout:g}s:\n{self.log_path.read_text()[-3000:]}")
        wait_for_port(self.metrics_port, 10, self.proc)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid]

    def self_metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        out = parse_self_metrics(text)
        # RED count of nginx's server requests (every series: with and without http.route)
        out["red_nginx_server_count"] = sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("http_server_request_duration_seconds_count{") and 'job="nginx"' in line)
        return out

    def stop(self) -> int | None:
        _terminate(self.proc, timeout=20)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
        return self.proc.returncode if self.proc else None


class Floor:
    """bench/floor.py: the same tracepoints, empty programs, nothing read; or, with
    ``drain=True``, bench/drain.py: the agent's real programs with the ring buffer drained and
    dropped (no user-space processing)."""

    def __init__(self, drain: bool = False, exclude_pids: list[int] | None = None) -> None:
        self.proc: subprocess.Popen | None = None
        self.cmd = [sys.executable, "-m", "bench.drain" if drain else "bench.floor"]
        if drain:
            for pid in exclude_pids or []:
                self.cmd += ["--exclude-pid", str(pid)]

    def start(self, timeout: float = 60.0) -> "Floor":
        self.proc = subprocess.Popen(
            self.cmd, cwd=REPO,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=die_with_parent,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            raise BenchError(f"floor did not load: {line!r} {self.proc.stderr.read()[-2000:]}")
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                _terminate(self.proc)


# -- nginx ----------------------------------------------------------------------------------------

NGINX_CONF = """\
worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile {sendfile};
    tcp_nopush {sendfile};
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    default_type text/html;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/www;
        location / {{ }}
    }}
}}
"""

# A small page: the size of nginx's own welcome page.
INDEX_HTML = ("<!DOCTYPE html><html><head><title>bench</title></head><body>" + "x" * 540 + "</body></html>\n")


class Nginx:
    def __init__(self, workdir: Workdir, workers: int = 1, sendfile: bool = True, binary: str = "nginx") -> None:
        self.dir = workdir.file("nginx")
        self.binary = binary  # a copy under another name gives its spans and RED series their own service
        self.workers = workers
        self.sendfile = sendfile
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Nginx":
        (self.dir / "www").mkdir(parents=True, exist_ok=True)
        (self.dir / "tmp").mkdir(exist_ok=True)
        (self.dir / "www" / "index.html").write_text(INDEX_HTML)
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(workers=self.workers, dir=self.dir, port=self.port,
                                          sendfile="on" if self.sendfile else "off"))
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(conf), "-p", str(self.dir), "-e", str(self.dir / "error.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        wait_for_port(self.port, 10, self.proc)
        return self

    @property
    def pids(self) -> list[int]:
        return procstat.tree(self.proc.pid)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                _terminate(self.proc)


# -- gunicorn + Flask ----------------------------------------------------------------------------


class Gunicorn:
    """bench/flask_app.py under gunicorn (gthread workers: HTTP/1.1 keep-alive); with
    ``otel=True`` every worker sets up the OTel SDK in post_fork and exports to the sink."""

    def __init__(self, workdir: Workdir, workers: int, threads: int, otel: bool, sink_port: int) -> None:
        self.workdir = workdir
        self.workers, self.threads, self.otel = workers, threads, otel
        self.sink_port = sink_port
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir.file(f"gunicorn-{'otel' if otel else 'bare'}.log")

    def start(self) -> "Gunicorn":
        env = dict(os.environ)
        env["BENCH_OTEL"] = "1" if self.otel else "0"
        env["BENCH_OTLP_ENDPOINT"] = f"127.0.0.1:{self.sink_port}"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "--config", "python:bench.flask_app",
             "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
             "--worker-class", "gthread", "--threads", str(self.threads),
             "--keep-alive", "75", "bench.flask_app:app"],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        wait_for_port(self.port, 30, self.proc)
        # every worker booted (each imports the app, and the SDK when otel)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(procstat.children(self.proc.pid)) < self.workers:
            time.sleep(0.1)
        time.sleep(0.5)
        return self

    @property
    def pids(self) -> list[int]:
        return procstat.tree(self.proc.pid)

    def stop(self) -> None:
        _terminate(self.proc, timeout=20)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
