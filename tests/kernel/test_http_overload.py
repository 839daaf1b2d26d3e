"""Overload is a state, not a loss: with the reader behind (a 4 KiB ring buffer nobody drains
during a burst) or a shed level set by user space, paired transactions the kernel does not
submit are added to per-CPU duration histograms (erx_http_aggregates), read and merged by
receiver/capture/overload.py. Per process, records submitted + transactions aggregated ==
requests sent, exactly, by status; records produced == delivered + lost; errors are shed last."""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from receiver.capture.overload import OverloadAggregates
from tests.support.servers import NginxServer

from .harness import Capture, started_capture
from .http_support import counters, kernel_transactions, run

pytestmark = pytest.mark.kernel

PATHS = ["/index.html", "/status/500", "/status/404"]


def drain_until_quiescent(cap: Capture, timeout: float = 5.0) -> dict[str, int]:
    """Read the ring buffer until the counters stand still and every record produced is
    delivered or counted lost (other processes keep producing: wait for a quiet moment)."""
    deadline = time.monotonic() + timeout
    while True:
        before = counters(cap)
        while cap.poll():
            pass
        after = counters(cap)
        lost = after["ERX_CNT_LOST_RINGBUF_FULL"] + after["ERX_CNT_LOST_NO_SCRATCH"]
        if before == after and cap.records + lost == after["ERX_CNT_PRODUCED"]:
            return after
        if time.monotonic() > deadline:
            raise AssertionError(f"delivered {cap.records} + lost {lost} != produced {after['ERX_CNT_PRODUCED']}")
        time.sleep(0.001)


@pytest.fixture(scope="module")
def nginx(kernel):
    with tempfile.TemporaryDirectory() as tmp, NginxServer(Path(tmp)) as n:
        yield n


def burst(cap: Capture, nginx: NginxServer, count: int) -> tuple[int, int, Counter]:
    """count requests from a child over 4 keep-alive connections, nobody reading the ring
    meanwhile; returns (client pid, nginx worker pid, statuses sent)."""
    worker = max(nginx.pids())
    cap.watch(worker)
    done = run(cap, "burst", port=nginx.port, connections=4, count=count, paths=PATHS)
    return done.pid, worker, Counter({int(k): v for k, v in done.report["statuses"].items()})


def is_error(status: int, client: bool) -> bool:
    return status >= 500 or (client and status >= 400)


def test_tiny_ring_burst_is_counted_exactly(nginx: NginxServer) -> None:
    with started_capture(http_pairing=True, ring_buffer_size=4096) as cap:
        aggregates = OverloadAggregates(cap.loader)
        drain_until_quiescent(cap)
        aggregates.drain()
        before = counters(cap)
        client, worker, sent = burst(cap, nginx, 600)
        after = drain_until_quiescent(cap)  # produced == delivered + lost, exactly
        drained = aggregates.drain()
        assert sent == Counter({200: 200, 500: 200, 404: 200})
        shed = sum(after[n] - before[n] for n in ("ERX_CNT_SHED_RING", "ERX_CNT_SHED_RING_FULL"))
        assert shed > 0 and after["ERX_CNT_HTTP_AGG_FULL"] == before["ERX_CNT_HTTP_AGG_FULL"]
        for pid, role, is_client in ((client, cap.c("ERX_ROLE_CLIENT"), True),
                                     (worker, cap.c("ERX_ROLE_SERVER"), False)):
            records = kernel_transactions(cap.events(pid))
            mine = [a for a in drained if a.key.pid == pid]
            delivered = Counter(e.status for e in records)
            aggregated = Counter()
            for a in mine:
                aggregated[a.key.status] += a.count
                assert (a.key.role, a.key.method, a.key.version, a.key.tls, a.key.server_port) == (
                    role, "GET", "1.1", False, nginx.port)
                assert a.key.server_address == ("127.0.0.1" if is_client else "")
                assert sum(a.buckets) == a.count and len(a.buckets) == len(aggregates.bounds_ns) + 1
                assert 0 < a.min_ns <= a.max_ns and a.min_ns * a.count <= a.sum_ns <= a.max_ns * a.count
            # every request is a record or in an aggregate, exactly once
            assert delivered + aggregated == sent, (pid, delivered, aggregated)
            assert sum(aggregated.values()) > 0
            # errors were kept as records longer than successes
            err = sum(n for s, n in delivered.items() if is_error(s, is_client))
            ok = sum(n for s, n in delivered.items() if not is_error(s, is_client))
            err_sent = sum(n for s, n in sent.items() if is_error(s, is_client))
            assert err >= 1 and err / err_sent >= ok / (sum(sent.values()) - err_sent), (delivered, aggregated)
        assert aggregates.drain() == []  # drained once: nothing left over


