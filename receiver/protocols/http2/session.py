"""``Http2Session``: one HTTP/2 connection (h2c, gRPC), both directions, bytes in,
transactions out.

Each direction is a :class:`_Side` with its own buffer, HPACK decoder and state:

* ``START`` — nothing parsed yet: the client's connection preface, or a frame header if it
  checks out strictly, or else (the capture joined mid-connection) ``HUNT``.
* ``FRAMES`` — in sync: a frame header starts right here; a header that cannot be one is a
  parse error and sends the side to ``HUNT``.
* ``PAYLOAD`` — skipping the rest of a frame's payload by its length, unbuffered (DATA bodies,
  frames too large to buffer, what follows the fixed fields of GOAWAY...).
* ``HUNT`` — looking for a frame boundary (:func:`~.parse.find_frame_boundary`).  Entered at a
  mid-connection attach (not an error) or after lost sync (counted once, when sync is lost).
* ``CLOSED`` — after :meth:`Http2Session.close`: bytes are ignored.

Only what must be seen whole is buffered: an incomplete frame header, the payload of a
HEADERS/CONTINUATION/PUSH_PROMISE/SETTINGS frame, the 4 or 8 bytes of RST_STREAM/GOAWAY, the
pad length of a padded DATA frame, and a header block across its CONTINUATION frames — never
more than ``max_buffer`` bytes per direction; frames that would need more are skipped by
length (a header block then counts as undecodable).

A capture gap (``total_len > len(data)``) inside a frame's payload is skipped by the frame's
length and keeps sync (a header block cut by it is lost); a gap over a frame header loses sync.
Losing a header block, or sync, resets that direction's HPACK table (see
:mod:`~.headers`); streams keep pairing by stream id throughout.
"""

from __future__ import annotations

from collections import deque

from receiver.protocols.base import Direction, ParseState, Role, Transaction
from receiver.protocols.stream import ByteStream, StreamSession

from .headers import (
    DEFAULT_MAX_HEADER_LIST_SIZE,
    UNKNOWN_BLOCK,
    BlockKind,
    HeaderBlockDecoder,
    guess_block_kind,
)
from .parse import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    FRAME_HEADER,
    GOAWAY,
    HEADERS,
    PADDED,
    PING,
    PRIORITY,
    PUSH_PROMISE,
    RST_STREAM,
    SETTINGS,
    STREAM_ID_MASK,
    WINDOW_UPDATE,
    data_padding,
    find_frame_boundary,
    header_block_fragment,
    header_fits,
    parse_goaway,
    parse_rst_stream,
    parse_settings,
    plausible_header,
)
from .stitch import EVIDENCE_KERNEL, Http2Stitcher
from .types import (
    DEFAULT_MAX_FRAME_SIZE,
    FRAME_HEADER_SIZE,
    MAX_FRAME_SIZE_LIMIT,
    PREFACE,
    PROTOCOL,
    Setting,
)

DEFAULT_MAX_BUFFER = 64 * 1024
DEFAULT_MAX_STREAMS = 256
MIN_BUFFER = 256
MAX_PENDING_SETTINGS = 8  # SETTINGS frames awaiting their ACK, kept per direction

_START = 0
_FRAMES = 1
_PAYLOAD = 2
_HUNT = 3
_CLOSED = 4

# Frame types the session skips without looking: PRIORITY, PING, WINDOW_UPDATE, extensions.
_IGNORED_TYPE = tuple(t in (PRIORITY, PING, WINDOW_UPDATE) or t > CONTINUATION for t in range(256))

_SUCCESS = ParseState.SUCCESS
_NEEDS_MORE_DATA = ParseState.NEEDS_MORE_DATA
_PREFACE_LEN = len(PREFACE)
_HEADER = FRAME_HEADER_SIZE
_ACK = 0x1


