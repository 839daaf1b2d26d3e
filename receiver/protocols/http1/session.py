"""``Http1Session``: one HTTP/1.x connection, both directions, bytes in, transactions out.

Each direction is a :class:`_Stream` with its own buffer and state:

* ``SKIP`` — hunting for a request/status line at a line boundary or at the start of a feed.
  A new stream starts here (the capture may attach mid-stream, inside a body), and a stream
  returns here after a parse error or a capture gap.  Skipping is not an error in itself.
* ``HEAD`` — a message must start right here; anything else is a parse error.
* ``BODY`` — counting body bytes (:class:`~.body.BodyReader`); body bytes are never buffered.
* ``TUNNEL`` — after ``101 Switching Protocols`` or a successful ``CONNECT`` (or after
  :meth:`Http1Session.close`): the bytes are no longer HTTP/1.x and are ignored.

The direction that carries requests is learnt from the first message parsed in either
direction; the traced process is the CLIENT if it sent (EGRESS) the requests.

Only an unparsed head (or an incomplete chunk-size or trailer line) is ever buffered, and never
more than ``max_buffer`` bytes per direction.  Besides, each direction remembers its last head
(up to 512 bytes) and what it parsed to: keep-alive connections often send the same head again,
and a head's parse depends on its bytes only.

Hot path: a complete message in one feed (the usual capture of a request or of a response with
a small body) goes from bytes to a finished exchange without touching the body reader; the
message types are built without their constructor call (see :mod:`.types`).
"""

from __future__ import annotations

from receiver.protocols.base import Direction, ParseState, Role, Transaction
from receiver.protocols.stream import ByteStream, StreamSession

from .parse import (
    MAX_START_LINE,
    REQUEST,
    RESPONSE,
    BodyFraming,
    MessageHead,
    MessageKind,
    NOT_SCANNED,
    find_message_start,
    parse_head_after,
    request_body_framing,
    response_body_framing,
)
from .body import BodyReader
from .stitch import PROTOCOL, Exchange, Http1Stitcher
from .types import Http1Request, Http1Response

DEFAULT_MAX_BUFFER = 64 * 1024
DEFAULT_MAX_PENDING = 128
_MAX_REMEMBERED_HEAD = 512  # longest head a stream remembers (to skip parsing it again)

_SKIP = 0
_HEAD = 1
_BODY = 2
_TUNNEL = 3

_NONE = BodyFraming.NONE
_LENGTH = BodyFraming.LENGTH
_CHUNKED = BodyFraming.CHUNKED
_UNTIL_CLOSE = BodyFraming.UNTIL_CLOSE
_TUNNEL_FRAMING = BodyFraming.TUNNEL
_tuple_new = tuple.__new__  # builds Http1Request/Http1Response without a call (see .types)

_LINE_TEXT = bytes(range(0x20, 0x7F))  # what may extend a start line without ending it or making it invalid
_EGRESS = Direction.EGRESS
_INGRESS = Direction.INGRESS
_SUCCESS = ParseState.SUCCESS
_NEEDS_MORE_DATA = ParseState.NEEDS_MORE_DATA
_IGNORED = ParseState.IGNORED
_INVALID = ParseState.INVALID


class _Stream(ByteStream):
    """Parsing state of one direction of the connection."""

    __slots__ = ("kind", "state", "head", "exchange", "reader", "resynced", "last_bytes", "last_head", "last_kind",
                 "scanned", "line_checked")

    def __init__(self, direction: Direction, max_buffer: int) -> None:
        super().__init__(direction)
        self.kind: MessageKind | None = None
        self.state = _SKIP
        self.head: MessageHead | None = None  # the message whose body is being read
        self.exchange: Exchange | None = None
        self.reader: BodyReader | None = None  # made for the first body that is not all in one feed
        self.resynced = False  # frames may have been lost since the last message parsed
        # The last head parsed, byte for byte, and what it parsed to (with the kind then): a
        # keep-alive connection often repeats its heads, and parsing is a function of the bytes.
        self.last_bytes: bytes | None = None
        self.last_head: MessageHead | None = None
        self.last_kind: MessageKind | None = None
        # Where a search for the end of a head already failed, in the coordinates of the bytes
        # being parsed (shifted when the buffer drops its prefix): retries never search it again.
        self.scanned = NOT_SCANNED
        # The size the buffer had when it was last parsed, if it holds no line end: until a line
        # end arrives or it doubles, parsing it again cannot complete anything (see _parse).
        self.line_checked = 0

    def lose_sync(self) -> None:
        """Forget buffered bytes and hunt for the next message start."""
        self.scanned = NOT_SCANNED
        self.line_checked = 0
        self.buf.clear()
        self.state = _SKIP
        self.resynced = True


