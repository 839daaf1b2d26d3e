"""Hand-written edge cases for PostgresSession, one (or more) per item of the protocol's spec."""

from __future__ import annotations

import pytest
from pg_support import (
    BIND_COMPLETE,
    CANCEL_REQUEST,
    CLOSE_COMPLETE,
    COPY_DONE,
    EMPTY_QUERY,
    FLUSH,
    GSSENC_REQUEST,
    IN,
    KEY_DATA,
    NO_DATA,
    OUT,
    PARSE_COMPLETE,
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
    extended,
    handshake,
    msg,
    notice,
    notification,
    parameter_status,
    parse,
    password,
    query,
    ready,
    row_description,
    select_result,
    startup,
)

from receiver.protocols.base import ProtocolSession, Role
from receiver.protocols.postgresql import (
    PgCommand,
    PgError,
    PgRequest,
    PgRequestKind,
    PgResponse,
    PgStatus,
    PostgresSession,
)

SIMPLE = PgRequestKind.SIMPLE_QUERY
EXECUTE = PgRequestKind.EXECUTE


def connected(app: str | None = None, **kw) -> PostgresSession:
    """A client-side session past a trusted startup (ts 1 and 2)."""
    session = PostgresSession(**kw)
    assert session.feed(OUT, startup(application_name=app), 1) == []
    assert session.feed(IN, handshake(app), 2) == []
    return session


def roundtrip(session: PostgresSession, request: bytes, response: bytes, ts: int = 10) -> list:
    out = session.feed(OUT, request, ts)
    out += session.feed(IN, response, ts + 1)
    return out


def test_satisfies_the_protocol_session_contract() -> None:
    session: ProtocolSession = PostgresSession()
    assert session.protocol == "postgresql"
    assert session.parse_errors == 0


# -- startup and the connection's identity ----------------------------------------------------


def test_startup_gives_database_user_and_application_to_every_transaction() -> None:
    session = connected(app="billing")
    assert (session.database, session.user, session.application_name) == ("shop", "alice", "billing")
    assert session.startup.protocol_version == (3, 0)
    q = query("SELECT 1")
    (t,) = roundtrip(session, q, select_result(b"1") + ready(), ts=10)
    assert t.protocol == "postgresql" and t.role is Role.CLIENT and session.role is Role.CLIENT
    assert t.request == PgRequest(SIMPLE, "SELECT 1", database="shop", user="alice", application_name="billing",
                                  wire_size=len(q))
    assert t.response == PgResponse(PgStatus.OK, (PgCommand("SELECT 1", "SELECT", 1),), None, 1,
                                    len(select_result(b"1") + ready()))
    assert (t.start_ns, t.end_ns, t.request_size, t.response_size) == (10, 11, len(q), t.response.wire_size)
    assert session.parse_errors == 0 and session.buffered_bytes == 0


def test_database_defaults_to_the_user_name() -> None:
    session = PostgresSession()
    session.feed(OUT, startup(user="bob", database=None), 1)
    assert (session.database, session.user, session.application_name) == ("bob", "bob", None)


def test_server_side_role() -> None:
    session = PostgresSession()
    session.feed(IN, startup(), 1)
    session.feed(OUT, handshake(), 2)
    (t,) = session.feed(IN, query("SELECT 1"), 3) + session.feed(OUT, select_result(b"1") + ready(), 4)
    assert t.role is Role.SERVER and session.role is Role.SERVER
    assert t.request.database == "shop"


def test_parameter_status_updates_the_application_name() -> None:
    session = connected(app="before")
    response = command_complete("SET") + parameter_status("application_name", "after") + ready()
    (t,) = roundtrip(session, query("SET application_name = 'after'"), response)
    assert t.request.application_name == "before"  # the request was made under the old name
    (t,) = roundtrip(session, query("SELECT 1"), select_result(b"1") + ready(), ts=20)
    assert t.request.application_name == "after"


# -- authentication: recognised, skipped, never stored ----------------------------------------

SECRET = b"md5a3556571e93b0d20722ba62be61e8c2d"


