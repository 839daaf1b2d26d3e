"""The batch processor, with the OpenTelemetry Collector's semantics.

Items (spans, log records, metric *data points*) accumulate per signal.  A batch is sent on to
every next consumer when ``send_batch_size`` items are pending, or when ``timeout`` seconds
have passed since the first pending item arrived.  Sends are at most ``send_batch_max_size``
items (0 = no limit): a larger backlog is split, and on a size trigger the remainder below
``send_batch_size`` keeps waiting for the timer, as in the Collector.  ``timeout = 0`` sends
whatever is pending as soon as the thread wakes.  Metrics are split between data points,
a :class:`Metric` becoming several with the same descriptor when needed.

**Defaults.**  ``send_batch_size`` is 512, as the OpenTelemetry SDKs' batch span processor, not
the Collector's 8192: here items are Python objects until encoded, and requests of 8192 spans
cost some 70 MB of resident memory on a saturated node for no gain in CPU (measured with
``bench``'s saturated nginx runs).

**Bounded, in bytes.**  Per signal at most ``max_backlog_bytes`` (an agent-only key, 8 MiB:
some 4,300 nginx spans; estimated with :mod:`receiver.model.footprint` from a few items of each
arrival) and at most ``max(2 × max(send_batch_size, send_batch_max_size), 8192)`` items wait: past either the batch
thread is not keeping up (the exporters encode on it), and what arrives is refused — counted in
``processor_dropped_items_total{processor="batch",reason="backlog"}`` and reported to the host's
:class:`~receiver.component.backpressure.Backpressure`, so the receivers produce less (the eBPF
receiver has the kernel aggregate into the RED metrics), and settled on the pipeline's crash
ledgers (:mod:`receiver.component.ledger`).  An arrival into an empty backlog always goes in,
whatever its size.  Unbounded, a saturated node's spans piled up here by the hundred thousand;
bounded at 8192 items, a full backlog (the batch thread starved by a saturated node) took the
agent's peak RSS from ~125 to ~173 MB in 2 of 11 saturated nginx runs, against none of 6 over
129 MB at the 8 MiB default.

One background thread does all sending, so ``consume_*`` only appends under a lock.  The next
consumers are called from that thread and must not block (exporters only enqueue).
``shutdown(timeout)`` flushes everything pending to the next consumers; it does not shut them
down (the pipeline shuts down downstream components after upstream ones).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from receiver.component.threads import AgentThread
from receiver.component.ledger import NO_LEDGER, PipelineLedger
from receiver.component.status import ComponentStatus
from receiver.configuration.section import ConfigSection, setting
from receiver.model.footprint import batch_bytes
from receiver.model.signals import Signal, TelemetryConsumer

if TYPE_CHECKING:
    from receiver.component.backpressure import Backpressure
    from receiver.model.telemetry import LogRecord, Metric, Span
    from receiver.component.self_metrics import SelfMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchProcessorConfig(ConfigSection):
    """``batch``: groups items into batches before export."""

    send_batch_size: int = setting(
        512, "Send a batch once it holds this many items (the Collector's 8192 costs this agent ~70 MB of "
        "memory under load: spans are Python objects until encoded).", minimum=1
    )
    send_batch_max_size: int = setting(
        0, "Split batches larger than this; 0 means no limit.", minimum=0
    )
    timeout: float = setting(
        0.2, "Send a non-empty batch after this long regardless of size.", kind="duration", minimum=0
    )
    max_backlog_bytes: int = setting(
        8 * 2**20, "Agent-only: most bytes (estimated) of items waiting per signal; what arrives past it is "
        "refused, counted (reason backlog) and reported upstream, so the kernel aggregates instead of sending "
        "spans.", kind="bytes", minimum=4096
    )

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if self.send_batch_max_size and self.send_batch_max_size < self.send_batch_size:
            yield "send_batch_max_size", "send_batch_max_size must be 0 or at least send_batch_size"


MIN_BOUND = 8192  # items: a few hundred ms of a busy node, ~8 MB of spans

_CONSUME = {Signal.TRACES: "consume_traces", Signal.METRICS: "consume_metrics", Signal.LOGS: "consume_logs"}


class _Pending:
    __slots__ = ("items", "count", "bytes", "since")

    def __init__(self) -> None:
        self.items: list = []
        self.count = 0  # items as counted for batching (data points for metrics)
        self.bytes = 0  # estimated; what is taken out takes its share of it
        self.since = 0.0  # monotonic arrival time of the oldest pending item

    def take(self, signal: Signal, limit: int) -> list:
        """The first ``limit`` items (data points for metrics), with their share of the bytes."""
        batch, self.items, taken = take_items(signal, self.items, limit)
        self.bytes = self.bytes * (self.count - taken) // self.count if taken < self.count else 0
        self.count -= taken
        return batch


def take_items(signal: Signal, items: list, limit: int) -> tuple[list, list, int]:
    """Split off the first ``limit`` items: ``(taken, rest, taken_count)``.

    For metrics ``limit`` counts data points and a metric straddling the limit is split.
    """
    if signal is not Signal.METRICS:
        return items[:limit], items[limit:], min(limit, len(items))
    taken: list = []
    need = limit
    for i, metric in enumerate(items):
        n = len(metric.points)
        if n <= need:
            taken.append(metric)
            need -= n
            if need == 0:
                return taken, items[i + 1 :], limit
        else:
            taken.append(dataclasses.replace(metric, points=metric.points[:need]))
            rest = [dataclasses.replace(metric, points=metric.points[need:])] + items[i + 1 :]
            return taken, rest, limit
    return taken, [], limit - need


class BatchProcessor:
    """Batches per signal and forwards to ``next_consumers`` (exporters or further processors)."""

    def __init__(
        self,
        config: BatchProcessorConfig,
        next_consumers: Sequence[TelemetryConsumer],
        self_metrics: SelfMetrics | None = None,
        backpressure: Backpressure | None = None,
        backlog_items: int | None = None,  # the bound (items waiting per signal); None: derived
        backlog_bytes: int | None = None,  # the bound in bytes; None: config.max_backlog_bytes
        ledger: PipelineLedger = NO_LEDGER,  # refused items are settled there (crash ledgers)
    ) -> None:
        if config.send_batch_size < 1:
            raise ValueError("send_batch_size must be >= 1")
        if config.send_batch_max_size and config.send_batch_max_size < config.send_batch_size:
            raise ValueError("send_batch_max_size must be 0 or >= send_batch_size")
        self._size = config.send_batch_size
        self._max = config.send_batch_max_size
        self._timeout = max(0.0, config.timeout)
        self._bound = backlog_items or max(2 * max(self._size, self._max), MIN_BOUND)  # items waiting per signal
        self._bound_bytes = backlog_bytes or config.max_backlog_bytes
        self._backpressure = backpressure
        self._ledger = ledger
        self.refused = {s: 0 for s in Signal}
        self._next = {s: [getattr(c, _CONSUME[s]) for c in next_consumers] for s in Signal}
        self._sends = (
            {(s, t): self_metrics.processor_batch_sends.labels(s.value, t) for s in Signal for t in ("size", "timeout", "shutdown")}
            if self_metrics is not None
            else None
        )
        self._refused = (
            {s: self_metrics.processor_dropped_items.labels("batch", s.value, "backlog") for s in Signal}
            if self_metrics is not None
            else None
        )
        self._lock = threading.Lock()
        self._pending = {s: _Pending() for s in Signal}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._shut_down = False

    def status(self) -> ComponentStatus:
        """What waits to be batched, per signal (in estimated bytes), against the backlog bound."""
        state = "stopped" if self._shut_down else ("running" if self._started else "created")
        queues = tuple((s.value, self._pending[s].bytes, self._bound_bytes, "bytes") for s in Signal)
        refused = ", ".join(f"{s.value} {n}" for s, n in self.refused.items())
        return ComponentStatus(state, queues, details=(("refused (backlog full)", refused),))

    def consume_traces(self, spans: list[Span]) -> None:
        self._add(Signal.TRACES, spans, len(spans))

    def consume_metrics(self, metrics: list[Metric]) -> None:
        count = sum(len(m.points) for m in metrics)
        if count and not all(m.points for m in metrics):
            metrics = [m for m in metrics if m.points]  # nothing to send, nothing to count
        self._add(Signal.METRICS, metrics, count)

    def consume_logs(self, records: list[LogRecord]) -> None:
        self._add(Signal.LOGS, records, len(records))

    def _add(self, signal: Signal, items: list, count: int) -> None:
        if not count:
            return
        nbytes = batch_bytes(items)
        with self._lock:
            if self._shut_down:
                late = True
            else:
                late = False
                p = self._pending[signal]
                # One oversize arrival into an empty backlog still goes.
                refused = p.count > 0 and (p.count + count > self._bound or p.bytes + nbytes > self._bound_bytes)
                if not refused:
                    first = not p.count  # a new batch: the thread must arm its timer
                    if first:
                        p.since = time.monotonic()
                    p.items.extend(items)
                    p.count += count
                    p.bytes += nbytes
                    full = p.count >= self._size
        if not late and refused:
            self._refuse(signal, count)
            return
        if late:  # after shutdown: pass straight through rather than lose data silently
            self._send(signal, list(items), "shutdown")
        elif first or full:
            self._wake.set()

    def _refuse(self, signal: Signal, count: int) -> None:
        self.refused[signal] += count
        if self._refused is not None:
            self._refused[signal].inc(count)
        if self._backpressure is not None:
            self._backpressure.refused(count)
        self._ledger.settle(signal, count)
        self._wake.set()

    def start(self) -> None:
        with self._lock:
            if self._started or self._shut_down:
                return
            self._started = True
        self._thread = AgentThread(self._run, "batch-processor")
        self._thread.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the thread and flush everything pending.  Idempotent; safe without start."""
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("batch processor thread did not stop within %.1fs", timeout)
        self._flush(final=True)

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self._flush(final=False)
            self._wake.wait(wait)
            self._wake.clear()

    def _flush(self, final: bool) -> float | None:
        """Send what is due; return seconds until the next timer expiry (None: nothing pending)."""
        now = time.monotonic()
        next_due: float | None = None
        for signal in Signal:
            sends: list[tuple[list, str]] = []
            with self._lock:
                p = self._pending[signal]
                if not p.count:
                    continue
                expired = final or now - p.since >= self._timeout
                trigger = "shutdown" if final else "timeout"
                while p.count >= self._size:
                    sends.append((p.take(signal, self._max or p.count), "size"))
                if p.count and expired:
                    while p.count:
                        sends.append((p.take(signal, self._max or p.count), trigger))
                if p.count:
                    if sends:  # a size trigger restarts the timer, as in the Collector
                        p.since = now
                    due = max(0.0, self._timeout - (now - p.since))
                    next_due = due if next_due is None else min(next_due, due)
            for batch, reason in sends:
                self._send(signal, batch, reason)
        return next_due

    def _send(self, signal: Signal, batch: list, trigger: str) -> None:
        if self._sends is not None:
            self._sends[(signal, trigger)].inc()
        for consume in self._next[signal]:
            try:
                consume(batch)
            except Exception:
                log.exception("batch processor: next consumer failed on %d %s", len(batch), signal.value)
