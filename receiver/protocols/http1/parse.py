"""HTTP/1.x framing: find and parse one message head at a buffer position, frame its body.

Everything here works on ``bytes``/``bytearray`` with an explicit ``[pos, end)`` window so the
caller can parse many pipelined messages out of one buffer and drop the consumed prefix once.
Functions return a :class:`~receiver.protocols.base.ParseState` together with how far they got;
they never raise on wire data and never consume bytes of an incomplete head.

The grammar follows RFC 9112 with the usual leniencies of real traffic: bare LF line endings,
empty lines before a request line, optional whitespace around field values, chunk extensions,
obsolete line folding in fields.
"""

from __future__ import annotations

import enum
import re
from typing import NamedTuple

from receiver.protocols.base import ParseState

from .types import Headers, fields_of_raw

SUCCESS = ParseState.SUCCESS
NEEDS_MORE_DATA = ParseState.NEEDS_MORE_DATA
IGNORED = ParseState.IGNORED
INVALID = ParseState.INVALID

MAX_START_LINE = 8 * 1024  # longest request/status line considered while resynchronising
MAX_CHUNK_LINE = 4 * 1024  # longest chunk-size line (with extensions)
MAX_METHOD = 32


class MessageKind(enum.Enum):
    """What a direction of a connection carries, once known."""

    REQUEST = "request"
    RESPONSE = "response"


REQUEST = MessageKind.REQUEST
RESPONSE = MessageKind.RESPONSE


class BodyFraming(enum.IntEnum):
    """How the end of a message body is found (RFC 9112 §6)."""

    NONE = 0  # no body
    LENGTH = 1  # Content-Length bytes
    CHUNKED = 2  # chunked transfer coding
    UNTIL_CLOSE = 3  # everything up to connection close
    TUNNEL = 4  # the connection stops being HTTP (101 Switching Protocols, CONNECT 2xx)


TOKEN_CHAR = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]"  # RFC 9110 tchar, as a regex class
TARGET_CHAR = rb"[^\x00-\x20\x7f]"  # anything visible in a request target (obs-text allowed)
_TOKEN = TOKEN_CHAR
_TARGET = TARGET_CHAR
HTTP_VERSION_PREFIX = rb"H(?:T(?:T(?:P(?:/(?:1(?:\.(?:[0-9]\r?)?)?)?)?)?)?)?"

_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb"{1,%d}) (" % MAX_METHOD + _TARGET + rb"+) HTTP/1\.([0-9])\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/1\.([0-9]) ([1-9][0-9]{2})(?:[ \t]([^\r\n]*?))?[ \t]*\r?\n")
# What can precede " HTTP/1." on a request line; used when hunting for a message start.
_REQUEST_LINE_HEAD = re.compile(_TOKEN + rb"{1,%d} " % MAX_METHOD + _TARGET + rb"+ ")
_STATUS_LINE_START = re.compile(rb"HTTP/1\.[0-9] [1-9][0-9]{2}[ \t\r\n]")
# Incomplete start lines that may still become valid ones.
_REQUEST_LINE_PREFIX = re.compile(
    _TOKEN + rb"{1,%d}(?: (?:" % MAX_METHOD + _TARGET + rb"+(?: (?:" + HTTP_VERSION_PREFIX + rb")?)?)?)?"
)
_STATUS_LINE_PREFIX = re.compile(
    rb"H(?:T(?:T(?:P(?:/(?:1(?:\.(?:[0-9](?: (?:[1-9][0-9]?|[1-9][0-9]{2}(?:[ \t][^\r\n]*)?\r?)?)?)?)?)?)?)?)?)?"
)
_FIELD_LINE = re.compile(r"^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n]*)\r?\n", re.MULTILINE)
_FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MAX_CONTENT_LENGTH = 1 << 62
_LONE_CR = re.compile(rb"\r(?!\n)")
# Whole heads of CRLF lines with plain field lines (a CR inside a line is checked apart), at
# most one Content-Length (its value captured) and at most one Transfer-Encoding, "chunked":
# groups (version digit, status, reason, fields, length, chunked, chunked, length) and (method,
# target, version digit, fields, length, chunked, chunked, length).
_OTHER_FIELDS = rb"(?:(?![cCtT](?i:ontent-length|ransfer-encoding):)" + _TOKEN + rb"++:.*\r\n)*+"
_LENGTH_FIELD = rb"(?i:content-length):[ \t]*+([0-9]{1,19})[ \t]*+\r\n" + _OTHER_FIELDS
_CHUNKED_FIELD = rb"(?i:transfer-encoding):[ \t]*+((?i:chunked))[ \t]*+\r\n" + _OTHER_FIELDS
_CRLF_FIELDS = (rb"(" + _OTHER_FIELDS + rb"(?>" + _LENGTH_FIELD + rb"(?:" + _CHUNKED_FIELD + rb")?|"
                + _CHUNKED_FIELD + rb"(?:" + _LENGTH_FIELD + rb")?)?+)\r\n")