def retained(session: PostgresSession) -> str:
    """Everything the session keeps, as text (to look for secrets in)."""
    parts = [repr(vars(session)), repr(vars(session._stitcher))]
    for stream in session._streams:
        parts += [repr(bytes(stream.buf)), repr(stream.state)]
    return "".join(parts)


def test_md5_password_is_skipped_and_never_stored() -> None:
    session = PostgresSession()
    session.feed(OUT, startup(), 1)
    session.feed(IN, auth(5, b"\x01\x02\x03\x04"), 2)
    pw = password(SECRET + b"\x00")
    session.feed(OUT, pw[:7], 3)  # split: the header arrives first, the secret later
    session.feed(OUT, pw[7:], 4)
    session.feed(IN, handshake(), 5)
    (t,) = roundtrip(session, query("SELECT 1"), select_result(b"1") + ready())
    assert session.auth_codes == (5, 0)
    assert session.parse_errors == 0
    assert SECRET.decode() not in retained(session) and SECRET.decode() not in repr(t)


def test_sasl_exchange_is_skipped_and_never_stored() -> None:
    session = PostgresSession()
    session.feed(OUT, startup(), 1)
    session.feed(IN, auth(10, b"SCRAM-SHA-256\x00\x00"), 2)
    first = b"n,,n=,r=clientnonce"
    session.feed(OUT, msg(b"p", b"SCRAM-SHA-256\x00" + len(first).to_bytes(4, "big") + first), 3)
    session.feed(IN, auth(11, b"r=clientnonceservernonce,s=c2FsdA==,i=4096"), 4)
    proof = b"c=biws,r=clientnonceservernonce,p=SECRETPROOFSECRETPROOF"
    session.feed(OUT, password(proof), 5)
    session.feed(IN, auth(12, b"v=SERVERSIGNATURE") + handshake(), 6)
    (t,) = roundtrip(session, query("SELECT 1"), select_result(b"1") + ready())
    assert session.auth_codes == (10, 11, 12, 0)
    kept = retained(session)
    assert "SECRETPROOF" not in kept and "SERVERSIGNATURE" not in kept and "clientnonce" not in kept
    assert session.parse_errors == 0


def test_authentication_failure_is_kept_as_startup_error() -> None:
    session = PostgresSession()
    session.feed(OUT, startup(), 1)
    session.feed(IN, auth(5, b"salt"), 2)
    session.feed(OUT, password(b"md5wrong\x00"), 3)
    failure = error_response("28P01", 'password authentication failed for user "alice"', "FATAL")
    assert session.feed(IN, failure, 4) == []
    assert session.startup_error == PgError("FATAL", "28P01", 'password authentication failed for user "alice"')
    assert session.close(5) == []
    assert session.parse_errors == 0


# -- SSLRequest / GSSENCRequest / CancelRequest -----------------------------------------------


def test_ssl_refused_continues_in_plaintext() -> None:
    session = PostgresSession()
    session.feed(OUT, SSL_REQUEST, 1)
    session.feed(IN, b"N", 2)
    session.feed(OUT, startup(), 3)
    session.feed(IN, handshake(), 4)
    (t,) = roundtrip(session, query("SELECT 1"), select_result(b"1") + ready())
    assert t.request.user == "alice" and not session.encrypted and session.parse_errors == 0


@pytest.mark.parametrize("request_, answer", [(SSL_REQUEST, b"S"), (GSSENC_REQUEST, b"G")], ids=["ssl", "gssenc"])
def test_encryption_accepted_stops_parsing_without_errors(request_: bytes, answer: bytes) -> None:
    session = PostgresSession()
    session.feed(OUT, request_, 1)
    session.feed(IN, answer, 2)
    assert session.encrypted
    tls = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) * 4
    assert session.feed(OUT, tls, 3) == [] and session.feed(IN, tls[::-1], 4) == []
    assert session.close(5) == []
    assert session.parse_errors == 0 and session.buffered_bytes == 0


def test_gssenc_refused_then_ssl_refused_then_startup() -> None:
    session = PostgresSession()
    session.feed(OUT, GSSENC_REQUEST, 1)
    session.feed(IN, b"N", 2)
    session.feed(OUT, SSL_REQUEST, 3)
    session.feed(IN, b"N", 4)
    session.feed(OUT, startup(), 5)
    session.feed(IN, handshake(), 6)
    assert len(roundtrip(session, query("SELECT 1"), select_result(b"1") + ready())) == 1
    assert session.parse_errors == 0