class _Side(ByteStream):
    """Parsing state of one direction of the connection."""

    __slots__ = (
        "state", "skip", "frame", "decoder", "max_frame_size",
        "settings", "pending_settings", "block", "block_active", "block_sid", "block_end_stream",
        "block_ts", "block_wire", "block_promised",
    )

    def __init__(self, direction: Direction, max_header_list_size: int) -> None:
        super().__init__(direction)
        self.state = _START
        self.skip = 0  # payload bytes still to skip (PAYLOAD)
        self.frame: tuple | None = None  # the frame being skipped, finished when skip reaches 0
        self.decoder = HeaderBlockDecoder(max_header_list_size)
        self.max_frame_size = DEFAULT_MAX_FRAME_SIZE  # the largest frame this side may send
        self.settings: dict[int, int] = {}  # what this side announced (latest values)
        self.pending_settings: deque[list[tuple[int, int]]] = deque(maxlen=MAX_PENDING_SETTINGS)
        # The header block being assembled (HEADERS/PUSH_PROMISE then CONTINUATION frames).
        self.block: bytearray | None = None  # None while active: the block is lost
        self.block_active = False
        self.block_sid = 0
        self.block_end_stream = False
        self.block_ts = 0
        self.block_wire = 0
        self.block_promised = 0


