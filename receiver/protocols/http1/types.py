"""HTTP/1.x messages as the parser hands them out: immutable, plain data.

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

Messages are built for every request on the capture thread, so they are cheap to build: tuple
subclasses (immutable like the frozen dataclasses they replace: fields cannot be set; equality,
hash and repr as before) whose ``headers`` may be given as the raw field section (``bytes``, as
the parser validated it: field lines of ``token ":" value`` ending in LF or CRLF, no other CR).
The ``(name, value)`` pairs are then made on first access, and :meth:`header` looks a name up in
the raw bytes without making them at all — most headers of most messages are never read.
The session builds them without the constructor call, as ``tuple.__new__(cls, values)``:
``values`` in ``_fields`` order, but ``headers`` as the list ``[headers, None]`` (see
:class:`_HeaderLookup`).
"""

from __future__ import annotations

import re

try:
    from _collections import _tuplegetter
except ImportError:  # pragma: no cover - other interpreters
    from operator import itemgetter as _itemgetter

    def _tuplegetter(index, doc):  # type: ignore[no-redef]
        return property(_itemgetter(index), doc=doc)


Headers = tuple[tuple[str, str], ...]

_tuple_new = tuple.__new__
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_needles: dict[str, bytes | None] = {}  # header name -> b"\n" + lowercased name + b":" (None: not a token)


def fields_of_raw(raw: bytes) -> Headers:
    """``(name, value)`` pairs of a raw field section the parser validated (see module doc)."""
    out = []
    for line in raw.decode("latin-1").split("\n")[:-1]:
        name, _, value = line.partition(":")
        out.append((name, value.strip(" \t\r")))  # the only CR a line may hold ends it
    return tuple(out)


def _needle(name: str) -> bytes | None:
    needle = _needles.get(name, b"")
    if needle == b"":
        needle = None
        if _TOKEN.fullmatch(name):
            needle = b"\n" + name.lower().encode("ascii") + b":"
        if len(_needles) < 1024:
            _needles[name] = needle
    return needle


class _HeaderLookup:
    """Case-insensitive header access shared by requests and responses.

    Subclasses keep, at index ``_H``, a two-item list: the headers (a tuple of pairs, or the raw
    field section until the pairs are first needed) and the lowered raw section (or None)."""

    __slots__ = ()
    _H = 3

    @property
    def headers(self) -> Headers:
        """Every ``(name, value)`` field in wire order, repeats included."""
        cell = self[self._H]  # type: ignore[index]
        h = cell[0]
        if h.__class__ is bytes:
            h = cell[0] = fields_of_raw(h)
        return h

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        cell = self[self._H]  # type: ignore[index]
        h = cell[0]
        if h.__class__ is bytes:
            needle = _needles.get(name) or _needle(name)
            if needle is not None:
                low = cell[1]
                if low is None:  # lowered once, after an LF so that every field line follows one
                    low = cell[1] = b"\n" + h.lower()
                i = low.find(needle)
                if i < 0:
                    return None
                i += len(needle) - 1  # where the value starts in h
                return h[i : h.find(b"\n", i)].decode("latin-1").strip(" \t\r")
            h = self.headers
        wanted = name.lower()
        for key, value in h:
            if key.lower() == wanted:
                return value
        return None

    def header_values(self, name: str) -> tuple[str, ...]:
        """Every value of header ``name`` (any case), in wire order."""
        wanted = name.lower()
        return tuple(value for key, value in self.headers if key.lower() == wanted)

    # -- dataclass-like behaviour --------------------------------------------------------------

    def _astuple(self) -> tuple:
        values = list(tuple.__iter__(self))  # type: ignore[arg-type]
        values[self._H] = self.headers
        return tuple(values)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._astuple() == other._astuple()  # type: ignore[attr-defined]

    def __ne__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._astuple() != other._astuple()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._astuple())

    def __repr__(self) -> str:
        values = self._astuple()
        inner = ", ".join(f"{n}={v!r}" for n, v in zip(self._fields, values))  # type: ignore[attr-defined]
        return f"{type(self).__name__}({inner})"

    def __getnewargs__(self) -> tuple:
        return self._astuple()

    def __iter__(self):
        raise TypeError(f"{type(self).__name__} is not iterable")

    def __lt__(self, other: object) -> bool:
        return NotImplemented

    __le__ = __gt__ = __ge__ = __lt__


