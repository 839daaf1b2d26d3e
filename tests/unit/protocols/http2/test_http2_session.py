"""Hand-written HTTP/2 edge cases: one test (or a few) per item of the framing, HPACK, stream
and gRPC behaviour the session promises."""

from __future__ import annotations

import struct

import pytest
from http2_support import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    PRIORITY_FLAG,
    PUSH_PROMISE,
    Peer,
    frame,
    goaway,
    grpc_message,
    grpc_request_fields,
    ping,
    request_fields,
    rst_stream,
    settings,
    window_update,
)

from receiver.protocols.base import Direction, Role
from receiver.protocols.http2 import ErrorCode, Http2Session, Peer as Side, StreamEnd, error_code_name
from receiver.protocols.registry import ProtocolRegistry

OUT = Direction.EGRESS
IN = Direction.INGRESS


class Conn:
    """A client and a server writing onto one session, the traced process being the client
    (``traced="client"``) or the server."""

    def __init__(self, traced: str = "client", session: Http2Session | None = None, preface: bool = True) -> None:
        self.session = session or Http2Session()
        self.c2s = OUT if traced == "client" else IN
        self.s2c = IN if traced == "client" else OUT
        self.client = Peer()
        self.server = Peer()
        self.ts = 0
        self.out: list = []
        self.sent: dict[str, list[int]] = {"c2s": [], "s2c": []}  # sizes of the feeds
        if preface:
            self.send_client(PREFACE + settings((4, 65535)))
            self.send_server(settings((3, 100)) + settings(ack=True))
            self.send_client(settings(ack=True))

    def send_client(self, data: bytes, total_len: int | None = None) -> list:
        self.ts += 1
        self.sent["c2s"].append(len(data))
        got = self.session.feed(self.c2s, data, self.ts, total_len)
        self.out += got
        return got

    def send_server(self, data: bytes, total_len: int | None = None) -> list:
        self.ts += 1
        self.sent["s2c"].append(len(data))
        got = self.session.feed(self.s2c, data, self.ts, total_len)
        self.out += got
        return got

    def get(self, stream_id: int, path: str = "/", status: str = "200", body: bytes = b"") -> list:
        self.send_client(self.client.headers(stream_id, request_fields(path), end_stream=True))
        fields = [(":status", status), ("content-length", str(len(body)))]
        if not body:
            return self.send_server(self.server.headers(stream_id, fields, end_stream=True))
        self.send_server(self.server.headers(stream_id, fields))
        return self.send_server(frame(DATA, END_STREAM, stream_id, body))


# -- preface, roles --------------------------------------------------------------------------


@pytest.mark.parametrize("traced,role", [("client", Role.CLIENT), ("server", Role.SERVER)])
def test_preface_sets_the_role_and_a_get_pairs(traced: str, role: Role) -> None:
    conn = Conn(traced)
    assert conn.session.role is role
    (t,) = conn.get(1, "/index.html?x=1", "200", b"hello")
    assert t.protocol == "http2" and t.role is role
    req, resp = t.request, t.response
    assert (req.method, req.scheme, req.authority, req.path) == ("GET", "http", "example.test", "/index.html?x=1")
    assert (req.stream_id, req.body_size, req.end_stream, req.is_grpc, req.pushed) == (1, 0, True, False, False)
    assert (resp.status, resp.body_size, resp.end, resp.error_code, resp.end_stream) == (200, 5, StreamEnd.END_STREAM, None, True)
    assert resp.header("Content-Length") == "5"
    assert resp.headers == (("content-length", "5"),)  # pseudo-header fields are not repeated
    assert t.request_size == req.wire_size == conn.sent["c2s"][-1]
    assert t.response_size == resp.wire_size == conn.sent["s2c"][-2] + conn.sent["s2c"][-1] == conn.sent["s2c"][-2] + 9 + 5
    assert conn.session.parse_errors == 0


def test_preface_split_across_feeds() -> None:
    session = Http2Session()
    for i in range(0, len(PREFACE), 5):
        assert session.feed(OUT, PREFACE[i : i + 5], i) == []
    assert session.role is Role.CLIENT
    assert session.parse_errors == 0


