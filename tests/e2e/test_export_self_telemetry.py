"""The agent's own metrics (``ebpf_receiver_*``) pushed over OTLP to a real collector (rotel):
the real agent, a metrics pipeline with the otlp exporter, the last push at shutdown."""

from __future__ import annotations

import re
import signal

import pytest
import requests

from tests.support.agent import AgentProcess
from tests.support.web import web_server
from tests.support.ports import free_port, wait_until
from tests.support.rotel import RotelCollector

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]


def config(endpoint: str, rotel_port: int, prom_port: int) -> str:
    return f"""
receivers:
  ebpf:
    poll_interval: 20ms
    exclude_ports: [{rotel_port}]
processors:
  batch:
    timeout: 100ms
exporters:
  otlp:
    endpoint: {endpoint}
    tls: {{insecure: true}}
  prometheus:
    endpoint: 127.0.0.1:{prom_port}
service:
  pipelines:
    traces: {{receivers: [ebpf], processors: [batch], exporters: [otlp]}}
    metrics: {{receivers: [ebpf], processors: [batch], exporters: [otlp]}}
    metrics/prometheus: {{receivers: [ebpf], exporters: [prometheus]}}
  telemetry:
    metrics: {{level: normal}}
"""


def metric_block(text: str, name: str) -> str:
    """rotel's debug output for the metric ``name`` (up to the next metric)."""
    match = re.search(rf"-> Name: {re.escape(name)}\n(.*?)(?=\nMetric #|\nResourceMetrics #|\Z)", text, re.S)
    return match.group(1) if match else ""


def test_self_metrics_arrive_at_the_collector(tmp_path):
    prom_port = free_port()
    with web_server() as web, RotelCollector(tmp_path, signals=("metrics",)) as collector:
        agent = AgentProcess(tmp_path, config(collector.grpc_endpoint, collector.grpc_port, prom_port)).start()
        try:
            for i in range(3):  # traffic: spans for the otlp exporter to send
                requests.get(f"http://127.0.0.1:{web}/self-{i}", timeout=5)
            scrape = lambda: requests.get(f"http://127.0.0.1:{prom_port}/metrics", timeout=5).text  # noqa: E731
            wait_until(
                lambda: re.search(r'ebpf_receiver_exporter_sent_items_total\{exporter="otlp",signal="traces"\} [1-9]', scrape()),
                timeout=20, what="spans sent",
            )
            agent.proc.send_signal(signal.SIGTERM)  # the reader pushes once more at shutdown
            assert agent.proc.wait(30) == 0
        finally:
            agent.stop()

        wait_until(lambda: "ebpf_receiver_exporter_sent_items" in collector.text(), timeout=10, what="self metrics at rotel")
        text = collector.text()
    for name in (
        "ebpf_receiver_kernel_events_received",
        "ebpf_receiver_kernel_events_lost",
        "ebpf_receiver_exporter_sent_items",
        "ebpf_receiver_exporter_queue_size",
        "ebpf_receiver_exporter_queue_capacity",
        "ebpf_receiver_processor_batch_sends",
    ):
        assert metric_block(text, name), f"{name} did not arrive"
    sent = metric_block(text, "ebpf_receiver_exporter_sent_items")
    assert "IsMonotonic: true" in sent and "AGGREGATION_TEMPORALITY_CUMULATIVE" in sent
    assert "exporter: Str(otlp)" in sent and "signal: Str(traces)" in sent
    capacity = metric_block(text, "ebpf_receiver_exporter_queue_capacity")
    assert "Gauge" in capacity and str(16 * 1024 * 1024) in capacity  # the default: 16 MiB, sizer bytes
    assert "service.name: Str(ebpf-receiver)" in text
