"""MySQL/MariaDB client/server protocol: detection and a sans-I/O per-connection session.

>>> from receiver.protocols.base import Direction
>>> session = MysqlSession()
>>> session.feed(Direction.EGRESS, b"\\x09\\x00\\x00\\x00\\x03select 1", 1)
[]
>>> ok = b"\\x07\\x00\\x00\\x01\\x00\\x00\\x00\\x02\\x00\\x00\\x00"
>>> [t.response.kind.name for t in session.feed(Direction.INGRESS, ok, 2)]
['OK']
"""

from .detect import detect
from .session import MysqlSession
from .types import (
    Command,
    MysqlCommand,
    MysqlHandshake,
    MysqlResponse,
    MysqlServerGreeting,
    ResponseKind,
)

__all__ = [
    "Command",
    "MysqlCommand",
    "MysqlHandshake",
    "MysqlResponse",
    "MysqlServerGreeting",
    "MysqlSession",
    "ResponseKind",
    "detect",
]
