"""Real captured connections (tests/fixtures/mysql, see record_mysql.py) through MysqlSession.

Each fixture is fed whole (chunk by chunk, as captured), one byte at a time, and with trailing
data, from both sides (traced process = client, and = server); then with kernel-style
truncated captures and attached mid-connection.
"""

from __future__ import annotations

import pytest
from mysql_support import (
    FIXTURE_NAMES,
    PERSPECTIVES,
    Fixture,
    comparable,
    feed_all,
    feed_fixture,
    known,
    load_fixture,
    packet,
    summary,
)

from receiver.protocols.base import Role
from receiver.protocols.mysql import MysqlHandshake, MysqlSession, ResponseKind, detect

ROLES = [Role.CLIENT, Role.SERVER]


@pytest.fixture(scope="module", params=FIXTURE_NAMES)
def fixture(request: pytest.FixtureRequest) -> Fixture:
    return load_fixture(request.param)


def client_packets(fixture: Fixture) -> list[tuple[int, int, int]]:
    """(seq, first payload byte, wire size) of each client packet — a plain splitter, used to
    account for the packets that belong to no transaction."""
    stream = b"".join(data for side, data in fixture.chunks if side == "c2s")
    out = []
    pos = 0
    while pos + 4 <= len(stream):
        length = int.from_bytes(stream[pos : pos + 3], "little")
        out.append((stream[pos + 3], stream[pos + 4] if length else -1, length + 4))
        pos += 4 + length
    return out


def assert_matches(fixture: Fixture, transactions: list) -> None:
    got = [summary(t) for t in transactions]
    assert len(got) == len(fixture.transactions), [g["command"] for g in got]
    for expected, actual in zip(fixture.transactions, got, strict=True):
        assert comparable(expected, actual) == known(expected)


def test_fixtures_exist() -> None:
    assert len(FIXTURE_NAMES) >= 10


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_whole_chunks(fixture: Fixture, role: Role) -> None:
    session = MysqlSession()
    transactions = feed_fixture(fixture, role, session)

    assert_matches(fixture, transactions)
    assert session.parse_errors == 0
    assert session.capture_gaps == 0
    assert session.internal_errors == 0
    assert session.role is role
    assert all(t.role is role and t.protocol == "mysql" for t in transactions)
    state = fixture.session
    assert session.tls is state["tls"]
    assert session.compressed is state["compressed"]
    if not state["tls"]:
        assert session.user == state["user"]
        assert session.schema == state["schema"]
    if "prepared_statements" in state:
        assert session.prepared_statements == state["prepared_statements"]
    if "auth_switched_to" in state:
        assert transactions[0].request.auth_switched_to == state["auth_switched_to"]
    # Timestamps are chunk indexes: a request starts in a client chunk; a response ends in a
    # server chunk (a request without response, COM_QUIT, ends where it ends).
    for t in transactions:
        assert fixture.chunks[t.start_ns][0] == "c2s"
        assert fixture.chunks[t.end_ns][0] == ("s2c" if t.response is not None else "c2s")
    assert [t.start_ns for t in transactions] == sorted(t.start_ns for t in transactions)
    assert session.buffered_bytes == 0


PARSED = [n for n in FIXTURE_NAMES if not (load_fixture(n).session["tls"] or load_fixture(n).session["compressed"])]