_STATUS_HEAD = re.compile(rb"HTTP/1\.([0-9]) ([1-9][0-9]{2})(?:[ \t]([^\r\n]*?))?[ \t]*\r\n" + _CRLF_FIELDS)
_REQUEST_HEAD = re.compile(
    rb"(" + _TOKEN + rb"{1,%d}) (" % MAX_METHOD + _TARGET + rb"+) HTTP/1\.([0-9])\r\n" + _CRLF_FIELDS
)
_VERSIONS = {48 + d: f"1.{d}" for d in range(10)}  # minor version digit -> "1.d"
# Strings shared by every head that spells them so (no decoding, one object).
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")}
_REASONS = {r.encode(): r for r in ("OK", "Created", "Accepted", "No Content", "Moved Permanently", "Found",
                                     "See Other", "Not Modified", "Bad Request", "Unauthorized", "Forbidden",
                                     "Not Found", "Internal Server Error", "Bad Gateway", "Service Unavailable",
                                     "Gateway Timeout", "Continue", "Switching Protocols")}
_tuple_new = tuple.__new__


class MessageHead(NamedTuple):
    """A parsed request or response head plus what framing needs from its fields."""

    is_request: bool
    method: str  # requests only, else ""
    target: str  # requests only, else ""
    status_code: int  # responses only, else 0
    reason: str  # responses only, else ""
    version: str  # "1.1", "1.0"
    headers: Headers | bytes  # bytes: the raw field section (``parse_head(..., lazy=True)``)
    head_size: int
    content_length: int  # -1 when absent
    chunked: bool  # Transfer-Encoding ends in chunked
    other_coding: bool  # Transfer-Encoding present but not ending in chunked


def is_plausible_start(buf: bytes | bytearray, pos: int, end: int, kind: MessageKind | None) -> bool:
    """Could ``buf[pos:end]`` (no line end yet) be the beginning of a request or status line?"""
    if kind is not RESPONSE and _REQUEST_LINE_PREFIX.fullmatch(buf, pos, end):
        return True
    return kind is not REQUEST and _STATUS_LINE_PREFIX.fullmatch(buf, pos, end) is not None


def find_head_end(buf: bytes | bytearray, start: int, end: int) -> tuple[int, int]:
    """Find the empty line that ends a field section.

    ``start`` is the index of the LF ending the start line (the section may be empty), or of
    the first byte of a section known to hold at least one field line.
    Returns ``(fields_end, head_end)``: the index just past the last field line and the index
    just past the empty line; ``(-1, -1)`` when no empty line is in ``[start, end)``.
    """
    crlf = buf.find(b"\n\r\n", start, end)
    lf = buf.find(b"\n\n", start, end if crlf < 0 else crlf + 1)
    if lf >= 0:
        return lf + 1, lf + 2
    if crlf >= 0:
        return crlf + 1, crlf + 3
    return -1, -1


