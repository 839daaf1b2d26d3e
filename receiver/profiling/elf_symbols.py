"""Function symbols of one ELF file (``.symtab``, else ``.dynsym``) and its GNU build id, read
with pyelftools; an address in a process becomes a symbol through the file's loadable segments
(file offset -> virtual address)."""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

MAX_SYMBOLS = 500_000  # per file: a bound on memory for huge binaries


@dataclass(frozen=True)
class ElfSymbols:
    build_id: str
    starts: tuple[int, ...]  # sorted symbol addresses (st_value)
    ends: tuple[int, ...]  # start + size (size 0: up to the next symbol)
    names: tuple[str, ...]
    segments: tuple[tuple[int, int, int], ...]  # PT_LOAD (p_offset, p_vaddr, p_filesz)
    elf_type: str  # ET_EXEC, ET_DYN

    def vaddr_of(self, file_offset: int) -> int | None:
        """The virtual address (as linked) of a file offset, through the PT_LOAD segments."""
        for off, vaddr, size in self.segments:
            if off <= file_offset < off + max(size, 1):
                return vaddr + (file_offset - off)
        return None

    def lookup(self, vaddr: int) -> str | None:
        i = bisect.bisect_right(self.starts, vaddr) - 1
        if i < 0:
            return None
        if self.ends[i] > self.starts[i] and vaddr >= self.ends[i]:
            return None
        return self.names[i]


_SYM64 = struct.Struct("<IBBHQQ")  # Elf64_Sym: st_name, st_info, st_other, st_shndx, st_value, st_size
_STT_FUNC, _STT_GNU_IFUNC = 2, 10


def _keep(syms: dict[int, tuple[int, str]], start: int, size: int, name: str) -> None:
    if start not in syms or (size and not syms[start][0]):
        syms[start] = (size, name)


def _read_symbols(table, syms: dict[int, tuple[int, str]]) -> None:
    """Through pyelftools' symbol objects (any class and byte order)."""
    for n, sym in enumerate(table.iter_symbols()):
        if n >= MAX_SYMBOLS:
            break
        if sym["st_info"]["type"] in ("STT_FUNC", "STT_GNU_IFUNC") and sym["st_value"]:
            _keep(syms, sym["st_value"], sym["st_size"], sym.name)


_EHDR64 = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR64 = struct.Struct("<IIQQQQQQ")
_SHDR64 = struct.Struct("<IIQQQQIIQQ")
SHT_SYMTAB, SHT_DYNSYM = 2, 11
_PT_LOAD, _PT_NOTE, _NT_GNU_BUILD_ID = 1, 4, 3
_ET_NAMES = {2: "ET_EXEC", 3: "ET_DYN"}


@dataclass(frozen=True)
class Elf64Layout:
    """What symbolisation needs of a 64-bit little-endian ELF file, read with struct from its
    headers (pyelftools builds objects for every section: slow on a busy machine)."""

    elf_type: str
    build_id: str
    segments: tuple[tuple[int, int, int], ...]  # PT_LOAD (p_offset, p_vaddr, p_filesz)
    tables: dict[int, tuple[int, int, int, int]]  # sh_type -> (offset, size, strtab offset, strtab size)


