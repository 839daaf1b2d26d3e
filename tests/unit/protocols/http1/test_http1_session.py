"""Hand-written edge cases for Http1Session, one per item of the protocol's spec."""

from __future__ import annotations

import pytest

from receiver.protocols.base import Direction, ProtocolSession, Role
from receiver.protocols.http1 import Http1Request, Http1Response, Http1Session

OUT = Direction.EGRESS  # the traced process sent it
IN = Direction.INGRESS  # the traced process received it


def request(method: str = "GET", target: str = "/", body: bytes = b"", headers: str = "") -> bytes:
    length = f"Content-Length: {len(body)}\r\n" if body else ""
    return f"{method} {target} HTTP/1.1\r\nHost: example\r\n{headers}{length}\r\n".encode() + body


def response(status: int = 200, body: bytes = b"", headers: str = "", length: bool = True) -> bytes:
    reason = {200: "OK", 100: "Continue", 204: "No Content", 304: "Not Modified", 404: "Not Found"}.get(status, "X")
    cl = f"Content-Length: {len(body)}\r\n" if length else ""
    return f"HTTP/1.1 {status} {reason}\r\n{headers}{cl}\r\n".encode() + body


CHUNKED_BODY = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Sum: 12\r\n\r\n"


def test_satisfies_the_protocol_session_contract() -> None:
    session: ProtocolSession = Http1Session()
    assert session.protocol == "http1"
    assert session.parse_errors == 0


# -- basics, roles, timestamps, sizes --------------------------------------------------------


def test_client_side_get() -> None:
    session = Http1Session()
    req = request(target="/a?b=c", headers="Accept: */*\r\n")
    assert session.feed(OUT, req, 10) == []
    (t,) = session.feed(IN, response(body=b"hello"), 20)

    assert t.protocol == "http1" and t.role is Role.CLIENT and session.role is Role.CLIENT
    assert t.request == Http1Request(
        method="GET",
        target="/a?b=c",
        version="1.1",
        headers=(("Host", "example"), ("Accept", "*/*")),
        body_size=0,
        head_size=len(req),
        wire_size=len(req),
    )
    assert t.response.status_code == 200 and t.response.reason == "OK" and t.response.body_size == 5
    assert (t.start_ns, t.end_ns) == (10, 20)
    assert (t.request_size, t.response_size) == (len(req), len(response(body=b"hello")))
    assert session.parse_errors == 0


def test_server_side_role() -> None:
    session = Http1Session()
    session.feed(IN, request(), 1)
    (t,) = session.feed(OUT, response(), 2)
    assert t.role is Role.SERVER and session.role is Role.SERVER


def test_timestamps_first_request_byte_and_last_response_byte() -> None:
    session = Http1Session()
    req = request("POST", body=b"0123456789")
    session.feed(OUT, req[:5], 100)
    session.feed(OUT, req[5:30], 101)
    session.feed(OUT, req[30:], 102)
    resp = response(body=b"x" * 50)
    assert session.feed(IN, resp[:20], 200) == []
    assert session.feed(IN, resp[20:60], 201) == []
    (t,) = session.feed(IN, resp[60:], 202)
    assert (t.start_ns, t.end_ns) == (100, 202)


def test_headers_repeated_case_insensitive_wire_order() -> None:
    session = Http1Session()
    session.feed(OUT, request(headers="set-COOKIE: a=1\r\nX-Multi: 1\r\nx-multi:  2 \r\nEmpty:\r\n"), 1)
    (t,) = session.feed(IN, response(headers="Set-Cookie: s=1\r\nSet-Cookie: s=2\r\n"), 2)
    req = t.request
    assert req.headers == (("Host", "example"), ("set-COOKIE", "a=1"), ("X-Multi", "1"), ("x-multi", "2"), ("Empty", ""))
    assert req.header("X-MULTI") == "1"
    assert req.header_values("x-multi") == ("1", "2")
    assert req.header("missing") is None
    assert t.response.header_values("set-cookie") == ("s=1", "s=2")
    assert t.response.header("content-length") == "0"


