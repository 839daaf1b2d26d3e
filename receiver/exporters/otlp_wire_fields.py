"""Protobuf wire primitives and the attribute (``KeyValue``) field cache of
:mod:`receiver.exporters.otlp_wire`.

Varints, field tags derived from the generated descriptors (no field number written by hand),
length-delimited fields, ``AnyValue`` encoding that mirrors
:func:`~receiver.exporters.otlp_encoding.set_any_value`, and :class:`KeyValueFields`: serialized
attributes, each distinct ``(key, value)`` encoded once, in a cache bounded in entries.
"""

from __future__ import annotations

import struct
from itertools import chain, repeat
from typing import Iterator, Mapping, Sequence

from google.protobuf.descriptor import FieldDescriptor
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue

from receiver.exporters.otlp_encoding import set_any_value

_WIRE_TYPES = {
    FieldDescriptor.TYPE_STRING: 2,
    FieldDescriptor.TYPE_BYTES: 2,
    FieldDescriptor.TYPE_MESSAGE: 2,
    FieldDescriptor.TYPE_FIXED64: 1,
    FieldDescriptor.TYPE_DOUBLE: 1,
    FieldDescriptor.TYPE_FIXED32: 5,
    FieldDescriptor.TYPE_ENUM: 0,
    FieldDescriptor.TYPE_BOOL: 0,
    FieldDescriptor.TYPE_INT64: 0,
    FieldDescriptor.TYPE_UINT32: 0,
}

ONE_BYTE = tuple(bytes((i,)) for i in range(0x80))  # the varints of 0..127
_UINT64_MASK = (1 << 64) - 1
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_DOUBLE = struct.Struct("<d")
_TWO_BYTES = struct.Struct("<BB").pack
_THREE_BYTES = struct.Struct("<BBB").pack


def varint(n: int) -> bytes:
    """The base-128 varint of a non-negative integer (``ValueError`` for a negative one)."""
    if 0 <= n < 0x80:
        return ONE_BYTE[n]
    if 0x80 <= n < 0x4000:  # lengths of spans and attribute blocks
        return _TWO_BYTES(n & 0x7F | 0x80, n >> 7)
    if 0x4000 <= n < 0x200000:  # ports
        return _THREE_BYTES(n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14)
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)  # ValueError if n was negative
    return bytes(out)


def field_tag(message_type, name: str) -> bytes:
    """The encoded tag (field number and wire type) of field ``name`` of a generated message type."""
    field = message_type.DESCRIPTOR.fields_by_name[name]
    return varint(field.number << 3 | _WIRE_TYPES[field.type])


def length_delimited(tag: bytes, payload: bytes) -> bytes:
    """One length-delimited field: tag, varint length, payload."""
    return tag + varint(len(payload)) + payload


# -- attribute values ----------------------------------------------------------------------------

AV_STRING = field_tag(AnyValue, "string_value")
_AV_INT = field_tag(AnyValue, "int_value")
_AV_DOUBLE = field_tag(AnyValue, "double_value")
_AV_BYTES = field_tag(AnyValue, "bytes_value")
_AV_ARRAY = field_tag(AnyValue, "array_value")
_AV_TRUE = field_tag(AnyValue, "bool_value") + b"\x01"
_AV_FALSE = field_tag(AnyValue, "bool_value") + b"\x00"
_ARRAY_VALUES = field_tag(ArrayValue, "values")
_KV_KEY = field_tag(KeyValue, "key")
_KV_VALUE = field_tag(KeyValue, "value")


