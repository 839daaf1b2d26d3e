"""Keeping secret setting values (exporter headers) out of text that is logged.

Backends sometimes echo credentials in their error bodies, and libraries may log what they
send: :func:`secret_fragments` turns the configured secret values into what must never be
shown, :func:`redact` replaces them.  The exporters redact their error texts; the CLI installs a
log filter that redacts every record.
"""

from __future__ import annotations

from typing import Iterable

from receiver.configuration.mappings import REDACTED


def secret_fragments(values: Iterable[str]) -> tuple[str, ...]:
    """What to hide of secret header values: each whole value and its longer words
    (``"Bearer s3cr3t-token"`` → the value and ``s3cr3t-token``), longest first."""
    out: set[str] = set()
    for value in values:
        if len(value) >= 4:
            out.add(value)
        out.update(word for word in value.split() if len(word) >= 8)
    return tuple(sorted(out, key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret fragment replaced by ``[REDACTED]``."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text
