"""Least privilege, proven: the agent traces as ``nobody`` holding exactly the capabilities
docs/security.md documents (CAP_BPF, CAP_PERFMON, CAP_DAC_READ_SEARCH; CAP_NET_ADMIN for tc),
and without any one of them ``run`` exits 2 with one line naming it, and ``check`` names it.

Privileges are dropped with setpriv (util-linux): uid/gid 65534, no supplementary groups, and the
same set as bounding, inheritable and ambient capabilities — nothing else survives the exec.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.agent import AgentProcess, agent_command
from tests.support.ports import wait_until
from tests.support.rotel import RotelCollector
from tests.support.servers import NginxServer

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

DOCUMENTED = ("bpf", "perfmon", "dac_read_search")
CAP_BITS = {"bpf": 39, "perfmon": 38, "dac_read_search": 2, "net_admin": 12}
N_REQUESTS = 5


def as_nobody(caps: tuple[str, ...]) -> tuple[str, ...]:
    """The setpriv prefix running a command as nobody with exactly ``caps``."""
    wanted = "".join(f",+{c}" for c in caps)
    return (
        "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
        f"--inh-caps=-all{wanted}", f"--ambient-caps=-all{wanted}", f"--bounding-set=-all{wanted}",
    )


def capabilities_of(pid: int) -> tuple[int, int]:
    """(effective uid, effective capability set) of a process."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    uid = int(next(line for line in status if line.startswith("Uid:")).split()[2])
    eff = int(next(line for line in status if line.startswith("CapEff:")).split()[1], 16)
    return uid, eff


def debug_only_config() -> str:
    return """
receivers:
  ebpf:
    poll_interval: 20ms
exporters:
  debug:
    verbosity: basic
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    traces: {receivers: [ebpf], exporters: [debug]}
"""


def traces_config(otlp_endpoint: str) -> str:
    return f"""
receivers:
  ebpf:
    poll_interval: 20ms
processors:
  batch:
    timeout: 100ms
exporters:
  otlp:
    endpoint: {otlp_endpoint}
    tls: {{insecure: true}}
    retry_on_failure: {{initial_interval: 100ms, max_interval: 1s}}
service:
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    traces:
      receivers: [ebpf]
      processors: [batch]
      exporters: [otlp]
"""


def test_nobody_with_the_documented_capabilities_traces_http(tmp_path):
    with RotelCollector(tmp_path) as collector, NginxServer(tmp_path) as nginx:
        agent = AgentProcess(tmp_path, traces_config(collector.grpc_endpoint), prefix=as_nobody(DOCUMENTED)).start()
        try:
            uid, eff = capabilities_of(agent.pid)
            assert uid == 65534
            assert eff == sum(1 << CAP_BITS[c] for c in DOCUMENTED), hex(eff)
            urls = [f"{nginx.url}/index.html"] * N_REQUESTS
            subprocess.run(["curl", "-s", *[a for u in urls for a in ("-o", "/dev/null", u)]], check=True, timeout=20)

            def server_spans():
                return [s for s in collector.spans()
                        if s.kind == "SPAN_KIND_SERVER" and s.attributes.get("server.port") == nginx.port]

            spans = wait_until(lambda: len(server_spans()) >= N_REQUESTS and server_spans(), timeout=20,
                               what="nginx spans from an agent running as nobody")
            assert len(spans) == N_REQUESTS
            assert all(s.attributes["http.response.status_code"] == 200 for s in spans)
            assert {s.resource["process.pid"] for s in spans} <= set(nginx.pids())
        finally:
            assert agent.stop() == 0, agent.stderr()


@pytest.fixture
def public_dir():
    """A directory nobody can read without CAP_DAC_READ_SEARCH (pytest's tmp_path is 0700, root's)."""
    with tempfile.TemporaryDirectory(prefix="erx-least-privilege-") as path:
        os.chmod(path, 0o755)
        yield Path(path)


@pytest.mark.parametrize("lacking", DOCUMENTED)
def test_run_without_a_documented_capability_exits_2_naming_it(public_dir, lacking):
    caps = tuple(c for c in DOCUMENTED if c != lacking)
    config = public_dir / "agent.yaml"
    config.write_text(debug_only_config())
    done = subprocess.run(
        [*as_nobody(caps), *agent_command(), "run", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )
    name = f"CAP_{lacking.upper()}"
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("ebpf-receiver: ") and f"missing capability {name}" in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("lacking", DOCUMENTED)
def test_check_without_a_documented_capability_names_it(lacking):
    caps = tuple(c for c in DOCUMENTED if c != lacking)
    done = subprocess.run([*as_nobody(caps), *agent_command(), "check"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    name = f"CAP_{lacking.upper()}"
    failed = [line for line in done.stdout.splitlines() if "  FAIL  " in line]
    assert failed and all(f"missing capability {name}" in line for line in failed), done.stdout
    assert "is not mounted" not in done.stdout  # tracefs is mounted: never claim otherwise
    assert done.stdout.splitlines()[-1] == "result: the agent cannot run here"


def test_check_with_the_documented_capabilities_passes():
    done = subprocess.run([*as_nobody(DOCUMENTED), *agent_command(), "check"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[-1] == "result: the agent can run here"


@pytest.fixture
def spare_interface():
    """A veth pair of the test's own, down and unaddressed (no traffic): somewhere to attach tc."""
    name = f"erxlp{os.getpid() % 10000}"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)


def tc_config(interface: str) -> str:
    return debug_only_config().replace(
        "    poll_interval: 20ms\n",
        f"    poll_interval: 20ms\n    network_metrics: {{tc_flow: true, tc_interfaces: [{interface}]}}\n",
    )


def test_tc_needs_cap_net_admin_and_nothing_more(tmp_path, spare_interface):
    config = tmp_path / "agent.yaml"
    config.write_text(tc_config(spare_interface))
    done = subprocess.run(
        [*as_nobody(DOCUMENTED), *agent_command(), "run", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and "missing capability CAP_NET_ADMIN" in done.stderr, done.stderr

    agent = AgentProcess(tmp_path, tc_config(spare_interface), prefix=as_nobody((*DOCUMENTED, "net_admin"))).start()
    try:
        filters = subprocess.run(["tc", "filter", "show", "dev", spare_interface, "ingress"],
                                 capture_output=True, text=True, check=True).stdout
        assert "erx_tc_ingress" in filters
    finally:
        assert agent.stop() == 0, agent.stderr()
