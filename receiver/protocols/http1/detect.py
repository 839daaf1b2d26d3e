"""Protocol inference: do the first bytes of a direction look like HTTP/1.x?"""

from __future__ import annotations

import re

from .parse import HTTP_VERSION_PREFIX, MAX_METHOD, MAX_START_LINE, TARGET_CHAR, TOKEN_CHAR

_STATUS_START = re.compile(rb"HTTP/1\.[0-9] [1-9][0-9]{2}(?:[ \t\r\n]|\Z)")
_REQUEST_LINE = re.compile(TOKEN_CHAR + rb"{1,%d} " % MAX_METHOD + TARGET_CHAR + rb"+ HTTP/1\.[0-9]\r?\n")
# A first line cut short by the capture: only well-known methods, and the target must start.
_REQUEST_LINE_CUT = re.compile(
    rb"(?:GET|HEAD|POST|PUT|DELETE|CONNECT|OPTIONS|TRACE|PATCH) "
    + TARGET_CHAR
    + rb"+(?: (?:"
    + HTTP_VERSION_PREFIX
    + rb")?)?"
)


def detect(data: bytes) -> bool:
    """True if ``data`` starts with an HTTP/1.x request line or status line.

    ``METHOD SP target SP HTTP/1.x CRLF`` (any token method) or ``HTTP/1.x SP ddd``.  When the
    capture holds less than the first line, a well-known method followed by a target is enough.
    """
    try:
        if data[:7] == b"HTTP/1.":
            return _STATUS_START.match(data) is not None
        head = data[:MAX_START_LINE]
        if _REQUEST_LINE.match(head):
            return True
        return b"\n" not in head and _REQUEST_LINE_CUT.fullmatch(head) is not None
    except Exception:  # detection must never fail the caller
        return False
