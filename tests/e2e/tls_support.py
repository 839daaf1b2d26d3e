"""What the TLS, discovery and connection end-to-end tests share: an in-process receiver
feeding a sink with its spans, transactions and data events, and waiting for spans."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from receiver.capture.events import DataEvent, HttpTxEvent
from receiver.receivers.ebpf.receiver import EbpfReceiver

WAIT_S = 30.0


class Sink:
    """Spans (traces consumer), transactions (``on_transactions``) and, per pid, the flags and
    local ports of data events (``on_event``), thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list = []
        self._txs: list = []
        self.data: dict[int, list[tuple[int, int]]] = collections.defaultdict(list)  # pid -> [(flags, local port)]

    def consume_traces(self, spans) -> None:
        with self._lock:
            self._spans.extend(spans)

    def on_transactions(self, batch) -> None:
        with self._lock:
            self._txs.extend(batch)

    def on_event(self, ev) -> None:
        """Data records, and HTTP/1 transactions paired in the kernel (records that carry bytes'
        worth of a connection: both have the TLS flag and the endpoints)."""
        if isinstance(ev, (DataEvent, HttpTxEvent)):
            with self._lock:
                self.data[ev.pid].append((ev.flags, ev.tuple.local_port))

    def spans(self, predicate=lambda s: True) -> list:
        with self._lock:
            return [s for s in self._spans if predicate(s)]

    def transactions(self, predicate=lambda t: True) -> list:
        with self._lock:
            return [t for t in self._txs if predicate(t)]

    def data_events(self, predicate) -> list[tuple[int, int, int]]:
        """(pid, flags, local port) of the data events matching predicate(pid, flags, port)."""
        with self._lock:
            return [(pid, f, p) for pid, evs in self.data.items() for f, p in evs if predicate(pid, f, p)]


@contextmanager
def sink_capture(config) -> Iterator[tuple[EbpfReceiver, Sink]]:
    """The ebpf receiver (``config``: its section) started in this process, its spans,
    transactions and events going to a :class:`Sink`; shut down on exit."""
    sink = Sink()
    receiver = EbpfReceiver(config, traces=[sink], on_transactions=sink.on_transactions, on_event=sink.on_event)
    receiver.start()
    try:
        yield receiver, sink
    finally:
        receiver.shutdown()


def wait_for(get, count: int, what: str, timeout: float = WAIT_S) -> list:
    """get() once it returns at least count items (and a moment later, to see extras)."""
    deadline = time.monotonic() + timeout
    found: list = []
    while time.monotonic() < deadline:
        found = get()
        if len(found) >= count:
            time.sleep(0.3)
            return get()
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {count} {what}; got {len(found)}: {found}")


def pid_of(span) -> int:
    return int(span.resource.get("process.pid", 0))
