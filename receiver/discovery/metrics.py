"""Discovery's self-telemetry, read at scrape time (served with the capture metrics)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


def discovery_metric_families(discovery) -> Iterator:
    failures = CounterMetricFamily(
        "ebpf_receiver_uprobe_attach_failures",
        "TLS library files whose plaintext uprobes could not be attached (each counted once), by reason.",
        labels=["reason"],
    )
    for reason, n in sorted(discovery.attach_failures().items()):
        failures.add_metric([reason], n)
    yield failures
    s = discovery.summary
    processes = GaugeMetricFamily(
        "ebpf_receiver_discovery_processes", "Processes discovery follows, traced or excluded by its rules.",
        labels=["state"],
    )
    processes.add_metric(["traced"], s.traced if s else 0)
    processes.add_metric(["excluded"], s.excluded if s else 0)
    yield processes
    libraries = GaugeMetricFamily(
        "ebpf_receiver_tls_libraries_attached", "TLS library files with plaintext uprobes attached."
    )
    libraries.add_metric([], len(s.libraries) if s else 0)
    yield libraries
    tls_processes = GaugeMetricFamily(
        "ebpf_receiver_tls_processes", "Traced processes that map a TLS library with uprobes attached."
    )
    tls_processes.add_metric([], s.tls_processes if s else 0)
    yield tls_processes
