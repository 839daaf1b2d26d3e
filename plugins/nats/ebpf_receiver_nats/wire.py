"""NATS client protocol framing: control lines (``OP args\\r\\n``) and the payloads ``PUB``,
``HPUB``, ``MSG`` and ``HMSG`` announce by size.  Pure functions and one byte-stream reader per
direction; payloads are skipped by length and never buffered, header blocks are kept up to a
bound.  Nothing here raises on wire data."""

from __future__ import annotations

from dataclasses import dataclass

from .types import MAX_SUBJECT

MAX_SIZE = 1 << 30  # a larger declared payload is not believed (nats-server's max_payload is at most 64 MiB)
MAX_HEADER_KEPT = 4096
CLIENT_OPS = frozenset({"CONNECT", "PUB", "HPUB", "SUB", "UNSUB"})
SERVER_OPS = frozenset({"INFO", "MSG", "HMSG", "+OK", "-ERR"})
BOTH_OPS = frozenset({"PING", "PONG"})
OPS = CLIENT_OPS | SERVER_OPS | BOTH_OPS


@dataclass(frozen=True, slots=True)
class Line:
    op: str  # upper-cased
    subject: str | None = None
    reply_to: str | None = None
    sid: str | None = None
    header_size: int = 0
    total_size: int | None = None  # bytes of header + payload that follow the line (then CRLF)
    text: str | None = None  # -ERR text


def _size(token: bytes) -> int | None:
    if not token.isdigit() or len(token) > 12:
        return None
    value = int(token)
    return value if value <= MAX_SIZE else None


def _text(token: bytes) -> str:
    return token[:MAX_SUBJECT].decode("utf-8", "replace")


def parse_line(line: bytes) -> Line | None:
    """One control line without its line end; ``None`` if it is not a NATS operation (or its
    arguments do not fit it)."""
    op_end = line.find(b" ")
    word = (line if op_end < 0 else line[:op_end]).upper()
    if word in (b"PING", b"PONG", b"+OK"):
        return Line(word.decode()) if op_end < 0 or not line[op_end:].strip() else None
    if word == b"-ERR":
        return Line("-ERR", text=line[op_end + 1 :].strip().strip(b"'\"")[:256].decode("utf-8", "replace"))
    if word in (b"INFO", b"CONNECT"):
        rest = line[op_end + 1 :].lstrip() if op_end >= 0 else b""
        return Line(word.decode()) if rest.startswith(b"{") else None
    args = line[op_end + 1 :].split() if op_end >= 0 else []
    if word == b"PUB" and len(args) in (2, 3):
        size = _size(args[-1])
        if size is None:
            return None
        return Line("PUB", _text(args[0]), _text(args[1]) if len(args) == 3 else None, None, 0, size)
    if word == b"HPUB" and len(args) in (3, 4):
        hsize, total = _size(args[-2]), _size(args[-1])
        if hsize is None or total is None or hsize > total:
            return None
        return Line("HPUB", _text(args[0]), _text(args[1]) if len(args) == 4 else None, None, hsize, total)
    if word == b"MSG" and len(args) in (3, 4):
        size = _size(args[-1])
        if size is None:
            return None
        return Line("MSG", _text(args[0]), _text(args[2]) if len(args) == 4 else None, _text(args[1]), 0, size)
    if word == b"HMSG" and len(args) in (4, 5):
        hsize, total = _size(args[-2]), _size(args[-1])
        if hsize is None or total is None or hsize > total:
            return None
        return Line("HMSG", _text(args[0]), _text(args[2]) if len(args) == 5 else None, _text(args[1]), hsize, total)
    if word == b"SUB" and len(args) in (2, 3):
        return Line("SUB", _text(args[0]), None, _text(args[-1]))
    if word == b"UNSUB" and len(args) in (1, 2):
        return Line("UNSUB", None, None, _text(args[0]))
    return None