def test_answer_to_an_unseen_ssl_request() -> None:
    session = PostgresSession()
    session.feed(IN, b"N", 1)
    session.feed(OUT, startup(), 2)
    session.feed(IN, handshake(), 3)
    assert len(roundtrip(session, query("SELECT 1"), select_result(b"1") + ready())) == 1
    assert session.role is Role.CLIENT and session.parse_errors == 0


def test_cancel_request_is_counted_not_parsed() -> None:
    session = PostgresSession()
    assert session.feed(OUT, CANCEL_REQUEST, 1) == []
    assert session.cancel_request and session.close(2) == [] and session.parse_errors == 0


# -- simple query -------------------------------------------------------------------------------


def test_several_statements_in_one_query_are_one_transaction() -> None:
    session = connected()
    sql = "BEGIN; INSERT INTO t VALUES (1), (2); UPDATE t SET x = 1; DELETE FROM t; SELECT 1; COMMIT"
    response = (
        command_complete("BEGIN") + command_complete("INSERT 0 2") + command_complete("UPDATE 2")
        + command_complete("DELETE 2") + select_result(b"1") + command_complete("COMMIT") + ready()
    )
    (t,) = roundtrip(session, query(sql), response)
    assert t.request.query == sql
    assert [(c.tag, c.operation, c.rows) for c in t.response.commands] == [
        ("BEGIN", "BEGIN", None), ("INSERT 0 2", "INSERT", 2), ("UPDATE 2", "UPDATE", 2),
        ("DELETE 2", "DELETE", 2), ("SELECT 1", "SELECT", 1), ("COMMIT", "COMMIT", None),
    ]
    assert t.response.operation == "BEGIN" and t.response.rows == 7 and t.response.data_rows == 1
    assert t.response.status is PgStatus.OK


@pytest.mark.parametrize(
    "tag, operation, rows",
    [("CREATE TABLE", "CREATE TABLE", None), ("MERGE 4", "MERGE", 4), ("COPY 10", "COPY", 10),
     ("FETCH 0", "FETCH", 0), ("SELECT 0", "SELECT", 0), ("ALTER DEFAULT PRIVILEGES", "ALTER DEFAULT PRIVILEGES", None)],
)
def test_command_tags(tag: str, operation: str, rows: int | None) -> None:
    (t,) = roundtrip(connected(), query("x"), command_complete(tag) + ready())
    assert t.response.commands == (PgCommand(tag, operation, rows),)


def test_error_in_the_middle_of_a_query_string() -> None:
    session = connected()
    (t,) = roundtrip(session, query("SELECT 1; SELECT * FROM t; SELECT 2"),
                     select_result(b"1") + error_response() + ready("I"))
    assert t.response.status is PgStatus.ERROR
    assert t.response.commands == (PgCommand("SELECT 1", "SELECT", 1),)
    assert t.response.error == PgError("ERROR", "42P01", 'relation "t" does not exist')


def test_error_severity_prefers_the_non_localized_field() -> None:
    (t,) = roundtrip(connected(), query("x"), error_response(severity="ERROR", localized="FEHLER") + ready())
    assert t.response.error.severity == "ERROR"
    (t,) = roundtrip(connected(), query("x"), error_response(localized="FEHLER", with_v=False) + ready())
    assert t.response.error.severity == "FEHLER"


def test_empty_query() -> None:
    (t,) = roundtrip(connected(), query(""), EMPTY_QUERY + ready())
    assert t.response.status is PgStatus.EMPTY and t.response.commands == ()


def test_simple_queries_in_a_row_pair_in_order() -> None:
    session = connected()
    out = session.feed(OUT, query("SELECT 1") + query("SELECT 2"), 10)
    out += session.feed(IN, select_result(b"1") + ready() + select_result(b"2", b"3") + ready(), 11)
    assert [(t.request.query, t.response.rows) for t in out] == [("SELECT 1", 1), ("SELECT 2", 2)]


