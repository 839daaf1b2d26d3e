"""The exporter shape, after the OpenTelemetry Collector's exporterhelper.

An exporter implements only :class:`PushExporter`: ``push(signal, batch)`` sends one batch,
synchronously, once, and either returns the number of items the backend rejected in a partial
success (usually 0) or raises a classified :class:`ExportError`:

* :class:`PermanentExportError` — sending the same data again cannot succeed (bad request,
  unauthenticated, unencodable data); the batch is counted as failed;
* :class:`RetryableExportError` — the backend is unavailable or throttling; the batch is sent
  again after a backoff, no earlier than ``retry_after`` seconds if the backend said so.

An exporter that can also send a batch it serialized earlier (:class:`SerializingPushExporter`:
``serialize`` + ``push_serialized``) supports the persistent queue.

:class:`QueuedRetryingSender` wraps a push exporter into what the pipeline calls
(:class:`TelemetryConsumer`): ``consume_*`` enqueue without blocking; one worker thread, woken
by an Event, takes batches off a bounded queue and pushes them with exponential backoff.
Every item ends up in exactly one counter of :class:`~receiver.telemetry.self_metrics.SelfMetrics`:
sent, failed (permanent / retries_exhausted / rejected) or dropped (queue_full / shutdown /
storage_error) — or, with a persistent queue, stays on disk for the next start.

Queue policy: when the queue is full the **oldest** queued batch is evicted (and its items
counted as dropped, reason ``queue_full``) to make room for the new one.  Fresh data is worth
more than stale data to an observer, and for cumulative metrics the newest batch supersedes the
older ones; the caller never blocks and never sees an error.

Persistent queue (``sending_queue.storage``): each batch is serialized to OTLP protobuf and
written to its own file (:mod:`receiver.exporters.persistent_queue`) before ``consume_*``
returns; the file is removed once the batch is settled.  On start, the batches found on disk
are queued first, oldest first.  At shutdown whatever could not be sent in time stays on disk
(logged, not counted as dropped): delivery is at-least-once, and only the batch in flight when
the process died can arrive twice.

Retry policy (as the Collector's): delay ``n`` is ``min(initial_interval * multiplier**n,
max_interval)`` randomised by ±50 %, raised to the backend's ``retry_after`` when that is
longer.  A batch is given up (``retries_exhausted``) when the next delay would carry it past
``max_elapsed_time`` after its first attempt (0 = no limit).

Shutdown: ``shutdown(timeout)`` stops accepting data, lets the worker drain the queue (still
retrying, as long as a backoff ends before the deadline), then gives up — at the deadline, or
as soon as a batch cannot be retried in time: whatever is still queued, and the in-flight
batch, is counted dropped (``shutdown``) and logged — or, with a persistent queue, kept on disk.
"""

from __future__ import annotations

import collections
import enum
import logging
import random
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterable, Protocol, Sequence

from receiver.configuration.mappings import REDACTED

if TYPE_CHECKING:
    from receiver.config import QueueConfig, RetryConfig
    from receiver.exporters.persistent_queue import BatchStorage, StoredBatch
    from receiver.model.telemetry import LogRecord, Metric, Span
    from receiver.telemetry.self_metrics import SelfMetrics

log = logging.getLogger(__name__)

RANDOMIZATION_FACTOR = 0.5  # the Collector's default: each delay is drawn from interval * [0.5, 1.5]


class Signal(enum.Enum):
    TRACES = "traces"
    METRICS = "metrics"
    LOGS = "logs"


class ExportError(Exception):
    """A push failed; subclasses say whether sending the same batch again may succeed."""


class PermanentExportError(ExportError):
    """The backend will never accept this batch; do not retry."""


