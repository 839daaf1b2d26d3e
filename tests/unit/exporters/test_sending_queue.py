"""The sending queue with a fake transport that speaks real OTLP: request size limits and splitting,
per-signal independence, queue bounds in bytes and items, consumers, and the accounting invariant
(sent + failed + dropped == consumed) under hypothesis."""

from __future__ import annotations

import hashlib
import random
import threading
import time

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from receiver.config import QueueBatchConfig, QueueConfig, RetryConfig
from receiver.exporters.errors import PermanentExportError, RequestTooLargeError, RetryableExportError
from receiver.exporters.exporter_metrics import DROPPED_REASONS, FAILED_REASONS, ExporterMetrics
from receiver.exporters.otlp_wire import OtlpWireEncoder
from receiver.exporters.persistent_queue import exporter_directory
from receiver.exporters.sending_queue import QueuedRetryingSender
from receiver.model.signals import Signal, count_items
from receiver.model.telemetry import Resource
from receiver.component.self_metrics import SelfMetrics
from tests.unit.exporters.otlp_items import batch_ids, make_items, make_metrics, make_spans, request_ids

FAST_RETRY = RetryConfig(initial_interval=0.005, max_interval=0.01, multiplier=2.0, max_elapsed_time=2.0)
KIB = 1024


class OtlpBackend:
    """A fake transport: serializes with the real wire encoder, decodes every request it is sent,
    refuses those over ``limit`` bytes as too large (as a gRPC server's receive limit does), and
    plays a per-signal script of outcomes (int = items rejected, or an exception to raise)."""

    def __init__(self, limit: int | None = None, scripts=None, gates=None, default=0):
        self.limit = limit
        self.scripts = {s: list((scripts or {}).get(s, ())) for s in Signal}
        self.gates = gates or {}
        self.default = default
        self.encoder = OtlpWireEncoder()
        self.lock = threading.Lock()
        self.accepted: dict[Signal, list[str]] = {s: [] for s in Signal}
        self.sizes: dict[Signal, list[int]] = {s: [] for s in Signal}  # of every request pushed
        self.digests: dict[Signal, list[bytes]] = {s: [] for s in Signal}  # of every request pushed
        self.times: dict[Signal, list[float]] = {s: [] for s in Signal}  # of accepted requests
        self.in_flight = 0
        self.most_in_flight = 0
        self.started = self.stopped = 0

    def start(self):
        self.started += 1

    def shutdown(self):
        self.stopped += 1
        for gate in self.gates.values():
            gate.set()

    def serialize(self, signal, batch):
        with self.lock:
            return self.encoder.serialize(signal, batch)

    def push_serialized(self, signal, data):
        with self.lock:
            self.sizes[signal].append(len(data))
            self.digests[signal].append(hashlib.sha256(data).digest())
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            gate = self.gates.get(signal)
            if gate is not None:
                gate.wait(10)
            if self.limit is not None and len(data) > self.limit:
                raise RequestTooLargeError(f"gRPC RESOURCE_EXHAUSTED: Received message larger than max ({len(data)} vs. {self.limit})")
            with self.lock:
                script = self.scripts[signal]
                outcome = script.pop(0) if script else self.default
            if isinstance(outcome, BaseException):
                raise outcome
            ids = request_ids(signal, data)
            with self.lock:
                self.accepted[signal].extend(ids[outcome:])
                self.times[signal].append(time.monotonic())
            return outcome
        finally:
            with self.lock:
                self.in_flight -= 1


def make(backend, queue=QueueConfig(), retry=FAST_RETRY, exporter_id="otlp/q"):
    metrics = SelfMetrics(CollectorRegistry())
    return QueuedRetryingSender(exporter_id, backend, metrics, queue, retry), metrics.registry


def value(registry, name, signal, exporter="otlp/q", **labels) -> float:
    labels = {"exporter": exporter, "signal": signal.value, **labels}
    return registry.get_sample_value(f"ebpf_receiver_exporter_{name}", labels) or 0.0


