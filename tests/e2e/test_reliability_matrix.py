"""Two rows of the fault matrix (``make reliability``, bench/reliability/) at a small scale, so the
tool keeps working between full runs: the real agent tracing a real nginx under a constant-rate
load, exporting to the matrix's fault-injecting OTLP server.

* 70 % of exports answered UNAVAILABLE: every request's span arrives exactly once, nothing
  dropped, every failed export retried;
* partial success: the rejected spans are counted by the agent exactly as the server rejected
  them and never sent again; the others arrive once.
"""

from __future__ import annotations

import pytest

from bench.reliability import report, sink_rows
from bench.reliability.row import Env, Scale, start_nginx
from bench.services import Workdir

pytestmark = [pytest.mark.e2e, pytest.mark.kernel]

SMALL = Scale(rate=50.0, load_seconds=6.0, drain_timeout=30.0)


@pytest.fixture(scope="module")
def env():
    workdir = Workdir()
    nginx = start_nginx(workdir)
    try:
        yield Env(workdir.path, nginx, SMALL)
    finally:
        nginx.stop()


def assert_passed(result) -> None:
    assert result.passed, report.row_text(result)


def test_unavailable_70_percent_loses_nothing(env):
    result = sink_rows.unavailable_70(env)
    assert_passed(result)
    assert result.sent == SMALL.rate * SMALL.load_seconds  # the load generator kept up
    assert result.received == result.sent and result.duplicated == 0
    assert result.dropped_counted == 0
    assert result.exit_code == 0


def test_partial_success_rejections_are_counted_and_never_retried(env):
    result = sink_rows.partial_success(env)
    assert_passed(result)
    rejected = result.dropped.get("exporter_failed/rejected", 0)
    assert rejected > 0  # every export had 2 spans rejected
    assert result.received + rejected - result.tolerance <= result.sent <= result.received + rejected
    assert result.duplicated == 0
    assert result.exit_code == 0
