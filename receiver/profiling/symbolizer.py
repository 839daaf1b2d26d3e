"""Stacks (instruction pointers, Python code objects) -> :class:`Frame` tuples, leaf first.

Native frames: the mapping of the address (``/proc/<pid>/maps``, read once per drain), the
file's ELF symbols (``.symtab``, else ``.dynsym``) cached by GNU build id (files without one by
path and inode), bounded in files.  Anonymous executable memory: ``/tmp/perf-<pid>.map`` (JIT).
Kernel frames: ``/proc/kallsyms``.  Python frames (CPython 3.11, :mod:`.cpython`) replace the
interpreter's own native frames: a sample keeps the native frames above the interpreter (a C
extension, libc) and then its Python stack.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from receiver.model.profiles import Frame
from receiver.profiling.cpython import CodeObjectNames, CPythonProcess
from receiver.profiling.elf_symbols import ElfSymbols, read_elf_symbols
from receiver.profiling.kernel_symbols import KernelSymbols
from receiver.profiling.perf_map import PerfMap
from receiver.profiling.proc_maps import Mapping, ProcessMaps


@dataclass
class SymbolizerStats:
    elf_files_read: int = 0
    elf_cache_hits: int = 0
    unresolved_frames: int = 0


class Symbolizer:
    def __init__(self, proc_root: str = "/proc", perf_map_dir: str = "/tmp", max_files: int = 64,
                 kernel: KernelSymbols | None = None) -> None:
        self._proc = proc_root
        self._perf_dir = perf_map_dir
        self._max_files = max_files
        self._kernel = kernel
        self._by_build_id: OrderedDict[str, ElfSymbols] = OrderedDict()
        # (path, inode) -> cache key, or None: the file could not be read as ELF
        self._file_ids: OrderedDict[tuple[str, int], str | None] = OrderedDict()
        self._maps: dict[int, ProcessMaps | None] = {}
        # The last mappings read of each process: a process that exited since (its samples are
        # still in the kernel's counts) is resolved with them. Bounded in processes.
        self._last_maps: OrderedDict[int, ProcessMaps] = OrderedDict()
        self._max_processes = 4096
        self._perf_maps: dict[int, tuple[float, PerfMap]] = {}
        self.code_names = CodeObjectNames()
        self.stats = SymbolizerStats()

    # -- per drain -------------------------------------------------------------------------

    def begin_drain(self) -> None:
        """A process's mappings are read again at most once per drain, when an address is in
        none of those known (dlopen, a new JIT region)."""
        self._maps.clear()

    def remember_maps(self, pid: int, maps: ProcessMaps) -> None:
        """Mappings read elsewhere (the receiver's scan of new processes): a process that exits
        before the next report is still resolved with them."""
        self._last_maps[pid] = maps
        self._last_maps.move_to_end(pid)
        while len(self._last_maps) > self._max_processes:
            self._last_maps.popitem(last=False)

    def forget(self, pid: int) -> None:
        """The process exited (its last mappings stay until evicted: late samples need them)."""
        self._perf_maps.pop(pid, None)
        self.code_names.forget(pid)

    # -- frames ----------------------------------------------------------------------------

    def kernel_frames(self, ips: tuple[int, ...]) -> list[Frame]:
        if self._kernel is None:
            self._kernel = KernelSymbols.read(self._proc)
        out = []
        for ip in ips:
            name = self._kernel.lookup(ip)
            if name is None:
                self.stats.unresolved_frames += 1
            out.append(Frame(name or f"0x{ip:x}", kind="kernel", module="[kernel]", address=ip))
        return out

    def user_frames(self, pid: int, ips: tuple[int, ...], python: CPythonProcess | None = None,
                    python_code: tuple[int, ...] = ()) -> list[Frame]:
        maps = self._process_maps(pid)
        out: list[Frame] = []
        for depth, ip in enumerate(ips):
            lookup = ip if depth == 0 else ip - 1  # a return address: the call is just before it
            m = maps.find(lookup) if maps is not None else None
            if m is None and pid not in self._maps:
                maps = self._process_maps(pid, refresh=True)
                m = maps.find(lookup) if maps is not None else None
            if python_code and m is not None and _is_interpreter(m, python):
                break  # from here the interpreter's frames: its Python stack stands for them
            out.append(self._native(pid, m, ip, lookup))
        if python_code and python is not None:
            out.extend(self.code_names.frame(python, code) for code in python_code)
        return out

    def _native(self, pid: int, m: Mapping | None, ip: int, lookup: int) -> Frame:
        if m is None or not m.path.startswith("/"):
            jit = self._perf_map(pid)
            name = jit.lookup(lookup) if jit is not None else None
            if name is not None:
                return Frame(name, kind="jit", module="[jit]", address=ip)
            self.stats.unresolved_frames += 1
            return Frame(f"0x{ip:x}", module=m.path if m is not None else "", address=ip)
        syms = self._elf(pid, m)
        name = None
        if syms is not None:
            vaddr = syms.vaddr_of(m.offset + (lookup - m.start))
            name = syms.lookup(vaddr) if vaddr is not None else None
        if name is None:
            self.stats.unresolved_frames += 1
            name = f"{os.path.basename(m.path)}+0x{m.offset + (lookup - m.start):x}"
        return Frame(name, module=m.path, build_id=syms.build_id if syms is not None else "", address=ip)

    # -- caches ----------------------------------------------------------------------------

    def _process_maps(self, pid: int, refresh: bool = False) -> ProcessMaps | None:
        """The known mappings of ``pid``; read from /proc when unknown or ``refresh`` (once per
        drain: ``self._maps`` holds the pids read this drain)."""
        if pid in self._maps:
            return self._maps[pid]
        known = self._last_maps.get(pid)
        if known is not None and not refresh:
            return known
        maps = ProcessMaps.read(pid, self._proc)
        if maps is not None:
            self.remember_maps(pid, maps)
        self._maps[pid] = maps if maps is not None else known
        return self._maps[pid]

    def _elf(self, pid: int, m: Mapping) -> ElfSymbols | None:
        file_key = (m.path, m.inode)
        if file_key in self._file_ids:
            cache_key = self._file_ids[file_key]
            if cache_key is None:  # not readable as ELF: not tried again while remembered
                return None
            if cache_key in self._by_build_id:
                self._by_build_id.move_to_end(cache_key)
                self.stats.elf_cache_hits += 1
                return self._by_build_id[cache_key]
        syms = read_elf_symbols(f"{self._proc}/{pid}/root{m.path}")
        if syms is None:
            syms = read_elf_symbols(m.path)  # the process exited: the file as this namespace sees it
        self.stats.elf_files_read += 1
        if syms is None:
            self._file_ids[file_key] = None
        else:
            cache_key = syms.build_id or f"{m.path}:{m.inode}"
            self._by_build_id[cache_key] = syms
            self._file_ids[file_key] = cache_key
            while len(self._by_build_id) > self._max_files:
                self._by_build_id.popitem(last=False)
        self._file_ids.move_to_end(file_key)
        while len(self._file_ids) > 4 * self._max_files:
            self._file_ids.popitem(last=False)
        return syms

    def _perf_map(self, pid: int) -> PerfMap | None:
        path = Path(self._perf_dir, f"perf-{pid}.map")
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        cached = self._perf_maps.get(pid)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            pm = PerfMap.parse(path.read_text(errors="replace"))
        except OSError:
            return None
        self._perf_maps[pid] = (mtime, pm)
        return pm


def _is_interpreter(m: Mapping, python: CPythonProcess | None) -> bool:
    name = os.path.basename(m.path)
    return python is not None and (name.startswith("python3") or name.startswith("libpython3"))
