"""Namespaces and NAT, for real: two 'hosts' as network namespaces joined by a veth pair, an
uninstrumented HTTP server in one, curl in the other dialling a virtual IP that a DNAT rule
(in the client's namespace) sends to the server.  The agent as users run it, a real
collector (rotel).  Traffic stays inside the test namespaces and loopback."""

from __future__ import annotations

import os
import re
import socket
import sys
import time
import urllib.request

import pytest

from receiver.bpf.abi import load_abi
from receiver.model.endpoints import Tuple
from receiver.connections.netns import NetnsConfig, NetnsResolver
from tests.support.agent import AgentProcess
from tests.support.netns import TwoHosts
from tests.support.ports import free_port, wait_until
from tests.support.rotel import RotelCollector

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

PAGE = "nat-probe.txt"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    """Client and server namespaces, the DNAT rule, python's http.server on the server."""
    root = tmp_path_factory.mktemp("netns")
    (root / PAGE).write_text("behind a virtual IP\n")
    with TwoHosts() as h:
        h.add_dnat()
        h.popen(h.server_ns, sys.executable, "-m", "http.server", "--bind", h.server_addr, str(h.server_port),
                "--directory", str(root))
        h.wait_for_server()
        yield h


def curl(h: TwoHosts, url: str) -> tuple[str, int]:
    """GET from the client's namespace; returns (local ip, local port) of the connection."""
    r = h.run(h.client_ns, "curl", "-s", "-o", "/dev/null", "-m", "5", "-w", "%{http_code} %{local_ip} %{local_port}",
              url, check=True)
    code, ip, port = r.stdout.split()
    assert code == "200", r.stdout
    return ip, int(port)


def agent_config(collector: RotelCollector, prom_port: int) -> str:
    return f"""
receivers:
  ebpf:
    poll_interval: 20ms
processors:
  batch:
    timeout: 100ms
exporters:
  otlp:
    endpoint: {collector.grpc_endpoint}
    tls: {{insecure: true}}
  prometheus:
    endpoint: 127.0.0.1:{prom_port}
service:
  pipelines:
    traces: {{receivers: [ebpf], processors: [batch], exporters: [otlp]}}
    metrics: {{receivers: [ebpf], exporters: [prometheus]}}
"""


def test_client_and_server_spans_form_one_trace_through_dnat(hosts, tmp_path):
    h = hosts
    prom_port = free_port()
    with RotelCollector(tmp_path) as collector, AgentProcess(tmp_path, agent_config(collector, prom_port)):
        path = f"/{PAGE}"
        curl(h, f"http://{h.vip}{path}")

        def found():
            spans = [s for s in collector.spans() if s.attributes.get("url.path") == path]
            cli = [s for s in spans if s.kind == "SPAN_KIND_CLIENT"]
            srv = [s for s in spans if s.kind == "SPAN_KIND_SERVER"]
            return cli and srv and (cli, srv)

        cli, srv = wait_until(found, timeout=30, what="the client and server spans of the DNAT'd call")
        assert len(cli) == 1 and len(srv) == 1, (cli, srv)
        cli, srv = cli[0], srv[0]
        # The client span: what it dialled, and who really answered.
        assert cli.attributes["server.address"] == h.vip
        assert cli.attributes["server.port"] == h.vip_port
        assert cli.attributes["network.peer.address"] == h.server_addr
        assert cli.attributes["network.peer.port"] == h.server_port
        # Same-host linking through DNAT: the server span is the client span's child.
        assert srv.trace_id == cli.trace_id
        assert srv.parent_id == cli.span_id
        assert srv.attributes["client.address"] == h.client_addr
        assert srv.attributes["network.peer.address"] == h.client_addr
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/metrics", timeout=5).read().decode()
        hits = re.search(r'^ebpf_receiver_nat_lookups_total\{result="hit"\} (\S+)$', metrics, re.M)
        assert hits and float(hits.group(1)) >= 1, metrics[-2000:]


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_resolver_reads_addresses_and_conntrack_of_a_real_namespace(hosts):
    """No agent: the resolver against the kernel.  curl has exited when we ask (as it usually
    has when the agent reads its events): its namespace is found by its local address."""
    h = hosts
    conns = [curl(h, f"http://{h.vip}/{PAGE}") for _ in range(5)]
    direct = curl(h, f"http://{h.server_addr}:{h.server_port}/{PAGE}")
    tcp = load_abi().const("ERX_TRANSPORT_TCP")
    before = _fds()
    # A generous budget: this machine may hold other namespaces, all read on first contact.
    r = NetnsResolver(NetnsConfig(time_burst=5.0), transports={tcp: socket.IPPROTO_TCP})
    try:
        client_ns = os.stat(f"/run/netns/{h.client_ns}").st_ino
        ns = r.connection_netns(2**22 + 1, conns[0][0])  # a pid that does not exist
        assert ns == client_ns
        ifaces = r.interfaces(ns)
        assert ifaces["lo"][0] == "127.0.0.1"
        assert any(h.client_addr in addrs for name, addrs in ifaces.items() if name != "lo")
        assert r.is_local(ns, h.client_addr) and not r.is_local(ns, h.vip)

        timings = []
        for ip, port in conns:
            t = Tuple(socket.AF_INET, tcp, ip, port, h.vip, h.vip_port)
            t0 = time.perf_counter()
            assert r.nat_destination(ns, t) == (h.server_addr, h.server_port), r.lookups
            timings.append(time.perf_counter() - t0)
        # Not translated: a miss, then the destination is negatively cached.
        t = Tuple(socket.AF_INET, tcp, direct[0], direct[1], h.server_addr, h.server_port)
        assert r.is_local(ns, h.server_addr) is False
        assert r.nat_destination(ns, t) is None
        assert r.lookups["hit"] == 5 and r.lookups["miss"] == 1 and r.lookups["failure"] == 0
        warm = sorted(timings[1:])
        print(f"\nconntrack lookup: first {timings[0] * 1e3:.2f} ms, warm median {warm[len(warm) // 2] * 1e3:.2f} ms,"
              f" max {warm[-1] * 1e3:.2f} ms")
        assert warm[-1] < 0.05  # a warm lookup is one netlink round trip (~1 ms), far below budget
        assert r.open_links() >= 1
    finally:
        r.close()
    assert r.open_links() == 0
    assert _fds() <= before  # every netlink socket (and its event loop) was closed
