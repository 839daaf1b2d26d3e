"""OTLP encoding: encode, serialize, parse back, compare with what went in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

import pytest

from receiver import __version__
from receiver.exporters.errors import PermanentExportError
from receiver.model.signals import Signal
from receiver.exporters.otlp_encoding import (
    encode_logs,
    encode_metrics,
    encode_request,
    encode_traces,
    rejected_items,
)
from receiver.model.telemetry import (
    Exemplar,
    HistogramPoint,
    LogRecord,
    Metric,
    MetricKind,
    Resource,
    SeverityNumber,
    Span,
    SpanKind,
    StatusCode,
    SumPoint,
)

R1 = Resource.from_dict({"service.name": "checkout", "service.instance.id": "pod-1", "process.pid": 42})
R2 = Resource.from_dict({"service.name": "db"})


def from_any(av):
    which = av.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return tuple(from_any(v) for v in av.array_value.values)
    return getattr(av, which)


def attrs(kvs) -> dict:
    return {kv.key: from_any(kv.value) for kv in kvs}


def roundtrip(message):
    parsed = type(message)()
    parsed.ParseFromString(message.SerializeToString())
    return parsed


def make_span(i: int, resource: Resource = R1, **kw) -> Span:
    fields = dict(
        trace_id=bytes([i]) * 16,
        span_id=bytes([i + 1]) * 8,
        name=f"GET /item/{i}",
        kind=SpanKind.SERVER,
        start_unix_nano=1_700_000_000_000_000_000 + i,
        end_unix_nano=1_700_000_000_005_000_000 + i,
        resource=resource,
    )
    fields.update(kw)
    return Span(**fields)


def test_traces_roundtrip_keeps_ids_kinds_times_attributes_status():
    spans = [
        make_span(
            1,
            parent_span_id=b"\x09" * 8,
            trace_state="k=v",
            attributes={
                "http.request.method": "GET",
                "http.response.status_code": 503,
                "error": True,
                "ratio": 0.25,
                "raw": b"\x00\xff",
                "tags": ("a", 1, True),
                "empty": (),
            },
            status_code=StatusCode.ERROR,
            status_message="boom",
            flags=1,
        ),
        make_span(2, kind=SpanKind.CLIENT),
        make_span(3, resource=R2, kind=SpanKind.INTERNAL),
    ]
    req = roundtrip(encode_traces(spans))
    assert isinstance(req, ExportTraceServiceRequest)
    assert len(req.resource_spans) == 2
    rs1, rs2 = req.resource_spans
    assert attrs(rs1.resource.attributes) == {"process.pid": 42, "service.instance.id": "pod-1", "service.name": "checkout"}
    assert attrs(rs2.resource.attributes) == {"service.name": "db"}
    assert [ss.scope.name for ss in rs1.scope_spans] == ["ebpf-receiver"]
    assert rs1.scope_spans[0].scope.version == __version__

    s1, s2 = rs1.scope_spans[0].spans
    assert s1.trace_id == spans[0].trace_id and s1.span_id == spans[0].span_id
    assert s1.parent_span_id == b"\x09" * 8
    assert s1.trace_state == "k=v"
    assert s1.name == "GET /item/1"
    assert s1.kind == SpanKind.SERVER == 2
    assert s1.start_time_unix_nano == spans[0].start_unix_nano
    assert s1.end_time_unix_nano == spans[0].end_unix_nano
    assert s1.status.code == StatusCode.ERROR and s1.status.message == "boom"
    assert s1.flags == 1
    assert attrs(s1.attributes) == spans[0].attributes
    assert s1.attributes[-1].value.HasField("array_value")  # an empty tuple stays an array
    assert s2.kind == SpanKind.CLIENT and not s2.HasField("status") and not s2.attributes
    assert rs2.scope_spans[0].spans[0].kind == SpanKind.INTERNAL


def test_resources_grouped_even_when_interleaved():
    spans = [make_span(1, R1), make_span(2, R2), make_span(3, R1), make_span(4, Resource.from_dict(dict(R2.attributes)))]
    req = encode_traces(spans)
    assert [len(rs.scope_spans[0].spans) for rs in req.resource_spans] == [2, 2]
    assert [s.name for s in req.resource_spans[0].scope_spans[0].spans] == ["GET /item/1", "GET /item/3"]


def test_empty_batches_encode_to_empty_requests():
    assert encode_traces([]).resource_spans == []
    assert encode_metrics([]).resource_metrics == []
    assert encode_logs([]).resource_logs == []


def test_out_of_range_int_becomes_string_and_odd_types_survive():
    span = make_span(1, attributes={"big": 2**70, "enum": SpanKind.CLIENT, "none": None, "obj": object.__name__})
    got = attrs(roundtrip(encode_traces([span])).resource_spans[0].scope_spans[0].spans[0].attributes)
    assert got == {"big": str(2**70), "enum": 3, "none": None, "obj": "object"}


def test_logs_roundtrip():
    record = LogRecord(
        time_unix_nano=1_700_000_000_000_000_123,
        observed_time_unix_nano=1_700_000_000_000_000_456,
        body="connection reset",
        resource=R1,
        severity_number=SeverityNumber.WARN,
        severity_text="WARN",
        attributes={"fd": 7},
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
    )
    req = roundtrip(encode_logs([record]))
    assert isinstance(req, ExportLogsServiceRequest)
    lr = req.resource_logs[0].scope_logs[0].log_records[0]
    assert req.resource_logs[0].scope_logs[0].scope.name == "ebpf-receiver"
    assert (lr.time_unix_nano, lr.observed_time_unix_nano) == (record.time_unix_nano, record.observed_time_unix_nano)
    assert lr.severity_number == SeverityNumber.WARN and lr.severity_text == "WARN"
    assert lr.body.string_value == "connection reset"
    assert attrs(lr.attributes) == {"fd": 7}
    assert lr.trace_id == record.trace_id and lr.span_id == record.span_id


def test_metrics_roundtrip_histogram_sum_gauge():
    bounds = (0.005, 0.01, 0.1)
    hist = Metric(
        name="http.server.request.duration",
        description="Duration of HTTP server requests.",
        unit="s",
        kind=MetricKind.HISTOGRAM,
        points=[
            HistogramPoint(
                attributes=(("http.request.method", "GET"), ("http.response.status_code", 200)),
                start_time_unix_nano=10,
                time_unix_nano=20,
                count=3,
                sum=0.117,
                bucket_counts=[1, 1, 0, 1],
                explicit_bounds=bounds,
                min=0.002,
                max=0.1,
                exemplars=[Exemplar(0.1, 15, b"\x07" * 16, b"\x08" * 8)],
            ),
            HistogramPoint((), 10, 20, 0, 0.0, [0, 0, 0, 0], bounds, float("inf"), float("-inf")),
        ],
        resource=R1,
    )
    counter = Metric("requests", "", "1", MetricKind.SUM, [SumPoint((("a", "b"),), 1, 2, 5)], R2)
    updown = Metric("inflight", "", "1", MetricKind.SUM, [SumPoint((), 1, 2, 2.5)], R2, monotonic=False)
    gauge = Metric("load", "", "1", MetricKind.GAUGE, [SumPoint((), 1, 2, 0.5)], R2)
    req = roundtrip(encode_metrics([hist, counter, updown, gauge]))
    assert isinstance(req, ExportMetricsServiceRequest)
    assert len(req.resource_metrics) == 2
    h = req.resource_metrics[0].scope_metrics[0].metrics[0]
    assert (h.name, h.description, h.unit) == (hist.name, hist.description, "s")
    assert h.histogram.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    p, empty = h.histogram.data_points
    assert attrs(p.attributes) == {"http.request.method": "GET", "http.response.status_code": 200}
    assert (p.start_time_unix_nano, p.time_unix_nano, p.count, p.sum) == (10, 20, 3, 0.117)
    assert list(p.bucket_counts) == [1, 1, 0, 1] and tuple(p.explicit_bounds) == bounds
    assert (p.min, p.max) == (0.002, 0.1)
    (e,) = p.exemplars
    assert (e.as_double, e.time_unix_nano, e.trace_id, e.span_id) == (0.1, 15, b"\x07" * 16, b"\x08" * 8)
    assert not empty.HasField("min") and not empty.HasField("max")

    c, u, g = req.resource_metrics[1].scope_metrics[0].metrics
    assert c.sum.is_monotonic and c.sum.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    assert c.sum.data_points[0].as_int == 5 and attrs(c.sum.data_points[0].attributes) == {"a": "b"}
    assert not u.sum.is_monotonic and u.sum.data_points[0].as_double == 2.5
    assert g.gauge.data_points[0].as_double == 0.5


def test_encode_request_turns_encoding_failures_into_permanent_errors():
    bad = make_span(1, trace_id="not bytes")
    with pytest.raises(PermanentExportError):
        encode_request(Signal.TRACES, [bad])


def test_rejected_items_reads_partial_success():
    assert rejected_items(Signal.TRACES, ExportTraceServiceResponse()) == (0, "")
    resp = ExportTraceServiceResponse()
    resp.partial_success.rejected_spans = 3
    resp.partial_success.error_message = "too old"
    assert rejected_items(Signal.TRACES, resp) == (3, "too old")
    logs = ExportLogsServiceResponse()
    logs.partial_success.rejected_log_records = 1
    assert rejected_items(Signal.LOGS, logs) == (1, "")


scalar = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.binary(max_size=20),
)
value = st.recursive(scalar, lambda inner: st.tuples(inner, inner) | st.tuples(inner), max_leaves=6)


@given(st.dictionaries(st.text(min_size=1, max_size=10), value, max_size=8))
def test_any_attribute_value_roundtrips(attributes):
    span = make_span(1, attributes=attributes)
    got = attrs(roundtrip(encode_traces([span])).resource_spans[0].scope_spans[0].spans[0].attributes)
    assert got == attributes
