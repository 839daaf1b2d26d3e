"""The profiler's BPF object (``profile.bpf.o``): open -> configure -> load -> attach -> close.

Its own object, apart from ``receiver.bpf.o``: nothing of it is loaded unless a profiles
pipeline runs.  It attaches one software cpu-clock perf event per online CPU.  When the eBPF
receiver runs in the same agent, its thread storage ``erx_serving_state`` is reused by fd (the
request each thread serves, for the span id of samples); otherwise the profiler creates its own
(empty) one.  User space drains ``erx_prof_counts`` on an interval (:meth:`drain`): each key is
read and deleted in one call, so a sample is counted in exactly one drain.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from receiver.bpf.abi import Abi
from receiver.bpf.libbpf import Libbpf
from receiver.bpf.loader import BpfLoadError, BpfLoader, default_object_path
from receiver.bpf.perf_event import online_cpus, open_cpu_clock

PROFILE_OBJECT = "profile.bpf.o"
PROFILE_PROGRAM = "erx_profile_sample"
PERF_MAX_STACK_DEPTH = 127  # value size of erx_prof_stacks (see maps/profile.h)
PROFILE_STRUCTS = ("erx_prof_config", "erx_prof_key", "erx_prof_py_proc", "erx_prof_py_stack")


@dataclass(frozen=True)
class ProfilerKnobs:
    """What user space sets before load (from ``receivers.profiling``)."""

    frequency_hz: int = 19
    max_stacks: int = 16384  # erx_prof_stacks entries (user and kernel stacks)
    max_keys: int = 16384  # erx_prof_counts entries between two drains
    python_processes: int = 1024
    python_stacks: int = 8192
    python: bool = True
    agent_tgid: int = 0
    skip_agent: bool = False
    serving_map_fd: int | None = None  # the eBPF receiver's erx_serving_state, reused


@dataclass
class ProfileLoader(BpfLoader):
    """A :class:`BpfLoader` for ``profile.bpf.o`` (its log capture and error hints), with the
    profiler's configure and attach."""

    object_path: Path = field(default_factory=lambda: default_object_path(PROFILE_OBJECT))
    profile_knobs: ProfilerKnobs = field(default_factory=ProfilerKnobs)
    libbpf: Libbpf | None = None
    abi: Abi | None = None
    cpus: tuple[int, ...] = ()

    def configure(self) -> None:
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        k = self.profile_knobs
        if not 1 <= k.frequency_hz <= 1000:
            raise BpfLoadError(f"profiling frequency {k.frequency_hz} Hz must be between 1 and 1000")
        rodata = self._find_map_suffix(".rodata")
        size = ffi.new("size_t *")
        ptr = lib.bpf_map__initial_value(rodata, size)
        if ptr == ffi.NULL or size[0] < self.abi.sizeof("erx_prof_config"):
            raise BpfLoadError(".rodata of the profiler object does not hold struct erx_prof_config")
        cfg = self.abi.ffi.new("struct erx_prof_config *")
        cfg.agent_tgid = k.agent_tgid
        cfg.skip_agent = 1 if k.skip_agent else 0
        cfg.python = 1 if k.python else 0
        cfg.serving = 1
        data = bytearray(ffi.buffer(ptr, size[0]))
        data[: self.abi.sizeof("erx_prof_config")] = bytes(self.abi.ffi.buffer(cfg))
        self._check(lib.bpf_map__set_initial_value(rodata, bytes(data), len(data)), "setting .rodata")
        self._set_max_entries("erx_prof_stacks", max(1, k.max_stacks))
        self._set_max_entries("erx_prof_counts", max(1, k.max_keys))
        self._set_max_entries("erx_prof_py_procs", max(1, k.python_processes) if k.python else 1)
        self._set_max_entries("erx_prof_py_stacks", max(1, k.python_stacks) if k.python else 1)
        if k.serving_map_fd is not None:
            m = lib.bpf_object__find_map_by_name(self._obj, b"erx_serving_state")
            if m == ffi.NULL:
                raise BpfLoadError("the profiler object has no map erx_serving_state")
            self._check(lib.bpf_map__reuse_fd(m, k.serving_map_fd), "reusing the receiver's erx_serving_state")

    def load(self) -> None:
        self._log.clear()
        rc = self._with_log(lambda: self.libbpf.lib.bpf_object__load(self._obj))
        if rc:
            raise BpfLoadError(self._failure("loading the profiler object", rc))
        self._state = "loaded"

    def attach(self) -> None:
        """One cpu-clock perf event per online CPU, each running the sampling program."""
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        prog = lib.bpf_object__find_program_by_name(self._obj, PROFILE_PROGRAM.encode())
        if prog == ffi.NULL:
            raise BpfLoadError(f"the profiler object lacks program {PROFILE_PROGRAM}")
        cpus = online_cpus()
        for cpu in cpus:
            try:
                pfd = open_cpu_clock(cpu, self.profile_knobs.frequency_hz)
            except OSError as err:
                raise BpfLoadError(
                    f"{err}\nhint: the profiler needs CAP_PERFMON (or root) and "
                    "kernel.perf_event_paranoid allowing CPU-wide events"
                ) from err
            link = self._with_log(lambda: lib.bpf_program__attach_perf_event(prog, pfd))
            err = lib.libbpf_get_error(link)
            if link == ffi.NULL or err:
                os.close(pfd)
                raise BpfLoadError(self._failure(f"attaching the profiler on CPU {cpu}", err or -errno.EINVAL))
            self._links.append(link)  # the link closes the perf event fd
        self.cpus = tuple(cpus)
        self._state = "attached"

    # -- reading ---------------------------------------------------------------------------

    def read_profile_counters(self) -> list[int]:
        """The per-CPU ``erx_prof_counters`` summed over CPUs, by enum erx_prof_counter."""
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        fd = self.map_fd("erx_prof_counters")
        ncpu = lib.libbpf_num_possible_cpus()
        key = ffi.new("uint32_t *")
        values = ffi.new("uint64_t[]", ncpu)
        out = []
        for i in range(self.abi.const("ERX_PROF_CNT_MAX")):
            key[0] = i
            out.append(sum(values[c] for c in range(ncpu)) if lib.bpf_map_lookup_elem(fd, key, values) == 0 else 0)
        return out

    def drain(self) -> list[tuple[bytes, int]]:
        """Every (``struct erx_prof_key`` bytes, samples) counted since the last drain; each
        entry is read and deleted in one call (a sample lands in exactly one drain)."""
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        fd = self.map_fd("erx_prof_counts")
        key_size = self.abi.sizeof("erx_prof_key")
        keys: list[bytes] = []
        cur, nxt = ffi.new("char[]", key_size), ffi.new("char[]", key_size)
        prev = ffi.NULL
        while lib.bpf_map_get_next_key(fd, prev, nxt) == 0:
            keys.append(ffi.buffer(nxt)[:])
            ffi.memmove(cur, nxt, key_size)
            prev = cur
        out = []
        value = ffi.new("uint64_t *")
        for raw in keys:
            if lib.bpf_map_lookup_and_delete_elem(fd, ffi.from_buffer(raw), value) == 0:
                out.append((raw, int(value[0])))
        return out

    def stack(self, stack_id: int) -> tuple[int, ...]:
        """The instruction pointers of one stack id, innermost first (empty: not there)."""
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        key = ffi.new("uint32_t *", stack_id)
        ips = ffi.new("uint64_t[]", PERF_MAX_STACK_DEPTH)
        if lib.bpf_map_lookup_elem(self.map_fd("erx_prof_stacks"), key, ips) != 0:
            return ()
        out = []
        for i in range(PERF_MAX_STACK_DEPTH):
            if not ips[i]:
                break
            out.append(int(ips[i]))
        return tuple(out)

    def delete_stacks(self, stack_ids) -> None:
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        fd = self.map_fd("erx_prof_stacks")
        key = ffi.new("uint32_t *")
        for sid in stack_ids:
            key[0] = sid
            lib.bpf_map_delete_elem(fd, key)

    def python_stack(self, stack_hash: int) -> tuple[tuple[int, ...], bool]:
        """(code object addresses innermost first, truncated) of one Python stack."""
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        key = ffi.new("uint64_t *", stack_hash)
        st = self.abi.ffi.new("struct erx_prof_py_stack *")
        if lib.bpf_map_lookup_elem(self.map_fd("erx_prof_py_stacks"), key, ffi.from_buffer(self.abi.ffi.buffer(st))) != 0:
            return (), False
        depth = min(st.depth, self.abi.const("ERX_PROF_PY_FRAMES"))
        return tuple(int(st.code[i]) for i in range(depth)), bool(st.truncated)

    def delete_python_stacks(self, hashes) -> None:
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        fd = self.map_fd("erx_prof_py_stacks")
        key = ffi.new("uint64_t *")
        for h in hashes:
            key[0] = h
            lib.bpf_map_delete_elem(fd, key)

    def set_python_process(self, pid: int, proc: bytes | None) -> bool:
        """Register (``struct erx_prof_py_proc`` bytes) or forget (None) a CPython process."""
        if self._obj is None:
            return False
        key = pid.to_bytes(4, "little")
        if proc is None:
            self.map_delete("erx_prof_py_procs", key)
            return True
        return self.map_update("erx_prof_py_procs", key, proc)
