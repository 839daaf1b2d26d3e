"""Shared helpers for the HTTP/2 parser tests: fixture loading, feeding, frame building, and an
independent frame walker used to check the parser's sizes and timestamps."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpack import Encoder

from receiver.protocols.base import Direction, Role, Transaction
from receiver.protocols.http2 import Http2Session

FIXTURE_DIR = Path(__file__).resolve().parents[4] / "tests" / "fixtures" / "http2"
FIXTURE_NAMES = sorted(p.stem for p in FIXTURE_DIR.glob("*.json"))
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Which Direction each recorded side maps to, by the traced process's role.
PERSPECTIVES = {
    Role.CLIENT: {"c2s": Direction.EGRESS, "s2c": Direction.INGRESS},
    Role.SERVER: {"c2s": Direction.INGRESS, "s2c": Direction.EGRESS},
}

# Frame types and flags, spelled out here rather than imported from the code under test.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20


@dataclass(frozen=True)
class Fixture:
    name: str
    chunks: tuple[tuple[str, bytes], ...]  # ("c2s" | "s2c", bytes), in capture order
    transactions: tuple[dict[str, Any], ...]
    ordered: bool
    c2s_bytes: int
    s2c_bytes: int


def load_fixture(name: str) -> Fixture:
    raw = json.loads((FIXTURE_DIR / f"{name}.json").read_text())
    return Fixture(
        name=raw["name"],
        chunks=tuple((c["dir"], base64.b64decode(c["data"])) for c in raw["chunks"]),
        transactions=tuple(raw["transactions"]),
        ordered=raw["ordered"],
        c2s_bytes=raw["c2s_bytes"],
        s2c_bytes=raw["s2c_bytes"],
    )


def summary(transaction: Transaction, checks_end: bool = True) -> dict[str, Any]:
    """The fields a fixture records, taken from a parsed transaction."""
    request, response = transaction.request, transaction.response
    return {
        "method": request.method,
        "path": request.path,
        "status": response.status if response is not None else None,
        "grpc_service": request.grpc_service,
        "grpc_method": request.grpc_method,
        "grpc_status": response.grpc_status if response is not None else None,
        "grpc_message": response.grpc_message if response is not None else None,
        "request_body_size": request.body_size,
        "response_body_size": response.body_size if response is not None else None,
        "end": (response.end.value if response is not None else None) if checks_end else None,
        "error_code": response.error_code if response is not None else None,
    }


def _key(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True)


def summaries(fixture: Fixture, transactions: list[Transaction]) -> list[dict[str, Any]]:
    """Parsed transactions as fixture entries, in the fixture's order when it has none."""
    checks_end = all(t["end"] is not None for t in fixture.transactions)
    got = [summary(t, checks_end) for t in transactions]
    return got if fixture.ordered else sorted(got, key=_key)


def expected(fixture: Fixture) -> list[dict[str, Any]]:
    entries = list(fixture.transactions)
    return entries if fixture.ordered else sorted(entries, key=_key)


def feed_all(
    session: Http2Session,
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


def fixture_pieces(fixture: Fixture, role: Role) -> list[tuple[Direction, bytes, int, None]]:
    dirs = PERSPECTIVES[role]
    return [(dirs[side], data, i, None) for i, (side, data) in enumerate(fixture.chunks)]


# -- an independent frame walker --------------------------------------------------------------


@dataclass(frozen=True)
class WalkedFrame:
    offset: int  # of the frame header, in the direction's byte stream
    ftype: int
    flags: int
    stream_id: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + 9 + self.length


def walk(stream: bytes) -> list[WalkedFrame]:
    """Every frame of one direction's complete byte stream (after the preface, if any)."""
    pos = len(PREFACE) if stream.startswith(PREFACE) else 0
    frames = []
    while pos + 9 <= len(stream):
        word, flags, stream_id = struct.unpack_from(">IBI", stream, pos)
        frame = WalkedFrame(pos, word & 0xFF, flags, stream_id & 0x7FFFFFFF, word >> 8)
        frames.append(frame)
        pos = frame.end
    assert pos == len(stream), "the recorded stream does not end on a frame boundary"
    return frames


def message_wire_sizes(stream: bytes) -> dict[int, int]:
    """Per stream id: bytes of its HEADERS, CONTINUATION and DATA frames in this direction."""
    sizes: dict[int, int] = {}
    for f in walk(stream):
        if f.ftype in (DATA, HEADERS, CONTINUATION):
            sizes[f.stream_id] = sizes.get(f.stream_id, 0) + 9 + f.length
    return sizes


def side_bytes(fixture: Fixture, side: str) -> bytes:
    return b"".join(d for s, d in fixture.chunks if s == side)


# -- building frames -----------------------------------------------------------------------------


def frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">IBI", len(payload) << 8 | ftype, flags, stream_id) + payload


def settings(*pairs: tuple[int, int], ack: bool = False) -> bytes:
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack(">HI", i, v) for i, v in pairs))


def rst_stream(stream_id: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


def goaway(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return frame(GOAWAY, 0, 0, struct.pack(">II", last_stream_id, code) + debug)


def window_update(stream_id: int, increment: int = 65535) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


def ping(ack: bool = False) -> bytes:
    return frame(PING, ACK if ack else 0, 0, b"12345678")


class Peer:
    """One endpoint's HPACK encoder, so blocks share a dynamic table as on a real connection."""

    def __init__(self) -> None:
        self.encoder = Encoder()

    def block(self, fields: list[tuple[str, str]], huffman: bool = True) -> bytes:
        return self.encoder.encode(fields, huffman=huffman)

    def headers(self, stream_id: int, fields: list[tuple[str, str]], end_stream: bool = False) -> bytes:
        flags = END_HEADERS | (END_STREAM if end_stream else 0)
        return frame(HEADERS, flags, stream_id, self.block(fields))


def request_fields(path: str = "/", method: str = "GET", authority: str = "example.test", **extra: str) -> list[tuple[str, str]]:
    fields = [(":method", method), (":scheme", "http"), (":path", path), (":authority", authority)]
    return fields + [(k.replace("_", "-"), v) for k, v in extra.items()]


def grpc_request_fields(service_method: str) -> list[tuple[str, str]]:
    return request_fields(f"/{service_method}", "POST", content_type="application/grpc", te="trailers")


def grpc_message(payload: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(payload)) + payload
