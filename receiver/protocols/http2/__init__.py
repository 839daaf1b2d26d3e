"""HTTP/2 (h2c, prior knowledge) and gRPC over it: detection and a sans-I/O per-connection
session.  One transaction per stream; gRPC calls are recognised by ``content-type``.

>>> from hpack import Encoder
>>> from receiver.protocols.base import Direction
>>> from receiver.protocols.http2.parse import FRAME_HEADER
>>> def frame(ftype, flags, stream_id, payload):
...     return FRAME_HEADER.pack(len(payload) << 8 | ftype, flags, stream_id) + payload
>>> request = Encoder().encode([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "a")])
>>> session = Http2Session()
>>> session.feed(Direction.EGRESS, PREFACE + frame(1, 0x5, 1, request), 1)
[]
>>> [(t.request.path, t.response.status) for t in session.feed(Direction.INGRESS, frame(1, 0x5, 1, Encoder().encode([(":status", "204")])), 2)]
[('/', 204)]
"""

from .detect import detect
from .session import Http2Session
from .types import (
    PREFACE,
    PROTOCOL,
    ErrorCode,
    Http2GoAway,
    Http2Request,
    Http2Response,
    Peer,
    StreamEnd,
    error_code_name,
)

__all__ = [
    "PREFACE",
    "PROTOCOL",
    "ErrorCode",
    "Http2GoAway",
    "Http2Request",
    "Http2Response",
    "Http2Session",
    "Peer",
    "StreamEnd",
    "detect",
    "error_code_name",
]
