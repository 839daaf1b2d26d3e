"""BPF time of one agent's programs, from the kernel's own accounting.

``kernel.bpf_stats_enabled=1`` makes the kernel sum each program's ``run_time_ns`` and
``run_cnt``; :class:`BpfRuntime` snapshots the programs a process holds (their ids from the
``prog_id`` of its program and link fds in ``/proc/<pid>/fdinfo``; ``bpftool prog show`` for the
counters) and gives the deltas — divided by the requests of a run, the BPF
time each request cost.  Other processes' syscalls hit the same programs and count too: the
fixed-rate runs drive nginx alone, the load generator excluded in the agent's kernel filter."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

STATS_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")


class BpfRuntime:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._was = None

    def __enter__(self) -> "BpfRuntime":
        self._was = STATS_SYSCTL.read_text().strip()
        STATS_SYSCTL.write_text("1")
        return self

    def __exit__(self, *exc) -> None:
        if self._was is not None:
            STATS_SYSCTL.write_text(self._was)

    def prog_ids(self) -> set[int]:
        ids: set[int] = set()
        base = Path(f"/proc/{self.pid}/fdinfo")
        for fd in base.iterdir():
            try:
                for line in fd.read_text().splitlines():
                    if line.startswith("prog_id:"):
                        ids.add(int(line.split()[1]))
            except (OSError, ValueError):
                continue
        return ids

    def snapshot(self) -> tuple[int, int]:
        """(run_time_ns, run_cnt) summed over the programs ``pid`` holds."""
        ids = self.prog_ids()
        out = subprocess.run(["bpftool", "--json", "prog", "show"], capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            return (0, 0)
        ns = cnt = 0
        for prog in json.loads(out.stdout or "[]"):
            if prog.get("id") in ids:
                ns += prog.get("run_time_ns", 0)
                cnt += prog.get("run_cnt", 0)
        return ns, cnt
