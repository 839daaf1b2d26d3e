"""Real captured connections (tests/fixtures/http1, see record_http1.py) through Http1Session.

Each fixture is fed whole (chunk by chunk, as captured), one byte at a time, and with trailing
data, from both sides (traced process = client, and = server).
"""

from __future__ import annotations

import pytest
from http1_support import FIXTURE_NAMES, PERSPECTIVES, Fixture, feed_all, load_fixture, summary

from receiver.protocols.base import Direction, Role
from receiver.protocols.http1 import Http1Session

ROLES = [Role.CLIENT, Role.SERVER]


@pytest.fixture(scope="module", params=FIXTURE_NAMES)
def fixture(request: pytest.FixtureRequest) -> Fixture:
    return load_fixture(request.param)


def test_fixtures_exist() -> None:
    assert len(FIXTURE_NAMES) >= 10


def feed_chunks(fixture: Fixture, role: Role, session: Http1Session) -> list:
    dirs = PERSPECTIVES[role]
    pieces = [(dirs[side], data, i, None) for i, (side, data) in enumerate(fixture.chunks)]
    return feed_all(session, pieces, close_ts=len(fixture.chunks))


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_whole_chunks(fixture: Fixture, role: Role) -> None:
    session = Http1Session()
    transactions = feed_chunks(fixture, role, session)

    assert [summary(t) for t in transactions] == list(fixture.transactions)
    assert session.parse_errors == 0
    assert session.internal_errors == 0
    assert session.role is role
    assert all(t.role is role and t.protocol == "http1" for t in transactions)
    # Wire sizes add up to every byte on the wire.
    assert sum(t.request_size for t in transactions) == fixture.c2s_bytes
    assert sum(t.response_size for t in transactions) + fixture.interim_bytes == fixture.s2c_bytes
    assert session.interim_responses == sum(len(t["interim_status_codes"]) for t in fixture.transactions)
    # Timestamps are chunk indexes: a request starts in a client chunk, a response ends in a
    # server chunk (or at close for a close-delimited body), in order.
    for t in transactions:
        assert fixture.chunks[t.start_ns][0] == "c2s"
        assert t.end_ns == len(fixture.chunks) or fixture.chunks[t.end_ns][0] == "s2c"
        assert t.start_ns <= t.end_ns
    assert [t.start_ns for t in transactions] == sorted(t.start_ns for t in transactions)
    assert session.buffered_bytes == 0


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_byte_by_byte(fixture: Fixture, role: Role) -> None:
    whole = feed_chunks(fixture, role, Http1Session())
    dirs = PERSPECTIVES[role]
    session = Http1Session()
    pieces = []
    offsets: list[tuple[str, int]] = []  # per global byte index: (side, offset within that side)
    seen = {"c2s": 0, "s2c": 0}
    for side, data in fixture.chunks:
        for byte in data:
            pieces.append((dirs[side], bytes((byte,)), len(pieces), None))
            offsets.append((side, seen[side]))
            seen[side] += 1
    transactions = feed_all(session, pieces, close_ts=len(pieces))

    assert [(t.request, t.response) for t in transactions] == [(t.request, t.response) for t in whole]
    assert session.parse_errors == 0
    # start_ns is the index of the request's first byte: the client-side offset of that byte
    # is the sum of the sizes of the requests before it.
    request_offset = 0
    for t in transactions:
        assert offsets[t.start_ns] == ("c2s", request_offset)
        request_offset += t.request_size
    response_end = 0
    for t in transactions:
        response_end += t.response_size
        if t.end_ns < len(pieces):  # not a close-delimited body ending at close
            side, offset = offsets[t.end_ns]
            assert side == "s2c" and offset + 1 >= response_end  # >=: interim heads come first


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_trailing_data(fixture: Fixture, role: Role) -> None:
    """Half of another request (and of a response) after the capture changes nothing.

    Except, rightly, for a close-delimited last response: whatever the server sends before
    closing is its body.
    """
    dirs = PERSPECTIVES[role]
    session = Http1Session()
    pieces = [(dirs[side], data, i, None) for i, (side, data) in enumerate(fixture.chunks)]
    n = len(pieces)
    half_response = b"HTTP/1.1 200 OK\r\nContent-Le"
    pieces.append((dirs["c2s"], b"GET /next HTTP/1.1\r\nHost: example\r\nAcc", n, None))
    pieces.append((dirs["s2c"], half_response, n + 1, None))
    transactions = feed_all(session, pieces)
    assert session.parse_errors == 0
    transactions += session.close(n + 2)

    expected = [dict(t) for t in fixture.transactions]
    cut_heads = 2  # the half request and the half response, cut by close
    if transactions[-1].response.close_delimited:
        expected[-1]["response_body_size"] += len(half_response)
        cut_heads = 1
    assert [summary(t) for t in transactions] == expected
    assert session.internal_errors == 0
    assert session.parse_errors == cut_heads


