"""HTTP/1.x: protocol detection and a sans-I/O per-connection session.

>>> from receiver.protocols.base import Direction
>>> session = Http1Session()
>>> session.feed(Direction.EGRESS, b"GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n", 1)
[]
>>> [t.response.status_code for t in session.feed(Direction.INGRESS, b"HTTP/1.1 204 No Content\\r\\n\\r\\n", 2)]
[204]
"""

from .detect import detect
from .session import Http1Session
from .types import Http1Request, Http1Response

__all__ = ["Http1Request", "Http1Response", "Http1Session", "detect"]
