"""The exporter shape, after the OpenTelemetry Collector's exporterhelper.

An exporter implements only :class:`PushExporter`: ``push(signal, batch)`` sends one batch,
synchronously, once, and either returns the number of items the backend rejected in a partial
success (usually 0) or raises a classified :class:`ExportError`:

* :class:`PermanentExportError` — sending the same data again cannot succeed (bad request,
  unauthenticated, unencodable data); the batch is counted as failed;
* :class:`RetryableExportError` — the backend is unavailable or throttling; the batch is sent
  again after a backoff, no earlier than ``retry_after`` seconds if the backend said so.

:class:`QueuedRetryingSender` wraps a push exporter into what the pipeline calls
(:class:`TelemetryConsumer`): ``consume_*`` enqueue without blocking; one worker thread, woken
by an Event, takes batches off a bounded queue and pushes them with exponential backoff.
Every item ends up in exactly one counter of :class:`~receiver.telemetry.self_metrics.SelfMetrics`:
sent, failed (permanent / retries_exhausted / rejected) or dropped (queue_full / shutdown).

Queue policy: when the queue is full the **oldest** queued batch is evicted (and its items
counted as dropped, reason ``queue_full``) to make room for the new one.  Fresh data is worth
more than stale data to an observer, and for cumulative metrics the newest batch supersedes the
older ones; the caller never blocks and never sees an error.

Retry policy (as the Collector's): delay ``n`` is ``min(initial_interval * multiplier**n,
max_interval)`` randomised by ±50 %, raised to the backend's ``retry_after`` when that is
longer.  A batch is given up (``retries_exhausted``) when the next delay would carry it past
``max_elapsed_time`` after its first attempt (0 = no limit).

Shutdown: ``shutdown(timeout)`` stops accepting data, lets the worker drain the queue (still
retrying, as long as a backoff ends before the deadline), then gives up: whatever is still
queued, and the in-flight batch if its push fails after that, is counted dropped (``shutdown``).
"""

from __future__ import annotations

import collections
import enum
import logging
import random
import threading
import time
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

if TYPE_CHECKING:
    from receiver.config import QueueConfig, RetryConfig
    from receiver.telemetry.model import LogRecord, Metric, Span
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


_FAILED_REASONS = ("permanent", "retries_exhausted", "rejected")
_DROPPED_REASONS = ("queue_full", "shutdown")


class _SignalCounters:
    """The label children of one (exporter, signal), resolved once."""

    __slots__ = ("sent", "retries", "failed", "dropped")

    def __init__(self, m: SelfMetrics, exporter_id: str, signal: Signal) -> None:
        s = signal.value
        self.sent = m.exporter_sent_items.labels(exporter_id, s)
        self.retries = m.exporter_retries.labels(exporter_id, s)
        self.failed = {r: m.exporter_failed_items.labels(exporter_id, s, r) for r in _FAILED_REASONS}
        self.dropped = {r: m.exporter_dropped_items.labels(exporter_id, s, r) for r in _DROPPED_REASONS}


class QueuedRetryingSender:
    """Bounded queue + one worker thread + retry with backoff around a :class:`PushExporter`.

    ``queue.enabled = False`` sends synchronously in the caller's thread (retries included),
    as the Collector does.  The list passed to ``consume_*`` is kept by reference: the caller
    must not mutate it afterwards.
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
        if queue.storage is not None:
            raise ValueError(f"exporter {exporter_id}: persistent sending_queue.storage is not supported")
        if queue.enabled and queue.queue_size < 1:
            raise ValueError(f"exporter {exporter_id}: sending_queue.queue_size must be >= 1")
        self.exporter_id = exporter_id
        self._exporter = exporter
        self._queue_enabled = queue.enabled
        self._capacity = queue.queue_size
        self._retry = retry
        self._rand = rand
        self._counters = {s: _SignalCounters(self_metrics, exporter_id, s) for s in Signal}

        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[Signal, list, int]] = collections.deque()
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
        """Enqueue a batch (never blocks, never raises for a full queue)."""
        if not batch:
            return
        n = count_items(signal, batch)
        if not self._queue_enabled:
            if self._started and not self._shut_down:
                self._export(signal, batch, n)
            else:
                self._counters[signal].dropped["shutdown"].inc(n)
            return
        evicted = None
        with self._lock:
            if self._shut_down:
                evicted, reason = (signal, batch, n), "shutdown"
            else:
                if len(self._queue) >= self._capacity:
                    evicted, reason = self._queue.popleft(), "queue_full"
                self._queue.append((signal, batch, n))
        if evicted is not None:
            self._counters[evicted[0]].dropped[reason].inc(evicted[2])
        self._wake.set()

    def start(self) -> None:
        """Start the exporter, then the worker.  Idempotent; fails after shutdown."""
        with self._lock:
            if self._shut_down:
                raise RuntimeError(f"exporter {self.exporter_id} was shut down and cannot restart")
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

        Idempotent, and safe without :meth:`start` (then nothing is sent).
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
        for signal, _, n in leftovers:
            self._counters[signal].dropped["shutdown"].inc(n)
        if self._started:
            try:
                self._exporter.shutdown()
            except Exception:
                log.exception("exporter %s: error while shutting down", self.exporter_id)

    # -- the worker -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._next()
            if item is None:
                return
            self._export(*item)

    def _next(self) -> tuple[Signal, list, int] | None:
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

    def _export(self, signal: Signal, batch: list, n: int) -> None:
        counters = self._counters[signal]
        first_attempt = time.monotonic()
        attempt = 0
        while True:
            try:
                rejected = self._exporter.push(signal, batch)
            except RetryableExportError as e:
                if self._abort.is_set():
                    counters.dropped["shutdown"].inc(n)
                    return
                if not self._retry.enabled:
                    log.warning("exporter %s: dropping %d %s: %s (retry disabled)", self.exporter_id, n, signal.value, e)
                    counters.failed["retries_exhausted"].inc(n)
                    return
                delay = backoff_interval(self._retry, attempt, self._rand)
                if e.retry_after is not None:
                    delay = max(delay, e.retry_after)
                max_elapsed = self._retry.max_elapsed_time
                if max_elapsed > 0 and time.monotonic() - first_attempt + delay > max_elapsed:
                    log.warning("exporter %s: giving up %d %s after %d retries: %s", self.exporter_id, n, signal.value, attempt, e)
                    counters.failed["retries_exhausted"].inc(n)
                    return
                log.info("exporter %s: %s; retrying %d %s in %.2fs", self.exporter_id, e, n, signal.value, delay)
                if not self._sleep(delay):
                    counters.dropped["shutdown"].inc(n)
                    return
                attempt += 1
                counters.retries.inc()
            except PermanentExportError as e:
                log.warning("exporter %s: dropping %d %s: %s", self.exporter_id, n, signal.value, e)
                counters.failed["permanent"].inc(n)
                return
            except Exception:
                log.exception("exporter %s: unexpected error pushing %d %s", self.exporter_id, n, signal.value)
                counters.failed["permanent"].inc(n)
                return
            else:
                rejected = min(max(rejected, 0), n)
                counters.sent.inc(n - rejected)
                if rejected:
                    counters.failed["rejected"].inc(rejected)
                return

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
