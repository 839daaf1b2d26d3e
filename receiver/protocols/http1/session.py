"""``Http1Session``: one HTTP/1.x connection, both directions, bytes in, transactions out.

Each direction is a :class:`_Stream` with its own buffer and state:

* ``SKIP`` — hunting for a request/status line at a line boundary or at the start of a feed.
  A new stream starts here (the capture may attach mid-stream, inside a body), and a stream
  returns here after a parse error or a capture gap.  Skipping is not an error in itself.
* ``HEAD`` — a message must start right here; anything else is a parse error.
* ``BODY`` — counting body bytes (:class:`~.parse.BodyReader`); body bytes are never buffered.
* ``TUNNEL`` — after ``101 Switching Protocols`` or a successful ``CONNECT`` (or after
  :meth:`Http1Session.close`): the bytes are no longer HTTP/1.x and are ignored.

The direction that carries requests is learnt from the first message parsed in either
direction; the traced process is the CLIENT if it sent (EGRESS) the requests.

Only an unparsed head (or an incomplete chunk-size or trailer line) is ever buffered, and never
more than ``max_buffer`` bytes per direction.
"""

from __future__ import annotations

from receiver.protocols.base import Direction, ParseState, Role, Transaction

from .parse import (
    MAX_START_LINE,
    REQUEST,
    RESPONSE,
    BodyFraming,
    BodyReader,
    MessageHead,
    MessageKind,
    find_message_start,
    parse_head,
    request_body_framing,
    response_body_framing,
)
from .stitch import PROTOCOL, Exchange, Http1Stitcher
from .types import Http1Request, Http1Response

DEFAULT_MAX_BUFFER = 64 * 1024
DEFAULT_MAX_PENDING = 128

_SKIP = 0
_HEAD = 1
_BODY = 2
_TUNNEL = 3

_SUCCESS = ParseState.SUCCESS
_NEEDS_MORE_DATA = ParseState.NEEDS_MORE_DATA
_IGNORED = ParseState.IGNORED
_INVALID = ParseState.INVALID


class _Stream:
    """Parsing state of one direction of the connection."""

    __slots__ = ("direction", "kind", "buf", "buf_ts", "state", "head", "exchange", "reader", "resynced")

    def __init__(self, direction: Direction, max_buffer: int) -> None:
        self.direction = direction
        self.kind: MessageKind | None = None
        self.buf = bytearray()
        self.buf_ts = 0  # ts of the feed that carried buf[0]
        self.state = _SKIP
        self.head: MessageHead | None = None  # the message whose body is being read
        self.exchange: Exchange | None = None
        self.reader = BodyReader(max_buffer)
        self.resynced = False  # frames may have been lost since the last message parsed

    def lose_sync(self) -> None:
        """Forget buffered bytes and hunt for the next message start."""
        self.buf.clear()
        self.state = _SKIP
        self.resynced = True


