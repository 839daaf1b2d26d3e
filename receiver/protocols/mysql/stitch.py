"""Pairing MySQL commands with their responses on one connection.

The protocol is strictly request/response: the server answers commands in the order they
were sent, so the n-th response belongs to the n-th command still waiting (clients that
pipeline, like MariaDB Connector/C's execute-direct, are covered by the FIFO).  An
:class:`Exchange` is opened for each command that expects a response; the server's packets
are fed to the oldest open exchange, whose :meth:`Exchange.on_packet` walks the response's
state machine (OK / ERR / result sets / prepare OK / LOCAL INFILE / auth exchange) and says
when the response is complete.

Response state table (``Exchange.state``):

========== ==============================================================================
FIRST      first packet of a result: OK, ERR, EOF, LOCAL INFILE request (0xfb), or a
           column count (result set) — per command, see ``FIRST_*`` shapes
COLUMNS    ``left`` column definitions to skip
META_END   after the definitions: an EOF (5 bytes, 0xfe) if the client did not ask for
           DEPRECATE_EOF, else straight to the rows — told apart by shape, not by flags
ROWS       rows (counted, never parsed) up to a terminator (0xfe, < 0xffffff bytes) or ERR
PARAMS     COM_STMT_PREPARE: ``left`` parameter definitions, then maybe an EOF
PCOLUMNS   COM_STMT_PREPARE: ``left`` column definitions, then maybe an EOF
OPT_EOF    COM_STMT_PREPARE: an EOF may end the definitions; whether it does depends on
           DEPRECATE_EOF — when that is unknown (attached mid-stream) the next packet decides
FIELDS     COM_FIELD_LIST: column definitions up to an EOF
AUTH       COM_CHANGE_USER: auth switch / more data packets up to OK or ERR
INFILE     LOAD DATA LOCAL INFILE: the client sends the file, ending with an empty packet
ONE        COM_STATISTICS: one string packet
========== ==============================================================================

Bounds: at most ``max_pending`` exchanges are open (opening one more drops the oldest,
counted in ``dropped_requests``); the statement-id → query map holds at most
``max_statements`` statements and ``max_statement_chars`` characters of SQL (least recently
used evicted first, counted in ``evicted_statements``).
"""

from __future__ import annotations

from collections import OrderedDict, deque

from receiver.protocols.base import Role, Transaction

from .parse import (
    MAX_COLUMNS,
    MAX_PACKET,
    parse_err,
    parse_ok,
    parse_terminator,
    read_lenenc,
    text,
    u16,
    u32,
)
from .types import (
    NO_STATEMENT,
    SERVER_MORE_RESULTS_EXISTS,
    SERVER_STATUS_CURSOR_EXISTS,
    Command,
    MysqlCommand,
    MysqlResponse,
    ResponseKind,
)

PROTOCOL = "mysql"

# Response states.
FIRST = 0
COLUMNS = 1
META_END = 2
ROWS = 3
PARAMS = 4
PCOLUMNS = 5
OPT_EOF = 6
FIELDS = 7
AUTH = 8
INFILE = 9
ONE = 10
DONE = 11

# What Exchange.on_packet says.
MORE = 0  # consumed; the response goes on
COMPLETE = 1  # consumed; the response is complete
NOT_MINE = 2  # not consumed: the response was already complete, the packet is the next one's
BAD = 3  # consumed, but it cannot be part of this response

# How the first packet of a result may look, per command.
SHAPE_SIMPLE = 0  # OK / ERR / EOF
SHAPE_RESULTS = 1  # ... or a result set, or (COM_QUERY) a LOCAL INFILE request
SHAPE_PREPARE = 2
SHAPE_FIELDS = 3
SHAPE_AUTH = 4
SHAPE_ONE = 5
SHAPE_ROWS = 6  # COM_STMT_FETCH: rows straight away

