"""Protocol inference: do the first bytes of a direction look like AMQP 0-9-1?

A client starts with the protocol header ``AMQP\\x00\\x00\\x09\\x01``; a broker with a
``connection.start`` method frame.  Either is YES.  Another method frame whose frame-end byte
checks out (attached mid-connection) is MAYBE; an ``AMQP`` header of another version is MAYBE too
(the broker answers it with its own header and closes)."""

from __future__ import annotations

from receiver.protocols.api import Detection
from receiver.protocols.base import Direction

from .wire import FRAME_END, FRAME_HEADER, METHOD, PROTOCOL_HEADER, frame_header, method_name


def detect(data: bytes, direction: Direction | None = None) -> Detection:
    try:
        if data[:8] == PROTOCOL_HEADER or (len(data) < 8 and data and PROTOCOL_HEADER.startswith(data) and len(data) >= 4):
            return Detection.YES
        if data[:4] == b"AMQP" and len(data) >= 8:
            return Detection.MAYBE
        parsed = frame_header(data)
        if parsed is None:
            return Detection.NO
        ftype, channel, size = parsed
        end = FRAME_HEADER + size
        if end < len(data) and data[end] != FRAME_END:
            return Detection.NO
        if ftype == METHOD and len(data) >= FRAME_HEADER + 4 and size >= 4:
            name = method_name(int.from_bytes(data[7:9], "big"), int.from_bytes(data[9:11], "big"))
            if name == "connection.start" and channel == 0:
                return Detection.YES
            if name.startswith("unknown."):
                return Detection.NO
            return Detection.MAYBE if end < len(data) else Detection.NO
        return Detection.NO
    except Exception:  # detection must never fail the caller
        return Detection.NO
