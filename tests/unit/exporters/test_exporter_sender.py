"""QueuedRetryingSender: classification, backoff, queue overflow accounting, lifecycle.

The fake transport here serializes batches with pickle (the sender treats requests as opaque
bytes unless it has to split them); splitting is tested with real OTLP requests in
test_sending_queue_split.py.
"""

from __future__ import annotations

import pickle
import random
import re
import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from receiver.config import QueueConfig, RetryConfig
from receiver.exporters.errors import PermanentExportError, RetryableExportError
from receiver.exporters.retry import backoff_interval
from receiver.exporters.sending_queue import QueuedRetryingSender
from receiver.model.signals import Signal, count_items
from receiver.model.telemetry import HistogramPoint, Metric, MetricKind, SumPoint
from receiver.component.self_metrics import SelfMetrics


FAST_RETRY = RetryConfig(initial_interval=0.01, max_interval=0.02, multiplier=2.0, max_elapsed_time=5.0)


class FakePusher:
    """Plays a script of outcomes: an int (rejected count) or an exception to raise."""

    def __init__(self, script=(), default=0, gate: threading.Event | None = None):
        self.script = list(script)
        self.default = default
        self.gate = gate
        self.pushed: list[tuple[Signal, list, float]] = []
        self.started = self.stopped = 0
        self.lock = threading.Lock()

    def start(self):
        self.started += 1

    def shutdown(self):
        self.stopped += 1

    def serialize(self, signal, batch):
        return pickle.dumps(batch)

    def push_serialized(self, signal, data):
        if self.gate is not None:
            self.gate.wait(5)
        with self.lock:
            self.pushed.append((signal, pickle.loads(data), time.monotonic()))
            outcome = self.script.pop(0) if self.script else self.default
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def make(pusher, queue=QueueConfig(sizer="requests", queue_size=10, num_consumers=1), retry=FAST_RETRY, **kw):
    metrics = SelfMetrics(CollectorRegistry())
    return QueuedRetryingSender("otlp/test", pusher, metrics, queue, retry, **kw), metrics.registry


def value(registry, name, **labels) -> float:
    labels = {"exporter": "otlp/test", **labels}
    return registry.get_sample_value(f"ebpf_receiver_exporter_{name}", labels) or 0.0


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.005)
    raise AssertionError("condition not reached in time")


def test_sent_items_counted_per_signal_with_metric_data_points():
    pusher = FakePusher()
    sender, reg = make(pusher)
    sender.start()
    hp = HistogramPoint((), 0, 1, 1, 1.0, [1], (), 1.0, 1.0)
    metric = Metric("m", "", "s", MetricKind.HISTOGRAM, [hp, hp, hp])
    sender.consume_traces(["s1", "s2"])
    sender.consume_metrics([metric])
    sender.consume_logs(["l1"])
    sender.consume_traces([])  # empty batches are not sent
    sender.shutdown(2)
    assert sorted(p[0].value for p in pusher.pushed) == ["logs", "metrics", "traces"]  # one request each
    assert value(reg, "sent_items_total", signal="traces") == 2
    assert value(reg, "sent_items_total", signal="metrics") == 3
    assert value(reg, "sent_items_total", signal="logs") == 1
    assert pusher.started == pusher.stopped == 1


def test_count_items():
    sp = SumPoint((), 0, 1, 1)
    assert count_items(Signal.METRICS, [Metric("a", "", "1", MetricKind.SUM, [sp, sp]), Metric("b", "", "1", MetricKind.SUM, [sp])]) == 3
    assert count_items(Signal.LOGS, [1, 2]) == 2


def test_retryable_then_ok_is_retried_and_sent():
    pusher = FakePusher([RetryableExportError("unavailable"), RetryableExportError("unavailable"), 0])
    sender, reg = make(pusher)
    sender.start()
    sender.consume_traces(["a", "b", "c"])
    wait_for(lambda: value(reg, "sent_items_total", signal="traces") == 3)
    sender.shutdown(1)
    assert len(pusher.pushed) == 3
    assert value(reg, "retries_total", signal="traces") == 2
    assert value(reg, "failed_items_total", signal="traces", reason="retries_exhausted") == 0


