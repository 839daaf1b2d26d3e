"""Property-based fuzzing of MysqlSession and detect(): never raises, stays within its bounds.

Every test counts the examples it ran and prints the count (visible in the pytest output).
``internal_errors`` counts exceptions caught by the session's last-resort handler, so it must
stay 0: wire data is handled by the parser, never by the safety net.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mysql_support import FIXTURE_NAMES, PERSPECTIVES, lenenc, load_fixture, packet

from receiver.protocols.base import Direction, Role
from receiver.protocols.mysql import MysqlSession, detect

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,  # keep the checkout clean
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FIXTURES = {name: load_fixture(name) for name in FIXTURE_NAMES}

# Packets that make the soup look like MySQL often enough to reach deep parser states.
GREETING = FIXTURES["cli_native_password"].chunks[0][1]
PAYLOADS = [
    b"\x03select 1",
    b"\x16SELECT ?",
    b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00",
    b"\x17\x01\x00\x00\x00\x01\x01\x00\x00\x00",
    b"\x1c\x01\x00\x00\x00\x05\x00\x00\x00",
    b"\x19\x01\x00\x00\x00",
    b"\x02shop",
    b"\x0e",
    b"\x01",
    b"\x04t\x00",
    b"\x11root\x00\x00db\x00",
    b"\x00\x00\x00\x02\x00\x00\x00",  # OK
    b"\x00\x01\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00",  # PREPARE_OK
    b"\xff\x7a\x04#42S02no such table",
    b"\xff\xff\xff\x01\x01",  # progress
    b"\xfe\x00\x00\x02\x00",  # EOF
    b"\xfe\x00\x00\x0a\x00\x00\x00",  # OK(0xfe), more results
    b"\xfe\x00\x00\x42\x00",  # EOF, cursor exists
    b"\xfb/tmp/x",  # LOCAL INFILE
    b"\x01",  # column count / auth more data
    b"\x02\x01",  # column count + metadata flag
    b"\x03def\x00\x00\x00\x01a\x00\x0c\x21\x00\x01\x00\x00\x00\xfd\x00\x00\x00\x00\x00",
    b"\x01a",
    b"\xfb",
    b"\xfemysql_native_password\x00abc\x00",
    b"",
]


@st.composite
def mysql_packet(draw: st.DrawFn) -> bytes:
    payload = draw(st.one_of(st.sampled_from(PAYLOADS), st.binary(max_size=40)))
    seq = draw(st.integers(0, 6))
    data = packet(seq, payload)
    if draw(st.integers(0, 9)) == 0:  # a lying length
        data = lenenc(draw(st.integers(0, 250)))[:1] + data[1:]
    return data


mysql_soup = st.lists(mysql_packet(), max_size=12).map(b"".join)
feed_data = st.one_of(st.binary(max_size=300), mysql_soup, st.just(GREETING))
feeds = st.lists(
    st.tuples(
        st.sampled_from([Direction.EGRESS, Direction.INGRESS]),
        feed_data,
        st.one_of(st.none(), st.integers(min_value=0, max_value=5000)),
    ),
    max_size=25,
)


def check_bounds(session: MysqlSession) -> None:
    assert session.internal_errors == 0
    limit = session.max_buffer + 8
    for stream in session._streams:
        assert len(stream.kept) + len(stream.hdr) <= limit
        assert stream.probe_size <= 1100
    assert session.pending_requests <= session._stitcher.max_pending
    assert session.prepared_statements <= session._statements.max_statements


def check_transactions(transactions: list) -> None:
    for t in transactions:
        assert t.protocol == "mysql"
        assert t.start_ns <= t.end_ns
        assert t.request_size >= 0 and t.response_size >= 0
        if t.response is not None:
            assert t.response.wire_size == t.response_size
            assert t.response.row_count >= 0 and t.response.results >= 0


def report(capsys: pytest.CaptureFixture[str], name: str, count: int) -> None:
    with capsys.disabled():
        print(f"\n[hypothesis] mysql {name}: {count} examples")


def test_fuzz_arbitrary_feeds(capsys: pytest.CaptureFixture[str]) -> None:
    count = 0

    @SETTINGS
    @given(feeds=feeds, max_buffer=st.integers(min_value=256, max_value=4096), max_pending=st.integers(1, 8))
    def run(feeds: list, max_buffer: int, max_pending: int) -> None:
        nonlocal count
        count += 1
        session = MysqlSession(max_buffer=max_buffer, max_pending=max_pending, max_statements=2)
        out = []
        for ts, (direction, data, extra) in enumerate(feeds):
            total = None if extra is None else len(data) + extra
            out += session.feed(direction, data, ts, total)
            check_bounds(session)
        out += session.close(len(feeds))
        check_bounds(session)
        check_transactions(out)
        assert session.buffered_bytes == 0

    run()
    report(capsys, "arbitrary feeds", count)
    assert count >= 100


@st.composite
def mutated_fixture(draw: st.DrawFn) -> tuple[str, Role, list[tuple[Direction, bytes, int | None]]]:
    name = draw(st.sampled_from(FIXTURE_NAMES))
    role = draw(st.sampled_from([Role.CLIENT, Role.SERVER]))
    dirs = PERSPECTIVES[role]
    pieces: list[tuple[Direction, bytes, int | None]] = []
    for side, data in FIXTURES[name].chunks:
        data = bytearray(data)
        for _ in range(draw(st.integers(0, 2))):  # mutations of this chunk
            op = draw(st.sampled_from(["flip", "insert", "delete", "none"]))
            at = draw(st.integers(0, len(data)))
            if op == "flip" and at < len(data):
                data[at] ^= draw(st.integers(1, 255))
            elif op == "insert":
                data[at:at] = draw(st.one_of(st.binary(min_size=1, max_size=20), mysql_packet()))
            elif op == "delete":
                del data[at : at + draw(st.integers(1, 50))]
        # split the chunk, and maybe capture only a prefix of each piece
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=3)))
        bounds = [0, *cuts, len(data)]
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            piece = bytes(data[lo:hi])
            if piece and draw(st.integers(0, 9)) == 0:  # truncated capture
                kept = draw(st.integers(0, len(piece)))
                pieces.append((dirs[side], piece[:kept], len(piece) + draw(st.integers(0, 100))))
            else:
                pieces.append((dirs[side], piece, None))
    return name, role, pieces


def test_fuzz_mutated_fixtures(capsys: pytest.CaptureFixture[str]) -> None:
    count = 0

    @SETTINGS
    @given(case=mutated_fixture(), max_buffer=st.sampled_from([256, 1024, 64 * 1024]))
    def run(case: tuple, max_buffer: int) -> None:
        nonlocal count
        count += 1
        _, _, pieces = case
        session = MysqlSession(max_buffer=max_buffer)
        out = []
        for ts, (direction, data, total_len) in enumerate(pieces):
            out += session.feed(direction, data, ts, total_len)
            check_bounds(session)
        out += session.close(len(pieces))
        check_bounds(session)
        check_transactions(out)

    run()
    report(capsys, "mutated fixtures", count)
    assert count >= 100


def test_fuzz_random_splits_give_the_same_transactions(capsys: pytest.CaptureFixture[str]) -> None:
    count = 0
    whole = {}
    for name, fixture in FIXTURES.items():
        session = MysqlSession()
        out = []
        for ts, (side, data) in enumerate(fixture.chunks):
            out += session.feed(PERSPECTIVES[Role.CLIENT][side], data, ts)
        out += session.close(len(fixture.chunks))
        whole[name] = [(t.request, t.response, t.request_size, t.response_size) for t in out]

    @SETTINGS
    @given(name=st.sampled_from(FIXTURE_NAMES), data=st.data())
    def run(name: str, data: st.DataObject) -> None:
        nonlocal count
        count += 1
        session = MysqlSession()
        out = []
        ts = 0
        for side, chunk in FIXTURES[name].chunks:
            cuts = sorted(data.draw(st.lists(st.integers(0, len(chunk)), max_size=6)))
            bounds = [0, *cuts, len(chunk)]
            for lo, hi in zip(bounds, bounds[1:], strict=False):
                out += session.feed(PERSPECTIVES[Role.CLIENT][side], chunk[lo:hi], ts)
                ts += 1
        out += session.close(ts)
        assert [(t.request, t.response, t.request_size, t.response_size) for t in out] == whole[name]
        assert session.parse_errors == 0

    run()
    report(capsys, "random splits", count)
    assert count >= 100


def test_fuzz_detect(capsys: pytest.CaptureFixture[str]) -> None:
    count = 0

    @SETTINGS
    @given(data=st.one_of(st.binary(max_size=200), mysql_soup, st.builds(lambda p, n: p[:n], mysql_soup, st.integers(0, 80))))
    def run(data: bytes) -> None:
        nonlocal count
        count += 1
        assert detect(data) in (True, False)

    run()
    report(capsys, "detect", count)
    assert count >= 100
