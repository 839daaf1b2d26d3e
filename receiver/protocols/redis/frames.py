"""What a RESP reader reports: the RESP type bytes, the reader's modes, and :class:`Frame`.

The reader (:class:`~.parse.RespReader`) turns one direction's bytes into frames; the session
(:mod:`.session`) turns frames into requests and replies.  Both speak in these terms.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

# How a reader reads its direction (see :mod:`.parse`).
MODE_UNKNOWN = 0
MODE_REQUEST = 1
MODE_REPLY = 2

MAX_TEXT = 256  # bytes kept of a top-level simple string, error or blob error

INLINE = 0  # Frame.top of an inline command

CR = 13
LF = 10
PLUS = ord("+")
MINUS = ord("-")
COLON = ord(":")
DOLLAR = ord("$")
STAR = ord("*")
UNDERSCORE = ord("_")
HASH = ord("#")
COMMA = ord(",")
LPAREN = ord("(")
BANG = ord("!")
EQUALS = ord("=")
PERCENT = ord("%")
TILDE = ord("~")
GT = ord(">")
PIPE = ord("|")

RESP_TYPES = frozenset(b"+-:$*_#,(!=%~>|")


class Frame(NamedTuple):
    """One complete top-level RESP value (attributes before it folded in), or an inline command.

    * ``top`` — the type byte of the value (``ord("*")``...), or :data:`INLINE`;
    * ``count`` — aggregates: declared elements (maps: entries); bulk types: payload length;
      ``-1`` for the RESP2 nulls ``$-1``/``*-1``; inline: number of words; else 0;
    * ``line`` — ``+ - : , ( # _``: the line after the type byte, bounded; ``!``: the start of the
      error text; else empty;
    * ``items`` — top-level elements of an aggregate, in order, the first :data:`~.parse.MAX_ITEMS`: the copied
      prefix (``bytearray``) of a bulk string the policy asked for, an ``int`` for an integer,
      else ``None``; inline: the words (``bytes``);
    * ``all_bulk`` — an array whose elements are all bulk strings, nothing nested (a command);
    * ``size`` — wire bytes (a best estimate when ``truncated``);
    * ``start_ts`` — ts of the feed that carried the first byte;
    * ``truncated`` — the end of the value was lost (truncated capture, or the connection closed);
    * ``attributes`` — a RESP3 attribute (``|``) preceded the value or one of its elements.
    """

    top: int
    count: int
    line: bytes
    items: list
    all_bulk: bool
    size: int
    start_ts: int
    truncated: bool
    attributes: bool


CapturePolicy = Callable[[list, int], int]


def reply_policy(items: list, index: int) -> int:
    """Replies: copy only the first element's start (the kind of a pub/sub message)."""
    return 32 if index == 0 else 0
