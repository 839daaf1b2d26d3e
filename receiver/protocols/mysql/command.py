"""The command phase of a :class:`~.session.MysqlSession`: commands, prepared statements, responses.

Each client command (sequence id 0) becomes a :class:`~.types.MysqlCommand` — the SQL text of
COM_QUERY/COM_STMT_PREPARE up to ``max_query`` (after the query attributes, when
CLIENT_QUERY_ATTRIBUTES is negotiated), the statement's SQL for the COM_STMT_* commands from
the prepared statement map — and, unless it expects no response, opens an
:class:`~.stitch.Exchange` whose response the server's packets then walk.  A finished exchange
is emitted and applies its effects on the session: the current schema (COM_INIT_DB, ``USE``,
session-state tracking), the user (COM_CHANGE_USER), the prepared statement map
(COM_STMT_PREPARE/CLOSE, COM_RESET_CONNECTION).  COM_QUIT and the replication dumps are
emitted at once, without a response; a replication event stream is opaque.
"""

from __future__ import annotations

import dataclasses

from receiver.protocols.base import Transaction

from .framing import PacketStream
from .parse import (
    command_of,
    parse_change_user,
    query_attributes_end,
    text,
    u16,
    u32,
    use_statement_schema,
)
from .phases import OPAQUE
from .stitch import (
    COMPLETE,
    DONE,
    FIRST,
    INFILE,
    MORE,
    NOT_MINE,
    PROTOCOL,
    Exchange,
    MysqlStitcher,
    StatementCache,
)
from .types import (
    CLIENT_QUERY_ATTRIBUTES,
    NO_STATEMENT,
    SERVER_MORE_RESULTS_EXISTS,
    Command,
    MysqlCommand,
    MysqlServerGreeting,
)

_NO_RESPONSE = (Command.COM_STMT_CLOSE, Command.COM_STMT_SEND_LONG_DATA)
_STATEMENT_COMMANDS = frozenset(
    (
        Command.COM_STMT_EXECUTE,
        Command.COM_STMT_RESET,
        Command.COM_STMT_FETCH,
        Command.COM_STMT_CLOSE,
        Command.COM_STMT_SEND_LONG_DATA,
        Command.COM_STMT_BULK_EXECUTE,
    )
)
_LAST_PREPARED = 0xFFFFFFFF  # MariaDB: "the statement prepared last" (execute-direct)


