"""The sending queue: what turns a push exporter into a pipeline consumer (the Collector's exporterhelper).

An exporter implements only :class:`PushExporter`: ``serialize(signal, batch)`` makes the OTLP
export request, ``push_serialized(signal, data)`` sends one, synchronously, once, and either
returns the number of items the backend rejected in a partial success (usually 0) or raises a
classified :class:`~receiver.exporters.errors.ExportError`.  :class:`QueuedRetryingSender` wraps
it into what the pipeline calls (``consume_*``):

* **One queue per signal**, each with ``sending_queue.num_consumers`` worker threads: a signal
  whose backend is slow, down or refusing its requests never holds up another.  ``consume_*``
  never blocks on the backend and never raises for a full queue.
  ``num_consumers`` defaults to 2, not the Collector's 10: Go consumers encode in parallel on
  every core, here Python's GIL runs one encoding at a time, so consumers only overlap waits on
  the network.  The per-signal queues already keep signals apart; a second consumer keeps a
  signal flowing while one request waits for a slow answer or backs off.  More threads buy
  little and cost memory, GIL turns taken from the capture thread, and, with a persistent
  queue, more requests sent twice after a crash.
* **Bounds** (``sending_queue.sizer``): each signal's queue holds at most ``queue_size``
  requests (batches as they arrive), items (spans, log records, metric data points) or bytes
  (of the serialized request; batches are then encoded when queued, in the caller's thread).
  When full, the **oldest** queued requests are evicted to make room, their items counted as
  dropped (``queue_full``): fresh data is worth more than stale data to an observer, and for
  cumulative metrics the newest batch supersedes the older ones.
* **Request size** (``sending_queue.batch``): a request over ``max_size`` (bytes of the
  serialized request, or items) is split before sending into near-equal parts under the limit
  (:mod:`receiver.exporters.otlp_split`); a single item over it cannot be sent and is counted
  failed (``too_large``).
* **Too large is split, not retried**: a request the backend refuses for its size
  (:class:`~receiver.exporters.errors.RequestTooLargeError`: gRPC "message larger than max",
  HTTP 413) is split in halves and each half sent, recursively; a single item refused so is
  counted failed (``too_large``).
* **Retries** (``retry_on_failure``, :mod:`receiver.exporters.retry`): a retryable failure is
  retried after a randomised exponential backoff until ``max_elapsed_time``, then counted failed
  (``retries_exhausted``).  A consumer retrying holds up only the requests behind it in its own
  signal's queue, and only when every consumer of that queue is retrying.
* **Persistent queue** (``sending_queue.storage``): each request is serialized, split to
  ``max_size`` and written to its own file (:mod:`receiver.exporters.persistent_queue`) before
  ``consume_*`` returns; the file is removed once its request is settled.  On start, the files
  found are queued first, oldest first.  At shutdown whatever could not be sent in time stays
  on disk (logged, not counted as dropped): delivery is at-least-once — a crash re-sends the
  requests in flight (at most one per consumer thread), and a request the backend split after
  refusing it is sent whole again after a restart if the process stops before all its parts
  are settled.
* ``sending_queue.enabled: false`` sends synchronously in the caller's thread (splitting and
  retries included), as the Collector does.

Accounting: every item given to ``consume_*`` ends up in exactly one counter of
:class:`~receiver.component.self_metrics.SelfMetrics` — sent, failed (``permanent``,
``retries_exhausted``, ``rejected``, ``too_large``) or dropped (``queue_full``, ``shutdown``,
``storage_error``) — or, with a persistent queue, stays on disk for the next start.

Shutdown: ``shutdown(timeout)`` stops accepting data and lets the consumers drain their queues
(still retrying, as long as a backoff ends before the deadline).  A consumer that cannot retry
in time gives up its signal's queue at once; at the deadline every queue is given up.  What is
still queued, and what was in flight, is counted dropped (``shutdown``) and logged — or, with a
persistent queue, kept on disk.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from typing import TYPE_CHECKING, Callable, Protocol

from receiver.component.status import ComponentStatus
from receiver.exporters.crash_ledger import CrashLedger
from receiver.exporters.errors import (
    PermanentExportError,
    RequestTooLargeError,
    RetryableExportError,
)
from receiver.exporters.exporter_metrics import ExporterMetrics, SignalCounters
from receiver.exporters.otlp_split import RequestPart, split_request
from receiver.exporters.persistent_queue import BatchStorage, exporter_directory
from receiver.exporters.retry import next_delay
from receiver.exporters.signal_queue import QueueEntry, SignalQueue
from receiver.model.signals import Signal, count_items

if TYPE_CHECKING:
    from receiver.component.backpressure import Backpressure
    from receiver.component.self_metrics import SelfMetrics
    from receiver.exporters.config import QueueConfig, RetryConfig
    from receiver.model.telemetry import LogRecord, Metric, Span

log = logging.getLogger(__name__)

# Time given to consumers, after the exporter was shut down (cancelling calls in flight), to
# account for what they held.
_SETTLE_GRACE = 1.0

_TOO_LARGE = object()  # what _deliver returns when the backend refused the request for its size


class PushExporter(Protocol):
    """What a concrete exporter implements (a transport; no queueing, no retrying).

    Called from several threads at once (the queues' consumers): both methods must be thread-safe.
    """

    def start(self) -> None:
        """Acquire resources (channels, sessions).  Called once, before the first push."""

    def serialize(self, signal: Signal, batch: list) -> bytes:
        """The batch as a serialized OTLP export request; :class:`PermanentExportError` if it cannot be."""

    def push_serialized(self, signal: Signal, data: bytes) -> int:
        """Send one serialized request once (possibly made in an earlier process).

        Return how many items the backend rejected (partial success); raise a classified
        :class:`~receiver.exporters.errors.ExportError` on failure.
        """

    def shutdown(self) -> None:
        """Release resources; may interrupt a push in flight in another thread."""


class QueuedRetryingSender:
    """Per-signal bounded queues + consumer threads + splitting + retries around a :class:`PushExporter`.

    The list passed to ``consume_*`` is kept by reference: the caller must not mutate it afterwards.
    ``exporter_metrics`` is shared by the exporters of one :class:`SelfMetrics` (made here if not given).
    """

    def __init__(
        self,
        exporter_id: str,
        exporter: PushExporter,
        self_metrics: SelfMetrics,
        queue: QueueConfig,
        retry: RetryConfig,
        *,
        rand: Callable[[], float] = random.random,
        exporter_metrics: ExporterMetrics | None = None,
        backpressure: Backpressure | None = None,
    ) -> None:
        if queue.enabled and queue.queue_size < 1:
            raise ValueError(f"exporter {exporter_id}: sending_queue.queue_size must be >= 1")
        if queue.num_consumers < 1:
            raise ValueError(f"exporter {exporter_id}: sending_queue.num_consumers must be >= 1")
        self._storage: BatchStorage | None = None
        if queue.storage is not None:
            if not queue.enabled:
                raise ValueError(f"exporter {exporter_id}: sending_queue.storage needs sending_queue.enabled")
            self._storage = BatchStorage(exporter_directory(queue.storage, exporter_id))
        # What the pipelines feeding a persistent queue hold in memory, counted after a crash.
        self.crash_ledger = CrashLedger(self._storage.directory) if self._storage is not None else None
        self.exporter_id = exporter_id
        self._exporter = exporter
        self._queue_enabled = queue.enabled
        self._num_consumers = queue.num_consumers
        self._sizer = queue.sizer
        self._capacity = queue.queue_size if queue.enabled else 0
        self._max_size = queue.batch.max_size
        self._max_size_in_bytes = queue.batch.sizer == "bytes"
        # Requests are encoded when queued if their size in bytes is needed then (sizer bytes)
        # or they go to disk; otherwise by the consumer that sends them.
        self._encode_when_queued = queue.storage is not None or queue.sizer == "bytes"
        self._retry = retry
        self._rand = rand
        self._backpressure = backpressure  # told of queue_full drops: the receivers shed upstream
        metrics = exporter_metrics if exporter_metrics is not None else ExporterMetrics(self_metrics)
        self._counters = {s: SignalCounters(metrics, exporter_id, s) for s in Signal}
        self._queues = {s: SignalQueue(s, self._capacity) for s in Signal}

        self._lock = threading.Lock()  # lifecycle flags
        self._start_lock = threading.Lock()  # serialises start()
        self._storage_lock = threading.Lock()  # serialises opening the storage
        self._stopping = threading.Event()  # shutdown began: backoffs re-check the deadline
        self._deadline: float | None = None  # monotonic; set once, before _stopping
        self._started = False
        self._shut_down = False
        # For status pages: consumers in a backoff now, per signal, and the last failure seen.
        self._retrying = {s: 0 for s in Signal}
        self._last_error: tuple[str, float] | None = None

        for signal, q in self._queues.items():
            metrics.signal_queue_size.labels(exporter_id, signal.value).set_function(lambda q=q: q.used)
            metrics.signal_queue_capacity.labels(exporter_id, signal.value).set(self._capacity)
        self_metrics.exporter_queue_capacity.labels(exporter_id).set(self._capacity)
        queues = tuple(self._queues.values())
        self_metrics.exporter_queue_size.labels(exporter_id).set_function(lambda: sum(q.used for q in queues))

    def status(self) -> ComponentStatus:
        """Queues, whether a consumer is in a retry backoff now, and the last export failure."""
        retrying = sum(self._retrying.values())
        state = "stopped" if self._shut_down else ("retrying" if retrying else ("running" if self._started else "created"))
        queues = tuple((s.value, q.used, self._capacity, self._sizer) for s, q in self._queues.items())
        error, at = self._last_error or ("", 0.0)
        return ComponentStatus(state, queues, error, at, (("consumers in backoff", str(retrying)),))

    # -- what the pipeline calls ---------------------------------------------------------------

    def consume_traces(self, spans: list[Span]) -> None:
        self.consume(Signal.TRACES, spans)

    def consume_metrics(self, metrics: list[Metric]) -> None:
        self.consume(Signal.METRICS, metrics)

    def consume_logs(self, records: list[LogRecord]) -> None:
        self.consume(Signal.LOGS, records)

    def consume(self, signal: Signal, batch: list) -> None:
        """Queue a batch (never blocks on the backend, never raises for a full queue)."""
        if not batch:
            return
        n = count_items(signal, batch)
        self._consume(signal, batch, n)
        if self.crash_ledger is not None:  # on disk or counted: settled (after the file's rename)
            self.crash_ledger.settle(signal, n)

    def _consume(self, signal: Signal, batch: list, n: int) -> None:
        q = self._queues[signal]
        if not self._queue_enabled:
            if self._started and not self._shut_down:
                self._export(QueueEntry(signal, n, 0, batch=batch), q)
            else:
                self._counters[signal].dropped["shutdown"].inc(n)
            return
        if self._shut_down:
            self._counters[signal].dropped["shutdown"].inc(n)
            return
        if not self._encode_when_queued:
            self._enqueue(q, QueueEntry(signal, n, 1 if self._sizer == "requests" else n, batch=batch))
            return
        payload = self._serialize(signal, batch, n)
        if payload is None:
            return
        for part in self._fit(signal, RequestPart(n, payload)):
            if self._storage is not None:
                entry = self._store(signal, part)
                if entry is None:
                    continue
            else:
                entry = QueueEntry(signal, part.items, self._size_of(part.items, len(part.data)), payload=part.data)
            self._enqueue(q, entry)

    def start(self) -> None:
        """Open the persistent queue if any, start the exporter, then the consumers.

        Idempotent; fails after shutdown.  Requests a previous run left on disk go first.
        Each signal's consumers start with its first request.
        """
        with self._start_lock:
            with self._lock:
                if self._shut_down:
                    raise RuntimeError(f"exporter {self.exporter_id} was shut down and cannot restart")
                if self._started:
                    return
            self._open_storage()
            self._exporter.start()
            with self._lock:
                self._started = True
            if self._queue_enabled:
                for q in self._queues.values():
                    self._start_consumers(q, only_if_queued=True)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush what can be sent within ``timeout`` seconds, count the rest dropped, close.

        Idempotent, and safe without :meth:`start` (then nothing is sent).  With a persistent
        queue the rest stays on disk instead.
        """
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
            self._deadline = deadline = time.monotonic() + max(0.0, timeout)
        self._stopping.set()
        for q in self._queues.values():
            q.drain()
        threads = [t for q in self._queues.values() for t in q.threads]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        leftovers = [entry for q in self._queues.values() for entry in q.close()]
        self._report_leftovers(leftovers)
        if self._started:
            try:
                self._exporter.shutdown()  # cancels calls in flight
            except Exception:
                log.exception("exporter %s: error while shutting down", self.exporter_id)
        settle = time.monotonic() + _SETTLE_GRACE
        for thread in threads:
            thread.join(max(0.0, settle - time.monotonic()))
        if self._storage is not None:
            self._storage.close()
        if self.crash_ledger is not None and (unsettled := self.crash_ledger.close()):
            log.warning("exporter %s: crash ledger: entered minus settled at shutdown %s (items lost uncounted "
                        "upstream; the next start counts them)", self.exporter_id, {s.value: n for s, n in unsettled.items()})

    def _report_leftovers(self, leftovers: list[QueueEntry]) -> None:
        if leftovers and self._storage is not None:
            log.warning(
                "exporter %s: shutdown: %d batches (%d items) not sent in time stay in %s for the next start",
                self.exporter_id, len(leftovers), sum(e.items for e in leftovers), self._storage.directory,
            )
            return
        by_signal: dict[Signal, int] = {}
        for entry in leftovers:
            by_signal[entry.signal] = by_signal.get(entry.signal, 0) + entry.items
        for signal, n in by_signal.items():
            self._counters[signal].dropped["shutdown"].inc(n)
            log.warning("exporter %s: shutdown: dropped %d %s still queued", self.exporter_id, n, signal.value)

    # -- the queues -----------------------------------------------------------------------------

    def _size_of(self, items: int, nbytes: int) -> int:
        """A request's size in the queue's sizer unit."""
        if self._sizer == "bytes":
            return nbytes
        return items if self._sizer == "items" else 1

    def _enqueue(self, q: SignalQueue, entry: QueueEntry) -> None:
        discarded, reason = q.put(entry)
        if entry in discarded and reason == "queue_full":
            log.warning(
                "exporter %s: a %s request of %d (%s) is larger than sending_queue.queue_size %d: dropped",
                self.exporter_id, entry.signal.value, entry.size, self._sizer, q.capacity,
            )
        for old in discarded:
            self._discard(old, reason)
        if self._started:
            self._start_consumers(q, only_if_queued=False)

    def _start_consumers(self, q: SignalQueue, only_if_queued: bool) -> None:
        name = f"exporter-{self.exporter_id}-{q.signal.value}"
        q.start_consumers(self._run, self._num_consumers, name, only_if_queued)

    def _discard(self, entry: QueueEntry, reason: str) -> None:
        """Count a request that will not be sent as dropped, and forget its file."""
        self._counters[entry.signal].dropped[reason].inc(entry.items)
        if reason == "queue_full" and self._backpressure is not None:
            self._backpressure.refused(entry.items)
        if entry.stored is not None and self._storage is not None:
            self._storage.remove(entry.stored)

    def _open_storage(self) -> None:
        """Open the persistent queue once; what a previous run left is queued first."""
        storage = self._storage
        if storage is None:
            return
        with self._storage_lock:
            if storage.is_open or self._shut_down:  # after shutdown, a write fails (and is counted)
                return
            found, discarded = storage.open()
            if discarded:
                log.warning(
                    "exporter %s: discarded %d unreadable batch files in %s", self.exporter_id, discarded, storage.directory
                )
            excess: list[QueueEntry] = []
            for q in self._queues.values():
                excess += q.put_front(
                    QueueEntry(b.signal, b.items, self._size_of(b.items, b.size), stored=b) for b in found if b.signal is q.signal
                )
        self._open_ledger()
        for entry in excess:
            self._discard(entry, "queue_full")
        if found:
            log.info(
                "exporter %s: %d batches (%d items) from a previous run found in %s; sending them first",
                self.exporter_id, len(found), sum(b.items for b in found), storage.directory,
            )
        if excess:
            log.warning(
                "exporter %s: queue_size %d: dropped the %d oldest stored batches", self.exporter_id, self._capacity, len(excess)
            )

    def _open_ledger(self) -> None:
        """Count once what the previous run held in memory when it was killed (``agent_killed``)."""
        try:
            left = self.crash_ledger.open()
        except OSError as e:
            log.warning("exporter %s: crash ledger %s unusable, losses at a crash will not be counted: %s",
                        self.exporter_id, self.crash_ledger.path, e)
            return
        if left.unreadable:
            log.warning("exporter %s: crash ledger %s was not a ledger (%s): rewritten",
                        self.exporter_id, self.crash_ledger.path, left.unreadable)
        for signal, n in left.lost.items():
            self._counters[signal].dropped["agent_killed"].inc(n)
        if left.lost:
            what = ", ".join(f"{n} {s.value}" for s, n in left.lost.items())
            log.warning("exporter %s: the previous agent (pid %d) died holding %s in memory (entered the pipelines, "
                        "never queued): counted dropped (agent_killed)", self.exporter_id, left.pid, what)

    def _store(self, signal: Signal, part: RequestPart) -> QueueEntry | None:
        """Write a request to the persistent queue; None if that failed (counted)."""
        if self._shut_down:
            self._counters[signal].dropped["shutdown"].inc(part.items)
            return None
        try:
            self._open_storage()
            stored = self._storage.write(signal, part.items, part.data)
        except OSError as e:
            log.warning("exporter %s: cannot queue %d %s on disk: %s", self.exporter_id, part.items, signal.value, e)
            self._counters[signal].dropped["storage_error"].inc(part.items)
            return None
        return QueueEntry(signal, part.items, self._size_of(part.items, len(part.data)), stored=stored)

    # -- the consumers --------------------------------------------------------------------------

    def _run(self, q: SignalQueue) -> None:
        while True:
            entry = q.take()
            if entry is None:
                return
            self._export(entry, q)

    def _serialize(self, signal: Signal, batch: list, n: int) -> bytes | None:
        """The batch's export request; None if it cannot be encoded (counted failed)."""
        try:
            return self._exporter.serialize(signal, batch)
        except PermanentExportError as e:
            log.warning("exporter %s: dropping %d %s: %s", self.exporter_id, n, signal.value, e)
        except Exception:
            log.exception("exporter %s: unexpected error encoding %d %s", self.exporter_id, n, signal.value)
        self._counters[signal].failed["permanent"].inc(n)
        return None

    def _payload(self, entry: QueueEntry) -> bytes | None:
        """The serialized request of an entry; None when that failed (counted)."""
        if entry.stored is not None:
            try:
                return self._storage.read(entry.stored)
            except (OSError, ValueError) as e:
                log.warning(
                    "exporter %s: dropping %d %s: cannot read %s: %s",
                    self.exporter_id, entry.items, entry.signal.value, entry.stored.path, e,
                )
                self._discard(entry, "storage_error")
                return None
        if entry.payload is not None:
            return entry.payload
        return self._serialize(entry.signal, entry.batch, entry.items)

    def _fit(self, signal: Signal, request: RequestPart) -> list[RequestPart]:
        """``request`` split into parts within ``sending_queue.batch.max_size``; single items over
        it are counted failed (``too_large``) and left out."""
        limit = self._max_size
        measure = (lambda p: len(p.data)) if self._max_size_in_bytes else (lambda p: p.items)
        if limit <= 0 or measure(request) <= limit:
            return [request]
        out: list[RequestPart] = []
        stack = [request]
        while stack:
            part = stack.pop()
            size = measure(part)
            if size <= limit:
                out.append(part)
            elif part.items <= 1:
                log.warning(
                    "exporter %s: dropping %d %s: one item of %d bytes, over sending_queue.batch.max_size %d",
                    self.exporter_id, part.items, signal.value, len(part.data), limit,
                )
                self._counters[signal].failed["too_large"].inc(part.items)
            else:
                stack.extend(reversed(self._split(signal, part, -(-size // limit), "max_size")))
        return out

    def _split(self, signal: Signal, part: RequestPart, parts: int, trigger: str) -> list[RequestPart]:
        try:
            pieces = split_request(signal, part.data, parts)
        except PermanentExportError as e:
            log.warning("exporter %s: dropping %d %s: cannot split: %s", self.exporter_id, part.items, signal.value, e)
            self._counters[signal].failed["permanent"].inc(part.items)
            return []
        self._counters[signal].splits[trigger].inc()
        return pieces

    def _export(self, entry: QueueEntry, q: SignalQueue) -> None:
        """Send one queued request: split to the size limit, retry, split again if refused as too large."""
        signal = entry.signal
        payload = self._payload(entry)
        if payload is None:
            return
        work = collections.deque(self._fit(signal, RequestPart(entry.items, payload)))
        while work:
            part = work.popleft()
            outcome = self._deliver(signal, part, q)
            if outcome is None:
                continue
            if outcome is _TOO_LARGE:
                if part.items <= 1:
                    log.warning(
                        "exporter %s: dropping %d %s: the backend refused one item of %d bytes as too large",
                        self.exporter_id, part.items, signal.value, len(part.data),
                    )
                    self._counters[signal].failed["too_large"].inc(part.items)
                else:
                    work.extendleft(reversed(self._split(signal, part, 2, "too_large")))
                continue
            self._abandon(entry, q, part.items + sum(p.items for p in work), outcome)
            return
        if entry.stored is not None:
            self._storage.remove(entry.stored)

    def _abandon(self, entry: QueueEntry, q: SignalQueue, items: int, error: str) -> None:
        """Shutdown gave up on the backend: the requests still queued for this signal would fare
        no better, so its consumers stop here and shutdown() accounts for them."""
        q.give_up()
        signal = entry.signal
        if entry.stored is not None:
            log.warning(
                "exporter %s: shutdown: %d %s in flight stay in %s for the next start (%s)",
                self.exporter_id, entry.items, signal.value, self._storage.directory, error,
            )
        else:
            log.warning("exporter %s: shutdown: dropped %d %s in flight (%s)", self.exporter_id, items, signal.value, error)
            self._counters[signal].dropped["shutdown"].inc(items)

    def _deliver(self, signal: Signal, part: RequestPart, q: SignalQueue) -> object:
        """Push one request until it is settled — sent, rejected or failed, counted here: returns
        None; refused as too large: returns ``_TOO_LARGE`` (nothing counted); or given up by
        shutdown: returns the last error (the caller drops or keeps it)."""
        counters = self._counters[signal]
        n = part.items
        first_attempt = time.monotonic()
        attempt = 0
        while True:
            try:
                rejected = self._exporter.push_serialized(signal, part.data)
            except RetryableExportError as e:
                if q.abort.is_set():
                    return str(e)
                if not self._retry.enabled:
                    log.warning("exporter %s: dropping %d %s: %s (retry disabled)", self.exporter_id, n, signal.value, e)
                    counters.failed["retries_exhausted"].inc(n)
                    return None
                now = time.monotonic()
                delay = next_delay(self._retry, attempt, e.retry_after, now - first_attempt, self._rand)
                if delay is None:
                    log.warning("exporter %s: giving up %d %s after %d retries: %s", self.exporter_id, n, signal.value, attempt, e)
                    counters.failed["retries_exhausted"].inc(n)
                    return None
                deadline = self._deadline
                if deadline is not None and now + delay > deadline:
                    return str(e)  # shutting down, and the backoff would outlast it
                log.info("exporter %s: %s; retrying %d %s in %.2fs", self.exporter_id, e, n, signal.value, delay)
                self._last_error = (str(e), time.time())
                self._retrying[signal] += 1
                try:
                    slept = self._sleep(delay, q)
                finally:
                    self._retrying[signal] -= 1
                if not slept:
                    return str(e)
                attempt += 1
                counters.retries.inc()
            except RequestTooLargeError as e:
                log.info("exporter %s: %s; splitting %d %s (%d bytes)", self.exporter_id, e, n, signal.value, len(part.data))
                return _TOO_LARGE
            except PermanentExportError as e:
                log.warning("exporter %s: dropping %d %s: %s", self.exporter_id, n, signal.value, e)
                self._last_error = (str(e), time.time())
                counters.failed["permanent"].inc(n)
                return None
            except Exception:
                log.exception("exporter %s: unexpected error pushing %d %s", self.exporter_id, n, signal.value)
                counters.failed["permanent"].inc(n)
                return None
            else:
                rejected = min(max(rejected, 0), n)
                counters.sent.inc(n - rejected)
                if rejected:
                    counters.failed["rejected"].inc(rejected)
                return None

    def _sleep(self, delay: float, q: SignalQueue) -> bool:
        """Back off for ``delay`` seconds; False if shutdown leaves no time for it."""
        end = time.monotonic() + delay
        while True:
            if q.abort.is_set():
                return False
            deadline = self._deadline
            if deadline is not None and end > deadline:
                return False
            remaining = end - time.monotonic()
            if remaining <= 0:
                return True
            (q.abort if deadline is not None else self._stopping).wait(remaining)
