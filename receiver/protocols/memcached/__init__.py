"""Memcached (text and meta protocol): detection, a sans-I/O per-connection session, and the span
mapping, exposed to the agent as :data:`PROTOCOL`.

>>> from receiver.protocols.base import Direction
>>> session = MemcachedSession()
>>> session.feed(Direction.EGRESS, b"get a b\\r\\n", 1)
[]
>>> [t] = session.feed(Direction.INGRESS, b"VALUE a 0 1\\r\\nx\\r\\nEND\\r\\n", 2)
>>> t.request.command, t.request.key_count, t.response.hits, t.response.misses
('get', 2, 1, 1)
"""

from receiver.protocols.api import ProtocolPlugin

from .detect import detect
from .semconv import describe
from .session import MemcachedSession
from .types import MemcachedRequest, MemcachedResponse

PROTOCOL = ProtocolPlugin(
    name="memcached",
    detect=detect,
    new_session=MemcachedSession,
    describe=describe,
    default_ports=(11211,),
)

__all__ = ["PROTOCOL", "MemcachedRequest", "MemcachedResponse", "MemcachedSession", "describe", "detect"]
