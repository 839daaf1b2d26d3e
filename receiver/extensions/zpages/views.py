"""What the zPages show, computed from what the agent keeps (sans-I/O: metrics, statuses and a
clock in, frozen view models out; rendering is in :mod:`.render`).

* Rates are per second over the last :attr:`RateWindow.window` seconds of the cumulative
  counters, from the samples taken when pages were rendered (pages refresh themselves); with no
  earlier sample the rate is the average since the series began.
* Quantiles come from the cumulative histograms (the RED metrics, the service graph's client
  durations), interpolated linearly in their bucket as Prometheus' ``histogram_quantile`` does;
  in the last (+Inf) bucket the series' maximum is the answer.
* Errors: a RED series is an error when it carries ``error.type``; a service-graph edge's
  failed count is the graph's ``..._failed`` counter.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Hashable, Iterable

from receiver.model.telemetry import HistogramPoint, Metric, Resource

GRAPH_PREFIX = "traces_service_graph_request"
# RED histograms of the requests a process serves (the rest are calls it makes).
SERVER_METRICS = frozenset({"http.server.request.duration", "rpc.server.duration", "messaging.process.duration"})
HEALTH_WARN = 0.01  # error ratio from which a node is amber
HEALTH_BAD = 0.05  # ... and red


class RateWindow:
    """Per-second rates of cumulative counters keyed by anything hashable (see module doc)."""

    def __init__(self, window: float = 30.0, min_spacing: float = 1.0, clock=time.monotonic) -> None:
        self.window = window
        self._spacing = min_spacing
        self._clock = clock
        self._samples: deque[tuple[float, dict]] = deque()

    def rates(self, counts: dict[Hashable, tuple[float, ...]], ages: dict[Hashable, float]) -> dict[Hashable, tuple[float, ...]]:
        """``counts``: key → cumulative values now; ``ages``: key → seconds since the series
        began (the fallback when no earlier sample holds it)."""
        now = self._clock()
        while self._samples and self._samples[0][0] < now - self.window:
            self._samples.popleft()
        base = next(((t, c) for t, c in self._samples if now - t >= 0.5), None)
        out: dict[Hashable, tuple[float, ...]] = {}
        for key, values in counts.items():
            if base is not None:
                t0, before = base
                old = before.get(key)
                if old is None:  # began after that sample
                    old = tuple(0.0 for _ in values)
                    dt = min(now - t0, max(ages.get(key, now - t0), 1e-3))
                else:
                    dt = now - t0
                out[key] = tuple(max(0.0, v - o) / dt for v, o in zip(values, old))
            else:
                age = max(ages.get(key, 1.0), 1.0)
                out[key] = tuple(v / age for v in values)
        if not self._samples or now - self._samples[-1][0] >= self._spacing:
            self._samples.append((now, dict(counts)))
        return out


def histogram_quantile(q: float, bounds: tuple[float, ...], buckets: list[int], maximum: float) -> float | None:
    total = sum(buckets)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(buckets):
        if n and seen + n >= rank:
            if i == len(bounds):
                return maximum if maximum == maximum and maximum != float("-inf") else bounds[-1]
            lower = bounds[i - 1] if i else 0.0
            upper = bounds[i]
            if maximum == maximum and maximum < upper:
                upper = max(lower, maximum)
            return lower + (upper - lower) * (rank - seen) / n
        seen += n
    return None


class _Hist:
    """Histogram points summed (same bounds)."""

    __slots__ = ("count", "errors", "bounds", "buckets", "max", "start_ns")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.bounds: tuple[float, ...] = ()
        self.buckets: list[int] = []
        self.max = float("-inf")
        self.start_ns = 0

    def add(self, p: HistogramPoint, error: bool) -> None:
        self.count += p.count
        self.errors += p.count if error else 0
        if not self.buckets:
            self.bounds, self.buckets = p.explicit_bounds, list(p.bucket_counts)
        elif p.explicit_bounds == self.bounds:
            self.buckets = [a + b for a, b in zip(self.buckets, p.bucket_counts)]
        self.max = max(self.max, p.max)
        self.start_ns = min(self.start_ns, p.start_time_unix_nano) if self.start_ns else p.start_time_unix_nano

    def quantile(self, q: float) -> float | None:
        return histogram_quantile(q, self.bounds, self.buckets, self.max) if self.buckets else None


def _is_error(attributes) -> bool:
    return any(k == "error.type" for k, _ in attributes)


# -- servicez -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceRow:
    pid: int
    service: str
    container: str
    executable: str
    protocols: tuple[str, ...]
    tls_stack: tuple[str, ...]
    tls_plaintext: str
    connections: int
    spans: int
    requests_per_s: float  # requests it served (server RED metrics), per second
    error_ratio: float | None  # of those; None without requests
    p50_s: float | None
    p99_s: float | None
    calls_per_s: float  # requests it made (client RED metrics), per second
    call_error_ratio: float | None


@dataclass(frozen=True, slots=True)
class RedSummary:
    served: _Hist
    calls: _Hist


def red_by_instance(metrics: Iterable[Metric]) -> dict[Resource, RedSummary]:
    """The RED histograms summed per service instance (metric resource): served and made."""
    out: dict[Resource, RedSummary] = {}
    for m in metrics:
        if not m.points or not isinstance(m.points[0], HistogramPoint):
            continue
        s = out.get(m.resource)
        if s is None:
            s = out[m.resource] = RedSummary(_Hist(), _Hist())
        h = s.served if m.name in SERVER_METRICS else s.calls
        for p in m.points:
            h.add(p, _is_error(p.attributes))
    return out


def service_rows(processes, activity, red_metrics: list[Metric], rates: RateWindow, now_ns: int) -> list[ServiceRow]:
    """``processes``: :class:`~receiver.component.status.ProcessStatus` of the receivers;
    ``activity``: :class:`~.tracez.ProcessActivity` of the span store (protocols its spans spoke)."""
    red = red_by_instance(red_metrics)
    counts = {(r, side): (h.count, h.errors) for r, s in red.items() for side, h in (("served", s.served), ("calls", s.calls))}
    ages = {(r, side): max(0.0, (now_ns - h.start_ns) / 1e9) for r, s in red.items()
            for side, h in (("served", s.served), ("calls", s.calls)) if h.start_ns}
    per_s = rates.rates(counts, ages)
    by_pid = {a.pid: a for a in activity}
    rows = []
    for p in processes:
        act = by_pid.get(p.pid)
        summary = red.get(p.metrics_resource)
        served_rate = per_s.get((p.metrics_resource, "served"), (0.0, 0.0))
        calls_rate = per_s.get((p.metrics_resource, "calls"), (0.0, 0.0))
        served = summary.served if summary else _Hist()
        calls = summary.calls if summary else _Hist()
        rows.append(ServiceRow(
            pid=p.pid, service=p.service, container=p.container[:12], executable=p.executable,
            protocols=tuple(sorted(set(p.protocols) | set(act.protocols if act else ()))),
            tls_stack=p.tls_stack, tls_plaintext=p.tls_plaintext, connections=p.connections,
            spans=act.spans if act else 0,
            requests_per_s=served_rate[0], error_ratio=served.errors / served.count if served.count else None,
            p50_s=served.quantile(0.5), p99_s=served.quantile(0.99),
            calls_per_s=calls_rate[0], call_error_ratio=calls.errors / calls.count if calls.count else None,
        ))
    rows.sort(key=lambda r: (r.service, r.pid))
    return rows


# -- service map --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MapEdge:
    client: str
    server: str
    connection_type: str  # "" (both sides traced), "database", "virtual_node"
    requests: int
    failed: int
    rate_per_s: float
    p99_s: float | None

    @property
    def error_ratio(self) -> float:
        return self.failed / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class MapNode:
    name: str
    external: bool  # a peer that is not a traced process (database, remote address)
    requests: int  # requests it received (edges into it, or its own served RED series)
    errors: int
    rate_per_s: float

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def health(self) -> str:
        ratio = self.error_ratio
        if ratio is None:
            return "idle"
        return "bad" if ratio >= HEALTH_BAD else ("warn" if ratio >= HEALTH_WARN else "ok")


@dataclass(frozen=True, slots=True)
class ServiceMap:
    nodes: tuple[MapNode, ...]
    edges: tuple[MapEdge, ...]
    overflow_requests: int  # requests of edges over the service graph's cap (no names)


def service_map(graph_metrics: list[Metric], red_metrics: list[Metric], rates: RateWindow, now_ns: int) -> ServiceMap:
    totals: dict[tuple, list] = {}  # (client, server, type) -> [requests, failed, start_ns, hist]
    overflow = 0
    for m in graph_metrics:
        if m.name not in (GRAPH_PREFIX, GRAPH_PREFIX + "_failed", GRAPH_PREFIX + "_client"):
            continue
        for p in m.points:
            a = dict(p.attributes)
            if "client" not in a:
                if m.name == GRAPH_PREFIX:
                    overflow += int(p.value)
                continue
            key = (str(a["client"]), str(a["server"]), str(a.get("connection_type", "")))
            entry = totals.setdefault(key, [0, 0, p.start_time_unix_nano, None])
            if m.name == GRAPH_PREFIX:
                entry[0] = int(p.value)
            elif m.name.endswith("_failed"):
                entry[1] = int(p.value)
            else:
                h = entry[3] = entry[3] or _Hist()
                h.add(p, False)
    red = red_by_instance(red_metrics)
    served: dict[str, _Hist] = {}
    for resource, s in red.items():
        if s.served.count:
            h = served.setdefault(resource.service_name, _Hist())
            h.count += s.served.count
            h.errors += s.served.errors
            h.start_ns = min(h.start_ns, s.served.start_ns) if h.start_ns else s.served.start_ns
    counts: dict = {("edge", k): (v[0],) for k, v in totals.items()}
    counts.update({("node", name): (h.count,) for name, h in served.items()})
    ages: dict = {("edge", k): max(0.0, (now_ns - v[2]) / 1e9) for k, v in totals.items()}
    ages.update({("node", name): max(0.0, (now_ns - h.start_ns) / 1e9) for name, h in served.items()})
    per_s = rates.rates(counts, ages)
    edges = tuple(
        MapEdge(c, s, t, v[0], v[1], per_s[("edge", (c, s, t))][0], v[3].quantile(0.99) if v[3] else None)
        for (c, s, t), v in sorted(totals.items())
    )
    inbound: dict[str, list] = {}
    for e in edges:
        acc = inbound.setdefault(e.server, [0, 0, 0.0])
        acc[0] += e.requests
        acc[1] += e.failed
        acc[2] += e.rate_per_s
    names = {e.client for e in edges} | {e.server for e in edges} | set(served)
    external = {e.server for e in edges if e.connection_type} - {e.client for e in edges} - set(served)
    nodes = []
    for name in sorted(names):
        if name in served:  # what it served, as it measured it
            h = served[name]
            nodes.append(MapNode(name, False, h.count, h.errors, per_s[("node", name)][0]))
        else:
            req, failed, rate = inbound.get(name, (0, 0, 0.0))
            nodes.append(MapNode(name, name in external, req, failed, rate))
    return ServiceMap(tuple(nodes), edges, overflow)


# -- pipelinez ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComponentView:
    kind: str  # receiver, processor, exporter
    id: str
    status: object | None  # ComponentStatus, when the component offers one
    counters: tuple[tuple[str, str, float], ...]  # (metric, labels, value) of its self-metrics


@dataclass(frozen=True, slots=True)
class PipelineView:
    id: str
    signal: str
    components: tuple[ComponentView, ...]


def component_counters(samples: Iterable, kind: str, component_id: str) -> tuple[tuple[str, str, float], ...]:
    """Self-metric samples that belong to one component: by their ``exporter``/``processor``
    label, and for a receiver of type ``ebpf`` the kernel record accounting and the stages'."""
    out = []
    label = {"exporters": "exporter", "processors": "processor"}.get(kind)
    for name, labels, value in samples:
        if label is not None:
            if labels.get(label) != component_id:
                continue
            rest = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != label)
        elif kind == "receivers":
            if not name.startswith(("ebpf_receiver_kernel_events", "ebpf_receiver_records", "ebpf_receiver_connections",
                                    "ebpf_receiver_spans", "ebpf_receiver_internal")):
                continue
            rest = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        else:
            continue
        out.append((name, rest, value))
    return tuple(out)
