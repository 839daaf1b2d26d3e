"""Continuous CPU profiling, end to end: the agent as users run it profiles a C program and a
CPython program with known hot functions (70/30 by construction, in thread CPU time), and the
pprof it writes is read by a real third-party consumer (`go tool pprof` from Debian's golang-go);
the same profiles are pushed to a Pyroscope-style ingest endpoint (a server of the test's own:
the Pyroscope server is not installable here). A slow endpoint of a traced server yields samples
labelled with its span id. Assertions are filtered by the test's own pids and span ids."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.agent import AgentProcess
from tests.support.ports import free_port, wait_for_port, wait_until

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

PROGRAMS = Path(__file__).with_name("profiling_programs")
GO = shutil.which("go") or "/usr/bin/go"
FREQUENCY = 99  # Hz per CPU: ~500 samples per program, so a 10 % tolerance is many sigmas wide
WORK_S = 5.0  # CPU seconds each program spends in its hot functions
TOLERANCE = 0.10
_TOP_LINE = re.compile(r"^\s*([\d.]+)ms\s+[\d.]+%\s+[\d.]+%\s+([\d.]+)ms\s+[\d.]+%\s+(.+?)\s*$")


def pprof_top(files: list[Path], tagfocus: str) -> list[tuple[str, float]]:
    """(function, flat ms) of every node `go tool pprof -top` shows for the samples whose label
    matches ``tagfocus`` (key=regexp), most first."""
    assert files, "no profile was written"
    res = subprocess.run(
        [GO, "tool", "pprof", "-top", "-unit=ms", "-nodecount=100000", f"-tagfocus={tagfocus}", *map(str, files)],
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stderr
    out = []
    for line in res.stdout.splitlines():
        m = _TOP_LINE.match(line)
        if m:
            out.append((m.group(3), float(m.group(1))))
    return out


class _Ingest(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]]

    def do_POST(self):  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@contextmanager
def ingest_server():
    """A Pyroscope-style ``/ingest`` endpoint of the test's own: records what it is sent."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ingest)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _config(out: Path, extra_receivers: str = "", extra_pipelines: str = "", endpoint: str | None = None) -> str:
    push = f"\n    endpoint: {endpoint}" if endpoint else ""
    return f"""
receivers:
  profiling:
    frequency: {FREQUENCY}
    report_interval: 1s
    rescan_interval: 200ms
{extra_receivers}
exporters:
  pprof:
    directory: {out}{push}
  debug:
    verbosity: normal
service:
  pipelines:
    profiles:
      receivers: [profiling]
      exporters: [pprof]
{extra_pipelines}
"""


def _profiles(files_dir: Path) -> list[Path]:
    """Every profile file the agent wrote (read once it stopped: its last report is in)."""
    return sorted(files_dir.glob("cpu-*.pb.gz"))


def _shares(top: list[tuple[str, float]], a: str, b: str) -> tuple[float, float, float]:
    flat = dict(top)
    total = sum(ms for _, ms in top)
    assert flat.get(a, 0) and flat.get(b, 0), f"{a}/{b} not among the top frames: {top[:8]}"
    return flat[a] / (flat[a] + flat[b]), (flat[a] + flat[b]) / total, total


