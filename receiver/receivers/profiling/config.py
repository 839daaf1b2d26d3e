"""Settings of the ``profiling`` receiver (``receivers: {profiling: ...}``); defaults live here only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from receiver.configuration.section import ConfigSection, setting


@dataclass(frozen=True, slots=True)
class ProfilingReceiverConfig(ConfigSection):
    """``profiling``: on-CPU sampling of every process with a perf_event BPF program (software
    cpu-clock on each CPU), stacks aggregated in the kernel and symbolised in user space."""

    signals: ClassVar[frozenset[str]] = frozenset({"profiles"})

    frequency: int = setting(19, "Samples per second on each CPU (Hz).", minimum=1, maximum=1000)
    report_interval: float = setting(
        10.0, "How often the kernel's counts are read and a profile is sent.", kind="duration", above=0
    )
    max_stacks: int = setting(16384, "Distinct user and kernel stacks kept between two reports.", minimum=64)
    max_keys: int = setting(
        16384, "Distinct (thread, stack, request) counts kept between two reports; past it samples are counted lost.",
        minimum=64,
    )
    python: bool = setting(True, "Walk CPython 3.11 interpreter frames (Python function names).")
    python_processes: int = setting(1024, "Most CPython processes walked at once.", minimum=1)
    rescan_interval: float = setting(
        2.0, "How often /proc is listed for new processes (their mappings kept for symbols; CPython ones walked).",
        kind="duration", above=0
    )
    symbol_cache_files: int = setting(64, "ELF files whose symbols are kept (by build id).", minimum=1)
    include_agent: bool = setting(False, "Profile the agent's own process too.")
