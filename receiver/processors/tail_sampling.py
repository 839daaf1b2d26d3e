"""The ``tail_sampling`` processor: keep or drop whole traces after looking at all of them.

Everything the agent holds for a trace id on this host — server span, its database and HTTP
children, same-host peers in other processes, and (when the same processor id is in a logs
pipeline too) the trace's log records — waits in one :class:`HeldTrace` for ``decision_wait``
after its first item.  Then the policies (:mod:`.tail_sampling_policies`) are evaluated once;
the trace is kept when any samples it (or, with ``keep_if_caller_sampled``, when a span of it
continued a sampled W3C context from the wire).  Kept items go on to the next consumer of the
pipeline they came through; dropped ones are counted, and settled on that pipeline's crash
ledgers (:mod:`receiver.component.ledger`).

**Bounded.**  At most ``num_traces`` traces and ``max_held_bytes`` (estimated) are held; when a
new item would exceed either, the oldest trace is decided early, by the same policies, counted by
trigger.  Decisions are remembered in two bounded LRU caches (``decision_cache``), so spans and
logs arriving after the decision follow it (counted as late); an item of a trace no cache
remembers starts a new held trace.

**Metrics from 100 %.**  The RED histograms and the service graph are computed before spans
reach any processor (:mod:`receiver.telemetry.assemble`), from every transaction; exemplars are
held back until this processor decides (:class:`~receiver.telemetry.exemplars.DeferredExemplars`)
and attached only for kept traces.

One engine per processor id (:class:`TailSampler`) is shared by that id's instances in the traces
and logs pipelines; a thread of its own makes the timed decisions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from receiver.component.threads import AgentThread
from receiver.component.ledger import NO_LEDGER, PipelineLedger
from receiver.model.footprint import log_bytes, span_bytes
from receiver.model.signals import Signal
from receiver.model.telemetry import LogRecord, Span
from receiver.processors.tail_sampling_config import TailSamplingProcessorConfig
from receiver.processors.tail_sampling_policies import build_all

log = logging.getLogger(__name__)

# OTLP span flags: the parent is known to be remote (bit 9) and that is known (bit 8); W3C sampled.
REMOTE_SAMPLED = 0x300 | 0x01
CALLER_POLICY = "keep_if_caller_sampled"
TRIGGERS = ("decision_wait", "num_traces", "max_held_bytes", "shutdown")


@dataclass(slots=True, eq=False)
class HeldTrace:
    trace_id: bytes
    first_ns: int
    spans: list = field(default_factory=list)
    items: list = field(default_factory=list)  # (consume, item) in arrival order
    bytes: int = 0
    caller_sampled: bool = False

    @property
    def span_count(self) -> int:
        return len(self.spans)


class _LruSet:
    __slots__ = ("_d", "_cap")

    def __init__(self, cap: int) -> None:
        self._d: OrderedDict[bytes, None] = OrderedDict()
        self._cap = cap

    def add(self, key: bytes) -> None:
        if self._cap <= 0:
            return
        self._d[key] = None
        self._d.move_to_end(key)
        if len(self._d) > self._cap:
            self._d.popitem(last=False)

    def __contains__(self, key: bytes) -> bool:
        return key in self._d

    def __len__(self) -> int:
        return len(self._d)


class TailSampler:
    """The decision engine of one ``tail_sampling`` id (thread-safe; its clock injectable)."""

    def __init__(self, config: TailSamplingProcessorConfig, processor_id: str = "tail_sampling",
                 clock_ns: Callable[[], int] = time.monotonic_ns,
                 on_decision: Callable[[bytes, bool], None] | None = None) -> None:
        self.id = processor_id
        self._cfg = config
        self._clock = clock_ns
        self._wait_ns = int(config.decision_wait * 1e9)
        self._evaluators = build_all(config.policies)
        self._keep_caller = config.keep_if_caller_sampled
        self._on_decision = on_decision
        self._lock = threading.Lock()
        self._held: OrderedDict[bytes, HeldTrace] = OrderedDict()  # first seen first
        self._held_bytes = 0
        self._sampled = _LruSet(config.decision_cache.sampled_cache_size)
        self._not_sampled = _LruSet(config.decision_cache.non_sampled_cache_size)
        # self-metrics
        self.traces: dict[tuple[str, str, str], int] = {}  # (policy, decision, trigger) -> traces
        self.evaluations: dict[tuple[str, bool], int] = {}  # (policy, sampled) -> evaluations
        self.dropped = {"traces": 0, "logs": 0}  # items of not-sampled traces
        self.late: dict[tuple[str, str], int] = {}  # (signal, decision) -> items after the decision
        self.passed_without_trace = {"traces": 0, "logs": 0}  # no trace id: nothing to decide on
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._users = 0
        # consume -> what settles the items dropped on their way to it (the pipeline's crash ledgers)
        self._settlers: dict[Callable, Callable[[int], None]] = {}

    def settle_drops_with(self, consume: Callable[[list], None], settle: Callable[[int], None]) -> None:
        """``settle(n)`` is told of the ``n`` items dropped that were bound for ``consume``."""
        self._settlers[consume] = settle

    # -- input -------------------------------------------------------------------------------

    def offer_spans(self, spans: list[Span], consume: Callable[[list], None]) -> None:
        self._offer(spans, consume, "traces")

    def offer_logs(self, records: list[LogRecord], consume: Callable[[list], None]) -> None:
        self._offer(records, consume, "logs")

    def _offer(self, items: list, consume: Callable[[list], None], signal: str) -> None:
        now = self._clock()
        out: list = []  # (consume, item) to send now
        decided: list = []
        dropped_late = 0
        is_span = signal == "traces"
        with self._lock:
            held = self._held
            for item in items:
                tid = item.trace_id
                if not tid:
                    self.passed_without_trace[signal] += 1
                    out.append((consume, item))
                    continue
                t = held.get(tid)
                if t is None:
                    if tid in self._sampled:
                        self._count_late(signal, "sampled")
                        out.append((consume, item))
                        continue
                    if tid in self._not_sampled:
                        self._count_late(signal, "not_sampled")
                        self.dropped[signal] += 1
                        dropped_late += 1
                        continue
                    t = held[tid] = HeldTrace(tid, now)
                size = span_bytes(item) if is_span else log_bytes(item)
                if is_span:
                    t.spans.append(item)
                    if item.flags & REMOTE_SAMPLED == REMOTE_SAMPLED:
                        t.caller_sampled = True
                t.items.append((consume, item))
                t.bytes += size
                self._held_bytes += size
            decided += self._enforce_bounds(now)
        if out:
            self._emit(_group(out))
        if dropped_late:
            self._settle({consume: dropped_late})
        self._finish(decided)

    # -- decisions ---------------------------------------------------------------------------

    def tick(self) -> None:
        """Decide every trace whose ``decision_wait`` is over."""
        now = self._clock()
        limit = now - self._wait_ns
        decided = []
        with self._lock:
            while self._held:
                tid, t = next(iter(self._held.items()))
                if t.first_ns > limit:
                    break
                decided.append(self._decide(t, "decision_wait", now))
        self._finish(decided)

    def flush(self) -> None:
        """Decide everything held (shutdown)."""
        now = self._clock()
        with self._lock:
            decided = [self._decide(t, "shutdown", now) for t in list(self._held.values())]
        self._finish(decided)

    def _enforce_bounds(self, now: int) -> list:
        decided = []
        cfg = self._cfg
        while len(self._held) > cfg.num_traces:
            decided.append(self._decide(next(iter(self._held.values())), "num_traces", now))
        while self._held_bytes > cfg.max_held_bytes and len(self._held) > 1:
            decided.append(self._decide(next(iter(self._held.values())), "max_held_bytes", now))
        return decided

    def _decide(self, t: HeldTrace, trigger: str, now: int) -> tuple[HeldTrace, bool]:
        """Evaluate every policy once (under the lock); remember the decision."""
        del self._held[t.trace_id]
        self._held_bytes -= t.bytes
        now_s = now / 1e9
        first = ""
        for e in self._evaluators:
            try:
                sampled = e.sample(t, now_s)
            except Exception:  # a policy bug must not lose the trace: counted as not sampling
                log.exception("tail_sampling %s: policy %s failed", self.id, e.name)
                sampled = False
            key = (e.name, sampled)
            self.evaluations[key] = self.evaluations.get(key, 0) + 1
            if sampled and not first:
                first = e.name
        if not first and self._keep_caller and t.caller_sampled:
            first = CALLER_POLICY
        keep = bool(first)
        decision = "sampled" if keep else "not_sampled"
        key3 = (first, decision, trigger)
        self.traces[key3] = self.traces.get(key3, 0) + 1
        if keep:
            self._sampled.add(t.trace_id)
        else:
            self._not_sampled.add(t.trace_id)
            for _, item in t.items:
                self.dropped["traces" if isinstance(item, Span) else "logs"] += 1
        return t, keep

    def _finish(self, decided: list) -> None:
        """Outside the lock: hand kept items on, tell the exemplars."""
        for t, keep in decided:
            if self._on_decision is not None:
                try:
                    self._on_decision(t.trace_id, keep)
                except Exception:
                    log.exception("tail_sampling %s: decision listener failed", self.id)
            if keep:
                self._emit(_group(t.items))
            else:
                counts: dict = {}
                for consume, _ in t.items:
                    counts[consume] = counts.get(consume, 0) + 1
                self._settle(counts)

    def _settle(self, counts: dict) -> None:
        for consume, n in counts.items():
            settle = self._settlers.get(consume)
            if settle is not None:
                settle(n)

    def _emit(self, groups: dict) -> None:
        for consume, items in groups.items():
            try:
                consume(items)
            except Exception:
                log.exception("tail_sampling %s: next consumer failed on %d items", self.id, len(items))

    def _count_late(self, signal: str, decision: str) -> None:
        key = (signal, decision)
        self.late[key] = self.late.get(key, 0) + 1

    # -- lifecycle (shared by the id's processor instances) -------------------------------------

    def start(self) -> None:
        with self._lock:
            self._users += 1
            if self._thread is not None:
                return
            self._stop.clear()
            self._thread = AgentThread(self._run, f"tail-sampling-{self.id}")
        self._thread.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._thread is None:
                last = self._users <= 0
                thread = None
            else:
                last, thread, self._thread = True, self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout)
        if last:
            self.flush()

    def _run(self) -> None:
        interval = max(0.01, min(0.25, self._cfg.decision_wait / 4))
        while not self._stop.wait(interval):
            try:
                self.tick()
            except Exception:
                log.exception("tail_sampling %s: decision step failed", self.id)

    # -- self-metrics --------------------------------------------------------------------------

    def held(self) -> tuple[int, int]:
        with self._lock:
            return len(self._held), self._held_bytes

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        p = self.id
        traces = CounterMetricFamily(
            "ebpf_receiver_tail_sampling_traces",
            "Traces decided, by the first policy that sampled them (\"\" when none did), decision and trigger "
            "(decision_wait; num_traces or max_held_bytes: decided early when full; shutdown).",
            labels=["processor", "policy", "decision", "trigger"])
        for (policy, decision, trigger), n in sorted(self.traces.items()):
            traces.add_metric([p, policy, decision, trigger], n)
        yield traces
        ev = CounterMetricFamily("ebpf_receiver_tail_sampling_policy_evaluations",
                                 "Policy evaluations, by policy and outcome.",
                                 labels=["processor", "policy", "sampled"])
        for (policy, sampled), n in sorted(self.evaluations.items()):
            ev.add_metric([p, policy, str(sampled).lower()], n)
        yield ev
        dropped = CounterMetricFamily("ebpf_receiver_tail_sampling_dropped_items",
                                      "Spans and log records of traces not sampled (late ones included).",
                                      labels=["processor", "signal"])
        for signal, n in self.dropped.items():
            dropped.add_metric([p, signal], n)
        yield dropped
        late = CounterMetricFamily("ebpf_receiver_tail_sampling_late_items",
                                   "Spans and log records that arrived after their trace was decided.",
                                   labels=["processor", "signal", "decision"])
        for (signal, decision), n in sorted(self.late.items()):
            late.add_metric([p, signal, decision], n)
        yield late
        n_traces, n_bytes = self.held()
        held = GaugeMetricFamily("ebpf_receiver_tail_sampling_held_bytes",
                                 "Estimated bytes of spans and log records waiting for their decision.",
                                 labels=["processor"])
        held.add_metric([p], n_bytes)
        yield held
        held_t = GaugeMetricFamily("ebpf_receiver_tail_sampling_held_traces", "Traces waiting for their decision.",
                                   labels=["processor"])
        held_t.add_metric([p], n_traces)
        yield held_t

    def describe(self) -> list:
        return []


def _group(pairs: list) -> dict:
    """(consume, item) pairs → consume → items, in order."""
    groups: dict = {}
    for consume, item in pairs:
        groups.setdefault(consume, []).append(item)
    return groups


class TailSamplingProcessor:
    """One pipeline's view of a :class:`TailSampler`: what comes in is offered, what is kept goes
    to ``next_consumer``."""

    def __init__(self, engine: TailSampler, next_consumer, ledger: PipelineLedger = NO_LEDGER) -> None:
        self.engine = engine
        self._next = next_consumer
        self._consume_traces = getattr(next_consumer, "consume_traces", None)
        self._consume_logs = getattr(next_consumer, "consume_logs", None)
        if ledger:  # items of traces not sampled are settled on this pipeline's crash ledgers
            for consume, signal in ((self._consume_traces, Signal.TRACES), (self._consume_logs, Signal.LOGS)):
                if consume is not None:
                    engine.settle_drops_with(consume, lambda n, signal=signal: ledger.settle(signal, n))
        self._started = False
        self._stopped = False

    def consume_traces(self, spans: list[Span]) -> None:
        self.engine.offer_spans(spans, self._consume_traces)

    def consume_logs(self, records: list[LogRecord]) -> None:
        self.engine.offer_logs(records, self._consume_logs)

    def consume_metrics(self, metrics: list) -> None:  # not a metrics processor: pass through
        self._next.consume_metrics(metrics)

    def start(self) -> None:
        if not self._started:
            self._started = True
            self.engine.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        if self._started and not self._stopped:
            self._stopped = True
            self.engine.shutdown(timeout)
