"""Settings of the network health metrics (``receivers.ebpf.network_metrics``); defaults live here."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from receiver.configuration.checks import not_empty
from receiver.configuration.section import ConfigSection, setting

# Kernel histograms hold at most this many bounds (ERX_NET_BOUNDS in bpf/src/abi/events.h; a
# test checks the two agree).
NETWORK_MAX_BOUNDS = 31
RTT_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.0225,
    0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0,
)
CONNECT_DURATION_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.0225,
    0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


def _bucket_problems(name: str, bounds: tuple[float, ...]) -> Iterator[tuple[str, str]]:
    if len(bounds) > NETWORK_MAX_BOUNDS:
        yield name, f"at most {NETWORK_MAX_BOUNDS} bucket bounds (the kernel histogram's size), got {len(bounds)}"
    if list(bounds) != sorted(set(bounds)):
        yield name, "bucket bounds must be strictly increasing"
    elif bounds and (bounds[0] < 1e-6 or any(round(b * 1e6) == round(a * 1e6) for a, b in zip(bounds, bounds[1:]))):
        yield name, "bucket bounds are counted in microseconds: each at least 1us, 1us apart"


@dataclass(frozen=True, slots=True)
class NetworkMetricsConfig(ConfigSection):
    """Network health under the traffic: TCP tracepoints and tc, aggregated in kernel maps and
    read on each collection (docs/telemetry.md, "Network metrics")."""

    rtt: bool = setting(False, "network.tcp.rtt: smoothed RTT per peer, sampled per connection (histogram).")
    retransmits: bool = setting(False, "network.tcp.retransmits: retransmitted segments per process and peer.")
    resets: bool = setting(False, "network.tcp.resets: RSTs sent and received.")
    connect_failures: bool = setting(
        False, "network.tcp.connect.failures: failed connects by reason (refused, timeout, unreachable, ...)."
    )
    connect_duration: bool = setting(False, "network.tcp.connect.duration: SYN sent to connection established.")
    flow: bool = setting(
        False, "network.flow.bytes / network.flow.packets of TCP connections, per process, peer and direction."
    )
    tc_flow: bool = setting(
        False, "network.flow.bytes / network.flow.packets at tc for packets no local socket sent or receives "
        "(forwarded, proxied below the socket layer), on tc_interfaces."
    )
    tc_interfaces: tuple[str, ...] = setting(
        (), "Interfaces (of the agent's network namespace) that get the tc classifiers when tc_flow is on.",
        check=not_empty,
    )
    sample_interval: float = setting(
        1.0, "A connection's RTT and byte counters are sampled by its data syscalls at most this often "
        "(and always when it connects and closes).", kind="duration", above=0,
    )
    rtt_buckets: tuple[float, ...] = setting(RTT_BUCKETS, "Bucket bounds of network.tcp.rtt, seconds.", above=0)
    connect_duration_buckets: tuple[float, ...] = setting(
        CONNECT_DURATION_BUCKETS, "Bucket bounds of network.tcp.connect.duration, seconds.", above=0
    )
    max_series: int = setting(
        4096, "Most (process, peer, port) entries in the kernel and attribute sets per metric in user space; "
        "more go to one series with otel.metric.overflow=true.", minimum=16,
    )

    @property
    def enabled_metrics(self) -> frozenset[str]:
        names = ("rtt", "retransmits", "resets", "connect_failures", "connect_duration", "flow", "tc_flow")
        return frozenset(n for n in names if getattr(self, n))

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        yield from _bucket_problems("rtt_buckets", self.rtt_buckets)
        yield from _bucket_problems("connect_duration_buckets", self.connect_duration_buckets)
        if self.tc_flow and not self.tc_interfaces:
            yield "tc_interfaces", "tc_flow needs at least one interface in tc_interfaces"
