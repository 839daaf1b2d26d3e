"""What discovery reads about processes from ``/proc`` (the root is injectable for tests).

Every reader returns ``None`` or an empty value when the process is gone or not readable: a
process can exit between any two reads, and that is never an error.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# Bit of /proc/<pid>/stat's flags field: a kernel thread (no user memory, no exe).
PF_KTHREAD = 0x00200000
_CONTAINER_ID = re.compile(r"([0-9a-f]{64})")
# TCP states of /proc/net/tcp that hold a local port: every state but CLOSE (7).
_TCP_CLOSE = 7


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of /proc/<pid>/stat discovery uses."""

    pid: int
    comm: str
    ppid: int
    flags: int
    start_time: int  # field 22, clock ticks after boot: (pid, start_time) names one process
    vsize: int  # field 23: changes when mappings are added or removed (dlopen)
    state: str = "R"  # field 3: Z (zombie) and X (dead) have exited
    # Where exec placed the program, its stack and its arguments (fields 26, 28, 47, 48:
    # startcode, startstack, start_brk, arg_start).  A fork copies them; an exec chooses new
    # ones (randomised, and arg_start moves with the arguments' length).  All 0 when this
    # reader may not ptrace-read the process (then /proc/<pid>/exe is unreadable too).
    layout: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def exited(self) -> bool:
        return self.state in ("Z", "X")

    @property
    def kernel_thread(self) -> bool:
        return bool(self.flags & PF_KTHREAD)

    def same_image_as(self, other: "ProcStat") -> bool:
        """Does this process still run the program image ``other`` runs (forked from it
        without exec)?  False when the layout is unknown."""
        return any(self.layout) and self.layout == other.layout


@dataclass(frozen=True, slots=True)
class MappedFile:
    """A file a process maps executable, as its mount namespace names it."""

    path: str
    inode: int


def parse_stat(pid: int, text: str) -> ProcStat | None:
    """/proc/<pid>/stat → ProcStat; the comm may hold spaces and parentheses."""
    head, sep, rest = text.rpartition(")")
    if not sep:
        return None
    comm = head.partition("(")[2]
    fields = rest.split()
    # fields[0] is field 3 (state): field n is fields[n - 3].
    try:
        layout = (0, 0, 0, 0)
        if len(fields) > 45:
            layout = (int(fields[23]), int(fields[25]), int(fields[44]), int(fields[45]))
        return ProcStat(pid, comm, int(fields[1]), int(fields[6]), int(fields[19]), int(fields[20]), fields[0], layout)
    except (IndexError, ValueError):
        return None


def parse_maps(text: str) -> list[MappedFile]:
    """Executable file mappings of /proc/<pid>/maps, each file once, in order of appearance.
    Deleted files (`` (deleted)``) are left out: there is no path to attach to."""
    seen: set[str] = set()
    out: list[MappedFile] = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6 or "x" not in parts[1]:
            continue
        path = parts[5]
        if not path.startswith("/") or path.endswith(" (deleted)") or path in seen:
            continue
        try:
            inode = int(parts[4])
        except ValueError:
            continue
        if inode == 0:
            continue
        seen.add(path)
        out.append(MappedFile(path, inode))
    return out


def parse_tcp_ports(text: str) -> dict[int, int]:
    """/proc/net/tcp or tcp6 → socket inode → local port (sockets in any state but CLOSE)."""
    out: dict[int, int] = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 10:
            continue
        try:
            port = int(parts[1].rpartition(":")[2], 16)
            state = int(parts[3], 16)
            inode = int(parts[9])
        except ValueError:
            continue
        if inode and state != _TCP_CLOSE:
            out[inode] = port
    return out


def container_id(cgroup_text: str) -> str | None:
    m = _CONTAINER_ID.search(cgroup_text)
    return m.group(1) if m else None


def cgroup_paths(cgroup_text: str) -> tuple[str, ...]:
    """The cgroup paths of /proc/<pid>/cgroup (the v2 one first when there is one)."""
    paths = []
    for line in cgroup_text.splitlines():
        hierarchy, _, rest = line.partition(":")
        _, _, path = rest.partition(":")
        if path:
            if hierarchy == "0":
                paths.insert(0, path)
            else:
                paths.append(path)
    return tuple(dict.fromkeys(paths))


class ProcFs:
    """Reads /proc (or a fake tree laid out the same way)."""

    def __init__(self, root: str = "/proc") -> None:
        self.root = Path(root)
        self._root_text = str(self.root)

    def pids(self) -> list[int]:
        try:
            names = os.listdir(self.root)
        except OSError:
            return []
        return sorted(int(n) for n in names if n.isdigit())

    def stat(self, pid: int) -> ProcStat | None:
        text = self._text(pid, "stat")
        return parse_stat(pid, text) if text else None

    def exe(self, pid: int) -> str:
        try:
            return os.readlink(self.root / str(pid) / "exe")
        except OSError:
            return ""

    def cmdline(self, pid: int) -> tuple[str, ...]:
        raw = self._bytes(pid, "cmdline")
        return tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)

    def cgroup(self, pid: int) -> str:
        return self._text(pid, "cgroup")

    def maps(self, pid: int) -> list[MappedFile] | None:
        """None when the maps cannot be read (gone, or not allowed)."""
        try:
            text = (self.root / str(pid) / "maps").read_text(errors="replace")
        except OSError:
            return None
        return parse_maps(text)

    def in_root(self, pid: int, path: str) -> str:
        """path as the process sees it, reachable from here (through its root: another mount
        namespace, a container)."""
        return str(self.root / str(pid) / "root") + path

    def socket_inodes(self, pid: int) -> set[int]:
        out: set[int] = set()
        fd_dir = self.root / str(pid) / "fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            return out
        for fd in fds:
            try:
                target = os.readlink(fd_dir / fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                try:
                    out.add(int(target[8:-1]))
                except ValueError:
                    continue
        return out

    def net_namespace(self, pid: int) -> int | None:
        try:
            return os.stat(self.root / str(pid) / "ns" / "net").st_ino
        except OSError:
            return None

    def tcp_ports(self, pid: int) -> dict[int, int]:
        """Socket inode → local TCP port in the network namespace of pid (IPv4 and IPv6)."""
        out: dict[int, int] = {}
        for name in ("tcp", "tcp6"):
            out.update(parse_tcp_ports(self._text(pid, f"net/{name}")))
        return out

    def _bytes(self, pid: int, name: str) -> bytes:
        """A file of the process, whole (b"" when it cannot be read).  Plain os calls: every
        process is read every rescan, and a buffered open costs five more syscalls and the
        path objects."""
        try:
            fd = os.open(f"{self._root_text}/{pid}/{name}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return b""
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError:
            return b""
        finally:
            os.close(fd)

    def _text(self, pid: int, name: str) -> str:
        return self._bytes(pid, name).decode(errors="replace")