def settled(registry, signal, exporter="otlp/q") -> dict[str, float]:
    out = {"sent": value(registry, "sent_items_total", signal, exporter)}
    for r in FAILED_REASONS:
        out[f"failed.{r}"] = value(registry, "failed_items_total", signal, exporter, reason=r)
    for r in DROPPED_REASONS:
        out[f"dropped.{r}"] = value(registry, "dropped_items_total", signal, exporter, reason=r)
    return out


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.005)
    raise AssertionError("condition not reached in time")


# --- request size -----------------------------------------------------------------------------


@pytest.mark.parametrize("signal", list(Signal))
def test_a_batch_over_max_size_is_split_before_sending(signal):
    backend = OtlpBackend()
    sender, reg = make(backend, QueueConfig(batch=QueueBatchConfig(max_size=64 * KIB)))
    batch = make_items(signal, 400, pad=1000)  # ~400 KiB
    sender.start()
    sender.consume(signal, batch)
    sender.shutdown(5)
    assert max(backend.sizes[signal]) <= 64 * KIB
    assert len(backend.sizes[signal]) >= 7  # 400 KiB in parts of at most 64 KiB, nothing refused
    assert sorted(backend.accepted[signal]) == sorted(batch_ids(signal, batch))
    assert value(reg, "request_splits_total", signal, trigger="max_size") >= 1
    assert value(reg, "request_splits_total", signal, trigger="too_large") == 0
    assert settled(reg, signal)["sent"] == count_items(signal, batch)


@pytest.mark.parametrize("signal", list(Signal))
def test_a_request_refused_as_too_large_is_split_in_halves_never_resent_whole(signal):
    backend = OtlpBackend(limit=50 * KIB)
    sender, reg = make(backend, QueueConfig(num_consumers=1))  # max_size 3 MiB: the backend refuses first
    batch = make_items(signal, 160, pad=1000)  # ~160 KiB → halves 80, quarters 40 KiB
    sender.start()
    sender.consume(signal, batch)
    sender.shutdown(5)
    sizes = backend.sizes[signal]
    assert sizes[0] > 150 * KIB and len(sizes) == 1 + 2 + 4
    assert len(set(backend.digests[signal])) == len(sizes)  # no request was ever sent twice
    assert sorted(backend.accepted[signal]) == sorted(batch_ids(signal, batch))
    assert value(reg, "request_splits_total", signal, trigger="too_large") == 3
    assert value(reg, "retries_total", signal) == 0
    assert settled(reg, signal)["sent"] == count_items(signal, batch)


def test_a_single_item_over_max_size_is_dropped_as_too_large_the_rest_is_sent():
    backend = OtlpBackend()
    sender, reg = make(backend, QueueConfig(batch=QueueBatchConfig(max_size=16 * KIB)))
    small, huge = make_spans(30, pad=100), make_spans(1, pad=40 * KIB)
    sender.start()
    sender.consume_traces(small[:15] + huge + small[15:])
    sender.shutdown(5)
    assert sorted(backend.accepted[Signal.TRACES]) == sorted(batch_ids(Signal.TRACES, small))
    assert max(backend.sizes[Signal.TRACES]) <= 16 * KIB
    counts = settled(reg, Signal.TRACES)
    assert counts["failed.too_large"] == 1 and counts["sent"] == 30


def test_a_single_item_the_backend_refuses_as_too_large_is_counted_not_retried():
    backend = OtlpBackend(limit=8 * KIB)
    sender, reg = make(backend)
    small, huge = make_logs_pair()
    sender.start()
    sender.consume_logs(small + huge)
    sender.shutdown(5)
    assert sorted(backend.accepted[Signal.LOGS]) == sorted(batch_ids(Signal.LOGS, small))
    counts = settled(reg, Signal.LOGS)
    assert counts["failed.too_large"] == 1 and counts["sent"] == len(small)
    assert value(reg, "retries_total", Signal.LOGS) == 0


def make_logs_pair():
    return make_items(Signal.LOGS, 6, pad=500), make_items(Signal.LOGS, 1, pad=20 * KIB)


def test_max_size_in_items_splits_metrics_between_data_points():
    backend = OtlpBackend()
    sender, reg = make(backend, QueueConfig(batch=QueueBatchConfig(sizer="items", max_size=3)))
    batch = make_metrics(2, 5)  # 10 points, metrics of 5: cut inside both
    sender.start()
    sender.consume_metrics(batch)
    sender.shutdown(5)
    per_request = [len(backend.sizes[Signal.METRICS])]
    assert per_request == [4]  # ceil(10 / 3) parts of 3, 2, 3, 2 points
    assert sorted(backend.accepted[Signal.METRICS]) == sorted(batch_ids(Signal.METRICS, batch))
    assert settled(reg, Signal.METRICS)["sent"] == 10


