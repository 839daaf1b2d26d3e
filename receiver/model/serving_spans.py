"""Which span a server request became, by the kernel's identity of the request: the connection
id and the time of its first byte (``struct erx_serving``, ``ERX_EV_HTTP_TX``).  The eBPF
receiver records each server span; the profiler asks for the span of the request a thread was
serving when it was sampled.  Bounded (least recently recorded dropped), thread-safe."""

from __future__ import annotations

import threading
from collections import OrderedDict


class ServingSpans:
    def __init__(self, max_entries: int = 16384) -> None:
        self._spans: OrderedDict[tuple[int, int], object] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()
        self.dropped = 0

    def record(self, conn_id: int, start_ns: int, span) -> None:
        """``span``: a :class:`~receiver.model.telemetry.Span` (read when asked: its trace id
        may be decided after it was built)."""
        with self._lock:
            self._spans[(conn_id, start_ns)] = span
            if len(self._spans) > self._max:
                self._spans.popitem(last=False)
                self.dropped += 1

    def span_of(self, conn_id: int, start_ns: int) -> tuple[str, str] | None:
        """(trace id, span id) in hex, or None: no such span (yet), or its trace not decided."""
        with self._lock:
            span = self._spans.get((conn_id, start_ns))
        if span is None or not span.trace_id:
            return None
        return span.trace_id.hex(), span.span_id.hex()
