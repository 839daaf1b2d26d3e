"""NetworkMetrics' user-space side: growth between reads, the series cap, forgetting exited
processes. The maps are an in-memory stand-in with layouts from the real ABI header (the kernel
side is proven in tests/kernel/test_network_metrics.py)."""

from __future__ import annotations

import socket

from receiver.bpf.abi import load_abi
from receiver.telemetry.network_config import NetworkMetricsConfig
from receiver.model.telemetry import Resource
from receiver.telemetry.network_metrics import NetworkMetrics

ABI = load_abi()


class Maps:
    """Hash maps as dicts of raw bytes, with the loader's read/delete calls."""

    abi = ABI

    def __init__(self) -> None:
        self.maps: dict[str, dict[bytes, bytes]] = {"erx_net_stats": {}, "erx_tc_flows": {}}
        self.deleted: list[bytes] = []

    def map_items(self, name, key_size, value_size):
        return list(self.maps[name].items())

    def map_delete(self, name, key):
        self.deleted.append(key)
        del self.maps[name][key]

    def queue_pop(self, name, value_size, limit):
        return []

    def read_counters(self):
        return [0] * ABI.const("ERX_CNT_MAX")

    def put(self, tgid: int, addr: str, port: int, retransmits: int, overflow: int = 0, side: int = 1) -> bytes:
        k = ABI.ffi.new("struct erx_net_key *")
        k.tgid, k.port, k.family, k.side, k.overflow = tgid, port, socket.AF_INET, side, overflow
        ABI.ffi.memmove(k.peer_addr, socket.inet_aton(addr), 4)
        v = ABI.ffi.new("struct erx_net_stats *")
        v.retransmits = retransmits
        key = bytes(ABI.ffi.buffer(k))
        self.maps["erx_net_stats"][key] = bytes(ABI.ffi.buffer(v))
        return key


def retransmits(metrics) -> dict:
    return {
        (m.resource.get("process.pid"), dict(p.attributes).get("network.peer.address"),
         dict(p.attributes).get("otel.metric.overflow")): p.value
        for m in metrics if m.name == "network.tcp.retransmits" for p in m.points
    }


def make(maps: Maps, alive=lambda pid: True, max_series: int = 16) -> NetworkMetrics:
    cfg = NetworkMetricsConfig(retransmits=True, max_series=max_series)
    return NetworkMetrics(maps, cfg, resource_for_pid=lambda pid: Resource.from_dict({"process.pid": pid}),
                          pid_alive=alive, clock_ns=lambda: 10**18)


def test_growth_between_reads_adds_up():
    maps = Maps()
    nm = make(maps)
    maps.put(7, "10.0.0.1", 80, 3)
    assert retransmits(nm.collect()) == {(7, "10.0.0.1", None): 3}
    maps.put(7, "10.0.0.1", 80, 5)
    assert retransmits(nm.collect()) == {(7, "10.0.0.1", None): 5}
    assert retransmits(nm.collect()) == {(7, "10.0.0.1", None): 5}  # no growth, same total


def test_exited_process_is_counted_then_its_kernel_entries_deleted():
    maps = Maps()
    alive = {7: True}
    nm = make(maps, alive=lambda pid: alive.get(pid, False))
    maps.put(7, "10.0.0.1", 80, 2)
    nm.collect()
    maps.put(7, "10.0.0.1", 80, 4)
    alive[7] = False
    key = maps.put(7, "10.0.0.1", 80, 4)
    assert retransmits(nm.collect()) == {(7, "10.0.0.1", None): 4}
    assert maps.deleted == [key] and not maps.maps["erx_net_stats"]
    # The same key again (pid reused) starts from zero, and the cumulative series goes on.
    alive[7] = True
    maps.put(7, "10.0.0.1", 80, 1)
    assert retransmits(nm.collect()) == {(7, "10.0.0.1", None): 5}


def test_series_past_the_cap_and_the_kernel_overflow_entry_go_to_overflow_series():
    maps = Maps()
    nm = make(maps, max_series=16)
    for i in range(20):
        maps.put(7, f"10.0.1.{i}", 80, 1)
    maps.put(0, "0.0.0.0", 0, 6, overflow=1)
    got = retransmits(nm.collect())
    assert sum(1 for k in got if k[2] is None) == 16
    assert got[(7, None, True)] == 4  # the four attribute sets past the cap, under the process
    assert got[(None, None, True)] == 6  # what the kernel counted once its map was full (host resource)
