"""What must not be captured: non-socket fds, logs when capture_logs is off, the agent itself."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from .harness import Capture, data_events, run_child

pytestmark = pytest.mark.kernel


def _all_data_kinds(cap: Capture) -> tuple[int, ...]:
    return tuple(cap.c(k) for k in ("ERX_EV_DATA", "ERX_EV_LOG", "ERX_EV_SENDFILE"))


def test_non_socket_fds_and_logs_off(capture: Capture) -> None:
    """A regular file, a pipe, stdout and stderr (pipes) with capture_logs off: only the
    child's exec and exit are recorded."""
    assert capture.loader.knobs.capture_logs is False
    child = run_child("nonsocket")
    assert child.ops  # it did write to stdout/stderr
    evs = capture.events_of(child)
    assert data_events(evs, _all_data_kinds(capture)) == []
    assert [e.kind for e in evs] == [capture.c("ERX_EV_PROC_EXEC"), capture.c("ERX_EV_PROC_EXIT")]


def _agent_traffic() -> None:
    """Socket traffic of this (the agent's) process: TCP over loopback and a unix socketpair."""
    lst = socket.create_server(("127.0.0.1", 0))
    with socket.create_connection(lst.getsockname()) as cli:
        srv, _ = lst.accept()
        with srv:
            cli.sendall(b"agent request")
            assert srv.recv(100) == b"agent request"
            srv.sendmsg([b"agent ", b"response"])
            assert cli.recv(100) == b"agent response"
    lst.close()
    a, b = socket.socketpair()
    with a, b:
        os.write(a.fileno(), b"agent unix")
        assert os.read(b.fileno(), 100) == b"agent unix"


def test_agent_own_traffic_is_not_captured(capture: Capture) -> None:
    """The agent's pid (all its threads) is filtered in the kernel: none of its socket
    syscalls, connects, accepts or closes become records."""
    cap = capture
    me = os.getpid()
    cap.watch(me)
    _agent_traffic()
    t = threading.Thread(target=_agent_traffic)
    t.start()
    t.join()
    # A child's exit is submitted after everything above: once it is read, so is all of that.
    cap.events_of(run_child("idle"))
    assert cap.events(me) == []
