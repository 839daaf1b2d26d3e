"""The capture layer's self-telemetry, read at scrape time: kernel records produced,
delivered and lost by reason; user-space decoding, connection and parser counters."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from receiver.discovery.metrics import discovery_metric_families

# Lost reasons: enum erx_counter index -> label (the index names come from the ABI header).
_LOST = {"ERX_CNT_LOST_RINGBUF_FULL": "ringbuf_full", "ERX_CNT_LOST_NO_SCRATCH": "no_scratch"}
# HTTP/1 pairing in the kernel: transactions paired, connections handed to the payload path by
# reason, transactions aggregated instead of submitted by reason, and lost to a full aggregate map.
_HTTP_CONDITIONS = (
    ("ERX_CNT_HTTP_PAIRED", "http_paired"),
    *((f"ERX_CNT_HTTP_FALLBACK_{r}", f"http_fallback_{r.lower()}") for r in (
        "PIPELINED", "EXPECT", "UPGRADE", "HEAD_TOO_LARGE", "UNPARSED", "UNEXPECTED", "TRUNCATED", "NO_STATE",
        "UNSUPPORTED")),
    ("ERX_CNT_SHED_RING", "http_shed_ring"),
    ("ERX_CNT_SHED_LEVEL", "http_shed_level"),
    ("ERX_CNT_SHED_RING_FULL", "http_shed_ring_full"),
    ("ERX_CNT_HTTP_AGG_FULL", "http_aggregates_full"),
)


class CaptureMetricsCollector:
    def __init__(self, receiver) -> None:
        self._receiver = receiver

    def describe(self):
        return []

    def collect(self):
        r = self._receiver
        counters = r.kernel_counters()
        loader = r.loader
        produced = CounterMetricFamily(
            "ebpf_receiver_kernel_events_produced", "Records the kernel side tried to submit."
        )
        delivered = CounterMetricFamily(
            "ebpf_receiver_kernel_events_received", "Records read from the ring buffer by user space."
        )
        lost = CounterMetricFamily(
            "ebpf_receiver_kernel_events_lost", "Records the kernel could not submit, by reason.", labels=["reason"]
        )
        kernel_other = CounterMetricFamily(
            "ebpf_receiver_kernel_conditions", "Other kernel-side conditions, by kind.", labels=["condition"]
        )
        if counters and loader is not None:
            c = loader.abi.const
            produced.add_metric([], counters[c("ERX_CNT_PRODUCED")])
            for name, label in _LOST.items():
                lost.add_metric([label], counters[c(name)])
            for name, label in (
                ("ERX_CNT_PAYLOAD_READ_FAILED", "payload_read_failed"),
                ("ERX_CNT_CONN_TABLE_FULL", "conn_table_full"),
                ("ERX_CNT_INFLIGHT_FULL", "inflight_table_full"),
                ("ERX_CNT_FILTERED", "filtered"),
                ("ERX_CNT_TLS_CIPHERTEXT", "tls_ciphertext_suppressed"),
                ("ERX_CNT_TLS_UNMAPPED", "tls_plaintext_unmapped"),
                *_HTTP_CONDITIONS,
            ):
                kernel_other.add_metric([label], counters[c(name)])
        delivered.add_metric([], r.delivered)
        yield produced
        yield delivered
        yield lost
        yield kernel_other

        malformed = CounterMetricFamily("ebpf_receiver_decode_errors", "Ring-buffer records that could not be decoded.")
        malformed.add_metric([], r.decoder.malformed if r.decoder else 0)
        yield malformed
        errors = CounterMetricFamily(
            "ebpf_receiver_parse_errors", "Protocol frames that could not be parsed.", labels=["protocol"]
        )
        for proto, n in sorted(r.tracker.parse_errors_by_protocol.items()):
            errors.add_metric([proto], n)
        yield errors
        conns = GaugeMetricFamily("ebpf_receiver_connections_tracked", "Connections tracked in user space.")
        conns.add_metric([], len(r.tracker))
        yield conns
        dropped = CounterMetricFamily(
            "ebpf_receiver_connections_dropped", "Connections forgotten, by reason.", labels=["reason"]
        )
        dropped.add_metric(["table_full"], r.tracker.evicted)
        dropped.add_metric(["idle"], r.tracker.expired)
        dropped.add_metric(["unknown_protocol"], r.tracker.undetected)
        yield dropped
        resolver = getattr(r, "netns", None)
        if resolver is not None:
            nat = CounterMetricFamily(
                "ebpf_receiver_nat_lookups", "Conntrack lookups of NAT'd client destinations, by result.",
                labels=["result"],
            )
            for result, n in resolver.lookups.items():
                nat.add_metric([result], n)
            yield nat
            namespaces = GaugeMetricFamily("ebpf_receiver_netns_tracked", "Network namespaces with a record.")
            namespaces.add_metric([], resolver.namespace_count())
            yield namespaces
        txs = CounterMetricFamily("ebpf_receiver_transactions", "Request/response pairs assembled.")
        txs.add_metric([], r.stats.transactions)
        yield txs
        spans = CounterMetricFamily("ebpf_receiver_spans", "Spans produced.")
        spans.add_metric([], r.stats.spans)
        yield spans
        sampled_out = CounterMetricFamily(
            "ebpf_receiver_spans_sampled_out",
            "Spans not exported by the head sampler (their durations are still in the RED metrics).",
        )
        sampled_out.add_metric([], r.assembler.sampled_out)
        yield sampled_out
        tls = CounterMetricFamily(
            "ebpf_receiver_tls_connections",
            "TLS connections: plaintext (read at an attached TLS library) or unattached (only ciphertext seen).",
            labels=["state"],
        )
        tls.add_metric(["plaintext"], r.tracker.tls_plaintext)
        tls.add_metric(["unattached"], r.tracker.tls_unattached)
        yield tls
        discovery = getattr(r, "discovery", None)
        if discovery is not None:
            yield from discovery_metric_families(discovery)
