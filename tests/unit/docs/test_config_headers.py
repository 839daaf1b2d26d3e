"""The commands in the header comments of config/*.yaml work as written, in a checkout: each one
names real subcommands, flags and files, and each `ebpf-receiver run` runs with --dry-run (the
configuration loads, with the environment the header exports; no kernel, no ports) — from the
repository root, without the venv on PATH, as a user who copied it would run it."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from build_files import REPO
from shell_commands import ASSIGNMENT, command_problems

EXAMPLES = sorted((REPO / "config").glob("*.yaml"))
# An indented header line is a command when it starts (after VAR=value words) with one of these.
COMMAND_START = re.compile(r"^(export\s|make\s|\S*ebpf-rec\S*|\.venv/|\./|docker\s|kubectl\s|curl\s)")


def header_commands(path: Path) -> list[tuple[int, str]]:
    """(line, command) of the commands in the comment block at the top of a config file."""
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.startswith("#"):
            break
        if not line.startswith("#  "):
            continue  # prose; commands are indented
        text = line[1:].strip()
        words = text.split()
        while words and ASSIGNMENT.match(words[0]):
            words = words[1:]
        if words and COMMAND_START.match(" ".join(words)):
            out.append((number, text))
    return out


def path_without_the_venv() -> str:
    venv_bin = str(REPO / ".venv" / "bin")
    return os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_header_commands_are_real(path):
    commands = header_commands(path)
    assert commands or path.name == "default.yaml", f"{path.name}: the header shows no command to run it"
    for number, command in commands:
        assert command_problems(command) == [], f"config/{path.name}:{number}: `{command}`"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_header_run_commands_load_their_configuration(path):
    exported: dict[str, str] = {}
    runs = 0
    for number, command in header_commands(path):
        words = shlex.split(command, comments=True)
        if words[0] == "export":
            exported.update(w.split("=", 1) for w in words[1:])
            continue
        env_words = []
        while words and ASSIGNMENT.match(words[0]):
            env_words.append(words.pop(0))
        if not (words[0].endswith("ebpf-receiver") and len(words) > 1 and words[1] == "run"):
            continue
        runs += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VENDOR_", "OTLP_"))}
        env.update(exported)
        env.update(w.split("=", 1) for w in env_words)
        env["PATH"] = path_without_the_venv()
        result = subprocess.run(["bash", "-c", shlex.join(words) + " --dry-run"], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"config/{path.name}:{number}: `{command}` failed:\n{result.stderr}"
        assert '"pipelines"' in result.stdout
    assert runs, f"{path.name}: no `ebpf-receiver run` command in the header"


def test_the_commands_a_new_user_copied_are_caught(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("# ebpf-receiver, sending to a collector.\n#\n#   ebpf-receiver --config config/local-collector.yaml\n\n"
                   "receivers: {}\n")
    ((number, command),) = header_commands(old)
    assert number == 3 and command_problems(command)
