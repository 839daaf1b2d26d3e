"""MySQL packet framing and synchronisation, both directions (a part of :class:`~.session.MysqlSession`).

Framing.  Each direction is a :class:`PacketStream` cutting its bytes into packets
(``length:3 | seq:1 | payload``) and joining 0xffffff-byte physical packets with their
continuations into logical packets.  Of each logical packet only a bounded prefix is kept
(``keep``: the SQL text of a command up to ``max_query``, a few KiB of a server packet, nothing
of auth data); the rest — rows, column definitions, file contents, long query tails — is
counted and skipped, never buffered.  A packet wholly inside one feed is handed on without
copying.  Truncated captures (``total_len > len(data)``) are skipped by length when the gap
falls inside a packet.  Which packet may come next (its sequence id, how much of it to keep)
depends on the phase (:mod:`.phases`).

Synchronisation.  A stream that lost its place (a capture gap across a packet boundary, or a
packet that cannot be where it is) is *unsynced* and waits for a trustworthy boundary: the
client stream for a feed that starts with a plausible command packet (sequence id 0, known
command, payload that fits it); the server stream for the first feed after such a command,
starting with a header whose sequence id continues the command's.  A response the server
stream lost its place in is finished, flagged truncated, when a fully captured feed ends with
its terminator or when the client sends its next command.  Skipping is not an error in itself;
``parse_errors`` counts packets that could not be parsed where they were, ``capture_gaps`` the
times a gap cost a stream its place.
"""

from __future__ import annotations

from receiver.protocols.base import Direction, Role, Transaction

from .parse import (
    MAX_PACKET,
    HandshakeResponse,
    PROBE_LIMIT,
    looks_like_command,
    looks_like_greeting,
    looks_like_greeting_payload,
    may_become_start,
    u24,
)
from .phases import AUTH, COMMAND, GREETING, HANDSHAKE, OPAQUE, UNKNOWN
from .stitch import ROWS, Exchange, MysqlStitcher

SERVER_KEEP = 2048  # bytes kept of a server packet: greeting, OK, ERR, column count, prepare OK
HANDSHAKE_KEEP = 4096  # bytes kept of the HandshakeResponse (user, schema, plugin, attributes)


class PacketStream:
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


class PacketFraming:
    """Framing and synchronisation of a :class:`~.session.MysqlSession`'s two directions.

    Owns ``_streams`` and ``capture_gaps``.  Hands every logical packet to the session's
    ``_packet``, and asks the phases (:class:`~.handshake.HandshakePhase`,
    :class:`~.command.CommandPhase`) to finish what a lost boundary cut short.
    """

    # Set by the session and the phases.
    max_buffer: int
    max_query: int
    phase: str
    parse_errors: int
    _stitcher: MysqlStitcher
    _hs: HandshakeResponse | None
    _hs_seq: int
    _hs_end: int

    def _init_framing(self) -> None:
        self.capture_gaps = 0
        self._command_keep = self.max_query + 64
        self._server_keep = min(SERVER_KEEP, self.max_buffer)
        self._handshake_keep = min(HANDSHAKE_KEEP, self.max_buffer)
        self._streams = (PacketStream(Direction.EGRESS), PacketStream(Direction.INGRESS))

    def _unsync_all(self) -> None:
        """Both streams wait for a trustworthy boundary, holding nothing."""
        for stream in self._streams:
            stream.synced = False
            stream.reset()

    # -- synchronisation ---------------------------------------------------------------------

    def _learn_client(self, client: Direction) -> None:
        self._streams[client].client = True
        self._streams[1 - client].client = False
        self._stitcher.role = Role.CLIENT if client == Direction.EGRESS else Role.SERVER

    def _sync(
        self,
        stream: PacketStream,
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

    def _start_verdict(
        self, stream: PacketStream, buf: bytes, ts: int, missing: int, out: list[Transaction]
    ) -> bool | None:
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

    def _lose_sync(self, stream: PacketStream, ts: int) -> None:
        stream.synced = False
        stream.reset()
        if not stream.client and self.phase == COMMAND:
            head = self._stitcher.head
            if head is not None and not head.lost:
                head.lost = True
                if ts > head.end_ns:
                    head.end_ns = ts

    def _skip_missing(self, stream: PacketStream, missing: int, ts: int, out: list[Transaction]) -> None:
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

    def _parse(self, stream: PacketStream, data: bytes, ts: int, out: list[Transaction]) -> None:
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

    def _complete_slow(self, stream: PacketStream, ts: int, out: list[Transaction]) -> None:
        kept = stream.kept
        phys = stream.phys
        stream.kept = bytearray()
        stream.more = False
        stream.phys = 0
        self._packet(stream, kept, 0, len(kept), stream.length, stream.seq, phys, stream.start_ts, ts, out)

    def _header(self, stream: PacketStream, length: int, seq: int, ts: int, out: list[Transaction]) -> bool:
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

    def _unexpected(self, stream: PacketStream, ts: int) -> bool:
        self.parse_errors += 1
        self._lose_sync(stream, ts)
        return False
