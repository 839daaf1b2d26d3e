"""AMQP 0-9-1 wire format: frames, short strings, field tables (bounded), the arguments of the
methods the session reads, and the content header's properties.  Pure functions over bytes that
return ``None`` instead of raising on malformed input."""

from __future__ import annotations

import struct

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_HEADER = 7
FRAME_END = 0xCE
METHOD, HEADER, BODY, HEARTBEAT = 1, 2, 3, 8
FRAME_TYPES = frozenset({METHOD, HEADER, BODY, HEARTBEAT})
MAX_FRAME = 1 << 27  # larger declared frames are not believed (RabbitMQ's frame_max is 128 KiB by default)
MAX_TABLE_DEPTH = 4
MAX_TABLE_ENTRIES = 256
MAX_TEXT = 256

_FRAME = struct.Struct("!BHI")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")

CLASSES = {10: "connection", 20: "channel", 40: "exchange", 50: "queue", 60: "basic", 85: "confirm", 90: "tx"}
METHODS = {
    (10, 10): "start", (10, 11): "start-ok", (10, 20): "secure", (10, 21): "secure-ok", (10, 30): "tune",
    (10, 31): "tune-ok", (10, 40): "open", (10, 41): "open-ok", (10, 50): "close", (10, 51): "close-ok",
    (10, 60): "blocked", (10, 61): "unblocked", (10, 70): "update-secret", (10, 71): "update-secret-ok",
    (20, 10): "open", (20, 11): "open-ok", (20, 20): "flow", (20, 21): "flow-ok", (20, 40): "close",
    (20, 41): "close-ok",
    (40, 10): "declare", (40, 11): "declare-ok", (40, 20): "delete", (40, 21): "delete-ok", (40, 30): "bind",
    (40, 31): "bind-ok", (40, 40): "unbind", (40, 51): "unbind-ok",
    (50, 10): "declare", (50, 11): "declare-ok", (50, 20): "bind", (50, 21): "bind-ok", (50, 30): "purge",
    (50, 31): "purge-ok", (50, 40): "delete", (50, 41): "delete-ok", (50, 50): "unbind", (50, 51): "unbind-ok",
    (60, 10): "qos", (60, 11): "qos-ok", (60, 20): "consume", (60, 21): "consume-ok", (60, 30): "cancel",
    (60, 31): "cancel-ok", (60, 40): "publish", (60, 50): "return", (60, 60): "deliver", (60, 70): "get",
    (60, 71): "get-ok", (60, 72): "get-empty", (60, 80): "ack", (60, 90): "reject", (60, 100): "recover-async",
    (60, 110): "recover", (60, 111): "recover-ok", (60, 120): "nack",
    (85, 10): "select", (85, 11): "select-ok",
    (90, 10): "select", (90, 11): "select-ok", (90, 20): "commit", (90, 21): "commit-ok", (90, 30): "rollback",
    (90, 31): "rollback-ok",
}
CONTENT_METHODS = frozenset({"basic.publish", "basic.return", "basic.deliver", "basic.get-ok"})


def method_name(class_id: int, method_id: int) -> str:
    cls = CLASSES.get(class_id)
    method = METHODS.get((class_id, method_id))
    if cls is None or method is None:
        return f"unknown.{class_id}.{method_id}"
    return f"{cls}.{method}"


def frame_header(buf: bytes, at: int = 0) -> tuple[int, int, int] | None:
    """``(type, channel, size)`` of the frame header at ``buf[at:]``; ``None`` if it is not one."""
    if len(buf) - at < FRAME_HEADER:
        return None
    ftype, channel, size = _FRAME.unpack_from(buf, at)
    if ftype not in FRAME_TYPES or size > MAX_FRAME or (ftype == HEARTBEAT and (channel or size)):
        return None
    return ftype, channel, size


