"""Which stdout/stderr pipes are log destinations.

Log capture takes process output that leaves for a log destination — a terminal, a file, a
container runtime's log pipe — not a pipe into another local process (``a | b``), whose bytes are
that process's input.  The kernel asks once per pipe (an ``ERX_EV_LOG_PIPE`` record on its first
write to fd 1 or 2) and drops that pipe's writes until user space answers; this module answers:
it finds the processes holding the pipe's read end (``/proc/<pid>/fd`` → ``pipe:[ino]`` opened
read-only, per ``/proc/<pid>/fdinfo``), looking first where readers usually are — the writer's
parent, its siblings and ancestors (container runtimes start the container's first process) —
then, within a time budget, everywhere.  A pipe whose reader's name matches ``log_readers``
(container runtimes, log collectors) is a log destination; any other reader, or none found,
is not.  Verdicts are cached per pipe inode (bounded).
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable

# Process names (comm, or the executable's file name) that read a container's or a service's
# stdout to store it as logs.
DEFAULT_LOG_READERS = (
    "containerd-shim*", "conmon", "crio", "dockerd", "docker-containerd-shim*", "podman", "runc", "crun",
    "systemd", "systemd-journal*", "supervisord", "s6-log", "multilog", "svlogd", "rotatelogs", "logger",
    "cronolog", "tini", "dumb-init",
)


@dataclass(frozen=True)
class PipeVerdict:
    is_log: bool
    reader: str  # the reader's name, "" when none was found
    pid: int = 0  # the reader's pid, 0 when none was found


class LogPipeClassifier:
    def __init__(
        self,
        log_readers: Iterable[str] = DEFAULT_LOG_READERS,
        proc_root: str = "/proc",
        agent_pid: int | None = None,
        max_entries: int = 8192,
        scan_budget_s: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._patterns = tuple(log_readers)
        self._proc = proc_root
        self._agent_pid = agent_pid if agent_pid is not None else os.getpid()
        self._cache: OrderedDict[int, PipeVerdict] = OrderedDict()
        self._max = max_entries
        self._budget = scan_budget_s
        self._clock = clock
        self.classified = {"log": 0, "not_log": 0, "no_reader": 0}

    def classify(self, pipe_ino: int, writer_pid: int) -> PipeVerdict:
        cached = self._cache.get(pipe_ino)
        if cached is not None:
            return cached
        target = f"pipe:[{pipe_ino}]"
        reader = self._find_reader(target, writer_pid)
        if reader is None:
            verdict = PipeVerdict(False, "")
            self.classified["no_reader"] += 1
        else:
            pid, name = reader
            is_log = pid != self._agent_pid and any(fnmatch.fnmatchcase(name, p) for p in self._patterns)
            verdict = PipeVerdict(is_log, name, pid)
            self.classified["log" if is_log else "not_log"] += 1
        self._cache[pipe_ino] = verdict
        if len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return verdict

    # -- /proc -----------------------------------------------------------------------------------

    def _find_reader(self, target: str, writer: int) -> tuple[int, str] | None:
        seen: set[int] = set()
        for pid in self._near(writer):
            seen.add(pid)
            if self._reads(pid, target):
                return pid, self._name(pid)
        deadline = self._clock() + self._budget
        for pid in self._all_pids():
            if pid in seen:
                continue
            if self._clock() > deadline:
                return None
            if self._reads(pid, target):
                return pid, self._name(pid)
        return None

    def _near(self, writer: int) -> list[int]:
        """The writer's ancestors (up to 4), its parent's other children, and its own children."""
        out: list[int] = []
        pid = writer
        for _ in range(4):
            ppid = self._ppid(pid)
            if ppid <= 0 or ppid in out:
                break
            out.append(ppid)
            pid = ppid
        parent = out[0] if out else 0
        for pid in self._all_pids():
            if pid == writer:
                continue
            pp = self._ppid(pid)
            if pp == writer or (parent and pp == parent):
                out.append(pid)
        return out

    def _all_pids(self) -> list[int]:
        try:
            return [int(n) for n in os.listdir(self._proc) if n.isdigit()]
        except OSError:
            return []

    def _ppid(self, pid: int) -> int:
        try:
            with open(f"{self._proc}/{pid}/stat", "rb") as f:
                stat = f.read()
            return int(stat[stat.rindex(b")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            return -1

    def _name(self, pid: int) -> str:
        try:
            with open(f"{self._proc}/{pid}/comm") as f:
                return f.read().strip()
        except OSError:
            return ""

    def _reads(self, pid: int, target: str) -> bool:
        """Does pid hold ``target`` open for reading (a read end of the pipe)?"""
        fd_dir = f"{self._proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            return False
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") != target:
                    continue
                with open(f"{self._proc}/{pid}/fdinfo/{fd}") as f:
                    for line in f:
                        if line.startswith("flags:"):
                            if int(line.split()[1], 8) & 0o3 == os.O_RDONLY:
                                return True
                            break
            except (OSError, ValueError):
                continue
        return False
