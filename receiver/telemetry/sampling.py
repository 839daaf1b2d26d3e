"""Head sampling of kernel-made traces: which traces are exported as spans.

The names and semantics are the OpenTelemetry SDK's (``OTEL_TRACES_SAMPLER``):

* ``always_on`` / ``always_off``;
* ``traceidratio``: a trace is kept when the low 8 bytes of its trace id, read as an unsigned
  big-endian integer, are below ``ratio × 2^64`` — the same decision every SDK and the Collector's
  ``probabilistic_sampler`` make from the same trace id, so services agree without talking;
* ``parentbased_*``: a trace that arrived with W3C context (``traceparent``) keeps the caller's
  decision (its *sampled* flag); only traces that start here use the named root sampler.

The decision is taken once per trace, when the trace id is decided (see
:mod:`receiver.telemetry.linking`), and travels as the W3C *sampled* flag, so every span of a
trace — server, client, same-host peers — gets the same answer.  Spans sampled out are not
exported, but their duration still goes to the RED metrics (without an exemplar, which would
point at a trace nobody has), so rates, errors and latencies stay exact at any ratio.
"""

from __future__ import annotations

SAMPLER_NAMES = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)

SAMPLED = 0x01  # W3C trace-flags bit
# OTLP span flags above the W3C byte: the parent's remoteness is known (0x100) and it is remote
# (0x200) — set on spans continuing a context read from the wire (tail sampling's
# keep_if_caller_sampled reads it).
REMOTE_PARENT = 0x300

_BOUND_SCALE = 1 << 64


class Sampler:
    """A head sampler: ``root(trace_id)`` for traces that start here, ``remote(trace_id,
    flags)`` for traces continuing a caller's W3C context.  Both return trace flags."""

    __slots__ = ("name", "ratio", "parent_based", "_root_kind", "_bound")

    def __init__(self, name: str = "parentbased_always_on", ratio: float = 1.0) -> None:
        if name not in SAMPLER_NAMES:
            raise ValueError(f"unknown sampler {name!r}; one of {', '.join(SAMPLER_NAMES)}")
        if not 0.0 <= ratio <= 1.0:
            raise ValueError("sampler ratio must be within 0..1")
        self.name = name
        self.ratio = ratio
        self.parent_based = name.startswith("parentbased_")
        self._root_kind = name.removeprefix("parentbased_")
        # traceidratio keeps low-8-bytes < bound; always_on/off are the bounds 2^64 and 0.
        if self._root_kind == "always_on":
            self._bound = _BOUND_SCALE
        elif self._root_kind == "always_off":
            self._bound = 0
        else:
            self._bound = _BOUND_SCALE if ratio >= 1.0 else round(ratio * _BOUND_SCALE)

    def __repr__(self) -> str:
        return f"Sampler({self.name!r}, {self.ratio!r})"

    def root(self, trace_id: bytes) -> int:
        """Trace flags for a trace that starts at this node."""
        bound = self._bound
        if bound == _BOUND_SCALE:
            return SAMPLED
        if bound == 0:
            return 0
        return SAMPLED if int.from_bytes(trace_id[8:16], "big") < bound else 0

    def remote(self, trace_id: bytes, flags: int) -> int:
        """Trace flags for a trace whose context came from the wire with ``flags``: the caller's
        decision when parent-based, this sampler's own otherwise (other flag bits kept)."""
        if self.parent_based:
            return flags
        return (flags & ~SAMPLED) | self.root(trace_id)


ALWAYS_ON = Sampler("parentbased_always_on", 1.0)

__all__ = ["ALWAYS_ON", "REMOTE_PARENT", "SAMPLED", "SAMPLER_NAMES", "Sampler"]
