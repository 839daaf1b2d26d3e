"""Property-based fuzzing of PostgresSession and detect: never raises, stays within its bounds,
and generated valid conversations parse exactly.

Every test counts the examples it ran and prints the count (visible in the pytest output).
``internal_errors`` counts exceptions caught by the session's last-resort handler, so it must
stay 0: wire data is handled by the parser, never by the safety net.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_support import (
    BIND_COMPLETE,
    CANCEL_REQUEST,
    COPY_DONE,
    EMPTY_QUERY,
    FIXTURE_NAMES,
    FLUSH,
    GSSENC_REQUEST,
    IN,
    KEY_DATA,
    NO_DATA,
    OUT,
    PARSE_COMPLETE,
    PERSPECTIVES,
    PORTAL_SUSPENDED,
    SSL_REQUEST,
    SYNC,
    TERMINATE,
    auth,
    bind,
    close_msg,
    command_complete,
    copy_data,
    copy_response,
    data_row,
    describe,
    error_response,
    execute,
    handshake,
    load_fixture,
    notice,
    notification,
    parameter_status,
    parse,
    password,
    query,
    ready,
    row_description,
    startup,
)

from receiver.protocols.base import Direction, Role
from receiver.protocols.postgresql import PgStatus, PostgresSession, detect

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,  # keep the checkout clean
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FIXTURES = {name: load_fixture(name) for name in FIXTURE_NAMES}
SMALL_FIXTURES = [n for n in FIXTURE_NAMES if n != "psycopg_large"]

# Pieces that make the soup look like PostgreSQL often enough to reach deep parser states.
PG_PIECES = [
    startup(), SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST, b"N", b"S", b"G",
    query("SELECT 1"), query(""), parse("SELECT $1", "s"), parse("SELECT 2"), bind("s", "", (b"1", None)), bind(),
    describe(), describe(b"S", "s"), execute(), execute("p", 5), SYNC, FLUSH, TERMINATE, close_msg(b"S", "s"),
    password(b"md5secret\x00"), copy_data(b"1\tx\n"), COPY_DONE,
    auth(0), auth(5, b"salt"), auth(10, b"SCRAM-SHA-256\x00\x00"), KEY_DATA, handshake(), ready(), ready("E"),
    parameter_status("application_name", "x"), row_description("a", "b"), data_row(b"1", None), data_row(b"x" * 300),
    command_complete("SELECT 1"), command_complete("DISCARD ALL"), error_response(), notice(), notification(),
    PARSE_COMPLETE, BIND_COMPLETE, NO_DATA, EMPTY_QUERY, PORTAL_SUSPENDED, copy_response(b"G"), copy_response(b"H"),
    b"Q\x00\x00", b"D\x00\x00\x00", b"\x00\x00\x00", b"\xff\xff\xff\xff", b"\x00",
]

pg_soup = st.lists(st.sampled_from(PG_PIECES), max_size=30).map(b"".join)
feed_data = st.one_of(st.binary(max_size=300), pg_soup)
feeds = st.lists(
    st.tuples(
        st.sampled_from([Direction.EGRESS, Direction.INGRESS]),
        feed_data,
        st.one_of(st.none(), st.integers(min_value=0, max_value=5000)),
    ),
    max_size=25,
)


def check_bounds(session: PostgresSession) -> None:
    assert session.internal_errors == 0
    for stream in session._streams:
        assert len(stream.buf) <= session.max_buffer
    stitcher = session._stitcher
    assert stitcher.queued <= stitcher.max_pending + 1  # + the OVERFLOW counter item
    assert len(stitcher.statements) <= stitcher.max_statements
    assert stitcher.statement_bytes <= stitcher.max_statement_bytes
    assert len(stitcher.portals) <= stitcher.max_portals


def check_transactions(transactions: list) -> None:
    for t in transactions:
        assert t.protocol == "postgresql"
        assert t.start_ns <= t.end_ns
        assert t.request_size == t.request.wire_size > 0
        if t.response is not None:
            assert t.response_size == t.response.wire_size >= 0
            assert t.response.data_rows >= 0


def report(capsys: pytest.CaptureFixture[str], name: str, count: int) -> None:
    with capsys.disabled():
        print(f"\n[hypothesis] {name}: {count} examples")


def test_fuzz_arbitrary_feeds(capsys: pytest.CaptureFixture[str]) -> None:
    count = 0

    @SETTINGS
    @given(feeds=feeds, max_buffer=st.sampled_from([256, 1024, 64 * 1024]), max_pending=st.integers(1, 8),
           max_statements=st.integers(1, 4))
    def run(feeds: list, max_buffer: int, max_pending: int, max_statements: int) -> None:
        nonlocal count
        count += 1
        session = PostgresSession(max_buffer=max_buffer, max_pending=max_pending, max_statements=max_statements)
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
def mutated_fixture(draw: st.DrawFn) -> tuple[str, list[tuple[Direction, bytes, int | None]]]:
    name = draw(st.sampled_from(FIXTURE_NAMES))
    dirs = PERSPECTIVES[draw(st.sampled_from([Role.CLIENT, Role.SERVER]))]
    pieces: list[tuple[Direction, bytes, int | None]] = []
    chunks = FIXTURES[name].chunks
    if name == "psycopg_large":  # keep examples fast: the startup, a slice of the rows, the end
        chunks = chunks[:6] + chunks[-5:]
    for side, data in chunks:
        data = bytearray(data)
        for _ in range(draw(st.integers(0, 2))):  # mutations of this chunk
            op = draw(st.sampled_from(["flip", "insert", "delete", "none"]))
            at = draw(st.integers(0, len(data)))
            if op == "flip" and at < len(data):
                data[at] ^= draw(st.integers(1, 255))
            elif op == "insert":
                data[at:at] = draw(st.one_of(st.binary(min_size=1, max_size=20), st.sampled_from(PG_PIECES)))
            elif op == "delete":
                del data[at : at + draw(st.integers(1, 50))]
        # split the chunk, and maybe capture only a prefix of each piece (total_len > data)
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=3)))
        bounds = [0, *cuts, len(data)]
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            piece = bytes(data[lo:hi])
            if piece and draw(st.integers(0, 7)) == 0:
                kept = draw(st.integers(0, len(piece)))
                pieces.append((dirs[side], piece[:kept], len(piece) + draw(st.integers(0, 100))))
            else:
                pieces.append((dirs[side], piece, None))
    return name, pieces


def test_fuzz_mutated_fixtures(capsys: pytest.CaptureFixture[str]) -> None:
    count = 0

    @SETTINGS
    @given(case=mutated_fixture(), max_buffer=st.sampled_from([256, 1024, 64 * 1024]))
    def run(case: tuple, max_buffer: int) -> None:
        nonlocal count
        count += 1
        _, pieces = case
        session = PostgresSession(max_buffer=max_buffer, max_pending=16)
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
    for name in SMALL_FIXTURES:
        session = PostgresSession()
        out = []
        for side, data in FIXTURES[name].chunks:
            out += session.feed(PERSPECTIVES[Role.CLIENT][side], data, 0)
        whole[name] = [(t.request, t.response) for t in out + session.close(0)]

    @SETTINGS
    @given(name=st.sampled_from(SMALL_FIXTURES), role=st.sampled_from([Role.CLIENT, Role.SERVER]), data=st.data())
    def run(name: str, role: Role, data: st.DataObject) -> None:
        nonlocal count
        count += 1
        session = PostgresSession()
        out = []
        for side, chunk in FIXTURES[name].chunks:
            cuts = sorted(data.draw(st.lists(st.integers(0, len(chunk)), max_size=6)))
            bounds = [0, *cuts, len(chunk)]
            for lo, hi in zip(bounds, bounds[1:], strict=False):
                out += session.feed(PERSPECTIVES[role][side], chunk[lo:hi], 0)
        out += session.close(0)
        assert [(t.request, t.response) for t in out] == whole[name]
        assert session.parse_errors == 0 and all(t.role is role for t in out)

    run()
    report(capsys, "random splits", count)
    assert count >= 100


def test_fuzz_detect_never_raises(capsys: pytest.CaptureFixture[str]) -> None:
    count = 0

    @SETTINGS
    @given(data=st.one_of(st.binary(max_size=400), pg_soup))
    def run(data: bytes) -> None:
        nonlocal count
        count += 1
        assert detect(data) in (True, False)

    run()
    report(capsys, "detect", count)
    assert count >= 100


# -- model-based: generated valid conversations must parse exactly ---------------------------

SQL = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_characters="\x7f"), max_size=40)
TAGS = ["SELECT 3", "INSERT 0 1", "UPDATE 7", "DELETE 0", "CREATE TABLE", "BEGIN", "COMMIT", "COPY 2"]


@st.composite
def statement_result(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    """One statement's answer: rows + CommandComplete, an empty query, or an error."""
    kind = draw(st.sampled_from(["rows", "command", "empty", "error"]))
    if kind == "rows":
        rows = draw(st.integers(0, 5))
        tag = f"SELECT {rows}"
        return row_description("c") + data_row(b"v") * rows + command_complete(tag), {"tag": tag, "rows": rows}
    if kind == "command":
        tag = draw(st.sampled_from(TAGS))
        return command_complete(tag), {"tag": tag, "rows": 0}
    if kind == "empty":
        return EMPTY_QUERY, {"empty": True}
    code = draw(st.sampled_from(["42P01", "23505", "22012"]))
    return error_response(code, "boom"), {"error": code}