def test_obsolete_line_folding_lf_only_and_leading_empty_lines() -> None:
    session = Http1Session()
    session.feed(OUT, b"\r\n\r\nGET /f HTTP/1.1\nHost: a\nX-Folded: one\n  two\n\n", 1)
    (t,) = session.feed(IN, b"HTTP/1.0 200 OK\nContent-Length: 2\n\nok", 2)
    assert t.request.header("x-folded") == "one two"
    assert t.request.head_size == len(b"GET /f HTTP/1.1\nHost: a\nX-Folded: one\n  two\n\n")
    assert t.response.version == "1.0" and t.response.body_size == 2
    assert session.parse_errors == 0


# -- keep-alive and pipelining ---------------------------------------------------------------


def test_keep_alive_many_transactions() -> None:
    session = Http1Session()
    got = []
    for i in range(50):
        session.feed(OUT, request(target=f"/{i}"), 2 * i)
        got += session.feed(IN, response(body=b"b" * i), 2 * i + 1)
    assert [t.request.target for t in got] == [f"/{i}" for i in range(50)]
    assert [t.response.body_size for t in got] == list(range(50))
    assert session.pending_requests == 0 and session.parse_errors == 0


def test_pipelining_pairs_in_order() -> None:
    session = Http1Session()
    reqs = request(target="/1") + request("POST", "/2", body=b"abc") + request("HEAD", "/3") + request(target="/4")
    assert session.feed(OUT, reqs, 1) == []
    assert session.pending_requests == 4
    resps = (
        response(body=b"one")
        + response(404, body=b"nope")
        + response(headers="Content-Length: 999\r\n", length=False)  # HEAD: no body
        + response(body=b"four")
    )
    got = session.feed(IN, resps, 2)
    assert [(t.request.target, t.response.status_code, t.response.body_size) for t in got] == [
        ("/1", 200, 3),
        ("/2", 404, 4),
        ("/3", 200, 0),
        ("/4", 200, 4),
    ]
    assert got[1].request.body_size == 3
    assert session.parse_errors == 0


def test_pipelined_responses_split_anywhere() -> None:
    reqs = request(target="/1") + request(target="/2") + request(target="/3")
    chunked = response(body=CHUNKED_BODY, headers="Transfer-Encoding: chunked\r\n", length=False)
    resps = response(body=b"a" * 10) + chunked + response()
    for cut in range(1, len(resps)):
        session = Http1Session()
        session.feed(OUT, reqs, 1)
        got = session.feed(IN, resps[:cut], 2) + session.feed(IN, resps[cut:], 3)
        assert [t.request.target for t in got] == ["/1", "/2", "/3"], cut
        assert [t.response.body_size for t in got] == [10, 12, 0]
        assert session.parse_errors == 0


# -- bodies ----------------------------------------------------------------------------------


def test_chunked_response_with_extensions_and_trailers() -> None:
    session = Http1Session()
    session.feed(OUT, request(), 1)
    head = response(headers="Transfer-Encoding: chunked\r\n", length=False)
    (t,) = session.feed(IN, head + CHUNKED_BODY, 2)
    r = t.response
    assert r.chunked and r.body_size == 12 and r.trailers == (("X-Sum", "12"),)
    assert r.wire_size == len(head) + len(CHUNKED_BODY) == t.response_size


def test_chunked_byte_by_byte() -> None:
    session = Http1Session()
    session.feed(OUT, request(), 1)
    wire = response(headers="Transfer-Encoding: gzip, chunked\r\n", length=False) + CHUNKED_BODY
    got = []
    for i in range(len(wire)):
        got += session.feed(IN, wire[i : i + 1], 10 + i)
    (t,) = got
    assert t.response.body_size == 12 and t.end_ns == 10 + len(wire) - 1
    assert session.parse_errors == 0


def test_chunked_request_body() -> None:
    session = Http1Session()
    body = b"3\r\nabc\r\n0\r\n\r\n"
    session.feed(IN, request("POST", "/up", headers="Transfer-Encoding: chunked\r\n") + body, 1)
    (t,) = session.feed(OUT, response(201), 2)
    assert t.request.chunked and t.request.body_size == 3 and t.role is Role.SERVER


