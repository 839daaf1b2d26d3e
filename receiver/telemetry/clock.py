"""Kernel timestamps (CLOCK_MONOTONIC, as bpf_ktime_get_ns) to Unix-epoch nanoseconds."""

from __future__ import annotations

import time


class MonotonicToWall:
    """Converts monotonic ns to wall-clock ns with an offset re-measured every ``refresh_s``
    (so NTP steps of the wall clock are followed without per-event syscalls)."""

    def __init__(self, refresh_s: float = 10.0) -> None:
        self._refresh_ns = int(refresh_s * 1e9)
        self._offset = 0
        self._measured_at = -self._refresh_ns
        self.refresh()

    def refresh(self) -> None:
        # Bracket the wall read between two monotonic reads and take the midpoint.
        m0 = time.monotonic_ns()
        w = time.time_ns()
        m1 = time.monotonic_ns()
        self._offset = w - (m0 + m1) // 2
        self._measured_at = m1

    def maybe_refresh(self, mono_now_ns: int) -> None:
        if mono_now_ns - self._measured_at > self._refresh_ns:
            self.refresh()

    @property
    def offset_ns(self) -> int:
        """Unix-epoch ns minus monotonic ns (add it to a kernel timestamp)."""
        return self._offset

    def to_unix_ns(self, mono_ns: int) -> int:
        return mono_ns + self._offset
