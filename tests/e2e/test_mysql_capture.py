"""MySQL through the real kernel capture: a real MariaDB 10.11 server, real clients (the
``mariadb`` CLI, PyMySQL, mysql-connector-python, and the recorder's raw client for
CLIENT_DEPRECATE_EOF), over TCP on 127.0.0.1 and over the server's unix socket.

The receiver runs in this process (``EbpfReceiver(cfg, on_transactions=collect)``); the kernel
filters this process out, so every client runs as a child process: ``record_mysql.py --drive
NAME`` runs one scenario's clients against the server and prints what the clients sent and saw.
Both ends are traced: each command must come out exactly once as a CLIENT transaction (from the
client process) and once as a SERVER transaction (from ``mariadbd``), equal to what the client
saw — commands, SQL text, row counts, errors, statement ids, user and schema.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from receiver.receivers.ebpf.receiver import EbpfReceiver
from receiver.config import load_config
from receiver.protocols.base import Role
from receiver.protocols.mysql import Command, MysqlHandshake, ResponseKind
from tests.fixtures.record_mysql import MariaDBServer
from tests.support.ports import wait_until

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

RECORDER = Path(__file__).resolve().parents[1] / "fixtures" / "record_mysql.py"
SUPPORT = Path(__file__).resolve().parents[1] / "unit" / "protocols" / "mysql"
sys.path.insert(0, str(SUPPORT))
from mysql_support import comparable, known, summary  # noqa: E402


@pytest.fixture(scope="module")
def mariadb():
    with tempfile.TemporaryDirectory(prefix="e2e-mysql-") as tmp:
        server = MariaDBServer(Path(tmp))
        try:
            server.start()
            yield server
        finally:
            server.stop()


class Collector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list = []

    def __call__(self, batch: list) -> None:
        with self._lock:
            self.items.extend(t for t in batch if t.transaction.protocol == "mysql")

    def since(self, index: int) -> list:
        with self._lock:
            return self.items[index:]

    def __len__(self) -> int:
        with self._lock:
            return len(self.items)


@pytest.fixture(scope="module")
def capture(mariadb):
    collector = Collector()
    receiver = EbpfReceiver(load_config(None).receivers["ebpf"], on_transactions=collector)
    receiver.start()
    try:
        yield collector, receiver
    finally:
        receiver.shutdown()


def drive(collector: Collector, server: MariaDBServer, name: str, address: int | str):
    """Run scenario ``name`` in a child process; return (expected, session, client, server) where
    client/server are the captured transactions of each end."""
    start = len(collector)
    child = subprocess.run(
        [sys.executable, str(RECORDER), "--drive", name, "--address", str(address)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(child.stdout)
    expected = result["transactions"]
    unix = isinstance(address, str)

    def split():
        client, served = [], []
        for tt in collector.since(start):
            family_ok = (tt.tuple.family == socket.AF_UNIX) if unix else (tt.tuple.family != socket.AF_UNIX)
            if not family_ok:
                continue
            if tt.pid == server.proc.pid:
                served.append(tt)
            elif unix or tt.tuple.remote_port == server.port:
                client.append(tt)
        return client, served

    wait_until(lambda: all(len(side) >= len(expected) for side in split()), timeout=20, what=f"{name} transactions")
    time.sleep(0.5)  # anything beyond the expected would show up now
    client, served = split()
    return expected, result["session"], client, served


def assert_same(expected: list[dict], captured: list, role: Role, larger_than_capture: tuple[str, ...] = ()) -> None:
    """Captured transactions equal what the client saw.

    Queries in ``larger_than_capture`` return more bytes per read/write than ``capture_size``
    (4 KiB by default) keeps: their rows cannot all be seen, so the response must say so
    (``truncated``, rows a lower bound) and be exact in everything else.
    """
    assert [summary(tt.transaction)["command"] for tt in captured] == [e["command"] for e in expected]
    for e, tt in zip(expected, captured, strict=True):
        assert tt.transaction.role is role
        got = summary(tt.transaction)
        if e["query"] in larger_than_capture:
            assert tt.transaction.response.truncated and 0 < got["rows"] < e["rows"]
            e, got = dict(e, rows=None), dict(got, rows=None)
        else:
            assert tt.transaction.response is None or not tt.transaction.response.truncated
        assert comparable(e, got) == known(e)
    assert len({tt.conn_id for tt in captured}) == 1  # one connection per client run


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_mariadb_cli(mariadb, capture, transport):
    collector, receiver = capture
    address = mariadb.port if transport == "tcp" else mariadb.socket
    expected, _, client, served = drive(collector, mariadb, "cli_root_errors_multi", address)

    assert len(expected) == 12  # CONNECT, 8 SQL statements, "use" (SELECT DATABASE() + COM_INIT_DB), QUIT
    assert_same(expected, client, Role.CLIENT)
    assert_same(expected, served, Role.SERVER)
    txs = [tt.transaction for tt in client]
    connect = txs[0]
    assert isinstance(connect.request, MysqlHandshake)
    assert (connect.request.user, connect.request.schema) == ("root", "shop")
    error = next(t for t in txs if t.request.query == "select * from no_such_table")
    assert error.response.kind is ResponseKind.ERROR
    assert (error.response.error_code, error.response.sql_state) == (1146, "42S02")
    assert error.response.error_message == "Table 'shop.no_such_table' doesn't exist"
    rows = next(t for t in txs if t.request.query == "select id, name, price from items order by id")
    assert rows.response.kind is ResponseKind.RESULT_SET and rows.response.row_count == expected[2]["rows"] >= 5
    call = next(t for t in txs if t.request.query == "call two_results()")
    assert (call.response.result_sets, call.response.row_count) == (2, 4)
    init_db = next(t for t in txs if t.request.command is Command.COM_INIT_DB)
    assert (init_db.request.schema, init_db.request.new_schema) == ("shop", "archive")
    after = txs[txs.index(init_db) + 1]
    assert after.request.query == "select database()" and after.request.schema == "archive"
    assert txs[-1].request.command is Command.COM_QUIT and txs[-1].response is None
    assert receiver.protocols.parse_errors_by_protocol.get("mysql", 0) == 0


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_pymysql_password_queries_and_init_db(mariadb, capture, transport):
    collector, receiver = capture
    address = mariadb.port if transport == "tcp" else mariadb.socket
    expected, session, client, served = drive(collector, mariadb, "pymysql_session", address)

    assert len(expected) == 16
    big_query = "SELECT id, payload FROM big ORDER BY id"  # ~100 KiB of rows
    assert_same(expected, client, Role.CLIENT, larger_than_capture=(big_query,))
    assert_same(expected, served, Role.SERVER, larger_than_capture=(big_query,))
    txs = [tt.transaction for tt in client]
    connect = txs[0]  # the mysql_native_password exchange
    assert connect.request.user == "app" and connect.request.schema == "shop"
    assert connect.request.auth_plugin == "mysql_native_password" and connect.response.kind is ResponseKind.OK
    # The big response lost its framing but not its size: both ends agree on every byte.
    (big_client,) = [t for t in txs if t.request.query == big_query]
    (big_server,) = [tt.transaction for tt in served if tt.transaction.request.query == big_query]
    assert big_client.response_size == big_server.response_size > 90_000
    init_db = next(t for t in txs if t.request.command is Command.COM_INIT_DB)
    assert init_db.request.new_schema == "archive"
    assert txs[txs.index(init_db) + 1].request.schema == "archive"
    assert txs[-2].request.schema == session["schema"] == "shop"  # USE shop via COM_QUERY
    assert receiver.protocols.parse_errors_by_protocol.get("mysql", 0) == 0


def test_connector_prepared_statements(mariadb, capture):
    collector, receiver = capture
    expected, _, client, served = drive(collector, mariadb, "connector_prepared", mariadb.port)

    assert_same(expected, client, Role.CLIENT)
    assert_same(expected, served, Role.SERVER)
    txs = [tt.transaction for tt in client]
    prepares = [t for t in txs if t.request.command is Command.COM_STMT_PREPARE]
    executes = [t for t in txs if t.request.command is Command.COM_STMT_EXECUTE]
    assert len(prepares) == 4 and len(executes) == 4
    by_id = {t.response.statement_id: t.request.query for t in prepares if not t.response.is_error}
    for t in executes:
        assert t.request.query == by_id[t.request.statement_id]  # resolved through the statement id
    assert [t.response.row_count for t in executes] == [e["rows"] for e in expected if e["command"] == "COM_STMT_EXECUTE"]
    failed = prepares[-1].response
    assert (failed.error_code, failed.sql_state) == (1146, "42S02")
    assert receiver.protocols.parse_errors_by_protocol.get("mysql", 0) == 0


def test_deprecate_eof_and_cursors_over_unix_socket(mariadb, capture):
    collector, _ = capture
    expected, session, client, served = drive(collector, mariadb, "raw_deprecate_eof", mariadb.socket)

    assert_same(expected, client, Role.CLIENT)
    assert_same(expected, served, Role.SERVER)
    txs = [tt.transaction for tt in client]
    fetches = [t for t in txs if t.request.command is Command.COM_STMT_FETCH]
    assert [t.response.row_count for t in fetches] == [e["rows"] for e in expected if e["command"] == "COM_STMT_FETCH"]
    assert fetches[0].response.row_count == 2 and fetches[0].request.statement_id == fetches[1].request.statement_id
    assert txs[-1].request.schema == session["schema"] == "archive"  # USE tracked via SESSION_TRACK
