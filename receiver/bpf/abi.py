"""Kernel <-> user-space ABI, derived from ``bpf/src/abi/events.h`` (the one definition).

The region between ``/* abi:begin */`` and ``/* abi:end */`` is fed to cffi's ``cdef``; every
constant, enum and struct layout used in Python comes from there.  :func:`struct_format`
turns a cffi struct into a :mod:`struct` format so the hot decoding path is one
``unpack_from`` call per record, and tests/kernel/test_abi.py checks the layouts against the
BTF of the compiled object.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cffi

ABI_BEGIN = "/* abi:begin */"
ABI_END = "/* abi:end */"
_TYPEDEFS = """
typedef uint8_t __u8; typedef uint16_t __u16; typedef uint32_t __u32; typedef uint64_t __u64;
typedef int8_t __s8; typedef int16_t __s16; typedef int32_t __s32; typedef int64_t __s64;
"""

STRUCTS = (
    "erx_tuple",
    "erx_event_header",
    "erx_data_event",
    "erx_conn_event",
    "erx_proc_event",
    "erx_config",
    "erx_net_key",
    "erx_net_stats",
    "erx_tc_flow_key",
    "erx_tc_flow_stats",
    "erx_conn_failure_event",
    "erx_endpoint_key",
    "erx_log_pipe_event",
    "erx_http_tx_event",
    "erx_http_agg_key",
    "erx_http_agg_value",
    "erx_http_control",
    "erx_serving_event",
    "erx_go_tls_binary",
)


def header_path() -> Path:
    """events.h as shipped in the package (a link to bpf/src/abi/events.h in a checkout)."""
    return Path(str(resources.files("receiver") / "bpf" / "abi" / "events.h"))


def abi_source(text: str) -> str:
    """The cdef-able region of the ABI header."""
    try:
        start = text.index(ABI_BEGIN) + len(ABI_BEGIN)
        end = text.index(ABI_END, start)
    except ValueError as err:
        raise ValueError(f"ABI header lacks the {ABI_BEGIN!r} ... {ABI_END!r} markers") from err
    region = text[start:end]
    # Block comments are fine for cdef, but strip them so enum/define parsing below is simple.
    return re.sub(r"/\*.*?\*/", "", region, flags=re.S)


CTYPE_FORMAT = {
    "uint8_t": "B",
    "int8_t": "b",
    "uint16_t": "H",
    "int16_t": "h",
    "uint32_t": "I",
    "int32_t": "i",
    "uint64_t": "Q",
    "int64_t": "q",
}


@dataclass(frozen=True)
class Abi:
    ffi: cffi.FFI
    constants: dict[str, int]

    def sizeof(self, name: str) -> int:
        return self.ffi.sizeof(f"struct {name}")

    def offsetof(self, name: str, field: str) -> int:
        return self.ffi.offsetof(f"struct {name}", field)

    def const(self, name: str) -> int:
        return self.constants[name]

    def flat_fields(self, name: str, prefix: str = "", base: int = 0) -> list[tuple[str, int, str, int]]:
        """(dotted name, offset, scalar cffi type, array length or 0) of every leaf field."""
        out: list[tuple[str, int, str, int]] = []
        for fname, f in self.ffi.typeof(f"struct {name}").fields:
            t = f.type
            full = f"{prefix}{fname}"
            off = base + f.offset
            if t.kind == "struct":
                out.extend(self.flat_fields(t.cname.split()[-1], full + ".", off))
            elif t.kind == "array":
                out.append((full, off, t.item.cname, t.length))
            else:
                out.append((full, off, t.cname, 0))
        return out

    def struct_format(self, name: str, stop_at: str | None = None) -> tuple[struct.Struct, list[str]]:
        """A little-endian :class:`struct.Struct` covering ``struct name`` (or its fields up to
        ``stop_at``), with byte arrays as ``Ns`` and padding as ``x``; plus the field names in
        the order unpack returns them."""
        fmt = ["<"]
        names: list[str] = []
        pos = 0
        for fname, off, ctype, length in self.flat_fields(name):
            if stop_at is not None and fname == stop_at:
                break
            if off > pos:
                fmt.append(f"{off - pos}x")
                pos = off
            code = CTYPE_FORMAT[ctype]
            size = struct.calcsize(code)
            if length:
                if code in "Bb":
                    fmt.append(f"{length}s")
                else:
                    fmt.append(f"{length}{code}")
                    names.extend(f"{fname}[{i}]" for i in range(length))
                    pos += size * length
                    continue
                size *= length
            else:
                fmt.append(code)
            if not fname.split(".")[-1].startswith("_pad"):
                names.append(fname)
            else:
                fmt[-1] = f"{size}x"
            pos += size
        end = self.offsetof(name, stop_at) if stop_at else self.sizeof(name)
        if end > pos:
            fmt.append(f"{end - pos}x")
        s = struct.Struct("".join(fmt))
        assert s.size == end, (name, s.size, end)
        return s, names


def load_abi(text: str | None = None) -> Abi:
    """Parse the ABI header (the shipped one unless ``text`` is given)."""
    if text is None:
        text = header_path().read_text()
    src = abi_source(text)
    ffi = cffi.FFI()
    ffi.cdef(_TYPEDEFS + src)
    constants: dict[str, int] = {}
    for m in re.finditer(r"^\s*#define\s+(\w+)\s+(\d+)\s*$", src, flags=re.M):
        constants[m.group(1)] = int(m.group(2))
    lib = ffi.dlopen(None)  # for enum values: cffi exposes them on any opened library
    for m in re.finditer(r"\b(ERX_\w+)\s*=", src):
        constants[m.group(1)] = int(getattr(lib, m.group(1)))
    return Abi(ffi=ffi, constants=constants)