def any_value(value: object) -> bytes | None:
    """The serialized ``AnyValue`` for an attribute value, None when it has none (``None``).

    The type dispatch mirrors :func:`~receiver.exporters.otlp_encoding.set_any_value`; the
    uncommon types go to it.
    """
    t = type(value)
    if t is str:
        return length_delimited(AV_STRING, value.encode())
    if t is bool:
        return _AV_TRUE if value else _AV_FALSE
    if t is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            return _AV_INT + varint(value & _UINT64_MASK)
        return length_delimited(AV_STRING, str(value).encode())  # as the reference: its decimal string
    if t is float:
        return _AV_DOUBLE + _DOUBLE.pack(value)
    if t is bytes:
        return length_delimited(_AV_BYTES, value)
    if isinstance(value, (tuple, list)):
        items = b"".join([length_delimited(_ARRAY_VALUES, any_value(item) or b"") for item in value])
        return length_delimited(_AV_ARRAY, items)
    if value is None:
        return None
    message = AnyValue()
    set_any_value(message, value)
    return message.SerializeToString() if message.WhichOneof("value") else None


def key_value(key: str, value: object) -> bytes:
    """The serialized ``KeyValue`` (without its field tag) of one attribute."""
    if type(key) is not str:  # let protobuf accept or reject it, as the reference does
        message = KeyValue(key=key)
        set_any_value(message.value, value)
        return message.SerializeToString()
    encoded = any_value(value)
    out = length_delimited(_KV_KEY, key.encode()) if key else b""
    return out if encoded is None else out + length_delimited(_KV_VALUE, encoded)


# The exact types for which ``==`` between two values implies the same encoding and ``==``
# across them is always False: a ``(key, value)`` pair of these can be a cache key as it is
# (``dict.items()`` makes it).  Any other value type is looked up as ``(key, value, type)``:
# ``1 == 1.0 == True``, ``0.0 == -0.0``, a ``str`` subclass may print differently.
_PLAIN_VALUE_TYPES = frozenset({str, int, bytes})
_MAX_CACHED_LEN = 256  # longer texts rarely repeat, and would loosen the bound in bytes

# A KeyValue.value of a short text: tag, length, then the AnyValue: tag, length, text.
_SHORT_STRING_FIELD = b"%b%b%b" + _KV_VALUE + b"%b" + AV_STRING + b"%b%b"
# KeyValue.value fields of ints of one, two and three varint bytes.
_SMALL_INT_FIELDS = tuple(_KV_VALUE + ONE_BYTE[len(_AV_INT) + 1] + _AV_INT + ONE_BYTE[i] for i in range(0x80))
_INT_PREFIX_2 = _KV_VALUE + ONE_BYTE[len(_AV_INT) + 2] + _AV_INT
_INT_PREFIX_3 = _KV_VALUE + ONE_BYTE[len(_AV_INT) + 3] + _AV_INT
_INT_FIELD_2 = struct.Struct(f"<{len(_INT_PREFIX_2)}sBB").pack
_INT_FIELD_3 = struct.Struct(f"<{len(_INT_PREFIX_3)}sBBB").pack


def _value_field(value: object) -> bytes:
    """The ``value`` field of a ``KeyValue`` (empty for ``None``)."""
    encoded = any_value(value)
    return b"" if encoded is None else length_delimited(_KV_VALUE, encoded)


