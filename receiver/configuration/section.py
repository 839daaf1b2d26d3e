"""How a config dataclass declares its settings: one :func:`setting` per key.

Each setting carries its default, a one-line ``doc`` and its constraints in the field metadata;
the decoder (:mod:`.decode`), the schema description and the redacted dump all read them from
there, so adding a key is one line::

    traceparent_dedup: bool = setting(True, "Drop spans whose traceparent was already seen.")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import Field, field, fields
from types import MappingProxyType
from typing import Any, ClassVar

from receiver.configuration.mappings import FrozenMap, SecretMap

SIGNALS = ("traces", "metrics", "logs")
# Pipelines may also carry profiles (development): only components that declare it serve them.
PIPELINE_SIGNALS = SIGNALS + ("profiles",)

# A check takes the decoded value and returns a problem description, or None when it is fine.
Check = Callable[[Any], "str | None"]


def setting(
    default: Any,
    doc: str,
    *,
    kind: str | None = None,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] | None = None,
    power_of_two: bool = False,
    check: Check | None = None,
    keys: tuple[str, ...] | None = None,
    key_check: Check | None = None,
    secret: bool = False,
    yaml_key: str | None = None,
) -> Any:
    """A dataclass field with its documentation and constraints.

    ``kind`` refines the Python type: ``"duration"`` (float seconds, accepts ``"5s"``) or
    ``"bytes"`` (int, accepts ``"16MiB"``).  ``minimum``/``above``/``maximum``/``choices``/
    ``power_of_two``/``check`` apply to the value, or to each item of a list.  ``keys`` lists the
    allowed keys of a map setting (``key_check`` validates them instead).  ``secret`` marks the
    values (of a map: its values) as never to be shown in reprs, dumps or error messages.
    ``yaml_key``: the key in YAML when it cannot be the field's name (``and``, a Python keyword).
    """
    metadata = {
        "doc": doc,
        "kind": kind,
        "minimum": minimum,
        "above": above,
        "maximum": maximum,
        "choices": choices,
        "power_of_two": power_of_two,
        "check": check,
        "keys": keys,
        "key_check": key_check,
        "secret": secret,
        "yaml_key": yaml_key,
    }
    return field(default=default, metadata=MappingProxyType(metadata))


def yaml_key(spec: Field) -> str:
    """The key a dataclass field is written under in YAML."""
    return spec.metadata.get("yaml_key") or spec.name


class ConfigSection:
    """Base of every config dataclass.

    Normalises containers given to the constructor (``list`` → ``tuple``, ``dict`` →
    :class:`FrozenMap`, or :class:`SecretMap` for secret settings) so instances built in code are
    as immutable, hashable and repr-safe as loaded ones.
    """

    __slots__ = ()

    # Signals a component can serve in a pipeline (pipelines are checked against this).
    signals: ClassVar[frozenset[str]] = frozenset(SIGNALS)
    # Keys a peer's component of the same type accepts (the Collector's) that this one does not:
    # key -> why; the decoder names them as such rather than as unknown keys.
    unsupported_keys: ClassVar[Mapping[str, str]] = MappingProxyType({})

    def __post_init__(self) -> None:
        for spec in fields(self):  # type: ignore[arg-type]
            value = getattr(self, spec.name)
            if isinstance(value, list):
                object.__setattr__(self, spec.name, tuple(value))
            elif isinstance(value, Mapping):
                wanted = SecretMap if spec.metadata.get("secret") else FrozenMap
                if type(value) is not wanted:
                    object.__setattr__(self, spec.name, wanted(value))

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        """Rules that involve several settings: yields ``(setting name, problem)``."""
        return iter(())
