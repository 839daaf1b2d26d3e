"""The agent in its own pid namespace (a pod with shareProcessNamespace) excludes itself by its
pid as seen there, excludes processes by their pids as seen there, and — with pidns_only —
traces only its namespace."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from receiver.bpf.loader import INIT_PIDNS_INO

from .pidns_agent import exchange

pytestmark = pytest.mark.kernel

AGENT = Path(__file__).with_name("pidns_agent.py")
REPO = Path(__file__).resolve().parents[2]
UNSHARE = shutil.which("unshare")


def run_agent_in_own_pid_namespace(pidns_only: bool) -> dict:
    proc = subprocess.Popen(
        [UNSHARE, "--pid", "--fork", "--mount-proc", sys.executable, str(AGENT), json.dumps({"pidns_only": pidns_only})],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
    # Bytes moved from the initial namespace while the agent captures.
    subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(AGENT.parent)!r}); "
         "from pidns_agent import exchange; exchange(b'outer-child')"],
        check=True, timeout=30,
    )
    out, err = proc.communicate("go\n", timeout=60)
    assert proc.returncode == 0, err
    return json.loads(out.splitlines()[-1])


@pytest.mark.skipif(UNSHARE is None, reason="needs unshare(1) (util-linux)")
def test_agent_in_its_own_pid_namespace_excludes_itself_and_its_exclusions() -> None:
    report = run_agent_in_own_pid_namespace(pidns_only=False)
    assert report["pid"] == 1  # its own namespace: its pid there is not the kernel's tgid
    assert report["pidns"][1] not in (0, INIT_PIDNS_INO)
    assert report["seen"] == ["inner-child", "outer-child"]  # not inner-agent, not inner-excluded


@pytest.mark.skipif(UNSHARE is None, reason="needs unshare(1) (util-linux)")
def test_pidns_only_traces_only_the_agents_namespace() -> None:
    report = run_agent_in_own_pid_namespace(pidns_only=True)
    assert report["seen"] == ["inner-child"]


def test_exchange_helper_moves_the_marker() -> None:
    exchange(b"self-test")  # the helper the children run (this process is not traced here)
