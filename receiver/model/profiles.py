"""Neutral profile types: what the profiler produces and profile exporters encode (pprof, OTLP).

A :class:`ProfileBatch` is one reporting interval: samples counted per (process, thread,
symbolised stack, span served), each stack leaf first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

FRAME_KINDS = ("native", "kernel", "python", "jit")


@dataclass(frozen=True)
class Frame:
    function: str  # "hot_a", "module.Class.method"; "[unknown]" / "0x7f..." when not resolved
    kind: str = "native"  # one of FRAME_KINDS
    filename: str = ""  # source file (Python), when known
    line: int = 0  # first line of the function (Python), when known
    module: str = ""  # the mapped file (ELF) or "[kernel]" / "[jit]"
    build_id: str = ""  # hex GNU build id of module, when it has one
    address: int = 0  # the address in the process (native), 0 otherwise


@dataclass(frozen=True)
class ProfileSample:
    frames: tuple[Frame, ...]  # leaf first
    count: int  # samples
    pid: int
    tid: int
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class ProfileBatch:
    start_ns: int  # wall clock (Unix ns) of the interval's start
    duration_ns: int
    frequency_hz: int
    samples: tuple[ProfileSample, ...]

    @property
    def period_ns(self) -> int:
        """CPU time one sample stands for."""
        return 1_000_000_000 // max(1, self.frequency_hz)
