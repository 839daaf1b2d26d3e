"""No module of the agent over 600 lines: a module that grows past it holds more than one
concern (issue 14); split it along one before adding to it."""

from pathlib import Path

MAX_LINES = 600
PACKAGE = Path(__file__).resolve().parents[2] / "receiver"


def test_no_module_over_600_lines():
    sizes = {str(p.relative_to(PACKAGE.parent)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert sizes, "no module found"
    over = {path: n for path, n in sorted(sizes.items()) if n > MAX_LINES}
    assert not over, over
