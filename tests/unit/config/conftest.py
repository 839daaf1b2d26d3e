"""Helpers for configuration tests: write a config file, load it, locate the marked line.

Test configs mark the line an error must point at with ``# <-``; :func:`marked_line` finds it,
so line numbers are never counted by hand.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping

import pytest

from receiver.config import AgentConfig, ConfigError, Location, load_config

def marked_line(text: str) -> int:
    lines = [number for number, line in enumerate(text.splitlines(), 1) if "# <-" in line]
    assert len(lines) == 1, "mark exactly one line with '# <-'"
    return lines[0]


@pytest.fixture
def write(tmp_path, monkeypatch) -> Callable[..., str]:
    """Write ``text`` (dedented) to ``name`` in a fresh directory that is also the cwd."""
    monkeypatch.chdir(tmp_path)

    def write(text: str, name: str = "config.yaml") -> str:
        (tmp_path / name).write_text(textwrap.dedent(text))
        return name

    return write


@pytest.fixture
def load(write) -> Callable[..., AgentConfig]:
    def load(text: str, environ: Mapping[str, str] | None = None) -> AgentConfig:
        return load_config([write(text)], environ or {})

    return load


@pytest.fixture
def load_error(write) -> Callable[..., ConfigError]:
    """Load ``text`` as config.yaml, expect a ConfigError at ``key_path`` on the ``# <-`` line."""

    def load_error(text: str, key_path: str | None, environ: Mapping[str, str] | None = None) -> ConfigError:
        text = textwrap.dedent(text)
        name = write(text)
        with pytest.raises(ConfigError) as caught:
            load_config([name], environ or {})
        error = caught.value
        assert error.key_path == key_path, str(error)
        assert error.location == Location("config.yaml", marked_line(text)), str(error)
        expected_prefix = f"config error: {key_path}: " if key_path else "config error: "
        assert str(error).startswith(expected_prefix)
        assert str(error).endswith(f" (config.yaml:{marked_line(text)})")
        return error

    return load_error
