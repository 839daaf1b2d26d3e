"""Protocol inference: do the first bytes of a direction look like Redis (RESP)?

Clients (redis-cli, redis-py, every driver) send RESP arrays; inline commands are what a person
types.  Two line protocols look like inline commands: memcached's text protocol (``set k 0 0 5``,
``get k``, ``incr k 1``: lower-case, and memcached knows no upper-case command) and NATS (``INFO
{...}`` from the server, ``CONNECT {...}`` from the client).  :func:`detection` says ``NO`` to
their shapes and ``MAYBE`` to an inline line both Redis and memcached would take (``get k``): the
reply tells them apart — so a bulk-string or integer reply (``$-1``, ``$5``, ``:1``, what Redis
answers ``get k``/``incr k``/``touch k``), too short to claim a connection by itself, is a
``MAYBE`` that names Redis among the candidates.  :func:`detect` is true only for ``YES``.
"""

from __future__ import annotations

import re

from receiver.protocols.api import Detection
from receiver.protocols.base import Direction

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


# memcached's storage line: <cmd> <key> <flags> <exptime> <bytes> [cas] [noreply] — numeric fields
# a Redis SET never has in that order; and commands whose lower-case form memcached shares.
_MEMCACHED_STORAGE = re.compile(
    rb"(?:set|add|replace|append|prepend|cas) [!-~]{1,250} [0-9]{1,10} -?[0-9]{1,12} [0-9]{1,12}( [0-9]{1,20})?"
    rb"( noreply)?\r?\n"
)
_MEMCACHED_NOREPLY = re.compile(rb"(?:incr|decr|touch|delete|flush_all)\b[^\r\n]* noreply\r?\n")
_SHARED_LOWERCASE = frozenset({b"get", b"incr", b"decr", b"touch"})
_ONE_KEY = frozenset({b"get", b"incr", b"decr"})  # Redis takes exactly one argument; memcached more
_JSON_ARGUMENT = re.compile(rb"[A-Za-z]{2,20}[ \t]+\{")
# A value reply: a bulk string (or the RESP2 null), an integer, the RESP3 null.
_VALUE_REPLY = re.compile(rb"(?:\$(?:-1|0|[1-9][0-9]{0,8})|:-?(?:0|[1-9][0-9]{0,18})|_)\r\n")


def detection(data: bytes, direction: Direction | None = None) -> Detection:
    """How much ``data`` looks like Redis: ``YES`` as :func:`detect` says, ``NO`` for memcached
    storage/noreply lines and NATS JSON lines, ``MAYBE`` for a lower-case inline command
    memcached also has (``get k``, ``incr k``, ``touch k 10``) and for a value reply."""
    try:
        first = data[:1]
        if first in (b"$", b":", b"_"):
            return Detection.MAYBE if _VALUE_REPLY.match(data) else Detection.NO
        if first not in (b"*", b"+", b"-", b"%") and data[:1].isalpha():
            if _JSON_ARGUMENT.match(data) or _MEMCACHED_STORAGE.match(data) or _MEMCACHED_NOREPLY.match(data):
                return Detection.NO
            line = data.split(b"\n", 1)[0].split()
            word = line[0] if line else b""
            if word in _SHARED_LOWERCASE:
                if word in _ONE_KEY and len(line) != 2:
                    return Detection.NO
                return Detection.MAYBE if _plain_detect(data) else Detection.NO
        return Detection.YES if _plain_detect(data) else Detection.NO
    except Exception:  # detection must never fail the caller
        return Detection.NO


def detect(data: bytes) -> bool:
    """True if ``data`` starts with a Redis command or a typical Redis reply and with nothing
    memcached or NATS would send (see :func:`detection`)."""
    return detection(data) is Detection.YES


def _plain_detect(data: bytes) -> bool:
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
