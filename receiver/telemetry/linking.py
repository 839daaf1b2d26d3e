"""Which trace a kernel-made span belongs to, and who its parent is — without touching traffic.

Three sources, strongest first:

1. **W3C trace context** on an incoming request (``traceparent``): the server span joins that
   trace as a child of the caller's span.
2. **Same host**: a client connection and the server connection it reaches have mirrored
   tuples, and both are in the connection table.  The n-th request on the client side and the
   n-th request on the server side are one call: the server span becomes the child of the
   client span and takes its trace.
3. **Thread-per-request**: client calls made (and log lines written) by a thread while it is
   serving a request become children of that server span.

The server span of a call finishes *after* the client calls it made, and the client span of a
same-host call finishes *after* the server span, so decisions are made on **pending groups**:
spans (and log records) whose trace id is not known yet wait in a :class:`PendingTrace`; when
the group's root learns its trace id every member is stamped and released.  A group that is
not resolved within ``hold_ns`` is released as a trace of its own, so nothing waits forever,
and the number of pending groups is bounded.

Serving contexts are announced as the records arrive, but transactions are linked at the end of
the batch that carried them: one batch can hold several requests served by one thread (the
requests of a keep-alive connection, or of a thread pool).  So a thread keeps a short list of
contexts, ordered by start: a client span belongs to the latest one that started before it, a
server span to the latest one of its connection that started before it ended.

Thread linking cannot work for asynchronous runtimes, where one thread interleaves many
requests: when a thread starts reading a second server request before the first one was
answered, the process is marked *multiplexed* and thread linking is switched off for it
(counted in ``multiplexed_processes``); W3C context and same-host linking still apply.  With
HTTP/1 paired in the kernel, the kernel judges that (it knows whether the first request was
answered) and says so on the marker; on the payload path, a read of another connection while
the thread's last context is open is taken as that sign.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import OrderedDict
from dataclasses import dataclass, field
from operator import attrgetter

from receiver.telemetry.sampling import ALWAYS_ON, REMOTE_PARENT, Sampler
from receiver.telemetry.trace_context import IdGenerator, TraceParent


@dataclass(slots=True)
class PendingTrace:
    """Members whose trace id is decided together."""

    deadline_ns: int
    trace_id: bytes = b""
    flags: int = 1
    trace_state: str = ""
    members: list = field(default_factory=list)  # spans / log records (objects with .trace_id)
    children: list = field(default_factory=list)  # PendingTrace adopting our trace id

    @property
    def resolved(self) -> bool:
        return bool(self.trace_id)


@dataclass(slots=True, eq=False)  # compared by identity
class ServingContext:
    """A thread reading a server request: the server span's id is allocated up front."""

    pid: int
    tid: int
    conn_id: int
    start_ns: int
    span_id: bytes
    group: PendingTrace
    # Client spans sent with a traceparent while serving: the app's SDK made them, unless the
    # header is just the incoming one forwarded (an uninstrumented proxy); decided when the
    # server span (and so the incoming header) is known.
    sdk_candidates: list = field(default_factory=list)


# Requests of one thread awaiting their server span.  Every request a thread starts within one
# batch of records is announced before the batch's client calls are linked, so this is a batch's
# worth at the highest rate one thread serves (an nginx worker: tens of thousands a second), not
# a handful; contexts also leave when their server span is placed, or after ``hold_ns``.
_CONTEXTS_PER_THREAD = 4096
_start_of = attrgetter("start_ns")


@dataclass(slots=True)
class PeerLink:
    """One same-host call, keyed by the client-side view of the tuple and the call index."""

    client_span_id: bytes
    born_ns: int  # when its first side arrived: it is forgotten ``hold_ns`` later, as groups are
    server_group: PendingTrace | None = None  # the server side arrived first and waits
    client_group: PendingTrace | None = None  # the client side arrived first


