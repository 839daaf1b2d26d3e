"""Real captured connections (tests/fixtures/http2, see record_http2.py) through Http2Session.

Each fixture is fed whole (chunk by chunk, as captured), one byte at a time, and with trailing
data, from both sides (traced process = client, and = server).  Sizes and timestamps are
checked against an independent walk of the recorded frames.
"""

from __future__ import annotations

import pytest
from http2_support import (
    END_STREAM,
    FIXTURE_NAMES,
    HEADERS,
    PERSPECTIVES,
    Fixture,
    expected,
    feed_all,
    fixture_pieces,
    frame,
    load_fixture,
    message_wire_sizes,
    ping,
    side_bytes,
    summaries,
    walk,
)

from receiver.protocols.base import Direction, Role
from receiver.protocols.http2 import Http2Session, StreamEnd

ROLES = [Role.CLIENT, Role.SERVER]


@pytest.fixture(scope="module", params=FIXTURE_NAMES)
def fixture(request: pytest.FixtureRequest) -> Fixture:
    return load_fixture(request.param)


def test_fixtures_exist() -> None:
    assert len(FIXTURE_NAMES) >= 10
    names = set(FIXTURE_NAMES)
    assert {"grpc_unary", "grpc_server_streaming", "grpc_not_found", "grpc_cancel", "nginx_h2c_404_curl"} <= names


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_whole_chunks(fixture: Fixture, role: Role) -> None:
    session = Http2Session()
    transactions = feed_all(session, fixture_pieces(fixture, role), close_ts=len(fixture.chunks))

    assert summaries(fixture, transactions) == expected(fixture)
    assert session.parse_errors == 0
    assert session.hpack_errors == 0
    assert session.internal_errors == 0
    assert session.lost_header_blocks == 0
    assert session.resyncs == 0
    assert session.oversized_frames == 0
    assert session.role is role
    assert all(t.role is role and t.protocol == "http2" for t in transactions)
    assert all(t.request.headers_known and t.response.headers_known for t in transactions)
    assert len({t.request.stream_id for t in transactions}) == len(transactions)
    assert all(t.request.stream_id % 2 == 1 for t in transactions)

    # Wire sizes are the HEADERS/CONTINUATION/DATA frames of each stream, walked independently.
    c2s = message_wire_sizes(side_bytes(fixture, "c2s"))
    s2c = message_wire_sizes(side_bytes(fixture, "s2c"))
    for t in transactions:
        assert t.request_size == t.request.wire_size == c2s[t.request.stream_id]
        if t.response.end is StreamEnd.END_STREAM:
            assert t.response_size == t.response.wire_size == s2c[t.request.stream_id]
        else:  # reset: frames the server sent after the reset belong to no transaction
            assert t.response_size <= s2c[t.request.stream_id]

    # Timestamps are chunk indexes: a request starts in a client chunk, a response ends in a
    # server chunk (a client reset ends the stream in a client chunk).
    for t in transactions:
        assert fixture.chunks[t.start_ns][0] == "c2s"
        assert t.start_ns <= t.end_ns < len(fixture.chunks)
        if t.response.end is StreamEnd.END_STREAM:
            assert fixture.chunks[t.end_ns][0] == "s2c"
    assert session.buffered_bytes == 0
    assert session.open_streams == 0


def _byte_index(fixture: Fixture) -> dict[str, list[int]]:
    """Per side: the global byte index (over all chunks) of each byte of that side."""
    index: dict[str, list[int]] = {"c2s": [], "s2c": []}
    n = 0
    for side, data in fixture.chunks:
        index[side].extend(range(n, n + len(data)))
        n += len(data)
    return index


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_byte_by_byte(fixture: Fixture, role: Role) -> None:
    whole = feed_all(Http2Session(), fixture_pieces(fixture, role), close_ts=len(fixture.chunks))
    dirs = PERSPECTIVES[role]
    pieces = []
    for side, data in fixture.chunks:
        for byte in data:
            pieces.append((dirs[side], bytes((byte,)), len(pieces), None))
    session = Http2Session()
    transactions = feed_all(session, pieces, close_ts=len(pieces))

    assert [(t.request, t.response) for t in transactions] == [(t.request, t.response) for t in whole]
    assert session.parse_errors == 0
    assert session.resyncs == 0

    # start_ns is the index of the first byte of the stream's first client HEADERS frame;
    # end_ns that of the last byte of the server's END_STREAM frame.
    index = _byte_index(fixture)
    c2s_frames = walk(side_bytes(fixture, "c2s"))
    s2c_frames = walk(side_bytes(fixture, "s2c"))
    for t in transactions:
        sid = t.request.stream_id
        first = next(f for f in c2s_frames if f.stream_id == sid and f.ftype == HEADERS)
        assert t.start_ns == index["c2s"][first.offset]
        if t.response.end is StreamEnd.END_STREAM:
            last = next(f for f in s2c_frames if f.stream_id == sid and f.flags & END_STREAM and f.ftype in (0, 1))
            assert t.end_ns == index["s2c"][last.end - 1]


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_trailing_data(fixture: Fixture, role: Role) -> None:
    """A PING and half a frame more in each direction change nothing, closed or not."""
    dirs = PERSPECTIVES[role]
    session = Http2Session()
    pieces = fixture_pieces(fixture, role)
    n = len(pieces)
    half_headers = frame(HEADERS, 0x5, 1001, b"\x82\x86\x84\x41\x8a" + b"x" * 20)[:20]
    half_data = frame(0, 0, 1001, b"y" * 100)[:50]
    pieces.append((dirs["c2s"], ping() + half_headers, n, None))
    pieces.append((dirs["s2c"], ping(ack=True) + half_data, n + 1, None))
    transactions = feed_all(session, pieces)
    assert session.parse_errors == 0
    assert session.buffered_bytes == 20  # the half HEADERS frame; DATA payloads are never buffered
    transactions += session.close(n + 2)

    assert summaries(fixture, transactions) == expected(fixture)
    assert session.parse_errors == 0
    assert session.internal_errors == 0


