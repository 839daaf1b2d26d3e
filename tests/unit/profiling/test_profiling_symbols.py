"""Symbolisation on real files and processes: a compiled program's functions (PIE, through its
mappings), the ELF cache by build id, kallsyms, perf maps, /proc/<pid>/maps parsing."""

from __future__ import annotations

import subprocess

from receiver.profiling.elf_symbols import read_elf_symbols
from receiver.profiling.kernel_symbols import KernelSymbols
from receiver.profiling.perf_map import PerfMap
from receiver.profiling.proc_maps import ProcessMaps, parse_maps
from receiver.profiling.symbolizer import Symbolizer

PROGRAM = r"""
#include <stdio.h>
#include <unistd.h>
__attribute__((noinline)) int known_function_one(int x) { return x * 3 + 1; }
__attribute__((noinline)) int known_function_two(int x) { return x * 5 + 2; }
int main(void) {
    printf("%p %p\n", (void *)known_function_one, (void *)known_function_two);
    fflush(stdout);
    pause();
    return known_function_one(1) + known_function_two(2);
}
"""


def _build(tmp_path, *flags):
    src = tmp_path / "known.c"
    src.write_text(PROGRAM)
    exe = tmp_path / "known"
    subprocess.run(["gcc", "-O1", "-g0", *flags, str(src), "-o", str(exe)], check=True, timeout=60)
    return exe


def test_functions_of_a_running_pie_program(tmp_path):
    exe = _build(tmp_path, "-pie", "-fPIE", "-Wl,--build-id")
    child = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, text=True)
    try:
        one, two = (int(x, 16) for x in child.stdout.readline().split())
        sym = Symbolizer(max_files=2)
        frames = sym.user_frames(child.pid, (one + 2, two + 1))  # inside each (the second a return address)
        assert [f.function for f in frames] == ["known_function_one", "known_function_two"]
        assert frames[0].module == str(exe) and len(frames[0].build_id) == 40
        sym.begin_drain()
        sym.user_frames(child.pid, (one,))
        assert sym.stats.elf_files_read == 1 and sym.stats.elf_cache_hits >= 2  # cached by build id
    finally:
        child.kill()
        child.wait()


def test_elf_symbols_of_a_stripped_file_fall_back_to_dynsym(tmp_path):
    exe = _build(tmp_path, "-rdynamic")
    subprocess.run(["strip", "--strip-all", str(exe)], check=True)
    syms = read_elf_symbols(str(exe))
    assert syms is not None and "known_function_one" in syms.names  # exported: in .dynsym
    assert read_elf_symbols(str(tmp_path / "known.c")) is None  # not an ELF file: no symbols, no raise


def test_kernel_symbols_from_kallsyms():
    ks = KernelSymbols.read()
    assert ks.starts, "root reads kallsyms with addresses"
    i = ks.names.index("do_sys_openat2") if "do_sys_openat2" in ks.names else 0
    assert ks.lookup(ks.starts[i] + 1) == ks.names[i]
    parsed = KernelSymbols.parse("ffffffff81000000 T _stext\nffffffff81000010 D some_data\nbad line\n"
                                 "0000000000000000 T hidden\nffffffff81000100 t local_fn [mod]\n")
    assert parsed.names == ("_stext", "local_fn")
    assert parsed.lookup(0xFFFFFFFF81000050) == "_stext"


def test_perf_map_lines():
    pm = PerfMap.parse("7f0000001000 40 LazyCompile:*hot /app/x.js:3\nnot a line\n7f0000002000 10 py::f:/a.py\n")
    assert pm.lookup(0x7F0000001010) == "LazyCompile:*hot /app/x.js:3"
    assert pm.lookup(0x7F0000001040) is None  # past its size
    assert pm.lookup(0x7F000000200F) == "py::f:/a.py"


def test_jit_frames_from_a_perf_map(tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        maps = ProcessMaps.read(sleeper.pid)
        anon = next(m for m in maps.mappings if not m.path.startswith("/"))
        (tmp_path / f"perf-{sleeper.pid}.map").write_text(f"{anon.start:x} 100 jitted_function\n")
        frames = Symbolizer(perf_map_dir=str(tmp_path)).user_frames(sleeper.pid, (anon.start + 8,))
        assert frames[0].function == "jitted_function" and frames[0].kind == "jit"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_maps_parse_never_raises():
    maps = parse_maps(
        "55d0c0000000-55d0c0021000 r-xp 00002000 08:01 1234 /usr/bin/x y\n"
        "garbage\n"
        "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]\n"
        "zz-yy r-xp 0 0 0\n"
    )
    assert [m.path for m in maps] == ["/usr/bin/x y", "[stack]"]
    assert maps[0].executable and maps[0].offset == 0x2000 and maps[0].inode == 1234


def test_fast_symbol_table_matches_pyelftools(tmp_path):
    """The one-pass reader of 64-bit tables gives what pyelftools' symbol objects give."""
    from elftools.elf.elffile import ELFFile

    from receiver.profiling.elf_symbols import _read_symbols

    exe = _build(tmp_path, "-pie", "-fPIE")
    syms = read_elf_symbols(str(exe))
    with open(exe, "rb") as f:
        ref: dict = {}
        _read_symbols(ELFFile(f).get_section_by_name(".symtab"), ref)
    assert dict(zip(syms.starts, syms.names)) == {addr: name for addr, (_, name) in ref.items()}
    assert "known_function_two" in syms.names