def test_transaction_status_in_ready_for_query_is_accepted() -> None:
    session = connected()
    out = roundtrip(session, query("BEGIN"), command_complete("BEGIN") + ready("T"))
    out += roundtrip(session, query("SELECT x"), error_response() + ready("E"), ts=20)
    out += roundtrip(session, query("ROLLBACK"), command_complete("ROLLBACK") + ready("I"), ts=30)
    assert [t.response.status for t in out] == [PgStatus.OK, PgStatus.ERROR, PgStatus.OK]


# -- extended protocol ------------------------------------------------------------------------


def test_unnamed_statement_execute() -> None:
    session = connected()
    request = extended("SELECT * FROM t WHERE id = $1 AND k = $2", (b"1", None))
    response = PARSE_COMPLETE + BIND_COMPLETE + row_description("a") + data_row(b"x") + command_complete("SELECT 1")
    assert session.feed(OUT, request, 10) == []
    (t,) = session.feed(IN, response, 11)
    assert t.request == PgRequest(
        EXECUTE, "SELECT * FROM t WHERE id = $1 AND k = $2", "", "", 2, 0, "shop", "alice", None,
        len(request) - len(SYNC), False,
    )
    assert t.response == PgResponse(PgStatus.OK, (PgCommand("SELECT 1", "SELECT", 1),), None, 1, len(response))
    assert (t.start_ns, t.end_ns) == (10, 11)
    assert session.feed(IN, ready(), 12) == []  # the Sync's answer is not a transaction
    assert session.parse_errors == 0 and session.pending_requests == 0


def test_request_starts_at_its_first_message() -> None:
    session = connected()
    session.feed(OUT, parse("SELECT 1"), 10)
    session.feed(OUT, bind() + describe(), 11)
    session.feed(OUT, execute() + SYNC, 12)
    (t,) = session.feed(IN, PARSE_COMPLETE + BIND_COMPLETE + NO_DATA + command_complete("SELECT 1"), 13)
    assert (t.start_ns, t.end_ns) == (10, 13)


def test_named_prepared_statement_is_resolved_later() -> None:
    session = connected()
    # psycopg prepare=True: Parse(name) + Sync, answered; no transaction for it.
    assert roundtrip(session, parse("SELECT name FROM t WHERE id = $1", "_pg3_0") + SYNC, PARSE_COMPLETE + ready()) == []
    assert session.statements == {"_pg3_0": "SELECT name FROM t WHERE id = $1"}
    for i in range(2):
        request = bind("_pg3_0", "", (b"7",)) + describe() + execute() + SYNC
        (t,) = roundtrip(session, request, BIND_COMPLETE + select_result(b"n") + ready(), ts=20 + 10 * i)
        assert (t.request.kind, t.request.query, t.request.statement_name) == (EXECUTE, "SELECT name FROM t WHERE id = $1", "_pg3_0")
        assert t.request.parameter_count == 1


def test_close_statement_forgets_its_text() -> None:
    session = connected()
    roundtrip(session, parse("SELECT 1", "s1") + SYNC, PARSE_COMPLETE + ready())
    roundtrip(session, close_msg(b"S", "s1") + SYNC, CLOSE_COMPLETE + ready(), ts=20)
    assert session.statements == {}
    (t,) = roundtrip(session, bind("s1") + execute() + SYNC, BIND_COMPLETE + command_complete("SELECT 1") + ready(), ts=30)
    assert t.request.query is None and t.request.statement_name == "s1"


def test_discard_all_and_deallocate_forget_statements() -> None:
    session = connected()
    roundtrip(session, parse("SELECT 1", "a") + parse("SELECT 2", "b") + parse("SELECT 3", "C d") + SYNC,
              PARSE_COMPLETE * 3 + ready())
    roundtrip(session, query("DEALLOCATE a"), command_complete("DEALLOCATE") + ready(), ts=20)
    assert set(session.statements) == {"b", "C d"}
    roundtrip(session, query('DEALLOCATE PREPARE "C d"'), command_complete("DEALLOCATE") + ready(), ts=30)
    assert set(session.statements) == {"b"}
    roundtrip(session, query("DISCARD ALL"), command_complete("DISCARD ALL") + ready(), ts=40)
    assert session.statements == {}
    roundtrip(session, parse("SELECT 4", "e") + SYNC, PARSE_COMPLETE + ready(), ts=50)
    roundtrip(session, query("DEALLOCATE ALL"), command_complete("DEALLOCATE ALL") + ready(), ts=60)
    assert session.statements == {}


