"""RED (rate, errors, duration) metrics: cumulative duration histograms built from spans.

:class:`RedMetrics` aggregates observations into cumulative explicit-bucket histograms, one
series per (metric name, resource, attribute set).  Rate and errors come from the same
histogram's count split by attributes (e.g. ``http.response.status_code``, ``error.type``).

* Buckets are the OpenTelemetry semantic-convention advisory boundaries for HTTP/RPC/DB
  durations; a value ``v`` falls into the first bucket ``i`` with ``v <= bounds[i]`` (OTLP's
  upper-inclusive buckets), the last bucket being ``(bounds[-1], +Inf)``.
* Each bucket keeps one exemplar (the latest observation that came with a trace id).
* Cardinality: each metric name holds at most ``max_series_per_metric`` attribute sets (over all
  resources); points for further attribute sets go to one overflow series per resource whose
  only attribute is ``otel.metric.overflow=true`` (the OpenTelemetry SDK convention).  The
  overflow series comes on top of the cap.
* Start time of a series is the time of its first observation; a snapshot's point time is the
  injected clock's "now".

:meth:`record` is the hot path: a bisect for the bucket and two dict lookups under one lock.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from typing import Callable, Sequence

from receiver.model.telemetry import AttrValue, Exemplar, HistogramPoint, Metric, MetricKind, Resource, SumPoint

DURATION_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)

OVERFLOW_ATTRIBUTES: tuple[tuple[str, AttrValue], ...] = (("otel.metric.overflow", True),)

# Descriptions of the semantic-convention duration metrics this agent produces.
DESCRIPTIONS: dict[str, str] = {
    "http.server.request.duration": "Duration of HTTP server requests.",
    "http.client.request.duration": "Duration of HTTP client requests.",
    "rpc.server.duration": "Measures the duration of inbound RPC.",
    "rpc.client.duration": "Measures the duration of outbound RPC.",
    "db.client.operation.duration": "Duration of database client operations.",
    "messaging.process.duration": "Duration of processing operation.",
    "messaging.client.operation.duration": "Duration of messaging operation initiated by a producer or consumer client.",
    "dns.lookup.duration": "Measures the time taken to perform a DNS lookup.",
    "messaging.client.consumed.messages": "Number of messages that were delivered to the application.",
}
# Units of counters (histograms are seconds).
COUNTER_UNITS: dict[str, str] = {"messaging.client.consumed.messages": "{message}"}

Attrs = tuple[tuple[str, AttrValue], ...]


class _Series:
    __slots__ = ("start", "count", "sum", "min", "max", "buckets", "exemplars")

    def __init__(self, start: int, n_buckets: int) -> None:
        self.start = start
        self.count = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")
        self.buckets = [0] * n_buckets
        # per bucket: None or (value, time_unix_nano, trace_id, span_id)
        self.exemplars: list[tuple[float, int, bytes, bytes] | None] = [None] * n_buckets


class _MetricState:
    __slots__ = ("by_resource", "n_series", "last_resource", "last_by_attrs")

    def __init__(self) -> None:
        self.by_resource: dict[Resource, dict[Attrs, _Series]] = {}
        self.n_series = 0  # attribute sets held, overflow series excluded
        # Spans of one process share one Resource object: skip hashing it (a Python-level
        # dataclass __hash__ over all its attributes) when the same object comes again.
        self.last_resource: Resource | None = None
        self.last_by_attrs: dict[Attrs, _Series] = {}


class RedMetrics:
    """Thread-safe aggregator of cumulative duration histograms (unit ``s``)."""

    def __init__(
        self,
        max_series_per_metric: int = 2000,
        bounds: Sequence[float] = DURATION_BUCKETS,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if max_series_per_metric < 1:
            raise ValueError("max_series_per_metric must be >= 1")
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("bounds must be strictly increasing")
        self._max_series = max_series_per_metric
        self._bounds = tuple(float(b) for b in bounds)
        self._n_buckets = len(self._bounds) + 1
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._metrics: dict[str, _MetricState] = {}
        self._counters: dict[str, _MetricState] = {}  # name -> counter series: [start, value]

    def record(
        self,
        name: str,
        resource: Resource,
        attributes: Attrs,
        value_s: float,
        time_unix_nano: int,
        trace_id: bytes = b"",
        span_id: bytes = b"",
    ) -> None:
        """Add one observation of ``value_s`` seconds.  ``attributes`` must be hashable; NaN is ignored."""
        if value_s != value_s:
            return
        i = bisect_left(self._bounds, value_s)
        with self._lock:
            state = self._metrics.get(name)
            if state is None:
                state = self._metrics[name] = _MetricState()
            if resource is state.last_resource:
                by_attrs = state.last_by_attrs
            else:
                by_attrs = state.by_resource.get(resource)
                if by_attrs is None:
                    by_attrs = state.by_resource[resource] = {}
                state.last_resource, state.last_by_attrs = resource, by_attrs
            series = by_attrs.get(attributes)
            if series is None:
                if state.n_series >= self._max_series:
                    attributes = OVERFLOW_ATTRIBUTES
                    series = by_attrs.get(attributes)
                else:
                    state.n_series += 1
                if series is None:
                    series = by_attrs[attributes] = _Series(time_unix_nano, self._n_buckets)
            series.count += 1
            series.sum += value_s
            if value_s < series.min:
                series.min = value_s
            if value_s > series.max:
                series.max = value_s
            series.buckets[i] += 1
            if trace_id:
                series.exemplars[i] = (value_s, time_unix_nano, trace_id, span_id)

    def exemplar(self, name: str, resource: Resource, attributes: Attrs, value_s: float, time_unix_nano: int,
                 trace_id: bytes, span_id: bytes) -> None:
        """Attach an exemplar to the bucket of an observation already counted by :meth:`record`
        (its trace was kept by a tail sampler after the count).  No series, no exemplar."""
        if value_s != value_s or not trace_id:
            return
        i = bisect_left(self._bounds, value_s)
        with self._lock:
            state = self._metrics.get(name)
            by_attrs = state.by_resource.get(resource) if state is not None else None
            series = by_attrs.get(attributes) if by_attrs is not None else None
            if series is None and by_attrs is not None:
                series = by_attrs.get(OVERFLOW_ATTRIBUTES)
            if series is not None:
                series.exemplars[i] = (value_s, time_unix_nano, trace_id, span_id)

    def merge(self, name: str, resource: Resource, attributes: Attrs, count: int, sum_s: float, min_s: float,
              max_s: float, bucket_counts: Sequence[int], time_unix_nano: int) -> None:
        """Add a histogram aggregated elsewhere (the kernel's overload aggregates) with the same
        bucket bounds: ``bucket_counts`` has ``len(bounds) + 1`` entries.  No exemplar (no span)."""
        if count <= 0 or len(bucket_counts) != self._n_buckets:
            return
        with self._lock:
            series = self._slot(self._metrics, name, resource, attributes,
                                lambda: _Series(time_unix_nano, self._n_buckets))
            series.count += count
            series.sum += sum_s
            series.min = min(series.min, min_s)
            series.max = max(series.max, max_s)
            buckets = series.buckets
            for i, n in enumerate(bucket_counts):
                buckets[i] += n

    def add(self, name: str, resource: Resource, attributes: Attrs, n: int, time_unix_nano: int) -> None:
        """Add ``n`` to a monotonic counter (``messaging.client.consumed.messages``); same
        cardinality cap and overflow series as the histograms."""
        with self._lock:
            entry = self._slot(self._counters, name, resource, attributes, lambda: [time_unix_nano, 0])
            entry[1] += n

    def _slot(self, table: dict[str, _MetricState], name: str, resource: Resource, attributes: Attrs, make):
        """The series of (name, resource, attributes) in ``table``, made by ``make()`` when new; past
        the cardinality cap, the resource's overflow series (under the lock; :meth:`record` inlines
        the same steps on the hot path)."""
        state = table.get(name)
        if state is None:
            state = table[name] = _MetricState()
        by_attrs = state.by_resource.get(resource)
        if by_attrs is None:
            by_attrs = state.by_resource[resource] = {}
        series = by_attrs.get(attributes)
        if series is None:
            if state.n_series >= self._max_series:
                attributes = OVERFLOW_ATTRIBUTES
                series = by_attrs.get(attributes)
            else:
                state.n_series += 1
            if series is None:
                series = by_attrs[attributes] = make()
        return series

    def collect(self) -> list[Metric]:
        """A snapshot: one :class:`Metric` per (name, resource), cumulative since each series began."""
        now = self._clock_ns()
        bounds = self._bounds
        out: list[Metric] = []
        with self._lock:
            for name, state in self._counters.items():
                for resource, by_attrs in state.by_resource.items():
                    points = [SumPoint(attrs, start, max(now, start), value) for attrs, (start, value) in by_attrs.items()]
                    out.append(Metric(name, DESCRIPTIONS.get(name, ""), COUNTER_UNITS.get(name, "1"), MetricKind.SUM,
                                      points, resource))
            for name, state in self._metrics.items():
                description = DESCRIPTIONS.get(name, "")
                for resource, by_attrs in state.by_resource.items():
                    points = [
                        HistogramPoint(
                            attributes=attrs,
                            start_time_unix_nano=s.start,
                            time_unix_nano=max(now, s.start),
                            count=s.count,
                            sum=s.sum,
                            bucket_counts=list(s.buckets),
                            explicit_bounds=bounds,
                            min=s.min,
                            max=s.max,
                            exemplars=[Exemplar(*e) for e in s.exemplars if e is not None],
                        )
                        for attrs, s in by_attrs.items()
                    ]
                    out.append(Metric(name, description, "s", MetricKind.HISTOGRAM, points, resource))
        return out
