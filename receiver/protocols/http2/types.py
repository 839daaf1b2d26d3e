"""HTTP/2 messages as the session hands them out (frozen, slotted, plain data), and the
protocol's numbers (RFC 9113): frame types, flags, settings, error codes.

One HTTP/2 *stream* is one exchange: the client's header block (and body) is the request, the
server's header block, body and trailers on the same stream id are the response.

Sizes are *wire* sizes taken from frame lengths, so a body partly lost to a truncated capture
still reports its real size:

* ``body_size`` — DATA payload bytes, padding excluded (for gRPC: 5-byte message prefixes
  included, i.e. the sum of ``5 + message length``).
* ``wire_size`` — every byte of the frames that make up the message: the 9-byte frame headers
  and payloads (padding included) of its HEADERS, CONTINUATION and DATA frames (and of the
  trailers' HEADERS/CONTINUATION).  Connection-level frames (SETTINGS, PING, WINDOW_UPDATE,
  GOAWAY) and RST_STREAM/PRIORITY/WINDOW_UPDATE frames on the stream belong to no message.

Header fields are decoded with HPACK; names are lower case (HTTP/2 requires it), values are
UTF-8 decoded with replacement.  Pseudo-header fields (``:method``...) have their own
attributes and are not repeated in ``headers``.  When a header block could not be decoded
(HPACK state unknown after a capture gap or a mid-connection attach, or a block too large to
buffer), ``headers_known`` is False and the header-derived attributes are ``None``/empty.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

Headers = tuple[tuple[str, str], ...]

PROTOCOL = "http2"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER_SIZE = 9
DEFAULT_MAX_FRAME_SIZE = 16384  # SETTINGS_MAX_FRAME_SIZE initial value
MAX_FRAME_SIZE_LIMIT = (1 << 24) - 1  # largest SETTINGS_MAX_FRAME_SIZE allowed (16 MiB - 1)
DEFAULT_HEADER_TABLE_SIZE = 4096


class FrameType(enum.IntEnum):
    DATA = 0x0
    HEADERS = 0x1
    PRIORITY = 0x2
    RST_STREAM = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    PING = 0x6
    GOAWAY = 0x7
    WINDOW_UPDATE = 0x8
    CONTINUATION = 0x9


class Flag(enum.IntFlag):
    END_STREAM = 0x1  # DATA, HEADERS
    ACK = 0x1  # SETTINGS, PING
    END_HEADERS = 0x4  # HEADERS, PUSH_PROMISE, CONTINUATION
    PADDED = 0x8  # DATA, HEADERS, PUSH_PROMISE
    PRIORITY = 0x20  # HEADERS


class Setting(enum.IntEnum):
    HEADER_TABLE_SIZE = 0x1
    ENABLE_PUSH = 0x2
    MAX_CONCURRENT_STREAMS = 0x3
    INITIAL_WINDOW_SIZE = 0x4
    MAX_FRAME_SIZE = 0x5
    MAX_HEADER_LIST_SIZE = 0x6
    ENABLE_CONNECT_PROTOCOL = 0x8
    NO_RFC7540_PRIORITIES = 0x9


class ErrorCode(enum.IntEnum):
    """RST_STREAM and GOAWAY error codes (RFC 9113 §7); unknown codes stay plain ints."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


def error_code_name(code: int | None) -> str | None:
    """``"CANCEL"`` for 8; ``"0x1f"`` for a code RFC 9113 does not name; ``None`` for ``None``."""
    if code is None:
        return None
    try:
        return ErrorCode(code).name
    except ValueError:
        return hex(code)


class Peer(enum.Enum):
    """An endpoint of the connection, independent of which one is the traced process."""

    CLIENT = "client"
    SERVER = "server"


class StreamEnd(enum.Enum):
    """How a stream ended, i.e. what made its transaction final."""

    END_STREAM = "end_stream"  # both sides sent END_STREAM (the normal end)
    RST_STREAM = "rst_stream"  # an endpoint reset the stream (see error_code / error_from)
    GOAWAY = "goaway"  # a GOAWAY's last stream id excluded it: it was never processed
    CONNECTION_CLOSED = "connection_closed"  # the connection (or the capture) ended first


class _HeaderLookup:
    """Header access shared by requests and responses (names are already lower case)."""

    __slots__ = ()
    headers: Headers
    trailers: Headers

    def header(self, name: str) -> str | None:
        """The first value of header field ``name`` (any case), or ``None``."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    def trailer(self, name: str) -> str | None:
        """The first value of trailer field ``name`` (any case), or ``None``."""
        wanted = name.lower()
        for key, value in self.trailers:
            if key == wanted:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Http2Request(_HeaderLookup):
    """The client side of one stream.

    ``method``/``scheme``/``authority``/``path`` are the request pseudo-header fields (``None``
    when absent or unknown).  ``path`` includes the query.  ``is_grpc`` is true for
    ``content-type: application/grpc`` (and ``application/grpc+proto``...); then
    ``grpc_service``/``grpc_method`` come from ``path`` ``/package.Service/Method``.
    ``end_stream`` says the client finished its side normally.  ``pushed`` marks a request the
    server promised (PUSH_PROMISE) rather than one the client sent.  ``truncated``: some of the
    stream's frames from this side were not captured (sizes are then lower bounds).
    """

    stream_id: int
    method: str | None
    scheme: str | None
    authority: str | None
    path: str | None
    headers: Headers
    body_size: int
    wire_size: int
    trailers: Headers = ()
    headers_known: bool = True
    end_stream: bool = True
    is_grpc: bool = False
    grpc_service: str | None = None
    grpc_method: str | None = None
    pushed: bool = False
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Http2Response(_HeaderLookup):
    """The server side of one stream, and how the stream ended.

    ``status`` is the final ``:status`` (``None`` when the stream ended before any response
    header block, or when the block could not be decoded); ``interim_statuses`` are the 1xx
    responses before it.  ``grpc_status``/``grpc_message`` come from the trailers, or from the
    headers of a trailers-only response; ``grpc_message`` is percent-decoded.
    ``end_stream``: the server finished its side normally.  ``end`` says what ended the
    stream; ``error_code`` is the RST_STREAM or GOAWAY error code (``ErrorCode``), ``None``
    when none was sent, and ``error_from`` the endpoint that sent it.
    """

    status: int | None
    headers: Headers
    body_size: int
    wire_size: int
    trailers: Headers = ()
    grpc_status: int | None = None
    grpc_message: str | None = None
    headers_known: bool = True
    end_stream: bool = True
    end: StreamEnd = StreamEnd.END_STREAM
    error_code: int | None = None
    error_from: Peer | None = None
    interim_statuses: tuple[int, ...] = ()
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Http2GoAway:
    """The last GOAWAY seen: who sent it, the last stream it processed, and why."""

    sender: Peer | None
    last_stream_id: int
    error_code: int
