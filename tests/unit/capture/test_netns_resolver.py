"""NetnsResolver on a fake /proc (namespace files are hard links: one inode per namespace) with
fake netlink links and a fake clock: caching, fallbacks, bounds, budget, cleanup."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from receiver.model.endpoints import Tuple
from receiver.connections.netns import GONE_TTL_S, NetnsConfig, NetnsResolver

TCP, UDP = 1, 2
TRANSPORTS = {TCP: socket.IPPROTO_TCP, UDP: socket.IPPROTO_UDP}
VIP, BACKEND = "10.213.99.1", "10.213.0.2"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeLink:
    def __init__(self, world: "World", inode: int) -> None:
        self.world, self.inode, self.closed = world, inode, False
        self.calls = 0

    def interfaces(self):
        self.calls += 1
        return self.world.interfaces[self.inode]

    def reply_tuple(self, family, proto, saddr, sport, daddr, dport):
        self.calls += 1
        self.world.clock.t += self.world.lookup_cost
        if self.inode in self.world.broken:
            raise OSError("netlink broke")
        return self.world.conntrack.get(self.inode, {}).get((proto, saddr, sport, daddr, dport))

    def close(self):
        self.closed = True


class World:
    """A fake /proc and /run/netns: ``ns(name)`` makes a namespace, ``spawn`` a process in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc = root / "proc"
        self.netns_dir = root / "netns"
        self.store = root / "namespaces"
        for d in (self.proc, self.netns_dir, self.store):
            d.mkdir()
        self.clock = Clock()
        self.lookup_cost = 0.0
        self.interfaces: dict[int, dict] = {}
        self.conntrack: dict[int, dict] = {}
        self.broken: set[int] = set()
        self.opened: list[tuple[str | None, FakeLink]] = []
        self.host = self.ns("host", {"lo": ("127.0.0.1", "::1"), "eth0": ("192.0.2.10",)})
        self._link(self.host, self.proc / "self")

    def ns(self, name: str, interfaces: dict, mount: bool = False) -> int:
        f = self.store / name
        f.touch()
        ino = f.stat().st_ino
        self.interfaces[ino] = interfaces
        if mount:
            os.link(f, self.netns_dir / name)
        return ino

    def _link(self, ino: int, pid_dir: Path) -> None:
        (pid_dir / "ns").mkdir(parents=True)
        src = next(p for p in self.store.iterdir() if p.stat().st_ino == ino)
        os.link(src, pid_dir / "ns" / "net")

    def spawn(self, pid: int, ino: int) -> None:
        self._link(ino, self.proc / str(pid))

    def kill(self, pid: int) -> None:
        d = self.proc / str(pid)
        (d / "ns" / "net").unlink()
        (d / "ns").rmdir()
        d.rmdir()

    def open_link(self, path):
        ino = self.host if path is None else os.stat(path).st_ino
        link = FakeLink(self, ino)
        self.opened.append((path, link))
        return link

    def resolver(self, **cfg) -> NetnsResolver:
        config = NetnsConfig(proc_root=str(self.proc), netns_dir=str(self.netns_dir), **cfg)
        return NetnsResolver(config, open_link=self.open_link, clock=self.clock, transports=TRANSPORTS)


@pytest.fixture
def world(tmp_path) -> World:
    return World(tmp_path)


def tcp(local: str, lport: int, remote: str, rport: int, transport: int = TCP) -> Tuple:
    return Tuple(socket.AF_INET, transport, local, lport, remote, rport)


def client_ns(world: World, mount: bool = False) -> int:
    ns = world.ns("client", {"lo": ("127.0.0.1",), "veth0": ("10.213.0.1",)}, mount=mount)
    world.conntrack[ns] = {(6, "10.213.0.1", 40000, VIP, 80): (BACKEND, 8080, "10.213.0.1", 40000),
                           (6, "10.213.0.1", 40001, "10.213.0.9", 80): ("10.213.0.9", 80, "10.213.0.1", 40001)}
    return ns


def test_pid_to_namespace_is_cached_and_forgotten(world):
    ns = client_ns(world)
    world.spawn(100, ns)
    r = world.resolver()
    assert r.own_inode == world.host
    assert r.netns_of(100) == ns
    world.kill(100)
    assert r.netns_of(100) == ns  # cached: no /proc read
    r.forget_pid(100)
    assert r.netns_of(100) == 0  # gone, and never cached as such


def test_a_pid_gone_before_its_records_were_read_is_not_looked_up_again_until_its_exit(world):
    """A connection per request of a process that exited: its namespace is unknown, and
    /proc is not read again for each of them; its exit record frees the pid for reuse."""
    ns = client_ns(world)
    r = world.resolver()
    assert r.netns_of(300) == 0
    world.spawn(300, ns)  # only a reused pid could appear now: it stays unknown...
    assert r.netns_of(300) == 0
    r.forget_pid(300)  # ...until the old process's exit is seen
    assert r.netns_of(300) == ns
    assert r.netns_of(301) == 0
    world.spawn(301, ns)
    world.clock.t += GONE_TTL_S + 0.1  # or for a while (an exit record may be lost)
    assert r.netns_of(301) == ns


