"""PostgreSQL (frontend/backend protocol 3.0) transactions as the session hands them out.

A :class:`~receiver.protocols.base.Transaction` of protocol ``"postgresql"`` carries a
:class:`PgRequest` and a :class:`PgResponse` (``None`` when the connection closed before any
answer).  What one transaction is:

* ``SIMPLE_QUERY`` — one ``Query`` ('Q') message and everything the server sent up to its
  ``ReadyForQuery`` ('Z').  A query string holding several statements stays **one**
  transaction; :attr:`PgResponse.commands` lists one :class:`PgCommand` per statement that
  completed, in order (the server stops at the first error, which goes to ``error``).
* ``EXECUTE`` — one extended-protocol ``Execute`` ('E') and its result (``CommandComplete``,
  ``EmptyQueryResponse``, ``PortalSuspended`` or ``ErrorResponse``).  The request is the
  ``Parse``/``Bind``/``Describe``/``Close`` messages sent since the previous ``Execute`` or
  ``Sync`` plus the ``Execute`` itself; the query text is resolved through the portal to its
  prepared statement, however long ago that was ``Parse``d.  Pipelined Executes (several
  before one ``Sync``) are one transaction each, paired in order.  After an error the server
  skips to the next ``Sync``: the pipeline's later Executes come out with status ``ABORTED``
  (they were never run; ``error`` is ``None``) when the ``ReadyForQuery`` arrives.
* ``PREPARE`` — a ``Parse`` (or ``Bind``...) with no ``Execute`` before its ``Sync`` that the
  server *rejected*; a successful prepare-only round trip is not a transaction.
* ``FUNCTION_CALL`` — a fast-path ``FunctionCall`` ('F') up to its ``ReadyForQuery``.

When the capture lost the end of an answer (a truncated capture, the connection closing),
the request still comes out, with the part of the answer that was seen and status
``INCOMPLETE``; a request none of whose answer was seen is dropped (counted by the session),
except at close, where it comes out with ``response=None``.

Secrets never reach these objects: password / SASL / GSS messages are skipped unread and Bind
parameter *values* are never kept (only their number).  Query text is kept as sent — literals
included — so redaction belongs to the pipeline's processors.

Sizes are wire sizes (every byte of the messages counted, from their length fields).
Connection facts from the startup message (``database``, ``user``, ``application_name``) are
copied onto every request; they are ``None`` when the capture began after the startup.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

PROTOCOL = "postgresql"


class PgRequestKind(enum.Enum):
    SIMPLE_QUERY = "simple_query"
    EXECUTE = "execute"
    PREPARE = "prepare"
    FUNCTION_CALL = "function_call"


class PgStatus(enum.Enum):
    OK = "ok"  # every statement completed
    ERROR = "error"  # the server answered with an ErrorResponse (see PgResponse.error)
    EMPTY = "empty"  # EmptyQueryResponse: the query string held no statement
    SUSPENDED = "suspended"  # PortalSuspended: an Execute's row limit was reached
    ABORTED = "aborted"  # skipped by the server after an earlier error in the same pipeline
    INCOMPLETE = "incomplete"  # the end of the answer was lost (capture gap, connection closed)


@dataclass(frozen=True, slots=True)
class PgCommand:
    """One ``CommandComplete``: ``tag`` as sent (``"INSERT 0 3"``), ``operation`` its command
    words (``"INSERT"``, ``"CREATE TABLE"``), ``rows`` the row count it reports (``None`` for
    commands without one, like ``BEGIN``)."""

    tag: str
    operation: str
    rows: int | None


@dataclass(frozen=True, slots=True)
class PgError:
    """The fields of an ``ErrorResponse`` the pipeline needs (detail/hint are not kept: they
    can quote row values).  ``severity`` is the non-localized 'V' field when present, else 'S'."""

    severity: str
    sqlstate: str  # 'C', e.g. "42P01"
    message: str  # 'M'


@dataclass(frozen=True, slots=True)
class PgRequest:
    kind: PgRequestKind
    query: str | None  # SQL text; None if unknown (e.g. statement prepared before the capture began)
    statement_name: str | None = None  # extended protocol: prepared statement ("" = unnamed)
    portal_name: str | None = None  # extended protocol: portal ("" = unnamed)
    parameter_count: int | None = None  # extended protocol: Bind parameters (values never kept)
    row_limit: int | None = None  # Execute's maximum row count (0 = no limit)
    database: str | None = None
    user: str | None = None
    application_name: str | None = None
    wire_size: int = 0
    query_truncated: bool = False  # the text was cut short (capture size or buffer bound)


@dataclass(frozen=True, slots=True)
class PgResponse:
    status: PgStatus
    commands: tuple[PgCommand, ...] = ()
    error: PgError | None = None
    data_rows: int = 0  # DataRow messages seen (a lower bound if the capture lost bytes)
    wire_size: int = 0

    @property
    def operation(self) -> str | None:
        """The operation of the first completed command (``None`` if none completed)."""
        return self.commands[0].operation if self.commands else None

    @property
    def rows(self) -> int | None:
        """Rows reported by the commands' tags, summed (``None`` if no tag reports a count)."""
        counts = [c.rows for c in self.commands if c.rows is not None]
        return sum(counts) if counts else None


@dataclass(frozen=True, slots=True)
class PgStartup:
    """A StartupMessage, reduced to what telemetry needs (other parameters are dropped)."""

    protocol_version: tuple[int, int]
    user: str | None
    database: str | None
    application_name: str | None
    wire_size: int
