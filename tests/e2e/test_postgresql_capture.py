"""PostgreSQL through the real kernel capture: a real server, real psql and psycopg clients.

The receiver runs in-process (``EbpfReceiver`` with the default configuration); the server
and the clients are child processes, so the kernel does not filter them out.  Every client
run is checked from the client's side (transactions whose pid is the client's) and, for the
counts, from the server's side too (the backend process that served it), over TCP on
127.0.0.1 and over the server's unix socket.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from receiver.model.transaction import TrackedTransaction
from receiver.receivers.ebpf.receiver import EbpfReceiver
from receiver.config import load_config
from receiver.protocols.base import Role
from receiver.protocols.postgresql import PgRequestKind, PgStatus
from tests.fixtures.record_postgresql import DATABASE, PSQL, PostgresServer

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

TRANSPORTS = ["tcp", "unix"]
NO_TABLE_MESSAGE = 'relation "no_such_table" does not exist'
WAIT_S = 15.0


class Collected:
    """Thread-safe sink for the receiver's ``on_transactions`` callback."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[TrackedTransaction] = []

    def __call__(self, batch: list[TrackedTransaction]) -> None:
        with self._lock:
            self._items.extend(batch)

    def postgresql(self) -> list[TrackedTransaction]:
        with self._lock:
            return [t for t in self._items if t.transaction.protocol == "postgresql"]

    def wait_for(self, predicate, count: int) -> list[TrackedTransaction]:
        """Transactions matching ``predicate`` once ``count`` arrived and no more follow (bounded)."""
        deadline = time.monotonic() + WAIT_S
        found: list[TrackedTransaction] = []
        while time.monotonic() < deadline:
            found = [t for t in self.postgresql() if predicate(t)]
            if len(found) >= count:
                time.sleep(0.3)  # anything extra would show up now
                return [t for t in self.postgresql() if predicate(t)]
            time.sleep(0.05)
        return found


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with PostgresServer() as pg:
        yield pg


@pytest.fixture(scope="module")
def capture(server: PostgresServer) -> Iterator[Collected]:
    collected = Collected()
    receiver = EbpfReceiver(load_config(None).receivers["ebpf"], on_transactions=collected)
    receiver.start()
    try:
        yield collected
    finally:
        receiver.shutdown()


def host_args(server: PostgresServer, transport: str) -> list[str]:
    host = "127.0.0.1" if transport == "tcp" else str(server.socket_dir)
    return ["-h", host, "-p", str(server.port)]


def dsn(server: PostgresServer, transport: str, app: str) -> str:
    params = {"application_name": app, "gssencmode": "disable"}
    return server.tcp_dsn(**params) if transport == "tcp" else server.unix_dsn(**params)


def check_tuple(t: TrackedTransaction, server: PostgresServer, transport: str) -> None:
    if transport == "tcp":
        assert t.tuple.family == socket.AF_INET
        assert t.tuple.remote_addr == "127.0.0.1" and t.tuple.remote_port == server.port
    else:
        assert t.tuple.family == socket.AF_UNIX
        assert t.tuple.local_port == 0 and t.tuple.remote_port == 0


def server_side(app: str):
    return lambda t: t.transaction.role is Role.SERVER and t.transaction.request.application_name == app


