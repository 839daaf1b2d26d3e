"""The README's recommended set-up, for real: the agent with config/local-collector.yaml next to a
collector on the same host (rotel, printing every span, metric and log it receives to a file),
log capture on, a scraper on /metrics and health checks — 90 s idle, then 60 s of traffic.

The agent must not observe itself: nothing produced by its exports (the collector's side of
them, the collector's output), its scrapes or its health checks comes back as spans or logs; no
ring-buffer losses; its memory stays flat while idle once started (after a 45 s warm-up)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.agent import AgentProcess
from tests.support.ports import free_port, wait_until
from tests.support.prometheus import metric_sum, scrape
from tests.support.rotel import RotelCollector
from tests.support.servers import NginxServer

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
IDLE_S = 90
WARM_UP_S = 45  # start-up: first exports, caches, the gRPC channel (RSS settles within it)
TRAFFIC_S = 60
RATE = 20  # requests per second during the traffic minute

LOGGER = """
import sys, time
end = time.time() + float(sys.argv[1])
i = 0
while time.time() < end:
    print(f"order {i} shipped", flush=True)
    i += 1
    time.sleep(0.2)
"""


def config(collector: RotelCollector, prom_port: int, health_port: int) -> str:
    text = (REPO / "config/local-collector.yaml").read_text()
    text = text.replace("localhost:4317", collector.grpc_endpoint)
    text = text.replace("127.0.0.1:9464", f"127.0.0.1:{prom_port}")
    text = text.replace("127.0.0.1:13133", f"127.0.0.1:{health_port}")
    assert "capture_logs: true" in text
    return text.replace("processors:\n  batch:\n", "processors:\n  batch:\n    timeout: 200ms\n")


def rss_kib(pid: int) -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))


def scrape_and_check_health(prom_port: int, health_port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/", timeout=5) as r:
        assert r.status == 200
    return scrape(prom_port)


def test_an_hour_next_to_a_collector_in_two_minutes(tmp_path):
    prom_port, health_port = free_port(), free_port()
    with RotelCollector(tmp_path) as collector, NginxServer(tmp_path) as nginx:
        collector_pid = str(collector.pid)
        nginx_port = nginx.port
        with AgentProcess(tmp_path, config(collector, prom_port, health_port)) as agent:
            rss = []
            # -- idle: only the agent's own exports, its scrapes and health checks go on --------
            end = time.monotonic() + IDLE_S
            while time.monotonic() < end:
                scrape_and_check_health(prom_port, health_port)
                rss.append(rss_kib(agent.pid))
                time.sleep(5)
            idle_rss = list(rss)
            # -- traffic: nginx requests and a service logging to a file ----------------------
            with open(tmp_path / "service.log", "wb") as service_log:
                logger = subprocess.Popen([sys.executable, "-c", LOGGER, str(TRAFFIC_S - 5)], stdout=service_log)
                sent = 0
                end = time.monotonic() + TRAFFIC_S
                while time.monotonic() < end:
                    tick = time.monotonic()
                    urls = [f"{nginx.url}/index.html?n={sent + i}" for i in range(RATE)]
                    subprocess.run(["curl", "-s", *[a for u in urls for a in ("-o", "/dev/null", u)]], check=True,
                                   timeout=30)
                    sent += RATE
                    text = scrape_and_check_health(prom_port, health_port)
                    rss.append(rss_kib(agent.pid))
                    time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
                logger.wait(30)

            def all_served():
                t = scrape(prom_port)
                n = metric_sum(t, "http_server_request_duration_seconds_count{", 'job="nginx"')
                return n >= sent and t

            text = wait_until(all_served, timeout=30, what="every nginx request in the RED metrics")
            time.sleep(1.0)
        spans, logs = collector.spans(), collector.logs()

    # Nothing of the export path, the scrapes or the health checks came back: no span touching
    # this collector's or this agent's ports, no log of the collector's output.  (Spans of other
    # agents' exports on a shared machine are other processes' traffic, and may be there.)
    ports = {collector.grpc_port, collector.http_port, prom_port, health_port}
    export_path = [s for s in spans
                   if s.attributes.get("server.port") in ports or s.attributes.get("client.port") in ports
                   or s.attributes.get("network.peer.port") in ports]
    assert export_path == [], export_path[:3]
    collector_output = [r for r in logs if collector_pid in (str(r.resource.get("process.pid")),
                                                             str(r.attributes.get("process.pid")))]
    assert collector_output == [], collector_output[:3]
    # (Its output is a file: a log destination. Other collectors on a shared machine print what
    # their own agents send; that is their traffic, so the check is by this collector's pid.)
    assert "ResourceSpans" in collector.text()
    # The traffic itself is all there: server spans of nginx, the service's log lines.
    nginx_spans = [s for s in spans if s.kind == "SPAN_KIND_SERVER" and s.resource.get("service.name") == "nginx"
                   and str(s.attributes.get("url.path", "")) == "/index.html" and s.attributes.get("server.port") == nginx_port]
    assert len(nginx_spans) == sent
    shipped = [r for r in logs if r.body.startswith("order ") and r.body.endswith(" shipped")]
    assert len(shipped) >= 5 * (TRAFFIC_S - 10)
    # No ring-buffer losses, ever.
    assert metric_sum(text, "ebpf_receiver_kernel_events_lost_total{", 'reason="ringbuf_full"') == 0
    # Memory: flat while idle once started, bounded under this traffic.
    settled = idle_rss[WARM_UP_S // 5:]
    assert max(settled) - min(settled) <= 6 * 1024, idle_rss
    assert max(rss) - settled[0] <= 48 * 1024, rss
