"""Parsers of the build files the Containerfile, deploy/ and docs/ tests check: the Containerfile
(instructions, stages, continuation lines, exec-form JSON), the build-context ignore file (as
Docker and Buildah read it), Makefile targets and the simple commands of a shell line."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CONTAINERFILE = REPO / "Containerfile"
IGNORE_FILES = (REPO / ".containerignore", REPO / ".dockerignore")


# --- parsing --------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    text: str  # the arguments, continuation lines joined
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of CMD/ENTRYPOINT/RUN/HEALTHCHECK CMD, or None for the shell form."""
        text = self.text
        if self.keyword == "HEALTHCHECK":
            text = re.sub(r"^(--\S+\s+)*CMD\s+", "", text)
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) else None


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def one(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert len(found) == 1, f"stage {self.name}: expected one {keyword}, found {len(found)}"
        return found[0]


@dataclass
class Containerfile:
    global_args: dict[str, str]
    stages: list[Stage]
    header_comment: str

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    @property
    def runtime(self) -> Stage:
        return self.stages[-1]


def parse_containerfile(text: str) -> Containerfile:
    instructions: list[Instruction] = []
    pending, start = "", 0
    header = []
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and not instructions and stripped.startswith("#"):
            header.append(stripped[1:].removeprefix(" "))
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # comments (also inside continued instructions) and blank lines
        if not pending:
            start = number
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        full = (pending + raw).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), rest.strip(), start))
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = ins.text.split()
            base = expand(words[0], global_args)
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(base, name))
        elif not stages:
            if ins.keyword == "ARG":
                key, _, value = ins.text.partition("=")
                global_args[key.strip()] = value.strip()
        else:
            stages[-1].instructions.append(ins)
    return Containerfile(global_args, stages, "\n".join(header))


def expand(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text)


@cache
def containerfile() -> Containerfile:
    return parse_containerfile(CONTAINERFILE.read_text())


def copy_sources_and_dest(ins: Instruction) -> tuple[list[str], str, dict[str, str]]:
    words = ins.exec_form() or shlex.split(ins.text)
    flags = {w[2:].partition("=")[0]: w.partition("=")[2] for w in words if w.startswith("--")}
    paths = [w for w in words if not w.startswith("--")]
    return paths[:-1], paths[-1], flags


def labels(stage: Stage) -> dict[str, str]:
    out: dict[str, str] = {}
    for ins in stage.all("LABEL"):
        for word in shlex.split(ins.text):
            key, _, value = word.partition("=")
            out[key] = value
    return out


def stage_args(stage: Stage) -> dict[str, str]:
    args = {}
    for ins in stage.all("ARG"):
        key, sep, value = ins.text.partition("=")
        args[key.strip()] = value.strip() if sep else containerfile().global_args.get(key.strip(), "")
    return args


# --- build context ------------------------------------------------------------------------


class ContextIgnore:
    """``.containerignore`` / ``.dockerignore`` as Docker and Buildah read them: patterns relative
    to the context root, ``*`` and ``?`` within one path segment, ``**`` across segments, ``!``
    re-includes; the last matching line wins, and a path is ignored when it or a parent matches."""

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
            self.rules.append((negate, re.compile(_pattern_regex(pattern))))

    def ignored(self, relative: str) -> bool:
        parts = relative.split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        ignored = False
        for negate, rx in self.rules:
            if any(rx.fullmatch(candidate) for candidate in candidates):
                ignored = not negate
        return ignored


def _pattern_regex(pattern: str) -> str:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


@cache
def context_files() -> frozenset[str]:
    """Every file (and symlink) the engine sends as build context, relative to the repository."""
    ignore = ContextIgnore(IGNORE_FILES[0].read_text())
    files = set()
    for root, dirs, names in os.walk(REPO):
        rel_root = os.path.relpath(root, REPO)
        rel = (lambda name: name) if rel_root == "." else (lambda name, r=rel_root: f"{r}/{name}")
        dirs[:] = [d for d in dirs if not ignore.ignored(rel(d)) or any(n for n, _ in ignore.rules)]
        for name in names + [d for d in dirs if (Path(root) / d).is_symlink()]:
            if not ignore.ignored(rel(name)):
                files.add(rel(name))
    return frozenset(files)


def copied_files(source: str) -> set[str]:
    source = source.rstrip("/").removeprefix("./")
    return {f for f in context_files() if fnmatch.fnmatchcase(f, source) or f.startswith(source + "/")}


# --- Makefiles and shell ------------------------------------------------------------------


def shell_commands(text: str) -> list[list[str]]:
    """A shell command line → its simple commands' words (split at ``&&``, ``||``, ``;``, ``|``)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token and set(token) <= set("&|;()<>"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def makefile_targets(makefile: Path) -> set[str]:
    targets = set()
    for line in makefile.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.%/$()-][^:=\t#]*?)\s*:(?![=])", line)
        if match:
            targets.update(match.group(1).split())
    return targets


def make_invocations(command: str) -> list[tuple[str, list[str]]]:
    """``make [-C dir] [VAR=value] targets`` in a shell command → [(dir, targets)]."""
    found = []
    for words in shell_commands(command):
        if not words or words[0] != "make":
            continue
        directory, targets, i = ".", [], 1
        while i < len(words):
            word = words[i]
            if word == "-C":
                directory, i = words[i + 1], i + 2
                continue
            if word.startswith("-C"):
                directory = word[2:]
            elif not word.startswith("-") and "=" not in word:
                targets.append(word)
            i += 1
        found.append((directory, targets))
    return found


def apt_packages(stage: Stage) -> set[str]:
    packages = set()
    for ins in stage.all("RUN"):
        for words in shell_commands(ins.text):
            if words[:2] == ["apt-get", "install"] or words[:2] == ["apt", "install"]:
                packages |= {w for w in words[2:] if not w.startswith("-")}
    return packages
