"""The frame-boundary hunt of the HTTP/2 parser (receiver/protocols/http2/parse.py)."""

from __future__ import annotations

import struct

from receiver.protocols.base import ParseState
from receiver.protocols.http2.parse import find_frame_boundary


def test_hunting_never_waits_past_its_bound_for_a_confirmation() -> None:
    """A plausible frame whose next header is only partly there would be confirmed by bytes up
    to nxt + 9; when that exceeds ``max_wait`` the hunt takes the candidate instead of keeping a
    frame's worth of bytes (found by fuzzing: 1029 bytes held with a 512-byte buffer)."""
    length = 1000
    frame = struct.pack(">I", length)[1:] + struct.pack(">BBI", 0, 0, 1) + b"y" * length  # DATA, stream 1
    buf = b"\xff\xfe" + frame + b"\x00\x00\x05"  # 3 bytes of the next header: not enough to confirm
    state, p = find_frame_boundary(buf, 0, len(buf), 16384, 512)
    assert (state, p) == (ParseState.SUCCESS, 2)
    state, p = find_frame_boundary(buf, 0, len(buf), 16384, 2048)
    assert state is ParseState.NEEDS_MORE_DATA and len(buf) - p <= 2048
