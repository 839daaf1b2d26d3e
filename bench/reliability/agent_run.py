"""The agent under test in one row of the fault matrix: ``ebpf-receiver run`` with a generated
config (traces to the collector of the row, self-metrics on a Prometheus endpoint), its
self-metrics read back by name and labels, its RSS and open fds sampled from /proc.

Only the row's nginx and, in most rows, the matrix's database application are traced
(``discovery.include`` by pid: nginx's workers follow their master), so the agent's drop counters
are about the row's own traffic even while other processes on the machine make requests.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench import procstat
from bench.services import REPO, VENV_BIN, BenchError, free_port, wait_for_port

# Faster retries than the defaults (5 s, 30 s) so a row ends in seconds after its fault clears;
# max_elapsed_time 0: a batch is retried until it is sent or dropped for a counted reason.
DEFAULT_RETRY = {"initial_interval": "500ms", "max_interval": "2s", "max_elapsed_time": "0s"}


@dataclass(frozen=True)
class AgentSettings:
    """What a row changes in the agent's config (everything else is the default)."""

    exporter: str = "otlp"  # otlp (gRPC) or otlphttp
    timeout: str = "5s"
    queue: dict = field(default_factory=dict)  # sending_queue keys
    retry: dict = field(default_factory=lambda: dict(DEFAULT_RETRY))
    ebpf: dict = field(default_factory=dict)  # extra receivers.ebpf keys (flow-style YAML values)
    include: tuple[str, ...] = ()  # extra discovery include rules, flow-style YAML
    batch: dict = field(default_factory=dict)  # batch processor keys


def _flow(d: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"


def agent_config(settings: AgentSettings, endpoint: str, metrics_port: int, nginx_pid: int,
                 exclude_ports: list[int], also_pids: tuple[int, ...] = ()) -> str:
    rules = ", ".join([f"{{pid: {pid}}}" for pid in (nginx_pid, *also_pids)] + list(settings.include))
    ebpf = "".join(f"\n    {k}: {v}" for k, v in settings.ebpf.items())
    queue = f"\n    sending_queue: {_flow(settings.queue)}" if settings.queue else ""
    tls = "\n    tls: {insecure: true}" if settings.exporter == "otlp" else ""
    return f"""\
# Written by bench/reliability for one row of the fault matrix.
receivers:
  ebpf:
    discovery: {{include: [{rules}]}}
    exclude_ports: [{", ".join(str(p) for p in exclude_ports)}]{ebpf}
processors:
  batch: {_flow(settings.batch)}
exporters:
  {settings.exporter}:
    endpoint: {endpoint}{tls}
    timeout: {settings.timeout}{queue}
    retry_on_failure: {_flow(settings.retry)}
  prometheus:
    endpoint: 127.0.0.1:{metrics_port}
service:
  pipelines:
    traces: {{receivers: [ebpf], processors: [batch], exporters: [{settings.exporter}]}}
    metrics: {{receivers: [ebpf], exporters: [prometheus]}}
  shutdown_timeout: 10s
"""


# Label values may hold braces (http_route="/{id}"): a value is a quoted string, skipped whole.
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[^"}]|"(?:[^"\\]|\\.)*")*)\})?\s+(\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class SelfMetrics:
    """One scrape: samples by (name, labels)."""

    samples: dict

    @classmethod
    def parse(cls, text: str) -> "SelfMetrics":
        out = {}
        for line in text.splitlines():
            m = _SAMPLE.match(line)
            if m and not line.startswith("#"):
                labels = frozenset(_LABEL.findall(m.group(2) or ""))
                try:
                    out[(m.group(1), labels)] = float(m.group(3))
                except ValueError:
                    continue
        return cls(out)

    def sum(self, name: str, **labels: str) -> float:
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)

    def by_label(self, name: str, label: str, **labels: str) -> dict[str, float]:
        want = set(labels.items())
        out: dict[str, float] = {}
        for (n, ls), v in self.samples.items():
            if n == name and want <= ls:
                key = dict(ls).get(label, "")
                out[key] = out.get(key, 0.0) + v
        return out

    def span_drops(self) -> dict[str, float]:
        """Every place a span (or the transaction it would have been) is dropped and counted, by
        ``where/reason``; zero entries left out."""
        drops: dict[str, float] = {}
        for reason, v in self.by_label("ebpf_receiver_exporter_failed_items_total", "reason", signal="traces").items():
            drops[f"exporter_failed/{reason}"] = v
        for reason, v in self.by_label("ebpf_receiver_exporter_dropped_items_total", "reason", signal="traces").items():
            drops[f"exporter_dropped/{reason}"] = v
        for reason, v in self.by_label("ebpf_receiver_processor_dropped_items_total", "reason", signal="traces").items():
            drops[f"processor_dropped/{reason}"] = v
        drops["kernel_aggregated"] = self.sum("ebpf_receiver_http_transactions_aggregated_total")
        # a paired HTTP transaction that did not fit in the ring is aggregated (above) and also
        # counted lost: counted once here
        shed_full = self.sum("ebpf_receiver_kernel_conditions_total", condition="http_shed_ring_full")
        for reason, v in self.by_label("ebpf_receiver_kernel_events_lost_total", "reason").items():
            drops[f"kernel_lost/{reason}"] = v - (shed_full if reason == "ringbuf_full" else 0)
        drops["sampled_out"] = self.sum("ebpf_receiver_spans_sampled_out_total")
        # paired transactions the kernel could neither submit nor aggregate (its map was full)
        drops["kernel_aggregates_full"] = self.sum("ebpf_receiver_kernel_conditions_total",
                                                   condition="http_aggregates_full")
        return {k: v for k, v in drops.items() if v}

    def red_server_count(self, job: str) -> float:
        """Server requests of one service in the RED metrics (spans and kernel aggregates alike:
        an aggregate has no route)."""
        return self.sum("http_server_request_duration_seconds_count", job=job)

    def red_db_client_count(self, job: str, system: str) -> float:
        """Database client operations of one service and ``db.system.name`` in the RED metrics."""
        return self.sum("db_client_operation_duration_seconds_count", job=job, db_system_name=system)

    def red_other_count(self, *jobs: str) -> float:
        """Operations of every other service in the RED metrics (server and client, any protocol):
        what the agent traced besides ``jobs``, whose drops its per-agent counters include."""
        return sum(v for (n, ls), v in self.samples.items()
                   if n.endswith("_duration_seconds_count") and dict(ls).get("job") not in jobs)

    def kernel(self) -> tuple[float, float, float]:
        """(produced, delivered, lost) records."""
        return (self.sum("ebpf_receiver_kernel_events_produced_total"),
                self.sum("ebpf_receiver_kernel_events_received_total"),
                self.sum("ebpf_receiver_kernel_events_lost_total"))


