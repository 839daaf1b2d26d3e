"""``MysqlSession``: one MySQL/MariaDB connection, both directions, bytes in, transactions out.

The session is composed of three parts, one module each, sharing its state:

* :mod:`.framing` — each direction cut into packets (headers, sequence ids, 16 MiB
  continuations, bounded kept prefixes) and kept in sync across capture gaps;
* :mod:`.handshake` — the connection phase: greeting, handshake response, auth exchange, the
  connection transaction;
* :mod:`.command` — the command phase: commands, prepared statements, responses (paired in
  :mod:`.stitch`).

The connection-wide :attr:`MysqlSession.phase` (:mod:`.phases`) says which part a packet
belongs to: the framing hands every logical packet to :meth:`MysqlSession._packet`, which
routes it by phase and side.

The traced process is the CLIENT if it sent (EGRESS) the commands or received the greeting.
"""

from __future__ import annotations

from receiver.protocols.base import Direction, Role, Transaction
from receiver.protocols.stream import StreamSession

from .command import CommandPhase
from .framing import PacketFraming, PacketStream
from .handshake import HandshakePhase
from .phases import AUTH, COMMAND, GREETING, HANDSHAKE, OPAQUE, UNKNOWN
from .stitch import PROTOCOL
from .types import MysqlServerGreeting

DEFAULT_MAX_BUFFER = 64 * 1024
DEFAULT_MAX_PENDING = 64
DEFAULT_MAX_QUERY = 16 * 1024
DEFAULT_MAX_STATEMENTS = 256
DEFAULT_MAX_STATEMENT_CHARS = 256 * 1024


class MysqlSession(PacketFraming, HandshakePhase, CommandPhase, StreamSession):
    """MySQL/MariaDB parser and stitcher for one connection (implements ``ProtocolSession``).

    ``max_buffer`` bounds the bytes kept per direction; ``max_pending`` the commands waiting
    for their responses (the oldest is dropped beyond); ``max_query`` the SQL text kept per
    command; ``max_statements``/``max_statement_chars`` the prepared statement map.

    Counters, all monotonic: :attr:`parse_errors`, :attr:`capture_gaps`,
    :attr:`dropped_requests`, :attr:`unmatched_responses`, :attr:`local_infile_requests`,
    :attr:`evicted_statements`, :attr:`internal_errors`.  Flags: :attr:`tls` (the client asked
    for TLS: nothing after is parsed), :attr:`compressed` (compressed protocol negotiated:
    nothing after the handshake is parsed).
    """

    protocol = PROTOCOL

    def __init__(
        self,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_query: int = DEFAULT_MAX_QUERY,
        max_statements: int = DEFAULT_MAX_STATEMENTS,
        max_statement_chars: int = DEFAULT_MAX_STATEMENT_CHARS,
    ) -> None:
        super().__init__()  # parse_errors, internal_errors
        self.max_buffer = max(256, max_buffer)
        self.max_query = max(16, min(max_query, self.max_buffer - 64))
        self.phase = UNKNOWN
        self._user = ""
        self._schema = ""
        self._init_framing()
        self._init_handshake()
        self._init_commands(max_pending, max_statements, max_statement_chars)

    # -- read-only views ---------------------------------------------------------------------

    @property
    def role(self) -> Role:
        """The traced process's side, once the first packet has been parsed."""
        return self._stitcher.role

    @property
    def user(self) -> str:
        return self._user

    @property
    def schema(self) -> str:
        """The session's current schema (``db.namespace``), ``""`` if none or unknown."""
        return self._schema

    @property
    def greeting(self) -> MysqlServerGreeting | None:
        return self._greeting

    @property
    def capabilities(self) -> int | None:
        """Negotiated capability flags (client's ∩ server's), ``None`` if the handshake was not seen."""
        if self._client_caps is None:
            return None
        if self._server_caps is None:
            return self._client_caps
        return self._client_caps & self._server_caps

    @property
    def dropped_requests(self) -> int:
        return self._stitcher.dropped_requests

    @property
    def unmatched_responses(self) -> int:
        return self._stitcher.unmatched_responses

    @property
    def pending_requests(self) -> int:
        return self._stitcher.pending

    @property
    def prepared_statements(self) -> int:
        return len(self._statements)

    @property
    def evicted_statements(self) -> int:
        return self._statements.evicted

    @property
    def buffered_bytes(self) -> int:
        return sum(len(s.kept) + len(s.hdr) + s.probe_size for s in self._streams)

    # -- StreamSession hooks -----------------------------------------------------------------

    def _feed(self, direction: Direction, data: bytes, missing: int, ts_ns: int, out: list[Transaction]) -> None:
        if self.phase == OPAQUE:
            return
        if not isinstance(data, bytes | bytearray):
            data = bytes(data)
        stream = self._streams[direction]
        size = len(data)
        if stream.synced:
            if size:
                self._parse(stream, data, ts_ns, out)
        else:
            if not size and not missing:
                return
            pieces = self._sync(stream, data, ts_ns, missing, out)
            if pieces is None:
                return
            for piece, piece_ts in pieces:
                if not stream.synced or self.phase == OPAQUE:
                    return
                self._parse(stream, piece, piece_ts, out)
        if missing and stream.synced and self.phase != OPAQUE:
            self._skip_missing(stream, missing, ts_ns, out)

    def _recover(self, ts_ns: int) -> None:
        self._unsync_all()

    def _close(self, ts_ns: int, out: list[Transaction]) -> None:
        """Emit what is open (unanswered requests with ``response=None``); parse nothing more."""
        try:
            if self.phase == AUTH and self._hs is not None:
                self._finish_handshake(None, None, ts_ns, out)
            self._stitcher.close(ts_ns, out)
        finally:
            self._unsync_all()
            self.phase = OPAQUE

    # -- packets -----------------------------------------------------------------------------

    def _packet(
        self,
        stream: PacketStream,
        buf,
        start: int,
        stop: int,
        length: int,
        seq: int,
        phys: int,
        start_ts: int,
        end_ts: int,
        out: list[Transaction],
    ) -> None:
        """One logical packet (``buf[start:stop]`` is its kept prefix) of ``length`` bytes."""
        wire = length + 4 * phys
        phase = self.phase
        if stream.client:
            if phase == COMMAND:
                if stream.first_seq == 0:
                    self._command(stream, buf, start, stop, length, seq, wire, start_ts, end_ts, out)
                else:
                    self._client_data(stream, length, seq, wire, end_ts)
            elif phase == HANDSHAKE:
                self._handshake_response(buf, start, stop, length, seq, wire, start_ts, out)
            elif phase == AUTH:
                self._client_auth_data(seq, wire)
            return
        if phase == COMMAND:
            self._response_packet(stream, buf, start, stop, length, seq, wire, end_ts, out)
        elif phase == AUTH:
            self._auth_packet(stream, buf, start, stop, length, seq, wire, end_ts, out)
        elif phase == GREETING:
            self._greeting_packet(buf, start, stop, seq, wire)
