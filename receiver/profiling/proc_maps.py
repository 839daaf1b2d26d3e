"""``/proc/<pid>/maps``: which file backs an address (sans-I/O parse, and a reader)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    offset: int  # file offset of start
    path: str  # "" for anonymous; "[vdso]", "[heap]"... for special mappings
    inode: int
    executable: bool


def parse_maps(text: str) -> tuple[Mapping, ...]:
    """Every line of a maps file; lines that do not parse are skipped (never raises)."""
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        try:
            lo, hi = (int(x, 16) for x in parts[0].split("-", 1))
            offset = int(parts[2], 16)
            inode = int(parts[4])
        except ValueError:
            continue
        path = parts[5].strip() if len(parts) > 5 else ""
        out.append(Mapping(lo, hi, offset, path, inode, "x" in parts[1]))
    return tuple(sorted(out, key=lambda m: m.start))


@dataclass(frozen=True)
class ProcessMaps:
    """The mappings of one process, searchable by address."""

    mappings: tuple[Mapping, ...]

    @classmethod
    def read(cls, pid: int, proc_root: str = "/proc") -> "ProcessMaps | None":
        try:
            return cls(parse_maps(Path(proc_root, str(pid), "maps").read_text()))
        except OSError:
            return None

    @cached_property
    def _starts(self) -> list[int]:
        return [m.start for m in self.mappings]

    def find(self, address: int) -> Mapping | None:
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and self.mappings[i].start <= address < self.mappings[i].end:
            return self.mappings[i]
        return None

    def first_of(self, path: str) -> Mapping | None:
        """The lowest mapping of a file (its load base when its offset is 0)."""
        for m in self.mappings:
            if m.path == path:
                return m
        return None
