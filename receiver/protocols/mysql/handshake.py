"""The connection phase of a :class:`~.session.MysqlSession`: greeting, handshake, authentication.

The server greets (protocol 10); the client answers with a HandshakeResponse41 — or with an
SSLRequest, after which the connection is TLS and nothing more is parsed; then the server may
switch the auth plugin (AuthSwitchRequest) or send auth more data, the client's auth packets
are counted and skipped, and the server's OK or ERR ends the exchange.  The whole exchange is
one transaction, the *connection transaction* (request :class:`~.types.MysqlHandshake`).
Capabilities are negotiated here: CLIENT_COMPRESS makes everything after the OK opaque;
CLIENT_DEPRECATE_EOF and CLIENT_SESSION_TRACK change how responses are read.
"""

from __future__ import annotations

from receiver.protocols.base import Direction, Transaction

from .framing import PacketStream
from .parse import (
    HandshakeResponse,
    parse_auth_switch,
    parse_err,
    parse_greeting,
    parse_handshake_response,
    parse_ok,
)
from .phases import AUTH, COMMAND, HANDSHAKE, OPAQUE, UNKNOWN
from .stitch import PROTOCOL, MysqlStitcher
from .types import (
    CLIENT_COMPRESS,
    CLIENT_DEPRECATE_EOF,
    CLIENT_SESSION_TRACK,
    MysqlHandshake,
    MysqlResponse,
    MysqlServerGreeting,
    ResponseKind,
)


class HandshakePhase:
    """The connection phase of a :class:`~.session.MysqlSession`.

    Owns the greeting, the handshake response being answered (``_hs*``), the capability flags
    of both sides and what they imply (``_deprecate``, ``_track``), and the ``tls`` and
    ``compressed`` flags.  Sets the session's user and schema when authentication succeeds.
    """

    # Set by the session, the framing and the command phase.
    phase: str
    parse_errors: int
    capabilities: int | None
    _streams: tuple[PacketStream, PacketStream]
    _stitcher: MysqlStitcher
    _user: str
    _schema: str

    def _init_handshake(self) -> None:
        self.tls = False
        self.compressed = False
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

    # -- the greeting ------------------------------------------------------------------------

    def _headerless_greeting(self, stream: PacketStream, payload: bytes) -> None:
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

    def _greeting_packet(self, buf, start: int, stop: int, seq: int, wire: int) -> None:
        """The server greeting, read as a packet (phase GREETING)."""
        greeting = parse_greeting(buf, start, stop, wire)
        if greeting is None:
            self.parse_errors += 1
            self.phase = UNKNOWN
            self._unsync_all()
            return
        self._greeting = greeting
        self._server_caps = greeting.capabilities
        self._caps_changed()
        self._hs_seq = seq
        self.phase = HANDSHAKE

    def _caps_changed(self) -> None:
        caps = self.capabilities
        self._deprecate = None if caps is None else bool(caps & CLIENT_DEPRECATE_EOF)
        self._track = None if caps is None else bool(caps & CLIENT_SESSION_TRACK)

    # -- handshake response and authentication -----------------------------------------------

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

    def _client_auth_data(self, seq: int, wire: int) -> None:
        """A client packet of the auth exchange (auth data): counted, never kept."""
        self._hs_seq = seq
        self._hs_size += wire

    def _auth_packet(
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