class KeyValueFields(dict):
    """Serialized ``KeyValue`` fields (tag, length, message) of one repeated attributes field.

    A dict keyed by ``(key, value)`` pairs, or ``(key, value, type)`` when a batch has values not
    of :data:`_PLAIN_VALUE_TYPES`, whose misses are encoded by :meth:`__missing__`: a hit costs
    one C-level lookup, and :meth:`blocks` looks up a whole batch's attributes in nested ``map``
    calls, with no Python code run per attribute unless it misses.

    It is bounded: at ``max_entries`` it is emptied, and refills with what recurs (floats,
    tuples and texts over :data:`_MAX_CACHED_LEN` characters are never kept).  One key holds at
    most a quarter of it, so a high-cardinality attribute (a path with ids, ephemeral ports)
    cannot keep flushing the recurring ones; once ``4 * max_entries`` misses were refused that
    way, it is emptied too, so a key whose values have settled gets its share again.  Safe to
    share between threads: it only ever holds correct entries, an entry lost to a concurrent
    reset is encoded again, and the bounds may be overshot by a few entries.
    """

    __slots__ = ("tag", "max_entries", "_share", "_keys", "_per_key", "_refused")

    def __init__(self, tag: bytes, max_entries: int) -> None:
        super().__init__()
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.tag = tag
        self.max_entries = max_entries
        self._share = max(1, max_entries // 4)  # entries one key may hold
        self._keys: dict[str, bytes] = {}  # key → its encoded ``key`` field
        self._per_key: dict[str, int] = {}  # key → entries it holds
        self._refused = 0  # misses not kept because their key had its share

    def __missing__(self, item: tuple) -> bytes:
        key, value = item[0], item[1]
        field = self.encode(key, value)
        t = type(value)
        if t is int or t is bool or (t is str or t is bytes) and len(value) <= _MAX_CACHED_LEN:
            per_key = self._per_key
            held = per_key.get(key, 0)
            if held < self._share:
                if len(self) >= self.max_entries:
                    self.reset()
                    held = 0
                self[item] = field
                per_key[key] = held + 1
            else:
                self._refused += 1
                if self._refused >= self.max_entries << 2:
                    self.reset()
        return field

    def reset(self) -> None:
        """Forget every entry (when full, or when high-cardinality keys were refused for long)."""
        self.clear()
        self._per_key.clear()
        self._refused = 0

    def encode(self, key: str, value: object) -> bytes:
        """One attribute's field, uncached (short texts and small ints written in one go)."""
        keys = self._keys
        key_field = keys.get(key)
        if key_field is None:
            if type(key) is not str:  # let protobuf accept or reject it, as the reference does
                return length_delimited(self.tag, key_value(key, value))
            if len(keys) >= self.max_entries:
                keys.clear()
            key_field = keys[key] = length_delimited(_KV_KEY, key.encode()) if key else b""
        t = type(value)
        if t is str:
            data = value.encode()
            n = len(data)
            size = len(key_field) + n + 4
            if size < 0x80:
                lengths = ONE_BYTE[size], ONE_BYTE[n + 2], ONE_BYTE[n]
                return _SHORT_STRING_FIELD % (self.tag, lengths[0], key_field, lengths[1], lengths[2], data)
            value_field = length_delimited(_KV_VALUE, length_delimited(AV_STRING, data))
        elif t is int and 0 <= value < 0x200000:  # ports, status codes, sizes: 1 to 3 varint bytes
            if value < 0x80:
                value_field = _SMALL_INT_FIELDS[value]
            elif value < 0x4000:
                value_field = _INT_FIELD_2(_INT_PREFIX_2, value & 0x7F | 0x80, value >> 7)
            else:
                value_field = _INT_FIELD_3(_INT_PREFIX_3, value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14)
        else:
            value_field = _value_field(value)
        n = len(key_field) + len(value_field)
        return b"%b%b%b%b" % (self.tag, ONE_BYTE[n] if n < 0x80 else varint(n), key_field, value_field)

    def blocks(self, mappings: Sequence[Mapping[str, object]]) -> list[bytes]:
        """For each mapping, the fields of its attributes joined in its order.

        The ``(key, value)`` lookups are safe only if every value of the batch is of an exact
        plain type: checked first, in one pass over the batch (cheaper than typed keys).
        """
        values = chain.from_iterable
        try:
            if _PLAIN_VALUE_TYPES.issuperset(map(type, values(map(dict.values, mappings)))):
                lookups = map(map, repeat(self.__getitem__), map(dict.items, mappings))
            else:
                lookups = map(self._typed_lookups, mappings)
            return list(map(b"".join, lookups))
        except TypeError:  # an unhashable value (a list), or not a dict: encoded without the cache
            encode = self.encode
            return [b"".join([encode(k, v) for k, v in attributes.items()]) for attributes in mappings]

    def _typed_lookups(self, attributes: Mapping[str, object]) -> Iterator[bytes]:
        values = attributes.values()
        return map(self.__getitem__, zip(attributes, values, map(type, values)))
