"""The uprobes that read TLS plaintext, as plans the loader attaches to one file
(``BpfLoader.attach_tls_library`` / ``attach_go_tls``): OpenSSL/BoringSSL functions by name,
Go crypto/tls at file offsets (entry and RET instructions, ``discovery/go_tls.py``) with the
binary's index in ``erx_go_tls_binaries`` as cookie."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UprobeSpec:
    program: str
    func_name: str | None  # a symbol, or None: offset is a file offset
    offset: int = 0
    retprobe: bool = False
    required: bool = True
    cookie: int = 0


@dataclass(frozen=True)
class TlsAttachment:
    path: str
    probes: int
    missing: tuple[str, ...]


# (symbol, program, is return probe, required)
TLS_PROBES: tuple[tuple[str, str, bool, bool], ...] = (
    ("SSL_write", "erx_ssl_write", False, True),
    ("SSL_write", "erx_ssl_write_ret", True, True),
    ("SSL_read", "erx_ssl_read", False, True),
    ("SSL_read", "erx_ssl_read_ret", True, True),
    ("SSL_write_ex", "erx_ssl_write_ex", False, False),
    ("SSL_write_ex", "erx_ssl_write_ex_ret", True, False),
    ("SSL_read_ex", "erx_ssl_read_ex", False, False),
    ("SSL_read_ex", "erx_ssl_read_ex_ret", True, False),
    ("SSL_set_fd", "erx_ssl_set_fd", False, False),
    ("SSL_do_handshake", "erx_ssl_handshake", False, False),
    ("SSL_do_handshake", "erx_ssl_handshake_ret", True, False),
    ("SSL_connect", "erx_ssl_handshake", False, False),
    ("SSL_connect", "erx_ssl_handshake_ret", True, False),
    ("SSL_accept", "erx_ssl_handshake", False, False),
    ("SSL_accept", "erx_ssl_handshake_ret", True, False),
)


def openssl_plan() -> list[UprobeSpec]:
    """SSL_read/SSL_write (required), their _ex forms, SSL_set_fd and the handshakes (skipped
    when the file lacks them)."""
    return [UprobeSpec(prog, func, retprobe=ret, required=req) for func, prog, ret, req in TLS_PROBES]


def go_plan(binary, index: int) -> list[UprobeSpec]:
    """Entry probes of (*Conn).Read/Write and one plain uprobe per RET instruction of each
    (never a uretprobe: Go moves goroutine stacks)."""
    plan = [UprobeSpec("erx_go_tls_read", None, binary.read.entry, cookie=index),
            UprobeSpec("erx_go_tls_write", None, binary.write.entry, cookie=index)]
    plan += [UprobeSpec("erx_go_tls_ret", None, off, cookie=index)
             for fn in (binary.read, binary.write) for off in fn.returns]
    return plan


def go_binary_entry(abi, binary) -> bytes:
    """The ``struct erx_go_tls_binary`` of a covered Go binary."""
    entry = abi.ffi.new("struct erx_go_tls_binary *")
    o = binary.offsets
    entry.itab_tcpconn = binary.itab_tcpconn
    entry.tls_conn_conn, entry.net_conn_fd, entry.netfd_pfd, entry.pfd_sysfd = (
        o.tls_conn_conn, o.net_conn_fd, o.netfd_pfd, o.pfd_sysfd)
    entry.valid = 1
    return bytes(abi.ffi.buffer(entry))
