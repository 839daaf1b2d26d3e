"""Endpoints and directions: the facts about a socket that every stage shares.

Neutral types (this package imports nothing else of the agent).  ``Direction`` and ``Role`` hold
the values of ``enum erx_direction`` / ``enum erx_role`` in ``bpf/src/abi/events.h``;
tests/unit/model/test_kernel_constants.py checks them against the header.
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class Tuple(NamedTuple):
    """Local and remote endpoints of a socket (ports in host order).

    A named tuple: immutable, and hashed in C (it keys per-connection caches downstream)."""

    family: int
    transport: int
    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int


class Direction(enum.IntEnum):
    """Direction of bytes relative to the traced process (values match bpf/src/abi/events.h)."""

    EGRESS = 0  # the process wrote/sent them
    INGRESS = 1  # the process read/received them


class Role(enum.IntEnum):
    """The traced process's side of a connection (values match bpf/src/abi/events.h)."""

    UNKNOWN = 0
    CLIENT = 1  # it sends requests (connect side)
    SERVER = 2  # it receives requests (accept side)
