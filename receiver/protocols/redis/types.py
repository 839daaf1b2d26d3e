"""Redis messages as the parser hands them out: frozen, slotted, plain data.

A :class:`RedisRequest` never holds argument *values*: only the command name (plus its
subcommand for container commands such as ``CLIENT SETNAME``), the first key argument, and how
many arguments there were.  ``AUTH user password`` becomes ``command="AUTH", key=None,
arg_count=2``.  Replies keep no values either: their RESP type, element count, and for errors
and simple-string statuses the (bounded) text.

Sizes are *wire* sizes, worked out from lengths on the wire rather than from the bytes that were
captured: a reply whose bulk payload was partly lost to a truncated capture still reports its
real size.  ``truncated`` means some of the message's framing was never seen (the capture lost
it, or the connection closed mid-message); its ``wire_size`` is then a best estimate.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RespType(enum.Enum):
    """The RESP2/RESP3 type of a reply (the value is its name, the comment its wire marker)."""

    SIMPLE_STRING = "simple_string"  # +
    ERROR = "error"  # -
    INTEGER = "integer"  # :
    BULK_STRING = "bulk_string"  # $
    ARRAY = "array"  # *
    NULL = "null"  # _ (RESP3), and the RESP2 null bulk $-1 / null array *-1
    BOOLEAN = "boolean"  # #
    DOUBLE = "double"  # ,
    BIG_NUMBER = "big_number"  # (
    BLOB_ERROR = "blob_error"  # !
    VERBATIM_STRING = "verbatim_string"  # =
    MAP = "map"  # %
    SET = "set"  # ~
    PUSH = "push"  # >  (only subscribe-family confirmations are replies; other pushes are not)


@dataclass(frozen=True, slots=True)
class RedisRequest:
    """One command sent to a Redis server.

    * ``command`` — the command name upper-cased (``"GET"``), with the subcommand of a container
      command (``"CLIENT SETNAME"``, ``"CONFIG GET"``) when it is a known subcommand.  Unknown
      command names are kept upper-cased when they look like a command word (module commands such
      as ``"JSON.GET"``), else ``"UNKNOWN"``.
    * ``key`` — the first key argument (per the command's key specification: ``GET k`` → ``k``,
      ``EVAL script 1 k`` → ``k``, ``XREAD ... STREAMS k id`` → ``k``), decoded as UTF-8 with
      backslash escapes, cut to ``MAX_KEY_BYTES``; ``None`` for commands without keys and for
      unknown commands.
    * ``arg_count`` — arguments after the command name (the subcommand counts as one).
    * ``database`` — the database index last chosen with ``SELECT`` on this connection when the
      request was sent; ``None`` if no ``SELECT`` was seen (the server default, 0, unless the
      connection predates the capture).
    * ``inline`` — sent as an inline command (``PING\\r\\n``), not as a RESP array.
    """

    command: str
    key: str | None
    arg_count: int
    database: int | None
    inline: bool
    wire_size: int
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class RedisResponse:
    """The reply (or, for ``SUBSCRIBE a b c``, the replies) to one request.

    * ``kind`` — the RESP type of the (first) reply, after any RESP3 attribute.
    * ``error_prefix`` / ``error_message`` — for ``-`` and ``!`` replies: the error code (the
      first word, ``"ERR"``, ``"WRONGTYPE"``, ``"MOVED"``...; ``""`` if the error has none) and the
      rest of the text, bounded; the arguments Redis echoes in ``unknown command`` errors are cut.
      Both ``None`` for other replies.
    * ``status`` — the text of a simple-string reply (``"OK"``, ``"QUEUED"``, ``"PONG"``), bounded.
    * ``element_count`` — elements of an aggregate reply (arrays, sets, pushes; entries of a map);
      ``None`` for scalars and nulls.
    * ``reply_count`` — reply frames that made up this response: 1, or one per channel for the
      subscribe family.
    * ``protocol_version`` — 2 or 3: the RESP version in effect (after ``HELLO 3``, or as soon as
      a RESP3-only type is seen).
    * ``had_attributes`` — a RESP3 attribute (``|``) preceded the reply.
    """

    kind: RespType
    error_prefix: str | None
    error_message: str | None
    status: str | None
    element_count: int | None
    reply_count: int
    protocol_version: int
    wire_size: int
    truncated: bool = False
    had_attributes: bool = False

    @property
    def is_error(self) -> bool:
        """An error reply (``-`` or ``!``)."""
        return self.error_prefix is not None