def test_capture_truncated_at_4k_skips_known_length_bodies() -> None:
    """Kernel-style capture: at most 4 KiB of each write, with its real length."""
    fixture = load_fixture("nginx_keepalive_curl")
    session = Http1Session()
    dirs = PERSPECTIVES[Role.CLIENT]
    pieces = [(dirs[side], data[:4096], i, len(data)) for i, (side, data) in enumerate(fixture.chunks)]
    assert any(len(data) > 4096 for _, data in fixture.chunks)
    transactions = feed_all(session, pieces, close_ts=len(pieces))

    assert [summary(t) for t in transactions] == list(fixture.transactions)
    assert sum(t.response_size for t in transactions) == fixture.s2c_bytes
    assert session.parse_errors == 0


def coalesced(fixture: Fixture) -> list[tuple[str, bytes]]:
    """The fixture's chunks with consecutive same-direction chunks merged (one big write each)."""
    merged: list[tuple[str, bytes]] = []
    for side, data in fixture.chunks:
        if merged and merged[-1][0] == side:
            merged[-1] = (side, merged[-1][1] + data)
        else:
            merged.append((side, data))
    return merged


def test_capture_truncated_inside_chunked_body_resynchronises() -> None:
    """A gap that swallows chunk framing: that response is flagged, the next one is fine."""
    fixture = load_fixture("nginx_gzip_chunked_curl")
    chunks = coalesced(fixture)
    assert [side for side, _ in chunks] == ["c2s", "s2c", "c2s", "s2c"] and len(chunks[1][1]) > 8192
    session = Http1Session()
    dirs = PERSPECTIVES[Role.CLIENT]
    pieces = [(dirs[side], data[:4096], i, len(data)) for i, (side, data) in enumerate(chunks)]
    transactions = feed_all(session, pieces, close_ts=len(pieces))

    assert [t.request.target for t in transactions] == ["/big.txt", "/small.txt"]
    first, second = transactions
    assert first.response.truncated and first.response.chunked
    assert first.response.status_code == 200
    assert summary(second) == fixture.transactions[1]
    assert session.parse_errors == 1


def test_sendfile_style_gap_feeds() -> None:
    """Body bytes never captured at all (sendfile): feeds of zero bytes with a length."""
    fixture = load_fixture("nginx_keepalive_curl")
    session = Http1Session()
    pieces = []
    for i, (side, data) in enumerate(fixture.chunks):
        direction = PERSPECTIVES[Role.SERVER][side]
        head_end = data.find(b"\r\n\r\n")
        if side == "s2c" and head_end >= 0:
            pieces.append((direction, data[: head_end + 4], i, None))
            pieces.append((direction, b"", i, len(data) - head_end - 4))
        elif side == "s2c":
            pieces.append((direction, b"", i, len(data)))
        else:
            pieces.append((direction, data, i, None))
    transactions = feed_all(session, pieces, close_ts=len(fixture.chunks))
    assert [summary(t) for t in transactions] == list(fixture.transactions)
    assert session.parse_errors == 0


def test_mid_stream_attach_on_real_capture() -> None:
    """Start in the middle of the ~100 KiB body: the later transactions are found, no errors."""
    fixture = load_fixture("nginx_keepalive_curl")
    chunks = coalesced(fixture)
    big = next(i for i, (side, data) in enumerate(chunks) if side == "s2c" and b"Content-Length: 102400" in data)
    side, data = chunks[big]
    chunks[big] = (side, data[len(data) // 2 :])
    session = Http1Session()
    dirs = PERSPECTIVES[Role.CLIENT]
    pieces = [(dirs[side], data, i, None) for i, (side, data) in enumerate(chunks) if i >= big]
    transactions = feed_all(session, pieces, close_ts=len(chunks))

    targets = [t["target"] for t in fixture.transactions]
    assert [summary(t) for t in transactions] == list(fixture.transactions[targets.index("/big.txt") + 1 :])
    assert session.parse_errors == 0
    assert session.role is Role.CLIENT


def test_request_direction_is_learnt_from_either_side() -> None:
    fixture = load_fixture("nginx_pipelined_raw")
    for role, dirs in PERSPECTIVES.items():
        session = Http1Session()
        assert session.role is Role.UNKNOWN
        session.feed(dirs["c2s"], fixture.chunks[0][1][:10], 0)
        assert session.role is Role.UNKNOWN  # not a whole message yet
        session.feed(dirs["c2s"], fixture.chunks[0][1][10:], 1)
        assert session.role is role
        assert Direction(dirs["c2s"]) is (Direction.EGRESS if role is Role.CLIENT else Direction.INGRESS)
