"""Fake /proc trees, ELF files and a fake loader for the discovery unit tests."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from receiver.bpf.loader import BpfLoadError
from receiver.bpf.tls_probes import TlsAttachment
from receiver.config import DiscoveryConfig, DiscoveryRule

# -- ELF ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sym:
    name: str
    defined: bool = True
    kind: int = 2  # STT_FUNC; 1 = STT_OBJECT, 10 = STT_GNU_IFUNC
    bind: int = 1  # STB_GLOBAL; 0 = LOCAL, 2 = WEAK


def build_elf(symbols: list[Sym], bits: int = 64, endian: str = "<") -> bytes:
    """A minimal ELF shared object: a null section, .dynstr and .dynsym (linked to it)."""
    strtab = b"\0"
    offsets = []
    for s in symbols:
        offsets.append(len(strtab))
        strtab += s.name.encode() + b"\0"
    if bits == 64:
        sym = struct.Struct(endian + "IBBHQQ")
        syms = sym.pack(0, 0, 0, 0, 0, 0) + b"".join(
            sym.pack(off, (s.bind << 4) | s.kind, 0, 7 if s.defined else 0, 0x1000, 16) for s, off in zip(symbols, offsets)
        )
        ehdr = struct.Struct(endian + "HHIQQQIHHHHHH")
        shdr = struct.Struct(endian + "IIQQQQIIQQ")
        cls = 2
    else:
        sym = struct.Struct(endian + "IIIBBH")
        syms = sym.pack(0, 0, 0, 0, 0, 0) + b"".join(
            sym.pack(off, 0x1000, 16, (s.bind << 4) | s.kind, 0, 7 if s.defined else 0) for s, off in zip(symbols, offsets)
        )
        ehdr = struct.Struct(endian + "HHIIIIIHHHHHH")
        shdr = struct.Struct(endian + "IIIIIIIIII")
        cls = 1
    ident = b"\x7fELF" + bytes([cls, 2 if endian == ">" else 1, 1]) + bytes(9)
    str_off = 16 + ehdr.size
    sym_off = str_off + len(strtab)
    sh_off = sym_off + len(syms)
    header = ident + ehdr.pack(3, 62, 1, 0, 0, sh_off, 0, 16 + ehdr.size, 0, 0, shdr.size, 3, 0)
    sections = (
        shdr.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        + shdr.pack(0, 3, 2, 0, str_off, len(strtab), 0, 0, 1, 0)
        + shdr.pack(0, 11, 2, 0, sym_off, len(syms), 1, 1, 8, sym.size)
    )
    return header + strtab + syms + sections


LIBSSL = build_elf([Sym("SSL_write"), Sym("SSL_read"), Sym("SSL_write_ex"), Sym("malloc", defined=False)])
LIBC = build_elf([Sym("malloc"), Sym("free"), Sym("SSL_write", defined=False)])
WRITE_ONLY_SSL = build_elf([Sym("SSL_write")])

# -- /proc ----------------------------------------------------------------------------------------


def stat_line(pid: int, comm: str, start_time: int, vsize: int, ppid: int = 1, flags: int = 0x400000,
              state: str = "S", image: int = 0) -> str:
    """``image``: which exec drew the address-space layout (a fork keeps its parent's); 0: unknown
    (the fields read 0, as for a process the reader may not ptrace-read)."""
    layout = [0] * 30  # fields 25..54
    if image:
        layout[26 - 25] = 0x550000000000 + (image << 12)  # startcode
        layout[28 - 25] = 0x7FFC00000000 + (image << 12)  # startstack
        layout[47 - 25] = 0x560000000000 + (image << 12)  # start_brk
        layout[48 - 25] = 0x7FFC00000000 + (image << 12) + 0x800  # arg_start
    after = [state, ppid, pid, pid, 0, -1, flags] + [0] * 12 + [start_time, vsize, 100] + layout
    return f"{pid} ({comm}) " + " ".join(str(x) for x in after) + "\n"


def maps_line(path: str, inode: int, perms: str = "r-xp", start: int = 0x7F0000000000) -> str:
    return f"{start:x}-{start + 0x1000:x} {perms} 00000000 08:01 {inode}          {path}\n"


@dataclass
class FakeProcess:
    pid: int
    exe: str = "/usr/bin/app"
    argv: tuple[str, ...] = ("app",)
    cgroup: str = "0::/system.slice/app.service\n"
    start_time: int = 1000
    vsize: int = 1 << 20
    maps: tuple[str, ...] = ()  # paths mapped executable
    root: str = "host"  # name of the fake root directory it sees
    sockets: tuple[int, ...] = ()  # socket inodes of its fds
    kernel_thread: bool = False
    ppid: int = 1
    environ: tuple[tuple[str, str], ...] = ()
    state: str = "S"  # Z: exited, not yet reaped
    image: int | None = None  # the exec its address space comes from: None, its own; the parent's pid if forked


@dataclass
class FakeProc:
    """A /proc tree under tmp_path/proc; processes see tmp_path/roots/<root> as their /."""

    base: Path
    processes: dict[int, FakeProcess] = field(default_factory=dict)
    tcp: str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

    @property
    def root(self) -> Path:
        return self.base / "proc"

    def file(self, root: str, path: str, data: bytes) -> Path:
        p = self.base / "roots" / root / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def add(self, p: FakeProcess) -> FakeProcess:
        self.processes[p.pid] = p
        self.write(p)
        return p

    def remove(self, pid: int) -> None:
        import shutil

        del self.processes[pid]
        shutil.rmtree(self.root / str(pid))

    def listen(self, inode: int, port: int) -> None:
        self.tcp += f"   0: 00000000:{port:04X} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 {inode} 1\n"
        for p in self.processes.values():
            self.write(p)

    def write(self, p: FakeProcess) -> None:
        d = self.root / str(p.pid)
        if d.exists():
            import shutil

            shutil.rmtree(d)
        (d / "fd").mkdir(parents=True)
        (d / "net").mkdir()
        (d / "ns").mkdir()
        (d / "ns" / "net").write_text("")
        flags = 0x00200000 if p.kernel_thread else 0x400000
        (d / "stat").write_text(stat_line(p.pid, p.exe.rsplit("/", 1)[-1][:15], p.start_time, p.vsize, ppid=p.ppid,
                                          flags=flags, state=p.state,
                                          image=0 if p.kernel_thread else (p.pid if p.image is None else p.image)))
        (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in p.argv))
        (d / "cgroup").write_text(p.cgroup)
        (d / "environ").write_bytes(b"".join(f"{k}={v}".encode() + b"\0" for k, v in p.environ))
        if not p.kernel_thread:
            os.symlink(p.exe, d / "exe")
        root = self.base / "roots" / p.root
        root.mkdir(parents=True, exist_ok=True)
        os.symlink(root, d / "root")
        maps = "".join(maps_line(path, 1000 + i) for i, path in enumerate(p.maps))
        maps += "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]\n"
        (d / "maps").write_text(maps if not p.kernel_thread else "")
        for i, inode in enumerate(p.sockets):
            os.symlink(f"socket:[{inode}]", d / "fd" / str(3 + i))
        (d / "net" / "tcp").write_text(self.tcp)
        (d / "net" / "tcp6").write_text(self.tcp.splitlines()[0] + "\n")


class FakeLoader:
    """Records what discovery asks of the kernel side."""

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.fail = fail
        self.excluded: dict[int, str] = {}
        self.attached: list[str] = []
        self.map_calls = 0

    def set_pid_excluded(self, pid: int, excluded: bool, until_exec: bool = False) -> bool:
        self.map_calls += 1
        if excluded:
            self.excluded[pid] = "not_included" if until_exec else "excluded"
        else:
            self.excluded.pop(pid, None)
        return True

    def attach_tls_library(self, path: str) -> TlsAttachment:
        if any(f in path for f in self.fail):
            raise BpfLoadError(f"attaching SSL_write in {path} failed: Operation not permitted\nhint: ...")
        self.attached.append(path)
        return TlsAttachment(path=path, probes=15, missing=("SSL_read_ex",))


def config(include=(), exclude=(), tls=True, rescan_interval=2.0) -> DiscoveryConfig:
    return DiscoveryConfig(
        include=tuple(DiscoveryRule(**r) for r in include),
        exclude=tuple(DiscoveryRule(**r) for r in exclude),
        tls=tls,
        rescan_interval=rescan_interval,
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now
