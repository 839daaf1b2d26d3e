"""CpuYield gives the CPU back only in idle- or batch-class threads, at most every interval of
work; in_steps / in_chunks keep every item, in order."""

from __future__ import annotations

import os
import threading
import time

from receiver.component.cpu_yield import NO_YIELD, CpuYield, in_chunks, in_steps


def _in_thread(policy: int, fn):
    out = {}

    def run():
        os.sched_setscheduler(0, policy, os.sched_param(0))
        out["value"] = fn()

    t = threading.Thread(target=run)
    t.start()
    t.join(10)
    return out["value"]


def _busy(cy: CpuYield, seconds: float = 0.05) -> int:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        cy()
    return cy.yields


def test_yields_in_an_idle_thread_at_most_every_interval():
    yields = _in_thread(os.SCHED_IDLE, lambda: _busy(CpuYield(interval_ns=1_000_000)))
    assert 10 <= yields <= 51  # 50 ms of work, one yield per ms of it


def test_never_yields_in_a_normal_thread_or_when_disabled():
    assert _in_thread(os.SCHED_OTHER, lambda: _busy(CpuYield(interval_ns=1_000))) == 0
    assert _in_thread(os.SCHED_IDLE, lambda: _busy(CpuYield(interval_ns=1_000, enabled=False))) == 0
    assert NO_YIELD.yields == 0


def test_steps_and_chunks_keep_every_item_in_order():
    items = list(range(1000))
    calls = []

    class Counting(CpuYield):
        __slots__ = ()

        def __call__(self) -> None:
            calls.append(1)

    cy = Counting()
    assert list(in_steps(items, cy, step=32)) == items
    assert len(calls) == 32  # after each of the 32 steps (the last one partial)
    calls.clear()
    chunks = list(in_chunks(items, cy, size=64))
    assert [x for c in chunks for x in c] == items and len(chunks) == 16 and len(calls) == 15
    assert in_steps(items[:10], cy) == items[:10] and in_chunks(items, NO_YIELD) == (items,)
