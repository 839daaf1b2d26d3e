"""The import rule of receiver/ (docs/architecture.md, "Import rule"): a package imports only the
packages below it, so data flows one way and no two packages import each other.

Every import is counted, ``TYPE_CHECKING`` ones included: a type-only edge still ties a package
to another's names.  The top-level modules (``config``, ``distribution``, ``pipeline``, ``ready_line``, ``cli``)
compose everything and may import anything; ``receiver/__init__.py`` holds only the version."""

from __future__ import annotations

import ast
from pathlib import Path

import receiver

ROOT = Path(receiver.__file__).parent

# package -> the packages it may import (besides itself and the root's __version__)
ALLOWED: dict[str, set[str]] = {
    "model": set(),
    "configuration": {"model"},
    "component": {"model", "configuration"},
    "bpf": {"model", "configuration"},
    "discovery": {"model", "configuration", "component", "bpf"},
    "capture": {"model", "configuration", "component", "bpf"},
    "connections": {"model", "configuration", "capture"},
    "protocols": {"model", "configuration"},
    "telemetry": {"model", "configuration", "component", "bpf", "capture", "discovery", "protocols"},
    "profiling": {"model", "configuration"},
    "processors": {"model", "configuration", "component", "telemetry"},
    "exporters": {"model", "configuration", "component"},
    "extensions": {"model", "configuration", "component"},
    "receivers": {"model", "configuration", "component", "bpf", "capture", "connections", "discovery",
                  "protocols", "telemetry", "profiling"},
}
TOP_LEVEL = {"config", "distribution", "pipeline", "ready_line", "cli", "__main__"}


def _imported(path: Path) -> set[str]:
    """The receiver packages (or top-level modules) a file imports."""
    module = ".".join(("receiver",) + path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                names = [".".join(base + ([node.module] if node.module else []))]
            elif node.module:
                names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "receiver" and len(parts) > 1:
                out.add(parts[1])
    return out


def package_graph() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> the files that import it."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        package = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for target in _imported(path):
            if target != package:
                graph.setdefault(package, {}).setdefault(target, []).append(str(rel))
    return graph


def test_every_package_is_in_the_rule():
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages - ALLOWED.keys() == set(), "a new package needs its place in ALLOWED (and the docs)"


def test_packages_import_only_what_is_below_them():
    problems = []
    for package, targets in sorted(package_graph().items()):
        if package in TOP_LEVEL or package == "__init__":
            continue
        for target, files in sorted(targets.items()):
            if target == "__init__" or (target not in ALLOWED.get(package, set())):
                if target == "__init__":
                    continue  # receiver/__init__.py: the version only
                problems.append(f"{package} -> {target} ({', '.join(sorted(files))})")
    assert problems == []


def test_no_package_imports_back():
    graph = {p: set(t) - {"__init__"} for p, t in package_graph().items()}

    def reaches(start: str, goal: str, seen: frozenset) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    assert [p for p in graph if reaches(p, p, frozenset({p}))] == []


def test_the_rule_itself_has_no_cycle():
    def reaches(start: str, goal: str, seen: frozenset) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in ALLOWED.get(start, ()))

    assert [p for p in ALLOWED if reaches(p, p, frozenset({p}))] == []