def read_elf64_layout(f) -> Elf64Layout | None:
    """The layout of an open file; None when it is not a 64-bit little-endian ELF file (or its
    headers do not parse)."""
    f.seek(0)
    head = f.read(_EHDR64.size)
    if len(head) < _EHDR64.size or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        return None
    (_, e_type, _, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, _) = _EHDR64.unpack(head)
    if phentsize < _PHDR64.size or (shnum and shentsize < _SHDR64.size) or phnum > 4096 or shnum > 65535:
        return None
    f.seek(phoff)
    ph = f.read(phentsize * phnum)
    segments, build_id = [], ""
    for i in range(len(ph) // phentsize):
        p_type, _, off, vaddr, _, filesz, _, _ = _PHDR64.unpack_from(ph, i * phentsize)
        if p_type == _PT_LOAD:
            segments.append((off, vaddr, filesz))
        elif p_type == _PT_NOTE and not build_id and filesz <= 1 << 16:
            f.seek(off)
            build_id = _gnu_build_id(f.read(filesz))
    f.seek(shoff)
    sh = f.read(shentsize * shnum)
    headers = [_SHDR64.unpack_from(sh, i * shentsize) for i in range(len(sh) // shentsize)] if shnum else []
    tables = {}
    for _, sh_type, _, _, off, size, link, _, _, _ in headers:
        if sh_type in (SHT_SYMTAB, SHT_DYNSYM) and link < len(headers):
            tables[sh_type] = (off, size, headers[link][4], headers[link][5])
    return Elf64Layout(_ET_NAMES.get(e_type, str(e_type)), build_id, tuple(segments), tables)


def _gnu_build_id(notes: bytes) -> str:
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, n_type = struct.unpack_from("<III", notes, pos)
        name_at = pos + 12
        desc_at = name_at + ((namesz + 3) & ~3)
        if n_type == _NT_GNU_BUILD_ID and notes[name_at:name_at + namesz] == b"GNU\0":
            return notes[desc_at:desc_at + descsz].hex()
        pos = desc_at + ((descsz + 3) & ~3)
    return ""


def read_table(f, table: tuple[int, int, int, int], limit: int = MAX_SYMBOLS) -> tuple[bytes, bytes]:
    """(symbol entries, string table) of one table of an :class:`Elf64Layout`."""
    off, size, str_off, str_size = table
    f.seek(str_off)
    names = f.read(str_size)
    f.seek(off)
    data = f.read(min(size, limit * _SYM64.size))
    return data[: len(data) - len(data) % _SYM64.size], names


def read_elf_symbols(path: str) -> ElfSymbols | None:
    """The symbols of ``path``; None when it is not a readable ELF file."""
    syms: dict[int, tuple[int, str]] = {}
    try:
        with open(path, "rb") as f:
            layout = read_elf64_layout(f)
            if layout is None:
                return _read_elf_symbols_any(path)
            table = layout.tables.get(SHT_SYMTAB) or layout.tables.get(SHT_DYNSYM)
            if table is not None:
                data, names = read_table(f, table)
                for st_name, st_info, _, _, value, size in _SYM64.iter_unpack(data):
                    if value and (st_info & 0xF) in (_STT_FUNC, _STT_GNU_IFUNC):
                        end = names.find(b"\0", st_name)
                        _keep(syms, value, size, names[st_name:end if end >= 0 else None].decode("utf-8", "replace"))
    except (OSError, ValueError, struct.error):
        return None
    return _symbols(layout.build_id, layout.segments, layout.elf_type, syms)


def _symbols(build_id: str, segments, elf_type: str, syms: dict[int, tuple[int, str]]) -> ElfSymbols:
    ordered = sorted(syms.items())
    return ElfSymbols(
        build_id=build_id,
        starts=tuple(a for a, _ in ordered),
        ends=tuple(a + size for a, (size, _) in ordered),
        names=tuple(name for _, (_, name) in ordered),
        segments=tuple(segments),
        elf_type=elf_type,
    )


def _read_elf_symbols_any(path: str) -> ElfSymbols | None:
    """Any ELF class and byte order, through pyelftools (32-bit, big-endian files)."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            build_id = ""
            for section in elf.iter_sections():
                if section.header.sh_type == "SHT_NOTE":
                    for note in section.iter_notes():
                        if note["n_type"] == "NT_GNU_BUILD_ID" and isinstance(note["n_desc"], str):
                            build_id = note["n_desc"]
            segments = tuple((seg["p_offset"], seg["p_vaddr"], seg["p_filesz"])
                             for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD")
            table = elf.get_section_by_name(".symtab") or elf.get_section_by_name(".dynsym")
            syms: dict[int, tuple[int, str]] = {}
            if table is not None:
                _read_symbols(table, syms)
            elf_type = elf.header["e_type"]
    except (OSError, ELFError, ValueError, KeyError):
        return None
    return _symbols(build_id, segments, elf_type, syms)
