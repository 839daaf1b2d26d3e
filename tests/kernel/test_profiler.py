"""The profiler's BPF object on the real kernel: one perf event per online CPU, samples counted
at the configured frequency for a busy child (in its CPU time), stacks resolvable, Python frames
walked for a registered CPython, every perf event released at close."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from receiver.bpf.perf_event import online_cpus
from receiver.bpf.profile_loader import ProfileLoader, ProfilerKnobs
from receiver.profiling.cpython import find_cpython
from receiver.profiling.proc_maps import ProcessMaps

pytestmark = pytest.mark.kernel
FREQ = 99
BUSY = "import time\nt = time.thread_time()\nwhile time.thread_time() - t < {s}: pass\nprint('done', flush=True)\ntime.sleep(30)\n"


def _perf_fds() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[perf_event]"
        except OSError:
            continue
    return n


def _child_samples(loader: ProfileLoader, pid: int) -> tuple[int, list[tuple]]:
    fmt, _ = loader.abi.struct_format("erx_prof_key")
    keys = [(fmt.unpack(raw), n) for raw, n in loader.drain()]
    mine = [(k, n) for k, n in keys if k[0] == pid]
    return sum(n for _, n in mine), mine


def test_samples_at_the_frequency_and_released_at_close():
    before = _perf_fds()
    loader = ProfileLoader(profile_knobs=ProfilerKnobs(frequency_hz=FREQ, agent_tgid=os.getpid(), skip_agent=True))
    loader.start()
    try:
        assert loader.cpus == tuple(online_cpus())
        assert _perf_fds() == before + len(loader.cpus)
        cpu_s = 2.0
        child = subprocess.Popen([sys.executable, "-c", BUSY.format(s=cpu_s)], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "done"
            total, mine = _child_samples(loader, child.pid)
        finally:
            child.kill()
            child.wait()
        # cpu-clock at 99 Hz counts the child's on-CPU time: ~198 samples (the kernel adjusts the
        # period to the frequency, so allow a wide margin on a loaded machine).
        assert 0.6 * FREQ * cpu_s <= total <= 1.4 * FREQ * cpu_s, total
        ustacks = {k[2] for k, _ in mine if k[2] >= 0}
        assert ustacks and all(loader.stack(s) for s in ustacks)
        counters = loader.read_profile_counters()
        assert counters[loader.abi.const("ERX_PROF_CNT_SAMPLES")] >= total
        assert _child_samples(loader, os.getpid())[0] == 0  # skip_agent
    finally:
        loader.close()
    assert _perf_fds() == before


def test_python_frames_of_a_registered_interpreter():
    loader = ProfileLoader(profile_knobs=ProfilerKnobs(frequency_hz=FREQ, agent_tgid=os.getpid(), skip_agent=True))
    loader.start()
    try:
        child = subprocess.Popen([sys.executable, "-c", "import time\ntime.sleep(0.5)\n" + BUSY.format(s=1.0)],
                                 stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(0.2)
            proc = find_cpython(child.pid, ProcessMaps.read(child.pid))
            assert proc is not None
            assert loader.set_python_process(child.pid, proc.kernel_entry(loader.abi))
            assert child.stdout.readline().strip() == "done"
            total, mine = _child_samples(loader, child.pid)
        finally:
            child.kill()
            child.wait()
        with_python = sum(n for k, n in mine if k[4])
        assert with_python >= 0.9 * total > 0, (with_python, total)  # the GIL holder is the busy thread
        code, truncated = loader.python_stack(next(k[4] for k, _ in mine if k[4]))
        assert len(code) == 1 and not truncated  # the module's frame: the loop is at top level
    finally:
        loader.close()
