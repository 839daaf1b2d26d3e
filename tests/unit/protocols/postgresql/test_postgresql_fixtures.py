"""Real captured connections (tests/fixtures/postgresql, see record_postgresql.py) through
PostgresSession.

Each fixture is fed whole (chunk by chunk, as captured), one byte at a time, and with trailing
data, from both sides (traced process = client, and = server); then the way the kernel hands
them over (4 KiB of each write, with its real length), and starting in the middle.
"""

from __future__ import annotations

import pytest
from pg_support import (
    FIXTURE_NAMES,
    PERSPECTIVES,
    Fixture,
    command_complete,
    feed_all,
    feed_fixture,
    load_fixture,
    matches,
    query,
    row_description,
    summary,
)

from receiver.protocols.base import Role
from receiver.protocols.postgresql import PgStatus, PostgresSession

ROLES = [Role.CLIENT, Role.SERVER]


@pytest.fixture(scope="module", params=FIXTURE_NAMES)
def fixture(request: pytest.FixtureRequest) -> Fixture:
    return load_fixture(request.param)


def test_fixtures_exist() -> None:
    assert len(FIXTURE_NAMES) >= 10


def check_expected(transactions: list, fixture: Fixture) -> None:
    got = [summary(t) for t in transactions]
    assert len(got) == len(fixture.transactions)
    for t, g, want in zip(transactions, got, fixture.transactions):
        assert matches(g, want, t.request.query_truncated), (g, want)


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_whole_chunks(fixture: Fixture, role: Role) -> None:
    session = PostgresSession()
    transactions = feed_fixture(fixture, role, session)

    check_expected(transactions, fixture)
    assert session.parse_errors == 0 and session.internal_errors == 0 and session.capture_gaps == 0
    assert session.dropped_requests == 0 and session.unmatched_responses == 0
    assert (session.encrypted, session.cancel_request) == (fixture.encrypted, fixture.cancel_request)
    if fixture.startup is not None:
        assert (session.user, session.database) == (fixture.startup["user"], fixture.startup["database"])
        assert session.startup.application_name == fixture.startup["application_name"]
    if transactions:
        assert session.role is role
    assert all(t.role is role and t.protocol == "postgresql" for t in transactions)
    # Sizes never exceed the bytes on the wire; timestamps are chunk indexes: a request starts
    # in a client chunk, a response ends in a server chunk, in order.
    assert sum(t.request_size for t in transactions) <= fixture.c2s_bytes
    assert sum(t.response_size for t in transactions) <= fixture.s2c_bytes
    for t in transactions:
        assert fixture.chunks[t.start_ns][0] == "c2s"
        assert fixture.chunks[t.end_ns][0] == "s2c"
        assert t.start_ns <= t.end_ns and t.request_size == t.request.wire_size > 0
        assert t.response_size == t.response.wire_size
        assert t.response_size > 0 or t.response.status is PgStatus.ABORTED  # skipped: no answer at all
    assert [t.start_ns for t in transactions] == sorted(t.start_ns for t in transactions)
    assert session.buffered_bytes == 0 and session.pending_requests == 0


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_byte_by_byte(fixture: Fixture, role: Role) -> None:
    whole = feed_fixture(fixture, role, PostgresSession())
    dirs = PERSPECTIVES[role]
    session = PostgresSession()
    pieces = []
    for i, (side, data) in enumerate(fixture.chunks):
        if len(data) > 20000:  # the 100 KiB query and the big result: 1 KiB pieces are enough
            pieces += [(dirs[side], data[j : j + 1024], i, None) for j in range(0, len(data), 1024)]
        else:
            pieces += [(dirs[side], data[j : j + 1], i, None) for j in range(len(data))]
    transactions = feed_all(session, pieces, close_ts=len(fixture.chunks))

    assert [(t.request, t.response, t.start_ns, t.end_ns) for t in transactions] == [
        (t.request, t.response, t.start_ns, t.end_ns) for t in whole
    ]
    assert session.parse_errors == 0 and session.buffered_bytes == 0


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_trailing_data(fixture: Fixture, role: Role) -> None:
    """Another query and the start of its answer after the capture: the same transactions,
    plus that query, INCOMPLETE, at close (nothing at all after encryption or a cancel request)."""
    dirs = PERSPECTIVES[role]
    session = PostgresSession()
    pieces = [(dirs[side], data, i, None) for i, (side, data) in enumerate(fixture.chunks)]
    n = len(pieces)
    pieces.append((dirs["c2s"], query("SELECT 'trailing'") + b"Q\x00\x00", n, None))
    pieces.append((dirs["s2c"], row_description("x")[:9], n + 1, None))
    transactions = feed_all(session, pieces, close_ts=n + 2)

    if fixture.encrypted or fixture.cancel_request:
        assert transactions == []
        return
    check_expected(transactions[:-1], fixture)
    last = transactions[-1]
    assert last.request.query == "SELECT 'trailing'" and last.response.status is PgStatus.INCOMPLETE
    assert last.end_ns == n + 1 and last.response_size == len(row_description("x"))
    assert session.parse_errors == 0 and session.internal_errors == 0


