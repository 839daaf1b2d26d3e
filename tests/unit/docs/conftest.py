"""Helpers for the tests that keep the Containerfile, deploy/ and docs/ true to the code.

Agent configurations are validated the way users validate them: by running the installed
``ebpf-receiver validate --config FILE`` (the binary next to this interpreter, i.e. the venv's).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from build_files import REPO


def agent_binary() -> Path:
    binary = Path(sys.executable).with_name("ebpf-receiver")
    if not binary.exists():
        pytest.fail(f"{binary} is missing: install the package into this venv (make venv)", pytrace=False)
    return binary


def run_agent(args: Sequence[str], env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """``ebpf-receiver ARGS`` from the repository root; output captured as text."""
    return subprocess.run(
        [str(agent_binary()), *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def validate_config(tmp_path) -> Callable[..., None]:
    """Validate agent configuration text (or files) with ``ebpf-receiver validate``; fail with its message."""

    def validate(*sources: str | Path, name: str = "config.yaml", what: str = "") -> None:
        paths = []
        for number, source in enumerate(sources):
            if isinstance(source, Path):
                paths.append(source)
            else:
                path = tmp_path / f"{number}-{name}"
                path.write_text(source)
                paths.append(path)
        result = run_agent(["validate", *(arg for path in paths for arg in ("--config", str(path)))])
        assert result.returncode == 0, f"{what or paths}: ebpf-receiver validate failed:\n{result.stderr}"

    return validate
