"""``MysqlSession``: one MySQL/MariaDB connection, both directions, bytes in, transactions out.

Framing.  Each direction is a :class:`_Stream` cutting its bytes into packets
(``length:3 | seq:1 | payload``) and joining 0xffffff-byte physical packets with their
continuations into logical packets.  Of each logical packet only a bounded prefix is kept
(``keep``: the SQL text of a command up to ``max_query``, a few KiB of a server packet, nothing
of auth data); the rest — rows, column definitions, file contents, long query tails — is
counted and skipped, never buffered.  A packet wholly inside one feed is handed on without
copying.  Truncated captures (``total_len > len(data)``) are skipped by length when the gap
falls inside a packet.

Phases (connection-wide, :attr:`MysqlSession.phase`):

============ =====================================================================================
UNKNOWN      nothing parsed yet: a feed must start with a server greeting or a client command
GREETING     the server greeting is being read (the first packet after a greeting-first sync)
HANDSHAKE    greeting seen: the client answers with a HandshakeResponse41 or an SSLRequest
AUTH         auth exchange (AuthSwitchRequest, auth more data; client auth packets skipped)
             until the server's OK or ERR — which ends the *connection transaction*
COMMAND      commands and responses, paired in :mod:`.stitch`
OPAQUE       the bytes are no longer plain MySQL packets: TLS after an SSLRequest, the
             compressed protocol (CLIENT_COMPRESS), a replication stream, or closed
============ =====================================================================================

Synchronisation.  A stream that lost its place (a capture gap across a packet boundary, or a
packet that cannot be where it is) is *unsynced* and waits for a trustworthy boundary: the
client stream for a feed that starts with a plausible command packet (sequence id 0, known
command, payload that fits it); the server stream for the first feed after such a command,
starting with a header whose sequence id continues the command's.  A response the server
stream lost its place in is finished, flagged truncated, when a fully captured feed ends with
its terminator or when the client sends its next command.  Skipping is not an error in itself;
``parse_errors`` counts packets that could not be parsed where they were, ``capture_gaps`` the
times a gap cost a stream its place.

The traced process is the CLIENT if it sent (EGRESS) the commands or received the greeting.
"""

from __future__ import annotations

import dataclasses

from receiver.protocols.base import Direction, Role, Transaction

from .parse import (
    MAX_PACKET,
    HandshakeResponse,
    command_of,
    PROBE_LIMIT,
    looks_like_command,
    looks_like_greeting,
    looks_like_greeting_payload,
    may_become_start,
    parse_auth_switch,
    parse_change_user,
    parse_err,
    parse_greeting,
    parse_handshake_response,
    parse_ok,
    query_attributes_end,
    text,
    u16,
    u24,
    u32,
    use_statement_schema,
)
from .stitch import (
    COMPLETE,
    DONE,
    ROWS,
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
    CLIENT_COMPRESS,
    CLIENT_DEPRECATE_EOF,
    CLIENT_QUERY_ATTRIBUTES,
    CLIENT_SESSION_TRACK,
    NO_STATEMENT,
    SERVER_MORE_RESULTS_EXISTS,
    Command,
    MysqlCommand,
    MysqlHandshake,
    MysqlResponse,
    MysqlServerGreeting,
    ResponseKind,
)

DEFAULT_MAX_BUFFER = 64 * 1024
DEFAULT_MAX_PENDING = 64
DEFAULT_MAX_QUERY = 16 * 1024
DEFAULT_MAX_STATEMENTS = 256
DEFAULT_MAX_STATEMENT_CHARS = 256 * 1024

SERVER_KEEP = 2048  # bytes kept of a server packet: greeting, OK, ERR, column count, prepare OK
HANDSHAKE_KEEP = 4096  # bytes kept of the HandshakeResponse (user, schema, plugin, attributes)

UNKNOWN = "unknown"
GREETING = "greeting"
HANDSHAKE = "handshake"
AUTH = "auth"
COMMAND = "command"
OPAQUE = "opaque"

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


