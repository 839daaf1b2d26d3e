"""JIT symbols from ``/tmp/perf-<pid>.map`` (``START SIZE name`` in hex, one per line), as
Node's ``--perf-basic-prof``, Java's perf-map agents and CPython's ``-X perf`` write them."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

MAX_ENTRIES = 200_000


@dataclass(frozen=True)
class PerfMap:
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    names: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> "PerfMap":
        """Lines that do not parse are skipped; a later entry for the same start wins."""
        entries: dict[int, tuple[int, str]] = {}
        for line in text.splitlines():
            parts = line.split(" ", 2)
            if len(parts) != 3:
                continue
            try:
                start, size = int(parts[0], 16), int(parts[1], 16)
            except ValueError:
                continue
            entries[start] = (start + size, parts[2].strip())
            if len(entries) >= MAX_ENTRIES:
                break
        ordered = sorted(entries.items())
        return cls(tuple(s for s, _ in ordered), tuple(e for _, (e, _) in ordered), tuple(n for _, (_, n) in ordered))

    def lookup(self, address: int) -> str | None:
        i = bisect.bisect_right(self.starts, address) - 1
        if i >= 0 and address < self.ends[i]:
            return self.names[i]
        return None
