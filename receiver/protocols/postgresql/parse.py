"""PostgreSQL protocol 3.0 framing: message boundaries, bodies, and structural validation.

Every message after the startup phase is ``type:u8 length:u32be body`` where ``length`` counts
itself but not the type byte.  Startup-phase messages from the frontend have no type byte:
``length:u32be code:u32be ...`` (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest).

The functions here are pure: they look at ``bytes``/``bytearray`` and return values or
``None``, never raise on wire data, and keep no state.  The session (``session.py``) owns the
buffers and the state machine; the stitcher (``stitch.py``) owns the pairing.

Structural validators (:func:`valid_message`) check a complete body against its layout (every
length field adds up, strings are NUL-terminated where they must be); they are what makes
detection and resynchronisation in the middle of a stream trustworthy.
"""

from __future__ import annotations

import re
import struct

from receiver.protocols.base import ParseState

from .types import PgCommand, PgError, PgStartup

FRONTEND = 0
BACKEND = 1

PROTOCOL_3 = 3  # the major version we speak
STARTUP_CODE_MAJOR3 = 3 << 16  # 196608 = 3.0; 3.2 is 196610
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102
MAX_STARTUP_LENGTH = 10000  # the server's own limit (MAX_STARTUP_PACKET_LENGTH)
MAX_LENGTH = 1 << 30  # no message is larger than 1 GiB
HEADER = 5  # type byte + length

U32 = struct.Struct(">I")
I32 = struct.Struct(">i")
U16 = struct.Struct(">H")
_unpack_u32 = U32.unpack_from
_unpack_i32 = I32.unpack_from
_unpack_u16 = U16.unpack_from

# Message types (as ints, the way indexing bytes yields them).
Q, P, B, E, D, C, S, H, X, F = (ord(c) for c in "QPBEDCSHXF")
PASSWORD, COPY_DATA, COPY_DONE, COPY_FAIL = (ord(c) for c in "pdcf")
AUTH, KEY_DATA, READY, ROW_DESC, EMPTY_QUERY, NOTICE, NOTIFICATION = (ord(c) for c in "RKZTINA")
PARSE_COMPLETE, BIND_COMPLETE, CLOSE_COMPLETE = (ord(c) for c in "123")
NO_DATA, PARAM_DESC, PORTAL_SUSPENDED = (ord(c) for c in "nts")
COPY_IN, COPY_BOTH, FUNCTION_RESULT, NEGOTIATE = (ord(c) for c in "GWVv")
# Backend reuse of frontend letters: 'S' ParameterStatus, 'D' DataRow, 'C' CommandComplete,
# 'E' ErrorResponse, 'H' CopyOutResponse.

FRONTEND_TYPES = b"QPBEDCSHXFpdcf"
BACKEND_TYPES = b"RKSZTDCIENA123ntsGHWdcVv"
# Types that may *start* a resynchronised stream: their layout can be checked.  CopyData,
# PasswordMessage and CopyFail carry arbitrary bytes, so they only count inside a chain.
FRONTEND_ANCHORS = b"QPBEDCSHXF"
BACKEND_ANCHORS = b"RKSZTDCIENA123ntsGHWVv"
TYPES = (FRONTEND_TYPES, BACKEND_TYPES)

# (min, max) of the length field per type, for each side.
_ANY = (4, MAX_LENGTH)
LENGTH_BOUNDS: tuple[dict[int, tuple[int, int]], dict[int, tuple[int, int]]] = (
    {
        Q: (5, MAX_LENGTH), P: (8, MAX_LENGTH), B: (12, MAX_LENGTH), E: (9, 4 + MAX_STARTUP_LENGTH),
        D: (6, 4 + MAX_STARTUP_LENGTH), C: (6, 4 + MAX_STARTUP_LENGTH), S: (4, 4), H: (4, 4), X: (4, 4),
        F: (14, MAX_LENGTH), PASSWORD: _ANY, COPY_DATA: _ANY, COPY_DONE: (4, 4), COPY_FAIL: (5, MAX_LENGTH),
    },
    {
        AUTH: (8, MAX_LENGTH), KEY_DATA: (8, 4 + 4 + 256), S: (6, MAX_LENGTH), READY: (5, 5),
        ROW_DESC: (6, MAX_LENGTH), D: (6, MAX_LENGTH), C: (5, MAX_LENGTH), EMPTY_QUERY: (4, 4),
        E: (5, MAX_LENGTH), NOTICE: (5, MAX_LENGTH), NOTIFICATION: (10, MAX_LENGTH),
        PARSE_COMPLETE: (4, 4), BIND_COMPLETE: (4, 4), CLOSE_COMPLETE: (4, 4), NO_DATA: (4, 4),
        PARAM_DESC: (6, MAX_LENGTH), PORTAL_SUSPENDED: (4, 4), COPY_IN: (7, MAX_LENGTH), H: (7, MAX_LENGTH),
        COPY_BOTH: (7, MAX_LENGTH), COPY_DATA: _ANY, COPY_DONE: (4, 4), FUNCTION_RESULT: (8, MAX_LENGTH),
        NEGOTIATE: (12, MAX_LENGTH),
    },
)

