"""HTTP/1.x body framing: :class:`BodyReader` counts the bytes of one message body at a time
(Content-Length, chunked with trailers, or delimited by the connection's close), never buffering
them.  Heads are parsed by :mod:`.parse`; like it, nothing here raises on wire data.
"""

from __future__ import annotations

import re

from receiver.protocols.base import ParseState

from .parse import (
    INVALID,
    MAX_CHUNK_LINE,
    NEEDS_MORE_DATA,
    SUCCESS,
    BodyFraming,
    find_head_end,
    parse_fields,
)
from .types import Headers

_CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?\n")
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


# Chunked-body sub-states.
_CHUNK_SIZE = 0
_CHUNK_DATA = 1
_CHUNK_DATA_END = 2
_CHUNK_TRAILERS = 3


class BodyReader:
    """Incremental body framing for one message at a time (reused across messages).

    Body bytes are counted, never buffered: :meth:`consume` advances over what is available,
    :meth:`skip` accounts for bytes the capture missed.  Sizes come from lengths on the wire.
    """

    __slots__ = ("framing", "remaining", "body_size", "wire_size", "trailers", "_chunk_state", "_max_trailers",
                 "_max_line", "_trailers_searched")

    def __init__(self, max_buffer: int) -> None:
        self._max_trailers = max_buffer  # the trailer section must fit in the buffer
        self._max_line = min(MAX_CHUNK_LINE, max_buffer)
        self.reset(BodyFraming.NONE, 0)

    def reset(self, framing: BodyFraming, length: int) -> None:
        """Start framing a new body."""
        self.framing = framing
        self.remaining = length  # LENGTH: body bytes left; CHUNKED: bytes left of this chunk
        self.body_size = length
        self.wire_size = length
        self.trailers: Headers = ()
        self._chunk_state = _CHUNK_SIZE
        self._trailers_searched = 0  # bytes of the trailer section already searched for its end

    def consume(self, buf: bytes | bytearray, pos: int, end: int) -> tuple[ParseState, int]:
        """Advance over body bytes in ``buf[pos:end]``.

        Returns ``(SUCCESS, index just past the body)``, ``(NEEDS_MORE_DATA, index)`` having
        used everything usable up to ``index`` (bytes after it are an incomplete chunk line),
        or ``(INVALID, index of the bad chunk framing)``.
        """
        framing = self.framing
        if framing is BodyFraming.LENGTH:
            available = end - pos
            remaining = self.remaining
            if available >= remaining:
                self.remaining = 0
                return SUCCESS, pos + remaining
            self.remaining = remaining - available
            return NEEDS_MORE_DATA, end
        if framing is BodyFraming.CHUNKED:
            return self._consume_chunked(buf, pos, end)
        if framing is BodyFraming.UNTIL_CLOSE:
            self.body_size += end - pos
            self.wire_size += end - pos
            return NEEDS_MORE_DATA, end
        if framing is BodyFraming.TUNNEL:
            return NEEDS_MORE_DATA, end
        return SUCCESS, pos

    def _consume_chunked(self, buf: bytes | bytearray, pos: int, end: int) -> tuple[ParseState, int]:
        while True:
            state = self._chunk_state
            if state == _CHUNK_DATA:
                available = end - pos
                remaining = self.remaining
                if available < remaining:
                    self.remaining = remaining - available
                    return NEEDS_MORE_DATA, end
                pos += remaining
                self.remaining = 0
                self._chunk_state = _CHUNK_DATA_END
            elif state == _CHUNK_SIZE:
                nl = buf.find(b"\n", pos, min(end, pos + self._max_line))
                if nl < 0:
                    if pos < end and (buf[pos] not in _HEX_DIGITS or end - pos >= self._max_line):
                        return INVALID, pos
                    return NEEDS_MORE_DATA, pos
                m = _CHUNK_SIZE_LINE.match(buf, pos, nl + 1)
                if m is None:
                    return INVALID, pos
                size = int(m.group(1), 16)
                self.wire_size += nl + 1 - pos + size
                pos = nl + 1
                if size:
                    self.body_size += size
                    self.remaining = size
                    self._chunk_state = _CHUNK_DATA
                else:
                    self._chunk_state = _CHUNK_TRAILERS
            elif state == _CHUNK_DATA_END:
                if pos >= end:
                    return NEEDS_MORE_DATA, pos
                byte = buf[pos]
                if byte == 10:
                    used = 1
                elif byte == 13:
                    if pos + 1 >= end:
                        return NEEDS_MORE_DATA, pos
                    if buf[pos + 1] != 10:
                        return INVALID, pos
                    used = 2
                else:
                    return INVALID, pos
                pos += used
                self.wire_size += used
                self._chunk_state = _CHUNK_SIZE
            else:
                return self._consume_trailers(buf, pos, end)

    def _consume_trailers(self, buf: bytes | bytearray, pos: int, end: int) -> tuple[ParseState, int]:
        if pos >= end:
            return NEEDS_MORE_DATA, pos
        byte = buf[pos]
        if byte == 10 or byte == 13:
            if byte == 13:
                if pos + 1 >= end:
                    return NEEDS_MORE_DATA, pos
                if buf[pos + 1] != 10:
                    return INVALID, pos
                used = 2
            else:
                used = 1
            self.wire_size += used
            return SUCCESS, pos + used
        limit = min(end, pos + self._max_trailers)
        # The section holds at least one field line here, so its empty line follows an LF at or
        # after pos.
        searched = self._trailers_searched  # retried as bytes arrive: never search them twice
        fields_end, section_end = find_head_end(buf, pos + searched - 2 if searched > 2 else pos, limit)
        if section_end < 0:
            self._trailers_searched = limit - pos
            if end - pos >= self._max_trailers:
                return INVALID, pos
            return NEEDS_MORE_DATA, pos
        fields = parse_fields(buf[pos:fields_end].decode("latin-1"))
        if fields is None:
            return INVALID, pos
        self.trailers = tuple(fields)
        self.wire_size += section_end - pos
        return SUCCESS, section_end

    def skip(self, missing: int) -> tuple[ParseState, int]:
        """Account for ``missing`` uncaptured bytes that follow the last consumed byte.

        Only valid when no unconsumed bytes are pending.  Returns ``(NEEDS_MORE_DATA, 0)`` when
        the body absorbed them and continues, ``(SUCCESS, n)`` when the body ended inside the
        gap with ``n`` further bytes lost after it, ``(INVALID, 0)`` when the gap swallowed body
        framing (a chunk-size line), so the end of the body can no longer be found.
        """
        framing = self.framing
        if framing is BodyFraming.LENGTH:
            remaining = self.remaining
            if missing < remaining:
                self.remaining = remaining - missing
                return NEEDS_MORE_DATA, 0
            self.remaining = 0
            return SUCCESS, missing - remaining
        if framing is BodyFraming.UNTIL_CLOSE:
            self.body_size += missing
            self.wire_size += missing
            return NEEDS_MORE_DATA, 0
        if framing is BodyFraming.CHUNKED and self._chunk_state == _CHUNK_DATA:
            remaining = self.remaining
            if missing < remaining:
                self.remaining = remaining - missing
                return NEEDS_MORE_DATA, 0
            self.remaining = 0
            over = missing - remaining
            if over == 0:
                self._chunk_state = _CHUNK_DATA_END
                return NEEDS_MORE_DATA, 0
            if over == 1:  # the CR of the chunk's CRLF; the LF is still to come
                self._chunk_state = _CHUNK_DATA_END
                self.wire_size += 1
                return NEEDS_MORE_DATA, 0
            if over == 2:
                self._chunk_state = _CHUNK_SIZE
                self.wire_size += 2
                return NEEDS_MORE_DATA, 0
        if framing is BodyFraming.TUNNEL or framing is BodyFraming.NONE:
            return SUCCESS, missing
        return INVALID, 0

    def truncate(self) -> None:
        """The body ends early (connection closed or framing lost): keep what was seen."""
        if self.framing is BodyFraming.LENGTH:
            self.body_size -= self.remaining
            self.wire_size -= self.remaining
            self.remaining = 0
