"""The documents whose commands, snippets and samples the docs tests check, and their parser.

Every fenced ``sh`` (and ``yaml``) block of a hand-written document carries a marker on the line
before it, an HTML comment that renders as nothing::

    <!-- doc-test: run; exit=2; output -->    run it; expect the exit code; the next block is its output
    <!-- doc-test: run; kernel -->            run it as root only (it loads BPF); skipped otherwise
    <!-- doc-test: run; contains=X; absent=Y -->
    <!-- doc-test: dry-run -->                an `ebpf-receiver run` command: run with --dry-run
                                              (the configuration is loaded and checked, the kernel
                                              and the ports are not touched)
    <!-- doc-test: same-as=Containerfile -->  the command is written, identically, in that file
    <!-- doc-test: static -->                 cannot run here (docker, kubectl, make image...):
                                              its make targets and repository paths must exist
    <!-- doc-test: config; files=/a,/b -->    an agent config snippet: validates on top of
                                              config/default.yaml (listed files are stand-ins)
    <!-- doc-test: check-output -->           example `ebpf-receiver check` output: same lines
    <!-- doc-test: check-table -->            (before a table) one row per `check` line
    <!-- doc-test: message=a.py,b.py -->      messages quoted from those modules (``<...>`` = a value)
    <!-- doc-test: ready-line=FILE -->         the line `run` logs once up with that configuration
                                              (``<version>``, ``<pid>`` stand for any value)
    <!-- doc-test: sample=NAME -->            output of the real agent, compared with what it prints
                                              by the end-to-end test named in SAMPLE_CHECKERS

Whatever the marker, every shell command in these documents — in blocks, and in inline code
that starts with a program — must name a real program, subcommand, flag, make target and file
(``shell_commands.py``).  Generated documents (``GENERATED``) carry no markers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from build_files import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "deploy" / "README.md"]
# Written by programs (scripts/gen_config_docs.py, python -m bench): no markers, but their
# commands are still checked.
GENERATED = {REPO / "docs" / "configuration.md", REPO / "docs" / "performance.md"}
SHELL_LANGS = {"sh", "bash", "shell", "console"}
MARKER = re.compile(r"^\s*<!--\s*doc-test:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
# sample name -> the end-to-end test that runs the agent and compares its output with the sample
SAMPLE_CHECKERS = {
    "ready": "tests/e2e/test_first_hour.py",
    "spans": "tests/e2e/test_first_hour.py",
    "metrics": "tests/e2e/test_first_hour.py",
    "port-in-use": "tests/e2e/test_cli_lifecycle.py",
}


@dataclass
class Block:
    doc: Path
    line: int
    lang: str
    text: str
    mode: str = ""
    options: dict[str, str] = field(default_factory=dict)
    next: Block | None = field(default=None, repr=False)  # the block after this one (its output)

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"

    @property
    def mode_name(self) -> str:
        return self.mode.split("=")[0]

    @property
    def mode_value(self) -> str:
        return self.mode.partition("=")[2]

    def commands(self) -> list[str]:
        """Shell lines, continuation lines joined, comments and blank lines dropped."""
        joined = re.sub(r"\\\n\s*", " ", self.text)
        return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def parse_marker(text: str) -> tuple[str, dict[str, str]]:
    parts = [p.strip() for p in text.split(";") if p.strip()]
    mode, options = parts[0], {}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        options[key.strip()] = value.strip() if sep else "yes"
    return mode, options


def parse_doc(doc: Path) -> tuple[list[Block], list[tuple[int, str]], list[tuple[int, str]]]:
    """(fenced blocks, markers that precede something else than a block: (line, marker),
    inline code outside blocks: (line, code))."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    loose: list[tuple[int, str]] = []
    inline: list[tuple[int, str]] = []
    marker: tuple[int, str] | None = None
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        found = MARKER.match(lines[i])
        if found:
            marker = (i + 1, found.group(1))
        elif fence:
            indent, lang = fence.groups()
            body = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
                i += 1
            block = Block(doc, i - len(body), lang, "\n".join(body) + "\n")
            if marker:
                block.mode, block.options = parse_marker(marker[1])
                marker = None
            if blocks:
                blocks[-1].next = block
            blocks.append(block)
        else:
            if lines[i].strip() and marker:
                loose.append(marker)
                marker = None
            inline.extend((i + 1, code) for code in INLINE_CODE.findall(lines[i]))
        i += 1
    return blocks, loose, inline


def all_blocks() -> list[Block]:
    return [block for doc in DOCS for block in parse_doc(doc)[0]]


def blocks_with(mode_name: str) -> list[Block]:
    return [b for b in all_blocks() if b.mode_name == mode_name]


def sample_block(name: str) -> Block:
    """The one ``sample=name`` block (the end-to-end tests compare it with the agent's output)."""
    found = [b for b in blocks_with("sample") if b.mode_value == name]
    assert len(found) == 1, f"expected one <!-- doc-test: sample={name} --> block, found {len(found)}"
    return found[0]
