"""Backpressure: downstream components telling the receivers they are behind.

A pipeline component that refuses items for lack of room (the batch processor past its
backlog bound, an exporter whose sending queue is full) reports it here; a receiver that can
produce less reads it.  The eBPF receiver does so once a second (its overload control): items
refused since the last look raise its shed level, so the kernel aggregates transactions into
the RED metrics instead of submitting them, rather than the agent building spans that will
only be dropped.  One object per running agent, offered by the host."""

from __future__ import annotations

import threading


class Backpressure:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refused = 0
        self.refused_total = 0

    def refused(self, items: int) -> None:
        """``items`` were refused or dropped for lack of room downstream."""
        if items <= 0:
            return
        with self._lock:
            self._refused += items
            self.refused_total += items

    def take(self) -> int:
        """Items refused since the last call."""
        with self._lock:
            n, self._refused = self._refused, 0
        return n
