"""Shared helpers for the MySQL parser tests: fixture loading, feeding, summaries."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from receiver.protocols.base import Direction, Role, Transaction
from receiver.protocols.mysql import MysqlHandshake, MysqlSession

FIXTURE_DIR = Path(__file__).resolve().parents[4] / "tests" / "fixtures" / "mysql"
FIXTURE_NAMES = sorted(p.stem for p in FIXTURE_DIR.glob("*.json"))

# Which Direction each recorded side maps to, by the traced process's role.
PERSPECTIVES = {
    Role.CLIENT: {"c2s": Direction.EGRESS, "s2c": Direction.INGRESS},
    Role.SERVER: {"c2s": Direction.INGRESS, "s2c": Direction.EGRESS},
}


@dataclass(frozen=True)
class Fixture:
    name: str
    chunks: tuple[tuple[str, bytes], ...]  # ("c2s" | "s2c", bytes), in capture order
    transactions: tuple[dict[str, Any], ...]
    session: dict[str, Any]
    c2s_bytes: int
    s2c_bytes: int


def load_fixture(name: str) -> Fixture:
    raw = json.loads((FIXTURE_DIR / f"{name}.json").read_text())
    return Fixture(
        name=raw["name"],
        chunks=tuple((c["dir"], base64.b64decode(c["data"])) for c in raw["chunks"]),
        transactions=tuple(raw["transactions"]),
        session=raw["session"],
        c2s_bytes=raw["c2s_bytes"],
        s2c_bytes=raw["s2c_bytes"],
    )


def summary(transaction: Transaction) -> dict[str, Any]:
    """The fields a fixture records, taken from a parsed transaction."""
    request, response = transaction.request, transaction.response
    handshake = isinstance(request, MysqlHandshake)
    command = "CONNECT" if handshake else request.name
    if command == "COM_STMT_PREPARE":
        statement_id = response.statement_id if response is not None else None
    elif handshake or request.statement_id < 0:
        statement_id = None
    else:
        statement_id = request.statement_id
    return {
        "command": command,
        "query": None if handshake else request.query,
        "user": request.user,
        "schema": request.schema,
        "new_schema": None if handshake else request.new_schema,
        "status": None if response is None else ("error" if response.is_error else "ok"),
        "result_sets": None if response is None else response.result_sets,
        "rows": None if response is None else response.row_count,
        "affected_rows": None if response is None else response.affected_rows,
        "last_insert_id": None if response is None else response.last_insert_id,
        "error_code": None if response is None else response.error_code,
        "sql_state": None if response is None else response.sql_state,
        "error_message": None if response is None else response.error_message,
        "statement_id": statement_id,
        "local_infile": "" if response is None else response.local_infile,
    }


def comparable(expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    """``actual`` restricted to the keys the client could tell (not ``None`` in ``expected``)."""
    return {k: actual.get(k) for k, v in expected.items() if v is not None}


def known(expected: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in expected.items() if v is not None}


def feed_all(
    session: MysqlSession,
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


def feed_fixture(fixture: Fixture, role: Role, session: MysqlSession, close: bool = True) -> list[Transaction]:
    dirs = PERSPECTIVES[role]
    pieces = [(dirs[side], data, i, None) for i, (side, data) in enumerate(fixture.chunks)]
    return feed_all(session, pieces, close_ts=len(fixture.chunks) if close else None)


def packet(seq: int, payload: bytes) -> bytes:
    """One physical packet."""
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def packets(first_seq: int, *payloads: bytes) -> bytes:
    return b"".join(packet((first_seq + i) & 0xFF, p) for i, p in enumerate(payloads))


def lenenc(n: int) -> bytes:
    if n < 0xFB:
        return bytes([n])
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little")
    if n < 1 << 24:
        return b"\xfd" + n.to_bytes(3, "little")
    return b"\xfe" + n.to_bytes(8, "little")
