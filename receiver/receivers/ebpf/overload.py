"""Overload as a state, not a loss: the agent's side of it.

* **Exact RED counts at any load.**  When the ring buffer fills past a threshold (or the agent
  asks, below), the kernel adds paired HTTP/1 transactions to per-CPU histograms instead of
  submitting records (bpf/src/lib/http_overload.h).  :class:`OverloadControl` drains them every
  second (and at shutdown) into the RED histograms: the same metric names, the attributes an
  aggregate keeps (:func:`~receiver.telemetry.http_semconv.aggregate_metric_attributes`: no
  ``http.route``; a client's ``server.address`` is the socket's remote address), the process's
  metric resource.  No span and no exemplar for those transactions; they are counted.
* **A CPU budget.**  Every second the agent's own CPU use (all its threads) is compared with
  ``cpu_budget`` cores.  Over it, the kernel is asked to aggregate successful transactions
  instead of submitting them (``ERX_SHED_SUCCESSES``: errors still become spans); still over,
  everything (``ERX_SHED_ALL``); back under 70 % of the budget for five seconds, one level down.
  Items the pipeline refused for lack of room (:class:`~receiver.component.backpressure.Backpressure`:
  the batch processor's backlog bound, a full exporter queue) count as over budget: spans the
  agent would build only to drop are left to the kernel's aggregates instead.
* **Yielding to the workloads.**  :func:`apply_scheduling` puts every thread of the agent in the
  ``SCHED_IDLE`` class (or ``SCHED_BATCH``): the kernel never preempts a traced request for the
  agent.  That is not enough on a saturated node: the agent then runs in the gaps the workloads
  leave, and a CPU busy with it takes a wake-up the slow way (an interprocessor interrupt instead
  of an idle CPU polling for work) — on this project's 2-core VMs a ``SCHED_IDLE`` spinner alone
  cuts nginx's saturated throughput by a third.  So the node's CPU use is a third input: when the
  other processes use ``node_busy_threshold`` of all CPUs or more (``/proc/stat`` less the agent's
  own time, over the last half second) while the agent itself is busy with traffic
  (``NODE_SHED_MIN_CORES`` and ``NODE_SHED_MIN_RATE`` transactions a second: a node busy starting
  a JVM while the agent scans ``/proc`` is no reason), successful transactions are aggregated in
  the kernel (level 1, never more for this reason) and the agent's work shrinks to the errors,
  the slow requests and the aggregates; under 75 % of the threshold for five seconds, it steps
  back down.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from receiver.capture.overload import OverloadAggregates
from receiver.component.backpressure import Backpressure
from receiver.telemetry.http_semconv import aggregate_metric_attributes

log = logging.getLogger(__name__)

POLICIES = {"idle": "SCHED_IDLE", "batch": "SCHED_BATCH", "normal": "SCHED_OTHER"}


def apply_scheduling(policy: str, task_dir: str = "/proc/self/task") -> int:
    """Put every thread of this process (and so the threads they create) in ``policy``'s class;
    returns how many threads were set."""
    if policy == "normal":
        return 0
    sched = getattr(os, POLICIES[policy])
    n = 0
    for tid in os.listdir(task_dir):
        try:
            os.sched_setscheduler(int(tid), sched, os.sched_param(0))
            n += 1
        except OSError as e:  # a thread that just ended; or no permission (then say so once)
            if e.errno != 3:  # ESRCH
                log.warning("cannot set %s scheduling for thread %s: %s", POLICIES[policy], tid, e)
    return n


NODE_SHED_MIN_CORES = 0.05  # the agent's own CPU (cores) below which a busy node sheds nothing
NODE_SHED_MIN_RATE = 1000.0  # ... and the transactions per second (its start-up alone is no reason)


def node_cpu_seconds(path: str = "/proc/stat") -> tuple[float, float] | None:
    """(busy, total) CPU seconds of all the node's CPUs since boot, or None when unreadable.  Idle
    and iowait are the free time; steal (another guest's) counts as busy: nobody here can have it."""
    try:
        with open(path, "rb") as f:
            first = f.readline().split()
    except OSError:
        return None
    if len(first) < 5 or first[0] != b"cpu":
        return None
    ticks = [int(x) for x in first[1:9]]  # user nice system idle iowait irq softirq steal
    total = sum(ticks)
    hz = os.sysconf("SC_CLK_TCK")
    return (total - ticks[3] - ticks[4]) / hz, total / hz


class OverloadControl:
    """Drains the kernel's aggregates into the RED metrics and holds the agent to its CPU budget."""

    def __init__(self, aggregates: OverloadAggregates, red_metrics, metric_resource: Callable, cpu_budget: float,
                 to_unix_ns: Callable[[int], int], shed_levels: tuple[int, int, int],
                 cpu_time: Callable[[], float] = time.process_time, clock: Callable[[], float] = time.monotonic,
                 backpressure: Backpressure | None = None, node_busy_threshold: float = 0.0,
                 node_cpu: Callable[[], tuple[float, float] | None] | None = None,
                 transactions: Callable[[], int] | None = None) -> None:
        self._aggregates = aggregates
        self._red = red_metrics
        self._resource = metric_resource
        self._budget = cpu_budget
        self._to_unix_ns = to_unix_ns
        self._levels = shed_levels  # ERX_SHED_NONE, ERX_SHED_SUCCESSES, ERX_SHED_ALL
        self._cpu_time = cpu_time
        self._clock = clock
        self._node_threshold = node_busy_threshold
        self._node_cpu = node_cpu or node_cpu_seconds
        self._last_node = self._node_cpu() if node_busy_threshold > 0 else None
        self._transactions = transactions  # cumulative transactions seen (records; aggregates are added)
        self._last_tx = transactions() if transactions is not None else 0
        self._last = (clock(), cpu_time())
        self._backpressure = backpressure
        self.refused_downstream = 0  # items the pipeline refused (seen once a second)
        self._level = 0  # index into _levels
        self._calm_since: float | None = None
        self._reason = ""
        self.aggregated = 0  # transactions merged from the kernel's aggregates
        self.cpu_cores = 0.0  # the agent's CPU use over the last half second, in cores
        self.node_busy = 0.0  # the other processes' share of all CPUs over the last half second
        self.level_changes = 0

    def tick(self, now_mono_ns: int) -> None:
        """Once a second, on the capture thread."""
        self.drain(now_mono_ns)
        self._budget_step()

    def check(self) -> None:
        """After every poll, on the capture thread: the shed level follows the agent's CPU, the
        pipeline and the node every half second (a saturated node sheds within a second)."""
        self._budget_step()

    def drain(self, now_mono_ns: int) -> None:
        if self._red is None:
            return
        at = self._to_unix_ns(now_mono_ns)
        for agg in self._aggregates.drain():
            k = agg.key
            name, attrs = aggregate_metric_attributes(k.role == 2, k.method, k.status, k.version, k.tls,
                                                      k.server_address, k.server_port)
            self._red.merge(name, self._resource(k.pid), attrs, agg.count, agg.sum_ns / 1e9, agg.min_ns / 1e9,
                            agg.max_ns / 1e9, agg.buckets, at)
            self.aggregated += agg.count

    def _budget_step(self) -> None:
        now, cpu = self._clock(), self._cpu_time()
        last_now, last_cpu = self._last
        if now - last_now < 0.5:
            return
        self._last = (now, cpu)
        refused = self._backpressure.take() if self._backpressure is not None else 0
        self.refused_downstream += refused
        self.cpu_cores = (cpu - last_cpu) / (now - last_now)
        node_over, node_calm = False, True
        if self._node_threshold > 0:
            self.node_busy = self._node_busy(cpu - last_cpu)
            # Only an agent with work worth yielding sheds for the node: a node busy with something
            # else (a build, a JVM starting) while little traffic is traced keeps every span.
            tx = self._transactions() + self.aggregated if self._transactions is not None else 0
            rate = (tx - self._last_tx) / (now - last_now)
            self._last_tx = tx
            node_over = (self.node_busy >= self._node_threshold and self.cpu_cores >= NODE_SHED_MIN_CORES
                         and (self._transactions is None or rate >= NODE_SHED_MIN_RATE))
            node_calm = self.node_busy < 0.75 * self._node_threshold
        budget_over = refused > 0 or (self._budget > 0 and self.cpu_cores > self._budget)
        budget_calm = refused == 0 and (self._budget <= 0 or self.cpu_cores < 0.7 * self._budget)
        # The budget (or refusals) may shed everything; a busy node, the successes only, and it
        # holds them until it is calm.
        ceiling = len(self._levels) - 1 if budget_over else 1 if node_over else 0
        floor = 0 if node_calm else 1
        if self._level < ceiling:
            self._reason = "over its cpu_budget or refused downstream" if budget_over else "node busy"
            self._set(self._level + 1)
            self._calm_since = None
        elif budget_calm and self._level > floor:
            if self._calm_since is None:
                self._calm_since = now
            elif now - self._calm_since >= 5.0:
                self._set(self._level - 1)
                self._calm_since = now
        else:
            self._calm_since = None

    def _node_busy(self, agent_cpu_s: float) -> float:
        """The other processes' share of all CPUs since the last call (0 when unreadable)."""
        cur = self._node_cpu()
        last, self._last_node = self._last_node, cur
        if cur is None or last is None or cur[1] <= last[1]:
            return 0.0
        total = cur[1] - last[1]
        return max(0.0, min(1.0, (cur[0] - last[0] - agent_cpu_s) / total))

    def _set(self, level: int) -> None:
        self._aggregates.set_shed_level(self._levels[level])
        log.info("agent at %.2f cores (cpu_budget %.2f), other processes at %.0f %% of the node's CPUs "
                 "(node_busy_threshold %.2f), %d items refused downstream: shed level %d -> %d (%s)",
                 self.cpu_cores, self._budget, 100 * self.node_busy, self._node_threshold, self.refused_downstream,
                 self._level, level, self._reason if level > self._level else "calm")
        self._level = level
        self.level_changes += 1

    @property
    def shed_level(self) -> int:
        return self._level

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        aggregated = CounterMetricFamily(
            "ebpf_receiver_http_transactions_aggregated",
            "HTTP/1 transactions the kernel aggregated under overload (in the RED metrics, no span).",
        )
        aggregated.add_metric([], self.aggregated)
        yield aggregated
        level = GaugeMetricFamily(
            "ebpf_receiver_shed_level",
            "What the kernel aggregates instead of submitting, because of the CPU budget or the pipeline "
            "refusing items: 0 nothing, 1 successful transactions, 2 all.",
        )
        level.add_metric([], self._level)
        yield level
        refused = CounterMetricFamily(
            "ebpf_receiver_pipeline_refused_items",
            "Items the pipeline refused for lack of room (batch backlog, full exporter queues), seen by overload control.",
        )
        refused.add_metric([], self.refused_downstream)
        yield refused
        cpu = GaugeMetricFamily("ebpf_receiver_cpu_cores", "The agent's CPU use over the last half second, in cores.")
        cpu.add_metric([], self.cpu_cores)
        yield cpu
        if self._node_threshold > 0:
            node = GaugeMetricFamily(
                "ebpf_receiver_node_cpu_busy",
                "The other processes' share of all the node's CPUs over the last half second (0..1), against "
                "node_busy_threshold.",
            )
            node.add_metric([], self.node_busy)
            yield node

    def describe(self) -> list:
        return []