class TraceLinker:
    def __init__(self, ids: IdGenerator, hold_ns: int = 3 * 10**9, max_pending: int = 65536,
                 sampler: Sampler = ALWAYS_ON) -> None:
        self._ids = ids
        self._sampler = sampler
        self._hold = hold_ns
        self._max = max_pending
        # Oldest first; a context leaves both when its server span is placed, or goes stale.
        self._serving_by_thread: dict[tuple[int, int], list[ServingContext]] = {}
        self._serving_by_conn: dict[int, list[ServingContext]] = {}
        self._links: OrderedDict[tuple, PeerLink] = OrderedDict()
        # Root client calls whose trace is decided, offered to a server side that may come:
        # (peer key, call index) -> (client span id, trace id, flags, born_ns).  Plain tuples:
        # no group is kept alive for them (most are calls to other hosts, never taken).
        self._offers: OrderedDict[tuple, tuple[bytes, bytes, int, int]] = OrderedDict()
        self._pending: OrderedDict[int, PendingTrace] = OrderedDict()  # id(group) -> group
        self._multiplexed: set[int] = set()
        self._ready: list = []
        self.multiplexed_processes = 0
        self.released_unlinked = 0  # groups released by timeout or bound
        self.sdk_spans_skipped = 0  # client spans the application's own SDK already made

    @property
    def links_held(self) -> int:
        """Same-host calls one side of which waits for the other (offers included)."""
        return len(self._links) + len(self._offers)

    # -- thread-per-request --------------------------------------------------------------

    def on_server_ingress(self, pid: int, tid: int, conn_id: int, ts_ns: int, announced: bool = False,
                          multiplexed: bool = False, new_request: bool = False) -> None:
        """A thread read bytes of a server connection: it is (probably) serving a request.

        ``announced``: the kernel's marker of one request (paired HTTP/1), ``ts_ns`` its start:
        a later marker of the same connection is the connection's next request (keep-alive).
        Otherwise a read on the payload path: reads of the same connection are the same request,
        unless ``new_request`` (the connection wrote its response since).
        ``multiplexed``: the kernel saw the thread interleave requests."""
        if pid in self._multiplexed:
            return
        if multiplexed:
            self._set_multiplexed(pid)
            return
        key = (pid, tid)
        ctxs = self._serving_by_thread.get(key)
        if ctxs:
            last = ctxs[-1]
            if last.conn_id == conn_id:
                if (not announced and not new_request) or last.start_ns == ts_ns:
                    return  # more bytes of the same request
            elif not announced:
                # A second request on the same thread before the first was answered: async runtime.
                self._set_multiplexed(pid)
                return
        else:
            ctxs = self._serving_by_thread[key] = []
        group = self._new_group(ts_ns)
        ctx = ServingContext(pid, tid, conn_id, ts_ns, self._ids.span_id(), group)
        if ctxs and ts_ns < ctxs[-1].start_ns:
            insort(ctxs, ctx, key=_start_of)  # kept ordered by start: ``serving`` bisects
        else:
            ctxs.append(ctx)
        self._serving_by_conn.setdefault(conn_id, []).append(ctx)
        if len(ctxs) > _CONTEXTS_PER_THREAD:
            self._forget(ctxs[0])

    def serving(self, pid: int, tid: int, start_ns: int | None = None) -> ServingContext | None:
        """The request thread ``tid`` serves: the latest that started by ``start_ns`` (any
        time when None)."""
        ctxs = self._serving_by_thread.get((pid, tid))
        if not ctxs:
            return None
        if start_ns is None:
            return ctxs[-1]
        i = bisect_right(ctxs, start_ns, key=_start_of)
        return ctxs[i - 1] if i else None

    def _conn_context(self, conn_id: int, end_ns: int | None) -> ServingContext | None:
        """The serving context of the server request on ``conn_id`` that ended at ``end_ns``:
        the latest of the connection that started by then (requests of a connection follow
        one another; older ones never got their span and are stale)."""
        ctxs = self._serving_by_conn.get(conn_id)
        if not ctxs:
            return None
        if end_ns is None:
            return ctxs[-1]
        for ctx in reversed(ctxs):
            if ctx.start_ns <= end_ns:
                return ctx
        return None

    def _take_conn_context(self, conn_id: int, end_ns: int | None) -> ServingContext | None:
        ctx = self._conn_context(conn_id, end_ns)
        if ctx is not None:
            for older in list(self._serving_by_conn.get(conn_id, ())):
                if older is ctx:
                    break
                self._forget(older)
            self._forget(ctx)
        return ctx

    def _forget(self, ctx: ServingContext) -> None:
        """Remove a serving context from both indexes."""
        ctxs = self._serving_by_conn.get(ctx.conn_id)
        if ctxs is not None:
            if ctx in ctxs:
                ctxs.remove(ctx)
            if not ctxs:
                del self._serving_by_conn[ctx.conn_id]
        key = (ctx.pid, ctx.tid)
        ctxs = self._serving_by_thread.get(key)
        if ctxs is not None:
            if ctx in ctxs:
                ctxs.remove(ctx)
            if not ctxs:
                del self._serving_by_thread[key]

    def _set_multiplexed(self, pid: int) -> None:
        self._multiplexed.add(pid)
        self.multiplexed_processes += 1
        for key in [k for k in self._serving_by_thread if k[0] == pid]:
            for old in list(self._serving_by_thread.get(key, ())):
                self._forget(old)

    # -- decisions -------------------------------------------------------------------------

    def take_solo_server(self, conn_id: int, end_ns: int | None = None) -> bytes | None:
        """The server request on ``conn_id`` (ended at ``end_ns``, kernel clock) finished with
        nothing waiting on it (no client spans, log records or SDK candidates in its serving
        group) and no context of its own: end its serving context and return its span id, so
        the caller can start a trace right away (:meth:`release`).  None when the request has
        dependents: use :meth:`server_span`."""
        ctx = self._conn_context(conn_id, end_ns)
        if ctx is None:
            return self._ids.span_id()
        g = ctx.group
        if g.members or g.children or ctx.sdk_candidates:
            return None
        self._take_conn_context(conn_id, end_ns)
        self._pending.pop(id(g), None)
        return ctx.span_id

    def release(self, member) -> None:
        """A span whose trace is already decided (see :meth:`take_solo_server`)."""
        self._ready.append(member)

    def server_span(self, span, conn_id: int, peer_key: tuple | None, call_index: int,
                    traceparent: TraceParent | None, now_ns: int, end_ns: int | None = None) -> None:
        """Place a finished server span (its ``trace_id`` may be empty; ``span_id`` is
        replaced by the serving context's pre-allocated one when there is one).  ``end_ns``:
        when the request ended (kernel clock), which tells its context among the connection's.
        ``peer_key``: the connection as its client sees it, (client addr, client port, server
        addr, server port, scope), when the client may be a traced local socket."""
        ctx = self._take_conn_context(conn_id, end_ns)
        if ctx is not None:
            span.span_id = ctx.span_id
            group = ctx.group
            incoming = _tp_text(traceparent) if traceparent is not None else ""
            for candidate, text, skip in ctx.sdk_candidates:
                if text != incoming and skip and candidate in group.members:
                    group.members.remove(candidate)
                    self.sdk_spans_skipped += 1
        else:
            group = self._new_group(now_ns)
        group.members.append(span)
        if traceparent is not None:
            span.parent_span_id = traceparent.span_id
            self._resolve_remote(group, traceparent)
            span.flags |= REMOTE_PARENT  # OTLP: the parent is remote, and that is known
            return
        if peer_key is not None:
            key = (peer_key, call_index)
            # A loopback client whose namespace was unknown (its process was gone before its
            # connection was read) has its call keyed under scope 0: looked up there too.
            alt = (peer_key[:4] + (0,), call_index) if len(peer_key) == 5 and peer_key[4] else None
            link = self._links.get(key)
            if link is None:
                offer = self._offers.pop(key, None)
                if offer is None and alt is not None:
                    offer = self._offers.pop(alt, None)
                    if offer is None:
                        waiting = self._links.get(alt)
                        if waiting is not None and waiting.client_group is not None:
                            key, link = alt, waiting
                if offer is not None:
                    span.parent_span_id = offer[0]
                    self._resolve(group, offer[1], offer[2], "")
                    return
            if link is None:
                link = PeerLink(client_span_id=self._ids.span_id(), born_ns=now_ns)
                self._remember_link(key, link)
                if alt is not None:  # the same wait, for such a client (taken once: see client_span)
                    self._remember_link(alt, link)
            span.parent_span_id = link.client_span_id
            if link.client_group is not None:
                self._adopt(link.client_group, group)
                self._links.pop(key, None)
            else:
                link.server_group = group
            return
        self._resolve_root(group)

    def client_span(self, span, pid: int, tid: int, peer_key: tuple | None, call_index: int,
                    outgoing: TraceParent | None, now_ns: int, skip_sdk_spans: bool = True,
                    start_ns: int | None = None) -> bool:
        """Place a finished client span (``start_ns``: when the call started, kernel clock: it
        tells which of the thread's requests made it).  Returns False when the span must not be
        emitted (the application's own SDK already made it)."""
        ctx = self.serving(pid, tid, start_ns) if pid not in self._multiplexed else None
        if outgoing is not None and ctx is not None:
            # Forwarded or injected? Decided when the server span shows the incoming header.
            ctx.sdk_candidates.append((span, _tp_text(outgoing), skip_sdk_spans))
        elif outgoing is not None:
            # The application injected its own context: its SDK made this client span.
            if skip_sdk_spans:
                self.sdk_spans_skipped += 1
                if peer_key is not None:
                    self._links.pop((peer_key, call_index), None)
                return False
            span.parent_span_id = outgoing.span_id
            group = self._new_group(now_ns)
            group.members.append(span)
            self._resolve_remote(group, outgoing)
            return True
        if ctx is None:
            # A root call: its trace starts here, and is decided now.
            trace_id = self._ids.trace_id()
            flags = self._sampler.root(trace_id)
            if peer_key is not None:
                key = (peer_key, call_index)
                link = self._links.pop(key, None)
                if link is not None and link.server_group is not None:
                    span.span_id = link.client_span_id
                    self._resolve(link.server_group, trace_id, flags, "")
                    link.server_group = None  # taken: its other key, if any, is spent
                else:
                    offers = self._offers
                    offers[key] = (span.span_id, trace_id, flags, now_ns)
                    if len(offers) > self._max:
                        offers.popitem(last=False)
            span.trace_id = trace_id
            span.trace_state = ""
            span.flags = flags
            self._ready.append(span)
            return True
        span.parent_span_id = ctx.span_id
        group = ctx.group
        if peer_key is not None:
            link = self._links.pop((peer_key, call_index), None)
            if link is not None and link.server_group is not None:
                span.span_id = link.client_span_id
                self._adopt(group, link.server_group)
                link.server_group = None  # taken: its other key, if any, is spent
            elif link is None:
                link = PeerLink(client_span_id=span.span_id, born_ns=now_ns, client_group=group)
                self._remember_link((peer_key, call_index), link)
        group.members.append(span)
        return True

    def log_record(self, record, pid: int, tid: int, now_ns: int) -> None:
        """A log line: stamped with the span the writing thread is serving, if any."""
        ctx = self.serving(pid, tid) if pid not in self._multiplexed else None
        if ctx is None:
            self._ready.append(record)
            return
        record.span_id = ctx.span_id
        ctx.group.members.append(record)

    # -- output ----------------------------------------------------------------------------

    def take_ready(self, now_ns: int) -> list:
        """Members whose trace id is known, plus those released because they waited too long."""
        while self._pending:
            gid, g = next(iter(self._pending.items()))
            if g.deadline_ns > now_ns and len(self._pending) <= self._max:
                break
            self._pending.pop(gid)
            if not g.resolved:
                self.released_unlinked += 1
                self._resolve_root(g)
        # Stale serving contexts (a request that never got an answer) stop parenting.
        stale = now_ns - self._hold
        for ctxs in [c for c in self._serving_by_thread.values() if c[0].start_ns < stale]:
            for c in [c for c in ctxs if c.start_ns < stale]:
                self._forget(c)
        # A side that waited as long as a group does has no other side coming (a call to a local
        # server that is not traced, or whose span was skipped): its link goes with it, so a late
        # match can never re-stamp spans already released.
        links = self._links
        while links and (len(links) > self._max or next(iter(links.values())).born_ns < stale):
            links.popitem(last=False)
        offers = self._offers
        while offers and next(iter(offers.values()))[3] < stale:
            offers.popitem(last=False)
        out, self._ready = self._ready, []
        return out

    def flush_all(self) -> list:
        for g in list(self._pending.values()):
            if not g.resolved:
                self._resolve_root(g)
        self._pending.clear()
        out, self._ready = self._ready, []
        return out

    # -- internals -------------------------------------------------------------------------

    def _new_group(self, now_ns: int) -> PendingTrace:
        g = PendingTrace(deadline_ns=now_ns + self._hold)
        self._pending[id(g)] = g
        return g

    def _remember_link(self, key: tuple, link: PeerLink) -> None:
        self._links[key] = link
        if len(self._links) > self._max:
            self._links.popitem(last=False)

    def _adopt(self, parent: PendingTrace, child: PendingTrace) -> None:
        """child takes parent's trace id (now, or when parent resolves)."""
        if parent.resolved:
            self._resolve(child, parent.trace_id, parent.flags, parent.trace_state)
        else:
            parent.children.append(child)
            self._pending.pop(id(child), None)

    def _resolve_root(self, group: PendingTrace) -> None:
        """The group starts a trace here: a new trace id, sampled or not by the sampler."""
        trace_id = self._ids.trace_id()
        self._resolve(group, trace_id, self._sampler.root(trace_id), "")

    def _resolve_remote(self, group: PendingTrace, tp: TraceParent) -> None:
        """The group continues W3C context read from the wire."""
        self._resolve(group, tp.trace_id, self._sampler.remote(tp.trace_id, tp.flags), tp.trace_state)

    def _resolve(self, group: PendingTrace, trace_id: bytes, flags: int, state: str) -> None:
        stack = [group]
        while stack:
            g = stack.pop()
            g.trace_id, g.flags, g.trace_state = trace_id, flags, state
            for m in g.members:
                m.trace_id = trace_id
                if hasattr(m, "trace_state"):
                    m.trace_state = state
                    m.flags = flags
            self._ready.extend(g.members)
            g.members = []
            stack.extend(g.children)
            g.children = []
            self._pending.pop(id(g), None)


def _tp_text(tp: TraceParent) -> str:
    return f"00-{tp.trace_id.hex()}-{tp.span_id.hex()}-{tp.flags:02x}"
