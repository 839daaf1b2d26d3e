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


def _read_symbols_fast(f, elf, table, syms: dict[int, tuple[int, str]]) -> None:
    """64-bit little-endian tables unpacked in one pass (pyelftools builds an object per symbol:
    seconds for a large binary on a busy machine)."""
    strtab = elf.get_section(table["sh_link"])
    f.seek(strtab["sh_offset"])
    names = f.read(strtab["sh_size"])
    f.seek(table["sh_offset"])
    data = f.read(min(table["sh_size"], MAX_SYMBOLS * _SYM64.size))
    data = data[: len(data) - len(data) % _SYM64.size]
    for st_name, st_info, _, _, value, size in _SYM64.iter_unpack(data):
        if value and (st_info & 0xF) in (_STT_FUNC, _STT_GNU_IFUNC):
            end = names.find(b"\0", st_name)
            _keep(syms, value, size, names[st_name:end if end >= 0 else None].decode("utf-8", "replace"))


def read_elf_symbols(path: str) -> ElfSymbols | None:
    """The symbols of ``path``; None when it is not a readable ELF file."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            build_id = ""
            for section in elf.iter_sections():
                if section.header.sh_type == "SHT_NOTE":
                    for note in section.iter_notes():
                        if note["n_type"] == "NT_GNU_BUILD_ID" and isinstance(note["n_desc"], str):
                            build_id = note["n_desc"]
            segments = tuple(
                (seg["p_offset"], seg["p_vaddr"], seg["p_filesz"])
                for seg in elf.iter_segments()
                if seg["p_type"] == "PT_LOAD"
            )
            table = elf.get_section_by_name(".symtab") or elf.get_section_by_name(".dynsym")
            syms: dict[int, tuple[int, str]] = {}
            if table is not None:
                if elf.elfclass == 64 and elf.little_endian:
                    _read_symbols_fast(f, elf, table, syms)
                else:
                    _read_symbols(table, syms)
            elf_type = elf.header["e_type"]
    except (OSError, ELFError, ValueError, KeyError):
        return None
    ordered = sorted(syms.items())
    return ElfSymbols(
        build_id=build_id,
        starts=tuple(a for a, _ in ordered),
        ends=tuple(a + size for a, (size, _) in ordered),
        names=tuple(name for _, (_, name) in ordered),
        segments=segments,
        elf_type=elf_type,
    )
