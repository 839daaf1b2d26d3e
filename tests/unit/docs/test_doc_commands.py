"""What README.md, docs/ and deploy/README.md show stays true: commands, snippets, samples,
messages, links.  The markers and what each one checks: doc_blocks.py.

Commands run with the venv's ``bin`` first on PATH, from the repository root.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from build_files import REPO, makefile_targets
from doc_blocks import (
    DOCS,
    GENERATED,
    MARKER,
    SAMPLE_CHECKERS,
    SHELL_LANGS,
    Block,
    all_blocks,
    blocks_with,
    parse_doc,
    parse_marker,
)
from shell_commands import STATIC_PROGRAMS, command_problems, looks_like_a_command


def block_params(mode_name: str):
    return pytest.mark.parametrize("block", blocks_with(mode_name), ids=lambda b: b.id)


# --- running commands -----------------------------------------------------------------------


def clean_environment() -> dict[str, str]:
    """os.environ with the venv first on PATH, minus the variables the example configs read
    (so `validate --config config/vendor.yaml` fails the same way everywhere)."""
    env = dict(os.environ)
    for example in (REPO / "config").glob("*.yaml"):
        for name in re.findall(r"\$\{env:(\w+)", example.read_text()):
            env.pop(name, None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@cache
def run_command(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command], cwd=REPO, env=clean_environment(), capture_output=True, text=True, timeout=120
    )


def needs_root(block: Block) -> None:
    if "kernel" in block.options and os.geteuid() != 0:
        pytest.skip("loads BPF into the kernel: run as root (make test / make docs-check)")


def check_names(output: str) -> list[str]:
    """The first column of an `ebpf-receiver check` table."""
    lines = output.strip().splitlines()
    column = lines[0].index("status")
    return [line[:column].strip() for line in lines[1:] if not line.startswith("result:")]


# --- the tests ------------------------------------------------------------------------------


def test_docs_exist():
    for doc in DOCS:
        assert doc.is_file(), doc
    assert {d.name for d in DOCS} >= {"README.md", "security.md", "telemetry.md", "troubleshooting.md", "howto.md"}


KNOWN_MODES = {"run", "dry-run", "static", "same-as", "config", "check-output", "check-table", "message",
               "ready-line", "sample"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(REPO)))
def test_every_shell_and_yaml_block_is_checked(doc):
    blocks, loose, _ = parse_doc(doc)
    assert not loose or all(m.startswith("check-table") for _, m in loose), f"markers before no block: {loose}"
    for block in blocks:
        assert not block.mode or block.mode_name in KNOWN_MODES, f"{block.id}: unknown marker {block.mode!r}"
        if doc in GENERATED:
            continue
        if block.lang in SHELL_LANGS:
            assert block.mode_name in {"run", "dry-run", "static", "same-as"}, (
                f"{block.id}: a shell block needs <!-- doc-test: run | dry-run | static | same-as=FILE -->"
            )
        if block.lang == "yaml":
            assert block.mode == "config", f"{block.id}: a yaml block needs <!-- doc-test: config -->"


def every_command() -> list[tuple[str, str]]:
    """(where, command) of every shell command in the documents: in shell blocks, and in inline
    code that starts with a program."""
    out = []
    for doc in DOCS:
        blocks, _, inline = parse_doc(doc)
        for block in blocks:
            if block.lang in SHELL_LANGS:
                out += [(block.id, command) for command in block.commands()]
        out += [(f"{doc.relative_to(REPO)}:{line}", code) for line, code in inline if looks_like_a_command(code)]
    return out


@pytest.mark.parametrize("where,command", every_command(), ids=[w for w, _ in every_command()])
def test_every_command_names_real_programs_subcommands_flags_and_files(where, command):
    assert command_problems(command) == [], f"{where}: `{command}`"


def test_the_command_check_catches_what_users_found():
    # The header commands a new user copied: no subcommand, a file that does not exist, a flag
    # the agent does not have, a make target that is gone.
    assert command_problems("ebpf-receiver --config config/local-collector.yaml")
    assert command_problems(".venv/bin/ebpf-receiver run --config config/no-such.yaml")
    assert command_problems(".venv/bin/ebpf-receiver run --configs config/default.yaml")
    assert command_problems("make deploy")
    assert command_problems(".venv/bin/python -m bench --fastest")
    assert command_problems("ebpf-reciever run")
    assert command_problems(".venv/bin/ebpf-receiver run --config config/local-collector.yaml") == []
    assert command_problems("ebpf-receiver validate --config FILE") == []  # the reader's file
    assert looks_like_a_command("make run CONFIG=config/local-collector.yaml")
    assert not looks_like_a_command("--config") and not looks_like_a_command("ebpf-receiver")


@block_params("dry-run")
def test_dry_run_blocks(block):
    for command in block.commands():
        words = shlex.split(command, comments=True)
        assert words[0].endswith("ebpf-receiver") and words[1] == "run", f"{block.id}: not an `ebpf-receiver run`"
        result = run_command(command + " --dry-run")
        assert result.returncode == 0, f"{block.id}: `{command} --dry-run` exited {result.returncode}:\n{result.stderr}"


def test_every_sample_is_compared_with_the_real_agent_by_an_end_to_end_test():
    samples = blocks_with("sample")
    assert sorted(b.mode_value for b in samples) == sorted(SAMPLE_CHECKERS)
    for block in samples:
        checker = REPO / SAMPLE_CHECKERS[block.mode_value]
        assert f'sample_block("{block.mode_value}")' in checker.read_text(), f"{block.id}: {checker} does not check it"




@block_params("run")
def test_run_blocks(block):
    needs_root(block)
    expected_exit = int(block.options.get("exit", "0"))
    outputs = []
    for command in block.commands():
        result = run_command(command)
        output = result.stdout + result.stderr
        assert result.returncode == expected_exit, f"{block.id}: `{command}` exited {result.returncode}:\n{output}"
        if "contains" in block.options:
            assert block.options["contains"] in output, f"{block.id}: `{command}` printed:\n{output}"
        if "absent" in block.options:
            assert block.options["absent"] not in output, f"{block.id}: `{command}` printed:\n{output}"
        outputs.append(output.strip())
    if "output" in block.options:
        assert block.next is not None and block.next.lang in ("text", ""), f"{block.id}: no output block follows"
        assert "\n".join(outputs) == block.next.text.strip(), f"{block.next.id} is not what the command prints"


def normalized(text: str) -> str:
    text = re.sub(r"^\s*#\s?", "", text, flags=re.M)  # comment prefixes (Containerfile header)
    text = re.sub(r"\\\n", " ", text)
    return " ".join(text.split())


@block_params("same-as")
def test_same_as_blocks(block):
    target = REPO / block.mode.partition("=")[2]
    source = normalized(target.read_text())
    for command in block.commands():
        assert normalized(command) in source, f"{block.id}: `{command}` is not written in {target.relative_to(REPO)}"


@block_params("static")
def test_static_blocks(block):
    for command in block.commands():
        words = shlex.split(command, comments=True)
        assert words[0] in STATIC_PROGRAMS, f"{block.id}: `{words[0]}` can run here: tag the block `run`"
        if words[0] == "make":
            missing = {w for w in words[1:] if not w.startswith("-") and "=" not in w} - makefile_targets(REPO / "Makefile")
            assert not missing, f"{block.id}: no make target {sorted(missing)}"
        for word in words[1:]:
            if "/" in word and not word.startswith(("/", "-", "http")) and ":" not in word:
                assert (REPO / word).exists(), f"{block.id}: {word} does not exist"


@block_params("config")
def test_config_blocks(block, tmp_path, validate_config):
    text = block.text
    for number, stand_in in enumerate(filter(None, block.options.get("files", "").split(","))):
        local = tmp_path / f"file-{number}{Path(stand_in).suffix}"
        local.write_text("")
        text = text.replace(stand_in, str(local))
    base = REPO / block.options.get("base", "config/default.yaml")
    validate_config(base, text, what=block.id)


@cache
def real_check_output() -> str:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ebpf-receiver")), "check"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    return result.stdout


@block_params("check-output")
def test_check_output_example_has_the_lines_check_prints(block):
    assert check_names(block.text) == check_names(real_check_output())
    assert block.text.strip().splitlines()[-1].startswith("result: ")


def test_check_table_explains_every_line():
    rows = []
    for doc in DOCS:
        lines = doc.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if MARKER.match(line) and parse_marker(MARKER.match(line).group(1))[0] == "check-table":
                for row in lines[number + 3:]:
                    if not row.startswith("|"):
                        break
                    rows.append(re.match(r"\|\s*`([^`]+)`", row).group(1))
    assert rows == check_names(real_check_output())


def string_constants(module: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.add(node.value)
    # errno_text() formats "(errno N: <strerror>)".
    for number in range(1, 134):
        out |= {os.strerror(number), f"{number}: {os.strerror(number)})"}
    return out


def covered(fragment: str, constants: set[str], minimum: int = 5) -> bool:
    """Can ``fragment`` be cut into pieces of at least ``minimum`` characters (the last may be
    shorter), each found verbatim in one of ``constants``?"""
    position = 0
    while position < len(fragment):
        rest = fragment[position:]
        length = max((n for n in range(len(rest), 0, -1) if any(rest[:n] in c for c in constants)), default=0)
        if length == 0 or (length < minimum and length < len(rest)):
            return False
        position += length
    return True


@block_params("message")
def test_quoted_messages_are_the_code_s(block):
    constants = set().union(*(string_constants(REPO / m) for m in block.mode.partition("=")[2].split(",")))
    for line in block.text.splitlines():
        if not line.strip() or line.startswith((" ", "\t")):
            continue  # indented lines are excerpts of libbpf's or the kernel's own log
        for fragment in re.split(r"<[^<>]*>", line):
            assert covered(fragment, constants), f"{block.id}: {fragment!r} is not a message of {block.mode}"


def test_message_coverage_rejects_invented_text():
    constants = {"tracefs is not mounted and mounting it failed (", "); run as root: "}
    assert covered("tracefs is not mounted and mounting it failed (", constants)
    assert not covered("tracefs could not be found; please reboot", constants)


def github_anchor(heading: str) -> str:
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    return {github_anchor(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", doc.read_text(encoding="utf-8"), re.M)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(REPO)))
def test_links_resolve(doc):
    text = doc.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        assert linked.exists(), f"{doc.name}: link to missing {target}"
        if anchor:
            assert anchor in anchors(linked), f"{doc.name}: no heading #{anchor} in {linked.name}"


def test_metric_names_exist_in_the_code():
    sources = "\n".join(p.read_text() for p in (REPO / "receiver").rglob("*.py"))
    for doc in DOCS + [REPO / "deploy" / "kubernetes" / "daemonset.yaml"]:
        for name in set(re.findall(r"\bebpf_receiver_[a-z_]+", doc.read_text(encoding="utf-8"))):
            if name.endswith("_") or list(REPO.glob(f"plugins/*/{name}")):  # a family (kernel_events_*), a package
                continue
            base = name.removesuffix("_total").removeprefix("ebpf_receiver_")
            assert f'"ebpf_receiver_{base}"' in sources or f'_PREFIX + "{base}"' in sources, f"{doc.name}: {name}"


@block_params("ready-line")
def test_ready_line_blocks(block):
    """The quoted ready line is what `run` logs with that configuration (built, not started:
    ports are the configured ones)."""
    from receiver.config import load_config
    from receiver.pipeline import Agent
    from receiver.ready_line import ready_line

    config = load_config([str(REPO / block.mode_value)], {})
    agent = Agent(config)
    try:
        assert block.text.strip() == ready_line(agent, "<version>", "<pid>"), f"{block.id}"
    finally:
        agent.shutdown(timeout=1.0)
