"""Pairing PostgreSQL requests with their results on one connection.

The protocol has no request ids: the server answers strictly in order.  The frontend side
turns its messages into *pending items*, queued in the order sent:

* ``QUERY`` / ``FUNCTION`` — a simple Query or a FunctionCall; answered up to ReadyForQuery;
* ``EXECUTE`` — an extended-protocol Execute (with the Parse/Bind/... sent just before it);
  answered by one CommandComplete, EmptyQueryResponse, PortalSuspended or ErrorResponse;
* ``SYNC`` — a Sync; answered by ReadyForQuery.  It carries the messages sent since the last
  Execute (a prepare-only Parse...), so that an error they cause can be reported;
* ``GAP`` — frontend bytes were lost (capture gap, parse error): whatever they held is
  answered up to the next ReadyForQuery, which the GAP absorbs.  Lost bytes may also have
  held no request at all (garbage): a GAP that has absorbed nothing yet is dropped when a
  backend message arrives after the next request was already sent — clients mostly wait
  for an answer before sending more, so that answer is the next request's;
* ``OVERFLOW`` — once ``max_pending`` items wait, later ones are not kept but *counted*
  here (and in ``dropped_requests``), so answers still pair with the right requests.

Backend messages are credited to the item at the head of the queue.  An ErrorResponse in the
extended protocol makes the server skip to the next Sync: the Executes queued before that Sync
come out with status ``ABORTED`` when its ReadyForQuery arrives.

The statement map (name → query text) follows Parse, Close('S'), DEALLOCATE and DISCARD; it
is bounded in entries and in bytes of text (oldest evicted first, counted).  Portals map to
the statement text they were bound to, bounded the same way.
"""

from __future__ import annotations

import re
from collections import deque

from receiver.protocols.base import Role, Transaction

from .types import PROTOCOL, PgCommand, PgError, PgRequest, PgRequestKind, PgResponse, PgStatus

DEFAULT_MAX_PENDING = 1024
DEFAULT_MAX_STATEMENTS = 256
DEFAULT_MAX_PORTALS = 64

_QUERY = 0
_EXECUTE = 1
_SYNC = 2
_FUNCTION = 3
_GAP = 4
_OVERFLOW = 5
_BARRIERS = (_QUERY, _SYNC, _FUNCTION, _GAP)  # items that end at a ReadyForQuery
_REQUEST_KINDS = {_QUERY: PgRequestKind.SIMPLE_QUERY, _EXECUTE: PgRequestKind.EXECUTE, _FUNCTION: PgRequestKind.FUNCTION_CALL}

_DEALLOCATE = re.compile(r"\bDEALLOCATE\s+(?:PREPARE\s+)?(?:\"((?:[^\"]|\"\")+)\"|([A-Za-z_][\w$]*))", re.IGNORECASE)


class Item:
    """One pending request (mutable until its transaction is emitted)."""

    __slots__ = (
        "kind", "start_ns", "request_size", "query", "truncated", "statement_name", "portal_name",
        "parameter_count", "row_limit", "response_size", "data_rows", "commands", "error", "empty",
        "end_ns", "group", "barriers", "trailing", "identity",
    )

    def __init__(self, kind: int, start_ns: int, request_size: int = 0) -> None:
        self.kind = kind
        self.identity: tuple[str | None, str | None, str | None] = (None, None, None)  # as sent under
        self.start_ns = start_ns  # first byte of the request
        self.request_size = request_size
        self.query: str | None = None
        self.truncated = False
        self.statement_name: str | None = None
        self.portal_name: str | None = None
        self.parameter_count: int | None = None
        self.row_limit: int | None = None
        self.response_size = 0
        self.data_rows = 0
        self.commands: list[PgCommand] = []
        self.error: PgError | None = None
        self.empty = False
        self.end_ns = start_ns  # last byte of the response so far
        self.group = False  # SYNC: it carries Parse/Bind/... messages with no Execute
        self.barriers = 0  # OVERFLOW: ReadyForQuery answers still owed to absorbed items
        self.trailing = 0  # OVERFLOW: absorbed Executes after the last absorbed barrier