class CommandPhase:
    """The command phase of a :class:`~.session.MysqlSession`.

    Owns the stitcher (``_stitcher``: the exchanges waiting for their responses, and the
    traced process's role), the prepared statement map (``_statements``, ``_last_prepare``),
    the sequence id the last finished response ended with (``_last_seq``) and
    ``local_infile_requests``.  Updates the session's user and schema.
    """

    # Set by the session, the framing and the connection phase.
    max_query: int
    phase: str
    parse_errors: int
    capabilities: int | None
    _greeting: MysqlServerGreeting | None
    _deprecate: bool | None
    _track: bool | None
    _user: str
    _schema: str

    def _init_commands(self, max_pending: int, max_statements: int, max_statement_chars: int) -> None:
        self.local_infile_requests = 0
        self._stitcher = MysqlStitcher(max_pending)
        self._statements = StatementCache(max_statements, max_statement_chars)
        self._last_prepare = ""
        self._last_seq = -1  # sequence id of the last packet of the last finished exchange

    # -- requests ----------------------------------------------------------------------------

    def _command(
        self,
        stream: PacketStream,
        buf,
        start: int,
        stop: int,
        length: int,
        seq: int,
        wire: int,
        start_ts: int,
        end_ts: int,
        out: list[Transaction],
    ) -> None:
        command = command_of(buf[start]) if stop > start else None
        if command is None:
            self.parse_errors += 1
            self._lose_sync(stream, end_ts)
            return
        stitcher = self._stitcher
        head = stitcher.head
        while head is not None and (head.lost or head.optional_tail):  # the client has moved on
            self._finish_exchange(head, out, truncated=head.lost)
            head = stitcher.head
        query = ""
        statement_id = NO_STATEMENT
        new_schema = new_user = ""
        cut = False
        if command == Command.COM_QUERY or command == Command.COM_STMT_PREPARE:
            pos = start + 1
            caps = self.capabilities
            if command == Command.COM_QUERY and caps is not None and caps & CLIENT_QUERY_ATTRIBUTES:
                sql = query_attributes_end(buf, pos, stop)
                if sql >= 0:
                    pos = sql
            raw_end = min(stop, pos + self.max_query)
            query = bytes(buf[pos:raw_end]).decode("utf-8", "replace")
            cut = raw_end < start + length
            if command == Command.COM_QUERY:
                new_schema = use_statement_schema(query) or ""
            else:
                self._last_prepare = query
        elif command == Command.COM_INIT_DB:
            new_schema = text(buf[start + 1 : stop])
        elif command in _STATEMENT_COMMANDS:
            if stop - start >= 5:
                statement_id = u32(buf, start + 1)
                if statement_id == _LAST_PREPARED:
                    query = self._last_prepare
                else:
                    query = self._statements.get(statement_id) or ""
        elif command == Command.COM_CHANGE_USER:
            change = parse_change_user(buf, start, stop, self.capabilities)
            new_user, new_schema = change.user, change.schema
        greeting = self._greeting
        request = MysqlCommand(
            command,
            query,
            statement_id,
            self._user,
            self._schema,
            new_schema,
            new_user,
            greeting.server_version if greeting is not None else "",
            greeting.connection_id if greeting is not None else 0,
            wire,
            cut,
        )
        if command in _NO_RESPONSE:
            if command == Command.COM_STMT_CLOSE:
                self._statements.remove(statement_id)
            return
        if command == Command.COM_QUIT or command == Command.COM_BINLOG_DUMP or command == Command.COM_BINLOG_DUMP_GTID:
            out.append(Transaction(PROTOCOL, stitcher.role, request, None, start_ts, end_ts, wire, 0))
            if command != Command.COM_QUIT:
                self.phase = OPAQUE  # a replication event stream follows
            return
        stitcher.open(Exchange(request, start_ts, end_ts, wire, seq))

    def _client_data(self, stream: PacketStream, length: int, seq: int, wire: int, ts: int) -> None:
        """A client packet after the command (LOCAL INFILE contents, COM_CHANGE_USER auth data)."""
        exchange = self._stitcher.awaiting_client()
        if exchange is None:  # cannot happen: _header checked it
            self._unexpected(stream, ts)
            return
        exchange.request_size += wire
        exchange.seq = seq
        if exchange.state == INFILE and length == 0:
            exchange.state = FIRST  # the file is sent: the server's OK/ERR follows

    # -- responses ---------------------------------------------------------------------------

    def _response_packet(
        self,
        stream: PacketStream,
        buf,
        start: int,
        stop: int,
        length: int,
        seq: int,
        wire: int,
        ts: int,
        out: list[Transaction],
    ) -> None:
        stitcher = self._stitcher
        head = stitcher.head
        if head is not None and head.optional_tail and not (stop - start >= 1 and buf[start] == 0xFE and length == 5):
            self._finish_exchange(head, out)  # it had no trailing EOF: this packet is the next one's
            head = stitcher.head
        if head is None:
            stitcher.unmatched_responses += 1
            self._last_seq = seq
            return
        before = head.state
        head.seen_response = True
        head.seq = seq
        head.response_size += wire
        end_before = head.end_ns
        head.end_ns = ts
        result = head.on_packet(buf, start, stop, length, self._deprecate, self._track)
        if result == MORE:
            if head.state == INFILE and before != INFILE:
                self.local_infile_requests += 1
            return
        if result == COMPLETE:
            self._finish_exchange(head, out)
            return
        if result == NOT_MINE:
            head.response_size -= wire
            head.end_ns = end_before
            self._finish_exchange(head, out)
            self._response_packet(stream, buf, start, stop, length, seq, wire, ts, out)
            return
        # BAD: this packet cannot be part of the response; its length cannot be trusted either.
        self.parse_errors += 1
        self._lose_sync(stream, ts)

    def _lost_response_feed(self, head: Exchange, data: bytes, ts: int, missing: int, out: list[Transaction]) -> None:
        """A server feed while the head exchange's response is lost: does it end the response?"""
        end = len(data)
        head.response_size += end + missing
        if ts > head.end_ns:
            head.end_ns = ts
        if missing or end < 9:
            return
        status = -1
        if data[end - 5] == 0xFE and data[end - 9 : end - 6] == b"\x05\x00\x00":  # EOF
            status = u16(data, end - 2)
        elif end >= 11 and data[end - 7] == 0xFE and data[end - 11 : end - 8] == b"\x07\x00\x00":  # OK, 0xfe
            status = u16(data, end - 4)
        if status >= 0 and not status & SERVER_MORE_RESULTS_EXISTS:
            head.seq = data[end - 6] if data[end - 5] == 0xFE else data[end - 8]
            self._finish_exchange(head, out, truncated=True)

    def _finish_exchange(self, exchange: Exchange, out: list[Transaction], truncated: bool = False) -> None:
        """The head exchange is complete (or given up on): emit it and apply its effects."""
        stitcher = self._stitcher
        if stitcher.head is not exchange:
            return
        if exchange.optional_tail:  # only an optional EOF was still possible: it is complete
            exchange.state = DONE
        request = exchange.request
        if exchange.request_size != request.wire_size:  # file or auth data followed the command
            exchange.request = request = dataclasses.replace(request, wire_size=exchange.request_size)
        stitcher.finish_head(out, truncated)
        self._last_seq = exchange.seq
        if exchange.error is None and not exchange.lost and not truncated:
            command = request.command
            if command == Command.COM_INIT_DB or (command == Command.COM_QUERY and request.new_schema):
                self._schema = request.new_schema
            elif command == Command.COM_STMT_PREPARE and exchange.prepared:
                self._statements.add(exchange.statement_id, request.query)
            elif command == Command.COM_CHANGE_USER:
                self._user = request.new_user
                self._schema = request.new_schema
                self._statements.clear()
            elif command == Command.COM_RESET_CONNECTION:
                self._statements.clear()
        if exchange.ok_schema is not None:
            self._schema = exchange.ok_schema
