"""Immutable mappings for frozen config dataclasses (hashable; a secret one redacts its repr)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

REDACTED = "[REDACTED]"


class FrozenMap(Mapping[K, V]):
    """A read-only, hashable mapping; compares equal to a ``dict`` with the same items."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[K, V] | None = None):
        self._items: dict[K, V] = dict(items or {})

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return repr(self._items)


class SecretMap(FrozenMap[K, V]):
    """A :class:`FrozenMap` whose values are secrets: ``repr``/``str`` show only the keys."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr({key: REDACTED for key in self._items})
