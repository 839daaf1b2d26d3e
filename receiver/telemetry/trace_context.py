"""W3C Trace Context: parsing ``traceparent`` and making ids.  Never writes to traffic."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

_HEX = set("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class TraceParent:
    trace_id: bytes  # 16
    span_id: bytes  # 8 (the caller's span: our parent)
    flags: int
    trace_state: str = ""


def parse_traceparent(value: str | None, tracestate: str | None = None) -> TraceParent | None:
    """``00-<32 hex>-<16 hex>-<2 hex>`` (future versions: first 55 chars).  None if invalid."""
    if not value:
        return None
    v = value.strip().lower()
    if len(v) < 55:
        return None
    version, trace_hex, span_hex, flags_hex = v[0:2], v[3:35], v[36:52], v[53:55]
    if v[2] != "-" or v[35] != "-" or v[52] != "-":
        return None
    if version == "ff" or not set(version) <= _HEX:
        return None
    if version == "00" and len(v) != 55:
        return None
    if not (set(trace_hex) <= _HEX and set(span_hex) <= _HEX and set(flags_hex) <= _HEX):
        return None
    if trace_hex == "0" * 32 or span_hex == "0" * 16:
        return None
    return TraceParent(bytes.fromhex(trace_hex), bytes.fromhex(span_hex), int(flags_hex, 16), (tracestate or "")[:512])


class IdGenerator:
    """Random trace/span ids (never all-zero).  Seeded from the OS; not for cryptography."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed if seed is not None else int.from_bytes(os.urandom(16), "big"))

    def trace_id(self) -> bytes:
        return (self._rng.getrandbits(128) or 1).to_bytes(16, "big")

    def span_id(self) -> bytes:
        return (self._rng.getrandbits(64) or 1).to_bytes(8, "big")