def test_statement_map_is_bounded() -> None:
    session = connected(max_statements=4)
    request = b"".join(parse(f"SELECT {i}", f"s{i}") for i in range(10)) + SYNC
    roundtrip(session, request, PARSE_COMPLETE * 10 + ready())
    assert list(session.statements) == ["s6", "s7", "s8", "s9"]
    assert session.evicted_statements == 6


def test_statement_text_is_bounded_in_bytes() -> None:
    session = connected(max_buffer=1024)  # texts up to 4 x max_buffer are kept in all
    request = b"".join(parse("SELECT '" + "x" * 900 + f"' AS c{i}", f"s{i}") for i in range(8)) + SYNC
    roundtrip(session, request, PARSE_COMPLETE * 8 + ready())
    assert sum(len(q) for q in session.statements.values()) <= 4 * 1024
    assert session.evicted_statements == 4


def test_pipelined_executes_pair_in_order() -> None:
    session = connected()
    request = (
        parse("INSERT INTO t VALUES ($1)", "ins") + bind("ins", "", (b"1",)) + execute()
        + bind("ins", "", (b"2",)) + execute()
        + parse("SELECT count(*) FROM t") + bind() + describe() + execute() + SYNC + FLUSH
    )
    assert session.feed(OUT, request, 10) == []
    out = session.feed(IN, PARSE_COMPLETE + BIND_COMPLETE + command_complete("INSERT 0 1"), 11)
    out += session.feed(IN, BIND_COMPLETE + command_complete("INSERT 0 1"), 12)
    out += session.feed(IN, PARSE_COMPLETE + BIND_COMPLETE + select_result(b"2") + ready(), 13)
    assert [(t.request.query, t.request.statement_name, t.response.commands[0].tag, t.end_ns) for t in out] == [
        ("INSERT INTO t VALUES ($1)", "ins", "INSERT 0 1", 11),
        ("INSERT INTO t VALUES ($1)", "ins", "INSERT 0 1", 12),
        ("SELECT count(*) FROM t", "", "SELECT 1", 13),
    ]
    assert sum(t.request_size for t in out) == len(request) - len(SYNC) - len(FLUSH)


def test_error_in_a_pipeline_aborts_the_rest_until_sync() -> None:
    session = connected()
    request = extended("SELECT 1")[: -len(SYNC)] + extended("SELECT * FROM t")[: -len(SYNC)] + extended("SELECT 3")
    assert session.feed(OUT, request, 10) == []
    out = session.feed(IN, PARSE_COMPLETE + BIND_COMPLETE + select_result(b"1"), 11)
    out += session.feed(IN, error_response(), 12)
    assert [t.response.status for t in out] == [PgStatus.OK, PgStatus.ERROR]
    out += session.feed(IN, ready("I"), 13)
    assert [(t.request.query, t.response.status, t.end_ns) for t in out] == [
        ("SELECT 1", PgStatus.OK, 11),
        ("SELECT * FROM t", PgStatus.ERROR, 12),
        ("SELECT 3", PgStatus.ABORTED, 13),
    ]
    assert out[2].response.error is None and out[2].response_size == 0
    # The next Sync group is unaffected.
    (t,) = roundtrip(session, extended("SELECT 4"), PARSE_COMPLETE + BIND_COMPLETE + select_result(b"4") + ready(), ts=20)
    assert t.response.status is PgStatus.OK
    assert session.dropped_requests == 0 and session.parse_errors == 0


def test_failed_prepare_without_execute_is_a_transaction() -> None:
    session = connected()
    request = parse("SELECT nope FROM t", "_pg3_1") + SYNC
    (t,) = roundtrip(session, request, error_response("42703", 'column "nope" does not exist') + ready())
    assert t.request.kind is PgRequestKind.PREPARE
    assert (t.request.query, t.request.statement_name) == ("SELECT nope FROM t", "_pg3_1")
    assert t.response.error.sqlstate == "42703" and t.request_size == len(request)


