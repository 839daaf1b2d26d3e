"""Real memcached connections (tests/fixtures/memcached, see record_memcached.py) through
MemcachedSession: whole, byte by byte, with trailing data, and cut as the kernel capture cuts large
writes — as the client and as the server."""

from __future__ import annotations

from typing import Any

import pytest

from receiver.protocols.base import Role, Transaction
from receiver.protocols.memcached import MemcachedSession
from tests.support.protocol_fixtures import PERSPECTIVES, Fixture, byte_by_byte, cut, feed, fixture_names, load_fixture, run, whole

NAMES = fixture_names("memcached")
ROLES = [Role.CLIENT, Role.SERVER]


def summary(t: Transaction) -> dict[str, Any]:
    req, resp = t.request, t.response
    return {
        "command": req.command, "key_count": req.key_count, "noreply": req.noreply, "quiet": req.quiet,
        "status": resp.status if resp else None, "hits": resp.hits if resp else None,
        "misses": resp.misses if resp else None, "error_message": resp.error_message if resp else None,
        "implied": resp.implied if resp else False,
    }


@pytest.fixture(scope="module", params=NAMES)
def fixture(request: pytest.FixtureRequest) -> Fixture:
    return load_fixture("memcached", request.param)


def test_fixtures_exist() -> None:
    assert len(NAMES) >= 6


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_whole(fixture: Fixture, role: Role) -> None:
    session, out = run(fixture, role, MemcachedSession)
    assert [summary(t) for t in out] == fixture.transactions
    assert session.parse_errors == 0 and session.capture_gaps == 0
    assert session.unmatched_replies == 0 and session.dropped_requests == 0
    assert session.role is role and all(t.role is role for t in out)
    # Every byte on the wire is in exactly one request or reply.
    assert sum(t.request_size for t in out) == fixture.total("c2s")
    assert sum(t.response_size for t in out) == fixture.total("s2c")
    for t in out:
        assert fixture.chunks[t.start_ns][0] == "c2s"
        if t.response is not None and not t.response.implied:
            assert fixture.chunks[t.end_ns][0] == "s2c" and t.start_ns <= t.end_ns
    assert session.buffered_bytes == 0 and session.pending_requests == 0


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_no_secret_survives(fixture: Fixture, role: Role) -> None:
    _, out = run(fixture, role, MemcachedSession)
    text = repr([(t.request, t.response, t.attributes) for t in out])
    for secret in fixture.raw["secrets"]:
        assert secret not in text
    assert "user:1" not in text  # keys are never kept


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_byte_by_byte(fixture: Fixture, role: Role) -> None:
    _, expected = run(fixture, role, MemcachedSession)
    session, out = run(fixture, role, MemcachedSession, byte_by_byte)
    assert [(t.request, t.response) for t in out] == [(t.request, t.response) for t in expected]
    assert session.parse_errors == 0
    # start_ns is the index of the request's first byte: the requests tile the client's bytes.
    offsets = []
    seen = {"c2s": 0, "s2c": 0}
    for side, data in fixture.chunks:
        for _ in data:
            offsets.append((side, seen[side]))
            seen[side] += 1
    at = 0
    for t in out:
        assert offsets[t.start_ns] == ("c2s", at)
        at += t.request_size


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_trailing_data(fixture: Fixture, role: Role) -> None:
    dirs = PERSPECTIVES[role]
    expected = feed(MemcachedSession(), whole(fixture, role))
    session = MemcachedSession()
    out = feed(session, whole(fixture, role))
    out += session.feed(dirs["c2s"], b"set tail 0 0 100\r\npartial", 10**6)
    out += session.feed(dirs["s2c"], b"VALUE x 0 5\r\nhel", 10**6 + 1)
    assert [(t.request, t.response) for t in out] == [(t.request, t.response) for t in expected]
    assert session.buffered_bytes <= 2 * session.max_buffer
    session.close(10**6 + 2)
    assert session.parse_errors == 0


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_capture_cut_at_4096_bytes(fixture: Fixture, role: Role) -> None:
    """Data blocks are skipped by their declared length across the missing bytes; a reply whose
    last line was lost with them is marked truncated and the next reply is found again.  Nothing
    else changes, sizes and times included."""
    _, expected = run(fixture, role, MemcachedSession)
    session, out = run(fixture, role, MemcachedSession, cut)
    assert [summary(t) for t in out] == [summary(t) for t in expected]
    for got, want in zip(out, expected):
        assert (got.request_size, got.start_ns) == (want.request_size, want.start_ns)
        if got.response is not None and not got.response.truncated:
            assert (got.response_size, got.end_ns) == (want.response_size, want.end_ns)
    assert session.parse_errors == 0
    lost_lines = sum(1 for t in out if t.response is not None and t.response.truncated)
    assert session.capture_gaps == lost_lines


def test_big_values_are_really_cut() -> None:
    """The big-values fixture is what proves skipping across truncated captures."""
    f = load_fixture("memcached", "pymemcache_big_values")
    assert sum(max(0, len(d) - 4096) for _, d in f.chunks) > 500_000
