"""BatchProcessor: size and timeout triggers, splitting, flush on shutdown."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from receiver.config import BatchProcessorConfig
from receiver.model.signals import Signal
from receiver.processors.batch import BatchProcessor, take_items
from receiver.model.telemetry import Metric, MetricKind, SumPoint
from receiver.component.self_metrics import SelfMetrics



class Sink:
    def __init__(self):
        self.batches: dict[str, list[list]] = {"traces": [], "metrics": [], "logs": []}
        self.times: list[float] = []
        self.lock = threading.Lock()

    def _add(self, signal, batch):
        with self.lock:
            self.batches[signal].append(batch)
            self.times.append(time.monotonic())

    def consume_traces(self, batch):
        self._add("traces", batch)

    def consume_metrics(self, batch):
        self._add("metrics", batch)

    def consume_logs(self, batch):
        self._add("logs", batch)


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.002)
    raise AssertionError("condition not reached in time")


def points(n: int, name="m") -> Metric:
    return Metric(name, "", "1", MetricKind.SUM, [SumPoint((("i", i),), 0, 1, i) for i in range(n)])


def test_size_trigger_sends_without_waiting_for_the_timer():
    sink = Sink()
    proc = BatchProcessor(BatchProcessorConfig(send_batch_size=3, timeout=10), [sink])
    proc.start()
    proc.consume_traces([1, 2])
    time.sleep(0.05)
    assert sink.batches["traces"] == []
    proc.consume_traces([3, 4])
    wait_for(lambda: sink.batches["traces"])
    assert sink.batches["traces"] == [[1, 2, 3, 4]]  # no max size: everything pending goes
    proc.shutdown(1)


def test_timeout_trigger_sends_partial_batches():
    sink = Sink()
    proc = BatchProcessor(BatchProcessorConfig(send_batch_size=100, timeout=0.1), [sink])
    proc.start()
    t0 = time.monotonic()
    proc.consume_logs(["a"])
    proc.consume_logs(["b"])
    wait_for(lambda: sink.batches["logs"])
    assert sink.batches["logs"] == [["a", "b"]]
    assert 0.09 <= sink.times[0] - t0 < 1.0
    proc.shutdown(1)


def test_max_size_splits_and_remainder_waits_for_the_timer():
    sink = Sink()
    proc = BatchProcessor(BatchProcessorConfig(send_batch_size=4, send_batch_max_size=5, timeout=0.2), [sink])
    proc.start()
    proc.consume_traces(list(range(12)))
    wait_for(lambda: len(sink.batches["traces"]) == 2)
    assert sink.batches["traces"] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    wait_for(lambda: len(sink.batches["traces"]) == 3)
    assert sink.batches["traces"][2] == [10, 11]
    proc.shutdown(1)


def test_zero_timeout_sends_at_once():
    sink = Sink()
    proc = BatchProcessor(BatchProcessorConfig(send_batch_size=1000, timeout=0), [sink])
    proc.start()
    proc.consume_traces([1])
    wait_for(lambda: sink.batches["traces"] == [[1]])
    proc.shutdown(1)


def test_metrics_are_counted_and_split_by_data_points():
    sink = Sink()
    proc = BatchProcessor(BatchProcessorConfig(send_batch_size=4, send_batch_max_size=4, timeout=10), [sink])
    proc.start()
    proc.consume_metrics([points(3, "a"), points(0, "empty"), points(3, "b")])
    wait_for(lambda: sink.batches["metrics"])
    (batch,) = sink.batches["metrics"]
    assert [(m.name, len(m.points)) for m in batch] == [("a", 3), ("b", 1)]
    proc.shutdown(1)
    rest = sink.batches["metrics"][1]
    assert [(m.name, [p.value for p in m.points]) for m in rest] == [("b", [1, 2])]


def test_take_items():
    assert take_items(Signal.TRACES, [1, 2, 3], 2) == ([1, 2], [3], 2)
    assert take_items(Signal.TRACES, [1], 5) == ([1], [], 1)
    taken, rest, n = take_items(Signal.METRICS, [points(2, "a"), points(2, "b")], 3)
    assert n == 3 and [len(m.points) for m in taken] == [2, 1] and [len(m.points) for m in rest] == [1]


def test_shutdown_flushes_everything_and_fans_out():
    sinks = [Sink(), Sink()]
    metrics = SelfMetrics(CollectorRegistry())
    proc = BatchProcessor(BatchProcessorConfig(send_batch_size=100, send_batch_max_size=100, timeout=60), sinks, metrics)
    proc.start()
    proc.consume_traces(list(range(150)))
    proc.consume_logs(["x"])
    proc.shutdown(1)
    proc.shutdown(1)
    for sink in sinks:
        assert [len(b) for b in sink.batches["traces"]] == [100, 50]
        assert sink.batches["logs"] == [["x"]]
    reg = metrics.registry
    assert reg.get_sample_value("ebpf_receiver_processor_batch_sends_total", {"signal": "traces", "trigger": "size"}) == 1
    assert reg.get_sample_value("ebpf_receiver_processor_batch_sends_total", {"signal": "traces", "trigger": "shutdown"}) == 1


def test_shutdown_without_start_flushes_and_late_data_passes_through():
    sink = Sink()
    proc = BatchProcessor(BatchProcessorConfig(), [sink])
    proc.consume_traces([1, 2])
    proc.shutdown(1)
    assert sink.batches["traces"] == [[1, 2]]
    proc.consume_traces([3])
    assert sink.batches["traces"] == [[1, 2], [3]]


def test_a_failing_consumer_does_not_stop_the_others():
    class Broken(Sink):
        def consume_traces(self, batch):
            raise RuntimeError("boom")

    sink = Sink()
    proc = BatchProcessor(BatchProcessorConfig(send_batch_size=1), [Broken(), sink])
    proc.start()
    proc.consume_traces([1])
    proc.consume_traces([2])
    wait_for(lambda: sum(map(len, sink.batches["traces"])) == 2)
    proc.shutdown(1)


def test_bad_config():
    with pytest.raises(ValueError):
        BatchProcessor(BatchProcessorConfig(send_batch_size=10, send_batch_max_size=5), [])


def test_many_producers_lose_nothing_silently():
    sink = Sink()
    proc = BatchProcessor(BatchProcessorConfig(send_batch_size=64, send_batch_max_size=100, timeout=0.01), [sink],
                          backlog_items=200)
    proc.start()

    def produce(k):
        for i in range(500):
            proc.consume_traces([(k, i)])

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    proc.shutdown(1)
    got = [x for b in sink.batches["traces"] for x in b]
    assert len(got) == len(set(got))
    assert set(got) <= {(k, i) for k in range(4) for i in range(500)}
    # What the bound (200 waiting) refused is counted, the rest delivered.
    assert len(got) + proc.refused[Signal.TRACES] == 2000
    assert max(map(len, sink.batches["traces"])) <= 100


def test_backlog_over_the_bound_is_refused_counted_and_reported():
    from receiver.component.backpressure import Backpressure

    sink, sm, bp = Sink(), SelfMetrics(), Backpressure()
    proc = BatchProcessor(BatchProcessorConfig(send_batch_size=10, timeout=60), [sink], sm, bp, backlog_items=20)
    proc.consume_traces(list(range(15)))
    proc.consume_traces(list(range(5)))  # 20 waiting: the bound
    proc.consume_traces([99])  # refused
    proc.consume_logs(list(range(50)))  # an empty signal takes one oversize arrival
    assert proc.refused[Signal.TRACES] == 1 and proc.refused[Signal.LOGS] == 0
    assert bp.take() == 1 and bp.take() == 0
    text = generate_latest(sm.registry).decode()
    assert 'ebpf_receiver_processor_dropped_items_total{processor="batch",reason="backlog",signal="traces"} 1.0' in text
    proc.shutdown(1)
    assert sum(map(len, sink.batches["traces"])) == 20 and sum(map(len, sink.batches["logs"])) == 50


def _span(path: str):
    from receiver.model.telemetry import Resource, Span, SpanKind

    return Span(b"t" * 16, b"s" * 8, "GET", SpanKind.SERVER, 1, 2, Resource(), attributes={"url.path": path})


def test_backlog_is_bounded_in_bytes_whatever_the_item_count():
    from receiver.component.backpressure import Backpressure
    from receiver.model.footprint import span_bytes

    big = [_span("/p" * 5000) for _ in range(4)]  # ~10 KB each, estimated
    one = span_bytes(big[0])
    sink, bp = Sink(), Backpressure()
    cfg = BatchProcessorConfig(send_batch_size=1000, timeout=60, max_backlog_bytes=5 * one)
    proc = BatchProcessor(cfg, [sink], backpressure=bp)
    proc.consume_traces(big)  # 4 spans, far below 1000 items: goes in
    proc.consume_traces(big[:1])  # the 5th fills the bound exactly
    proc.consume_traces(big[:1])  # over the bound in bytes: refused with 5 items waiting
    assert proc.refused[Signal.TRACES] == 1 and bp.take() == 1
    _, used, bound, unit = proc.status().queues[0]
    assert unit == "bytes" and used == 5 * one and bound == 5 * one
    small = [_span("/") for _ in range(3)]
    proc.consume_traces(small)  # still over: refused too, bytes not items decide
    assert proc.refused[Signal.TRACES] == 4
    proc.shutdown(1)
    assert sum(map(len, sink.batches["traces"])) == 5
    assert proc.status().queues[0][1] == 0  # sending took the bytes with the items


def test_taking_a_batch_releases_its_share_of_the_bytes():
    sink = Sink()
    proc = BatchProcessor(BatchProcessorConfig(send_batch_size=4, send_batch_max_size=4, timeout=60), [sink])
    proc.consume_traces([_span("/a") for _ in range(10)])
    before = proc.status().queues[0][1]
    proc._flush(final=False)  # two size-triggered batches of 4; 2 wait for the timer
    after = proc.status().queues[0][1]
    assert before > 0 and after == before * 2 // 10
    proc.shutdown(1)
    assert [len(b) for b in sink.batches["traces"]] == [4, 4, 2]


def test_max_backlog_bytes_is_read_from_the_config_with_units():
    from receiver.config import load_config_text

    text = """
receivers: {ebpf: {}}
processors: {batch: {max_backlog_bytes: 8MiB}}
exporters: {debug: {}}
service: {pipelines: {traces: {receivers: [ebpf], processors: [batch], exporters: [debug]}}}
"""
    cfg = load_config_text(text)
    assert cfg.processors["batch"].max_backlog_bytes == 8 * 2**20