def test_portal_suspended_then_resumed() -> None:
    session = connected()
    request = parse("SELECT * FROM big") + bind("", "cur") + execute("cur", 2) + FLUSH
    session.feed(OUT, request, 10)
    (first,) = session.feed(IN, PARSE_COMPLETE + BIND_COMPLETE + data_row(b"1") + data_row(b"2") + PORTAL_SUSPENDED, 11)
    assert first.response.status is PgStatus.SUSPENDED and first.response.data_rows == 2
    assert (first.request.portal_name, first.request.row_limit) == ("cur", 2)
    session.feed(OUT, execute("cur", 2) + SYNC, 12)
    (second,) = session.feed(IN, data_row(b"3") + command_complete("SELECT 1") + ready(), 13)
    assert second.request.query == "SELECT * FROM big" and second.response.status is PgStatus.OK


def test_empty_query_in_the_extended_protocol() -> None:
    (t,) = roundtrip(connected(), extended(""), PARSE_COMPLETE + BIND_COMPLETE + NO_DATA + EMPTY_QUERY + ready())
    assert t.response.status is PgStatus.EMPTY


def test_describe_statement_then_execute_later() -> None:
    session = connected()
    assert roundtrip(session, parse("SELECT $1::int", "d") + describe(b"S", "d") + SYNC,
                     PARSE_COMPLETE + msg(b"t", b"\x00\x01\x00\x00\x00\x17") + row_description("int4") + ready()) == []
    (t,) = roundtrip(session, bind("d", "", (b"5",)) + execute() + SYNC, BIND_COMPLETE + data_row(b"5")
                     + command_complete("SELECT 1") + ready(), ts=20)
    assert t.request.query == "SELECT $1::int"


def test_function_call() -> None:
    session = connected()
    call = msg(b"F", (1234).to_bytes(4, "big") + b"\x00\x00\x00\x00\x00\x00\x00\x01")
    (t,) = roundtrip(session, call, msg(b"V", (1).to_bytes(4, "big") + b"x") + ready())
    assert t.request.kind is PgRequestKind.FUNCTION_CALL and t.response.status is PgStatus.OK


# -- things that are parsed and ignored ---------------------------------------------------------


def test_copy_in() -> None:
    session = connected()
    q = query("COPY t FROM STDIN")
    session.feed(OUT, q, 10)
    session.feed(IN, copy_response(b"G"), 11)
    data = copy_data(b"1\tone\n") + copy_data(b"2\ttwo\n") + COPY_DONE
    session.feed(OUT, data, 12)
    (t,) = session.feed(IN, command_complete("COPY 2") + ready(), 13)
    assert t.response.commands == (PgCommand("COPY 2", "COPY", 2),)
    assert t.request_size == len(q) + len(data) and t.request.wire_size == len(q) + len(data)
    assert session.parse_errors == 0


def test_copy_out() -> None:
    response = copy_response(b"H") + copy_data(b"1\tone\n") * 3 + COPY_DONE + command_complete("COPY 3") + ready()
    (t,) = roundtrip(connected(), query("COPY t TO STDOUT"), response)
    assert t.response.rows == 3 and t.response_size == len(response)


def test_asynchronous_messages_make_no_transactions() -> None:
    session = connected()
    noise = notification() + parameter_status("TimeZone", "UTC") + notice() + KEY_DATA
    assert session.feed(IN, noise, 5) == []
    (t,) = roundtrip(session, query("LISTEN ch"), command_complete("LISTEN") + notification() + notice() + ready())
    assert t.response.commands[0].operation == "LISTEN"
    assert session.feed(IN, noise, 20) == []
    assert session.parse_errors == 0 and session.unmatched_responses == 0


def test_terminate() -> None:
    session = connected()
    assert session.feed(OUT, TERMINATE, 10) == []
    assert session.close(11) == [] and session.parse_errors == 0


def test_close_emits_unanswered_requests() -> None:
    session = connected()
    session.feed(OUT, query("SELECT pg_sleep(100)"), 10)
    (t,) = session.close(20)
    assert t.response is None and (t.start_ns, t.end_ns) == (10, 20)
    assert session.close(21) == [] and session.feed(OUT, query("x"), 22) == []


