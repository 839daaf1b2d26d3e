"""``ebpf-receiver check``: can the agent run on this kernel, with these privileges?

Each check is a small function returning a :class:`CheckResult`; the table is printed and
the exit code is 0 when every *required* check passed.
"""

from __future__ import annotations

import os
import platform
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from receiver.bpf.privileges import (
    CAPABILITY_BITS,
    PURPOSE,
    MissingCapabilityError,
    effective_capabilities,
    holds,
    missing_for_bpf,
)
from receiver.bpf.tracefs import MOUNT_HINT, TracefsError, ensure_tracefs

CAPABILITIES = CAPABILITY_BITS  # the names `check` reports on
REQUIRED_TRACEPOINTS = (
    "syscalls/sys_enter_read",
    "syscalls/sys_exit_recvfrom",
    "syscalls/sys_enter_connect",
    "syscalls/sys_exit_accept4",
    "sock/inet_sock_set_state",
    "sched/sched_process_exec",
    "sched/sched_process_exit",
    "task/task_newtask",
)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    required: bool = True
    fix: str = ""


def check_kernel() -> CheckResult:
    rel = platform.release()
    try:
        major, minor = (int(x) for x in rel.split(".")[:2])
    except ValueError:
        return CheckResult("kernel", False, f"unparseable release {rel!r}")
    ok = (major, minor) >= (5, 17)
    return CheckResult("kernel", ok, rel, fix="" if ok else "bpf_loop (iovec gathering) needs Linux >= 5.17")


def check_btf(path: str = "/sys/kernel/btf/vmlinux") -> CheckResult:
    ok = Path(path).is_file()
    return CheckResult("btf", ok, path if ok else f"{path} missing", fix="" if ok else "a kernel built with CONFIG_DEBUG_INFO_BTF=y")


def _tracefs_fix(err: TracefsError) -> str:
    if err.capability == "CAP_DAC_READ_SEARCH":
        return "grant CAP_DAC_READ_SEARCH, or run as root"
    return MOUNT_HINT


def check_tracefs() -> CheckResult:
    try:
        path, mounted = ensure_tracefs()
    except TracefsError as err:
        return CheckResult("tracefs", False, str(err), fix=_tracefs_fix(err))
    return CheckResult("tracefs", True, f"{path}" + (" (mounted now)" if mounted else ""))


def check_tracepoints() -> CheckResult:
    try:
        path, _ = ensure_tracefs()
    except TracefsError as err:
        return CheckResult("tracepoints", False, str(err), fix=_tracefs_fix(err))
    missing = [tp for tp in REQUIRED_TRACEPOINTS if not (path / "events" / tp).is_dir()]
    if missing:
        return CheckResult("tracepoints", False, "missing: " + ", ".join(missing), fix="CONFIG_FTRACE_SYSCALLS=y")
    return CheckResult("tracepoints", True, f"{len(REQUIRED_TRACEPOINTS)} required present")


def check_uprobes() -> CheckResult:
    ok = Path("/sys/bus/event_source/devices/uprobe/type").exists()
    return CheckResult("uprobes", ok, "uprobe PMU present" if ok else "no uprobe PMU", required=False,
                       fix="" if ok else "CONFIG_UPROBE_EVENTS=y (needed for TLS plaintext)")


def check_kprobes() -> CheckResult:
    ok = Path("/sys/bus/event_source/devices/kprobe/type").exists()
    return CheckResult("kprobes", ok, "present (unused)" if ok else "absent (not needed: tracepoints only)", required=False)


def check_ringbuf_and_load() -> CheckResult:
    """Really load the object (then unload it): the only proof that the verifier agrees."""
    from receiver.bpf.loader import BpfLoader, BpfLoadError, LoaderKnobs, default_object_path

    loader = BpfLoader(default_object_path(), LoaderKnobs(agent_tgid=os.getpid(), ring_buffer_size=1 << 16))
    try:
        loader.open()
        loader.configure()
        loader.load()
    except MissingCapabilityError as err:
        return CheckResult("bpf load (ring buffer, CO-RE)", False, str(err), fix=f"grant {err.missing.capability}")
    except (BpfLoadError, OSError) as err:
        return CheckResult("bpf load (ring buffer, CO-RE)", False, str(err).splitlines()[0],
                           fix=str(err).splitlines()[-1].removeprefix("hint: "))
    finally:
        loader.close()
    return CheckResult("bpf load (ring buffer, CO-RE)", True, "object verified and loaded")


def check_tc() -> CheckResult:
    ok = Path("/sys/module/sch_ingress").exists() or Path("/proc/net/psched").exists()
    return CheckResult("tc/clsact", ok, "available" if ok else "no tc support", required=False)


def check_capabilities() -> CheckResult:
    eff = effective_capabilities()
    have = [n for n in CAPABILITIES if holds(eff, n)]
    lacking = [n for n in CAPABILITIES if n not in have]
    missing = missing_for_bpf(eff)
    detail = "have " + (", ".join(have) or "none") + ("; lacking " + ", ".join(lacking) if lacking else "")
    if missing is not None:
        detail = f"missing capability {missing} (to {PURPOSE[missing]}); " + detail
    return CheckResult("capabilities", missing is None, detail, fix="" if missing is None else f"grant {missing}")


def check_memlock() -> CheckResult:
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    text = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft} bytes"
    return CheckResult("memlock", True, text + " (kernels >= 5.11 account BPF memory to cgroups)", required=False)


ALL_CHECKS: tuple[Callable[[], CheckResult], ...] = (
    check_kernel,
    check_btf,
    check_tracefs,
    check_tracepoints,
    check_capabilities,
    check_ringbuf_and_load,
    check_uprobes,
    check_tc,
    check_kprobes,
    check_memlock,
)


def run_checks(checks=ALL_CHECKS) -> list[CheckResult]:
    out = []
    for fn in checks:
        try:
            out.append(fn())
        except Exception as err:  # a check that crashes is a failed check, with its reason
            out.append(CheckResult(fn.__name__.removeprefix("check_"), False, f"{type(err).__name__}: {err}"))
    return out


def format_table(results: list[CheckResult]) -> str:
    w = max(len(r.name) for r in results)
    lines = [f"{'check':<{w}}  status  detail"]
    for r in results:
        status = "ok" if r.ok else ("FAIL" if r.required else "warn")
        line = f"{r.name:<{w}}  {status:<6}  {r.detail}"
        if not r.ok and r.fix:
            line += f"  (fix: {r.fix})"
        lines.append(line)
    ok = all(r.ok for r in results if r.required)
    lines.append("result: " + ("the agent can run here" if ok else "the agent cannot run here"))
    return "\n".join(lines)