def test_transfer_encoding_overrides_content_length() -> None:
    session = Http1Session()
    session.feed(OUT, request(), 1)
    (t,) = session.feed(IN, response(body=CHUNKED_BODY, headers="Transfer-Encoding: chunked\r\n"), 2)
    assert t.response.chunked and t.response.body_size == 12


def test_head_response_has_no_body() -> None:
    session = Http1Session()
    session.feed(OUT, request("HEAD", "/big") + request(target="/next"), 1)
    got = session.feed(IN, response(headers="Content-Length: 100000\r\n", length=False) + response(body=b"ok"), 2)
    assert [(t.request.method, t.response.body_size) for t in got] == [("HEAD", 0), ("GET", 2)]
    assert got[0].response.header("content-length") == "100000"


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses_ignore_content_length(status: int) -> None:
    session = Http1Session()
    session.feed(OUT, request() + request(target="/2"), 1)
    got = session.feed(IN, response(status, headers="Content-Length: 1234\r\n", length=False) + response(body=b"x"), 2)
    assert [(t.response.status_code, t.response.body_size) for t in got] == [(status, 0), (200, 1)]


def test_close_delimited_response_flushed_by_close() -> None:
    session = Http1Session()
    session.feed(OUT, request(), 1)
    head = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
    assert session.feed(IN, head + b"part one, ", 2) == []
    assert session.feed(IN, b"HTTP/1.1 200 OK looks like a status line but is body\r\n", 3) == []
    assert session.feed(IN, b"", 4, total_len=1000) == []  # uncaptured body bytes count too
    (t,) = session.close(50)
    r = t.response
    body = len(b"part one, ") + len(b"HTTP/1.1 200 OK looks like a status line but is body\r\n") + 1000
    assert r.close_delimited and not r.truncated and r.body_size == body
    assert r.wire_size == len(head) + body and t.end_ns == 50
    assert session.parse_errors == 0


def test_http10_response_without_length_is_close_delimited() -> None:
    session = Http1Session()
    session.feed(IN, b"GET / HTTP/1.0\r\n\r\n", 1)
    session.feed(OUT, b"HTTP/1.0 200 OK\r\n\r\nbody", 2)
    (t,) = session.close(3)
    assert t.request.version == "1.0" and t.response.close_delimited and t.response.body_size == 4


# -- 1xx, Expect: 100-continue, upgrades -----------------------------------------------------


def test_expect_100_continue() -> None:
    session = Http1Session()
    head = request("PUT", "/f", headers="Expect: 100-continue\r\nContent-Length: 4\r\n")
    assert session.feed(OUT, head, 1) == []
    assert session.feed(IN, response(100, length=False), 2) == []  # interim: never paired
    assert session.interim_responses == 1
    assert session.feed(OUT, b"data", 3) == []
    (t,) = session.feed(IN, response(201), 4)
    assert t.response.status_code == 201
    assert t.response.interim_status_codes == (100,)
    assert t.request.body_size == 4 and t.request.header("expect") == "100-continue"
    assert (t.start_ns, t.end_ns) == (1, 4)
    assert t.response_size == len(response(201))  # interim bytes are not part of it


def test_several_interim_responses() -> None:
    session = Http1Session()
    session.feed(OUT, request(), 1)
    wire = response(100, length=False) + b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + response(body=b"ok")
    (t,) = session.feed(IN, wire, 2)
    assert t.response.interim_status_codes == (100, 103) and session.interim_responses == 2


def test_final_response_before_request_body_then_close() -> None:
    """Expect: 100-continue refused with 417; the client never sends the body."""
    session = Http1Session()
    session.feed(OUT, request("POST", headers="Expect: 100-continue\r\nContent-Length: 10\r\n"), 1)
    assert session.feed(IN, response(417), 2) == []  # waits for the request to finish
    (t,) = session.close(3)
    assert t.response.status_code == 417
    assert t.request.truncated and t.request.body_size == 0
    assert t.end_ns == 2


def test_early_final_response_then_body_completes() -> None:
    session = Http1Session()
    session.feed(OUT, request("POST", body=b"x" * 100)[:-60], 1)
    assert session.feed(IN, response(413), 2) == []
    (t,) = session.feed(OUT, b"x" * 60, 3)
    assert t.response.status_code == 413 and t.request.body_size == 100 and not t.request.truncated
    assert (t.start_ns, t.end_ns) == (1, 2)


