"""The Containerfile against the repository, without a container engine.

The file is parsed (instructions, stages, continuation lines, exec-form JSON) and every
reference it makes is checked: COPY sources are in the build context (``.containerignore``
honoured) and bring along what their symlinks point to, every ``make`` target exists, the
runtime stage installs no compiler, the command runs the configuration that is copied, the
HEALTHCHECK probes that configuration's health_check endpoint, and that configuration validates.
"""

from __future__ import annotations

import dataclasses

import os
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from build_files import (
    IGNORE_FILES,
    REPO,
    ContextIgnore,
    apt_packages,
    containerfile,
    context_files,
    copied_files,
    copy_sources_and_dest,
    expand,
    labels,
    make_invocations,
    makefile_targets,
    stage_args,
)
from receiver.bpf.privileges import REQUIRED
from receiver.config import load_config

COMPILERS = re.compile(r"^(clang|gcc|g\+\+|cpp|cc|llvm|lld|make|build-essential|bpftool|python3-dev)([-.0-9].*)?$|-dev$")


# --- the tests ------------------------------------------------------------------------------


def test_containerignore_and_dockerignore_are_identical():
    # Podman/Buildah read .containerignore, Docker reads .dockerignore: one content for both.
    assert IGNORE_FILES[0].read_text() == IGNORE_FILES[1].read_text()


def test_ignore_matcher_follows_docker_semantics():
    ignore = ContextIgnore("build\n**/__pycache__\nreceiver/bpf/objects/*.o\ndocs\n!docs/keep.md\n")
    assert ignore.ignored("build") and ignore.ignored("build/lib/x.py")
    assert not ignore.ignored("receiver/build.py")  # a plain pattern is anchored at the root
    assert ignore.ignored("__pycache__/a.pyc") and ignore.ignored("receiver/bpf/__pycache__/a.pyc")
    assert ignore.ignored("receiver/bpf/objects/receiver.bpf.o")
    assert not ignore.ignored("receiver/bpf/objects/README")
    assert ignore.ignored("docs/a.md") and not ignore.ignored("docs/keep.md")


def test_the_context_leaves_out_what_the_host_built():
    # The image compiles its own BPF object and wheel; host builds, venvs and VCS data stay out.
    context = context_files()
    for prefix in (".git/", ".venv/", "dist/", "build/"):
        assert not any(f.startswith(prefix) for f in context), prefix
    assert not any(f.startswith("receiver/bpf/objects/") and f.endswith(".o") for f in context)
    assert not any("/__pycache__/" in f or f.endswith(".pyc") for f in context)


def test_every_copy_source_is_in_the_build_context():
    for stage in containerfile().stages:
        for ins in stage.all("COPY") + stage.all("ADD"):
            sources, _, flags = copy_sources_and_dest(ins)
            if "from" in flags:
                assert flags["from"] in {s.name for s in containerfile().stages}, f"line {ins.line}"
                continue
            for source in sources:
                assert (REPO / source).exists(), f"Containerfile:{ins.line}: {source} does not exist"
                assert copied_files(source), f"Containerfile:{ins.line}: {source} is excluded by .containerignore"


def test_symlinks_in_copied_trees_point_at_copied_files():
    # receiver/defaults/default.yaml -> config/default.yaml and the ABI header link: their
    # targets must be copied into the same stage, or the wheel is built from dangling links.
    for stage in containerfile().stages:
        copied: set[str] = set()
        for ins in stage.all("COPY"):
            sources, _, flags = copy_sources_and_dest(ins)
            if "from" not in flags:
                for source in sources:
                    copied |= copied_files(source)
        for path in sorted(copied):
            if (REPO / path).is_symlink():
                target = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(REPO / path)))
                assert target in copied, f"stage {stage.name}: {path} -> {target}, which is not copied"