def test_permanent_error_is_not_retried():
    pusher = FakePusher([PermanentExportError("bad request")])
    sender, reg = make(pusher)
    sender.start()
    sender.consume_logs(["a", "b"])
    sender.shutdown(2)
    assert len(pusher.pushed) == 1
    assert value(reg, "failed_items_total", signal="logs", reason="permanent") == 2
    assert value(reg, "retries_total", signal="logs") == 0


def test_unexpected_exception_counts_as_permanent_failure():
    sender, reg = make(FakePusher([KeyError("bug")]))
    sender.start()
    sender.consume_traces(["a"])
    sender.shutdown(2)
    assert value(reg, "failed_items_total", signal="traces", reason="permanent") == 1


def test_retry_disabled_gives_up_at_first_retryable_error():
    pusher = FakePusher([RetryableExportError("unavailable")])
    sender, reg = make(pusher, retry=RetryConfig(enabled=False))
    sender.start()
    sender.consume_traces(["a"])
    sender.shutdown(2)
    assert len(pusher.pushed) == 1
    assert value(reg, "failed_items_total", signal="traces", reason="retries_exhausted") == 1


def test_retry_after_beyond_max_elapsed_time_gives_up_at_once():
    pusher = FakePusher(default=RetryableExportError("throttled", retry_after=60))
    sender, reg = make(pusher)  # max_elapsed_time 5 s
    sender.start()
    sender.consume_traces(["a"])
    wait_for(lambda: value(reg, "failed_items_total", signal="traces", reason="retries_exhausted") == 1)
    sender.shutdown(1)
    assert len(pusher.pushed) == 1


def test_max_elapsed_time_bounds_retrying():
    pusher = FakePusher(default=RetryableExportError("unavailable"))
    retry = RetryConfig(initial_interval=0.02, max_interval=0.02, multiplier=1.0, max_elapsed_time=0.1)
    sender, reg = make(pusher, retry=retry)
    sender.start()
    t0 = time.monotonic()
    sender.consume_traces(["a", "b"])
    wait_for(lambda: value(reg, "failed_items_total", signal="traces", reason="retries_exhausted") == 2)
    assert time.monotonic() - t0 < 1.0
    sender.shutdown(1)
    # delays are 0.01..0.03 s: between 3 and 10 attempts fit in 0.1 s
    assert 3 <= len(pusher.pushed) <= 11
    assert value(reg, "retries_total", signal="traces") == len(pusher.pushed) - 1


def test_retry_after_is_a_lower_bound_on_the_delay():
    pusher = FakePusher([RetryableExportError("throttled", retry_after=0.3), 0])
    sender, reg = make(pusher)
    sender.start()
    sender.consume_traces(["a"])
    wait_for(lambda: value(reg, "sent_items_total", signal="traces") == 1)
    sender.shutdown(1)
    (_, _, t1), (_, _, t2) = pusher.pushed
    assert t2 - t1 >= 0.29


def test_partial_success_counts_rejected_items_without_retrying():
    pusher = FakePusher([2])
    sender, reg = make(pusher)
    sender.start()
    sender.consume_traces(["a", "b", "c", "d", "e"])
    sender.shutdown(2)
    assert len(pusher.pushed) == 1
    assert value(reg, "sent_items_total", signal="traces") == 3
    assert value(reg, "failed_items_total", signal="traces", reason="rejected") == 2


@pytest.mark.parametrize("attempt", range(8))
def test_backoff_interval_bounds(attempt):
    retry = RetryConfig(initial_interval=5.0, max_interval=30.0, multiplier=1.5)
    interval = min(5.0 * 1.5**attempt, 30.0)
    assert backoff_interval(retry, attempt, rand=lambda: 0.0) == pytest.approx(0.5 * interval)
    assert backoff_interval(retry, attempt, rand=lambda: 1.0) == pytest.approx(1.5 * interval)
    rng = random.Random(attempt)
    for _ in range(100):
        assert 0.5 * interval <= backoff_interval(retry, attempt, rng.random) <= 1.5 * interval