def test_synchronous_mode_splits_too():
    backend = OtlpBackend(limit=30 * KIB)
    sender, reg = make(backend, QueueConfig(enabled=False, batch=QueueBatchConfig(max_size=40 * KIB)))
    batch = make_spans(100, pad=1000)
    sender.start()
    sender.consume_traces(batch)  # returns once everything is settled
    assert sorted(backend.accepted[Signal.TRACES]) == sorted(batch_ids(Signal.TRACES, batch))
    assert value(reg, "request_splits_total", Signal.TRACES, trigger="max_size") >= 1
    assert value(reg, "request_splits_total", Signal.TRACES, trigger="too_large") >= 1
    sender.shutdown(1)


# --- per-signal queues and consumers ---------------------------------------------------------


def test_traces_flow_while_logs_are_stuck_behind_a_backend_that_never_answers():
    logs_gate = threading.Event()
    backend = OtlpBackend(gates={Signal.LOGS: logs_gate})
    sender, reg = make(backend, QueueConfig(num_consumers=1))
    sender.start()
    sender.consume_logs(make_items(Signal.LOGS, 5))
    sender.consume_logs(make_items(Signal.LOGS, 5))
    wait_for(lambda: backend.in_flight == 1)  # the logs consumer hangs in its push
    t0 = time.monotonic()
    spans = make_spans(10)
    sender.consume_traces(spans)
    wait_for(lambda: len(backend.accepted[Signal.TRACES]) == 10, timeout=2)
    assert time.monotonic() - t0 < 1.0
    assert backend.accepted[Signal.LOGS] == []
    logs_gate.set()
    sender.shutdown(5)
    assert len(backend.accepted[Signal.LOGS]) == 10


def test_traces_flow_while_logs_back_off_from_a_failing_backend():
    backend = OtlpBackend(scripts={Signal.LOGS: [RetryableExportError("unavailable")] * 1000})
    retry = RetryConfig(initial_interval=0.2, max_interval=0.2, max_elapsed_time=0)
    sender, reg = make(backend, QueueConfig(num_consumers=1), retry=retry)
    sender.start()
    for _ in range(3):
        sender.consume_logs(make_items(Signal.LOGS, 3))
    wait_for(lambda: value(reg, "retries_total", Signal.LOGS) >= 1)
    spans = make_spans(4)
    t0 = time.monotonic()
    sender.consume_traces(spans)
    wait_for(lambda: len(backend.accepted[Signal.TRACES]) == 4, timeout=2)
    assert time.monotonic() - t0 < 1.0  # a shared queue would hold them until the logs gave up: never
    sender.shutdown(0.3)
    assert settled(reg, Signal.LOGS)["dropped.shutdown"] == 9
    assert settled(reg, Signal.TRACES)["sent"] == 4


def test_num_consumers_requests_of_one_signal_are_in_flight_at_once():
    gate = threading.Event()
    backend = OtlpBackend(gates={Signal.TRACES: gate})
    sender, reg = make(backend, QueueConfig(sizer="requests", num_consumers=3))
    sender.start()
    for _ in range(6):
        sender.consume_traces(make_spans(2))
    wait_for(lambda: backend.in_flight == 3)
    time.sleep(0.05)
    assert backend.in_flight == 3 and len(sender._queues[Signal.TRACES]) == 3
    assert value(reg, "signal_queue_size", Signal.TRACES) == 3
    gate.set()
    sender.shutdown(5)
    assert backend.most_in_flight == 3
    assert settled(reg, Signal.TRACES)["sent"] == 12


def test_consumers_start_with_their_signals_first_request():
    sender, _ = make(OtlpBackend())
    sender.start()
    assert all(not q.threads for q in sender._queues.values())
    sender.consume_traces(make_spans(1))
    assert len(sender._queues[Signal.TRACES].threads) == 2 and not sender._queues[Signal.LOGS].threads
    sender.shutdown(5)
    assert not any(t.is_alive() for t in sender._queues[Signal.TRACES].threads)


