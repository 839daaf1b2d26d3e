"""``NatsSession``: one NATS client connection, both directions, bytes in, transactions out.

The client speaks first with ``CONNECT {...}`` (after the server's ``INFO {...}``); each side's
operations are its own (``PUB``/``HPUB``/``SUB``/``UNSUB`` from the client; ``MSG``/``HMSG``/
``INFO``/``+OK``/``-ERR`` from the server; ``PING``/``PONG`` both ways), so which side the traced
process plays is the kernel's hint or the first operation seen.

Transactions, from the client's point of view:

* ``PUB``/``HPUB`` without a reply subject → a *send* (no response);
* ``PUB``/``HPUB`` with a reply subject → a *request*, answered by the first ``MSG``/``HMSG``
  delivered on that subject (request–reply: the latency is the reply's); one that gets no reply
  within ``reply_timeout_ns`` (on the timestamps that come with the bytes), or by close, is
  returned as a send;
* ``MSG``/``HMSG`` that answer no request → a *receive* (no request before it);
* ``-ERR`` → a transaction of its own (:class:`~.types.NatsError`), and counted.

``PING``/``PONG``/``+OK``/``INFO``/``CONNECT``/``SUB``/``UNSUB`` are counted, not transactions.
Payloads are skipped by length (across truncated captures too); header blocks are read for
``traceparent``/``tracestate`` and the status (``503``: no responders).
"""

from __future__ import annotations

from collections import OrderedDict

from receiver.protocols.base import Direction, Role, Transaction

from .types import PROTOCOL, NatsError, NatsMessage
from .wire import CLIENT_OPS, SERVER_OPS, Line, Stream, parse_headers, parse_line

DEFAULT_MAX_BUFFER = 64 * 1024
DEFAULT_MAX_PENDING = 1024
DEFAULT_REPLY_TIMEOUT_NS = 10_000_000_000
MAX_LINE = 4096 + 2 * 256  # CONNECT/INFO JSON can be long; PUB lines are short
MAX_INFO_LINE = 64 * 1024


