"""The protocol stage: connection bytes → transactions, per connection.

The connection tracker hands this stage the bytes of every connection worth parsing
(``on_bytes``) and tells it when one ends (``on_close``).  Per connection it detects the protocol
from the first bytes seen in either direction (or takes it from a per-port override), owns that
protocol's session (sans-I/O: ``feed``/``close``), and wraps the transactions the session
finishes with the connection facts telemetry needs (:class:`TrackedTransaction`).  They are
handed to the next stage at the end of each batch (``end_batch``), so everything a batch
reported about threads and connections is known before its transactions are linked.

Connections whose protocol is not recognised within ``detect_limit_bytes`` are counted and,
through ``on_uninteresting``, switched off in the kernel so their bytes stop travelling.  Parse
errors are counted per protocol.  The stage imports no earlier stage: the connection object it
is handed is typed by :class:`ParsedConnection` (structural), the local-peer query is a callable.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Protocol

from prometheus_client.core import CounterMetricFamily

from receiver.model.endpoints import Direction, Role, Tuple
from receiver.model.transaction import TrackedTransaction, Transaction
from receiver.protocols.http1.paired import PairedHttp1
from receiver.protocols.registry import ProtocolRegistry

_DIRECTIONS = tuple(sorted(Direction))  # by value (Direction(d) is slower)
_ROLES = tuple(sorted(Role))  # by value
_UNKNOWN_ROLE = Role.UNKNOWN  # enum members as constants (a class attribute lookup costs ~50 ns)


class ParsedConnection(Protocol):
    """What this stage reads of a connection (receiver/connections/tracker.py ``Connection``)
    and the fields it owns there."""

    conn_id: int
    pid: int
    tuple: Tuple
    kernel_role: int
    last_tid: int
    tls: bool
    nat_peer: tuple[str, int] | None
    peer_maybe_scope: int | None  # set by the peer_scope callable when it returns None
    # owned by this stage
    session: Any
    protocol: str | None
    undetected_bytes: int
    detect_held: Any  # ([held feeds], [candidate protocols]) while only MAYBE verdicts came
    tx_count: int
    learned_role: int


class TransactionSink(Protocol):
    """The next stage (telemetry)."""

    def on_transactions(self, txs: list[TrackedTransaction], now_ns: int) -> None: ...

    def end_batch(self, now_ns: int, flush: bool = False) -> None: ...


class ProtocolStage:
    def __init__(
        self,
        registry: ProtocolRegistry,
        next_stage: TransactionSink,
        peer_scope: Callable[[Any], int | None],
        *,
        detect_limit_bytes: int = 4096,
        on_uninteresting: Callable[[int], None] | None = None,
        transports: dict[int, str] | None = None,
        paired_http: PairedHttp1 | None = None,
    ) -> None:
        self._registry = registry
        self._next = next_stage
        self._peer_scope = peer_scope
        self._detect_limit = detect_limit_bytes
        self._on_uninteresting = on_uninteresting
        # ABI transport number (ERX_TRANSPORT_*) -> "tcp" | "udp" | "unix"
        self._transports = transports or {}
        self._paired = paired_http  # HTTP/1 records paired in the kernel -> transactions
        self._pending: list[TrackedTransaction] = []
        self.transactions = 0  # handed to the next stage
        self.undetected = 0  # connections whose protocol was not recognised
        self.parse_errors_by_protocol: dict[str, int] = {}

    # -- from the connection tracker ---------------------------------------------------------

    def on_bytes(self, c: ParsedConnection, direction: int, payload: bytes, ts_ns: int, total_len: int, tid: int,
                 cgroup_id: int) -> None:
        session = c.session
        d = _DIRECTIONS[direction] if 0 <= direction <= 1 else Direction(direction)
        if session is None:
            if c.protocol == "":  # already given up on this connection
                return
            session = self._detect(c, d, payload, ts_ns, total_len, tid, cgroup_id)
            if session is None:
                return
        self._feed(c, session, d, payload, ts_ns, total_len, tid, cgroup_id)

    def _feed(self, c: ParsedConnection, session, d: Direction, payload: bytes, ts_ns: int, total_len: int, tid: int,
              cgroup_id: int) -> None:
        before = session.parse_errors
        txs = session.feed(d, payload, ts_ns, total_len)
        if session.parse_errors != before:
            self._count_errors(c.protocol, session.parse_errors - before)
        if txs:
            self._track(c, txs, tid, cgroup_id)
        elif getattr(session, "failed", False):  # a plug-in that broke: this connection is not parsed
            self._give_up(c, counted=False)

    def _detect(self, c: ParsedConnection, d: Direction, payload: bytes, ts_ns: int, total_len: int, tid: int,
                cgroup_id: int):
        """The session of a connection whose protocol is not known yet, or None (not yet, or never).

        First bytes that only *might* be a protocol (``MAYBE``) are kept, up to
        ``detect_limit_bytes``, until the other direction's first bytes (or the limit) decide: a
        ``YES`` there wins, a ``MAYBE`` narrows the candidates to those both sides fit, and
        otherwise the first candidate (in detection order) it is; then everything kept is fed to
        the chosen protocol's session, in order."""
        registry = self._registry
        t = c.tuple
        proto = registry.protocol_for_ports(t.local_port, t.remote_port)
        held = c.detect_held
        if proto is None:
            transport = self._transports.get(t.transport, "tcp")
            verdict = registry.classify(payload, d, transport, (t.local_port, t.remote_port))
            proto = verdict.protocol
            if proto is None and verdict.maybe:
                if held is None:
                    held = c.detect_held = ([], list(verdict.maybe))
                else:  # more evidence: keep the candidates these bytes also fit, if any
                    both = [p for p in held[1] if p in verdict.maybe]
                    if both:
                        held[1][:] = both
            if proto is None:
                c.undetected_bytes += len(payload) or total_len
                if held is not None:
                    held[0].append((d, payload, ts_ns, total_len, tid, cgroup_id))
                    # Both directions spoke, or enough bytes: the first candidate it is.
                    sides = {h[0] for h in held[0]}
                    if len(sides) == 2 or c.undetected_bytes >= self._detect_limit:
                        proto = held[1][0]
                        session = self._start(c, proto)
                        self._replay(c, session)
                        return None
                    return None
                if c.undetected_bytes >= self._detect_limit:
                    self._give_up(c)
                return None
        session = self._start(c, proto)
        if held is not None:
            self._replay(c, session)
        return session

    def _start(self, c: ParsedConnection, proto: str):
        c.protocol = proto
        role = c.kernel_role
        c.session = self._registry.new_session(
            proto, kernel_role=_ROLES[role] if 0 <= role < len(_ROLES) else Role(role),
            transport=self._transports.get(c.tuple.transport, "tcp"),
        )
        return c.session

    def _replay(self, c: ParsedConnection, session) -> None:
        held, c.detect_held = c.detect_held, None
        for d, payload, ts_ns, total_len, tid, cgroup_id in held[0]:
            self._feed(c, session, d, payload, ts_ns, total_len, tid, cgroup_id)

    def _give_up(self, c: ParsedConnection, counted: bool = True) -> None:
        c.protocol = ""
        c.session = None
        c.detect_held = None
        if counted:
            self.undetected += 1
        if self._on_uninteresting is not None:
            self._on_uninteresting(c.conn_id)

    def on_http_tx(self, c: ParsedConnection, ev) -> None:
        """An HTTP/1 transaction the kernel paired: the transaction the parser would have made."""
        if self._paired is None:
            return
        role = _ROLES[ev.role] if 0 <= ev.role < len(_ROLES) else Role(ev.role)
        if role is _UNKNOWN_ROLE:  # a socket older than the agent: the requests' direction tells
            role = Role.CLIENT if ev.direction == Direction.EGRESS else Role.SERVER
        if c.protocol is None:
            c.protocol = "http"
        self._track_one(c, self._paired.transaction(ev, role), ev.req_tid, ev.cgroup_id)

    def on_close(self, c: ParsedConnection, ts_ns: int) -> None:
        if c.session is None and c.detect_held is not None:  # undecided: the first candidate it is
            self._replay(c, self._start(c, c.detect_held[1][0]))
        session = c.session
        if session is None:
            return
        before = session.parse_errors
        txs = session.close(ts_ns)
        if session.parse_errors != before:
            self._count_errors(c.protocol, session.parse_errors - before)
        if txs:
            self._track(c, txs, c.last_tid, 0)

    # -- to the next stage -----------------------------------------------------------------

    def end_batch(self, now_ns: int, flush: bool = False) -> None:
        """Hand the transactions of this batch on, then let the next stage release its output."""
        pending = self._pending
        if pending:
            self._pending = []
            self.transactions += len(pending)
            self._next.on_transactions(pending, now_ns)
        self._next.end_batch(now_ns, flush)

    def _track(self, c: ParsedConnection, txs: list[Transaction], tid: int, cgroup_id: int) -> None:
        for tx in txs:
            self._track_one(c, tx, tid, cgroup_id)

    def _track_one(self, c: ParsedConnection, tx: Transaction, tid: int, cgroup_id: int) -> None:
        """One transaction to the next stage, with its connection's facts and call index."""
        scope = self._peer_scope(c)
        if scope is not None:
            peer, maybe = True, False
        else:  # no traced local peer: a client's server end may be local but not announced yet
            scope = c.peer_maybe_scope
            peer, maybe = False, scope is not None
            scope = scope or 0
        c.learned_role = tx.role
        n = c.tx_count
        c.tx_count = n + 1
        self._pending.append(TrackedTransaction(tx, c.pid, tid, c.conn_id, c.tuple, cgroup_id, n, peer, c.tls,
                                                c.nat_peer, scope, maybe))

    def _count_errors(self, proto: str | None, n: int) -> None:
        key = proto or "unknown"
        self.parse_errors_by_protocol[key] = self.parse_errors_by_protocol.get(key, 0) + n

    # -- self-metrics ------------------------------------------------------------------------

    def collect(self) -> Iterator[CounterMetricFamily]:
        errors = CounterMetricFamily(
            "ebpf_receiver_parse_errors", "Protocol frames that could not be parsed.", labels=["protocol"]
        )
        for proto, n in sorted(self.parse_errors_by_protocol.items()):
            errors.add_metric([proto], n)
        yield errors
        txs = CounterMetricFamily("ebpf_receiver_transactions", "Request/response pairs assembled.")
        txs.add_metric([], self.transactions)
        yield txs
        dropped = CounterMetricFamily(
            "ebpf_receiver_connections_dropped", "Connections forgotten, by reason.", labels=["reason"]
        )
        dropped.add_metric(["unknown_protocol"], self.undetected)
        yield dropped
        plugins = CounterMetricFamily(
            "ebpf_receiver_protocol_failures",
            "Exceptions a protocol raised where it must not (its connection is dropped from parsing), by stage.",
            labels=["protocol", "stage"],
        )
        for (proto, stage), n in sorted(self._registry.failures.counts.items()):
            plugins.add_metric([proto, stage], n)
        yield plugins

    def describe(self) -> list:
        return []