class _Group:
    """Parse/Bind/Describe/Close/Flush messages sent since the last Execute or Sync."""

    __slots__ = ("start_ns", "size", "statement_name", "query", "truncated", "portal_name", "parameter_count")

    def __init__(self, start_ns: int) -> None:
        self.start_ns = start_ns
        self.size = 0
        self.statement_name: str | None = None
        self.query: str | None = None
        self.truncated = False
        self.portal_name: str | None = None
        self.parameter_count: int | None = None


class PgStitcher:
    """FIFO pairing of frontend requests with backend results, bounded everywhere."""

    def __init__(
        self,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_statements: int = DEFAULT_MAX_STATEMENTS,
        max_statement_bytes: int = 256 * 1024,
        max_portals: int = DEFAULT_MAX_PORTALS,
    ) -> None:
        self.role = Role.UNKNOWN
        # (database, user, application_name): from the StartupMessage, the application name
        # follows ParameterStatus.  Each request keeps the identity it was sent under.
        self.identity: tuple[str | None, str | None, str | None] = (None, None, None)
        self.max_pending = max(1, max_pending)
        self.max_statements = max(1, max_statements)
        self.max_statement_bytes = max(1, max_statement_bytes)
        self.max_portals = max(1, max_portals)
        self.dropped_requests = 0  # requests never paired (over max_pending, or answers lost)
        self.unmatched_responses = 0  # results with no request to pair with (e.g. attached mid-stream)
        self.evicted_statements = 0  # statement texts dropped to keep the map bounded
        self.statements: dict[str, tuple[str | None, bool]] = {}  # name -> (query, truncated)
        self.statement_bytes = 0
        self.portals: dict[str, tuple[str, str | None, bool]] = {}  # name -> (statement, query, truncated)
        self._queue: deque[Item] = deque()
        self._group: _Group | None = None
        self._skip_to_sync = False  # an extended-protocol error: the server skips to Sync
        self.resynced = False  # backend bytes were lost since the last completed answer

    @property
    def pending(self) -> int:
        """Requests (simple queries, Executes...) seen whose transaction is not emitted yet."""
        total = 0
        for item in self._queue:
            if item.kind == _OVERFLOW:
                continue
            if item.kind != _SYNC and item.kind != _GAP:
                total += 1
        return total

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- frontend ---------------------------------------------------------------------------

    def _enqueue(self, item: Item) -> None:
        item.identity = self.identity
        queue = self._queue
        if queue and queue[-1].kind == _OVERFLOW:
            self._absorb(queue[-1], item)
        elif len(queue) >= self.max_pending:
            overflow = Item(_OVERFLOW, item.start_ns)
            self._absorb(overflow, item)
            queue.append(overflow)
        else:
            queue.append(item)

    def _absorb(self, overflow: Item, item: Item) -> None:
        kind = item.kind
        if kind == _EXECUTE or kind == _QUERY or kind == _FUNCTION:
            self.dropped_requests += 1
        if kind == _EXECUTE:
            overflow.trailing += 1
        else:  # every other kind ends at a ReadyForQuery
            overflow.barriers += 1
            overflow.trailing = 0

    def _open_group(self, ts: int) -> _Group:
        group = self._group
        if group is None:
            group = self._group = _Group(ts)
        return group

    def on_query(self, query: str, truncated: bool, size: int, ts: int) -> None:
        item = Item(_QUERY, ts, size)
        item.query = query
        item.truncated = truncated
        self._enqueue(item)

    def on_function_call(self, size: int, ts: int) -> None:
        self._enqueue(Item(_FUNCTION, ts, size))

    def on_parse(self, name: str, query: str, truncated: bool, size: int, ts: int) -> None:
        group = self._open_group(ts)
        group.size += size
        group.statement_name = name
        group.query = query
        group.truncated = truncated
        self._remember_statement(name, query, truncated)

    def on_bind(self, portal: str, statement: str, parameter_count: int | None, size: int, ts: int) -> None:
        group = self._open_group(ts)
        group.size += size
        query, truncated = self.statements.get(statement, (None, False))
        portals = self.portals
        portals.pop(portal, None)
        if len(portals) >= self.max_portals:
            del portals[next(iter(portals))]
        portals[portal] = (statement, query, truncated)
        group.portal_name = portal
        group.parameter_count = parameter_count
        if group.query is None:
            group.statement_name = statement
            group.query = query
            group.truncated = truncated

    def on_close(self, target: int, name: str, size: int, ts: int) -> None:
        self.on_group_message(size, ts)
        if target == ord("S"):
            self._forget_statement(name)
        else:
            self.portals.pop(name, None)

    def on_group_message(self, size: int, ts: int) -> None:
        """Describe/Close: part of the next Execute's (or Sync's) request."""
        self._open_group(ts).size += size

    def on_flush(self, size: int) -> None:
        """Flush: counted with an open group, never opens one (it often trails a Sync)."""
        if self._group is not None:
            self._group.size += size

    def on_execute(self, portal: str, row_limit: int, size: int, ts: int) -> None:
        group = self._group
        self._group = None
        item = Item(_EXECUTE, group.start_ns if group is not None else ts, size + (group.size if group else 0))
        bound = self.portals.get(portal)
        if bound is not None:
            item.statement_name, item.query, item.truncated = bound
        item.portal_name = portal
        item.row_limit = row_limit
        if group is not None and group.portal_name == portal:
            item.parameter_count = group.parameter_count
        self._enqueue(item)

    def on_sync(self, size: int, ts: int) -> None:
        group = self._group
        self._group = None
        if group is None:
            self._enqueue(Item(_SYNC, ts, size))
            return
        item = Item(_SYNC, group.start_ns, group.size + size)
        item.group = True
        item.query = group.query
        item.truncated = group.truncated
        item.statement_name = group.statement_name
        item.portal_name = group.portal_name
        item.parameter_count = group.parameter_count
        self._enqueue(item)

    def on_copy_data(self, size: int) -> None:
        """CopyData/CopyDone/CopyFail from the frontend: part of the COPY's request."""
        queue = self._queue
        if queue and queue[-1].kind != _OVERFLOW:
            queue[-1].request_size += size

    def on_frontend_gap(self, ts: int) -> None:
        """Frontend bytes were lost: their answers must not be credited to later requests."""
        self._group = None
        queue = self._queue
        if queue and queue[-1].kind == _GAP:
            return
        self._enqueue(Item(_GAP, ts))

    # -- statements -------------------------------------------------------------------------

    def _remember_statement(self, name: str, query: str, truncated: bool) -> None:
        statements = self.statements
        old = statements.pop(name, None)
        if old is not None:
            self.statement_bytes -= len(old[0] or "")
        statements[name] = (query, truncated)
        self.statement_bytes += len(query)
        while len(statements) > 1 and (
            len(statements) > self.max_statements or self.statement_bytes > self.max_statement_bytes
        ):
            evicted = next(iter(statements))
            self.statement_bytes -= len(statements.pop(evicted)[0] or "")
            self.evicted_statements += 1

    def _forget_statement(self, name: str) -> None:
        old = self.statements.pop(name, None)
        if old is not None:
            self.statement_bytes -= len(old[0] or "")

    def _forget_all_statements(self) -> None:
        self.statements.clear()
        self.statement_bytes = 0

    def _follow_session_commands(self, command: PgCommand, query: str | None) -> None:
        """DISCARD ALL / DEALLOCATE [ALL] drop prepared statements on the server: mirror it."""
        operation = command.operation
        if operation == "DISCARD ALL":
            self._forget_all_statements()
            self.portals.clear()
        elif operation == "DEALLOCATE ALL":
            self._forget_all_statements()
        elif operation == "DEALLOCATE" and query:
            for quoted, plain in _DEALLOCATE.findall(query):
                self._forget_statement(quoted.replace('""', '"') if quoted else plain.lower())

    # -- backend ----------------------------------------------------------------------------

    def on_response_bytes(self, size: int, ts: int, out: list[Transaction]) -> None:
        """A backend message that does not change the result (RowDescription, notices...)."""
        head = self._head(ts, out)
        if head is not None:
            head.response_size += size
            head.end_ns = ts

    def on_data_row(self, size: int, ts: int, out: list[Transaction]) -> None:
        queue = self._queue
        if queue:
            head = queue[0]
            if head.kind == _GAP or self.resynced:
                head = self._head(ts, out)
            head.response_size += size  # type: ignore[union-attr]
            head.data_rows += 1  # type: ignore[union-attr]
            head.end_ns = ts  # type: ignore[union-attr]

    def on_command_complete(self, command: PgCommand, size: int, ts: int, out: list[Transaction]) -> None:
        head = self._head(ts, out)
        self.resynced = False
        if head is None:
            self.unmatched_responses += 1
            return
        head.response_size += size
        kind = head.kind
        if kind == _QUERY:
            head.commands.append(command)
            head.end_ns = ts
            self._follow_session_commands(command, head.query)
        elif kind == _EXECUTE:
            head.commands.append(command)
            self._follow_session_commands(command, head.query)
            self._finish_execute(PgStatus.OK, ts, out)
        elif kind != _GAP and kind != _OVERFLOW:
            self.unmatched_responses += 1  # a result where no Execute was sent (FUNCTION/SYNC)

    def on_empty_query(self, size: int, ts: int, out: list[Transaction]) -> None:
        head = self._head(ts, out)
        self.resynced = False
        if head is None:
            self.unmatched_responses += 1
            return
        head.response_size += size
        if head.kind == _QUERY:
            head.empty = True
            head.end_ns = ts
        elif head.kind == _EXECUTE:
            self._finish_execute(PgStatus.EMPTY, ts, out)

    def on_portal_suspended(self, size: int, ts: int, out: list[Transaction]) -> None:
        head = self._head(ts, out)
        self.resynced = False
        if head is None:
            self.unmatched_responses += 1
            return
        head.response_size += size
        if head.kind == _EXECUTE:
            self._finish_execute(PgStatus.SUSPENDED, ts, out)

    def on_error(self, error: PgError, size: int, ts: int, out: list[Transaction]) -> None:
        head = self._head(ts, out)
        self.resynced = False
        if head is None:
            self.unmatched_responses += 1
            return
        head.response_size += size
        kind = head.kind
        if kind == _QUERY or kind == _FUNCTION:
            if head.error is None:
                head.error = error
            head.end_ns = ts
        elif kind == _EXECUTE:
            head.error = error
            self._skip_to_sync = True
            self._finish_execute(PgStatus.ERROR, ts, out)
        elif kind == _SYNC:
            self._skip_to_sync = True
            if head.group and head.error is None:
                head.error = error
                head.end_ns = ts
                out.append(self._transaction(head, PgRequestKind.PREPARE, PgStatus.ERROR))

    def on_ready(self, size: int, ts: int, out: list[Transaction]) -> None:
        """ReadyForQuery: the items up to and including the first barrier are answered."""
        queue = self._queue
        self._head(ts, out)
        self.resynced = False
        skipping = self._skip_to_sync
        self._skip_to_sync = False
        while queue:
            head = queue[0]
            kind = head.kind
            if kind == _OVERFLOW:
                if head.barriers:
                    head.barriers -= 1
                    if not head.barriers and not head.trailing:
                        queue.popleft()
                return
            queue.popleft()
            if kind == _EXECUTE:  # never answered: skipped after an error, or its result lost
                if skipping:
                    head.end_ns = ts
                    out.append(self._transaction(head, PgRequestKind.EXECUTE, PgStatus.ABORTED))
                else:
                    self._lose(head, out)
                continue
            head.response_size += size
            head.end_ns = ts
            if kind == _QUERY:
                status = PgStatus.ERROR if head.error else PgStatus.EMPTY if head.empty and not head.commands else PgStatus.OK
                out.append(self._transaction(head, PgRequestKind.SIMPLE_QUERY, status))
            elif kind == _FUNCTION:
                out.append(
                    self._transaction(head, PgRequestKind.FUNCTION_CALL, PgStatus.ERROR if head.error else PgStatus.OK)
                )
            return

    def close(self, ts: int, out: list[Transaction]) -> None:
        """The connection closed: emit every open request (``response=None`` if unanswered)."""
        for item in self._queue:
            kind = _REQUEST_KINDS.get(item.kind)
            if kind is None:
                continue
            if item.commands or item.error is not None or item.empty:
                status = PgStatus.ERROR if item.error else PgStatus.EMPTY if not item.commands else PgStatus.OK
                out.append(self._transaction(item, kind, status))
            elif item.response_size:
                out.append(self._transaction(item, kind, PgStatus.INCOMPLETE))
            else:
                item.end_ns = ts
                out.append(self._transaction(item, kind, None))
        self._queue.clear()
        self._group = None

    # -- helpers ----------------------------------------------------------------------------

    def _head(self, ts: int, out: list[Transaction]) -> Item | None:
        """The item the backend message at ``ts`` answers.

        * A GAP that has absorbed nothing is dropped once the next request was sent before
          ``ts`` (see the module docstring).
        * After the backend stream lost bytes (:attr:`resynced`), answers may have been lost
          with them: the message answers the newest request group (the items after a barrier)
          that was sent before it; older items come out ``INCOMPLETE`` if part of their answer
          was seen, and are dropped otherwise.  Clients mostly wait for an answer before they
          send the next request, which is what makes "sent before it" telling.
        """
        queue = self._queue
        if not queue:
            return None
        head = queue[0]
        if head.kind == _GAP and not head.response_size and len(queue) > 1 and queue[1].start_ns <= ts:
            queue.popleft()  # the lost bytes held nothing that was answered before the next request
            head = queue[0]
        if self.resynced and len(queue) > 1:
            newest = 0
            after_barrier = False
            for index, item in enumerate(queue):
                if item.start_ns > ts:
                    break
                if after_barrier:
                    newest = index
                after_barrier = item.kind in _BARRIERS or item.kind == _OVERFLOW
            for _ in range(newest):
                self._lose(queue.popleft(), out)
            head = queue[0]
        return head

    def _lose(self, item: Item, out: list[Transaction]) -> None:
        """``item``'s answer ended in lost bytes."""
        kind = _REQUEST_KINDS.get(item.kind)
        if kind is None:
            return
        if item.response_size and kind is not PgRequestKind.FUNCTION_CALL:
            status = PgStatus.ERROR if item.error else PgStatus.INCOMPLETE
            out.append(self._transaction(item, kind, status))
        else:
            self.dropped_requests += 1

    def _finish_execute(self, status: PgStatus, ts: int, out: list[Transaction]) -> None:
        head = self._queue.popleft()
        head.end_ns = ts
        out.append(self._transaction(head, PgRequestKind.EXECUTE, status))

    def _transaction(self, item: Item, kind: PgRequestKind, status: PgStatus | None) -> Transaction:
        database, user, application_name = item.identity
        request = PgRequest(
            kind,
            item.query,
            item.statement_name,
            item.portal_name,
            item.parameter_count,
            item.row_limit,
            database,
            user,
            application_name,
            item.request_size,
            item.truncated,
        )
        response = None
        if status is not None:
            response = PgResponse(status, tuple(item.commands), item.error, item.data_rows, item.response_size)
        return Transaction(
            PROTOCOL,
            self.role,
            request,
            response,
            item.start_ns,
            item.end_ns,
            item.request_size,
            item.response_size if response is not None else 0,
        )
