"""Protocol inference: does a first datagram (UDP) or first write (TCP, length-prefixed) look like
a DNS query or response?  A standard query with one readable question and no answers is YES;
anything else that checks out structurally is MAYBE (a 12-byte header is easy to fake)."""

from __future__ import annotations

import struct

from receiver.protocols.api import Detection
from receiver.protocols.base import Direction

from .parse import HEADER, parse_message, plausible

_U16 = struct.Struct("!H")


def detect(data: bytes, direction: Direction | None = None) -> Detection:
    """``data`` is a UDP payload or the first bytes of a TCP stream (tried both ways)."""
    try:
        best = _judge(data, None)
        if len(data) >= 2 + HEADER:
            (length,) = _U16.unpack_from(data, 0)
            if length >= HEADER and length >= len(data) - 2:
                tcp = _judge(data[2 : 2 + length], length)
                best = tcp if tcp.value > best.value else best
        return best
    except Exception:  # detection must never fail the caller
        return Detection.NO


def _judge(buf: bytes, wire: int | None) -> Detection:
    if wire is None and len(buf) > 4096 or not plausible(buf, wire):
        return Detection.NO
    msg = parse_message(buf, wire)
    if msg is None or msg.question is None or msg.question.qclass not in (1, 3, 4, 254, 255):
        return Detection.NO
    if msg.question_count == 1 and msg.opcode == 0 and msg.question.name:
        if not msg.is_response and msg.answer_count == 0 and msg.authority_count == 0:
            return Detection.YES
        if msg.is_response:
            return Detection.YES
    return Detection.MAYBE