# -- psql: the simple protocol -----------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_psql_simple_queries(server: PostgresServer, capture: Collected, transport: str) -> None:
    table = f"e2e_psql_{transport}"
    app = f"e2e-psql-{transport}"
    commands = [
        f"CREATE TABLE {table} (id int, name text)",
        f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b'), (3, 'c')",
        f"SELECT pg_backend_pid() AS a; SELECT id FROM {table} ORDER BY id; UPDATE {table} SET name = 'z' WHERE id > 1",
        f"DELETE FROM {table} WHERE id = 3",
        "SELECT * FROM no_such_table",
    ]
    argv = [PSQL, "-X", *host_args(server, transport), "-U", "postgres", "-d", DATABASE]
    for c in commands:
        argv += ["-c", c]
    env = {"PGAPPNAME": app, "PGGSSENCMODE": "disable", "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=30)
    assert "INSERT 0 3" in out and NO_TABLE_MESSAGE in err

    got = capture.wait_for(lambda t: t.pid == proc.pid, len(commands))
    assert len(got) == len(commands)
    txs = [t.transaction for t in got]
    for t in got:
        check_tuple(t, server, transport)
    assert all(t.role is Role.CLIENT for t in txs)
    assert [t.request.kind for t in txs] == [PgRequestKind.SIMPLE_QUERY] * len(commands)
    assert [t.request.query for t in txs] == commands
    assert all((t.request.database, t.request.user, t.request.application_name) == (DATABASE, "postgres", app) for t in txs)
    assert [[(c.operation, c.rows) for c in t.response.commands] for t in txs] == [
        [("CREATE TABLE", None)],
        [("INSERT", 3)],
        [("SELECT", 1), ("SELECT", 3), ("UPDATE", 2)],
        [("DELETE", 1)],
        [],
    ]
    assert [t.response.status for t in txs] == [PgStatus.OK] * 4 + [PgStatus.ERROR]
    error = txs[-1].response.error
    assert (error.sqlstate, error.severity, error.message) == ("42P01", "ERROR", NO_TABLE_MESSAGE)
    assert txs[2].response.data_rows == 4
    assert all(t.start_ns <= t.end_ns for t in txs)

    # The backend that served psql saw the same queries, and its spans are its own: the process
    # the postmaster forked for the connection (gone by now), not the postmaster that accepted it.
    served = capture.wait_for(server_side(app), len(commands))
    assert [t.transaction.request.query for t in served] == commands
    backend = re.search(r"^\s*a\s*\n-+\n\s*(\d+)\s*\n\(1 row\)", out, re.MULTILINE)
    assert backend is not None, out
    assert {t.pid for t in served} == {int(backend[1])}
    assert int(backend[1]) != server.postmaster_pid()


# -- psycopg: the extended protocol ---------------------------------------------------------------

PSYCOPG_CLIENT = r'''
import sys, psycopg
table = sys.argv[2]
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text)")
    cur.execute(f"INSERT INTO {table} VALUES (%s, %s), (%s, %s)", (1, "one", 2, "two"))
    for _ in range(2):
        cur.execute(f"SELECT name FROM {table} WHERE id = %s", (1,), prepare=True)
        assert cur.fetchall() == [("one",)]
    cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", [(3, "c"), (4, "d"), (5, "e")])
    cur.execute(f"UPDATE {table} SET name = %s WHERE id > %s", ("big", 2))
    cur.execute(f"DELETE FROM {table} WHERE id = %s", (5,))
    try:
        cur.execute("SELECT * FROM no_such_table WHERE id = %s", (1,))
    except psycopg.errors.UndefinedTable:
        pass
    try:
        with conn.pipeline():
            conn.execute("SELECT %s::int", (1,))
            conn.execute("SELECT * FROM no_such_table")
            conn.execute(f"DELETE FROM {table} WHERE id = %s", (1,))
    except psycopg.errors.UndefinedTable:
        pass
print("done")
'''


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_psycopg_extended_protocol(server: PostgresServer, capture: Collected, transport: str) -> None:
    table = f"e2e_pg3_{transport}"
    app = f"e2e-psycopg-{transport}"
    proc = subprocess.Popen(
        [sys.executable, "-c", PSYCOPG_CLIENT, dsn(server, transport, app), table],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out.strip() == "done", err

    expected = [
        # (kind, query, statement name, status, [(operation, rows)], data rows)
        ("simple_query", f"CREATE TABLE {table} (id int PRIMARY KEY, name text)", None, "ok", [("CREATE TABLE", None)], 0),
        ("execute", f"INSERT INTO {table} VALUES ($1, $2), ($3, $4)", "", "ok", [("INSERT", 2)], 0),
        ("execute", f"SELECT name FROM {table} WHERE id = $1", "_pg3_0", "ok", [("SELECT", 1)], 1),
        ("execute", f"SELECT name FROM {table} WHERE id = $1", "_pg3_0", "ok", [("SELECT", 1)], 1),
        ("execute", f"INSERT INTO {table} VALUES ($1, $2)", "_pg3_1", "ok", [("INSERT", 1)], 0),
        ("execute", f"INSERT INTO {table} VALUES ($1, $2)", "_pg3_1", "ok", [("INSERT", 1)], 0),
        ("execute", f"INSERT INTO {table} VALUES ($1, $2)", "_pg3_1", "ok", [("INSERT", 1)], 0),
        ("execute", f"UPDATE {table} SET name = $1 WHERE id > $2", "", "ok", [("UPDATE", 3)], 0),
        ("execute", f"DELETE FROM {table} WHERE id = $1", "", "ok", [("DELETE", 1)], 0),
        ("execute", "SELECT * FROM no_such_table WHERE id = $1", "", "error", [], 0),
        ("execute", "SELECT $1::int", "", "ok", [("SELECT", 1)], 1),
        ("execute", "SELECT * FROM no_such_table", "", "error", [], 0),
        ("execute", f"DELETE FROM {table} WHERE id = $1", "", "aborted", [], 0),
    ]
    got = capture.wait_for(lambda t: t.pid == proc.pid, len(expected))
    txs = [t.transaction for t in got]
    assert [
        (
            t.request.kind.value,
            t.request.query,
            t.request.statement_name,
            t.response.status.value,
            [(c.operation, c.rows) for c in t.response.commands],
            t.response.data_rows,
        )
        for t in txs
    ] == expected
    for t in got:
        check_tuple(t, server, transport)
    assert all(t.role is Role.CLIENT for t in txs)
    assert all((t.request.database, t.request.user, t.request.application_name) == (DATABASE, "postgres", app) for t in txs)
    errors = [t.response.error for t in txs if t.response.status is PgStatus.ERROR]
    assert [(e.sqlstate, e.severity, e.message) for e in errors] == [("42P01", "ERROR", NO_TABLE_MESSAGE)] * 2
    assert txs[1].request.parameter_count == 4
    assert all(t.start_ns <= t.end_ns and t.request_size > 0 for t in txs)

    served = capture.wait_for(server_side(app), len(expected))
    assert [(t.transaction.request.query, t.transaction.response.status.value) for t in served] == [
        (e[1], e[3]) for e in expected
    ]
