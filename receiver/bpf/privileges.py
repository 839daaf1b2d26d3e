"""Which Linux capabilities the agent needs, which this process holds, and the one line that
names the missing one.

The documented set (docs/security.md): ``CAP_BPF`` (maps, program load), ``CAP_PERFMON``
(tracing programs, tracepoint attach), ``CAP_DAC_READ_SEARCH`` (tracefs is mode 0700, root's: a
non-root agent needs it to resolve tracepoint ids; also other users' ``/proc/<pid>/environ``).
Optional: ``CAP_NET_ADMIN`` (tc programs, only with ``network_metrics.tc_interfaces``),
``CAP_SYS_PTRACE`` (other users' ``/proc/<pid>/exe``), ``CAP_SYS_ADMIN`` (only to mount tracefs
where the host has not; it also stands in for CAP_BPF and CAP_PERFMON, as the kernel allows).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

# Bits of the capability sets (linux/capability.h).
CAPABILITY_BITS = {
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_NET_ADMIN": 12,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_ADMIN": 21,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
}
# What each capability is for, as the one-line messages say it.
PURPOSE = {
    "CAP_BPF": "create BPF maps and load programs",
    "CAP_PERFMON": "load tracing programs and attach them to tracepoints",
    "CAP_DAC_READ_SEARCH": "read tracefs, mode 0700 and owned by root, to resolve tracepoints",
    "CAP_NET_ADMIN": "load and attach tc programs (network_metrics.tc_flow)",
    "CAP_SYS_PTRACE": "read /proc/<pid>/exe of other users' processes",
    "CAP_SYS_ADMIN": "mount tracefs",
}
REQUIRED = ("CAP_BPF", "CAP_PERFMON", "CAP_DAC_READ_SEARCH")


def effective_capabilities(status_path: str = "/proc/self/status") -> int:
    """This process's effective capability set (``CapEff:`` of ``/proc/self/status``)."""
    for line in Path(status_path).read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def holds(capabilities: int, name: str) -> bool:
    return bool(capabilities & (1 << CAPABILITY_BITS[name]))


def bpf_capable(capabilities: int) -> bool:
    """The kernel's ``bpf_capable()``: CAP_BPF, or CAP_SYS_ADMIN."""
    return holds(capabilities, "CAP_BPF") or holds(capabilities, "CAP_SYS_ADMIN")


def perfmon_capable(capabilities: int) -> bool:
    """The kernel's ``perfmon_capable()``: CAP_PERFMON, or CAP_SYS_ADMIN."""
    return holds(capabilities, "CAP_PERFMON") or holds(capabilities, "CAP_SYS_ADMIN")


def missing_for_bpf(capabilities: int, tc_programs: bool = False) -> str | None:
    """The first capability loading the BPF object needs and ``capabilities`` lacks.

    ``tc_programs``: the object's tc classifiers are loaded too — networking program types,
    which the kernel loads only for CAP_NET_ADMIN (or CAP_SYS_ADMIN).
    """
    if not bpf_capable(capabilities):
        return "CAP_BPF"
    if not perfmon_capable(capabilities):
        return "CAP_PERFMON"
    if tc_programs and not (holds(capabilities, "CAP_NET_ADMIN") or holds(capabilities, "CAP_SYS_ADMIN")):
        return "CAP_NET_ADMIN"
    return None


@dataclass(frozen=True)
class MissingCapability:
    """A capability the agent needs and does not hold, and what failed for lack of it."""

    capability: str
    failed: str  # what was refused ("loading the BPF object was refused")

    def __str__(self) -> str:
        return (
            f"missing capability {self.capability} (to {PURPOSE[self.capability]}): {self.failed}; "
            "grant it or run as root (docs/security.md)"
        )


class MissingCapabilityError(PermissionError):
    """Raised where the kernel refused for lack of a capability; ``str()`` is one line."""

    def __init__(self, missing: MissingCapability) -> None:
        super().__init__(str(missing))
        self.missing = missing

    def __str__(self) -> str:
        return str(self.missing)


def capability_refusal(
    what: str, err: int, tc_programs: bool = False, status_path: str = "/proc/self/status"
) -> MissingCapabilityError | None:
    """The error to raise when ``what`` failed with ``err`` (a negative or positive errno) for
    lack of a capability this process does not hold; None when that is not the explanation
    (the verifier's own EACCES, with every capability held, keeps its log)."""
    if abs(err) not in (errno.EPERM, errno.EACCES):
        return None
    missing = missing_for_bpf(effective_capabilities(status_path), tc_programs=tc_programs)
    return None if missing is None else MissingCapabilityError(MissingCapability(missing, f"{what} was refused"))
