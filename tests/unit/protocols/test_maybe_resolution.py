"""First bytes that only *might* be a protocol (a ``MAYBE`` verdict: ``get k`` is a memcached
command and a Redis inline command alike) are held until the other direction speaks; its
verdict decides.  Through the tracker and the protocol stage as the agent wires them.

A Redis client typing inline commands used to become memcached: Redis's value replies (``$-1``,
``$5``, ``:1``) said nothing, and the first candidate in detection order (memcached) was taken."""

from __future__ import annotations

import pytest

from receiver.bpf.abi import load_abi
from receiver.capture.events import ConnEvent, DataEvent
from receiver.model.endpoints import Tuple
from receiver.protocols.base import Direction, Role
from tests.support.chain import ParsingTracker

ABI = load_abi()
READ, WRITE = ABI.const("ERX_SYS_READ"), ABI.const("ERX_SYS_WRITE")
T = Tuple(2, 1, "127.0.0.1", 40000, "127.0.0.1", 7000)  # no protocol's default port
E, I = Direction.EGRESS, Direction.INGRESS  # noqa: E741


def ev(direction: Direction, payload: bytes, ts: int) -> DataEvent:
    return DataEvent(ABI.const("ERX_EV_DATA"), direction, Role.CLIENT, WRITE if direction == E else READ,
                     100, 100, 9, 0, ts, ts, T, len(payload), 5, payload, 0)


def conversation(*exchanges: tuple[bytes, bytes]) -> list:
    tr = ParsingTracker(tls_flag=ABI.const("ERX_FLAG_TLS"))
    out = []
    for i, (request, reply) in enumerate(exchanges):
        out += tr.on_data(ev(E, request, 10 * i))
        out += tr.on_data(ev(I, reply, 10 * i + 5))
    return [(t.transaction.protocol, t.transaction.start_ns, t.transaction.end_ns) for t in out]


@pytest.mark.parametrize("reply", [b"$-1\r\n", b"$5\r\nhello\r\n", b":1\r\n"])
def test_a_redis_reply_makes_an_inline_command_redis(reply: bytes) -> None:
    assert conversation((b"get k\r\n", reply), (b"incr n\r\n", b":2\r\n")) == [("redis", 0, 5), ("redis", 10, 15)]


@pytest.mark.parametrize(("request_", "reply"), [
    (b"get k\r\n", b"END\r\n"),
    (b"get k\r\n", b"VALUE k 0 1\r\nx\r\nEND\r\n"),
    (b"incr n\r\n", b"NOT_FOUND\r\n"),
    (b"incr n\r\n", b"2\r\n"),  # says nothing: the first candidate (memcached) it is
    (b"touch k 10\r\n", b"TOUCHED\r\n"),
])
def test_a_memcached_reply_makes_it_memcached(request_: bytes, reply: bytes) -> None:
    assert conversation((request_, reply), (b"set a 0 0 1\r\nx\r\n", b"STORED\r\n")) == [
        ("memcached", 0, 5), ("memcached", 10, 15)]


def test_a_connection_closed_while_its_first_bytes_are_held_still_gives_them_to_a_session() -> None:
    """Closed (or idle) before the other side spoke: the first candidate parses what was held —
    the tracker handed only connections with a session to the stage's close."""
    tr = ParsingTracker(tls_flag=ABI.const("ERX_FLAG_TLS"))
    assert tr.on_data(ev(E, b"get k\r\n", 10)) == []
    close = ConnEvent(ABI.const("ERX_EV_CONN_CLOSE"), Role.CLIENT, ABI.const("ERX_SYS_CLOSE"), 100, 100, 9, 0, 50, 50,
                      T, 3, 7, 0)
    [tt] = tr.on_conn(close, True)
    assert (tt.transaction.protocol, tt.transaction.request.command, tt.transaction.response) == ("memcached", "get",
                                                                                                 None)
    tr = ParsingTracker(tls_flag=ABI.const("ERX_FLAG_TLS"))
    tr.on_data(ev(E, b"get k\r\n", 10))
    [tt] = tr.expire(10**15)
    assert tt.transaction.request.command == "get"