def test_close_keeps_partial_results() -> None:
    session = connected()
    session.feed(OUT, query("SELECT 1; SELECT 2"), 10)
    session.feed(IN, select_result(b"1"), 11)
    (t,) = session.close(20)
    assert t.response.commands[0].tag == "SELECT 1" and t.end_ns == 11


# -- splits, truncation, gaps, resynchronisation -----------------------------------------------


def test_long_query_is_cut_at_max_buffer() -> None:
    session = connected(max_buffer=1024)
    sql = "SELECT '" + "y" * 5000 + "'"
    q = query(sql)
    for i in range(0, len(q), 700):
        session.feed(OUT, q[i : i + 700], 10 + i)
        assert session.buffered_bytes <= 1024
    (t,) = session.feed(IN, select_result(b"1") + ready(), 99999)
    assert t.request.query_truncated and sql.startswith(t.request.query) and len(t.request.query) > 900
    assert t.request_size == len(q) and t.start_ns == 10
    assert session.parse_errors == 0


def test_truncated_capture_inside_a_query() -> None:
    session = connected()
    sql = "SELECT '" + "z" * 10000 + "'"
    q = query(sql)
    session.feed(OUT, q[:4096], 10, len(q))  # kernel capture: 4 KiB of the write, its real length
    (t,) = session.feed(IN, select_result(b"1") + ready(), 11)
    assert t.request.query_truncated and sql.startswith(t.request.query) and t.request_size == len(q)
    assert session.parse_errors == 0 and session.capture_gaps == 0


def test_truncated_capture_over_many_rows_resynchronises() -> None:
    session = connected()
    session.feed(OUT, query("SELECT g FROM generate_series(1, 3000) g"), 10)
    rows = b"".join(data_row(str(i).encode()) for i in range(3000))
    stream = row_description("g") + rows + command_complete("SELECT 3000") + ready()
    out = []
    for ts, i in enumerate(range(0, len(stream), 8192), start=11):  # 8 KiB writes, 4 KiB captured
        piece = stream[i : i + 8192]
        out += session.feed(IN, piece[:4096], ts, len(piece))
    (t,) = out
    assert t.response.commands == (PgCommand("SELECT 3000", "SELECT", 3000),)
    assert 0 < t.response.data_rows < 3000
    assert session.capture_gaps > 0 and session.parse_errors == 0
    (t,) = roundtrip(session, query("SELECT 1"), select_result(b"1") + ready(), ts=100)
    assert t.response.rows == 1


def test_lost_command_complete_gives_an_incomplete_transaction() -> None:
    """The end of an answer fell in a capture gap: the request comes out INCOMPLETE with what
    was seen, and the next request (sent after it) gets its own answer, not the rest."""
    session = connected()
    session.feed(OUT, query("SELECT big"), 10)
    answer = row_description("v") + data_row(b"r" * 1000) * 10 + command_complete("SELECT 10") + ready()
    session.feed(IN, answer[:2000], 11, len(answer))  # the CommandComplete was not captured
    assert session.pending_requests == 1
    out = roundtrip(session, query("SELECT small"), select_result(b"1") + ready(), ts=20)
    assert [(t.request.query, t.response.status, t.response.commands) for t in out] == [
        ("SELECT big", PgStatus.INCOMPLETE, ()),
        ("SELECT small", PgStatus.OK, (PgCommand("SELECT 1", "SELECT", 1),)),
    ]
    assert out[0].end_ns == 11 and out[0].response.data_rows == 2 and out[1].response.data_rows == 1  # rows begun
    assert session.capture_gaps == 1 and session.parse_errors == 0 and session.pending_requests == 0


def test_frontend_gap_keeps_later_pairs_right() -> None:
    """A write that was lost (too big for the capture, past its first message): its answer
    is absorbed, the next request pairs with its own answer."""
    session = connected()
    out = roundtrip(session, query("SELECT 'a'"), select_result(b"a") + ready(), ts=10)
    lost = extended("SELECT 'lost'", (b"x" * 100,))
    session.feed(OUT, lost[:20], 20, len(lost))  # the Parse's prefix, then everything is lost
    out += session.feed(IN, PARSE_COMPLETE + BIND_COMPLETE + select_result(b"lost") + ready(), 21)
    out += roundtrip(session, query("SELECT 'next'"), select_result(b"next") + ready(), ts=30)
    assert [(t.request.query, t.response.commands[0].tag) for t in out] == [
        ("SELECT 'a'", "SELECT 1"), ("SELECT 'next'", "SELECT 1"),
    ]
    assert session.capture_gaps == 1 and session.parse_errors == 0 and session.pending_requests == 0


