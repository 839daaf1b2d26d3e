"""Network namespaces of traced processes: their interfaces and addresses, and the real
destination of NAT'd connections (conntrack).

The BPF programs see every namespace of the node, so one socket tuple means different things
in different namespaces (every container has its own ``127.0.0.1``), and a client that dials a
Service / virtual IP has that virtual address in its socket while the packets reach a backend
through a DNAT rule.  :class:`NetnsResolver` answers, for the capture thread:

- ``netns_of(pid)``: the namespace of a process (inode of ``<proc>/<pid>/ns/net``), cached;
- ``connection_netns(pid, local_addr)``: the same, falling back, for a process that has already
  exited (short-lived clients usually have by the time their events are read), to the
  namespace whose interfaces carry the connection's local address;
- ``interfaces(ns)`` / ``is_local(ns, addr)``: interfaces and addresses of a namespace, read
  with pyroute2's ``IPRoute`` opened *in* that namespace;
- ``nat_destination(ns, tuple)``: for a client connection to a non-local address, the
  conntrack entry of its original tuple in the client's namespace (then in the agent's own
  namespace, where node-level DNAT such as kube-proxy's lives); a reply source that differs
  from the dialled destination is the real backend.

Netlink sockets into another namespace are opened the way pyroute2 supports it: ``netns=`` a
path (``/proc/<pid>/ns/net`` or ``/run/netns/<name>``, an *anchor*), ``flags=0`` so that a
vanished path is never created; pyroute2 forks a short-lived child that ``setns``\\es and hands
the socket back.  Addresses are read through an IPRoute socket opened for the read (every
``address_ttl`` at most, only for namespaces in use); conntrack sockets are kept per namespace
(at most ``max_open_links`` namespaces, least recently used closed) and closed when the
namespace has no anchor left (no live process, no bind mount), when it has been idle, or when
the namespace table is full.  An open netlink socket keeps its namespace alive in the kernel,
which is why anchors are checked.

Everything is bounded: pids, namespaces, open sockets, per-connection results, the negative
cache of destinations seen without NAT, and the time spent: netlink and ``/proc`` work on the
capture thread draws on a token bucket (``time_budget`` seconds per second, at most
``time_burst`` at once); work that finds the bucket empty is skipped (counted), never waited
for.  Lookups are counted by result:

- ``hit``: a DNAT translation was found;
- ``miss``: no entry, or an entry without destination NAT;
- ``failure``: netlink failed (the namespace's conntrack is then left alone for a while);
- ``skipped``: out of time budget, or every namespace to ask is backing off after a failure.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from receiver.connections.netns_link import NamespaceLink, Pyroute2Link

log = logging.getLogger(__name__)

RESULTS = ("hit", "miss", "failure", "skipped")


@dataclass(frozen=True)
class NetnsConfig:
    proc_root: str = "/proc"
    netns_dir: str = "/run/netns"  # bind mounts of named namespaces (ip netns, CNI)
    max_pids: int = 65536  # pid -> namespace entries
    max_namespaces: int = 256  # namespaces with a record (addresses, open sockets)
    max_anchors: int = 4  # paths remembered per namespace to open it again
    max_translations: int = 65536  # per-connection lookup results
    max_negative: int = 16384  # destinations recently seen without NAT
    max_scan: int = 65536  # /proc entries looked at by one discovery
    address_ttl: float = 30.0  # addresses of a namespace are re-read after this long
    negative_ttl: float = 10.0  # no lookup for a destination seen without NAT this long
    failure_backoff: float = 60.0  # leave a namespace alone this long after netlink failed
    discover_interval: float = 10.0  # at most one /proc + netns_dir scan per interval
    sweep_interval: float = 10.0  # check that namespaces still have an anchor
    idle_timeout: float = 300.0  # close the conntrack sockets of a namespace unused this long
    max_open_links: int = 32  # namespaces with open conntrack sockets (least recently used closed)
    time_budget: float = 0.05  # seconds of netlink and /proc work per second, sustained ...
    time_burst: float = 0.25  # ... and at most this much at once (first contact, start-up)


@dataclass(slots=True)
class Namespace:
    inode: int
    own: bool = False  # the agent's namespace: opened without setns
    anchors: list[str] = field(default_factory=list)  # paths that open it
    link: NamespaceLink | None = None
    link_path: str | None = None  # the anchor the link was opened through
    interfaces: dict[str, tuple[str, ...]] = field(default_factory=dict)
    addresses: frozenset[str] = frozenset()
    addresses_at: float | None = None  # when the addresses were read (None: never)
    link_failed_until: float = 0.0  # opening it or reading addresses failed
    conntrack_failed_until: float = 0.0
    last_used: float = 0.0


class NoAnchor(LookupError):
    """No path opens this namespace any more (its processes exited, no bind mount)."""


def is_loopback(addr: str) -> bool:
    return addr.startswith("127.") or addr == "::1"


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


GONE_TTL_S = 5.0  # a pid found gone is not looked up again for this long (unless its exit is seen)


class NetnsResolver:
    """pid → namespace, namespace → interfaces/addresses, original tuple → NAT'd destination.
    Not thread-safe: the capture thread is its only caller (metrics read counters only)."""

    def __init__(
        self,
        config: NetnsConfig = NetnsConfig(),
        open_link: Callable[[str | None], NamespaceLink] | None = None,
        clock: Callable[[], float] = time.monotonic,
        transports: dict[int, int] | None = None,
    ) -> None:
        """``transports``: ABI transport number (``ERX_TRANSPORT_*``) → IP protocol number, for
        the transports whose NAT'd destinations are looked up (none when not given)."""
        self._cfg = config
        self._clock = clock
        if open_link is None:
            # Importing pyroute2 costs ~150 ms: paid here, at start-up, not on the capture thread.
            import pyroute2.conntrack  # noqa: F401
            import pyroute2.iproute  # noqa: F401
        self._open_link = open_link or self._pyroute2_link
        self._libc = None
        self._transports = dict(transports or {})
        self._pids: OrderedDict[int, int] = OrderedDict()
        # pids whose namespace could not be read (gone before their records were read): not
        # looked up again on each of their connections until their exit is seen, or for
        # GONE_TTL_S (an exit record lost to a full ring buffer; pids are reused)
        self._gone: OrderedDict[int, float] = OrderedDict()  # pid -> until
        self._namespaces: OrderedDict[int, Namespace] = OrderedDict()
        self._by_address: dict[str, int] = {}  # non-loopback address -> inode (0: ambiguous)
        self._translations: OrderedDict[tuple, tuple[str, int] | None] = OrderedDict()
        self._negative: OrderedDict[tuple, float] = OrderedDict()  # (ns, addr, port) -> until
        self._tokens = config.time_burst  # seconds of work allowed now (token bucket)
        self._refilled = clock()
        self._open: OrderedDict[int, None] = OrderedDict()  # namespaces with an open link, LRU
        self._last_discover = -1e18
        self._last_sweep = clock()
        self._closed = False
        self.lookups = dict.fromkeys(RESULTS, 0)
        self.lookup_seconds = 0.0  # time spent in conntrack lookups (hits, misses, failures)
        self.own_inode = self._inode(os.path.join(config.proc_root, "self", "ns", "net"))
        if self.own_inode:
            self._namespaces[self.own_inode] = Namespace(self.own_inode, own=True, last_used=clock())

    # -- processes -------------------------------------------------------------------------

    def netns_of(self, pid: int) -> int:
        """Inode of the process's network namespace; 0 when it cannot be read (gone)."""
        ns = self._pids.get(pid)
        if ns is None:
            gone = self._gone
            until = gone.get(pid)
            if until is not None:
                if until > self._clock():
                    return 0
                del gone[pid]
            path = os.path.join(self._cfg.proc_root, str(pid), "ns", "net")
            ns = self._inode(path)
            if not ns:
                gone[pid] = self._clock() + GONE_TTL_S
                if len(gone) > self._cfg.max_pids:
                    gone.popitem(last=False)
                return 0
            self._pids[pid] = ns
            if len(self._pids) > self._cfg.max_pids:
                old_pid, old_ns = self._pids.popitem(last=False)
                self._drop_anchor(old_ns, old_pid)
        rec = self._namespace(ns)  # (again, if it was swept or evicted meanwhile)
        if not rec.own and len(rec.anchors) < self._cfg.max_anchors:  # (the own namespace needs none)
            path = os.path.join(self._cfg.proc_root, str(pid), "ns", "net")
            if path not in rec.anchors:
                rec.anchors.append(path)
        return ns

    def forget_pid(self, pid: int) -> None:
        """The process exited (its pid may be reused)."""
        self._gone.pop(pid, None)
        ns = self._pids.pop(pid, None)
        if ns is not None:
            self._drop_anchor(ns, pid)

    def connection_netns(self, pid: int, local_addr: str) -> int:
        """Namespace of a connection: its process's, else (process gone) the namespace whose
        interfaces carry ``local_addr`` when exactly one does; 0 when unknown."""
        ns = self.netns_of(pid)
        if ns or not local_addr or is_loopback(local_addr) or local_addr.startswith("fe80:"):
            return ns
        ns = self._by_address.get(local_addr)
        if ns is None:
            self._learn_addresses(local_addr)
            ns = self._by_address.get(local_addr)
        return ns or 0

    # -- addresses -------------------------------------------------------------------------

    def interfaces(self, ns: int) -> dict[str, tuple[str, ...]]:
        """Interface name → addresses of a namespace (read at most every ``address_ttl``)."""
        rec = self._namespaces.get(ns)
        if rec is None:
            return {}
        self._refresh_addresses(rec)
        return dict(rec.interfaces)

    def is_local(self, ns: int, addr: str) -> bool | None:
        """Is ``addr`` an address of the namespace?  None when its addresses are unknown."""
        if is_loopback(addr):
            return True
        rec = self._namespaces.get(ns)
        if rec is None:
            return None
        self._refresh_addresses(rec)
        if rec.addresses_at is None:
            return None
        return addr in rec.addresses

    # -- NAT ---------------------------------------------------------------------------------

    def nat_destination(self, ns: int, tup) -> tuple[str, int] | None:
        """The real (address, port) a client connection reaches when its destination was
        translated (DNAT), else None.  ``ns``: the client's namespace (0 if unknown)."""
        proto = self._transports.get(tup.transport)
        if proto is None or not tup.remote_port or not tup.local_port:
            return None
        daddr = tup.remote_addr
        if is_loopback(daddr) or not daddr:
            return None
        key = (ns, tup.local_addr, tup.local_port, daddr, tup.remote_port)
        if key in self._translations:
            return self._translations[key]
        now = self._clock()
        dest = (ns, daddr, tup.remote_port)
        self._expire_negative(now)
        if dest in self._negative:
            return None
        if ns and self.is_local(ns, daddr):
            return None
        candidates = [r for r in (self._namespaces.get(ns) if ns else None, self._namespaces.get(self.own_inode))
                      if r is not None]
        if len(candidates) == 2 and candidates[0] is candidates[1]:
            candidates.pop()
        family = _family(daddr)
        result, found = "skipped", None
        for rec in candidates:
            if rec.conntrack_failed_until > now:
                continue
            if not self._budget_left():
                result = "skipped"
                break
            t0 = self._clock()
            try:
                reply = self._call(rec, lambda link: link.reply_tuple(
                    family, proto, tup.local_addr, tup.local_port, daddr, tup.remote_port))
            except NoAnchor:
                continue  # nothing opens this namespace right now: not a netlink failure
            except Exception as err:  # netlink, setns, fork: this namespace is left alone a while
                rec.conntrack_failed_until = self._clock() + self._cfg.failure_backoff
                log.debug("conntrack lookup in netns %d failed: %s", rec.inode, err)
                if result != "miss":
                    result = "failure"
                continue
            finally:
                spent = self._clock() - t0
                self._tokens -= spent
                self.lookup_seconds += spent
            rec.last_used = now
            if reply is not None and (reply[0], reply[1]) != (daddr, tup.remote_port):
                result, found = "hit", (reply[0], reply[1])
                break
            result = "miss"
        self.lookups[result] += 1
        if result in ("hit", "miss"):
            self._remember(key, found)
            if found is None:
                self._negative[dest] = now + self._cfg.negative_ttl
                self._negative.move_to_end(dest)
                while len(self._negative) > self._cfg.max_negative:
                    self._negative.popitem(last=False)
        return found

    # -- lifecycle ---------------------------------------------------------------------------

    def maintain(self) -> None:
        """Periodic work, from the capture thread (about every second), within the budget:
        every ``sweep_interval`` close the sockets of namespaces that are gone (no anchor
        left) or idle; every ``discover_interval`` look for new namespaces; read the
        addresses of namespaces never read, so short-lived clients can be placed by address."""
        now = self._clock()
        if now - self._last_sweep >= self._cfg.sweep_interval:
            self._last_sweep = now
            self._expire_negative(now)
            for rec in list(self._namespaces.values()):
                if not rec.own:
                    rec.anchors = [a for a in rec.anchors if self._inode(a) == rec.inode]
                    if not rec.anchors:
                        self._remove(rec.inode)
                        continue
                if rec.link is not None and rec.last_used < now - self._cfg.idle_timeout:
                    self._close_link(rec)
        if not self._closed:
            self._discover()
            self._read_unread()

    def namespace_count(self) -> int:
        return len(self._namespaces)

    def open_links(self) -> int:
        return len(self._open)

    def close(self) -> None:
        """Close every socket (idempotent)."""
        self._closed = True
        for rec in self._namespaces.values():
            self._close_link(rec)

    # -- internals ---------------------------------------------------------------------------

    def _inode(self, path: str) -> int:
        try:
            return os.stat(path).st_ino
        except OSError:
            return 0

    def _namespace(self, ns: int, evict: bool = True) -> Namespace | None:
        """The namespace's record, created when missing; when the table is full the least
        recently used one is dropped (``evict``) or nothing is created."""
        rec = self._namespaces.get(ns)
        if rec is not None:
            self._namespaces.move_to_end(ns)
            return rec
        if not evict and len(self._namespaces) >= self._cfg.max_namespaces:
            return None
        rec = self._namespaces[ns] = Namespace(ns, last_used=self._clock())
        while len(self._namespaces) > self._cfg.max_namespaces:
            oldest = next(r for r in self._namespaces.values() if not r.own)
            self._remove(oldest.inode)
        return rec

    def _drop_anchor(self, ns: int, pid: int) -> None:
        rec = self._namespaces.get(ns)
        if rec is not None:
            path = os.path.join(self._cfg.proc_root, str(pid), "ns", "net")
            if path in rec.anchors:
                rec.anchors.remove(path)

    def _remove(self, ns: int) -> None:
        rec = self._namespaces.pop(ns, None)
        if rec is None:
            return
        self._close_link(rec)
        if rec.addresses:
            self._index_addresses()

    def _close_link(self, rec: Namespace) -> None:
        self._open.pop(rec.inode, None)
        if rec.link is not None:
            link, rec.link = rec.link, None
            link.close()

    def _call(self, rec: Namespace, fn: Callable[[NamespaceLink], object]):
        """``fn(link)`` on the namespace's link, opened on first use through a live anchor.  An
        anchor that vanishes under us (the process exited between stat and setns) is dropped
        and the next one tried; raises :class:`NoAnchor` when none is left."""
        if self._closed:
            raise RuntimeError("resolver closed")
        discovered = False
        for _ in range(4 * self._cfg.max_anchors + 4):  # each turn drops an anchor or discovers
            path = None
            if rec.link is None and not rec.own:
                rec.anchors = [a for a in rec.anchors if self._inode(a) == rec.inode]
                if not rec.anchors:
                    if discovered:
                        raise NoAnchor(rec.inode)
                    discovered = True
                    self._discover()  # a bind mount or another process may still open it
                    if self._namespaces.get(rec.inode) is not rec:
                        raise NoAnchor(rec.inode)
                    continue
                path = rec.anchors[0]
            using = path if rec.link is None else rec.link_path
            try:
                if rec.link is None:
                    rec.link = self._open_link(path)
                    rec.link_path = path
                    self._open[rec.inode] = None
                    while len(self._open) > max(1, self._cfg.max_open_links):
                        self._close_link(self._namespaces[next(iter(self._open))])
                self._open.move_to_end(rec.inode)
                return fn(rec.link)
            except FileNotFoundError:
                if rec.own:
                    raise
                self._close_link(rec)
                if using in rec.anchors:
                    rec.anchors.remove(using)
        raise NoAnchor(rec.inode)

    def _pyroute2_link(self, path: str | None) -> NamespaceLink:
        if path is not None and self._libc is None:
            # Given to pyroute2 so its forked child does not look libc up (ldconfig) each time.
            self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return Pyroute2Link(path, self._libc)

    def _budget_left(self) -> bool:
        now = self._clock()
        self._tokens = min(self._cfg.time_burst, self._tokens + (now - self._refilled) * self._cfg.time_budget)
        self._refilled = now
        return self._tokens > 0

    def _refresh_addresses(self, rec: Namespace) -> None:
        now = self._clock()
        if rec.addresses_at is not None and now - rec.addresses_at < self._cfg.address_ttl:
            return
        if rec.link_failed_until > now or not self._budget_left():
            return
        t0 = self._clock()
        try:
            interfaces = self._call(rec, lambda link: link.interfaces())
        except NoAnchor:
            return
        except Exception as err:
            rec.link_failed_until = self._clock() + self._cfg.failure_backoff
            log.debug("reading the addresses of netns %d failed: %s", rec.inode, err)
            return
        finally:
            self._tokens -= self._clock() - t0
        rec.last_used = now
        changed = rec.addresses_at is None or set(rec.addresses) != {a for v in interfaces.values() for a in v}
        rec.interfaces = interfaces
        rec.addresses = frozenset(a for v in interfaces.values() for a in v)
        rec.addresses_at = now
        if changed:
            self._index_addresses()

    def _index_addresses(self) -> None:
        index: dict[str, int] = {}
        for rec in self._namespaces.values():
            for a in rec.addresses:
                if is_loopback(a) or a.startswith("fe80:"):
                    continue
                index[a] = rec.inode if index.get(a, rec.inode) == rec.inode else 0
        self._by_address = index

    def _learn_addresses(self, wanted: str) -> None:
        """Find the namespace carrying ``wanted``: read the addresses of namespaces not read yet
        (discovering namespaces first, at most every ``discover_interval``), within budget."""
        self._discover()
        self._read_unread()

    def _read_unread(self) -> None:
        """Read the addresses of namespaces never read, while the budget lasts.  All of them,
        not up to a first match, so that an address two namespaces carry is found ambiguous
        rather than placed wrongly."""
        for rec in list(self._namespaces.values()):
            if rec.addresses_at is not None or rec.link_failed_until > self._clock():
                continue
            if not self._budget_left():
                return
            self._refresh_addresses(rec)

    def _discover(self) -> None:
        now = self._clock()
        if now - self._last_discover < self._cfg.discover_interval or not self._budget_left():
            return
        self._last_discover = now
        t0 = self._clock()
        try:
            for path in self._candidate_paths():
                ns = self._inode(path)
                rec = (self._namespaces.get(ns) or self._namespace(ns, evict=False)) if ns else None
                if rec is not None:
                    if not rec.own and len(rec.anchors) < self._cfg.max_anchors and path not in rec.anchors:
                        rec.anchors.append(path)
                if self._clock() - t0 > self._cfg.time_budget:
                    break
        finally:
            self._tokens -= self._clock() - t0

    def _candidate_paths(self) -> Iterable[str]:
        try:
            names = sorted(os.listdir(self._cfg.netns_dir))
        except OSError:
            names = []
        for name in names:
            yield os.path.join(self._cfg.netns_dir, name)
        try:
            entries = os.scandir(self._cfg.proc_root)
        except OSError:
            return
        with entries:
            for i, entry in enumerate(entries):
                if i >= self._cfg.max_scan:
                    return
                if entry.name.isdigit():
                    yield os.path.join(entry.path, "ns", "net")

    def _remember(self, key: tuple, value: tuple[str, int] | None) -> None:
        self._translations[key] = value
        if len(self._translations) > self._cfg.max_translations:
            self._translations.popitem(last=False)

    def _expire_negative(self, now: float) -> None:
        neg = self._negative
        while neg and next(iter(neg.values())) <= now:
            neg.popitem(last=False)

    # -- self-metrics ------------------------------------------------------------------------

    def collect(self):
        nat = CounterMetricFamily(
            "ebpf_receiver_nat_lookups", "Conntrack lookups of NAT'd client destinations, by result.",
            labels=["result"],
        )
        for result, n in self.lookups.items():
            nat.add_metric([result], n)
        yield nat
        namespaces = GaugeMetricFamily("ebpf_receiver_netns_tracked", "Network namespaces with a record.")
        namespaces.add_metric([], self.namespace_count())
        yield namespaces
