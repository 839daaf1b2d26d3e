"""The discovery summary and when it is worth a log line.

The summary (:class:`DiscoverySummary`) is recomputed at every rescan and served as metrics; its
INFO line (``discovery: instrumented ...``) is logged at start and then only when what it says
changes meaningfully (:class:`SummaryThrottle`):

* a service counts once it has run for :data:`SETTLE_SECONDS` without a break, and stops
  counting once it has been gone that long — a ``curl`` run, a cron job of a few seconds, a
  process restarting never make a line;
* the line changes when the set of counted services or the attached TLS libraries change (not
  when a service gains or loses processes);
* at most one line per :data:`MIN_INTERVAL_SECONDS`; a change that comes sooner is logged when
  the interval is over, if it still holds.

Sans-I/O: the caller passes the clock's time and logs the line it gets back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

SUMMARY_NAMES = 20  # service names listed in the summary log line
SETTLE_SECONDS = 10.0
MIN_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class DiscoverySummary:
    traced: int
    excluded: int
    tls_processes: int  # traced processes mapping an attached TLS library
    libraries: tuple[str, ...]  # paths of the attached TLS libraries
    services: tuple[tuple[str, int], ...]  # (service name, traced processes), most first

    def line(self) -> str:
        names = ", ".join(f"{n} x{c}" if c > 1 else n for n, c in self.services[:SUMMARY_NAMES])
        more = len(self.services) - SUMMARY_NAMES
        if more > 0:
            names += f", and {more} more"
        libs = ", ".join(self.libraries) or "none"
        return (
            f"instrumented {self.traced} processes ({self.excluded} excluded by discovery rules), "
            f"{len(self.libraries)} TLS libraries ({libs}) in {self.tls_processes} of them; "
            f"services: {names or 'none'}"
        )


class SummaryThrottle:
    """Decides which summaries are logged (see the module's docstring)."""

    def __init__(self, settle: float = SETTLE_SECONDS, min_interval: float = MIN_INTERVAL_SECONDS) -> None:
        self._settle = settle
        self._min_interval = min_interval
        self._present_since: dict[str, float] = {}  # present now, without a break since then
        self._last_seen: dict[str, float] = {}  # counted services: when last present
        self._logged_key: tuple[frozenset[str], tuple[str, ...]] | None = None
        self._logged_at = float("-inf")

    def settled(self, present: Iterable[str], now: float, at_start: bool = False) -> frozenset[str]:
        """The services that count now; ``present``: the names of the traced processes.  What
        runs when the agent starts has been running already: it counts at once."""
        present = set(present)
        since = now - self._settle if at_start else now
        for name in present:
            self._present_since.setdefault(name, since)
        for name in [n for n in self._present_since if n not in present]:
            del self._present_since[name]
        for name, t in self._present_since.items():
            if now - t >= self._settle or name in self._last_seen:
                self._last_seen[name] = now
        for name in [n for n, t in self._last_seen.items() if n not in present and now - t >= self._settle]:
            del self._last_seen[name]
        return frozenset(self._last_seen)

    def should_log(self, services: frozenset[str], libraries: tuple[str, ...], now: float,
                   force: bool = False) -> bool:
        key = (services, libraries)
        if key == self._logged_key and not force:
            return False
        if not force and now - self._logged_at < self._min_interval:
            return False
        self._logged_key, self._logged_at = key, now
        return True
