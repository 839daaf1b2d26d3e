"""/proc parsing and the ELF dynamic-symbol reader."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from discovery_support import LIBC, LIBSSL, FakeProc, FakeProcess, Sym, build_elf, maps_line, stat_line
from receiver.discovery.elf import exported_functions
from receiver.discovery.procfs import (
    PF_KTHREAD,
    ProcFs,
    cgroup_paths,
    container_id,
    parse_maps,
    parse_stat,
    parse_tcp_ports,
)
from tests.support.ports import wait_until

WANTED = ("SSL_write", "SSL_read")


# -- /proc/<pid>/stat -----------------------------------------------------------------------------


def test_stat_fields_with_a_comm_holding_spaces_and_parentheses():
    st = parse_stat(42, stat_line(42, "a) b (c", start_time=123456, vsize=987654, ppid=7))
    assert (st.pid, st.comm, st.ppid, st.start_time, st.vsize) == (42, "a) b (c", 7, 123456, 987654)
    assert not st.kernel_thread


def test_stat_layout_tells_a_fork_from_an_exec_of_the_same_executable():
    """Real /proc: a forked child keeps this process's image, a child that exec'd this
    executable has a new one; stat lines without the layout fields say unknown."""
    proc = ProcFs()
    me = proc.stat(os.getpid())
    pid = os.fork()
    if pid == 0:  # the forked child: wait to be looked at, then leave without pytest's cleanup
        time.sleep(5)
        os._exit(0)
    execd = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        wait_until(lambda: "import time; time.sleep(5)" in proc.cmdline(execd.pid), timeout=5, what="the exec")
        assert proc.exe(execd.pid) == proc.exe(os.getpid())
        forked, other = proc.stat(pid), proc.stat(execd.pid)
        assert all(me.layout)
        assert forked.same_image_as(me)
        assert not other.same_image_as(me) and all(other.layout)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        execd.kill()
        execd.wait()
    unknown = parse_stat(3, stat_line(3, "x", 1, 1))
    assert unknown.layout == (0, 0, 0, 0) and not unknown.same_image_as(unknown)
    assert parse_stat(3, "3 (short) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21").layout == (0, 0, 0, 0)


def test_stat_of_a_kernel_thread_and_garbage():
    assert parse_stat(2, stat_line(2, "kthreadd", 5, 0, flags=PF_KTHREAD)).kernel_thread
    assert parse_stat(3, "3 (short) S 1 2") is None
    assert parse_stat(3, "no parenthesis at all") is None


# -- /proc/<pid>/maps -----------------------------------------------------------------------------


def test_maps_keep_executable_files_once_in_order():
    text = (
        maps_line("/usr/bin/nginx", 11, "r--p")
        + maps_line("/usr/bin/nginx", 11, "r-xp")
        + maps_line("/usr/lib/x86_64-linux-gnu/libssl.so.3", 22, "r-xp")
        + maps_line("/usr/lib/x86_64-linux-gnu/libssl.so.3", 22, "r-xp", start=0x7F0000100000)
        + maps_line("/usr/lib/locale/locale-archive", 33, "r--p")
        + maps_line("/tmp/replaced.so (deleted)", 44, "r-xp")
        + "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]\n"
        + "7ffd10000000-7ffd10002000 r-xp 00000000 00:00 0                          [vdso]\n"
        + maps_line("/usr/lib/with space/lib.so", 55, "r-xp")
    )
    files = parse_maps(text)
    assert [(f.path, f.inode) for f in files] == [
        ("/usr/bin/nginx", 11),
        ("/usr/lib/x86_64-linux-gnu/libssl.so.3", 22),
        ("/usr/lib/with space/lib.so", 55),
    ]


def test_maps_tolerate_short_and_odd_lines():
    assert parse_maps("garbage\n\n7f-80 r-xp 0 0 notanumber /x\n") == []


# -- sockets, cgroups -----------------------------------------------------------------------------


def test_tcp_ports_by_socket_inode_skip_closed_sockets():
    text = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:01BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5001 1\n"
        "   1: 0100007F:D431 0100007F:01BB 01 00000000:00000000 00:00000000 00000000     0        0 5002 1\n"
        "   2: 0100007F:D432 0100007F:01BB 07 00000000:00000000 00:00000000 00000000     0        0 5003 1\n"
        "   3: 0100007F:D433 0100007F:01BB 06 00000000:00000000 00:00000000 00000000     0        0 0 1\n"
    )
    assert parse_tcp_ports(text) == {5001: 443, 5002: 0xD431}


def test_cgroup_paths_put_v2_first_and_container_id():
    cid = "ab" * 32
    text = f"12:memory:/docker/{cid}\n0::/system.slice/docker-{cid}.scope\n1:name=systemd:/\n"
    assert cgroup_paths(text) == (f"/system.slice/docker-{cid}.scope", f"/docker/{cid}", "/")
    assert container_id(text) == cid
    assert container_id("0::/user.slice\n") is None


def test_procfs_reads_a_fake_tree(tmp_path):
    fake = FakeProc(tmp_path)
    fake.add(FakeProcess(10, exe="/usr/sbin/nginx", argv=("nginx", "-g", "daemon off;"), sockets=(7001,),
                         maps=("/usr/sbin/nginx",)))
    fake.listen(7001, 8443)
    proc = ProcFs(str(fake.root))
    assert proc.pids() == [10]
    assert proc.exe(10) == "/usr/sbin/nginx"
    assert proc.cmdline(10) == ("nginx", "-g", "daemon off;")
    assert [f.path for f in proc.maps(10)] == ["/usr/sbin/nginx"]
    assert proc.socket_inodes(10) == {7001}
    assert proc.tcp_ports(10) == {7001: 8443}
    assert proc.in_root(10, "/usr/lib/libssl.so.3") == f"{fake.root}/10/root/usr/lib/libssl.so.3"
    # A process that is gone reads as empty, never raises.
    assert (proc.stat(99), proc.exe(99), proc.cmdline(99), proc.maps(99), proc.socket_inodes(99)) == (
        None, "", (), None, set())


# -- ELF ------------------------------------------------------------------------------------------


def write(tmp_path, name: str, data: bytes) -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_a_tls_library_exports_ssl_write_and_ssl_read(tmp_path):
    assert exported_functions(write(tmp_path, "libssl.so.3", LIBSSL), WANTED) == {"SSL_write", "SSL_read"}


def test_imports_objects_and_local_symbols_are_not_exports(tmp_path):
    assert exported_functions(write(tmp_path, "libc.so.6", LIBC), WANTED) == frozenset()
    odd = build_elf([Sym("SSL_write", kind=1), Sym("SSL_read", bind=0)])
    assert exported_functions(write(tmp_path, "odd.so", odd), WANTED) == frozenset()


def test_weak_and_ifunc_symbols_are_exports(tmp_path):
    lib = build_elf([Sym("SSL_write", bind=2), Sym("SSL_read", kind=10)])
    assert exported_functions(write(tmp_path, "weak.so", lib), WANTED) == {"SSL_write", "SSL_read"}


@pytest.mark.parametrize("bits,endian", [(32, "<"), (32, ">"), (64, ">")])
def test_other_classes_and_byte_orders(tmp_path, bits, endian):
    lib = build_elf([Sym("SSL_write"), Sym("SSL_read", defined=False)], bits=bits, endian=endian)
    assert exported_functions(write(tmp_path, "lib.so", lib), WANTED) == {"SSL_write"}


def test_not_elf_cut_short_or_without_sections(tmp_path):
    assert exported_functions(write(tmp_path, "script.sh", b"#!/bin/sh\necho hi\n"), WANTED) == frozenset()
    assert exported_functions(write(tmp_path, "cut.so", LIBSSL[:40]), WANTED) == frozenset()
    assert exported_functions(write(tmp_path, "empty", b""), WANTED) == frozenset()
    no_sections = bytearray(LIBSSL)
    no_sections[16 + 44 : 16 + 46] = b"\0\0"  # e_shnum = 0 (ELF64: offset 60)
    assert exported_functions(write(tmp_path, "nosh.so", bytes(no_sections)), WANTED) == frozenset()
    with pytest.raises(OSError):
        exported_functions(str(tmp_path / "missing.so"), WANTED)


def test_the_systems_libssl_when_there_is_one():
    path = "/usr/lib/x86_64-linux-gnu/libssl.so.3"
    try:
        found = exported_functions(path, WANTED)
    except OSError:
        pytest.skip(f"{path} not here")
    assert found == {"SSL_write", "SSL_read"}
