"""The exporter modules import one another in one direction only: no cycles, and the shared
pieces (config, errors, retry, the persistent queue) never reach up to the sender or transports.
(Signals and the consumer protocol are neutral types: receiver/model/signals.py.)"""

from __future__ import annotations

import ast
from pathlib import Path

import receiver.exporters

PACKAGE = Path(receiver.exporters.__file__).parent


def _runtime_imports(path: Path) -> set[str]:
    """``receiver.exporters`` modules imported by ``path`` outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    type_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and getattr(block.test, "id", None) == "TYPE_CHECKING"
        for stmt in block.body
        for node in ast.walk(stmt)
    }
    out = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("receiver.exporters."):
            out.add(node.module.rsplit(".", 1)[1])
        elif isinstance(node, ast.Import):
            out.update(a.name.rsplit(".", 1)[1] for a in node.names if a.name.startswith("receiver.exporters."))
    return out


def graph() -> dict[str, set[str]]:
    return {p.stem: _runtime_imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


def test_no_module_imports_itself_through_others():
    edges = graph()

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt})):
                return True
        return False

    assert [m for m in edges if reaches(m, m, {m})] == []


def test_shared_pieces_import_only_downward():
    edges = graph()
    assert edges["config"] == set() and edges["errors"] == set() and edges["retry"] == set()
    assert edges["persistent_queue"] == set()
    assert edges["otlp_split"] <= {"errors"}
    assert edges["signal_queue"] == set()
    for module in ("config", "errors", "retry", "persistent_queue", "otlp_split", "signal_queue", "exporter_metrics"):
        assert not edges[module] & {"sending_queue", "otlp_grpc", "otlp_http"}, module


def test_secrets_live_in_the_configuration_package():
    assert not (PACKAGE / "base.py").exists()
    for path in PACKAGE.glob("*.py"):
        text = path.read_text()
        assert "def redact(" not in text and "def secret_fragments(" not in text, path.name
