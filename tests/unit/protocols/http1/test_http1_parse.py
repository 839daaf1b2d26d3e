"""Unit tests of the framing layer (parse.py), the stitcher and detect()."""

from __future__ import annotations

import pytest
from http1_support import FIXTURE_NAMES, load_fixture

from receiver.protocols.base import ParseState, Role
from receiver.protocols.http1 import detect
from receiver.protocols.http1.parse import (
    REQUEST,
    RESPONSE,
    BodyFraming,
    MessageHead,
    find_message_start,
    parse_head,
    response_body_framing,
)
from receiver.protocols.http1.body import BodyReader
from receiver.protocols.http1.stitch import Http1Stitcher
from receiver.protocols.http1.types import Http1Request, Http1Response

MAX = 64 * 1024


def head_of(data: bytes, kind=None) -> MessageHead:
    state, head, used = parse_head(data, 0, len(data), kind, MAX)
    assert state is ParseState.SUCCESS
    assert head is not None
    assert used == head.head_size
    return head


# -- parse_head ------------------------------------------------------------------------------


def test_parse_request_head() -> None:
    data = b"PATCH /p?q=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\nbody follows"
    head = head_of(data)
    assert head.is_request and head.method == "PATCH" and head.target == "/p?q=1" and head.version == "1.1"
    assert head.headers == (("Host", "h"), ("Content-Length", "12"))
    assert head.content_length == 12 and not head.chunked
    assert head.head_size == data.index(b"body")


def test_parse_response_head() -> None:
    head = head_of(b"HTTP/1.0 404 Not  Found \r\nTransfer-Encoding: gzip\r\n\r\n")
    assert not head.is_request and head.status_code == 404 and head.reason == "Not  Found"
    assert head.version == "1.0" and head.other_coding and not head.chunked


@pytest.mark.parametrize("line", [b"HTTP/1.1 200\r\n\r\n", b"HTTP/1.1 200 \r\n\r\n"])
def test_empty_reason(line: bytes) -> None:
    assert head_of(line).reason == ""


def test_parse_head_at_an_offset_in_a_bytearray() -> None:
    buf = bytearray(b"xxxxGET / HTTP/1.1\r\n\r\nyyyy")
    state, head, used = parse_head(buf, 4, len(buf) - 2, None, MAX)
    assert state is ParseState.SUCCESS and used == 18 and head.target == "/"


def test_every_incomplete_prefix_needs_more_data() -> None:
    data = b"POST /upload HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n"
    for n in range(1, len(data)):
        state, _, used = parse_head(data[:n], 0, n, None, MAX)
        assert (state, used) == (ParseState.NEEDS_MORE_DATA, 0), data[:n]
    assert head_of(data).headers[-1] == ("X-Folded", "a b")


def test_kind_restricts_what_is_accepted() -> None:
    request = b"GET / HTTP/1.1\r\n\r\n"
    status = b"HTTP/1.1 200 OK\r\n\r\n"
    assert parse_head(request, 0, len(request), RESPONSE, MAX)[0] is ParseState.INVALID
    assert parse_head(status, 0, len(status), REQUEST, MAX)[0] is ParseState.INVALID
    assert parse_head(status[:8], 0, 8, REQUEST, MAX)[0] is ParseState.INVALID


def test_leading_empty_lines_are_ignored() -> None:
    data = b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"
    assert parse_head(data, 0, len(data), None, MAX)[::2] == (ParseState.IGNORED, 4)


@pytest.mark.parametrize(
    "data",
    [
        b"\x16\x03\x01\x00",  # TLS
        b"GET/ HTTP/1.1",
        b"get / HTTP/1.1\r\nHost: x\r\n: no name\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\n folded-first: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"HTTP/1.1 2000 Big\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
    ],
)
def test_invalid_heads(data: bytes) -> None:
    assert parse_head(data, 0, len(data), None, MAX)[0] is ParseState.INVALID


def test_repeated_equal_content_lengths_are_one() -> None:
    assert head_of(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n\r\n").content_length == 5


def test_head_larger_than_max_is_invalid() -> None:
    data = b"GET / HTTP/1.1\r\nX: " + b"v" * 400
    assert parse_head(data, 0, len(data), None, 512)[0] is ParseState.NEEDS_MORE_DATA
    data += b"v" * 100
    assert parse_head(data, 0, len(data), None, 512)[0] is ParseState.INVALID


# -- framing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "method", "framing"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "GET", (BodyFraming.LENGTH, 3)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", (BodyFraming.NONE, 0)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "HEAD", (BodyFraming.NONE, 0)),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", "GET", (BodyFraming.NONE, 0)),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n", "GET", (BodyFraming.NONE, 0)),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "GET", (BodyFraming.TUNNEL, 0)),
        (b"HTTP/1.1 200 OK\r\n\r\n", "CONNECT", (BodyFraming.TUNNEL, 0)),
        (b"HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\n", "CONNECT", (BodyFraming.LENGTH, 2)),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", "GET", (BodyFraming.CHUNKED, 0)),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "GET", (BodyFraming.UNTIL_CLOSE, 0)),
        (b"HTTP/1.1 200 OK\r\n\r\n", "GET", (BodyFraming.UNTIL_CLOSE, 0)),
        (b"HTTP/1.1 200 OK\r\n\r\n", None, (BodyFraming.UNTIL_CLOSE, 0)),
    ],
)
def test_response_body_framing(response: bytes, method: str | None, framing: tuple) -> None:
    assert response_body_framing(head_of(response), method) == framing


