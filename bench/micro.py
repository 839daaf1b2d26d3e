"""Micro benchmarks of the user-space stages, one core each, CPU time (``time.thread_time``).

* kernel → decode: :mod:`bench.capture_throughput` (real kernel, real loader and ring buffer);
* parse + stitch: every recorded fixture of ``tests/fixtures/<proto>/`` fed to a fresh session
  of that protocol the way the agent feeds it (server's view, payload cut at ``capture_size``
  4 KiB with the real length), repeated for a time budget → transactions/s and MB/s;
* OTLP encoding: what the OTLP exporters run, :class:`receiver.exporters.otlp_wire.OtlpWireEncoder`
  (spans → serialized export request, in one step), on batches of HTTP server spans shaped like
  the agent's — with the encoder's caches warm (as in a running agent) and empty — next to the
  reference message encoder (``encode_traces`` + ``SerializeToString``, what was sent before).
"""

from __future__ import annotations

import base64
import json
import os
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
CAPTURE_SIZE = 4096

# fixture directory → protocol name in receiver.protocols.registry
PROTOCOL_DIRS = {"http1": "http", "http2": "http2", "postgresql": "postgresql", "mysql": "mysql", "redis": "redis"}


@dataclass
class ParserResult:
    protocol: str
    fixtures: int
    transactions_per_pass: int
    bytes_per_pass: int
    passes: int
    cpu_seconds: float
    transactions_per_s: float
    mb_per_s: float
    parse_errors_per_pass: int


def _load_chunks(proto_dir: Path) -> list[list[tuple[str, bytes]]]:
    out = []
    for path in sorted(proto_dir.glob("*.json")):
        raw = json.loads(path.read_text())
        out.append([(c["dir"], base64.b64decode(c["data"])) for c in raw["chunks"]])
    return out


def _parse_pass(pieces, new_session) -> tuple[int, int]:
    """Every connection once through a fresh session: (transactions, parse errors)."""
    txs = errors = 0
    for conn in pieces:
        session = new_session(max_buffer=65536)
        ts = 0
        for direction, data, total in conn:
            ts += 1000
            txs += len(session.feed(direction, data, ts, total))
        txs += len(session.close(ts + 1000))
        errors += session.parse_errors
    return txs, errors


def bench_parsers(seconds_each: float = 1.0) -> list[ParserResult]:
    from receiver.protocols.base import Direction
    from receiver.protocols.registry import builtin_protocols

    specs = {s.name: s for s in builtin_protocols()}
    to_dir = {"c2s": Direction.INGRESS, "s2c": Direction.EGRESS}  # the server's view
    results = []
    for dirname, name in PROTOCOL_DIRS.items():
        proto_dir = FIXTURES / dirname
        if name not in specs or not proto_dir.is_dir():
            continue
        fixtures = _load_chunks(proto_dir)
        pieces = [
            [(to_dir[side], data[:CAPTURE_SIZE], len(data)) for side, data in chunks] for chunks in fixtures
        ]
        nbytes = sum(len(d) for chunks in fixtures for _, d in chunks)
        new_session = specs[name].new_session
        txs_per_pass, errors = _parse_pass(pieces, new_session)  # warm-up, and the counts
        passes = 0
        t0 = time.thread_time()
        while True:
            _parse_pass(pieces, new_session)
            passes += 1
            cpu = time.thread_time() - t0
            if cpu >= seconds_each:
                break
        results.append(ParserResult(
            protocol=name, fixtures=len(fixtures), transactions_per_pass=txs_per_pass, bytes_per_pass=nbytes,
            passes=passes, cpu_seconds=cpu, transactions_per_s=txs_per_pass * passes / cpu,
            mb_per_s=nbytes * passes / cpu / 1e6, parse_errors_per_pass=errors,
        ))
    return results


@dataclass
class EncodeResult:
    batch_size: int
    spans_per_s_encode: float  # the exporters' path: OtlpWireEncoder.traces, spans → request bytes, caches warm
    spans_per_s_encode_cold: float  # OtlpWireEncoder with empty caches (a new encoder per batch)
    spans_per_s_reference: float  # encode_traces + SerializeToString (message objects: OTLP/JSON, tests)
    gzip_us_per_span: float  # compressing the request as `compression: gzip` (the default) does, zlib level 6
    bytes_per_span: float


def sample_spans(n: int, resources: int = 4) -> list:
    """HTTP server spans with the attributes the agent sets on an nginx request."""
    from receiver.model.telemetry import Resource, Span, SpanKind

    res = [
        Resource.from_dict({
            "service.name": f"svc-{i}", "service.instance.id": f"host-{1000 + i}", "process.pid": 1000 + i,
            "process.executable.path": "/usr/sbin/nginx", "process.executable.name": "nginx",
            "process.command": "nginx", "host.name": "bench-host", "telemetry.sdk.name": "ebpf-receiver",
            "telemetry.sdk.language": "python", "telemetry.sdk.version": "0.1.0",
        })
        for i in range(resources)
    ]
    now = time.time_ns()
    spans = []
    for i in range(n):
        spans.append(Span(
            trace_id=os.urandom(16), span_id=os.urandom(8), name="GET /users/{id}", kind=SpanKind.SERVER,
            start_unix_nano=now + i * 1000, end_unix_nano=now + i * 1000 + 250_000, resource=res[i % resources],
            attributes={
                "http.request.method": "GET", "url.path": f"/users/{i % 1000}", "url.scheme": "http",
                "network.protocol.name": "http", "network.protocol.version": "1.1", "network.transport": "tcp",
                "user_agent.original": "erx-bench", "server.address": "127.0.0.1", "server.port": 8080,
                "client.address": "127.0.0.1", "client.port": 40000 + i % 20000,
                "network.peer.address": "127.0.0.1", "network.peer.port": 40000 + i % 20000,
                "network.local.address": "127.0.0.1", "network.local.port": 8080,
                "http.route": "/users/{id}", "http.response.status_code": 200, "http.response.body.size": 615,
            },
        ))
    return spans


