"""NATS client protocol as an ebpf-receiver protocol plug-in (API version 1).

Registered under the entry-point group ``ebpf_receiver.protocols`` as ``nats``; imports only
``receiver.protocols.api`` and ``receiver.protocols.base`` from the agent.

>>> from receiver.protocols.base import Direction
>>> s = NatsSession()
>>> s.feed(Direction.EGRESS, b"CONNECT {}\\r\\nPUB orders 5\\r\\nhello\\r\\n", 1)[0].request.subject
'orders'
"""

from receiver.protocols.api import ProtocolPlugin

from .detect import detect
from .semconv import describe
from .session import NatsSession
from .types import NatsError, NatsMessage

PROTOCOL = ProtocolPlugin(
    name="nats",
    detect=detect,
    new_session=NatsSession,
    describe=describe,
    default_ports=(4222,),
)

__all__ = ["PROTOCOL", "NatsError", "NatsMessage", "NatsSession", "describe", "detect"]
