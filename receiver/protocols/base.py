"""The one contract every protocol follows (sans-I/O: bytes in, typed messages out).

A protocol package ``receiver/protocols/<proto>/`` provides:

* ``detect(data: bytes) -> bool`` — do these first bytes of a direction look like this protocol;
* a *session* class implementing :class:`ProtocolSession`, one per connection, fed the byte
  streams of both directions and returning finished :class:`Transaction` objects.

Internally each protocol finds frame boundaries, parses frames (consuming bytes only on
success, returning a :class:`ParseState` instead of raising) and stitches requests to
responses.  Parsers never raise on wire data, never do I/O, never read clocks, never log.
Timestamps come in with the bytes.
"""

from __future__ import annotations

import enum
from typing import Protocol

from receiver.model.endpoints import Direction, Role
from receiver.model.transaction import Transaction

__all__ = ["Direction", "ParseState", "ProtocolSession", "Role", "Transaction"]


class ParseState(enum.Enum):
    """Outcome of one attempt to parse one frame from the head of a buffer."""

    SUCCESS = "success"  # a frame was parsed; its bytes are consumed
    NEEDS_MORE_DATA = "needs_more_data"  # a frame has started but is incomplete; nothing consumed
    IGNORED = "ignored"  # a well-formed frame the protocol does not turn into a message; consumed
    INVALID = "invalid"  # not a frame: the caller resynchronises (skips to the next boundary)


class ProtocolSession(Protocol):
    """Per-connection parser+stitcher.  Implementations never raise on wire data."""

    protocol: str
    parse_errors: int  # frames that could not be parsed (monotonic; read by the pipeline)

    def feed(self, direction: Direction, data: bytes, ts_ns: int, total_len: int | None = None) -> list[Transaction]:
        """Feed bytes seen in one direction.

        ``total_len`` is the length the syscall really transferred; when it is larger than
        ``len(data)`` the capture was truncated and ``total_len - len(data)`` bytes are missing
        after ``data`` (the parser skips them using lengths from the wire, or resynchronises).
        """
        ...

    def close(self, ts_ns: int) -> list[Transaction]:
        """The connection closed: flush what can be completed (e.g. close-delimited bodies)."""
        ...
