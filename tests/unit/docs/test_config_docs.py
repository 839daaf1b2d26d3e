"""docs/configuration.md is generated from the schema; a stale file fails here with the fix."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from build_files import REPO
from receiver.config import SettingDoc, describe_schema

GENERATOR = REPO / "scripts" / "gen_config_docs.py"
DOC = REPO / "docs" / "configuration.md"


def generator():
    spec = importlib.util.spec_from_file_location("gen_config_docs", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_md_is_up_to_date():
    expected = generator().render()
    assert DOC.read_text(encoding="utf-8") == expected, (
        "docs/configuration.md does not match the configuration schema; regenerate it with `make docs` "
        "(python scripts/gen_config_docs.py) and commit the result"
    )


def test_every_key_is_documented_with_its_default():
    text = DOC.read_text(encoding="utf-8")
    for section, settings in describe_schema().items():
        assert f"## `{section}`" in text
        for setting in settings:
            assert f"| `{setting.key}` |" in text, f"{section}.{setting.key}"


def test_render_escapes_markdown():
    schema = {
        "exporters.x": (
            SettingDoc("a", "string", "x|y", "Base URL; /v1/<signal> is appended | and more.", "``host:port`` or <x>"),
        )
    }
    text = generator().render(schema)
    row = next(line for line in text.splitlines() if line.startswith("| `a`"))
    assert row == r"| `a` | string | `x\|y` | `host:port` or &lt;x> | Base URL; /v1/&lt;signal> is appended \| and more. |"


def test_check_mode_reports_a_stale_file_with_the_command(tmp_path):
    stale = tmp_path / "configuration.md"
    stale.write_text("# old\n")
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--output", str(stale)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "make docs" in result.stderr and "+# Configuration reference" in result.stderr
    fresh = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
