"""MySQL packet framing constants and payload parsers.

Every packet is ``length:3 LE | sequence id:1 | payload``.  A payload of 0xffffff bytes or
more is split into physical packets of exactly 0xffffff bytes followed by one shorter packet
(possibly empty), each with the next sequence id; :mod:`.session` joins them into one
*logical* packet.  The functions here parse one logical payload (or the prefix of it that was
kept) given as ``buf[start:stop]``; they never raise on wire data: a malformed payload gives
``None`` or best-effort values, and a payload cut short gives what could be read.

Length-encoded integers (``lenenc``): one byte < 0xfb is the value; 0xfc, 0xfd, 0xfe prefix a
2-, 3- or 8-byte little-endian value; 0xfb (NULL in rows) and 0xff are not integers.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .types import (
    CLIENT_CONNECT_ATTRS,
    CLIENT_CONNECT_WITH_DB,
    CLIENT_MYSQL,
    CLIENT_PLUGIN_AUTH,
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
    CLIENT_PROTOCOL_41,
    CLIENT_SECURE_CONNECTION,
    CLIENT_SSL,
    SERVER_SESSION_STATE_CHANGED,
    Command,
    MysqlServerGreeting,
)

HEADER_SIZE = 4
MAX_PACKET = 0xFFFFFF  # a physical packet of this payload length is continued by the next one
MAX_COLUMNS = 65535  # column counts beyond this are not believed (MySQL/MariaDB allow 4096)
MAX_ATTRIBUTES = 32  # connect attributes kept per handshake
MAX_ATTRIBUTE_CHARS = 256  # per key / value
MAX_NAME_CHARS = 256  # user, schema, plugin, file names

SESSION_TRACK_SCHEMA = 1

_PRINTABLE = re.compile(rb"[\t\n\r\x20-\x7e\x80-\xff]*")
_SQL_START = re.compile(rb"[\t\n\r ]*[A-Za-z(/#{-]")
_VERSION_START = re.compile(rb"[0-9]{1,3}\.[0-9]{1,3}")
# "USE db" / "use `my db`" sent as COM_QUERY (the mysql CLI sends COM_INIT_DB instead).
_USE_STATEMENT = re.compile(r"\s*use\s+(?:`((?:[^`]|``)+)`|([^\s;`]+))\s*;?\s*\Z", re.IGNORECASE)

_COMMANDS = {int(c): c for c in Command}
# Commands a client sends in the command phase (COM_SLEEP, COM_CONNECT, COM_TIME,
# COM_DELAYED_INSERT, COM_CONNECT_OUT and COM_DAEMON are server-internal).
CLIENT_COMMANDS = {
    c: _COMMANDS[c]
    for c in _COMMANDS
    if c not in (0x00, 0x0B, 0x0F, 0x10, 0x14, 0x1D)
}


def command_of(byte: int) -> Command | None:
    """The client command a first payload byte names, or ``None``."""
    return CLIENT_COMMANDS.get(byte)


def u16(buf, pos: int) -> int:
    return buf[pos] | buf[pos + 1] << 8


def u24(buf, pos: int) -> int:
    return buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16


def u32(buf, pos: int) -> int:
    return buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16 | buf[pos + 3] << 24


def read_lenenc(buf, pos: int, end: int) -> tuple[int, int]:
    """``(value, position after it)``; ``(-1, pos)`` when not a complete length-encoded int."""
    if pos >= end:
        return -1, pos
    first = buf[pos]
    if first < 0xFB:
        return first, pos + 1
    if first == 0xFC:
        size = 2
    elif first == 0xFD:
        size = 3
    elif first == 0xFE:
        size = 8
    else:
        return -1, pos
    if pos + 1 + size > end:
        return -1, pos
    return int.from_bytes(buf[pos + 1 : pos + 1 + size], "little"), pos + 1 + size


def read_cstring(buf, pos: int, end: int) -> tuple[bytes | None, int]:
    """A NUL-terminated string: ``(bytes, position after the NUL)``, ``(None, pos)`` if no NUL."""
    nul = buf.find(b"\x00", pos, end)
    if nul < 0:
        return None, pos
    return bytes(buf[pos:nul]), nul + 1


def text(raw: bytes | bytearray | memoryview, limit: int = MAX_NAME_CHARS) -> str:
    return bytes(raw[:limit]).decode("utf-8", "replace")


# -- plausibility (detection and resynchronisation) -------------------------------------------


def looks_like_greeting(buf, pos: int, end: int) -> bool:
    """Does ``buf[pos:end]`` start with a protocol-10 server greeting (sequence id 0)?"""
    avail = end - pos
    if avail < 12:
        return False
    length = u24(buf, pos)
    if buf[pos + 3] != 0 or buf[pos + 4] != 10 or not 30 <= length <= 1024:
        return False
    if avail > HEADER_SIZE + length:
        return False  # nothing follows a greeting before the client answers
    stop = min(end, pos + HEADER_SIZE + length)
    nul = buf.find(b"\x00", pos + 5, min(stop, pos + 5 + 80))
    if nul < 0:
        return avail >= 64 and _VERSION_START.match(buf, pos + 5, stop) is not None and _PRINTABLE.fullmatch(
            buf, pos + 5, stop
        ) is not None
    if nul - (pos + 5) < 3 or _VERSION_START.match(buf, pos + 5, nul) is None:
        return False
    if _PRINTABLE.fullmatch(buf, pos + 5, nul) is None:
        return False
    filler = nul + 13  # connection id (4) + auth-plugin-data-part-1 (8), then a 0x00 filler
    return filler >= stop or buf[filler] == 0


def looks_like_greeting_payload(buf, pos: int, end: int) -> bool:
    """Is ``buf[pos:end]`` exactly a protocol-10 greeting's payload, without its header?

    Clients that read a packet header and its payload with separate reads (mysql-connector-
    python) show the greeting's payload as a feed of its own.  Accepted only when it is whole:
    version ``digits.digits...`` and NUL, connection id, 8 scramble bytes, a 0x00 filler,
    capabilities with CLIENT_PROTOCOL_41, the rest of the handshake, ending with the NUL of
    the auth plugin name.
    """
    avail = end - pos
    if avail < 34 or avail > 1024 or buf[pos] != 10 or buf[end - 1] != 0:
        return False
    nul = buf.find(b"\x00", pos + 1, min(end, pos + 81))
    if nul < 0 or nul - pos < 4 or _VERSION_START.match(buf, pos + 1, nul) is None:
        return False
    if _PRINTABLE.fullmatch(buf, pos + 1, nul) is None or nul + 32 > end or buf[nul + 13] != 0:
        return False
    caps = u16(buf, nul + 14) | u16(buf, nul + 19) << 16
    return bool(caps & CLIENT_PROTOCOL_41 and caps & CLIENT_PLUGIN_AUTH)


def looks_like_command(buf, pos: int, end: int) -> bool:
    """Does ``buf[pos:end]`` start with a plausible client command packet (sequence id 0)?

    The command byte must be known and the payload must fit it: SQL text for ``COM_QUERY`` and
    ``COM_STMT_PREPARE``, a schema name for ``COM_INIT_DB``, exact sizes for the fixed-size
    commands.  A packet longer than what is given is only believed when at least 64 bytes are
    given (a capture cut at ``capture_size``); bytes after the packet must start another
    command packet header.
    """
    avail = end - pos
    if avail < 5:
        return False
    length = u24(buf, pos)
    if buf[pos + 3] != 0 or length == 0:
        return False
    complete = avail >= HEADER_SIZE + length
    if not complete and avail < 64:
        return False
    if avail > HEADER_SIZE + length:
        nxt = pos + HEADER_SIZE + length
        if end - nxt < 5 or buf[nxt + 3] != 0 or u24(buf, nxt) == 0 or CLIENT_COMMANDS.get(buf[nxt + 4]) is None:
            return False
    cmd = buf[pos + 4]
    stop = min(end, pos + HEADER_SIZE + length)
    body = pos + 5
    if cmd == 0x03 or cmd == 0x16:  # COM_QUERY, COM_STMT_PREPARE
        if length < 2:
            return False
        check = min(stop, body + 256)
        return _SQL_START.match(buf, body, check) is not None and _PRINTABLE.fullmatch(buf, body, check) is not None
    if cmd == 0x02:  # COM_INIT_DB: a schema name
        if not 2 <= length <= 1 + MAX_NAME_CHARS or not complete:
            return False
        return b"\x00" not in buf[body:stop] and _PRINTABLE.fullmatch(buf, body, stop) is not None
    if not complete:
        return False
    if cmd in (0x01, 0x09, 0x0A, 0x0D, 0x0E, 0x1F):  # QUIT STATISTICS PROCESS_INFO DEBUG PING RESET_CONNECTION
        return length == 1
    if cmd in (0x19, 0x1A, 0x0C):  # STMT_CLOSE STMT_RESET PROCESS_KILL
        return length == 5
    if cmd == 0x1C:  # STMT_FETCH: statement id, rows
        return length == 9
    if cmd == 0x1B:  # SET_OPTION: 0 or 1
        return length == 3 and buf[body] in (0, 1) and buf[body + 1] == 0
    if cmd == 0x17:  # STMT_EXECUTE: statement id, flags, iteration count (always 1)
        return length >= 10 and u32(buf, body + 5) == 1 and buf[body + 4] < 0x10
    return False


PROBE_LIMIT = 1100  # bytes held while deciding whether a stream starts with a packet


def may_become_start(buf, end: int, greeting: bool) -> bool:
    """Could more bytes turn ``buf[:end]`` (not yet a plausible start) into one?

    True while the bytes seen are a consistent prefix of a greeting (if ``greeting``) or of a
    client command packet that is not complete yet and not longer than :data:`PROBE_LIMIT`.
    """
    if end >= PROBE_LIMIT:
        return False
    if end >= 4:
        length = u24(buf, 0)
        if buf[3] != 0 or length == 0 or end >= HEADER_SIZE + length:
            return False
    if end >= 5:
        first = buf[4]
        return (greeting and first == 10) or first in CLIENT_COMMANDS
    return True


# -- connection phase -------------------------------------------------------------------------


def parse_greeting(buf, start: int, stop: int, wire_size: int) -> MysqlServerGreeting | None:
    """The server's HandshakeV10 (the scramble is skipped, never kept)."""
    if stop - start < 2 or buf[start] != 10:
        return None
    version_raw, pos = read_cstring(buf, start + 1, stop)
    if version_raw is None:
        return None
    version = text(version_raw, 128)
    if version.startswith("5.5.5-") and "mariadb" in version.lower():
        version = version[6:]
    connection_id = caps = charset = status = 0
    plugin = ""
    if pos + 4 <= stop:
        connection_id = u32(buf, pos)
    pos += 4 + 8 + 1  # connection id, auth-plugin-data-part-1, filler
    if pos + 2 <= stop:
        caps = u16(buf, pos)
    pos += 2
    if pos + 16 <= stop:
        charset = buf[pos]
        status = u16(buf, pos + 1)
        caps |= u16(buf, pos + 3) << 16
        auth_len = buf[pos + 5]
        if not caps & CLIENT_MYSQL:  # MariaDB: extended capabilities in the last 4 reserved bytes
            caps |= u32(buf, pos + 12) << 32
        pos += 16
        if caps & CLIENT_SECURE_CONNECTION:
            pos += max(13, auth_len - 8)
        if caps & CLIENT_PLUGIN_AUTH and pos < stop:
            name, _ = read_cstring(buf, pos, stop)
            plugin = text(name if name is not None else buf[pos:stop])
    return MysqlServerGreeting(10, version, connection_id, caps, charset, status, plugin, wire_size)


