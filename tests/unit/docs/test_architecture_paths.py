"""docs/architecture.md and the README name only files and folders that exist (the map stays true
when code moves)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("doc", ["docs/architecture.md", "README.md", "docs/protocols.md"])
def test_named_paths_exist(doc):
    text = (REPO / doc).read_text()
    named = set(re.findall(r"`((?:receiver|bpf|tests|plugins|bench|scripts|deploy|config)/[A-Za-z0-9_./<>-]+)`", text))
    missing = sorted(p for p in named if "<" not in p and not (REPO / p.rstrip("/")).exists())
    assert missing == []
