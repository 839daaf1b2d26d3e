"""Every data syscall over every traced transport, on the real kernel: one record per syscall
(per message for sendmmsg/recvmmsg) with the right kind, syscall, direction, fd, pid/tid, tuple,
lengths and exact bytes; connection records that frame them with the right role and totals."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from .harness import (
    Capture,
    Child,
    cgroup_id,
    conn_events,
    data_events,
    endpoint,
    event_view,
    expected_view,
    run_child,
)

pytestmark = pytest.mark.kernel

PAIRS = [
    ("write", "read"),
    ("writev", "readv"),
    ("sendto", "recvfrom"),
    ("sendmsg", "recvmsg"),
    ("sendmmsg", "recvmmsg"),
]
STREAMS = ("tcp4", "tcp6", "unix")
CASES = [(t, s, r) for t in (*STREAMS, "udp4") for s, r in PAIRS] + [(t, "sendfile", "recvfrom") for t in STREAMS]


def _data_kinds(cap: Capture) -> tuple[int, ...]:
    return tuple(cap.c(k) for k in ("ERX_EV_DATA", "ERX_EV_SENDFILE", "ERX_EV_LOG"))


def _expected_role(cap: Capture, transport: str, side: str) -> int:
    """connect() makes a client, accept() a server; both UDP ends here called connect()."""
    if transport == "udp4" or side == "client":
        return cap.c("ERX_ROLE_CLIENT")
    return cap.c("ERX_ROLE_SERVER")


def _check_common(cap: Capture, child: Child, evs: list) -> None:
    """pid, timestamps and cgroup of every record; the child's exec comes first, its exit last."""
    assert all(e.pid == child.pid for e in evs)
    kinds = [e.kind for e in evs]
    assert kinds[0] == cap.c("ERX_EV_PROC_EXEC") and kinds[-1] == cap.c("ERX_EV_PROC_EXIT"), kinds
    cg = cgroup_id(os.getpid())  # the child has exited; it ran in the cgroup of its parent
    for e in evs:
        if hasattr(e, "ts_enter_ns"):
            assert 0 < e.ts_enter_ns <= e.ts_exit_ns
        if cg is not None:
            assert e.cgroup_id == cg
    assert cap.decoder.malformed == 0


@pytest.mark.parametrize("transport,send,recv", CASES, ids=["-".join(c) for c in CASES])
def test_data_syscall(capture: Capture, transport: str, send: str, recv: str) -> None:
    cap = capture
    child = run_child("pair", transport=transport, send=send, recv=recv)
    evs = cap.events_of(child)
    _check_common(cap, child, evs)

    # Data records: exactly one per syscall (per message for mmsg), in order, with exact bytes.
    data = data_events(evs, _data_kinds(cap))
    size = cap.loader.knobs.capture_size
    assert [event_view(e) for e in data] == [expected_view(cap, child, op, size) for op in child.ops]
    sender_tid = child.ops[0]["tid"]
    assert sender_tid != child.pid  # the sender thread: tid is not the pid
    if send == "sendfile":
        assert data[0].payload == b"" and data[0].total_len == len(bytes.fromhex(child.ops[1]["data"]))

    # Connection records: an open at connect (none at accept: the first record of an accepted
    # connection announces it, with its tuple and role); a close with the totals, one id per socket.
    opens = {e.fd: e for e in conn_events(evs, cap.c("ERX_EV_CONN_OPEN"))}
    closes = {e.fd: e for e in conn_events(evs, cap.c("ERX_EV_CONN_CLOSE"))}
    fds = {int(fd) for fd in child.report["sockets"]}
    assert set(closes) == fds
    connected = {fd for fd in fds if transport == "udp4" or child.socket(fd)["role"] == "client"}
    assert set(opens) == connected
    for fd in fds:
        sock = child.socket(fd)
        role = _expected_role(cap, transport, sock["role"])
        cl = closes[fd]
        if fd in connected:
            op = opens[fd]
            assert op.syscall == cap.c("ERX_SYS_CONNECT")
            assert (op.role, op.conn_id, op.tuple) == (cl.role, cl.conn_id, cl.tuple)
            assert (op.bytes_sent, op.bytes_received) == (0, 0)
        assert cl.syscall == cap.c("ERX_SYS_CLOSE")
        assert cl.role == role and cl.conn_id != 0
        assert cl.tuple.family == sock["family"]
        if sock["family"] != socket.AF_UNIX:
            assert (cl.tuple.local_addr, cl.tuple.local_port) == endpoint(sock["local"])
            assert (cl.tuple.remote_addr, cl.tuple.remote_port) == endpoint(sock["remote"])
        mine = [e for e in data if e.fd == fd]
        assert all(e.conn_id == cl.conn_id and e.role == role and e.tuple == cl.tuple for e in mine)
        sent = sum(o["total"] for o in child.ops if o["fd"] == fd and o["dir"] == "egress")
        received = sum(o["total"] for o in child.ops if o["fd"] == fd and o["dir"] == "ingress")
        assert (cl.bytes_sent, cl.bytes_received) == (sent, received)
    assert closes[min(fds)].conn_id != closes[max(fds)].conn_id


