"""SelfMetrics lives on the registry it is given, never on the global one."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from receiver.component.self_metrics import SelfMetrics


def test_metrics_go_to_the_given_registry_only():
    registry = CollectorRegistry()
    metrics = SelfMetrics(registry)
    metrics.exporter_sent_items.labels("otlp", "traces").inc(3)
    metrics.exporter_dropped_items.labels("otlp", "logs", "queue_full").inc()
    assert registry.get_sample_value("ebpf_receiver_exporter_sent_items_total", {"exporter": "otlp", "signal": "traces"}) == 3
    text = generate_latest(registry).decode()
    assert 'ebpf_receiver_exporter_dropped_items_total{exporter="otlp",reason="queue_full",signal="logs"} 1.0' in text
    assert b"ebpf_receiver_exporter" not in generate_latest(REGISTRY)


def test_two_instances_do_not_clash():
    a, b = SelfMetrics(), SelfMetrics()
    a.exporter_retries.labels("x", "traces").inc()
    assert b.registry.get_sample_value("ebpf_receiver_exporter_retries_total", {"exporter": "x", "signal": "traces"}) is None