def parse_fields(text: str) -> list[tuple[str, str]] | None:
    """Parse field lines (each ending in LF or CRLF) into ``(name, value)`` pairs, or ``None``.

    Fast path: one ``findall``, accepted when every line matched (one match per LF; matches are
    anchored at line starts) and no value has trailing whitespace to strip.
    """
    fields = _FIELD_LINE.findall(text)
    if (
        len(fields) == text.count("\n")
        and " \r\n" not in text
        and "\t\r\n" not in text
        and " \n" not in text
        and "\t\n" not in text
    ):
        return fields
    return _parse_fields_folded(text)


def _parse_fields_folded(text: str) -> list[tuple[str, str]] | None:
    """Slow path of :func:`parse_fields`: obsolete line folding, or an invalid line."""
    fields: list[tuple[str, str]] = []
    for line in text.split("\n")[:-1]:
        if line.endswith("\r"):
            line = line[:-1]
        if "\r" in line:
            return None
        if line[:1] in (" ", "\t"):
            if not fields:
                return None
            name, value = fields[-1]
            fields[-1] = (name, (value + " " + line.strip(" \t")).strip(" \t"))
            continue
        name, colon, value = line.partition(":")
        if not colon or not _FIELD_NAME.fullmatch(name):
            return None
        fields.append((name, value.strip(" \t")))
    return fields


def _content_length(value: str, current: int) -> int:
    """Fold one Content-Length field value into ``current``; -2 when invalid or conflicting."""
    for part in value.split(","):
        part = part.strip(" \t")
        if not part.isdigit() or not part.isascii() or len(part) > 19:
            return -2
        n = int(part)
        if n > _MAX_CONTENT_LENGTH or (current >= 0 and n != current):
            return -2
        current = n
    return current


def parse_head(
    buf: bytes | bytearray, pos: int, end: int, kind: MessageKind | None, max_head: int, lazy: bool = False
) -> tuple[ParseState, MessageHead | None, int]:
    """Parse the message head starting exactly at ``buf[pos]`` (see :func:`parse_head_after`)."""
    return parse_head_after(buf, pos, end, kind, max_head, lazy, NOT_SCANNED)[:3]  # type: ignore[return-value]


# ``(from, to)``: no empty line ending a field section begins in ``buf[from:to-2]`` — what a
# failed search for one established; ``NOT_SCANNED`` when nothing is known.
NOT_SCANNED = (0, 0)


