"""HttpSpanMapper shares one cached attribute set between the connections of two places; the
ephemeral port of each connection is its own (a new connection per request)."""

from __future__ import annotations

import socket

from receiver.model.endpoints import Tuple
from receiver.model.transaction import TrackedTransaction
from receiver.protocols.base import Direction
from receiver.protocols.http1 import Http1Session
from receiver.telemetry.http_semconv import HttpSpanMapper

_REQ = b"GET /items/1?x=1 HTTP/1.1\r\nHost: shop:8080\r\nUser-Agent: t\r\n\r\n"
_RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _tx(server: bool):
    s = Http1Session()
    out = s.feed(Direction.INGRESS if server else Direction.EGRESS, _REQ, 1_000)
    out += s.feed(Direction.EGRESS if server else Direction.INGRESS, _RESP, 2_000)
    assert len(out) == 1
    return out[0]


def _tracked(tx, local: tuple[str, int], remote: tuple[str, int], nat=None) -> TrackedTransaction:
    tup = Tuple(socket.AF_INET, 6, local[0], local[1], remote[0], remote[1])
    return TrackedTransaction(tx, 10, 10, 1, tup, 0, nat_peer=nat)


def test_server_spans_of_new_connections_carry_their_own_client_port():
    m = HttpSpanMapper()
    tx = _tx(server=True)
    for port in (40001, 40002, 40003):
        _, attrs, *_ = m.parts(_tracked(tx, ("127.0.0.1", 8080), ("127.0.0.2", port)))
        assert attrs["client.port"] == attrs["network.peer.port"] == port
        assert attrs["client.address"] == attrs["network.peer.address"] == "127.0.0.2"
        assert attrs["server.address"] == "shop" and attrs["server.port"] == 8080
        assert attrs["network.local.port"] == 8080
    assert len(m._bases) == 1  # one entry for the three connections


def test_client_spans_of_new_connections_carry_their_own_local_port():
    m = HttpSpanMapper()
    tx = _tx(server=False)
    seen = []
    for port in (50001, 50002):
        _, attrs, *_ = m.parts(_tracked(tx, ("10.0.0.1", port), ("10.0.0.9", 80), nat=("10.1.1.1", 8081)))
        assert attrs["network.local.port"] == port
        # the real backend a DNAT'd destination reached stays the connection's peer
        assert (attrs["network.peer.address"], attrs["network.peer.port"]) == ("10.1.1.1", 8081)
        assert "client.port" not in attrs
        seen.append(attrs)
    assert seen[0].keys() == seen[1].keys()  # same attributes, in the same order
    assert len(m._bases) == 1


def test_a_different_server_port_is_a_different_entry():
    m = HttpSpanMapper()
    tx = _tx(server=True)
    a = m.parts(_tracked(tx, ("127.0.0.1", 8080), ("127.0.0.2", 40001)))[1]
    b = m.parts(_tracked(tx, ("127.0.0.1", 9090), ("127.0.0.2", 40001)))[1]
    assert a["network.local.port"] == 8080 and b["network.local.port"] == 9090
