"""The loader leaves nothing behind and explains its failures."""

from __future__ import annotations

import errno
import time
from pathlib import Path

import pytest

from receiver.bpf.abi import load_abi
from receiver.bpf.libbpf import Libbpf, open_libbpf
from receiver.bpf.loader import BpfLoader, BpfLoadError, LoaderKnobs, default_object_path
from receiver.capture.ringbuf import RingBufferReader

from .harness import bpftool_ids, held_bpf_ids, perf_event_fds, start_loader

pytestmark = pytest.mark.kernel

KINDS = ("prog", "map", "link")
MAX_CAPTURE = load_abi().const("ERX_MAX_CAPTURE")


def _wait_gone(ids: dict[str, set[int]], timeout: float = 5.0) -> dict[str, set[int]]:
    """Which of ids bpftool still lists once the kernel had time to free them (freeing a
    program or map is deferred past an RCU grace period)."""
    deadline = time.monotonic() + timeout
    while True:
        left = {k: ids[k] & bpftool_ids(k) for k in KINDS}
        if not any(left.values()) or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


LIBSSL = "/usr/lib/x86_64-linux-gnu/libssl.so.3"


def test_close_releases_programs_links_and_maps() -> None:
    held_before, perf_before = held_bpf_ids(), perf_event_fds()
    loader = start_loader()
    reader = RingBufferReader(loader)
    tls = loader.attach_tls_library(LIBSSL)  # uprobe links must be released as well
    held = {k: held_bpf_ids()[k] - held_before[k] for k in KINDS}
    listed = {k: bpftool_ids(k) for k in KINDS}
    # Every program of the object is loaded; tracepoints are attached at start, uprobes per library.
    assert len(held["prog"]) == loader.program_count
    assert len(held["link"]) == loader.link_count + tls.probes > tls.probes
    assert held["map"]
    assert all(held[k] <= listed[k] for k in KINDS)  # bpftool sees what we hold
    assert perf_event_fds() - perf_before == loader.link_count + tls.probes

    reader.close()
    loader.close()
    assert loader.state == "closed"
    assert held_bpf_ids() == held_before and perf_event_fds() == perf_before
    assert _wait_gone(held) == {k: set() for k in KINDS}

    loader.close()  # twice: a no-op
    reader.close()
    assert loader.state == "closed"


class _AttachFailsAfter:
    """The real libbpf, except that bpf_program__attach fails with ENOENT (as for a missing
    tracepoint) after `ok` successful attaches: a start that has links to undo."""

    def __init__(self, real: Libbpf, ok: int) -> None:
        self._real, self._left = real, ok

    def __getattr__(self, name: str):
        return getattr(self._real.lib, name)

    def bpf_program__attach(self, prog):
        if self._left == 0:
            self._real.ffi.errno = errno.ENOENT
            return self._real.ffi.NULL
        self._left -= 1
        return self._real.lib.bpf_program__attach(prog)


def test_failed_attach_undoes_what_was_attached() -> None:
    held_before, perf_before = held_bpf_ids(), perf_event_fds()
    real = open_libbpf()
    lb = Libbpf(ffi=real.ffi, lib=_AttachFailsAfter(real, ok=5), path=real.path)
    loader = BpfLoader(default_object_path(), LoaderKnobs(), libbpf=lb)
    with pytest.raises(BpfLoadError, match=r"(?s)attaching erx_\w+ \(tracepoint/.*a tracepoint or kernel type is missing"):
        loader.start()
    assert loader.state == "closed" and loader.link_count == 0
    assert held_bpf_ids() == held_before and perf_event_fds() == perf_before


def test_close_before_start_is_a_no_op() -> None:
    held_before = held_bpf_ids()
    loader = BpfLoader(default_object_path(), LoaderKnobs())
    loader.close()
    loader.close()
    assert loader.state == "closed"
    assert held_bpf_ids() == held_before


def test_missing_object_names_the_build_command(tmp_path: Path) -> None:
    loader = BpfLoader(tmp_path / "receiver.bpf.o")
    with pytest.raises(BpfLoadError, match=r"make -C bpf"):
        loader.start()
    assert loader.state == "closed"


@pytest.mark.parametrize("size", [0, MAX_CAPTURE + 1])
def test_capture_size_out_of_range_is_refused_before_load(size: int) -> None:
    held_before = held_bpf_ids()
    loader = BpfLoader(default_object_path(), LoaderKnobs(capture_size=size))
    with pytest.raises(BpfLoadError, match=rf"capture_size {size} must be between 1 and {MAX_CAPTURE}"):
        loader.start()
    assert loader.state == "closed"
    assert held_bpf_ids() == held_before
