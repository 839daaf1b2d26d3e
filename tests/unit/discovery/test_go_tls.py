"""Go executables: what is read from a file without building one (the builds are in
tests/e2e/test_tls_stacks.py, where a stripped and a full build must give the same probes)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from receiver.discovery.go_tls import (
    MIN_REGISTER_ABI,
    OFFSETS_BY_VERSION,
    _varint_string,
    go_version_tuple,
    inspect_go_binary,
)


@pytest.mark.parametrize("text,expected", [("go1.19.8", (1, 19)), ("go1.22rc1", (1, 22)),
                                           ("devel go1.23-abcdef Tue", (1, 23)), ("", None), ("gccgo", None)])
def test_go_version_tuple(text, expected):
    assert go_version_tuple(text) == expected


def test_buildinfo_strings_are_varint_prefixed_and_bounded():
    assert _varint_string(b"\x08go1.21.3rest", 0) == "go1.21.3"
    assert _varint_string(b"\x80\x02" + b"x" * 300, 0) == "x" * 256  # 256 announced, bounded
    assert _varint_string(b"\x05go", 0) == "go"  # cut short: what is there


def test_files_that_are_not_go_executables():
    assert inspect_go_binary(shutil.which("sh")) is None  # ELF, not Go
    assert inspect_go_binary(__file__) is None  # not ELF
    with pytest.raises(OSError):
        inspect_go_binary("/nonexistent/go-binary")


def test_a_cut_go_file_is_reported_not_raised(tmp_path: Path):
    elf = Path(shutil.which("sh")).read_bytes()[:64]  # an ELF header whose sections are missing
    cut = tmp_path / "cut"
    cut.write_bytes(elf)
    result = inspect_go_binary(str(cut))
    assert result is None or not result.covered


def test_the_offset_table_covers_every_register_abi_version_it_claims():
    assert min(OFFSETS_BY_VERSION) == MIN_REGISTER_ABI
    assert all(o.source == "table" and o.pfd_sysfd == 16 for o in OFFSETS_BY_VERSION.values())