def test_frontend_garbage_holding_no_request_does_not_shift_pairs() -> None:
    session = connected()
    session.feed(OUT, b"\x00\x00\x00\x00", 5)  # not a message: a parse error, the stream is lost
    out = []
    for i in range(3):
        out += roundtrip(session, query(f"SELECT {i}"), select_result(str(i).encode()) + ready(), ts=10 * (i + 1))
    assert [t.request.query for t in out] == ["SELECT 0", "SELECT 1", "SELECT 2"]
    assert [t.end_ns for t in out] == [11, 21, 31]
    assert session.parse_errors == 1


def test_mid_stream_attach_finds_the_next_message() -> None:
    session = PostgresSession()
    tail_of_rows = data_row(b"x" * 40)[17:] + data_row(b"y") + command_complete("SELECT 9") + ready()
    assert session.feed(IN, tail_of_rows, 1) == []  # answers to a query never seen
    (t,) = roundtrip(session, query("SELECT 2"), select_result(b"2") + ready())
    assert t.request.query == "SELECT 2" and t.request.database is None and t.role is Role.CLIENT
    assert session.parse_errors == 0 and session.unmatched_responses == 1


def test_mid_stream_attach_on_the_client_side_first() -> None:
    session = PostgresSession()
    session.feed(OUT, parse("SELECT 1") + bind() + execute() + SYNC, 1)
    (t,) = session.feed(IN, PARSE_COMPLETE + BIND_COMPLETE + command_complete("SELECT 1") + ready(), 2)
    assert t.role is Role.CLIENT and t.request.query == "SELECT 1"


def test_garbage_is_counted_and_skipped() -> None:
    session = connected()
    session.feed(OUT, b"\x01\x02garbage that is not postgres at all\xff" * 3, 5)
    assert session.parse_errors == 1
    (t,) = roundtrip(session, query("SELECT 1"), select_result(b"1") + ready())
    assert t.request.query == "SELECT 1"


def test_bad_length_in_a_known_stream_is_a_parse_error() -> None:
    session = connected()
    session.feed(IN, b"Z\x00\x00\x00\x09I", 5)  # ReadyForQuery is always 5 long
    assert session.parse_errors == 1


def test_pending_requests_are_bounded_and_pairing_survives() -> None:
    session = connected(max_pending=4)
    request = b"".join(bind() + execute() for _ in range(10)) + SYNC
    session.feed(OUT, parse("SELECT 1") + request, 10)
    assert session._stitcher.queued <= 5
    response = PARSE_COMPLETE + (BIND_COMPLETE + command_complete("SELECT 1")) * 10 + ready()
    out = session.feed(IN, response, 11)
    assert len(out) == 4 and session.dropped_requests == 6
    (t,) = roundtrip(session, query("SELECT 'after'"), select_result(b"after") + ready(), ts=20)
    assert t.request.query == "SELECT 'after'" and t.response.rows == 1


def test_byte_by_byte_equals_whole() -> None:
    request = startup() + extended("SELECT $1", (b"1",)) + query("SELECT 2; SELECT 3")
    response = handshake() + PARSE_COMPLETE + BIND_COMPLETE + select_result(b"1") + ready() \
        + select_result(b"2") + select_result(b"3") + ready()
    whole = PostgresSession()
    expected = whole.feed(OUT, request, 1) + whole.feed(IN, response, 2)
    session = PostgresSession()
    got = []
    for i in range(len(request)):
        got += session.feed(OUT, request[i : i + 1], 1)
    for i in range(len(response)):
        got += session.feed(IN, response[i : i + 1], 2)
    assert [(t.request, t.response) for t in got] == [(t.request, t.response) for t in expected]
    assert len(got) == 2 and session.parse_errors == 0
