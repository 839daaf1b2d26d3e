"""The CPython 3.11 layout the kernel walks, against the interpreter's own headers (compiled
here with the installed Python.h), and the interpreter found in a running CPython process."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from receiver.profiling.cpython import LAYOUTS, CodeObjectNames, find_cpython
from receiver.profiling.proc_maps import ProcessMaps

OFFSETS_C = r"""
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include "internal/pycore_runtime.h"
#include "internal/pycore_frame.h"
int main(void) {
    printf("%zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu\n",
        offsetof(_PyRuntimeState, gilstate.tstate_current), offsetof(PyThreadState, native_thread_id),
        offsetof(PyThreadState, cframe), offsetof(_PyCFrame, current_frame),
        offsetof(_PyInterpreterFrame, f_code), offsetof(_PyInterpreterFrame, previous),
        offsetof(PyCodeObject, co_filename), offsetof(PyCodeObject, co_name),
        offsetof(PyCodeObject, co_qualname), offsetof(PyCodeObject, co_firstlineno),
        offsetof(PyASCIIObject, state), offsetof(PyASCIIObject, length),
        sizeof(PyASCIIObject), sizeof(PyCompactUnicodeObject), sizeof(void *));
    return 0;
}
"""


def test_layout_3_11_matches_the_headers(tmp_path):
    assert sys.version_info[:2] == (3, 11), "this machine's interpreter is the one the layout is checked on"
    include = sysconfig.get_paths()["include"]
    src = tmp_path / "offsets.c"
    src.write_text(OFFSETS_C)
    exe = tmp_path / "offsets"
    subprocess.run([shutil.which("gcc") or "gcc", f"-I{include}", str(src), "-o", str(exe)], check=True, timeout=60)
    got = [int(x) for x in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()]
    lay = LAYOUTS[(3, 11)]
    assert got == [
        lay.runtime_tstate_current, lay.ts_native_tid, lay.ts_cframe, lay.cframe_frame, lay.frame_code,
        lay.frame_previous, lay.code_filename, lay.code_name, lay.code_qualname, lay.code_firstlineno,
        lay.unicode_state, lay.unicode_length, lay.ascii_data, lay.compact_data, 8,
    ]


def test_finds_a_running_cpython_and_reads_a_code_object(tmp_path):
    """A real CPython child: its version and _PyRuntime are found from its mappings, and a code
    object's names are read from its memory (the child prints the address of one)."""
    script = (
        "import sys, time\n"
        "def kernel_visible_function(): pass\n"
        "print(id(kernel_visible_function.__code__), flush=True)\n"
        "time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        code_addr = int(child.stdout.readline())
        maps = ProcessMaps.read(child.pid)
        proc = find_cpython(child.pid, maps)
        assert proc is not None and proc.version == (3, 11)
        assert proc.runtime > 0
        frame = CodeObjectNames().frame(proc, code_addr)
        assert frame.function == "kernel_visible_function"
        assert frame.filename == "<string>" and frame.line == 2 and frame.kind == "python"
    finally:
        child.kill()
        child.wait()


def test_not_a_cpython():
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        time.sleep(0.1)
        assert find_cpython(sleeper.pid, ProcessMaps.read(sleeper.pid)) is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert Path("/proc/self/maps").exists()
