"""Settings of the ``ebpf`` receiver (``receivers: {ebpf: ...}``); defaults live here only."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from receiver.configuration.mappings import FrozenMap
from receiver.configuration.section import ConfigSection, setting
from receiver.configuration.checks import not_empty
from receiver.discovery.config import DiscoveryConfig
from receiver.discovery.log_pipes import DEFAULT_LOG_READERS
from receiver.telemetry.network_config import NetworkMetricsConfig
from receiver.telemetry.sampling import SAMPLER_NAMES

KIB = 1024
MIB = 1024 * KIB

PROTOCOL_NAMES = ("http", "http2", "grpc", "postgresql", "mysql", "redis")


@dataclass(frozen=True, slots=True)
class ProtocolConfig(ConfigSection):
    ports: tuple[int, ...] = setting(
        (), "Server ports known to carry this protocol; empty means detect it on any port.", minimum=1, maximum=65535
    )
    enabled: bool = setting(True, "Parse this protocol at all.")


@dataclass(frozen=True, slots=True)
class SamplerConfig(ConfigSection):
    """Head sampling of the traces that start (or continue) here; names as OTEL_TRACES_SAMPLER."""

    name: str = setting(
        "parentbased_always_on",
        "always_on, always_off, traceidratio, or parentbased_* of one of them: keep the caller's decision "
        "(the W3C sampled flag) for traces that arrive with a traceparent. Sampled-out spans are not exported, "
        "but still counted in the RED metrics.",
        choices=SAMPLER_NAMES,
    )
    ratio: float = setting(
        1.0, "Fraction of traces kept by traceidratio (decided on the trace id, like the SDKs).",
        minimum=0.0, maximum=1.0,
    )


@dataclass(frozen=True, slots=True)
class HttpPairingConfig(ConfigSection):
    """``http_pairing``: HTTP/1 requests paired with their responses in the kernel, and overload
    aggregated there (one record per transaction, no body byte leaves the kernel)."""

    enabled: bool = setting(
        True, "Pair HTTP/1 transactions in the kernel; what it cannot pair (pipelining, Expect, Upgrade, "
        "heads over 2 KiB...) is handed to the payload path's parser at a request, counted by reason.",
    )
    connections: int = setting(
        8192, "Most connections paired at once (about 1.5 KiB of kernel memory each); past it the least "
        "recently used fall back to the payload path.", minimum=1,
    )
    aggregate_keys: int = setting(
        2048, "Most overload aggregates (process, method, status, role, scheme, version, server) kept in "
        "the kernel between two reads (152 bytes of kernel memory per CPU each); past it, transactions are "
        "counted lost.", minimum=1,
    )
    shed_ring_fraction: float = setting(
        0.5, "With more of the ring buffer than this waiting, transactions are aggregated in the kernel "
        "instead of submitted (RED counts stay exact; no span); 0 never.", minimum=0.0, maximum=1.0,
    )
    shed_error_ring_fraction: float = setting(
        0.9, "The same for errors (5xx; 4xx too for a client; no response): they are shed last.",
        minimum=0.0, maximum=1.0,
    )

    shed_keep_slower_than: float | None = setting(
        None, "Transactions lasting at least this long are shed as late as errors; null: the smallest "
        "latency threshold_ms of a tail_sampling processor's latency policies (none: off); 0: off.",
        kind="duration", minimum=0.0,
    )

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if self.shed_ring_fraction and self.shed_error_ring_fraction and (
                self.shed_error_ring_fraction < self.shed_ring_fraction):
            yield "shed_error_ring_fraction", "shed_error_ring_fraction must not be below shed_ring_fraction"


@dataclass(frozen=True, slots=True)
class EbpfReceiverConfig(ConfigSection):
    """``ebpf``: captures socket traffic of local processes with eBPF."""

    capture_size: int = setting(
        4096, "Bytes of payload captured per syscall.", kind="bytes", minimum=64, maximum=16 * KIB
    )
    ring_buffer_size: int = setting(
        16 * MIB, "Size of the kernel→user ring buffer; a power of two.", kind="bytes",
        minimum=4 * KIB, maximum=1024 * MIB, power_of_two=True,
    )
    poll_interval: float = setting(
        0.1, "Longest wait between two ring-buffer polls (the reader is also woken every wakeup_bytes of "
        "records). Each poll costs the agent some 0.1 ms of CPU whatever it finds (the thread's wakeup "
        "included), so fewer and larger batches are cheaper: 20 ms costs about 2 us more per request at "
        "5,000 req/s.", kind="duration", above=0,
    )
    cpu_budget: float = setting(
        0.5, "Cores the agent may use; over it, the kernel aggregates successful HTTP/1 transactions into the "
        "RED metrics instead of sending them as spans (then all of them), until the agent is back under. 0: no "
        "budget.", minimum=0.0,
    )
    node_busy_threshold: float = setting(
        0.85, "Share of all the node's CPUs (0..1) the other processes use, over the last half second, at or above "
        "which the kernel aggregates successful HTTP/1 transactions into the RED metrics instead of sending them as "
        "spans (errors and slow requests stay spans), when the agent itself is busy with traffic (0.05 core and 1,000 "
        "transactions a second or more): on a saturated node even an agent in the idle scheduling class costs the "
        "workloads throughput. Back to spans after 5 s under 75 % of it. 0: never.",
        minimum=0.0, maximum=1.0,
    )
    scheduling: str = setting(
        "idle", "Scheduling class of the agent's threads: idle (SCHED_IDLE: never preempts the workloads it "
        "traces), batch (SCHED_BATCH), normal.", choices=("idle", "batch", "normal"),
    )
    wakeup_bytes: int = setting(
        1 * MIB, "Wake the reader early each time this many more bytes are waiting; 0 wakes on every event.",
        kind="bytes", minimum=0,
    )
    capture_logs: bool = setting(
        False, "Also turn writes to stdout/stderr that go to a log destination (a terminal, a file, a container "
        "runtime's log pipe) into log records; see docs/telemetry.md, \"Logs\"."
    )
    log_pipes: str = setting(
        "classified", "Which stdout/stderr pipes are log destinations: classified (a pipe whose reader is a container "
        "runtime or log collector, see log_pipe_readers; not a pipe into another local process), all, none.",
        choices=("classified", "all", "none"),
    )
    log_pipe_readers: tuple[str, ...] = setting(
        DEFAULT_LOG_READERS, "Process names (globs on comm) whose pipes are log destinations.", check=not_empty,
    )
    observe_self: bool = setting(
        False, "Trace the other end of the agent's own connections (the collector receiving its exports, scrapers "
        "of its metrics) and capture the logs of processes that receive its exports: for debugging only, it makes "
        "a loop through the agent's exports.",
    )
    exclude_ports: tuple[int, ...] = setting((), "Ports whose traffic is never captured.", minimum=1, maximum=65535)
    exclude_pids: tuple[int, ...] = setting((), "Processes that are never traced.", minimum=1, maximum=4194304)
    max_connections: int = setting(65536, "Most connections tracked at once (kernel and user space).", minimum=1)
    max_buffer_per_connection: int = setting(
        64 * KIB, "Most unparsed bytes kept per connection and direction.", kind="bytes", minimum=64
    )
    connection_idle_timeout: float = setting(
        300.0, "Forget a connection after this long without traffic.", kind="duration", above=0
    )
    protocols: Mapping[str, ProtocolConfig] = setting(
        FrozenMap(), "Per-protocol settings; protocols not listed are enabled and detected on any port.",
        keys=PROTOCOL_NAMES,
    )
    discovery: DiscoveryConfig = setting(
        DiscoveryConfig(), "Which processes are traced (applied in the kernel), TLS library discovery."
    )
    sampler: SamplerConfig = setting(SamplerConfig(), "Which traces are exported as spans.")
    http_pairing: HttpPairingConfig = setting(
        HttpPairingConfig(), "HTTP/1 transactions paired in the kernel, and overload handled there."
    )
    network_metrics: NetworkMetricsConfig = setting(
        NetworkMetricsConfig(), "Network health metrics (TCP RTT, retransmits, resets, connects, flows); each off by default."
    )

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if self.wakeup_bytes > self.ring_buffer_size:
            yield "wakeup_bytes", "wakeup_bytes must not exceed ring_buffer_size"
        if self.max_buffer_per_connection < self.capture_size:
            yield "max_buffer_per_connection", "max_buffer_per_connection must be at least capture_size"