class HandshakeResponse(NamedTuple):
    """What the session keeps of a HandshakeResponse41 / SSLRequest (never the auth data)."""

    ssl_request: bool
    capabilities: int
    max_packet_size: int
    character_set: int
    user: str
    schema: str
    auth_plugin: str
    attributes: tuple[tuple[str, str], ...]


def parse_handshake_response(buf, start: int, stop: int, length: int) -> HandshakeResponse | None:
    """The client's HandshakeResponse41, HandshakeResponse320 or SSLRequest.

    ``length`` is the whole payload's length (``stop - start`` may be less when cut short).
    """
    avail = stop - start
    if avail < 4:
        return None
    caps = u16(buf, start)
    if not caps & CLIENT_PROTOCOL_41:  # HandshakeResponse320: caps(2) max_packet(3) user NUL ...
        if avail < 5:
            return None
        user_raw, _ = read_cstring(buf, start + 5, stop)
        return HandshakeResponse(False, caps, u24(buf, start + 2), 0, text(user_raw or b""), "", "", ())
    if avail < 32:
        return None
    caps = u32(buf, start)
    max_packet = u32(buf, start + 4)
    charset = buf[start + 8]
    if not caps & CLIENT_MYSQL:  # MariaDB extended capabilities at the end of the filler
        caps |= u32(buf, start + 28) << 32
    if length == 32:
        return HandshakeResponse(bool(caps & CLIENT_SSL), caps, max_packet, charset, "", "", "", ())
    pos = start + 32
    user_raw, pos = read_cstring(buf, pos, stop)
    if user_raw is None:
        return HandshakeResponse(False, caps, max_packet, charset, text(buf[start + 32 : stop]), "", "", ())
    user = text(user_raw)
    schema = plugin = ""
    attributes: tuple[tuple[str, str], ...] = ()
    # Auth response: skipped, never kept.
    if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
        n, after = read_lenenc(buf, pos, stop)
        pos = after + n if n >= 0 else stop
    elif caps & CLIENT_SECURE_CONNECTION:
        pos = pos + 1 + buf[pos] if pos < stop else stop
    else:
        nul = buf.find(b"\x00", pos, stop)
        pos = nul + 1 if nul >= 0 else stop
    if caps & CLIENT_CONNECT_WITH_DB and pos < stop:
        raw, after = read_cstring(buf, pos, stop)
        if raw is not None:
            schema, pos = text(raw), after
        else:
            schema, pos = text(buf[pos:stop]), stop
    if caps & CLIENT_PLUGIN_AUTH and pos < stop:
        raw, after = read_cstring(buf, pos, stop)
        if raw is not None:
            plugin, pos = text(raw), after
        else:
            pos = stop
    if caps & CLIENT_CONNECT_ATTRS and pos < stop:
        attributes = parse_attributes(buf, pos, stop)
    return HandshakeResponse(False, caps, max_packet, charset, user, schema, plugin, attributes)


