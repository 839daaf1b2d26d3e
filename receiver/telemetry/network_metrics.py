"""Network health metrics: the kernel's per-peer aggregates (``bpf/src/progs/tcp_health.h``,
``tc_flow.h``) read on an interval and turned into cumulative OTel metrics.

The kernel keeps cumulative counters and histograms per (process, peer address, service port,
side) in ``erx_net_stats`` and per socketless flow in ``erx_tc_flows``.  :meth:`NetworkMetrics.poll`
reads both maps, adds each entry's growth since the previous read to user-space series keyed
by (metric, resource, attributes), deletes the kernel entries of processes that are gone (after
counting them).  :meth:`NetworkMetrics.collect` polls
and returns :class:`Metric` objects like ``RedMetrics.collect``:

===============================  =========  ==============================================
``network.tcp.rtt``              histogram  s, smoothed RTT samples (``tcp_sock.srtt_us``)
``network.tcp.connect.duration`` histogram  s, SYN sent -> ESTABLISHED
``network.tcp.retransmits``      sum        ``{segment}``
``network.tcp.resets``           sum        ``{segment}``, ``network.io.direction``
``network.tcp.connect.failures`` sum        ``{connection}``, ``error.type`` = reason
``network.flow.bytes``           sum        ``By``, ``network.io.direction``
``network.flow.packets``         sum        ``{packet}``, ``network.io.direction``
===============================  =========  ==============================================

The process is the resource (``resource_for_pid``); entries of no process (tgid 0: RSTs the
kernel sends for closed ports, sockets never seen in a syscall) and tc flows go to
``host_resource``.  Each metric holds at most ``max_series`` attribute sets; the rest, and what
the kernel counted into its overflow entry, go to one series per resource whose only attribute
is ``otel.metric.overflow=true``.  ``peer_name(address, port)`` is the hook that collapses a
peer address into a service name (``server.address``), e.g. from DNS or Kubernetes.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from typing import Callable, Protocol

from receiver.bpf.network_knobs import NetworkKnobs
from receiver.capture.events import connect_failure_labels
from receiver.model.telemetry import AttrValue, HistogramPoint, Metric, MetricKind, Resource, SumPoint
from receiver.telemetry.red_metrics import OVERFLOW_ATTRIBUTES

Attrs = tuple[tuple[str, AttrValue], ...]

RTT = "network.tcp.rtt"
CONNECT_DURATION = "network.tcp.connect.duration"
RETRANSMITS = "network.tcp.retransmits"
RESETS = "network.tcp.resets"
CONNECT_FAILURES = "network.tcp.connect.failures"
FLOW_BYTES = "network.flow.bytes"
FLOW_PACKETS = "network.flow.packets"

# name -> (description, unit)
DESCRIPTIONS: dict[str, tuple[str, str]] = {
    RTT: ("Smoothed round-trip time of TCP connections, sampled per connection.", "s"),
    CONNECT_DURATION: ("Time from sending a SYN to the connection being established.", "s"),
    RETRANSMITS: ("TCP segments retransmitted.", "{segment}"),
    RESETS: ("TCP RST segments sent and received.", "{segment}"),
    CONNECT_FAILURES: ("TCP connects that failed, by reason.", "{connection}"),
    FLOW_BYTES: ("Bytes moved: TCP payload acknowledged/received, or whole packets at tc.", "By"),
    FLOW_PACKETS: ("Packets moved: TCP segments (retransmits and ACKs included), or packets at tc.", "{packet}"),
}


AF_INET, AF_INET6 = 2, 10
UNKNOWN_SIDE, CLIENT_SIDE, SERVER_SIDE = 0, 1, 2
TRANSMIT, RECEIVE = "transmit", "receive"
DEFAULT_HOST_RESOURCE = Resource.from_dict({"service.name": "unknown_service:kernel"})


class NetworkMapsSource(Protocol):
    """What :class:`NetworkMetrics` reads the kernel through (a started ``BpfLoader``)."""

    abi: object

    def map_items(self, name: str, key_size: int, value_size: int) -> list[tuple[bytes, bytes]]: ...
    def map_delete(self, name: str, key: bytes) -> None: ...
    def read_counters(self) -> list[int]: ...


def network_knobs(cfg) -> NetworkKnobs | None:
    """``receivers.ebpf.network_metrics`` -> the loader's knobs (None when every metric is off)."""
    metrics = cfg.enabled_metrics
    if not metrics:
        return None
    return NetworkKnobs(
        metrics=metrics,
        sample_interval_s=cfg.sample_interval,
        rtt_bounds_s=tuple(cfg.rtt_buckets),
        connect_bounds_s=tuple(cfg.connect_duration_buckets),
        max_series=cfg.max_series,
    )


