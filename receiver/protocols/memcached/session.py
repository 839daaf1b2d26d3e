"""``MemcachedSession``: one memcached connection (text and meta protocol), both directions, bytes
in, transactions out.

Each direction is a :class:`~.parse.LineStream`.  Which direction carries requests is the kernel's
hint (the side that called ``connect`` sends them) or, without one, learnt from the first line:
memcached commands are lower-case words (``get``, ``set``, ``mg``), replies upper-case
(``STORED``, ``VALUE``, ``HD``) or a number.  Requests become :class:`~.types.MemcachedRequest`
when their line (and data block, for storage commands) is complete; replies are assembled —
``VALUE`` lines and their blocks up to ``END``, ``STAT`` lines up to ``END``, ``VA`` and its
block — and paired in order by :class:`~.stitch.MemcachedStitcher`.  Binary protocol
connections (first byte ``0x80``) are not parsed: their bytes count as parse errors.
"""

from __future__ import annotations

from receiver.protocols.base import Direction, Role, Transaction

from .parse import (
    END,
    STAT,
    VA,
    VALUE,
    LineStream,
    looks_like_command,
    parse_reply_line,
    parse_request_line,
)
from .stitch import DEFAULT_MAX_PENDING, MemcachedStitcher, Pending, Reply
from .types import ERROR_STATUSES, PROTOCOL, MemcachedRequest

DEFAULT_MAX_BUFFER = 64 * 1024
MIN_BUFFER = 256
MAX_EARLY_LINES = 16  # lines kept (cut to MAX_EARLY_BYTES) until the first one that tells the direction
MAX_EARLY_BYTES = 64


class _Open:
    """A message whose line has been read and which is not complete yet."""

    __slots__ = ("line", "status", "values", "size", "start", "opaque", "text", "truncated", "data", "flags")

    def __init__(self, line, status: str, size: int, start: int, opaque: str | None = None) -> None:
        self.line = line  # RequestLine for a request awaiting its block
        self.status = status
        self.values = 0
        self.size = size
        self.start = start
        self.opaque = opaque
        self.text: str | None = None
        self.truncated = False
        self.data = 0  # block size announced by the last line
        self.flags = ""


