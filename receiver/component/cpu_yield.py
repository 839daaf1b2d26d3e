"""Giving the CPU back, in the middle of a long stretch of the agent's work, to a task that
waits for it.

The agent's threads run at ``SCHED_IDLE`` (``scheduling: idle``) so that a traced request
never waits for them. On kernels built without full preemption (``preempt=none``, or the lazy
model), a task that wakes up on a CPU where an idle-class thread runs in user space does not
take the CPU at once: it waits for that thread's next call into the scheduler or for the next
tick, up to 4 ms at ``HZ=250``. Measured with ``perf sched`` on nginx at 5,000 req/s, the
client waited more than 0.5 ms 263 times in 6 s while the agent held its CPU, for 287 ms in all
(``bench/sched_delay.py``).

A :class:`CpuYield` is called at the natural steps of a loop (a record, a transaction, a chunk
of spans); at most every ``interval_ns`` of the thread's work it calls ``sched_yield()``, which
hands the CPU to whatever waits for it and returns at once when nothing does. Each thread gets
its own (it measures its own stretches); it only yields in a thread whose scheduling class is
idle or batch — the agent as ``ebpf-receiver run`` starts it — and is a no-op elsewhere.
"""

from __future__ import annotations

import os
from time import perf_counter_ns

DEFAULT_INTERVAL_NS = 200_000  # 0.2 ms of work between two yields: ~0.5 % of a busy thread's CPU
_YIELDING_POLICIES = frozenset(getattr(os, name) for name in ("SCHED_IDLE", "SCHED_BATCH") if hasattr(os, name))


class CpuYield:
    """``__call__`` yields the CPU if this thread has worked ``interval_ns`` since it last did."""

    __slots__ = ("_interval", "_last", "_enabled", "yields")

    def __init__(self, interval_ns: int = DEFAULT_INTERVAL_NS, enabled: bool | None = None) -> None:
        self._interval = interval_ns
        self._last = 0
        self._enabled = enabled  # None: decided at the first call, from the calling thread's class
        self.yields = 0

    def __call__(self) -> None:
        enabled = self._enabled
        if enabled is None:
            enabled = self._enabled = os.sched_getscheduler(0) in _YIELDING_POLICIES
        if not enabled:
            return
        now = perf_counter_ns()
        if now - self._last >= self._interval:
            if self._last:
                os.sched_yield()
                self.yields += 1
            self._last = perf_counter_ns()


NO_YIELD = CpuYield(enabled=False)


STEP = 32  # items between two calls of a CpuYield in the per-item loops (in_steps, or in_chunks of STEP)


def in_steps(items: list, cpu_yield: CpuYield, step: int = STEP):
    """The items of a list, ``cpu_yield`` called after every ``step`` of them (a list no
    longer than ``step`` is returned as it is: nothing to interleave)."""
    if len(items) <= step or cpu_yield is NO_YIELD:
        return items
    return _stepped(items, cpu_yield, step)


def _stepped(items: list, cpu_yield: CpuYield, step: int):
    for start in range(0, len(items), step):
        yield from items[start:start + step]
        cpu_yield()


def in_chunks(items: list, cpu_yield: CpuYield, size: int = 2 * STEP):
    """``items`` in slices of ``size``, ``cpu_yield`` called between two (for loops that work
    on a slice at once); the list itself, in one piece, when there is nothing to interleave."""
    if len(items) <= size or cpu_yield is NO_YIELD:
        return (items,)
    return _chunked(items, cpu_yield, size)


def _chunked(items: list, cpu_yield: CpuYield, size: int):
    for start in range(0, len(items), size):
        if start:
            cpu_yield()
        yield items[start:start + size]
