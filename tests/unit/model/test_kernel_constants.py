"""Kernel constants that Python names as enums come from bpf/src/abi/events.h: ``Direction`` and
``Role`` (receiver/model/endpoints.py) must hold exactly the values of ``enum erx_direction`` and
``enum erx_role`` (protocol parsers use them without loading the ABI)."""

from __future__ import annotations

import re

import pytest

from receiver.bpf.abi import abi_source, header_path, load_abi
from receiver.model.endpoints import Direction, Role


def header_enum(name: str) -> dict[str, int]:
    body = re.search(rf"enum {name}\s*{{(.*?)}};", abi_source(header_path().read_text()), re.S).group(1)
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"(ERX_\w+)\s*=\s*(\d+)", body)}


@pytest.mark.parametrize(("enum", "c_enum", "prefix"), [(Direction, "erx_direction", "ERX_DIR_"),
                                                        (Role, "erx_role", "ERX_ROLE_")])
def test_python_enum_equals_the_header(enum, c_enum, prefix):
    from_header = {name.removeprefix(prefix): value for name, value in header_enum(c_enum).items()}
    assert {m.name: int(m) for m in enum} == from_header
    abi = load_abi()
    for member in enum:
        assert abi.const(prefix + member.name) == member