def test_shed_levels(nginx: NginxServer) -> None:
    """User space's shed level, with a ring buffer far from full: successes aggregated and
    errors still submitted, then everything aggregated."""
    with started_capture(http_pairing=True) as cap:
        aggregates = OverloadAggregates(cap.loader)
        aggregates.drain()
        aggregates.set_shed_level(cap.c("ERX_SHED_SUCCESSES"))
        assert aggregates.shed_level == cap.c("ERX_SHED_SUCCESSES")
        client, worker, sent = burst(cap, nginx, 60)
        drain_until_quiescent(cap)
        drained = aggregates.drain()
        for pid, is_client in ((client, True), (worker, False)):
            delivered = Counter(e.status for e in kernel_transactions(cap.events(pid)))
            aggregated = Counter()
            for a in drained:
                if a.key.pid == pid:
                    aggregated[a.key.status] += a.count
            assert delivered == Counter({s: n for s, n in sent.items() if is_error(s, is_client)})
            assert aggregated == Counter({s: n for s, n in sent.items() if not is_error(s, is_client)})
        aggregates.set_shed_level(cap.c("ERX_SHED_ALL"))
        seen = len(kernel_transactions(cap.events(worker)))
        client, worker, sent = burst(cap, nginx, 30)
        drain_until_quiescent(cap)
        drained = aggregates.drain()
        assert kernel_transactions(cap.events(client)) == []
        assert len(kernel_transactions(cap.events(worker))) == seen
        for pid in (client, worker):
            assert Counter({a.key.status: a.count for a in drained if a.key.pid == pid}) == sent
        aggregates.set_shed_level(cap.c("ERX_SHED_NONE"))


SLOW_APP = """
import sys, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/slow"):
            time.sleep(0.25)
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\\n")
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_slow_transactions_are_shed_as_late_as_errors(tmp_path) -> None:
    """shed_keep_slower_than_ns (what a tail sampler's latency policy keeps): at the shed level
    that aggregates successes, successes slower than it still leave as records."""
    import os
    import signal
    import subprocess
    import sys

    from tests.support.ports import free_port, wait_for_port

    (tmp_path / "app.py").write_text(SLOW_APP)
    port = free_port()
    with started_capture(http_pairing=True, shed_keep_slower_than_ns=200_000_000) as cap:
        aggregates = OverloadAggregates(cap.loader)
        app = subprocess.Popen([sys.executable, str(tmp_path / "app.py"), str(port)], start_new_session=True)
        try:
            cap.watch(app.pid)
            wait_for_port(port)
            drain_until_quiescent(cap)
            aggregates.drain()
            aggregates.set_shed_level(cap.c("ERX_SHED_SUCCESSES"))
            urls = [f"http://127.0.0.1:{port}/fast/{i}" for i in range(20)] + \
                   [f"http://127.0.0.1:{port}/slow/{i}" for i in range(3)]
            subprocess.run(["curl", "-s", *[a for u in urls for a in ("-o", "/dev/null", u)]], check=True, timeout=30)
            drain_until_quiescent(cap)
            drained = aggregates.drain()
            records = [e for e in kernel_transactions(cap.events(app.pid)) if e.target.startswith(("/fast", "/slow"))]
            assert sorted(e.target for e in records) == [f"/slow/{i}" for i in range(3)]
            assert sum(a.count for a in drained if a.key.pid == app.pid) == 20
        finally:
            aggregates.set_shed_level(cap.c("ERX_SHED_NONE"))
            os.killpg(app.pid, signal.SIGTERM)
            app.wait(10)
