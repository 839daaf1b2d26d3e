"""Reading the agent's Prometheus endpoint from tests: the page, and sums of samples."""

from __future__ import annotations

import urllib.request

OPENMETRICS = "application/openmetrics-text"


def scrape(port: int, accept: str | None = None) -> str:
    """The metrics page at 127.0.0.1:port (``accept``: e.g. :data:`OPENMETRICS`)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if accept:
        req.add_header("Accept", accept)
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read().decode()


def metric_sum(text: str, prefix: str, *needles: str) -> float:
    """Sum of the samples whose line starts with ``prefix`` and contains every needle."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(prefix) and all(n in line for n in needles):
            total += float(line.rsplit(" ", 1)[1])
    return total