@st.composite
def conversation(draw: st.DrawFn) -> tuple[list[tuple[Direction, bytes]], list[dict[str, Any]]]:
    """Startup, then simple queries and extended pipelines with their answers, and the
    transactions they must give."""
    app = draw(st.sampled_from([None, "app"]))
    pieces: list[tuple[Direction, bytes]] = [(OUT, startup(application_name=app)), (IN, handshake(app))]
    expected: list[dict[str, Any]] = []
    statements: dict[str, str] = {}
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):  # a simple query with 1-3 statements
            sql = draw(SQL)
            answer = b""
            commands: list[str] = []
            error = None
            rows = 0
            for _ in range(draw(st.integers(1, 3))):
                wire, result = draw(statement_result())
                answer += wire
                if "empty" in result:
                    continue
                if "error" in result:
                    error = result["error"]
                    break
                commands.append(result["tag"])
                rows += result["rows"]
            empty = not commands and error is None
            pieces += [(OUT, query(sql)), (IN, answer + ready())]
            status = "error" if error else "empty" if empty and answer.startswith(EMPTY_QUERY) else "ok"
            expected.append({"kind": "simple_query", "query": sql, "commands": commands, "status": status,
                             "error": error, "rows": rows})
        else:  # an extended pipeline: 1-4 Executes, one Sync; an error aborts the rest
            request = b""
            answer = b""
            failed = False
            for _ in range(draw(st.integers(1, 4))):
                name = draw(st.sampled_from(["", "s1", "s2"]))
                reuse = name != "" and name in statements and draw(st.booleans())
                if reuse:
                    sql = statements[name]
                else:
                    sql = draw(SQL)
                    statements[name] = sql
                    request += parse(sql, name)
                request += bind(name, "", (b"1",)) + describe() + execute()
                if failed:
                    expected.append({"kind": "execute", "query": sql, "commands": [], "status": "aborted",
                                     "error": None, "rows": 0})
                    continue
                wire, result = draw(statement_result())
                answer += (b"" if reuse else PARSE_COMPLETE) + BIND_COMPLETE + wire
                if "error" in result:
                    failed = True
                    expected.append({"kind": "execute", "query": sql, "commands": [], "status": "error",
                                     "error": result["error"], "rows": 0})
                elif "empty" in result:
                    expected.append({"kind": "execute", "query": sql, "commands": [], "status": "empty",
                                     "error": None, "rows": 0})
                else:
                    expected.append({"kind": "execute", "query": sql, "commands": [result["tag"]], "status": "ok",
                                     "error": None, "rows": result["rows"]})
            pieces += [(OUT, request + SYNC), (IN, answer + ready())]
    pieces.append((OUT, TERMINATE))
    return pieces, expected