_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TAG = re.compile(rb"[A-Z][A-Z0-9 ]{0,62}")
_SQLSTATE = re.compile(rb"[0-9A-Z]{5}")
# Field codes PostgreSQL sends in ErrorResponse/NoticeResponse.
_ERROR_FIELD_CODES = frozenset(b"SVCMDHPpqWstcdnFLR")
_AUTH_LENGTHS = {0: 8, 2: 8, 3: 8, 5: 12, 6: 8, 7: 8, 9: 8}  # codes with a fixed length
_AUTH_CODES = frozenset((0, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12))


def text(raw: bytes | bytearray) -> str:
    """Wire text (the client encoding, UTF-8 in practice) as ``str``; never fails."""
    return raw.decode("utf-8", "replace")


def cstring(body: bytes, start: int) -> tuple[bytes, int] | None:
    """The NUL-terminated string at ``start`` and the index after its NUL, or ``None``."""
    end = body.find(b"\x00", start)
    if end < 0:
        return None
    return body[start:end], end + 1


# -- startup phase ---------------------------------------------------------------------------

UNTYPED_SSL = "ssl"
UNTYPED_GSSENC = "gssenc"
UNTYPED_CANCEL = "cancel"
UNTYPED_STARTUP = "startup"


def untyped_kind(view: bytes | bytearray, pos: int, end: int) -> tuple[str, int] | None:
    """What the untyped message at ``pos`` is (kind, length), from its first 8 bytes."""
    if end - pos < 8:
        return None
    length, code = _unpack_u32(view, pos)[0], _unpack_u32(view, pos + 4)[0]
    if code == SSL_REQUEST_CODE and length == 8:
        return UNTYPED_SSL, length
    if code == GSSENC_REQUEST_CODE and length == 8:
        return UNTYPED_GSSENC, length
    if code == CANCEL_REQUEST_CODE and 16 <= length <= 8 + 4 + 256:
        return UNTYPED_CANCEL, length
    if code >> 16 == PROTOCOL_3 and (code & 0xFFFF) < 0x100 and 9 <= length <= MAX_STARTUP_LENGTH:
        return UNTYPED_STARTUP, length
    return None


def startup_parameters(body: bytes, complete: bool) -> list[tuple[bytes, bytes]] | None:
    """The name/value pairs of a StartupMessage body (after the version), or ``None``.

    A complete body is ``(name NUL value NUL)* NUL``; a prefix (``complete=False``) yields the
    pairs it holds in full.
    """
    if complete:
        if not body.endswith(b"\x00"):
            return None
        parts = body[:-1].split(b"\x00")
        if parts[-1] != b"" or len(parts) % 2 != 1:
            return None
        parts.pop()
    else:
        parts = body.split(b"\x00")
        parts.pop()  # the unterminated tail
        if len(parts) % 2:
            parts.pop()
    pairs = list(zip(parts[0::2], parts[1::2]))
    for name, _ in pairs:
        if not name or _CONTROL.search(name):
            return None
    return pairs


def parse_startup(message: bytes, complete: bool, wire_size: int) -> PgStartup | None:
    """A StartupMessage (``message`` from its length field on) → :class:`PgStartup`."""
    if len(message) < 8:
        return None
    code = _unpack_u32(message, 4)[0]
    pairs = startup_parameters(message[8:], complete)
    if pairs is None:
        return None
    params = {name: value for name, value in pairs if name in (b"user", b"database", b"application_name")}
    user = text(params[b"user"]) if b"user" in params else None
    database = text(params[b"database"]) if params.get(b"database") else user  # the server's default
    app = text(params[b"application_name"]) if b"application_name" in params else None
    return PgStartup((code >> 16, code & 0xFFFF), user, database, app, wire_size)


# -- frontend bodies -------------------------------------------------------------------------


def parse_query(body: bytes, complete: bool) -> tuple[str, bool] | None:
    """Query body → (text, truncated)."""
    if complete:
        if not body.endswith(b"\x00"):
            return None
        return text(body[:-1]), False
    nul = body.find(b"\x00")
    if nul >= 0:
        return text(body[:nul]), False
    return text(body), True


