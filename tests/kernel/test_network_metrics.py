"""Network health metrics on a real kernel, over a link with real delay and loss.

Two namespaces of the test's own (tests/support/impaired_link.py): an impaired path (20 ms
one way, client to server, so the round trip is 20 ms; 5 % loss each way) and a clean veth
path. A real client and server (net_peer.py, run in the namespaces) move counted bytes over
both, then the client connects to a port with no listener and to an address that never
answers. The agent's kernel side aggregates; NetworkMetrics reads the maps; every assertion
is on series of this test's own processes and addresses.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import sys
from pathlib import Path

import pytest

from receiver.bpf.loader import BpfLoader, LoaderKnobs, default_object_path
from receiver.capture.events import ConnFailureEvent, EventDecoder
from receiver.capture.ringbuf import RingBufferReader
from receiver.telemetry.network_config import NETWORK_MAX_BOUNDS, NetworkMetricsConfig
from receiver.model.telemetry import MetricKind, Resource
from receiver.telemetry.network_metrics import NetworkMetrics, network_knobs
from tests.support.impaired_link import ImpairedLink, Impairment

PEER = Path(__file__).with_name("net_peer.py")
DELAY_S = 0.020
LOSS = 0.05
PORT = 7311
CLOSED_PORT = 7312
CONNS = 4  # per path
ROUNDS = 12
REQ, RESP = 16 * 1024, 48 * 1024

ALL_ON = NetworkMetricsConfig(
    rtt=True, retransmits=True, resets=True, connect_failures=True, connect_duration=True, flow=True,
    sample_interval=0.02,
)


def histogram_quantile(q: float, bounds: tuple[float, ...], counts: list[int]) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket holding rank q."""
    total = sum(counts)
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        if seen + n >= rank and n:
            lo = bounds[i - 1] if i > 0 else 0.0
            hi = bounds[i] if i < len(bounds) else bounds[-1]
            return lo + (hi - lo) * (rank - seen) / n
        seen += n
    raise AssertionError("empty histogram")


def series(metrics, name: str, pid: int, **attrs):
    """Points of metric `name` of process `pid` whose attributes include `attrs`."""
    out = []
    for m in metrics:
        if m.name != name or m.resource.get("process.pid") != pid:
            continue
        for p in m.points:
            a = dict(p.attributes)
            if all(a.get(k) == v for k, v in attrs.items()):
                out.append(p)
    return out


def total(metrics, name: str, pid: int, **attrs) -> int:
    return sum(p.value for p in series(metrics, name, pid, **attrs))


def merged_histogram(metrics, name: str, pid: int, **attrs) -> tuple[tuple[float, ...], list[int]]:
    points = series(metrics, name, pid, **attrs)
    assert points, f"no {name} series for pid {pid} {attrs}"
    counts = [sum(c) for c in zip(*(p.bucket_counts for p in points))]
    return points[0].explicit_bounds, counts


def test_bucket_bound_limit_matches_the_abi(capture) -> None:
    assert NETWORK_MAX_BOUNDS == capture.loader.abi.const("ERX_NET_BOUNDS")


@pytest.fixture
def link():
    with ImpairedLink(c2s=Impairment(DELAY_S, LOSS), s2c=Impairment(0.0, LOSS)) as link:
        yield link