def parse_head_after(
    buf: bytes | bytearray,
    pos: int,
    end: int,
    kind: MessageKind | None,
    max_head: int,
    lazy: bool,
    scanned: tuple[int, int],
) -> tuple[ParseState, MessageHead | None, int, tuple[int, int]]:
    """Parse the message head starting exactly at ``buf[pos]``, not searching again where an
    earlier call already failed to find the head's end.

    ``scanned`` is what earlier calls on the same bytes returned last (``NOT_SCANNED`` at first);
    the fourth item returned is the new one.  A caller that keeps it parses in time linear in
    its input, however often an incomplete or oversized head is retried (bytes added, or the
    hunt resuming one line further): each byte is searched for an empty line once.

    ``kind`` restricts what is accepted (``None``: either).  Returns ``(state, head, consumed)``:
    SUCCESS with the head and its length; NEEDS_MORE_DATA (nothing consumed) while the head is
    incomplete and still plausible; IGNORED with the number of leading empty-line bytes to drop
    (RFC 9112 §2.2); INVALID when this is not a valid head or it does not fit in ``max_head``.

    ``lazy``: the head's ``headers`` may be the raw field section (``bytes``, validated: see
    :mod:`.types`) rather than the parsed pairs, for :class:`~.types.Http1Request` and
    :class:`~.types.Http1Response` to parse only if asked.
    """
    limit = pos + max_head
    if limit > end:
        limit = end
    first = buf[pos]
    # Fast path: a whole head of CRLF lines, plain field lines, at most one Content-Length and
    # at most one Transfer-Encoding, "chunked" (the general path below agrees on every head this
    # accepts, and decides on everything else).  Not taken again on a head already found
    # incomplete: it would match its fields anew at every retry.
    if scanned[1] > pos:
        pass
    elif first == 72 and kind is not REQUEST and buf.startswith(b"HTTP/", pos):  # "H"
        m = _STATUS_HEAD.match(buf, pos, limit)
        if m is not None:
            minor, status, reason, raw, length, chunked, chunked2, length2 = m.groups()
            if not _LONE_CR.search(raw):
                length = length or length2
                content_length = int(length) if length is not None else -1
                if content_length <= _MAX_CONTENT_LENGTH:
                    size = m.end() - pos
                    reason = _REASONS.get(reason) or (reason.decode("latin-1") if reason else "")
                    return SUCCESS, _tuple_new(MessageHead, (
                        False, "", "", int(status), reason, _VERSIONS[minor[0]], raw if lazy else fields_of_raw(raw),
                        size, content_length, (chunked or chunked2) is not None, False)), size, NOT_SCANNED
    elif kind is not RESPONSE:
        m = _REQUEST_HEAD.match(buf, pos, limit)
        if m is not None:
            method, target, minor, raw, length, chunked, chunked2, length2 = m.groups()
            if not _LONE_CR.search(raw):
                length = length or length2
                content_length = int(length) if length is not None else -1
                if content_length <= _MAX_CONTENT_LENGTH:
                    size = m.end() - pos
                    return SUCCESS, _tuple_new(MessageHead, (
                        True, _METHODS.get(method) or method.decode("latin-1"), target.decode("latin-1"), 0, "",
                        _VERSIONS[minor[0]], raw if lazy else fields_of_raw(raw), size, content_length,
                        (chunked or chunked2) is not None, False)), size, NOT_SCANNED
    if first == 13 or first == 10:  # empty lines before a message
        n = pos
        while n < limit and buf[n] in (13, 10):
            n += 1
        return IGNORED, None, n - pos, scanned
    nl = buf.find(b"\n", pos, limit)
    if nl < 0:
        if end - pos >= max_head or end - pos >= MAX_START_LINE or not is_plausible_start(buf, pos, end, kind):
            return INVALID, None, 0, scanned
        return NEEDS_MORE_DATA, None, 0, scanned
    line_end = nl + 1
    if first == 72 and kind is not REQUEST and buf.startswith(b"HTTP/", pos):  # "H"
        m = _STATUS_LINE.match(buf, pos, line_end)
        if m is None:
            return INVALID, None, 0, scanned
        is_request = False
    elif kind is not RESPONSE:
        m = _REQUEST_LINE.match(buf, pos, line_end)
        if m is None:
            return INVALID, None, 0, scanned
        is_request = True
    else:
        return INVALID, None, 0, scanned
    start = nl
    if scanned[0] <= nl < scanned[1] - 2:
        start = scanned[1] - 2  # an occurrence starting there may end past what was searched
    fields_end, head_end = find_head_end(buf, start, limit)
    if head_end < 0:
        scanned = (scanned[0] if start > nl else nl, limit)
        if end - pos >= max_head:
            return INVALID, None, 0, scanned
        return NEEDS_MORE_DATA, None, 0, scanned
    if fields_end > line_end:
        fields = parse_fields(buf[line_end:fields_end].decode("latin-1"))
        if fields is None:
            return INVALID, None, 0, scanned
    else:
        fields = []
    content_length = -1
    chunked = other_coding = False
    for name, value in fields:
        n = len(name)
        if n == 14 and name.lower() == "content-length":
            content_length = _content_length(value, content_length)
            if content_length == -2:
                return INVALID, None, 0, scanned
        elif n == 17 and name.lower() == "transfer-encoding":
            codings = [c.strip(" \t").lower() for c in value.split(",")]
            codings = [c for c in codings if c]
            if codings:
                chunked = codings[-1] == "chunked"
                other_coding = not chunked
    groups = m.groups()
    if is_request:
        if other_coding:  # a request body must be chunked or have a length (RFC 9112 §6.3)
            return INVALID, None, 0, scanned
        head = MessageHead(
            True,
            groups[0].decode("latin-1"),
            groups[1].decode("latin-1"),
            0,
            "",
            "1." + chr(groups[2][0]),
            tuple(fields),
            head_end - pos,
            content_length,
            chunked,
            False,
        )
    else:
        reason = groups[2]
        head = MessageHead(
            False,
            "",
            "",
            int(groups[1]),
            reason.decode("latin-1") if reason else "",
            "1." + chr(groups[0][0]),
            tuple(fields),
            head_end - pos,
            content_length,
            chunked,
            other_coding,
        )
    return SUCCESS, head, head_end - pos, NOT_SCANNED


