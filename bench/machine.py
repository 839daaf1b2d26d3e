"""What the numbers were measured on: CPU, kernel, memory, versions, and how busy the machine
was (other work on a shared machine skews every number, so each run records it)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

from bench import procstat


def _first(path: str, key: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip() if ":" in line else line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "unknown"


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def describe() -> dict:
    mem = _first("/proc/meminfo", "MemTotal")
    mem_kib = int(mem.split()[0]) if mem != "unknown" else 0
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _first("/proc/cpuinfo", "model name"),
        "kernel": platform.release(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "os": _first("/etc/os-release", "PRETTY_NAME"),
        "python": sys.version.split()[0],
        "nginx": _version(["nginx", "-v"]),
        "wrk": _version(["wrk", "-v"]),
        "loadavg_start": procstat.load_average(),
    }


def code_version(repo: Path) -> str:
    """The commit measured, and how many files of the working tree differ from it (read-only git)."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return ""
    if not head:
        return ""
    return f"commit {head}" + (f" + {len(dirty)} modified tracked files" if dirty else "")


class BusyMeter:
    """CPU the whole machine used over a window, in cores."""

    def __init__(self) -> None:
        self.busy0, self.total0 = procstat.machine_cpu_seconds()

    def cores(self) -> float:
        busy, total = procstat.machine_cpu_seconds()
        ncpu = os.cpu_count() or 1
        return (busy - self.busy0) / max((total - self.total0) / ncpu, 1e-9)
