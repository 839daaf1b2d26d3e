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
  agent; under saturation the agent runs in the gaps and the overload state above takes over.
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


class OverloadControl:
    """Drains the kernel's aggregates into the RED metrics and holds the agent to its CPU budget."""

    def __init__(self, aggregates: OverloadAggregates, red_metrics, metric_resource: Callable, cpu_budget: float,
                 to_unix_ns: Callable[[int], int], shed_levels: tuple[int, int, int],
                 cpu_time: Callable[[], float] = time.process_time, clock: Callable[[], float] = time.monotonic,
                 backpressure: Backpressure | None = None) -> None:
        self._aggregates = aggregates
        self._red = red_metrics
        self._resource = metric_resource
        self._budget = cpu_budget
        self._to_unix_ns = to_unix_ns
        self._levels = shed_levels  # ERX_SHED_NONE, ERX_SHED_SUCCESSES, ERX_SHED_ALL
        self._cpu_time = cpu_time
        self._clock = clock
        self._last = (clock(), cpu_time())
        self._backpressure = backpressure
        self.refused_downstream = 0  # items the pipeline refused (seen once a second)
        self._level = 0  # index into _levels
        self._calm_since: float | None = None
        self.aggregated = 0  # transactions merged from the kernel's aggregates
        self.cpu_cores = 0.0  # the agent's CPU use over the last second, in cores
        self.level_changes = 0

    def tick(self, now_mono_ns: int) -> None:
        """Once a second, on the capture thread."""
        self.drain(now_mono_ns)
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
        over = refused > 0 or (self._budget > 0 and self.cpu_cores > self._budget)
        calm = refused == 0 and (self._budget <= 0 or self.cpu_cores < 0.7 * self._budget)
        if over and self._level < len(self._levels) - 1:
            self._set(self._level + 1)
            self._calm_since = None
        elif calm and self._level > 0:
            if self._calm_since is None:
                self._calm_since = now
            elif now - self._calm_since >= 5.0:
                self._set(self._level - 1)
                self._calm_since = now
        else:
            self._calm_since = None

    def _set(self, level: int) -> None:
        self._aggregates.set_shed_level(self._levels[level])
        log.info("agent at %.2f cores (cpu_budget %.2f), %d items refused downstream: shed level %d -> %d",
                 self.cpu_cores, self._budget, self.refused_downstream, self._level, level)
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
        cpu = GaugeMetricFamily("ebpf_receiver_cpu_cores", "The agent's CPU use over the last second, in cores.")
        cpu.add_metric([], self.cpu_cores)
        yield cpu

    def describe(self) -> list:
        return []