class Http2Session(StreamSession):
    """HTTP/2 parser and stitcher for one connection (implements ``ProtocolSession``).

    ``max_buffer`` bounds the bytes buffered per direction (frame headers, header blocks);
    ``max_streams`` bounds open streams (the oldest is dropped beyond, counted);
    ``kernel_role`` is the traced socket's side as the kernel saw it, a weak hint for which
    side is the client when the connection preface was not captured.

    Counters, all monotonic: :attr:`parse_errors` (frames that could not be parsed, lost sync,
    header blocks that did not decode), :attr:`hpack_errors` (the last kind alone),
    :attr:`lost_header_blocks` (blocks not decoded because they were cut by a capture gap or
    too large to buffer), :attr:`oversized_frames` (frames over the peer's
    SETTINGS_MAX_FRAME_SIZE; skipped by length), :attr:`resyncs` (frame boundaries found by
    hunting), :attr:`dropped_streams`, :attr:`late_frames`, :attr:`internal_errors`.
    """

    protocol = PROTOCOL

    def __init__(
        self,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        max_streams: int = DEFAULT_MAX_STREAMS,
        kernel_role: Role = Role.UNKNOWN,
        max_header_list_size: int = DEFAULT_MAX_HEADER_LIST_SIZE,
    ) -> None:
        super().__init__()
        self.max_buffer = max(MIN_BUFFER, max_buffer)
        self.lost_header_blocks = 0
        self.oversized_frames = 0
        self.resyncs = 0
        self._stitcher = Http2Stitcher(max_streams)
        self._sides = (_Side(Direction.EGRESS, max_header_list_size), _Side(Direction.INGRESS, max_header_list_size))
        if kernel_role == Role.CLIENT:
            self._stitcher.learn_client(Direction.EGRESS, EVIDENCE_KERNEL)
        elif kernel_role == Role.SERVER:
            self._stitcher.learn_client(Direction.INGRESS, EVIDENCE_KERNEL)

    # -- read-only views ---------------------------------------------------------------------

    @property
    def role(self) -> Role:
        """The traced process's side, once known."""
        return self._stitcher.role

    @property
    def hpack_errors(self) -> int:
        """Header blocks that failed to decode (e.g. they refer to table entries never seen)."""
        return self._sides[0].decoder.failures + self._sides[1].decoder.failures

    @property
    def dropped_streams(self) -> int:
        return self._stitcher.dropped_streams

    @property
    def late_frames(self) -> int:
        return self._stitcher.late_frames

    @property
    def open_streams(self) -> int:
        return self._stitcher.open_streams

    @property
    def last_goaway(self):
        return self._stitcher.last_goaway

    @property
    def buffered_bytes(self) -> int:
        """Bytes held per direction in buffers and header blocks (each side at most ``max_buffer``)."""
        return sum(len(s.buf) + (len(s.block) if s.block is not None else 0) for s in self._sides)

    def settings(self, direction: Direction) -> dict[int, int]:
        """The SETTINGS the sender of ``direction`` announced (identifier → value)."""
        return dict(self._sides[direction].settings)

    # -- ProtocolSession ---------------------------------------------------------------------

    def _feed(self, direction: Direction, data: bytes, missing: int, ts_ns: int, out: list[Transaction]) -> None:
        side = self._sides[direction]
        if data:
            self._consume(side, data, ts_ns, out)
        if missing:
            self._skip_missing(side, missing, ts_ns, out)

    def _recover(self, ts_ns: int) -> None:
        for side in self._sides:
            side.buf = bytearray()
            self._drop_block(side)
            side.frame = None
            side.skip = 0
            side.state = _HUNT
            side.decoder.reset()

    def _close(self, ts_ns: int, out: list[Transaction]) -> None:
        """Every open stream becomes a transaction."""
        for side in self._sides:
            side.buf = bytearray()
            side.block = None
            side.block_active = False
            side.frame = None
            side.state = _CLOSED
        self._stitcher.close(ts_ns, out)

    # -- the byte stream ---------------------------------------------------------------------

    def _consume(self, side: _Side, data: bytes, ts: int, out: list[Transaction]) -> None:
        buf = side.buf
        carried = len(buf)
        if carried:
            buf += data
            view: bytes | bytearray = buf
        elif isinstance(data, (bytes, bytearray)):
            view = data
        else:
            view = bytes(data)
        end = len(view)
        pos = self._parse(side, view, end, carried, ts, out)
        if side.buf is not buf:  # replaced (closed, or reset by the caller): nothing to keep
            return
        if view is buf:
            if pos:
                del buf[:pos]
            if pos >= carried:
                side.buf_ts = ts
        elif pos < end:
            buf += view[pos:]
            side.buf_ts = ts

    def _parse(self, side: _Side, view, end: int, carried: int, ts: int, out: list[Transaction]) -> int:
        """Parse frames from ``view[0:end]``; return how far it was consumed."""
        pos = 0
        unpack = FRAME_HEADER.unpack_from
        while pos < end:
            state = side.state
            if state == _PAYLOAD:
                skip = side.skip
                if end - pos < skip:
                    side.skip = skip - (end - pos)
                    return end
                pos += skip
                side.skip = 0
                side.state = _FRAMES
                self._frame_done(side, ts, False, out)
            elif state == _FRAMES:
                if end - pos < _HEADER:
                    return pos
                word, flags, stream_id = unpack(view, pos)
                length = word >> 8
                ftype = word & 0xFF
                stream_id &= STREAM_ID_MASK
                if not header_fits(length, ftype, stream_id):
                    self._lose_sync(side, ts, out)
                    continue
                if _IGNORED_TYPE[ftype] and not side.block_active:  # PING, WINDOW_UPDATE...: skip
                    if length > side.max_frame_size:
                        self.oversized_frames += 1
                    pos += _HEADER
                    if end - pos < length:
                        side.skip = length - (end - pos)
                        side.frame = None
                        side.state = _PAYLOAD
                        return end
                    pos += length
                    continue
                need = self._needed(side, ftype, flags, length)
                if end - pos < _HEADER + need:
                    return pos
                frame_ts = side.buf_ts if pos < carried else ts
                start = pos + _HEADER
                payload = view[start : start + need] if need else b""
                self._on_frame(side, ftype, flags, stream_id, length, need, payload, frame_ts, ts, out)
                pos = start + need
                if need == length:
                    self._frame_done(side, ts, False, out)
                else:
                    side.skip = length - need
                    side.state = _PAYLOAD
            elif state == _HUNT:
                result, p = find_frame_boundary(view, pos, end, side.max_frame_size, self.max_buffer)
                if result is _SUCCESS:
                    self.resyncs += 1
                    side.state = _FRAMES
                    pos = p
                else:
                    return p
            elif state == _START:
                n = end - pos
                if n > _PREFACE_LEN:
                    n = _PREFACE_LEN
                if view[pos : pos + n] == PREFACE[:n]:
                    if n < _PREFACE_LEN:
                        return pos
                    pos += _PREFACE_LEN
                    side.state = _FRAMES
                    self._stitcher.connection_start(side.direction)
                    continue
                if end - pos < _HEADER:
                    return pos
                word, flags, raw_id = unpack(view, pos)
                if plausible_header(word >> 8, word & 0xFF, flags, raw_id, side.max_frame_size):
                    side.state = _FRAMES
                else:
                    side.state = _HUNT
            else:  # _CLOSED
                return end
        return pos

    def _needed(self, side: _Side, ftype: int, flags: int, length: int) -> int:
        """Payload bytes of a frame to see before acting on it (the rest is skipped by length).

        A frame needing more than the buffer can hold gets 0: its contents are lost.
        """
        if ftype == DATA:
            return 1 if flags & PADDED and length else 0
        if ftype == HEADERS or ftype == CONTINUATION or ftype == PUSH_PROMISE:
            room = self.max_buffer - _HEADER
            if ftype == CONTINUATION and side.block is None:
                return 0  # the block is lost already (or there is none): nothing to keep
            if side.block is not None:
                # Held until this frame is handled (continued, or replaced by a misplaced
                # HEADERS/PUSH_PROMISE): both count against the direction's bound.
                room -= len(side.block)
            return length if length <= room else 0
        if ftype == SETTINGS:
            return length if length <= self.max_buffer - _HEADER else 0
        if ftype == RST_STREAM:
            return 4
        if ftype == GOAWAY:
            return 8
        return 0  # PRIORITY, PING, WINDOW_UPDATE, unknown types: ignored

    # -- frames ----------------------------------------------------------------------------

    def _on_frame(
        self, side: _Side, ftype: int, flags: int, stream_id: int, length: int, need: int, payload, frame_ts: int,
        ts: int, out: list[Transaction],
    ) -> None:
        """A frame header and the ``need`` payload bytes it needs were read.

        ``need < length`` for a frame whose payload needed to be whole means its contents are
        lost (too large to buffer, or cut by a capture gap).  What the frame does once it has
        fully gone by is left in ``side.frame`` for :meth:`_frame_done`.
        """
        if length > side.max_frame_size:
            self.oversized_frames += 1
        if side.block_active and (ftype != CONTINUATION or stream_id != side.block_sid):
            self.parse_errors += 1  # a header block must be followed by its CONTINUATION frames
            self._finish_block(side, lost=True, ts=ts, out=out)
        if ftype == DATA:
            body = length
            truncated = False
            if flags & PADDED:
                overhead = data_padding(payload[0], length) if need else -1
                if overhead < 0:
                    if need:
                        self.parse_errors += 1  # padding longer than the frame
                    truncated = True
                    overhead = 1 if length else 0
                body = length - overhead
            side.frame = (DATA, flags, stream_id, body, _HEADER + length, frame_ts, truncated)
        elif ftype == HEADERS or ftype == PUSH_PROMISE:
            side.block_active = True
            side.block_sid = stream_id
            side.block_end_stream = ftype == HEADERS and bool(flags & END_STREAM)
            side.block_ts = frame_ts
            side.block_wire = _HEADER + length if ftype == HEADERS else 0
            side.block_promised = -1 if ftype == PUSH_PROMISE else 0
            side.block = None
            if need == length:
                start, stop, promised = header_block_fragment(payload, ftype, flags)
                if start < 0:
                    self.parse_errors += 1  # padding or fixed fields larger than the frame
                else:
                    side.block = bytearray(payload[start:stop])
                    if ftype == PUSH_PROMISE:
                        side.block_promised = promised
            else:
                self.lost_header_blocks += 1
            side.frame = (ftype, flags, stream_id)
        elif ftype == CONTINUATION:
            if not side.block_active:
                self.parse_errors += 1  # no header block to continue
                side.frame = None
                return
            if side.block_promised == 0:
                side.block_wire += _HEADER + length
            if side.block is not None:
                if need == length:
                    side.block += payload
                else:
                    self.lost_header_blocks += 1
                    side.block = None
            side.frame = (CONTINUATION, flags, stream_id)
        elif ftype == SETTINGS:
            side.frame = None
            if flags & _ACK:
                self._settings_acked(side)
            elif need == length:
                values = parse_settings(payload)
                for ident, value in values:
                    if ident in side.settings or len(side.settings) < 16:
                        side.settings[ident] = value
                side.pending_settings.append(values)
        elif ftype == RST_STREAM:
            side.frame = (RST_STREAM, parse_rst_stream(payload), stream_id) if need else None
        elif ftype == GOAWAY:
            side.frame = (GOAWAY,) + parse_goaway(payload) if need else None
        else:
            side.frame = None

    def _frame_done(self, side: _Side, ts: int, truncated: bool, out: list[Transaction]) -> None:
        """The frame in ``side.frame`` has fully gone by (its last byte came with feed ``ts``)."""
        frame = side.frame
        if frame is None:
            return
        side.frame = None
        ftype = frame[0]
        stitcher = self._stitcher
        if ftype == DATA:
            _, flags, stream_id, body, wire, frame_ts, cut = frame
            stitcher.on_data(side.direction, stream_id, body, wire, bool(flags & END_STREAM), frame_ts, ts, cut or truncated, out)
        elif ftype == HEADERS or ftype == PUSH_PROMISE or ftype == CONTINUATION:
            if frame[1] & END_HEADERS and side.block_active:
                self._finish_block(side, lost=truncated, ts=ts, out=out)
        elif ftype == RST_STREAM:
            stitcher.on_rst_stream(side.direction, frame[2], frame[1], ts, out)
        elif ftype == GOAWAY:
            stitcher.on_goaway(side.direction, frame[1], frame[2], ts, out)

    def _finish_block(self, side: _Side, lost: bool, ts: int, out: list[Transaction]) -> None:
        """The header block being assembled is complete (or ``lost``): decode it, hand it on."""
        block = side.block
        side.block = None
        side.block_active = False
        decoder = side.decoder
        guess = BlockKind.UNKNOWN
        if block is None or lost:
            decoder.reset()  # the block may have changed the dynamic table
            decoded = UNKNOWN_BLOCK
        else:
            data = bytes(block)
            decoded = decoder.decode(data)
            if decoded is None:
                self.parse_errors += 1
                decoded = UNKNOWN_BLOCK
                guess = guess_block_kind(data)
        promised = side.block_promised
        if promised:
            if promised > 0:
                self._stitcher.on_push_promise(side.direction, promised, decoded, side.block_ts, out)
            return
        self._stitcher.on_header_block(
            side.direction, side.block_sid, decoded, guess, side.block_end_stream, side.block_wire, side.block_ts, ts, out
        )

    def _drop_block(self, side: _Side) -> None:
        if side.block_active:
            side.block_active = False
            side.block = None
            side.decoder.reset()

    def _settings_acked(self, side: _Side) -> None:
        """``side`` acknowledged the other side's oldest unacknowledged SETTINGS: from now on
        ``side`` encodes header blocks and sizes frames under those settings."""
        peer = self._sides[1 - side.direction]
        if not peer.pending_settings:
            return
        for ident, value in peer.pending_settings.popleft():
            if ident == Setting.HEADER_TABLE_SIZE:
                side.decoder.limit_table_size(value)
            elif ident == Setting.MAX_FRAME_SIZE and DEFAULT_MAX_FRAME_SIZE <= value <= MAX_FRAME_SIZE_LIMIT:
                side.max_frame_size = value

    # -- losing and finding sync -------------------------------------------------------------

    def _lose_sync(self, side: _Side, ts: int, out: list[Transaction]) -> None:
        """The bytes at hand cannot be a frame: count it, forget partial state, hunt.

        Whatever was lost may have held header blocks, so the HPACK table is reset; a header
        block being assembled is handed on as lost, so its stream knows its headers are unknown.
        """
        self.parse_errors += 1
        side.state = _HUNT
        side.frame = None
        side.skip = 0
        if side.block_active:
            if side.block is not None:
                self.lost_header_blocks += 1
            self._finish_block(side, lost=True, ts=ts, out=out)
        side.decoder.reset()
        self._stitcher.lose_sync(side.direction)

    def _skip_missing(self, side: _Side, missing: int, ts: int, out: list[Transaction]) -> None:
        """``missing`` bytes following the fed ones were not captured."""
        state = side.state
        if state == _PAYLOAD:
            if missing < side.skip:
                side.skip -= missing
                return
            missing -= side.skip
            side.skip = 0
            side.state = _FRAMES
            self._frame_done(side, ts, False, out)
            if not missing:
                return
            state = _FRAMES
        if state == _FRAMES:
            buf = side.buf
            have = len(buf)
            if have >= _HEADER:
                # A frame whose needed payload was incomplete: the gap falls inside it.
                word, flags, stream_id = FRAME_HEADER.unpack_from(buf, 0)
                length = word >> 8
                total = _HEADER + length
                frame_ts = side.buf_ts
                side.buf = bytearray()
                self._on_frame(side, word & 0xFF, flags, stream_id & STREAM_ID_MASK, length, 0, b"", frame_ts, ts, out)
                if have + missing <= total:
                    side.skip = total - have - missing
                    if side.skip:
                        side.state = _PAYLOAD
                    else:
                        self._frame_done(side, ts, True, out)
                    return
                self._frame_done(side, ts, True, out)
            else:
                side.buf = bytearray()
            self._lose_sync(side, ts, out)  # a frame header was not captured
        elif state == _HUNT or state == _START:
            side.buf = bytearray()  # what was buffered cannot chain across the gap
            side.state = _HUNT
