"""Memcached messages as the parser hands them out: frozen, slotted, plain data.

A request never holds keys or values: the command name, how many keys it named, whether the
server will answer (``noreply``, the meta quiet flag ``q``), the size of the data block it
carried.  A response keeps its status word, hit and miss counts for retrievals, and for error
replies the (bounded) message.  Sizes are wire sizes, from lengths on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass

PROTOCOL = "memcached"

# Reply status words that are errors (``error.type``).
ERROR_STATUSES = frozenset({"ERROR", "CLIENT_ERROR", "SERVER_ERROR"})


@dataclass(frozen=True, slots=True)
class MemcachedRequest:
    """One command sent to a memcached server (text or meta protocol).

    * ``command`` — the command word as memcached names it (``"get"``, ``"set"``, ``"mg"``...);
      ``"unknown"`` for a word memcached does not know (it answers ``ERROR``).
    * ``key_count`` — keys named (``get a b c`` → 3; 0 for ``stats``, ``version``, ``mn``).
    * ``noreply`` — the text protocol's ``noreply``, or a command the server never answers
      (``quit``): no reply is expected.
    * ``quiet`` — the meta ``q`` flag: the server suppresses the reply when it would be the
      command's common outcome (``mg``: ``EN``; ``ms``/``md``/``ma``: ``HD``), errors still come.
    * ``data_size`` — the declared data-block size of a storage command (``set``, ``ms``...).
    * ``opaque`` — the meta ``O`` token (echoed by the server; bounded), else ``None``.
    * ``flags`` — the meta flag letters, sorted (``"qsv"`` for ``mg k v s q``); ``""`` otherwise.
    """

    command: str
    key_count: int
    noreply: bool
    quiet: bool
    data_size: int | None
    opaque: str | None
    wire_size: int
    truncated: bool = False
    flags: str = ""


@dataclass(frozen=True, slots=True)
class MemcachedResponse:
    """The reply to one request.

    * ``status`` — the reply's status word: ``"STORED"``, ``"NOT_FOUND"``, ``"END"`` (a retrieval;
      ``hits`` says how many ``VALUE`` lines came before it), ``"VA"``/``"HD"``/``"EN"``... for
      meta commands, ``"NUMBER"`` for an incr/decr result, ``"STAT"`` for stats, ``"VERSION"``,
      ``"ERROR"``/``"CLIENT_ERROR"``/``"SERVER_ERROR"``.
    * ``hits`` / ``misses`` — for retrievals (``get``/``gets``/``gat``/``gats``: values returned,
      keys without one; ``mg``: 1/0 or 0/1); ``None`` for other commands.
    * ``error_message`` — the text after ``CLIENT_ERROR``/``SERVER_ERROR``, bounded.
    * ``implied`` — no reply was sent: a quiet meta command whose suppressed outcome is inferred
      from the replies that followed (``mg ... q`` followed by a later reply: a miss).
    """

    status: str
    hits: int | None
    misses: int | None
    error_message: str | None
    wire_size: int
    truncated: bool = False
    implied: bool = False

    @property
    def is_error(self) -> bool:
        return self.status in ERROR_STATUSES
