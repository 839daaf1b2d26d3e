"""Static checks of the shell commands the documents and config headers show: every program is
one we know, and what a command names of this repository is real — `ebpf-receiver` subcommands
and flags (parsed by the agent's own argparse parser), `--config` files, make targets,
`python -m` modules and their flags, repository paths.

Placeholders are allowed where a value is the reader's: an all-caps word (``FILE``) or
``<...>``.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shlex
import shutil
from functools import cache
from pathlib import Path

from build_files import REPO, makefile_targets

# Programs that cannot run here (no engine, no cluster) and are checked for their make targets
# and repository paths only.
STATIC_PROGRAMS = {"make", "docker", "podman", "kubectl"}
# Other programs a document may show: installed system tools.
SYSTEM_PROGRAMS = {"curl", "mount", "ss", "setpriv", "promtool", "bpftool", "sudo", "export"}
# Wrappers whose arguments end with another command.
WRAPPERS = {"setpriv", "sudo", "timeout", "env"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
LOOPBACK = re.compile(r"^https?://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/|$)")


def is_placeholder(word: str) -> bool:
    return bool(re.fullmatch(r"[A-Z][A-Z0-9_]*", word)) or (word.startswith("<") and word.endswith(">"))


def looks_like_a_command(text: str) -> bool:
    """Inline code that is a command (two words or more, starting with a program), rather than
    a name, a flag or a value."""
    try:
        words = shlex.split(text)
    except ValueError:
        return False
    while words and ASSIGNMENT.match(words[0]):
        words = words[1:]
    if len(words) < 2:
        return False
    program = os.path.basename(words[0])
    # Plain `python3 app.py` in prose is an example of a process's command line, not a command
    # of this project; the project's interpreter is .venv/bin/python.
    return (program in STATIC_PROGRAMS | SYSTEM_PROGRAMS or program == "ebpf-receiver"
            or words[0].startswith((".venv/", "./")))


def command_problems(command: str) -> list[str]:
    """What is wrong with one command line (an empty list: nothing)."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError as err:
        return [f"`{command}` does not parse as a shell command: {err}"]
    while words and ASSIGNMENT.match(words[0]):
        words = words[1:]
    if not words:
        return []
    program = words[0]
    name = os.path.basename(program)
    problems: list[str] = []
    if "/" in program and not program.startswith("/") and not (REPO / program).exists():
        problems.append(f"`{program}` does not exist in the repository")
    if name == "export":
        return [f"`export {w}` is not NAME=value" for w in words[1:] if not ASSIGNMENT.match(w)]
    if name in WRAPPERS:
        rest = words[1:]
        while rest and (rest[0].startswith("-") or ASSIGNMENT.match(rest[0]) or rest[0].isdigit()):
            rest = rest[1:]
        if not shutil.which(name):
            problems.append(f"`{name}` is not installed here")
        return problems + (command_problems(shlex.join(rest)) if rest else [])
    if name == "ebpf-receiver":
        problems += _agent_problems(words[1:])
    elif name.startswith("python"):
        problems += _python_problems(words[1:])
    elif name == "make":
        problems += _make_problems(words[1:])
    elif name in STATIC_PROGRAMS:
        pass
    elif name in SYSTEM_PROGRAMS:
        if not shutil.which(name):
            problems.append(f"`{name}` is not installed here")
        if name == "curl":
            urls = [w for w in words[1:] if w.startswith(("http://", "https://"))]
            problems += [f"`{u}`: documents point curl at local servers only" for u in urls if not LOOPBACK.match(u)]
    else:
        problems.append(f"`{program}`: not a program the documents may show (tests/unit/docs/shell_commands.py)")
    problems += _path_problems(words[1:])
    return problems


def _agent_problems(args: list[str]) -> list[str]:
    from receiver.cli import _parser

    out = io.StringIO()
    try:
        with contextlib.redirect_stderr(out), contextlib.redirect_stdout(io.StringIO()):
            parsed = _parser().parse_args(args)
    except SystemExit as err:
        if err.code in (0, None):  # --help, --version
            return []
        return [f"`ebpf-receiver {shlex.join(args)}`: {out.getvalue().strip().splitlines()[-1]}"]
    problems = []
    for path in getattr(parsed, "config", None) or ():
        if not is_placeholder(path) and not (REPO / path).is_file():
            problems.append(f"`--config {path}`: no such file")
    return problems


def _python_problems(args: list[str]) -> list[str]:
    if len(args) >= 2 and args[0] == "-m":
        module = args[1]
        root = REPO / module.replace(".", "/")
        if not (root.is_dir() or root.with_suffix(".py").is_file()):
            return [f"`python -m {module}`: no module {module} in the repository"]
        known = _string_constants(root)
        return [f"`python -m {module} {w}`: {module} has no option {w}"
                for w in args[2:] if w.startswith("--") and w.partition("=")[0] not in known]
    if args and args[0].endswith(".py") and not (REPO / args[0]).is_file():
        return [f"`python {args[0]}`: no such script"]
    return []


def _make_problems(args: list[str]) -> list[str]:
    makefile = REPO / "Makefile"
    rest = list(args)
    if len(rest) >= 2 and rest[0] == "-C":
        makefile = REPO / rest[1] / "Makefile"
        rest = rest[2:]
    if not makefile.is_file():
        return [f"`make`: no {makefile.relative_to(REPO)}"]
    targets = {w for w in rest if not w.startswith("-") and "=" not in w}
    missing = targets - makefile_targets(makefile)
    return [f"`make`: no target {sorted(missing)} in {makefile.relative_to(REPO)}"] if missing else []


def _path_problems(args: list[str]) -> list[str]:
    """Words that name a file of this repository (relative paths) must exist."""
    out = []
    for word in args:
        value = word.partition("=")[2] if (word.startswith("-") or ASSIGNMENT.match(word)) and "=" in word else word
        if "/" not in value or value.startswith(("/", "-", "http", "$", "<", "'", "~")) or ":" in value:
            continue
        if is_placeholder(value) or any(c in value for c in "*?{"):
            continue
        if not (REPO / value).exists():
            out.append(f"`{value}` does not exist in the repository")
    return out


@cache
def _string_constants(root: Path) -> frozenset[str]:
    files = [root.with_suffix(".py")] if root.with_suffix(".py").is_file() else sorted(root.rglob("*.py"))
    out: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out.add(node.value)
    return frozenset(out)
