"""An open-loop, constant-rate HTTP/1.1 load generator that corrects coordinated omission.

wrk2 is not packaged in Debian, so this is the small Python equivalent.  Each worker process
owns ``connections`` keep-alive connections and a schedule: request *i* is due at
``t0 + i / rate``.  A due request goes out on the first idle connection; when none is idle it
waits in a queue.  Its latency is measured **from the scheduled time** to the last byte of the
response, so a stall of the server (or of this generator) shows up in the latency of every
request that should have been sent during it, as it would for real users (wrk2's correction).
The latency from the actual send is reported as well ("service time"), and so is how late the
generator sent (``send lateness``): when that grows, the generator, not the server, is the
bottleneck, and the report says so.

Workers are separate processes (``python -m bench.loadgen --worker``) started before the run
and released together by one ``go <monotonic start time>`` line, so their pids are known in
advance (the agent is told not to trace them).  They are started detached (``setsid -f``):
the agent's process discovery takes a child that runs its parent's executable for a fork
without exec and gives it the parent's decision, which would override ``exclude_pids`` for a
Python worker of this Python harness.  A worker exits when its stdin closes before ``go`` (the
harness died) and, once running, at its deadline.  Everything is bounded: ``rate × seconds``
requests, and a deadline of ``seconds + grace``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


# -- the worker -----------------------------------------------------------------------------


class _Conn:
    __slots__ = ("sock", "buf", "sched", "sent_at", "need")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.sched = 0.0
        self.sent_at = 0.0
        self.need = -1  # total bytes of the response being read, once its head is parsed


def _connect(host: str, port: int) -> socket.socket:
    s = socket.create_connection((host, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    return s


def _response_length(buf: bytes) -> int:
    """Total length of the response at the head of buf, -1 if its head is incomplete, -2 if it
    has no Content-Length (not supported: the servers benchmarked always send one)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return -1
    head = buf[:end]
    i = head.find(b"\r\nContent-Length:")  # nginx's and gunicorn's spelling: skip lower()
    if i < 0:
        head = head.lower()
        i = head.find(b"\r\ncontent-length:")
        if i < 0:
            return -2
    j = head.find(b"\r\n", i + 2)
    return end + 4 + int(head[i + 17 : j if j > 0 else len(head)])