def parse_parse(body: bytes, complete: bool) -> tuple[str, str, bool] | None:
    """Parse body → (statement name, query text, truncated)."""
    name = cstring(body, 0)
    if name is None:
        return None
    raw_name, i = name
    query = cstring(body, i)
    if query is None:
        if complete:
            return None
        return text(raw_name), text(body[i:]), True
    return text(raw_name), text(query[0]), False


def parse_bind(body: bytes) -> tuple[str, str, int | None] | None:
    """Bind body (or a prefix of it) → (portal, statement, parameter count or ``None``)."""
    portal = cstring(body, 0)
    if portal is None:
        return None
    statement = cstring(body, portal[1])
    if statement is None:
        return None
    i = statement[1]
    count: int | None = None
    if i + 2 <= len(body):
        n_formats = _unpack_u16(body, i)[0]
        j = i + 2 + 2 * n_formats
        if j + 2 <= len(body):
            count = _unpack_u16(body, j)[0]
    return text(portal[0]), text(statement[0]), count


def parse_execute(body: bytes) -> tuple[str, int] | None:
    """Execute body → (portal, row limit)."""
    portal = cstring(body, 0)
    if portal is None or portal[1] + 4 != len(body):
        return None
    return text(portal[0]), _unpack_u32(body, portal[1])[0]


def parse_close(body: bytes) -> tuple[int, str] | None:
    """Close (or Describe) body → (b'S' statement | b'P' portal, name)."""
    if len(body) < 2 or body[0] not in b"SP" or body[-1] != 0:
        return None
    return body[0], text(body[1:-1])


# -- backend bodies --------------------------------------------------------------------------


def parse_command_tag(body: bytes) -> PgCommand | None:
    """CommandComplete body → :class:`PgCommand` (``"INSERT 0 3"`` → INSERT, 3 rows)."""
    nul = body.find(b"\x00")
    tag = text(body[:nul] if nul >= 0 else body)
    parts = tag.split()
    if not parts:
        return PgCommand(tag, tag, None)
    n = len(parts)
    while n > 1 and parts[n - 1].isdigit():
        n -= 1
    rows = int(parts[-1]) if n < len(parts) else None
    return PgCommand(tag, " ".join(parts[:n]), rows)


def parse_error_fields(body: bytes) -> PgError | None:
    """ErrorResponse body (or a prefix) → :class:`PgError`; needs at least the SQLSTATE."""
    fields: dict[int, bytes] = {}
    i = 0
    size = len(body)
    while i < size and body[i] != 0 and len(fields) < 32:
        code = body[i]
        end = body.find(b"\x00", i + 1)
        if end < 0:
            fields.setdefault(code, body[i + 1 :])  # a prefix: the field was cut short
            break
        if code in (ord("S"), ord("V"), ord("C"), ord("M")):
            fields.setdefault(code, body[i + 1 : end])
        i = end + 1
    sqlstate = fields.get(ord("C"))
    if sqlstate is None:
        return None
    severity = fields.get(ord("V")) or fields.get(ord("S")) or b""
    return PgError(text(severity), text(sqlstate), text(fields.get(ord("M"), b"")))


def parse_parameter_status(body: bytes) -> tuple[str, str] | None:
    name = cstring(body, 0)
    if name is None:
        return None
    value = cstring(body, name[1])
    return text(name[0]), text(value[0] if value is not None else body[name[1] :])


def parse_auth_code(body: bytes) -> int | None:
    return _unpack_u32(body, 0)[0] if len(body) >= 4 else None


def parse_ready_status(body: bytes) -> str | None:
    return chr(body[0]) if len(body) == 1 and body[0] in b"ITE" else None


# -- structural validation (detection, resynchronisation) -------------------------------------


def _valid_cstrings(body: bytes, count: int, start: int = 0) -> int:
    """Index after ``count`` NUL-terminated strings from ``start``, or -1."""
    i = start
    for _ in range(count):
        j = body.find(b"\x00", i)
        if j < 0:
            return -1
        i = j + 1
    return i


def _printable(raw: bytes) -> bool:
    return _CONTROL.search(raw) is None


def _valid_fields(body: bytes) -> bool:
    """ErrorResponse/NoticeResponse: (code cstring)* NUL, codes from the documented set."""
    i = 0
    size = len(body)
    seen = 0
    while i < size - 1:
        if body[i] not in _ERROR_FIELD_CODES:
            return False
        j = body.find(b"\x00", i + 1)
        if j < 0:
            return False
        i = j + 1
        seen += 1
        if seen > 64:
            return False
    return i == size - 1 and body[i] == 0 and seen >= 1