def test_body_reader_chunked_in_pieces() -> None:
    body = b"4;a=b\r\nwiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: 1\r\n\r\nNEXT"
    reader = BodyReader(MAX)
    reader.reset(BodyFraming.CHUNKED, 0)
    buf = bytearray()
    pos = 0
    for byte in body:
        buf.append(byte)
        state, pos = reader.consume(buf, pos, len(buf))
        if state is ParseState.SUCCESS:
            break
        assert state is ParseState.NEEDS_MORE_DATA
    assert bytes(buf[pos:]) == b"" and buf.endswith(b"\r\n\r\n")
    assert reader.body_size == 4 + 5 + 14 and reader.wire_size == len(body) - 4
    assert reader.trailers == (("T", "1"),)


def test_body_reader_length_and_gaps() -> None:
    reader = BodyReader(MAX)
    reader.reset(BodyFraming.LENGTH, 100)
    assert reader.consume(b"x" * 30, 0, 30) == (ParseState.NEEDS_MORE_DATA, 30)
    assert reader.skip(50) == (ParseState.NEEDS_MORE_DATA, 0)
    assert reader.skip(25) == (ParseState.SUCCESS, 5)
    assert reader.body_size == reader.wire_size == 100


def test_body_reader_truncate() -> None:
    reader = BodyReader(MAX)
    reader.reset(BodyFraming.LENGTH, 100)
    reader.consume(b"x" * 30, 0, 30)
    reader.truncate()
    assert reader.body_size == 30


# -- find_message_start ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "at_line_start", "expected"),
    [
        (b"GET / HTTP/1.1\r\n", True, (ParseState.SUCCESS, 0)),
        (b"GET / HTTP/1.1\r\n", False, (ParseState.INVALID, 16)),
        (b"abc\r\nPOST /x HTTP/1.0\r\n", False, (ParseState.SUCCESS, 5)),
        (b"abc\nHTTP/1.1 200 OK\r\n", False, (ParseState.SUCCESS, 4)),
        (b"abc HTTP/1.1 200 OK\r\n", True, (ParseState.INVALID, 21)),
        (b"x\nGET /x HTT", False, (ParseState.NEEDS_MORE_DATA, 2)),
        (b"x\nGET /x HTTP/1.1", False, (ParseState.NEEDS_MORE_DATA, 2)),
        (b"x\nHTTP/1.1 2", False, (ParseState.NEEDS_MORE_DATA, 2)),
        (b"x\nHTTP/1.1 abc\r\nGET / HTTP/1.1\r\n", False, (ParseState.SUCCESS, 16)),
        (b"\x00\xff binary", True, (ParseState.INVALID, 9)),
    ],
)
def test_find_message_start(data: bytes, at_line_start: bool, expected: tuple) -> None:
    assert find_message_start(data, 0, len(data), at_line_start, None, 8192) == expected


def test_find_message_start_respects_kind() -> None:
    data = b"x\nHTTP/1.1 200 OK\r\nGET / HTTP/1.1\r\n"
    assert find_message_start(data, 0, len(data), False, REQUEST, 8192) == (ParseState.SUCCESS, 19)
    assert find_message_start(data, 0, len(data), False, RESPONSE, 8192) == (ParseState.SUCCESS, 2)


# -- stitcher --------------------------------------------------------------------------------


def _request(target: str) -> Http1Request:
    return Http1Request("GET", target, "1.1", (), 0, 10, 10)


def _response(status: int) -> Http1Response:
    return Http1Response("1.1", status, "", (), 0, 10, 10)


def test_stitcher_emits_in_request_order() -> None:
    stitcher = Http1Stitcher()
    stitcher.role = Role.SERVER
    out: list = []
    first = stitcher.begin_request("GET", 1)
    second = stitcher.begin_request("GET", 2)
    for exchange in (first, second):
        assert stitcher.next_unanswered(5, False) is exchange
        stitcher.answer(exchange)
    stitcher.complete_request(second, _request("/2"), out)
    stitcher.complete_response(second, _response(200), 6, out)
    assert out == []  # waits for the first exchange
    stitcher.complete_response(first, _response(201), 7, out)
    stitcher.complete_request(first, _request("/1"), out)
    assert [(t.request.target, t.response.status_code, t.role) for t in out] == [
        ("/1", 201, Role.SERVER),
        ("/2", 200, Role.SERVER),
    ]
    assert stitcher.pending == 0


def test_stitcher_bound_drops_oldest() -> None:
    stitcher = Http1Stitcher(max_pending=3)
    exchanges = [stitcher.begin_request("GET", i) for i in range(5)]
    assert stitcher.pending == 3 and stitcher.dropped_requests == 2
    assert stitcher.next_unanswered(10, False) is exchanges[2]


# -- detect ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PROPFIND /dav HTTP/1.1\r\n",
        b"M-SEARCH * HTTP/1.1\r\n",
        b"POST /a/very/long/path/cut/by/the/captu",
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.0 404",
        b"GET /x HTTP/1.1\n",
    ],
)
def test_detect_accepts(data: bytes) -> None:
    assert detect(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"GET",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x16\x03\x01\x02\x00",
        b"*3\r\n$3\r\nSET\r\n",
        b"HTTP/2 200",
        b"HTTP/1.1 20",
        b"FOO /x HTTP/1",
        b"GET  / HTTP/1.1\r\n",
        b"hello world\r\n",
        b"SSH-2.0-OpenSSH_9.0\r\n",
    ],
)
def test_detect_rejects(data: bytes) -> None:
    assert not detect(data)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_detect_recognises_both_directions_of_every_fixture(name: str) -> None:
    fixture = load_fixture(name)
    first = {}
    for side, data in fixture.chunks:
        first.setdefault(side, data)
    assert detect(first["c2s"]) and detect(first["s2c"])


def test_package_docstring_example() -> None:
    import doctest

    import receiver.protocols.http1 as package

    result = doctest.testmod(package)
    assert result.attempted > 0 and result.failed == 0
