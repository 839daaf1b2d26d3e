"""End to end: requests larger than the collector accepts, and signals that must not wait for each other.

A real collector (rotel) limited to 1 MiB per gRPC message (``--otlp-grpc-max-recv-msg-size-mib
1``; it answers ``OUT_OF_RANGE`` "decoded message length too large", which a plain retry table
would retry forever), and rotel's own 20 MiB OTLP/HTTP body limit (413).  Every span, metric
data point and log record carries a unique ``item.id``, counted in the collector's debug log:
each must arrive exactly once, the oversized requests split on the way.  Fault injectors of the
tests' own (127.0.0.1 only): an HTTP endpoint that never answers, and a gRPC proxy to rotel that
holds logs requests.
"""

from __future__ import annotations

import collections
import re
import socket
import threading
import time
from concurrent import futures

import grpc
import pytest
from prometheus_client import CollectorRegistry

from receiver.config import OtlpExporterConfig, OtlpHttpExporterConfig, QueueBatchConfig, QueueConfig, RetryConfig, TLSClientConfig
from receiver.exporters.otlp_grpc import OtlpGrpcExporter
from receiver.exporters.otlp_http import OtlpHttpExporter
from receiver.exporters.otlp_wire import OtlpWireEncoder
from receiver.model.signals import Signal
from receiver.component.self_metrics import SelfMetrics
from tests.support.ports import free_port, wait_until
from tests.support.rotel import RotelCollector
from tests.unit.exporters.otlp_items import batch_ids, make_items

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
RETRY = RetryConfig(initial_interval=0.2, max_interval=0.5, max_elapsed_time=30)
_ITEM_ID = re.compile(r"item\.id: Str\(([0-9a-f]+)\)")


def arrived(collector: RotelCollector) -> collections.Counter:
    """How often each item id appears in the collector's debug log."""
    return collections.Counter(_ITEM_ID.findall(collector.text()))


def wait_for_ids(collector: RotelCollector, ids: set[str], timeout: float = 60) -> collections.Counter:
    def complete():
        seen = arrived(collector)
        return seen if ids <= seen.keys() else None

    try:
        return wait_until(complete, timeout=timeout, interval=0.5, what=f"{len(ids)} items at rotel")
    except TimeoutError:
        missing = ids - arrived(collector).keys()
        raise AssertionError(f"{len(missing)} of {len(ids)} items never arrived, e.g. {sorted(missing)[:3]}") from None


def counter(registry, name: str, exporter: str, signal: Signal, **labels) -> float:
    labels = {"exporter": exporter, "signal": signal.value, **labels}
    return registry.get_sample_value(f"ebpf_receiver_exporter_{name}", labels) or 0.0


