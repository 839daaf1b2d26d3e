"""HTTP/2 framing (RFC 9113 §4, §6): frame headers, the payload fields the session needs, and
finding a frame boundary when the byte stream was joined mid-way.

Every function works on ``bytes``/``bytearray``/``memoryview`` with an explicit ``[pos, end)``
window and never raises on wire data.  A frame header is 9 bytes: a 24-bit payload length, an
8-bit type, 8 bits of flags and a reserved bit plus a 31-bit stream id.

Two levels of checking:

* :func:`header_fits` — in sync (a frame is known to start here): the rules a real peer relies
  on — stream id zero or not per type, fixed payload lengths (RST_STREAM 4, PING 8...).
  Unknown frame types are legal (extensions) and skipped by length.
* :func:`plausible_header` — hunting (no boundary known): also known type, only defined flags,
  the reserved bit clear, the length within the peer's SETTINGS_MAX_FRAME_SIZE.
"""

from __future__ import annotations

import re
import struct

from receiver.protocols.base import ParseState

from .types import FRAME_HEADER_SIZE

SUCCESS = ParseState.SUCCESS
NEEDS_MORE_DATA = ParseState.NEEDS_MORE_DATA
INVALID = ParseState.INVALID

FRAME_HEADER = struct.Struct(">IBI")  # (length << 8 | type), flags, R + stream id
_U32 = struct.Struct(">I")
_U32X2 = struct.Struct(">II")
_SETTING = struct.Struct(">HI")

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

STREAM_ID_MASK = 0x7FFFFFFF

# Per known type: (defined flags, stream id rule, fixed payload length or -1, minimum length).
# Stream id rule: 1 = must be non-zero, 0 = must be zero, -1 = either.
_RULES: tuple[tuple[int, int, int, int], ...] = (
    (END_STREAM | PADDED, 1, -1, 0),  # DATA
    (END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG, 1, -1, 0),  # HEADERS
    (0, 1, 5, 5),  # PRIORITY
    (0, 1, 4, 4),  # RST_STREAM
    (ACK, 0, -1, 0),  # SETTINGS (a multiple of 6; 0 with ACK)
    (END_HEADERS | PADDED, 1, -1, 4),  # PUSH_PROMISE
    (ACK, 0, 8, 8),  # PING
    (0, 0, -1, 8),  # GOAWAY
    (0, -1, 4, 4),  # WINDOW_UPDATE
    (END_HEADERS, 1, -1, 0),  # CONTINUATION
)

# Candidate frame starts while hunting: known type, flags within the union of defined flags,
# reserved bit clear.  A lookahead so that overlapping candidates are all found.
_CANDIDATE_ANY = re.compile(rb"(?=[\x00-\xff]{3}[\x00-\x09][\x00\x01\x04\x05\x08\x09\x0c\x0d\x20-\x2d][\x00-\x7f])")
_CANDIDATE_SMALL = re.compile(rb"(?=\x00[\x00-\xff]{2}[\x00-\x09][\x00\x01\x04\x05\x08\x09\x0c\x0d\x20-\x2d][\x00-\x7f])")


def header_fits(length: int, ftype: int, stream_id: int) -> bool:
    """Could a frame with this header occur on an in-sync connection (lenient checks)?"""
    if ftype > CONTINUATION:
        return True
    _, sid_rule, fixed, minimum = _RULES[ftype]
    if sid_rule == 1:
        if stream_id == 0:
            return False
    elif sid_rule == 0 and stream_id != 0:
        return False
    if fixed >= 0 and length != fixed:
        return False
    if length < minimum:
        return False
    return ftype != SETTINGS or length % 6 == 0


def plausible_header(length: int, ftype: int, flags: int, raw_stream_id: int, max_length: int) -> bool:
    """Does a frame header look genuine with no boundary known (strict checks)?"""
    if ftype > CONTINUATION or length > max_length or raw_stream_id > STREAM_ID_MASK:
        return False
    allowed, sid_rule, fixed, minimum = _RULES[ftype]
    if flags & ~allowed:
        return False
    if sid_rule == 1:
        if raw_stream_id == 0:
            return False
    elif sid_rule == 0 and raw_stream_id != 0:
        return False
    if (fixed >= 0 and length != fixed) or length < minimum:
        return False
    if ftype == SETTINGS:
        return length % 6 == 0 and not (flags & ACK and length)
    if ftype == HEADERS:
        extra = (1 if flags & PADDED else 0) + (5 if flags & PRIORITY_FLAG else 0)
        return length >= extra
    if ftype == DATA or ftype == PUSH_PROMISE:
        return not (flags & PADDED) or length >= 1
    return True


