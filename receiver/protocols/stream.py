"""The skeleton every protocol session shares: two directions fed bytes, never an exception out.

A session (one per connection) subclasses :class:`StreamSession` and implements three hooks:

* ``_feed(direction, data, missing, ts_ns, out)`` — parse ``data`` seen in one direction; when
  ``missing`` > 0 that many bytes after ``data`` were not captured (``total_len`` of the syscall
  was larger than what the kernel copied): skip them using lengths on the wire, or resynchronise;
* ``_recover(ts_ns)`` — a bug raised inside ``_feed`` (never wire data: parsers return states):
  put every direction back into a state that hunts for the next frame;
* ``_close(ts_ns, out)`` — the connection ended: finish what can be finished (close-delimited
  bodies, unanswered requests).

The skeleton owns what was copied five times before: ignoring input after close, computing the
missing length, containing and counting internal errors (``internal_errors``; they also count as
``parse_errors`` unless the session counts its parse errors itself), and making ``close``
idempotent.  Transactions finished by a call are appended to ``out`` and returned.
"""

from __future__ import annotations

from receiver.model.endpoints import Direction
from receiver.model.transaction import Transaction


class ByteStream:
    """One direction's parse state: the bytes carried over between feeds and when they came."""

    __slots__ = ("direction", "buf", "buf_ts")

    def __init__(self, direction: Direction) -> None:
        self.direction = direction
        self.buf = bytearray()
        self.buf_ts = 0  # ts of the feed that carried buf[0]


class StreamSession:
    """Base of the protocol sessions (implements ``ProtocolSession`` with the hooks above)."""

    protocol: str = ""
    # False for sessions whose parse_errors is computed from their readers (Redis).
    internal_errors_are_parse_errors = True

    def __init__(self) -> None:
        if self.internal_errors_are_parse_errors:
            self.parse_errors = 0
        self.internal_errors = 0  # exceptions caught at the top level: parser bugs, never wire data
        self._closed = False

    def feed(self, direction: Direction, data: bytes, ts_ns: int, total_len: int | None = None) -> list[Transaction]:
        """Feed bytes seen in one direction; return the transactions they completed."""
        out: list[Transaction] = []
        if self._closed:
            return out
        try:
            size = len(data)
            self._feed(direction, data, total_len - size if total_len is not None and total_len > size else 0,
                       ts_ns, out)
        except Exception:  # defensive: a bug must not take the pipeline down
            self._internal_error()
            try:
                self._recover(ts_ns)
            except Exception:
                self.internal_errors += 1
        return out

    def close(self, ts_ns: int) -> list[Transaction]:
        """The connection closed: flush what can be completed.  Later calls return nothing."""
        out: list[Transaction] = []
        if self._closed:
            return out
        self._closed = True
        try:
            self._close(ts_ns, out)
        except Exception:  # defensive, as in feed()
            self._internal_error()
        return out

    def _internal_error(self) -> None:
        self.internal_errors += 1
        if self.internal_errors_are_parse_errors:
            self.parse_errors += 1

    # -- the hooks ------------------------------------------------------------------------------

    def _feed(self, direction: Direction, data: bytes, missing: int, ts_ns: int, out: list[Transaction]) -> None:
        raise NotImplementedError

    def _recover(self, ts_ns: int) -> None:
        raise NotImplementedError

    def _close(self, ts_ns: int, out: list[Transaction]) -> None:
        raise NotImplementedError
