"""Prometheus exporter: OTel→Prometheus translation, the real HTTP endpoint, promtool, OpenMetrics."""

from __future__ import annotations

import gzip
import socket
import subprocess

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from receiver.config import PrometheusExporterConfig, TLSServerConfig
from receiver.exporters.prometheus import (
    PrometheusExporter,
    attribute_labels,
    parse_listen_endpoint,
    prometheus_name,
    translate,
)
from receiver.model.telemetry import Metric, MetricKind, Resource, SumPoint
from receiver.telemetry.red_metrics import RedMetrics
from receiver.component.self_metrics import SelfMetrics


OPENMETRICS = "application/openmetrics-text; version=1.0.0"
API = Resource.from_dict({"service.name": "api", "service.instance.id": "pod-1", "host.name": "node-a", "process.pid": 7})
WORKER = Resource.from_dict({"service.name": "worker", "service.namespace": "shop", "service.instance.id": "pod-2"})
TRACE_ID = bytes(range(16))
SPAN_ID = bytes(range(8, 16))


def metric(name, unit, kind, monotonic=True):
    return Metric(name, "", unit, kind, [], monotonic=monotonic)


@pytest.mark.parametrize(
    ("name", "unit", "kind", "monotonic", "expected"),
    [
        ("http.server.request.duration", "s", MetricKind.HISTOGRAM, True, "http_server_request_duration_seconds"),
        ("http.server.request.body.size", "By", MetricKind.HISTOGRAM, True, "http_server_request_body_size_bytes"),
        ("system.network.io", "By", MetricKind.SUM, True, "system_network_io_bytes"),  # + _total on samples
        ("requests", "1", MetricKind.SUM, True, "requests"),
        ("requests.total", "1", MetricKind.SUM, True, "requests"),
        ("cpu.utilization", "1", MetricKind.GAUGE, True, "cpu_utilization_ratio"),
        ("throughput", "By/s", MetricKind.GAUGE, True, "throughput_bytes_per_second"),
        ("kernel.events", "{event}", MetricKind.SUM, True, "kernel_events"),
        ("latency_seconds", "s", MetricKind.GAUGE, True, "latency_seconds"),
        ("9lives", "ms", MetricKind.GAUGE, True, "_9lives_milliseconds"),
        ("weird..name-x", "", MetricKind.GAUGE, True, "weird_name_x"),
    ],
)
def test_metric_names(name, unit, kind, monotonic, expected):
    assert prometheus_name(metric(name, unit, kind, monotonic))[0] == expected


def test_namespace_prefix():
    assert prometheus_name(metric("rpc.server.duration", "s", MetricKind.HISTOGRAM), "ebpf")[0] == "ebpf_rpc_server_duration_seconds"


def test_label_sanitising_and_collisions():
    assert attribute_labels([("http.request.method", "GET"), ("2xx", True), ("__x", 1), ("tags", ("a", 1))]) == {
        "http_request_method": "GET",
        "key_2xx": "true",
        "key__x": "1",
        "tags": '["a",1]',
    }
    assert attribute_labels([("a.b", "2"), ("a_b", "1")]) == {"a_b": "2;1"}  # sorted by original key


def test_translation_of_a_counter_with_resources():
    families = translate(
        [
            Metric("kernel.events.lost", "Events lost.", "{event}", MetricKind.SUM, [SumPoint((("cpu", 0),), 1, 2, 3)], API),
            Metric("kernel.events.lost", "Events lost.", "{event}", MetricKind.SUM, [SumPoint((("cpu", 0),), 1, 2, 4)], WORKER),
        ]
    )
    counter, target_info = families
    assert (counter.name, counter.type, counter.documentation) == ("kernel_events_lost", "counter", "Events lost.")
    assert [(s.name, s.labels["job"], s.labels.get("instance"), s.value) for s in counter.samples] == [
        ("kernel_events_lost_total", "api", "pod-1", 3),
        ("kernel_events_lost_total", "shop/worker", "pod-2", 4),
    ]
    assert counter.samples[0].labels["otel_scope_name"] == "ebpf-receiver"
    # only API has non-identifying resource attributes
    (info,) = target_info.samples
    assert info.name == "target_info"
    assert info.labels == {"job": "api", "instance": "pod-1", "host_name": "node-a", "process_pid": "7"}