# --- bounds ----------------------------------------------------------------------------------


def test_a_queue_bounded_in_bytes_holds_at_most_queue_size_bytes_and_evicts_the_oldest():
    backend = OtlpBackend()
    queue = QueueConfig(sizer="bytes", queue_size=100 * KIB, batch=QueueBatchConfig(max_size=40 * KIB))
    sender, reg = make(backend, queue)
    batches = [make_spans(30, pad=1000) for _ in range(6)]  # ~31 KiB each
    sizes = [len(OtlpWireEncoder().serialize(Signal.TRACES, b)) for b in batches]
    for b in batches:  # not started: nothing leaves the queue
        sender.consume_traces(b)
    kept = 3  # 3 × ~31 KiB fit in 100 KiB, a 4th does not
    used = value(reg, "signal_queue_size", Signal.TRACES)
    assert used == sum(sizes[-kept:]) <= 100 * KIB
    assert value(reg, "signal_queue_capacity", Signal.TRACES) == 100 * KIB
    assert settled(reg, Signal.TRACES)["dropped.queue_full"] == 30 * (6 - kept)
    sender.start()
    sender.shutdown(5)
    assert sorted(backend.accepted[Signal.TRACES]) == sorted(i for b in batches[-kept:] for i in batch_ids(Signal.TRACES, b))


def test_a_queue_bounded_in_items():
    sender, reg = make(OtlpBackend(), QueueConfig(sizer="items", queue_size=10))
    for n in (4, 4, 4, 11):  # the third evicts the first; 11 never fits
        sender.consume_logs(make_items(Signal.LOGS, n))
    assert value(reg, "signal_queue_size", Signal.LOGS) == 8
    assert settled(reg, Signal.LOGS)["dropped.queue_full"] == 4 + 11
    sender.shutdown(0)
    assert settled(reg, Signal.LOGS)["dropped.shutdown"] == 8


def test_persistent_queue_stores_requests_split_to_max_size(tmp_path):
    backend = OtlpBackend()
    queue = QueueConfig(storage=str(tmp_path), batch=QueueBatchConfig(max_size=32 * KIB))
    sender, reg = make(backend, queue)
    batch = make_spans(100, pad=1000)  # ~100 KiB: 4 files
    sender.consume_traces(batch)  # not started: the files wait
    directory = exporter_directory(str(tmp_path), "otlp/q")
    files = sorted(p for p in (tmp_path / directory).iterdir() if p.name.endswith(".batch"))
    assert len(files) == 4 and all(f.stat().st_size <= 32 * KIB + 20 for f in files)
    sender.shutdown(0)  # kept on disk, nothing counted
    assert settled(reg, Signal.TRACES)["dropped.shutdown"] == 0

    again = OtlpBackend()
    sender, reg = make(again, QueueConfig(storage=str(tmp_path), sizer="items", queue_size=1000))
    sender.start()
    sender.shutdown(5)
    assert sorted(again.accepted[Signal.TRACES]) == sorted(batch_ids(Signal.TRACES, batch))
    assert settled(reg, Signal.TRACES)["sent"] == 100
    assert not [p for p in (tmp_path / directory).iterdir() if p.name.endswith(".batch")]


def test_the_pipeline_shares_one_exporter_metrics_between_exporters():
    self_metrics = SelfMetrics(CollectorRegistry())
    shared = ExporterMetrics(self_metrics)
    a = QueuedRetryingSender("otlp/a", OtlpBackend(), self_metrics, QueueConfig(), FAST_RETRY, exporter_metrics=shared)
    b = QueuedRetryingSender("otlp/b", OtlpBackend(), self_metrics, QueueConfig(sizer="requests", queue_size=7), FAST_RETRY, exporter_metrics=shared)
    reg = self_metrics.registry
    assert value(reg, "signal_queue_capacity", Signal.LOGS, exporter="otlp/a") == 16 * 1024 * 1024
    assert value(reg, "signal_queue_capacity", Signal.LOGS, exporter="otlp/b") == 7
    names = {m.name for m in self_metrics.snapshot(Resource())}
    assert {"ebpf_receiver_exporter_signal_queue_capacity", "ebpf_receiver_exporter_signal_queue_size"} <= names
    a.shutdown(0)
    b.shutdown(0)


