"""The ebpf receiver's self-telemetry, read at scrape time.

Each stage reports its own counters (a ``collect()`` yielding prometheus_client metric
families, the collector pattern); this module adds the kernel's (records produced, delivered and
lost by reason, other kernel conditions) and serves them all as one collector, merging families
that several stages report under one name (``ebpf_receiver_connections_dropped``: the tracker's
``table_full``/``idle`` and the protocol stage's ``unknown_protocol``).
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric as PromMetric

from receiver.connections.tracker import TLS_UNATTACHED_HELP

# Lost reasons: enum erx_counter index -> label (the index names come from the ABI header).
_LOST = {"ERX_CNT_LOST_RINGBUF_FULL": "ringbuf_full", "ERX_CNT_LOST_NO_SCRATCH": "no_scratch"}
# TLS plaintext the kernel could not tie to a connection: ebpf_receiver_tls_unattached{reason}, a
# family the connection tracker also reports (its reason: no_library).
_TLS_UNATTACHED = {"ERX_CNT_TLS_UNMAPPED": "no_socket", "ERX_CNT_TLS_NO_CONN": "connection_table_full",
                   "ERX_CNT_TLS_GO_NO_FD": "go_no_fd"}
_CONDITIONS = {
    "ERX_CNT_PAYLOAD_READ_FAILED": "payload_read_failed",
    "ERX_CNT_CONN_TABLE_FULL": "conn_table_full",
    "ERX_CNT_INFLIGHT_FULL": "inflight_table_full",
    "ERX_CNT_FILTERED": "filtered",
    "ERX_CNT_TLS_CIPHERTEXT": "tls_ciphertext_suppressed",
    "ERX_CNT_TLS_BIO_BOUND": "tls_memory_bio_bound",
    "ERX_CNT_DATA_AFTER_CLOSE": "data_after_close",
    # closes of connections user space held nothing of (their one record was their last paired
    # transaction): no record sent
    "ERX_CNT_CLOSE_UNANNOUNCED": "close_unannounced",
    # HTTP/1 pairing in the kernel: transactions paired, connections handed to the payload path
    # by reason, transactions aggregated instead of submitted by reason, lost to a full map.
    "ERX_CNT_HTTP_PAIRED": "http_paired",
    **{f"ERX_CNT_HTTP_FALLBACK_{r}": f"http_fallback_{r.lower()}" for r in (
        "PIPELINED", "EXPECT", "UPGRADE", "HEAD_TOO_LARGE", "UNPARSED", "UNEXPECTED", "TRUNCATED", "NO_STATE",
        "UNSUPPORTED")},
    "ERX_CNT_SHED_RING": "http_shed_ring",
    "ERX_CNT_SHED_LEVEL": "http_shed_level",
    "ERX_CNT_SHED_RING_FULL": "http_shed_ring_full",
    "ERX_CNT_HTTP_AGG_FULL": "http_aggregates_full",
}


class KernelCounters:
    """``erx_counters`` (read from the loaded object) and the records user space received."""

    def __init__(self, counters: Callable[[], list[int]], const: Callable[[str], int],
                 delivered: Callable[[], int], internal_errors: Callable[[], tuple[int, int]] = lambda: (0, 0)) -> None:
        self._counters = counters
        self._const = const
        self._delivered = delivered
        self._internal_errors = internal_errors

    def collect(self) -> Iterator[CounterMetricFamily]:
        counters = self._counters()
        produced = CounterMetricFamily("ebpf_receiver_kernel_events_produced", "Records the kernel side tried to submit.")
        delivered = CounterMetricFamily(
            "ebpf_receiver_kernel_events_received", "Records read from the ring buffer by user space."
        )
        lost = CounterMetricFamily(
            "ebpf_receiver_kernel_events_lost", "Records the kernel could not submit, by reason.", labels=["reason"]
        )
        other = CounterMetricFamily(
            "ebpf_receiver_kernel_conditions", "Other kernel-side conditions, by kind.", labels=["condition"]
        )
        unattached = CounterMetricFamily("ebpf_receiver_tls_unattached", TLS_UNATTACHED_HELP, labels=["reason"])
        if counters:
            c = self._const
            produced.add_metric([], counters[c("ERX_CNT_PRODUCED")])
            for name, label in _LOST.items():
                lost.add_metric([label], counters[c(name)])
            for name, label in _CONDITIONS.items():
                other.add_metric([label], counters[c(name)])
            for name, label in _TLS_UNATTACHED.items():
                unattached.add_metric([label], counters[c(name)])
        delivered.add_metric([], self._delivered())
        errors = CounterMetricFamily(
            "ebpf_receiver_internal_errors",
            "Batches of records a bug in the agent cut short (capture goes on), and the records in them.",
            labels=["what"],
        )
        batches, records = self._internal_errors()
        errors.add_metric(["batches"], batches)
        errors.add_metric(["records"], records)
        yield from (produced, delivered, lost, other, errors, unattached)


class MergedCollector:
    """Serves the families of several collectors as one, merging same-named families."""

    def __init__(self, collectors: Iterable) -> None:
        self._collectors = list(collectors)

    def collect(self) -> Iterator[PromMetric]:
        merged: dict[str, PromMetric] = {}
        for collector in self._collectors:
            for family in collector.collect():
                known = merged.get(family.name)
                if known is None:
                    merged[family.name] = family
                else:
                    known.samples.extend(family.samples)
        yield from merged.values()

    def describe(self) -> list:
        return []
