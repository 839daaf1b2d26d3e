"""``DnsSession``: DNS over UDP (one message per datagram, one datagram per ``feed``) or TCP
(each message behind a 2-byte length, RFC 1035 §4.2.2), queries paired with responses.

Queries and responses say what they are (the QR bit), so no direction has to be learnt: the
traced process is the CLIENT of a query it sent (EGRESS) and the SERVER of one it received.  A
response is paired with the oldest pending query of the same id and question (name compared
case-insensitively, type, class); a response without a question (``FORMERR``) with the oldest
query of its id.  A query still unanswered ``query_timeout_ns`` after it was sent — measured on
the timestamps that come with the bytes — is returned unanswered, ending at its timeout, and so
are those pending at close, ending then (the client gave up): each can become a timeout span
whose duration is the wait.  Pending queries are bounded (``max_pending``, oldest
dropped and counted).  Over TCP only the first ``max_buffer`` bytes of a message are kept (the
header and question are at its start); the rest is skipped by length, across truncated captures
too.  After framing is lost the next write must start with a plausible length and header.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from receiver.protocols.base import Direction, Role, Transaction

from .parse import HEADER, parse_message, plausible
from .types import PROTOCOL, DnsMessage

DEFAULT_MAX_BUFFER = 64 * 1024
DEFAULT_MAX_PENDING = 256
DEFAULT_QUERY_TIMEOUT_NS = 5_000_000_000  # resolv.conf's default timeout
MIN_KEEP = 512


class _TcpStream:
    """One direction of DNS over TCP: length-prefixed messages."""

    __slots__ = ("keep", "buf", "length", "skip", "start_ts", "missing_in_msg", "hunting", "on_message", "errors",
                 "gaps", "prefix")

    def __init__(self, keep: int, on_message) -> None:
        self.keep = keep
        self.buf = bytearray()
        self.prefix = bytearray()
        self.length: int | None = None
        self.skip = 0
        self.start_ts = 0
        self.missing_in_msg = False
        self.hunting = False
        self.on_message = on_message
        self.errors = 0
        self.gaps = 0

    def feed(self, data: bytes, ts: int, missing: int) -> None:
        if self.hunting:
            if len(data) < 2 + HEADER or not plausible(data[2:], int.from_bytes(data[:2], "big")):
                if data:
                    self.errors += 1
                return
            self.hunting = False
        i = 0
        end = len(data)
        while i < end:
            if self.skip:
                n = min(self.skip, end - i)
                self.skip -= n
                i += n
                if self.skip == 0:
                    self._emit(ts)
                continue
            if self.length is None:
                if not self.prefix:
                    self.start_ts = ts
                take = data[i : i + 2 - len(self.prefix)]
                self.prefix += take
                i += len(take)
                if len(self.prefix) == 2:
                    self.length = int.from_bytes(self.prefix, "big")
                    self.prefix.clear()
                    if self.length < HEADER:
                        self.errors += 1
                        self.lose_sync()
                        return
                continue
            want = min(self.length, self.keep) - len(self.buf)
            take = data[i : i + want]
            self.buf += take
            i += len(take)
            if len(self.buf) == min(self.length, self.keep):
                if self.length <= self.keep:
                    self._emit(ts)
                else:
                    self.skip = self.length - self.keep
        if missing:
            self._missing(ts, missing)

    def _missing(self, ts: int, missing: int) -> None:
        if self.length is None:
            self.lose_sync()
            return
        left = self.skip if self.skip else self.length - len(self.buf)
        self.missing_in_msg = True
        if missing < left:
            if self.skip:
                self.skip -= missing
            else:
                self.skip = left - missing  # the rest of this message is skipped when it comes
            return
        self._emit(ts)
        if missing > left:
            self.lose_sync()

    def _emit(self, ts: int) -> None:
        length = self.length or 0
        buf = bytes(self.buf)
        truncated = self.missing_in_msg or length > len(buf)
        self.buf.clear()
        self.length = None
        self.skip = 0
        self.missing_in_msg = False
        self.on_message(buf, length, self.start_ts, ts, truncated)

    def lose_sync(self) -> None:
        self.gaps += 1
        self.buf.clear()
        self.prefix.clear()
        self.length = None
        self.skip = 0
        self.missing_in_msg = False
        self.hunting = True

    @property
    def buffered(self) -> int:
        return len(self.buf) + len(self.prefix)


class _Pending:
    __slots__ = ("query", "start_ts", "end_ts", "role")

    def __init__(self, query: DnsMessage, start_ts: int, end_ts: int, role: Role) -> None:
        self.query = query
        self.start_ts = start_ts
        self.end_ts = end_ts
        self.role = role


class DnsSession:
    """DNS parser and query/response pairing for one socket (implements ``ProtocolSession``).

    Counters, all monotonic: :attr:`parse_errors`, :attr:`capture_gaps` (TCP framing lost),
    :attr:`dropped_queries` (over ``max_pending``), :attr:`unmatched_responses`,
    :attr:`expired_queries` (returned unanswered after ``query_timeout_ns``), :attr:`internal_errors`.
    """

    protocol = PROTOCOL

    def __init__(
        self,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        max_pending: int = DEFAULT_MAX_PENDING,
        kernel_role: Role = Role.UNKNOWN,
        transport: str = "udp",
        query_timeout_ns: int = DEFAULT_QUERY_TIMEOUT_NS,
    ) -> None:
        self.transport = transport
        self.max_buffer = max(MIN_KEEP, max_buffer)
        self.max_pending = max(1, max_pending)
        self.query_timeout_ns = query_timeout_ns
        self.role = kernel_role
        self.internal_errors = 0
        self.dropped_queries = 0
        self.unmatched_responses = 0
        self.expired_queries = 0
        self._bad_messages = 0
        self._pending: OrderedDict[int, _Pending] = OrderedDict()  # arrival order
        self._by_key: dict[tuple, deque[int]] = {}
        self._next = 0
        self._out: list[Transaction] = []
        self._closed = False
        self._tcp = (
            (_TcpStream(self.max_buffer, self._egress_message), _TcpStream(self.max_buffer, self._ingress_message))
            if transport == "tcp" else None
        )

    # -- read-only views ---------------------------------------------------------------------

    @property
    def parse_errors(self) -> int:
        tcp = self._tcp[0].errors + self._tcp[1].errors if self._tcp else 0
        return self._bad_messages + tcp + self.internal_errors

    @property
    def capture_gaps(self) -> int:
        return self._tcp[0].gaps + self._tcp[1].gaps if self._tcp else 0

    @property
    def pending_queries(self) -> int:
        return len(self._pending)

    @property
    def buffered_bytes(self) -> int:
        return self._tcp[0].buffered + self._tcp[1].buffered if self._tcp else 0

    # -- ProtocolSession ---------------------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, ts_ns: int, total_len: int | None = None) -> list[Transaction]:
        out: list[Transaction] = []
        if self._closed:
            return out
        self._out = out
        try:
            self._expire(ts_ns)
            size = len(data)
            if self._tcp is not None:
                missing = total_len - size if total_len is not None and total_len > size else 0
                self._tcp[direction].feed(data, ts_ns, missing)
            else:
                wire = total_len if total_len is not None and total_len > size else size
                if plausible(data, wire):
                    self._on_message(direction, data, wire, ts_ns, ts_ns, wire > size)
                elif size:
                    self._bad_messages += 1
        except Exception:  # defensive: a bug must not take the pipeline down
            self.internal_errors += 1
            if self._tcp is not None:
                for stream in self._tcp:
                    stream.lose_sync()
        self._out = []
        return out

    def close(self, ts_ns: int) -> list[Transaction]:
        out: list[Transaction] = []
        if self._closed:
            return out
        self._closed = True
        try:
            while self._pending:  # the client gave up waiting now (it closed the socket)
                _, p = self._pending.popitem(last=False)
                out.append(self._transaction(p, None, max(ts_ns, p.end_ts), 0))
            self._by_key.clear()
        except Exception:
            self.internal_errors += 1
        return out

    # -- messages ----------------------------------------------------------------------------

    def _egress_message(self, buf: bytes, wire: int, start: int, end: int, truncated: bool) -> None:
        self._on_message(Direction.EGRESS, buf, wire, start, end, truncated)

    def _ingress_message(self, buf: bytes, wire: int, start: int, end: int, truncated: bool) -> None:
        self._on_message(Direction.INGRESS, buf, wire, start, end, truncated)

    def _on_message(self, direction: Direction, buf: bytes, wire: int, start: int, end: int, truncated: bool) -> None:
        msg = parse_message(buf, wire)
        if msg is None:
            self._bad_messages += 1
            return
        if not msg.is_response:
            role = Role.CLIENT if direction == Direction.EGRESS else Role.SERVER
            if self.role == Role.UNKNOWN:
                self.role = role
            if len(self._pending) >= self.max_pending:
                _, oldest = self._pending.popitem(last=False)
                self._unindex(oldest)
                self.dropped_queries += 1
            ident = self._next
            self._next += 1
            self._pending[ident] = _Pending(msg, start, end, role)
            self._by_key.setdefault(_key(msg), deque()).append(ident)
            return
        ident = self._match(msg)
        if ident is None:
            self.unmatched_responses += 1
            return
        p = self._pending.pop(ident)
        self._out.append(self._transaction(p, msg, end, msg.wire_size))

    def _match(self, response: DnsMessage) -> int | None:
        if response.question is not None:
            ids = self._by_key.get(_key(response))
            if ids:
                ident = ids.popleft()
                if not ids:
                    del self._by_key[_key(response)]
                return ident
            return None
        for ident, p in self._pending.items():  # no question: the oldest query with this id
            if p.query.id == response.id:
                self._unindex(p, ident)
                return ident
        return None

    def _unindex(self, p: _Pending, ident: int | None = None) -> None:
        key = _key(p.query)
        ids = self._by_key.get(key)
        if not ids:
            return
        if ident is None:
            ids.popleft()
        else:
            ids.remove(ident)
        if not ids:
            del self._by_key[key]

    def _expire(self, now: int) -> None:
        deadline = now - self.query_timeout_ns
        while self._pending:
            ident, p = next(iter(self._pending.items()))
            if p.start_ts >= deadline:
                return
            self._pending.popitem(last=False)
            self._unindex(p, ident)
            self.expired_queries += 1
            # It was waited for until the timeout (the event that noticed may come much later).
            self._out.append(self._transaction(p, None, max(p.end_ts, p.start_ts + self.query_timeout_ns), 0))

    def _transaction(self, p: _Pending, response: DnsMessage | None, end: int, response_size: int) -> Transaction:
        return Transaction(
            protocol=PROTOCOL,
            role=p.role,
            request=p.query,
            response=response,
            start_ns=p.start_ts,
            end_ns=end,
            request_size=p.query.wire_size,
            response_size=response_size,
            attributes={"network.transport": self.transport},
        )


def _key(msg: DnsMessage) -> tuple:
    q = msg.question
    if q is None:
        return (msg.id, None, None, None)
    return (msg.id, q.name.lower(), q.qtype, q.qclass)