def _spans_per_s(encode, size: int, seconds: float) -> float:
    """Spans/s of one core running ``encode()`` (one batch of ``size`` spans) for ``seconds`` of CPU."""
    n = 0
    t0 = time.thread_time()
    while True:
        encode()
        n += size
        cpu = time.thread_time() - t0
        if cpu >= seconds:
            return n / cpu


def bench_encoding(batch_sizes=(512, 8192), seconds_each: float = 1.0) -> list[EncodeResult]:
    from receiver.exporters.otlp_encoding import encode_traces
    from receiver.exporters.otlp_wire import OtlpWireEncoder

    out = []
    for size in batch_sizes:
        spans = sample_spans(size)
        encoder = OtlpWireEncoder()
        data = encoder.traces(spans)  # warm-up, and the caches of a running exporter
        if data != encode_traces(spans).SerializeToString():
            raise RuntimeError("the wire encoder disagrees with the reference encoder")
        warm = _spans_per_s(lambda: encoder.traces(spans), size, seconds_each)
        cold = _spans_per_s(lambda: OtlpWireEncoder().traces(spans), size, seconds_each)
        reference = _spans_per_s(lambda: encode_traces(spans).SerializeToString(), size, seconds_each)
        t0 = time.thread_time()
        for _ in range(3):
            zlib.compress(data, 6)
        gzip_us = 1e6 * (time.thread_time() - t0) / 3 / size
        out.append(EncodeResult(size, warm, cold, reference, gzip_us, len(data) / size))
    return out


def bench_capture(rate: float, seconds: float) -> dict:
    from bench import capture_throughput

    r = capture_throughput.run(rate, seconds, producers=1, size=64, poll_interval_ms=20, ring_buffer_size=16 << 20)
    return asdict(r)


def bench_replay(workdir: Path, rate: float = 5000.0, seconds: float = 3.0, repeat: int = 3) -> dict:
    """The agent's user space per request on recorded kernel output of nginx (bench/replay.py):
    every span, and with 10 % head sampling."""
    from bench import replay
    from receiver.cli import tune_garbage_collector

    path = workdir / "replay-nginx.rec"
    replay.record(path, rate, seconds, http_pairing=True)  # the agent's default: one record per request
    records = replay.read_records(path)
    tune_garbage_collector()  # as `ebpf-receiver run` does
    best = lambda ratio: min((replay.run_once(records, ratio) for _ in range(repeat)),  # noqa: E731
                             key=lambda r: r["total_us_per_request"])
    return {"rate": rate, "seconds": seconds, "all_spans": best(None), "sampled_10pct": best(0.1)}


def run_all(quick: bool, workdir: Path | None = None) -> dict:
    budget = 0.5 if quick else 2.0
    out = {
        "capture": bench_capture(100_000 if quick else 200_000, 2.0 if quick else 5.0),
        "parsers": [asdict(r) for r in bench_parsers(budget)],
        "encoding": [asdict(r) for r in bench_encoding(seconds_each=budget)],
    }
    if workdir is not None:
        out["replay"] = bench_replay(workdir, seconds=2.0 if quick else 4.0)
        from bench.bpf_time import network_cost

        out["network_bpf"] = network_cost(seconds=3 if quick else 5, pairs=2 if quick else 3)
    return out


# -- what a hooked and an unhooked syscall cost (run in a child process: traced, not excluded) --

SYSCALL_LOOP = """
import os, time
N = {n}
zero = os.open("/dev/zero", os.O_RDONLY)
null = os.open("/dev/null", os.O_WRONLY)
def best(fn):
    out = []
    for _ in range(5):
        t = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t) / N)
    return min(out)
def ppid():
    g = os.getppid
    for _ in range(N):
        g()
def rd():
    r = os.read
    for _ in range(N):
        r(zero, 1)
def wr():
    w = os.write
    for _ in range(N):
        w(null, b"x")
print(best(ppid), best(rd), best(wr))
"""


def syscall_cost(n: int = 200_000) -> dict:
    """ns per call, best of 5, of getppid() (no hook), read(/dev/zero, 1) and write(/dev/null, 1)
    (hooked: sys_enter/exit_read/write), measured in a fresh child process."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", SYSCALL_LOOP.format(n=n)], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    return {"getppid_ns": float(out[0]), "read_devzero_ns": float(out[1]), "write_devnull_ns": float(out[2])}
