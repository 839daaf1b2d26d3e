"""Shared helpers for the HTTP/1.x parser tests: fixture loading and feeding."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from receiver.protocols.base import Direction, Role, Transaction
from receiver.protocols.http1 import Http1Session

FIXTURE_DIR = Path(__file__).resolve().parents[4] / "tests" / "fixtures" / "http1"
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
    c2s_bytes: int
    s2c_bytes: int
    interim_bytes: int


def load_fixture(name: str) -> Fixture:
    raw = json.loads((FIXTURE_DIR / f"{name}.json").read_text())
    return Fixture(
        name=raw["name"],
        chunks=tuple((c["dir"], base64.b64decode(c["data"])) for c in raw["chunks"]),
        transactions=tuple(raw["transactions"]),
        c2s_bytes=raw["c2s_bytes"],
        s2c_bytes=raw["s2c_bytes"],
        interim_bytes=raw["interim_bytes"],
    )


def summary(transaction: Transaction) -> dict[str, Any]:
    """The fields a fixture records, taken from a parsed transaction."""
    request, response = transaction.request, transaction.response
    return {
        "method": request.method,
        "target": request.target,
        "status": response.status_code if response is not None else None,
        "request_body_size": request.body_size,
        "response_body_size": response.body_size if response is not None else None,
        "interim_status_codes": list(response.interim_status_codes) if response is not None else [],
    }


def feed_all(
    session: Http1Session,
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
