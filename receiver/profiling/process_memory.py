"""Reading another process's memory with ``process_vm_readv(2)`` (no ptrace stop)."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


@dataclass(frozen=True)
class ProcessMemory:
    pid: int

    def read(self, address: int, size: int) -> bytes | None:
        """``size`` bytes at ``address``, or None when they cannot all be read."""
        if size <= 0 or address <= 0:
            return None
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(size)
        local = _Iovec(ctypes.cast(buf, ctypes.c_void_p), size)
        remote = _Iovec(ctypes.c_void_p(address), size)
        n = libc.process_vm_readv(ctypes.c_int(self.pid), ctypes.byref(local), ctypes.c_ulong(1),
                                  ctypes.byref(remote), ctypes.c_ulong(1), ctypes.c_ulong(0))
        if n != size:
            return None
        return buf.raw
