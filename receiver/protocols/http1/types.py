"""HTTP/1.x messages as the parser hands them out: frozen, slotted, plain data.

Sizes are *wire* sizes, worked out from lengths on the wire rather than from the bytes that
were captured, so a message whose body was partly lost to a truncated capture still reports
its real size.

* ``head_size``  — start line + header fields + the blank line.
* ``body_size``  — payload bytes: the Content-Length, or the sum of the chunk sizes of a
  chunked body, or the bytes up to connection close of a close-delimited body.
* ``wire_size``  — every byte the message occupied: head, body, and for a chunked body the
  chunk-size lines, chunk CRLFs, last chunk and trailer section.
* ``truncated``  — the end of the body was never seen (a capture gap swallowed the chunk
  framing, or the connection closed early); ``body_size``/``wire_size`` are then lower bounds.

Header fields keep their wire spelling and order, repeats included; :meth:`header` and
:meth:`header_values` look names up case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass

Headers = tuple[tuple[str, str], ...]


class _HeaderLookup:
    """Case-insensitive header access shared by requests and responses."""

    __slots__ = ()
    headers: Headers

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def header_values(self, name: str) -> tuple[str, ...]:
        """Every value of header ``name`` (any case), in wire order."""
        wanted = name.lower()
        return tuple(value for key, value in self.headers if key.lower() == wanted)


@dataclass(frozen=True, slots=True)
class Http1Request(_HeaderLookup):
    """One HTTP/1.x request: ``method`` and ``target`` as sent, ``version`` like ``"1.1"``."""

    method: str
    target: str
    version: str
    headers: Headers
    body_size: int
    head_size: int
    wire_size: int
    chunked: bool = False
    trailers: Headers = ()
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Http1Response(_HeaderLookup):
    """One final HTTP/1.x response (status >= 200, or 101).

    ``interim_status_codes`` lists the 1xx interim responses (``100 Continue``,
    ``103 Early Hints``...) that preceded it for the same request; their bytes are not part of
    this response's sizes.  ``close_delimited`` means the body ran to connection close.
    """

    version: str
    status_code: int
    reason: str
    headers: Headers
    body_size: int
    head_size: int
    wire_size: int
    chunked: bool = False
    trailers: Headers = ()
    truncated: bool = False
    close_delimited: bool = False
    interim_status_codes: tuple[int, ...] = ()
