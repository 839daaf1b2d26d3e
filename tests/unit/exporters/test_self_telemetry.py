"""The agent's own metrics pushed over OTLP: prometheus_client samples → our Metric model."""

from __future__ import annotations

import textwrap

from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from receiver.config import load_config_text
from receiver.exporters.otlp_encoding import encode_metrics
from receiver.pipeline import Agent
from receiver.model.telemetry import MetricKind, Resource
from receiver.component.self_metrics import AGENT_SERVICE_NAME, SelfMetrics, agent_resource, families_to_metrics

RES = Resource.from_dict({"service.name": "ebpf-receiver"})


class FakeCaptureCollector:
    def collect(self):
        lost = CounterMetricFamily("ebpf_receiver_kernel_events_lost", "Lost records.", labels=["reason"])
        lost.add_metric(["ringbuf_full"], 4)
        yield lost
        conns = GaugeMetricFamily("ebpf_receiver_connections_tracked", "Connections.")
        conns.add_metric([], 12)
        yield conns
        hist = HistogramMetricFamily("ebpf_receiver_something_seconds", "Skipped.", buckets=[("1.0", 1), ("+Inf", 1)], sum_value=1)
        yield hist


def test_counters_become_cumulative_sums_and_gauges_gauges():
    metrics = SelfMetrics(CollectorRegistry())
    metrics.exporter_sent_items.labels("otlp", "traces").inc(5)
    metrics.exporter_dropped_items.labels("otlp", "logs", "queue_full").inc(2)
    metrics.exporter_queue_capacity.labels("otlp").set(1000)
    metrics.add_collector(FakeCaptureCollector())
    by_name = {m.name: m for m in metrics.snapshot(RES, time_unix_nano=2_000)}

    sent = by_name["ebpf_receiver_exporter_sent_items"]
    assert (sent.kind, sent.monotonic, sent.resource) == (MetricKind.SUM, True, RES)
    (point,) = sent.points
    assert point.attributes == (("exporter", "otlp"), ("signal", "traces"))
    assert (point.value, point.start_time_unix_nano, point.time_unix_nano) == (5.0, metrics.start_time_unix_nano, 2_000)
    dropped = by_name["ebpf_receiver_exporter_dropped_items"].points[0]
    assert dropped.attributes == (("exporter", "otlp"), ("reason", "queue_full"), ("signal", "logs"))
    capacity = by_name["ebpf_receiver_exporter_queue_capacity"]
    assert capacity.kind is MetricKind.GAUGE and capacity.points[0].value == 1000
    assert by_name["ebpf_receiver_kernel_events_lost"].points[0].value == 4
    assert by_name["ebpf_receiver_kernel_events_lost"].description == "Lost records."
    assert by_name["ebpf_receiver_connections_tracked"].points[0].value == 12
    assert "ebpf_receiver_something_seconds" not in by_name  # histograms are not self metrics
    assert "ebpf_receiver_exporter_retries" not in by_name  # no series yet, nothing to send

    request = encode_metrics(list(by_name.values()))
    out = {m.name: m for m in request.resource_metrics[0].scope_metrics[0].metrics}
    assert out["ebpf_receiver_exporter_sent_items"].sum.is_monotonic
    assert out["ebpf_receiver_exporter_sent_items"].sum.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    assert out["ebpf_receiver_exporter_queue_capacity"].gauge.data_points[0].as_double == 1000


def test_the_collector_is_served_on_the_registry_too():
    registry = CollectorRegistry()
    metrics = SelfMetrics(registry)
    metrics.add_collector(FakeCaptureCollector())
    assert registry.get_sample_value("ebpf_receiver_kernel_events_lost_total", {"reason": "ringbuf_full"}) == 4


def test_families_to_metrics_ignores_created_samples():
    registry = CollectorRegistry()
    metrics = SelfMetrics(registry)
    metrics.exporter_retries.labels("otlp", "traces").inc()
    names = {s.name for f in metrics.exporter_retries.collect() for s in f.samples}
    assert "ebpf_receiver_exporter_retries_created" in names
    (metric,) = families_to_metrics(metrics.exporter_retries.collect(), RES, 1, 2)
    assert [p.value for p in metric.points] == [1.0]


def test_agent_resource():
    resource = agent_resource("abc")
    assert resource.get("service.name") == AGENT_SERVICE_NAME
    assert resource.get("service.instance.id") == "abc"
    assert resource.get("process.pid") and resource.get("host.name") and resource.get("service.version")
    assert agent_resource().get("service.instance.id") != agent_resource().get("service.instance.id")


def agent(level: str, metrics_exporters: str = "[otlp]") -> Agent:
    config = load_config_text(
        textwrap.dedent(
            f"""\
            receivers: {{ebpf: }}
            exporters:
              otlp: {{endpoint: 127.0.0.1:1, tls: {{insecure: true}}}}
              prometheus: {{endpoint: 127.0.0.1:1}}
            service:
              pipelines:
                metrics: {{receivers: [ebpf], exporters: {metrics_exporters}}}
              telemetry: {{metrics: {{level: {level}}}}}
            """
        ),
        environ={},
    )
    return Agent(config)


def test_the_agent_pushes_its_own_metrics_unless_the_level_is_none():
    a = agent("basic")
    (reader,) = a.readers
    names = {m.name for m in reader._source()}
    # the capture layer's counters come from its collector even before capture starts
    assert {"ebpf_receiver_kernel_events_received", "ebpf_receiver_exporter_queue_capacity"} <= names
    assert all(m.resource.get("service.name") == "ebpf-receiver" for m in reader._source() if m.name.startswith("ebpf_receiver_"))
    a.shutdown(0.1)

    quiet = agent("none")
    (reader,) = quiet.readers
    assert not [m for m in reader._source() if m.name.startswith("ebpf_receiver_")]
    quiet.shutdown(0.1)


def test_no_reader_without_push_exporters():
    a = agent("detailed", "[prometheus]")
    assert a.readers == []
    a.shutdown(0.1)
