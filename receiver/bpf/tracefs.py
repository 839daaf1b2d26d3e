"""tracefs: libbpf resolves tracepoint ids through it, and it is not mounted at boot everywhere."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

TRACEFS_PATHS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
MOUNT_HINT = "mount -t tracefs tracefs /sys/kernel/tracing"


class TracefsError(RuntimeError):
    pass


def find_tracefs() -> Path | None:
    """The first mounted tracefs (one with an ``events`` directory), if any."""
    for p in TRACEFS_PATHS:
        try:
            if (p / "events").is_dir():
                return p
        except PermissionError:  # not root: reported by ensure_tracefs as a failed mount
            continue
    return None


def ensure_tracefs() -> tuple[Path, bool]:
    """Return (tracefs path, whether we mounted it).  Mounts it when missing (needs
    CAP_SYS_ADMIN); raises TracefsError with the command to run otherwise."""
    found = find_tracefs()
    if found:
        return found, False
    target = TRACEFS_PATHS[0]
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if not target.is_dir():
        raise TracefsError(f"{target} does not exist: this kernel has no tracefs (CONFIG_TRACING)")
    rc = libc.mount(b"tracefs", str(target).encode(), b"tracefs", 0, None)
    if rc != 0:
        err = ctypes.get_errno()
        raise TracefsError(
            f"tracefs is not mounted and mounting it failed ({os.strerror(err)}); run as root: {MOUNT_HINT}"
        )
    if not (target / "events").is_dir():
        raise TracefsError(f"mounted tracefs on {target} but it has no events/: run {MOUNT_HINT}")
    return target, True