def kernel_writes(fixture: Fixture, write_size: int = 8192) -> list[tuple[str, bytes]]:
    """The fixture as the server wrote it: consecutive same-direction chunks merged, the
    server's side re-cut into 8 KiB writes (the backend's send buffer)."""
    merged: list[tuple[str, bytes]] = []
    for side, data in fixture.chunks:
        if merged and merged[-1][0] == side:
            merged[-1] = (side, merged[-1][1] + data)
        else:
            merged.append((side, data))
    writes = []
    for side, data in merged:
        step = write_size if side == "s2c" else len(data)
        writes += [(side, data[i : i + step]) for i in range(0, len(data), step)]
    return writes


def test_capture_truncated_at_4k_like_the_kernel() -> None:
    """At most 4 KiB of each 8 KiB write, with its real length.  The 70 KiB query comes out
    cut.  The 5 000-row result loses rows; its CommandComplete survives only if it lies in
    the captured half of its write — if not, the Execute comes out INCOMPLETE.  Either way
    the next query gets its own answer."""
    fixture = load_fixture("psycopg_large")
    writes = kernel_writes(fixture)
    s2c = b"".join(data for side, data in writes if side == "s2c")
    tag = command_complete("SELECT 5000")
    offset = s2c.index(tag)
    tag_captured = offset % 8192 + len(tag) <= 4096
    for role in ROLES:
        session = PostgresSession()
        dirs = PERSPECTIVES[role]
        pieces = [(dirs[side], data[:4096], i, len(data)) for i, (side, data) in enumerate(writes)]
        transactions = feed_all(session, pieces, close_ts=len(pieces))

        rows, big = transactions
        assert rows.request.query == fixture.transactions[0]["query"]
        assert 0 < rows.response.data_rows < 5000
        if tag_captured:
            assert summary(rows)["commands"] == ["SELECT 5000"] and rows.response.status is PgStatus.OK
        else:
            assert rows.response.status is PgStatus.INCOMPLETE and rows.response.commands == ()
        assert writes[rows.end_ns][0] == "s2c" and rows.end_ns < big.start_ns
        assert big.request.query_truncated and fixture.transactions[1]["query"].startswith(big.request.query)
        assert big.request_size == len(query(fixture.transactions[1]["query"]))
        assert summary(big)["commands"] == ["SELECT 1"] and big.response.data_rows == 1
        assert session.parse_errors == 0 and session.internal_errors == 0 and session.capture_gaps > 0