def parse_headers(block: bytes) -> tuple[int | None, dict[str, str]]:
    """``(status, headers)`` of a ``NATS/1.0[ status]\\r\\nKey: Value\\r\\n...\\r\\n\\r\\n`` block;
    header names lower-cased, values bounded; the first value of a repeated name wins; a last
    line without its line end (a block cut short) is not read."""
    lines = block.split(b"\r\n")
    if not block.endswith(b"\r\n"):
        lines = lines[:-1]  # cut short by the capture: the last line is incomplete
    status = None
    first = lines[0] if lines else b""
    if first.startswith(b"NATS/"):
        parts = first.split(None, 2)
        if len(parts) >= 2 and parts[1].isdigit() and len(parts[1]) <= 4:
            status = int(parts[1])
    headers: dict[str, str] = {}
    for raw in lines[1:64]:
        name, sep, value = raw.partition(b":")
        if not sep:
            continue
        key = name.strip().lower().decode("ascii", "replace")
        if key and key not in headers:
            headers[key] = value.strip()[:512].decode("utf-8", "replace")
    return status, headers


class Stream:
    """One direction: lines, then the announced header block (kept, bounded) and payload (skipped).

    ``on_line(line_bytes, wire, start, end, hunting)`` returns ``(total, header)``: the bytes that
    follow the line (header block + payload, before the final CRLF) and how many of them are the
    header block; or ``None`` when nothing follows; or ``-1`` to refuse the line while hunting.  ``on_block(header_bytes, end, lost)`` is called when they are done.
    """

    __slots__ = ("max_line", "buf", "buf_ts", "state", "left", "header_left", "header", "lost", "gaps", "on_line",
                 "on_block")

    def __init__(self, max_line: int, on_line, on_block) -> None:
        self.max_line = max_line
        self.on_line = on_line
        self.on_block = on_block
        self.buf = bytearray()
        self.buf_ts = 0
        self.state = 0  # 0 line, 1 block, 2 discard to line end, 3 hunting
        self.left = 0  # block bytes left, including the final CRLF
        self.header_left = 0  # of which header bytes still to keep
        self.header = bytearray()
        self.lost = False
        self.gaps = 0

    @property
    def buffered(self) -> int:
        return len(self.buf) + len(self.header)

    def feed(self, data: bytes, ts: int, missing: int) -> None:
        i = 0
        end = len(data)
        while i < end:
            if self.state == 1:
                n = min(self.left, end - i)
                if self.header_left:
                    keep = min(n, self.header_left)
                    room = MAX_HEADER_KEPT - len(self.header)
                    if room > 0:
                        self.header += data[i : i + min(keep, room)]
                    self.header_left -= keep
                self.left -= n
                i += n
                if self.left == 0:
                    self._block_done(ts)
                continue
            j = data.find(b"\n", i)
            if self.state == 2:
                if j < 0:
                    break
                i = j + 1
                self.state = 0
                continue
            if j < 0:
                if not self.buf:
                    self.buf_ts = ts
                self.buf += data[i:]
                if len(self.buf) > self.max_line:  # no NATS control line is this long
                    self.buf.clear()
                    self.state = 2 if self.state == 0 else 3
                    self.gaps += 1
                break
            if self.buf:
                line = bytes(self.buf) + data[i:j]
                start = self.buf_ts
                self.buf.clear()
            else:
                line = data[i:j]
                start = ts
            wire = len(line) + 1
            i = j + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            hunting = self.state == 3
            follows = self.on_line(line, wire, start, ts, hunting)
            if follows is None:
                self.state = 0
            elif follows == -1:
                self.state = 3
            else:
                self.state = 1
                self.left = follows[0] + 2
                self.header_left = follows[1]
                self.header.clear()
                self.lost = False
                if self.left == 0:
                    self._block_done(ts)
        if missing:
            self._missing(ts, missing)

    def _block_done(self, ts: int) -> None:
        self.state = 0
        header = bytes(self.header)
        self.header.clear()
        self.on_block(header, ts, self.lost)

    def _missing(self, ts: int, missing: int) -> None:
        if self.state == 1:
            self.lost = True
            if missing <= self.left:
                self.left -= missing
                self.header_left = max(0, self.header_left - missing)
                if self.left == 0:
                    self._block_done(ts)
                return
            self.left = 0
            self._block_done(ts)
        self.lose_sync()

    def lose_sync(self) -> None:
        if self.state != 3:
            self.gaps += 1
        self.buf.clear()
        self.header.clear()
        self.state = 3