def run_peers(link: ImpairedLink) -> tuple[dict, dict]:
    server = link.popen(link.server_ns, sys.executable, "-I", str(PEER), "server", str(PORT), str(2 * CONNS),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    procs = [server]
    try:
        assert server.stdout.readline().strip() == b"ready"
        target = {"port": PORT, "conns": CONNS, "rounds": ROUNDS, "req": REQ, "resp": RESP, "pause_s": 0.03}
        params = {
            "targets": [dict(target, addr=link.server_tun_addr), dict(target, addr=link.server_veth_addr)],
            "refused": [link.server_tun_addr, CLOSED_PORT],
            "timeout": [link.blackhole_addr, PORT],
        }
        client = link.popen(link.client_ns, sys.executable, "-I", str(PEER), "client", json.dumps(params),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(client)
        out, err = client.communicate(timeout=150)
        assert client.returncode == 0, err.decode()
        sout, serr = server.communicate(timeout=30)
        assert server.returncode == 0, serr.decode()
    finally:  # nothing of ours outlives the test, whatever failed
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
    return json.loads(out.splitlines()[-1]), json.loads(sout.splitlines()[-1])


def test_network_health_over_an_impaired_link(link: ImpairedLink) -> None:
    # The emulated link really delays: ping's round trip is the configured delay (+ scheduling).
    ping = link.ping_rtt_s()
    assert DELAY_S * 0.9 <= ping <= DELAY_S * 1.5, ping

    knobs = LoaderKnobs(agent_tgid=os.getpid(), ring_buffer_size=1 << 16, network=network_knobs(ALL_ON))
    with BpfLoader(default_object_path(), knobs) as loader:
        nm = NetworkMetrics(loader, ALL_ON, resource_for_pid=lambda pid: Resource.from_dict({"process.pid": pid}))
        # Failed connects come as ring-buffer records, in order with the traffic: read them as
        # the agent does, while the peers run (the small ring also carries everyone's data).
        reader, decoder = RingBufferReader(loader), EventDecoder(loader.abi)
        failures: list[ConnFailureEvent] = []
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                failures.extend(e for e in map(decoder.decode, reader.poll(20)) if isinstance(e, ConnFailureEvent))

        poller = threading.Thread(target=read)
        poller.start()
        try:
            client, server = run_peers(link)
            metrics = nm.collect()
        finally:
            stop.set()
            poller.join()
            failures.extend(e for e in map(decoder.decode, reader.drain()) if isinstance(e, ConnFailureEvent))
            reader.close()
    cpid, spid = client["pid"], server["pid"]
    tun, veth = link.server_tun_addr, link.server_veth_addr
    print(link.stats)

    # RTT: the median of the smoothed RTT samples is the link's round trip.
    bounds, counts = merged_histogram(metrics, "network.tcp.rtt", cpid, **{"network.peer.address": tun})
    median = histogram_quantile(0.5, bounds, counts)
    assert abs(median - DELAY_S) <= 0.2 * DELAY_S, (median, counts)
    # The clean path's RTT is far below a millisecond.
    bounds, counts = merged_histogram(metrics, "network.tcp.rtt", cpid, **{"network.peer.address": veth})
    assert histogram_quantile(0.5, bounds, counts) < 0.001

    # Connect duration: SYN sent -> established is one round trip.
    bounds, counts = merged_histogram(metrics, "network.tcp.connect.duration", cpid, **{"server.address": tun})
    assert sum(counts) == CONNS  # the refused and the timed-out connects never got established
    median = histogram_quantile(0.5, bounds, counts)
    assert abs(median - DELAY_S) <= 0.25 * DELAY_S, (median, counts)

    # Retransmits: with loss on the impaired path, none on the clean one.
    assert total(metrics, "network.tcp.retransmits", cpid, **{"network.peer.address": tun}) > 0
    assert total(metrics, "network.tcp.retransmits", cpid, **{"network.peer.address": veth}) == 0
    assert total(metrics, "network.tcp.retransmits", spid, **{"network.peer.address": veth}) == 0

    # Connect failures by reason, on the client's entries for the dialled peers.
    assert client["refused"]["errno"] == 111 and client["timeout"]["errno"] == 110
    assert total(metrics, "network.tcp.connect.failures", cpid,
                 **{"server.address": tun, "server.port": CLOSED_PORT, "error.type": "refused"}) == 1
    assert total(metrics, "network.tcp.connect.failures", cpid,
                 **{"server.address": link.blackhole_addr, "error.type": "timeout"}) == 1
    mine = [f for f in failures if f.pid == cpid]
    assert sorted((f.reason, f.peer_address, f.peer_port) for f in mine) == sorted(
        [("refused", tun, CLOSED_PORT), ("timeout", link.blackhole_addr, PORT)]
    )
    timeout = next(f for f in mine if f.reason == "timeout")
    assert 2.0 < (timeout.end_ns - timeout.start_ns) / 1e9 < 5.0  # 1 s + 2 s of SYN retries
    assert timeout.error_name == "ETIMEDOUT" and timeout.tid

    # Resets: the client received the refusal; the server's kernel sent it (no process).
    assert total(metrics, "network.tcp.resets", cpid, **{"server.port": CLOSED_PORT,
                                                           "network.io.direction": "receive"}) == 1

    # Flow bytes: the payload both sides' syscalls counted (TCP payload, no headers).
    for path, addr in ((tun, client["targets"][0]), (veth, client["targets"][1])):
        assert addr["sent"] == CONNS * ROUNDS * (REQ + 8)
        sent = total(metrics, "network.flow.bytes", cpid, **{"network.peer.address": path,
                                                               "network.io.direction": "transmit"})
        received = total(metrics, "network.flow.bytes", cpid, **{"network.peer.address": path,
                                                                   "network.io.direction": "receive"})
        assert (sent, received) == (addr["sent"], addr["received"]), path
        srv = server["totals"][link.server_tun_addr if path == tun else link.server_veth_addr]
        client_addr = link.client_tun_addr if path == tun else link.client_veth_addr
        s_sent = total(metrics, "network.flow.bytes", spid, **{"network.peer.address": client_addr,
                                                                 "network.io.direction": "transmit"})
        s_received = total(metrics, "network.flow.bytes", spid, **{"network.peer.address": client_addr,
                                                                     "network.io.direction": "receive"})
        assert (s_sent, s_received) == (srv["sent"], srv["received"]), path
        packets = total(metrics, "network.flow.packets", cpid, **{"network.peer.address": path})
        assert packets >= (addr["sent"] + addr["received"]) // 1448  # at least one segment per MSS
    for m in metrics:
        assert m.kind in (MetricKind.SUM, MetricKind.HISTOGRAM)


UDP_SENDER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[3])):
    s.sendto(b"u" * int(sys.argv[4]), (sys.argv[1], int(sys.argv[2])))