def test_interfaces_and_addresses_per_namespace(world):
    ns = client_ns(world)
    world.spawn(100, ns)
    r = world.resolver()
    r.netns_of(100)
    assert r.interfaces(ns) == {"lo": ("127.0.0.1",), "veth0": ("10.213.0.1",)}
    assert r.interfaces(world.host)["eth0"] == ("192.0.2.10",)
    assert r.is_local(ns, "10.213.0.1") and not r.is_local(ns, "192.0.2.10")
    assert r.is_local(ns, "127.0.0.5")  # all of 127/8
    assert r.is_local(12345, "10.213.0.1") is None  # unknown namespace
    # The foreign namespace was opened through its process, the agent's own without a path.
    assert [p for p, _ in world.opened] == [str(world.proc / "100" / "ns" / "net"), None]


def test_dnat_destination_is_translated_and_cached_per_connection(world):
    ns = client_ns(world)
    world.spawn(100, ns)
    r = world.resolver()
    t = tcp("10.213.0.1", 40000, VIP, 80)
    assert r.nat_destination(r.netns_of(100), t) == (BACKEND, 8080)
    assert r.nat_destination(ns, t) == (BACKEND, 8080)
    assert r.lookups == {"hit": 1, "miss": 0, "failure": 0, "skipped": 0}


def test_no_lookup_for_local_loopback_or_non_ip_destinations(world):
    ns = client_ns(world)
    world.spawn(100, ns)
    r = world.resolver()
    r.netns_of(100)
    assert r.nat_destination(ns, tcp("10.213.0.1", 40002, "10.213.0.1", 9000)) is None  # own address
    assert r.nat_destination(ns, tcp("127.0.0.1", 40003, "127.0.0.1", 9000)) is None
    assert r.nat_destination(ns, Tuple(socket.AF_UNIX, 3, "", 0, "", 0)) is None
    assert r.lookups == {"hit": 0, "miss": 0, "failure": 0, "skipped": 0}


def test_destination_without_nat_is_negatively_cached_for_a_while(world):
    ns = client_ns(world)
    world.spawn(100, ns)
    r = world.resolver(negative_ttl=10.0)
    r.netns_of(100)
    assert r.nat_destination(ns, tcp("10.213.0.1", 40001, "10.213.0.9", 80)) is None
    # Same destination, another connection: not looked up while the negative entry lives.
    assert r.nat_destination(ns, tcp("10.213.0.1", 40005, "10.213.0.9", 80)) is None
    assert r.lookups["miss"] == 1
    world.clock.t += 11
    r.nat_destination(ns, tcp("10.213.0.1", 40006, "10.213.0.9", 80))
    assert r.lookups["miss"] == 2


def test_node_level_dnat_is_found_in_the_agents_namespace(world):
    ns = client_ns(world)
    world.spawn(100, ns)
    world.conntrack[world.host] = {(6, "10.213.0.1", 40010, "10.96.0.10", 53): ("10.244.1.7", 5353, "10.213.0.1",
                                                                                 40010)}
    r = world.resolver()
    assert r.nat_destination(r.netns_of(100), tcp("10.213.0.1", 40010, "10.96.0.10", 53)) == ("10.244.1.7", 5353)
    assert r.lookups["hit"] == 1


def test_exited_client_is_placed_by_its_local_address(world):
    """A short-lived client (curl) is usually gone when its events are read: its namespace is
    the one whose interfaces carry the connection's local address (found by discovery)."""
    ns = client_ns(world, mount=True)
    r = world.resolver()
    assert r.netns_of(4242) == 0
    assert r.connection_netns(4242, "10.213.0.1") == ns
    assert r.nat_destination(ns, tcp("10.213.0.1", 40000, VIP, 80)) == (BACKEND, 8080)
    assert (str(world.netns_dir / "client"), ) in [(p,) for p, _ in world.opened]
    # An address two namespaces carry is ambiguous: unknown rather than wrong.
    world.ns("twin", {"veth0": ("10.213.0.1",)}, mount=True)
    world.clock.t += 60
    r2 = world.resolver()
    assert r2.connection_netns(4243, "10.213.0.1") == 0


def test_discovery_is_rate_limited(world):
    r = world.resolver(discover_interval=10.0)
    assert r.connection_netns(1, "10.213.0.1") == 0
    ns = client_ns(world, mount=True)
    assert r.connection_netns(1, "10.213.0.1") == 0  # no second scan within the interval
    world.clock.t += 11
    assert r.connection_netns(1, "10.213.0.1") == ns


def test_time_budget_skips_lookups_instead_of_waiting(world):
    ns = client_ns(world)
    world.spawn(100, ns)
    world.conntrack[ns].update({(6, "10.213.0.1", p, VIP, 80): (BACKEND, 8080, "10.213.0.1", p)
                                for p in range(41000, 41010)})
    r = world.resolver(time_budget=0.05, time_burst=0.05)
    r.netns_of(100)
    r.interfaces(ns)
    world.lookup_cost = 0.02  # each lookup costs 20 ms of the budget
    got = [r.nat_destination(ns, tcp("10.213.0.1", p, VIP, 80)) for p in range(41000, 41010)]
    assert got[:3] == [(BACKEND, 8080)] * 3 and got[3:] == [None] * 7
    assert r.lookups == {"hit": 3, "miss": 0, "failure": 0, "skipped": 7}
    world.clock.t += 1.0  # the bucket refilled: skipped connections were not cached, they retry
    assert r.nat_destination(ns, tcp("10.213.0.1", 41005, VIP, 80)) == (BACKEND, 8080)


