"""DNS over UDP and TCP: detection, a sans-I/O per-socket session pairing queries with responses,
and the span mapping, exposed to the agent as :data:`PROTOCOL`.

>>> from receiver.protocols.base import Direction
>>> query = bytes.fromhex("1234 0100 0001 0000 0000 0000") + b"\\x07example\\x03com\\x00" + bytes.fromhex("0001 0001")
>>> response = bytes.fromhex("1234 8183 0001 0000 0000 0000") + query[12:]
>>> session = DnsSession(transport="udp")
>>> session.feed(Direction.EGRESS, query, 1)
[]
>>> [t] = session.feed(Direction.INGRESS, response, 2)
>>> t.request.question.name, t.request.question.type_name, t.response.rcode_name
('example.com', 'A', 'NXDOMAIN')
"""

from receiver.protocols.api import ProtocolPlugin

from .detect import detect
from .semconv import describe
from .session import DnsSession
from .types import DnsMessage, DnsQuestion

PROTOCOL = ProtocolPlugin(
    name="dns",
    detect=detect,
    new_session=DnsSession,
    describe=describe,
    default_ports=(53,),
    transports=frozenset({"udp", "tcp"}),
)

__all__ = ["PROTOCOL", "DnsMessage", "DnsQuestion", "DnsSession", "describe", "detect"]
