"""Fault injection against sinks the tests own (grpcio server, http.server; 127.0.0.1 only):
the OTLP exporters as the agent builds them, counted by unique span id on the receiving side.

Covered elsewhere, not repeated here (tests/unit/exporters/): the classification table, 400
and other permanent statuses (one request, counted failed), partial success (counted rejected,
not resent), Retry-After of 1 s, RetryInfo delays, TLS handshakes.
"""

from __future__ import annotations

import collections
import time
import uuid

import grpc
import pytest
from prometheus_client import CollectorRegistry

from receiver.config import OtlpExporterConfig, OtlpHttpExporterConfig, QueueConfig, RetryConfig, TLSClientConfig
from receiver.exporters.otlp_grpc import OtlpGrpcExporter
from receiver.exporters.otlp_http import OtlpHttpExporter
from receiver.model.telemetry import Resource, Span, SpanKind
from receiver.component.self_metrics import SelfMetrics
from tests.support.ports import free_port, wait_until
from tests.unit.exporters.otlp_sinks import start_grpc_sink, start_http_sink

pytestmark = pytest.mark.e2e

RES = Resource.from_dict({"service.name": "faults-e2e"})


class Batches:
    """Batches of spans with unique ids; remembers what was offered."""

    def __init__(self) -> None:
        self.offered: list[list[str]] = []

    def make(self, n: int) -> list[Span]:
        now = time.time_ns()
        spans = [Span(uuid.uuid4().bytes, uuid.uuid4().bytes[:8], "op", SpanKind.SERVER, now, now + 1, RES) for _ in range(n)]
        self.offered.append([s.span_id.hex() for s in spans])
        return spans

    def ids(self, *indexes: int) -> set[str]:
        chosen = indexes or range(len(self.offered))
        return {sid for i in chosen for sid in self.offered[i]}


class Sinks:
    """Starts sinks and stops them all at the end of a test."""

    def __init__(self) -> None:
        self._grpc: list = []
        self._http: list = []

    def grpc(self, script=(), port: int = 0):
        server, servicer, bound = start_grpc_sink(script, port=port)
        self._grpc.append(server)
        return servicer, bound

    def http(self, script=(), port: int = 0):
        server, url = start_http_sink(script, port=port)
        self._http.append(server)
        return server, url

    def stop(self) -> None:
        for server in self._grpc:
            server.stop(None)
        for server in self._http:
            server.shutdown()
            server.server_close()


@pytest.fixture
def sinks():
    s = Sinks()
    yield s
    s.stop()


def grpc_exporter(port: int, retry: RetryConfig, queue: QueueConfig = QueueConfig()):
    metrics = SelfMetrics(CollectorRegistry())
    config = OtlpExporterConfig(
        endpoint=f"127.0.0.1:{port}", tls=TLSClientConfig(insecure=True), timeout=1.0, sending_queue=queue, retry_on_failure=retry
    )
    return OtlpGrpcExporter("otlp", config, metrics), metrics.registry


def http_exporter(url: str, retry: RetryConfig, queue: QueueConfig = QueueConfig()):
    metrics = SelfMetrics(CollectorRegistry())
    config = OtlpHttpExporterConfig(endpoint=url, timeout=1.0, sending_queue=queue, retry_on_failure=retry)
    return OtlpHttpExporter("otlphttp", config, metrics), metrics.registry


def counter(registry, name: str, exporter: str, **labels) -> float:
    return registry.get_sample_value(f"ebpf_receiver_exporter_{name}", {"exporter": exporter, "signal": "traces", **labels}) or 0.0


def not_delivered(registry, exporter: str) -> float:
    failed = sum(
        counter(registry, "failed_items_total", exporter, reason=r) for r in ("permanent", "retries_exhausted", "rejected", "too_large")
    )
    dropped = sum(counter(registry, "dropped_items_total", exporter, reason=r) for r in ("queue_full", "shutdown", "storage_error"))
    return failed + dropped


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_unavailable_then_ok_delivers_every_span_exactly_once(sinks, transport):
    retry = RetryConfig(initial_interval=0.05, max_interval=0.1, max_elapsed_time=10)
    if transport == "grpc":
        sink, port = sinks.grpc([("fail", grpc.StatusCode.UNAVAILABLE, None)] * 3)
        exporter, reg = grpc_exporter(port, retry)
        exporter_id, attempts = "otlp", lambda: len(sink.requests)
    else:
        sink, url = sinks.http([(503, {}, b"unavailable")] * 3)
        exporter, reg = http_exporter(url, retry)
        exporter_id, attempts = "otlphttp", lambda: len(sink.received)
    batches = Batches()
    exporter.start()
    for _ in range(5):
        exporter.consume_traces(batches.make(3))
    wait_until(lambda: counter(reg, "sent_items_total", exporter_id) == 15, timeout=10, what="all sent")
    exporter.shutdown(5)
    received = collections.Counter(sink.span_ids())
    assert set(received) == batches.ids() and set(received.values()) == {1}
    assert attempts() == 5 + 3
    assert counter(reg, "retries_total", exporter_id) == 3
    assert not_delivered(reg, exporter_id) == 0