def parse_attributes(buf, pos: int, stop: int) -> tuple[tuple[str, str], ...]:
    """``CLIENT_CONNECT_ATTRS``: a lenenc total length, then lenenc key/value strings."""
    total, pos = read_lenenc(buf, pos, stop)
    if total < 0:
        return ()
    end = min(stop, pos + total)
    pairs: list[tuple[str, str]] = []
    while pos < end and len(pairs) < MAX_ATTRIBUTES:
        klen, kpos = read_lenenc(buf, pos, end)
        if klen < 0 or kpos + klen > end:
            break
        vlen, vpos = read_lenenc(buf, kpos + klen, end)
        if vlen < 0 or vpos + vlen > end:
            break
        key = text(buf[kpos : kpos + klen], MAX_ATTRIBUTE_CHARS)
        pairs.append((key, text(buf[vpos : vpos + vlen], MAX_ATTRIBUTE_CHARS)))
        pos = vpos + vlen
    return tuple(pairs)


def parse_auth_switch(buf, start: int, stop: int) -> str:
    """AuthSwitchRequest (0xfe): the plugin name (its auth data is skipped, never kept)."""
    if stop - start <= 1:
        return "mysql_old_password"  # the pre-4.1 "old auth switch" is a lone 0xfe
    raw, _ = read_cstring(buf, start + 1, stop)
    return text(raw if raw is not None else buf[start + 1 : stop])


