"""``perf_event_open(2)`` for the profiler: one software ``cpu-clock`` event per online CPU,
sampled at a frequency (no hardware PMU needed, as in VMs).  The fds are handed to libbpf's
``bpf_program__attach_perf_event``, whose link owns (and closes) them."""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_CPU_CLOCK = 0
PERF_FLAG_FD_CLOEXEC = 1 << 3
_ATTR_SIZE = 128  # PERF_ATTR_SIZE_VER7: later kernels accept it
_FLAG_DISABLED = 1 << 0  # enabled by libbpf once the program is attached
_FLAG_FREQ = 1 << 10  # sample_freq is a frequency, not a period
_NR_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}


def online_cpus(sys_root: str = "/sys") -> list[int]:
    """The online CPUs (``/sys/devices/system/cpu/online``: "0-3,6")."""
    text = Path(sys_root, "devices/system/cpu/online").read_text().strip()
    cpus: list[int] = []
    for part in text.split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def cpu_clock_attr(frequency_hz: int) -> bytes:
    """A ``struct perf_event_attr`` for the software cpu-clock at ``frequency_hz``."""
    attr = bytearray(_ATTR_SIZE)
    struct.pack_into("<IIQQ", attr, 0, PERF_TYPE_SOFTWARE, _ATTR_SIZE, PERF_COUNT_SW_CPU_CLOCK, frequency_hz)
    struct.pack_into("<Q", attr, 40, _FLAG_DISABLED | _FLAG_FREQ)
    return bytes(attr)


def open_cpu_clock(cpu: int, frequency_hz: int) -> int:
    """One sampling event for every task on ``cpu``; returns its fd (raises OSError)."""
    nr = _NR_PERF_EVENT_OPEN.get(os.uname().machine)
    if nr is None:
        raise OSError(f"perf_event_open: unknown syscall number on {os.uname().machine}")
    libc = ctypes.CDLL(None, use_errno=True)
    attr = ctypes.create_string_buffer(cpu_clock_attr(frequency_hz), _ATTR_SIZE)
    long = ctypes.c_long
    fd = libc.syscall(long(nr), attr, long(-1), long(cpu), long(-1), ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"perf_event_open(cpu-clock, cpu {cpu}): {os.strerror(err)}")
    return fd
