"""``AmqpSession``: one AMQP 0-9-1 connection (RabbitMQ), both directions, bytes in,
transactions out.

Each direction is a :class:`_FrameStream`: the client's begins with the protocol header
``AMQP 0 0 9 1``, then both carry frames ``type u8, channel u16, size u32, payload, 0xCE``.
Method and content-header payloads are kept (up to ``max_buffer`` bytes each); body payloads are
only counted, never kept, and skipped by length — across truncated captures too.  After framing
is lost a stream hunts: the next write must start with a frame header whose end byte checks out.

Commands are assembled per channel (a content method, then its header, then body frames up to
the declared size; other channels' frames may come in between) and turned into transactions:

* ``basic.publish`` from the client: a *send* transaction (no reply; publisher confirms are
  counted, not paired);
* ``basic.deliver`` from the broker: a *receive* transaction (no request);
* ``basic.nack`` / ``basic.reject`` from the client: a *settle* transaction; ``basic.ack`` is
  counted only (:attr:`acks`);
* synchronous requests (``queue.declare``, ``basic.get``, ``channel.open``...) paired in order per
  channel with their reply (``queue.declare-ok``, ``basic.get-ok`` with its content or
  ``basic.get-empty``) — or with the ``channel.close``/``connection.close`` by which the broker
  refused them (counted in :attr:`broker_errors`).  ``no-wait`` requests expect nothing.

Which side is the client is the kernel's hint, or learnt from the protocol header or from the
first method only one side sends.
"""

from __future__ import annotations

from collections import deque

from receiver.protocols.base import Direction, Role, Transaction

from .methods import REPLIES, read_arguments
from .types import PROTOCOL, AmqpCommand
from .wire import (
    BODY,
    CONTENT_METHODS,
    FRAME_END,
    FRAME_HEADER,
    HEADER,
    HEARTBEAT,
    METHOD,
    PROTOCOL_HEADER,
    Reader,
    content_header,
    frame_header,
    method_name,
)

DEFAULT_MAX_BUFFER = 64 * 1024
DEFAULT_MAX_PENDING = 256
MAX_CHANNELS = 2048  # channels with state (assembling content / pending requests)
MIN_BUFFER = 512
HUNT_WINDOW = 4096
DEFAULT_FRAME_MAX = 131072  # RabbitMQ's default, until connection.tune says otherwise

# Methods only a client sends / only a broker sends: either tells the sides apart.
_CLIENT_ONLY = frozenset({"connection.start-ok", "connection.tune-ok", "connection.open", "basic.publish",
                          "basic.get", "basic.consume", "queue.declare", "exchange.declare", "basic.qos"})
_BROKER_ONLY = frozenset({"connection.start", "connection.tune", "connection.open-ok", "basic.deliver",
                          "basic.get-ok", "basic.get-empty", "channel.open-ok", "queue.declare-ok"})


