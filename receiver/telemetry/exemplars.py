"""Exemplars held back until a tail sampler decides their trace.

Without tail sampling an exemplar is attached when its span is released (the head sampler has
decided).  With a ``tail_sampling`` processor the RED histograms still count every transaction
at release, but the exemplar — a pointer at a trace — waits here until the trace is decided:
attached when it is kept, forgotten when it is dropped, so no exemplar points at a trace nobody
exported.  Bounded: at most ``max_traces`` traces wait; past that the oldest is forgotten
(counted in ``evicted``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class DeferredExemplars:
    def __init__(self, red_metrics, max_traces: int = 65536) -> None:
        self._red = red_metrics
        self._max = max_traces
        self._lock = threading.Lock()
        self._waiting: OrderedDict[bytes, list] = OrderedDict()
        self.attached = 0
        self.discarded = 0
        self.evicted = 0

    def offer(self, trace_id: bytes, name: str, resource, attributes, value_s: float, time_unix_nano: int,
              span_id: bytes) -> None:
        """A span's observation (already counted) whose exemplar waits for the decision."""
        with self._lock:
            waiting = self._waiting.get(trace_id)
            if waiting is None:
                waiting = self._waiting[trace_id] = []
                if len(self._waiting) > self._max:
                    self._waiting.popitem(last=False)
                    self.evicted += 1
            waiting.append((name, resource, attributes, value_s, time_unix_nano, span_id))

    def decided(self, trace_id: bytes, keep: bool) -> None:
        with self._lock:
            waiting = self._waiting.pop(trace_id, None)
        if not waiting:
            return
        if not keep:
            self.discarded += len(waiting)
            return
        for name, resource, attributes, value_s, t, span_id in waiting:
            self._red.exemplar(name, resource, attributes, value_s, t, trace_id, span_id)
        self.attached += len(waiting)
