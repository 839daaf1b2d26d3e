"""Kernel symbols from ``/proc/kallsyms`` (text symbols only), searchable by address."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KernelSymbols:
    starts: tuple[int, ...]
    names: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> "KernelSymbols":
        """Lines ``address type name [module]``; non-text symbols and zero addresses (the
        kernel hides them without CAP_SYSLOG) are left out."""
        entries = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 3 or parts[1] not in ("t", "T", "w", "W"):
                continue
            try:
                addr = int(parts[0], 16)
            except ValueError:
                continue
            if addr:
                entries.append((addr, parts[2]))
        entries.sort()
        return cls(tuple(a for a, _ in entries), tuple(n for _, n in entries))

    @classmethod
    def read(cls, proc_root: str = "/proc") -> "KernelSymbols":
        try:
            return cls.parse(Path(proc_root, "kallsyms").read_text())
        except OSError:
            return cls((), ())

    def lookup(self, address: int) -> str | None:
        i = bisect.bisect_right(self.starts, address) - 1
        return self.names[i] if i >= 0 else None
