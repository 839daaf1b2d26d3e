"""Protocol inference: do the first bytes of a direction look like PostgreSQL protocol 3?"""

from __future__ import annotations

from .parse import (
    BACKEND,
    FRONTEND,
    HEADER,
    UNTYPED_STARTUP,
    chain,
    parse_startup,
    untyped_kind,
    valid_prefix,
)

_FRONTEND_OPENERS = b"QPB"  # a query, a parse, or (prepared statements) a bind
_BACKEND_OPENERS = b"RKSZTDCIENA123ntsGHWVv"
_SINGLE_BACKEND = b"ZCETRSK"  # one of these alone, filling the capture exactly, is enough
_MIN_TEXT = 8  # visible query bytes needed to believe an incomplete Query/Parse


def detect(data: bytes) -> bool:
    """True if ``data`` starts like a PostgreSQL v3 connection or a message sequence in one.

    * a StartupMessage (protocol 3.x, parameters NUL-terminated and naming a ``user``), an
      SSLRequest, a GSSENCRequest or a CancelRequest;
    * mid-stream, a frontend Query/Parse/Bind whose layout checks out (a Query's text is
      printable and NUL-terminated) — or its first bytes, if the capture holds less;
    * mid-stream, backend messages whose layouts check out: two or more, or one
      ReadyForQuery/CommandComplete/ErrorResponse/... that fills ``data`` exactly.

    Lengths must be sane (no message reaches 1 GiB), which is what rejects text protocols:
    ``GET /`` read as a type byte and a length is a 1.1 GiB message.
    """
    try:
        size = len(data)
        if size < HEADER:
            return False
        found = untyped_kind(data, 0, size)
        if found is not None:
            kind, length = found
            if kind != UNTYPED_STARTUP:  # the magic request codes are distinctive enough
                return True
            startup = parse_startup(bytes(data[:length]), size >= length, length)
            return startup is not None and startup.user is not None
        first = data[0]
        if first in _FRONTEND_OPENERS:
            complete, clean, _ = chain(data, 0, size, FRONTEND)
            if clean and complete >= 1:
                return True
            if clean and complete == 0 and first != ord("B") and size - HEADER >= _MIN_TEXT:
                return valid_prefix(FRONTEND, first, bytes(data[HEADER:]))
        if first in _BACKEND_OPENERS:
            complete, clean, at_end = chain(data, 0, size, BACKEND)
            return clean and (complete >= 2 or complete == 1 and at_end and first in _SINGLE_BACKEND)
        return False
    except Exception:  # detection must never fail the caller
        return False
