"""What the HTTP pairing tests share: traffic children (http_traffic.py), the transactions of
either path as comparable views, and the kernel counters as deltas.

The payload path's transactions are made here as the tracker makes them: the data records of
each connection fed, in order, to an ``Http1Session`` (``feed(direction, payload, ts_exit_ns,
total_len)``), and its ``close(ts)`` at the connection's close record.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from receiver.capture.events import ConnEvent, DataEvent, HttpTxEvent
from receiver.protocols.base import Direction, Transaction
from receiver.protocols.http1 import Http1Session

from .harness import Capture, summarize

HTTP_TRAFFIC = Path(__file__).with_name("http_traffic.py")
FIXTURES = Path(__file__).parents[1] / "fixtures" / "http1"


def http_command(scenario: str, params: dict) -> list[str]:
    return [sys.executable, "-I", str(HTTP_TRAFFIC), scenario, json.dumps(params)]


@dataclass(frozen=True)
class Done:
    """A finished child: its pid and JSON report."""

    pid: int
    report: dict


def spawn(cap: Capture | list[Capture], scenario: str, **params) -> subprocess.Popen:
    """Start a traffic child; its records are kept by every capture given, from its start."""
    proc = subprocess.Popen(http_command(scenario, params), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    for c in cap if isinstance(cap, list) else [cap]:
        c.watch(proc.pid)
    return proc


def finish(proc: subprocess.Popen, timeout: float = 30) -> Done:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # never left running past its test
        out, err = proc.communicate()
        raise AssertionError(f"traffic child still running after {timeout}s:\n{err.decode(errors='replace')}")
    if proc.returncode != 0:
        raise AssertionError(f"traffic child exited {proc.returncode}:\n{err.decode(errors='replace')}")
    return Done(proc.pid, json.loads(out.splitlines()[-1]))


def run(cap: Capture | list[Capture], scenario: str, **params) -> Done:
    return finish(spawn(cap, scenario, **params))


@contextlib.contextmanager
def server(cap: Capture | list[Capture], scenario: str, **params) -> Iterator[tuple[subprocess.Popen, int]]:
    """A server child: yields (process, port) once it listens; stopped (stdin closed) after."""
    proc = spawn(cap, scenario, **params)
    try:
        hello = json.loads(proc.stdout.readline())
        yield proc, hello["port"]
    finally:
        if proc.poll() is None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- the two paths' transactions --------------------------------------------------------------


def python_transactions(cap: Capture, evs: list, errors: list[int] | None = None) -> list[Transaction]:
    """The payload path: each connection's data records through an Http1Session (its parse
    errors, and those of the response it could not pair, added to ``errors`` when given)."""
    data_kinds = (cap.c("ERX_EV_DATA"), cap.c("ERX_EV_SENDFILE"))
    close = cap.c("ERX_EV_CONN_CLOSE")
    sessions: dict[int, Http1Session] = {}
    out: list[Transaction] = []
    for e in evs:
        if isinstance(e, DataEvent) and e.kind in data_kinds:
            session = sessions.setdefault(e.conn_id, Http1Session())
            out += session.feed(Direction(e.direction), e.payload, e.ts_exit_ns, e.total_len)
        elif isinstance(e, ConnEvent) and e.kind == close and e.conn_id in sessions:
            session = sessions.pop(e.conn_id)
            out += session.close(e.ts_exit_ns)
            if errors is not None:
                errors.append(_errors(session))
    if errors is not None:  # connections still open
        errors.extend(_errors(s) for s in sessions.values())
    return out


def _errors(session: Http1Session) -> int:
    return session.parse_errors + session.unmatched_responses + session.dropped_requests


def kernel_transactions(evs: list) -> list[HttpTxEvent]:
    return [e for e in evs if isinstance(e, HttpTxEvent)]


def data_records(cap: Capture, evs: list) -> list[DataEvent]:
    kinds = (cap.c("ERX_EV_DATA"), cap.c("ERX_EV_SENDFILE"))
    return [e for e in evs if isinstance(e, DataEvent) and e.kind in kinds]


def kernel_view(e: HttpTxEvent) -> dict:
    """The facts both paths give a transaction, from a kernel record."""
    return {
        "method": e.method, "target": e.target, "version": f"1.{e.req_version}", "host": e.host,
        "user_agent": e.user_agent, "traceparent": e.traceparent, "tracestate": e.tracestate,
        "status": e.status, "request_body": e.req_body_size, "request_wire": e.req_wire_size,
        "response_body": e.resp_body_size, "response_wire": e.resp_wire_size,
        "interim": list(e.interim_status_codes),
    }


def python_view(t: Transaction) -> dict:
    """The same facts from a transaction of the payload path's parser."""
    req, resp = t.request, t.response
    return {
        "method": req.method, "target": req.target, "version": req.version, "host": req.header("host") or "",
        "user_agent": req.header("user-agent") or "", "traceparent": req.header("traceparent") or "",
        "tracestate": req.header("tracestate") or "", "status": resp.status_code if resp else 0,
        "request_body": req.body_size, "request_wire": t.request_size,
        "response_body": resp.body_size if resp else 0, "response_wire": t.response_size,
        "interim": list(resp.interim_status_codes) if resp else [],
    }


def counters(cap: Capture) -> dict[str, int]:
    values = cap.loader.read_counters()
    return {n: values[v] for n, v in cap.abi.constants.items() if n.startswith("ERX_CNT_") and n != "ERX_CNT_MAX"}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {n: after[n] - before[n] for n in after if after[n] != before[n]}


def describe(evs: list) -> list[str]:
    """Records for an assertion message."""
    out = summarize([e for e in evs if not isinstance(e, HttpTxEvent)])
    out += [f"http_tx({e.method} {e.target} -> {e.status}, flags {e.http_flags:#x})" for e in kernel_transactions(evs)]
    return out
