"""Connection tracking (the *connections* stage): one entry per kernel connection id, bounded
and evicted when idle, fed by the capture stage's data and connection events.

The tracker keeps what is known of each connection (process, endpoints, TLS state, namespace,
NAT'd destination, local peer) and hands the bytes of connections worth parsing to the next
stage, a :class:`StreamSink` (the protocol stage): ``on_bytes`` per data event, ``on_close``
when the connection ends (closed, evicted or idle).  The fields of :class:`Connection` under
"owned by the protocol stage" are kept here so one dictionary lookup finds everything about a
connection, but only the protocol stage reads or writes them.  Reads of a server connection
whose protocol is known (or being decided) are also reported to an ``on_server_ingress``
callback (thread-per-request linking); so are those of TLS ciphertext no library shows.

TLS: plaintext read at a TLS library (data events flagged ERX_FLAG_TLS) switches its
connection to plaintext for good: whatever was detected on ciphertext is dropped, and socket
bytes (ciphertext) of that connection are ignored from then on.  Socket bytes that start with a
TLS record header, on a connection with no plaintext yet, mean TLS through a library that is
not attached (or not yet: a memory-BIO runtime's first ciphertext comes before its TLS call):
through ``on_tls_ciphertext`` its socket bytes are switched off in the kernel (the library's
plaintext still flows if it comes later), and a connection that ends with no plaintext is
counted (``tls_unattached``, ``ebpf_receiver_tls_unattached_total{reason="no_library"}``).

Namespaces and NAT (with a :class:`~receiver.connections.netns.NetnsResolver`): a client
connection whose destination was translated (DNAT to a backend) is registered, and looks for
its local peer, under the translated destination, and its transactions carry it
(``nat_peer``).  Loopback endpoints are qualified by the network namespace inode, so two
namespaces' ``127.0.0.1`` connections are never taken for each other; a side whose namespace
is unknown (its process already gone) matches a peer of any namespace and takes its scope.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from typing import Any, Iterator, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from receiver.capture.events import ConnEvent, DataEvent
from receiver.connections.netns import NetnsResolver, is_loopback
from receiver.connections.peers import LocalPeers
from receiver.connections.tls_records import is_tls_record
from receiver.model.endpoints import Direction, Role, Tuple


_SERVER = int(Role.SERVER)
TLS_UNATTACHED_HELP = (
    "TLS whose plaintext could not be tied to a connection, by reason: connections that ended with only "
    "ciphertext seen (no_library); TLS library calls whose plaintext was dropped: object tied to no socket "
    "(no_socket), connection table full (connection_table_full), Go *tls.Conn without a socket fd (go_no_fd).")
_INGRESS = int(Direction.INGRESS)


@dataclass(slots=True)
class Connection:
    conn_id: int
    pid: int
    tuple: Tuple
    kernel_role: int
    last_seen_ns: int
    last_tid: int = 0
    tls: bool = False  # TLS library plaintext seen: socket bytes are ciphertext, ignored
    tls_unattached: bool = False  # TLS ciphertext seen, no plaintext (yet)
    inspected: bool = False  # the first socket bytes were checked for a TLS record header
    netns: int = 0  # network namespace inode, when known and needed (loopback, NAT'd client)
    nat_peer: tuple[str, int] | None = None  # real destination of a DNAT'd client connection
    endpoint_key: tuple | None = None  # its key in the endpoint tables (local peer finding)
    mirror: tuple | None = None  # the key its local peer has in the endpoint tables (scope 0)
    mirror_ns: tuple | None = None  # the same in its namespace's scope (loopback, namespace known)
    loopback: bool = False  # its local address is a loopback one
    peer_scope: int | None = None  # LocalPeers.scope_of it, as of the tables' version below
    peer_maybe_scope: int | None = None  # no known peer: the scope a local server end not announced yet would share
    peer_scope_version: int = -1
    answered: bool = False  # a server connection wrote since its last read: the next read is a new request
    # -- owned by the protocol stage (receiver/protocols/stage.py) --
    session: Any = None  # the protocol's session, once detected
    protocol: str | None = None  # its name; "" once given up on (undetectable)
    undetected_bytes: int = 0
    detect_held: Any = None  # first bytes kept while detection said only MAYBE
    tx_count: int = 0  # transactions produced so far: the call index of the next one
    learned_role: int = 0  # Role the protocol showed (for sockets that predate the agent)

    @property
    def is_server(self) -> bool:
        return self.kernel_role == _SERVER or self.learned_role == _SERVER




@dataclass(slots=True)
class ProcessConnections:
    """One process's connections tracked now (:meth:`ConnectionTracker.by_process`)."""

    connections: int = 0
    protocols: set[str] = field(default_factory=set)
    tls_plaintext: int = 0  # connections whose plaintext is read at a TLS library
    tls_ciphertext_only: int = 0  # TLS records seen, no plaintext


