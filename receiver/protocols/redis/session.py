"""``RedisSession``: one Redis connection, both directions, bytes in, transactions out.

Each direction has a :class:`~.parse.RespReader`.  Which direction carries the requests is
learnt from the first frame parsed in either direction (a RESP array of bulk strings naming a
known command, or an inline command, is a request; anything else is a reply); the traced process
is the CLIENT if it sent (EGRESS) the requests.

The session turns request frames into :class:`~.types.RedisRequest` (command, first key,
argument count — never argument values) and reply frames into summaries for the
:class:`~.stitch.RedisStitcher`, and follows the connection state that changes how things are
read:

* the RESP version: 3 after a successful ``HELLO 3`` or as soon as a RESP3-only type is seen;
* the database index chosen with ``SELECT`` (optimistically, undone if ``SELECT`` fails);
* ``MONITOR``: afterwards the server streams one simple string per command it runs; those lines
  are dropped (counted in :attr:`RedisSession.monitor_lines`), never paired, never kept;
* ``CLIENT REPLY OFF|SKIP|ON``: commands the server will not answer are emitted unanswered;
* ``RESET`` restores the defaults.
"""

from __future__ import annotations

import re
from typing import Any

from receiver.protocols.base import Direction, Role, Transaction
from receiver.protocols.stream import StreamSession

from .commands import (
    CONTAINERS,
    KNOWN_COMMANDS,
    SUBSCRIBE_FAMILY,
    capture_cap,
    command_name,
    decode_key,
    first_key_index,
    small_int,
)
from .frames import (
    BANG,
    COLON,
    COMMA,
    DOLLAR,
    EQUALS,
    GT,
    HASH,
    INLINE,
    LPAREN,
    MAX_TEXT,
    MINUS,
    MODE_REPLY,
    MODE_REQUEST,
    PERCENT,
    PLUS,
    STAR,
    TILDE,
    UNDERSCORE,
    Frame,
    reply_policy,
)
from .inline import unquote
from .parse import RespReader
from .stitch import CONFIRMATIONS, MESSAGES, PROTOCOL, Pending, RedisStitcher, Reply
from .types import RedisRequest, RespType

DEFAULT_MAX_BUFFER = 64 * 1024
DEFAULT_MAX_PENDING = 1024

_MODULE_COMMAND = re.compile(r"[A-Z][A-Z0-9_]*\.[A-Z][A-Z0-9_.]*")
_MONITOR_LINE = re.compile(rb"[0-9]{9,11}\.[0-9]{6} \[")
_ERROR_CODE = re.compile(r"[A-Z][A-Z0-9_-]{0,63}")
_ECHOED_ARGS = ", with args beginning with:"

# RESP type byte → (reply kind, RESP3-only)
_KINDS = {
    PLUS: (RespType.SIMPLE_STRING, False),
    MINUS: (RespType.ERROR, False),
    COLON: (RespType.INTEGER, False),
    DOLLAR: (RespType.BULK_STRING, False),
    STAR: (RespType.ARRAY, False),
    UNDERSCORE: (RespType.NULL, True),
    HASH: (RespType.BOOLEAN, True),
    COMMA: (RespType.DOUBLE, True),
    LPAREN: (RespType.BIG_NUMBER, True),
    BANG: (RespType.BLOB_ERROR, True),
    EQUALS: (RespType.VERBATIM_STRING, True),
    PERCENT: (RespType.MAP, True),
    TILDE: (RespType.SET, True),
    GT: (RespType.PUSH, True),
}
_AGGREGATE_KINDS = frozenset({RespType.ARRAY, RespType.MAP, RespType.SET, RespType.PUSH})
_NULL = RespType.NULL

_REPLY_ON = 0
_REPLY_OFF = 1
_REPLY_SKIP_NEXT = 2
# Commands whose request changes how the connection is read.
_STATEFUL = SUBSCRIBE_FAMILY | {"SELECT", "HELLO", "RESET", "MONITOR", "CLIENT REPLY"}


def split_error(text: bytes) -> tuple[str, str]:
    """``b"WRONGTYPE Operation..."`` → ``("WRONGTYPE", "Operation...")``; arguments that Redis
    echoes back in ``unknown command`` errors are cut off."""
    s = text.decode("utf-8", "replace")
    code, _, rest = s.partition(" ")
    if not _ERROR_CODE.fullmatch(code):
        code, rest = "", s
    cut = rest.find(_ECHOED_ARGS)
    if cut >= 0:
        rest = rest[:cut]
    return code, rest[:MAX_TEXT]


