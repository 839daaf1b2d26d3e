"""Splitting serialized OTLP requests: every item in exactly one part, in order, with its resource,
scope and metric descriptor; near-equal parts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from receiver.exporters.errors import PermanentExportError
from receiver.exporters.otlp_split import count_request_items, parse_request, split_request
from receiver.exporters.otlp_wire import OtlpWireEncoder
from receiver.model.signals import Signal, count_items
from tests.unit.exporters.otlp_items import OTHER_RES, RES, batch_ids, make_items, request_ids


def item_context(signal: Signal, data: bytes) -> list[tuple]:
    """(resource attributes, scope name, [metric name, temporality,] item id) per item, in order."""
    request = parse_request(signal, data)
    out = []
    if signal is Signal.METRICS:
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    data_ = getattr(m, kind)
                    for p in data_.data_points:
                        out.append((rm.resource.SerializeToString(), sm.scope.name, m.name, m.unit, kind,
                                    data_.aggregation_temporality, data_.is_monotonic, p.SerializeToString()))
        return out
    resources = request.resource_spans if signal is Signal.TRACES else request.resource_logs
    for r in resources:
        for s in (r.scope_spans if signal is Signal.TRACES else r.scope_logs):
            for item in (s.spans if signal is Signal.TRACES else s.log_records):
                out.append((r.resource.SerializeToString(), r.schema_url, s.scope.name, s.schema_url, item.SerializeToString()))
    return out


@settings(max_examples=150, deadline=None)
@given(
    signal=st.sampled_from(list(Signal)),
    n=st.integers(1, 60),
    parts=st.integers(1, 80),
    two_resources=st.booleans(),
)
def test_parts_hold_every_item_once_in_order_with_its_context(signal, n, parts, two_resources):
    batch = make_items(signal, n, resources=(RES, OTHER_RES) if two_resources else (RES,))
    data = OtlpWireEncoder().serialize(signal, batch)
    pieces = split_request(signal, data, parts)
    assert len(pieces) == min(parts, n)
    assert sum(p.items for p in pieces) == n == count_items(signal, batch)
    assert [p.items for p in pieces] == [len(request_ids(signal, p.data)) for p in pieces]
    assert max(p.items for p in pieces) - min(p.items for p in pieces) <= 1
    # the encoder groups items by resource: the order to keep is the request's
    assert [i for p in pieces for i in request_ids(signal, p.data)] == request_ids(signal, data)
    assert sorted(request_ids(signal, data)) == sorted(batch_ids(signal, batch))
    assert [c for p in pieces for c in item_context(signal, p.data)] == item_context(signal, data)


def test_scope_schema_urls_and_several_scopes_survive():
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add(schema_url="https://opentelemetry.io/schemas/1.26.0")
    rs.resource.attributes.add(key="service.name").value.string_value = "svc"
    for scope in ("a", "b"):
        ss = rs.scope_spans.add(schema_url=f"s-{scope}")
        ss.scope.name = scope
        for i in range(3):
            span = ss.spans.add(name=f"{scope}{i}", span_id=bytes([i + 1]) * 8, trace_id=b"\x01" * 16)
            span.attributes.add(key="item.id").value.string_value = f"{scope}{i}"
    data = request.SerializeToString()
    pieces = split_request(Signal.TRACES, data, 4)
    assert [p.items for p in pieces] == [1, 2, 1, 2]
    second = ExportTraceServiceRequest.FromString(pieces[1].data)
    assert [(ss.scope.name, ss.schema_url, [s.name for s in ss.spans]) for ss in second.resource_spans[0].scope_spans] == [
        ("a", "s-a", ["a1", "a2"])
    ]
    third = ExportTraceServiceRequest.FromString(pieces[2].data)
    assert third.resource_spans[0].schema_url == "https://opentelemetry.io/schemas/1.26.0"
    assert [(ss.scope.name, [s.name for s in ss.spans]) for ss in third.resource_spans[0].scope_spans] == [("b", ["b0"])]


def test_a_metric_straddling_a_cut_keeps_its_descriptor_in_both_parts():
    request = ExportMetricsServiceRequest()
    sm = request.resource_metrics.add().scope_metrics.add()
    hist = sm.metrics.add(name="http.server.request.duration", unit="s", description="d")
    hist.histogram.aggregation_temporality = 2
    for i in range(5):
        hist.histogram.data_points.add(count=i, bucket_counts=[i, 0], explicit_bounds=[1.0])
    empty = sm.metrics.add(name="no.points", unit="1")  # no data at all: goes along, counts 0
    empty.description = "nothing"
    pieces = split_request(Signal.METRICS, request.SerializeToString(), 2)
    assert [p.items for p in pieces] == [2, 3]
    first, second = (ExportMetricsServiceRequest.FromString(p.data) for p in pieces)
    m1, m2 = first.resource_metrics[0].scope_metrics[0].metrics[0], second.resource_metrics[0].scope_metrics[0].metrics[0]
    for m in (m1, m2):
        assert (m.name, m.unit, m.description, m.histogram.aggregation_temporality) == ("http.server.request.duration", "s", "d", 2)
    assert [p.count for p in m1.histogram.data_points] == [0, 1]
    assert [p.count for p in m2.histogram.data_points] == [2, 3, 4]
    assert [m.name for m in second.resource_metrics[0].scope_metrics[0].metrics] == ["http.server.request.duration", "no.points"]
    assert count_request_items(Signal.METRICS, second) == 3


def test_one_part_or_no_items_returns_the_request_unchanged():
    data = OtlpWireEncoder().serialize(Signal.LOGS, make_items(Signal.LOGS, 3))
    assert [(p.items, p.data) for p in split_request(Signal.LOGS, data, 1)] == [(3, data)]
    empty = ExportTraceServiceRequest().SerializeToString()
    assert [(p.items, p.data) for p in split_request(Signal.TRACES, empty, 4)] == [(0, empty)]


def test_bytes_that_are_not_a_request_are_a_permanent_error():
    with pytest.raises(PermanentExportError, match="does not decode"):
        split_request(Signal.TRACES, b"\xff\xff\xff", 2)
