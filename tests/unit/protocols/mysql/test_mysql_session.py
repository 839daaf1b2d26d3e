"""Hand-written conversations for every part of the MySQL protocol the session handles."""

from __future__ import annotations

import struct

import pytest
from mysql_support import lenenc, packet, packets

from receiver.protocols.base import Direction, Role
from receiver.protocols.mysql import (
    Command,
    MysqlCommand,
    MysqlHandshake,
    MysqlSession,
    ResponseKind,
    detect,
)
from receiver.protocols.mysql import types as T

C2S, S2C = Direction.EGRESS, Direction.INGRESS  # the traced process is the client

BASE_CAPS = (
    T.CLIENT_LONG_FLAG
    | T.CLIENT_PROTOCOL_41
    | T.CLIENT_TRANSACTIONS
    | T.CLIENT_SECURE_CONNECTION
    | T.CLIENT_MULTI_STATEMENTS
    | T.CLIENT_MULTI_RESULTS
    | T.CLIENT_PS_MULTI_RESULTS
    | T.CLIENT_PLUGIN_AUTH
    | T.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | T.CLIENT_CONNECT_ATTRS
    | T.CLIENT_LOCAL_FILES
)
SERVER_CAPS = (1 << 32) - 1 - T.CLIENT_SSL - T.CLIENT_COMPRESS  # everything but TLS/compression
AUTH_DATA = b"\xde\xad\xbe\xefSECRET-SCRAMBLE!!!!"  # 20 bytes that must never be kept


def greeting(version: bytes = b"8.0.36", caps: int = SERVER_CAPS, connection_id: int = 42, plugin: bytes = b"mysql_native_password", mariadb_ext: int = 0) -> bytes:
    reserved = b"\x00" * 6 + struct.pack("<I", mariadb_ext)
    payload = (
        b"\x0a" + version + b"\x00" + struct.pack("<I", connection_id) + b"12345678" + b"\x00"
        + struct.pack("<H", caps & 0xFFFF) + b"\x2d" + struct.pack("<H", 2) + struct.pack("<H", caps >> 16 & 0xFFFF)
        + bytes([21]) + reserved + b"9abcdefghijk\x00" + plugin + b"\x00"
    )
    return packet(0, payload)


def handshake_response(user: bytes = b"app", schema: bytes | None = b"shop", caps: int = BASE_CAPS, attrs: bool = True, seq: int = 1) -> bytes:
    if schema is not None:
        caps |= T.CLIENT_CONNECT_WITH_DB
    payload = struct.pack("<IIB", caps & 0xFFFFFFFF, 1 << 24, 45) + b"\x00" * 23
    payload += user + b"\x00" + lenenc(len(AUTH_DATA)) + AUTH_DATA
    if schema is not None:
        payload += schema + b"\x00"
    payload += b"mysql_native_password\x00"
    if attrs:
        kv = lenenc(12) + b"_client_name" + lenenc(4) + b"test" + lenenc(12) + b"program_name" + lenenc(5) + b"pytst"
        payload += lenenc(len(kv)) + kv
    return packet(seq, payload)


def ok(seq: int, affected: int = 0, insert_id: int = 0, status: int = 2, warnings: int = 0, info: bytes = b"", header: int = 0) -> bytes:
    payload = bytes([header]) + lenenc(affected) + lenenc(insert_id) + struct.pack("<HH", status, warnings)
    if info:
        payload += lenenc(len(info)) + info
    return packet(seq, payload)


def err(seq: int, code: int, state: bytes, message: bytes) -> bytes:
    return packet(seq, b"\xff" + struct.pack("<H", code) + b"#" + state + message)


def eof_payload(status: int = 2, warnings: int = 0) -> bytes:
    return b"\xfe" + struct.pack("<HH", warnings, status)


def coldef(name: bytes) -> bytes:
    return b"\x03def\x04shop\x05items\x05items" + lenenc(len(name)) + name + lenenc(len(name)) + name + b"\x0c\x21\x00\x00\x01\x00\x00\xfd\x00\x00\x00\x00\x00"


def text_row(*values: bytes | None) -> bytes:
    return b"".join(b"\xfb" if v is None else lenenc(len(v)) + v for v in values)


def result_set(first_seq: int, columns: int, rows: list[bytes], deprecate_eof: bool = False, status: int = 2, warnings: int = 0) -> bytes:
    payloads = [lenenc(columns)] + [coldef(b"c%d" % i) for i in range(columns)]
    if not deprecate_eof:
        payloads.append(eof_payload())
    payloads += rows
    if deprecate_eof:
        payloads.append(b"\xfe\x00\x00" + struct.pack("<HH", status, warnings))
    else:
        payloads.append(eof_payload(status, warnings))
    return packets(first_seq, *payloads)


def query(sql: bytes) -> bytes:
    return packet(0, b"\x03" + sql)