class ChangeUser(NamedTuple):
    user: str
    schema: str


def parse_change_user(buf, start: int, stop: int, caps: int | None) -> ChangeUser:
    """COM_CHANGE_USER: user NUL, auth response (skipped), schema NUL, ..."""
    user_raw, pos = read_cstring(buf, start + 1, stop)
    if user_raw is None:
        return ChangeUser(text(buf[start + 1 : stop]), "")
    secure = caps is None or bool(caps & CLIENT_SECURE_CONNECTION)
    if secure:
        pos = pos + 1 + buf[pos] if pos < stop else stop
    else:
        nul = buf.find(b"\x00", pos, stop)
        pos = nul + 1 if nul >= 0 else stop
    schema_raw, _ = read_cstring(buf, pos, stop)
    if schema_raw is None:
        return ChangeUser(text(user_raw), text(buf[pos:stop]) if pos < stop else "")
    return ChangeUser(text(user_raw), text(schema_raw))


# -- generic response packets -----------------------------------------------------------------


class OkPacket(NamedTuple):
    affected_rows: int
    last_insert_id: int
    status_flags: int
    warnings: int
    info: str
    schema: str | None  # a SESSION_TRACK_SCHEMA change, if the OK carried one


def parse_ok(buf, start: int, stop: int, session_track: bool | None) -> OkPacket | None:
    """An OK packet (header 0x00, or 0xfe when it ends a result set under DEPRECATE_EOF).

    ``session_track``: was ``CLIENT_SESSION_TRACK`` negotiated (``None``: unknown).  The info
    string is length-encoded in practice (MySQL and MariaDB both write it that way), read as
    the rest of the packet when the length does not fit.
    """
    affected, pos = read_lenenc(buf, start + 1, stop)
    if affected < 0:
        return None
    insert_id, pos = read_lenenc(buf, pos, stop)
    if insert_id < 0:
        return None
    if pos + 4 > stop:
        status = u16(buf, pos) if pos + 2 <= stop else 0
        return OkPacket(affected, insert_id, status, 0, "", None)
    status = u16(buf, pos)
    warnings = u16(buf, pos + 2)
    pos += 4
    info = ""
    schema = None
    if pos < stop:
        n, after = read_lenenc(buf, pos, stop)
        if n >= 0 and after + n <= stop:
            info = text(buf[after : after + n], 1024)
            pos = after + n
            if status & SERVER_SESSION_STATE_CHANGED and session_track is not False:
                schema = _tracked_schema(buf, pos, stop)
        else:
            info = text(buf[pos:stop], 1024)
    return OkPacket(affected, insert_id, status, warnings, info, schema)


