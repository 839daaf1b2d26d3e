"""``tail_sampling``: the configuration, in the OpenTelemetry Collector tailsamplingprocessor's
keys, so a Collector policy list can be copied across.

Supported policy types: ``always_sample``, ``latency``, ``status_code``, ``probabilistic``,
``rate_limiting``, ``string_attribute``, ``numeric_attribute``, ``boolean_attribute``,
``span_count``, ``trace_state``, ``and`` and ``composite``.  Keys and types of the Collector this
agent does not implement are rejected with a message naming them (exit code 2), never ignored.
Agent-only keys: ``max_held_bytes`` (memory bound in bytes) and ``keep_if_caller_sampled``.
See docs/sampling.md for the semantics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import MappingProxyType

from receiver.configuration.section import ConfigSection, setting

SUPPORTED_TYPES = (
    "always_sample", "latency", "status_code", "probabilistic", "rate_limiting", "string_attribute",
    "numeric_attribute", "boolean_attribute", "span_count", "trace_state", "and", "composite",
)
# Types the Collector has and this agent has not (yet): named as such in the error.
COLLECTOR_ONLY_TYPES = ("ottl_condition", "drop", "not", "bytes_limiting", "trace_flags")
STATUS_CODES = ("OK", "ERROR", "UNSET")

_NO_OTTL = "OTTL conditions are not implemented here; use the attribute, status_code or latency policies"


def _policy_type(value: str) -> str | None:
    """one of the supported policy types"""
    if value in SUPPORTED_TYPES:
        return None
    if value in COLLECTOR_ONLY_TYPES:
        return (f"policy type '{value}' of the Collector's tail_sampling is not supported by this agent "
                f"(supported: {', '.join(SUPPORTED_TYPES)})")
    return f"unknown policy type '{value}' (supported: {', '.join(SUPPORTED_TYPES)})"


@dataclass(frozen=True, slots=True)
class LatencyPolicy(ConfigSection):
    """``latency``: the trace's duration (latest span end − earliest span start)."""

    threshold_ms: int = setting(0, "Sample traces lasting at least this many milliseconds.", minimum=0)
    upper_threshold_ms: int = setting(0, "And at most this many milliseconds; 0: no upper bound.", minimum=0)

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if self.upper_threshold_ms and self.upper_threshold_ms < self.threshold_ms:
            yield "upper_threshold_ms", "upper_threshold_ms must be 0 or at least threshold_ms"


@dataclass(frozen=True, slots=True)
class StatusCodePolicy(ConfigSection):
    """``status_code``: a span of the trace has one of these status codes."""

    status_codes: tuple[str, ...] = setting((), "Span status codes that sample the trace.", choices=STATUS_CODES)

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if not self.status_codes:
            yield "status_codes", "status_codes must name at least one of OK, ERROR, UNSET"


@dataclass(frozen=True, slots=True)
class ProbabilisticPolicy(ConfigSection):
    """``probabilistic``: a share of traces, decided from the trace id."""

    sampling_percentage: float = setting(0.0, "Percentage of traces sampled (100 or more: all).", minimum=0)
    hash_salt: str = setting("", "Without it the decision is the W3C/SDK TraceIdRatio rule (low 8 bytes of the trace "
                                 "id), so SDKs and this agent agree; with it, a salted hash of the trace id.")


@dataclass(frozen=True, slots=True)
class RateLimitingPolicy(ConfigSection):
    """``rate_limiting``: sample while the spans sampled by this policy this second stay under the limit."""

    spans_per_second: int = setting(0, "Spans per second this policy may sample.", minimum=1)


@dataclass(frozen=True, slots=True)
class StringAttributePolicy(ConfigSection):
    """``string_attribute``: a span (or its resource) has the key with one of the values."""

    key: str = setting("", "Attribute key (span attributes, then resource attributes).")
    values: tuple[str, ...] = setting((), "Values (or regular expressions) that match.")
    enabled_regex_matching: bool = setting(False, "Values are regular expressions (full match).")
    cache_max_size: int = setting(0, "Accepted for compatibility: compiled expressions are matched directly.",
                                  minimum=0)
    invert_match: bool = setting(False, "Sample traces where no span matches (and those without the key).")

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if not self.key:
            yield "key", "key must name an attribute"
        if not self.values:
            yield "values", "values must hold at least one value"