@dataclass(frozen=True)
class ProcessSample:
    rss: int
    hwm: int
    fds: int


def sample_process(pid: int) -> ProcessSample:
    rss, hwm = procstat.memory(pid)
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = 0
    return ProcessSample(rss, hwm, fds)


class AgentRun:
    """One agent process; ``start()`` again after ``kill()`` or ``stop()`` runs a new one on the
    same config (and the same queue storage)."""

    def __init__(self, workdir: Path, name: str, settings: AgentSettings, endpoint: str, nginx_pid: int,
                 exclude_ports: list[int], also_pids: tuple[int, ...] = ()) -> None:
        self.workdir = workdir
        self.name = name
        self.metrics_port = free_port()
        self.config_path = workdir / f"{name}.yaml"
        self.config_path.write_text(agent_config(settings, endpoint, self.metrics_port, nginx_pid,
                                                 [*exclude_ports, self.metrics_port], also_pids))
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._log = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}-{self.starts}.log"

    def start(self, timeout: float = 90.0) -> "AgentRun":
        self.starts += 1
        self._log = open(self.log_path, "w")
        # No preexec_fn: this process runs the fault sink's gRPC server, and Python code between
        # fork and exec in a child of a busy gRPC process can abort there (epoll_wait on a closed
        # fd).  setpriv sets the parent-death signal and execs the agent instead.
        self.proc = subprocess.Popen(
            ["setpriv", "--pdeathsig", "TERM", "--",
             str(VENV_BIN / "ebpf-receiver"), "run", "--config", str(self.config_path)],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while "running (pid" not in self.log_path.read_text():
            if self.proc.poll() is not None:
                raise BenchError(f"agent exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"agent not running after {timeout:g}s:\n{self.log_tail()}")
            time.sleep(0.1)
        wait_for_port(self.metrics_port, 15, self.proc)
        return self

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metrics(self) -> SelfMetrics:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=15) as r:
            text = r.read().decode()
        (self.workdir / f"{self.name}-{self.starts}.metrics.txt").write_text(text)  # the last scrape, kept
        return SelfMetrics.parse(text)

    def sample(self) -> ProcessSample:
        return sample_process(self.proc.pid)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._close()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (a clean shutdown flushes); the exit code, or -9 when it had to be killed."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._close()
        return self.proc.returncode

    def _close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
