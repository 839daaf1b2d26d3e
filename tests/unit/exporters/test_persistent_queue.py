"""The persistent sending queue: file format, crash safety, order, bound, accounting."""

from __future__ import annotations

import os
import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from receiver.config import QueueConfig, RetryConfig
from receiver.exporters.errors import PermanentExportError, RetryableExportError
from receiver.exporters.sending_queue import QueuedRetryingSender
from receiver.model.signals import Signal
from receiver.exporters.persistent_queue import (
    HEADER,
    BatchStorage,
    CorruptBatchError,
    StorageError,
    decode_batch,
    encode_batch,
    exporter_directory,
)
from receiver.component.self_metrics import SelfMetrics

FAST_RETRY = RetryConfig(initial_interval=0.01, max_interval=0.02, multiplier=2.0, max_elapsed_time=5.0)


class SerializingPusher:
    """A fake transport with the persistent-queue interface: batches are lists of str items,
    serialized as comma-joined text.  Plays a script of outcomes (int rejected or exception)."""

    def __init__(self, script=(), default=0, gate: threading.Event | None = None):
        self.script = list(script)
        self.default = default
        self.gate = gate
        self.pushed: list[tuple[Signal, list[str]]] = []
        self.lock = threading.Lock()

    def start(self):
        pass

    def shutdown(self):
        pass

    def serialize(self, signal, batch):
        if "unencodable" in batch:
            raise PermanentExportError("cannot encode")
        return ",".join(batch).encode()

    def push(self, signal, batch):
        return self.push_serialized(signal, self.serialize(signal, batch))

    def push_serialized(self, signal, data):
        if self.gate is not None:
            self.gate.wait(5)
        with self.lock:
            self.pushed.append((signal, data.decode().split(",")))
            outcome = self.script.pop(0) if self.script else self.default
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def items(self) -> list[str]:
        with self.lock:
            return [item for _, batch in self.pushed for item in batch]


def make(pusher, storage, queue_size=10, retry=FAST_RETRY, exporter_id="otlp/disk", **queue):
    metrics = SelfMetrics(CollectorRegistry())
    queue = QueueConfig(sizer="requests", **{"queue_size": queue_size, "storage": str(storage), "num_consumers": 1, **queue})
    return QueuedRetryingSender(exporter_id, pusher, metrics, queue, retry), metrics.registry


def value(registry, name, exporter="otlp/disk", **labels) -> float:
    return registry.get_sample_value(f"ebpf_receiver_exporter_{name}", {"exporter": exporter, **labels}) or 0.0


def batch_files(directory) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".batch"))


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.005)
    raise AssertionError("condition not reached in time")


# --- the file format ---------------------------------------------------------------------------


def test_batch_file_round_trip_and_header_layout():
    data = encode_batch(Signal.METRICS, 7, b"payload")
    assert len(HEADER.pack(b"ERXQ", 1, 2, 7, 7, 0)) == 20
    assert data[:4] == b"ERXQ" and data[4] == 1 and data[5] == 2 and data[20:] == b"payload"
    assert decode_batch(data) == (Signal.METRICS, 7, b"payload")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: b"XXXX" + d[4:],  # magic
        lambda d: d[:4] + b"\x09" + d[5:],  # version
        lambda d: d[:5] + b"\x07" + d[6:],  # signal
        lambda d: d[:-1],  # truncated payload
        lambda d: d[:-1] + bytes([d[-1] ^ 1]),  # flipped bit: checksum
        lambda d: d[:10],  # truncated header
    ],
)
def test_corrupt_batch_files_are_recognised(mangle):
    with pytest.raises(CorruptBatchError):
        decode_batch(mangle(encode_batch(Signal.TRACES, 1, b"abc")))


@pytest.mark.parametrize(
    ("exporter_id", "name"),
    [("otlp", "otlp"), ("otlp/vendor", "otlp-vendor"), ("otlphttp/a b", "otlphttp-a%20b"), ("otlp/..", "otlp-..")],
)
def test_each_exporter_gets_its_own_directory(exporter_id, name):
    assert exporter_directory("/var/lib/q", exporter_id) == f"/var/lib/q/{name}"


