"""Fuzzing Http2Session and detect with hypothesis: arbitrary bytes, random frames, and real
fixtures randomly split, flipped, cut, extended and truncated.  The session must never raise,
never hit its internal-error guard, and never hold more than its bounds."""

from __future__ import annotations

import struct

from http2_support import FIXTURE_NAMES, PERSPECTIVES, PREFACE, load_fixture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.protocols.base import Direction, Role
from receiver.protocols.http2 import Http2Session, detect

MAX_BUFFER = 512
MAX_STREAMS = 8
FIXTURES = {name: load_fixture(name) for name in FIXTURE_NAMES}
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check_bounds(session: Http2Session) -> None:
    assert session.internal_errors == 0
    assert session.buffered_bytes <= 2 * MAX_BUFFER  # at most max_buffer per direction
    for side in session._sides:  # noqa: SLF001 - the per-direction bound itself
        assert len(side.buf) + (len(side.block) if side.block is not None else 0) <= MAX_BUFFER
    assert session.open_streams <= MAX_STREAMS


def run(pieces, close: bool = True) -> Http2Session:
    session = Http2Session(max_buffer=MAX_BUFFER, max_streams=MAX_STREAMS)
    for ts, (direction, data, extra) in enumerate(pieces):
        total = len(data) + extra if extra else None
        for t in session.feed(direction, data, ts, total):
            assert t.protocol == "http2" and t.start_ns <= t.end_ns
            assert t.request_size >= 0 and t.response_size >= 0
        check_bounds(session)
    if close:
        session.close(len(pieces))
        check_bounds(session)
    return session


directions = st.sampled_from([Direction.EGRESS, Direction.INGRESS])
pieces_of_bytes = st.lists(st.tuples(directions, st.binary(max_size=300), st.integers(0, 3000) | st.just(0)), max_size=25)


@settings(FUZZ, max_examples=400)
@given(pieces_of_bytes)
def test_arbitrary_bytes(pieces) -> None:
    run(pieces)


@settings(FUZZ, max_examples=300)
@given(st.binary(max_size=2000))
def test_detect_never_raises(data: bytes) -> None:
    assert detect(data) in (True, False)


# Frames with any type, flags and stream id, and payloads that are often well-formed.
_KNOWN_TYPES = st.integers(0, 9)
_payloads = st.one_of(
    st.binary(max_size=120),
    st.builds(lambda a, b: struct.pack(">II", a, b), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.lists(st.tuples(st.integers(0, 10), st.integers(0, 2**32 - 1)), max_size=4).map(
        lambda pairs: b"".join(struct.pack(">HI", i, v) for i, v in pairs)
    ),
    st.sampled_from([b"\x82\x86\x84\x41\x8aexample.co", b"\x88", b"\x8d\x5f\x8b\x1du\xd0b\r&=LtA\xea", b"\xbe\xbf", b"\x3f\xe1\x1f"]),
)


@st.composite
def frames(draw) -> bytes:
    ftype = draw(st.one_of(_KNOWN_TYPES, st.integers(0, 255)))
    flags = draw(st.sampled_from([0, 1, 4, 5, 8, 9, 0x20, 0x25, 0x2D, 0xFF]))
    stream_id = draw(st.sampled_from([0, 1, 2, 3, 5, 7, 0x7FFFFFFF, 0x80000001]) | st.integers(0, 40))
    payload = draw(_payloads)
    length = len(payload)
    if draw(st.integers(0, 9)) == 0:  # a lying length now and then
        length = draw(st.integers(0, 2**24 - 1))
    return struct.pack(">IBI", length << 8 | ftype, flags, stream_id) + payload


frame_streams = st.lists(st.tuples(directions, st.lists(frames(), max_size=5).map(b"".join), st.integers(0, 500) | st.just(0)), max_size=12)


@settings(FUZZ, max_examples=300)
@given(st.booleans(), frame_streams)
def test_random_frames_after_a_preface(preface_first: bool, pieces) -> None:
    if preface_first:
        pieces = [(Direction.EGRESS, PREFACE, 0)] + pieces
    run(pieces)


@st.composite
def mutated_fixture(draw):
    """A real fixture fed as random splits, with flips, insertions, deletions and capture cuts."""
    fixture = FIXTURES[draw(st.sampled_from(FIXTURE_NAMES))]
    dirs = PERSPECTIVES[draw(st.sampled_from([Role.CLIENT, Role.SERVER]))]
    pieces = []
    for side, data in fixture.chunks[:40]:
        data = bytearray(data[:6000])
        for _ in range(draw(st.integers(0, 2))):
            mutation = draw(st.integers(0, 3))
            if not data:
                break
            at = draw(st.integers(0, len(data) - 1))
            if mutation == 0:
                data[at] ^= 1 << draw(st.integers(0, 7))
            elif mutation == 1:
                data[at:at] = draw(st.binary(min_size=1, max_size=12))
            elif mutation == 2:
                del data[at : at + draw(st.integers(1, 30))]
            else:
                data[at] = draw(st.integers(0, 255))
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=3)))
        bounds = [0, *cuts, len(data)]
        for a, b in zip(bounds, bounds[1:]):
            part = bytes(data[a:b])
            captured = draw(st.integers(0, len(part))) if draw(st.integers(0, 4)) == 0 else len(part)
            pieces.append((dirs[side], part[:captured], len(part) - captured))
    return pieces


@settings(FUZZ, max_examples=300)
@given(mutated_fixture())
def test_mutated_fixtures(pieces) -> None:
    run(pieces)


@settings(FUZZ, max_examples=200)
@given(st.sampled_from(FIXTURE_NAMES), st.data())
def test_fixtures_in_random_pieces_give_the_same_transactions(name: str, data) -> None:
    """Unmutated: however the bytes are split (order kept per direction), the result is the same."""
    fixture = FIXTURES[name]
    dirs = PERSPECTIVES[Role.CLIENT]
    whole = Http2Session()
    expected = []
    for i, (side, chunk) in enumerate(fixture.chunks):
        expected += whole.feed(dirs[side], chunk, i)
    expected += whole.close(len(fixture.chunks))
    session = Http2Session()
    got = []
    for i, (side, chunk) in enumerate(fixture.chunks):
        cuts = sorted(data.draw(st.lists(st.integers(0, len(chunk)), max_size=4)))
        bounds = [0, *cuts, len(chunk)]
        for a, b in zip(bounds, bounds[1:]):
            got += session.feed(dirs[side], chunk[a:b], i)
    got += session.close(len(fixture.chunks))
    assert [(t.request, t.response, t.start_ns, t.end_ns) for t in got] == [
        (t.request, t.response, t.start_ns, t.end_ns) for t in expected
    ]
    assert session.parse_errors == 0
