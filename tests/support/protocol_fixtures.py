"""Recorded connections (tests/fixtures/<proto>/*.json, written by tests/fixtures/record_*.py) and
the ways the protocol tests feed them to a session: whole, one byte at a time, cut the way the
kernel capture cuts large writes, from either side of the connection.

Shared by the memcached, DNS, AMQP and NATS parser tests; a fixture is ``chunks`` (``{"dir":
"c2s" | "s2c", "data": <base64>}``) plus whatever expectations its recorder wrote.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from receiver.protocols.base import Direction, ProtocolSession, Role, Transaction

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# Which Direction each recorded side maps to, by the traced process's role.
PERSPECTIVES = {
    Role.CLIENT: {"c2s": Direction.EGRESS, "s2c": Direction.INGRESS},
    Role.SERVER: {"c2s": Direction.INGRESS, "s2c": Direction.EGRESS},
}
Piece = tuple[Direction, bytes, int, "int | None"]  # direction, data, ts, total_len


@dataclass(frozen=True)
class Fixture:
    name: str
    chunks: tuple[tuple[str, bytes], ...]
    raw: dict[str, Any]

    @property
    def transactions(self) -> list[dict[str, Any]]:
        return self.raw["transactions"]

    def first(self, side: str) -> bytes:
        return next(data for s, data in self.chunks if s == side)

    def total(self, side: str) -> int:
        return sum(len(d) for s, d in self.chunks if s == side)


def fixture_names(proto: str) -> list[str]:
    return sorted(p.stem for p in (FIXTURES / proto).glob("*.json"))


def load_fixture(proto: str, name: str) -> Fixture:
    raw = json.loads((FIXTURES / proto / f"{name}.json").read_text())
    chunks = tuple((c["dir"], base64.b64decode(c["data"])) for c in raw.pop("chunks"))
    return Fixture(raw["name"], chunks, raw)


def feed(session: ProtocolSession, pieces: Iterable[Piece], close_ts: int | None = None) -> list[Transaction]:
    out: list[Transaction] = []
    for direction, data, ts, total_len in pieces:
        out += session.feed(direction, data, ts, total_len)
    if close_ts is not None:
        out += session.close(close_ts)
    return out


def whole(fixture: Fixture, role: Role) -> list[Piece]:
    dirs = PERSPECTIVES[role]
    return [(dirs[side], data, i, None) for i, (side, data) in enumerate(fixture.chunks)]


def byte_by_byte(fixture: Fixture, role: Role) -> list[Piece]:
    dirs = PERSPECTIVES[role]
    pieces: list[Piece] = []
    for side, data in fixture.chunks:
        for byte in data:
            pieces.append((dirs[side], bytes((byte,)), len(pieces), None))
    return pieces


def cut(fixture: Fixture, role: Role, limit: int = 4096) -> list[Piece]:
    """As the kernel captures: at most ``limit`` bytes of each chunk, ``total_len`` = its length."""
    dirs = PERSPECTIVES[role]
    return [(dirs[side], data[:limit], i, len(data)) for i, (side, data) in enumerate(fixture.chunks)]


def run(fixture: Fixture, role: Role, new_session: Callable[[], ProtocolSession],
        pieces: Callable[[Fixture, Role], list[Piece]] = whole) -> tuple[ProtocolSession, list[Transaction]]:
    session = new_session()
    ps = pieces(fixture, role)
    return session, feed(session, ps, close_ts=len(ps) + 1)