@dataclass(frozen=True)
class TrackerLimits:
    max_connections: int = 65536
    idle_timeout_ns: int = 300 * 10**9
    detect_limit_bytes: int = 4096  # give up detecting after this many bytes




class StreamSink(Protocol):
    """The next stage: what the tracker hands the bytes of a connection to."""

    def on_bytes(self, c: Connection, direction: int, payload: bytes, ts_ns: int, total_len: int, tid: int,
                 cgroup_id: int) -> None: ...

    def on_close(self, c: Connection, ts_ns: int) -> None: ...

    def on_http_tx(self, c: Connection, ev) -> None: ...


class ConnectionTracker:
    def __init__(
        self,
        sink: StreamSink,
        tls_flag: int,
        limits: TrackerLimits = TrackerLimits(),
        on_tls_ciphertext: Callable[[int], None] | None = None,
        on_server_ingress: Callable[..., None] | None = None,  # (pid, tid, conn_id, ts_ns, announced=, multiplexed=)
        netns: NetnsResolver | None = None,
        peers: LocalPeers | None = None,
        http_last_flags: int = 0,
        sys_close: int = -1,
    ) -> None:
        """``http_last_flags`` (``ERX_HTTP_F_*`` bits) and ``sys_close`` (``ERX_SYS_CLOSE``): a paired
        HTTP/1 transaction with one of those bits, or completed by the close, is its connection's
        last (Connection: close, or a response that ran to the close)."""
        self._sink = sink
        self._http_last = http_last_flags
        self._sys_close = sys_close
        self.netns = netns
        self._limits = limits
        self._on_tls_ciphertext = on_tls_ciphertext
        self._on_server_ingress = on_server_ingress
        self._tls_flag = tls_flag
        self._conns: OrderedDict[int, Connection] = OrderedDict()
        self._move_to_end = self._conns.move_to_end
        self.peers = peers if peers is not None else LocalPeers(limits.max_connections)
        self.evicted = 0  # connections dropped because the table was full
        self.expired = 0  # connections dropped because idle
        self.tls_plaintext = 0  # connections switched to TLS library plaintext
        self.tls_unattached = 0  # connections that ended with TLS ciphertext and no plaintext
        self.tls_unattached_open = 0  # open connections with TLS ciphertext and no plaintext yet
        self.tls_ciphertext_ignored = 0  # socket data events dropped: their connection has plaintext
        self.single_transaction = 0  # connections whose one paired transaction was their last: not kept

    def __len__(self) -> int:
        return len(self._conns)

    def on_data(self, ev: DataEvent) -> None:
        conn_id = ev.conn_id
        c = self._conns.get(conn_id)
        if c is None:
            c = self._new(conn_id, ev.pid, ev.tuple, ev.role, ev.ts_exit_ns)
        else:
            self._move_to_end(conn_id)
            c.last_seen_ns = ev.ts_exit_ns
        c.last_tid = tid = ev.tid
        payload = ev.payload
        if ev.flags & self._tls_flag:
            if not c.tls:
                self._to_plaintext(c)
        elif c.tls:
            self.tls_ciphertext_ignored += 1
            self._ingress(c, ev)
            return
        elif not c.inspected and payload:
            c.inspected = True
            if is_tls_record(payload):
                self._unattached_tls(c)
                self._ingress(c, ev)
                return
        d = ev.direction
        if c.protocol != "":  # "": the protocol stage gave up on this connection
            self._sink.on_bytes(c, d, payload, ev.ts_exit_ns, ev.total_len, tid, ev.cgroup_id)
        # A read is a request only on a connection known to carry one: bytes of no protocol (a
        # wake-up socket pair built with accept(), as pika's and Windows-portable event loops do)
        # would make the reading thread "serve" a request whose span never exists.
        if d != _INGRESS:
            c.answered = True
        elif (self._on_server_ingress is not None and c.is_server
                and (c.session is not None or c.detect_held is not None)):
            # After a write (the response), a read on a keep-alive connection is its next request.
            new_request, c.answered = c.answered, False
            self._on_server_ingress(ev.pid, tid, conn_id, ev.ts_exit_ns, new_request=new_request)

    def on_conn(self, ev: ConnEvent, is_close: bool) -> None:
        if not is_close:
            c = self._conns.get(ev.conn_id)
            if c is None:
                self._new(ev.conn_id, ev.pid, ev.tuple, ev.role, ev.ts_exit_ns)
            return
        c = self._pop(ev.conn_id)
        if c is not None and (c.session is not None or c.detect_held is not None):
            self._sink.on_close(c, ev.ts_exit_ns)

    def on_http_tx(self, ev) -> None:
        """An HTTP/1 transaction the kernel paired (``ERX_EV_HTTP_TX``): no data event came for
        it, so the connection is known from the record."""
        conn_id = ev.conn_id
        c = self._conns.get(conn_id)
        if c is None:
            # Nothing came of this connection before, and this transaction is its last (a
            # connection per request): it is handled without an entry in the tables, and the
            # kernel sends no close for it (ERX_HTTP_F_LAST).  A record that still comes makes one.
            keep = not (ev.http_flags & self._http_last or ev.syscall == self._sys_close)
            c = self._new(conn_id, ev.pid, ev.tuple, ev.role, ev.ts_exit_ns, keep)
            if not keep:
                self.single_transaction += 1
        else:
            self._move_to_end(conn_id)
            c.last_seen_ns = ev.ts_exit_ns
        c.last_tid = ev.tid
        if ev.flags & self._tls_flag and not c.tls:
            c.tls = True
            c.inspected = True
            self.tls_plaintext += 1
        self._sink.on_http_tx(c, ev)

    def on_serving(self, ev) -> None:
        """A thread serving a paired request is about to act for it (``ERX_EV_SERVING``): what
        a read of the request tells on the payload path."""
        if self._on_server_ingress is not None:
            self._on_server_ingress(ev.pid, ev.tid, ev.conn_id, ev.ts_ns, announced=True, multiplexed=ev.multiplexed)

    def _ingress(self, c: Connection, ev: DataEvent) -> None:
        """Report a read of a server connection whose bytes are not parsed (still a request)."""
        if ev.direction == _INGRESS and self._on_server_ingress is not None and c.is_server:
            self._on_server_ingress(ev.pid, ev.tid, ev.conn_id, ev.ts_exit_ns)

    def get(self, conn_id: int) -> Connection | None:
        return self._conns.get(conn_id)

    def expire(self, now_ns: int) -> None:
        """Drop connections idle longer than the timeout (oldest first); their sessions close."""
        limit = now_ns - self._limits.idle_timeout_ns
        while self._conns:
            conn_id, c = next(iter(self._conns.items()))
            if c.last_seen_ns >= limit:
                break
            self._pop(conn_id)
            self.expired += 1
            if c.session is not None or c.detect_held is not None:
                self._sink.on_close(c, now_ns)
        if self.netns is not None:
            self.netns.maintain()

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
        if c.tls_unattached:
            c.tls_unattached = False
            self.tls_unattached_open -= 1
        self.tls_plaintext += 1
        c.undetected_bytes = 0
        c.protocol = c.session = c.detect_held = None  # detected again, on plaintext

    def _unattached_tls(self, c: Connection) -> None:
        c.tls_unattached = True
        c.protocol = ""
        c.session = None
        self.tls_unattached_open += 1
        if self._on_tls_ciphertext is not None:
            self._on_tls_ciphertext(c.conn_id)

    def _new(self, conn_id: int, pid: int, tup: Tuple, role: int, ts: int, keep: bool = True) -> Connection:
        """A connection seen for the first time; ``keep``: entered in the table and in the local
        peers (otherwise only built, for its one transaction)."""
        if keep and len(self._conns) >= self._limits.max_connections:
            self._pop(next(iter(self._conns)))  # its session is dropped unflushed: it did not close
            self.evicted += 1
        c = Connection(conn_id=conn_id, pid=pid, tuple=tup, kernel_role=role, last_seen_ns=ts)
        c.loopback = is_loopback(tup.local_addr)
        if tup.local_port:
            scope = 0
            if self.netns is not None:
                if c.loopback:
                    c.netns = scope = self.netns.netns_of(pid)
                elif role == Role.CLIENT:
                    c.netns = self.netns.connection_netns(pid, tup.local_addr)
                    c.nat_peer = self.netns.nat_destination(c.netns, tup)
            if keep:
                self.peers.add(c, scope)
        if tup.remote_port:  # what LocalPeers.scope_of looks up first, for every transaction
            addr, port = c.nat_peer or (tup.remote_addr, tup.remote_port)
            c.mirror = (addr, port, tup.local_addr, tup.local_port, 0)
            if c.netns:
                c.mirror_ns = (addr, port, tup.local_addr, tup.local_port, c.netns)
        if keep:
            self._conns[conn_id] = c
        return c

    def _pop(self, conn_id: int) -> Connection | None:
        c = self._conns.pop(conn_id, None)
        if c is None:
            return None
        if c.endpoint_key is not None:
            self.peers.remove(c)
        if c.tls_unattached:  # it ended without a byte of plaintext
            self.tls_unattached_open -= 1
            self.tls_unattached += 1
        return c

    # -- views (any thread) ------------------------------------------------------------------

    def by_process(self) -> dict[int, ProcessConnections]:
        """What the connections tracked now say of each process (for status pages).  Read from
        another thread than the capture thread: a copy of the table is taken first (a C-level
        copy the capture thread cannot interleave with)."""
        conns = list(self._conns.values())
        out: dict[int, ProcessConnections] = {}
        for c in conns:
            p = out.get(c.pid)
            if p is None:
                p = out[c.pid] = ProcessConnections()
            p.connections += 1
            if c.protocol:
                p.protocols.add(c.protocol)
            if c.tls:
                p.tls_plaintext += 1
            if c.tls_unattached:
                p.tls_ciphertext_only += 1
        return out

    # -- self-metrics ------------------------------------------------------------------------

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        conns = GaugeMetricFamily("ebpf_receiver_connections_tracked", "Connections tracked in user space.")
        conns.add_metric([], len(self._conns))
        yield conns
        dropped = CounterMetricFamily(
            "ebpf_receiver_connections_dropped", "Connections forgotten, by reason.", labels=["reason"]
        )
        dropped.add_metric(["table_full"], self.evicted)
        dropped.add_metric(["idle"], self.expired)
        yield dropped
        single = CounterMetricFamily(
            "ebpf_receiver_connections_single_transaction",
            "Connections whose first paired HTTP/1 transaction was also their last (a connection per "
            "request): handled without a table entry.",
        )
        single.add_metric([], self.single_transaction)
        yield single
        tls = CounterMetricFamily(
            "ebpf_receiver_tls_connections",
            "TLS connections: plaintext (read at an attached TLS library) or unattached (ended with only "
            "ciphertext seen).",
            labels=["state"],
        )
        tls.add_metric(["plaintext"], self.tls_plaintext)
        tls.add_metric(["unattached"], self.tls_unattached)
        yield tls
        open_ = GaugeMetricFamily("ebpf_receiver_tls_connections_ciphertext_only",
                                  "Open TLS connections with ciphertext seen and no plaintext yet.")
        open_.add_metric([], self.tls_unattached_open)
        yield open_
        # The kernel adds its reasons to this family (receivers/ebpf/self_metrics.py).
        unattached = CounterMetricFamily("ebpf_receiver_tls_unattached", TLS_UNATTACHED_HELP, labels=["reason"])
        unattached.add_metric(["no_library"], self.tls_unattached)
        yield unattached
        if self.netns is not None:
            yield from self.netns.collect()

    def describe(self) -> list:
        return []