def test_429_with_retry_after_3_is_not_retried_before_3_seconds(sinks):
    sink, url = sinks.http([(429, {"Retry-After": "3"}, b"slow down")])
    exporter, reg = http_exporter(url, RetryConfig(initial_interval=0.05, max_interval=0.1, max_elapsed_time=30))
    batches = Batches()
    exporter.start()
    exporter.consume_traces(batches.make(2))
    time.sleep(2.9)
    assert len(sink.received) == 1, "retried before Retry-After"
    wait_until(lambda: counter(reg, "sent_items_total", "otlphttp") == 2, timeout=5, what="the retry")
    exporter.shutdown(5)
    first, second = sink.times
    assert second - first >= 3.0
    assert collections.Counter(sink.span_ids()) == collections.Counter(batches.ids())
    assert counter(reg, "retries_total", "otlphttp") == 1


def test_collector_absent_for_20s_then_present_everything_arrives_once(sinks):
    """Both transports at once, data flowing all along: sent == received, by unique span id."""
    retry = RetryConfig(initial_interval=0.2, max_interval=1.0, multiplier=2.0, max_elapsed_time=60)
    grpc_port, http_port = free_port(), free_port()
    g_exporter, g_reg = grpc_exporter(grpc_port, retry)
    h_exporter, h_reg = http_exporter(f"http://127.0.0.1:{http_port}", retry)
    g_batches, h_batches = Batches(), Batches()
    g_exporter.start()
    h_exporter.start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20.0:  # the collector is absent: one batch per transport every 0.5 s
        g_exporter.consume_traces(g_batches.make(2))
        h_exporter.consume_traces(h_batches.make(2))
        time.sleep(0.5)
    assert counter(g_reg, "sent_items_total", "otlp") == counter(h_reg, "sent_items_total", "otlphttp") == 0
    assert counter(g_reg, "retries_total", "otlp") > 5 and counter(h_reg, "retries_total", "otlphttp") > 5

    g_sink, _ = sinks.grpc(port=grpc_port)  # the collector appears
    h_sink, _ = sinks.http(port=http_port)
    g_total, h_total = len(g_batches.ids()), len(h_batches.ids())
    # within one retry interval (max 1 s, +50 % jitter) and a little: gRPC's own reconnect
    # backoff (up to 120 s by default) must not hold the channel down after a long outage
    wait_until(
        lambda: counter(g_reg, "sent_items_total", "otlp") == g_total and counter(h_reg, "sent_items_total", "otlphttp") == h_total,
        timeout=4, what="the backlog to drain",
    )
    g_exporter.shutdown(5)
    h_exporter.shutdown(5)
    for sink, batches, reg, exporter_id in ((g_sink, g_batches, g_reg, "otlp"), (h_sink, h_batches, h_reg, "otlphttp")):
        received = collections.Counter(sink.span_ids())
        assert set(received) == batches.ids(), exporter_id
        assert set(received.values()) == {1}, f"{exporter_id}: duplicates"
        assert counter(reg, "sent_items_total", exporter_id) == sum(received.values())
        assert not_delivered(reg, exporter_id) == 0


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_queue_overflow_drops_are_counted_exactly(sinks, transport):
    retry = RetryConfig(initial_interval=0.1, max_interval=0.2, max_elapsed_time=0)
    queue = QueueConfig(sizer="requests", queue_size=5, num_consumers=1)  # one batch in flight, 5 queued
    port = free_port()
    if transport == "grpc":
        exporter, reg = grpc_exporter(port, retry, queue)
        exporter_id = "otlp"
    else:
        exporter, reg = http_exporter(f"http://127.0.0.1:{port}", retry, queue)
        exporter_id = "otlphttp"
    batches = Batches()
    exporter.start()
    exporter.consume_traces(batches.make(3))
    wait_until(lambda: counter(reg, "retries_total", exporter_id) >= 1, timeout=5, what="batch 0 in flight")
    for _ in range(19):  # the backend is down: the queue holds 5, the rest overflows
        exporter.consume_traces(batches.make(3))
    assert counter(reg, "dropped_items_total", exporter_id, reason="queue_full") == (19 - 5) * 3

    sink = sinks.grpc(port=port)[0] if transport == "grpc" else sinks.http(port=port)[0]
    expected = batches.ids(0, 15, 16, 17, 18, 19)  # in flight + the 5 newest
    wait_until(lambda: counter(reg, "sent_items_total", exporter_id) == len(expected), timeout=10, what="the queue to drain")
    exporter.shutdown(5)
    received = collections.Counter(sink.span_ids())
    assert set(received) == expected and set(received.values()) == {1}
    offered = len(batches.ids())
    dropped = counter(reg, "dropped_items_total", exporter_id, reason="queue_full")
    assert dropped == offered - sum(received.values()) == 42
    assert not_delivered(reg, exporter_id) == dropped  # nothing else lost