def _tracked_schema(buf, pos: int, stop: int) -> str | None:
    """The last SESSION_TRACK_SCHEMA entry of an OK packet's session state information."""
    total, pos = read_lenenc(buf, pos, stop)
    if total < 0:
        return None
    end = min(stop, pos + total)
    schema = None
    for _ in range(64):
        if pos >= end:
            break
        kind = buf[pos]
        n, data = read_lenenc(buf, pos + 1, end)
        if n < 0 or data + n > end:
            break
        if kind == SESSION_TRACK_SCHEMA:
            slen, spos = read_lenenc(buf, data, data + n)
            if slen >= 0 and spos + slen <= data + n:
                schema = text(buf[spos : spos + slen])
        pos = data + n
    return schema


class ErrPacket(NamedTuple):
    error_code: int
    sql_state: str
    message: str


def parse_err(buf, start: int, stop: int) -> ErrPacket:
    """An ERR packet: errno, ``#`` + 5-character SQLSTATE (protocol 4.1), message."""
    if stop - start < 3:
        return ErrPacket(0, "", "")
    code = u16(buf, start + 1)
    if stop - start >= 9 and buf[start + 3] == 0x23:  # '#'
        state = bytes(buf[start + 4 : start + 9]).decode("ascii", "replace")
        return ErrPacket(code, state, text(buf[start + 9 : stop], 1024))
    return ErrPacket(code, "", text(buf[start + 3 : stop], 1024))


