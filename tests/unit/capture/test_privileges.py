"""Which capability is missing, from a process's CapEff and a failed call's errno; which tracefs
is mounted, from mountinfo.  The real proof (setpriv, as nobody) is tests/e2e/test_least_privilege.py."""

from __future__ import annotations

import errno

import pytest

from receiver.bpf.privileges import (
    CAPABILITY_BITS,
    REQUIRED,
    MissingCapabilityError,
    capability_refusal,
    missing_for_bpf,
)
from receiver.bpf.tracefs import find_tracefs, tracefs_mounts


def caps(*names: str) -> int:
    return sum(1 << CAPABILITY_BITS[n] for n in names)


@pytest.mark.parametrize(
    ("held", "tc", "missing"),
    [
        (("CAP_BPF", "CAP_PERFMON"), False, None),
        (("CAP_PERFMON",), False, "CAP_BPF"),
        (("CAP_BPF",), False, "CAP_PERFMON"),
        ((), False, "CAP_BPF"),
        (("CAP_SYS_ADMIN",), True, None),  # the kernel lets CAP_SYS_ADMIN stand in for all three
        (("CAP_BPF", "CAP_PERFMON"), True, "CAP_NET_ADMIN"),
        (("CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"), True, None),
    ],
)
def test_missing_for_bpf(held, tc, missing):
    assert missing_for_bpf(caps(*held), tc_programs=tc) == missing


def test_the_documented_set():
    assert REQUIRED == ("CAP_BPF", "CAP_PERFMON", "CAP_DAC_READ_SEARCH")


def status_file(tmp_path, *held):
    path = tmp_path / "status"
    path.write_text(f"Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t{caps(*held):016x}\n")
    return str(path)


def test_a_refusal_names_the_capability_in_one_line(tmp_path):
    refusal = capability_refusal("loading the BPF object", -errno.EPERM, status_path=status_file(tmp_path, "CAP_BPF"))
    assert isinstance(refusal, MissingCapabilityError) and isinstance(refusal, PermissionError)
    text = str(refusal)
    assert text.startswith("missing capability CAP_PERFMON (to load tracing programs")
    assert "loading the BPF object was refused" in text and "\n" not in text


def test_other_failures_are_not_blamed_on_capabilities(tmp_path):
    held = status_file(tmp_path, "CAP_BPF", "CAP_PERFMON")
    assert capability_refusal("loading the BPF object", -errno.EACCES, status_path=held) is None  # the verifier
    assert capability_refusal("loading", -errno.EINVAL, status_path=status_file(tmp_path)) is None


MOUNTINFO = """\
22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
31 22 0:12 / /sys/kernel/tracing rw,nosuid,nodev,noexec,relatime shared:12 - tracefs tracefs rw
40 22 0:30 / /mnt/with\\040space rw - tracefs none rw
41 22 0:31 / /proc rw - proc proc rw
"""


def test_tracefs_mounts_are_read_from_mountinfo(tmp_path):
    path = tmp_path / "mountinfo"
    path.write_text(MOUNTINFO)
    assert {str(p) for p in tracefs_mounts(str(path))} == {"/sys/kernel/tracing", "/mnt/with space"}
    assert tracefs_mounts(str(tmp_path / "absent")) == set()


def test_find_tracefs_takes_the_first_path_with_events(tmp_path):
    (tmp_path / "b" / "events").mkdir(parents=True)
    assert find_tracefs((tmp_path / "a", tmp_path / "b"), str(tmp_path / "none")) == tmp_path / "b"
    assert find_tracefs((tmp_path / "a",), str(tmp_path / "none")) is None
