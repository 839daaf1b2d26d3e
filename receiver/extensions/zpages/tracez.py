"""The tracez store: what ``/debug/tracez`` shows, kept as spans go by (the OpenCensus/Collector
zPages model).

Per span name: a count per latency bucket (:data:`LATENCY_BOUNDS_NS`, OpenCensus's buckets) and a
count of error spans (status ERROR; counted there instead of in a latency bucket), and for each
bucket and the errors a ring of the most recent spans (``samples_per_bucket``).  Span names are
bounded (``max_span_names``): spans of further names are counted in :attr:`SpanStore.dropped`
and kept nowhere.  The store also notes, per process (``process.pid`` of the span's resource, at
most ``max_processes``, least recently seen forgotten first), which protocols its spans spoke and
how many spans and errors it had: ``/debug/servicez`` lists those processes.

:meth:`SpanStore.observe` runs on the receiver's thread for every batch: a few dict lookups, a
bisect and a deque append per span under one lock; spans are kept by reference (their
attributes are already bounded by the assembler) and turned into :class:`SampledSpan` only when
a page is rendered.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_right
from collections import OrderedDict, deque
from dataclasses import dataclass

from receiver.model.telemetry import Resource, Span, SpanKind, StatusCode

# Lower bounds of the latency buckets (OpenCensus zPages): [0, 10µs), [10µs, 100µs), ... [100s, ∞).
LATENCY_BOUNDS_NS: tuple[int, ...] = (10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 10**9, 10**10, 10**11)
LATENCY_LABELS: tuple[str, ...] = ("[0, 10µs)", "[10µs, 100µs)", "[100µs, 1ms)", "[1ms, 10ms)", "[10ms, 100ms)",
                                   "[100ms, 1s)", "[1s, 10s)", "[10s, 100s)", "[100s, ∞)")
ERROR_BUCKET = len(LATENCY_LABELS)  # index of the error ring after the latency buckets
MAX_ATTRIBUTES_SHOWN = 48
MAX_VALUE_CHARS = 256


@dataclass(frozen=True, slots=True)
class SampledSpan:
    """A kept span as a page shows it (ids in hex, attributes as text, bounded)."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: str
    start_unix_nano: int
    duration_ns: int
    error: bool
    status_message: str
    service: str
    pid: int
    attributes: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, s: Span) -> SampledSpan:
        attrs = tuple((k, _text(v)) for k, v in list(s.attributes.items())[:MAX_ATTRIBUTES_SHOWN])
        pid = s.resource.get("process.pid", 0)
        return cls(
            name=s.name, trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent_span_id=s.parent_span_id.hex(),
            kind=s.kind.name.lower() if isinstance(s.kind, SpanKind) else str(s.kind),
            start_unix_nano=s.start_unix_nano, duration_ns=max(0, s.end_unix_nano - s.start_unix_nano),
            error=s.status_code == StatusCode.ERROR, status_message=s.status_message,
            service=s.resource.service_name, pid=pid if isinstance(pid, int) else 0, attributes=attrs,
        )


def _text(value) -> str:
    text = value.hex() if isinstance(value, bytes) else str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


@dataclass(frozen=True, slots=True)
class SpanNameSummary:
    name: str
    latency_counts: tuple[int, ...]  # one per LATENCY_LABELS
    errors: int

    @property
    def total(self) -> int:
        return sum(self.latency_counts) + self.errors


@dataclass(frozen=True, slots=True)
class ProcessActivity:
    """What the spans of one process said (see the module's docstring)."""

    pid: int
    resource: Resource
    protocols: tuple[str, ...]
    spans: int
    errors: int
    last_seen: float  # the store's clock


def span_protocol(s: Span) -> str:
    """The protocol a span speaks, by its semantic-convention attributes."""
    a = s.attributes
    proto = a.get("rpc.system") or a.get("db.system.name") or a.get("messaging.system")
    if proto:
        return str(proto)
    if "http.request.method" in a:
        version = a.get("network.protocol.version")
        return "http2" if version == "2" else "http"
    if "dns.question.name" in a:
        return "dns"
    return s.name.split(" ", 1)[0].lower()