class Conversation:
    """A session fed one step at a time; each feed gets the next timestamp."""

    def __init__(self, **kwargs: object) -> None:
        self.session = MysqlSession(**kwargs)  # type: ignore[arg-type]
        self.ts = 0
        self.out: list = []

    def feed(self, direction: Direction, data: bytes, total_len: int | None = None) -> list:
        self.ts += 1
        got = self.session.feed(direction, data, self.ts, total_len)
        self.out += got
        return got

    def c2s(self, data: bytes, total_len: int | None = None) -> list:
        return self.feed(C2S, data, total_len)

    def s2c(self, data: bytes, total_len: int | None = None) -> list:
        return self.feed(S2C, data, total_len)

    def close(self) -> list:
        self.ts += 1
        got = self.session.close(self.ts)
        self.out += got
        return got

    def connect(self, caps: int = BASE_CAPS, schema: bytes | None = b"shop", server_caps: int = SERVER_CAPS) -> None:
        self.s2c(greeting(caps=server_caps))
        self.c2s(handshake_response(caps=caps, schema=schema))
        (connect,) = self.s2c(ok(2))
        assert connect.response.kind is ResponseKind.OK

    def command(self, request: bytes, response: bytes) -> object:
        assert self.c2s(request) == []
        (t,) = self.s2c(response)
        return t


def connected(**kwargs: object) -> Conversation:
    conversation = Conversation(**kwargs)
    conversation.connect()
    return conversation


# -- connection phase ---------------------------------------------------------------------------


def test_greeting_fields_mariadb() -> None:
    c = Conversation()
    c.s2c(greeting(version=b"5.5.5-10.11.6-MariaDB-log", connection_id=77, caps=SERVER_CAPS & ~T.CLIENT_MYSQL, mariadb_ext=0x1D))
    g = c.session.greeting
    assert g.server_version == "10.11.6-MariaDB-log" and g.is_mariadb
    assert g.connection_id == 77
    assert g.capabilities >> 32 == 0x1D
    assert g.auth_plugin == "mysql_native_password"
    assert c.session.role is Role.CLIENT and c.session.phase == "handshake"


def test_greeting_fields_mysql() -> None:
    c = Conversation()
    c.feed(Direction.EGRESS, greeting(version=b"8.0.36", plugin=b"caching_sha2_password"))
    g = c.session.greeting
    assert g.server_version == "8.0.36" and not g.is_mariadb
    assert g.auth_plugin == "caching_sha2_password"
    assert c.session.role is Role.SERVER  # it sent the greeting


def test_handshake_transaction_user_schema_attributes_and_no_auth_data() -> None:
    c = Conversation()
    c.s2c(greeting())
    c.c2s(handshake_response())
    (t,) = c.s2c(ok(2))
    request = t.request
    assert isinstance(request, MysqlHandshake)
    assert (request.user, request.schema, request.auth_plugin) == ("app", "shop", "mysql_native_password")
    assert request.connect_attributes == (("_client_name", "test"), ("program_name", "pytst"))
    assert request.capabilities & T.CLIENT_CONNECT_WITH_DB
    assert request.server.connection_id == 42 and request.connection_id == 42 and request.server_version == "8.0.36"
    assert t.response.kind is ResponseKind.OK and t.response.wire_size == t.response_size == 11
    assert t.request_size == len(handshake_response())
    assert (t.start_ns, t.end_ns) == (2, 3)
    assert (c.session.user, c.session.schema) == ("app", "shop")
    # The auth response is nowhere: not in the transaction, not in the session.
    for text in (repr(t), repr(vars(c.session)), repr(c.session.greeting)):
        assert "SECRET" not in text and "deadbeef" not in text


def test_handshake_without_schema() -> None:
    c = Conversation()
    c.s2c(greeting())
    c.c2s(handshake_response(schema=None))
    (t,) = c.s2c(ok(2))
    assert t.request.schema == "" and c.session.schema == ""
    (q,) = [c.command(query(b"select 1"), ok(1))]
    assert q.request.schema == "" and q.request.user == "app"


def test_handshake_response_320() -> None:
    c = Conversation()
    c.s2c(greeting())
    caps = T.CLIENT_LONG_PASSWORD | T.CLIENT_TRANSACTIONS
    c.c2s(packet(1, struct.pack("<H", caps) + b"\x00\x00\x01" + b"olduser\x00" + b"12345678"))
    (t,) = c.s2c(packet(2, b"\x00\x00\x00\x02\x00"))
    assert t.request.user == "olduser" and t.response.kind is ResponseKind.OK
    assert c.session.parse_errors == 0


