"""Redis (RESP2 and RESP3): protocol detection and a sans-I/O per-connection session.

>>> from receiver.protocols.base import Direction
>>> session = RedisSession()
>>> session.feed(Direction.EGRESS, b"*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n", 1)
[]
>>> [t] = session.feed(Direction.INGRESS, b"$1\\r\\nv\\r\\n", 2)
>>> t.request.command, t.request.key, t.response.kind.value
('GET', 'k', 'bulk_string')
"""

from .detect import detect
from .session import RedisSession
from .types import RedisRequest, RedisResponse, RespType

__all__ = ["RedisRequest", "RedisResponse", "RedisSession", "RespType", "detect"]
