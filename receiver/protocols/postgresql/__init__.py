"""PostgreSQL frontend/backend protocol 3: detection and a sans-I/O per-connection session.

>>> from receiver.protocols.base import Direction
>>> session = PostgresSession()
>>> session.feed(Direction.EGRESS, b"Q\\x00\\x00\\x00\\x0dSELECT 1\\x00", 1)
[]
>>> (t,) = session.feed(Direction.INGRESS, b"C\\x00\\x00\\x00\\x0dSELECT 1\\x00Z\\x00\\x00\\x00\\x05I", 2)
>>> t.request.query, t.response.operation, t.response.rows
('SELECT 1', 'SELECT', 1)
"""

from .detect import detect
from .session import PostgresSession
from .types import PROTOCOL, PgCommand, PgError, PgRequest, PgRequestKind, PgResponse, PgStartup, PgStatus

__all__ = [
    "PROTOCOL",
    "PgCommand",
    "PgError",
    "PgRequest",
    "PgRequestKind",
    "PgResponse",
    "PgStartup",
    "PgStatus",
    "PostgresSession",
    "detect",
]
