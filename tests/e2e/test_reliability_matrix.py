"""Two rows of the fault matrix (``make reliability``, bench/reliability/) at a small scale, so the
tool keeps working between full runs: the real agent tracing a real nginx under a constant-rate
load and the matrix's application querying a real PostgreSQL and a real Redis at a fixed rate,
exporting to the matrix's fault-injecting OTLP server.

* 70 % of exports answered UNAVAILABLE: every request's and every query's span arrives exactly
  once, service by service, nothing dropped, every failed export retried;
* partial success: the rejected spans (of nginx and of the application alike) are counted by the
  agent exactly as the server rejected them and never sent again; the others arrive once.

Both rows also check the RED metrics of each service against what its client completed.
"""

from __future__ import annotations

import pytest

from bench.reliability import report, sink_rows
from bench.reliability.apps import SYSTEMS, DbApp
from bench.reliability.row import Env, Scale, start_nginx
from bench.services import Workdir

pytestmark = [pytest.mark.e2e, pytest.mark.kernel]

SMALL = Scale(rate=50.0, load_seconds=6.0, drain_timeout=30.0, app_rate=20.0)
APP_OPS = int(SMALL.app_rate * SMALL.load_seconds)  # per database


@pytest.fixture(scope="module")
def env():
    workdir = Workdir()
    nginx = start_nginx(workdir)
    try:
        with DbApp(workdir.path, SMALL.app_rate) as app:
            yield Env(workdir.path, nginx, SMALL, app=app)
    finally:
        nginx.stop()


def assert_passed(result) -> None:
    assert result.passed, report.row_text(result)


def test_unavailable_70_percent_loses_nothing(env):
    result = sink_rows.unavailable_70(env)
    assert_passed(result)
    services = result.services
    assert list(services) == ["nginx", *SYSTEMS]  # and no other span of the application
    assert services["nginx"].sent == SMALL.rate * SMALL.load_seconds  # the load generator kept up
    for system in SYSTEMS:  # the application kept up, and the agent's RED metrics count each query
        assert services[system].sent == APP_OPS and services[system].red == APP_OPS
    assert all(s.received == s.sent for s in services.values())
    assert result.sent == SMALL.rate * SMALL.load_seconds + 2 * APP_OPS
    assert result.received == result.sent and result.duplicated == 0
    assert result.dropped_counted == 0
    assert result.exit_code == 0


def test_partial_success_rejections_are_counted_and_never_retried(env):
    result = sink_rows.partial_success(env)
    assert_passed(result)
    rejected = result.dropped.get("exporter_failed/rejected", 0)
    assert rejected > 0  # every export had 2 spans rejected
    for system in SYSTEMS:  # the application's spans went through the same exports
        assert result.services[system].sent == APP_OPS and result.services[system].red == APP_OPS
        assert 0 < result.services[system].received <= APP_OPS
    assert result.received + rejected - result.tolerance <= result.sent <= result.received + rejected
    assert result.duplicated == 0
    assert result.exit_code == 0