def test_full_queue_drops_oldest_and_counts_every_item():
    pusher = FakePusher()
    sender, reg = make(pusher, queue=QueueConfig(sizer="requests", queue_size=3))
    for i in range(5):  # not started: nothing leaves the queues
        sender.consume_traces([f"t{i}"] * (i + 1))
    sender.consume_logs(["l"] * 10)
    # each signal's queue holds 3 batches; traces evicted oldest first: t0 (1), t1 (2 items)
    assert value(reg, "dropped_items_total", signal="traces", reason="queue_full") == 1 + 2
    assert value(reg, "dropped_items_total", signal="logs", reason="queue_full") == 0
    assert reg.get_sample_value("ebpf_receiver_exporter_signal_queue_size", {"exporter": "otlp/test", "signal": "traces"}) == 3
    assert reg.get_sample_value("ebpf_receiver_exporter_signal_queue_size", {"exporter": "otlp/test", "signal": "logs"}) == 1
    assert reg.get_sample_value("ebpf_receiver_exporter_signal_queue_capacity", {"exporter": "otlp/test", "signal": "logs"}) == 3
    assert reg.get_sample_value("ebpf_receiver_exporter_queue_size", {"exporter": "otlp/test"}) == 4
    assert reg.get_sample_value("ebpf_receiver_exporter_queue_capacity", {"exporter": "otlp/test"}) == 3
    sender.start()
    sender.shutdown(2)
    traces = [b[0] for s, b, _ in pusher.pushed if s is Signal.TRACES]
    assert traces == ["t2", "t3", "t4"]  # one consumer: in order
    assert [b[0] for s, b, _ in pusher.pushed if s is Signal.LOGS] == ["l"]
    assert value(reg, "sent_items_total", signal="traces") == 3 + 4 + 5
    assert value(reg, "sent_items_total", signal="logs") == 10


def test_shutdown_without_start_counts_queued_as_dropped_and_is_idempotent():
    pusher = FakePusher()
    sender, reg = make(pusher)
    sender.consume_traces(["a", "b"])
    sender.shutdown(1)
    sender.shutdown(1)
    assert value(reg, "dropped_items_total", signal="traces", reason="shutdown") == 2
    assert pusher.pushed == [] and pusher.started == pusher.stopped == 0
    sender.consume_traces(["c"])  # after shutdown: dropped, counted, no error
    assert value(reg, "dropped_items_total", signal="traces", reason="shutdown") == 3
    with pytest.raises(RuntimeError):
        sender.start()


def test_start_is_idempotent():
    pusher = FakePusher()
    sender, _ = make(pusher)
    sender.start()
    sender.start()
    sender.shutdown(1)
    assert pusher.started == 1 and pusher.stopped == 1


def test_shutdown_flushes_queue_within_timeout():
    gate = threading.Event()
    pusher = FakePusher(gate=gate)
    sender, reg = make(pusher)
    sender.start()
    for i in range(5):
        sender.consume_traces([i])
    gate.set()
    sender.shutdown(5)
    assert value(reg, "sent_items_total", signal="traces") == 5


def test_shutdown_gives_up_on_a_backend_that_stays_down():
    pusher = FakePusher(default=RetryableExportError("unavailable"))
    retry = RetryConfig(initial_interval=0.05, max_interval=0.05, multiplier=1.0, max_elapsed_time=0)
    sender, reg = make(pusher, retry=retry)
    sender.start()
    for i in range(4):
        sender.consume_traces([i, i])
    time.sleep(0.1)
    t0 = time.monotonic()
    sender.shutdown(0.3)
    assert time.monotonic() - t0 < 1.0
    assert value(reg, "dropped_items_total", signal="traces", reason="shutdown") == 8
    assert value(reg, "sent_items_total", signal="traces") == 0


