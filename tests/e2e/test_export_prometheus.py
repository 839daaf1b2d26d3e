"""The Prometheus exporter scraped by a real Prometheus server (Debian's ``/usr/bin/prometheus``):
the counts a PromQL query returns are the observations the test made, the agent's self metrics
are there too, and the exemplars (OpenMetrics) land in Prometheus' exemplar storage.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from receiver.config import PrometheusExporterConfig
from receiver.exporters.prometheus import PrometheusExporter
from receiver.model.telemetry import Resource
from receiver.telemetry.red_metrics import RedMetrics
from receiver.component.self_metrics import SelfMetrics
from tests.support.ports import free_port, wait_until

pytestmark = pytest.mark.e2e

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
CHECKOUT = Resource.from_dict({"service.name": "checkout", "service.instance.id": "pod-1"})


class PrometheusServer:
    """prometheus on 127.0.0.1 with a temporary TSDB, scraping ``target`` every second."""

    def __init__(self, workdir, target: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.target = target
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "PrometheusServer":
        config = self.workdir / "prometheus.yml"
        config.write_text(
            f"""
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: ebpf-receiver
    honor_labels: true   # keep the job/instance our exporter sets from the resource
    static_configs:
      - targets: ["{self.target}"]
"""
        )
        self._log = open(self.workdir / "prometheus.log", "wb")
        self._proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--enable-feature=exemplar-storage",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def ready():
            if self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(self.workdir / 'prometheus.log').read_text()}")
            try:
                return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, timeout=20, what="prometheus to be ready")
        return self

    def query(self, promql: str) -> list[dict]:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def exemplars(self, promql: str, start: float, end: float) -> list[dict]:
        response = requests.get(
            f"{self.url}/api/v1/query_exemplars", params={"query": promql, "start": start, "end": end}, timeout=5
        )
        response.raise_for_status()
        return [e for series in response.json()["data"] for e in series["exemplars"]]

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(5)
        if self._proc is not None:
            self._log.close()
            self._proc = None


@pytest.fixture
def served():
    registry = CollectorRegistry()
    self_metrics = SelfMetrics(registry)
    red = RedMetrics()
    port = free_port()
    exporter = PrometheusExporter(PrometheusExporterConfig(endpoint=f"127.0.0.1:{port}"), red.collect, registry)
    exporter.start()
    yield red, self_metrics, exporter
    exporter.shutdown()


def observe(red: RedMetrics, n: int, route: str = "/pay") -> list[str]:
    """``n`` server requests on ``route``, each with its own trace; returns the trace ids (hex)."""
    trace_ids = []
    for i in range(n):
        trace_id, span_id = uuid.uuid4().bytes, uuid.uuid4().bytes[:8]
        red.record(
            "http.server.request.duration", CHECKOUT,
            (("http.request.method", "POST"), ("http.response.status_code", 200), ("http.route", route)),
            0.004 + 0.03 * i, time.time_ns(), trace_id, span_id,
        )
        trace_ids.append(trace_id.hex())
    return trace_ids


def test_a_real_prometheus_scrapes_counts_self_metrics_and_exemplars(tmp_path, served):
    red, self_metrics, exporter = served
    t0 = time.time()
    traces = observe(red, 7)
    self_metrics.exporter_sent_items.labels("otlp", "traces").inc(11)
    self_metrics.exporter_dropped_items.labels("otlp", "traces", "queue_full").inc(4)

    # the exporter endpoint itself: OpenMetrics with exemplars when asked for
    response = requests.get(f"http://127.0.0.1:{exporter.port}/metrics", headers={"Accept": OPENMETRICS}, timeout=5)
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    (hist,) = [f for f in text_string_to_metric_families(response.text) if f.name == "http_server_request_duration_seconds"]
    served_exemplars = {s.exemplar.labels["trace_id"] for s in hist.samples if s.exemplar is not None}
    assert served_exemplars and served_exemplars <= set(traces)

    prometheus = PrometheusServer(tmp_path, f"127.0.0.1:{exporter.port}").start()
    try:
        count = 'sum(http_server_request_duration_seconds_count{job="checkout", http_route="/pay"})'
        wait_until(lambda: prometheus.value(count) == 7, timeout=15, what="prometheus to see 7 requests")
        assert prometheus.value('up{job="ebpf-receiver"}') == 1  # the scrape job; series keep our job label
        assert prometheus.value('sum(http_server_request_duration_seconds_bucket{job="checkout", le="0.05"})') == 2
        assert prometheus.value('ebpf_receiver_exporter_sent_items_total{exporter="otlp", signal="traces"}') == 11
        assert prometheus.value('ebpf_receiver_exporter_dropped_items_total{reason="queue_full"}') == 4

        more = observe(red, 3)  # the next scrapes follow
        wait_until(lambda: prometheus.value(count) == 10, timeout=10, what="prometheus to see 10 requests")

        def stored_exemplars():
            found = prometheus.exemplars('http_server_request_duration_seconds_bucket{job="checkout"}', t0 - 60, time.time() + 60)
            return found if any(e["labels"]["trace_id"] in more for e in found) else None

        stored = wait_until(stored_exemplars, timeout=10, what="exemplars in prometheus")
        assert {e["labels"]["trace_id"] for e in stored} <= set(traces + more)
        assert all(len(e["labels"]["span_id"]) == 16 for e in stored)
    finally:
        prometheus.stop()