def format_address(raw: bytes, family: int) -> tuple[str, str]:
    """(address text, network.type) of a 16-byte kernel address; IPv4-mapped IPv6 is IPv4."""
    if family == AF_INET:
        return str(ipaddress.IPv4Address(raw[:4])), "ipv4"
    addr = ipaddress.IPv6Address(raw[:16])
    if addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped), "ipv4"
    return str(addr), "ipv6"


def _pid_alive(proc_root: str) -> Callable[[int], bool]:
    return lambda pid: os.path.exists(f"{proc_root}/{pid}")


class _Hist:
    __slots__ = ("start", "count", "sum", "buckets", "changed")

    def __init__(self, start: int, n: int) -> None:
        self.start, self.count, self.sum, self.buckets, self.changed = start, 0, 0.0, [0] * n, start


class _Sum:
    __slots__ = ("start", "value", "changed")

    def __init__(self, start: int) -> None:
        self.start, self.value, self.changed = start, 0, start


class NetworkMetrics:
    """Reads the network-health maps of a started loader; thread-safe."""

    def __init__(
        self,
        source: NetworkMapsSource,
        config,
        resource_for_pid: Callable[[int], Resource],
        host_resource: Resource = DEFAULT_HOST_RESOURCE,
        peer_name: Callable[[str, int], str | None] = lambda address, port: None,
        clock_ns: Callable[[], int] = time.time_ns,
        pid_alive: Callable[[int], bool] | None = None,
        series_idle_timeout_s: float = 600.0,
    ) -> None:
        abi = source.abi
        self._source = source
        self._cfg = config
        self._enabled = config.enabled_metrics
        self._resource_for_pid = resource_for_pid
        self._host = host_resource
        self._peer_name = peer_name
        self._clock = clock_ns
        self._pid_alive = pid_alive or _pid_alive("/proc")
        self._idle_ns = int(series_idle_timeout_s * 1e9)
        self._key_fmt, self._key_names = abi.struct_format("erx_net_key")
        self._val_fmt, self._val_names = abi.struct_format("erx_net_stats")
        self._tc_key_fmt, self._tc_key_names = abi.struct_format("erx_tc_flow_key")
        self._tc_val_fmt, _ = abi.struct_format("erx_tc_flow_stats")
        self._n_buckets = abi.const("ERX_NET_BUCKETS")
        self._failure_labels = connect_failure_labels(abi)
        self._rtt_bounds = tuple(float(b) for b in config.rtt_buckets)
        self._connect_bounds = tuple(float(b) for b in config.connect_duration_buckets)
        self._lock = threading.Lock()
        self._last: dict[tuple[str, bytes], tuple[int, ...]] = {}  # (map, kernel key) -> values read
        self._hists: dict[str, dict[Resource, dict[Attrs, _Hist]]] = {}
        self._sums: dict[str, dict[Resource, dict[Attrs, _Sum]]] = {}
        self._n_series: dict[str, int] = {}
        self.polls = 0

    # -- reading the kernel ------------------------------------------------------------------

    def poll(self) -> None:
        """Read the kernel maps once: their growth goes into the series."""
        now = self._clock()
        with self._lock:
            self.polls += 1
            self._poll_stats(now)
            if "tc_flow" in self._enabled:
                self._poll_tc(now)
            self._expire(now)

    def _poll_stats(self, now: int) -> None:
        src = self._source
        key_size, val_size = self._key_fmt.size, self._val_fmt.size
        seen: set[bytes] = set()
        gone: dict[int, bool] = {}
        for raw_key, raw_val in src.map_items("erx_net_stats", key_size, val_size):
            seen.add(raw_key)
            vals = self._val_fmt.unpack(raw_val)
            last = self._last.get(("s", raw_key))
            self._last[("s", raw_key)] = vals
            delta = vals if last is None else tuple(a - b for a, b in zip(vals, last))
            if any(delta):
                self._add_stats(dict(zip(self._key_names, self._key_fmt.unpack(raw_key))), delta, now)
            tgid = self._key_fmt.unpack(raw_key)[self._key_names.index("tgid")]
            if tgid:
                if tgid not in gone:
                    gone[tgid] = not self._pid_alive(tgid)
                if gone[tgid]:  # counted above; the process will add nothing more
                    src.map_delete("erx_net_stats", raw_key)
                    seen.discard(raw_key)
        for k in [k for k in self._last if k[0] == "s" and k[1] not in seen]:
            del self._last[k]

    def _add_stats(self, key: dict, delta: tuple[int, ...], now: int) -> None:
        d = dict(zip(self._val_names, delta))
        nb = self._n_buckets
        resource, base = self._identity(key)
        on = self._enabled
        if "retransmits" in on and d["retransmits"]:
            self._add_sum(RETRANSMITS, resource, base, d["retransmits"], now)
        if "resets" in on:
            for direction, name in ((TRANSMIT, "resets_sent"), (RECEIVE, "resets_received")):
                if d[name]:
                    self._add_sum(RESETS, resource, base + (("network.io.direction", direction),), d[name], now)
        if "flow" in on:
            for direction, b, p in ((TRANSMIT, "bytes_sent", "segs_out"), (RECEIVE, "bytes_received", "segs_in")):
                attrs = base + (("network.io.direction", direction),)
                if d[b]:
                    self._add_sum(FLOW_BYTES, resource, attrs, d[b], now)
                if d[p]:
                    self._add_sum(FLOW_PACKETS, resource, attrs, d[p], now)
        if "connect_failures" in on:
            for i, reason in enumerate(self._failure_labels):
                n = d[f"connect_failures[{i}]"]
                if n:
                    self._add_sum(CONNECT_FAILURES, resource, base + (("error.type", reason),), n, now)
        for metric, prefix, bounds, flag in (
            (RTT, "rtt", self._rtt_bounds, "rtt"),
            (CONNECT_DURATION, "connect", self._connect_bounds, "connect_duration"),
        ):
            if flag in on and d[f"{prefix}_count"]:
                # Kernel buckets past len(bounds) stay empty: the last used one is (bounds[-1], +Inf).
                buckets = [d[f"{prefix}_buckets[{i}]"] for i in range(nb)][: len(bounds) + 1]
                self._add_hist(metric, resource, base, d[f"{prefix}_count"], d[f"{prefix}_sum_us"] / 1e6, buckets, now)

    def _identity(self, key: dict) -> tuple[Resource, Attrs]:
        """(resource, attributes) of one kernel entry."""
        if key["overflow"]:
            return self._host, OVERFLOW_ATTRIBUTES
        resource = self._resource_for_pid(key["tgid"]) if key["tgid"] else self._host
        address, net_type = format_address(key["peer_addr"], key["family"])
        port, side = key["port"], key["side"]
        name = self._peer_name(address, port)
        attrs: list[tuple[str, AttrValue]] = [("network.transport", "tcp"), ("network.type", net_type)]
        if name is None:
            attrs.append(("network.peer.address", address))
        if side == CLIENT_SIDE:
            attrs += [("network.peer.port", port), ("server.address", name or address), ("server.port", port)]
        elif side == SERVER_SIDE:
            attrs.append(("server.port", port))
            if name is not None:
                attrs.append(("client.address", name))
        else:  # the kernel guessed the service port (the lower one)
            attrs.append(("server.port", port))
            if name is not None:
                attrs.append(("server.address", name))
        return resource, tuple(sorted(attrs))

    def _poll_tc(self, now: int) -> None:
        key_size, val_size = self._tc_key_fmt.size, self._tc_val_fmt.size
        seen: set[bytes] = set()
        for raw_key, raw_val in self._source.map_items("erx_tc_flows", key_size, val_size):
            seen.add(raw_key)
            vals = self._tc_val_fmt.unpack(raw_val)
            last = self._last.get(("t", raw_key))
            self._last[("t", raw_key)] = vals
            packets, nbytes = vals if last is None else (vals[0] - last[0], vals[1] - last[1])
            if not packets and not nbytes:
                continue
            k = dict(zip(self._tc_key_names, self._tc_key_fmt.unpack(raw_key)))
            if k["overflow"]:
                attrs = OVERFLOW_ATTRIBUTES
            else:
                src, net_type = format_address(k["saddr"], k["family"])
                dst, _ = format_address(k["daddr"], k["family"])
                proto = {6: "tcp", 17: "udp"}.get(k["protocol"], str(k["protocol"]))
                attrs = tuple(sorted((
                    ("source.address", src), ("destination.address", dst), ("network.transport", proto),
                    ("network.type", net_type), ("network.interface.name", _ifname(k["ifindex"])),
                    ("network.io.direction", RECEIVE if k["direction"] else TRANSMIT), ("server.port", k["port"]),
                )))
            if packets:
                self._add_sum(FLOW_PACKETS, self._host, attrs, packets, now)
            if nbytes:
                self._add_sum(FLOW_BYTES, self._host, attrs, nbytes, now)
        for k in [k for k in self._last if k[0] == "t" and k[1] not in seen]:
            del self._last[k]

    # -- series ------------------------------------------------------------------------------

    def _slot(self, table: dict, name: str, resource: Resource, attrs: Attrs, make):
        by_attrs = table.setdefault(name, {}).setdefault(resource, {})
        series = by_attrs.get(attrs)
        if series is None:
            if attrs != OVERFLOW_ATTRIBUTES and self._n_series.get(name, 0) >= self._cfg.max_series:
                attrs = OVERFLOW_ATTRIBUTES
                series = by_attrs.get(attrs)
            elif attrs != OVERFLOW_ATTRIBUTES:
                self._n_series[name] = self._n_series.get(name, 0) + 1
            if series is None:
                series = by_attrs[attrs] = make()
        return series

    def _add_sum(self, name: str, resource: Resource, attrs: Attrs, n: int, now: int) -> None:
        s = self._slot(self._sums, name, resource, attrs, lambda: _Sum(now))
        s.value += n
        s.changed = now

    def _add_hist(self, name, resource, attrs, count, total_s, buckets, now) -> None:
        h = self._slot(self._hists, name, resource, attrs, lambda: _Hist(now, len(buckets)))
        h.count += count
        h.sum += total_s
        for i, n in enumerate(buckets):
            h.buckets[i] += n
        h.changed = now

    def _expire(self, now: int) -> None:
        for table in (self._sums, self._hists):
            for name, by_resource in table.items():
                for resource in list(by_resource):
                    by_attrs = by_resource[resource]
                    for attrs in [a for a, s in by_attrs.items() if now - s.changed > self._idle_ns]:
                        del by_attrs[attrs]
                        if attrs != OVERFLOW_ATTRIBUTES:
                            self._n_series[name] -= 1
                    if not by_attrs:
                        del by_resource[resource]

    def collect(self) -> list[Metric]:
        """Poll, then a snapshot: one :class:`Metric` per (name, resource), cumulative."""
        self.poll()
        now = self._clock()
        out: list[Metric] = []
        with self._lock:
            for name, by_resource in self._sums.items():
                desc, unit = DESCRIPTIONS[name]
                for resource, by_attrs in by_resource.items():
                    points = [SumPoint(a, s.start, max(now, s.start), s.value) for a, s in by_attrs.items()]
                    out.append(Metric(name, desc, unit, MetricKind.SUM, points, resource))
            for name, by_resource in self._hists.items():
                desc, unit = DESCRIPTIONS[name]
                bounds = self._rtt_bounds if name == RTT else self._connect_bounds
                for resource, by_attrs in by_resource.items():
                    points = [
                        HistogramPoint(
                            attributes=a, start_time_unix_nano=h.start, time_unix_nano=max(now, h.start),
                            count=h.count, sum=h.sum, bucket_counts=list(h.buckets), explicit_bounds=bounds,
                            min=float("inf"), max=float("-inf"),  # not kept in the kernel: left out of OTLP
                        )
                        for a, h in by_attrs.items()
                    ]
                    out.append(Metric(name, desc, unit, MetricKind.HISTOGRAM, points, resource))
        return out


def _ifname(index: int) -> str:
    try:
        return socket.if_indextoname(index)
    except OSError:
        return str(index)