class RedisSession(StreamSession):
    """Redis (RESP2/RESP3) parser and stitcher for one connection (implements ``ProtocolSession``).

    ``max_buffer`` bounds the bytes carried per direction (only incomplete header or inline lines
    are ever carried); ``max_pending`` bounds requests waiting for replies (the oldest is dropped
    beyond).  Counters, all monotonic: :attr:`parse_errors`, :attr:`capture_gaps`,
    :attr:`dropped_requests`, :attr:`unmatched_replies`, :attr:`push_messages`,
    :attr:`monitor_lines`, :attr:`internal_errors`.
    """

    protocol = PROTOCOL
    internal_errors_are_parse_errors = False  # parse_errors adds them up (see the property)

    def __init__(self, max_buffer: int = DEFAULT_MAX_BUFFER, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        super().__init__()
        self.max_buffer = max(256, max_buffer)
        self.monitor_lines = 0  # MONITOR output lines dropped
        self._bad_frames = 0  # frames that are not requests/replies where one was due
        self._stitcher = RedisStitcher(max_pending, on_answered=self._answered)
        self._readers = (
            RespReader(self.max_buffer, self._on_egress_frame, self._on_egress_loss),
            RespReader(self.max_buffer, self._on_ingress_frame, self._on_ingress_loss),
        )
        for reader in self._readers:
            reader.policy = capture_cap
        self._request_dir: Direction | None = None
        self._out: list[Transaction] | None = None
        self._database: int | None = None
        self._protocol_version = 2
        self._monitoring = False
        self._reply_mode = _REPLY_ON

    # -- read-only views ---------------------------------------------------------------------

    @property
    def parse_errors(self) -> int:
        """Invalid bytes met in either direction, and frames that could not be used."""
        return self._readers[0].errors + self._readers[1].errors + self._bad_frames + self.internal_errors

    @property
    def capture_gaps(self) -> int:
        """Framing lost to truncated captures (missing bytes that could not be skipped by length)."""
        return self._readers[0].gaps + self._readers[1].gaps

    @property
    def role(self) -> Role:
        """The traced process's side, once the first frame has been classified."""
        return self._stitcher.role

    @property
    def protocol_version(self) -> int:
        return self._protocol_version

    @property
    def database(self) -> int | None:
        return self._database

    @property
    def dropped_requests(self) -> int:
        """Requests never paired: over ``max_pending``, or their replies were lost."""
        return self._stitcher.dropped_requests

    @property
    def unmatched_replies(self) -> int:
        """Replies with no request to pair with (attached mid-connection, or requests lost)."""
        return self._stitcher.unmatched_replies

    @property
    def push_messages(self) -> int:
        """Pushes received (pub/sub messages, invalidations...) — not replies, never paired."""
        return self._stitcher.push_messages

    @property
    def pending_requests(self) -> int:
        return self._stitcher.pending

    @property
    def buffered_bytes(self) -> int:
        """Bytes carried in the per-direction readers (each at most ``max_buffer``)."""
        return self._readers[0].buffered + self._readers[1].buffered

    # -- ProtocolSession ---------------------------------------------------------------------

    def _feed(self, direction: Direction, data: bytes, missing: int, ts_ns: int, out: list[Transaction]) -> None:
        self._out = out
        try:
            self._readers[direction].feed(data, ts_ns, missing)
        finally:
            self._out = None

    def _recover(self, ts_ns: int) -> None:
        for reader in self._readers:
            reader.lose_sync()

    def _close(self, ts_ns: int, out: list[Transaction]) -> None:
        """Report values cut short, emit requests still waiting."""
        self._out = out
        try:
            if self._request_dir is not None:
                # A reply cut short still answers its request (the server ran the command); a
                # request cut short never reached the server whole: it is dropped.
                self._readers[1 - self._request_dir].close(ts_ns)
                self._readers[self._request_dir].close(ts_ns, report_partial=False)
            self._stitcher.close(ts_ns, out)
        finally:
            self._out = None

    # -- reader callbacks --------------------------------------------------------------------

    def _on_egress_frame(self, frame: Frame, ts: int) -> None:
        self._on_frame(Direction.EGRESS, frame, ts)

    def _on_ingress_frame(self, frame: Frame, ts: int) -> None:
        self._on_frame(Direction.INGRESS, frame, ts)

    def _on_egress_loss(self, ts: int) -> None:
        self._on_loss(Direction.EGRESS, ts)

    def _on_ingress_loss(self, ts: int) -> None:
        self._on_loss(Direction.INGRESS, ts)

    def _on_frame(self, direction: Direction, frame: Frame, ts: int) -> None:
        if self._request_dir is None:
            is_request = _looks_like_request(frame)
            if is_request is None:
                if frame.top != STAR:  # an empty array proves nothing; anything else is garbage
                    self._bad_frames += 1
                return
            self._learn(direction, is_request)
        out = self._out if self._out is not None else []
        if direction == self._request_dir:
            self._on_request(frame, out)
        else:
            self._on_reply(frame, ts, out)

    def _on_loss(self, direction: Direction, ts: int) -> None:
        if self._request_dir is None:
            return
        if direction == self._request_dir:
            self._stitcher.request_lost()
        else:
            self._stitcher.reply_lost(ts)

    def _learn(self, direction: Direction, is_request: bool) -> None:
        request_dir = direction if is_request else Direction(1 - direction)
        self._request_dir = request_dir
        requests = self._readers[request_dir]
        replies = self._readers[1 - request_dir]
        requests.mode = MODE_REQUEST
        requests.policy = capture_cap
        replies.mode = MODE_REPLY
        replies.policy = reply_policy
        # A direction that has carried nothing yet will most likely start at a frame boundary:
        # read it in sync, so that invalid bytes there count as errors.
        for reader in self._readers:
            if not reader.seen:
                reader.hunting = False
        self._stitcher.role = Role.CLIENT if request_dir == Direction.EGRESS else Role.SERVER

    # -- requests ----------------------------------------------------------------------------

    def _on_request(self, frame: Frame, out: list[Transaction]) -> None:
        top = frame.top
        items = frame.items
        inline = top == INLINE
        if inline:
            words = [unquote(w) for w in items]
        elif top == STAR and (frame.all_bulk or frame.truncated):
            if frame.count <= 0:  # "*0" / "*-1": the server ignores it
                return
            words = items
        else:  # cannot happen in request mode; the first frame of a stream may be odd
            self._bad_frames += 1
            return
        count = frame.count
        first = words[0] if words else None
        name = command_name(first) if first is not None else None
        if name is None:
            name = "UNKNOWN"
        command = name
        key = None
        if name in KNOWN_COMMANDS:
            if name in CONTAINERS and len(words) > 1 and words[1] is not None:
                sub = command_name(words[1])
                if sub is not None and sub in CONTAINERS[name]:
                    command = name + " " + sub
            at = first_key_index(command, words, count)
            if at is not None and at < len(words) and words[at] is not None:
                key = decode_key(words[at])
        request = RedisRequest(
            command, key, count - 1, self._database, inline, frame.size, frame.truncated
        )

        if command in _STATEFUL or self._reply_mode != _REPLY_ON:
            family, expected, note = self._request_effects(name, command, words, count)
        else:
            family, expected, note = None, 1, None
        self._stitcher.request(request, frame.start_ts, family, expected, note, out)

    def _request_effects(self, name: str, command: str, words: list, count: int) -> tuple[str | None, int, Any]:
        """Connection state that follows from a request: returns (subscribe family, replies
        expected, note for :meth:`_answered`)."""
        note = None
        expected = 1
        family = None
        if name in SUBSCRIBE_FAMILY:
            family = name.lower()
            expected = count - 1 if count > 1 else -1
        elif command == "SELECT":
            db = small_int(words[1]) if len(words) > 1 else None
            if db is not None:
                note = ("SELECT", self._database)
                self._database = db
        elif command == "HELLO":
            version = small_int(words[1]) if len(words) > 1 else None
            if version is not None:
                note = ("HELLO", version)
        elif command == "RESET":
            note = ("RESET", None)
        elif command == "MONITOR":
            self._monitoring = True
        if command == "CLIENT REPLY":
            mode = bytes(words[2]).upper() if len(words) > 2 and words[2] is not None else b""
            if mode == b"ON":
                self._reply_mode = _REPLY_ON
            elif mode == b"OFF":
                self._reply_mode = _REPLY_OFF
                expected = 0
            elif mode == b"SKIP":
                if self._reply_mode == _REPLY_ON:
                    self._reply_mode = _REPLY_SKIP_NEXT
                expected = 0
        elif self._reply_mode == _REPLY_OFF:
            expected = 0
        elif self._reply_mode == _REPLY_SKIP_NEXT:
            self._reply_mode = _REPLY_ON
            expected = 0
        return family, expected, note

    def _answered(self, pending: Pending) -> None:
        """A request with a note was answered: apply what the answer means."""
        what, value = pending.note
        reply = pending.first
        failed = reply is None or reply.error_prefix is not None
        if what == "SELECT":
            if failed:
                self._database = value  # the index in effect before
        elif what == "HELLO":
            if not failed and value in (2, 3):
                self._protocol_version = value
        elif what == "RESET" and not failed:
            self._database = None
            self._protocol_version = 2
            self._monitoring = False
            self._reply_mode = _REPLY_ON
            self._stitcher.reset_subscriptions()

    # -- replies -----------------------------------------------------------------------------

    def _on_reply(self, frame: Frame, ts: int, out: list[Transaction]) -> None:
        top = frame.top
        known = _KINDS.get(top)
        if known is None:  # an inline line cannot be a reply
            self._bad_frames += 1
            return
        kind, resp3 = known
        line = frame.line
        if top == PLUS and self._monitoring and _MONITOR_LINE.match(line):
            self.monitor_lines += 1
            return
        if resp3:
            self._protocol_version = 3
        error_prefix = error_message = status = None
        element_count = None
        pubsub = None
        pubsub_count = None
        if top == PLUS:
            status = line.decode("utf-8", "replace")
        elif top == MINUS or top == BANG:
            error_prefix, error_message = split_error(line)
        elif kind in _AGGREGATE_KINDS:
            count = frame.count
            if count < 0:
                kind = _NULL
            else:
                element_count = count
                if top == GT or (top == STAR and 3 <= count <= 4):
                    pubsub, pubsub_count = _pubsub_shape(frame, top == GT)
        elif top == DOLLAR and frame.count < 0:
            kind = _NULL
        reply = Reply(
            kind,
            error_prefix,
            error_message,
            status,
            element_count,
            self._protocol_version,
            frame.size,
            frame.start_ts,
            frame.truncated,
            frame.attributes,
            pubsub,
            pubsub_count,
        )
        self._stitcher.reply(reply, ts, out)


def _pubsub_shape(frame: Frame, is_push: bool) -> tuple[str | None, int | None]:
    """The pub/sub kind of a push, or of a RESP2 array shaped like a message or confirmation."""
    items = frame.items
    first = items[0] if items else None
    if first is None or isinstance(first, int):
        return ("" if is_push else None), None
    kind = bytes(first).lower().decode("ascii", "replace")
    count = items[2] if len(items) > 2 and isinstance(items[2], int) else None
    if is_push:
        return kind, count
    if kind in CONFIRMATIONS:
        return (kind, count) if frame.count == 3 and count is not None else (None, None)
    if MESSAGES.get(kind) == frame.count and all(i is None or isinstance(i, bytes | bytearray) for i in items[1:]):
        return kind, None
    return None, None


def _looks_like_request(frame: Frame) -> bool | None:
    """Classify the first frame of a connection: request (True), reply (False), or undecided.

    A request is an inline command naming a known command, or an array of bulk strings whose
    first one names a known command or a module command (``JSON.SET``: a dotted word).  Empty
    arrays and other inline lines decide nothing.
    """
    top = frame.top
    if top == INLINE:
        name = command_name(frame.items[0]) if frame.items else None
        return True if name in KNOWN_COMMANDS else None
    if top == STAR and frame.count <= 0:
        return None
    if top == STAR and frame.all_bulk and frame.items:
        first = frame.items[0]
        name = command_name(first) if first is not None else None
        if name is not None and (name in KNOWN_COMMANDS or _MODULE_COMMAND.fullmatch(name)):
            return True
    return False
