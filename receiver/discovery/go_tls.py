"""Go executables and their ``crypto/tls``: where to put uprobes, and how to find the socket.

Go programs carry their own TLS (``crypto/tls``), linked statically, with no ``SSL_*`` symbol.
Its plaintext is read with uprobes on ``crypto/tls.(*Conn).Read`` and ``(*Conn).Write``:

* the functions are found by name in the symbol table (``.symtab``) or, in a stripped binary,
  in the function table of ``.gopclntab`` (the runtime's own, always present; Go >= 1.18
  layout);
* the Go version comes from ``.go.buildinfo``; only the register ABI (Go >= 1.17, amd64) is
  supported: arguments and results are in registers (receiver in RAX, the slice in RBX/RCX,
  the result ``n`` in RAX, the goroutine in R14);
* return probes are never used (a uretprobe rewrites the return address on the goroutine's
  stack, and Go moves stacks: the program crashes).  The function's RET instructions are found
  by disassembling it (capstone) and each gets a plain uprobe;
* the socket: ``*tls.Conn`` holds a ``net.Conn`` interface (``conn``) whose data is a
  ``*net.TCPConn`` -> ``fd *netFD`` -> ``pfd poll.FD`` -> ``Sysfd``.  The field offsets come
  from the binary's DWARF when present, else from :data:`OFFSETS_BY_VERSION`; the interface's
  itab is checked against ``go.itab.*net.TCPConn,net.Conn`` (another ``net.Conn`` is not
  followed: its plaintext is counted ``tls_unattached{reason="go_no_fd"}``).

Pure file reading, no kernel: the loader attaches what :func:`inspect_go_binary` returns.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import BinaryIO

BUILDINFO_MAGIC = b"\xff Go buildinf:"
READ_SYMBOL = "crypto/tls.(*Conn).Read"
WRITE_SYMBOL = "crypto/tls.(*Conn).Write"
TCPCONN_ITABS = ("go:itab.*net.TCPConn,net.Conn", "go.itab.*net.TCPConn,net.Conn")  # Go >= 1.20, before
MAX_FUNCTION_BYTES = 1 << 20
MAX_DWARF_BYTES = 256 << 20  # DWARF larger than this is not parsed (the table is used)
MIN_REGISTER_ABI = (1, 17)


@dataclass(frozen=True)
class GoTlsOffsets:
    """Byte offsets from a ``*tls.Conn`` to its socket's fd (see the module docstring)."""

    tls_conn_conn: int  # crypto/tls.Conn.conn (net.Conn interface: itab, data)
    net_conn_fd: int  # net.conn.fd (*netFD), at the start of net.TCPConn
    netfd_pfd: int  # net.netFD.pfd (internal/poll.FD)
    pfd_sysfd: int  # internal/poll.FD.Sysfd
    source: str  # "dwarf" | "table"


# amd64, register ABI.  Unchanged from Go 1.17 to 1.24: tls.Conn starts with `conn net.Conn`,
# net.TCPConn with `conn{fd *netFD}`, netFD with `pfd poll.FD`, and poll.FD with
# `fdmu fdMutex` (16 bytes: state uint64, rsema, wsema uint32) before `Sysfd int`.
OFFSETS_BY_VERSION: dict[tuple[int, int], GoTlsOffsets] = {
    (1, minor): GoTlsOffsets(0, 0, 0, 16, "table") for minor in range(17, 25)
}


@dataclass(frozen=True)
class GoTlsFunction:
    symbol: str
    entry: int  # file offset of the first instruction
    returns: tuple[int, ...]  # file offsets of its RET instructions


@dataclass(frozen=True)
class GoBinary:
    """A Go executable; ``covered`` when its crypto/tls plaintext can be read, else ``reason``."""

    path: str
    version: str  # "go1.19.8", or "" when .go.buildinfo could not be read
    covered: bool
    reason: str = ""  # why not covered: stripped | old_abi | unsupported_arch | no_crypto_tls | no_offsets
    read: GoTlsFunction | None = None
    write: GoTlsFunction | None = None
    offsets: GoTlsOffsets | None = None
    itab_tcpconn: int = 0  # address of go.itab.*net.TCPConn,net.Conn (0: not checked)

    @property
    def uses_tls(self) -> bool:
        return self.reason != "no_crypto_tls"