def test_type_conflicts_are_skipped_not_fatal():
    families = translate(
        [
            Metric("x", "", "1", MetricKind.GAUGE, [SumPoint((), 1, 2, 1.0)]),
            Metric("x", "", "1", MetricKind.SUM, [SumPoint((), 1, 2, 1.0)], monotonic=False),  # also a gauge: merged
            Metric("x_ratio", "", "", MetricKind.SUM, [SumPoint((), 1, 2, 1.0)]),  # a counter of that name: skipped
        ]
    )
    assert [(f.name, f.type, len(f.samples)) for f in families] == [("x_ratio", "gauge", 2)]


def test_listen_endpoint_parsing():
    assert parse_listen_endpoint("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_listen_endpoint("[::1]:9464") == ("::1", 9464)
    assert parse_listen_endpoint(":9464") == ("0.0.0.0", 9464)
    with pytest.raises(ValueError):
        parse_listen_endpoint("localhost")


@pytest.fixture
def served():
    exporters = []

    def serve(source, registry=None, **config):
        registry = registry or CollectorRegistry()
        config.setdefault("endpoint", "127.0.0.1:0")
        exporter = PrometheusExporter(PrometheusExporterConfig(**config), source, registry)
        exporter.start()
        exporters.append(exporter)
        return exporter

    yield serve
    for exporter in exporters:
        exporter.shutdown()


def red_source() -> RedMetrics:
    red = RedMetrics()
    attrs = (("http.request.method", "GET"), ("http.response.status_code", 200), ("url.scheme", "http"))
    red.record("http.server.request.duration", API, attrs, 0.02, 1_700_000_000_000_000_000, TRACE_ID, SPAN_ID)
    red.record("http.server.request.duration", API, attrs, 3.0, 1_700_000_000_100_000_000)
    red.record("http.server.request.duration", WORKER, (("http.request.method", "POST"),), 0.3, 1_700_000_000_000_000_000)
    red.record("db.client.operation.duration", API, (("db.system", "postgresql"),), 0.004, 1_700_000_000_000_000_000, TRACE_ID, SPAN_ID)
    return red


def test_endpoint_output_passes_promtool(served):
    registry = CollectorRegistry()
    self_metrics = SelfMetrics(registry)
    self_metrics.exporter_sent_items.labels("otlp", "traces").inc(5)
    self_metrics.exporter_queue_capacity.labels("otlp").set(1000)
    red = red_source()
    extra = [
        Metric("kernel.events.lost", "Kernel events lost.", "{event}", MetricKind.SUM, [SumPoint((("cpu", 1),), 1, 2, 3)], API),
        Metric("connections.open", "Open connections.", "{connection}", MetricKind.SUM, [SumPoint((), 1, 2, 4)], API, monotonic=False),
    ]
    exporter = served(lambda: red.collect() + extra, registry)
    response = requests.get(f"http://127.0.0.1:{exporter.port}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.text
    result = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200"' in text
    assert 'le="0.025"' in text and 'le="+Inf"' in text
    assert "http_server_request_duration_seconds_count{" in text and "http_server_request_duration_seconds_sum{" in text
    assert "db_client_operation_duration_seconds_bucket{" in text
    assert "kernel_events_lost_total{" in text
    assert "# TYPE connections_open gauge" in text
    assert 'target_info{host_name="node-a",instance="pod-1",job="api",process_pid="7"} 1.0' in text
    assert 'ebpf_receiver_exporter_sent_items_total{exporter="otlp",signal="traces"} 5.0' in text
    assert " # {" not in text  # no exemplars in the text format


def test_openmetrics_carries_exemplars(served):
    red = red_source()
    exporter = served(red.collect)
    response = requests.get(f"http://127.0.0.1:{exporter.port}/metrics", headers={"Accept": OPENMETRICS}, timeout=5)
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}  # strict parser
    hist = families["http_server_request_duration_seconds"]
    assert hist.type == "histogram" and hist.unit == "seconds"
    with_exemplars = [s for s in hist.samples if s.exemplar is not None]
    assert len(with_exemplars) == 1
    (sample,) = with_exemplars
    assert sample.labels["le"] == "0.025" and sample.labels["job"] == "api"
    assert sample.exemplar.labels == {"trace_id": TRACE_ID.hex(), "span_id": SPAN_ID.hex()}
    assert sample.exemplar.value == 0.02
    assert float(sample.exemplar.timestamp) == pytest.approx(1_700_000_000.0)
    db = families["db_client_operation_duration_seconds"]
    assert [s.labels["le"] for s in db.samples if s.exemplar] == ["0.005"]
    assert families["target"].type == "info"


def test_openmetrics_can_be_disabled(served):
    exporter = served(red_source().collect, enable_open_metrics=False)
    response = requests.get(f"http://127.0.0.1:{exporter.port}/metrics", headers={"Accept": OPENMETRICS}, timeout=5)
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert " # {" not in response.text


def test_namespace_gzip_and_unknown_paths(served):
    exporter = served(red_source().collect, namespace="ebpf")
    base = f"http://127.0.0.1:{exporter.port}"
    raw = requests.get(base + "/metrics", headers={"Accept-Encoding": "gzip"}, timeout=5, stream=True)
    assert raw.headers["Content-Encoding"] == "gzip"
    body = gzip.decompress(raw.raw.read()).decode()
    assert "ebpf_http_server_request_duration_seconds_bucket{" in body
    assert requests.get(base + "/", timeout=5).status_code == 404


def test_failing_source_still_serves_self_metrics(served):
    registry = CollectorRegistry()
    SelfMetrics(registry).exporter_retries.labels("otlp", "logs").inc()

    def broken():
        raise RuntimeError("boom")

    exporter = served(broken, registry)
    text = requests.get(f"http://127.0.0.1:{exporter.port}/metrics", timeout=5).text
    assert 'ebpf_receiver_exporter_retries_total{exporter="otlp",signal="logs"} 1.0' in text


def test_lifecycle_is_idempotent_and_frees_the_port():
    registry = CollectorRegistry()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = PrometheusExporterConfig(endpoint=f"127.0.0.1:{port}")
    PrometheusExporter(config, list, registry).shutdown()  # never started
    exporter = PrometheusExporter(config, list, registry)
    exporter.start()
    exporter.start()
    assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
    exporter.shutdown()
    exporter.shutdown()
    again = PrometheusExporter(config, list, registry)  # same port, same registry: both free again
    again.start()
    assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
    again.shutdown()


def test_tls_with_client_certificates(served, tls_files):
    tls = TLSServerConfig(cert_file=tls_files.server_cert, key_file=tls_files.server_key, client_ca_file=tls_files.ca_cert)
    exporter = served(red_source().collect, tls=tls)
    url = f"https://localhost:{exporter.port}/metrics"
    ok = requests.get(url, verify=tls_files.ca_cert, cert=(tls_files.client_cert, tls_files.client_key), timeout=5)
    assert ok.status_code == 200 and "http_server_request_duration_seconds_bucket" in ok.text
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(url, verify=tls_files.ca_cert, timeout=5)  # no client certificate
    # the listener survives a failed handshake
    assert requests.get(url, verify=tls_files.ca_cert, cert=(tls_files.client_cert, tls_files.client_key), timeout=5).ok
