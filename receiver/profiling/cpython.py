"""CPython interpreter frames: which processes run a CPython the kernel can walk, where their
frames are (``struct erx_prof_py_proc``), and the name of a code object the kernel recorded.

How it works: the thread running Python code holds the GIL, and CPython 3.11 keeps that
thread's state in ``_PyRuntime.gilstate.tstate_current``.  The kernel (profile.bpf.c) reads it
at each sample; when its ``native_thread_id`` is the sampled thread it follows
``tstate->cframe->current_frame`` and each frame's ``previous``, recording the ``f_code``
pointers.  User space reads each code object's ``co_qualname``/``co_filename``/
``co_firstlineno`` with ``process_vm_readv`` when it symbolises, and caches them.

Limits: the layouts are those of CPython 3.11 (offsets from its headers, checked by
tests/unit/test_profiling_cpython.py against the installed ``Python.h`` when present); other
versions are not walked (their native frames still are).  ``_PyRuntime`` must be in the
dynamic symbol table (it is, for the interpreter executable and ``libpython``).  A code object
freed between the sample and the drain may read as another (or as ``[unknown]``).  Threads that
released the GIL (in I/O or in C code that drops it) show native frames only.
"""

from __future__ import annotations

import re
import struct
from collections import OrderedDict
from dataclasses import dataclass

from receiver.model.profiles import Frame
from receiver.profiling.elf_symbols import SHT_DYNSYM, read_elf64_layout, read_table
from receiver.profiling.process_memory import ProcessMemory
from receiver.profiling.proc_maps import ProcessMaps

NO_OFFSET = 0xFFFFFFFF
_OB_TYPE = 8  # PyObject.ob_type (after ob_refcnt)
_PYTHON_FILE = re.compile(r"(?:^|/)(?:lib)?python3\.(\d+)[^/]*$")


@dataclass(frozen=True)
class CPythonLayout:
    """Offsets of one CPython minor version (x86_64 and aarch64, non-debug builds)."""

    runtime_tstate_current: int  # _PyRuntime.gilstate.tstate_current
    ts_native_tid: int
    ts_cframe: int
    cframe_frame: int
    frame_code: int
    frame_previous: int
    frame_owner: int  # NO_OFFSET when the version has no C-stack shim frames to skip
    owner_cstack: int
    code_filename: int
    code_name: int
    code_qualname: int
    code_firstlineno: int
    unicode_state: int = 32
    unicode_length: int = 16
    ascii_data: int = 48  # sizeof(PyASCIIObject)
    compact_data: int = 72  # sizeof(PyCompactUnicodeObject)


LAYOUTS: dict[tuple[int, int], CPythonLayout] = {
    (3, 11): CPythonLayout(
        runtime_tstate_current=576, ts_native_tid=160, ts_cframe=56, cframe_frame=8, frame_code=32,
        frame_previous=48, frame_owner=NO_OFFSET, owner_cstack=255, code_filename=112, code_name=120,
        code_qualname=128, code_firstlineno=72,
    ),
}


@dataclass(frozen=True)
class CPythonProcess:
    pid: int
    version: tuple[int, int]
    runtime: int  # address of _PyRuntime in the process
    layout: CPythonLayout
    code_type: int = 0  # address of PyCode_Type: a code object read is checked against it
    str_type: int = 0  # address of PyUnicode_Type

    def kernel_entry(self, abi) -> bytes:
        """The process's ``struct erx_prof_py_proc``."""
        p = abi.ffi.new("struct erx_prof_py_proc *")
        lay = self.layout
        p.tstate_ptr = self.runtime + lay.runtime_tstate_current
        p.ts_native_tid = lay.ts_native_tid
        p.ts_cframe = lay.ts_cframe
        p.ts_frame = lay.cframe_frame
        p.frame_code = lay.frame_code
        p.frame_previous = lay.frame_previous
        p.frame_owner = lay.frame_owner
        p.owner_cstack = lay.owner_cstack
        return bytes(abi.ffi.buffer(p))


_SYM64 = struct.Struct("<IBBHQQ")  # Elf64_Sym
_WANTED = ("_PyRuntime", "Py_Version", "PyCode_Type", "PyUnicode_Type")


def _dynamic_symbols(path: str) -> tuple[dict[str, int], tuple[tuple[int, int, int], ...]] | None:
    """st_value of the symbols CPython support needs (``_WANTED``) in the dynamic symbol table,
    and the PT_LOAD segments (names found in the string table first, then one pass over the
    table); None when the file is not a 64-bit little-endian ELF file."""
    found: dict[str, int] = {}
    with open(path, "rb") as f:
        layout = read_elf64_layout(f)
        if layout is None:
            return None
        table = layout.tables.get(SHT_DYNSYM)
        if table is None:
            return found, layout.segments
        data, names = read_table(f, table)
    offsets = {}
    for name in _WANTED:
        i = names.find(b"\0" + name.encode() + b"\0")
        if i >= 0:
            offsets[i + 1] = name
    for st_name, _, _, _, value, _ in _SYM64.iter_unpack(data):
        name = offsets.get(st_name)
        if name is not None and value:
            found[name] = value
    return found, layout.segments


def _reader(proc_root: str):
    def read(pid: int, path: str, inode: int):
        try:
            return _dynamic_symbols(f"{proc_root}/{pid}/root{path}")
        except (OSError, ValueError, struct.error):
            return None

    return read