class Http1Session:
    """HTTP/1.x parser and stitcher for one connection (implements ``ProtocolSession``).

    ``max_buffer`` bounds the bytes buffered per direction, hence the largest head accepted
    (at least 256); ``max_pending`` bounds requests waiting for their responses (the oldest is
    dropped beyond it).
    Counters, all monotonic: :attr:`parse_errors`, :attr:`dropped_requests`,
    :attr:`unmatched_responses`, :attr:`interim_responses`, :attr:`internal_errors`.
    """

    protocol = PROTOCOL

    def __init__(self, *, max_buffer: int = DEFAULT_MAX_BUFFER, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.max_buffer = max(256, max_buffer)
        self.parse_errors = 0
        self.internal_errors = 0  # exceptions caught at the top level: parser bugs, never wire data
        self._max_line = min(MAX_START_LINE, self.max_buffer)
        self._stitcher = Http1Stitcher(max_pending)
        self._streams = (_Stream(Direction.EGRESS, self.max_buffer), _Stream(Direction.INGRESS, self.max_buffer))
        self._closed = False

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

    # -- ProtocolSession ---------------------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, ts_ns: int, total_len: int | None = None) -> list[Transaction]:
        """Feed bytes seen in one direction; return the transactions they completed."""
        out: list[Transaction] = []
        if self._closed:
            return out
        try:
            stream = self._streams[direction]
            size = len(data)
            missing = total_len - size if total_len is not None and total_len > size else 0
            if size:
                self._parse(stream, data, ts_ns, out)
            if missing:
                self._skip_missing(stream, missing, ts_ns, out)
            if len(stream.buf) > self.max_buffer:  # not reached: every path bounds itself
                self.parse_errors += 1
                stream.lose_sync()
        except Exception:  # defensive: a bug must not take the pipeline down
            self.parse_errors += 1
            self.internal_errors += 1
            for stream in self._streams:
                if stream.state != _TUNNEL:
                    stream.lose_sync()
        return out

    def close(self, ts_ns: int) -> list[Transaction]:
        """The connection closed: finish close-delimited bodies, emit open exchanges."""
        out: list[Transaction] = []
        if self._closed:
            return out
        self._closed = True
        try:
            for stream in self._streams:
                if stream.state == _BODY:
                    framing = stream.reader.framing
                    self._finish_message(stream, ts_ns, out, truncated=framing is not BodyFraming.UNTIL_CLOSE)
                elif stream.state == _HEAD and stream.buf:
                    self.parse_errors += 1  # closed in the middle of a head
                stream.buf.clear()
                stream.state = _TUNNEL
            self._stitcher.close(ts_ns, out)
        except Exception:  # defensive, as in feed()
            self.parse_errors += 1
            self.internal_errors += 1
        return out

    # -- parsing -----------------------------------------------------------------------------

    def _parse(self, stream: _Stream, data: bytes, ts: int, out: list[Transaction]) -> None:
        buf = stream.buf
        carried = len(buf)
        if carried:
            buf += data
            view: bytes | bytearray = buf
        elif isinstance(data, bytes | bytearray):
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
                result, head, used = parse_head(view, pos, end, stream.kind, max_buffer)
                if result is _SUCCESS:
                    start_ts = stream.buf_ts if pos < carried else ts
                    pos += used
                    self._on_head(stream, head, start_ts, ts, out)  # type: ignore[arg-type]
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

    def _on_head(self, stream: _Stream, head: MessageHead, start_ts: int, ts: int, out: list[Transaction]) -> None:
        stitcher = self._stitcher
        if stream.kind is None:
            self._learn_roles(stream, head.is_request)
        resynced = stream.resynced
        stream.resynced = False
        stream.head = head
        if head.is_request:
            stream.exchange = stitcher.begin_request(head.method, start_ts)
            framing, length = request_body_framing(head)
        else:
            exchange = stitcher.next_unanswered(start_ts, resynced)
            status = head.status_code
            if status < 200 and status != 101:  # interim: noted, never paired
                stitcher.note_interim(exchange, status)
                stream.head = None
                return
            stitcher.answer(exchange)
            stream.exchange = exchange
            framing, length = response_body_framing(head, exchange.method if exchange is not None else None)
        stream.reader.reset(framing, length)
        if framing is BodyFraming.NONE:
            self._finish_message(stream, ts, out, truncated=False)
        elif framing is BodyFraming.TUNNEL:
            self._finish_message(stream, ts, out, truncated=False)
            for each in self._streams:
                each.buf.clear()
                each.state = _TUNNEL
        else:
            stream.state = _BODY

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
        if head.is_request:
            request = Http1Request(
                head.method,
                head.target,
                head.version,
                head.headers,
                reader.body_size,
                head.head_size,
                head.head_size + reader.wire_size,
                framing is BodyFraming.CHUNKED,
                reader.trailers,
                truncated,
            )
            if exchange is not None:
                self._stitcher.complete_request(exchange, request, out)
        else:
            response = Http1Response(
                head.version,
                head.status_code,
                head.reason,
                head.headers,
                reader.body_size,
                head.head_size,
                head.head_size + reader.wire_size,
                framing is BodyFraming.CHUNKED,
                reader.trailers,
                truncated,
                framing is BodyFraming.UNTIL_CLOSE,
                exchange.interim if exchange is not None else (),
            )
            self._stitcher.complete_response(exchange, response, ts, out)
