"""Pairing HTTP/2 requests with responses: one transaction per stream.

HTTP/2 carries its own pairing: the client opens a stream (odd ids; even ids for server
pushes) with a header block, the server answers on the same stream id.  A stream becomes a
:class:`~receiver.protocols.base.Transaction` when it is closed in both directions (both sides
sent END_STREAM), when either side resets it (RST_STREAM), when a GOAWAY's last stream id
leaves it unprocessed, or when the connection closes.

Each stream has two *halves*, one per :class:`Direction`, filled without knowing which side
is the client; the halves become request and response when the stream ends.  The client side
is learnt from, strongest first: the connection preface, a decoded header block (``:method``
means request, ``:status`` response), PUSH_PROMISE (only servers send it), the first field of
an undecodable block (static-table ``:method``/``:status``), the kernel's view of the socket,
and last which side opened the first stream.

Bounds: at most ``max_streams`` open streams; opening one more drops the oldest, counted in
:attr:`Http2Stitcher.dropped_streams`.
"""

from __future__ import annotations

from receiver.protocols.base import Direction, Role, Transaction

from .headers import (
    BlockKind,
    HeaderBlock,
    field,
    grpc_message_of,
    grpc_service_method,
    grpc_status_of,
    is_grpc_content_type,
    pseudo_text,
    status_of,
)
from .types import PROTOCOL, Http2GoAway, Http2Request, Http2Response, Peer, StreamEnd

MAX_INTERIM = 8  # 1xx statuses kept per response
MAX_PRE_ATTACH_IDS = 1024  # ids of finished streams that began before the capture, remembered

# Strength of the evidence for which direction is the client's.
EVIDENCE_NONE = -1
EVIDENCE_OPENER = 0  # opened the first stream
EVIDENCE_KERNEL = 1  # connect()/accept() side as the kernel saw it
EVIDENCE_GUESSED = 2  # first field of an undecodable header block
EVIDENCE_DECODED = 3  # decoded :method/:status, or PUSH_PROMISE
EVIDENCE_PREFACE = 4  # sent the connection preface


class _Half:
    """What one direction sent on one stream."""

    __slots__ = (
        "seen", "head", "trailers", "unknown", "kind", "interim", "body_size", "wire_size",
        "ended", "lost", "truncated", "first_ts", "last_ts",
    )

    def __init__(self) -> None:
        self.seen = False  # any frame of this half was parsed
        self.head: HeaderBlock | None = None  # the request/final response header block
        self.trailers: HeaderBlock | None = None
        self.unknown = False  # a header block of this half could not be decoded
        self.kind = BlockKind.UNKNOWN  # REQUEST/RESPONSE as decoded or guessed
        self.interim: tuple[int, ...] = ()
        self.body_size = 0
        self.wire_size = 0
        self.ended = False  # END_STREAM seen
        self.lost = False  # sync was lost in this direction while the stream was open
        self.truncated = False
        self.first_ts = 0  # first byte of the first frame
        self.last_ts = 0  # last byte of the last frame


class _Stream:
    __slots__ = ("stream_id", "halves", "opener", "pushed", "pre_attach")

    def __init__(self, stream_id: int, opener: Direction, pre_attach: bool) -> None:
        self.stream_id = stream_id
        self.halves = (_Half(), _Half())  # indexed by Direction
        self.opener = opener  # direction of the first frame seen on the stream
        self.pushed = False
        self.pre_attach = pre_attach  # opened before the capture joined the connection


