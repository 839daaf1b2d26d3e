"""Connection tracking: one entry per kernel connection id, bounded and evicted when idle.

Each entry detects its protocol from the first bytes seen in either direction (or from a
per-port override), then owns that protocol's session, which turns the byte streams into
transactions.  Connections whose protocol is not recognised are counted and, through
``on_uninteresting``, switched off in the kernel so their bytes stop travelling.

TLS: plaintext read at a TLS library (data events flagged ERX_FLAG_TLS) switches its
connection to plaintext for good: whatever was detected on ciphertext is dropped, and socket
bytes (ciphertext) of that connection are ignored from then on.  Socket bytes that start with a
TLS record header, on a connection with no plaintext yet, mean TLS through a library that is
not attached: the connection is counted (``tls_unattached``) and, through
``on_tls_ciphertext``, its socket bytes are switched off in the kernel (the library's
plaintext still flows if the library is attached later).

Namespaces and NAT (with a :class:`~receiver.capture.netns.NetnsResolver`): a client
connection whose destination was translated (DNAT to a backend) is registered, and looks for
its local peer, under the translated destination, and its transactions carry it
(``nat_peer``).  Loopback endpoints are qualified by the network namespace inode, so two
namespaces' ``127.0.0.1`` connections are never taken for each other; a side whose namespace
is unknown (its process already gone) matches a peer of any namespace and takes its scope.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from receiver.bpf.abi import load_abi
from receiver.capture.events import ConnEvent, DataEvent, Tuple
from receiver.capture.netns import NetnsResolver, is_loopback
from receiver.capture.tls_records import is_tls_record
from receiver.protocols.base import Direction, ProtocolSession, Role, Transaction
from receiver.protocols.registry import ProtocolRegistry


_SERVER = int(Role.SERVER)


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
    tx_count: int = 0  # transactions produced so far: the call index of the next one
    learned_role: int = 0  # Role the protocol showed (for sockets that predate the agent)
    tls: bool = False  # TLS library plaintext seen: socket bytes are ciphertext, ignored
    tls_unattached: bool = False  # TLS ciphertext seen, no plaintext (yet)
    inspected: bool = False  # the first socket bytes were checked for a TLS record header
    netns: int = 0  # network namespace inode, when known and needed (loopback, NAT'd client)
    nat_peer: tuple[str, int] | None = None  # real destination of a DNAT'd client connection
    endpoint_key: tuple | None = None  # its key in the endpoint tables (local peer finding)
    mirror: tuple | None = None  # the key its local peer has in the endpoint tables (scope 0)
    mirror_ns: tuple | None = None  # the same in its namespace's scope (loopback, namespace known)
    loopback: bool = False  # its local address is a loopback one
    peer_scope: int | None = None  # _peer_scope of it, as of the endpoint tables' version below
    peer_scope_version: int = -1

    @property
    def is_server(self) -> bool:
        return self.kernel_role == _SERVER or self.learned_role == _SERVER


@dataclass(slots=True)
class TrackedTransaction:
    """A transaction with the connection facts telemetry needs."""

    transaction: Transaction
    pid: int
    tid: int  # thread that handled the request (server: read it; client: wrote it)
    conn_id: int
    tuple: Tuple
    cgroup_id: int
    call_index: int = 0  # position of this transaction on its connection (0, 1, ...)
    peer_local: bool = False  # the other end of the connection is a traced local socket
    tls: bool = False  # the bytes were TLS plaintext (read at the TLS library)
    nat_peer: tuple[str, int] | None = None  # client: the backend a DNAT'd destination reached
    link_scope: int = 0  # loopback peer: the namespace both ends share (0: not loopback / unknown)


@dataclass(frozen=True)
class TrackerLimits:
    max_connections: int = 65536
    idle_timeout_ns: int = 300 * 10**9
    detect_limit_bytes: int = 4096  # give up detecting after this many bytes


_DIRECTIONS = (Direction.EGRESS, Direction.INGRESS)  # by value (Direction(d) is slower)


class ConnectionTracker:
    def __init__(
        self,
        registry: ProtocolRegistry,
        limits: TrackerLimits = TrackerLimits(),
        on_uninteresting: Callable[[int], None] | None = None,
        on_tls_ciphertext: Callable[[int], None] | None = None,
        tls_flag: int | None = None,
        netns: NetnsResolver | None = None,
    ) -> None:
        self._registry = registry
        self.netns = netns
        self._limits = limits
        self._on_uninteresting = on_uninteresting
        self._on_tls_ciphertext = on_tls_ciphertext
        if tls_flag is None:
            tls_flag = load_abi().const("ERX_FLAG_TLS")
        self._tls_flag = tls_flag
        self._conns: OrderedDict[int, Connection] = OrderedDict()
        self._move_to_end = self._conns.move_to_end
        # (local addr, local port, remote addr, remote port, scope) -> conn id, to find local
        # peers; remote is the NAT'd destination when there is one, scope the namespace inode
        # for loopback addresses (0: not loopback, or namespace unknown)
        self._by_endpoints: dict[tuple, int] = {}
        self._loopback_scopes: OrderedDict[int, None] = OrderedDict()  # namespaces seen on loopback
        # Endpoints of connections closed lately: a peer often closes before the other side's
        # last bytes are processed (same batch), and must still count as local then.
        self._closed_endpoints: OrderedDict[tuple, int] = OrderedDict()
        self._closed_grace_ns = 5 * 10**9
        self._endpoints_version = 0  # bumped whenever the three tables above may change
        self.evicted = 0  # connections dropped because the table was full
        self.expired = 0  # connections dropped because idle
        self.undetected = 0  # connections whose protocol was not recognised
        self.tls_plaintext = 0  # connections switched to TLS library plaintext
        self.tls_unattached = 0  # connections seen as TLS ciphertext with no plaintext then
        self.tls_ciphertext_ignored = 0  # socket data events dropped: their connection has plaintext
        self.parse_errors_by_protocol: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._conns)

    def on_data(self, ev: DataEvent) -> list[TrackedTransaction]:
        conn_id = ev.conn_id
        c = self._conns.get(conn_id)
        if c is None:
            c = self._new(conn_id, ev.pid, ev.tuple, ev.role, ev.ts_exit_ns)
        else:
            self._move_to_end(conn_id)
            c.last_seen_ns = ev.ts_exit_ns
        c.last_tid = ev.tid
        payload = ev.payload
        if ev.flags & self._tls_flag:
            if not c.tls:
                self._to_plaintext(c)
        elif c.tls:
            self.tls_ciphertext_ignored += 1
            return []
        elif not c.inspected and payload:
            c.inspected = True
            if is_tls_record(payload):
                self._unattached_tls(c)
                return []
        d = ev.direction
        session = c.session
        if session is None:
            if c.protocol == "":  # already given up on this connection
                return []
            proto = self._registry.detect(payload, ev.tuple, _DIRECTIONS[d] if d == 0 or d == 1 else Direction(d))
            if proto is None:
                c.undetected_bytes += len(payload) or ev.total_len
                if c.undetected_bytes >= self._limits.detect_limit_bytes:
                    c.protocol = ""
                    self.undetected += 1
                    if self._on_uninteresting is not None:
                        self._on_uninteresting(conn_id)
                return []
            c.protocol = proto
            session = c.session = self._registry.new_session(proto, kernel_role=Role(ev.role))
        before = session.parse_errors
        txs = session.feed(_DIRECTIONS[d] if d == 0 or d == 1 else Direction(d), payload, ev.ts_exit_ns, ev.total_len)
        if session.parse_errors != before:
            self._count_errors(c.protocol, session.parse_errors - before)
        if not txs:
            return []
        return self._track(c, txs, ev.tid, ev.cgroup_id)

    def on_conn(self, ev: ConnEvent, is_close: bool) -> list[TrackedTransaction]:
        if not is_close:
            c = self._conns.get(ev.conn_id)
            if c is None:
                self._new(ev.conn_id, ev.pid, ev.tuple, ev.role, ev.ts_exit_ns)
            return []
        c = self._pop(ev.conn_id)
        if c is None or c.session is None:
            return []
        return self._flush(c, ev.ts_exit_ns)

    def get(self, conn_id: int) -> Connection | None:
        return self._conns.get(conn_id)

    def has_local_peer(self, t: Tuple, netns: int = 0, nat_peer: tuple[str, int] | None = None) -> bool:
        """Is the other end of this connection a socket we also trace (same host)?"""
        return self._peer_scope(t, netns, nat_peer) is not None

    def _peer_scope(self, t: Tuple, netns: int, nat_peer: tuple[str, int] | None) -> int | None:
        """None: no traced local peer; else the scope both ends share (see ``_by_endpoints``)."""
        if not t.remote_port:
            return None
        addr, port = nat_peer or (t.remote_addr, t.remote_port)
        mirror = (addr, port, t.local_addr, t.local_port)
        known = self._known_endpoint
        if not is_loopback(t.local_addr):
            return 0 if known(mirror + (0,)) else None
        if netns:
            return netns if known(mirror + (netns,)) or known(mirror + (0,)) else None
        if known(mirror + (0,)):
            return 0
        for scope in reversed(self._loopback_scopes):  # our namespace unknown: the peer's
            if known(mirror + (scope,)):
                return scope
        return None

    def _known_endpoint(self, key: tuple) -> bool:
        return key in self._by_endpoints or key in self._closed_endpoints

    def expire(self, now_ns: int) -> list[TrackedTransaction]:
        """Drop connections idle longer than the timeout (oldest first); flush their sessions."""
        out: list[TrackedTransaction] = []
        limit = now_ns - self._limits.idle_timeout_ns
        while self._conns:
            conn_id, c = next(iter(self._conns.items()))
            if c.last_seen_ns >= limit:
                break
            self._pop(conn_id)
            self.expired += 1
            if c.session is not None:
                out.extend(self._flush(c, now_ns))
        if self.netns is not None:
            self.netns.maintain()
        return out

    def drop_pid(self, pid: int) -> None:
        """The process exited: forget its connections (sockets it shared live on elsewhere)."""
        for conn_id in [k for k, c in self._conns.items() if c.pid == pid]:
            self._pop(conn_id)
        if self.netns is not None:
            self.netns.forget_pid(pid)

    def _to_plaintext(self, c: Connection) -> None:
        """The first TLS plaintext of c: what was detected or parsed on ciphertext is void."""
        c.tls = True
        c.inspected = True
        c.tls_unattached = False
        self.tls_plaintext += 1
        c.undetected_bytes = 0
        c.protocol = c.session = None
        port_proto = self._registry.protocol_for_ports(c.tuple.local_port, c.tuple.remote_port)
        if port_proto is not None:
            c.protocol = port_proto
            c.session = self._registry.new_session(port_proto, kernel_role=Role(c.kernel_role))

    def _unattached_tls(self, c: Connection) -> None:
        c.tls_unattached = True
        c.protocol = ""
        c.session = None
        self.tls_unattached += 1
        if self._on_tls_ciphertext is not None:
            self._on_tls_ciphertext(c.conn_id)

    def _new(self, conn_id: int, pid: int, tup: Tuple, role: int, ts: int) -> Connection:
        if len(self._conns) >= self._limits.max_connections:
            self._pop(next(iter(self._conns)))
            self.evicted += 1
        c = Connection(conn_id=conn_id, pid=pid, tuple=tup, kernel_role=role, last_seen_ns=ts)
        c.loopback = is_loopback(tup.local_addr)
        if tup.local_port:
            self._endpoints_version += 1
            scope = 0
            if self.netns is not None:
                if is_loopback(tup.local_addr):
                    c.netns = scope = self.netns.netns_of(pid)
                elif role == Role.CLIENT:
                    c.netns = self.netns.connection_netns(pid, tup.local_addr)
                    c.nat_peer = self.netns.nat_destination(c.netns, tup)
            addr, port = c.nat_peer or (tup.remote_addr, tup.remote_port)
            key = c.endpoint_key = (tup.local_addr, tup.local_port, addr, port, scope)
            self._by_endpoints[key] = conn_id
            self._closed_endpoints.pop(key, None)
            if scope:
                self._loopback_scopes[scope] = None
                self._loopback_scopes.move_to_end(scope)
                if len(self._loopback_scopes) > 256:
                    self._loopback_scopes.popitem(last=False)
        if tup.remote_port:  # what _peer_scope looks up first, for every transaction
            addr, port = c.nat_peer or (tup.remote_addr, tup.remote_port)
            c.mirror = (addr, port, tup.local_addr, tup.local_port, 0)
            if c.netns:
                c.mirror_ns = (addr, port, tup.local_addr, tup.local_port, c.netns)
        port_proto = self._registry.protocol_for_ports(tup.local_port, tup.remote_port)
        if port_proto is not None:
            c.protocol = port_proto
            c.session = self._registry.new_session(port_proto, kernel_role=Role(role))
        self._conns[conn_id] = c
        return c

    def _pop(self, conn_id: int) -> Connection | None:
        c = self._conns.pop(conn_id, None)
        if c is not None and c.endpoint_key is not None:
            self._endpoints_version += 1
            key = c.endpoint_key
            if self._by_endpoints.get(key) == conn_id:
                del self._by_endpoints[key]
                self._closed_endpoints[key] = c.last_seen_ns
                self._closed_endpoints.move_to_end(key)
                while self._closed_endpoints and (
                    len(self._closed_endpoints) > self._limits.max_connections
                    or next(iter(self._closed_endpoints.values())) < c.last_seen_ns - self._closed_grace_ns
                ):
                    self._closed_endpoints.popitem(last=False)
        return c

    def _track(self, c: Connection, txs: list[Transaction], tid: int, cgroup_id: int) -> list[TrackedTransaction]:
        scope = c.peer_scope if c.peer_scope_version == self._endpoints_version else self._scope_of(c)
        c.learned_role = txs[0].role
        n = c.tx_count
        if len(txs) == 1:
            c.tx_count = n + 1
            return [TrackedTransaction(txs[0], c.pid, tid, c.conn_id, c.tuple, cgroup_id, n, scope is not None, c.tls,
                                       c.nat_peer, scope or 0)]
        peer = scope is not None
        pid, conn_id, tup, tls, nat_peer = c.pid, c.conn_id, c.tuple, c.tls, c.nat_peer
        c.tx_count = n + len(txs)
        return [TrackedTransaction(t, pid, tid, conn_id, tup, cgroup_id, i, peer, tls, nat_peer, scope or 0)
                for i, t in enumerate(txs, n)]

    def _scope_of(self, c: Connection) -> int | None:
        """``_peer_scope`` of a connection, worked out with the keys it looks up first made once
        (``_new``), and kept (``_track`` reuses it until the endpoint tables change)."""
        version = self._endpoints_version
        mirror = c.mirror
        by, closed = self._by_endpoints, self._closed_endpoints
        if mirror is None:  # no remote port: no peer
            scope = None
        elif not c.loopback:
            scope = 0 if mirror in by or mirror in closed else None
        elif c.mirror_ns is not None:
            mirror_ns = c.mirror_ns
            scope = c.netns if (mirror_ns in by or mirror_ns in closed or mirror in by or mirror in closed) else None
        else:
            scope = self._peer_scope(c.tuple, c.netns, c.nat_peer)
        c.peer_scope = scope
        c.peer_scope_version = version
        return scope

    def _flush(self, c: Connection, ts: int) -> list[TrackedTransaction]:
        before = c.session.parse_errors
        txs = c.session.close(ts)
        if c.session.parse_errors != before:
            self._count_errors(c.protocol, c.session.parse_errors - before)
        return self._track(c, txs, c.last_tid, 0) if txs else []

    def _count_errors(self, proto: str | None, n: int) -> None:
        key = proto or "unknown"
        self.parse_errors_by_protocol[key] = self.parse_errors_by_protocol.get(key, 0) + n
