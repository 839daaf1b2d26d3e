"""Header blocks: HPACK decoding (with the ``hpack`` library) and what the fields mean.

One :class:`HeaderBlockDecoder` per direction: HPACK's dynamic table is shared by every header
block an endpoint sends, so blocks must be decoded in the order they were sent, each one once.

When the table state is unknown — the capture joined the connection after it started, a block
was lost to a capture gap, or a block failed to decode — the decoder is reset to an empty
table.  That is sound: entries are added at the front and evicted from the back, so the
entries the observer has seen added since the reset are exactly the newest entries of the real
table.  A block that only uses the static table, literals and those entries decodes correctly;
a block that refers to an older entry fails (the index is past our table's end), is counted,
and resets the table again.  Nothing is ever decoded against a wrong entry.

Bounds: the dynamic table is capped at :data:`MAX_TABLE_SIZE` bytes whatever the peer
announced (an encoder growing it beyond fails to decode, harmlessly), a decoded header list at
``max_header_list_size`` (HPACK bombs), the fields kept per block at :data:`MAX_FIELDS` and each
value at :data:`MAX_VALUE_CHARS` characters.
"""

from __future__ import annotations

import enum
from typing import NamedTuple
from urllib.parse import unquote

import hpack

from .types import DEFAULT_HEADER_TABLE_SIZE, Headers

MAX_TABLE_SIZE = 64 * 1024  # bytes of HPACK dynamic table tracked per direction
DEFAULT_MAX_HEADER_LIST_SIZE = 64 * 1024  # decoded bytes (RFC 7541 entry sizes) per block
MAX_FIELDS = 64  # regular fields kept per header block (the rest are counted, not kept)
MAX_VALUE_CHARS = 4096  # longest field value kept (longer ones are cut)
MAX_CACHED_BLOCKS = 8  # decoded header blocks remembered per direction
MAX_CACHED_BLOCK = 256  # bytes: larger blocks are not remembered


class HeaderBlockDecoder:
    """HPACK decoder for the header blocks of one direction, resilient to lost state.

    Decoded blocks that left the dynamic table untouched are remembered (a few small ones,
    keyed by their bytes, forgotten whenever the table changes): RPC traffic repeats the same
    header blocks call after call, and a repeated block then costs one dict lookup.
    """

    __slots__ = ("_decoder", "_max_list", "_cache", "table_size", "failures", "resets")

    def __init__(self, max_header_list_size: int = DEFAULT_MAX_HEADER_LIST_SIZE) -> None:
        self._max_list = max_header_list_size
        self._cache: dict[bytes, HeaderBlock] = {}
        self.table_size = DEFAULT_HEADER_TABLE_SIZE  # current dynamic table size limit
        self.failures = 0  # blocks that did not decode
        self.resets = 0  # times the table state was given up
        self._decoder = self._new_decoder()

    def _new_decoder(self) -> hpack.Decoder:
        decoder = hpack.Decoder(max_header_list_size=self._max_list)
        decoder.max_allowed_table_size = MAX_TABLE_SIZE
        decoder.header_table_size = min(self.table_size, MAX_TABLE_SIZE)
        return decoder

    def decode(self, block: bytes) -> HeaderBlock | None:
        """The fields of a complete header block, classified; ``None`` (counted) if it does not
        decode — the table is then reset, since the block may have changed it."""
        cache = self._cache
        cacheable = len(block) <= MAX_CACHED_BLOCK
        if cacheable:
            hit = cache.get(block)
            if hit is not None:
                return hit
        table = self._decoder.header_table
        entries = table.dynamic_entries
        count = len(entries)
        newest = entries[0] if count else None
        size = table.maxsize
        try:
            fields = self._decoder.decode(block, raw=True)
        except Exception:  # hpack raises several error types (and ValueError/IndexError) on bad input
            self.failures += 1
            self.reset()
            return None
        decoded = classify(fields)
        if len(entries) == count and (entries[0] if count else None) is newest and table.maxsize == size:
            if cacheable:
                if len(cache) >= MAX_CACHED_BLOCKS:
                    cache.clear()
                cache[block] = decoded
        else:
            cache.clear()  # the table changed: what was cached may now decode differently
            self.table_size = table.maxsize
        return decoded

    def reset(self) -> None:
        """A block was lost or failed: forget the dynamic table (see the module docstring)."""
        self.resets += 1
        self._cache.clear()
        self._decoder = self._new_decoder()

    def limit_table_size(self, size: int) -> None:
        """The decoding endpoint's SETTINGS_HEADER_TABLE_SIZE was acknowledged by the encoder.

        The encoder must now keep its table within ``size`` (it says so with a size update at
        the start of its next block); shrinking ours at once keeps it a prefix of the real one.
        """
        size = min(size, MAX_TABLE_SIZE)
        if size < self._decoder.header_table_size:
            self._cache.clear()
            self._decoder.header_table_size = size
            self.table_size = size