class NatsSession:
    """NATS parser and stitcher for one connection (implements ``ProtocolSession``).

    Counters, all monotonic: :attr:`parse_errors`, :attr:`capture_gaps`, :attr:`server_errors`
    (``-ERR``), :attr:`pings`, :attr:`pongs`, :attr:`oks`, :attr:`subscriptions`,
    :attr:`expired_requests`, :attr:`dropped_requests`, :attr:`internal_errors`.
    """

    protocol = PROTOCOL

    def __init__(
        self,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        max_pending: int = DEFAULT_MAX_PENDING,
        kernel_role: Role = Role.UNKNOWN,
        transport: str = "tcp",
        reply_timeout_ns: int = DEFAULT_REPLY_TIMEOUT_NS,
    ) -> None:
        self.max_buffer = max(MAX_LINE, max_buffer)
        self.max_pending = max(1, max_pending)
        self.transport = transport
        self.reply_timeout_ns = reply_timeout_ns
        self.internal_errors = 0
        self.server_errors = self.pings = self.pongs = self.oks = self.subscriptions = 0
        self.expired_requests = self.dropped_requests = 0
        self._bad_lines = 0
        line_limit = min(self.max_buffer, MAX_INFO_LINE)
        self._streams = (Stream(line_limit, self._egress_line, self._egress_block),
                         Stream(line_limit, self._ingress_line, self._ingress_block))
        self._open: list[tuple[Line, int, int] | None] = [None, None]  # line awaiting its block
        self._client_dir: Direction | None = None
        if kernel_role == Role.CLIENT:
            self._client_dir = Direction.EGRESS
        elif kernel_role == Role.SERVER:
            self._client_dir = Direction.INGRESS
        self._requests: OrderedDict[str, tuple[NatsMessage, int, int]] = OrderedDict()  # reply subject → PUB
        self._out: list[Transaction] = []
        self._closed = False

    # -- read-only views ---------------------------------------------------------------------

    @property
    def parse_errors(self) -> int:
        return self._bad_lines + self.internal_errors

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
        return len(self._requests)

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
            self._expire(ts_ns)
            size = len(data)
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
        while self._requests:
            _, (msg, start, end) = self._requests.popitem(last=False)
            out.append(self._transaction(msg, None, start, end))
        return out

    # -- lines and blocks --------------------------------------------------------------------

    def _egress_line(self, line: bytes, wire: int, start: int, end: int, hunting: bool):
        return self._on_line(Direction.EGRESS, line, wire, start, end, hunting)

    def _ingress_line(self, line: bytes, wire: int, start: int, end: int, hunting: bool):
        return self._on_line(Direction.INGRESS, line, wire, start, end, hunting)

    def _egress_block(self, header: bytes, end: int, lost: bool) -> None:
        self._on_block(Direction.EGRESS, header, end, lost)

    def _ingress_block(self, header: bytes, end: int, lost: bool) -> None:
        self._on_block(Direction.INGRESS, header, end, lost)

    def _on_line(self, direction: Direction, line: bytes, wire: int, start: int, end: int, hunting: bool):
        parsed = parse_line(line)
        if parsed is None:
            if not hunting and line:
                self._bad_lines += 1
            return -1 if hunting or line else None
        op = parsed.op
        if self._client_dir is None:
            if op in CLIENT_OPS:
                self._client_dir = direction
            elif op in SERVER_OPS:
                self._client_dir = Direction(1 - direction)
        from_client = self._client_dir is None or direction == self._client_dir
        if (op in CLIENT_OPS and not from_client) or (op in SERVER_OPS and from_client and self._client_dir is not None):
            self._bad_lines += 1  # an operation the other side sends
            return -1 if hunting else None
        if parsed.total_size is not None:
            self._open[direction] = (parsed, wire, start)
            return parsed.total_size, parsed.header_size
        if op == "PING":
            self.pings += 1
        elif op == "PONG":
            self.pongs += 1
        elif op == "+OK":
            self.oks += 1
        elif op == "SUB":
            self.subscriptions += 1
        elif op == "-ERR":
            self.server_errors += 1
            error = NatsError(parsed.text or "", wire)
            self._out.append(Transaction(PROTOCOL, self.role, error, None, start, end, wire, 0))
        return None

    def _on_block(self, direction: Direction, header: bytes, end: int, lost: bool) -> None:
        opened = self._open[direction]
        self._open[direction] = None
        if opened is None:
            return
        line, wire, start = opened
        status = None
        traceparent = tracestate = None
        if line.header_size:
            status, headers = parse_headers(header)
            traceparent = headers.get("traceparent")
            tracestate = headers.get("tracestate")
        msg = NatsMessage(
            op=line.op,
            subject=line.subject or "",
            reply_to=line.reply_to,
            sid=line.sid,
            payload_size=(line.total_size or 0) - line.header_size,
            header_size=line.header_size,
            traceparent=traceparent,
            tracestate=tracestate,
            status=status,
            wire_size=wire + (line.total_size or 0) + 2,
            truncated=lost,
        )
        if msg.op in ("PUB", "HPUB"):
            if msg.reply_to:
                if msg.reply_to in self._requests:  # the same inbox reused: the older one is done
                    old, old_start, old_end = self._requests.pop(msg.reply_to)
                    self._out.append(self._transaction(old, None, old_start, old_end))
                if len(self._requests) >= self.max_pending:
                    _, (old, old_start, old_end) = self._requests.popitem(last=False)
                    self.dropped_requests += 1
                    self._out.append(self._transaction(old, None, old_start, old_end))
                self._requests[msg.reply_to] = (msg, start, end)
            else:
                self._out.append(self._transaction(msg, None, start, end))
            return
        request = self._requests.pop(msg.subject, None)
        if request is not None:
            req, req_start, _ = request
            self._out.append(self._transaction(req, msg, req_start, end))
        else:
            self._out.append(self._transaction(msg, None, start, end))

    def _expire(self, now: int) -> None:
        deadline = now - self.reply_timeout_ns
        while self._requests:
            subject, (msg, start, end) = next(iter(self._requests.items()))
            if start >= deadline:
                return
            del self._requests[subject]
            self.expired_requests += 1
            self._out.append(self._transaction(msg, None, start, end))

    def _transaction(self, request, response, start: int, end: int) -> Transaction:
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
