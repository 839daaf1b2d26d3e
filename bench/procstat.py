"""CPU time and memory of processes, read from /proc (the root is injectable for tests).

CPU is utime + stime of ``/proc/<pid>/stat`` (fields 14 and 15, in clock ticks), which covers
every thread of the process; a process tree is summed over the pids given.
"""

from __future__ import annotations

import ctypes
import os
import signal
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for every process the benchmark starts: it gets SIGTERM when the
    benchmark dies, however it dies, so no server or agent outlives it."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


@dataclass(frozen=True)
class ProcSample:
    cpu_seconds: float  # user + system, all threads
    rss_bytes: int  # VmRSS now
    hwm_bytes: int  # VmHWM: the peak RSS since the process started


def cpu_seconds(pid: int, proc_root: str = "/proc") -> float:
    """utime + stime of one process in seconds; 0.0 when it is gone."""
    try:
        raw = Path(proc_root, str(pid), "stat").read_text()
    except OSError:
        return 0.0
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 overall


def memory(pid: int, proc_root: str = "/proc") -> tuple[int, int]:
    """(VmRSS, VmHWM) in bytes; (0, 0) when the process is gone."""
    rss = hwm = 0
    try:
        for line in Path(proc_root, str(pid), "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, hwm


def pss(pid: int, proc_root: str = "/proc") -> int:
    """Proportional set size in bytes (shared pages divided among their users; the ring buffer's
    double mapping counted once); 0 when unknown."""
    try:
        for line in Path(proc_root, str(pid), "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def sample(pid: int, proc_root: str = "/proc") -> ProcSample:
    rss, hwm = memory(pid, proc_root)
    return ProcSample(cpu_seconds(pid, proc_root), rss, hwm)


def children(pid: int, proc_root: str = "/proc") -> list[int]:
    """Direct children of ``pid`` (from /proc/<pid>/task/*/children)."""
    out: list[int] = []
    try:
        tasks = list(Path(proc_root, str(pid), "task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def tree(pid: int, proc_root: str = "/proc") -> list[int]:
    """``pid`` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p, proc_root)
    return out


def tree_cpu_seconds(pids: list[int], proc_root: str = "/proc") -> float:
    return sum(cpu_seconds(p, proc_root) for p in pids)


def load_average(proc_root: str = "/proc") -> tuple[float, float, float]:
    a, b, c = Path(proc_root, "loadavg").read_text().split()[:3]
    return float(a), float(b), float(c)


def machine_cpu_seconds(proc_root: str = "/proc") -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot (from /proc/stat)."""
    first = Path(proc_root, "stat").read_text().splitlines()[0].split()[1:]
    vals = [int(v) for v in first[:8]]
    idle = vals[3] + vals[4]  # idle + iowait
    total = sum(vals)
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def memory_breakdown(pid: int, top: int = 6, proc_root: str = "/proc") -> str:
    """Where a process's resident memory is: RSS/PSS/anonymous, and the largest mappings
    grouped by what backs them (``anon_inode:bpf-map`` is a BPF map mmap'ed into the process: the
    ring buffer's data pages are mapped twice, so RSS counts them twice and PSS once)."""
    try:
        smaps = Path(proc_root, str(pid), "smaps").read_text().splitlines()
    except OSError:
        return "(process gone)"
    groups: dict[str, int] = {}
    totals = {"Rss": 0, "Pss": 0, "Anonymous": 0}
    name = "[anon]"
    for line in smaps:
        head = line.split(None, 5)
        if "-" in head[0] and len(head) >= 5 and ":" in head[3]:
            backing = head[5].strip() if len(head) > 5 else "[anon]"
            name = backing.rsplit("/", 1)[-1] if backing.startswith("/") else backing
        elif head[0].rstrip(":") in totals:
            kib = int(head[1])
            totals[head[0].rstrip(":")] += kib
            if head[0] == "Rss:":
                groups[name] = groups.get(name, 0) + kib
    lines = ["RSS {:.0f} MB, PSS {:.0f} MB, anonymous {:.0f} MB; largest by RSS:".format(
        *(totals[k] / 1024 for k in ("Rss", "Pss", "Anonymous")))]
    for name, kib in sorted(groups.items(), key=lambda x: -x[1])[:top]:
        lines.append(f"  {kib / 1024:7.1f} MB  {name}")
    return "\n".join(lines)