class _NameEntry:
    __slots__ = ("counts", "rings")

    def __init__(self, samples: int) -> None:
        self.counts = [0] * (ERROR_BUCKET + 1)
        self.rings: list[deque] = [deque(maxlen=samples) for _ in range(ERROR_BUCKET + 1)]


class _Activity:
    __slots__ = ("resource", "protocols", "spans", "errors", "last_seen")

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.protocols: set[str] = set()
        self.spans = 0
        self.errors = 0
        self.last_seen = 0.0


class SpanStore:
    def __init__(self, samples_per_bucket: int = 4, max_span_names: int = 200, max_processes: int = 1024,
                 clock=time.monotonic) -> None:
        if samples_per_bucket < 1 or max_span_names < 1 or max_processes < 1:
            raise ValueError("samples_per_bucket, max_span_names and max_processes must be >= 1")
        self._samples = samples_per_bucket
        self._max_names = max_span_names
        self._max_processes = max_processes
        self._clock = clock
        self._lock = threading.Lock()
        self._names: dict[str, _NameEntry] = {}
        self._processes: OrderedDict[int, _Activity] = OrderedDict()
        self.dropped = 0  # spans of names over max_span_names: counted here only
        self.observed = 0

    def observe(self, spans: list[Span]) -> None:
        now = self._clock()
        last_resource: Resource | None = None
        activity: _Activity | None = None
        with self._lock:
            names = self._names
            for s in spans:
                self.observed += 1
                error = s.status_code == StatusCode.ERROR
                if s.resource is not last_resource:
                    last_resource = s.resource
                    activity = self._activity(s.resource, now)
                if activity is not None:
                    activity.spans += 1
                    activity.errors += error
                    activity.protocols.add(span_protocol(s))
                entry = names.get(s.name)
                if entry is None:
                    if len(names) >= self._max_names:
                        self.dropped += 1
                        continue
                    entry = names[s.name] = _NameEntry(self._samples)
                i = ERROR_BUCKET if error else bisect_right(LATENCY_BOUNDS_NS, s.end_unix_nano - s.start_unix_nano)
                entry.counts[i] += 1
                entry.rings[i].append(s)

    def _activity(self, resource: Resource, now: float) -> _Activity | None:
        pid = resource.get("process.pid")
        if not isinstance(pid, int):
            return None
        a = self._processes.get(pid)
        if a is None or a.resource is not resource and a.resource != resource:  # a new program in that pid
            a = self._processes[pid] = _Activity(resource)
            if len(self._processes) > self._max_processes:
                self._processes.popitem(last=False)
        else:
            self._processes.move_to_end(pid)
        a.last_seen = now
        return a

    # -- views -------------------------------------------------------------------------------

    def summary(self) -> list[SpanNameSummary]:
        with self._lock:
            rows = [(name, tuple(e.counts[:ERROR_BUCKET]), e.counts[ERROR_BUCKET]) for name, e in self._names.items()]
        return [SpanNameSummary(*r) for r in sorted(rows)]

    def samples(self, name: str, bucket: int) -> list[SampledSpan]:
        """The kept spans of ``name`` in latency bucket ``bucket`` (or :data:`ERROR_BUCKET`),
        most recent first."""
        if not 0 <= bucket <= ERROR_BUCKET:
            return []
        with self._lock:
            entry = self._names.get(name)
            kept = list(entry.rings[bucket]) if entry is not None else []
        return [SampledSpan.of(s) for s in reversed(kept)]

    def processes(self) -> list[ProcessActivity]:
        with self._lock:
            return [ProcessActivity(pid, a.resource, tuple(sorted(a.protocols)), a.spans, a.errors, a.last_seen)
                    for pid, a in self._processes.items()]
