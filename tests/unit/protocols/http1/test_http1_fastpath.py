"""The hot path of the HTTP/1.x parser: the fast head parse, heads kept raw until read, and
heads remembered per direction.  Each must agree with the general path on every input."""

from __future__ import annotations

import copy
import pickle

import pytest

from receiver.protocols.base import Direction, ParseState
from receiver.protocols.http1 import Http1Request, Http1Response, Http1Session
from receiver.protocols.http1.parse import REQUEST, RESPONSE, parse_head
from receiver.protocols.http1.types import fields_of_raw

OUT, IN = Direction.EGRESS, Direction.INGRESS
MAX = 64 * 1024

HEADS = [
    b"GET /a?b=c HTTP/1.1\r\nHost: example:8080\r\nUser-Agent:  curl/8 \r\nAccept: */*\r\n\r\n",
    b"POST /up HTTP/1.0\r\ncontent-length: 12\r\nX: \xe9t\xe9\r\n\r\n",
    b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nCONTENT-LENGTH: 615\r\nETag: \"x\"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding:  Chunked \r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.0 404 Not  Found\r\nTransfer-Encoding: gzip\r\n\r\n",  # general path: other coding
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",  # general path: repeated
    b"HTTP/1.1 200 OK\nContent-Length: 1\n\n",  # general path: bare LF
    b"GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n",  # general path: obsolete folding
]
INVALID = [
    b"GET / HTTP/1.1\r\nBad Name: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: x\ry\r\n\r\n",  # a CR inside a field line
    b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
]


@pytest.mark.parametrize("data", HEADS)
def test_lazy_heads_agree_with_parsed_heads(data: bytes) -> None:
    eager = parse_head(data, 0, len(data), None, MAX)
    lazy = parse_head(data, 0, len(data), None, MAX, True)
    assert eager[0] is lazy[0] is ParseState.SUCCESS and eager[2] == lazy[2]
    headers = lazy[1].headers
    assert isinstance(eager[1].headers, tuple)
    assert (fields_of_raw(headers) if isinstance(headers, bytes) else headers) == eager[1].headers
    assert eager[1]._replace(headers=()) == lazy[1]._replace(headers=())


@pytest.mark.parametrize("data", INVALID)
def test_invalid_heads_stay_invalid(data: bytes) -> None:
    for lazy in (False, True):
        assert parse_head(data, 0, len(data), None, MAX, lazy)[0] is ParseState.INVALID


def test_kind_still_restricts_the_fast_path() -> None:
    req, resp = HEADS[0], HEADS[3]
    assert parse_head(req, 0, len(req), RESPONSE, MAX, True)[0] is ParseState.INVALID
    assert parse_head(resp, 0, len(resp), REQUEST, MAX, True)[0] is ParseState.INVALID


def test_raw_headers_read_like_parsed_ones() -> None:
    raw = b"Host: a:1\r\nUser-Agent:  x y \r\nhost: b\r\nX-Empty:\r\n"
    lazy = Http1Request("GET", "/", "1.1", raw, 0, 10, 10)
    parsed = Http1Request("GET", "/", "1.1", fields_of_raw(raw), 0, 10, 10)
    for name in ("host", "HOST", "user-agent", "x-empty", "missing", "a:b", "", "Ho st", "\u212aey"):
        assert lazy.header(name) == parsed.header(name), name
    assert lazy.header_values("host") == ("a:1", "b")
    assert lazy.headers == (("Host", "a:1"), ("User-Agent", "x y"), ("host", "b"), ("X-Empty", ""))
    assert lazy == parsed and hash(lazy) == hash(parsed) and repr(lazy) == repr(parsed)
    assert Http1Request("GET", "/", "1.1", raw, 0, 10, 10) == lazy  # read or not


def test_messages_are_immutable_values() -> None:
    resp = Http1Response("1.1", 200, "OK", b"A: 1\r\n", 2, 20, 22, interim_status_codes=(100,))
    with pytest.raises(AttributeError):
        resp.status_code = 500  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(resp)) == resp and copy.deepcopy(resp) == resp
    assert resp != Http1Response("1.1", 201, "OK", b"A: 1\r\n", 2, 20, 22, interim_status_codes=(100,))
    assert resp.interim_status_codes == (100,) and resp.close_delimited is False
    assert repr(resp).startswith("Http1Response(version='1.1', status_code=200, reason='OK', headers=(('A', '1'),)")


def _pairs(session: Http1Session, request: bytes, response: bytes, n: int, server: bool = True) -> list:
    req_dir, resp_dir = (IN, OUT) if server else (OUT, IN)
    out = []
    for i in range(n):
        out += session.feed(req_dir, request, 10 * i)
        out += session.feed(resp_dir, response, 10 * i + 5)
    return out


def test_repeated_heads_give_the_same_transactions() -> None:
    request = HEADS[0]
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    txs = _pairs(Http1Session(), request, response, 4)
    assert len(txs) == 4
    first = txs[0]
    for i, t in enumerate(txs):
        assert (t.start_ns, t.end_ns) == (10 * i, 10 * i + 5)
        assert t.request == first.request and t.response == first.response
        assert t.request.header("user-agent") == "curl/8"
        assert t.request_size == len(request) and t.response_size == len(response)


def test_a_remembered_head_split_across_feeds_or_pipelined() -> None:
    request = HEADS[0]
    session = Http1Session()
    _pairs(session, request, b"HTTP/1.1 204 No Content\r\n\r\n", 1)
    # The same head again, cut in two, then twice in one feed.
    assert session.feed(IN, request[:10], 100) == []
    session.feed(IN, request[10:] + request + request, 101)
    txs = session.feed(OUT, b"HTTP/1.1 204 No Content\r\n\r\n" * 3, 102)
    assert [t.start_ns for t in txs] == [100, 101, 101]
    assert session.parse_errors == 0 and session.buffered_bytes == 0


def test_a_body_not_all_here_is_read_on() -> None:
    session = Http1Session()
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
    for i in range(2):
        session.feed(IN, HEADS[0], 10 * i)
        assert session.feed(OUT, head + b"01234", 10 * i + 1) == []
        (t,) = session.feed(OUT, b"56789", 10 * i + 2)
        assert t.response.body_size == 10 and t.end_ns == 10 * i + 2