class BlockKind(enum.IntEnum):
    """What a decoded header block is."""

    REQUEST = 1  # has :method
    RESPONSE = 2  # has a final :status (>= 200)
    INTERIM = 3  # has a 1xx :status
    TRAILERS = 4  # no pseudo-header fields
    UNKNOWN = 5  # not decoded


class HeaderBlock(NamedTuple):
    """A decoded header block: pseudo-header fields apart, regular fields as str pairs."""

    kind: BlockKind
    pseudo: dict[bytes, bytes]
    fields: Headers


UNKNOWN_BLOCK = HeaderBlock(BlockKind.UNKNOWN, {}, ())


def _text(value: bytes) -> str:
    if len(value) > MAX_VALUE_CHARS:
        value = value[:MAX_VALUE_CHARS]
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        return value.decode("utf-8", "replace")


def classify(fields: list[tuple[bytes, bytes]]) -> HeaderBlock:
    """Split decoded fields into pseudo-header fields and (bounded) regular fields."""
    pseudo: dict[bytes, bytes] = {}
    regular: list[tuple[str, str]] = []
    for name, value in fields:
        if name[:1] == b":":
            pseudo.setdefault(name, value)
        elif len(regular) < MAX_FIELDS:
            regular.append((_text(name).lower(), _text(value)))
    if b":method" in pseudo:
        kind = BlockKind.REQUEST
    elif b":status" in pseudo:
        status = status_of(pseudo)
        kind = BlockKind.INTERIM if status is not None and 100 <= status < 200 else BlockKind.RESPONSE
    else:
        kind = BlockKind.TRAILERS
    return HeaderBlock(kind, pseudo, tuple(regular))


def status_of(pseudo: dict[bytes, bytes]) -> int | None:
    raw = pseudo.get(b":status")
    if raw is None or len(raw) != 3 or not raw.isdigit():
        return None
    return int(raw)


def pseudo_text(pseudo: dict[bytes, bytes], name: bytes) -> str | None:
    raw = pseudo.get(name)
    return None if raw is None else _text(raw)


def field(fields: Headers, name: str) -> str | None:
    for key, value in fields:
        if key == name:
            return value
    return None


def is_grpc_content_type(content_type: str | None) -> bool:
    """``application/grpc``, ``application/grpc+proto``, ``application/grpc;...`` (not grpc-web)."""
    if content_type is None:
        return False
    ct = content_type.strip().lower()
    return ct == "application/grpc" or ct.startswith(("application/grpc+", "application/grpc;"))


def grpc_service_method(path: str | None) -> tuple[str | None, str | None]:
    """``/package.Service/Method`` → ``("package.Service", "Method")``; ``(None, None)`` otherwise."""
    if not path or path[0] != "/":
        return None, None
    service, sep, method = path[1:].partition("/")
    if not sep or not service or not method or "/" in method or "?" in method:
        return None, None
    return service, method


def grpc_status_of(fields: Headers) -> int | None:
    raw = field(fields, "grpc-status")
    if raw is None:
        return None
    raw = raw.strip()
    return int(raw) if raw.isdigit() and len(raw) <= 10 else None


def grpc_message_of(fields: Headers) -> str | None:
    """The percent-decoded ``grpc-message`` (gRPC over HTTP/2 spec); ``None`` when absent or
    empty (servers send an empty one with OK)."""
    raw = field(fields, "grpc-message")
    if not raw:
        return None
    return unquote(raw, errors="replace") if "%" in raw else raw


def guess_block_kind(block: bytes) -> BlockKind:
    """Guess request vs response from the first field representation of an undecodable block.

    Encoders put pseudo-header fields first, and most use the static table for them:
    ``:method`` is static index 2-3, ``:status`` 8-14 (indexed, or as the name of a literal).
    """
    i = 0
    n = len(block)
    while i < n and block[i] & 0xE0 == 0x20:  # dynamic table size updates come first
        i += 1
        if block[i - 1] & 0x1F == 0x1F:  # multi-byte integer: skip its continuation bytes
            while i < n and block[i] & 0x80:
                i += 1
            i += 1
    if i >= n:
        return BlockKind.UNKNOWN
    b = block[i]
    if b & 0x80:
        index = b & 0x7F
    elif b & 0x40:
        index = b & 0x3F
    else:
        index = b & 0x0F
    if 2 <= index <= 3:
        return BlockKind.REQUEST
    if 8 <= index <= 14:
        return BlockKind.RESPONSE
    return BlockKind.UNKNOWN
