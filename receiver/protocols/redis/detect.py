"""Protocol inference: do the first bytes of a direction look like Redis (RESP)?"""

from __future__ import annotations

import re

from .commands import KNOWN_COMMANDS

# A command: an array of bulk strings whose first one names a known command.
_COMMAND_ARRAY = re.compile(rb"\*[1-9][0-9]{0,6}\r\n\$([1-9][0-9]?)\r\n")
# An inline command (redis-cli, a telnet user): a known command word, maybe arguments, CRLF.
_INLINE = re.compile(rb"([A-Za-z]{2,20})(?:[ \t][^\r\n]{0,1024})?\r\n")
# Words other line protocols (SMTP, POP3, FTP, IMAP...) also send as a whole line.
_AMBIGUOUS_INLINE = frozenset({"QUIT", "AUTH"})
# Typical first replies of a server: status replies, error replies with a Redis error code, and
# the map RESP3's HELLO answers with.
_REPLY = re.compile(
    rb"\+(?:OK|PONG|QUEUED)\r\n"
    rb"|-(?:ERR|WRONGTYPE|NOAUTH|NOPERM|WRONGPASS|NOPROTO|MOVED|ASK|LOADING|BUSY|NOSCRIPT|EXECABORT|READONLY"
    rb"|MISCONF|CROSSSLOT|CLUSTERDOWN|OOM|TRYAGAIN|MASTERDOWN|NOREPLICAS|UNBLOCKED) [^\r\n]*\r\n"
    rb"|%[1-9][0-9]?\r\n\$6\r\nserver\r\n"
)


def detect(data: bytes) -> bool:
    """True if ``data`` starts with a Redis command or a typical Redis reply.

    * ``*<n>\\r\\n$<len>\\r\\n<NAME>`` with ``NAME`` a known command (any case);
    * an inline command: a known command word, optional arguments, CRLF — except lines of HTTP
      (``GET / HTTP/1.1``) and the words other line protocols share (``QUIT``, ``AUTH``);
    * ``+OK``/``+PONG``/``+QUEUED``, ``-ERR ...``/``-WRONGTYPE ...`` and other Redis error codes,
      or the ``HELLO 3`` map.
    """
    try:
        first = data[:1]
        if first == b"*":
            m = _COMMAND_ARRAY.match(data)
            if m is None:
                return False
            start = m.end()
            stop = start + int(m.group(1))
            word = data[start:stop]
            if len(word) != stop - start or data[stop : stop + 2] not in (b"\r\n", b"\r", b""):
                return False
            return word.upper().decode("ascii", "replace") in KNOWN_COMMANDS
        if first in (b"+", b"-", b"%"):
            return _REPLY.match(data) is not None
        m = _INLINE.match(data)
        if m is None:
            return False
        word = m.group(1).upper().decode("ascii")
        if word not in KNOWN_COMMANDS or word in _AMBIGUOUS_INLINE:
            return False
        line = m.group(0)
        return b" HTTP/" not in line and not line.startswith((b"GET /", b"get /"))
    except Exception:  # detection must never fail the caller
        return False
