"""Pure OTLP encoding: neutral telemetry objects in, OTLP protobuf export request messages out.

No I/O.  This is the reference encoding.  The transports send the bytes of
:class:`~receiver.exporters.otlp_wire.OtlpWireEncoder` instead: the same bytes as these messages
serialized, written without building messages (it hands unusual items to :func:`add_span` /
:func:`add_log_record`, and metrics to :func:`encode_metrics`).  The messages serve OTLP/JSON.

Items are grouped by :class:`Resource` (one ``Resource*`` message per distinct resource, in order
of first appearance), all under the one instrumentation scope ``ebpf-receiver`` with the package
version.  Attribute values map to ``AnyValue`` by Python type (``tuple``/``list`` →
``array_value``; an int outside int64 becomes its decimal string; ``None`` an empty value).
Metrics are cumulative.

Also here: reading the partial success of an export response (:func:`rejected_items`).

It builds protobuf children in place (``repeated.add()`` and field assignment) instead of
constructing intermediate messages.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from receiver import __version__
from receiver.exporters.errors import PermanentExportError
from receiver.model.signals import Signal
from receiver.model.telemetry import LogRecord, Metric, MetricKind, Resource, Span

SCOPE_NAME = "ebpf-receiver"
SCOPE_VERSION = __version__

_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


def set_any_value(av, value) -> None:
    """Store a Python attribute value into an ``AnyValue`` message."""
    t = type(value)
    if t is str:
        av.string_value = value
    elif t is bool:
        av.bool_value = value
    elif t is int:
        try:
            av.int_value = value
        except ValueError:  # outside int64
            av.string_value = str(value)
    elif t is float:
        av.double_value = value
    elif t is bytes:
        av.bytes_value = value
    elif isinstance(value, (tuple, list)):
        arr = av.array_value
        arr.SetInParent()  # an empty array is still an array
        add = arr.values.add
        for item in value:
            set_any_value(add(), item)
    elif isinstance(value, bool):
        av.bool_value = bool(value)
    elif isinstance(value, int):  # IntEnum and friends
        set_any_value(av, int(value))
    elif isinstance(value, float):
        av.double_value = float(value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        av.bytes_value = bytes(value)
    elif value is None:
        return
    else:
        av.string_value = str(value)


def set_attributes(repeated, items: Iterable[tuple[str, object]]) -> None:
    """Append ``KeyValue`` messages for ``(key, value)`` pairs to a repeated field."""
    add = repeated.add
    for key, value in items:
        if type(value) is str:  # by far the most common: skip the dispatch
            add(key=key).value.string_value = value
        else:
            set_any_value(add(key=key).value, value)


def _set_scope(scope) -> None:
    scope.name = SCOPE_NAME
    scope.version = SCOPE_VERSION


def add_span(repeated, span: Span) -> None:
    """Append one ``Span`` message for ``span`` to a repeated field (``ScopeSpans.spans``)."""
    out = repeated.add(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        trace_state=span.trace_state,
        name=span.name,
        kind=span.kind,
        start_time_unix_nano=span.start_unix_nano,
        end_time_unix_nano=span.end_unix_nano,
        flags=span.flags,
    )
    if span.attributes:
        set_attributes(out.attributes, span.attributes.items())
    if span.status_code or span.status_message:
        status = out.status
        status.code = span.status_code
        status.message = span.status_message


def encode_traces(spans: Iterable[Span]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    add_resource = request.resource_spans.add
    by_resource: dict[Resource, object] = {}
    last_resource = None
    span_list = None
    for span in spans:
        resource = span.resource
        if resource is not last_resource:
            scope_spans = by_resource.get(resource)
            if scope_spans is None:
                resource_spans = add_resource()
                set_attributes(resource_spans.resource.attributes, resource.attributes)
                scope_spans = resource_spans.scope_spans.add()
                _set_scope(scope_spans.scope)
                by_resource[resource] = scope_spans
            span_list = scope_spans.spans
            last_resource = resource
        add_span(span_list, span)
    return request


def add_log_record(repeated, record: LogRecord) -> None:
    """Append one ``LogRecord`` message for ``record`` to a repeated field (``ScopeLogs.log_records``)."""
    out = repeated.add(
        time_unix_nano=record.time_unix_nano,
        observed_time_unix_nano=record.observed_time_unix_nano,
        severity_number=record.severity_number,
        severity_text=record.severity_text,
        trace_id=record.trace_id,
        span_id=record.span_id,
    )
    out.body.string_value = record.body
    if record.attributes:
        set_attributes(out.attributes, record.attributes.items())


def encode_logs(records: Iterable[LogRecord]) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    add_resource = request.resource_logs.add
    by_resource: dict[Resource, object] = {}
    last_resource = None
    record_list = None
    for record in records:
        resource = record.resource
        if resource is not last_resource:
            scope_logs = by_resource.get(resource)
            if scope_logs is None:
                resource_logs = add_resource()
                set_attributes(resource_logs.resource.attributes, resource.attributes)
                scope_logs = resource_logs.scope_logs.add()
                _set_scope(scope_logs.scope)
                by_resource[resource] = scope_logs
            record_list = scope_logs.log_records
            last_resource = resource
        add_log_record(record_list, record)
    return request


def encode_metrics(metrics: Iterable[Metric]) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    add_resource = request.resource_metrics.add
    by_resource: dict[Resource, object] = {}
    for metric in metrics:
        scope_metrics = by_resource.get(metric.resource)
        if scope_metrics is None:
            resource_metrics = add_resource()
            set_attributes(resource_metrics.resource.attributes, metric.resource.attributes)
            scope_metrics = resource_metrics.scope_metrics.add()
            _set_scope(scope_metrics.scope)
            by_resource[metric.resource] = scope_metrics
        out = scope_metrics.metrics.add(name=metric.name, description=metric.description, unit=metric.unit)
        kind = metric.kind
        if kind is MetricKind.HISTOGRAM:
            _encode_histogram(out.histogram, metric.points)
        elif kind is MetricKind.SUM:
            data = out.sum
            data.aggregation_temporality = _CUMULATIVE
            data.is_monotonic = metric.monotonic
            _encode_number_points(data.data_points, metric.points)
        else:
            _encode_number_points(out.gauge.data_points, metric.points)
    return request


def _encode_histogram(data, points) -> None:
    data.aggregation_temporality = _CUMULATIVE
    add_point = data.data_points.add
    for p in points:
        out = add_point(
            start_time_unix_nano=p.start_time_unix_nano,
            time_unix_nano=p.time_unix_nano,
            count=p.count,
            sum=p.sum,
            bucket_counts=p.bucket_counts,
            explicit_bounds=p.explicit_bounds,
        )
        if p.count and math.isfinite(p.min) and math.isfinite(p.max):
            out.min = p.min
            out.max = p.max
        if p.attributes:
            set_attributes(out.attributes, p.attributes)
        if p.exemplars:
            add_exemplar = out.exemplars.add
            for e in p.exemplars:
                add_exemplar(time_unix_nano=e.time_unix_nano, as_double=e.value, trace_id=e.trace_id, span_id=e.span_id)


def _encode_number_points(repeated, points) -> None:
    add_point = repeated.add
    for p in points:
        value = p.value
        if type(value) is int:
            out = add_point(start_time_unix_nano=p.start_time_unix_nano, time_unix_nano=p.time_unix_nano, as_int=value)
        else:
            out = add_point(start_time_unix_nano=p.start_time_unix_nano, time_unix_nano=p.time_unix_nano, as_double=value)
        if p.attributes:
            set_attributes(out.attributes, p.attributes)


def encode_request(signal: Signal, batch: list):
    """The export request for one batch; :class:`PermanentExportError` if it cannot be encoded."""
    try:
        return _ENCODERS[signal](batch)
    except (ValueError, TypeError) as e:
        raise PermanentExportError(f"cannot encode {signal.value}: {e}") from e


def serialize_request(signal: Signal, batch: list) -> bytes:
    """The serialized export request for one batch, via messages (the exporters use
    :meth:`~receiver.exporters.otlp_wire.OtlpWireEncoder.serialize`, same bytes, faster)."""
    return encode_request(signal, batch).SerializeToString()


def rejected_items(signal: Signal, response) -> tuple[int, str]:
    """The partial-success part of an export response: (rejected count, error message)."""
    if not response.HasField("partial_success"):
        return 0, ""
    ps = response.partial_success
    if signal is Signal.TRACES:
        return ps.rejected_spans, ps.error_message
    if signal is Signal.METRICS:
        return ps.rejected_data_points, ps.error_message
    return ps.rejected_log_records, ps.error_message


_ENCODERS: dict[Signal, Callable] = {
    Signal.TRACES: encode_traces,
    Signal.METRICS: encode_metrics,
    Signal.LOGS: encode_logs,
}