class Http1Request(_HeaderLookup, tuple):  # type: ignore[misc]
    """One HTTP/1.x request: ``method`` and ``target`` as sent, ``version`` like ``"1.1"``."""

    __slots__ = ()
    _fields = ("method", "target", "version", "headers", "body_size", "head_size", "wire_size", "chunked",
               "trailers", "truncated")

    def __new__(
        cls,
        method: str,
        target: str,
        version: str,
        headers: Headers | bytes,
        body_size: int,
        head_size: int,
        wire_size: int,
        chunked: bool = False,
        trailers: Headers = (),
        truncated: bool = False,
    ) -> Http1Request:
        return _tuple_new(cls, (method, target, version, [headers, None], body_size, head_size, wire_size, chunked,
                                trailers, truncated))

    method: str = _tuplegetter(0, "method as sent")  # type: ignore[assignment]
    target: str = _tuplegetter(1, "request target as sent")  # type: ignore[assignment]
    version: str = _tuplegetter(2, '"1.1", "1.0"')  # type: ignore[assignment]
    body_size: int = _tuplegetter(4, "payload bytes")  # type: ignore[assignment]
    head_size: int = _tuplegetter(5, "start line + fields + blank line")  # type: ignore[assignment]
    wire_size: int = _tuplegetter(6, "every byte of the message")  # type: ignore[assignment]
    chunked: bool = _tuplegetter(7, "chunked transfer coding")  # type: ignore[assignment]
    trailers: Headers = _tuplegetter(8, "trailer fields of a chunked body")  # type: ignore[assignment]
    truncated: bool = _tuplegetter(9, "the end of the body was never seen")  # type: ignore[assignment]


class Http1Response(_HeaderLookup, tuple):  # type: ignore[misc]
    """One final HTTP/1.x response (status >= 200, or 101).

    ``interim_status_codes`` lists the 1xx interim responses (``100 Continue``,
    ``103 Early Hints``...) that preceded it for the same request; their bytes are not part of
    this response's sizes.  ``close_delimited`` means the body ran to connection close.
    """

    __slots__ = ()
    _fields = ("version", "status_code", "reason", "headers", "body_size", "head_size", "wire_size", "chunked",
               "trailers", "truncated", "close_delimited", "interim_status_codes")

    def __new__(
        cls,
        version: str,
        status_code: int,
        reason: str,
        headers: Headers | bytes,
        body_size: int,
        head_size: int,
        wire_size: int,
        chunked: bool = False,
        trailers: Headers = (),
        truncated: bool = False,
        close_delimited: bool = False,
        interim_status_codes: tuple[int, ...] = (),
    ) -> Http1Response:
        return _tuple_new(cls, (version, status_code, reason, [headers, None], body_size, head_size, wire_size, chunked,
                                trailers, truncated, close_delimited, interim_status_codes))

    version: str = _tuplegetter(0, '"1.1", "1.0"')  # type: ignore[assignment]
    status_code: int = _tuplegetter(1, "status code")  # type: ignore[assignment]
    reason: str = _tuplegetter(2, "reason phrase")  # type: ignore[assignment]
    body_size: int = _tuplegetter(4, "payload bytes")  # type: ignore[assignment]
    head_size: int = _tuplegetter(5, "start line + fields + blank line")  # type: ignore[assignment]
    wire_size: int = _tuplegetter(6, "every byte of the message")  # type: ignore[assignment]
    chunked: bool = _tuplegetter(7, "chunked transfer coding")  # type: ignore[assignment]
    trailers: Headers = _tuplegetter(8, "trailer fields of a chunked body")  # type: ignore[assignment]
    truncated: bool = _tuplegetter(9, "the end of the body was never seen")  # type: ignore[assignment]
    close_delimited: bool = _tuplegetter(10, "the body ran to connection close")  # type: ignore[assignment]
    interim_status_codes: tuple[int, ...] = _tuplegetter(11, "1xx codes before it")  # type: ignore[assignment]
