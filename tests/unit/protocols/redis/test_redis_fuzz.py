"""Property-based tests: the session never raises, stays within its bounds on any input, and
gives the same result however the bytes are split.  Example counts are set per test."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_support import E, FIXTURE_NAMES, I, PERSPECTIVES, feed_chunks, load_fixture

from receiver.protocols.base import Direction, Role
from receiver.protocols.redis import RedisSession, RespType, detect
from receiver.protocols.redis.parse import MAX_DEPTH

MAX_BUFFER = 512
MAX_PENDING = 16
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIXTURES = {name: load_fixture(name) for name in FIXTURE_NAMES}
# Fixtures small enough to mutate often (the big ones only slow the search down).
SMALL = sorted(name for name, f in FIXTURES.items() if f.c2s_bytes + f.s2c_bytes < 20_000)
WHOLE = {
    (name, role): [(t.request, t.response) for t in feed_chunks(FIXTURES[name], role, RedisSession())]
    for name in SMALL
    for role in (Role.CLIENT, Role.SERVER)
}


def check_bounds(session: RedisSession) -> None:
    assert session.internal_errors == 0
    for reader in session._readers:
        assert reader.buffered <= session.max_buffer
        assert len(reader.stack) <= MAX_DEPTH
    assert session.pending_requests <= MAX_PENDING


def feed(session: RedisSession, pieces) -> list:
    out = []
    for i, (direction, data, total_len) in enumerate(pieces):
        out += session.feed(direction, data, i, total_len)
        check_bounds(session)
    out += session.close(len(pieces))
    check_bounds(session)
    return out


resp_tokens = st.sampled_from(
    [b"*", b"$", b"+", b"-", b":", b"_", b"#", b",", b"(", b"!", b"=", b"%", b"~", b">", b"|", b"\r\n", b"\r", b"\n",
     b"1", b"2", b"-1", b"0", b"99999999999", b"OK", b"ERR x", b"GET", b"SUBSCRIBE", b"message", b"t", b"3.5", b" "]
)
pieces_strategy = st.lists(
    st.tuples(
        st.sampled_from([Direction.EGRESS, Direction.INGRESS]),
        st.one_of(st.binary(max_size=300), st.lists(resp_tokens, max_size=60).map(b"".join)),
        st.one_of(st.none(), st.integers(min_value=0, max_value=5000)),
    ),
    max_size=25,
).map(lambda ps: [(d, b, (None if t is None else len(b) + t)) for d, b, t in ps])


@FUZZ
@given(pieces_strategy)
def test_arbitrary_bytes_never_raise(pieces) -> None:
    feed(RedisSession(max_buffer=MAX_BUFFER, max_pending=MAX_PENDING), pieces)


@FUZZ
@given(st.binary(max_size=2000))
def test_detect_never_raises(data: bytes) -> None:
    assert detect(data) in (True, False)


@st.composite
def mutated_fixture(draw):
    """A fixture from either side, with a few chunks flipped, grown, shrunk or cut short."""
    fixture = FIXTURES[draw(st.sampled_from(SMALL))]
    role = draw(st.sampled_from([Role.CLIENT, Role.SERVER]))
    rnd = draw(st.randoms(use_true_random=False))
    dirs = PERSPECTIVES[role]
    chunks = [bytearray(data) for _, data in fixture.chunks]
    total = [None] * len(chunks)
    for _ in range(draw(st.integers(1, 6))):
        i = rnd.randrange(len(chunks))
        data = chunks[i]
        op = rnd.choice(["flip", "insert", "delete", "truncate"])
        at = rnd.randrange(len(data)) if data else 0
        if op == "flip" and data:
            data[at] ^= 1 << rnd.randrange(8)
        elif op == "insert":
            data[at:at] = rnd.randbytes(rnd.randint(1, 8))
        elif op == "delete" and data:
            del data[at : at + rnd.randint(1, 8)]
        elif op == "truncate" and total[i] is None:  # a truncated capture
            total[i] = len(data)
            del data[at:]
    return [(dirs[side], bytes(data), t) for (side, _), data, t in zip(fixture.chunks, chunks, total)]


@FUZZ
@given(mutated_fixture())
def test_mutated_fixtures_never_raise(pieces) -> None:
    feed(RedisSession(max_buffer=MAX_BUFFER, max_pending=MAX_PENDING), pieces)


@FUZZ
@given(st.sampled_from(SMALL), st.sampled_from([Role.CLIENT, Role.SERVER]), st.randoms(use_true_random=False))
def test_random_splits_change_nothing(name: str, role: Role, rnd) -> None:
    fixture = FIXTURES[name]
    whole = WHOLE[name, role]
    dirs = PERSPECTIVES[role]
    pieces = []
    for side, chunk in fixture.chunks:
        n_cuts = min(len(chunk) - 1, rnd.randint(0, 4))
        cuts = sorted(rnd.sample(range(1, len(chunk)), n_cuts)) if n_cuts > 0 else []
        bounds = [0, *cuts, len(chunk)]
        pieces += [(dirs[side], chunk[a:b]) for a, b in zip(bounds, bounds[1:])]
    session = RedisSession()
    out = []
    for i, (direction, piece) in enumerate(pieces):
        out += session.feed(direction, piece, i)
    out += session.close(len(pieces))
    assert [(t.request, t.response) for t in out] == whole
    assert session.parse_errors == 0


# A RESP3 value generator: (encoded bytes, RespType, element count).
scalars = st.one_of(
    st.just((b"+OK\r\n", RespType.SIMPLE_STRING, None)),
    st.integers(-(2**63), 2**63).map(lambda n: (b":%d\r\n" % n, RespType.INTEGER, None)),
    st.binary(max_size=40).map(lambda b: (b"$%d\r\n%s\r\n" % (len(b), b), RespType.BULK_STRING, None)),
    st.just((b"$-1\r\n", RespType.NULL, None)),
    st.just((b"_\r\n", RespType.NULL, None)),
    st.booleans().map(lambda v: (b"#t\r\n" if v else b"#f\r\n", RespType.BOOLEAN, None)),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: (b",%r\r\n" % f, RespType.DOUBLE, None)),
    st.integers(0, 10**40).map(lambda n: (b"(%d\r\n" % n, RespType.BIG_NUMBER, None)),
    st.binary(max_size=20).map(lambda b: (b"=%d\r\ntxt:%s\r\n" % (len(b) + 4, b), RespType.VERBATIM_STRING, None)),
)


def aggregates(children):
    def build(marker: bytes, kind: RespType, pairs: bool):
        size = 2 if pairs else 1

        def make(items):
            n = len(items) // size
            items = items[: n * size]
            return (b"%s%d\r\n" % (marker, n) + b"".join(i[0] for i in items), kind, n)

        return st.lists(children, max_size=6).map(make)

    attribute = st.tuples(st.lists(children, min_size=2, max_size=2), children).map(
        lambda t: (b"|1\r\n" + t[0][0][0] + t[0][1][0] + t[1][0], t[1][1], t[1][2])
    )
    return st.one_of(
        build(b"*", RespType.ARRAY, False),
        build(b"~", RespType.SET, False),
        build(b"%", RespType.MAP, True),
        attribute,
    )


values = st.recursive(scalars, aggregates, max_leaves=30)


@FUZZ
@given(values, st.data())
def test_any_resp3_value_is_one_reply(value, data) -> None:
    encoded, kind, count = value
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(encoded) - 1)), max_size=5)))
    bounds = [0, *[c for c in cuts if c < len(encoded)], len(encoded)]
    session = RedisSession()
    out = session.feed(E, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", 0)
    for i, (a, b) in enumerate(zip(bounds, bounds[1:]), start=1):
        out += session.feed(I, encoded[a:b], i)
    assert len(out) == 1
    response = out[0].response
    assert (response.kind, response.element_count, response.wire_size) == (kind, count, len(encoded))
    assert session.parse_errors == 0 and session.buffered_bytes == 0


@FUZZ
@given(st.lists(st.binary(max_size=30), min_size=1, max_size=12), st.integers(0, 200))
def test_requests_with_any_arguments(args, cut) -> None:
    """Any argument bytes: one request, its size exact; cut anywhere, it is skipped or truncated."""
    encoded = b"*%d\r\n" % (len(args) + 1) + b"$3\r\nSET\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    session = RedisSession()
    out = session.feed(E, encoded, 0) + session.feed(I, b"+OK\r\n", 1)
    assert [(t.request.command, t.request.arg_count, t.request_size) for t in out] == [("SET", len(args), len(encoded))]
    session = RedisSession()
    cut = min(cut, len(encoded))
    out = session.feed(E, encoded[:cut], 0, len(encoded)) + session.feed(I, b"+OK\r\n", 1)
    check_bounds(session)
    assert len(out) <= 1
