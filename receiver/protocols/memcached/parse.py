"""Memcached text and meta protocol framing: lines, and the data blocks they announce.

Frame boundaries: a message is a line ending in ``\\n`` (memcached strips an optional ``\\r``),
followed, for storage commands (``set ... <bytes>``, ``ms <key> <datalen>``) and value replies
(``VALUE <key> <flags> <bytes>``, ``VA <datalen>``), by a data block of the declared length plus
``\\r\\n``.  Data blocks are skipped by their length and never buffered; only an unfinished line
is carried between feeds (at most ``max_line`` bytes: a longer one is parsed from its first
bytes, marked truncated, and the rest discarded).  Bytes lost to a truncated capture are skipped
inside a data block; anywhere else the stream loses sync and hunts for the next line that parses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MAX_TEXT = 256  # bytes of an error message kept
MAX_OPAQUE = 32
MAX_DATA = 1 << 40  # a declared block larger than this is not believed

STORAGE = frozenset({"set", "add", "replace", "append", "prepend"})
RETRIEVAL = frozenset({"get", "gets"})
TOUCH_RETRIEVAL = frozenset({"gat", "gats"})  # first argument is the expiry time
META_KEYED = frozenset({"mg", "ms", "md", "ma", "me"})
# Commands without keys that memcached answers (stats/version: multi-line or one line).
ADMIN = frozenset({
    "stats", "version", "verbosity", "flush_all", "cache_memlimit", "shutdown", "lru_crawler", "slabs",
    "lru", "watch", "misbehave", "extstore", "debugtime", "mn",
})
KNOWN_COMMANDS = STORAGE | RETRIEVAL | TOUCH_RETRIEVAL | META_KEYED | ADMIN | frozenset(
    {"cas", "delete", "incr", "decr", "touch", "quit"}
)
# What the meta quiet flag suppresses, per command (checked against memcached 1.6).
QUIET_SUPPRESSES = {"mg": "EN", "ms": "HD", "md": "HD", "ma": "HD"}

# Reply status words: single-line replies, the lines of multi-line replies, and meta codes.
SINGLE_REPLIES = frozenset({
    "STORED", "NOT_STORED", "EXISTS", "NOT_FOUND", "DELETED", "TOUCHED", "OK", "ERROR", "CLIENT_ERROR",
    "SERVER_ERROR", "VERSION", "RESET", "BUSY", "BADCLASS", "NOSPARE", "NOTFULL", "UNSAFE", "SAME",
})
META_REPLIES = frozenset({"HD", "EN", "NF", "NS", "EX", "MN", "ME"})
VALUE, VA, END, STAT, NUMBER = "VALUE", "VA", "END", "STAT", "NUMBER"
REPLY_WORDS = SINGLE_REPLIES | META_REPLIES | {VALUE, VA, END, STAT}


@dataclass(frozen=True, slots=True)
class RequestLine:
    command: str
    key_count: int
    noreply: bool
    quiet: bool
    data_size: int | None  # a data block follows
    opaque: str | None
    flags: str = ""  # meta flag letters, sorted ("qsv")


@dataclass(frozen=True, slots=True)
class ReplyLine:
    status: str  # a REPLY_WORDS member or NUMBER
    data_size: int | None  # a data block follows (VALUE, VA)
    opaque: str | None
    text: str | None  # error message / version
    flags: str = ""  # meta flag letters, sorted


def _uint(token: bytes, limit: int = MAX_DATA) -> int | None:
    if not token.isdigit() or len(token) > 20:
        return None
    value = int(token)
    return value if value <= limit else None


def _int(token: bytes) -> bool:
    return token.lstrip(b"-").isdigit() and len(token) <= 21


def _meta_flags(tokens: list[bytes]) -> tuple[bool, str | None, str]:
    """(quiet, opaque token, the flag letters sorted) of meta flags."""
    quiet = False
    opaque = None
    letters = set()
    for t in tokens:
        letter = t[:1]
        if not letter.isalpha():
            continue
        letters.add(letter.decode("ascii"))
        if t == b"q":
            quiet = True
        elif letter == b"O" and opaque is None:
            opaque = t[1 : 1 + MAX_OPAQUE].decode("ascii", "replace")
    return quiet, opaque, "".join(sorted(letters))


def parse_request_line(line: bytes) -> RequestLine | None:
    """One request line (without its line end).  A word memcached does not know is command
    ``"unknown"`` (memcached answers ``ERROR``); ``None`` for an empty line or one that does not
    start with a printable word (not text at all)."""
    tokens = line.split()
    if not tokens:
        return None
    word = tokens[0]
    name = word.decode("ascii", "replace")
    if name not in KNOWN_COMMANDS:
        if not (len(word) <= 64 and all(0x21 <= b < 0x7F for b in word)):
            return None
        return RequestLine("unknown", 0, False, False, None, None)
    args = tokens[1:]
    noreply = bool(args) and args[-1] == b"noreply"
    if name in STORAGE or name == "cas":
        want = 4 if name in STORAGE else 5
        fields = args[:-1] if noreply else args
        size = _uint(fields[3]) if len(fields) == want else None
        ok = size is not None and _uint(fields[1], 1 << 32) is not None and _int(fields[2])
        if name == "cas" and ok:
            ok = _uint(fields[4], 1 << 64) is not None
        # A malformed storage line is answered with CLIENT_ERROR and no data block is read.
        return RequestLine(name, 1, noreply, False, size if ok else None, None)
    if name in RETRIEVAL:
        return RequestLine(name, len(args), False, False, None, None)
    if name in TOUCH_RETRIEVAL:
        return RequestLine(name, max(0, len(args) - 1), False, False, None, None)
    if name in ("delete", "incr", "decr", "touch"):
        return RequestLine(name, 1 if args else 0, noreply, False, None, None)
    if name == "ms":
        quiet, opaque, letters = _meta_flags(args[2:])
        size = _uint(args[1]) if len(args) >= 2 else None
        return RequestLine(name, 1 if args else 0, False, quiet, size, opaque, letters)
    if name in META_KEYED:
        quiet, opaque, letters = _meta_flags(args[1:]) if name != "me" else (False, None, "")
        return RequestLine(name, 1 if args else 0, False, quiet, None, opaque, letters)
    if name == "mn":
        return RequestLine(name, 0, False, False, None, None)
    if name == "quit":  # the server closes the connection without a word
        return RequestLine(name, 0, True, False, None, None)
    return RequestLine(name, 0, noreply, False, None, None)


def parse_reply_line(line: bytes) -> ReplyLine | None:
    """One reply line (without its line end); ``None`` if it is not a memcached reply."""
    tokens = line.split(None, 1)
    if not tokens:
        return None
    word = tokens[0]
    rest = tokens[1] if len(tokens) > 1 else b""
    if word.isdigit():
        return ReplyLine(NUMBER, None, None, None) if not rest else None
    status = word.decode("ascii", "replace")
    if status not in REPLY_WORDS:
        return None
    if status == VALUE:
        fields = rest.split()
        size = _uint(fields[2]) if len(fields) in (3, 4) else None
        return ReplyLine(VALUE, size, None, None) if size is not None else None
    if status == VA:
        fields = rest.split()
        size = _uint(fields[0]) if fields else None
        if size is None:
            return None
        _, opaque, letters = _meta_flags(fields[1:])
        return ReplyLine(VA, size, opaque, None, letters)
    if status in META_REPLIES:
        if status == "ME":
            return ReplyLine(status, None, None, None)
        _, opaque, letters = _meta_flags(rest.split())
        return ReplyLine(status, None, opaque, None, letters)
    text = rest[:MAX_TEXT].decode("utf-8", "replace") if status in ("CLIENT_ERROR", "SERVER_ERROR") else None
    if status in ("END", "STORED", "NOT_STORED", "EXISTS", "NOT_FOUND", "DELETED", "TOUCHED", "OK", "ERROR") and rest:
        return None
    return ReplyLine(status, None, None, text)


def looks_like_command(line: bytes) -> bool:
    """A line a hunting stream may resynchronise on: a known command."""
    tokens = line.split(None, 1)
    return bool(tokens) and tokens[0].decode("ascii", "replace") in KNOWN_COMMANDS


# -- one direction's byte stream -------------------------------------------------------------

_LINE = 0
_DATA = 1
_DISCARD = 2  # the rest of an over-long line, then lines again
_RESYNC = 3  # lost sync: drop to the next line end, then hunt
_HUNT = 4  # accept only lines that parse


class LineStream:
    """The bytes of one direction cut into lines and skipped data blocks.

    ``on_line(line, wire_size, start_ts, end_ts, truncated, hunting) -> int | None`` is called for
    each line (line end stripped; ``wire_size`` counts it); it returns the size of the data block that follows (``None``: none) or
    ``-1`` to refuse a line while hunting.  ``on_block(end_ts, lost)`` is called when a block
    has been skipped (``lost``: part of it was missing from the capture).  ``on_loss(ts)`` is
    called when sync is lost.
    """

    __slots__ = ("max_line", "buf", "buf_ts", "state", "skip", "seen", "gaps", "on_line", "on_block", "on_loss")

    def __init__(
        self,
        max_line: int,
        on_line: Callable[[bytes, int, int, int, bool, bool], int | None],
        on_block: Callable[[int, bool], None],
        on_loss: Callable[[int], None],
    ) -> None:
        self.max_line = max_line
        self.buf = bytearray()
        self.buf_ts = 0
        self.state = _LINE
        self.skip = 0
        self.seen = False
        self.gaps = 0
        self.on_line = on_line
        self.on_block = on_block
        self.on_loss = on_loss

    @property
    def buffered(self) -> int:
        return len(self.buf)

    @property
    def hunting(self) -> bool:
        return self.state in (_RESYNC, _HUNT)

    def start_hunting(self) -> None:
        """Read from here on as if attached mid-stream: accept only lines that parse."""
        if self.state == _LINE and not self.buf:
            self.state = _HUNT

    def feed(self, data: bytes, ts: int, missing: int = 0) -> None:
        if data:
            self.seen = True
        i = 0
        end = len(data)
        while i < end:
            state = self.state
            if state == _DATA:
                n = min(self.skip, end - i)
                self.skip -= n
                i += n
                if self.skip == 0:
                    self.state = _LINE
                    self.on_block(ts, False)
                continue
            j = data.find(b"\n", i)
            if state == _DISCARD or state == _RESYNC:
                if j < 0:
                    break
                i = j + 1
                self.state = _LINE if state == _DISCARD else _HUNT
                continue
            if j < 0:
                if not self.buf:
                    self.buf_ts = ts
                if len(self.buf) + end - i > self.max_line:
                    line = (bytes(self.buf) + data[i : i + self.max_line])[: self.max_line]
                    self.buf.clear()
                    self._line(line, len(line), self.buf_ts, ts, True, state == _HUNT)
                    if self.state == _DATA:  # the block's place is unknown: lose sync
                        self.lose_sync(ts)
                    else:
                        self.state = _RESYNC if self.state == _HUNT else _DISCARD
                    break
                self.buf += data[i:]
                break
            if self.buf:
                line = bytes(self.buf) + data[i:j]
                start = self.buf_ts
                self.buf.clear()
            else:
                line = data[i:j]
                start = ts
            i = j + 1
            size = len(line) + 1
            if line[-1:] == b"\r":
                line = line[:-1]
            self._line(line, size, start, ts, False, state == _HUNT)
        self._missing(ts, missing)

    def _line(self, line: bytes, wire: int, start: int, ts: int, truncated: bool, hunting: bool) -> None:
        size = self.on_line(line, wire, start, ts, truncated, hunting)
        if size is None:
            self.state = _LINE
            return
        if size < 0:  # refused while hunting
            self.state = _HUNT
            return
        self.state = _DATA
        self.skip = size + 2

    def _missing(self, ts: int, missing: int) -> None:
        if missing <= 0:
            return
        if self.state == _DATA:
            if missing <= self.skip:
                self.skip -= missing
                if self.skip == 0:
                    self.state = _LINE
                    self.on_block(ts, True)
                return
            self.skip = 0
            self.on_block(ts, True)
        if self.state not in (_RESYNC, _HUNT):
            self.lose_sync(ts)

    def lose_sync(self, ts: int) -> None:
        """Forget the carried bytes and hunt for the next line that parses.  Captures are cut at
        the end of a write, so the next bytes most likely start a line: they are tried first."""
        self.gaps += 1
        self.buf.clear()
        self.state = _HUNT
        self.skip = 0
        self.on_loss(ts)