def request_body_framing(head: MessageHead) -> tuple[BodyFraming, int]:
    """Framing of a request body (RFC 9112 §6.3): ``(framing, content_length)``."""
    if head.chunked:
        return BodyFraming.CHUNKED, 0
    if head.content_length > 0:
        return BodyFraming.LENGTH, head.content_length
    return BodyFraming.NONE, 0


def response_body_framing(head: MessageHead, request_method: str | None) -> tuple[BodyFraming, int]:
    """Framing of a final response body given the method of the request it answers.

    ``request_method`` is ``None`` when the request was not seen (it is then assumed to be
    neither HEAD nor CONNECT).
    """
    status = head.status_code
    if status == 101:
        return BodyFraming.TUNNEL, 0
    if request_method == "HEAD" or status < 200 or status == 204 or status == 304:
        return BodyFraming.NONE, 0
    if request_method == "CONNECT" and status < 300:
        return BodyFraming.TUNNEL, 0
    if head.chunked:
        return BodyFraming.CHUNKED, 0
    if head.other_coding:
        return BodyFraming.UNTIL_CLOSE, 0
    if head.content_length > 0:
        return BodyFraming.LENGTH, head.content_length
    if head.content_length == 0:
        return BodyFraming.NONE, 0
    return BodyFraming.UNTIL_CLOSE, 0


def find_message_start(
    buf: bytes | bytearray, pos: int, end: int, at_line_start: bool, kind: MessageKind | None, max_line: int
) -> tuple[ParseState, int]:
    """Hunt for the next plausible message start at a line boundary in ``buf[pos:end]``.

    ``at_line_start`` says whether ``buf[pos]`` itself begins a line.  A request line must
    read ``METHOD SP target SP HTTP/1.x`` and a status line ``HTTP/1.x SP ddd``.  Returns
    SUCCESS and the index of a complete candidate start line; NEEDS_MORE_DATA and the index of
    a line that may still become one (keep from there); INVALID when there is nothing worth
    keeping (drop everything).
    """
    i = buf.find(b"HTTP/1.", pos, end)
    while i >= 0:
        if i > pos:
            before = buf[i - 1]
        else:
            before = 10 if at_line_start else -1
        if before == 10 and kind is not REQUEST:
            if _STATUS_LINE_START.match(buf, i, end):
                return SUCCESS, i
            if end - i < 13 and _STATUS_LINE_PREFIX.fullmatch(buf, i, end):
                return NEEDS_MORE_DATA, i
        elif before == 32 and kind is not RESPONSE:
            nl = buf.rfind(b"\n", max(pos, i - max_line), i)
            if nl >= 0 or (at_line_start and i - pos <= max_line):
                line = nl + 1 if nl >= 0 else pos
                if _REQUEST_LINE_HEAD.fullmatch(buf, line, i):
                    if _REQUEST_LINE.match(buf, line, min(end, i + 10)):
                        return SUCCESS, line
                    if end - i < 10 and _REQUEST_LINE_PREFIX.fullmatch(buf, line, end):
                        return NEEDS_MORE_DATA, line
        i = buf.find(b"HTTP/1.", i + 1, end)
    nl = buf.rfind(b"\n", pos, end)
    line = nl + 1 if nl >= 0 else (pos if at_line_start else end)
    if line < end and end - line <= max_line and is_plausible_start(buf, line, end, kind):
        return NEEDS_MORE_DATA, line
    return INVALID, end