def test_shutdown_interrupts_a_long_backoff_at_once():
    pusher = FakePusher(default=RetryableExportError("throttled", retry_after=60))
    sender, reg = make(pusher, retry=RetryConfig(initial_interval=0.01, max_elapsed_time=0))
    sender.start()
    sender.consume_traces(["a"])
    wait_for(lambda: len(pusher.pushed) == 1)
    t0 = time.monotonic()
    sender.shutdown(10)  # the 60 s backoff cannot fit: give up now, not in 10 s
    assert time.monotonic() - t0 < 0.5
    assert value(reg, "dropped_items_total", signal="traces", reason="shutdown") == 1


def test_synchronous_mode_without_queue():
    pusher = FakePusher([RetryableExportError("x"), 0])
    sender, reg = make(pusher, queue=QueueConfig(enabled=False))
    sender.consume_traces(["early"])  # before start: dropped
    sender.start()
    sender.consume_traces(["a", "b"])  # returns after the retry succeeded
    assert value(reg, "sent_items_total", signal="traces") == 2
    assert value(reg, "dropped_items_total", signal="traces", reason="shutdown") == 1
    sender.shutdown(1)
    assert reg.get_sample_value("ebpf_receiver_exporter_queue_capacity", {"exporter": "otlp/test"}) == 0


def test_what_shutdown_drops_is_logged(caplog):
    pusher = FakePusher(default=RetryableExportError("unavailable"))
    sender, reg = make(pusher, retry=RetryConfig(initial_interval=60, max_interval=60, max_elapsed_time=0))
    sender.start()
    sender.consume_traces(["a", "b"])
    wait_for(lambda: len(pusher.pushed) == 1)  # in flight, backing off
    sender.consume_traces(["c"])
    sender.consume_logs(["l"])
    with caplog.at_level("WARNING", logger="receiver.exporters.sending_queue"):
        sender.shutdown(0.1)
    assert value(reg, "dropped_items_total", signal="traces", reason="shutdown") == 3
    assert value(reg, "dropped_items_total", signal="logs", reason="shutdown") == 1
    # each drop is logged once, whether in flight (the worker still tries each queued batch
    # once while time is left) or still queued when time ran out
    logged = {"traces": 0, "logs": 0}
    for record in caplog.records:
        m = re.fullmatch(r"exporter otlp/test: shutdown: dropped (\d+) (\w+) (in flight \(unavailable\)|still queued)", record.getMessage())
        if m:
            logged[m[2]] += int(m[1])
    assert logged == {"traces": 3, "logs": 1}


def test_every_item_is_accounted_for_under_concurrency():
    rng = random.Random(7)
    outcomes = [rng.choice([0, 0, 1, RetryableExportError("u"), PermanentExportError("p")]) for _ in range(400)]
    pusher = FakePusher(outcomes)
    sender, reg = make(pusher, queue=QueueConfig(sizer="requests", queue_size=5), retry=RetryConfig(initial_interval=0.001, max_interval=0.002, max_elapsed_time=0.01))
    sender.start()
    offered = [0]

    def produce(seed):
        r = random.Random(seed)
        for _ in range(50):
            n = r.randint(1, 4)
            sender.consume_traces(list(range(n)))
            with pusher.lock:
                offered[0] += n

    threads = [threading.Thread(target=produce, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sender.shutdown(0.05)
    wait_for(lambda: not any(t.is_alive() for q in sender._queues.values() for t in q.threads))
    total = value(reg, "sent_items_total", signal="traces")
    for reason in ("permanent", "retries_exhausted", "rejected"):
        total += value(reg, "failed_items_total", signal="traces", reason=reason)
    for reason in ("queue_full", "shutdown"):
        total += value(reg, "dropped_items_total", signal="traces", reason=reason)
    assert total == offered[0]