@pytest.mark.parametrize("name", PARSED)
@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_wire_sizes_add_up(name: str, role: Role) -> None:
    """Every byte is in exactly one transaction, except the greeting and the commands that
    have no response (COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA)."""
    fixture = load_fixture(name)
    session = MysqlSession()
    transactions = feed_fixture(fixture, role, session)
    no_response = sum(size for seq, first, size in client_packets(fixture) if seq == 0 and first in (0x18, 0x19))
    assert sum(t.request_size for t in transactions) + no_response == fixture.c2s_bytes
    assert sum(t.response_size for t in transactions) + session.greeting.wire_size == fixture.s2c_bytes
    for t in transactions:
        assert t.request.wire_size == t.request_size
        if t.response is not None:
            assert t.response.wire_size == t.response_size


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_byte_by_byte(fixture: Fixture, role: Role) -> None:
    whole = feed_fixture(fixture, role, MysqlSession())
    dirs = PERSPECTIVES[role]
    session = MysqlSession()
    pieces = []
    chunk_of: list[int] = []  # per fed byte: the chunk it came from
    for i, (side, data) in enumerate(fixture.chunks):
        for byte in data:
            pieces.append((dirs[side], bytes((byte,)), len(pieces), None))
            chunk_of.append(i)
    transactions = feed_all(session, pieces, close_ts=len(pieces))

    assert [(t.request, t.response) for t in transactions] == [(t.request, t.response) for t in whole]
    assert session.parse_errors == 0
    assert session.internal_errors == 0
    # The timestamps are those of the first request byte and of the last response byte.
    for fine, coarse in zip(transactions, whole, strict=True):
        assert chunk_of[fine.start_ns] == coarse.start_ns
        assert chunk_of[fine.end_ns] == coarse.end_ns
        assert (fine.request_size, fine.response_size) == (coarse.request_size, coarse.response_size)


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_trailing_data(fixture: Fixture, role: Role) -> None:
    """Half a command and half a response after the capture change nothing."""
    dirs = PERSPECTIVES[role]
    session = MysqlSession()
    pieces = [(dirs[side], data, i, None) for i, (side, data) in enumerate(fixture.chunks)]
    n = len(pieces)
    half_query = packet(0, b"\x03SELECT * FROM somewhere_else")[:17]
    pieces.append((dirs["c2s"], half_query, n, None))
    pieces.append((dirs["s2c"], b"\x05\x00", n + 1, None))
    transactions = feed_all(session, pieces, close_ts=n + 2)

    assert_matches(fixture, transactions)
    assert session.parse_errors == 0
    assert session.internal_errors == 0


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_capture_truncated_at_4k(role: Role) -> None:
    """Kernel-style capture: at most 4 KiB of each read/write, with its real length.

    The ~100 KiB result set loses its framing: that response comes out flagged truncated (its
    row count a lower bound, its end found from the terminator at the end of a later feed), and
    every other transaction is exact.
    """
    fixture = load_fixture("pymysql_session")
    assert any(len(data) > 4096 for _, data in fixture.chunks)
    dirs = PERSPECTIVES[role]
    session = MysqlSession()
    pieces = [(dirs[side], data[:4096], i, len(data)) for i, (side, data) in enumerate(fixture.chunks)]
    transactions = feed_all(session, pieces, close_ts=len(pieces))

    assert session.parse_errors == 0
    assert session.capture_gaps >= 1
    got = [summary(t) for t in transactions]
    assert [g["command"] for g in got] == [e["command"] for e in fixture.transactions]
    big = next(i for i, e in enumerate(fixture.transactions) if e["query"] == "SELECT id, payload FROM big ORDER BY id")
    for i, (expected, actual) in enumerate(zip(fixture.transactions, got, strict=True)):
        if i != big:
            assert comparable(expected, actual) == known(expected)
    response = transactions[big].response
    assert response.truncated and response.kind is ResponseKind.RESULT_SET
    assert 0 < response.row_count < fixture.transactions[big]["rows"]
    # Its end is the feed with the terminator, and its wire size counts every byte.
    last_server_chunk = max(i for i, (side, _) in enumerate(fixture.chunks) if side == "s2c" and i < transactions[big + 1].start_ns)
    assert transactions[big].end_ns == last_server_chunk
    whole = feed_fixture(fixture, role, MysqlSession())
    assert transactions[big].response_size == whole[big].response_size


def test_query_longer_than_capture_is_cut_not_lost() -> None:
    """Commands captured only in part (capture_size 32): the SQL text is cut and flagged, the
    rest of the packet skipped by length, every transaction still found."""
    fixture = load_fixture("raw_mariadb_metadata_cache")
    session = MysqlSession()
    dirs = PERSPECTIVES[Role.CLIENT]
    pieces = [
        (dirs[side], data[:32], i, len(data)) if side == "c2s" and data[3] == 0 else (dirs[side], data, i, None)
        for i, (side, data) in enumerate(fixture.chunks)
    ]
    transactions = feed_all(session, pieces, close_ts=len(pieces))
    assert [summary(t)["command"] for t in transactions] == [e["command"] for e in fixture.transactions]
    assert session.parse_errors == 0
    assert session.capture_gaps == 0
    prepare = transactions[1].request
    assert prepare.query_truncated and fixture.transactions[1]["query"].startswith(prepare.query)
    assert len(prepare.query) == 32 - 5
    assert transactions[2].request.query == prepare.query  # resolved through the statement id
    assert [t.request_size for t in transactions] == [t.request_size for t in feed_fixture(fixture, Role.CLIENT, MysqlSession())]


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_mid_stream_attach(role: Role) -> None:
    """Attach after the handshake and the first PREPARE: later commands are found, no errors;
    the user and schema are unknown, the executes of the unseen PREPARE have no query text."""
    fixture = load_fixture("connector_prepared")
    dirs = PERSPECTIVES[role]
    first_execute = next(i for i, e in enumerate(fixture.transactions) if e["command"] == "COM_STMT_EXECUTE")
    full = feed_fixture(fixture, role, MysqlSession())
    start = full[first_execute].start_ns
    session = MysqlSession()
    pieces = [(dirs[side], data, i, None) for i, (side, data) in enumerate(fixture.chunks) if i >= start]
    transactions = feed_all(session, pieces, close_ts=len(fixture.chunks))

    assert session.parse_errors == 0
    assert session.role is role
    expected = fixture.transactions[first_execute:]
    assert [summary(t)["command"] for t in transactions] == [e["command"] for e in expected]
    for t, e in zip(transactions, expected, strict=True):
        assert t.request.user == "" and t.request.schema == ""
        if e["command"] != "COM_QUIT":
            assert t.response.row_count == e["rows"] or e["rows"] is None
        if t.request.name == "COM_STMT_EXECUTE" and t.request.statement_id == 1:
            assert t.request.query == ""  # prepared before the attach
        elif e["command"] in ("COM_STMT_EXECUTE", "COM_STMT_PREPARE"):
            assert t.request.query == e["query"]


