"""Shared helpers for the PostgreSQL parser tests: fixture loading, feeding, summaries."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from receiver.protocols.base import Direction, Role, Transaction
from receiver.protocols.postgresql import PgRequest, PgResponse, PostgresSession

FIXTURE_DIR = Path(__file__).resolve().parents[4] / "tests" / "fixtures" / "postgresql"
FIXTURE_NAMES = sorted(p.stem for p in FIXTURE_DIR.glob("*.json"))

# Which Direction each recorded side maps to, by the traced process's role.
PERSPECTIVES = {
    Role.CLIENT: {"c2s": Direction.EGRESS, "s2c": Direction.INGRESS},
    Role.SERVER: {"c2s": Direction.INGRESS, "s2c": Direction.EGRESS},
}

OUT = Direction.EGRESS
IN = Direction.INGRESS


@dataclass(frozen=True)
class Fixture:
    name: str
    chunks: tuple[tuple[str, bytes], ...]  # ("c2s" | "s2c", bytes), in capture order
    transactions: tuple[dict[str, Any], ...]
    startup: dict[str, Any] | None
    encrypted: bool
    cancel_request: bool
    c2s_bytes: int
    s2c_bytes: int


def load_fixture(name: str) -> Fixture:
    raw = json.loads((FIXTURE_DIR / f"{name}.json").read_text())
    return Fixture(
        name=raw["name"],
        chunks=tuple((c["dir"], base64.b64decode(c["data"])) for c in raw["chunks"]),
        transactions=tuple(raw["transactions"]),
        startup=raw["startup"],
        encrypted=raw["encrypted"],
        cancel_request=raw["cancel_request"],
        c2s_bytes=raw["c2s_bytes"],
        s2c_bytes=raw["s2c_bytes"],
    )


def summary(transaction: Transaction) -> dict[str, Any]:
    """The fields a fixture records, taken from a parsed transaction."""
    request: PgRequest = transaction.request
    response: PgResponse | None = transaction.response
    error = response.error if response is not None else None
    return {
        "kind": request.kind.value,
        "query": request.query,
        "statement_name": request.statement_name,
        "status": response.status.value if response is not None else None,
        "commands": [c.tag for c in response.commands] if response is not None else [],
        "error": None if error is None else {"sqlstate": error.sqlstate, "severity": error.severity, "message": error.message},
        "data_rows": response.data_rows if response is not None else 0,
        "database": request.database,
        "user": request.user,
        "application_name": request.application_name,
    }


def matches(got: dict[str, Any], want: dict[str, Any], truncated: bool) -> bool:
    """``got`` equals ``want``, except that a truncated query only has to be a prefix."""
    if truncated and want["query"] is not None and got["query"] is not None:
        return want["query"].startswith(got["query"]) and {**got, "query": None} == {**want, "query": None}
    return got == want


def feed_all(
    session: PostgresSession,
    pieces: Iterable[tuple[Direction, bytes, int, int | None]],
    close_ts: int | None = None,
) -> list[Transaction]:
    """Feed (direction, data, ts, total_len) pieces, then close if ``close_ts`` is given."""
    out: list[Transaction] = []
    for direction, data, ts, total_len in pieces:
        out += session.feed(direction, data, ts, total_len)
    if close_ts is not None:
        out += session.close(close_ts)
    return out


def feed_fixture(fixture: Fixture, role: Role, session: PostgresSession, close: bool = True) -> list[Transaction]:
    dirs = PERSPECTIVES[role]
    pieces = [(dirs[side], data, i, None) for i, (side, data) in enumerate(fixture.chunks)]
    return feed_all(session, pieces, close_ts=len(fixture.chunks) if close else None)


# -- message builders (protocol 3.0 layouts) ---------------------------------------------------


def msg(kind: bytes, body: bytes = b"") -> bytes:
    return kind + (len(body) + 4).to_bytes(4, "big") + body


def cstr(value: str) -> bytes:
    return value.encode() + b"\x00"


def startup(user: str | None = "alice", database: str | None = "shop", application_name: str | None = None,
            **extra: str) -> bytes:
    params = {"user": user, "database": database, "application_name": application_name, **extra}
    body = (196608).to_bytes(4, "big") + b"".join(cstr(k) + cstr(v) for k, v in params.items() if v is not None) + b"\x00"
    return (len(body) + 4).to_bytes(4, "big") + body


def untyped(code: int, extra: bytes = b"") -> bytes:
    return (8 + len(extra)).to_bytes(4, "big") + code.to_bytes(4, "big") + extra


SSL_REQUEST = untyped(80877103)
GSSENC_REQUEST = untyped(80877104)
CANCEL_REQUEST = untyped(80877102, (4242).to_bytes(4, "big") + (99).to_bytes(4, "big"))


def query(sql: str) -> bytes:
    return msg(b"Q", cstr(sql))


def parse(sql: str, name: str = "", types: tuple[int, ...] = ()) -> bytes:
    return msg(b"P", cstr(name) + cstr(sql) + len(types).to_bytes(2, "big") + b"".join(t.to_bytes(4, "big") for t in types))


def bind(statement: str = "", portal: str = "", params: tuple[bytes | None, ...] = ()) -> bytes:
    body = cstr(portal) + cstr(statement) + b"\x00\x00" + len(params).to_bytes(2, "big")
    for p in params:
        body += b"\xff\xff\xff\xff" if p is None else len(p).to_bytes(4, "big") + p
    return msg(b"B", body + b"\x00\x00")


def describe(kind: bytes = b"P", name: str = "") -> bytes:
    return msg(b"D", kind + cstr(name))


def execute(portal: str = "", max_rows: int = 0) -> bytes:
    return msg(b"E", cstr(portal) + max_rows.to_bytes(4, "big"))


def close_msg(kind: bytes, name: str) -> bytes:
    return msg(b"C", kind + cstr(name))


SYNC = msg(b"S")
FLUSH = msg(b"H")
TERMINATE = msg(b"X")


def password(secret: bytes) -> bytes:
    return msg(b"p", secret)


def extended(sql: str, params: tuple[bytes | None, ...] = (), statement: str = "") -> bytes:
    """What libpq sends for PQexecParams: Parse, Bind, Describe portal, Execute, Sync."""
    return parse(sql, statement) + bind(statement, "", params) + describe() + execute() + SYNC


# backend


def auth(code: int, extra: bytes = b"") -> bytes:
    return msg(b"R", code.to_bytes(4, "big") + extra)


AUTH_OK = auth(0)
KEY_DATA = msg(b"K", (4242).to_bytes(4, "big") + (99).to_bytes(4, "big"))
PARSE_COMPLETE = msg(b"1")
BIND_COMPLETE = msg(b"2")
CLOSE_COMPLETE = msg(b"3")
NO_DATA = msg(b"n")
EMPTY_QUERY = msg(b"I")
PORTAL_SUSPENDED = msg(b"s")
COPY_DONE = msg(b"c")


def ready(status: str = "I") -> bytes:
    return msg(b"Z", status.encode())


def parameter_status(name: str, value: str) -> bytes:
    return msg(b"S", cstr(name) + cstr(value))


def row_description(*names: str) -> bytes:
    return msg(b"T", len(names).to_bytes(2, "big") + b"".join(cstr(n) + bytes(18) for n in names))


def data_row(*values: bytes | None) -> bytes:
    body = len(values).to_bytes(2, "big")
    for v in values:
        body += b"\xff\xff\xff\xff" if v is None else len(v).to_bytes(4, "big") + v
    return msg(b"D", body)


def command_complete(tag: str) -> bytes:
    return msg(b"C", cstr(tag))


def error_response(code: str = "42P01", message: str = 'relation "t" does not exist', severity: str = "ERROR",
                   localized: str | None = None, with_v: bool = True, kind: bytes = b"E") -> bytes:
    """ErrorResponse (or NoticeResponse with ``kind=b"N"``): S (localized), V, C, M, F, L."""
    fields = b"S" + cstr(localized or severity)
    if with_v:
        fields += b"V" + cstr(severity)
    fields += b"C" + cstr(code) + b"M" + cstr(message) + b"Fparse_relation.c\x00L1392\x00\x00"
    return msg(kind, fields)


def notice(message: str = "hello") -> bytes:
    return msg(b"N", b"SNOTICE\x00VNOTICE\x0000C00000\x00M" + cstr(message) + b"\x00")


def notification(channel: str = "ch", payload: str = "x") -> bytes:
    return msg(b"A", (77).to_bytes(4, "big") + cstr(channel) + cstr(payload))


def copy_response(kind: bytes, columns: int = 2) -> bytes:
    return msg(kind, b"\x00" + columns.to_bytes(2, "big") + bytes(2 * columns))


def copy_data(data: bytes) -> bytes:
    return msg(b"d", data)


def select_result(*rows: bytes, tag: str | None = None) -> bytes:
    """RowDescription, a DataRow per value, CommandComplete."""
    return row_description("v") + b"".join(data_row(r) for r in rows) + command_complete(tag or f"SELECT {len(rows)}")


def handshake(app: str | None = None) -> bytes:
    """The server's answer to a trusted StartupMessage."""
    out = AUTH_OK + parameter_status("server_version", "15.18")
    if app is not None:
        out += parameter_status("application_name", app)
    return out + KEY_DATA + ready()
