"""Which functions an ELF file exports in its dynamic symbol table (.dynsym) — just enough ELF
to tell a TLS library, or an executable with OpenSSL/BoringSSL linked in statically and its
symbols exported, from any other file.  Uprobes are attached by symbol name (libbpf resolves
it in .dynsym or .symtab), so a file defining SSL_write in neither cannot be instrumented.
An executable linked with libssl.a keeps the functions in its static symbol table (.symtab)
unless it was stripped: ``include_symtab`` looks there too.

Reads the ELF header, the section headers, .dynsym and its string table; never the code.
32- and 64-bit, either byte order.  Files that are not ELF, or are cut short, export nothing.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Iterable

ELF_MAGIC = b"\x7fELF"
_ELFCLASS64 = 2
_ELFDATA2MSB = 2
SHT_DYNSYM = 11
SHT_SYMTAB = 2
SHN_UNDEF = 0
STT_FUNC = 2
STT_GNU_IFUNC = 10
STB_GLOBAL = 1
STB_WEAK = 2
MAX_TABLE_BYTES = 64 << 20  # a .dynsym/.dynstr larger than this is not believed


def exported_functions(path: str, wanted: Iterable[str], include_symtab: bool = False) -> frozenset[str]:
    """The names among ``wanted`` that the file at path defines as global functions in .dynsym
    (and, with ``include_symtab``, in .symtab).  Raises OSError when the file cannot be read."""
    wanted = frozenset(wanted)
    with open(path, "rb") as f:
        found = _exported(f, wanted, SHT_DYNSYM)
        if include_symtab and found != wanted:
            found |= _exported(f, wanted - found, SHT_SYMTAB)
        return found


def _exported(f: BinaryIO, wanted: frozenset[str], table_type: int = SHT_DYNSYM) -> frozenset[str]:
    f.seek(0)
    ident = f.read(16)
    if len(ident) < 16 or ident[:4] != ELF_MAGIC:
        return frozenset()
    is64 = ident[4] == _ELFCLASS64
    end = ">" if ident[5] == _ELFDATA2MSB else "<"
    if is64:
        ehdr = struct.Struct(end + "HHIQQQIHHHHHH")
        shdr = struct.Struct(end + "IIQQQQIIQQ")
        sym = struct.Struct(end + "IBBHQQ")
    else:
        ehdr = struct.Struct(end + "HHIIIIIHHHHHH")
        shdr = struct.Struct(end + "IIIIIIIIII")
        sym = struct.Struct(end + "IIIBBH")
    raw = f.read(ehdr.size)
    if len(raw) < ehdr.size:
        return frozenset()
    (_, _, _, _, _, shoff, _, _, _, _, shentsize, shnum, _) = ehdr.unpack(raw)
    if not shoff or shnum == 0 or shentsize < shdr.size or shnum > 65535:
        return frozenset()
    f.seek(shoff)
    table = f.read(shentsize * shnum)
    sections = []
    for i in range(shnum):
        chunk = table[i * shentsize : i * shentsize + shdr.size]
        if len(chunk) < shdr.size:
            return frozenset()
        s = shdr.unpack(chunk)
        # name, type, flags, addr, offset, size, link, info, addralign, entsize
        sections.append((s[1], s[4], s[5], s[6], s[9]))
    for sh_type, offset, size, link, entsize in sections:
        if sh_type != table_type or link >= len(sections):
            continue
        _, str_off, str_size, _, _ = sections[link]
        if size > MAX_TABLE_BYTES or str_size > MAX_TABLE_BYTES:
            return frozenset()
        f.seek(str_off)
        strtab = f.read(str_size)
        # Cheap rejection: a name that is not in the string table is not exported.
        present = [w for w in wanted if b"\0" + w.encode() + b"\0" in b"\0" + strtab]
        if not present:
            return frozenset()
        names = {w.encode(): w for w in present}
        f.seek(offset)
        symbols = f.read(size)
        step = entsize or sym.size
        found = set()
        for pos in range(0, len(symbols) - sym.size + 1, step):
            v = sym.unpack_from(symbols, pos)
            if is64:
                st_name, st_info, _, st_shndx = v[0], v[1], v[2], v[3]
            else:
                st_name, st_info, st_shndx = v[0], v[3], v[5]
            if st_shndx == SHN_UNDEF or (st_info & 0xF) not in (STT_FUNC, STT_GNU_IFUNC):
                continue
            if (st_info >> 4) not in (STB_GLOBAL, STB_WEAK):
                continue
            stop = strtab.find(b"\0", st_name)
            name = strtab[st_name : stop if stop >= 0 else len(strtab)]
            if name in names:
                found.add(names[name])
        return frozenset(found)
    return frozenset()