"""


def tc_total(metrics, name: str, **attrs) -> int:
    return sum(
        p.value for m in metrics if m.name == name for p in m.points
        if all(dict(p.attributes).get(k) == v for k, v in attrs.items())
    )


def test_tc_counts_packets_no_local_socket_takes(link: ImpairedLink) -> None:
    cfg = NetworkMetricsConfig(tc_flow=True, tc_interfaces=(link.server_veth,))
    knobs = LoaderKnobs(agent_tgid=os.getpid(), ring_buffer_size=1 << 16, network=network_knobs(cfg))
    with BpfLoader(default_object_path(), knobs) as loader:
        assert loader.program_fd("erx_tcp_state") < 0  # only the tc programs of the metrics are loaded
        nm = NetworkMetrics(loader, cfg, resource_for_pid=lambda pid: Resource.from_dict({"process.pid": pid}))
        attacher = loader.tc_flow_attacher(netns=link.server_ns)
        server = None
        try:
            attacher.attach(link.server_veth)
            attacher.attach(link.server_veth)  # idempotent
            # 10 datagrams to a port without a socket: the host receives them, no process does.
            link.run(link.client_ns, sys.executable, "-I", "-c", UDP_SENDER, link.server_veth_addr,
                     str(CLOSED_PORT), "10", "100")
            # A TCP exchange with a listening server: its socket takes every packet.
            server = link.popen(link.server_ns, sys.executable, "-I", str(PEER), "server", str(PORT), "1",
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert server.stdout.readline().strip() == b"ready"
            target = {"addr": link.server_veth_addr, "port": PORT, "conns": 1, "rounds": 2, "req": 100, "resp": 100}
            link.run(link.client_ns, sys.executable, "-I", str(PEER), "client", json.dumps({"targets": [target]}))
            server.communicate(timeout=30)
            metrics = nm.collect()
        finally:
            if server is not None and server.poll() is None:
                server.kill()
                server.wait(5)
            attacher.close()
            attacher.close()
    udp = {"source.address": link.client_veth_addr, "destination.address": link.server_veth_addr,
           "network.transport": "udp", "server.port": CLOSED_PORT, "network.io.direction": "receive"}
    assert tc_total(metrics, "network.flow.packets", **udp) == 10
    # At tc the length is the frame's: Ethernet + IPv4 + UDP headers + payload.
    assert tc_total(metrics, "network.flow.bytes", **udp) == 10 * (14 + 20 + 8 + 100)
    tcp = {"source.address": link.client_veth_addr, "network.transport": "tcp", "server.port": PORT}
    assert tc_total(metrics, "network.flow.packets", **tcp) == 0
    # Detached: the namespace's veth has no filter of ours left.
    out = link.run(link.server_ns, "tc", "filter", "show", "dev", link.server_veth, "ingress").stdout
    assert b"erx_tc" not in out