def test_switching_protocols_stops_parsing() -> None:
    session = Http1Session()
    session.feed(OUT, request(headers="Upgrade: websocket\r\nConnection: Upgrade\r\n"), 1)
    (t,) = session.feed(IN, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello", 2)
    assert t.response.status_code == 101 and t.response.interim_status_codes == ()
    assert session.feed(OUT, b"\x81\x85garbage that is not http", 3) == []
    assert session.feed(IN, b"\x00\x01\x02", 4, total_len=100) == []
    assert session.close(5) == []
    assert session.parse_errors == 0


def test_connect_tunnel() -> None:
    session = Http1Session()
    session.feed(OUT, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 1)
    (t,) = session.feed(IN, b"HTTP/1.1 200 Connection established\r\n\r\n", 2)
    assert t.request.method == "CONNECT" and t.request.target == "example.com:443"
    assert session.feed(OUT, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 3) == []
    assert session.parse_errors == 0


# -- truncated captures ----------------------------------------------------------------------


def test_gap_inside_known_length_body_is_skipped() -> None:
    session = Http1Session()
    session.feed(OUT, request(), 1)
    resp = response(body=bytes(range(256)) * 40)  # 10240-byte body
    assert session.feed(IN, resp[:4096], 2, total_len=len(resp) - 100) == []
    (t,) = session.feed(IN, resp[-100:], 3)
    assert t.response.body_size == 10240 and t.response_size == len(resp) and not t.response.truncated
    assert t.end_ns == 3 and session.parse_errors == 0


def test_gap_ending_exactly_at_body_end() -> None:
    session = Http1Session()
    session.feed(OUT, request() + request(target="/2"), 1)
    resp = response(body=b"z" * 5000)
    (t,) = session.feed(IN, resp[:4096], 2, total_len=len(resp))
    assert t.end_ns == 2 and t.response.body_size == 5000
    (t2,) = session.feed(IN, response(body=b"ok"), 3)
    assert t2.request.target == "/2" and session.parse_errors == 0


def test_gap_past_body_end_loses_next_head_and_resynchronises() -> None:
    session = Http1Session()
    session.feed(OUT, request(target="/1") + request(target="/2") + request(target="/3"), 1)
    first, second = response(body=b"a" * 5000), response(body=b"b" * 20)
    wire = first + second
    (t,) = session.feed(IN, wire[:4096], 2, total_len=len(wire))  # the whole 2nd response is lost
    assert t.request.target == "/1" and t.response.body_size == 5000
    assert session.parse_errors == 1
    (t3,) = session.feed(IN, response(body=b"third"), 3)
    # The lost response's request is dropped; the next response pairs with the newest request.
    assert t3.request.target == "/3" and t3.response.body_size == 5
    assert session.dropped_requests == 1


def test_gap_inside_headers_is_an_error_then_resync() -> None:
    session = Http1Session()
    req = request(headers="X-Long: " + "v" * 200 + "\r\n")
    assert session.feed(OUT, req[:50], 1, total_len=len(req)) == []
    assert session.parse_errors == 1
    session.feed(OUT, request(target="/after"), 2)
    (t,) = session.feed(IN, response(), 3)
    assert t.request.target == "/after"
    assert session.unmatched_responses == 0


def test_gap_inside_chunk_data_is_skipped() -> None:
    session = Http1Session()
    session.feed(OUT, request(), 1)
    body = b"1000\r\n" + b"c" * 4096 + b"\r\n0\r\n\r\n"
    wire = response(headers="Transfer-Encoding: chunked\r\n", length=False) + body
    cut = len(wire) - len(b"c" * 4096 + b"\r\n0\r\n\r\n") + 100
    tail_start = len(wire) - 10  # resume inside the chunk data
    session.feed(IN, wire[:cut], 2, total_len=tail_start)
    (t,) = session.feed(IN, wire[tail_start:], 3)
    assert t.response.body_size == 4096 and t.response_size == len(wire)
    assert session.parse_errors == 0


@pytest.mark.parametrize("resume", [0, 1, 2])
def test_gap_covering_a_chunk_crlf(resume: int) -> None:
    session = Http1Session()
    session.feed(OUT, request(), 1)
    head = response(headers="Transfer-Encoding: chunked\r\n", length=False)
    body = b"5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n"
    crlf_at = len(head) + len(b"5\r\nhello")
    wire = head + body
    session.feed(IN, wire[: crlf_at - 2], 2, total_len=crlf_at + resume)
    (t,) = session.feed(IN, wire[crlf_at + resume :], 3)
    assert t.response.body_size == 8 and t.response_size == len(wire) and not t.response.truncated
    assert session.parse_errors == 0


def test_gap_swallowing_chunk_framing_flags_the_response() -> None:
    session = Http1Session()
    session.feed(OUT, request() + request(target="/2"), 1)
    wire = response(headers="Transfer-Encoding: chunked\r\n", length=False) + b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"
    (t,) = session.feed(IN, wire[:-20], 2, total_len=len(wire))
    assert t.response.truncated and session.parse_errors == 1
    (t2,) = session.feed(IN, response(), 3)  # the next write starts a message: found again
    assert t2.request.target == "/2" and session.parse_errors == 1


def test_request_body_gap() -> None:
    session = Http1Session()
    req = request("POST", body=b"p" * 9000)
    session.feed(IN, req[:4096], 1, total_len=len(req))
    (t,) = session.feed(OUT, response(), 2)
    assert t.request.body_size == 9000 and t.request_size == len(req) and t.role is Role.SERVER


# -- mid-stream attach, garbage, resynchronisation -------------------------------------------


def test_attach_in_the_middle_of_a_body() -> None:
    session = Http1Session()
    # The tail of an earlier body; "HTTP/1.1" not at a line start must not fool the hunt.
    assert session.feed(IN, b"ody bytes, a mention of HTTP/1.1 200 OK and GET /x HTTP/1.1 inline\r\n", 1) == []
    assert session.feed(OUT, b"0123 trailing upload bytes", 2) == []
    assert session.role is Role.UNKNOWN
    session.feed(OUT, request(target="/real"), 3)
    (t,) = session.feed(IN, response(body=b"ok"), 4)
    assert t.request.target == "/real" and session.parse_errors == 0 and session.role is Role.CLIENT


def test_attach_with_a_response_first() -> None:
    session = Http1Session()
    assert session.feed(IN, b"tail of something\r\n" + response(body=b"orphan"), 1) == []
    assert session.unmatched_responses == 1 and session.role is Role.CLIENT
    session.feed(OUT, request(), 2)
    (t,) = session.feed(IN, response(), 3)
    assert t.response.status_code == 200 and session.parse_errors == 0


def test_message_start_found_after_a_line_break_in_the_same_feed() -> None:
    session = Http1Session()
    session.feed(OUT, b"\x00\x01binary body tail\n" + request(target="/found"), 1)
    (t,) = session.feed(IN, response(), 2)
    assert t.request.target == "/found" and session.parse_errors == 0


def test_request_line_split_while_hunting() -> None:
    session = Http1Session()
    session.feed(OUT, b"junk\r\nGET /spl", 1)
    session.feed(OUT, b"it HTTP/1.1\r\nHost: a\r\n\r\n", 2)
    (t,) = session.feed(IN, response(), 3)
    assert t.request.target == "/split" and t.start_ns == 1 and session.parse_errors == 0


def test_garbage_on_a_synchronised_stream_counts_one_error() -> None:
    session = Http1Session()
    session.feed(OUT, request(target="/1"), 1)
    session.feed(IN, response(), 2)
    assert session.feed(OUT, b"\x16\x03\x01 not http at all \xff\xfe\r\n more garbage\r\n", 3) == []
    assert session.parse_errors == 1
    session.feed(OUT, b"still garbage\r\n" + request(target="/2"), 4)
    (t,) = session.feed(IN, response(), 5)
    assert t.request.target == "/2" and session.parse_errors == 1


@pytest.mark.parametrize(
    "bad_head",
    [
        b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",  # a response where requests flow
    ],
)
def test_invalid_heads_are_errors_and_resynchronise(bad_head: bytes) -> None:
    session = Http1Session()
    session.feed(OUT, request(target="/1"), 1)
    session.feed(IN, response(), 2)
    session.feed(OUT, bad_head + request(target="/2"), 3)
    (t,) = session.feed(IN, response(), 4)
    assert t.request.target == "/2"
    assert session.parse_errors == 1


def test_bad_chunk_size_is_an_error() -> None:
    session = Http1Session()
    session.feed(OUT, request() + request(target="/2"), 1)
    got = session.feed(IN, response(headers="Transfer-Encoding: chunked\r\n", length=False) + b"zz\r\n", 2)
    assert got[0].response.truncated and session.parse_errors == 1
    (t,) = session.feed(IN, response(), 3)
    assert t.request.target == "/2"


# -- bounds ----------------------------------------------------------------------------------


def test_headers_larger_than_the_buffer_are_an_error() -> None:
    session = Http1Session(max_buffer=1024)
    big = request(headers="".join(f"X-H{i}: {'v' * 40}\r\n" for i in range(40)))
    assert len(big) > 1024
    for i in range(0, len(big), 100):
        session.feed(OUT, big[i : i + 100], 1)
        assert len(session._streams[OUT].buf) <= 1024
    assert session.parse_errors == 1
    session.feed(OUT, request(target="/ok"), 2)
    (t,) = session.feed(IN, response(), 3)
    assert t.request.target == "/ok" and session.parse_errors == 1


def test_huge_single_feed_of_garbage_stays_bounded() -> None:
    session = Http1Session(max_buffer=4096)
    session.feed(OUT, b"GET /" + b"a" * 100_000, 1)
    assert session.buffered_bytes <= 4096
    session.feed(IN, b"x" * 100_000 + b"\n", 2)
    assert session.buffered_bytes <= 4096


def test_outstanding_requests_are_bounded() -> None:
    session = Http1Session(max_pending=128)
    session.feed(OUT, request() * 200, 1)
    assert session.pending_requests == 128 and session.dropped_requests == 72
    session.feed(IN, response(), 2)  # answers the oldest kept request
    assert session.pending_requests == 127


def test_close_emits_unanswered_requests() -> None:
    session = Http1Session()
    session.feed(OUT, request(target="/1") + request(target="/2"), 1)
    (t1,) = session.feed(IN, response(), 2)
    (t2,) = session.close(9)
    assert t1.request.target == "/1"
    assert t2.request.target == "/2" and t2.response is None and t2.end_ns == 9 and t2.response_size == 0


def test_close_truncates_an_unfinished_response() -> None:
    session = Http1Session()
    session.feed(OUT, request(), 1)
    session.feed(IN, response(body=b"x" * 100)[:-40], 2)
    (t,) = session.close(3)
    assert t.response.truncated and t.response.body_size == 60 and t.end_ns == 3


def test_close_is_idempotent_and_final() -> None:
    session = Http1Session()
    session.feed(OUT, request(), 1)
    assert len(session.close(2)) == 1
    assert session.close(3) == []
    assert session.feed(IN, response(), 4) == []


def test_response_before_any_request_cannot_answer_a_later_request() -> None:
    session = Http1Session()
    session.feed(OUT, request(), 10)
    assert session.feed(IN, response(), 5) == []  # earlier than the request: not its answer
    assert session.unmatched_responses == 1


def test_never_raises_on_bad_arguments() -> None:
    session = Http1Session()
    assert session.feed(7, b"GET / HTTP/1.1\r\n\r\n", 1) == []  # type: ignore[arg-type]
    assert session.feed(OUT, None, 1) == []  # type: ignore[arg-type]
    assert session.internal_errors == 2 and session.parse_errors == 2
    session.feed(OUT, memoryview(request()), 2)
    (t,) = session.feed(IN, bytearray(response()), 3)
    assert isinstance(t.response, Http1Response)


def test_a_carried_partial_line_does_not_hide_a_message_at_the_next_feed() -> None:
    session = Http1Session()
    # Attached mid-body, direction unknown: the tail could begin a request line "line 0016: HTTP/1.1".
    session.feed(IN, b"body tail\nline 001638: ", 1)
    session.feed(OUT, request(), 2)
    (t,) = session.feed(IN, response(204), 3)
    assert t.response.status_code == 204 and session.parse_errors == 0
