"""The neutral telemetry types every stage after *assemble* works with.

They mirror OTLP closely (so encoding is a straight mapping) but carry no protobuf objects.
Timestamps are Unix-epoch nanoseconds.  Ids are raw bytes (16 for trace ids, 8 for span ids).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Union

AttrValue = Union[str, bool, int, float, bytes, tuple]
Attributes = dict[str, AttrValue]


@dataclass(frozen=True, slots=True)
class Resource:
    """The entity producing telemetry (a process/service).  Hashable, so it can group batches."""

    attributes: tuple[tuple[str, AttrValue], ...] = ()

    @classmethod
    def from_dict(cls, attrs: Attributes) -> "Resource":
        return cls(tuple(sorted(attrs.items())))

    def get(self, key: str, default: AttrValue | None = None) -> AttrValue | None:
        for k, v in self.attributes:
            if k == key:
                return v
        return default

    @property
    def service_name(self) -> str:
        return str(self.get("service.name", "unknown_service"))


class SpanKind(enum.IntEnum):
    """Values equal OTLP's ``Span.SpanKind``."""

    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class StatusCode(enum.IntEnum):
    """Values equal OTLP's ``Status.StatusCode``."""

    UNSET = 0
    OK = 1
    ERROR = 2


@dataclass(slots=True)
class Span:
    trace_id: bytes
    span_id: bytes
    name: str
    kind: SpanKind
    start_unix_nano: int
    end_unix_nano: int
    resource: Resource
    parent_span_id: bytes = b""
    trace_state: str = ""
    attributes: Attributes = field(default_factory=dict)
    status_code: StatusCode = StatusCode.UNSET
    status_message: str = ""
    flags: int = 1  # W3C trace-flags (bit 0 = sampled)


class SeverityNumber(enum.IntEnum):
    """Subset of OTLP ``SeverityNumber``."""

    UNSPECIFIED = 0
    TRACE = 1
    DEBUG = 5
    INFO = 9
    WARN = 13
    ERROR = 17
    FATAL = 21


@dataclass(slots=True)
class LogRecord:
    time_unix_nano: int
    body: str
    resource: Resource
    severity_number: SeverityNumber = SeverityNumber.UNSPECIFIED
    severity_text: str = ""
    attributes: Attributes = field(default_factory=dict)
    trace_id: bytes = b""
    span_id: bytes = b""
    observed_time_unix_nano: int = 0


@dataclass(frozen=True, slots=True)
class Exemplar:
    value: float
    time_unix_nano: int
    trace_id: bytes
    span_id: bytes


@dataclass(slots=True)
class HistogramPoint:
    """A cumulative explicit-bucket histogram data point."""

    attributes: tuple[tuple[str, AttrValue], ...]
    start_time_unix_nano: int
    time_unix_nano: int
    count: int
    sum: float
    bucket_counts: list[int]  # len(explicit_bounds) + 1
    explicit_bounds: tuple[float, ...]
    min: float
    max: float
    exemplars: list[Exemplar] = field(default_factory=list)


@dataclass(slots=True)
class SumPoint:
    """A cumulative monotonic sum (counter) data point."""

    attributes: tuple[tuple[str, AttrValue], ...]
    start_time_unix_nano: int
    time_unix_nano: int
    value: float


class MetricKind(enum.Enum):
    HISTOGRAM = "histogram"
    SUM = "sum"
    GAUGE = "gauge"


@dataclass(slots=True)
class Metric:
    name: str  # OTel name, e.g. "http.server.request.duration"
    description: str
    unit: str  # UCUM, e.g. "s"
    kind: MetricKind
    points: list  # HistogramPoint | SumPoint
    resource: Resource = Resource()
    monotonic: bool = True
