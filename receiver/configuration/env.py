"""Environment-variable expansion in scalar values, as the OpenTelemetry Collector does it.

* ``${env:NAME}`` — the variable's value; an unset variable is an error.
* ``${env:NAME:-default}`` — ``default`` when the variable is unset (a set-but-empty variable
  stays empty, like the Collector's env provider).
* ``${NAME}`` — shorthand for ``${env:NAME}`` (``env`` is the default scheme).
* ``$$`` — a literal ``$`` (so ``$${env:X}`` is the literal text ``${env:X}``).
* any other ``$`` is literal.

Only values are expanded, never keys.  A value that is *entirely* one reference comes back as
:class:`EnvText`, whose type then follows the setting it lands in (``"8080"`` becomes an int
for an int setting, stays text for a string setting).  Error messages name variables but never
quote the value being expanded (it may be a secret such as an API key).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class EnvText(str):
    """Text that was entirely one ``${...}`` reference; typed by its target setting."""

    __slots__ = ()


class ExpansionError(ValueError):
    """A reference that cannot be expanded; the message is safe to show (no values)."""


def expand_env(text: str, environ: Mapping[str, str]) -> str:
    """Expand every reference in ``text``; returns :class:`EnvText` for a whole-value reference."""
    if "$" not in text:
        return text
    parts: list[str] = []
    references = 0
    index = 0
    while index < len(text):
        dollar = text.find("$", index)
        if dollar < 0:
            parts.append(text[index:])
            break
        parts.append(text[index:dollar])
        following = text[dollar + 1 : dollar + 2]
        if following == "$":
            parts.append("$")
            index = dollar + 2
        elif following == "{":
            end = text.find("}", dollar + 2)
            if end < 0:
                raise ExpansionError("unterminated '${' (missing '}')")
            parts.append(_resolve(text[dollar + 2 : end], environ))
            references += 1
            index = end + 1
        else:
            parts.append("$")
            index = dollar + 1
    expanded = "".join(parts)
    whole = references == 1 and text.startswith("${") and text.find("}") == len(text) - 1
    return EnvText(expanded) if whole else expanded


def _resolve(reference: str, environ: Mapping[str, str]) -> str:
    scheme, colon, rest = reference.partition(":")
    if not colon:
        scheme, rest = "env", reference
    if scheme != "env":
        shown = scheme if _NAME.fullmatch(scheme) else "?"
        raise ExpansionError(f"unsupported reference scheme '{shown}' (only ${{env:NAME}} is supported)")
    name, has_default, default = rest.partition(":-")
    if not _NAME.fullmatch(name):
        raise ExpansionError(
            "invalid environment variable name in '${...}' (letters, digits and '_', not starting with a digit)"
        )
    if name in environ:
        return environ[name]
    if has_default:
        return default
    raise ExpansionError(
        f"environment variable '{name}' is not set (set it, or give a default: ${{env:{name}:-default}})"
    )