def test_ssl_request_switches_to_tls_without_errors() -> None:
    c = Conversation()
    c.s2c(greeting(caps=SERVER_CAPS | T.CLIENT_SSL))
    caps = BASE_CAPS | T.CLIENT_SSL
    c.c2s(packet(1, struct.pack("<IIB", caps, 1 << 24, 45) + b"\x00" * 23))
    assert c.session.tls and c.session.phase == "opaque"
    c.c2s(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(200)))
    c.s2c(b"\x16\x03\x03\x00\x7a\x02\x00\x00\x76\x03\x03" + bytes(range(120)))
    c.c2s(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
    assert c.close() == [] and c.out == []
    assert c.session.parse_errors == 0 and c.session.internal_errors == 0


def test_compressed_protocol_is_detected_and_not_parsed() -> None:
    c = Conversation()
    c.s2c(greeting(caps=SERVER_CAPS | T.CLIENT_COMPRESS))
    c.c2s(handshake_response(caps=BASE_CAPS | T.CLIENT_COMPRESS))
    (t,) = c.s2c(ok(2))
    assert t.response.kind is ResponseKind.OK
    assert c.session.compressed and c.session.phase == "opaque"
    c.c2s(b"\x0d\x00\x00\x00\x00\x00\x00\x09\x00\x00\x00\x03select 1")  # a compressed-protocol packet
    c.s2c(b"\x0b\x00\x00\x00\x00\x00\x00" + ok(1))
    assert c.close() == [] and len(c.out) == 1
    assert c.session.parse_errors == 0


def test_compress_asked_but_not_offered_is_plain() -> None:
    c = Conversation()
    c.connect(caps=BASE_CAPS | T.CLIENT_COMPRESS)
    assert not c.session.compressed
    assert c.command(query(b"select 1"), ok(1)).response.kind is ResponseKind.OK


def test_auth_switch_and_more_data_are_skipped() -> None:
    c = Conversation()
    c.s2c(greeting())
    c.c2s(handshake_response())
    switch = packet(2, b"\xfecaching_sha2_password\x00" + b"S" * 20 + b"\x00")
    assert c.s2c(switch) == []
    assert c.c2s(packet(3, AUTH_DATA)) == []
    assert c.s2c(packet(4, b"\x01\x03")) == []  # fast auth success
    (t,) = c.s2c(ok(5))
    assert t.request.auth_switched_to == "caching_sha2_password"
    assert t.request_size == len(handshake_response()) + 4 + len(AUTH_DATA)
    assert t.response_size == len(switch) + 6 + 11
    assert "SECRET" not in repr(t) and c.session.parse_errors == 0


def test_auth_failure() -> None:
    c = Conversation()
    c.s2c(greeting())
    c.c2s(handshake_response(user=b"bob"))
    (t,) = c.s2c(err(2, 1045, b"28000", b"Access denied for user 'bob'@'localhost' (using password: YES)"))
    assert t.response.is_error
    assert (t.response.error_code, t.response.sql_state) == (1045, "28000")
    assert t.response.error_message.startswith("Access denied")
    assert c.session.user == ""  # never authenticated


def test_close_during_auth_emits_the_connection_attempt() -> None:
    c = Conversation()
    c.s2c(greeting())
    c.c2s(handshake_response())
    (t,) = c.close()
    assert isinstance(t.request, MysqlHandshake) and t.response is None and t.end_ns == c.ts


def test_connection_closed_after_greeting_emits_nothing() -> None:
    c = Conversation()
    c.s2c(greeting())
    assert c.close() == []


# -- responses --------------------------------------------------------------------------------


def test_ok_fields_with_every_lenenc_width() -> None:
    c = connected()
    t = c.command(query(b"update t set a = 1"), ok(1, affected=300, insert_id=70000, warnings=3, info=b"Rows matched: 300  Changed: 300  Warnings: 3"))
    r = t.response
    assert (r.kind, r.affected_rows, r.last_insert_id, r.warnings) == (ResponseKind.OK, 300, 70000, 3)
    assert r.info == "Rows matched: 300  Changed: 300  Warnings: 3"
    t = c.command(query(b"insert into t values (1)"), ok(1, affected=1, insert_id=2**40))
    assert t.response.last_insert_id == 2**40
    assert t.request.operation == "INSERT"


def test_err_fields_with_and_without_sqlstate() -> None:
    c = connected()
    t = c.command(query(b"SELECT * FROM no_such_table"), err(1, 1146, b"42S02", b"Table 'shop.no_such_table' doesn't exist"))
    r = t.response
    assert r.is_error and (r.error_code, r.sql_state, r.error_message) == (1146, "42S02", "Table 'shop.no_such_table' doesn't exist")
    t = c.command(query(b"SELECT 1"), packet(1, b"\xff\x15\x04No database selected"))
    assert (t.response.error_code, t.response.sql_state, t.response.error_message) == (0x0415, "", "No database selected")


@pytest.mark.parametrize("deprecate_eof", [False, True])
def test_text_result_set(deprecate_eof: bool) -> None:
    c = connected()
    rows = [text_row(b"1", b"apple"), text_row(b"2", None), text_row(b"3", b"x" * 300)]
    t = c.command(query(b"select id, name from items"), result_set(1, 2, rows, deprecate_eof=deprecate_eof, warnings=1))
    r = t.response
    assert (r.kind, r.result_sets, r.results, r.column_count, r.row_count, r.warnings) == (ResponseKind.RESULT_SET, 1, 1, 2, 3, 1)
    assert t.response_size == len(result_set(1, 2, rows, deprecate_eof=deprecate_eof, warnings=1))


@pytest.mark.parametrize("deprecate_eof", [False, True])
def test_empty_result_set(deprecate_eof: bool) -> None:
    c = connected()
    t = c.command(query(b"select id from items where 0"), result_set(1, 1, [], deprecate_eof=deprecate_eof))
    assert (t.response.kind, t.response.row_count, t.response.column_count) == (ResponseKind.RESULT_SET, 0, 1)
    assert c.command(query(b"select 2"), ok(1)).response.kind is ResponseKind.OK


def test_multi_results() -> None:
    c = connected()
    more = T.SERVER_MORE_RESULTS_EXISTS | 2
    response = result_set(1, 1, [text_row(b"1")], status=more)
    response += result_set(6, 2, [text_row(b"2", b"3"), text_row(b"4", b"5")], status=more)
    response += ok(13, affected=4, status=more)
    response += ok(14, affected=1)
    t = c.command(query(b"select 1; select 2, 3 union select 4, 5; update a; update b"), response)
    r = t.response
    assert (r.kind, r.results, r.result_sets, r.row_count, r.affected_rows) == (ResponseKind.OK, 4, 2, 3, 5)
    assert t.response_size == len(response)


def test_multi_results_ending_in_error() -> None:
    c = connected()
    response = ok(1, affected=1, status=T.SERVER_MORE_RESULTS_EXISTS) + err(2, 1064, b"42000", b"syntax")
    t = c.command(query(b"insert into a values (1); selec"), response)
    assert t.response.is_error and t.response.results == 2 and t.response.affected_rows == 1


def test_error_in_the_middle_of_rows() -> None:
    c = connected()
    response = packets(1, lenenc(1), coldef(b"a"), eof_payload(), text_row(b"1"), text_row(b"2"))
    response += err(6, 1317, b"70100", b"Query execution was interrupted")
    t = c.command(query(b"select a from t"), response)
    assert t.response.is_error and t.response.row_count == 2 and t.response.error_code == 1317


def test_mariadb_progress_reports_are_skipped() -> None:
    c = connected()
    progress = packet(1, b"\xff\xff\xff\x01\x01\x02\x00\x10\x00\x00\x05stage")
    assert c.c2s(query(b"alter table t engine=innodb")) == []
    assert c.s2c(progress) == []
    (t,) = c.s2c(ok(2))
    assert t.response.kind is ResponseKind.OK and c.session.parse_errors == 0


def test_rows_that_look_like_terminators_are_rows() -> None:
    c = connected()
    # A text row whose first value is 0xfb (NULL) and one holding a 250-byte value.
    t = c.command(query(b"select a"), result_set(1, 1, [b"\xfb", text_row(b"\xfe" * 250)]))
    assert t.response.row_count == 2


# -- LOCAL INFILE -------------------------------------------------------------------------------


def test_local_infile() -> None:
    c = connected()
    c.c2s(query(b"LOAD DATA LOCAL INFILE '/tmp/data.csv' INTO TABLE t"))
    assert c.s2c(packet(1, b"\xfb/tmp/data.csv")) == []
    assert c.c2s(packet(2, b"a,1\nb,2\n")) == []
    assert c.c2s(packet(3, b"c,3\n")) == []
    assert c.c2s(packet(4, b"")) == []
    (t,) = c.s2c(ok(5, affected=3, info=b"Records: 3  Deleted: 0  Skipped: 0  Warnings: 0"))
    assert t.response.local_infile == "/tmp/data.csv" and t.response.affected_rows == 3
    assert t.request_size == t.request.wire_size == len(query(b"LOAD DATA LOCAL INFILE '/tmp/data.csv' INTO TABLE t")) + 12 + 8 + 4
    assert c.session.local_infile_requests == 1 and c.session.parse_errors == 0


def test_local_infile_refused_by_the_client() -> None:
    c = connected()
    c.c2s(query(b"LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t"))
    c.s2c(packet(1, b"\xfb/etc/passwd"))
    c.c2s(packet(2, b""))
    (t,) = c.s2c(err(3, 2068, b"HY000", b"LOAD DATA LOCAL INFILE file request rejected"))
    assert t.response.is_error and t.response.local_infile == "/etc/passwd"


# -- session state ------------------------------------------------------------------------------


def test_init_db_changes_the_schema_only_when_ok() -> None:
    c = connected()
    t = c.command(packet(0, b"\x02archive"), ok(1))
    assert (t.request.command, t.request.schema, t.request.new_schema, t.request.operation) == (Command.COM_INIT_DB, "shop", "archive", "INIT_DB")
    assert c.session.schema == "archive"
    t = c.command(packet(0, b"\x02nope"), err(1, 1049, b"42000", b"Unknown database 'nope'"))
    assert t.request.new_schema == "nope" and c.session.schema == "archive"
    assert c.command(query(b"select 1"), ok(1)).request.schema == "archive"


@pytest.mark.parametrize(("sql", "schema"), [(b"USE other", "other"), (b" use `my db`;", "my db"), (b"use x; select 1", "shop")])
def test_use_statement(sql: bytes, schema: str) -> None:
    c = connected()
    c.command(query(sql), ok(1))
    assert c.session.schema == schema


def test_session_track_schema() -> None:
    c = Conversation()
    c.connect(caps=BASE_CAPS | T.CLIENT_SESSION_TRACK)
    state = b"\x01" + lenenc(8) + lenenc(7) + b"tracked"  # SESSION_TRACK_SCHEMA
    payload = b"\x00\x00\x00" + struct.pack("<HH", 2 | T.SERVER_SESSION_STATE_CHANGED, 0) + lenenc(0) + lenenc(len(state)) + state
    c.command(query(b"call p()"), packet(1, payload))
    assert c.session.schema == "tracked"


def test_ping_quit_and_close() -> None:
    c = connected()
    t = c.command(packet(0, b"\x0e"), ok(1))
    assert t.request.name == "COM_PING" and t.request.operation == "PING" and t.response.kind is ResponseKind.OK
    (quit_,) = c.c2s(packet(0, b"\x01"))
    assert quit_.request.command is Command.COM_QUIT and quit_.response is None
    assert quit_.start_ns == quit_.end_ns == c.ts and quit_.request_size == 5
    assert c.close() == []


def test_close_with_open_commands() -> None:
    c = connected()
    c.c2s(query(b"select sleep(100)"))
    (t,) = c.close()
    assert t.response is None and t.end_ns == c.ts
    c = connected()
    c.c2s(query(b"select a from big"))
    c.s2c(packets(1, lenenc(1), coldef(b"a"), eof_payload(), text_row(b"1")))
    (t,) = c.close()
    assert t.response.truncated and t.response.row_count == 1


# -- prepared statements ------------------------------------------------------------------------


def prepare_ok(first_seq: int, statement_id: int, params: int, columns: int, deprecate_eof: bool = False) -> bytes:
    payloads = [b"\x00" + struct.pack("<IHHBH", statement_id, columns, params, 0, 0)]
    for count in (params, columns):
        if count:
            payloads += [coldef(b"?")] * count
            if not deprecate_eof:
                payloads.append(eof_payload())
    return packets(first_seq, *payloads)


def execute(statement_id: int, cursor: int = 0) -> bytes:
    return packet(0, b"\x17" + struct.pack("<IBI", statement_id, cursor, 1) + b"\x00\x01\x08\x00" + struct.pack("<q", 5))


def binary_rows(first_seq: int, rows: int, deprecate_eof: bool = False) -> bytes:
    payloads = [lenenc(1), coldef(b"x")]
    if not deprecate_eof:
        payloads.append(eof_payload())
    payloads += [b"\x00\x00" + struct.pack("<q", i) for i in range(rows)]
    payloads.append(b"\xfe\x00\x00\x02\x00\x00\x00" if deprecate_eof else eof_payload())
    return packets(first_seq, *payloads)


@pytest.mark.parametrize("deprecate_eof", [False, True])
def test_prepare_execute_reset_close(deprecate_eof: bool) -> None:
    c = Conversation()
    c.connect(caps=BASE_CAPS | (T.CLIENT_DEPRECATE_EOF if deprecate_eof else 0))
    sql = b"SELECT a + ? FROM t WHERE b = ?"
    t = c.command(packet(0, b"\x16" + sql), prepare_ok(1, 7, 2, 1, deprecate_eof))
    assert t.request.query == sql.decode() and t.request.statement_id == T.NO_STATEMENT
    r = t.response
    assert (r.kind, r.statement_id, r.param_count, r.column_count) == (ResponseKind.STATEMENT_PREPARED, 7, 2, 1)
    assert c.session.prepared_statements == 1
    t = c.command(execute(7), binary_rows(1, 3, deprecate_eof))
    assert (t.request.statement_id, t.request.query, t.request.operation) == (7, sql.decode(), "SELECT")
    assert (t.response.kind, t.response.row_count) == (ResponseKind.RESULT_SET, 3)
    t = c.command(packet(0, b"\x1a" + struct.pack("<I", 7)), ok(1))
    assert (t.request.command, t.request.query) == (Command.COM_STMT_RESET, sql.decode())
    assert c.c2s(packet(0, b"\x19" + struct.pack("<I", 7))) == []  # COM_STMT_CLOSE: no transaction
    assert c.session.prepared_statements == 0
    t = c.command(execute(7), err(1, 1243, b"HY000", b"Unknown prepared statement handler (7) given to mysqld_stmt_execute"))
    assert t.request.query == "" and t.response.is_error
    assert c.session.parse_errors == 0


def test_prepare_error() -> None:
    c = connected()
    t = c.command(packet(0, b"\x16SELEC oops"), err(1, 1064, b"42000", b"You have an error"))
    assert t.response.is_error and t.response.statement_id == T.NO_STATEMENT
    assert c.session.prepared_statements == 0


def test_prepare_without_handshake_decides_the_trailing_eof_from_the_next_packet() -> None:
    """Attached mid-connection, DEPRECATE_EOF is unknown: whether an EOF ends the definitions is
    told by what comes next."""
    for deprecate_eof in (False, True):
        c = Conversation()
        assert c.c2s(packet(0, b"\x16SELECT ?")) == []
        done = c.s2c(prepare_ok(1, 3, 1, 0, deprecate_eof))
        if deprecate_eof:
            assert done == []  # an EOF may still come
            (t,) = c.c2s(query(b"select 1"))  # the client moved on: it did not
            assert t.response.statement_id == 3 and not t.response.truncated
        else:
            assert [t.response.statement_id for t in done] == [3]
            c.c2s(query(b"select 1"))
        (t,) = c.s2c(ok(1))
        assert t.request.query == "select 1"
        t = c.command(execute(3), binary_rows(1, 1, deprecate_eof))
        assert t.request.query == "SELECT ?"
        assert c.session.parse_errors == 0


def test_statement_cache_is_bounded() -> None:
    c = connected(max_statements=2)
    for statement_id in (1, 2, 3):
        c.command(packet(0, b"\x16SELECT %d" % statement_id), prepare_ok(1, statement_id, 0, 1))
    assert c.session.prepared_statements == 2 and c.session.evicted_statements == 1
    assert c.command(execute(1), ok(1)).request.query == ""
    assert c.command(execute(3), ok(1)).request.query == "SELECT 3"


def test_statement_cache_is_bounded_by_characters() -> None:
    c = connected(max_statement_chars=100)
    c.command(packet(0, b"\x16SELECT '" + b"a" * 60 + b"'"), prepare_ok(1, 1, 0, 1))
    c.command(packet(0, b"\x16SELECT '" + b"b" * 60 + b"'"), prepare_ok(1, 2, 0, 1))
    assert c.session.prepared_statements == 1 and c.session.evicted_statements == 1


def test_execute_last_prepared_statement() -> None:
    c = connected()
    c.c2s(packet(0, b"\x16SELECT ? AS x") + execute(0xFFFFFFFF))  # MariaDB execute-direct: pipelined
    done = c.s2c(prepare_ok(1, 9, 1, 1) + binary_rows(1, 1))
    assert [t.request.name for t in done] == ["COM_STMT_PREPARE", "COM_STMT_EXECUTE"]
    assert done[1].request.query == "SELECT ? AS x" and done[1].response.row_count == 1


def test_cursor_and_fetch() -> None:
    c = connected()
    c.command(packet(0, b"\x16SELECT x FROM t"), prepare_ok(1, 4, 0, 1))
    opened = packets(1, lenenc(1), coldef(b"x"), eof_payload(status=2 | T.SERVER_STATUS_CURSOR_EXISTS))
    t = c.command(execute(4, cursor=1), opened)
    assert (t.response.kind, t.response.row_count) == (ResponseKind.RESULT_SET, 0)
    assert t.response.status_flags & T.SERVER_STATUS_CURSOR_EXISTS
    fetch = packet(0, b"\x1c" + struct.pack("<II", 4, 2))
    rows = packets(1, b"\x00\x00" + b"\x01" * 8, b"\x00\x00" + b"\x02" * 8, eof_payload(status=2 | T.SERVER_STATUS_CURSOR_EXISTS))
    t = c.command(fetch, rows)
    assert (t.request.query, t.response.row_count) == ("SELECT x FROM t", 2)
    t = c.command(fetch, packets(1, eof_payload(status=2 | T.SERVER_STATUS_LAST_ROW_SENT)))
    assert t.response.row_count == 0 and t.response.status_flags & T.SERVER_STATUS_LAST_ROW_SENT


def test_reset_connection_and_change_user() -> None:
    c = connected()
    c.command(packet(0, b"\x16SELECT 1"), prepare_ok(1, 1, 0, 1))
    t = c.command(packet(0, b"\x1f"), ok(1))
    assert t.request.command is Command.COM_RESET_CONNECTION and c.session.prepared_statements == 0
    c.command(packet(0, b"\x16SELECT 2"), prepare_ok(1, 2, 0, 1))
    change = packet(0, b"\x11root\x00" + bytes([len(AUTH_DATA)]) + AUTH_DATA + b"mysql\x00" + b"\x2d\x00mysql_native_password\x00")
    assert c.c2s(change) == []
    assert c.s2c(packet(1, b"\xfemysql_native_password\x00" + b"N" * 20 + b"\x00")) == []
    assert c.c2s(packet(2, AUTH_DATA)) == []
    (t,) = c.s2c(ok(3))
    assert (t.request.command, t.request.user, t.request.new_user, t.request.new_schema) == (Command.COM_CHANGE_USER, "app", "root", "mysql")
    assert (c.session.user, c.session.schema, c.session.prepared_statements) == ("root", "mysql", 0)
    assert t.request_size == len(change) + 4 + len(AUTH_DATA) and "SECRET" not in repr(t)


def test_field_list_statistics_set_option_debug_kill() -> None:
    c = connected()
    t = c.command(packet(0, b"\x04items\x00"), packets(1, coldef(b"id"), coldef(b"name"), eof_payload()))
    assert (t.request.command, t.response.kind, t.response.column_count) == (Command.COM_FIELD_LIST, ResponseKind.EOF, 2)
    t = c.command(packet(0, b"\x09"), packet(1, b"Uptime: 5  Threads: 1  Questions: 2"))
    assert t.response.kind is ResponseKind.TEXT
    t = c.command(packet(0, b"\x1b\x01\x00"), packets(1, eof_payload()))
    assert t.response.kind is ResponseKind.EOF
    t = c.command(packet(0, b"\x1b\x00\x00"), packet(1, b"\xfe\x00\x00\x02\x00\x00\x00"))  # OK(0xfe) under DEPRECATE_EOF
    assert t.response.kind is ResponseKind.EOF
    t = c.command(packet(0, b"\x0d"), packets(1, eof_payload()))
    assert t.request.operation == "DEBUG"
    t = c.command(packet(0, b"\x0c" + struct.pack("<I", 99)), err(1, 1094, b"HY000", b"Unknown thread id: 99"))
    assert t.response.error_code == 1094
    assert c.session.parse_errors == 0


def test_binlog_dump_stops_parsing() -> None:
    c = connected()
    (t,) = c.c2s(packet(0, b"\x12" + struct.pack("<IHI", 4, 0, 1) + b"binlog.000001"))
    assert t.request.command is Command.COM_BINLOG_DUMP and t.response is None
    c.s2c(packet(1, b"\x00" + b"\x01" * 40))
    assert c.session.phase == "opaque" and c.session.parse_errors == 0


def test_query_attributes_are_skipped() -> None:
    c = Conversation()
    c.connect(caps=BASE_CAPS | T.CLIENT_QUERY_ATTRIBUTES)
    t = c.command(query(b"\x00\x01select 1"), ok(1))
    assert t.request.query == "select 1"
    attrs = b"\x01\x01" + b"\x00" + b"\x01" + b"\x08\x00" + lenenc(2) + b"id" + struct.pack("<q", 7)
    t = c.command(query(attrs + b"select 2"), ok(1))
    assert t.request.query == "select 2"


def test_operation_names() -> None:
    assert MysqlCommand(Command.COM_QUERY, "  /* hint */ select 1").operation == "SELECT"
    assert MysqlCommand(Command.COM_QUERY, "-- c\n(SELECT 1) UNION (SELECT 2)").operation == "SELECT"
    assert MysqlCommand(Command.COM_QUERY, "").operation == "QUERY"
    assert MysqlCommand(Command.COM_STMT_EXECUTE).operation == "STMT_EXECUTE"


# -- framing ------------------------------------------------------------------------------------


def test_continuation_packets_in_a_query() -> None:
    """A 16 MiB + 10 byte COM_QUERY: two physical packets (seq 0 and 1), one command."""
    c = connected(max_query=1000)
    payload = b"\x03SELECT '" + b"x" * (0xFFFFFF + 1) + b"'"
    first, rest = payload[:0xFFFFFF], payload[0xFFFFFF:]
    wire = packet(0, first) + packet(1, rest)
    step = 1 << 16
    for pos in range(0, len(wire), step):
        assert c.c2s(wire[pos : pos + step]) == []
    (t,) = c.s2c(ok(2))
    assert t.request.query_truncated and len(t.request.query) == 1000
    assert t.request_size == len(wire) and c.session.parse_errors == 0
    assert c.session.buffered_bytes == 0


def test_continuation_with_an_empty_last_packet() -> None:
    """A payload of exactly 0xffffff bytes is followed by an empty packet."""
    c = connected()
    wire = packet(0, b"\x03SELECT '" + b"y" * (0xFFFFFF - 10) + b"'") + packet(1, b"")
    c.c2s(wire)
    (t,) = c.s2c(ok(2))
    assert t.request_size == len(wire) and c.session.parse_errors == 0


def test_continuation_packets_in_a_row() -> None:
    c = connected()
    row = lenenc(0xFFFFFF + 100) + b"z" * (0xFFFFFF + 100)
    head = packets(1, lenenc(1), coldef(b"blob"), eof_payload())
    big = packet(4, row[:0xFFFFFF]) + packet(5, row[0xFFFFFF:])
    tail = packets(6, text_row(b"small"), eof_payload())
    c.c2s(query(b"select blob from t"))
    c.s2c(head)
    first = 4 + 0xFFFFFF
    c.s2c(big[:100], total_len=first)  # a capture that kept only the start of the first packet
    c.s2c(big[first : first + 50], total_len=len(big) - first)  # and of the continuation
    (t,) = c.s2c(tail)
    assert (t.response.row_count, t.response_size) == (2, len(head) + len(big) + len(tail))
    assert c.session.parse_errors == 0 and c.session.capture_gaps == 0


def test_pipelined_commands() -> None:
    c = connected()
    assert c.c2s(query(b"select 1") + query(b"select 2") + packet(0, b"\x0e")) == []
    done = c.s2c(result_set(1, 1, [text_row(b"1")]) + result_set(1, 1, [text_row(b"2")]) + ok(1))
    assert [t.request.operation for t in done] == ["SELECT", "SELECT", "PING"]
    assert [t.response.row_count for t in done] == [1, 1, 0]


def test_outstanding_commands_are_bounded() -> None:
    c = connected(max_pending=2)
    for i in range(3):
        c.c2s(query(b"select %d" % i))
    assert c.session.pending_requests == 2 and c.session.dropped_requests == 1


def test_truncated_capture_inside_a_packet_keeps_the_framing() -> None:
    rows = [text_row(b"r" * 5000) for _ in range(3)]
    response = result_set(1, 1, rows)
    c = connected()
    c.c2s(query(b"select r from t"))
    cut = len(result_set(1, 1, [])) - 9 + 100  # inside the first row
    assert c.s2c(response[:cut], total_len=cut + 4000) == []
    (t,) = c.s2c(response[cut + 4000 :])
    assert t.response.row_count == 3 and not t.response.truncated
    assert t.response_size == len(response) and c.session.capture_gaps == 0


def test_gap_across_packets_loses_the_response_until_its_terminator() -> None:
    c = connected()
    rows = [text_row(b"%04d" % i + b"r" * 200) for i in range(100)]
    response = result_set(1, 1, rows)
    c.c2s(query(b"select r from t"))
    assert len(response) > 16384
    c.s2c(response[:4096], total_len=8192)
    assert c.session.capture_gaps == 1
    c.s2c(response[8192:12288], total_len=8192)  # still lost: not the end
    (t,) = c.s2c(response[16384:])  # fully captured, ends with the EOF
    r = t.response
    assert r.truncated and 0 < r.row_count < 100 and t.end_ns == c.ts
    assert t.response_size == len(response)
    assert c.command(query(b"select 2"), ok(1)).response.kind is ResponseKind.OK
    assert c.session.parse_errors == 0


def test_gap_then_next_command_finishes_the_lost_response() -> None:
    c = connected()
    response = result_set(1, 1, [text_row(b"r" * 200) for _ in range(100)])
    c.c2s(query(b"select r from t"))
    c.s2c(response[:4096], total_len=len(response) + 0)
    assert c.s2c(response[4096:4096]) == []
    (lost,) = c.c2s(packet(0, b"\x0e"))
    assert lost.response.truncated and lost.request.operation == "SELECT"
    (ping,) = c.s2c(ok(1))
    assert ping.request.operation == "PING"


def test_unknown_command_is_an_error_and_the_next_command_resynchronises() -> None:
    c = connected()
    assert c.c2s(packet(0, b"\x00sleep")) == []
    assert c.session.parse_errors == 1
    c.c2s(b"garbage that is not a packet")
    assert c.command(query(b"select 1"), ok(1)).request.query == "select 1"
    assert c.session.parse_errors == 1


def test_bad_sequence_in_a_response() -> None:
    c = connected()
    c.c2s(query(b"select 1"))
    assert c.s2c(packet(7, b"\x00\x00\x00\x02\x00\x00\x00")) == []
    assert c.session.parse_errors == 1
    (lost,) = c.c2s(query(b"select 2"))
    assert lost.response.truncated
    (t,) = c.s2c(ok(1))
    assert t.request.query == "select 2" and not t.response.truncated


def test_unsolicited_server_error_is_counted() -> None:
    c = connected()
    c.s2c(err(0, 4031, b"HY000", b"The client was disconnected by the server because of inactivity."))
    assert c.session.unmatched_responses == 1 and c.session.parse_errors == 0


def test_mid_stream_server_bytes_before_any_command_are_ignored() -> None:
    c = Conversation()
    c.s2c(packets(5, text_row(b"tail of a result"), eof_payload()))
    c.c2s(b"\x00" * 3)
    assert c.session.role is Role.UNKNOWN
    assert c.command(query(b"select 1"), ok(1)).request.user == ""
    assert c.session.role is Role.CLIENT and c.session.parse_errors == 0


@pytest.mark.parametrize(("direction", "role"), [(Direction.EGRESS, Role.CLIENT), (Direction.INGRESS, Role.SERVER)])
def test_role_from_the_command_direction(direction: Direction, role: Role) -> None:
    session = MysqlSession()
    session.feed(direction, query(b"select 1"), 1)
    assert session.role is role
    (t,) = session.feed(Direction(1 - direction), ok(1), 2)
    assert t.role is role


def test_buffers_stay_within_max_buffer() -> None:
    c = connected(max_buffer=256)
    sql = b"select '" + b"q" * 5000 + b"'"
    wire = query(sql)
    for i in range(0, len(wire), 100):
        c.c2s(wire[i : i + 100])
        assert c.session.buffered_bytes <= 256
    (t,) = c.s2c(ok(1))
    assert t.request.query_truncated and len(t.request.query) <= 256


def test_server_greeting_split_byte_by_byte_keeps_timestamps() -> None:
    c = Conversation()
    for byte in greeting():
        c.s2c(bytes((byte,)))
    c.c2s(handshake_response())
    (t,) = c.s2c(ok(2))
    assert t.request.server is not None and t.start_ns == len(greeting()) + 1


# -- detection ----------------------------------------------------------------------------------

NOT_MYSQL = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"\x00\x00\x00\x08\x04\xd2\x16\x2f",  # PostgreSQL SSLRequest
    b"\x00\x00\x00\x29\x00\x03\x00\x00user\x00postgres\x00database\x00postgres\x00\x00",  # startup
    b"Q\x00\x00\x00\x16SELECT 1 + 1 AS x;\x00",  # PostgreSQL simple query with length 0x16
    b"P\x00\x00\x00\x16\x00SELECT $1::int\x00\x00\x00",  # PostgreSQL Parse
    b"*1\r\n$4\r\nPING\r\n",
    b"+PONG\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(64)),  # TLS ClientHello
    b"\x00\x00\x12\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64",  # HTTP/2 SETTINGS
    b"",
    b"\x05\x00\x00",
    query(b"\x00\x01\x02binary junk"),
    packet(0, b"\x03SELECT 1") + b"\xff\xff",  # trailing bytes that are no packet
    packet(0, b"\x0e\x00"),  # COM_PING with a payload
    packet(1, b"\x03select 1"),  # sequence id 1
    packet(0, b"\x0a") + b"x" * 40,  # protocol 10 without a version string
    packet(0, b"\x09" + b"5.7.1\x00"),  # protocol 9
    greeting()[:4],  # a greeting's header read alone
    greeting()[4:-1],  # a greeting's payload, cut
    b"\n1.2 is the version\n" * 3 + b"\x00",  # text that starts like a headerless greeting
    b"\n" + bytes(range(1, 60)) + b"\x00",
]


@pytest.mark.parametrize("data", NOT_MYSQL, ids=range(len(NOT_MYSQL)))
def test_detect_rejects(data: bytes) -> None:
    assert not detect(data)


@pytest.mark.parametrize(
    "data",
    [
        greeting(),
        greeting(version=b"5.5.5-10.11.19-MariaDB-0+deb12u1"),
        greeting()[:64],  # capture cut at 64 bytes
        query(b"select 1"),
        query(b"  /* comment */ SELECT 1"),
        query(b"INSERT INTO t VALUES ('" + b"x" * 200 + b"')")[:70],  # a long query, captured in part
        packet(0, b"\x02shop"),
        packet(0, b"\x0e"),
        packet(0, b"\x01"),
        packet(0, b"\x16SELECT ?"),
        execute(3),
        packet(0, b"\x19\x01\x00\x00\x00"),
        query(b"select 1") + query(b"select 2"),
        greeting()[4:],  # the payload alone: its header was read apart
    ],
)
def test_detect_accepts(data: bytes) -> None:
    assert detect(data)


def test_detect_never_raises() -> None:
    for n in range(0, 80):
        assert detect(bytes([n % 7]) * n) in (True, False)
