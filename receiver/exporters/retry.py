"""The retry schedule of ``retry_on_failure``, as the Collector's exporterhelper computes it.

Delay ``n`` (0-based) is ``min(initial_interval * multiplier**n, max_interval)``, randomised by
±50 % (the Collector's default randomization factor), and raised to the backend's
``retry_after`` when that is longer.  A request is given up when the next delay would carry it
past ``max_elapsed_time`` after its first attempt (0 = no limit).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from receiver.exporters.config import RetryConfig

RANDOMIZATION_FACTOR = 0.5  # the Collector's default: each delay is drawn from interval * [0.5, 1.5]


def backoff_interval(retry: RetryConfig, attempt: int, rand: Callable[[], float] = random.random) -> float:
    """The randomised delay before retry number ``attempt`` (0-based), in seconds."""
    interval = min(retry.initial_interval * retry.multiplier**attempt, retry.max_interval)
    return interval * (1.0 + RANDOMIZATION_FACTOR * (2.0 * rand() - 1.0))


def next_delay(
    retry: RetryConfig,
    attempt: int,
    retry_after: float | None,
    elapsed: float,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """The wait before the next attempt, or None when ``max_elapsed_time`` forbids one.

    ``elapsed`` is the time since the request's first attempt.
    """
    delay = backoff_interval(retry, attempt, rand)
    if retry_after is not None:
        delay = max(delay, retry_after)
    if retry.max_elapsed_time > 0 and elapsed + delay > retry.max_elapsed_time:
        return None
    return delay