SHAPES = {
    Command.COM_QUERY: SHAPE_RESULTS,
    Command.COM_STMT_EXECUTE: SHAPE_RESULTS,
    Command.COM_STMT_BULK_EXECUTE: SHAPE_RESULTS,
    Command.COM_PROCESS_INFO: SHAPE_RESULTS,
    Command.COM_STMT_PREPARE: SHAPE_PREPARE,
    Command.COM_FIELD_LIST: SHAPE_FIELDS,
    Command.COM_CHANGE_USER: SHAPE_AUTH,
    Command.COM_STATISTICS: SHAPE_ONE,
    Command.COM_STMT_FETCH: SHAPE_ROWS,
}

_COUNTED_ONLY = frozenset((ROWS, COLUMNS, PARAMS, PCOLUMNS, META_END))  # states where a packet's kind is moot
_ERR_PROGRESS = 0xFFFF  # MariaDB progress report: an ERR-shaped packet that ends nothing


class Exchange:
    """One command and, as it arrives, its response; mutable while open."""

    __slots__ = (
        "request",
        "shape",
        "start_ns",
        "end_ns",
        "request_size",
        "response_size",
        "seq",
        "state",
        "left",
        "seen_response",
        "lost",
        "pending_cols",
        "results",
        "result_sets",
        "column_count",
        "row_count",
        "affected_rows",
        "last_insert_id",
        "warnings",
        "status_flags",
        "info",
        "error",
        "statement_id",
        "param_count",
        "local_infile",
        "prepared",
        "eof_kind",
        "text_kind",
        "ok_schema",
        "ok_seen",
    )

    def __init__(self, request: MysqlCommand, start_ns: int, end_ns: int, request_size: int, seq: int) -> None:
        self.request = request
        self.shape = SHAPES.get(request.command, SHAPE_SIMPLE)
        self.start_ns = start_ns
        self.end_ns = end_ns  # last byte of the response (of the request until one is seen)
        self.request_size = request_size
        self.response_size = 0
        self.seq = seq  # sequence id of the exchange's latest packet, either side
        self.state = ROWS if self.shape == SHAPE_ROWS else FIRST
        self.left = 0
        self.seen_response = False
        self.lost = False  # the server stream lost its place inside this response
        self.pending_cols = 0  # COM_STMT_PREPARE: column definitions after the parameters
        self.results = 0
        self.result_sets = 0
        self.column_count = 0
        self.row_count = 0
        self.affected_rows = 0
        self.last_insert_id = 0
        self.warnings = 0
        self.status_flags = 0
        self.info = ""
        self.error: tuple[int, str, str] | None = None
        self.statement_id = NO_STATEMENT
        self.param_count = 0
        self.local_infile = ""
        self.prepared = False
        self.eof_kind = False
        self.text_kind = False
        self.ok_schema: str | None = None  # schema named by a SESSION_TRACK_SCHEMA change
        self.ok_seen = False

    @property
    def awaits_client(self) -> bool:
        """May the client send more within this exchange (file data, auth data)?"""
        return self.state == INFILE or self.state == AUTH

    @property
    def optional_tail(self) -> bool:
        """Complete unless an optional EOF still follows (DEPRECATE_EOF unknown)."""
        return self.state == OPT_EOF and self.pending_cols == 0

    # -- the response state machine --------------------------------------------------------

    def on_packet(
        self,
        buf,
        start: int,
        stop: int,
        length: int,
        deprecate_eof: bool | None,
        session_track: bool | None,
    ) -> int:
        """Feed one logical server packet (``buf[start:stop]`` is its kept prefix).

        A packet of which nothing was captured (``stop == start``, ``length > 0``) can only be
        counted where its kind does not matter: a row or a definition.
        """
        state = self.state
        if stop > start:
            first = buf[start]
        elif length and state in _COUNTED_ONLY:
            first = -1
        else:
            return BAD
        if state == ROWS:
            if first == 0xFE and length < MAX_PACKET:
                warnings, status, ok = parse_terminator(buf, start, stop, length, session_track)
                self.warnings += warnings
                self.status_flags = status
                if ok is not None and ok.info:
                    self.info = ok.info
                if status & SERVER_MORE_RESULTS_EXISTS:
                    self.state = FIRST
                    return MORE
                return self._complete()
            if first == 0xFF:
                return self._err(buf, start, stop)
            self.row_count += 1
            return MORE
        if state == FIRST:
            return self._first(buf, start, stop, length, first, session_track)
        if state == COLUMNS:
            if first == 0xFF:
                return self._err(buf, start, stop)
            self.left -= 1
            if self.left <= 0:
                self.state = META_END
            return MORE
        if state == META_END:
            if first == 0xFE and length == 5:
                warnings, status, _ = parse_terminator(buf, start, stop, length, session_track)
                self.status_flags = status
                if status & SERVER_STATUS_CURSOR_EXISTS:  # rows come later, with COM_STMT_FETCH
                    self.warnings += warnings
                    return self._complete()
                self.state = ROWS
                return MORE
            if first == 0xFE and length < MAX_PACKET:
                _, status, _ = parse_terminator(buf, start, stop, length, session_track)
                if status & SERVER_STATUS_CURSOR_EXISTS:
                    self.status_flags = status
                    return self._complete()
            self.state = ROWS  # DEPRECATE_EOF: this is already a row or the terminator
            return self.on_packet(buf, start, stop, length, deprecate_eof, session_track)
        if state == PARAMS or state == PCOLUMNS:
            if first == 0xFF:
                return self._err(buf, start, stop)
            self.left -= 1
            if self.left > 0:
                return MORE
            if state == PARAMS:
                return self._after_definitions(deprecate_eof, self.pending_cols)
            self.pending_cols = 0
            return self._after_definitions(deprecate_eof, 0)
        if state == OPT_EOF:
            if first == 0xFE and length == 5:
                if self.pending_cols:
                    self.left = self.pending_cols
                    self.pending_cols = 0
                    self.state = PCOLUMNS
                    return MORE
                return self._complete()
            if self.pending_cols:  # no EOF between parameters and columns: a column definition
                self.left = self.pending_cols
                self.pending_cols = 0
                self.state = PCOLUMNS
                return self.on_packet(buf, start, stop, length, deprecate_eof, session_track)
            self._complete()
            return NOT_MINE
        if state == FIELDS:
            if first == 0xFE and length < MAX_PACKET:
                warnings, status, _ = parse_terminator(buf, start, stop, length, session_track)
                self.warnings += warnings
                self.status_flags = status
                self.eof_kind = True
                return self._complete()
            if first == 0xFF:
                return self._err(buf, start, stop)
            self.column_count += 1
            return MORE
        if state == AUTH:
            if first == 0x00:
                return self._ok(buf, start, stop, session_track)
            if first == 0xFF:
                return self._err(buf, start, stop)
            if first == 0xFE or first == 0x01 or first == 0x02:  # auth switch / more data / next factor
                return MORE
            return BAD
        if state == INFILE:  # the client's empty packet was not seen: the server has answered
            self.state = FIRST
            return self._first(buf, start, stop, length, first, session_track)
        if state == ONE:
            if first == 0xFF:
                return self._err(buf, start, stop)
            self.text_kind = True
            return self._complete()
        return BAD

    def _first(self, buf, start: int, stop: int, length: int, first: int, session_track: bool | None) -> int:
        shape = self.shape
        if first == 0xFF:
            return self._err(buf, start, stop)
        if shape == SHAPE_PREPARE:
            if first == 0x00 and length >= 12 and stop - start >= 12:
                self.prepared = True
                self.statement_id = u32(buf, start + 1)
                cols = u16(buf, start + 5)
                params = u16(buf, start + 7)
                self.column_count = cols
                self.param_count = params
                self.warnings += u16(buf, start + 10)
                if params:
                    self.left = params
                    self.pending_cols = cols
                    self.state = PARAMS
                    return MORE
                if cols:
                    self.left = cols
                    self.state = PCOLUMNS
                    return MORE
                return self._complete()
            return BAD
        if first == 0x00:
            return self._ok(buf, start, stop, session_track)
        if first == 0xFE and length < 9 and shape != SHAPE_AUTH:  # EOF: COM_SET_OPTION, COM_DEBUG
            warnings, status, _ = parse_terminator(buf, start, stop, length, session_track)
            self.warnings += warnings
            self.status_flags = status
            self.eof_kind = True
            self.results += 1
            return self._complete()
        if shape == SHAPE_AUTH:
            self.state = AUTH
            return self.on_packet(buf, start, stop, length, None, session_track)
        if shape == SHAPE_ONE:
            self.state = ONE
            return self.on_packet(buf, start, stop, length, None, session_track)
        if shape == SHAPE_FIELDS:
            self.state = FIELDS
            return self.on_packet(buf, start, stop, length, None, session_track)
        if shape != SHAPE_RESULTS:
            return BAD
        if first == 0xFB:  # LOCAL INFILE request: the client now sends the file
            if self.request.command != Command.COM_QUERY:
                return BAD
            self.local_infile = text(buf[start + 1 : stop], 4096)
            self.state = INFILE
            return MORE
        count, pos = read_lenenc(buf, start, stop)
        if count <= 0 or count > MAX_COLUMNS or (pos != stop and pos + 1 != stop):
            return BAD
        self.results += 1
        self.result_sets += 1
        self.column_count = count
        self.ok_seen = False
        # MariaDB with MARIADB_CLIENT_CACHE_METADATA adds a "metadata follows" byte; when it is
        # 0 no column definitions are sent (the client reuses those of the prepared statement).
        if pos + 1 == stop and buf[pos] == 0:
            self.state = META_END
        else:
            self.left = count
            self.state = COLUMNS
        return MORE

    def _after_definitions(self, deprecate_eof: bool | None, cols: int) -> int:
        if deprecate_eof:
            if cols:
                self.left = cols
                self.pending_cols = 0
                self.state = PCOLUMNS
                return MORE
            return self._complete()
        self.pending_cols = cols
        self.state = OPT_EOF
        return MORE

    def _ok(self, buf, start: int, stop: int, session_track: bool | None) -> int:
        ok = parse_ok(buf, start, stop, session_track)
        if ok is None:
            return BAD
        self.results += 1
        self.ok_seen = True
        self.affected_rows += ok.affected_rows
        self.last_insert_id = ok.last_insert_id
        self.warnings += ok.warnings
        self.status_flags = ok.status_flags
        if ok.info:
            self.info = ok.info
        if ok.schema is not None:
            self.ok_schema = ok.schema
        if ok.status_flags & SERVER_MORE_RESULTS_EXISTS and self.shape == SHAPE_RESULTS:
            self.state = FIRST
            return MORE
        return self._complete()

    def _err(self, buf, start: int, stop: int) -> int:
        err = parse_err(buf, start, stop)
        if err.error_code == _ERR_PROGRESS:
            return MORE
        self.results += 1
        self.error = (err.error_code, err.sql_state, err.message)
        return self._complete()

    def _complete(self) -> int:
        self.state = DONE
        return COMPLETE

    # -- the outcome -----------------------------------------------------------------------

    def response(self, truncated: bool = False) -> MysqlResponse:
        if self.error is not None:
            kind = ResponseKind.ERROR
        elif self.prepared:
            kind = ResponseKind.STATEMENT_PREPARED
        elif self.result_sets and not self.ok_seen:
            kind = ResponseKind.RESULT_SET
        elif self.eof_kind:
            kind = ResponseKind.EOF
        elif self.text_kind:
            kind = ResponseKind.TEXT
        else:
            kind = ResponseKind.OK
        code, state, message = self.error if self.error is not None else (0, "", "")
        return MysqlResponse(
            kind,
            self.results,
            self.result_sets,
            self.column_count,
            self.row_count,
            self.affected_rows,
            self.last_insert_id,
            self.warnings,
            self.status_flags,
            self.info,
            code,
            state,
            message,
            self.statement_id,
            self.param_count,
            self.local_infile,
            self.response_size,
            truncated or self.lost or self.state != DONE,
        )


