"""The ``tail_sampling`` policies as evaluators over one held trace (sans-I/O, clock injected).

Each evaluator answers ``sample(trace, now_s) -> bool`` for a :class:`TraceView`: every span and
log record this host holds for one trace id.  Semantics follow the Collector's policy
descriptions (docs/sampling.md lists where they differ); nothing here raises on telemetry.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Protocol

from receiver.model.telemetry import Span, StatusCode
from receiver.processors.tail_sampling_config import PolicyConfig, RateAllocation

_STATUS = {"OK": StatusCode.OK, "ERROR": StatusCode.ERROR, "UNSET": StatusCode.UNSET}
_SCALE = 1 << 64


class TraceView(Protocol):
    trace_id: bytes
    spans: list[Span]

    @property
    def span_count(self) -> int: ...


class Evaluator(Protocol):
    name: str

    def sample(self, trace: TraceView, now_s: float) -> bool: ...


class AlwaysSample:
    def __init__(self, name: str) -> None:
        self.name = name

    def sample(self, trace: TraceView, now_s: float) -> bool:
        return True


class Latency:
    def __init__(self, name: str, threshold_ms: int, upper_threshold_ms: int) -> None:
        self.name = name
        self._low = threshold_ms * 1_000_000
        self._high = upper_threshold_ms * 1_000_000 if upper_threshold_ms else None

    def sample(self, trace: TraceView, now_s: float) -> bool:
        spans = trace.spans
        if not spans:
            return False
        duration = max(s.end_unix_nano for s in spans) - min(s.start_unix_nano for s in spans)
        return duration >= self._low and (self._high is None or duration <= self._high)


class StatusCodes:
    def __init__(self, name: str, codes: Sequence[str]) -> None:
        self.name = name
        self._codes = frozenset(_STATUS[c] for c in codes)

    def sample(self, trace: TraceView, now_s: float) -> bool:
        codes = self._codes
        return any(s.status_code in codes for s in trace.spans)


def trace_id_ratio(trace_id: bytes, ratio: float) -> bool:
    """The W3C/SDK TraceIdRatio rule: low 8 bytes of the trace id below ratio × 2^64."""
    if ratio >= 1.0:
        return True
    return int.from_bytes(trace_id[8:16], "big") < round(ratio * _SCALE)


class Probabilistic:
    def __init__(self, name: str, percentage: float, salt: str) -> None:
        self.name = name
        self._ratio = min(percentage, 100.0) / 100.0
        self._salt = salt.encode()

    def sample(self, trace: TraceView, now_s: float) -> bool:
        trace_id = trace.trace_id
        if not self._salt:
            return trace_id_ratio(trace_id, self._ratio)
        h = hashlib.blake2b(self._salt + trace_id, digest_size=8).digest()
        return trace_id_ratio(b"\0" * 8 + h, self._ratio)


class _SecondWindow:
    """Spans sampled in the current whole second."""

    __slots__ = ("second", "spans")

    def __init__(self) -> None:
        self.second = -1
        self.spans = 0

    def fits(self, now_s: float, n: int, limit: float) -> bool:
        sec = int(now_s)
        if sec != self.second:
            self.second, self.spans = sec, 0
        if self.spans + n > limit:
            return False
        self.spans += n
        return True


class RateLimiting:
    def __init__(self, name: str, spans_per_second: int) -> None:
        self.name = name
        self._limit = spans_per_second
        self._window = _SecondWindow()

    def sample(self, trace: TraceView, now_s: float) -> bool:
        return self._window.fits(now_s, trace.span_count, self._limit)


class _AttributeMatch:
    def __init__(self, name: str, key: str, invert: bool) -> None:
        self.name = name
        self._key = key
        self._invert = invert

    def _matches(self, value) -> bool:
        raise NotImplementedError

    def sample(self, trace: TraceView, now_s: float) -> bool:
        key = self._key
        for s in trace.spans:
            v = s.attributes.get(key)
            if v is None:
                v = _resource_value(s, key)
            if v is not None and self._matches(v):
                return not self._invert
        return self._invert


def _resource_value(span: Span, key: str):
    r = span.resource
    return r.get(key) if r is not None else None


class StringAttribute(_AttributeMatch):
    def __init__(self, name: str, key: str, values: Sequence[str], regex: bool, invert: bool) -> None:
        super().__init__(name, key, invert)
        self._values = frozenset(values)
        self._patterns = [re.compile(v) for v in values] if regex else None

    def _matches(self, value) -> bool:
        if not isinstance(value, str):
            return False
        if self._patterns is None:
            return value in self._values
        return any(p.fullmatch(value) for p in self._patterns)


class NumericAttribute(_AttributeMatch):
    def __init__(self, name: str, key: str, low: float | None, high: float | None, invert: bool) -> None:
        super().__init__(name, key, invert)
        self._low = float("-inf") if low is None else low
        self._high = float("inf") if high is None else high

    def _matches(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return self._low <= value <= self._high


class BooleanAttribute(_AttributeMatch):
    def __init__(self, name: str, key: str, value: bool, invert: bool) -> None:
        super().__init__(name, key, invert)
        self._value = value

    def _matches(self, value) -> bool:
        return isinstance(value, bool) and value == self._value


class SpanCount:
    def __init__(self, name: str, min_spans: int, max_spans: int) -> None:
        self.name = name
        self._min = min_spans
        self._max = max_spans or None

    def sample(self, trace: TraceView, now_s: float) -> bool:
        n = trace.span_count
        return n >= self._min and (self._max is None or n <= self._max)


class TraceState:
    def __init__(self, name: str, key: str, values: Sequence[str]) -> None:
        self.name = name
        self._wanted = frozenset(f"{key}={v}" for v in values)

    def sample(self, trace: TraceView, now_s: float) -> bool:
        wanted = self._wanted
        for s in trace.spans:
            if s.trace_state and any(m.strip() in wanted for m in s.trace_state.split(",")):
                return True
        return False


class And:
    def __init__(self, name: str, operands: Sequence[Evaluator]) -> None:
        self.name = name
        self._operands = list(operands)

    def sample(self, trace: TraceView, now_s: float) -> bool:
        return all(o.sample(trace, now_s) for o in self._operands)


class Composite:
    """Sub-policies in order; the first that samples the trace within its share of
    ``max_total_spans_per_second`` (this second) decides; over its share, the next is asked."""

    def __init__(self, name: str, max_total: int, ordered: Sequence[Evaluator],
                 allocations: Sequence[RateAllocation]) -> None:
        self.name = name
        self._ordered = list(ordered)
        given = {a.policy: a.percent for a in allocations}
        rest = [e.name for e in ordered if e.name not in given]
        left = max(0, 100 - sum(given.values()))
        self._limits = {e.name: max_total * (given[e.name] if e.name in given else left / max(1, len(rest))) / 100
                        for e in ordered}
        self._windows = {e.name: _SecondWindow() for e in ordered}

    def sample(self, trace: TraceView, now_s: float) -> bool:
        n = trace.span_count
        for e in self._ordered:
            if e.sample(trace, now_s) and self._windows[e.name].fits(now_s, n, self._limits[e.name]):
                return True
        return False


def build(p) -> Evaluator:
    """The evaluator of one policy (or sub-policy) config."""
    t, name = p.type, p.name
    if t == "always_sample":
        return AlwaysSample(name)
    if t == "latency":
        return Latency(name, p.latency.threshold_ms, p.latency.upper_threshold_ms)
    if t == "status_code":
        return StatusCodes(name, p.status_code.status_codes)
    if t == "probabilistic":
        return Probabilistic(name, p.probabilistic.sampling_percentage, p.probabilistic.hash_salt)
    if t == "rate_limiting":
        return RateLimiting(name, p.rate_limiting.spans_per_second)
    if t == "string_attribute":
        c = p.string_attribute
        return StringAttribute(name, c.key, c.values, c.enabled_regex_matching, c.invert_match)
    if t == "numeric_attribute":
        c = p.numeric_attribute
        return NumericAttribute(name, c.key, c.min_value, c.max_value, c.invert_match)
    if t == "boolean_attribute":
        c = p.boolean_attribute
        return BooleanAttribute(name, c.key, c.value, c.invert_match)
    if t == "span_count":
        return SpanCount(name, p.span_count.min_spans, p.span_count.max_spans)
    if t == "trace_state":
        return TraceState(name, p.trace_state.key, p.trace_state.values)
    if t == "and":
        return And(name, [build(s) for s in p.and_.and_sub_policy])
    if t == "composite":
        c = p.composite
        subs = {s.name: build(s) for s in c.composite_sub_policy}
        order = list(c.policy_order) + [n for n in subs if n not in c.policy_order]
        return Composite(name, c.max_total_spans_per_second, [subs[n] for n in order], c.rate_allocation)
    raise ValueError(f"policy type {t!r} is not supported")  # validation rejects it first


def build_all(policies: Sequence[PolicyConfig]) -> list[Evaluator]:
    return [build(p) for p in policies]