def test_hot_functions_of_c_and_python_are_the_top_frames(tmp_path):
    exe = tmp_path / f"hot_{free_port()}"
    subprocess.run(["gcc", "-O1", "-fno-omit-frame-pointer", "-fno-inline", "-o", str(exe), str(PROGRAMS / "hot.c")],
                   check=True, timeout=60)
    out = tmp_path / "profiles"
    with ingest_server() as ingest:
        endpoint = f"http://127.0.0.1:{ingest.server_address[1]}"
        progs = []
        try:
            with AgentProcess(tmp_path, _config(out, endpoint=endpoint)):
                c_prog = subprocess.Popen([str(exe), "1", str(WORK_S)])
                progs.append(c_prog)
                py_prog = subprocess.Popen([sys.executable, str(PROGRAMS / "hot.py"), "1", str(WORK_S)],
                                           stdout=subprocess.PIPE, text=True)
                progs.append(py_prog)
                assert py_prog.stdout.readline().strip() == "done"  # its work is over
                time.sleep(1.0)  # C's as well (it started first, and does as much)
            # The programs outlive the agent's last report: their mappings are read for symbols.
        finally:
            for p in progs:
                p.kill()
                p.wait()
        pushed = list(ingest.received)
    files = _profiles(out)
    c_top = pprof_top(files, f"process.pid=^{c_prog.pid}$")
    py_top = pprof_top(files, f"process.pid=^{py_prog.pid}$")

    # C: the two hot functions are the top two frames, 70/30 within 10 %.
    assert [name for name, _ in c_top[:2]] == ["hot_seventy", "hot_thirty"], c_top[:6]
    share, covered, total = _shares(c_top, "hot_seventy", "hot_thirty")
    assert abs(share - 0.7) <= TOLERANCE, (share, c_top[:6])
    assert covered >= 0.9, c_top[:6]
    assert total >= 0.5 * WORK_S * 1000 * (FREQUENCY / 99), total  # the samples were there (ms of CPU)

    # CPython: the interpreter's frames resolved to the Python functions.
    assert [name for name, _ in py_top[:2]] == ["hot_py_seventy", "hot_py_thirty"], py_top[:6]
    share, covered, total = _shares(py_top, "hot_py_seventy", "hot_py_thirty")
    assert abs(share - 0.7) <= TOLERANCE, (share, py_top[:6])
    assert covered >= 0.8, py_top[:6]

    # The same profiles went to the ingest endpoint, as Pyroscope takes them.
    assert pushed, "nothing pushed"
    path, body = pushed[0]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    assert urllib.parse.urlsplit(path).path == "/ingest"
    assert query["format"] == ["pprof"] and query["sampleRate"] == [str(FREQUENCY)]
    assert query["name"] == ["ebpf-receiver.cpu{}"]
    assert int(query["until"][0]) >= int(query["from"][0]) > 0
    assert gzip.decompress(body)  # a gzipped profile.proto
    pushed_files = []
    for i, (_, body) in enumerate(pushed):
        f = tmp_path / f"pushed-{i}.pb.gz"
        f.write_bytes(body)
        pushed_files.append(f)
    pushed_top = pprof_top(pushed_files, f"process.pid=^{c_prog.pid}$")
    assert [name for name, _ in pushed_top[:2]] == ["hot_seventy", "hot_thirty"], pushed_top[:6]


def test_slow_endpoint_samples_carry_its_span_id(tmp_path):
    out = tmp_path / "profiles"
    work_s = 1.5
    port = free_port()
    server = subprocess.Popen([sys.executable, str(PROGRAMS / "slow_server.py"), str(port), str(work_s)])
    try:
        wait_for_port(port)
        config = _config(
            out,
            # No CPU budget: over it (the machine may be busy with other traffic), the kernel would
            # aggregate the request instead of making its span; normal scheduling: on a saturated
            # shared machine SCHED_IDLE threads may not get to write the last report in time.
            extra_receivers="  ebpf:\n    cpu_budget: 0\n    scheduling: normal",
            extra_pipelines="    traces:\n      receivers: [ebpf]\n      exporters: [debug]",
        )
        with AgentProcess(tmp_path, config) as agent:
            time.sleep(1.0)  # the profiler has registered the server's interpreter (rescan: 200 ms)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
                resp.read()  # a fast request: its span, no samples worth a flame graph
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/slow", timeout=30) as resp:
                assert resp.read() == b"ok\n"
            span_line = re.compile(rf"^GET \S*/slow SERVER ([0-9a-f]{{32}}) ([0-9a-f]{{16}}) .*server\.port={port}\b", re.M)
            trace_id, span_id = wait_until(lambda: (m := span_line.search(agent.stderr())) and m.groups(),
                                           timeout=15, what="the /slow server span")
    finally:
        server.kill()
        server.wait()
    files = _profiles(out)
    span_top = pprof_top(files, f"span_id=^{span_id}$")
    trace_top = pprof_top(files, f"trace_id=^{trace_id}$")
    server_top = pprof_top(files, f"process.pid=^{server.pid}$")

    assert span_top, "no sample labelled with the slow span's id"
    assert span_top[0][0] == "slow_endpoint_work", span_top[:6]
    labelled = sum(ms for _, ms in span_top)
    assert labelled >= 0.5 * work_s * 1000, (labelled, span_top[:6])  # ms of CPU sampled under the span
    assert sum(ms for _, ms in trace_top) == labelled  # one span of that trace was on CPU
    # Nearly all of the endpoint's work is labelled (the rest: before the request head was read).
    work = dict(server_top).get("slow_endpoint_work", 0)
    assert dict(span_top)["slow_endpoint_work"] >= 0.9 * work, (span_top[:4], server_top[:4])