class _Stream:
    """Framing state of one direction."""

    __slots__ = (
        "direction",
        "client",
        "synced",
        "hdr",
        "hdr_ts",
        "need",
        "more",
        "kept",
        "keep",
        "length",
        "first_seq",
        "seq",
        "start_ts",
        "phys",
        "probe",
        "probe_size",
    )

    def __init__(self, direction: Direction) -> None:
        self.direction = direction
        self.client = False  # carries the client's packets (known once the first packet is parsed)
        self.synced = False  # at a packet boundary, or inside a packet whose length is known
        self.hdr = bytearray()  # a packet header split across feeds
        self.hdr_ts = 0
        self.need = 0  # payload bytes still to come of the current physical packet
        self.more = False  # the current physical packet is 0xffffff bytes: a continuation follows
        self.kept = bytearray()  # kept prefix of the current logical packet (slow path only)
        self.keep = 0  # how much of the current logical packet to keep
        self.length = 0  # payload bytes of the current logical packet so far
        self.first_seq = 0  # sequence id of the current logical packet's first physical packet
        self.seq = 0  # sequence id of the current physical packet
        self.start_ts = 0  # ts of the feed carrying the current logical packet's first byte
        self.phys = 0  # physical packets in the current logical packet
        self.probe: list[tuple[bytes, int]] = []  # unsynced: the first feeds, while undecided
        self.probe_size = 0

    def reset(self) -> None:
        self.hdr = bytearray()
        self.need = 0
        self.more = False
        self.kept = bytearray()
        self.length = 0
        self.phys = 0
        self.probe = []
        self.probe_size = 0


