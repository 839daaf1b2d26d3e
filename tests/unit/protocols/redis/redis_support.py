"""Shared helpers for the Redis parser tests: fixture loading, feeding, summaries, frame builders."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from receiver.protocols.base import Direction, Role, Transaction
from receiver.protocols.redis import RedisSession

FIXTURE_DIR = Path(__file__).resolve().parents[4] / "tests" / "fixtures" / "redis"
FIXTURE_NAMES = sorted(p.stem for p in FIXTURE_DIR.glob("*.json"))

E = Direction.EGRESS
I = Direction.INGRESS  # noqa: E741

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
    c2s_bytes: int
    s2c_bytes: int
    push_messages: int
    monitor_lines: int
    ignored_c2s_bytes: int
    secrets: tuple[str, ...]


def load_fixture(name: str) -> Fixture:
    raw = json.loads((FIXTURE_DIR / f"{name}.json").read_text())
    return Fixture(
        name=raw["name"],
        chunks=tuple((c["dir"], base64.b64decode(c["data"])) for c in raw["chunks"]),
        transactions=tuple(raw["transactions"]),
        c2s_bytes=raw["c2s_bytes"],
        s2c_bytes=raw["s2c_bytes"],
        push_messages=raw["push_messages"],
        monitor_lines=raw["monitor_lines"],
        ignored_c2s_bytes=raw["ignored_c2s_bytes"],
        secrets=tuple(raw.get("secrets", ())),
    )


def summary(transaction: Transaction) -> dict[str, Any]:
    """The fields a fixture records, taken from a parsed transaction."""
    request, response = transaction.request, transaction.response
    out: dict[str, Any] = {
        "command": request.command,
        "key": request.key,
        "arg_count": request.arg_count,
        "inline": request.inline,
    }
    if response is None:
        out.update(kind=None, status=None, error_prefix=None, error_message=None, element_count=None, reply_count=0)
    else:
        out.update(
            kind=response.kind.value,
            status=response.status,
            error_prefix=response.error_prefix,
            error_message=response.error_message,
            element_count=response.element_count,
            reply_count=response.reply_count,
        )
    return out


def feed_all(
    session: RedisSession,
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


def feed_chunks(fixture: Fixture, role: Role, session: RedisSession, close: bool = True) -> list[Transaction]:
    dirs = PERSPECTIVES[role]
    pieces = [(dirs[side], data, i, None) for i, (side, data) in enumerate(fixture.chunks)]
    return feed_all(session, pieces, close_ts=len(fixture.chunks) if close else None)


def run(
    *pieces: tuple, close: bool = False, session: RedisSession | None = None
) -> tuple[RedisSession, list[Transaction]]:
    """Feed ``(direction, data[, total_len])`` pieces with ts = their index (+1)."""
    s = session or RedisSession()
    out: list[Transaction] = []
    for i, piece in enumerate(pieces, start=1):
        direction, data, *rest = piece
        out += s.feed(direction, data, i, rest[0] if rest else None)
    if close:
        out += s.close(len(pieces) + 1)
    return s, out


def command(*args: str | bytes) -> bytes:
    """A RESP array of bulk strings, as every client sends."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


def bulk(value: bytes | str) -> bytes:
    b = value.encode() if isinstance(value, str) else value
    return b"$%d\r\n%s\r\n" % (len(b), b)


def array(*elements: bytes) -> bytes:
    return b"*%d\r\n" % len(elements) + b"".join(elements)


def push(*elements: bytes) -> bytes:
    return b">%d\r\n" % len(elements) + b"".join(elements)