def test_role_without_preface_from_a_decoded_response() -> None:
    """Mid-connection: the first block seen is a response (:status), sent by the traced process."""
    session = Http2Session()
    server = Peer()
    session.feed(OUT, server.headers(7, [(":status", "200")], end_stream=False), 1)
    assert session.role is Role.SERVER
    (t,) = session.feed(OUT, frame(DATA, END_STREAM, 7, b"abc"), 2)
    assert not t.request.headers_known and t.request.method is None and t.request.truncated
    assert t.response.status == 200 and t.response.body_size == 3
    assert t.start_ns == 1 and t.end_ns == 2


def test_role_without_preface_from_stream_parity_and_opener() -> None:
    """Neither preface nor decodable block: the side that opens an odd stream is the client."""
    session = Http2Session()
    block = b"\xbe"  # dynamic table index 62: unknown mid-connection
    session.feed(IN, frame(HEADERS, END_HEADERS | END_STREAM, 5, block), 1)
    assert session.role is Role.SERVER
    assert session.hpack_errors == 1


def test_kernel_role_is_a_weak_hint() -> None:
    session = Http2Session(kernel_role=Role.CLIENT)
    assert session.role is Role.CLIENT
    session.feed(IN, PREFACE, 1)  # the preface says otherwise, and wins
    assert session.role is Role.SERVER


