"""The agent's own telemetry: counters and gauges about what each stage did with its data.

:class:`SelfMetrics` holds plain ``prometheus_client`` metric objects registered on the
registry it is given (never the global default one), so tests use a fresh registry and the
Prometheus exporter serves them next to the RED metrics.  A stage that needs a new counter adds
an attribute here; callers resolve ``.labels(...)`` children once, outside their hot loops.

Item units: spans for traces, log records for logs, *data points* for metrics (as the
OpenTelemetry Collector counts them).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

_PREFIX = "ebpf_receiver_"


class SelfMetrics:
    """Counters and gauges of the agent itself, on one ``CollectorRegistry``.

    Exporter metrics (labels: ``exporter`` = the configured exporter id, ``signal`` =
    ``traces``/``metrics``/``logs``):

    * ``exporter_sent_items_total`` — items the backend accepted;
    * ``exporter_failed_items_total{reason}`` — items an export attempt was made for and that
      did not arrive: ``permanent`` (non-retryable error), ``retries_exhausted`` (retryable
      error, but retrying was disabled or ``max_elapsed_time`` passed), ``rejected`` (the
      backend answered with a partial success rejecting them);
    * ``exporter_dropped_items_total{reason}`` — items never (fully) attempted:
      ``queue_full`` (evicted from a full sending queue), ``shutdown`` (still queued or
      backing off when shutdown ran out of time, or offered after shutdown);
    * ``exporter_retries_total`` — retry attempts (one per re-send of a batch);
    * ``exporter_queue_size`` / ``exporter_queue_capacity`` — batches queued / the bound.

    Batch processor: ``processor_batch_sends_total{signal,trigger}`` with trigger ``size``,
    ``timeout`` or ``shutdown``.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.exporter_sent_items = Counter(
            _PREFIX + "exporter_sent_items",
            "Items (spans, metric data points, log records) the backend accepted.",
            ["exporter", "signal"],
            registry=r,
        )
        self.exporter_failed_items = Counter(
            _PREFIX + "exporter_failed_items",
            "Items whose export was attempted and failed (permanent, retries_exhausted, rejected).",
            ["exporter", "signal", "reason"],
            registry=r,
        )
        self.exporter_dropped_items = Counter(
            _PREFIX + "exporter_dropped_items",
            "Items dropped before export completed (queue_full, shutdown).",
            ["exporter", "signal", "reason"],
            registry=r,
        )
        self.exporter_retries = Counter(
            _PREFIX + "exporter_retries",
            "Retry attempts of export requests.",
            ["exporter", "signal"],
            registry=r,
        )
        self.exporter_queue_size = Gauge(
            _PREFIX + "exporter_queue_size",
            "Batches currently waiting in the exporter's sending queue.",
            ["exporter"],
            registry=r,
        )
        self.exporter_queue_capacity = Gauge(
            _PREFIX + "exporter_queue_capacity",
            "Capacity of the exporter's sending queue, in batches.",
            ["exporter"],
            registry=r,
        )
        self.processor_batch_sends = Counter(
            _PREFIX + "processor_batch_sends",
            "Batches the batch processor sent on, by what triggered the send.",
            ["signal", "trigger"],
            registry=r,
        )
