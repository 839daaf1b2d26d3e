"""Knobs that change what is captured, on one loader: capture_size=256 and capture_logs=True,
started after a traffic child had already connected (a connection older than the agent)."""

from __future__ import annotations

import json
import subprocess

import pytest

from .harness import (
    Capture,
    conn_events,
    data_events,
    event_view,
    expected_view,
    finished_child,
    run_child,
    started_capture,
    traffic_command,
)

pytestmark = pytest.mark.kernel

CAPTURE_SIZE = 256


@pytest.fixture(scope="module")
def preopened(kernel):
    """A child holding a TCP connection opened before the loader starts; it moves bytes once
    it reads a line on stdin."""
    proc = subprocess.Popen(
        traffic_command("preexisting", {}), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    ready = json.loads(proc.stdout.readline())
    yield proc, ready
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def small_capture(kernel, preopened) -> Capture:
    proc, _ = preopened
    # Every stdout/stderr pipe is a log destination here (log_pipes="all"): these tests are about
    # what is captured; which pipes count is tests/kernel/test_self_observation.py's.
    with started_capture(capture_size=CAPTURE_SIZE, capture_logs=True, log_pipes="all") as cap:
        cap.watch(proc.pid)
        yield cap


def test_payload_larger_than_capture_size(small_capture: Capture) -> None:
    """10 000 bytes in one write (and one writev of three iovecs): the record carries the first
    capture_size bytes and the true length."""
    cap = small_capture
    child = run_child("large", size=10_000)
    evs = cap.events_of(child)
    data = data_events(evs, (cap.c("ERX_EV_DATA"),))
    assert [event_view(e) for e in data] == [expected_view(cap, child, op, CAPTURE_SIZE) for op in child.ops]
    egress = [e for e in data if e.direction == cap.c("ERX_DIR_EGRESS")]
    assert [(e.total_len, len(e.payload)) for e in egress] == [(10_000, CAPTURE_SIZE)] * 2
    ingress = [e for e in data if e.direction == cap.c("ERX_DIR_INGRESS")]
    assert sum(e.total_len for e in ingress) == 20_000
    assert all(len(e.payload) == min(CAPTURE_SIZE, e.total_len) for e in ingress)


def test_logs_are_writes_to_stdout_and_stderr(small_capture: Capture) -> None:
    """With capture_logs, writes to fd 1/2 (pipes here) become ERX_EV_LOG records; the regular
    file and the pipe the child also wrote to produce nothing."""
    cap = small_capture
    child = run_child("nonsocket", long=1000)
    evs = cap.events_of(child)
    report_line = child.stdout.splitlines(keepends=True)[-1]
    expected = [
        (op["fd"], cap.c(f"ERX_SYS_{op['sys'].upper()}"), op["tid"], op["total"], bytes.fromhex(op["data"])[:CAPTURE_SIZE])
        for op in child.ops
    ]
    expected.append((1, cap.c("ERX_SYS_WRITE"), child.pid, len(report_line), report_line[:CAPTURE_SIZE]))
    logs = data_events(evs, (cap.c("ERX_EV_LOG"),))
    assert [(e.fd, e.syscall, e.tid, e.total_len, e.payload) for e in logs] == expected
    for e in logs:
        assert e.direction == cap.c("ERX_DIR_EGRESS")
        assert (e.conn_id, e.role) == (0, cap.c("ERX_ROLE_UNKNOWN"))
        assert (e.tuple.family, e.tuple.transport) == (0, cap.c("ERX_TRANSPORT_UNKNOWN"))
    assert data_events(evs, (cap.c("ERX_EV_DATA"), cap.c("ERX_EV_SENDFILE"))) == []


def test_connection_opened_before_the_loader(small_capture: Capture, preopened) -> None:
    """Bytes of a connection the agent never saw open: records with role UNKNOWN, a connection
    id per socket and the tuple read from the socket; a close with the totals seen."""
    cap = small_capture
    proc, ready = preopened
    out, err = proc.communicate(b"go\n", timeout=30)
    child = finished_child(proc, out, err)
    evs = cap.events_of(child)
    data = data_events(evs, (cap.c("ERX_EV_DATA"),))
    assert [event_view(e) for e in data] == [expected_view(cap, child, op, CAPTURE_SIZE) for op in child.ops]
    assert child.report["sockets"] == ready["sockets"]
    unknown = cap.c("ERX_ROLE_UNKNOWN")
    assert all(e.role == unknown for e in data)
    ids = {fd: {e.conn_id for e in data if e.fd == int(fd)} for fd in ready["sockets"]}
    assert all(len(v) == 1 and 0 not in v for v in ids.values()) and len(set.union(*ids.values())) == 2
    assert conn_events(evs, cap.c("ERX_EV_CONN_OPEN")) == []
    closes = {e.fd: e for e in conn_events(evs, cap.c("ERX_EV_CONN_CLOSE"))}
    assert set(closes) == {int(fd) for fd in ready["sockets"]}
    for fd, cl in closes.items():
        assert cl.role == unknown and {cl.conn_id} == ids[str(fd)]
        sent = sum(o["total"] for o in child.ops if o["fd"] == fd and o["dir"] == "egress")
        received = sum(o["total"] for o in child.ops if o["fd"] == fd and o["dir"] == "ingress")
        assert (cl.bytes_sent, cl.bytes_received) == (sent, received)