class MemcachedSession:
    """Memcached parser and stitcher for one connection (implements ``ProtocolSession``).

    ``max_buffer`` bounds the unfinished line carried per direction (data blocks are never
    buffered); ``max_pending`` bounds requests awaiting replies (oldest dropped beyond).
    Counters, all monotonic: :attr:`parse_errors`, :attr:`capture_gaps`,
    :attr:`dropped_requests`, :attr:`unmatched_replies`, :attr:`internal_errors`.
    """

    protocol = PROTOCOL

    def __init__(
        self,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        max_pending: int = DEFAULT_MAX_PENDING,
        kernel_role: Role = Role.UNKNOWN,
        transport: str = "tcp",
    ) -> None:
        self.max_buffer = max(MIN_BUFFER, max_buffer)
        self.transport = transport
        self.internal_errors = 0
        self._bad_lines = 0
        self._stitcher = MemcachedStitcher(max_pending)
        self._streams = (
            LineStream(self.max_buffer, self._egress_line, self._egress_block, self._egress_loss),
            LineStream(self.max_buffer, self._ingress_line, self._ingress_block, self._ingress_loss),
        )
        self._open: list[_Open | None] = [None, None]
        self._request_dir: Direction | None = None
        self._early: list[tuple] = []  # lines seen before the request direction is known
        self._out: list[Transaction] = []
        self._closed = False
        if kernel_role == Role.CLIENT:
            self._learn(Direction.EGRESS)
        elif kernel_role == Role.SERVER:
            self._learn(Direction.INGRESS)

    # -- read-only views ---------------------------------------------------------------------

    @property
    def parse_errors(self) -> int:
        return self._bad_lines + self.internal_errors

    @property
    def capture_gaps(self) -> int:
        return self._streams[0].gaps + self._streams[1].gaps

    @property
    def role(self) -> Role:
        return self._stitcher.role

    @property
    def dropped_requests(self) -> int:
        return self._stitcher.dropped_requests

    @property
    def unmatched_replies(self) -> int:
        return self._stitcher.unmatched_replies

    @property
    def pending_requests(self) -> int:
        return len(self._stitcher.pending)

    @property
    def buffered_bytes(self) -> int:
        return self._streams[0].buffered + self._streams[1].buffered

    # -- ProtocolSession ---------------------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, ts_ns: int, total_len: int | None = None) -> list[Transaction]:
        out: list[Transaction] = []
        if self._closed:
            return out
        self._out = out
        try:
            size = len(data)
            missing = total_len - size if total_len is not None and total_len > size else 0
            self._streams[direction].feed(data, ts_ns, missing)
        except Exception:  # defensive: a bug must not take the pipeline down
            self.internal_errors += 1
            for stream in self._streams:
                stream.lose_sync(ts_ns)
        self._out = []
        return out

    def close(self, ts_ns: int) -> list[Transaction]:
        out: list[Transaction] = []
        if self._closed:
            return out
        self._closed = True
        self._out = out
        try:
            if self._request_dir is not None:
                reply = self._open[1 - self._request_dir]
                if reply is not None:  # a reply cut short still answers its request
                    reply.truncated = True
                    self._finish_reply(reply, ts_ns)
            self._stitcher.close(out)  # a request cut short never reached the server whole
        except Exception:
            self.internal_errors += 1
        self._out = []
        return out

    # -- stream callbacks --------------------------------------------------------------------

    def _egress_line(self, line: bytes, wire: int, start: int, ts: int, truncated: bool, hunting: bool) -> int | None:
        return self._on_line(Direction.EGRESS, line, wire, start, ts, truncated, hunting)

    def _ingress_line(self, line: bytes, wire: int, start: int, ts: int, truncated: bool, hunting: bool) -> int | None:
        return self._on_line(Direction.INGRESS, line, wire, start, ts, truncated, hunting)

    def _egress_block(self, ts: int, lost: bool) -> None:
        self._on_block(Direction.EGRESS, ts, lost)

    def _ingress_block(self, ts: int, lost: bool) -> None:
        self._on_block(Direction.INGRESS, ts, lost)

    def _egress_loss(self, ts: int) -> None:
        self._on_loss(Direction.EGRESS, ts)

    def _ingress_loss(self, ts: int) -> None:
        self._on_loss(Direction.INGRESS, ts)

    def _learn(self, request_dir: Direction) -> None:
        self._request_dir = request_dir
        self._stitcher.role = Role.CLIENT if request_dir == Direction.EGRESS else Role.SERVER

    def _on_line(
        self, direction: Direction, line: bytes, wire: int, start: int, ts: int, truncated: bool, hunting: bool
    ) -> int | None:
        if self._request_dir is None:
            if looks_like_command(line):
                self._learn(direction)
            elif parse_reply_line(line) is not None:
                self._learn(Direction(1 - direction))
            elif len(self._early) < MAX_EARLY_LINES:  # kept until a line tells who is who
                self._early.append((direction, line[:MAX_EARLY_BYTES], wire, start, ts, truncated))
                return None
            else:
                self._bad_lines += 1
                return -1  # hunt on for a line that tells
            early, self._early = self._early, []
            for d, *args in early:
                if d == self._request_dir:
                    self._on_request_line(*args, False)
                else:
                    self._on_reply_line(*args, False)
        if direction == self._request_dir:
            return self._on_request_line(line, wire, start, ts, truncated, hunting)
        return self._on_reply_line(line, wire, start, ts, truncated, hunting)

    def _on_request_line(
        self, line: bytes, wire: int, start: int, ts: int, truncated: bool, hunting: bool
    ) -> int | None:
        if hunting and not looks_like_command(line):
            return -1
        parsed = parse_request_line(line)
        if parsed is None:  # memcached answers anything it cannot read with ERROR
            self._bad_lines += 1
            parsed = parse_request_line(b"unknown")
        assert parsed is not None
        if parsed.data_size is not None and not truncated:
            held = _Open(parsed, "", wire, start)
            self._open[self._request_dir] = held  # type: ignore[index]
            return parsed.data_size
        self._emit_request(parsed, wire, start, ts, truncated)
        return None

    def _emit_request(self, parsed, size: int, start: int, end: int, truncated: bool) -> None:
        request = MemcachedRequest(
            parsed.command, parsed.key_count, parsed.noreply, parsed.quiet, parsed.data_size, parsed.opaque,
            size, truncated, parsed.flags,
        )
        self._stitcher.request(Pending(request, start, end), self._out)

    def _on_reply_line(
        self, line: bytes, wire: int, start: int, ts: int, truncated: bool, hunting: bool
    ) -> int | None:
        parsed = parse_reply_line(line)
        reply_dir = 1 - self._request_dir  # type: ignore[operator]
        current = self._open[reply_dir]
        if parsed is None:
            if hunting:
                return -1
            self._bad_lines += 1
            if current is not None:  # an aggregate interrupted by garbage: end it
                current.truncated = True
                self._finish_reply(current, ts)
            return None
        status = parsed.status
        if status == VALUE or status == STAT:
            if current is None or current.status != status:
                if current is not None:
                    current.truncated = True
                    self._finish_reply(current, ts)
                current = _Open(None, status, 0, start)
                self._open[reply_dir] = current
            current.size += wire
            if status == VALUE:
                current.values += 1
                current.data = parsed.data_size or 0
                return parsed.data_size
            return None
        if current is not None:
            if status == END:
                current.size += wire
                self._finish_reply(current, ts)
                return None
            if status in ERROR_STATUSES:  # the server gave up half-way
                current.status = status
                current.text = parsed.text
                current.size += wire
                self._finish_reply(current, ts)
                return None
            current.truncated = True
            self._finish_reply(current, ts)
        reply = _Open(None, status, wire, start, parsed.opaque)
        reply.text = parsed.text
        reply.flags = parsed.flags
        if status == VA:
            reply.data = parsed.data_size or 0
            self._open[reply_dir] = reply
            return parsed.data_size
        self._finish_reply(reply, ts)
        return None

    def _on_block(self, direction: Direction, ts: int, lost: bool) -> None:
        current = self._open[direction]
        if current is None:
            return
        if direction == self._request_dir:
            self._open[direction] = None
            parsed = current.line
            self._emit_request(parsed, current.size + parsed.data_size + 2, current.start, ts, False)
            return
        current.size += current.data + 2
        if current.status == VA:
            self._finish_reply(current, ts)

    def _on_loss(self, direction: Direction, ts: int) -> None:
        if self._request_dir is None:
            return
        current = self._open[direction]
        self._open[direction] = None
        # A request cut by the loss is gone (its reply, if any, will be unmatched or paired with a
        # later request: counted in capture_gaps); a reply cut by it still answers its request.
        if direction != self._request_dir and current is not None:
            current.truncated = True
            self._finish_reply(current, ts)

    def _finish_reply(self, current: _Open, ts: int) -> None:
        reply_dir = 1 - self._request_dir  # type: ignore[operator]
        if self._open[reply_dir] is current:
            self._open[reply_dir] = None
        status = current.status
        if status == VALUE:
            status = END  # a retrieval cut short
        reply = Reply(status, current.values, current.opaque, current.text, current.size, current.start, ts,
                      current.truncated, current.flags)
        self._stitcher.reply(reply, self._out)