def test_capture_truncated_with_every_possible_tag_position() -> None:
    """The same, with the result cut into writes of every size from 4 100 to 8 192 bytes
    in steps: whether or not the tag survives, nothing is mispaired."""
    fixture = load_fixture("psycopg_large")
    for write_size in range(4100, 8193, 97):
        writes = kernel_writes(fixture, write_size)
        session = PostgresSession()
        dirs = PERSPECTIVES[Role.CLIENT]
        pieces = [(dirs[side], data[:4096], i, len(data)) for i, (side, data) in enumerate(writes)]
        rows, big = feed_all(session, pieces, close_ts=len(pieces))
        assert rows.response.status in (PgStatus.OK, PgStatus.INCOMPLETE)
        assert summary(rows)["commands"] in (["SELECT 5000"], [])
        assert summary(big)["commands"] == ["SELECT 1"] and big.request.query_truncated
        assert session.parse_errors == 0 and session.pending_requests == 0


def test_capture_truncated_small_fixtures_lose_nothing() -> None:
    for name in FIXTURE_NAMES:
        fixture = load_fixture(name)
        if any(len(data) > 4096 for _, data in fixture.chunks):
            continue
        session = PostgresSession()
        dirs = PERSPECTIVES[Role.CLIENT]
        pieces = [(dirs[side], data[:4096], i, len(data)) for i, (side, data) in enumerate(fixture.chunks)]
        check_expected(feed_all(session, pieces, close_ts=len(pieces)), fixture)


@pytest.mark.parametrize("name", ["psycopg_extended", "psycopg_pipeline", "psql_simple"])
def test_mid_stream_attach_on_real_capture(name: str) -> None:
    """Start after the startup (and half the queries): the later transactions are found, with
    no database/user, and prepared statements Parsed before the start have no text."""
    fixture = load_fixture(name)
    start = len(fixture.chunks) // 2
    while fixture.chunks[start][0] != "c2s":
        start += 1
    session = PostgresSession()
    dirs = PERSPECTIVES[Role.CLIENT]
    pieces = [(dirs[side], data, i, None) for i, (side, data) in enumerate(fixture.chunks) if i >= start]
    transactions = feed_all(session, pieces, close_ts=len(fixture.chunks))

    whole = feed_fixture(fixture, Role.CLIENT, PostgresSession())
    later = [t for t in whole if t.start_ns >= start]
    assert len(transactions) == len(later) > 0
    for got, want in zip(transactions, later):
        assert got.request.database is None and got.request.user is None
        assert got.response == want.response
        assert got.request.query in (want.request.query, None)
        if got.request.statement_name in (None, ""):
            assert got.request.query == want.request.query
    assert session.parse_errors == 0 and session.role is Role.CLIENT


@pytest.mark.parametrize("name", ["psql_md5_auth", "psycopg_scram_auth"])
def test_authentication_secrets_are_never_kept(name: str) -> None:
    fixture = load_fixture(name)
    # The frontend's authentication messages ('p'): what must never be kept.
    c2s = b"".join(data for side, data in fixture.chunks if side == "c2s")
    secrets = []
    pos = 0
    while c2s[pos] == 0:  # untyped: SSLRequest, StartupMessage
        pos += int.from_bytes(c2s[pos : pos + 4], "big")
    while pos < len(c2s):
        kind, length = c2s[pos : pos + 1], int.from_bytes(c2s[pos + 1 : pos + 5], "big")
        if kind == b"p":  # md5 hash; SCRAM client-first (nonce), client-final (proof)
            secrets.append(c2s[pos + 5 : pos + 1 + length].rstrip(b"\x00")[-16:].decode("latin-1"))
        pos += 1 + length
    assert secrets
    for role in ROLES:
        session = PostgresSession()
        transactions = feed_fixture(fixture, role, session, close=False)
        kept = repr(vars(session)) + repr(vars(session._stitcher)) + repr(transactions)
        kept += "".join(repr(bytes(s.buf)) for s in session._streams)
        for secret in secrets:
            assert secret not in kept