# -- captures truncated like the kernel's (at most capture_size bytes of each syscall) -----------


def truncated_pieces(fixture: Fixture, role: Role, capture_size: int) -> list:
    dirs = PERSPECTIVES[role]
    return [(dirs[side], data[:capture_size], i, len(data)) for i, (side, data) in enumerate(fixture.chunks)]


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_truncated_at_4k_never_breaks(fixture: Fixture, role: Role) -> None:
    session = Http2Session()
    transactions = feed_all(session, truncated_pieces(fixture, role, 4096), close_ts=len(fixture.chunks))
    assert session.internal_errors == 0
    assert len(transactions) == len(fixture.transactions)
    assert session.buffered_bytes == 0
    if all(len(data) <= 4096 for _, data in fixture.chunks):
        assert summaries(fixture, transactions) == expected(fixture)
        assert session.parse_errors == 0


def test_truncated_gap_inside_frames_keeps_sync() -> None:
    """A gap that ends inside the DATA frame it began in: sizes stay exact, nothing is lost."""
    fixture = load_fixture("nginx_h2c_big_curl")
    # Re-chunk the server side frame by frame, DATA frames truncated to 100 bytes.
    s2c = side_bytes(fixture, "s2c")
    c2s = side_bytes(fixture, "c2s")
    session = Http2Session()
    out = session.feed(Direction.EGRESS, c2s, 0)
    for i, f in enumerate(walk(s2c)):
        chunk = s2c[f.offset : f.end]
        captured = chunk[:100] if f.ftype == 0 else chunk
        out += session.feed(Direction.INGRESS, captured, i + 1, len(chunk))
    assert session.buffered_bytes == 0
    (t,) = out
    assert t.response.status == 200
    assert t.response.body_size == fixture.transactions[0]["response_body_size"] == 100 * 1024
    assert t.response.end is StreamEnd.END_STREAM
    assert not t.response.truncated
    assert session.parse_errors == 0


def test_truncated_gap_over_frame_headers_loses_sync_once() -> None:
    """The 30 kB PUT: the gap swallows the second DATA frame's header, so the request's end is
    lost; the response still pairs by stream id, and the request is flagged truncated."""
    fixture = load_fixture("nginx_h2c_put_curl")
    session = Http2Session()
    (t,) = feed_all(session, truncated_pieces(fixture, Role.CLIENT, 4096), close_ts=len(fixture.chunks))
    assert t.request.method == "PUT" and t.request.path == "/uploads/a.txt"
    assert t.response.status == 201
    assert t.response.end is StreamEnd.END_STREAM
    assert t.request.truncated
    assert t.request.body_size == 16384  # the first DATA frame; the second one's header was lost
    assert session.parse_errors == 1
    assert session.resyncs == 1


def test_truncated_grpc_unary_keeps_pairing_by_stream_id() -> None:
    """40 kB and 20 kB messages cut at 4 KiB lose the frames behind them (trailers included),
    and with them the HPACK state: later header blocks that use the dynamic table are unknown,
    but every stream still becomes one transaction, with exact DATA sizes when seen."""
    fixture = load_fixture("grpc_unary")
    session = Http2Session()
    transactions = feed_all(session, truncated_pieces(fixture, Role.CLIENT, 4096), close_ts=len(fixture.chunks))
    by_id = {t.request.stream_id: t for t in transactions}
    assert sorted(by_id) == [1, 3, 5, 7]
    first = by_id[1]
    assert first.request.grpc_method == "Say" and first.response.grpc_status == 0
    assert first.response.end is StreamEnd.END_STREAM
    assert by_id[3].response.end is StreamEnd.CONNECTION_CLOSED  # its trailers were not captured
    assert by_id[3].response.body_size == 40022
    last = by_id[7]
    assert last.response.end is StreamEnd.END_STREAM
    assert (last.request.body_size, last.response.body_size) == (20, 30)
    assert not last.request.headers_known  # the client's HPACK table was lost with sync
    assert session.hpack_errors > 0
    assert session.internal_errors == 0