def not_delivered(registry, exporter: str, signal: Signal) -> dict[str, float]:
    out = {}
    for reason in ("permanent", "retries_exhausted", "rejected", "too_large"):
        out[f"failed.{reason}"] = counter(registry, "failed_items_total", exporter, signal, reason=reason)
    for reason in ("queue_full", "shutdown", "storage_error"):
        out[f"dropped.{reason}"] = counter(registry, "dropped_items_total", exporter, signal, reason=reason)
    return {k: v for k, v in out.items() if v}


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_grpc_every_item_arrives_at_a_collector_limited_to_1_mib(tmp_path, compression):
    random_pad = compression == "gzip"  # random text: gzip cannot bring a request under the limit
    batches = {
        Signal.TRACES: make_items(Signal.TRACES, 2400, pad=1000, random_pad=random_pad),  # ~2.5 MiB < max_size
        Signal.METRICS: make_items(Signal.METRICS, 1500, pad=1000, random_pad=random_pad),  # ~1.6 MiB
        Signal.LOGS: make_items(Signal.LOGS, 7200, pad=1000, random_pad=random_pad),  # ~7.4 MB > max_size
    }
    huge_log = make_items(Signal.LOGS, 1, pad=MIB + MIB // 2, random_pad=random_pad)  # alone over the limit
    encoder = OtlpWireEncoder()
    sizes = {s: len(encoder.serialize(s, b)) for s, b in batches.items()}
    assert sizes[Signal.LOGS] > 7 * 10**6 and all(size > 1.5 * MIB for size in sizes.values())

    with RotelCollector(tmp_path, extra_args=("--otlp-grpc-max-recv-msg-size-mib", "1")) as collector:
        metrics = SelfMetrics(CollectorRegistry())
        config = OtlpExporterConfig(
            endpoint=collector.grpc_endpoint, tls=TLSClientConfig(insecure=True), compression=compression,
            timeout=10.0, retry_on_failure=RETRY,
        )
        exporter = OtlpGrpcExporter("otlp", config, metrics)
        exporter.start()
        try:
            for signal, batch in batches.items():
                exporter.consume(signal, batch + (huge_log if signal is Signal.LOGS else []))
            offered = {i for s, b in batches.items() for i in batch_ids(s, b)}
            seen = wait_for_ids(collector, offered)
        finally:
            exporter.shutdown(10)
        time.sleep(0.5)  # anything sent twice would be printed by now
        seen = arrived(collector)

    reg = metrics.registry
    assert {i: n for i, n in seen.items() if n != 1} == {}, "items arrived more than once"
    assert seen.keys() == offered  # and the lone oversized log record never did
    for signal, batch in batches.items():
        assert counter(reg, "sent_items_total", "otlp", signal) == len(batch_ids(signal, batch))
        assert counter(reg, "request_splits_total", "otlp", signal, trigger="too_large") >= 1
        assert counter(reg, "retries_total", "otlp", signal) == 0  # refused for size: split, never retried
        expected = {"failed.too_large": 1.0} if signal is Signal.LOGS else {}
        assert not_delivered(reg, "otlp", signal) == expected
    assert counter(reg, "request_splits_total", "otlp", Signal.LOGS, trigger="max_size") >= 1  # 7.4 MB > 3 MiB
    assert counter(reg, "request_splits_total", "otlp", Signal.TRACES, trigger="max_size") == 0  # 2.5 MiB


@pytest.mark.parametrize("signal", list(Signal))
def test_http_413_from_the_collector_splits_the_request(tmp_path, signal):
    # rotel's OTLP/HTTP receiver takes bodies up to 20 MiB; without a max_size the exporter sends
    # ~22 MiB and must split it when the collector answers 413.
    batch = make_items(signal, 220, pad=100_000)
    with RotelCollector(tmp_path, signals=(signal.value,)) as collector:
        metrics = SelfMetrics(CollectorRegistry())
        config = OtlpHttpExporterConfig(
            endpoint=collector.http_endpoint, compression="none", timeout=20.0, retry_on_failure=RETRY,
            sending_queue=QueueConfig(sizer="requests", batch=QueueBatchConfig(max_size=0)),  # 22 MB: over 16 MiB of bytes
        )
        exporter = OtlpHttpExporter("otlphttp", config, metrics)
        exporter.start()
        try:
            exporter.consume(signal, batch)
            ids = set(batch_ids(signal, batch))
            wait_for_ids(collector, ids, timeout=90)
        finally:
            exporter.shutdown(20)
        time.sleep(0.5)
        seen = arrived(collector)
    reg = metrics.registry
    assert seen.keys() == ids and set(seen.values()) == {1}
    assert counter(reg, "request_splits_total", "otlphttp", signal, trigger="too_large") == 1
    assert counter(reg, "sent_items_total", "otlphttp", signal) == len(ids)
    assert not_delivered(reg, "otlphttp", signal) == {}


# --- signals do not wait for each other --------------------------------------------------------


class SilentHttpServer:
    """Accepts connections and reads requests, never answers (until stopped): a stalled backend."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(conn)

    def stop(self) -> None:
        self._stop.set()
        for conn in self.connections:
            conn.close()
        self.sock.close()


def test_http_traces_reach_the_collector_while_logs_hang(tmp_path):
    silent = SilentHttpServer()
    try:
        with RotelCollector(tmp_path, signals=("traces",)) as collector:
            metrics = SelfMetrics(CollectorRegistry())
            config = OtlpHttpExporterConfig(
                endpoint=collector.http_endpoint,
                logs_endpoint=f"http://127.0.0.1:{silent.port}/v1/logs",
                timeout=30.0,  # each logs request hangs this long
                retry_on_failure=RETRY,
            )
            exporter = OtlpHttpExporter("otlphttp", config, metrics)
            exporter.start()
            try:
                for _ in range(4):  # more than the logs queue has consumers: every consumer hangs
                    exporter.consume_logs(make_items(Signal.LOGS, 500, pad=100))
                wait_until(lambda: len(silent.connections) >= 2, timeout=10, interval=0.02, what="logs in flight")
                for round_ in range(3):
                    spans = make_items(Signal.TRACES, 50)
                    t0 = time.monotonic()
                    exporter.consume_traces(spans)
                    wait_for_ids(collector, set(batch_ids(Signal.TRACES, spans)), timeout=10)
                    assert time.monotonic() - t0 < 2.0, f"round {round_}: traces waited behind logs"
                assert counter(metrics.registry, "sent_items_total", "otlphttp", Signal.LOGS) == 0
            finally:
                exporter.shutdown(1)
    finally:
        silent.stop()  # the requests still hanging fail now (requests cannot abort them at shutdown)
    assert counter(metrics.registry, "sent_items_total", "otlphttp", Signal.TRACES) == 150
    wait_until(
        lambda: counter(metrics.registry, "dropped_items_total", "otlphttp", Signal.LOGS, reason="shutdown") == 2000,
        timeout=5, interval=0.05, what="every log record counted dropped at shutdown",
    )


class HoldingGrpcProxy:
    """A gRPC server of the test's own in front of rotel: forwards every Export, except that it
    holds the methods in ``held`` until released (a stalled logs stream) — bytes pass through."""

    def __init__(self, target: str, held: frozenset[str]) -> None:
        self.release = threading.Event()
        self.held_calls = 0
        self._lock = threading.Lock()
        self._channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", -1)])
        proxy = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details):
                method = details.method
                forward = proxy._channel.unary_unary(method, request_serializer=None, response_deserializer=None)

                def handle(request: bytes, context) -> bytes:
                    if method in held:
                        with proxy._lock:
                            proxy.held_calls += 1
                        proxy.release.wait(60)
                    return forward(request, timeout=10)

                return grpc.unary_unary_rpc_method_handler(handle)

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        self.server.add_generic_rpc_handlers((Handler(),))
        self.port = self.server.add_insecure_port(f"127.0.0.1:{free_port()}")
        self.server.start()

    def stop(self) -> None:
        self.release.set()
        self.server.stop(None)
        self._channel.close()


def test_grpc_traces_are_not_delayed_behind_a_stalled_logs_stream(tmp_path):
    with RotelCollector(tmp_path, signals=("traces", "logs")) as collector:
        proxy = HoldingGrpcProxy(collector.grpc_endpoint, frozenset({"/opentelemetry.proto.collector.logs.v1.LogsService/Export"}))
        metrics = SelfMetrics(CollectorRegistry())
        config = OtlpExporterConfig(
            endpoint=f"127.0.0.1:{proxy.port}", tls=TLSClientConfig(insecure=True), timeout=30.0, retry_on_failure=RETRY,
        )
        exporter = OtlpGrpcExporter("otlp", config, metrics)
        exporter.start()
        logs = [make_items(Signal.LOGS, 300, pad=100) for _ in range(5)]
        try:
            for batch in logs:
                exporter.consume_logs(batch)
            wait_until(lambda: proxy.held_calls >= 2, timeout=10, interval=0.02, what="logs held")
            for round_ in range(3):
                spans = make_items(Signal.TRACES, 50)
                t0 = time.monotonic()
                exporter.consume_traces(spans)
                wait_for_ids(collector, set(batch_ids(Signal.TRACES, spans)), timeout=10)
                assert time.monotonic() - t0 < 2.0, f"round {round_}: traces waited behind logs"
            assert counter(metrics.registry, "sent_items_total", "otlp", Signal.LOGS) == 0
            proxy.release.set()  # the logs stream recovers: everything queued behind it arrives
            wait_for_ids(collector, {i for b in logs for i in batch_ids(Signal.LOGS, b)}, timeout=30)
        finally:
            exporter.shutdown(10)
            proxy.stop()
    assert counter(metrics.registry, "sent_items_total", "otlp", Signal.LOGS) == 1500
    assert counter(metrics.registry, "sent_items_total", "otlp", Signal.TRACES) == 150