def test_what_the_wheel_is_built_from_is_copied():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    builder = containerfile().stage("builder")
    copied = set()
    for ins in builder.all("COPY"):
        sources, _, _ = copy_sources_and_dest(ins)
        for source in sources:
            copied |= copied_files(source)
    for needed in ("pyproject.toml", project["readme"], "Makefile", "bpf/Makefile", "scripts/install-deps.sh"):
        assert needed in copied, needed
    assert any(f.startswith("bpf/src/") and f.endswith(".bpf.c") for f in copied)
    assert "receiver/__init__.py" in copied


def test_every_make_target_it_runs_exists():
    calls = [(ins, d, t) for s in containerfile().stages for ins in s.all("RUN") for d, t in make_invocations(ins.text)]
    assert calls
    for ins, directory, targets in calls:
        makefile = REPO / directory / "Makefile"
        assert makefile.is_file(), f"Containerfile:{ins.line}: no {makefile}"
        missing = set(targets) - makefile_targets(makefile)
        assert not missing, f"Containerfile:{ins.line}: make targets {sorted(missing)} not in {makefile}"


def test_the_builder_runs_the_readme_make_targets():
    # One set of targets for the README and the image: deps (packages), bpf (object), wheel.
    targets = {t for ins in containerfile().stage("builder").all("RUN") for _, ts in make_invocations(ins.text) for t in ts}
    assert {"deps", "bpf", "wheel"} <= targets
    readme = (REPO / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^run: .*\bdeps\b.*\bbpf\b", makefile, re.M), "make run no longer uses deps/bpf"
    assert re.search(r"^wheel: .*\bbpf\b", makefile, re.M)


def test_runtime_stage_installs_no_compiler():
    runtime = containerfile().runtime
    packages = apt_packages(runtime)
    assert packages == {"python3", "libbpf1"}, packages
    assert not {p for p in packages if COMPILERS.search(p)}
    for ins in runtime.all("RUN"):
        assert "make " not in ins.text and "pip install" not in ins.text, f"Containerfile:{ins.line}"
    # From the builder, only the installed environment crosses over (not /usr, not the toolchain).
    for ins in runtime.all("COPY"):
        sources, dest, flags = copy_sources_and_dest(ins)
        if "from" in flags:
            assert sources == ["/opt/ebpf-receiver"] and dest == "/opt/ebpf-receiver", f"Containerfile:{ins.line}"


def test_builder_installs_the_build_tools_through_make_deps():
    script = (REPO / "scripts" / "install-deps.sh").read_text()
    run_packages = set(re.search(r"run_pkgs=\(([^)]*)\)", script).group(1).split())
    assert {"clang", "llvm", "libbpf-dev", "bpftool", "make", "python3-venv"} <= run_packages


def test_both_stages_use_one_debian_release():
    # The venv built in the builder runs on the runtime's /usr/bin/python3: same release.
    cf = containerfile()
    release = cf.global_args["DEBIAN_RELEASE"]
    assert cf.stage("builder").base == f"debian:{release}"
    assert cf.runtime.base == f"debian:{release}-slim"


def runtime_command() -> list[str]:
    runtime = containerfile().runtime
    entrypoint = runtime.one("ENTRYPOINT").exec_form()
    cmd = runtime.one("CMD").exec_form()
    assert entrypoint is not None and cmd is not None, "ENTRYPOINT and CMD must use the exec (JSON) form"
    return entrypoint + cmd


def copied_config() -> tuple[Path, str]:
    """(the repository file copied to the --config path, that path in the image)."""
    command = runtime_command()
    config_path = command[command.index("--config") + 1]
    for ins in containerfile().runtime.all("COPY"):
        sources, dest, flags = copy_sources_and_dest(ins)
        if "from" not in flags and dest == config_path:
            assert len(sources) == 1
            return REPO / sources[0], config_path
    pytest.fail(f"nothing is copied to {config_path}, the path the image runs with")


def test_the_image_runs_the_agent_with_the_copied_config():
    assert runtime_command()[:2] == ["ebpf-receiver", "run"]
    source, path = copied_config()
    assert path == "/etc/ebpf-receiver/config.yaml"
    assert source == REPO / "deploy" / "config" / "container.yaml"


def test_the_copied_config_validates(validate_config):
    source, _ = copied_config()
    validate_config(source)


def endpoint_port(endpoint: str) -> int:
    return int(endpoint.rpartition(":")[2])


def test_healthcheck_probes_the_health_check_extension():
    source, _ = copied_config()
    config = load_config([str(source)], {})
    assert "health_check" in config.service.extensions, "the HEALTHCHECK needs the health_check extension started"
    health = config.extensions["health_check"]
    check = containerfile().runtime.one("HEALTHCHECK")
    command = check.exec_form()
    assert command and command[0] == "python3", "curl is not in the image: probe with python3"
    url = re.search(r"http://([^:/'\"]+):(\d+)(/[^'\"]*)?", " ".join(command))
    assert url, check.text
    assert int(url.group(2)) == endpoint_port(health.endpoint)
    assert (url.group(3) or "/") == health.path
    assert url.group(1) in ("127.0.0.1", "localhost") and health.endpoint.startswith(("0.0.0.0:", "127.0.0.1:", ":"))


def test_exposed_ports_are_the_configured_ones():
    source, _ = copied_config()
    config = load_config([str(source)], {})
    exposed = {int(p.split("/")[0]) for ins in containerfile().runtime.all("EXPOSE") for p in ins.text.split()}
    assert exposed == {
        endpoint_port(config.exporters["prometheus"].endpoint),
        endpoint_port(config.extensions["health_check"].endpoint),
    }


def test_container_config_is_the_default_with_container_endpoints():
    source, _ = copied_config()
    container = load_config([str(source)], {})
    default = load_config([str(REPO / "config" / "default.yaml")], {})
    assert container.exporters["prometheus"].endpoint == "0.0.0.0:9464"
    assert container.extensions["health_check"].endpoint == "0.0.0.0:13133"
    assert set(container.service.pipelines) == set(default.service.pipelines)
    # default.yaml prints every span (the first minute on a console); the image one line a batch.
    assert container.exporters["debug"] == dataclasses.replace(default.exporters["debug"], verbosity="basic")
    assert container.processors == default.processors


def test_oci_labels():
    runtime = containerfile().runtime
    found = labels(runtime)
    args = stage_args(runtime)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for key in ("title", "description", "version", "revision", "licenses", "base.name"):
        assert f"org.opencontainers.image.{key}" in found, key
    assert expand(found["org.opencontainers.image.version"], args) == project["version"]
    assert found["org.opencontainers.image.licenses"] == project["license"]["text"]
    assert found["org.opencontainers.image.title"] == project["name"]
    assert expand(found["org.opencontainers.image.base.name"], args).endswith(containerfile().runtime.base)


def documented_run_line() -> str:
    header = containerfile().header_comment
    match = re.search(r"^\s*(docker run .*?)(?:\n\s*\n|\n[^ \n])", header, re.S | re.M)
    assert match, "the header comment must show the docker run line"
    return " ".join(match.group(1).replace("\\\n", " ").split())


def test_the_documented_run_line_grants_capabilities_not_privileged():
    line = documented_run_line()
    words = shlex.split(line)
    assert "--privileged" not in words
    assert "--pid=host" in words
    assert "--cap-drop=ALL" in words
    added = {w.removeprefix("--cap-add=") for w in words if w.startswith("--cap-add=")}
    assert added == {name.removeprefix("CAP_") for name in REQUIRED}  # exactly the documented set
    mounts = {w for i, w in enumerate(words) if i and words[i - 1] == "-v"}
    assert {"/sys/kernel/tracing:/sys/kernel/tracing:ro", "/sys/kernel/btf:/sys/kernel/btf:ro"} <= mounts
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert words[-1] == f"{project['name']}:{project['version']}"


def test_the_documented_run_line_publishes_the_configured_metrics_port_on_loopback():
    words = shlex.split(documented_run_line())
    published = [w for i, w in enumerate(words) if i and words[i - 1] == "-p"]
    source, _ = copied_config()
    port = endpoint_port(load_config([str(source)], {}).exporters["prometheus"].endpoint)
    assert published == [f"127.0.0.1:{port}:{port}"]