@dataclass(frozen=True, slots=True)
class NumericAttributePolicy(ConfigSection):
    """``numeric_attribute``: a span (or its resource) has the key with a value in [min_value, max_value]."""

    key: str = setting("", "Attribute key (span attributes, then resource attributes).")
    min_value: float | None = setting(None, "Smallest matching value (null: no lower bound).")
    max_value: float | None = setting(None, "Largest matching value (null: no upper bound).")
    invert_match: bool = setting(False, "Sample traces where no span matches.")

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if not self.key:
            yield "key", "key must name an attribute"
        if self.min_value is None and self.max_value is None:
            yield "min_value", "min_value or max_value must be set"
        elif self.min_value is not None and self.max_value is not None and self.max_value < self.min_value:
            yield "max_value", "max_value must be at least min_value"


@dataclass(frozen=True, slots=True)
class BooleanAttributePolicy(ConfigSection):
    """``boolean_attribute``: a span (or its resource) has the key with this boolean value."""

    key: str = setting("", "Attribute key (span attributes, then resource attributes).")
    value: bool = setting(False, "The value that matches.")
    invert_match: bool = setting(False, "Sample traces where no span matches.")

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if not self.key:
            yield "key", "key must name an attribute"


@dataclass(frozen=True, slots=True)
class SpanCountPolicy(ConfigSection):
    """``span_count``: the trace holds between min_spans and max_spans spans (here, on this host)."""

    min_spans: int = setting(1, "Fewest spans.", minimum=0)
    max_spans: int = setting(0, "Most spans; 0: no upper bound.", minimum=0)

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if self.max_spans and self.max_spans < self.min_spans:
            yield "max_spans", "max_spans must be 0 or at least min_spans"


@dataclass(frozen=True, slots=True)
class TraceStatePolicy(ConfigSection):
    """``trace_state``: a span's W3C tracestate has the key with one of the values."""

    key: str = setting("", "tracestate key.")
    values: tuple[str, ...] = setting((), "Values that match.")

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if not self.key or not self.values:
            yield "key", "key and values must be set"


_BLOCKS = ("latency", "status_code", "probabilistic", "rate_limiting", "string_attribute", "numeric_attribute",
           "boolean_attribute", "span_count", "trace_state")
_POLICY_UNSUPPORTED = MappingProxyType({"ottl_condition": _NO_OTTL, "drop": "the drop policy is not implemented",
                                        "not": "the not policy is not implemented",
                                        "bytes_limiting": "use rate_limiting (spans per second)"})


@dataclass(frozen=True, slots=True)
class _Policy(ConfigSection):
    """What every policy (and sub-policy) has: a name, a type and the block of that type."""

    name: str = setting("", "Names the policy in self-metrics.")
    type: str = setting("", "Policy type.", check=_policy_type)
    latency: LatencyPolicy | None = setting(None, "For type latency.")
    status_code: StatusCodePolicy | None = setting(None, "For type status_code.")
    probabilistic: ProbabilisticPolicy | None = setting(None, "For type probabilistic.")
    rate_limiting: RateLimitingPolicy | None = setting(None, "For type rate_limiting.")
    string_attribute: StringAttributePolicy | None = setting(None, "For type string_attribute.")
    numeric_attribute: NumericAttributePolicy | None = setting(None, "For type numeric_attribute.")
    boolean_attribute: BooleanAttributePolicy | None = setting(None, "For type boolean_attribute.")
    span_count: SpanCountPolicy | None = setting(None, "For type span_count.")
    trace_state: TraceStatePolicy | None = setting(None, "For type trace_state.")

    unsupported_keys = _POLICY_UNSUPPORTED

    def block(self):
        """The settings block of this policy's type (None for always_sample)."""
        key = "and_" if self.type == "and" else self.type
        return getattr(self, key, None) if self.type != "always_sample" else None

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if not self.name:
            yield "name", "every policy needs a name"
        if not self.type:
            yield "type", "every policy needs a type"
            return
        if self.type != "always_sample" and self.block() is None:
            yield "type", f"policy type '{self.type}' needs its '{self.type}' block"
        for other in _BLOCKS + ("and", "composite"):
            if other != self.type and getattr(self, "and_" if other == "and" else other, None) is not None:
                yield "type", f"a '{other}' block is given, but the policy's type is '{self.type}'"


@dataclass(frozen=True, slots=True)
class AndSubPolicy(_Policy):
    """One operand of an ``and`` policy (no and/composite inside)."""

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if self.type in ("and", "composite"):
            yield "type", f"'{self.type}' cannot be nested in an and policy"
            return
        yield from _Policy.cross_field_problems(self)


@dataclass(frozen=True, slots=True)
class AndPolicy(ConfigSection):
    """``and``: every sub-policy samples the trace."""

    and_sub_policy: tuple[AndSubPolicy, ...] = setting((), "The policies that must all sample.")

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if not self.and_sub_policy:
            yield "and_sub_policy", "an and policy needs at least one sub-policy"


