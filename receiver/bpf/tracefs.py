"""tracefs: libbpf resolves tracepoint ids through it, and it is not mounted at boot everywhere."""

from __future__ import annotations

import ctypes
import errno
import ctypes.util
import os
from pathlib import Path

from receiver.bpf.privileges import MissingCapability, MissingCapabilityError

TRACEFS_PATHS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
MOUNT_HINT = "mount -t tracefs tracefs /sys/kernel/tracing"


class TracefsError(RuntimeError):
    """tracefs cannot be used; ``capability`` names the capability that would fix it, if one would."""

    def __init__(self, message: str, capability: str | None = None, problem: str = "") -> None:
        super().__init__(message)
        self.capability = capability
        self.problem = problem or message  # without the capability: what went wrong


def tracefs_mounts(mountinfo: str = "/proc/self/mountinfo") -> set[Path]:
    """Mount points of tracefs filesystems visible to this process."""
    points = set()
    try:
        text = Path(mountinfo).read_text()
    except OSError:
        return points
    for line in text.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        fstype = line.split(" - ", 1)[1].split()[0]
        if fstype == "tracefs":
            points.add(Path(fields[4].replace("\\040", " ")))
    return points


def find_tracefs(paths: tuple[Path, ...] = TRACEFS_PATHS, mountinfo: str = "/proc/self/mountinfo") -> Path | None:
    """The first mounted tracefs (one with an ``events`` directory), if any.

    Raises TracefsError naming CAP_DAC_READ_SEARCH when one is mounted but this process may not
    look inside (tracefs is mode 0700, root's: a non-root agent needs that capability).
    """
    unreadable = None
    for p in paths:
        try:
            os.stat(p / "events")
            return p
        except PermissionError:
            unreadable = unreadable or p
        except OSError:
            continue
    if unreadable is not None and (unreadable in tracefs_mounts(mountinfo) or _is_mount_point(unreadable)):
        problem = f"tracefs is mounted on {unreadable} but uid {os.geteuid()} may not read it"
        raise TracefsError(
            f"{problem}: missing capability CAP_DAC_READ_SEARCH", capability="CAP_DAC_READ_SEARCH", problem=problem
        )
    return None


def _is_mount_point(path: Path) -> bool:
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except OSError:
        return False


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
        if err == errno.EPERM:
            problem = f"tracefs is not mounted on {target} (or mount it once on the host as root: {MOUNT_HINT})"
            raise TracefsError(
                f"tracefs is not mounted on {target} and mounting it failed: missing capability CAP_SYS_ADMIN; "
                f"or mount it once as root: {MOUNT_HINT}",
                capability="CAP_SYS_ADMIN",
                problem=problem,
            )
        raise TracefsError(
            f"tracefs is not mounted and mounting it failed ({os.strerror(err)}); run as root: {MOUNT_HINT}"
        )
    if not (target / "events").is_dir():
        raise TracefsError(f"mounted tracefs on {target} but it has no events/: run {MOUNT_HINT}")
    return target, True


def ensure_tracefs_or_refuse(other_error: type[Exception]) -> tuple[Path, bool]:
    """:func:`ensure_tracefs` for the loader: a missing capability becomes a
    :class:`~receiver.bpf.privileges.MissingCapabilityError` (one line naming it), any other
    problem ``other_error``."""
    from receiver.bpf.privileges import MissingCapability, MissingCapabilityError

    try:
        return ensure_tracefs()
    except TracefsError as err:
        if err.capability is not None:
            raise MissingCapabilityError(MissingCapability(err.capability, err.problem)) from err
        raise other_error(str(err)) from err
