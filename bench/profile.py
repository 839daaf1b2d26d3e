"""py-spy profiles of the agent under load, condensed for docs/performance.md.

:class:`PySpy` runs ``py-spy record --format raw`` (collapsed stacks, idle threads left out, so
samples are CPU) against a pid for a bounded time; :func:`summarise` turns the stacks into the
functions that hold the CPU by themselves (*self*: the leaf frame) and with their callees
(*inclusive*), and the threads that run them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.procstat import die_with_parent

_FRAME_LINE = re.compile(r":\d+\)$")
_REPO_PREFIX = re.compile(r"\(.*?/(receiver|bench|site-packages)/")


def py_spy_path() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class PySpy:
    def __init__(self, pid: int, out: Path, seconds: float, rate: int = 200) -> None:
        exe = py_spy_path()
        if exe is None:
            raise RuntimeError("py-spy not found: pip install py-spy (the bench extra)")
        self.out = out
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate),
             "--duration", str(max(1, int(seconds))), "--threads", "--nonblocking", "-o", str(out)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            preexec_fn=die_with_parent,
        )

    def wait(self, timeout: float) -> str:
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err or ""


# Leaf functions that mostly wait with the GIL released: py-spy cannot always tell them from CPU.
_WAITS = ("select (selectors.py)", "Condition.wait (threading.py)", "_blocking (grpc/_channel.py)",
          "wait (threading.py)", "sleep")


def _mark_wait(name: str) -> str:
    return name + "  [mostly waiting]" if any(w in name for w in _WAITS) else name


def _short(frame: str) -> str:
    """``func (path/to/receiver/x.py:12)`` → ``func (receiver/x.py)``."""
    frame = _FRAME_LINE.sub(")", frame.strip())
    return _REPO_PREFIX.sub(lambda m: "(" + ("" if m.group(1) == "site-packages" else m.group(1) + "/"), frame)


@dataclass
class ProfileSummary:
    samples: int = 0
    self_top: list[tuple[str, int]] = field(default_factory=list)
    inclusive_top: list[tuple[str, int]] = field(default_factory=list)
    threads: list[tuple[str, int]] = field(default_factory=list)

    def render(self, top: int = 12) -> str:
        if not self.samples:
            return "(no samples)"
        pct = lambda n: f"{100 * n / self.samples:5.1f}%"  # noqa: E731
        lines = [f"{self.samples} CPU samples (idle threads excluded)", "", "threads:"]
        lines += [f"  {pct(n)}  {name}" for name, n in self.threads[:6]]
        lines += ["", "self (the function itself):"]
        lines += [f"  {pct(n)}  {_mark_wait(name)}" for name, n in self.self_top[:top]]
        lines += ["", "inclusive (with callees):"]
        lines += [f"  {pct(n)}  {name}" for name, n in self.inclusive_top[:top]]
        return "\n".join(lines)


def summarise(raw: str) -> ProfileSummary:
    """Collapsed stacks (``frame;frame;... count`` per line, root first, the first frame the
    thread when recorded with --threads) → top functions."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if frames and frames[0].startswith(("thread ", "process ")):
            head = frames.pop(0)
            if head.startswith("process ") and frames and frames[0].startswith("thread "):
                head = frames.pop(0)
            threads[_thread_name(head, frames)] += n
        if not frames:
            continue
        total += n
        short = [_short(f) for f in frames]
        self_c[short[-1]] += n
        for f in set(short):
            if "(threading.py)" not in f:
                incl[f] += n
    return ProfileSummary(total, self_c.most_common(), incl.most_common(), threads.most_common())


def _thread_name(head: str, frames: list[str]) -> str:
    """A thread by its name (``thread (tid): name``), else by its entry function below
    threading's bootstrap."""
    name = head.partition("): ")[2].strip()
    for f in frames:
        short = _short(f)
        if "threading.py" in short or short.startswith(("_bootstrap", "run (threading")):
            continue
        return f"{name}: {short}" if name else short
    return name or head