def run_worker(host: str, port: int, path: str, rate: float, count: int, connections: int, t0: float,
               deadline: float, lat_path: str, connection_close: bool = False) -> dict:
    """``connection_close``: every request on a new connection (``Connection: close``; the next
    one is opened as soon as a response is complete)."""
    extra = "Connection: close\r\n" if connection_close else ""
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: erx-bench\r\nAccept: */*\r\n{extra}"
               "\r\n").encode()
    sel = selectors.EpollSelector()
    conns = []
    for _ in range(connections):
        c = _Conn(_connect(host, port))
        sel.register(c.sock, selectors.EVENT_READ, c)
        conns.append(c)
    idle: deque[_Conn] = deque(conns)
    waiting: deque[float] = deque()  # scheduled times of due requests with no idle connection
    latency = array("I")  # microseconds, from the scheduled time
    service = array("I")  # microseconds, from the send
    lateness = array("I")  # microseconds, send time - scheduled time
    interval = 1.0 / rate
    monotonic = time.monotonic
    select = sel.select
    next_i = 0
    done = errors = reconnects = 0
    status_errors = 0
    while done + errors < count:
        now = monotonic()
        if now >= deadline:
            break
        while next_i < count and t0 + next_i * interval <= now:
            waiting.append(t0 + next_i * interval)
            next_i += 1
        while waiting and idle:
            c = idle.popleft()
            c.sched = waiting.popleft()
            c.sent_at = monotonic()
            c.sock.send(request)  # a few dozen bytes into an empty socket buffer: all of it
            lateness.append(int((c.sent_at - c.sched) * 1e6))
        if waiting or next_i >= count:
            wait = 0.05  # nothing to send before a response comes back
        else:
            wait = min(0.05, t0 + next_i * interval - monotonic())
        if len(idle) < len(conns):
            # Responses pending: block on them (epoll rounds the timeout up to a millisecond,
            # so a send may be up to 1 ms late when no response arrives meanwhile; it counts).
            events = select(max(wait, 0))
        elif wait >= 0.001:
            events = select(math.floor(wait * 1000) / 1000)  # wake early rather than late
        else:
            events = []
            if wait > 0:
                time.sleep(wait)  # high-resolution
        for key, _ in events:
            c = key.data
            try:
                data = c.sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:  # the server closed: reconnect; an in-flight request is resent
                reconnects += 1
                sel.unregister(c.sock)
                c.sock.close()
                c.sock, c.buf, c.need = _connect(host, port), b"", -1
                sel.register(c.sock, selectors.EVENT_READ, c)
                if c not in idle:
                    c.sent_at = monotonic()
                    c.sock.send(request)
                continue
            c.buf += data
            while True:
                if c.need < 0:
                    c.need = _response_length(c.buf)
                    if c.need == -2:
                        errors += 1
                        c.buf, c.need = b"", -1
                        idle.append(c)
                        break
                    if c.need < 0:
                        break
                if len(c.buf) < c.need:
                    break
                t = monotonic()
                if not c.buf.startswith((b"HTTP/1.1 2", b"HTTP/1.0 2")):
                    status_errors += 1
                latency.append(int((t - c.sched) * 1e6))
                service.append(int((t - c.sent_at) * 1e6))
                done += 1
                c.buf, c.need = c.buf[c.need :], -1
                if connection_close:  # the server closes it: the next request gets a new one
                    sel.unregister(c.sock)
                    c.sock.close()
                    c.sock, c.buf = _connect(host, port), b""
                    sel.register(c.sock, selectors.EVENT_READ, c)
                idle.append(c)
                break
    for c in conns:
        c.sock.close()
    with open(lat_path, "wb") as f:
        f.write(len(latency).to_bytes(8, "little"))
        latency.tofile(f)
        service.tofile(f)
        lateness.tofile(f)
    return {
        "scheduled": count,
        "sent": next_i - len(waiting),
        "completed": done,
        "errors": errors,
        "status_errors": status_errors,
        "reconnects": reconnects,
        "unfinished": count - done - errors,
        "first_send": t0,
        "last_done": monotonic(),
        "cpu_s": time.process_time(),
    }


def _read_latencies(path: str) -> tuple[array, array, array]:
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        latency, service, lateness = array("I"), array("I"), array("I")
        latency.fromfile(f, n)
        service.fromfile(f, n)
        rest = f.read()
        lateness.frombytes(rest)
    return latency, service, lateness


# -- the controller -------------------------------------------------------------------------


def percentile(sorted_values, p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


@dataclass
class LoadResult:
    target_rate: float
    seconds: float
    processes: int
    connections: int
    scheduled: int
    completed: int
    errors: int
    unfinished: int
    reconnects: int
    achieved_rate: float  # completed / (last response - first scheduled send)
    generator_cpu_s: float  # the workers' own CPU time
    latency_us: dict = field(default_factory=dict)  # p50, p90, p99, p99.9, max (from the schedule)
    service_us: dict = field(default_factory=dict)  # the same from the actual send
    lateness_us: dict = field(default_factory=dict)  # how late the generator sent

    @property
    def generator_kept_up(self) -> bool:
        """The generator sent on time (p99 lateness below 5 ms) and nothing is unfinished."""
        return self.unfinished == 0 and self.lateness_us.get("p99", 0) < 5000


def _summary(values: array) -> dict:
    s = sorted(values)
    return {
        "p50": percentile(s, 50), "p90": percentile(s, 90), "p99": percentile(s, 99),
        "p99.9": percentile(s, 99.9), "max": s[-1] if s else float("nan"),
    }


class ConstantRateLoad:
    """Start the workers (``pids`` known at once), then :meth:`run` releases them and collects."""

    def __init__(self, host: str, port: int, path: str, rate: float, seconds: float, workdir: Path,
                 processes: int | None = None, connections: int = 64, grace: float = 10.0,
                 connection_close: bool = False) -> None:
        self.rate, self.seconds, self.grace = rate, seconds, grace
        self.processes = processes or max(1, min(4, math.ceil(rate / 8000)))
        self.connections = max(self.processes, connections)
        per_conn = self.connections // self.processes
        count = int(rate * seconds)
        self.workers = []
        for i in range(self.processes):
            n = count // self.processes + (1 if i < count % self.processes else 0)
            lat = workdir / f"lat-{id(self)}-{i}.bin"
            cmd = ["setsid", "-f", sys.executable, "-m", "bench.loadgen", "--worker", "--host", host,
                   "--port", str(port), "--path", path, "--rate", repr(rate / self.processes), "--count", str(n),
                   "--connections", str(per_conn), "--lat-file", str(lat)] + (
                      ["--connection-close"] if connection_close else [])
            p = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.workers.append((p, lat))
        self._pids: list[int] = []
        for p, _ in self.workers:
            word, _, pid = p.stdout.readline().partition(" ")
            p.wait(10)  # setsid itself, which forked the worker and left
            if word != "ready":
                self.kill()
                raise RuntimeError("load generator worker did not start")
            self._pids.append(int(pid))

    @property
    def pids(self) -> list[int]:
        return list(self._pids)

    def kill(self) -> None:
        """Stop workers still running (they are not our children: by pid)."""
        for pid in getattr(self, "_pids", []):
            try:
                if os.getpid() != pid and Path(f"/proc/{pid}/cmdline").read_bytes().find(b"bench.loadgen") >= 0:
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for p, _ in self.workers:
            for f in (p.stdin, p.stdout):
                try:
                    f.close()
                except OSError:
                    pass

    def run(self) -> LoadResult:
        t0 = time.monotonic() + 0.3  # every worker connects first
        deadline = t0 + self.seconds + self.grace
        for p, _ in self.workers:
            p.stdin.write(f"go {t0!r} {deadline!r}\n")
            p.stdin.flush()
        reports = []
        try:
            for p, _ in self.workers:
                line = p.stdout.readline()  # the report, written once the worker is done
                if not line:
                    raise RuntimeError("a load generator worker died without reporting")
                reports.append(json.loads(line))
        finally:
            self.kill()
        latency, service, lateness = array("I"), array("I"), array("I")
        for _, lat in self.workers:
            a, b, c = _read_latencies(str(lat))
            latency += a
            service += b
            lateness += c
            lat.unlink(missing_ok=True)
        completed = sum(r["completed"] for r in reports)
        end = max(r["last_done"] for r in reports)
        return LoadResult(
            target_rate=self.rate,
            seconds=self.seconds,
            processes=self.processes,
            connections=self.connections,
            scheduled=sum(r["scheduled"] for r in reports),
            completed=completed,
            errors=sum(r["errors"] + r["status_errors"] for r in reports),
            unfinished=sum(r["unfinished"] for r in reports),
            reconnects=sum(r["reconnects"] for r in reports),
            achieved_rate=completed / max(end - t0, 1e-9),
            generator_cpu_s=sum(r["cpu_s"] for r in reports),
            latency_us=_summary(latency),
            service_us=_summary(service),
            lateness_us=_summary(lateness),
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/")
    ap.add_argument("--rate", type=float, default=1000.0, help="requests per second (all workers)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--processes", type=int, default=None)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--lat-file", default="", help=argparse.SUPPRESS)
    ap.add_argument("--connection-close", action="store_true", help="a new connection per request")
    args = ap.parse_args(argv)
    if args.worker:
        print(f"ready {os.getpid()}", flush=True)
        words = sys.stdin.readline().split()
        if len(words) != 3 or words[0] != "go":
            return 1  # the harness went away
        _, t0, deadline = words
        report = run_worker(args.host, args.port, args.path, args.rate, args.count, args.connections,
                            float(t0), float(deadline), args.lat_file, args.connection_close)
        print(json.dumps(report), flush=True)
        return 0
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        load = ConstantRateLoad(args.host, args.port, args.path, args.rate, args.seconds, Path(d),
                                args.processes, args.connections, connection_close=args.connection_close)
        r = load.run()
    print(json.dumps(r.__dict__ | {"generator_kept_up": r.generator_kept_up}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