def parse_terminator(
    buf,
    start: int,
    stop: int,
    length: int,
    session_track: bool | None,
) -> tuple[int, int, OkPacket | None]:
    """An EOF packet (5 bytes) or an OK packet with a 0xfe header: ``(warnings, status, ok)``."""
    if length == 5 and stop - start >= 5:
        return u16(buf, start + 1), u16(buf, start + 3), None
    if length < 5:
        return 0, 0, None
    ok = parse_ok(buf, start, stop, session_track)
    if ok is None:
        return 0, 0, None
    return ok.warnings, ok.status_flags, ok


def use_statement_schema(query: str) -> str | None:
    """The schema a ``USE db`` statement names, or ``None`` if ``query`` is not one."""
    if len(query) > 300 or query[:5].lstrip()[:3].lower() != "use":
        return None
    m = _USE_STATEMENT.match(query)
    if m is None:
        return None
    if m.group(1) is not None:
        return m.group(1).replace("``", "`")
    return m.group(2)


# -- COM_QUERY with query attributes (MySQL 8.0.23+) ------------------------------------------

# Binary-protocol value sizes: TINY SHORT YEAR LONG INT24 FLOAT LONGLONG DOUBLE NULL.
_FIXED_SIZES = {1: 1, 2: 2, 13: 2, 3: 4, 9: 4, 4: 4, 8: 8, 5: 8, 6: 0}
_DATE_TYPES = {7, 10, 11, 12, 17, 18, 19}  # TIMESTAMP DATE TIME DATETIME and their *2 forms


def query_attributes_end(buf, pos: int, stop: int) -> int:
    """Skip the query attributes that precede the SQL text under CLIENT_QUERY_ATTRIBUTES.

    Returns the position of the SQL text, or -1 when the attributes cannot be skipped.
    """
    count, pos = read_lenenc(buf, pos, stop)
    if count < 0:
        return -1
    sets, pos = read_lenenc(buf, pos, stop)
    if sets < 0:
        return -1
    if count == 0:
        return pos
    if count > 4096:
        return -1
    bitmap = pos
    pos += (count + 7) // 8
    if pos >= stop or buf[pos] != 1:  # new_params_bind_flag: types and names always sent here
        return -1
    pos += 1
    types = []
    for i in range(count):
        if pos + 2 > stop:
            return -1
        is_null = buf[bitmap + i // 8] >> (i % 8) & 1
        types.append(-1 if is_null else buf[pos])
        pos += 2
        n, pos = read_lenenc(buf, pos, stop)
        if n < 0:
            return -1
        pos += n
    return _skip_values(buf, pos, stop, types)


def _skip_values(buf, pos: int, stop: int, types: list[int]) -> int:
    """Skip binary-protocol values of the given types (-1: NULL, no bytes)."""
    for t in types:
        if t < 0:
            continue
        if t in _FIXED_SIZES:
            pos += _FIXED_SIZES[t]
        elif t in _DATE_TYPES:
            if pos >= stop:
                return -1
            pos += 1 + buf[pos]
        else:
            n, pos = read_lenenc(buf, pos, stop)
            if n < 0:
                return -1
            pos += n
        if pos > stop:
            return -1
    return pos
