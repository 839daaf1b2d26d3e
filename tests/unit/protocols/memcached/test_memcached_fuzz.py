"""Property-based tests: MemcachedSession never raises, stays within its bounds on any input, and
gives the same result however the bytes of a recorded connection are split."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.protocols.api import Detection
from receiver.protocols.base import Direction, Role
from receiver.protocols.memcached import MemcachedSession, detect
from tests.support.protocol_fixtures import PERSPECTIVES, feed, fixture_names, load_fixture, whole

MAX_BUFFER = 512
MAX_PENDING = 16
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL = [n for n in fixture_names("memcached") if n != "pymemcache_big_values"]
FIXTURES = {n: load_fixture("memcached", n) for n in SMALL}

tokens = st.sampled_from([
    b"get ", b"gets ", b"set ", b"k ", b"0 ", b"5 ", b"99999999999 ", b"noreply", b"\r\n", b"\n", b"\r", b"mg ",
    b"ms ", b"md ", b"ma ", b"mn", b" q", b" O1", b" v", b"VALUE k 0 5", b"VA 3", b"END", b"STORED", b"EN", b"HD",
    b"MN", b"ERROR", b"CLIENT_ERROR x", b"STAT a b", b"abcde", b" ", b"-1", b"\x00\xff",
])
pieces_strategy = st.lists(
    st.tuples(
        st.sampled_from([Direction.EGRESS, Direction.INGRESS]),
        st.one_of(st.binary(max_size=300), st.lists(tokens, max_size=40).map(b"".join)),
        st.one_of(st.none(), st.integers(min_value=0, max_value=3000)),
    ),
    max_size=25,
)


def check_bounds(session: MemcachedSession) -> None:
    assert session.internal_errors == 0
    assert session.buffered_bytes <= 2 * session.max_buffer
    assert session.pending_requests <= MAX_PENDING


@FUZZ
@given(pieces_strategy, st.sampled_from([Role.UNKNOWN, Role.CLIENT, Role.SERVER]))
def test_arbitrary_bytes_never_raise(pieces, role) -> None:
    session = MemcachedSession(max_buffer=MAX_BUFFER, max_pending=MAX_PENDING, kernel_role=role)
    for i, (direction, data, extra) in enumerate(pieces):
        out = session.feed(direction, data, i, None if extra is None else len(data) + extra)
        assert all(t.protocol == "memcached" for t in out)
        check_bounds(session)
    session.close(len(pieces))
    check_bounds(session)
    assert session.parse_errors >= 0


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from(list(Direction)))
def test_detect_never_raises(data: bytes, direction: Direction) -> None:
    assert isinstance(detect(data, direction), Detection)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.large_base_example])
@given(st.sampled_from(SMALL), st.sampled_from([Role.CLIENT, Role.SERVER]), st.randoms(use_true_random=False))
def test_any_split_gives_the_same_transactions(name, role, rnd) -> None:
    fixture = FIXTURES[name]
    expected = feed(MemcachedSession(), whole(fixture, role), close_ts=10**9)
    dirs = PERSPECTIVES[role]
    pieces = []
    for side, data in fixture.chunks:
        at = 0
        while at < len(data):
            n = rnd.randint(1, max(1, len(data) - at))
            pieces.append((dirs[side], data[at : at + n], len(pieces), None))
            at += n
    session = MemcachedSession()
    out = feed(session, pieces, close_ts=10**9)
    assert [(t.request, t.response) for t in out] == [(t.request, t.response) for t in expected]
    assert session.parse_errors == 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.large_base_example])
@given(st.sampled_from(SMALL), st.sampled_from([Role.CLIENT, Role.SERVER]), st.randoms(use_true_random=False))
def test_mutated_fixtures_stay_bounded(name, role, rnd) -> None:
    """Flipped bytes and lost tails never raise and never grow the session past its bounds."""
    fixture = FIXTURES[name]
    dirs = PERSPECTIVES[role]
    session = MemcachedSession(max_buffer=MAX_BUFFER, max_pending=MAX_PENDING)
    for i, (side, data) in enumerate(fixture.chunks):
        data = bytearray(data)
        if data and rnd.random() < 0.3:
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        total = None
        if len(data) > 2 and rnd.random() < 0.2:
            total = len(data)
            data = data[: rnd.randrange(len(data))]
        session.feed(dirs[side], bytes(data), i, total)
        check_bounds(session)
    session.close(len(fixture.chunks))
    check_bounds(session)
