"""``PostgresSession``: one PostgreSQL connection, both directions, bytes in, transactions out.

Each direction is a :class:`_Stream` with its own buffer and state:

* ``UNKNOWN``  — nothing seen yet on the connection; the first bytes say who is who: an
  untyped startup-phase message (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest) is
  the frontend; anything else is hunted for (below).
* ``STARTUP``  — frontend, before its StartupMessage: untyped messages.  An SSLRequest /
  GSSENCRequest makes the backend expect a one-byte answer: ``N`` goes on in plaintext,
  ``S``/``G`` means encryption follows — the connection is counted (:attr:`encrypted`) and
  parsing stops.  A CancelRequest ends parsing too (:attr:`cancel_request`).
* ``MESSAGES`` — typed messages ``type u32-length body``.  Bodies that matter (Query, Parse,
  Bind, Execute, Close; CommandComplete, ErrorResponse, ReadyForQuery, ParameterStatus,
  Authentication) are parsed when complete — or, when longer than they may be buffered, from
  their first bytes (a query text is then cut short and marked ``query_truncated``).  Every
  other message is handled from its header and its body skipped without being buffered.
* ``SKIP_BODY`` — skipping the rest of a message whose length is known.
* ``HUNT``     — looking for a believable message boundary (:func:`~.parse.find_message_start`):
  after attaching to a connection mid-stream, after a capture gap that went past a known
  message end, or after a parse error.
* ``DONE``     — encrypted, cancel request, or closed: bytes are ignored.

Password, SASL and GSS messages are skipped unread: no secret is ever buffered or stored.
The traced process is the CLIENT when it sent (EGRESS) the frontend side.  Only an unparsed
message prefix is buffered, never more than ``max_buffer`` bytes per direction.
"""

from __future__ import annotations

from receiver.protocols.base import Direction, Role, Transaction
from receiver.protocols.stream import ByteStream, StreamSession

from . import parse as wire
from .parse import (
    BACKEND,
    FRONTEND,
    HEADER,
    LENGTH_BOUNDS,
    UNTYPED_CANCEL,
    UNTYPED_STARTUP,
    find_message_start,
    parse_auth_code,
    parse_bind,
    parse_close,
    parse_command_tag,
    parse_error_fields,
    parse_execute,
    parse_parameter_status,
    parse_parse,
    parse_query,
    parse_ready_status,
    parse_startup,
    untyped_kind,
)
from .stitch import DEFAULT_MAX_PENDING, DEFAULT_MAX_STATEMENTS, PgStitcher
from .types import PROTOCOL, PgError, PgStartup

DEFAULT_MAX_BUFFER = 64 * 1024
MIN_BUFFER = 256

_UNKNOWN = 0
_STARTUP = 1
_MESSAGES = 2
_SKIP_BODY = 3
_HUNT = 4
_DONE = 5

_unpack_u32 = wire.U32.unpack_from
_SUCCESS = wire.ParseState.SUCCESS
_NEEDS_MORE_DATA = wire.ParseState.NEEDS_MORE_DATA

# Body bytes parsed per message type (0: as many as may be buffered); absent: header only.
_BODY_LIMITS = (
    {wire.Q: 0, wire.P: 0, wire.B: 1024, wire.E: 1024, wire.C: 1024},
    {wire.C: 1024, wire.E: 4096, wire.READY: 1, wire.AUTH: 4, wire.S: 1024},
)
_SSL_CONTINUE = ord("N")
_SSL_ACCEPTED = (ord("S"), ord("G"))


class _Stream(ByteStream):
    """Parsing state of one direction of the connection."""

    __slots__ = ("side", "state", "remaining", "ssl_replies")

    def __init__(self, direction: Direction) -> None:
        super().__init__(direction)
        self.side: int | None = None  # FRONTEND / BACKEND once known
        self.state = _UNKNOWN
        self.remaining = 0  # SKIP_BODY: body bytes still to skip
        self.ssl_replies = 0  # backend: one-byte SSL/GSSENC answers still expected