def test_generated_conversations_parse_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    count = 0

    @SETTINGS
    @given(case=conversation(), role=st.sampled_from([Role.CLIENT, Role.SERVER]), data=st.data())
    def run(case: tuple, role: Role, data: st.DataObject) -> None:
        nonlocal count
        count += 1
        pieces, expected = case
        session = PostgresSession()
        out = []
        flip = role is Role.SERVER
        for ts, (direction, chunk) in enumerate(pieces):
            direction = Direction(1 - direction) if flip else direction
            cuts = sorted(data.draw(st.lists(st.integers(0, len(chunk)), max_size=3)))
            bounds = [0, *cuts, len(chunk)]
            for lo, hi in zip(bounds, bounds[1:], strict=False):
                out += session.feed(direction, chunk[lo:hi], ts)
        out += session.close(len(pieces))
        got = [
            {
                "kind": t.request.kind.value,
                "query": t.request.query,
                "commands": [c.tag for c in t.response.commands],
                "status": t.response.status.value,
                "error": t.response.error.sqlstate if t.response.error else None,
                "rows": t.response.data_rows,
            }
            for t in out
        ]
        assert got == expected
        assert session.parse_errors == 0 and session.dropped_requests == 0
        assert all(t.role is role and t.response.status is not PgStatus.INCOMPLETE for t in out)

    run()
    report(capsys, "generated conversations", count)
    assert count >= 100