@dataclass(frozen=True, slots=True)
class CompositeSubPolicy(_Policy):
    """One sub-policy of a ``composite`` policy (an and policy allowed, no composite)."""

    and_: AndPolicy | None = setting(None, "For type and.", yaml_key="and")

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if self.type == "composite":
            yield "type", "'composite' cannot be nested in a composite policy"
            return
        yield from _Policy.cross_field_problems(self)


@dataclass(frozen=True, slots=True)
class RateAllocation(ConfigSection):
    """A composite sub-policy's share of ``max_total_spans_per_second``."""

    policy: str = setting("", "The sub-policy's name.")
    percent: int = setting(0, "Its share, in percent.", minimum=0, maximum=100)


@dataclass(frozen=True, slots=True)
class CompositePolicy(ConfigSection):
    """``composite``: sub-policies in ``policy_order``; the first that samples the trace within its
    share of the span rate decides."""

    max_total_spans_per_second: int = setting(0, "Spans per second all sub-policies may sample together.",
                                              minimum=1)
    policy_order: tuple[str, ...] = setting((), "Sub-policy names, in evaluation order.")
    composite_sub_policy: tuple[CompositeSubPolicy, ...] = setting((), "The sub-policies.")
    rate_allocation: tuple[RateAllocation, ...] = setting((), "Shares of the rate; a sub-policy without one shares "
                                                              "what the others leave.")

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        names = [p.name for p in self.composite_sub_policy]
        if not names:
            yield "composite_sub_policy", "a composite policy needs at least one sub-policy"
        for n in self.policy_order:
            if n not in names:
                yield "policy_order", f"policy_order names '{n}', which is no composite_sub_policy"
        for a in self.rate_allocation:
            if a.policy not in names:
                yield "rate_allocation", f"rate_allocation names '{a.policy}', which is no composite_sub_policy"
        if sum(a.percent for a in self.rate_allocation) > 100:
            yield "rate_allocation", "rate_allocation percents add up to more than 100"


@dataclass(frozen=True, slots=True)
class PolicyConfig(_Policy):
    """One entry of ``policies``."""

    and_: AndPolicy | None = setting(None, "For type and.", yaml_key="and")
    composite: CompositePolicy | None = setting(None, "For type composite.")


@dataclass(frozen=True, slots=True)
class DecisionCacheConfig(ConfigSection):
    """Decisions remembered after a trace is released, so late spans and logs follow them."""

    sampled_cache_size: int = setting(65536, "Trace ids of sampled traces remembered.", minimum=0)
    non_sampled_cache_size: int = setting(65536, "Trace ids of dropped traces remembered.", minimum=0)


@dataclass(frozen=True, slots=True)
class TailSamplingProcessorConfig(ConfigSection):
    """``tail_sampling``: keeps or drops whole traces (spans and, in a logs pipeline, their log
    records) after looking at all of them, by the Collector's policies."""

    signals = frozenset({"traces", "logs"})
    unsupported_keys = MappingProxyType({
        "block_on_overflow": "when num_traces or max_held_bytes is reached the oldest trace is decided early",
        "sample_on_first_match": "every policy is evaluated (each is counted)",
        "drop_pending_traces_on_shutdown": "pending traces are decided at shutdown",
    })

    policies: tuple[PolicyConfig, ...] = setting((), "The policies; a trace any of them samples is kept.")
    decision_wait: float = setting(
        2.0, "Wait after a trace's first span or log record before deciding (the Collector's default is 30s: this "
        "agent releases a trace's local spans together, once linked).", kind="duration", above=0)
    num_traces: int = setting(50000, "Traces held before the decision; when full, the oldest is decided early.",
                              minimum=1)
    expected_new_traces_per_sec: int = setting(0, "Accepted for compatibility (sizes nothing here).", minimum=0)
    decision_cache: DecisionCacheConfig = setting(DecisionCacheConfig(), "Decisions kept for late items.")
    max_held_bytes: int = setting(64 * 2**20, "Bytes of spans and logs held (estimated) before the decision; when "
                                              "reached, the oldest trace is decided early.", kind="bytes", minimum=4096)
    keep_if_caller_sampled: bool = setting(
        False, "Keep a trace whose incoming W3C traceparent was sampled by its caller, whatever the policies say "
        "(so agent spans never leave holes in SDK traces).")

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if not self.policies:
            yield "policies", "tail_sampling needs at least one policy"
        seen = set()
        for i, p in enumerate(self.policies):
            if p.name in seen:
                yield f"policies[{i}].name", f"two policies are named '{p.name}'"
            seen.add(p.name)