class Http1Session(StreamSession):
    """HTTP/1.x parser and stitcher for one connection (implements ``ProtocolSession``).

    ``max_buffer`` bounds the bytes buffered per direction, hence the largest head accepted
    (at least 256); ``max_pending`` bounds requests waiting for their responses (the oldest is
    dropped beyond it).
    Counters, all monotonic: :attr:`parse_errors`, :attr:`dropped_requests`,
    :attr:`unmatched_responses`, :attr:`interim_responses`, :attr:`internal_errors`.
    """

    protocol = PROTOCOL

    def __init__(self, *, max_buffer: int = DEFAULT_MAX_BUFFER, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        super().__init__()
        self.max_buffer = max(256, max_buffer)
        self._max_line = min(MAX_START_LINE, self.max_buffer)
        self._stitcher = Http1Stitcher(max_pending)
        self._streams = (_Stream(_EGRESS, self.max_buffer), _Stream(_INGRESS, self.max_buffer))

    # -- read-only views ---------------------------------------------------------------------

    @property
    def role(self) -> Role:
        """The traced process's side, once the first message has been parsed."""
        return self._stitcher.role

    @property
    def dropped_requests(self) -> int:
        """Requests dropped before pairing: over ``max_pending``, or their response was lost."""
        return self._stitcher.dropped_requests

    @property
    def unmatched_responses(self) -> int:
        """Final responses that had no request to pair with (e.g. attached mid-connection)."""
        return self._stitcher.unmatched_responses

    @property
    def interim_responses(self) -> int:
        """1xx interim responses seen (reported on the final response, never paired)."""
        return self._stitcher.interim_responses

    @property
    def pending_requests(self) -> int:
        """Requests seen whose transaction has not been emitted yet."""
        return self._stitcher.pending

    @property
    def buffered_bytes(self) -> int:
        """Bytes held in the per-direction buffers (each at most ``max_buffer``)."""
        return len(self._streams[0].buf) + len(self._streams[1].buf)

    # -- StreamSession hooks -----------------------------------------------------------------

    def _feed(self, direction: Direction, data: bytes, missing: int, ts_ns: int, out: list[Transaction]) -> None:
        stream = self._streams[direction]
        if data:
            self._parse(stream, data, ts_ns, out)
        if missing:
            self._skip_missing(stream, missing, ts_ns, out)
        if len(stream.buf) > self.max_buffer:  # not reached: every path bounds itself
            self.parse_errors += 1
            stream.lose_sync()

    def _recover(self, ts_ns: int) -> None:
        for stream in self._streams:
            if stream.state != _TUNNEL:
                stream.lose_sync()

    def _close(self, ts_ns: int, out: list[Transaction]) -> None:
        """Finish close-delimited bodies, emit open exchanges."""
        for stream in self._streams:
            if stream.state == _BODY:
                framing = stream.reader.framing
                self._finish_message(stream, ts_ns, out, truncated=framing is not BodyFraming.UNTIL_CLOSE)
            elif stream.state == _HEAD and stream.buf:
                self.parse_errors += 1  # closed in the middle of a head
            stream.buf.clear()
            stream.scanned = NOT_SCANNED
            stream.line_checked = 0
            stream.state = _TUNNEL
        self._stitcher.close(ts_ns, out)

    # -- parsing -----------------------------------------------------------------------------

    def _parse(self, stream: _Stream, data: bytes, ts: int, out: list[Transaction]) -> None:
        buf = stream.buf
        carried = len(buf)
        checked = stream.line_checked
        if (checked and carried + len(data) < 2 * checked and carried + len(data) < self._max_line
                and not data.translate(None, _LINE_TEXT)):
            # An incomplete line growing by small writes of plain text (no line end, no control
            # byte): nothing can complete before its line end, so it is parsed again only when
            # that arrives or the line has doubled (each byte is parsed a bounded number of
            # times; a line made implausible by such text is dropped at most one doubling later).
            buf += data
            return
        if 0 < checked < carried:
            carried = checked  # writes were deferred: the first one after the last parse may start a message
        if carried:
            buf += data
            view: bytes | bytearray = buf
        elif data.__class__ is bytes or isinstance(data, bytes | bytearray):
            view = data
        else:
            view = bytes(data)
        pos = 0
        end = len(view)
        max_buffer = self.max_buffer
        # While hunting, a message may start at a line start, and at the start of a feed: what
        # is carried over from earlier feeds starts at a line start, and a capture (one write)
        # very often starts a message.
        line_start = True
        found = None  # (SUCCESS, head, length) of a head parsed while hunting
        while pos < end:
            state = stream.state
            if state == _BODY:
                result, pos = stream.reader.consume(view, pos, end)
                if result is _NEEDS_MORE_DATA:
                    break
                if result is _SUCCESS:
                    stream.state = _HEAD
                    self._finish_message(stream, ts, out, truncated=False)
                else:  # bad chunk framing: keep the message, look for the next one
                    self.parse_errors += 1
                    self._finish_message(stream, ts, out, truncated=True)
                    stream.state = _SKIP
                    stream.resynced = True
                    line_start = True
            elif state == _HEAD:
                if found is not None:  # parsed while hunting (below)
                    result, head, used = found
                    found = None
                else:
                    last = stream.last_bytes
                    if last is not None and view.startswith(last, pos) and stream.last_kind is stream.kind:
                        # The same head again: it parses the same (parse_head reads nothing past it).
                        start_ts = stream.buf_ts if pos < carried else ts
                        head = stream.last_head
                        pos = self._on_head(stream, head, start_ts, ts, out, pos + len(last), end)  # type: ignore
                        continue
                    result, head, used, stream.scanned = parse_head_after(
                        view, pos, end, stream.kind, max_buffer, True, stream.scanned)
                if result is _SUCCESS:
                    if used <= _MAX_REMEMBERED_HEAD:
                        stream.last_bytes = bytes(view[pos : pos + used])
                        stream.last_head = head
                        stream.last_kind = stream.kind
                    start_ts = stream.buf_ts if pos < carried else ts
                    pos = self._on_head(stream, head, start_ts, ts, out, pos + used, end)  # type: ignore[arg-type]
                elif result is _NEEDS_MORE_DATA:
                    break
                elif result is _IGNORED:
                    pos += used
                else:
                    self.parse_errors += 1
                    pos += 1
                    stream.state = _SKIP
                    stream.resynced = True
                    line_start = False
            elif state == _SKIP:
                if line_start:
                    # A whole head right here is what the hunt would find first (a status line at
                    # a line start; a request line whose version starts within _max_line): take it.
                    *found, stream.scanned = parse_head_after(
                        view, pos, end, stream.kind, max_buffer, True, stream.scanned)
                    head = found[1]
                    if head is not None and (not head.is_request or len(head.method) + len(head.target) + 2
                                             <= self._max_line):
                        stream.state = _HEAD
                        continue
                    found = None
                result, start = find_message_start(view, pos, end, line_start, stream.kind, self._max_line)
                if pos < carried < end and (result is _INVALID or start >= carried):
                    # What was carried over did not become a start line; the feed may start one.
                    result, start = find_message_start(view, carried, end, True, stream.kind, self._max_line)
                pos = start
                if result is _SUCCESS:
                    stream.state = _HEAD
                else:  # NEEDS_MORE_DATA: keep a possible start line; INVALID: start == end
                    break
            else:  # _TUNNEL
                pos = end
        if view is buf:
            del buf[:pos]
            if pos >= carried:
                stream.buf_ts = ts
        elif pos < end:
            buf += memoryview(view)[pos:]
            stream.buf_ts = ts
        stream.line_checked = len(buf) if buf and stream.state != _TUNNEL and b"\n" not in buf else 0
        scanned = stream.scanned
        if scanned[1] > pos:  # still about bytes kept: shift with them
            stream.scanned = (max(scanned[0] - pos, 0), scanned[1] - pos)
        else:
            stream.scanned = NOT_SCANNED

    def _skip_missing(self, stream: _Stream, missing: int, ts: int, out: list[Transaction]) -> None:
        """``missing`` bytes after the fed ones were not captured."""
        state = stream.state
        if state == _TUNNEL:
            return
        if state == _BODY and not stream.buf:
            result, lost = stream.reader.skip(missing)
            if result is _NEEDS_MORE_DATA:
                return
            if result is _SUCCESS:
                stream.state = _HEAD
                self._finish_message(stream, ts, out, truncated=False)
                if not lost:
                    return
                # The gap also swallowed the start of whatever followed the body.
                self.parse_errors += 1
                stream.lose_sync()
                return
            self.parse_errors += 1  # the gap swallowed chunk framing: the body's end is lost
            self._finish_message(stream, ts, out, truncated=True)
            stream.lose_sync()
            return
        if state == _BODY:  # an incomplete chunk-size/trailer line was waiting for its end
            self.parse_errors += 1
            self._finish_message(stream, ts, out, truncated=True)
        elif state == _HEAD:  # a head, or the start of one, was not captured
            self.parse_errors += 1
        stream.lose_sync()

    def _on_head(
        self, stream: _Stream, head: MessageHead, start_ts: int, ts: int, out: list[Transaction], pos: int, end: int
    ) -> int:
        """A head was parsed and consumed up to ``pos``; returns how far the message is consumed:
        a body of known length already in the buffer (``[pos, end)``) is taken at once."""
        stitcher = self._stitcher
        is_request, method, target, status, reason, version, headers, head_size, content_length, chunked, _ = head
        if stream.kind is None:
            self._learn_roles(stream, is_request)
        resynced = stream.resynced
        stream.resynced = False
        if is_request:
            open_ = stitcher._open
            if len(open_) < stitcher.max_pending:  # Http1Stitcher.begin_request, within the bound
                exchange = Exchange(method, start_ts)
                open_.append(exchange)
                stitcher._unanswered.append(exchange)
            else:
                exchange = stitcher.begin_request(method, start_ts)
            if not chunked and (content_length <= 0 or end - pos >= content_length):
                # The whole request is here: no body, or all of it (body bytes are not kept).
                length = content_length if content_length > 0 else 0
                exchange.request = _tuple_new(Http1Request, (
                    method, target, version, [headers, None], length, head_size, head_size + length, False, (), False))
                if exchange.response is not None:
                    stitcher.flush(out)
                return pos + length
            framing, length = request_body_framing(head)
        else:
            unanswered = stitcher._unanswered
            if not resynced and status >= 200 and unanswered and unanswered[0].start_ns <= start_ts:
                # Http1Stitcher.next_unanswered + answer, for a final response in order
                exchange = unanswered.popleft()
            else:
                exchange = stitcher.next_unanswered(start_ts, resynced)
                if status < 200 and status != 101:  # interim: noted, never paired
                    stitcher.note_interim(exchange, status)
                    stream.head = None
                    return pos
                stitcher.answer(exchange)
            framing, length = response_body_framing(head, exchange.method if exchange is not None else None)
            if framing is _NONE or (framing is _LENGTH and end - pos >= length):
                # The whole response is here.
                if exchange is not None:
                    exchange.response = _tuple_new(Http1Response, (
                        version, status, reason, [headers, None], length, head_size, head_size + length, False, (),
                        False, False, exchange.interim))
                    exchange.end_ns = ts
                    if exchange.request is not None:
                        stitcher.flush(out)
                return pos + length
        stream.head = head
        stream.exchange = exchange
        reader = stream.reader
        if reader is None:
            reader = stream.reader = BodyReader(self.max_buffer)
        reader.reset(framing, length)
        if framing is _TUNNEL_FRAMING:
            self._finish_message(stream, ts, out, truncated=False)
            for each in self._streams:
                each.buf.clear()
                each.scanned = NOT_SCANNED
                each.line_checked = 0
                each.state = _TUNNEL
        else:
            stream.state = _BODY
        return pos

    def _learn_roles(self, stream: _Stream, is_request: bool) -> None:
        other = self._streams[1 - stream.direction]
        stream.kind = REQUEST if is_request else RESPONSE
        other.kind = RESPONSE if is_request else REQUEST
        sends_requests = (stream.direction == Direction.EGRESS) == is_request
        self._stitcher.role = Role.CLIENT if sends_requests else Role.SERVER

    def _finish_message(self, stream: _Stream, ts: int, out: list[Transaction], truncated: bool) -> None:
        """The message whose head is ``stream.head`` ended (at ``ts``): hand it to the stitcher."""
        head = stream.head
        exchange = stream.exchange
        stream.head = None
        stream.exchange = None
        if head is None:
            return
        reader = stream.reader
        if truncated:
            reader.truncate()
        framing = reader.framing
        is_request, method, target, status, reason, version, headers, head_size = head[:8]
        if is_request:
            request = _tuple_new(Http1Request, (
                method, target, version, [headers, None], reader.body_size, head_size, head_size + reader.wire_size,
                framing is _CHUNKED, reader.trailers, truncated))
            if exchange is not None:
                self._stitcher.complete_request(exchange, request, out)
        elif exchange is not None:
            response = _tuple_new(Http1Response, (
                version, status, reason, [headers, None], reader.body_size, head_size, head_size + reader.wire_size,
                framing is _CHUNKED, reader.trailers, truncated, framing is _UNTIL_CLOSE, exchange.interim))
            self._stitcher.complete_response(exchange, response, ts, out)