def test_registry_detects_http2_before_http1() -> None:
    registry = ProtocolRegistry()
    assert "http2" in registry.names
    assert registry.names.index("http2") < registry.names.index("http")
    assert registry.detect(PREFACE + settings()) == "http2"
    assert registry.detect(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") == "http"
    session = registry.new_session("http2")
    assert isinstance(session, Http2Session)


# -- frames ----------------------------------------------------------------------------------


def test_settings_ack_applies_header_table_size_and_max_frame_size() -> None:
    session = Http2Session()
    session.feed(OUT, PREFACE + settings((1, 256), (5, 65536)), 1)
    assert session.settings(OUT) == {1: 256, 5: 65536}
    session.feed(IN, settings(ack=True), 2)  # the server may now send 64 KiB frames, use 256 B tables
    server = Peer()
    server.encoder.header_table_size = 256
    client = Peer()
    session.feed(OUT, client.headers(1, request_fields(), end_stream=True), 3)
    session.feed(IN, server.headers(1, [(":status", "200")]), 4)
    (t,) = session.feed(IN, frame(DATA, END_STREAM, 1, b"z" * 40000), 5)
    assert t.response.body_size == 40000
    assert session.oversized_frames == 0
    assert session.parse_errors == 0


def test_frames_over_max_frame_size_are_counted_and_skipped() -> None:
    conn = Conn()
    conn.send_client(conn.client.headers(1, request_fields(), end_stream=True))
    conn.send_server(conn.server.headers(1, [(":status", "200")]))
    (t,) = conn.send_server(frame(DATA, END_STREAM, 1, b"z" * 20000))  # default limit: 16384
    assert t.response.body_size == 20000
    assert conn.session.oversized_frames == 1
    assert conn.session.parse_errors == 0


def test_headers_with_continuation_padding_and_priority() -> None:
    conn = Conn()
    block = conn.client.block(request_fields("/long", x_long="v" * 300))
    a, b, c = block[:10], block[10:200], block[200:]
    pad = 7
    payload = bytes([pad]) + struct.pack(">IB", 0x80000003, 200) + a + b"\x00" * pad
    data = frame(HEADERS, PADDED | PRIORITY_FLAG | END_STREAM, 1, payload)
    data += frame(CONTINUATION, 0, 1, b) + frame(CONTINUATION, END_HEADERS, 1, c)
    conn.send_client(data[:30])
    conn.send_client(data[30:])
    (t,) = conn.send_server(conn.server.headers(1, [(":status", "204")], end_stream=True))
    assert t.request.path == "/long"
    assert t.request.header("x-long") == "v" * 300
    assert t.request.wire_size == len(data)
    assert conn.session.parse_errors == 0


def test_padded_data_counts_only_the_body() -> None:
    conn = Conn()
    conn.send_client(conn.client.headers(1, request_fields("/up", "POST")))
    conn.send_client(frame(DATA, PADDED, 1, bytes([10]) + b"abc" + b"\x00" * 10))
    conn.send_client(frame(DATA, PADDED | END_STREAM, 1, bytes([0]) + b"de"))
    (t,) = conn.send_server(conn.server.headers(1, [(":status", "200")], end_stream=True))
    assert t.request.body_size == 5
    assert conn.session.parse_errors == 0


def test_padding_longer_than_the_frame_is_a_parse_error() -> None:
    conn = Conn()
    conn.send_client(conn.client.headers(1, request_fields("/up", "POST")))
    conn.send_client(frame(DATA, PADDED | END_STREAM, 1, bytes([200]) + b"abc"))
    (t,) = conn.send_server(conn.server.headers(1, [(":status", "200")], end_stream=True))
    assert conn.session.parse_errors == 1
    assert t.request.truncated


def test_continuation_interrupted_by_another_frame() -> None:
    conn = Conn()
    block = conn.client.block(request_fields("/a"))
    conn.send_client(frame(HEADERS, END_STREAM, 1, block[:5]) + ping())
    assert conn.session.parse_errors == 1
    (t,) = conn.send_server(conn.server.headers(1, [(":status", "200")], end_stream=True))
    assert not t.request.headers_known and t.request.path is None
    # A CONTINUATION with nothing to continue is another error, and is skipped.
    conn.send_client(frame(CONTINUATION, END_HEADERS, 1, b"\x82"))
    assert conn.session.parse_errors == 2


def test_ping_window_update_priority_and_unknown_frames_are_ignored() -> None:
    conn = Conn()
    conn.send_client(conn.client.headers(1, request_fields(), end_stream=True))
    noise = ping() + window_update(0) + window_update(1) + frame(PRIORITY, 0, 1, b"\x00\x00\x00\x00\x10")
    noise += frame(0xFA, 0x3, 1, b"extension frame payload")
    conn.send_server(noise + ping(ack=True))
    (t,) = conn.get(3)
    assert t.request.stream_id == 3
    assert conn.session.parse_errors == 0
    assert len(conn.out) == 1


def test_data_frames_and_trailers() -> None:
    conn = Conn()
    conn.send_client(conn.client.headers(1, request_fields("/x", "POST")))
    for _ in range(3):
        conn.send_client(frame(DATA, 0, 1, b"q" * 100))
    conn.send_client(conn.client.headers(1, [("x-request-trailer", "1")], end_stream=True))
    conn.send_server(conn.server.headers(1, [(":status", "200")]))
    conn.send_server(frame(DATA, 0, 1, b"r" * 10) + frame(DATA, 0, 1, b""))
    (t,) = conn.send_server(conn.server.headers(1, [("x-checksum", "abc")], end_stream=True))
    assert t.request.body_size == 300 and t.request.trailers == (("x-request-trailer", "1"),)
    assert t.response.body_size == 10 and t.response.trailer("X-Checksum") == "abc"
    assert t.response.headers == ()


def test_interim_1xx_responses() -> None:
    conn = Conn()
    conn.send_client(conn.client.headers(1, request_fields("/up", "PUT", expect="100-continue")))
    conn.send_server(conn.server.headers(1, [(":status", "100")]))
    conn.send_client(frame(DATA, END_STREAM, 1, b"body"))
    conn.send_server(conn.server.headers(1, [(":status", "103"), ("link", "</a>")]))
    (t,) = conn.send_server(conn.server.headers(1, [(":status", "201")], end_stream=True))
    assert t.response.status == 201 and t.response.interim_statuses == (100, 103)


def test_streams_interleave_and_pair_by_id() -> None:
    conn = Conn()
    for sid in (1, 3, 5):
        conn.send_client(conn.client.headers(sid, request_fields(f"/{sid}"), end_stream=True))
    conn.send_server(conn.server.headers(5, [(":status", "200")]))
    conn.send_server(conn.server.headers(1, [(":status", "404")], end_stream=True))
    conn.send_server(conn.server.headers(3, [(":status", "500")], end_stream=True))
    conn.send_server(frame(DATA, END_STREAM, 5, b"five"))
    assert [(t.request.path, t.response.status) for t in conn.out] == [("/1", 404), ("/3", 500), ("/5", 200)]


# -- RST_STREAM, GOAWAY, close ---------------------------------------------------------------


def test_rst_stream_from_the_client_before_any_response() -> None:
    conn = Conn()
    conn.send_client(conn.client.headers(1, request_fields(), end_stream=True))
    (t,) = conn.send_client(rst_stream(1, ErrorCode.CANCEL))
    assert t.response is not None and t.response.status is None
    assert (t.response.end, t.response.error_code, t.response.error_from) == (StreamEnd.RST_STREAM, 8, Side.CLIENT)
    assert error_code_name(t.response.error_code) == "CANCEL"
    assert t.end_ns == conn.ts
    # Frames still in flight on the reset stream belong to no transaction.
    assert conn.send_server(conn.server.headers(1, [(":status", "200")], end_stream=True)) == []
    assert conn.session.late_frames == 1


def test_rst_stream_from_the_server_mid_response() -> None:
    conn = Conn()
    conn.send_client(conn.client.headers(1, request_fields(), end_stream=True))
    conn.send_server(conn.server.headers(1, [(":status", "200")]) + frame(DATA, 0, 1, b"partial"))
    (t,) = conn.send_server(rst_stream(1, ErrorCode.INTERNAL_ERROR))
    assert (t.response.status, t.response.body_size, t.response.end_stream) == (200, 7, False)
    assert (t.response.error_code, t.response.error_from) == (2, Side.SERVER)


def test_rst_stream_no_error_after_a_complete_response() -> None:
    """A server answers before reading the whole request, then resets it (NO_ERROR)."""
    conn = Conn()
    conn.send_client(conn.client.headers(1, request_fields("/echo", "POST")))
    conn.send_server(conn.server.headers(1, [(":status", "200")]) + frame(DATA, END_STREAM, 1, b"ok"))
    (t,) = conn.send_server(rst_stream(1, ErrorCode.NO_ERROR))
    assert t.response.status == 200 and t.response.end_stream
    assert (t.response.end, t.response.error_code) == (StreamEnd.RST_STREAM, 0)
    assert t.end_ns == conn.ts - 1  # the response's last byte, not the reset
    assert not t.request.end_stream


def test_goaway_closes_streams_above_the_last_stream_id() -> None:
    conn = Conn()
    for sid in (1, 3, 5):
        conn.send_client(conn.client.headers(sid, request_fields(f"/{sid}"), end_stream=True))
    closed = conn.send_server(goaway(1, ErrorCode.NO_ERROR, b"graceful shutdown"))
    assert sorted(t.request.stream_id for t in closed) == [3, 5]
    assert all(t.response.end is StreamEnd.GOAWAY and t.response.status is None for t in closed)
    assert all(t.response.error_code == 0 and t.response.error_from is Side.SERVER for t in closed)
    assert conn.session.last_goaway.last_stream_id == 1
    (t,) = conn.send_server(conn.server.headers(1, [(":status", "200")], end_stream=True))
    assert t.response.end is StreamEnd.END_STREAM


def test_close_emits_open_streams() -> None:
    conn = Conn()
    conn.send_client(conn.client.headers(1, request_fields("/no-answer"), end_stream=True))
    conn.send_client(conn.client.headers(3, request_fields("/half-answer"), end_stream=True))
    conn.send_server(conn.server.headers(3, [(":status", "200")]))
    out = conn.session.close(99)
    assert [(t.request.path, t.response and t.response.status) for t in out] == [("/no-answer", None), ("/half-answer", 200)]
    assert out[1].response.end is StreamEnd.CONNECTION_CLOSED and out[1].end_ns == 99
    assert conn.session.feed(OUT, ping(), 100) == []  # closed: ignored
    assert conn.session.close(101) == []


def test_open_streams_are_bounded() -> None:
    conn = Conn(session=Http2Session(max_streams=4))
    for sid in range(1, 20, 2):
        conn.send_client(conn.client.headers(sid, request_fields(), end_stream=True))
    assert conn.session.open_streams == 4
    assert conn.session.dropped_streams == 6


def test_server_push() -> None:
    conn = Conn()
    conn.send_client(conn.client.headers(1, request_fields("/page"), end_stream=True))
    promised = conn.server.block(request_fields("/style.css"))
    conn.send_server(frame(PUSH_PROMISE, END_HEADERS, 1, struct.pack(">I", 2) + promised))
    conn.send_server(conn.server.headers(1, [(":status", "200")], end_stream=True))
    conn.send_server(conn.server.headers(2, [(":status", "200")]) + frame(DATA, END_STREAM, 2, b"css"))
    page, style = conn.out
    assert page.request.path == "/page" and not page.request.pushed
    assert style.request.path == "/style.css" and style.request.pushed and style.request.stream_id == 2
    assert style.response.body_size == 3 and style.request.wire_size == 0


# -- gRPC ------------------------------------------------------------------------------------


def test_grpc_unary_ok() -> None:
    conn = Conn()
    conn.send_client(conn.client.headers(1, grpc_request_fields("pkg.v1.Greeter/SayHello")))
    conn.send_client(frame(DATA, END_STREAM, 1, grpc_message(b"\x0a\x03bob")))
    conn.send_server(conn.server.headers(1, [(":status", "200"), ("content-type", "application/grpc")]))
    conn.send_server(frame(DATA, 0, 1, grpc_message(b"\x0a\x09hello bob")))
    (t,) = conn.send_server(conn.server.headers(1, [("grpc-status", "0"), ("grpc-message", "")], end_stream=True))
    assert t.request.is_grpc and (t.request.grpc_service, t.request.grpc_method) == ("pkg.v1.Greeter", "SayHello")
    assert (t.response.grpc_status, t.response.grpc_message) == (0, None)
    assert (t.request.body_size, t.response.body_size) == (10, 16)


def test_grpc_trailers_only_error_with_percent_encoded_message() -> None:
    conn = Conn()
    conn.send_client(conn.client.headers(1, grpc_request_fields("pkg.Svc/Find")))
    conn.send_client(frame(DATA, END_STREAM, 1, grpc_message(b"")))
    trailers_only = [(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "5"),
                     ("grpc-message", "no such key: caf%C3%A9 100%25")]
    (t,) = conn.send_server(conn.server.headers(1, trailers_only, end_stream=True))
    assert t.response.status == 200 and t.response.trailers == ()
    assert (t.response.grpc_status, t.response.grpc_message) == (5, "no such key: café 100%")


def test_grpc_server_streaming_is_one_transaction() -> None:
    conn = Conn()
    conn.send_client(conn.client.headers(1, grpc_request_fields("pkg.Svc/Watch")))
    conn.send_client(frame(DATA, END_STREAM, 1, grpc_message(b"")))
    conn.send_server(conn.server.headers(1, [(":status", "200"), ("content-type", "application/grpc+proto")]))
    for i in range(50):
        assert conn.send_server(frame(DATA, 0, 1, grpc_message(b"m" * i))) == []
    (t,) = conn.send_server(conn.server.headers(1, [("grpc-status", "0")], end_stream=True))
    assert t.response.body_size == sum(5 + i for i in range(50))
    assert t.response.grpc_status == 0 and t.request.grpc_method == "Watch"


def test_grpc_path_that_is_not_service_method() -> None:
    conn = Conn()
    conn.send_client(conn.client.headers(1, grpc_request_fields("just-one-part"), end_stream=True))
    (t,) = conn.send_server(conn.server.headers(1, [(":status", "200"), ("grpc-status", "12")], end_stream=True))
    assert t.request.is_grpc and t.request.grpc_service is None and t.request.grpc_method is None
    assert t.response.grpc_status == 12


# -- HPACK -----------------------------------------------------------------------------------


def test_hpack_failure_mid_connection_keeps_pairing_and_later_static_blocks_decode() -> None:
    """Attach after the connection started: blocks using dynamic entries the observer never saw
    fail (counted); their streams still pair; static-only blocks decode; so do blocks using
    entries added after the failure."""
    session = Http2Session()
    client, server = Peer(), Peer()
    # Blocks encoded before the capture started, to fill the encoders' dynamic tables.
    client.block(request_fields("/seen-before", user_agent="ua/1"))
    server.block([(":status", "200"), ("server", "s/1")])

    def feed(direction, data):
        return session.feed(direction, data, 0)

    feed(OUT, client.headers(9, request_fields("/seen-before", user_agent="ua/1"), end_stream=True))
    assert session.hpack_errors == 1
    (t,) = feed(IN, server.headers(9, [(":status", "200"), ("server", "s/1")], end_stream=True))
    assert not t.request.headers_known and not t.response.headers_known
    assert t.request.stream_id == 9 and t.role is Role.CLIENT
    # A block of static-table fields and literals only decodes.
    static = frame(HEADERS, END_HEADERS | END_STREAM, 11, b"\x82\x86\x84" + b"\x01\x05a.com")
    feed(OUT, static)
    (t,) = feed(IN, frame(HEADERS, END_HEADERS | END_STREAM, 11, b"\x8d"))
    assert (t.request.method, t.request.path, t.request.authority, t.response.status) == ("GET", "/", "a.com", 404)
    # New entries added after the reset are tracked and usable.
    fresh = Peer()
    feed(OUT, frame(HEADERS, END_HEADERS | END_STREAM, 13, fresh.block(request_fields("/fresh", x_new="1"))))
    feed(OUT, frame(HEADERS, END_HEADERS | END_STREAM, 15, fresh.block(request_fields("/fresh", x_new="1"))))
    feed(IN, frame(HEADERS, END_HEADERS | END_STREAM, 13, b"\x88"))
    (t,) = feed(IN, frame(HEADERS, END_HEADERS | END_STREAM, 15, b"\x88"))
    assert t.request.path == "/fresh" and t.request.header("x-new") == "1"
    assert session.internal_errors == 0


def test_hpack_bomb_is_bounded_by_max_header_list_size() -> None:
    """One 4000-byte entry referenced 1000 times: 4 MB of headers from 5 kB on the wire."""
    conn = Conn(session=Http2Session(max_header_list_size=16384))
    bomb = conn.client.block(request_fields("/", x_big="b" * 4000), huffman=False)
    bomb += b"\xbe" * 1000  # index 62: the x-big entry, just added
    conn.send_client(frame(HEADERS, END_HEADERS | END_STREAM, 1, bomb))
    assert conn.session.hpack_errors == 1
    (t,) = conn.send_server(conn.server.headers(1, [(":status", "431")], end_stream=True))
    assert not t.request.headers_known and t.response.status == 431


def test_header_fields_are_bounded() -> None:
    conn = Conn()
    many = request_fields("/") + [(f"x-h{i}", "v" * 5000) for i in range(3)] + [(f"x-n{i}", "1") for i in range(100)]
    conn.send_client(conn.client.headers(1, many, end_stream=True))
    (t,) = conn.send_server(conn.server.headers(1, [(":status", "200")], end_stream=True))
    assert len(t.request.headers) == 64
    assert all(len(v) <= 4096 for _, v in t.request.headers)


def test_header_table_size_update_in_a_block() -> None:
    conn = Conn()
    conn.server.encoder.header_table_size = 0  # the encoder announces a size update of 0
    conn.send_client(conn.client.headers(1, request_fields(), end_stream=True))
    (t,) = conn.send_server(conn.server.headers(1, [(":status", "200"), ("x", "y")], end_stream=True))
    assert t.response.header("x") == "y" and conn.session.hpack_errors == 0


def test_header_table_size_zero_acknowledged_then_used() -> None:
    """The client announces SETTINGS_HEADER_TABLE_SIZE 0; once the server acknowledged it, the
    server's blocks start with a size update to 0 and use no dynamic entries."""
    session = Http2Session()
    client, server = Peer(), Peer()
    session.feed(OUT, PREFACE + settings((1, 0)), 1)
    session.feed(IN, settings(ack=True), 2)
    server.encoder.header_table_size = 0
    for sid in (1, 3):
        session.feed(OUT, client.headers(sid, request_fields(f"/{sid}"), end_stream=True), 3)
        (t,) = session.feed(IN, server.headers(sid, [(":status", "200"), ("x-srv", "a")], end_stream=True), 4)
        assert t.response.header("x-srv") == "a"
    assert session.settings(OUT) == {1: 0}
    assert session.hpack_errors == 0


def test_table_size_update_beyond_the_cap_fails_one_block_only() -> None:
    """An encoder growing its table past what the observer tracks (64 KiB): that block is not
    decoded (counted); the table is reset and static-only blocks decode again."""
    conn = Conn()
    conn.send_client(conn.client.headers(1, request_fields(), end_stream=True))
    conn.server.encoder.header_table_size = 1 << 20
    (t,) = conn.send_server(conn.server.headers(1, [(":status", "200")], end_stream=True))
    assert not t.response.headers_known and conn.session.hpack_errors == 1
    conn.send_client(conn.client.headers(3, request_fields(), end_stream=True))
    (t,) = conn.send_server(frame(HEADERS, END_HEADERS | END_STREAM, 3, b"\x89"))
    assert t.response.status == 204


def test_undecodable_utf8_values_are_replaced_not_fatal() -> None:
    conn = Conn()
    conn.send_client(conn.client.headers(1, request_fields(), end_stream=True))
    block = b"\x88" + b"\x00\x01x\x02\xff\xfe"  # :status 200, literal x: b"\xff\xfe"
    (t,) = conn.send_server(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    assert t.response.header("x") == "\ufffd\ufffd"


# -- buffers, oversized frames, truncated captures, mid-stream attach ------------------------


def test_header_block_larger_than_the_buffer_is_skipped_by_length() -> None:
    conn = Conn(session=Http2Session(max_buffer=1024))
    big = conn.client.block(request_fields("/", x_big="b" * 3000), huffman=False)
    conn.send_client(frame(HEADERS, END_HEADERS | END_STREAM, 1, big))
    assert conn.session.buffered_bytes <= 1024 and conn.session.lost_header_blocks == 1
    (t,) = conn.send_server(conn.server.headers(1, [(":status", "200")], end_stream=True))
    assert not t.request.headers_known and t.request.wire_size == 9 + len(big)
    # The lost block reset the client's HPACK table; a fresh encoder state decodes again.
    conn.client = Peer()
    conn.send_client(frame(HEADERS, END_HEADERS | END_STREAM, 3, conn.client.block(request_fields("/next"))))
    (t,) = conn.send_server(conn.server.headers(3, [(":status", "200")], end_stream=True))
    assert t.request.path == "/next"


def test_continuations_beyond_the_buffer_lose_the_block() -> None:
    conn = Conn(session=Http2Session(max_buffer=1024))
    big = conn.client.block(request_fields("/", x_big="b" * 3000), huffman=False)
    data = frame(HEADERS, END_STREAM, 1, big[:600])
    data += frame(CONTINUATION, 0, 1, big[600:1200]) + frame(CONTINUATION, END_HEADERS, 1, big[1200:])
    for i in range(0, len(data), 100):
        conn.send_client(data[i : i + 100])
        assert conn.session.buffered_bytes <= 1024
    (t,) = conn.send_server(conn.server.headers(1, [(":status", "200")], end_stream=True))
    assert not t.request.headers_known and t.request.wire_size == len(data)
    assert conn.session.parse_errors == 0


def test_huge_data_frames_are_never_buffered() -> None:
    conn = Conn()
    conn.send_client(conn.client.headers(1, request_fields(), end_stream=True))
    conn.send_server(conn.server.headers(1, [(":status", "200")]))
    header = struct.pack(">IBI", (16 * 1024 * 1024 - 1) << 8 | DATA, END_STREAM, 1)
    conn.send_server(header + b"x" * 1000, total_len=9 + 4096)  # a capture of 1009 bytes of a 4105 byte write
    assert conn.session.buffered_bytes == 0
    for _ in range(4094):
        assert conn.send_server(b"", total_len=4096) == []
    (t,) = conn.send_server(b"y" * 2000, total_len=4095)  # the last bytes of the 16 MiB frame
    assert t.response.body_size == 16 * 1024 * 1024 - 1
    assert conn.session.parse_errors == 0


def test_gap_inside_a_header_block_loses_only_that_block() -> None:
    conn = Conn()
    block = conn.client.block(request_fields("/cut", x_pad="p" * 200))
    data = frame(HEADERS, END_HEADERS | END_STREAM, 1, block)
    conn.send_client(data[:50], total_len=len(data))
    assert conn.session.lost_header_blocks == 1 and conn.session.parse_errors == 0
    (t,) = conn.send_server(conn.server.headers(1, [(":status", "200")], end_stream=True))
    assert not t.request.headers_known and t.request.wire_size == len(data)
    assert t.request.end_stream  # the flags were in the frame header, which was captured


def test_gap_over_a_frame_header_resynchronises() -> None:
    conn = Conn()
    conn.send_client(conn.client.headers(1, request_fields(), end_stream=True))
    conn.send_server(conn.server.headers(1, [(":status", "200")]))
    body = frame(DATA, 0, 1, b"a" * 100) + frame(DATA, END_STREAM, 1, b"b" * 100)
    conn.send_server(body[:50], total_len=len(body))  # the second frame header is not captured
    assert conn.session.parse_errors == 1
    # The next captured write starts with frames again: found by hunting.
    out = conn.get(3, "/after")
    (t,) = [t for t in out if t.request.stream_id == 3]
    assert t.response.status == 200
    assert conn.session.resyncs == 1
    # Stream 1 lost its END_STREAM; it ends when the connection closes.
    (t1,) = conn.session.close(1000)
    assert t1.request.stream_id == 1 and t1.response.end is StreamEnd.CONNECTION_CLOSED and t1.response.truncated
    assert t1.response.body_size == 100


def test_mid_stream_attach_inside_a_data_frame() -> None:
    """The capture starts inside a DATA frame: no error, hunting finds the next frame."""
    client, server = Peer(), Peer()
    session = Http2Session()
    session.feed(IN, b"tail of a body that began before the capture" + window_update(0), 1)
    assert session.parse_errors == 0 and session.resyncs == 1
    session.feed(OUT, client.headers(3, request_fields("/x"), end_stream=True), 2)
    (t,) = session.feed(IN, server.headers(3, [(":status", "200")], end_stream=True), 3)
    assert t.request.path == "/x" and t.role is Role.CLIENT


def test_pre_attach_streams_finish_once() -> None:
    """A stream opened before the capture (id below the first seen) may finish, once."""
    session = Http2Session()
    server = Peer()
    session.feed(OUT, frame(HEADERS, END_HEADERS | END_STREAM, 9, b"\x82\x86\x84\x01\x01a"), 1)
    (old,) = session.feed(IN, frame(HEADERS, END_HEADERS | END_STREAM, 3, server.block([("grpc-status", "0")])), 2)
    assert old.request.stream_id == 3 and old.response.grpc_status == 0 and not old.response.headers_known
    assert session.feed(IN, frame(HEADERS, END_HEADERS | END_STREAM, 3, b"\x88"), 3) == []
    (new,) = session.feed(IN, frame(HEADERS, END_HEADERS | END_STREAM, 9, b"\x88"), 4)
    assert new.request.authority == "a" and new.response.status == 200


def test_garbage_in_sync_loses_sync_once_and_recovers() -> None:
    conn = Conn()
    conn.send_client(b"\x00\x00\x05\x03\x00\x00\x00\x00\x01" + b"zzzzz")  # RST_STREAM of length 5
    assert conn.session.parse_errors == 1
    (t,) = conn.get(1)
    assert t.response.status == 200


def test_frame_types_are_what_the_constants_say() -> None:
    assert (DATA, HEADERS, PRIORITY, PUSH_PROMISE, PING, CONTINUATION) == (0, 1, 2, 5, 6, 9)
    assert END_STREAM == 1 and END_HEADERS == 4
