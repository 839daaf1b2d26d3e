"""The telemetry stage: transactions → spans, RED metric observations and log records.

One :class:`TelemetryAssembler` per receiver: it knows the process resources, the clock
conversion, the trace linker and the per-protocol semantic-convention mappings.  The protocol
stage hands it each batch's transactions (:meth:`on_transactions`), then ends the batch
(:meth:`end_batch`): the spans and log records whose trace is decided (see
:mod:`receiver.telemetry.linking`) go to the traces and logs consumers (the pipelines' first
processors or exporters).  A span's RED metric observation is recorded when it is released, so
the exemplar carries the final trace id.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterator, Protocol, Sequence

from prometheus_client.core import CounterMetricFamily

from receiver.component.cpu_yield import NO_YIELD, STEP, CpuYield, in_chunks
from receiver.model.serving_spans import ServingSpans
from receiver.model.transaction import TrackedTransaction
from receiver.protocols.base import Role, Transaction
from receiver.telemetry.clock import MonotonicToWall
from receiver.telemetry.described import DescribedProtocols, described_protocols
from receiver.telemetry.db_semconv import Http2AsHttp, grpc_parts, mysql_parts, postgresql_parts, redis_parts
from receiver.telemetry.http_semconv import HttpSpanMapper
from receiver.telemetry.linking import TraceLinker
from receiver.model.telemetry import LogRecord, SeverityNumber, Span, SpanKind, StatusCode

# Attributes copied from an ERROR span onto the log record that reports the error.
_ERROR_LOG_KEYS = (
    "error.type", "http.request.method", "url.path", "http.response.status_code", "http.route",
    "db.system.name", "db.namespace", "db.operation.name", "db.response.status_code",
    "rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code", "server.address", "server.port",
)


def error_log_record(span: Span) -> LogRecord:
    """A protocol error (HTTP 5xx, SQL error, Redis -ERR, gRPC status...) as a log record
    linked to its span."""
    attrs = {k: span.attributes[k] for k in _ERROR_LOG_KEYS if k in span.attributes}
    attrs["event.name"] = "ebpf_receiver.protocol.error"
    detail = span.status_message or str(span.attributes.get("error.type", "error"))
    return LogRecord(
        time_unix_nano=span.end_unix_nano,
        observed_time_unix_nano=span.end_unix_nano,
        body=f"{span.name}: {detail}",
        resource=span.resource,
        severity_number=SeverityNumber.ERROR,
        severity_text="ERROR",
        attributes=attrs,
        trace_id=span.trace_id,
        span_id=span.span_id,
    )
from receiver.telemetry.red_metrics import RedMetrics
from receiver.discovery.resources import ProcessResources
from receiver.telemetry.routes import RouteTemplater
from receiver.telemetry.sampling import ALWAYS_ON, REMOTE_PARENT, SAMPLED, Sampler
from receiver.telemetry.service_graph import ServiceGraph
from receiver.telemetry.trace_context import IdGenerator, TraceParent, parse_traceparent


class SpanWork:
    """A span on its way out, with the metric observation to record when it is released.
    Forwards the fields the linker sets."""

    __slots__ = ("span", "metric")

    def __init__(self, span: Span, metric: tuple | None) -> None:
        self.span = span
        self.metric = metric

    @property
    def trace_id(self) -> bytes:
        return self.span.trace_id

    @trace_id.setter
    def trace_id(self, v: bytes) -> None:
        self.span.trace_id = v

    @property
    def span_id(self) -> bytes:
        return self.span.span_id

    @span_id.setter
    def span_id(self, v: bytes) -> None:
        self.span.span_id = v

    @property
    def parent_span_id(self) -> bytes:
        return self.span.parent_span_id

    @parent_span_id.setter
    def parent_span_id(self, v: bytes) -> None:
        self.span.parent_span_id = v

    @property
    def trace_state(self) -> str:
        return self.span.trace_state

    @trace_state.setter
    def trace_state(self, v: str) -> None:
        self.span.trace_state = v

    @property
    def flags(self) -> int:
        return self.span.flags

    @flags.setter
    def flags(self, v: int) -> None:
        self.span.flags = v


# Enum members as module constants: a class attribute lookup costs some 50 ns on the per-span path.
_SERVER_ROLE, _CLIENT_ROLE = Role.SERVER, Role.CLIENT
_SERVER_KIND, _CLIENT_KIND = SpanKind.SERVER, SpanKind.CLIENT
_ERROR = StatusCode.ERROR


def _client_view(tt: TrackedTransaction) -> tuple:
    """The tuple as the client sees it: (client addr, client port, server addr, server port,
    scope) — the server being the real backend of a NAT'd destination, the scope the shared
    namespace of loopback peers."""
    t = tt.tuple
    if tt.transaction.role == _SERVER_ROLE:
        return (t.remote_addr, t.remote_port, t.local_addr, t.local_port, tt.link_scope)
    addr, port = tt.nat_peer or (t.remote_addr, t.remote_port)
    return (t.local_addr, t.local_port, addr, port, tt.link_scope)


def _http1_traceparent(tx) -> TraceParent | None:
    req = tx.request
    tp = req.header("traceparent")
    return parse_traceparent(tp, req.header("tracestate")) if tp is not None else None


def _http2_traceparent(tx) -> TraceParent | None:
    tp = ts = None
    for k, v in tx.request.headers:
        if k == "traceparent":
            tp = v
        elif k == "tracestate":
            ts = v
    return parse_traceparent(tp, ts)


def _no_context(tx) -> None:
    return None


def _client_only(parts: Callable) -> Callable:
    def mapped(tt: TrackedTransaction):
        return parts(tt) if tt.transaction.role == Role.CLIENT else None

    return mapped


class TracesConsumer(Protocol):
    def consume_traces(self, spans: list[Span]) -> None: ...


class LogsConsumer(Protocol):
    def consume_logs(self, records: list[LogRecord]) -> None: ...


class TelemetryAssembler:
    def __init__(
        self,
        resources: ProcessResources,
        clock: MonotonicToWall,
        red_metrics: RedMetrics | None,
        routes: RouteTemplater | None = None,
        ids: IdGenerator | None = None,
        skip_sdk_client_spans: bool = True,
        hold_ns: int = 3 * 10**9,
        service_graph: ServiceGraph | None = None,
        sampler: Sampler = ALWAYS_ON,
        traces: Sequence[TracesConsumer] = (),
        logs: Sequence[LogsConsumer] = (),
        exemplars=None,
        serving_spans: ServingSpans | None = None,
        cpu_yield: CpuYield = NO_YIELD,
    ) -> None:
        self._yield = cpu_yield  # the capture thread's (receiver/component/cpu_yield.py)
        self._serving_spans = serving_spans  # server spans by request identity (the profiler reads it)
        self._traces = list(traces)
        # receiver.telemetry.exemplars.DeferredExemplars when a tail sampler decides later: the
        # exemplar of a sampled span waits there for its trace's decision.
        self._exemplars = exemplars
        self._logs = list(logs)
        self.spans = 0  # spans handed to the traces consumers
        self.log_records = 0  # log records handed to the logs consumers
        self.connect_failures = 0  # failed connects turned into error spans
        self._graph = service_graph
        self._resources = resources
        self._clock = clock
        self._metrics = red_metrics
        self._routes = routes or RouteTemplater()
        self._ids = ids or IdGenerator()
        self._skip_sdk = skip_sdk_client_spans
        self._http = HttpSpanMapper(self._routes)
        self._sampler = sampler
        self.linker = TraceLinker(self._ids, hold_ns=hold_ns, sampler=sampler)
        self.sampled_out = 0  # spans not exported by the sampler (still in the RED metrics)
        self.unsupported = 0  # transactions of a protocol with no mapping
        # protocol -> (mapping to span parts, incoming/outgoing trace context reader)
        self._mappings: dict[str, tuple[Callable, Callable[[object], TraceParent | None]]] = {
            "http1": (self._http.parts, _http1_traceparent),
            "http2": (self._http2_parts, _http2_traceparent),
            "postgresql": (_client_only(postgresql_parts), _no_context),
            "mysql": (_client_only(mysql_parts), _no_context),
            "redis": (_client_only(redis_parts), _no_context),
        }
        self.server_side_db_skipped = 0
        self._described: DescribedProtocols | None = None  # set by use_protocols

    def use_protocols(self, registry, transports: dict[int, str] | None = None) -> None:
        """Map the transactions of the registry's self-describing protocols (Memcached, AMQP, DNS,
        plug-ins) with their own ``describe``."""
        self._described = described_protocols(registry, transports or {})

    def register(self, protocol: str, parts: Callable, traceparent: Callable | None = None) -> None:
        """Add a protocol mapping: ``parts(tt) -> (name, attrs, status, message, metric_attrs,
        metric_name)``; ``traceparent(tx)`` reads W3C context from the request, if the
        protocol carries any."""
        self._mappings[protocol] = (parts, traceparent or (lambda tx: None))

    # -- the stage ---------------------------------------------------------------------------

    def on_transactions(self, txs: list[TrackedTransaction], now_ns: int) -> None:
        add = self.add
        for part in in_chunks(txs, self._yield, STEP):  # cpu_yield between chunks
            for tt in part:
                add(tt, now_ns)

    def end_batch(self, now_ns: int, flush: bool = False) -> None:
        """Release what is decided (everything with ``flush``) to the consumers."""
        spans, logs = self.flush() if flush else self.take(now_ns)
        if spans:
            self.spans += len(spans)
            for c in self._traces:
                c.consume_traces(spans)
        if logs:
            self.log_records += len(logs)
            for c in self._logs:
                c.consume_logs(logs)

    def collect(self) -> Iterator[CounterMetricFamily]:
        spans = CounterMetricFamily("ebpf_receiver_spans", "Spans produced.")
        spans.add_metric([], self.spans)
        yield spans
        sampled_out = CounterMetricFamily(
            "ebpf_receiver_spans_sampled_out",
            "Spans not exported by the head sampler (their durations are still in the RED metrics).",
        )
        sampled_out.add_metric([], self.sampled_out)
        yield sampled_out

    def describe(self) -> list:
        return []

    # -- inputs ----------------------------------------------------------------------------

    def on_server_ingress(self, pid: int, tid: int, conn_id: int, ts_ns: int, announced: bool = False,
                          multiplexed: bool = False, new_request: bool = False) -> None:
        self.linker.on_server_ingress(pid, tid, conn_id, ts_ns, announced, multiplexed, new_request)

    def add(self, tt: TrackedTransaction, now_ns: int) -> None:
        tx = tt.transaction
        mapping = self._mappings.get(tx.protocol)
        if mapping is None:
            if self._described is not None and tx.protocol in self._described:
                self._add_described(tt, now_ns)
            else:
                self.unsupported += 1
            return
        parts_fn, tp_fn = mapping
        tp = tp_fn(tx)
        solo = None
        server = tx.role == _SERVER_ROLE
        if server and tp is None and not tt.peer_local:
            # Nothing links this request to another span: its trace starts here, now.
            span_id = self.linker.take_solo_server(tt.conn_id, tx.end_ns)
            if span_id is not None:
                trace_id = self._ids.trace_id()
                flags = self._sampler.root(trace_id)
                if not flags & SAMPLED and self._metric_only(tt):
                    return
                solo = (trace_id, span_id, flags)
        parts = parts_fn(tt)
        if parts is None:  # e.g. a database server's view of a call its client already reports
            self.server_side_db_skipped += 1
            return
        name, attrs, status, message, metric_attrs, metric_name = parts
        resources = self._resources.entry(tt.pid)  # (resource of the span, resource of its series)
        offset = self._clock.offset_ns
        start = tx.start_ns + offset
        end = max(tx.end_ns, tx.start_ns) + offset
        if solo is not None:
            trace_id, span_id, flags = solo
        else:
            trace_id, span_id, flags = b"", self._ids.span_id(), 1
        span = Span(trace_id, span_id, name, _SERVER_KIND if server else _CLIENT_KIND, start, end, resources.resource,
                    b"", "", attrs, status, message, flags)
        work = SpanWork(span, (metric_name, resources.metrics, metric_attrs, (end - start) / 1e9, end))
        if server and self._serving_spans is not None:
            self._serving_spans.record(tt.conn_id, tx.start_ns, span)
        if solo is not None:
            self.linker.release(work)
            return
        peer_key = _client_view(tt) if tt.peer_local or tt.peer_maybe else None
        if server:
            self.linker.server_span(work, tt.conn_id, peer_key, tt.call_index, tp, now_ns, end_ns=tx.end_ns)
        elif not self.linker.client_span(
            work, tt.pid, tt.tid, peer_key, tt.call_index, tp, now_ns, skip_sdk_spans=self._skip_sdk,
            start_ns=tx.start_ns,
        ):
            return

    def _add_described(self, tt: TrackedTransaction, now_ns: int) -> None:
        """A transaction of a protocol that maps itself (see :mod:`receiver.telemetry.described`)."""
        described = self._described
        desc = described.describe(tt)
        if desc is None:
            return
        span, metric, tp = described.span(desc, tt, self._resources.get(tt.pid), self._clock.offset_ns,
                                          self._ids.span_id())
        if metric is not None:  # series are per service instance, not per process
            metric = (metric[0], self._resources.for_metrics(tt.pid), *metric[2:])
        work = SpanWork(span, metric)
        kind = span.kind
        if kind == SpanKind.SERVER:
            self.linker.server_span(work, tt.conn_id, _client_view(tt) if tt.peer_local else None, tt.call_index,
                                    tp, now_ns, end_ns=tt.transaction.end_ns)
        elif kind == SpanKind.CONSUMER and tp is not None:
            # The message carried its producer's context: this span continues that trace, and the
            # head sampler decides on it as on any context from the wire.
            span.trace_id, span.parent_span_id, span.trace_state = tp.trace_id, tp.span_id, tp.trace_state
            span.flags = self._sampler.remote(tp.trace_id, tp.flags) | REMOTE_PARENT
            self.linker.release(work)
        else:
            outgoing = tp if kind in (SpanKind.CLIENT, SpanKind.PRODUCER) else None
            self.linker.client_span(work, tt.pid, tt.tid, _client_view(tt) if tt.peer_local or tt.peer_maybe else None,
                                    tt.call_index, outgoing, now_ns, skip_sdk_spans=self._skip_sdk,
                                    start_ns=tt.transaction.start_ns)

    def _metric_only(self, tt: TrackedTransaction) -> bool:
        """A sampled-out request of a protocol that can skip its span: record its duration in the
        RED metrics (no exemplar) and nothing else.  False when its span must still be built
        (an error: the span feeds the error log record; or no metric-only mapping)."""
        tx = tt.transaction
        if tx.protocol != "http1" or self._metrics is None:
            return False
        m = self._http.metric_only(tt)
        if m is None:
            return False
        name, attrs = m
        end_ns = max(tx.end_ns, tx.start_ns)
        self._metrics.record(name, self._resources.for_metrics(tt.pid), attrs, (end_ns - tx.start_ns) / 1e9,
                             end_ns + self._clock.offset_ns)
        self.sampled_out += 1
        return True

    def add_connect_failure(self, f, now_ns: int) -> None:
        """A failed connect (``capture.events.ConnFailureEvent``): an ERROR client span ``connect``,
        placed like any client span — under the request its thread serves — and so followed by
        its error log record."""
        offset = self._clock.offset_ns
        attrs = {
            "network.transport": "tcp",
            "network.peer.address": f.peer_address,
            "network.peer.port": f.peer_port,
            "server.address": f.peer_address,
            "server.port": f.peer_port,
            "network.local.address": f.local_address,
            "network.local.port": f.local_port,
            "error.type": f.reason,
        }
        detail = f" ({f.error_name})" if f.error_name else ""
        span = Span(b"", self._ids.span_id(), "connect", SpanKind.CLIENT, f.start_ns + offset,
                    max(f.end_ns, f.start_ns) + offset, self._resources.get(f.pid), b"", "", attrs,
                    StatusCode.ERROR, f"connect to {f.peer_address}:{f.peer_port} failed: {f.reason}{detail}", 1)
        self.linker.client_span(SpanWork(span, None), f.pid, f.tid, None, 0, None, now_ns,
                                skip_sdk_spans=self._skip_sdk, start_ns=f.start_ns)
        self.connect_failures += 1

    def add_log(self, record: LogRecord, pid: int, tid: int, now_ns: int) -> None:
        self.linker.log_record(record, pid, tid, now_ns)

    # -- outputs ---------------------------------------------------------------------------

    def take(self, now_ns: int) -> tuple[list[Span], list[LogRecord]]:
        return self._split(self.linker.take_ready(now_ns))

    def flush(self) -> tuple[list[Span], list[LogRecord]]:
        return self._split(self.linker.flush_all())

    def _split(self, ready: list) -> tuple[list[Span], list[LogRecord]]:
        spans: list[Span] = []
        logs: list[LogRecord] = []
        observed: list[Span] = []  # every span, sampled or not: the service graph counts calls
        record = self._metrics.record if self._metrics is not None else None
        for part in in_chunks(ready, self._yield, STEP):  # cpu_yield between chunks
            for m in part:
                if isinstance(m, SpanWork):
                    s = m.span
                    observed.append(s)
                    sampled = s.flags & SAMPLED
                    if sampled:
                        spans.append(s)
                    else:
                        self.sampled_out += 1
                    if record is not None and m.metric is not None:
                        name, resource, attrs, value, end = m.metric
                        if value is None:  # a count (messaging.client.consumed.messages)
                            self._metrics.add(name, resource, attrs, 1, end)
                        elif sampled and self._exemplars is not None:
                            record(name, resource, attrs, value, end)
                            self._exemplars.offer(s.trace_id, name, resource, attrs, value, end, s.span_id)
                        elif sampled:
                            record(name, resource, attrs, value, end, s.trace_id, s.span_id)
                        else:  # no exemplar: it would point at a trace nobody exported
                            record(name, resource, attrs, value, end)
                    if s.status_code == _ERROR:
                        logs.append(error_log_record(s))
                else:
                    logs.append(m)
        if observed and self._graph is not None:
            self._graph.observe(observed)
        return spans, logs

    # -- protocol mappings -----------------------------------------------------------------

    def _http2_parts(self, tt: TrackedTransaction):
        tx = tt.transaction
        if tx.request.is_grpc:
            return grpc_parts(tt)
        view = Transaction(
            tx.protocol, tx.role, Http2AsHttp(tx.request, True),
            Http2AsHttp(tx.response, False) if tx.response is not None and tx.response.status else None,
            tx.start_ns, tx.end_ns, tx.request_size, tx.response_size,
        )
        return self._http.parts(replace(tt, transaction=view))
