"""AMQP 0-9-1 (RabbitMQ): detection, a sans-I/O per-connection session, and the span mapping,
exposed to the agent as :data:`PROTOCOL`."""

from receiver.protocols.api import ProtocolPlugin

from .detect import detect
from .semconv import describe
from .session import AmqpSession
from .types import AmqpCommand

PROTOCOL = ProtocolPlugin(
    name="amqp",
    detect=detect,
    new_session=AmqpSession,
    describe=describe,
    default_ports=(5672,),
)

__all__ = ["PROTOCOL", "AmqpCommand", "AmqpSession", "describe", "detect"]