def _valid_data_row(body: bytes) -> bool:
    size = len(body)
    if size < 2:
        return False
    n = _unpack_u16(body, 0)[0]
    i = 2
    for _ in range(n):
        if i + 4 > size:
            return False
        col = _unpack_i32(body, i)[0]
        i += 4
        if col > 0:
            i += col
        elif col < -1:
            return False
    return i == size


def _valid_row_description(body: bytes) -> bool:
    size = len(body)
    if size < 2:
        return False
    n = _unpack_u16(body, 0)[0]
    i = 2
    for _ in range(n):
        j = body.find(b"\x00", i)
        if j < 0:
            return False
        i = j + 1 + 18
        if i > size:
            return False
    return i == size


def _valid_bind(body: bytes) -> bool:
    size = len(body)
    i = _valid_cstrings(body, 2)
    if i < 0 or i + 2 > size:
        return False
    i += 2 + 2 * _unpack_u16(body, i)[0]
    if i + 2 > size:
        return False
    n = _unpack_u16(body, i)[0]
    i += 2
    for _ in range(n):
        if i + 4 > size:
            return False
        value = _unpack_i32(body, i)[0]
        i += 4
        if value > 0:
            i += value
        elif value < -1:
            return False
    if i + 2 > size:
        return False
    i += 2 + 2 * _unpack_u16(body, i)[0]
    return i == size


def _valid_frontend(kind: int, body: bytes) -> bool:
    size = len(body)
    if kind == Q:
        return size >= 1 and body[-1] == 0 and _printable(body[:-1])
    if kind == P:
        name_end = body.find(b"\x00")
        i = _valid_cstrings(body, 2)
        if i < 0 or i + 2 > size or not _printable(body[:name_end]) or not _printable(body[name_end + 1 : i - 1]):
            return False
        return i + 2 + 4 * _unpack_u16(body, i)[0] == size
    if kind == B:
        return _valid_bind(body)
    if kind == E:
        return parse_execute(body) is not None
    if kind in (D, C):
        return parse_close(body) is not None and body.count(b"\x00") == 1
    if kind == F:
        return size >= 10
    if kind == COPY_FAIL:
        return body[-1:] == b"\x00"
    return True  # S, H, X, c (length already checked), p, d (opaque)


def _valid_backend(kind: int, body: bytes) -> bool:
    size = len(body)
    if kind == D:
        return _valid_data_row(body)
    if kind == C:
        return size >= 2 and body[-1] == 0 and _TAG.fullmatch(body[:-1]) is not None
    if kind == READY:
        return body[0] in b"ITE"
    if kind == ROW_DESC:
        return _valid_row_description(body)
    if kind in (E, NOTICE):
        return _valid_fields(body)
    if kind == S:
        return _valid_cstrings(body, 2) == size and _printable(body.replace(b"\x00", b""))
    if kind == AUTH:
        code = _unpack_u32(body, 0)[0]
        if code not in _AUTH_CODES:
            return False
        fixed = _AUTH_LENGTHS.get(code)
        if fixed is not None:
            return size + 4 == fixed
        if code == 10:  # SASL: mechanism names, then an empty one
            return body[-2:] == b"\x00\x00" and _printable(body[4:])
        return True
    if kind == KEY_DATA:
        return size == 8 or 12 <= size <= 4 + 256
    if kind == NOTIFICATION:
        return _valid_cstrings(body, 2, 4) == size
    if kind == PARAM_DESC:
        return 2 + 4 * _unpack_u16(body, 0)[0] == size
    if kind in (COPY_IN, H, COPY_BOTH):
        return body[0] in (0, 1) and 3 + 2 * _unpack_u16(body, 1)[0] == size
    if kind == FUNCTION_RESULT:
        value = _unpack_i32(body, 0)[0]
        return value == -1 and size == 4 or value >= 0 and 4 + value == size
    if kind == NEGOTIATE:
        return _valid_cstrings(body, _unpack_u32(body, 4)[0], 8) == size
    return True  # fixed-length (1 2 3 n s I c) and CopyData


def valid_message(side: int, kind: int, body: bytes) -> bool:
    """Does a complete ``body`` of message ``kind`` from ``side`` match its layout?"""
    try:
        return _valid_frontend(kind, body) if side == FRONTEND else _valid_backend(kind, body)
    except (struct.error, IndexError):
        return False