def test_netlink_failure_is_counted_and_backed_off(world):
    ns = client_ns(world)
    world.spawn(100, ns)
    world.broken.update({ns, world.host})
    r = world.resolver(failure_backoff=60.0)
    r.netns_of(100)
    assert r.nat_destination(ns, tcp("10.213.0.1", 40000, VIP, 80)) is None
    assert r.lookups["failure"] == 1
    world.broken.clear()
    assert r.nat_destination(ns, tcp("10.213.0.1", 40000, VIP, 80)) is None  # backing off
    assert r.lookups["skipped"] == 1
    world.clock.t += 61
    assert r.nat_destination(ns, tcp("10.213.0.1", 40000, VIP, 80)) == (BACKEND, 8080)


def test_anchor_that_vanishes_while_opening_falls_back_to_the_next(world):
    ns = client_ns(world, mount=True)
    world.spawn(100, ns)
    r = world.resolver()
    r.netns_of(100)
    real_open = world.open_link

    def racy_open(path):
        if path and "/proc/" in path:
            raise FileNotFoundError(path)  # the process exited between stat and setns
        return real_open(path)

    r._open_link = racy_open
    assert r.nat_destination(ns, tcp("10.213.0.1", 40000, VIP, 80)) == (BACKEND, 8080)
    assert r.lookups["failure"] == 0


def test_sockets_of_a_namespace_that_disappears_are_closed(world):
    ns = client_ns(world)
    world.spawn(100, ns)
    r = world.resolver(sweep_interval=10.0)
    r.netns_of(100)
    r.nat_destination(ns, tcp("10.213.0.1", 40000, VIP, 80))
    link = next(lk for p, lk in world.opened if p is not None)
    world.kill(100)  # its last process exits (no exit event seen: the sweep still finds out)
    r.maintain()
    assert not link.closed  # not before the sweep interval
    world.clock.t += 11
    r.maintain()
    assert link.closed and r.namespace_count() == 1  # only the agent's own is left
    r.close()
    assert all(lk.closed for _, lk in world.opened)


def test_idle_namespaces_close_their_sockets(world):
    ns = client_ns(world)
    world.spawn(100, ns)
    r = world.resolver(sweep_interval=1.0, idle_timeout=30.0)
    r.netns_of(100)
    r.interfaces(ns)
    [link] = [lk for p, lk in world.opened if p is not None]
    world.clock.t += 31
    r.maintain()
    assert link.closed and r.open_links() == 1  # the agent's own: read by the same maintain()
    world.clock.t += 31
    assert r.interfaces(ns) != {}  # reopened on demand (its process lives)


def test_maintenance_discovers_namespaces_and_reads_their_addresses_ahead(world):
    """So that a client that exits before its events are read is placed by address without
    a scan at lookup time."""
    ns = client_ns(world, mount=True)
    r = world.resolver()
    r.maintain()
    assert r.interfaces(ns)["veth0"] == ("10.213.0.1",)
    opened = len(world.opened)
    assert r.connection_netns(4242, "10.213.0.1") == ns
    assert len(world.opened) == opened  # nothing read at lookup time


def test_tables_are_bounded(world):
    namespaces = [world.ns(f"n{i}", {"veth0": (f"10.1.{i}.1",)}) for i in range(6)]
    for i, ns in enumerate(namespaces):
        world.spawn(200 + i, ns)
    r = world.resolver(max_namespaces=4, max_pids=3, max_translations=2)
    for i in range(6):
        r.netns_of(200 + i)
        r.interfaces(namespaces[i])
    assert r.namespace_count() == 4  # the agent's own + the 3 most recent
    closed = [lk for p, lk in world.opened if lk.closed]
    assert len(closed) == 3
    assert len(r._pids) == 3
    world.conntrack[namespaces[5]] = {(6, "10.1.5.1", p, VIP, 80): (BACKEND, 80, "10.1.5.1", p)
                                      for p in range(5)}
    for p in range(5):
        r.nat_destination(namespaces[5], tcp("10.1.5.1", p, VIP, 80))
    assert len(r._translations) == 2


def test_an_evicted_namespace_comes_back_with_its_next_connection(world):
    a = client_ns(world)
    b = world.ns("other", {"veth0": ("10.9.0.1",)})
    world.spawn(100, a)
    world.spawn(200, b)
    r = world.resolver(max_namespaces=2)  # the agent's own + one
    r.netns_of(100)
    r.netns_of(200)  # evicts a (pid 100 stays cached)
    assert r.interfaces(a) == {}
    assert r.netns_of(100) == a
    assert r.nat_destination(a, tcp("10.213.0.1", 40000, VIP, 80)) == (BACKEND, 8080)