# --- the accounting invariant ------------------------------------------------------------------

OUTCOMES = st.sampled_from(
    [0, 0, 0, 1, 2, RetryableExportError("unavailable"), PermanentExportError("bad"), RuntimeError("bug")]
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(
        st.tuples(st.sampled_from(list(Signal)), st.integers(1, 40), st.sampled_from([0, 200, 3000, 9000])),
        min_size=1, max_size=12,
    ),
    scripts=st.lists(st.one_of(OUTCOMES.map(lambda o: [o]), st.just([RetryableExportError("down")] * 30)), max_size=20).map(
        lambda runs: [o for run in runs for o in run]
    ),
    limit=st.sampled_from([None, 6 * KIB, 20 * KIB]),
    max_size=st.sampled_from([0, 8 * KIB, 64 * KIB]),
    sizer=st.sampled_from(["requests", "items", "bytes"]),
    queue_size=st.sampled_from([3, 40, 200 * KIB]),
    enabled=st.booleans(),
    consumers=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_every_item_is_sent_failed_or_dropped_exactly_once(
    batches, scripts, limit, max_size, sizer, queue_size, enabled, consumers, seed
):
    if sizer == "bytes" and queue_size < max_size:
        queue_size = max_size  # the config refuses that combination
    rng = random.Random(seed)
    backend = OtlpBackend(limit=limit, scripts={s: list(scripts) for s in Signal})
    queue = QueueConfig(
        enabled=enabled, num_consumers=consumers, sizer=sizer, queue_size=queue_size,
        batch=QueueBatchConfig(max_size=max_size),
    )
    retry = RetryConfig(initial_interval=0.001, max_interval=0.002, max_elapsed_time=rng.choice([0.005, 0.05]))
    sender, reg = make(backend, queue, retry)
    offered = {s: [] for s in Signal}
    sender.start()
    for signal, n, pad in batches:
        batch = make_items(signal, n, pad=pad)
        offered[signal] += batch_ids(signal, batch)
        sender.consume(signal, batch)
    sender.shutdown(rng.choice([0.0, 0.02, 2.0]))
    wait_for(lambda: not any(t.is_alive() for q in sender._queues.values() for t in q.threads))
    for signal in Signal:
        counts = settled(reg, signal)
        for name, n in counts.items():
            if n:
                event(name)
        for trigger in ("max_size", "too_large"):
            if value(reg, "request_splits_total", signal, trigger=trigger):
                event(f"split.{trigger}")
        assert sum(counts.values()) == len(offered[signal]), (signal, counts)
        accepted = backend.accepted[signal]
        assert len(accepted) == len(set(accepted))  # nothing arrived twice
        assert set(accepted) <= set(offered[signal])
        assert len(accepted) == counts["sent"]  # a partial success accepts sent, rejects the rest
        refused = [d for d, size in zip(backend.digests[signal], backend.sizes[signal]) if limit and size > limit]
        assert len(refused) == len(set(refused))  # a request refused as too large is never sent again
        assert value(reg, "request_splits_total", signal, trigger="too_large") <= len(refused)
        if max_size:
            assert max(backend.sizes[signal], default=0) <= max_size


def test_status_says_when_a_consumer_is_retrying_and_keeps_the_last_error():
    backend = OtlpBackend(scripts={Signal.LOGS: [RetryableExportError("collector unavailable")] * 1000})
    retry = RetryConfig(initial_interval=0.3, max_interval=0.3, max_elapsed_time=0)
    sender, reg = make(backend, QueueConfig(num_consumers=1), retry=retry)
    assert sender.status().state == "created" and sender.status().last_error == ""
    sender.start()
    sender.consume_logs(make_items(Signal.LOGS, 3))
    wait_for(lambda: sender.status().state == "retrying")
    status = sender.status()
    assert "collector unavailable" in status.last_error and status.last_error_unix > 0
    assert ("logs", 0, status.queues[0][2], "bytes") in status.queues  # the request left the queue: held by the consumer
    sender.shutdown(0.1)
    assert sender.status().state == "stopped"
