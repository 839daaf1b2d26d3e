"""End to end: our OTLP exporters against a real collector (rotel), read back from its debug log."""

from __future__ import annotations

import hashlib
import time

import pytest
from prometheus_client import CollectorRegistry

from receiver.config import OtlpExporterConfig, OtlpHttpExporterConfig, RetryConfig, TLSClientConfig
from receiver.exporters.otlp_grpc import OtlpGrpcExporter
from receiver.exporters.otlp_http import OtlpHttpExporter
from receiver.model.telemetry import LogRecord, Resource, SeverityNumber, Span, SpanKind, StatusCode
from receiver.telemetry.red_metrics import RedMetrics
from receiver.component.self_metrics import SelfMetrics
from tests.support.ports import wait_until
from tests.support.rotel import RotelCollector

pytestmark = pytest.mark.e2e

RESOURCE = Resource.from_dict({"service.name": "e2e-checkout", "service.instance.id": "pod-7"})
RETRY = RetryConfig(initial_interval=0.1, max_interval=0.5, max_elapsed_time=10)


@pytest.fixture(scope="module")
def rotel_collector(tmp_path_factory):
    with RotelCollector(tmp_path_factory.mktemp("rotel")) as collector:
        yield collector


def wait_for_text(collector: RotelCollector, *needles: str) -> str:
    def found():
        text = collector.text()
        return text if all(n in text for n in needles) else None

    try:
        return wait_until(found, timeout=10, interval=0.05, what=f"rotel to print {needles}")
    except TimeoutError:
        missing = [n for n in needles if n not in collector.text()]
        raise AssertionError(f"rotel never printed {missing}; output:\n{collector.text()[-3000:]}") from None


def received_span(collector: RotelCollector, trace_id: bytes):
    def find():
        return next((s for s in collector.spans() if s.trace_id == trace_id.hex()), None)

    return wait_until(find, timeout=10, interval=0.05, what=f"span {trace_id.hex()} at rotel")


def make_span(tag: str) -> Span:
    digest = hashlib.sha256(tag.encode()).digest()
    return Span(
        trace_id=digest[:16],
        span_id=digest[16:24],
        name=f"GET /e2e/{tag}",
        kind=SpanKind.SERVER,
        start_unix_nano=time.time_ns() - 5_000_000,
        end_unix_nano=time.time_ns(),
        resource=RESOURCE,
        parent_span_id=b"\x01" * 8,
        attributes={"http.request.method": "GET", "http.response.status_code": 200, "e2e.case": tag},
        status_code=StatusCode.OK,
    )


def sent(registry, exporter_id: str, signal: str) -> float:
    return registry.get_sample_value(
        "ebpf_receiver_exporter_sent_items_total", {"exporter": exporter_id, "signal": signal}
    ) or 0.0


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_grpc_spans_reach_rotel(rotel_collector, compression):
    span = make_span(f"grpc-{compression}")
    metrics = SelfMetrics(CollectorRegistry())
    config = OtlpExporterConfig(
        endpoint=rotel_collector.grpc_endpoint,
        tls=TLSClientConfig(insecure=True),
        compression=compression,
        retry_on_failure=RETRY,
    )
    exporter = OtlpGrpcExporter("otlp", config, metrics)
    exporter.start()
    exporter.consume_traces([span])
    exporter.shutdown(10)
    assert sent(metrics.registry, "otlp", "traces") == 1
    got = received_span(rotel_collector, span.trace_id)
    assert (got.span_id, got.parent_id) == (span.span_id.hex(), span.parent_span_id.hex())
    assert got.name == f"GET /e2e/grpc-{compression}"
    assert got.kind == "SPAN_KIND_SERVER" and got.status_code == "STATUS_CODE_OK"
    assert got.attributes == {"http.request.method": "GET", "http.response.status_code": 200, "e2e.case": f"grpc-{compression}"}
    assert got.resource == {"service.name": "e2e-checkout", "service.instance.id": "pod-7"}
    assert "InstrumentationScope ebpf-receiver" in rotel_collector.text()


@pytest.mark.parametrize("encoding", ["proto", "json"])
def test_http_spans_reach_rotel(rotel_collector, encoding):
    span = make_span(f"http-{encoding}")
    metrics = SelfMetrics(CollectorRegistry())
    config = OtlpHttpExporterConfig(endpoint=rotel_collector.http_endpoint, encoding=encoding, retry_on_failure=RETRY)
    exporter = OtlpHttpExporter("otlphttp", config, metrics)
    exporter.start()
    exporter.consume_traces([span])
    exporter.shutdown(10)
    assert sent(metrics.registry, "otlphttp", "traces") == 1
    got = received_span(rotel_collector, span.trace_id)
    assert got.span_id == span.span_id.hex() and got.name == f"GET /e2e/http-{encoding}"
    assert got.attributes["e2e.case"] == f"http-{encoding}"
    assert got.attributes["http.response.status_code"] == 200


def test_red_metrics_and_logs_reach_rotel(rotel_collector):
    span = make_span("red")
    red = RedMetrics()
    red.record(
        "http.server.request.duration", RESOURCE, (("http.route", "/e2e/red"),), 0.042, span.end_unix_nano,
        span.trace_id, span.span_id,
    )
    record = LogRecord(time.time_ns(), "e2e log line", RESOURCE, SeverityNumber.WARN, "WARN", {"e2e.case": "log"})
    metrics = SelfMetrics(CollectorRegistry())
    config = OtlpExporterConfig(endpoint=rotel_collector.grpc_endpoint, tls=TLSClientConfig(insecure=True), retry_on_failure=RETRY)
    exporter = OtlpGrpcExporter("otlp", config, metrics)
    exporter.start()
    exporter.consume_metrics(red.collect())
    exporter.consume_logs([record])
    exporter.shutdown(10)
    assert sent(metrics.registry, "otlp", "metrics") == 1
    assert sent(metrics.registry, "otlp", "logs") == 1
    wait_for_text(
        rotel_collector,
        "-> Name: http.server.request.duration",
        "http.route: Str(/e2e/red)",
        "AGGREGATION_TEMPORALITY_CUMULATIVE",
        "Buckets #3, Count: 1",  # 0.042 s is in (0.025, 0.05]
        f"-> Trace ID: {span.trace_id.hex()}",  # the exemplar
        "e2e log line",
        "e2e.case: Str(log)",
    )


def test_grpc_retries_until_the_collector_comes_up(tmp_path):
    collector = RotelCollector(tmp_path)  # ports chosen, not started yet
    metrics = SelfMetrics(CollectorRegistry())
    config = OtlpExporterConfig(
        endpoint=collector.grpc_endpoint,
        tls=TLSClientConfig(insecure=True),
        timeout=1.0,
        retry_on_failure=RetryConfig(initial_interval=0.1, max_interval=0.2, max_elapsed_time=15),
    )
    exporter = OtlpGrpcExporter("otlp", config, metrics)
    exporter.start()
    span = make_span("late-collector")
    try:
        exporter.consume_traces([span])
        wait_until(
            lambda: metrics.registry.get_sample_value("ebpf_receiver_exporter_retries_total", {"exporter": "otlp", "signal": "traces"}),
            timeout=5, interval=0.02, what="a retry",
        )
        with collector:
            received_span(collector, span.trace_id)
    finally:
        exporter.shutdown(5)
    assert sent(metrics.registry, "otlp", "traces") == 1