class _FrameStream:
    """One direction's frames; calls ``on_frame(type, channel, payload, wire, start, end, cut)``."""

    __slots__ = ("keep", "head", "payload", "ftype", "channel", "size", "got", "start", "cut", "state", "hunting",
                 "on_frame", "on_loss", "errors", "gaps", "preamble", "seen", "max_frame", "expects_body")

    def __init__(self, keep: int, on_frame, on_loss, expects_body) -> None:
        self.keep = keep
        self.on_frame = on_frame
        self.on_loss = on_loss  # called when sync is lost
        self.expects_body = expects_body  # channel -> is a content body awaited there
        self.max_frame = DEFAULT_FRAME_MAX  # frames found while hunting may not be larger
        self.head = bytearray()
        self.payload = bytearray()
        self.ftype = self.channel = self.size = self.got = self.start = 0
        self.cut = False
        self.state = 0  # 0: frame header, 1: payload, 2: frame end
        self.hunting = False
        self.errors = 0
        self.gaps = 0
        self.preamble = 0  # bytes of the protocol header seen
        self.seen = False

    @property
    def buffered(self) -> int:
        return len(self.head) + len(self.payload)

    def feed(self, data: bytes, ts: int, missing: int) -> None:
        i = 0
        end = len(data)
        if not self.seen and end:
            self.seen = True
            if data[: min(end, 8)] == PROTOCOL_HEADER[: min(end, 8)]:
                self.preamble = 8
        if self.preamble:
            n = min(self.preamble, end)
            self.preamble -= n
            i = n
        if self.hunting:
            i = self._hunt(data, i)
            if i < 0:
                return
        while i < end:
            if self.state == 0:
                if not self.head:
                    self.start = ts
                take = data[i : i + FRAME_HEADER - len(self.head)]
                self.head += take
                i += len(take)
                if len(self.head) < FRAME_HEADER:
                    break
                parsed = frame_header(bytes(self.head))
                self.head.clear()
                if parsed is None:
                    self.errors += 1
                    self.lose_sync()
                    i = self._hunt(data, i)
                    if i < 0:
                        return
                    continue
                self.ftype, self.channel, self.size = parsed
                self.got = 0
                self.cut = False
                self.state = 1 if self.size else 2
            elif self.state == 1:
                n = min(self.size - self.got, end - i)
                if self.ftype != BODY:
                    room = self.keep - len(self.payload)
                    if room > 0:
                        self.payload += data[i : i + min(n, room)]
                self.got += n
                i += n
                if self.got == self.size:
                    self.state = 2
            else:
                if data[i] != FRAME_END:
                    self.errors += 1
                    self.lose_sync()
                    i = self._hunt(data, i)
                    if i < 0:
                        return
                    continue
                i += 1
                self._emit(ts)
        if missing:
            self._missing(ts, missing)

    def _emit(self, ts: int) -> None:
        payload = bytes(self.payload)
        self.payload.clear()
        self.state = 0
        self.on_frame(self.ftype, self.channel, payload, self.size + FRAME_HEADER + 1, self.start, ts,
                      self.cut or len(payload) < self.size and self.ftype != BODY)

    def _missing(self, ts: int, missing: int) -> None:
        if self.state == 1:
            left = self.size - self.got
            if missing < left or missing == left:
                self.got += missing
                self.cut = True
                self.state = 2 if self.got == self.size else 1
                return
            missing -= left
            self.got = self.size
            self.cut = True
            self.state = 2
        if self.state == 2 and self.got == self.size and self.cut and missing >= 1 and not self.head:
            self._emit(ts)  # assume the lost byte was the frame end
            missing -= 1
            if not missing:
                return
        self.lose_sync()

    def lose_sync(self) -> None:
        self.gaps += 1
        self.head.clear()
        self.payload.clear()
        self.state = 0
        self.hunting = True
        self.on_loss()

    def _hunt(self, data: bytes, i: int) -> int:
        """The offset of the first believable frame in ``data[i:]``, or -1: the rest of ``data``
        is dropped.  Believable: no larger than the negotiated frame size, and either its end
        byte is in ``data`` and checks out, or it starts ``data`` (captures are cut at the end of
        a write) and is a known method, a content header, or a body where one is awaited."""
        stop = min(len(data), i + HUNT_WINDOW)
        for at in range(i, stop):
            parsed = frame_header(data, at)
            if parsed is None or parsed[2] > self.max_frame:
                continue
            ftype, channel, size = parsed
            end_at = at + FRAME_HEADER + size
            if end_at < len(data):
                if data[end_at] != FRAME_END:
                    continue
            elif at != i or not self._believable_start(data, at, ftype, channel):
                continue
            self.hunting = False
            return at
        return -1

    def _believable_start(self, data: bytes, at: int, ftype: int, channel: int) -> bool:
        if ftype == METHOD:
            ids = data[at + FRAME_HEADER : at + FRAME_HEADER + 4]
            return len(ids) == 4 and not method_name(ids[0] << 8 | ids[1], ids[2] << 8 | ids[3]).startswith("unknown")
        if ftype == HEADER:
            return True
        return ftype == BODY and self.expects_body(channel)


class _Content:
    """A content method being assembled on one channel."""

    __slots__ = ("name", "args", "start", "wire", "body_size", "received", "traceparent", "tracestate", "cut",
                 "have_header")

    def __init__(self, name, args, start: int, wire: int, cut: bool) -> None:
        self.name = name
        self.args = args
        self.start = start
        self.wire = wire
        self.cut = cut
        self.body_size: int | None = None
        self.received = 0
        self.traceparent = self.tracestate = None
        self.have_header = False