class CPythonFinder:
    """:func:`find_cpython` with the interpreter files' symbols cached by (path, inode): every
    CPython process of a node maps the same few files. Bounded in files."""

    def __init__(self, proc_root: str = "/proc", max_files: int = 64) -> None:
        self._proc = proc_root
        self._read = _reader(proc_root)
        self._max = max_files
        self._files: OrderedDict[tuple[str, int], tuple | None] = OrderedDict()
        self.files_read = 0

    def find(self, pid: int, maps: ProcessMaps) -> CPythonProcess | None:
        return find_cpython(pid, maps, self._proc, self._symbols)

    def _symbols(self, pid: int, path: str, inode: int):
        key = (path, inode)
        if key in self._files:
            self._files.move_to_end(key)
            return self._files[key]
        value = self._files[key] = self._read(pid, path, inode)
        self.files_read += 1
        if len(self._files) > self._max:
            self._files.popitem(last=False)
        return value


def find_cpython(pid: int, maps: ProcessMaps, proc_root: str = "/proc", symbols=None) -> CPythonProcess | None:
    """The CPython of ``pid`` when it is one this module can walk; None otherwise.
    ``symbols(pid, path, inode)``: the file's (symbols, segments) or None (default: read it)."""
    symbols = symbols or _reader(proc_root)
    seen = set()
    for m in maps.mappings:
        if not m.path.startswith("/") or m.path in seen or not _PYTHON_FILE.search(m.path):
            continue
        seen.add(m.path)
        got = symbols(pid, m.path, m.inode)
        if got is None:
            continue
        syms, segments = got
        if "_PyRuntime" not in syms or "Py_Version" not in syms:
            continue
        bias = _load_bias(maps, m.path, segments)
        if bias is None:
            continue
        raw = ProcessMemory(pid).read(syms["Py_Version"] + bias, 8)
        if raw is None:
            return None
        hexversion = struct.unpack("<Q", raw)[0]
        version = ((hexversion >> 24) & 0xFF, (hexversion >> 16) & 0xFF)
        layout = LAYOUTS.get(version)
        if layout is None:
            return None
        return CPythonProcess(pid, version, syms["_PyRuntime"] + bias, layout,
                              syms.get("PyCode_Type", -bias) + bias, syms.get("PyUnicode_Type", -bias) + bias)
    return None


def _load_bias(maps: ProcessMaps, path: str, segments) -> int | None:
    """Address in the process minus address as linked, from a mapping of the file."""
    for m in maps.mappings:
        if m.path != path:
            continue
        for off, vaddr, size in segments:
            if off <= m.offset < off + max(size, 1):
                return m.start - (vaddr + (m.offset - off))
    return None


class CodeObjectNames:
    """Code object address -> :class:`Frame`, read from the process and cached (bounded, per
    (pid, address))."""

    def __init__(self, max_entries: int = 65536) -> None:
        self._cache: OrderedDict[tuple[int, int], Frame] = OrderedDict()
        self._max = max_entries
        self.read_errors = 0

    def frame(self, proc: CPythonProcess, code: int) -> Frame:
        key = (proc.pid, code)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        frame = self._read(proc, code)
        if frame is None:
            self.read_errors += 1
            return Frame(f"[python 0x{code:x}]", kind="python")
        self._cache[key] = frame
        if len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return frame

    def forget(self, pid: int) -> None:
        for key in [k for k in self._cache if k[0] == pid]:
            del self._cache[key]

    def _read(self, proc: CPythonProcess, code: int) -> Frame | None:
        mem, lay = ProcessMemory(proc.pid), proc.layout
        head = mem.read(code, lay.code_qualname + 8)
        if head is None or (proc.code_type and struct.unpack_from("<Q", head, _OB_TYPE)[0] != proc.code_type):
            return None  # freed, or not a code object (a frame read while it changed)
        first_line = struct.unpack_from("<i", head, lay.code_firstlineno)[0]
        qualname = _read_str(mem, lay, struct.unpack_from("<Q", head, lay.code_qualname)[0], proc.str_type)
        filename = _read_str(mem, lay, struct.unpack_from("<Q", head, lay.code_filename)[0], proc.str_type)
        if qualname is None:
            return None
        return Frame(qualname, kind="python", filename=filename or "", line=max(0, first_line))


def _read_str(mem: ProcessMemory, lay: CPythonLayout, obj: int, str_type: int = 0, limit: int = 1024) -> str | None:
    """A compact str object's text (at most ``limit`` characters)."""
    head = mem.read(obj, lay.compact_data)
    if head is None or (str_type and struct.unpack_from("<Q", head, _OB_TYPE)[0] != str_type):
        return None
    length = struct.unpack_from("<q", head, lay.unicode_length)[0]
    state = struct.unpack_from("<I", head, lay.unicode_state)[0]
    kind, compact, ascii_ = (state >> 2) & 7, (state >> 5) & 1, (state >> 6) & 1
    if not compact or length < 0 or kind not in (1, 2, 4):
        return None
    n = min(length, limit)
    if ascii_:
        raw = mem.read(obj + lay.ascii_data, n)
        return raw.decode("ascii", errors="replace") if raw is not None else None
    raw = mem.read(obj + lay.compact_data, n * kind)
    if raw is None:
        return None
    return raw.decode({1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}[kind], errors="replace")