class MysqlSession:
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
        self.max_buffer = max(256, max_buffer)
        self.max_query = max(16, min(max_query, self.max_buffer - 64))
        self.parse_errors = 0
        self.capture_gaps = 0
        self.local_infile_requests = 0
        self.internal_errors = 0  # exceptions caught at the top level: parser bugs, never wire data
        self.tls = False
        self.compressed = False
        self.phase = UNKNOWN
        self._command_keep = self.max_query + 64
        self._server_keep = min(SERVER_KEEP, self.max_buffer)
        self._handshake_keep = min(HANDSHAKE_KEEP, self.max_buffer)
        self._streams = (_Stream(Direction.EGRESS), _Stream(Direction.INGRESS))
        self._stitcher = MysqlStitcher(max_pending)
        self._statements = StatementCache(max_statements, max_statement_chars)
        self._greeting: MysqlServerGreeting | None = None
        self._hs: HandshakeResponse | None = None
        self._hs_seq = 0
        self._hs_start = 0
        self._hs_end = 0
        self._hs_size = 0
        self._hs_response_size = 0
        self._hs_switch = ""
        self._client_caps: int | None = None
        self._server_caps: int | None = None
        self._deprecate: bool | None = None  # CLIENT_DEPRECATE_EOF negotiated (None: unknown)
        self._track: bool | None = None  # CLIENT_SESSION_TRACK negotiated (None: unknown)
        self._user = ""
        self._schema = ""
        self._last_prepare = ""
        self._last_seq = -1  # sequence id of the last packet of the last finished exchange
        self._closed = False

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

    # -- ProtocolSession ---------------------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, ts_ns: int, total_len: int | None = None) -> list[Transaction]:
        """Feed bytes seen in one direction; return the transactions they completed."""
        out: list[Transaction] = []
        if self._closed or self.phase == OPAQUE:
            return out
        try:
            if not isinstance(data, bytes | bytearray):
                data = bytes(data)
            stream = self._streams[direction]
            size = len(data)
            missing = total_len - size if total_len is not None and total_len > size else 0
            if stream.synced:
                if size:
                    self._parse(stream, data, ts_ns, out)
            else:
                if not size and not missing:
                    return out
                pieces = self._sync(stream, data, ts_ns, missing, out)
                if pieces is None:
                    return out
                for piece, piece_ts in pieces:
                    if not stream.synced or self.phase == OPAQUE:
                        return out
                    self._parse(stream, piece, piece_ts, out)
            if missing and stream.synced and self.phase != OPAQUE:
                self._skip_missing(stream, missing, ts_ns, out)
        except Exception:  # defensive: a bug must not take the pipeline down
            self.parse_errors += 1
            self.internal_errors += 1
            for stream in self._streams:
                stream.synced = False
                stream.reset()
        return out

    def close(self, ts_ns: int) -> list[Transaction]:
        """The connection closed: emit what is open (unanswered requests with ``response=None``)."""
        out: list[Transaction] = []
        if self._closed:
            return out
        self._closed = True
        try:
            if self.phase == AUTH and self._hs is not None:
                self._finish_handshake(None, None, ts_ns, out)
            self._stitcher.close(ts_ns, out)
        except Exception:  # defensive, as in feed()
            self.parse_errors += 1
            self.internal_errors += 1
        for stream in self._streams:
            stream.reset()
            stream.synced = False
        self.phase = OPAQUE
        return out

    # -- synchronisation ---------------------------------------------------------------------

    def _learn_client(self, client: Direction) -> None:
        self._streams[client].client = True
        self._streams[1 - client].client = False
        self._stitcher.role = Role.CLIENT if client == Direction.EGRESS else Role.SERVER

    def _sync(
        self,
        stream: _Stream,
        data: bytes,
        ts: int,
        missing: int,
        out: list[Transaction],
    ) -> list[tuple[bytes, int]] | None:
        """Can ``stream`` (unsynced) start parsing where its held feeds + ``data`` start?

        Returns the feeds to parse (held ones with their own timestamps, then ``data``), or
        ``None``: not a start (the bytes are dropped), or not decidable yet (held, bounded).
        """
        if stream.probe:
            held = stream.probe + [(data, ts)]
            buf = b"".join(piece for piece, _ in held)
        else:
            held = [(data, ts)]
            buf = data
        if self.phase == UNKNOWN and not stream.probe and looks_like_greeting_payload(data, 0, len(data)):
            self._headerless_greeting(stream, data)
            return []
        verdict = self._start_verdict(stream, buf, ts, missing, out)
        if verdict is None:  # undecided: hold the bytes (never with a gap after them)
            if missing or stream.probe_size + len(data) >= PROBE_LIMIT:
                stream.probe = []
                stream.probe_size = 0
                return None
            stream.probe = held
            stream.probe_size += len(data)
            return None
        had_held = len(held) > 1
        stream.probe = []
        stream.probe_size = 0
        if not verdict:
            if had_held:  # the held bytes led nowhere; this feed may still start something
                return self._sync(stream, data, ts, missing, out)
            return None
        stream.synced = True
        stream.reset()
        return held

    def _headerless_greeting(self, stream: _Stream, payload: bytes) -> None:
        """The greeting's payload, its header read (and missed) apart: the next bytes of both
        directions start packets."""
        self._learn_client(Direction(1 - stream.direction))
        greeting = parse_greeting(payload, 0, len(payload), len(payload) + 4)
        self._greeting = greeting
        self._server_caps = greeting.capabilities if greeting is not None else None
        self._caps_changed()
        self._hs_seq = 0
        self.phase = HANDSHAKE
        for each in self._streams:
            each.synced = True
            each.reset()

    def _start_verdict(self, stream: _Stream, buf: bytes, ts: int, missing: int, out: list[Transaction]) -> bool | None:
        """True: ``buf`` starts where parsing can start (phase/role updated); False: it does not;
        None: not decidable yet."""
        phase = self.phase
        end = len(buf)
        if phase == UNKNOWN:
            if looks_like_greeting(buf, 0, end):
                self._learn_client(Direction(1 - stream.direction))
                self.phase = GREETING
                other = self._streams[1 - stream.direction]
                other.synced = True
                other.reset()
                return True
            if looks_like_command(buf, 0, end):
                self._learn_client(stream.direction)
                self.phase = COMMAND
                return True
            return None if may_become_start(buf, end, True) else False
        if stream.client:
            if looks_like_command(buf, 0, end):
                if phase != COMMAND:  # the end of the auth exchange was lost
                    if phase == AUTH and self._hs is not None:
                        self._finish_handshake(None, None, self._hs_end or ts, out)
                    self.phase = COMMAND
                return True
            if may_become_start(buf, end, False):
                return None
            exchange = self._stitcher.awaiting_client()
            if exchange is not None:  # file or auth data we lost our place in
                exchange.request_size += end + missing
            return False
        # The server stream: only the very start of a response can be trusted.
        head = self._stitcher.head
        if phase != COMMAND or head is None:
            return False
        if head.lost:
            self._lost_response_feed(head, buf, ts, missing, out)
            return False
        if head.seen_response:
            return False
        if end < 4:
            return None
        return buf[3] == (head.seq + 1) & 0xFF and u24(buf, 0) > 0

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

    def _lose_sync(self, stream: _Stream, ts: int) -> None:
        stream.synced = False
        stream.reset()
        if not stream.client and self.phase == COMMAND:
            head = self._stitcher.head
            if head is not None and not head.lost:
                head.lost = True
                if ts > head.end_ns:
                    head.end_ns = ts

    def _skip_missing(self, stream: _Stream, missing: int, ts: int, out: list[Transaction]) -> None:
        """``missing`` bytes after the fed ones were not captured."""
        if not stream.synced:
            return  # accounted for by _sync
        need = stream.need
        if need and missing <= need:
            stream.need = need - missing
            if stream.need == 0 and not stream.more:
                self._complete_slow(stream, ts, out)
            return
        self.capture_gaps += 1
        if stream.phys:  # bytes of the packet in progress, not yet counted anywhere
            partial = stream.length - need + 4 * stream.phys
        else:
            partial = len(stream.hdr)
        head = self._stitcher.head
        self._lose_sync(stream, ts)
        if not stream.client and head is not None and head.lost:
            head.response_size += partial + missing

    # -- framing -----------------------------------------------------------------------------

    def _parse(self, stream: _Stream, data: bytes, ts: int, out: list[Transaction]) -> None:
        pos = 0
        end = len(data)
        rows_ok = not stream.client and self.phase == COMMAND
        while pos < end:
            need = stream.need
            if need:  # inside a physical packet's payload
                take = end - pos
                if take > need:
                    take = need
                kept = stream.kept
                room = stream.keep - len(kept)
                if room > 0:
                    kept += data[pos : pos + (take if take < room else room)]
                pos += take
                need -= take
                stream.need = need
                if not need and not stream.more:
                    self._complete_slow(stream, ts, out)
                    if not stream.synced or self.phase == OPAQUE:
                        return
                continue
            hdr = stream.hdr
            if hdr:  # a header split across feeds
                take = 4 - len(hdr)
                hdr += data[pos : pos + take]
                pos += take
                if len(hdr) < 4:
                    return
                length = hdr[0] | hdr[1] << 8 | hdr[2] << 16
                seq = hdr[3]
                header_ts = stream.hdr_ts
                stream.hdr = bytearray()
            elif end - pos < 4:
                stream.hdr = bytearray(data[pos:end])
                stream.hdr_ts = ts
                return
            else:
                if rows_ok and not stream.more:
                    head = self._stitcher.head
                    if head is not None and head.state == ROWS and not head.lost:
                        pos = self._row_run(head, data, pos, end, ts)
                        if end - pos < 4:
                            continue
                length = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
                seq = data[pos + 3]
                header_ts = ts
                body = pos + 4
                if not stream.more and length < MAX_PACKET and body + length <= end:
                    # Fast path: a whole single-packet payload inside this feed, never copied.
                    if not self._header(stream, length, seq, ts, out):
                        return
                    keep = stream.keep
                    pos = body + length
                    stream.first_seq = seq
                    stop = body + (length if length < keep else keep)
                    self._packet(stream, data, body, stop, length, seq, 1, ts, ts, out)
                    if not stream.synced or self.phase == OPAQUE:
                        return
                    continue
                pos = body
            # Slow path: begin (or continue) a logical packet that is not wholly here.
            if not self._header(stream, length, seq, header_ts, out):
                return
            if stream.more:
                stream.phys += 1
                stream.length += length
            else:
                stream.start_ts = header_ts
                stream.first_seq = seq
                stream.phys = 1
                stream.length = length
                stream.kept = bytearray()
            stream.seq = seq
            stream.more = length == MAX_PACKET
            stream.need = length
            if not length and not stream.more:
                self._complete_slow(stream, ts, out)
                if not stream.synced or self.phase == OPAQUE:
                    return

    @staticmethod
    def _row_run(head: Exchange, data: bytes, pos: int, end: int, ts: int) -> int:
        """Count the whole row packets at ``data[pos:]`` (the hot path of big result sets):
        stops before anything else — a terminator, an ERR, a split or continued packet, an
        unexpected sequence id — which the general path then handles."""
        seq = head.seq
        rows = 0
        start = pos
        while pos + 4 < end:
            length = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
            nxt = (seq + 1) & 0xFF
            if data[pos + 3] != nxt or not 0 < length < MAX_PACKET or pos + 4 + length > end:
                break
            first = data[pos + 4]
            if first == 0xFE or first == 0xFF:
                break
            rows += 1
            seq = nxt
            pos += 4 + length
        if rows:
            head.row_count += rows
            head.seq = seq
            head.response_size += pos - start
            head.seen_response = True
            if ts > head.end_ns:
                head.end_ns = ts
        return pos

    def _complete_slow(self, stream: _Stream, ts: int, out: list[Transaction]) -> None:
        kept = stream.kept
        phys = stream.phys
        stream.kept = bytearray()
        stream.more = False
        stream.phys = 0
        self._packet(stream, kept, 0, len(kept), stream.length, stream.seq, phys, stream.start_ts, ts, out)

    def _header(self, stream: _Stream, length: int, seq: int, ts: int, out: list[Transaction]) -> bool:
        """Is a packet with this header expected here?  Sets how much of it to keep."""
        if stream.more:  # a continuation of the current logical packet
            if seq == (stream.seq + 1) & 0xFF:
                return True
            return self._unexpected(stream, ts)
        phase = self.phase
        if stream.client:
            if phase == COMMAND:
                if seq == 0:
                    stream.keep = self._command_keep
                    return True
                exchange = self._stitcher.awaiting_client()
                if exchange is not None and seq == (exchange.seq + 1) & 0xFF:
                    stream.keep = 0  # file contents, auth data: counted, never kept
                    return True
            elif phase == HANDSHAKE or phase == AUTH:
                if seq == (self._hs_seq + 1) & 0xFF:
                    stream.keep = self._handshake_keep if phase == HANDSHAKE else 0
                    return True
                if seq == 0 and phase == AUTH:  # a command: the end of auth was not seen
                    self._finish_handshake(None, None, self._hs_end or ts, out)
                    self.phase = COMMAND
                    stream.keep = self._command_keep
                    return True
            return self._unexpected(stream, ts)
        stream.keep = self._server_keep
        if phase == COMMAND:
            stitcher = self._stitcher
            head = stitcher.head
            while head is not None and head.optional_tail and seq != (head.seq + 1) & 0xFF:
                self._finish_exchange(head, out)
                head = stitcher.head
            if head is not None:
                if seq == (head.seq + 1) & 0xFF:
                    return True
            elif seq == (self._last_seq + 1) & 0xFF or seq == 0:
                return True  # a straggler of the last response, or a server-initiated packet
        elif phase == GREETING:
            if seq == 0:
                return True
        elif phase == AUTH:
            if seq == (self._hs_seq + 1) & 0xFF:
                return True
        return self._unexpected(stream, ts)

    def _unexpected(self, stream: _Stream, ts: int) -> bool:
        self.parse_errors += 1
        self._lose_sync(stream, ts)
        return False

    # -- packets -----------------------------------------------------------------------------

    def _packet(
        self,
        stream: _Stream,
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
                    return
                exchange = self._stitcher.awaiting_client()
                if exchange is None:  # cannot happen: _header checked it
                    self._unexpected(stream, end_ts)
                    return
                exchange.request_size += wire
                exchange.seq = seq
                if exchange.state == INFILE and length == 0:
                    exchange.state = FIRST  # the file is sent: the server's OK/ERR follows
            elif phase == HANDSHAKE:
                self._handshake_response(buf, start, stop, length, seq, wire, start_ts, out)
            elif phase == AUTH:
                self._hs_seq = seq
                self._hs_size += wire
            return
        if phase == COMMAND:
            self._response_packet(stream, buf, start, stop, length, seq, wire, end_ts, out)
        elif phase == AUTH:
            self._auth_packet(stream, buf, start, stop, length, seq, wire, end_ts, out)
        elif phase == GREETING:
            greeting = parse_greeting(buf, start, stop, wire)
            if greeting is None:
                self.parse_errors += 1
                self.phase = UNKNOWN
                for each in self._streams:
                    each.synced = False
                    each.reset()
                return
            self._greeting = greeting
            self._server_caps = greeting.capabilities
            self._caps_changed()
            self._hs_seq = seq
            self.phase = HANDSHAKE

    def _response_packet(
        self,
        stream: _Stream,
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

    def _caps_changed(self) -> None:
        caps = self.capabilities
        self._deprecate = None if caps is None else bool(caps & CLIENT_DEPRECATE_EOF)
        self._track = None if caps is None else bool(caps & CLIENT_SESSION_TRACK)

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

    # -- commands ----------------------------------------------------------------------------

    def _command(
        self,
        stream: _Stream,
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

    # -- connection phase --------------------------------------------------------------------

    def _handshake_response(
        self,
        buf,
        start: int,
        stop: int,
        length: int,
        seq: int,
        wire: int,
        start_ts: int,
        out: list[Transaction],
    ) -> None:
        self._hs_seq = seq
        response = parse_handshake_response(buf, start, stop, length)
        if response is None:
            self.parse_errors += 1
            response = HandshakeResponse(False, 0, 0, 0, "", "", "", ())
        if response.ssl_request:
            self.tls = True
            self.phase = OPAQUE  # TLS from here on
            return
        self._hs = response
        self._client_caps = response.capabilities
        self._caps_changed()
        self._hs_start = start_ts
        self._hs_end = start_ts
        self._hs_size = wire
        self._hs_response_size = 0
        self._hs_switch = ""
        self.phase = AUTH

    def _auth_packet(
        self,
        stream: _Stream,
        buf,
        start: int,
        stop: int,
        length: int,
        seq: int,
        wire: int,
        ts: int,
        out: list[Transaction],
    ) -> None:
        self._hs_seq = seq
        self._hs_response_size += wire
        self._hs_end = ts
        first = buf[start] if stop > start else -1
        if first == 0x00:
            ok = parse_ok(buf, start, stop, self._track)
            if ok is None:
                self.parse_errors += 1
                return
            self._finish_handshake(
                MysqlResponse(
                    ResponseKind.OK,
                    results=1,
                    affected_rows=ok.affected_rows,
                    last_insert_id=ok.last_insert_id,
                    warnings=ok.warnings,
                    status_flags=ok.status_flags,
                    info=ok.info,
                    wire_size=self._hs_response_size,
                ),
                ok.schema,
                ts,
                out,
            )
            caps = self.capabilities or 0
            if caps & CLIENT_COMPRESS:
                self.compressed = True
                self.phase = OPAQUE  # the compressed protocol from here on
        elif first == 0xFF:
            err = parse_err(buf, start, stop)
            self._finish_handshake(
                MysqlResponse(
                    ResponseKind.ERROR,
                    1,
                    error_code=err.error_code,
                    sql_state=err.sql_state,
                    error_message=err.message,
                    wire_size=self._hs_response_size,
                ),
                None,
                ts,
                out,
            )
        elif first == 0xFE:
            self._hs_switch = parse_auth_switch(buf, start, stop)
        elif first != 0x01 and first != 0x02:  # auth more data / next factor: skipped
            self.parse_errors += 1

    def _finish_handshake(
        self,
        response: MysqlResponse | None,
        tracked_schema: str | None,
        ts: int,
        out: list[Transaction],
    ) -> None:
        hs = self._hs
        self._hs = None
        self.phase = COMMAND
        if hs is None:
            return
        request = MysqlHandshake(
            hs.user,
            hs.schema,
            hs.capabilities,
            hs.max_packet_size,
            hs.character_set,
            hs.auth_plugin,
            self._hs_switch,
            hs.attributes,
            self._greeting,
            self._hs_size,
        )
        if response is not None and response.kind is ResponseKind.OK:
            self._user = hs.user
            self._schema = tracked_schema if tracked_schema is not None else hs.schema
        out.append(
            Transaction(
                PROTOCOL,
                self._stitcher.role,
                request,
                response,
                self._hs_start,
                ts if ts > self._hs_start else self._hs_start,
                self._hs_size,
                self._hs_response_size,
            )
        )