def _plausible_at(buf, pos: int, max_length: int) -> int:
    """Length of the plausible frame whose header is at ``pos`` (9 bytes available), or -1."""
    word, flags, raw_sid = FRAME_HEADER.unpack_from(buf, pos)
    length = word >> 8
    if plausible_header(length, word & 0xFF, flags, raw_sid, max_length):
        return length
    return -1


def find_frame_boundary(buf, pos: int, end: int, max_length: int, max_wait: int) -> tuple[ParseState, int]:
    """Hunt for the next frame boundary in ``buf[pos:end]``.

    Returns ``(SUCCESS, p)`` when a plausible frame starts at ``p`` and is followed by another
    plausible frame header or ends exactly at ``end``;
    ``(NEEDS_MORE_DATA, p)`` when the best candidate at ``p`` needs more bytes to be confirmed
    (keep ``buf[p:]``); ``(INVALID, p)`` when there is none: ``buf[p:]`` (under 9 bytes) may
    still hold the start of one.  A candidate whose confirmation would need more than
    ``max_wait`` buffered bytes is accepted as is.
    """
    pattern = _CANDIDATE_SMALL if max_length <= 0xFFFF else _CANDIDATE_ANY
    pending = -1
    limit = end - FRAME_HEADER_SIZE
    for match in pattern.finditer(buf, pos, end):
        p = match.start()
        if p > limit:
            break
        length = _plausible_at(buf, p, max_length)
        if length < 0:
            continue
        nxt = p + FRAME_HEADER_SIZE + length
        if nxt == end:
            return SUCCESS, p
        if nxt < end and end - nxt >= FRAME_HEADER_SIZE:
            if _plausible_at(buf, nxt, max_length) >= 0:
                return SUCCESS, p
            continue
        # Confirming needs the next frame header, up to nxt + 9: wait for it only if that fits.
        if nxt + FRAME_HEADER_SIZE - p > max_wait:
            if pending < 0:
                return SUCCESS, p  # too large to confirm within the buffer: take it
            continue
        if pending < 0:
            pending = p
    if pending >= 0:
        return NEEDS_MORE_DATA, pending
    return INVALID, max(pos, end - (FRAME_HEADER_SIZE - 1))


def count_chain(buf, pos: int, end: int, max_length: int, max_frames: int = 64) -> tuple[int, int]:
    """Walk plausible frames from ``pos``: ``(frames, offset)`` where ``offset`` is where the
    walk stopped (``end`` when the frames chain exactly to the end); ``frames`` is -1 when an
    implausible header was met."""
    frames = 0
    while frames < max_frames and end - pos >= FRAME_HEADER_SIZE:
        length = _plausible_at(buf, pos, max_length)
        if length < 0:
            return -1, pos
        nxt = pos + FRAME_HEADER_SIZE + length
        if nxt > end:
            return frames, pos
        frames += 1
        pos = nxt
    return frames, pos


# -- payloads ---------------------------------------------------------------------------------


def header_block_fragment(payload, ftype: int, flags: int) -> tuple[int, int, int]:
    """Where the header block fragment sits in a HEADERS/PUSH_PROMISE/CONTINUATION payload.

    Returns ``(start, stop, promised_stream_id)`` (offsets into ``payload``), or
    ``(-1, -1, 0)`` when the padding or fixed fields do not fit (a protocol error).
    """
    size = len(payload)
    start = 0
    pad = 0
    if ftype != CONTINUATION and flags & PADDED:
        if size < 1:
            return -1, -1, 0
        pad = payload[0]
        start = 1
    promised = 0
    if ftype == HEADERS:
        if flags & PRIORITY_FLAG:
            start += 5
    elif ftype == PUSH_PROMISE:
        if size < start + 4:
            return -1, -1, 0
        promised = _U32.unpack_from(payload, start)[0] & STREAM_ID_MASK
        start += 4
    stop = size - pad
    if stop < start:
        return -1, -1, 0
    return start, stop, promised


def data_padding(first_byte: int, length: int) -> int:
    """Bytes of a PADDED DATA frame that are not body (pad length byte + padding), or -1."""
    overhead = 1 + first_byte
    return overhead if overhead <= length else -1


def parse_settings(payload) -> list[tuple[int, int]]:
    """``(identifier, value)`` pairs of a SETTINGS payload (length a multiple of 6)."""
    return [_SETTING.unpack_from(payload, i) for i in range(0, len(payload) - 5, 6)]


def parse_rst_stream(payload) -> int:
    """The error code of a RST_STREAM payload (4 bytes)."""
    return _U32.unpack_from(payload, 0)[0]


def parse_goaway(payload) -> tuple[int, int]:
    """``(last_stream_id, error_code)`` of a GOAWAY payload (at least 8 bytes)."""
    last, code = _U32X2.unpack_from(payload, 0)
    return last & STREAM_ID_MASK, code
