"""A peek (recv with MSG_PEEK) leaves the bytes queued: only the read that takes them is
captured, so a parser never sees the same bytes twice (nginx peeks at a TLS ClientHello
before its TLS library reads it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from .harness import Capture, data_events

pytestmark = pytest.mark.kernel

CHILD = textwrap.dedent(
    """
    import socket
    lst = socket.create_server(("127.0.0.1", 0))
    cli = socket.create_connection(lst.getsockname())
    srv, _ = lst.accept()
    cli.sendall(b"peek-then-read")
    assert srv.recv(4, socket.MSG_PEEK) == b"peek"
    srv.recvmsg(4, 0, socket.MSG_PEEK)
    assert srv.recv(100) == b"peek-then-read"
    print(srv.getsockname()[1])
    """
)


def test_peeked_bytes_are_captured_once(capture: Capture) -> None:
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    server_port = int(out)
    exit_kind = capture.c("ERX_EV_PROC_EXIT")
    evs = capture.events_until(proc.pid, lambda e: any(getattr(x, "kind", 0) == exit_kind for x in e))
    ingress = [e for e in data_events(evs, (capture.c("ERX_EV_DATA"),))
               if e.direction == capture.c("ERX_DIR_INGRESS") and e.tuple.local_port == server_port]
    assert [(e.syscall, e.payload) for e in ingress] == [(capture.c("ERX_SYS_RECVFROM"), b"peek-then-read")]
