"""Which reads of a server connection the tracker reports as requests (``on_server_ingress``,
thread-per-request linking): those of a connection whose protocol is known or being decided, not
bytes of no protocol — pika's wake-up socket pair (a loopback TCP connection it accept()s itself)
made the pika thread "serve" a request whose span never existed, and every publish of that
thread became a child of it."""

from __future__ import annotations

from receiver.bpf.abi import load_abi
from receiver.capture.events import DataEvent
from receiver.model.endpoints import Tuple
from receiver.protocols.base import Direction, Role
from tests.support.chain import ParsingTracker

ABI = load_abi()
READ, WRITE = ABI.const("ERX_SYS_READ"), ABI.const("ERX_SYS_WRITE")
T = Tuple(2, 1, "127.0.0.1", 8080, "127.0.0.1", 50000)


def ev(direction: Direction, payload: bytes, ts: int, conn_id: int, role: Role = Role.SERVER) -> DataEvent:
    return DataEvent(ABI.const("ERX_EV_DATA"), direction, role, READ if direction == Direction.INGRESS else WRITE,
                     100, 101, conn_id, 0, ts, ts, T, len(payload), 5, payload, 0)


def chain() -> tuple[ParsingTracker, list]:
    seen: list = []
    tr = ParsingTracker(tls_flag=ABI.const("ERX_FLAG_TLS"),
                        on_server_ingress=lambda pid, tid, conn_id, ts, **kw: seen.append((pid, tid, conn_id)))
    return tr, seen


def test_a_wakeup_byte_on_an_accepted_socket_is_not_a_request() -> None:
    tr, seen = chain()
    for i in range(5):
        assert tr.on_data(ev(Direction.INGRESS, b"X", i, conn_id=3)) == []
    assert seen == []


def test_a_request_of_a_known_protocol_is_reported() -> None:
    tr, seen = chain()
    tr.on_data(ev(Direction.INGRESS, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1, conn_id=4))
    assert seen == [(100, 101, 4)]
    (tt,) = tr.on_data(ev(Direction.EGRESS, b"HTTP/1.1 204 No Content\r\n\r\n", 2, conn_id=4))
    assert tt.transaction.role == Role.SERVER


def test_a_request_held_while_detection_says_maybe_is_reported() -> None:
    tr, seen = chain()
    tr.on_data(ev(Direction.INGRESS, b"get k\r\n", 1, conn_id=5))  # memcached or a Redis inline command
    assert tr.get(5).detect_held is not None
    assert seen == [(100, 101, 5)]


def test_a_client_connection_is_never_reported() -> None:
    tr, seen = chain()
    tr.on_data(ev(Direction.EGRESS, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1, conn_id=6, role=Role.CLIENT))
    tr.on_data(ev(Direction.INGRESS, b"HTTP/1.1 204 No Content\r\n\r\n", 2, conn_id=6, role=Role.CLIENT))
    assert seen == []


def test_a_read_after_the_response_is_the_connections_next_request() -> None:
    """Payload path, keep-alive: the linker is told the second request is a new one."""
    seen: list = []
    tr = ParsingTracker(tls_flag=ABI.const("ERX_FLAG_TLS"),
                        on_server_ingress=lambda pid, tid, conn_id, ts, new_request: seen.append((ts, new_request)))
    tr.on_data(ev(Direction.INGRESS, b"GET /a HTTP/1.1\r\nHost: x\r\n", 1, conn_id=4))
    tr.on_data(ev(Direction.INGRESS, b"\r\n", 2, conn_id=4))
    tr.on_data(ev(Direction.EGRESS, b"HTTP/1.1 204 No Content\r\n\r\n", 3, conn_id=4))
    tr.on_data(ev(Direction.INGRESS, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n", 4, conn_id=4))
    assert seen == [(1, False), (2, False), (4, True)]
