"""Debug exporter: what each verbosity prints."""

from __future__ import annotations

import io

import pytest
from prometheus_client import CollectorRegistry

from receiver.config import DebugExporterConfig
from receiver.exporters.debug import DebugExporter
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
)
from receiver.component.self_metrics import SelfMetrics


RES = Resource.from_dict({"service.name": "api"})
SPAN = Span(
    bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736"),
    bytes.fromhex("00f067aa0ba902b7"),
    "GET /users",
    SpanKind.SERVER,
    1_000_000_000,
    1_012_345_000,
    RES,
    attributes={"http.request.method": "GET", "http.response.status_code": 500},
    status_code=StatusCode.ERROR,
)
HIST = Metric(
    "http.server.request.duration",
    "",
    "s",
    MetricKind.HISTOGRAM,
    [HistogramPoint((("http.request.method", "GET"),), 1, 2, 2, 0.5, [1, 1], (0.1,), 0.1, 0.4, [Exemplar(0.4, 2, SPAN.trace_id, SPAN.span_id)])],
    RES,
)
LOG = LogRecord(5, "hello", RES, SeverityNumber.INFO, "INFO", {"fd": 1}, SPAN.trace_id, SPAN.span_id)


def export(verbosity: str, **batches) -> str:
    out = io.StringIO()
    exporter = DebugExporter("debug", DebugExporterConfig(verbosity=verbosity), stream=out)
    exporter.start()
    for signal, batch in batches.items():
        getattr(exporter, f"consume_{signal}")(batch)
    exporter.shutdown()
    return out.getvalue()


def test_basic_is_one_line_per_batch():
    text = export("basic", traces=[SPAN, SPAN], metrics=[HIST], logs=[LOG])
    assert text == "TracesExporter #spans: 2\nMetricsExporter #metrics: 1 #data points: 1\nLogsExporter #logs: 1\n"


def test_normal_is_one_line_per_item():
    text = export("normal", traces=[SPAN], metrics=[HIST], logs=[LOG])
    lines = text.splitlines()
    assert lines[0] == "TracesExporter #spans: 1"
    assert lines[1] == (
        "GET /users SERVER 4bf92f3577b34da6a3ce929d0e0e4736 00f067aa0ba902b7 parent=- 12.345ms ERROR "
        "http.request.method=GET http.response.status_code=500"
    )
    assert lines[3] == "http.server.request.duration{http.request.method=GET} count=2 sum=0.5 s"
    assert lines[5].startswith("5 INFO 'hello' trace_id=4bf92f3577b34da6a3ce929d0e0e4736")


def test_detailed_prints_everything():
    text = export("detailed", traces=[SPAN], metrics=[HIST], logs=[LOG])
    for expected in (
        "     -> service.name: Str(api)",
        "    Trace ID       : 4bf92f3577b34da6a3ce929d0e0e4736",
        "    Kind           : SERVER",
        "     -> http.response.status_code: Int(500)",
        "Buckets #1, Count: 1",
        "     -> Span ID: 00f067aa0ba902b7",
        "SeverityNumber: INFO(9)",
        "Body: Str(hello)",
    ):
        assert expected in text


def test_counts_sent_items_and_refuses_unknown_verbosity():
    metrics = SelfMetrics(CollectorRegistry())
    exporter = DebugExporter("debug", DebugExporterConfig(), metrics, io.StringIO())
    exporter.consume_traces([SPAN, SPAN])
    exporter.consume_logs([])
    assert metrics.registry.get_sample_value("ebpf_receiver_exporter_sent_items_total", {"exporter": "debug", "signal": "traces"}) == 2
    with pytest.raises(ValueError):
        DebugExporter("debug", DebugExporterConfig(verbosity="loud"))