def test_storage_writes_atomically_and_reopens_in_order(tmp_path):
    storage = BatchStorage(str(tmp_path / "q"))
    assert storage.open() == ([], 0)
    first = storage.write(Signal.TRACES, 2, b"one")
    second = storage.write(Signal.LOGS, 1, b"two")
    assert [os.path.basename(b.path) for b in (first, second)] == ["00000000000000000000.batch", "00000000000000000001.batch"]
    assert not [n for n in os.listdir(tmp_path / "q") if n.endswith(".tmp")]
    (tmp_path / "q" / ".00000000000000000009.tmp").write_bytes(b"half a batch")  # a write cut short
    (tmp_path / "q" / "README").write_text("not ours")  # left alone
    storage.close()
    storage.close()

    again = BatchStorage(str(tmp_path / "q"))
    found, discarded = again.open()
    assert discarded == 0
    assert [(b.seq, b.signal, b.items) for b in found] == [(0, Signal.TRACES, 2), (1, Signal.LOGS, 1)]
    assert [again.read(b) for b in found] == [b"one", b"two"]
    assert sorted(os.listdir(tmp_path / "q")) == [".lock", "00000000000000000000.batch", "00000000000000000001.batch", "README"]
    assert again.write(Signal.TRACES, 1, b"three").seq == 2  # numbering continues
    again.close()


def test_one_directory_one_agent(tmp_path):
    first = BatchStorage(str(tmp_path))
    first.open()
    with pytest.raises(StorageError, match=f"in use by another process \\(pid {os.getpid()}\\)"):
        BatchStorage(str(tmp_path)).open()
    first.close()
    BatchStorage(str(tmp_path)).open()


def test_unreadable_files_are_discarded_on_open(tmp_path):
    (tmp_path / "00000000000000000003.batch").write_bytes(b"garbage")
    storage = BatchStorage(str(tmp_path))
    assert storage.open() == ([], 1)
    assert batch_files(tmp_path) == []


# --- the sender with a persistent queue ---------------------------------------------------------


def test_batches_survive_a_restart_and_go_first(tmp_path):
    down = SerializingPusher(default=RetryableExportError("unavailable"))
    sender, reg = make(down, tmp_path, retry=RetryConfig(initial_interval=60, max_interval=60, max_elapsed_time=0))
    sender.start()
    sender.consume_traces(["a1", "a2"])
    sender.consume_logs(["l1"])
    sender.consume_traces(["a3"])
    wait_for(lambda: len(down.pushed) == 2)  # a1 and l1 in flight, backing off for 60 s
    sender.shutdown(0.2)
    directory = exporter_directory(str(tmp_path), "otlp/disk")
    assert len(batch_files(directory)) == 3  # kept on disk, the in-flight batch too
    for reason in ("shutdown", "queue_full", "storage_error"):
        assert value(reg, "dropped_items_total", signal="traces", reason=reason) == 0

    up = SerializingPusher()
    sender, reg = make(up, tmp_path)
    sender.start()
    sender.consume_traces(["new"])
    sender.shutdown(5)
    # each signal's queue in order (the signals' consumers run independently)
    assert [b for s, b in up.pushed if s is Signal.TRACES] == [["a1", "a2"], ["a3"], ["new"]]
    assert [b for s, b in up.pushed if s is Signal.LOGS] == [["l1"]]
    assert value(reg, "sent_items_total", signal="traces") == 4
    assert value(reg, "sent_items_total", signal="logs") == 1
    assert batch_files(directory) == []


def test_a_batch_in_flight_when_the_process_dies_is_sent_again_once(tmp_path):
    gate = threading.Event()
    pusher = SerializingPusher(gate=gate)
    sender, _ = make(pusher, tmp_path)
    sender.start()
    sender.consume_traces(["x1"])
    sender.consume_traces(["x2"])
    wait_for(lambda: len(sender._queues[Signal.TRACES]) == 1)  # x1 in flight (blocked at the gate), x2 queued
    # The backend takes x1, but the process "dies" before the worker removes the file:
    # simulated by dropping the sender (its daemon thread stays blocked) and its lock.
    sender._storage.close()

    again = SerializingPusher()
    sender2, reg = make(again, tmp_path)
    sender2.start()
    sender2.shutdown(5)
    assert again.items() == ["x1", "x2"]  # x1 a second time: the one duplicate allowed
    sender._queues[Signal.TRACES].give_up()  # let the "dead" worker go
    gate.set()


