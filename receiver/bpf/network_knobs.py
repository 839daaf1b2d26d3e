"""The network health metrics' knobs and which BPF programs each metric needs loaded."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NetworkKnobs:
    """What the kernel side of the network health metrics needs (from ``network_metrics``).

    ``metrics`` holds names of :data:`NETWORK_METRIC_BITS`; histogram bounds are in seconds
    (at most ``ERX_NET_BOUNDS`` each, converted to microseconds for the kernel)."""

    metrics: frozenset[str] = frozenset()
    sample_interval_s: float = 1.0
    rtt_bounds_s: tuple[float, ...] = ()
    connect_bounds_s: tuple[float, ...] = ()
    max_series: int = 4096


# network_metrics names -> the ABI's enum erx_net_metric constants.
NETWORK_METRIC_BITS: dict[str, str] = {
    "rtt": "ERX_NET_RTT",
    "retransmits": "ERX_NET_RETRANSMITS",
    "resets": "ERX_NET_RESETS",
    "connect_failures": "ERX_NET_CONNECT_FAILURES",
    "connect_duration": "ERX_NET_CONNECT_DURATION",
    "flow": "ERX_NET_FLOW",
    "tc_flow": "ERX_NET_TC_FLOW",
}
# Program -> the metrics that need it loaded (a program is loaded when one of them is on).
NETWORK_PROGRAMS: dict[str, tuple[str, ...]] = {
    "erx_tcp_state": ("rtt", "retransmits", "resets", "connect_failures", "connect_duration", "flow"),
    "erx_tcp_retransmit": ("retransmits",),
    "erx_tcp_receive_reset": ("resets",),
    "erx_tcp_send_reset": ("resets",),
    "erx_tc_ingress": ("tc_flow",),
    "erx_tc_egress": ("tc_flow",),
}