class StatementCache:
    """Prepared statement id → SQL text, bounded by count and by characters (LRU)."""

    __slots__ = ("max_statements", "max_chars", "chars", "evicted", "_map")

    def __init__(self, max_statements: int, max_chars: int) -> None:
        self.max_statements = max(1, max_statements)
        self.max_chars = max(1, max_chars)
        self.chars = 0
        self.evicted = 0
        self._map: OrderedDict[int, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._map)

    def add(self, statement_id: int, query: str) -> None:
        self.remove(statement_id)
        if len(query) > self.max_chars:
            query = query[: self.max_chars]
        self._map[statement_id] = query
        self.chars += len(query)
        while len(self._map) > self.max_statements or self.chars > self.max_chars:
            _, old = self._map.popitem(last=False)
            self.chars -= len(old)
            self.evicted += 1

    def get(self, statement_id: int) -> str | None:
        query = self._map.get(statement_id)
        if query is not None:
            self._map.move_to_end(statement_id)
        return query

    def remove(self, statement_id: int) -> None:
        old = self._map.pop(statement_id, None)
        if old is not None:
            self.chars -= len(old)

    def clear(self) -> None:
        self._map.clear()
        self.chars = 0


class MysqlStitcher:
    """FIFO command/response pairing with a bound on open exchanges."""

    __slots__ = ("role", "max_pending", "dropped_requests", "unmatched_responses", "_open")

    def __init__(self, max_pending: int) -> None:
        self.role = Role.UNKNOWN
        self.max_pending = max(1, max_pending)
        self.dropped_requests = 0  # exchanges dropped unanswered because the bound was reached
        self.unmatched_responses = 0  # server packets with no command to answer (attach, idle-kill ERR)
        self._open: deque[Exchange] = deque()

    @property
    def pending(self) -> int:
        return len(self._open)

    @property
    def head(self) -> Exchange | None:
        return self._open[0] if self._open else None

    def open(self, exchange: Exchange) -> None:
        if len(self._open) >= self.max_pending:
            self._open.popleft()
            self.dropped_requests += 1
        self._open.append(exchange)

    def awaiting_client(self) -> Exchange | None:
        """The open exchange the client is to send more data in (LOCAL INFILE, auth), if any."""
        for exchange in self._open:
            if exchange.awaits_client:
                return exchange
        return None

    def finish_head(self, out: list[Transaction], truncated: bool = False) -> Exchange | None:
        """The oldest exchange's response is complete (or given up on): emit it."""
        if not self._open:
            return None
        exchange = self._open.popleft()
        out.append(self.transaction(exchange, exchange.response(truncated), exchange.end_ns))
        return exchange

    def transaction(self, exchange: Exchange, response: MysqlResponse | None, end_ns: int) -> Transaction:
        request = exchange.request
        start_ns = exchange.start_ns
        return Transaction(
            PROTOCOL,
            self.role,
            request,
            response,
            start_ns,
            end_ns if end_ns > start_ns else start_ns,
            exchange.request_size,
            exchange.response_size,
        )

    def close(self, ts_ns: int, out: list[Transaction]) -> None:
        """The connection closed: emit every open exchange (``response=None`` if none began)."""
        while self._open:
            exchange = self._open.popleft()
            if exchange.seen_response:
                response = exchange.response(truncated=True)
                out.append(self.transaction(exchange, response, exchange.end_ns))
            else:
                out.append(self.transaction(exchange, None, ts_ns))