class Http2Stitcher:
    """Streams of one connection, and the transactions they become."""

    __slots__ = (
        "max_streams", "client_dir", "evidence", "dropped_streams", "late_frames", "last_goaway",
        "_streams", "_max_id", "_floor", "_from_start", "_pre_attach_done",
    )

    def __init__(self, max_streams: int = 256) -> None:
        self.max_streams = max(1, max_streams)
        self.client_dir: Direction | None = None
        self.evidence = EVIDENCE_NONE
        self.dropped_streams = 0  # open streams dropped unfinished (max_streams reached)
        self.late_frames = 0  # header blocks for streams already finished (or dropped)
        self.last_goaway: Http2GoAway | None = None
        self._streams: dict[int, _Stream] = {}  # open streams, oldest first
        self._max_id = [0, 0]  # highest stream id opened, by parity (0: even, 1: odd)
        self._floor = [0, 0]  # lowest id opened since the capture joined (mid-stream attach)
        self._from_start = False  # the connection preface was seen: no stream predates us
        self._pre_attach_done: set[int] = set()

    # -- roles -----------------------------------------------------------------------------

    @property
    def role(self) -> Role:
        if self.client_dir is None:
            return Role.UNKNOWN
        return Role.CLIENT if self.client_dir == Direction.EGRESS else Role.SERVER

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def learn_client(self, direction: Direction, evidence: int) -> None:
        """``direction`` carries the client's frames, says evidence of strength ``evidence``."""
        if evidence > self.evidence:
            self.evidence = evidence
            self.client_dir = direction

    def connection_start(self, client: Direction) -> None:
        """The connection preface was seen in direction ``client``."""
        self.learn_client(client, EVIDENCE_PREFACE)
        if not self._streams and self._max_id == [0, 0]:
            self._from_start = True

    def peer(self, direction: Direction) -> Peer | None:
        if self.client_dir is None:
            return None
        return Peer.CLIENT if direction == self.client_dir else Peer.SERVER

    # -- frames ----------------------------------------------------------------------------

    def _stream_for(self, stream_id: int, direction: Direction) -> _Stream | None:
        """The open stream ``stream_id``, opening it if it may be new; ``None`` if it finished."""
        stream = self._streams.get(stream_id)
        if stream is not None:
            return stream
        parity = stream_id & 1
        pre_attach = False
        if stream_id > self._max_id[parity]:
            if self._max_id[parity] == 0 and not self._from_start:
                self._floor[parity] = stream_id
            self._max_id[parity] = stream_id
        elif stream_id < self._floor[parity] and stream_id not in self._pre_attach_done:
            pre_attach = True
        else:
            self.late_frames += 1
            return None
        streams = self._streams
        if len(streams) >= self.max_streams:
            del streams[next(iter(streams))]
            self.dropped_streams += 1
        stream = _Stream(stream_id, direction, pre_attach)
        streams[stream_id] = stream
        if self.evidence < EVIDENCE_OPENER and stream_id & 1:
            self.learn_client(direction, EVIDENCE_OPENER)
        return stream

    def on_header_block(
        self,
        direction: Direction,
        stream_id: int,
        block: HeaderBlock,
        guess: BlockKind,
        end_stream: bool,
        wire_size: int,
        start_ts: int,
        ts: int,
        out: list[Transaction],
    ) -> None:
        """A complete header block (HEADERS + CONTINUATION) from ``direction``.

        ``block`` is ``UNKNOWN_BLOCK`` when it could not be decoded; ``guess`` is then what its
        first field suggests.
        """
        kind = block.kind
        if kind is BlockKind.REQUEST:
            self.learn_client(direction, EVIDENCE_DECODED)
        elif kind is BlockKind.RESPONSE or kind is BlockKind.INTERIM:
            self.learn_client(Direction(1 - direction), EVIDENCE_DECODED)
        elif guess is BlockKind.REQUEST:
            self.learn_client(direction, EVIDENCE_GUESSED)
        elif guess is BlockKind.RESPONSE:
            self.learn_client(Direction(1 - direction), EVIDENCE_GUESSED)
        stream = self._stream_for(stream_id, direction)
        if stream is None:
            return
        half = stream.halves[direction]
        if not half.seen:
            half.seen = True
            half.first_ts = start_ts
        half.wire_size += wire_size
        half.last_ts = ts
        if kind is BlockKind.UNKNOWN:
            half.unknown = True
            if half.kind is BlockKind.UNKNOWN:
                half.kind = guess
        elif kind is BlockKind.INTERIM:
            half.kind = BlockKind.RESPONSE
            if len(half.interim) < MAX_INTERIM:
                half.interim += (status_of(block.pseudo),)
        elif half.head is None and kind is not BlockKind.TRAILERS:
            half.head = block
            half.kind = kind
        else:
            half.trailers = block
        if end_stream:
            half.ended = True
        self._maybe_finish(stream, ts, out)

    def on_push_promise(
        self, direction: Direction, promised_id: int, block: HeaderBlock, start_ts: int, out: list[Transaction]
    ) -> None:
        """A PUSH_PROMISE from ``direction`` (the server): ``block`` is the promised request."""
        self.learn_client(Direction(1 - direction), EVIDENCE_DECODED)
        stream = self._stream_for(promised_id, Direction(1 - direction))
        if stream is None:
            return
        stream.pushed = True
        half = stream.halves[1 - direction]
        half.seen = True
        half.first_ts = half.last_ts = start_ts
        half.ended = True
        if block.kind is BlockKind.UNKNOWN:
            half.unknown = True
        else:
            half.head = block
        half.kind = BlockKind.REQUEST

    def on_data(
        self, direction: Direction, stream_id: int, body_size: int, wire_size: int, end_stream: bool,
        start_ts: int, ts: int, truncated: bool, out: list[Transaction],
    ) -> None:
        """A DATA frame from ``direction`` has fully gone by (possibly partly uncaptured)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return  # its stream finished, or its headers were never seen
        half = stream.halves[direction]
        if not half.seen:
            half.seen = True
            half.first_ts = start_ts
        half.body_size += body_size
        half.wire_size += wire_size
        half.last_ts = ts
        if truncated:
            half.truncated = True
        if end_stream:
            half.ended = True
            self._maybe_finish(stream, ts, out)

    def on_rst_stream(self, direction: Direction, stream_id: int, error_code: int, ts: int, out: list[Transaction]) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._emit(stream, StreamEnd.RST_STREAM, ts, out, error_code, self.peer(direction))

    def on_goaway(self, direction: Direction, last_stream_id: int, error_code: int, ts: int, out: list[Transaction]) -> None:
        """GOAWAY from ``direction``: streams the *other* side opened above ``last_stream_id``
        were not (and will not be) processed."""
        sender = self.peer(direction)
        self.last_goaway = Http2GoAway(sender, last_stream_id, error_code)
        receiver_parity = 0 if sender is Peer.CLIENT else 1  # unknown roles: assume the server sent it
        for stream in [s for s in self._streams.values() if s.stream_id & 1 == receiver_parity and s.stream_id > last_stream_id]:
            self._emit(stream, StreamEnd.GOAWAY, ts, out, error_code, sender)

    def lose_sync(self, direction: Direction) -> None:
        """Frames from ``direction`` were lost: open streams may have missed their END_STREAM."""
        for stream in self._streams.values():
            half = stream.halves[direction]
            half.lost = True
            half.truncated = True

    def close(self, ts: int, out: list[Transaction]) -> None:
        """The connection closed: every open stream ends now."""
        for stream in list(self._streams.values()):
            self._emit(stream, StreamEnd.CONNECTION_CLOSED, ts, out, None, None)

    # -- transactions ------------------------------------------------------------------------

    def _client_of(self, stream: _Stream) -> Direction:
        if self.client_dir is not None:
            return self.client_dir
        for direction in (Direction.EGRESS, Direction.INGRESS):
            kind = stream.halves[direction].kind
            if kind is BlockKind.REQUEST:
                return direction
            if kind is BlockKind.RESPONSE:
                return Direction(1 - direction)
        return stream.opener

    def _maybe_finish(self, stream: _Stream, ts: int, out: list[Transaction]) -> None:
        client = self._client_of(stream)
        response = stream.halves[1 - client]
        if not response.ended:
            return
        request = stream.halves[client]
        if request.ended or request.lost or not request.seen:
            self._emit(stream, StreamEnd.END_STREAM, ts, out, None, None)

    def _emit(
        self, stream: _Stream, end: StreamEnd, ts: int, out: list[Transaction], error_code: int | None, error_from: Peer | None,
    ) -> None:
        del self._streams[stream.stream_id]
        if stream.pre_attach:
            if len(self._pre_attach_done) >= MAX_PRE_ATTACH_IDS:
                self._pre_attach_done.clear()
            self._pre_attach_done.add(stream.stream_id)
        client = self._client_of(stream)
        req = stream.halves[client]
        resp = stream.halves[1 - client]
        request = _request(stream, req, resp)
        response: Http2Response | None = None
        if resp.seen or error_code is not None or end is StreamEnd.GOAWAY:
            response = _response(resp, end, error_code, error_from)
        start_ns = req.first_ts if req.seen else (resp.first_ts if resp.seen else ts)
        end_ns = resp.last_ts if resp.ended else ts
        if end_ns < start_ns:
            end_ns = start_ns
        out.append(
            Transaction(
                PROTOCOL,
                Role.CLIENT if client == Direction.EGRESS else Role.SERVER,
                request,
                response,
                start_ns,
                end_ns,
                request.wire_size,
                response.wire_size if response is not None else 0,
            )
        )


def _request(stream: _Stream, half: _Half, other: _Half) -> Http2Request:
    head = half.head
    pseudo = head.pseudo if head is not None else {}
    headers = head.fields if head is not None else ()
    path = pseudo_text(pseudo, b":path")
    is_grpc = is_grpc_content_type(field(headers, "content-type"))
    if not is_grpc and head is None and other.head is not None:
        is_grpc = is_grpc_content_type(field(other.head.fields, "content-type"))
    service, method = grpc_service_method(path) if is_grpc else (None, None)
    trailers = half.trailers
    return Http2Request(
        stream.stream_id,
        pseudo_text(pseudo, b":method"),
        pseudo_text(pseudo, b":scheme"),
        pseudo_text(pseudo, b":authority"),
        path,
        headers,
        half.body_size,
        half.wire_size,
        trailers.fields if trailers is not None else (),
        head is not None and not half.unknown,
        half.ended,
        is_grpc,
        service,
        method,
        stream.pushed,
        half.truncated or (head is None and not half.unknown),  # its start was not captured
    )


def _response(half: _Half, end: StreamEnd, error_code: int | None, error_from: Peer | None) -> Http2Response:
    head = half.head
    headers = head.fields if head is not None else ()
    trailers = half.trailers.fields if half.trailers is not None else ()
    grpc_source = trailers if half.trailers is not None else headers
    return Http2Response(
        status_of(head.pseudo) if head is not None else None,
        headers,
        half.body_size,
        half.wire_size,
        trailers,
        grpc_status_of(grpc_source),
        grpc_message_of(grpc_source),
        not half.unknown and (head is not None or not half.seen),
        half.ended,
        end,
        error_code,
        error_from,
        half.interim,
        # Also when its start was not captured (frames, but no head block, not even an unknown one).
        half.truncated or (half.seen and head is None and not half.unknown and not half.interim),
    )


__all__ = ["Http2Stitcher"]