def go_version_tuple(version: str) -> tuple[int, int] | None:
    m = re.search(r"go(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else None


def inspect_go_binary(path: str) -> GoBinary | None:
    """The Go facts of the executable at path; None when it is not a Go binary (or not ELF).
    Raises OSError when it cannot be read."""
    from elftools.common.exceptions import ELFError  # noqa: PLC0415 - only Go executables need it
    from elftools.elf.elffile import ELFFile  # noqa: PLC0415

    with open(path, "rb") as f:
        if f.read(4) != b"\x7fELF":
            return None
        f.seek(0)
        try:
            elf = ELFFile(f)
            if elf.get_section_by_name(".go.buildinfo") is None and elf.get_section_by_name(".gopclntab") is None \
                    and elf.get_section_by_name(".note.go.buildid") is None:
                return None
            return _inspect(path, f, elf)
        except (ELFError, ValueError, struct.error) as err:
            return GoBinary(path, "", False, f"unreadable: {err}")


def _inspect(path: str, f: BinaryIO, elf) -> GoBinary:
    version = _build_version(elf)
    if elf["e_machine"] != "EM_X86_64":
        return GoBinary(path, version, False, "unsupported_arch")
    v = go_version_tuple(version)
    if v is not None and v < MIN_REGISTER_ABI:
        return GoBinary(path, version, False, "old_abi")
    symtab = elf.get_section_by_name(".symtab")
    wanted = {READ_SYMBOL, WRITE_SYMBOL, *TCPCONN_ITABS}
    if symtab is not None:
        found = {s.name: (s["st_value"], s["st_size"]) for s in symtab.iter_symbols() if s.name in wanted}
    else:  # stripped: the runtime's function table still names every function
        found = _pclntab_functions(elf, {READ_SYMBOL, WRITE_SYMBOL})
        if found is None:
            return GoBinary(path, version, False, "stripped")
    if READ_SYMBOL not in found or WRITE_SYMBOL not in found:
        return GoBinary(path, version, False, "no_crypto_tls")
    functions = []
    for name in (READ_SYMBOL, WRITE_SYMBOL):
        fn = _function(elf, f, name, *found[name])
        if fn is None or not fn.returns:
            return GoBinary(path, version, False, f"no RET found in {name}")
        functions.append(fn)
    offsets = _dwarf_offsets(elf) or (OFFSETS_BY_VERSION.get(v) if v else None)
    if offsets is None:
        return GoBinary(path, version, False, "no_offsets")
    itab = next((found[n][0] for n in TCPCONN_ITABS if n in found), 0)
    return GoBinary(path, version, True, "", functions[0], functions[1], offsets, itab)


PCLNTAB_MAGICS = (0xFFFFFFF0, 0xFFFFFFF1)  # Go 1.18-1.19, Go >= 1.20


def _pclntab_functions(elf, names: set[str]) -> dict[str, tuple[int, int]] | None:
    """(address, size) of the named functions from ``.gopclntab``; None when the table is
    absent or of a layout before Go 1.18."""
    sec = elf.get_section_by_name(".gopclntab")
    if sec is None:
        return None
    data = sec.data()
    if len(data) < 72:
        return None
    (magic,) = struct.unpack_from("<I", data, 0)
    if magic not in PCLNTAB_MAGICS or data[7] != 8:
        return None
    nfunc, _nfiles, text_start, funcname_off, _cu, _filetab, _pctab, pcln_off = struct.unpack_from("<8Q", data, 8)
    wanted = {n.encode() for n in names}
    out: dict[str, tuple[int, int]] = {}
    functab = pcln_off
    if functab + (nfunc + 1) * 8 > len(data):
        return None
    for i in range(nfunc):
        entry_off, func_off = struct.unpack_from("<II", data, functab + i * 8)
        (name_off,) = struct.unpack_from("<i", data, pcln_off + func_off + 4)
        start = funcname_off + name_off
        end = data.find(b"\0", start)
        if data[start:end] in wanted:
            (next_entry,) = struct.unpack_from("<I", data, functab + (i + 1) * 8)
            out[data[start:end].decode()] = (text_start + entry_off, next_entry - entry_off)
            if len(out) == len(wanted):
                break
    return out


def _build_version(elf) -> str:
    sec = elf.get_section_by_name(".go.buildinfo")
    if sec is None:
        return ""
    data = sec.data()
    if not data.startswith(BUILDINFO_MAGIC) or len(data) < 32:
        return ""
    ptr_size, flags = data[14], data[15]
    if flags & 2:  # Go >= 1.18: the strings follow the header, each with a varint length
        return _varint_string(data, 32)
    # Before: two pointers to Go string headers (version, module info).
    end = ">" if flags & 1 else "<"
    fmt = end + ("Q" if ptr_size == 8 else "I")
    (addr,) = struct.unpack_from(fmt, data, 16)
    header = _read_vaddr(elf, addr, 2 * ptr_size)
    if header is None:
        return ""
    ptr, length = struct.unpack(end + ("QQ" if ptr_size == 8 else "II"), header)
    text = _read_vaddr(elf, ptr, min(length, 256))
    return text.decode(errors="replace") if text else ""


def _varint_string(data: bytes, pos: int) -> str:
    n = shift = 0
    while pos < len(data):
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return data[pos : pos + min(n, 256)].decode(errors="replace")


def _file_offset(elf, vaddr: int) -> int | None:
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= vaddr < seg["p_vaddr"] + seg["p_filesz"]:
            return vaddr - seg["p_vaddr"] + seg["p_offset"]
    return None


def _read_vaddr(elf, vaddr: int, size: int) -> bytes | None:
    off = _file_offset(elf, vaddr)
    if off is None:
        return None
    elf.stream.seek(off)
    return elf.stream.read(size)


def _function(elf, f: BinaryIO, name: str, vaddr: int, size: int) -> GoTlsFunction | None:
    import capstone  # noqa: PLC0415

    off = _file_offset(elf, vaddr)
    if off is None or not 0 < size <= MAX_FUNCTION_BYTES:
        return None
    f.seek(off)
    code = f.read(size)
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    returns = []
    decoded = 0
    for address, insn_size, mnemonic, _ in md.disasm_lite(code, vaddr):
        decoded += insn_size
        if mnemonic == "ret":
            returns.append(address - vaddr + off)
    if decoded != len(code):  # a byte capstone could not decode: the RETs found may be wrong
        return None
    return GoTlsFunction(name, off, tuple(returns))


def _dwarf_offsets(elf) -> GoTlsOffsets | None:
    """The four offsets from DWARF (Go emits its types in the ``runtime`` unit); None when the
    binary has no DWARF or lacks one of them."""
    info = elf.get_section_by_name(".debug_info")
    if info is None or info["sh_size"] > MAX_DWARF_BYTES:
        return None
    wanted = {"crypto/tls.Conn": "conn", "net.conn": "fd", "net.netFD": "pfd", "internal/poll.FD": "Sysfd"}
    found: dict[str, int] = {}
    for cu in elf.get_dwarf_info().iter_CUs():
        top = cu.get_top_DIE()
        name = top.attributes.get("DW_AT_name")
        if name is None or name.value != b"runtime":
            continue
        for die in top.iter_children():
            if die.tag != "DW_TAG_structure_type":
                continue
            a = die.attributes.get("DW_AT_name")
            struct_name = a.value.decode(errors="replace") if a else ""
            member = wanted.get(struct_name)
            if member is None or struct_name in found:
                continue
            for m in die.iter_children():
                mn = m.attributes.get("DW_AT_name")
                loc = m.attributes.get("DW_AT_data_member_location")
                if mn is not None and mn.value.decode(errors="replace") == member and isinstance(
                        loc and loc.value, int):
                    found[struct_name] = loc.value
        if len(found) == len(wanted):
            break
    if len(found) != len(wanted):
        return None
    return GoTlsOffsets(found["crypto/tls.Conn"], found["net.conn"], found["net.netFD"],
                        found["internal/poll.FD"], "dwarf")