class RetryableExportError(ExportError):
    """A transient failure; ``retry_after`` is the backend's requested delay in seconds, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PushExporter(Protocol):
    """What a concrete exporter implements (a transport; no queueing, no retrying)."""

    def start(self) -> None:
        """Acquire resources (channels, sessions).  Called once, before the first push."""

    def push(self, signal: Signal, batch: list) -> int:
        """Send ``batch`` once.  Return how many items the backend rejected (partial success).

        Raise :class:`PermanentExportError` or :class:`RetryableExportError` on failure.
        """

    def shutdown(self) -> None:
        """Release resources; may interrupt a push in flight in another thread."""


class SerializingPushExporter(PushExporter, Protocol):
    """A push exporter whose batches can be serialized now and sent later (persistent queue)."""

    def serialize(self, signal: Signal, batch: list) -> bytes:
        """The batch as a serialized OTLP export request; :class:`PermanentExportError` if it cannot be."""

    def push_serialized(self, signal: Signal, data: bytes) -> int:
        """:meth:`push` for the bytes :meth:`serialize` made (possibly in an earlier process)."""


class TelemetryConsumer(Protocol):
    """What the pipeline calls on every exporter and processor."""

    def consume_traces(self, spans: list[Span]) -> None: ...

    def consume_metrics(self, metrics: list[Metric]) -> None: ...

    def consume_logs(self, records: list[LogRecord]) -> None: ...

    def start(self) -> None: ...

    def shutdown(self, timeout: float = 5.0) -> None: ...


def count_items(signal: Signal, batch: Sequence) -> int:
    """Items in a batch as the self metrics count them: spans, log records, metric data points."""
    if signal is Signal.METRICS:
        return sum(len(m.points) for m in batch)
    return len(batch)


def backoff_interval(retry: RetryConfig, attempt: int, rand: Callable[[], float] = random.random) -> float:
    """The randomised delay before retry number ``attempt`` (0-based), in seconds."""
    interval = min(retry.initial_interval * retry.multiplier**attempt, retry.max_interval)
    return interval * (1.0 + RANDOMIZATION_FACTOR * (2.0 * rand() - 1.0))


def secret_fragments(values: Iterable[str]) -> tuple[str, ...]:
    """What to hide of secret header values: each whole value and its longer words
    (``"Bearer s3cr3t-token"`` → the value and ``s3cr3t-token``), longest first."""
    out: set[str] = set()
    for value in values:
        if len(value) >= 4:
            out.add(value)
        out.update(word for word in value.split() if len(word) >= 8)
    return tuple(sorted(out, key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret fragment replaced (backends sometimes echo credentials)."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


_FAILED_REASONS = ("permanent", "retries_exhausted", "rejected")
_DROPPED_REASONS = ("queue_full", "shutdown", "storage_error")


class _SignalCounters:
    """The label children of one (exporter, signal), resolved once."""

    __slots__ = ("sent", "retries", "failed", "dropped")

    def __init__(self, m: SelfMetrics, exporter_id: str, signal: Signal) -> None:
        s = signal.value
        self.sent = m.exporter_sent_items.labels(exporter_id, s)
        self.retries = m.exporter_retries.labels(exporter_id, s)
        self.failed = {r: m.exporter_failed_items.labels(exporter_id, s, r) for r in _FAILED_REASONS}
        self.dropped = {r: m.exporter_dropped_items.labels(exporter_id, s, r) for r in _DROPPED_REASONS}


class _Entry:
    """One queued batch: in memory (``batch``) or on disk (``stored``)."""

    __slots__ = ("signal", "items", "batch", "stored")

    def __init__(self, signal: Signal, items: int, batch: list | None, stored: StoredBatch | None = None) -> None:
        self.signal = signal
        self.items = items
        self.batch = batch
        self.stored = stored


class QueuedRetryingSender:
    """Bounded queue + one worker thread + retry with backoff around a :class:`PushExporter`.

    ``queue.enabled = False`` sends synchronously in the caller's thread (retries included),
    as the Collector does.  The list passed to ``consume_*`` is kept by reference: the caller
    must not mutate it afterwards.  ``queue.storage`` puts the queue on disk (the exporter
    must be a :class:`SerializingPushExporter`).
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
    ) -> None:
        if queue.enabled and queue.queue_size < 1:
            raise ValueError(f"exporter {exporter_id}: sending_queue.queue_size must be >= 1")
        self._storage: BatchStorage | None = None
        if queue.storage is not None:
            if not queue.enabled:
                raise ValueError(f"exporter {exporter_id}: sending_queue.storage needs sending_queue.enabled")
            if not (hasattr(exporter, "serialize") and hasattr(exporter, "push_serialized")):
                raise ValueError(f"exporter {exporter_id}: this exporter cannot use a persistent sending_queue.storage")
            from receiver.exporters.persistent_queue import BatchStorage, exporter_directory

            self._storage = BatchStorage(exporter_directory(queue.storage, exporter_id))
        self.exporter_id = exporter_id
        self._exporter = exporter
        self._queue_enabled = queue.enabled
        self._capacity = queue.queue_size
        self._retry = retry
        self._rand = rand
        self._counters = {s: _SignalCounters(self_metrics, exporter_id, s) for s in Signal}

        self._lock = threading.Lock()
        self._storage_lock = threading.Lock()  # serialises opening the storage
        self._queue: collections.deque[_Entry] = collections.deque()
        self._wake = threading.Event()  # something was queued, or shutdown began
        self._stopping = threading.Event()  # shutdown began: backoffs re-check the deadline
        self._abort = threading.Event()  # the shutdown deadline passed: give up everything
        self._deadline: float | None = None  # monotonic; set once, before _stopping
        self._started = False
        self._shut_down = False
        self._thread: threading.Thread | None = None

        capacity = self._capacity if self._queue_enabled else 0
        self_metrics.exporter_queue_capacity.labels(exporter_id).set(capacity)
        self_metrics.exporter_queue_size.labels(exporter_id).set_function(lambda: len(self._queue))

    # -- what the pipeline calls ---------------------------------------------------------------

    def consume_traces(self, spans: list[Span]) -> None:
        self.consume(Signal.TRACES, spans)

    def consume_metrics(self, metrics: list[Metric]) -> None:
        self.consume(Signal.METRICS, metrics)

    def consume_logs(self, records: list[LogRecord]) -> None:
        self.consume(Signal.LOGS, records)

    def consume(self, signal: Signal, batch: list) -> None:
        """Enqueue a batch (never blocks on the backend, never raises for a full queue)."""
        if not batch:
            return
        n = count_items(signal, batch)
        if not self._queue_enabled:
            if self._started and not self._shut_down:
                self._export(_Entry(signal, n, batch))
            else:
                self._counters[signal].dropped["shutdown"].inc(n)
            return
        if self._storage is not None:
            entry = self._store(signal, batch, n)
            if entry is None:
                return
        else:
            entry = _Entry(signal, n, batch)
        self._enqueue(entry)

    def start(self) -> None:
        """Open the persistent queue if any, start the exporter, then the worker.

        Idempotent; fails after shutdown.  Batches a previous run left on disk go first.
        """
        with self._lock:
            if self._shut_down:
                raise RuntimeError(f"exporter {self.exporter_id} was shut down and cannot restart")
            if self._started:
                return
        self._open_storage()
        with self._lock:
            if self._started:
                return
            self._started = True
        self._exporter.start()
        if self._queue_enabled:
            self._thread = threading.Thread(
                target=self._run, name=f"exporter-{self.exporter_id}", daemon=True
            )
            self._thread.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush what can be sent within ``timeout`` seconds, count the rest dropped, close.

        Idempotent, and safe without :meth:`start` (then nothing is sent).  With a persistent
        queue the rest stays on disk instead.
        """
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
            self._deadline = time.monotonic() + max(0.0, timeout)
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, self._deadline - time.monotonic()))
        self._abort.set()
        with self._lock:
            leftovers = list(self._queue)
            self._queue.clear()
        if leftovers and self._storage is not None:
            log.warning(
                "exporter %s: shutdown: %d batches (%d items) not sent in time stay in %s for the next start",
                self.exporter_id, len(leftovers), sum(e.items for e in leftovers), self._storage.directory,
            )
        elif leftovers:
            by_signal: dict[Signal, int] = {}
            for entry in leftovers:
                by_signal[entry.signal] = by_signal.get(entry.signal, 0) + entry.items
            for signal, n in by_signal.items():
                self._counters[signal].dropped["shutdown"].inc(n)
                log.warning("exporter %s: shutdown: dropped %d %s still queued", self.exporter_id, n, signal.value)
        if self._started:
            try:
                self._exporter.shutdown()
            except Exception:
                log.exception("exporter %s: error while shutting down", self.exporter_id)
        if self._storage is not None:
            self._storage.close()

    # -- the queue ------------------------------------------------------------------------------

    def _enqueue(self, entry: _Entry) -> None:
        evicted = None
        with self._lock:
            if self._shut_down:
                evicted, reason = entry, "shutdown"
            else:
                if len(self._queue) >= self._capacity:
                    evicted, reason = self._queue.popleft(), "queue_full"
                self._queue.append(entry)
        if evicted is not None:
            self._discard(evicted, reason)
        self._wake.set()

    def _discard(self, entry: _Entry, reason: str) -> None:
        """Count a batch that will not be sent as dropped, and forget its file."""
        self._counters[entry.signal].dropped[reason].inc(entry.items)
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
            entries = [_Entry(b.signal, b.items, None, b) for b in found]
            excess = entries[: max(0, len(entries) - self._capacity)]
            entries = entries[len(excess) :]
            with self._lock:
                self._queue.extendleft(reversed(entries))
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

    def _store(self, signal: Signal, batch: list, n: int) -> _Entry | None:
        """Serialize a batch and write it to the persistent queue; None if that failed (counted)."""
        counters = self._counters[signal]
        if self._shut_down:
            counters.dropped["shutdown"].inc(n)
            return None
        try:
            payload = self._exporter.serialize(signal, batch)
        except PermanentExportError as e:
            log.warning("exporter %s: dropping %d %s: %s", self.exporter_id, n, signal.value, e)
            counters.failed["permanent"].inc(n)
            return None
        try:
            self._open_storage()
            stored = self._storage.write(signal, n, payload)
        except OSError as e:
            log.warning("exporter %s: cannot queue %d %s on disk: %s", self.exporter_id, n, signal.value, e)
            counters.dropped["storage_error"].inc(n)
            return None
        return _Entry(signal, n, None, stored)

    # -- the worker -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            entry = self._next()
            if entry is None:
                return
            self._export(entry)

    def _next(self) -> _Entry | None:
        while True:
            with self._lock:
                if self._abort.is_set():
                    return None
                if self._queue:
                    return self._queue.popleft()
                if self._shut_down:
                    return None
                self._wake.clear()
            self._wake.wait()

    def _export(self, entry: _Entry) -> None:
        signal, n = entry.signal, entry.items
        stored = entry.stored
        if stored is not None:
            try:
                payload = self._storage.read(stored)
            except (OSError, ValueError) as e:
                log.warning("exporter %s: dropping %d %s: cannot read %s: %s", self.exporter_id, n, signal.value, stored.path, e)
                self._discard(entry, "storage_error")
                return
            push = lambda: self._exporter.push_serialized(signal, payload)  # noqa: E731
        else:
            batch = entry.batch
            push = lambda: self._exporter.push(signal, batch)  # noqa: E731
        abandoned = self._deliver(signal, n, push)
        if abandoned is None:  # settled
            if stored is not None:
                self._storage.remove(stored)
            return
        # Shutdown gave up on the backend: the batches still queued would fare no better, so
        # the worker stops here and shutdown() accounts for them in one line per signal.
        self._abort.set()
        if stored is not None:
            log.warning(
                "exporter %s: shutdown: %d %s in flight stay in %s for the next start (%s)",
                self.exporter_id, n, signal.value, self._storage.directory, abandoned,
            )
        else:
            log.warning("exporter %s: shutdown: dropped %d %s in flight (%s)", self.exporter_id, n, signal.value, abandoned)
            self._counters[signal].dropped["shutdown"].inc(n)

    def _deliver(self, signal: Signal, n: int, push: Callable[[], int]) -> str | None:
        """Push until the batch is settled — sent, rejected or failed, counted here; returns
        None — or shutdown gives up on it: returns the last error (the caller drops or keeps it)."""
        counters = self._counters[signal]
        first_attempt = time.monotonic()
        attempt = 0
        while True:
            try:
                rejected = push()
            except RetryableExportError as e:
                if self._abort.is_set():
                    return str(e)
                if not self._retry.enabled:
                    log.warning("exporter %s: dropping %d %s: %s (retry disabled)", self.exporter_id, n, signal.value, e)
                    counters.failed["retries_exhausted"].inc(n)
                    return None
                delay = backoff_interval(self._retry, attempt, self._rand)
                if e.retry_after is not None:
                    delay = max(delay, e.retry_after)
                max_elapsed = self._retry.max_elapsed_time
                if max_elapsed > 0 and time.monotonic() - first_attempt + delay > max_elapsed:
                    log.warning("exporter %s: giving up %d %s after %d retries: %s", self.exporter_id, n, signal.value, attempt, e)
                    counters.failed["retries_exhausted"].inc(n)
                    return None
                deadline = self._deadline
                if deadline is not None and time.monotonic() + delay > deadline:
                    return str(e)  # shutting down, and the backoff would outlast it
                log.info("exporter %s: %s; retrying %d %s in %.2fs", self.exporter_id, e, n, signal.value, delay)
                if not self._sleep(delay):
                    return str(e)
                attempt += 1
                counters.retries.inc()
            except PermanentExportError as e:
                log.warning("exporter %s: dropping %d %s: %s", self.exporter_id, n, signal.value, e)
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

    def _sleep(self, delay: float) -> bool:
        """Back off for ``delay`` seconds; False if shutdown leaves no time for it."""
        end = time.monotonic() + delay
        while True:
            if self._abort.is_set():
                return False
            deadline = self._deadline
            if deadline is not None and end > deadline:
                return False
            remaining = end - time.monotonic()
            if remaining <= 0:
                return True
            (self._abort if deadline is not None else self._stopping).wait(remaining)