def valid_prefix(side: int, kind: int, prefix: bytes) -> bool:
    """Could ``prefix`` begin a body of message ``kind``?  Only text and rows are judged."""
    if side == FRONTEND and kind == Q:
        return _printable(prefix)
    if side == FRONTEND and kind == P:
        return _printable(prefix.replace(b"\x00", b"", 1))
    if side == BACKEND and kind == D:
        return len(prefix) < 2 or _unpack_u16(prefix, 0)[0] < 1664  # MaxTupleAttributeNumber
    return True


PLAUSIBLE_LENGTH = 1 << 24  # when guessing at boundaries, longer messages are not believed


def chain(view: bytes | bytearray, pos: int, end: int, side: int, limit: int = 8) -> tuple[int, bool, bool]:
    """Walk up to ``limit`` messages of ``side`` from ``pos`` (each under 16 MiB).

    Returns ``(complete, clean, at_end)``: how many complete, valid messages were walked;
    whether the walk stopped cleanly — at ``end``, at ``limit``, or inside a message whose
    header (and visible text) is plausible — rather than at a wrong header or body; and whether
    the complete messages reach ``end`` exactly.
    """
    types = TYPES[side]
    bounds = LENGTH_BOUNDS[side]
    complete = 0
    while complete < limit:
        if pos == end:
            return complete, True, True
        kind = view[pos]
        if kind not in types:
            return complete, False, False
        if end - pos < HEADER:
            return complete, True, False
        length = _unpack_u32(view, pos + 1)[0]
        low, high = bounds[kind]
        if not low <= length <= high or length >= PLAUSIBLE_LENGTH:
            return complete, False, False
        stop = pos + 1 + length
        if stop > end:
            return complete, valid_prefix(side, kind, bytes(view[pos + HEADER : end])), False
        if not valid_message(side, kind, bytes(view[pos + HEADER : stop])):
            return complete, False, False
        complete += 1
        pos = stop
    return complete, True, pos == end


_CANDIDATES = tuple(
    re.compile(b"[" + re.escape(anchors) + b"]\\x00", re.DOTALL) for anchors in (FRONTEND_ANCHORS, BACKEND_ANCHORS)
)
MAX_CANDIDATES = 64
# Types whose first bytes alone are believable at the start of a write (long queries, rows).
_OPENERS = frozenset((Q, P, B, D, ROW_DESC))


def _acceptable(view: bytes | bytearray, p: int, end: int, side: int, at_feed_start: bool) -> ParseState:
    """Is ``p`` a believable message boundary of ``side``?"""
    complete, clean, at_end = chain(view, p, end, side)
    if not clean:
        return ParseState.INVALID
    if complete >= 2 or complete == 1 and (at_end or at_feed_start):
        return ParseState.SUCCESS
    # A write very often starts a message, so at the start of a feed a plausible header of a
    # long message will do; elsewhere, wait until there is more to check.
    if complete == 0 and at_feed_start and end - p >= HEADER and view[p] in _OPENERS:
        return ParseState.SUCCESS
    return ParseState.NEEDS_MORE_DATA


def find_message_start(
    view: bytes | bytearray, pos: int, end: int, side: int | None, feed_start: int, max_keep: int
) -> tuple[ParseState, int, int | None]:
    """Hunt for the next believable message boundary at or after ``pos``.

    ``side`` is FRONTEND/BACKEND, or ``None`` when the direction is not known yet (both are
    tried, the earliest boundary wins).  ``feed_start`` is where the newest feed's bytes begin
    in ``view`` (a boundary is likelier there).  Returns ``(state, position, side)``:

    * SUCCESS — a boundary at ``position`` for ``side``;
    * NEEDS_MORE_DATA — a candidate at ``position`` needs more bytes to be judged (the caller
      keeps ``view[position:]``, never longer than ``max_keep``);
    * INVALID — nothing here (``position == end``).
    """
    sides = (FRONTEND, BACKEND) if side is None else (side,)
    best: tuple[int, int, ParseState] | None = None  # (position, side, state)
    for s in sides:
        tried = 0
        for match in _CANDIDATES[s].finditer(view, pos, end):
            p = match.start()
            tried += 1
            if tried > MAX_CANDIDATES or best is not None and p >= best[0]:
                break
            state = _acceptable(view, p, end, s, p == feed_start)
            if state is ParseState.SUCCESS or state is ParseState.NEEDS_MORE_DATA and end - p <= max_keep:
                best = (p, s, state)
                break
    if best is not None:
        return best[2], best[0], best[1]
    # A lone type byte at the very end may start a header that continues in the next feed.
    if end > pos and any(view[end - 1] in TYPES[s] for s in sides):
        return ParseState.NEEDS_MORE_DATA, end - 1, side
    return ParseState.INVALID, end, side
