"""Real captured connections (tests/fixtures/redis, see record_redis.py) through RedisSession.

Each fixture is fed whole (chunk by chunk, as captured), one byte at a time, with trailing data,
and cut the way the kernel capture cuts large writes (4096 captured bytes, ``total_len`` telling
the rest) — from both sides (traced process = client, and = server).
"""

from __future__ import annotations

import pytest
from redis_support import FIXTURE_NAMES, PERSPECTIVES, Fixture, feed_all, feed_chunks, load_fixture, summary

from receiver.protocols.base import Role
from receiver.protocols.redis import RedisSession

ROLES = [Role.CLIENT, Role.SERVER]
ROLE_IDS = ["client", "server"]


@pytest.fixture(scope="module", params=FIXTURE_NAMES)
def fixture(request: pytest.FixtureRequest) -> Fixture:
    return load_fixture(request.param)


def test_fixtures_exist() -> None:
    assert len(FIXTURE_NAMES) >= 12


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_whole_chunks(fixture: Fixture, role: Role) -> None:
    session = RedisSession()
    transactions = feed_chunks(fixture, role, session)

    assert [summary(t) for t in transactions] == list(fixture.transactions)
    assert session.parse_errors == 0
    assert session.capture_gaps == 0
    assert session.internal_errors == 0
    assert session.unmatched_replies == 0
    assert session.dropped_requests == 0
    assert session.role is role
    assert all(t.role is role and t.protocol == "redis" for t in transactions)
    assert session.push_messages == fixture.push_messages
    assert session.monitor_lines == fixture.monitor_lines
    # Wire sizes add up to every byte on the wire (pushes and MONITOR lines are not replies).
    assert sum(t.request_size for t in transactions) + fixture.ignored_c2s_bytes == fixture.c2s_bytes
    replies = sum(t.response_size for t in transactions)
    if fixture.push_messages or fixture.monitor_lines:
        assert replies < fixture.s2c_bytes
    else:
        assert replies == fixture.s2c_bytes
    # Timestamps are chunk indexes: a request starts in a client chunk, a reply ends in a server
    # chunk, in order.
    for t in transactions:
        assert fixture.chunks[t.start_ns][0] == "c2s"
        if t.response is not None:
            assert fixture.chunks[t.end_ns][0] == "s2c"
            assert t.start_ns <= t.end_ns
    assert [t.start_ns for t in transactions] == sorted(t.start_ns for t in transactions)
    assert session.buffered_bytes == 0
    assert session.pending_requests == 0


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_no_secret_survives(fixture: Fixture, role: Role) -> None:
    """Argument values beyond the key (passwords, values, MONITOR output) are never kept."""
    transactions = feed_chunks(fixture, role, RedisSession())
    text = repr([(t.request, t.response, t.attributes) for t in transactions])
    for secret in fixture.secrets:
        assert secret not in text


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_byte_by_byte(fixture: Fixture, role: Role) -> None:
    whole = feed_chunks(fixture, role, RedisSession())
    dirs = PERSPECTIVES[role]
    session = RedisSession()
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
    assert session.push_messages == fixture.push_messages
    if fixture.ignored_c2s_bytes == 0:
        # start_ns is the index of the request's first byte: the client-side offset of that
        # byte is the sum of the sizes of the requests before it.
        request_offset = 0
        for t in transactions:
            assert offsets[t.start_ns] == ("c2s", request_offset)
            request_offset += t.request_size
    if not fixture.push_messages and not fixture.monitor_lines:
        # end_ns is the index of the reply's last byte.
        reply_end = 0
        for t in transactions:
            if t.response is None:
                continue
            reply_end += t.response_size
            assert offsets[t.end_ns] == ("s2c", reply_end - 1)


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_trailing_data(fixture: Fixture, role: Role) -> None:
    """Bytes of an unfinished frame after the fixture change nothing and stay bounded."""
    dirs = PERSPECTIVES[role]
    whole = feed_chunks(fixture, role, RedisSession(), close=False)
    session = RedisSession()
    transactions = feed_chunks(fixture, role, session, close=False)
    transactions += session.feed(dirs["c2s"], b"*3\r\n$3\r\nSET\r\n$4\r\ntail\r\n$100\r\npartial", 10**6)
    transactions += session.feed(dirs["s2c"], b"$5\r\nhel", 10**6 + 1)
    assert [(t.request, t.response) for t in transactions] == [(t.request, t.response) for t in whole]
    assert session.buffered_bytes <= 2 * session.max_buffer
    after_close = session.close(10**6 + 2)
    # The partial request never reached the server whole: it is not a transaction.
    assert all(t.request.key != "tail" for t in after_close)
    assert session.parse_errors == 0


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_capture_cut_at_4096_bytes(fixture: Fixture, role: Role) -> None:
    """As the kernel captures: at most 4096 bytes of each chunk, ``total_len`` = its length.

    Bulk payloads are skipped by their declared length; framing that the cut swallows (inside a
    large nested reply) makes that reply ``truncated`` and the session resynchronises on the
    following replies.  Requests and replies keep their summaries, and their wire sizes unless
    they are marked truncated.
    """
    dirs = PERSPECTIVES[role]
    whole = feed_chunks(fixture, role, RedisSession())
    session = RedisSession()
    pieces = [(dirs[side], data[:4096], i, len(data)) for i, (side, data) in enumerate(fixture.chunks)]
    transactions = feed_all(session, pieces, close_ts=len(pieces))

    assert [summary(t) for t in transactions] == [summary(t) for t in whole]
    assert session.parse_errors == 0
    for cut, full in zip(transactions, whole):
        assert cut.start_ns == full.start_ns
        if not cut.request.truncated:
            assert cut.request_size == full.request_size
        if cut.response is not None and not cut.response.truncated:
            assert cut.response_size == full.response_size
            assert cut.end_ns == full.end_ns
    if not any(len(data) > 4096 for _, data in fixture.chunks):
        assert session.capture_gaps == 0