class AmqpSession:
    """AMQP 0-9-1 parser and stitcher for one connection (implements ``ProtocolSession``).

    Counters, all monotonic: :attr:`parse_errors`, :attr:`capture_gaps`, :attr:`acks`,
    :attr:`confirms` (broker acks/nacks of publishes), :attr:`returns` (unroutable publishes sent
    back), :attr:`broker_errors` (error closes from the broker), :attr:`heartbeats`,
    :attr:`dropped_requests`, :attr:`unmatched_replies`, :attr:`internal_errors`.
    """

    protocol = PROTOCOL

    def __init__(
        self,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        max_pending: int = DEFAULT_MAX_PENDING,
        kernel_role: Role = Role.UNKNOWN,
        transport: str = "tcp",
    ) -> None:
        self.max_buffer = max(MIN_BUFFER, max_buffer)
        self.max_pending = max(1, max_pending)
        self.transport = transport
        self.internal_errors = 0
        self.acks = self.confirms = self.returns = self.broker_errors = self.heartbeats = 0
        self.dropped_requests = self.unmatched_replies = 0
        self._bad_frames = 0
        self._streams = (
            _FrameStream(self.max_buffer, self._egress_frame, self._egress_loss, self._egress_expects_body),
            _FrameStream(self.max_buffer, self._ingress_frame, self._ingress_loss, self._ingress_expects_body),
        )
        self._client_dir: Direction | None = None
        self._early: list[tuple] = []
        self._content: tuple[dict[int, _Content], dict[int, _Content]] = ({}, {})
        self._pending: dict[int, deque] = {}
        self._out: list[Transaction] = []
        self._closed = False
        if kernel_role == Role.CLIENT:
            self._client_dir = Direction.EGRESS
        elif kernel_role == Role.SERVER:
            self._client_dir = Direction.INGRESS

    # -- read-only views ---------------------------------------------------------------------

    @property
    def parse_errors(self) -> int:
        return self._streams[0].errors + self._streams[1].errors + self._bad_frames + self.internal_errors

    @property
    def capture_gaps(self) -> int:
        return self._streams[0].gaps + self._streams[1].gaps

    @property
    def role(self) -> Role:
        if self._client_dir is None:
            return Role.UNKNOWN
        return Role.CLIENT if self._client_dir == Direction.EGRESS else Role.SERVER

    @property
    def pending_requests(self) -> int:
        return sum(len(q) for q in self._pending.values())

    @property
    def buffered_bytes(self) -> int:
        return self._streams[0].buffered + self._streams[1].buffered

    # -- ProtocolSession ---------------------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, ts_ns: int, total_len: int | None = None) -> list[Transaction]:
        out: list[Transaction] = []
        if self._closed:
            return out
        self._out = out
        try:
            size = len(data)
            if self._client_dir is None and not self._streams[direction].seen and data[:4] == b"AMQP":
                self._client_dir = direction
            missing = total_len - size if total_len is not None and total_len > size else 0
            self._streams[direction].feed(data, ts_ns, missing)
        except Exception:  # defensive: a bug must not take the pipeline down
            self.internal_errors += 1
            for stream in self._streams:
                stream.lose_sync()
        self._out = []
        return out

    def close(self, ts_ns: int) -> list[Transaction]:
        out: list[Transaction] = []
        if self._closed:
            return out
        self._closed = True
        try:
            for channel in sorted(self._pending):
                for request, start, end in self._pending[channel]:
                    out.append(self._transaction(request, None, start, end))
            self._pending.clear()
        except Exception:
            self.internal_errors += 1
        return out

    # -- frames ------------------------------------------------------------------------------

    def _egress_frame(self, ftype, channel, payload, wire, start, end, cut) -> None:
        self._on_frame(Direction.EGRESS, ftype, channel, payload, wire, start, end, cut)

    def _ingress_frame(self, ftype, channel, payload, wire, start, end, cut) -> None:
        self._on_frame(Direction.INGRESS, ftype, channel, payload, wire, start, end, cut)

    def _egress_loss(self) -> None:
        self._on_loss(Direction.EGRESS)

    def _ingress_loss(self) -> None:
        self._on_loss(Direction.INGRESS)

    def _egress_expects_body(self, channel: int) -> bool:
        return channel in self._content[Direction.EGRESS]

    def _ingress_expects_body(self, channel: int) -> bool:
        return channel in self._content[Direction.INGRESS]

    def _on_loss(self, direction: Direction) -> None:
        """Framing lost: contents being assembled in that direction are finished as they are,
        marked truncated (their body size is known from the header)."""
        contents = self._content[direction]
        pending = list(contents.items())
        contents.clear()
        for channel, content in pending:
            if not content.have_header:
                self._bad_frames += 1
                continue
            cmd = _command(content.name, channel, content.args, content, content.wire, True)
            self._command(direction, cmd, content.start, content.start)

    def _on_frame(self, direction, ftype, channel, payload, wire, start, end, cut) -> None:
        if ftype == HEARTBEAT:
            self.heartbeats += 1
            return
        contents = self._content[direction]
        if ftype == METHOD:
            r = Reader(payload)
            class_id, method_id = r.u16(), r.u16()
            if class_id is None or method_id is None:
                self._bad_frames += 1
                return
            name = method_name(class_id, method_id)
            args = read_arguments(name, r)
            if name in ("connection.tune", "connection.tune-ok") and args.frame_max:
                for stream in self._streams:
                    stream.max_frame = min(args.frame_max, DEFAULT_FRAME_MAX * 8)
            if self._client_dir is None:
                if name in _CLIENT_ONLY:
                    self._client_dir = direction
                elif name in _BROKER_ONLY:
                    self._client_dir = Direction(1 - direction)
            if channel in contents:  # a new method while content was expected: that content is lost
                self._bad_frames += 1
                del contents[channel]
            if name in CONTENT_METHODS:
                if len(contents) < MAX_CHANNELS:
                    contents[channel] = _Content(name, args, start, wire, cut)
                else:
                    self.dropped_requests += 1
                return
            self._command(direction, _command(name, channel, args, None, wire, cut), start, end)
            return
        content = contents.get(channel)
        if content is None:  # content frames without a method (attached mid-message)
            if self._client_dir is not None:
                self._bad_frames += 1
            return
        content.wire += wire
        content.cut = content.cut or cut
        if ftype == HEADER and not content.have_header:
            content.have_header = True
            parsed = content_header(payload)
            if parsed is None:
                self._bad_frames += 1
                content.body_size = 0
            else:
                content.body_size, headers = parsed
                if headers:
                    tp, ts_ = headers.get("traceparent"), headers.get("tracestate")
                    content.traceparent = tp if isinstance(tp, str) else None
                    content.tracestate = ts_ if isinstance(ts_, str) else None
        elif ftype == BODY and content.have_header:
            content.received += wire - FRAME_HEADER - 1
        else:
            self._bad_frames += 1
        if content.have_header and content.received >= (content.body_size or 0):
            del contents[channel]
            cmd = _command(content.name, channel, content.args, content, content.wire, content.cut)
            self._command(direction, cmd, content.start, end)

    # -- commands ----------------------------------------------------------------------------

    def _command(self, direction: Direction, cmd: AmqpCommand, start: int, end: int) -> None:
        if self._client_dir is None:
            self._early.append((direction, cmd, start, end))
            if len(self._early) > 64:
                self._early.pop(0)
                self._bad_frames += 1
            return
        if self._early:
            early, self._early = self._early, []
            for item in early:
                self._command(*item)
        name = cmd.name
        if direction == self._client_dir:
            if name == "basic.publish" or name in ("basic.nack", "basic.reject"):
                self._out.append(self._transaction(cmd, None, start, end))
            elif name == "basic.ack":
                self.acks += 1
            elif name in REPLIES and not cmd.nowait:
                queue = self._pending.get(cmd.channel)
                if queue is None:
                    if len(self._pending) >= MAX_CHANNELS:
                        self.dropped_requests += 1
                        return
                    queue = self._pending[cmd.channel] = deque()
                if len(queue) >= self.max_pending:
                    queue.popleft()
                    self.dropped_requests += 1
                queue.append((cmd, start, end))
            return
        # from the broker
        if name == "basic.deliver":
            self._out.append(self._transaction(cmd, None, start, end))
        elif name == "basic.return":
            self.returns += 1
        elif name in ("basic.ack", "basic.nack"):
            self.confirms += 1
        elif cmd.is_error_close or name in ("channel.close", "connection.close"):
            if cmd.is_error_close:
                self.broker_errors += 1
            channel = cmd.channel if cmd.channel in self._pending else (min(self._pending) if self._pending else None)
            queue = self._pending.get(channel) if channel is not None else None
            if queue:
                request, req_start, _ = queue.popleft()
                self._out.append(self._transaction(request, cmd, req_start, end))
                if not queue:
                    del self._pending[channel]
        else:
            queue = self._pending.get(cmd.channel)
            if queue:
                for k, (request, req_start, _) in enumerate(queue):
                    if name in REPLIES[request.name]:
                        del queue[k]
                        if not queue:
                            del self._pending[cmd.channel]
                        self._out.append(self._transaction(request, cmd, req_start, end))
                        return
            if name.endswith("-ok") or name == "basic.get-empty":
                if name not in ("connection.start-ok", "connection.tune-ok", "connection.secure-ok"):
                    self.unmatched_replies += 1

    def _transaction(self, request: AmqpCommand, response: AmqpCommand | None, start: int, end: int) -> Transaction:
        return Transaction(
            protocol=PROTOCOL,
            role=self.role,
            request=request,
            response=response,
            start_ns=start,
            end_ns=end,
            request_size=request.wire_size,
            response_size=response.wire_size if response is not None else 0,
        )


def _command(name: str, channel: int, args, content: _Content | None, wire: int, cut: bool) -> AmqpCommand:
    return AmqpCommand(
        name=name,
        channel=channel,
        exchange=args.exchange,
        routing_key=args.routing_key,
        queue=args.queue,
        delivery_tag=args.delivery_tag,
        body_size=content.body_size if content is not None else None,
        traceparent=content.traceparent if content is not None else None,
        tracestate=content.tracestate if content is not None else None,
        reply_code=args.reply_code,
        reply_text=args.reply_text,
        redelivered=args.redelivered,
        wire_size=wire,
        truncated=cut or not args.ok,
        nowait=args.nowait,
    )
