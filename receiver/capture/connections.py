"""Connection tracking: one entry per kernel connection id, bounded and evicted when idle.

Each entry detects its protocol from the first bytes seen in either direction (or from a
per-port override), then owns that protocol's session, which turns the byte streams into
transactions.  Connections whose protocol is not recognised are counted and, through
``on_uninteresting``, switched off in the kernel so their bytes stop travelling.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from receiver.capture.events import ConnEvent, DataEvent, Tuple
from receiver.protocols.base import Direction, ProtocolSession, Role, Transaction
from receiver.protocols.registry import ProtocolRegistry


@dataclass(slots=True)
class Connection:
    conn_id: int
    pid: int
    tuple: Tuple
    kernel_role: int
    last_seen_ns: int
    session: ProtocolSession | None = None
    protocol: str | None = None
    undetected_bytes: int = 0
    last_tid: int = 0
    tids: dict = field(default_factory=dict)  # direction -> tid of the last data event


@dataclass(slots=True)
class TrackedTransaction:
    """A transaction with the connection facts telemetry needs."""

    transaction: Transaction
    pid: int
    tid: int  # thread that handled the request (server: read it; client: wrote it)
    conn_id: int
    tuple: Tuple
    cgroup_id: int


@dataclass(frozen=True)
class TrackerLimits:
    max_connections: int = 65536
    idle_timeout_ns: int = 300 * 10**9
    detect_limit_bytes: int = 4096  # give up detecting after this many bytes


class ConnectionTracker:
    def __init__(
        self,
        registry: ProtocolRegistry,
        limits: TrackerLimits = TrackerLimits(),
        on_uninteresting: Callable[[int], None] | None = None,
    ) -> None:
        self._registry = registry
        self._limits = limits
        self._on_uninteresting = on_uninteresting
        self._conns: OrderedDict[int, Connection] = OrderedDict()
        self.evicted = 0  # connections dropped because the table was full
        self.expired = 0  # connections dropped because idle
        self.undetected = 0  # connections whose protocol was not recognised
        self.parse_errors_by_protocol: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._conns)

    def on_data(self, ev: DataEvent) -> list[TrackedTransaction]:
        c = self._conns.get(ev.conn_id)
        if c is None:
            c = self._new(ev.conn_id, ev.pid, ev.tuple, ev.role, ev.ts_exit_ns)
        else:
            self._conns.move_to_end(ev.conn_id)
            c.last_seen_ns = ev.ts_exit_ns
        c.last_tid = ev.tid
        if c.session is None:
            if c.protocol == "":  # already given up on this connection
                return []
            proto = self._registry.detect(ev.payload, ev.tuple, Direction(ev.direction))
            if proto is None:
                c.undetected_bytes += len(ev.payload) or ev.total_len
                if c.undetected_bytes >= self._limits.detect_limit_bytes:
                    c.protocol = ""
                    self.undetected += 1
                    if self._on_uninteresting is not None:
                        self._on_uninteresting(ev.conn_id)
                return []
            c.protocol = proto
            c.session = self._registry.new_session(proto, kernel_role=Role(ev.role))
        before = c.session.parse_errors
        txs = c.session.feed(Direction(ev.direction), ev.payload, ev.ts_exit_ns, ev.total_len)
        if c.session.parse_errors != before:
            self._count_errors(c.protocol, c.session.parse_errors - before)
        if not txs:
            return []
        return [TrackedTransaction(t, c.pid, ev.tid, c.conn_id, c.tuple, ev.cgroup_id) for t in txs]

    def on_conn(self, ev: ConnEvent, is_close: bool) -> list[TrackedTransaction]:
        if not is_close:
            c = self._conns.get(ev.conn_id)
            if c is None:
                self._new(ev.conn_id, ev.pid, ev.tuple, ev.role, ev.ts_exit_ns)
            return []
        c = self._conns.pop(ev.conn_id, None)
        if c is None or c.session is None:
            return []
        return self._flush(c, ev.ts_exit_ns)

    def expire(self, now_ns: int) -> list[TrackedTransaction]:
        """Drop connections idle longer than the timeout (oldest first); flush their sessions."""
        out: list[TrackedTransaction] = []
        limit = now_ns - self._limits.idle_timeout_ns
        while self._conns:
            conn_id, c = next(iter(self._conns.items()))
            if c.last_seen_ns >= limit:
                break
            del self._conns[conn_id]
            self.expired += 1
            if c.session is not None:
                out.extend(self._flush(c, now_ns))
        return out

    def drop_pid(self, pid: int) -> None:
        """The process exited: forget its connections (sockets it shared live on elsewhere)."""
        for conn_id in [k for k, c in self._conns.items() if c.pid == pid]:
            del self._conns[conn_id]

    def _new(self, conn_id: int, pid: int, tup: Tuple, role: int, ts: int) -> Connection:
        if len(self._conns) >= self._limits.max_connections:
            self._conns.popitem(last=False)
            self.evicted += 1
        c = Connection(conn_id=conn_id, pid=pid, tuple=tup, kernel_role=role, last_seen_ns=ts)
        port_proto = self._registry.protocol_for_ports(tup.local_port, tup.remote_port)
        if port_proto is not None:
            c.protocol = port_proto
            c.session = self._registry.new_session(port_proto, kernel_role=Role(role))
        self._conns[conn_id] = c
        return c

    def _flush(self, c: Connection, ts: int) -> list[TrackedTransaction]:
        before = c.session.parse_errors
        txs = c.session.close(ts)
        if c.session.parse_errors != before:
            self._count_errors(c.protocol, c.session.parse_errors - before)
        return [TrackedTransaction(t, c.pid, c.last_tid, c.conn_id, c.tuple, 0) for t in txs]

    def _count_errors(self, proto: str | None, n: int) -> None:
        key = proto or "unknown"
        self.parse_errors_by_protocol[key] = self.parse_errors_by_protocol.get(key, 0) + n
