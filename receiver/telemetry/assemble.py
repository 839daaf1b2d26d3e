"""Transactions → spans and RED metric observations.

One :class:`TelemetryAssembler` per pipeline: it knows the process resources, the clock
conversion and the id generator, and dispatches per protocol to the semantic-convention
mapping of that protocol.
"""

from __future__ import annotations

from receiver.capture.connections import TrackedTransaction
from receiver.protocols.base import Role
from receiver.telemetry.clock import MonotonicToWall
from receiver.telemetry.http_semconv import http_span_parts, split_target
from receiver.telemetry.model import Span, SpanKind
from receiver.telemetry.red_metrics import RedMetrics
from receiver.telemetry.resources import ProcessResources
from receiver.telemetry.routes import RouteTemplater
from receiver.telemetry.trace_context import IdGenerator, parse_traceparent


class TelemetryAssembler:
    def __init__(
        self,
        resources: ProcessResources,
        clock: MonotonicToWall,
        red_metrics: RedMetrics | None,
        routes: RouteTemplater | None = None,
        ids: IdGenerator | None = None,
    ) -> None:
        self._resources = resources
        self._clock = clock
        self._metrics = red_metrics
        self._routes = routes or RouteTemplater()
        self._ids = ids or IdGenerator()
        self.unsupported = 0  # transactions of a protocol with no mapping

    def assemble(self, tt: TrackedTransaction) -> Span | None:
        tx = tt.transaction
        if tx.protocol not in ("http", "http1"):
            self.unsupported += 1
            return None
        path, _, _ = split_target(tx.request.target)
        route = self._routes.route(path)
        name, attrs, status, message, metric_attrs, metric_name = http_span_parts(tt, route)
        resource = self._resources.get(tt.pid)
        tp = parse_traceparent(tx.request.header("traceparent"), tx.request.header("tracestate"))
        span_id = self._ids.span_id()
        if tp is not None:
            trace_id, parent, trace_state, flags = tp.trace_id, tp.span_id, tp.trace_state, tp.flags
        else:
            trace_id, parent, trace_state, flags = self._ids.trace_id(), b"", "", 1
        start = self._clock.to_unix_ns(tx.start_ns)
        end = self._clock.to_unix_ns(max(tx.end_ns, tx.start_ns))
        kind = SpanKind.SERVER if tx.role == Role.SERVER else SpanKind.CLIENT
        span = Span(
            trace_id=trace_id,
            span_id=span_id,
            name=name,
            kind=kind,
            start_unix_nano=start,
            end_unix_nano=end,
            resource=resource,
            parent_span_id=parent,
            trace_state=trace_state,
            attributes=attrs,
            status_code=status,
            status_message=message,
            flags=flags,
        )
        if self._metrics is not None:
            self._metrics.record(
                metric_name, resource, metric_attrs, (end - start) / 1e9, end, trace_id, span_id
            )
        return span