def test_udp_unconnected_remote_from_sockaddr(capture: Capture) -> None:
    """sendto/recvfrom, sendmsg/recvmsg, sendmmsg/recvmmsg on unconnected UDP: the remote end
    of each record is the address passed to (or returned by) that very syscall."""
    cap = capture
    child = run_child("udp_unconnected")
    evs = cap.events_of(child)
    _check_common(cap, child, evs)
    data = data_events(evs, _data_kinds(cap))
    size = cap.loader.knobs.capture_size
    assert [event_view(e) for e in data] == [expected_view(cap, child, op, size) for op in child.ops]
    assert all(e.role == cap.c("ERX_ROLE_UNKNOWN") and e.conn_id != 0 for e in data)
    assert all(e.tuple.transport == cap.c("ERX_TRANSPORT_UDP") for e in data)
    assert conn_events(evs, cap.c("ERX_EV_CONN_OPEN")) == []
    closes = {e.fd: e for e in conn_events(evs, cap.c("ERX_EV_CONN_CLOSE"))}
    for fd in (int(f) for f in child.report["sockets"]):
        sent = sum(o["total"] for o in child.ops if o["fd"] == fd and o["dir"] == "egress")
        received = sum(o["total"] for o in child.ops if o["fd"] == fd and o["dir"] == "ingress")
        assert (closes[fd].bytes_sent, closes[fd].bytes_received) == (sent, received)
        assert {e.conn_id for e in data if e.fd == fd} == {closes[fd].conn_id}


def test_nonblocking_connect_and_plain_accept(capture: Capture) -> None:
    """connect() returning EINPROGRESS still opens a client connection with its full tuple;
    accept(2) (not accept4) starts the server side (its records carry role and tuple)."""
    cap = capture
    child = run_child("nonblocking_accept")
    evs = cap.events_of(child)
    _check_common(cap, child, evs)
    data = data_events(evs, _data_kinds(cap))
    size = cap.loader.knobs.capture_size
    assert [event_view(e) for e in data] == [expected_view(cap, child, op, size) for op in child.ops]
    opens = {e.fd: e for e in conn_events(evs, cap.c("ERX_EV_CONN_OPEN"))}
    closes = {e.fd: e for e in conn_events(evs, cap.c("ERX_EV_CONN_CLOSE"))}
    for fd, sock in ((int(fd), s) for fd, s in child.report["sockets"].items()):
        client = sock["role"] == "client"
        mine = [e for e in data if e.fd == fd] + [closes[fd]]
        if client:  # an open at connect, even in progress; none at accept
            assert opens[fd].syscall == cap.c("ERX_SYS_CONNECT")
            mine.append(opens[fd])
        else:
            assert fd not in opens
        assert {e.role for e in mine} == {cap.c("ERX_ROLE_CLIENT" if client else "ERX_ROLE_SERVER")}
        assert {(e.tuple.local_addr, e.tuple.local_port) for e in mine} == {endpoint(sock["local"])}
        assert {(e.tuple.remote_addr, e.tuple.remote_port) for e in mine} == {endpoint(sock["remote"])}
        assert len({e.conn_id for e in mine}) == 1


def test_process_exec_and_exit(capture: Capture) -> None:
    """A child that does nothing: its exec and its exit (with the status) are the only records."""
    cap = capture
    child = run_child("idle", expect_status=3, exit_status=3)
    evs = cap.events_of(child)
    assert [e.kind for e in evs] == [cap.c("ERX_EV_PROC_EXEC"), cap.c("ERX_EV_PROC_EXIT")]
    exe, ex = evs
    assert exe.pid == exe.tid == ex.pid == ex.tid == child.pid
    assert exe.ppid == ex.ppid == os.getpid()
    assert exe.comm == ex.comm == Path(sys.executable).name[:15]
    assert ex.exit_code == 3 << 8  # task->exit_code holds the wait status
    assert exe.ts_ns <= ex.ts_ns


def test_mmsg_past_the_record_limit_still_counts_bytes(capture: Capture) -> None:
    """sendmmsg/recvmmsg of more than ERX_MAX_MMSG messages: the first ERX_MAX_MMSG become
    records, and the connection totals still count every message."""
    cap = capture
    limit = cap.c("ERX_MAX_MMSG")
    sizes = [10 + i for i in range(limit + 3)]
    child = run_child("pair", transport="udp4", send="sendmmsg", recv="recvmmsg", sizes=sizes)
    evs = cap.events_of(child)
    data = data_events(evs, _data_kinds(cap))
    size = cap.loader.knobs.capture_size
    egress = [op for op in child.ops if op["dir"] == "egress"]
    ingress = [op for op in child.ops if op["dir"] == "ingress"]
    assert len(egress) == len(ingress) == len(sizes)
    expected = [expected_view(cap, child, op, size) for op in egress[:limit] + ingress[:limit]]
    assert [event_view(e) for e in data] == expected
    closes = {e.fd: e for e in conn_events(evs, cap.c("ERX_EV_CONN_CLOSE"))}
    assert closes[egress[0]["fd"]].bytes_sent == sum(sizes)
    assert closes[ingress[0]["fd"]].bytes_received == sum(sizes)