def test_mid_stream_attach_inside_a_result_set() -> None:
    """Attach inside the 1000-row response: skipped without errors, the next commands parse."""
    fixture = load_fixture("pymysql_session")
    start = next(i for i, (side, data) in enumerate(fixture.chunks) if side == "s2c" and len(data) > 4096) + 1
    session = MysqlSession()
    dirs = PERSPECTIVES[Role.CLIENT]
    pieces = [(dirs[side], data, i, None) for i, (side, data) in enumerate(fixture.chunks) if i >= start]
    transactions = feed_all(session, pieces, close_ts=len(fixture.chunks))
    assert session.parse_errors == 0
    expected = [e for e in fixture.transactions if e["command"] != "CONNECT"]
    commands = [summary(t)["command"] for t in transactions]
    assert commands == [e["command"] for e in expected[-len(commands) :]]
    assert len(commands) >= 6


def test_detect_on_every_fixture() -> None:
    for name in FIXTURE_NAMES:
        fixture = load_fixture(name)
        side, first = fixture.chunks[0]
        assert side == "s2c" and detect(first), name
        assert not detect(fixture.chunks[1][1]), name  # a HandshakeResponse (sequence id 1) is not claimed


def test_detect_command_packets_for_mid_stream_attach() -> None:
    fixture = load_fixture("pymysql_session")
    commands = [data for side, data in fixture.chunks if side == "c2s" and data[3] == 0]
    assert commands and all(detect(data) for data in commands)
    responses = [data for side, data in fixture.chunks if side == "s2c"][1:]
    assert not any(detect(data) for data in responses)


def test_handshake_transaction_fields() -> None:
    fixture = load_fixture("cli_native_password")
    transactions = feed_fixture(fixture, Role.CLIENT, MysqlSession())
    connect = transactions[0]
    assert isinstance(connect.request, MysqlHandshake)
    assert connect.request.operation == "CONNECT"
    assert connect.request.user == "app" and connect.request.schema == "shop"
    assert connect.request.auth_plugin == "mysql_native_password"
    assert connect.request.server.server_version.startswith("10.11.")
    assert connect.request.server.is_mariadb
    assert dict(connect.request.connect_attributes)["_client_name"] == "libmariadb"
    assert connect.response.kind is ResponseKind.OK
    # No auth data anywhere: the 20-byte scramble answer is not in any field.
    response41 = fixture.chunks[1][1]
    user_end = response41.index(b"app\x00", 36) + 4
    scramble = response41[user_end + 1 : user_end + 1 + response41[user_end]]
    assert len(scramble) == 20
    assert scramble.hex() not in repr(connect) and repr(scramble)[2:-1] not in repr(connect)


def split_packets(data: bytes) -> list[bytes]:
    """Each packet of ``data`` as two reads, header then payload (mysql-connector-python)."""
    out = []
    pos = 0
    while pos + 4 <= len(data):
        length = int.from_bytes(data[pos : pos + 3], "little")
        out += [data[pos : pos + 4], data[pos + 4 : pos + 4 + length]]
        pos += 4 + length
    return [piece for piece in out if piece]


@pytest.mark.parametrize("name", ["connector_prepared", "connector_admin", "cli_native_password"])
def test_header_then_payload_reads_with_the_first_header_missed(name: str) -> None:
    """The tracker detects on the greeting's payload (its 4-byte header alone is undetectable):
    the session starts there and still sees the whole connection."""
    fixture = load_fixture(name)
    dirs = PERSPECTIVES[Role.CLIENT]
    pieces = []
    for i, (side, data) in enumerate(fixture.chunks):
        for piece in split_packets(data) if side == "s2c" else [data]:
            pieces.append((dirs[side], piece, i, None))
    header, payload = pieces[0][1], pieces[1][1]
    assert not detect(header) and detect(payload)
    session = MysqlSession()
    transactions = feed_all(session, pieces[1:], close_ts=len(fixture.chunks))
    assert_matches(fixture, transactions)
    assert session.parse_errors == 0 and session.role is Role.CLIENT
    assert session.greeting.wire_size == len(fixture.chunks[0][1])
