"""Medians, spread and paired ratios over interleaved rounds."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    median: float
    low: float
    high: float
    n: int

    @property
    def spread_pct(self) -> float:
        """(max - min) / median, in percent."""
        if not self.n or not self.median:
            return float("nan")
        return 100 * (self.high - self.low) / abs(self.median)

    def fmt(self, digits: int = 0, unit: str = "") -> str:
        if not self.n:
            return "—"
        f = f"{{:,.{digits}f}}"
        if self.n == 1:
            return f.format(self.median) + unit
        return f"{f.format(self.median)}{unit} ({f.format(self.low)}–{f.format(self.high)})"


def summarise(values) -> Summary:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return Summary(float("nan"), float("nan"), float("nan"), 0)
    return Summary(statistics.median(vals), min(vals), max(vals), len(vals))


def ratios(numerators, denominators) -> list[float]:
    """Per-round ratios of paired values (rounds where either is missing are skipped)."""
    return [a / b for a, b in zip(numerators, denominators, strict=True) if a is not None and b]