def test_queue_size_bounds_the_files_and_counts_what_it_evicts(tmp_path):
    sender, reg = make(SerializingPusher(), tmp_path, queue_size=3)
    for i in range(5):  # not started: nothing leaves the queue
        sender.consume_traces([f"t{i}"] * (i + 1))
    directory = exporter_directory(str(tmp_path), "otlp/disk")
    assert len(batch_files(directory)) == 3
    assert value(reg, "dropped_items_total", signal="traces", reason="queue_full") == 1 + 2  # t0, t1
    assert reg.get_sample_value("ebpf_receiver_exporter_queue_size", {"exporter": "otlp/disk"}) == 3
    sender._storage.close()

    smaller = SerializingPusher()
    sender, reg = make(smaller, tmp_path, queue_size=2)  # restart with a smaller queue
    sender.start()
    sender.shutdown(5)
    assert value(reg, "dropped_items_total", signal="traces", reason="queue_full") == 3  # t2
    assert smaller.items() == ["t3"] * 4 + ["t4"] * 5


def test_settled_batches_leave_the_disk(tmp_path):
    pusher = SerializingPusher([PermanentExportError("bad request"), 1, RetryableExportError("busy"), 0])
    sender, reg = make(pusher, tmp_path)
    sender.start()
    sender.consume_traces(["p"])  # permanent: failed, removed
    sender.consume_traces(["r1", "r2"])  # partial success: one rejected, removed
    sender.consume_traces(["s"])  # retried, then sent
    sender.consume_traces(["unencodable"])  # never reaches the disk
    sender.shutdown(5)
    assert batch_files(exporter_directory(str(tmp_path), "otlp/disk")) == []
    assert value(reg, "failed_items_total", signal="traces", reason="permanent") == 2
    assert value(reg, "failed_items_total", signal="traces", reason="rejected") == 1
    assert value(reg, "sent_items_total", signal="traces") == 2
    assert value(reg, "retries_total", signal="traces") == 1


def test_a_corrupted_batch_is_dropped_and_counted(tmp_path):
    sender, reg = make(SerializingPusher(), tmp_path)
    sender.consume_traces(["a", "b"])
    sender.consume_traces(["c"])
    directory = exporter_directory(str(tmp_path), "otlp/disk")
    first = os.path.join(directory, batch_files(directory)[0])
    with open(first, "r+b") as f:  # flip a payload byte behind the sender's back
        f.seek(HEADER.size)
        f.write(b"X")
    pusher = sender._exporter
    sender.start()
    sender.shutdown(5)
    assert pusher.items() == ["c"]
    assert value(reg, "dropped_items_total", signal="traces", reason="storage_error") == 2
    assert batch_files(directory) == []


def test_a_write_failure_is_counted_not_raised(tmp_path):
    sender, reg = make(SerializingPusher(), tmp_path)
    sender.start()
    sender._storage.directory = str(tmp_path / "gone")  # as if the disk went away (root ignores modes)
    sender.consume_traces(["a", "b", "c"])
    sender.shutdown(2)
    assert value(reg, "dropped_items_total", signal="traces", reason="storage_error") == 3


def test_persistent_storage_needs_a_queue(tmp_path):
    metrics = SelfMetrics(CollectorRegistry())
    with pytest.raises(ValueError, match="needs sending_queue.enabled"):
        QueuedRetryingSender("y", SerializingPusher(), metrics, QueueConfig(enabled=False, storage=str(tmp_path)), FAST_RETRY)


def test_a_second_sender_on_the_same_directory_fails_to_start(tmp_path):
    first, _ = make(SerializingPusher(), tmp_path)
    first.start()
    second, _ = make(SerializingPusher(), tmp_path)
    with pytest.raises(OSError, match="in use"):
        second.start()
    first.shutdown(1)
    second.shutdown(1)