class Reader:
    """A cursor over a method's arguments; every read returns ``None`` past the end."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos

    def u8(self) -> int | None:
        if self.pos + 1 > len(self.buf):
            return None
        self.pos += 1
        return self.buf[self.pos - 1]

    def u16(self) -> int | None:
        if self.pos + 2 > len(self.buf):
            return None
        self.pos += 2
        return _U16.unpack_from(self.buf, self.pos - 2)[0]

    def u32(self) -> int | None:
        if self.pos + 4 > len(self.buf):
            return None
        self.pos += 4
        return _U32.unpack_from(self.buf, self.pos - 4)[0]

    def u64(self) -> int | None:
        if self.pos + 8 > len(self.buf):
            return None
        self.pos += 8
        return _U64.unpack_from(self.buf, self.pos - 8)[0]

    def shortstr(self) -> str | None:
        n = self.u8()
        if n is None or self.pos + n > len(self.buf):
            return None
        self.pos += n
        return self.buf[self.pos - n : self.pos].decode("utf-8", "replace")

    def skip_longstr(self) -> bool:
        n = self.u32()
        if n is None or self.pos + n > len(self.buf):
            return False
        self.pos += n
        return True

    def table(self, depth: int = 0) -> dict[str, object] | None:
        """A field table: string values are kept (bounded), numbers as ints, nested tables
        decoded to ``MAX_TABLE_DEPTH``; other values skipped.  ``None`` if malformed."""
        size = self.u32()
        if size is None or self.pos + size > len(self.buf) or depth > MAX_TABLE_DEPTH:
            return None
        end = self.pos + size
        out: dict[str, object] = {}
        while self.pos < end:
            if len(out) >= MAX_TABLE_ENTRIES:
                self.pos = end
                break
            key = self.shortstr()
            if key is None or self.pos >= end:
                return None
            value = self.field(end, depth)
            if value is _BAD:
                return None
            out[key] = value
        if self.pos != end:
            return None
        return out

    def field(self, end: int, depth: int) -> object:
        kind = self.u8()
        if kind is None:
            return _BAD
        k = chr(kind)
        fixed = _FIXED.get(k)
        if fixed is not None:
            if self.pos + fixed > end:
                return _BAD
            raw = self.buf[self.pos : self.pos + fixed]
            self.pos += fixed
            return int.from_bytes(raw, "big", signed=k in "bsIlT") if k in "bBsuIilT" else None
        if k == "V":
            return None
        if k in "Sx":
            n = self.u32()
            if n is None or self.pos + n > end:
                return _BAD
            self.pos += n
            return self.buf[self.pos - n : self.pos][:MAX_TEXT].decode("utf-8", "replace") if k == "S" else None
        if k == "F":
            sub = self.table(depth + 1)
            return _BAD if sub is None else sub
        if k == "A":
            n = self.u32()
            if n is None or self.pos + n > end:
                return _BAD
            stop = self.pos + n
            while self.pos < stop:
                if self.field(stop, depth + 1) is _BAD:
                    return _BAD
            return None
        return _BAD


_BAD = object()
# Fixed-size field types (RabbitMQ's reading of 0-9-1): bool, int8, uint8, int16, uint16, int32,
# uint32, int64, float, double, decimal, timestamp.
_FIXED = {"t": 1, "b": 1, "B": 1, "s": 2, "u": 2, "I": 4, "i": 4, "l": 8, "f": 4, "d": 8, "D": 5, "T": 8}


def content_header(payload: bytes) -> tuple[int, dict[str, object] | None] | None:
    """``(body_size, headers table or None)`` of a content header frame's payload (basic class:
    the ``headers`` property is the third); ``None`` if malformed."""
    r = Reader(payload)
    class_id, _weight, body_size = r.u16(), r.u16(), r.u64()
    flags = r.u16()
    if class_id is None or body_size is None or flags is None:
        return None
    more = flags
    while more & 1:  # bit 0: another flags word follows (none are defined for basic)
        more = r.u16()
        if more is None:
            return None
    headers = None
    if class_id == 60:
        if flags & 0x8000 and r.shortstr() is None:  # content-type
            return body_size, None
        if flags & 0x4000 and r.shortstr() is None:  # content-encoding
            return body_size, None
        if flags & 0x2000:
            headers = r.table()
    return body_size, headers

