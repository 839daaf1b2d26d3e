"""Hostile wire input for every protocol session: one harness shared by the fuzz campaign
(``make fuzz``, tests/fuzz), the replay of saved crashes and adversarial fixtures
(tests/fixtures/<proto>/fuzz/) and the linearity tests.

:func:`feed_script` turns any byte string into a deterministic sequence of feeds — which
direction, where the writes are cut, where the capture lost bytes — so a fuzzer's input (and a
saved crash) replays the same way everywhere.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ebpf_receiver_nats import NatsSession

from receiver.protocols.amqp import AmqpSession
from receiver.protocols.base import Direction, ProtocolSession
from receiver.protocols.dns import DnsSession
from receiver.protocols.http1 import Http1Session
from receiver.protocols.http2 import Http2Session
from receiver.protocols.memcached import MemcachedSession
from receiver.protocols.mysql import MysqlSession
from receiver.protocols.postgresql import PostgresSession
from receiver.protocols.redis import RedisSession

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# Every protocol session the agent ships (and the bundled NATS plug-in), by fixture folder.
SESSIONS: dict[str, Callable[..., ProtocolSession]] = {
    "http1": Http1Session,
    "http2": Http2Session,
    "postgresql": PostgresSession,
    "mysql": MysqlSession,
    "redis": RedisSession,
    "memcached": MemcachedSession,
    "amqp": AmqpSession,
    "dns": lambda **kw: DnsSession(transport="tcp", **kw),
    "dns_udp": lambda **kw: DnsSession(transport="udp", **kw),
    "nats": NatsSession,
}
FIXTURE_DIR = {name: "dns" if name.startswith("dns") else name for name in SESSIONS}

# What a session may hold: its buffers (two directions) plus a chunk line of slack.
MAX_BUFFER = 4096


def buffer_bound(session: ProtocolSession) -> int:
    return 2 * getattr(session, "max_buffer", MAX_BUFFER) + 2 * 4096


@dataclass(frozen=True)
class Feed:
    direction: Direction
    data: bytes
    total_len: int | None  # > len(data): the capture lost the rest of this write


def feed_script(data: bytes) -> list[Feed]:
    """Cut ``data`` into feeds.  Each feed is a control byte — bit 0 the direction (1: EGRESS),
    bit 7 "the capture lost bytes after this piece" — a 2-byte big-endian length (cut to what
    is left), then the piece.  Deterministic and total: any input is a valid script."""
    feeds: list[Feed] = []
    at = 0
    while at < len(data):
        control = data[at]
        size = int.from_bytes(data[at + 1 : at + 3], "big")
        piece = data[at + 3 : at + 3 + size]
        at += 3 + size
        direction = Direction.EGRESS if control & 1 else Direction.INGRESS
        lost = bool(control & 0x80) and bool(piece)
        feeds.append(Feed(direction, piece, len(piece) + 7 if lost else None))
    return feeds


def script_of(feeds: list[tuple[Direction, bytes]]) -> bytes:
    """The feed script that replays ``feeds`` (no capture losses)."""
    script = bytearray()
    for direction, data in feeds:
        for at in range(0, max(len(data), 1), 0xFFFF):
            piece = data[at : at + 0xFFFF]
            script += bytes([1 if direction is Direction.EGRESS else 0]) + len(piece).to_bytes(2, "big") + piece
    return bytes(script)


@dataclass(frozen=True)
class Outcome:
    transactions: int
    parse_errors: int
    max_buffered: int


def run_session(proto: str, feeds: list[Feed], max_buffer: int = MAX_BUFFER) -> Outcome:
    """Feed a fresh session, close it; raise AssertionError if the session's safety net caught
    an exception (a parser bug) or its buffers outgrew their bound."""
    session = SESSIONS[proto](max_buffer=max_buffer)
    bound = buffer_bound(session)
    transactions = 0
    most = 0
    for ts, feed in enumerate(feeds):
        transactions += len(session.feed(feed.direction, feed.data, ts, feed.total_len))
        buffered = getattr(session, "buffered_bytes", 0)
        most = max(most, buffered)
        assert buffered <= bound, f"{proto}: {buffered} bytes buffered > {bound}"
        assert session.internal_errors == 0, f"{proto}: an exception escaped the parser (feed {ts})"
    transactions += len(session.close(len(feeds)))
    assert session.internal_errors == 0, f"{proto}: an exception escaped the parser at close"
    return Outcome(transactions, session.parse_errors, most)


def fixture_seeds(proto: str) -> list[bytes]:
    """The recorded connections of ``proto`` as feed scripts, the server's view (c2s: INGRESS)."""
    seeds = []
    for path in sorted((FIXTURES / FIXTURE_DIR[proto]).glob("*.json")):
        raw = json.loads(path.read_text())
        if proto.startswith("dns") and raw.get("transport", "tcp") != ("udp" if proto == "dns_udp" else "tcp"):
            continue
        feeds = [
            (Direction.INGRESS if chunk["dir"] == "c2s" else Direction.EGRESS, base64.b64decode(chunk["data"]))
            for chunk in raw["chunks"]
        ]
        seeds.append(script_of(feeds))
    return seeds


def corpus_dir(proto: str) -> Path:
    """Saved crashes and adversarial inputs (feed scripts, ``*.bin``) of ``proto``."""
    return FIXTURES / FIXTURE_DIR[proto] / "fuzz"