class PostgresSession(StreamSession):
    """PostgreSQL v3 parser and stitcher for one connection (implements ``ProtocolSession``).

    ``max_buffer`` bounds the bytes buffered per direction (hence the longest query text
    kept whole); ``max_pending`` bounds requests waiting for results; ``max_statements`` bounds
    the prepared-statement map.  Counters, all monotonic: :attr:`parse_errors`,
    :attr:`capture_gaps`, :attr:`dropped_requests`, :attr:`unmatched_responses`,
    :attr:`evicted_statements`, :attr:`internal_errors`.
    """

    protocol = PROTOCOL

    def __init__(
        self,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_statements: int = DEFAULT_MAX_STATEMENTS,
    ) -> None:
        super().__init__()
        self.max_buffer = max(MIN_BUFFER, max_buffer)
        self.capture_gaps = 0  # lost bytes (truncated captures) that cost a message boundary
        self.encrypted = False  # SSL/GSS encryption was accepted: nothing after it is parsed
        self.cancel_request = False  # the connection only carried a CancelRequest
        self.startup: PgStartup | None = None
        self.startup_error: PgError | None = None  # an error before the first ReadyForQuery
        self.auth_codes: tuple[int, ...] = ()  # Authentication request codes seen (0 = OK, 5 = MD5, 10 = SASL...)
        self._authenticating = False  # between the StartupMessage and the first ReadyForQuery
        self._stitcher = PgStitcher(max_pending, max_statements, max_statement_bytes=4 * self.max_buffer)
        self._streams = (_Stream(Direction.EGRESS), _Stream(Direction.INGRESS))

    # -- read-only views ---------------------------------------------------------------------

    @property
    def role(self) -> Role:
        return self._stitcher.role

    @property
    def database(self) -> str | None:
        return self._stitcher.identity[0]

    @property
    def user(self) -> str | None:
        return self._stitcher.identity[1]

    @property
    def application_name(self) -> str | None:
        return self._stitcher.identity[2]

    @property
    def dropped_requests(self) -> int:
        return self._stitcher.dropped_requests

    @property
    def unmatched_responses(self) -> int:
        return self._stitcher.unmatched_responses

    @property
    def evicted_statements(self) -> int:
        return self._stitcher.evicted_statements

    @property
    def pending_requests(self) -> int:
        return self._stitcher.pending

    @property
    def statements(self) -> dict[str, str | None]:
        """Prepared statement name → query text, as currently known (a copy)."""
        return {name: query for name, (query, _) in self._stitcher.statements.items()}

    @property
    def buffered_bytes(self) -> int:
        return len(self._streams[0].buf) + len(self._streams[1].buf)

    # -- ProtocolSession ---------------------------------------------------------------------

    def _feed(self, direction: Direction, data: bytes, missing: int, ts_ns: int, out: list[Transaction]) -> None:
        stream = self._streams[direction]
        size = len(data)
        if stream.state == _UNKNOWN and size:
            head = bytes(stream.buf[:8]) + data[:8] if stream.buf else data
            if len(head) < 8 and head[0] == 0 and not missing:
                # Maybe the start of an untyped startup-phase message: wait for 8 bytes.
                if not stream.buf:
                    stream.buf_ts = ts_ns
                stream.buf += data
                return
            self._identify(stream, head)
        if size and stream.state != _DONE:
            self._parse(stream, data, ts_ns, out)
        if missing and stream.state != _DONE:
            self._skip_missing(stream, missing, ts_ns, out)

    def _recover(self, ts_ns: int) -> None:
        for each in self._streams:
            if each.state != _DONE:
                self._lose_sync(each, ts_ns)

    def _close(self, ts_ns: int, out: list[Transaction]) -> None:
        for stream in self._streams:
            stream.buf.clear()
            stream.state = _DONE
        self._stitcher.close(ts_ns, out)

    # -- who is who --------------------------------------------------------------------------

    def _identify(self, stream: _Stream, data: bytes) -> None:
        """First bytes in a direction with nothing known about it."""
        other = self._streams[1 - stream.direction]
        if untyped_kind(data, 0, len(data)) is not None:
            self._assign(stream, FRONTEND)
            stream.state = _STARTUP
            if other.state == _UNKNOWN:
                other.state = _MESSAGES
        elif len(data) == 1 and data[0] in b"NSG" and other.state == _UNKNOWN:
            # The one-byte answer to an SSLRequest/GSSENCRequest whose request was not seen.
            self._assign(stream, BACKEND)
            stream.state = _MESSAGES
            stream.ssl_replies = 1
            other.state = _STARTUP
        else:
            stream.state = _HUNT
            if other.state == _UNKNOWN:
                other.state = _HUNT

    def _assign(self, stream: _Stream, side: int) -> None:
        other = self._streams[1 - stream.direction]
        stream.side = side
        other.side = 1 - side
        sends_requests = (side == FRONTEND) == (stream.direction == Direction.EGRESS)
        self._stitcher.role = Role.CLIENT if sends_requests else Role.SERVER

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
        while pos < end:
            state = stream.state
            if state == _MESSAGES:
                pos = self._messages(stream, view, pos, end, carried, ts, out)
                if stream.state == _MESSAGES:
                    break  # the rest is an incomplete message
            elif state == _SKIP_BODY:
                available = end - pos
                if available >= stream.remaining:
                    pos += stream.remaining
                    stream.remaining = 0
                    stream.state = _MESSAGES
                else:
                    stream.remaining -= available
                    pos = end
            elif state == _HUNT:
                result, start, side = find_message_start(
                    view, pos, end, stream.side, carried if pos <= carried else -1, self.max_buffer
                )
                pos = start
                if result is _SUCCESS:
                    if stream.side is None:
                        self._assign(stream, side)  # type: ignore[arg-type]
                        other = self._streams[1 - stream.direction]
                        if other.state == _UNKNOWN:
                            other.state = _HUNT
                    stream.state = _MESSAGES
                else:
                    break  # NEEDS_MORE_DATA keeps view[pos:]; INVALID consumed everything
            elif state == _STARTUP:
                pos = self._startup(stream, view, pos, end, carried, ts)
                if stream.state == _STARTUP:
                    break
            else:  # _DONE
                pos = end
        if view is buf:
            del buf[:pos]
            if pos >= carried:
                stream.buf_ts = ts
        elif pos < end:
            buf += memoryview(view)[pos:]
            stream.buf_ts = ts
        if len(buf) > self.max_buffer:  # not reached: every path bounds what it keeps
            self.parse_errors += 1
            self._lose_sync(stream, ts)

    def _startup(self, stream: _Stream, view: bytes | bytearray, pos: int, end: int, carried: int, ts: int) -> int:
        """Untyped frontend messages until the StartupMessage; returns the new position."""
        while pos < end:
            if end - pos < 8:
                return pos
            found = untyped_kind(view, pos, end)
            if found is None:
                self.parse_errors += 1
                self._lose_sync(stream, ts, clear=False)
                return pos
            kind, length = found
            if kind == UNTYPED_CANCEL:
                self.cancel_request = True
                self._stop_parsing(stream)
                return end
            if kind != UNTYPED_STARTUP:  # SSLRequest / GSSENCRequest
                self._streams[1 - stream.direction].ssl_replies += 1
                pos += length
                continue
            stop = pos + length
            if stop <= end:
                startup = parse_startup(bytes(view[pos:stop]), True, length)
            elif end - pos >= self.max_buffer:
                startup = parse_startup(bytes(view[pos : pos + self.max_buffer]), False, length)
            else:
                return pos
            if startup is None:
                self.parse_errors += 1
            else:
                self._on_startup(startup)
            if stop <= end:
                stream.state = _MESSAGES
                return stop
            stream.remaining = stop - end
            stream.state = _SKIP_BODY
            return end
        return pos

    def _on_startup(self, startup: PgStartup) -> None:
        self.startup = startup
        self._authenticating = True
        self._stitcher.identity = (startup.database, startup.user, startup.application_name)

    def _messages(
        self, stream: _Stream, view: bytes | bytearray, pos: int, end: int, carried: int, ts: int, out: list[Transaction]
    ) -> int:
        """Typed messages from ``pos``; returns where it stopped (state changes say why)."""
        side = stream.side
        frontend = side == FRONTEND
        bounds = LENGTH_BOUNDS[side]  # type: ignore[index]
        limits = _BODY_LIMITS[side]  # type: ignore[index]
        stitcher = self._stitcher
        most = self.max_buffer - HEADER
        data_row = wire.D
        max_length = wire.MAX_LENGTH
        unpack = _unpack_u32
        while True:
            if stream.ssl_replies and pos < end:
                answer = view[pos]
                if answer == _SSL_CONTINUE:
                    stream.ssl_replies -= 1
                    pos += 1
                    continue
                if answer in _SSL_ACCEPTED:
                    self.encrypted = True
                    self._stop_parsing(stream)
                    return end
                stream.ssl_replies = 0  # e.g. an ErrorResponse from a server without SSL support
            if end - pos < HEADER:
                return pos
            kind = view[pos]
            length = unpack(view, pos + 1)[0]
            size = length + 1
            stop = pos + size
            if kind == data_row and not frontend and 6 <= length <= max_length:  # the hot path: result rows
                stitcher.on_data_row(size, ts, out)
                if stop <= end:
                    pos = stop
                    continue
                stream.remaining = stop - end
                stream.state = _SKIP_BODY
                return end
            low_high = bounds.get(kind)
            if low_high is None or not low_high[0] <= length <= low_high[1]:
                self.parse_errors += 1
                self._lose_sync(stream, ts, clear=False)
                return pos + 1
            first_ts = stream.buf_ts if pos < carried else ts
            limit = limits.get(kind)
            if limit is None:
                if frontend:
                    self._frontend_header(kind, size, first_ts)
                else:
                    self._backend_header(kind, size, ts, out)
                if stop <= end:
                    pos = stop
                    continue
                stream.remaining = stop - end
                stream.state = _SKIP_BODY
                return end
            if limit == 0 or limit > most:
                limit = most
            body_start = pos + HEADER
            if stop <= end:
                body = bytes(view[body_start:stop])
                complete = True
            elif length - 4 > limit and end - body_start >= limit:
                body = bytes(view[body_start : body_start + limit])
                complete = False
            else:
                return pos  # wait for the rest of the message
            if frontend:
                self._frontend_body(kind, body, complete, size, first_ts)
            else:
                self._backend_body(kind, body, size, ts, out)
            if stream.state != _MESSAGES:
                return end if stream.state == _DONE else stop
            if complete:
                pos = stop
                continue
            pos = body_start + limit
            stream.remaining = stop - pos
            stream.state = _SKIP_BODY
            return pos

    def _frontend_header(self, kind: int, size: int, first_ts: int) -> None:
        stitcher = self._stitcher
        if kind == wire.S:
            stitcher.on_sync(size, first_ts)
        elif kind == wire.D:
            stitcher.on_group_message(size, first_ts)
        elif kind == wire.H:
            stitcher.on_flush(size)
        elif kind == wire.F:
            stitcher.on_function_call(size, first_ts)
        elif kind in (wire.COPY_DATA, wire.COPY_DONE, wire.COPY_FAIL):
            stitcher.on_copy_data(size)
        # PASSWORD (password, SASL, GSS responses) is skipped unread; Terminate needs nothing.

    def _frontend_body(self, kind: int, body: bytes, complete: bool, size: int, first_ts: int) -> None:
        stitcher = self._stitcher
        if kind == wire.Q:
            query = parse_query(body, complete)
            if query is not None:
                stitcher.on_query(query[0], query[1], size, first_ts)
                return
        elif kind == wire.P:
            parsed = parse_parse(body, complete)
            if parsed is not None:
                stitcher.on_parse(parsed[0], parsed[1], parsed[2], size, first_ts)
                return
        elif kind == wire.B:
            bind = parse_bind(body)
            if bind is not None:
                stitcher.on_bind(bind[0], bind[1], bind[2], size, first_ts)
                return
        elif kind == wire.E:
            execute = parse_execute(body)
            if execute is not None:
                stitcher.on_execute(execute[0], execute[1], size, first_ts)
                return
        elif kind == wire.C:
            close = parse_close(body)
            if close is not None:
                stitcher.on_close(close[0], close[1], size, first_ts)
                return
        self.parse_errors += 1  # the length was right but the body is not: keep going

    def _backend_header(self, kind: int, size: int, ts: int, out: list[Transaction]) -> None:
        stitcher = self._stitcher
        if self._authenticating:
            return  # BackendKeyData, NegotiateProtocolVersion...: not an answer to a request
        if kind == wire.EMPTY_QUERY:
            stitcher.on_empty_query(size, ts, out)
        elif kind == wire.PORTAL_SUSPENDED:
            stitcher.on_portal_suspended(size, ts, out)
        else:  # RowDescription, ParseComplete, notices, notifications, copy, key data...
            stitcher.on_response_bytes(size, ts, out)

    def _backend_body(self, kind: int, body: bytes, size: int, ts: int, out: list[Transaction]) -> None:
        stitcher = self._stitcher
        if kind == wire.C:
            command = parse_command_tag(body)
            if command is not None:
                stitcher.on_command_complete(command, size, ts, out)
                return
        elif kind == wire.READY:
            if parse_ready_status(body) is not None:
                if self._authenticating:  # the end of the startup phase, not an answer
                    self._authenticating = False
                else:
                    stitcher.on_ready(size, ts, out)
                return
        elif kind == wire.E:
            error = parse_error_fields(body)
            if error is not None:
                if self._authenticating:
                    self.startup_error = error
                else:
                    stitcher.on_error(error, size, ts, out)
                return
        elif kind == wire.AUTH:
            code = parse_auth_code(body)
            if code is not None:
                if len(self.auth_codes) < 8:
                    self.auth_codes += (code,)
                if not self._authenticating:
                    stitcher.on_response_bytes(size, ts, out)
                return
        elif kind == wire.S:
            status = parse_parameter_status(body)
            if status is not None:
                if status[0] == "application_name":
                    database, user, _ = stitcher.identity
                    stitcher.identity = (database, user, status[1])
                if not self._authenticating:
                    stitcher.on_response_bytes(size, ts, out)
                return
        self.parse_errors += 1
        if not self._authenticating:
            stitcher.on_response_bytes(size, ts, out)

    # -- gaps and resynchronisation ----------------------------------------------------------

    def _skip_missing(self, stream: _Stream, missing: int, ts: int, out: list[Transaction]) -> None:
        """``missing`` bytes after the fed ones were not captured."""
        state = stream.state
        if state == _SKIP_BODY:
            if missing <= stream.remaining:
                stream.remaining -= missing
                if not stream.remaining:
                    stream.state = _MESSAGES
                return
        elif state == _HUNT:
            stream.buf.clear()  # what was kept is followed by lost bytes: it cannot be completed
            return
        elif state == _MESSAGES and len(stream.buf) >= HEADER and stream.ssl_replies == 0:
            # An incomplete message is waiting: the gap may fall inside it.
            buf = stream.buf
            kind = buf[0]
            length = _unpack_u32(buf, 1)[0]
            size = length + 1
            side = stream.side
            first_ts = stream.buf_ts
            if _BODY_LIMITS[side].get(kind) is not None:  # type: ignore[index]
                body = bytes(buf[HEADER:])
                if side == FRONTEND:
                    self._frontend_body(kind, body, False, size, first_ts)
                else:
                    self._backend_body(kind, body, size, ts, out)
            have = len(buf)
            buf.clear()
            if stream.state == _DONE:
                return
            if have + missing <= size:
                stream.remaining = size - have - missing
                stream.state = _SKIP_BODY if stream.remaining else _MESSAGES
                return
        self.capture_gaps += 1
        self._lose_sync(stream, ts)

    def _lose_sync(self, stream: _Stream, ts: int, clear: bool = True) -> None:
        """Hunt for the next message boundary (and forget buffered bytes, unless the caller is
        in the middle of parsing them: ``_parse`` trims its buffer itself)."""
        if clear:
            stream.buf.clear()
        stream.remaining = 0
        stream.state = _HUNT
        if stream.side == FRONTEND:
            self._stitcher.on_frontend_gap(ts)
        elif stream.side == BACKEND:
            self._stitcher.resynced = True

    def _stop_parsing(self, current: _Stream) -> None:
        """Encrypted, or a cancel request: ignore the connection from now on."""
        for stream in self._streams:
            if stream is not current:  # ``_parse`` empties the current one's buffer itself
                stream.buf.clear()
            stream.state = _DONE
