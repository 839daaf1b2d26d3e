"""HttpSpanMapper keeps a span's parts per distinct transaction: what it hands out from the cache
must be what a mapper that never saw the transaction builds (same attributes, same order), each
span's attributes its own dict, and the cache bounded."""

from __future__ import annotations

import itertools
import socket

from receiver.model.endpoints import Tuple
from receiver.model.transaction import TrackedTransaction
from receiver.protocols.base import Direction
from receiver.protocols.http1 import Http1Session
from receiver.telemetry.http_semconv import _CACHED_TEXT_MAX, HttpSpanMapper


def _tx(server: bool, target: str = "/items/1?x=1", req_body: bytes = b"", status: int = 200,
        resp_body: bytes = b"ok", method: str = "POST", ua: str = "t"):
    s = Http1Session()
    req = (f"{method} {target} HTTP/1.1\r\nHost: shop:8080\r\nUser-Agent: {ua}\r\n"
           f"Content-Length: {len(req_body)}\r\n\r\n").encode() + req_body
    resp = f"HTTP/1.1 {status} X\r\nContent-Length: {len(resp_body)}\r\n\r\n".encode() + resp_body
    out = s.feed(Direction.INGRESS if server else Direction.EGRESS, req, 1_000)
    out += s.feed(Direction.EGRESS if server else Direction.INGRESS, resp, 2_000)
    assert len(out) == 1
    return out[0]


def _tracked(tx, local, remote, nat=None, tls=False) -> TrackedTransaction:
    tup = Tuple(socket.AF_INET, 6, local[0], local[1], remote[0], remote[1])
    return TrackedTransaction(tx, 10, 10, 1, tup, 0, nat_peer=nat, tls=tls)


def _variants():
    for server, body, status, resp_body, nat, tls, port in itertools.product(
        (True, False), (b"", b"abc", b"abcdefgh"), (200, 404, 503), (b"", b"ok", b"longer body"),
        (None, ("10.1.1.1", 8081)), (False, True), (40001, 40002),
    ):
        tx = _tx(server, req_body=body, status=status, resp_body=resp_body)
        if server:
            yield _tracked(tx, ("127.0.0.1", 8080), ("127.0.0.2", port), nat=nat, tls=tls)
        else:
            yield _tracked(tx, ("10.0.0.1", port), ("10.0.0.9", 80), nat=nat, tls=tls)


def test_cached_parts_equal_fresh_parts_in_content_and_order():
    cached = HttpSpanMapper()
    n = 0
    for tt in list(_variants()) * 2:  # the second pass is all hits
        got = cached.parts(tt)
        want = HttpSpanMapper()._parts(tt)
        assert got == want
        assert list(got[1].items()) == list(want[1].items())
        n += 1
    assert n == 2 * 2 * 3 * 3 * 3 * 2 * 2 * 2
    # body sizes and ephemeral ports are set per span, not keys: fewer entries than spans
    assert 0 < len(cached._spans) < n // 2


def test_each_span_gets_its_own_attributes():
    m = HttpSpanMapper()
    tt = _tracked(_tx(True), ("127.0.0.1", 8080), ("127.0.0.2", 40001))
    a = m.parts(tt)[1]
    a["peer.service"] = "changed downstream"
    a["client.port"] = 1
    b = m.parts(tt)[1]
    assert "peer.service" not in b and b["client.port"] == 40001
    assert a is not b


def test_the_cache_is_bounded_and_long_requests_are_not_kept():
    m = HttpSpanMapper(max_cached_spans=8)
    for i in range(50):
        tt = _tracked(_tx(True, target=f"/u/{i}"), ("127.0.0.1", 8080), ("127.0.0.2", 40001))
        assert m.parts(tt)[1]["url.path"] == f"/u/{i}"
        assert len(m._spans) <= 8
    m._spans.clear()
    long_target = "/" + "a" * _CACHED_TEXT_MAX
    tt = _tracked(_tx(True, target=long_target), ("127.0.0.1", 8080), ("127.0.0.2", 40001))
    assert m.parts(tt)[1]["url.path"] == long_target
    assert not m._spans
