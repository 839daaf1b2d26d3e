"""The zPages in a real browser: the agent as users run it (zpages extension on, spans to a real
collector), real nginx → Python app → Redis + PostgreSQL with one failing endpoint, traffic
driven through nginx, and every page opened in headless Chromium; assertions read the rendered
DOM (what the browser built, after its script ran)."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from tests.support.agent import AgentProcess, agent_command
from tests.support.ports import free_port, wait_until
from tests.support.rotel import RotelCollector
from tests.support.zpages_demo import ZPAGES_CONFIG, DemoServices, chromium_driver

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

OK, FAIL = 30, 10


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("zpages")
    port = free_port()
    with RotelCollector(tmp, signals=("traces",)) as collector:
        with AgentProcess(tmp, ZPAGES_CONFIG.format(collector=collector.grpc_endpoint, port=port)) as agent:
            with DemoServices(tmp) as demo:
                codes = demo.drive(OK, FAIL)
                assert codes == {"200": OK, "500": FAIL}, codes
                base = f"http://127.0.0.1:{port}"
                # The edges are paired once the client and server spans of each request are out.
                wait_until(lambda: (_edge_requests(base, "nginx", demo.service) >= OK + FAIL
                                    and _edge_requests(base, demo.service, "redis") >= OK + FAIL
                                    and _edge_requests(base, demo.service, "postgresql") >= OK),
                           timeout=30, what="the edges of the app in the service graph")
                browser = chromium_driver()
                try:
                    yield {"base": base, "demo": demo, "browser": browser, "collector": collector, "agent": agent,
                           "port": port}
                finally:
                    browser.quit()


def _unless_redrawn(check) -> bool:
    """check(), or False when the page redrew the elements it read meanwhile."""
    try:
        return bool(check())
    except StaleElementReferenceException:
        return False


def _edge_requests(base: str, client: str, server: str) -> int:
    with urllib.request.urlopen(base + "/debug/servicemap?fragment=1", timeout=10) as r:
        html = r.read().decode()
    marker = f'data-client="{client}" data-server="{server}" data-requests="'
    i = html.find(marker)
    return int(html[i + len(marker):html.index('"', i + len(marker))]) if i >= 0 else 0


def test_servicemap_draws_the_services_and_their_edges_with_error_rates(env):
    b, demo = env["browser"], env["demo"]
    b.get(env["base"] + "/debug/servicemap")
    svg = b.find_element(By.CSS_SELECTOR, "#map svg")
    nodes = {n.get_attribute("data-node"): n for n in svg.find_elements(By.CSS_SELECTOR, "g.node")}
    edges = {(e.get_attribute("data-client"), e.get_attribute("data-server")): e
             for e in svg.find_elements(By.CSS_SELECTOR, "g.edge")}
    assert {"nginx", demo.service, "redis", "postgresql"} <= set(nodes)
    front = edges[("nginx", demo.service)]
    assert int(front.get_attribute("data-requests")) == OK + FAIL
    assert int(front.get_attribute("data-failed")) == FAIL
    assert float(front.get_attribute("data-error-ratio")) == pytest.approx(FAIL / (OK + FAIL), abs=1e-4)
    assert "25.0%" in front.text  # the label drawn on the edge
    # Every request touches Redis (plus the client's handshake: the server's own count is the
    # truth); only /ok queries PostgreSQL; neither call fails.
    to_redis, to_pg = edges[(demo.service, "redis")], edges[(demo.service, "postgresql")]
    assert int(to_redis.get_attribute("data-requests")) == demo.redis.commands_served() >= OK + FAIL
    assert int(to_pg.get_attribute("data-requests")) == OK
    assert float(to_redis.get_attribute("data-error-ratio")) == 0.0 == float(to_pg.get_attribute("data-error-ratio"))
    # Colour by health: the app served 25% errors (red); the databases are external peers.
    assert "health-bad" in nodes[demo.service].get_attribute("class")
    assert float(nodes[demo.service].get_attribute("data-error-ratio")) == pytest.approx(0.25, abs=1e-4)
    assert "external" in nodes["redis"].get_attribute("class")
    assert "external" in nodes["postgresql"].get_attribute("class")
    # Clicking the app filters the map to its edges (the script in the page, no other asset).
    nodes[demo.service].find_element(By.CSS_SELECTOR, "circle").click()
    wait_until(lambda: "selected" in nodes[demo.service].get_attribute("class"), timeout=5, what="selection")
    for (client, server), e in edges.items():
        dimmed = "dim" in e.get_attribute("class")
        assert dimmed == (demo.service not in (client, server)), (client, server)
    assert demo.service in b.current_url  # the selection is in the URL (#hash)
    # The open page refreshes itself (refresh_interval: 2s) and keeps the selection.  (3 + 1 more
    # requests keep the app's error ratio at 25% for the tests below.)
    more = demo.drive(3, 1)
    assert more == {"200": 3, "500": 1}

    def refreshed():
        e = b.find_element(By.CSS_SELECTOR, f'#map g.edge[data-client="nginx"][data-server="{demo.service}"]')
        return int(e.get_attribute("data-failed")) == FAIL + 1 and int(e.get_attribute("data-requests")) == OK + FAIL + 4

    def selection_kept():
        app = b.find_element(By.CSS_SELECTOR, f'#map g.node[data-node="{demo.service}"]')
        others = [e.get_attribute("class") for e in b.find_elements(By.CSS_SELECTOR, "#map g.edge")
                  if demo.service not in (e.get_attribute("data-client"), e.get_attribute("data-server"))]
        return "selected" in app.get_attribute("class") and others and all("dim" in c for c in others)

    # The page redraws itself every 2 s: an element read across a redraw is stale, read again.
    wait_until(lambda: _unless_redrawn(refreshed), timeout=20, what="the map refreshed in place")
    wait_until(lambda: _unless_redrawn(selection_kept), timeout=5, what="the selection kept across redraws")


def test_servicez_lists_the_processes(env):
    b, demo = env["browser"], env["demo"]
    b.get(env["base"] + "/debug/servicez")
    rows = {int(r.get_attribute("data-pid")): r for r in b.find_elements(By.CSS_SELECTOR, "#services tr.svc")}
    app = rows[demo.app.pid]
    cells = [c.text for c in app.find_elements(By.TAG_NAME, "td")]
    assert cells[0] == demo.service
    assert {"http", "redis", "postgresql"} <= set(cells[4].split())
    assert float(app.get_attribute("data-error-ratio")) == pytest.approx(FAIL / (OK + FAIL), abs=1e-4)
    assert cells[10] == "25.0%"
    nginx_rows = [rows[p] for p in demo.nginx.pids() if p in rows]
    assert nginx_rows and all(r.get_attribute("data-service") == "nginx" for r in nginx_rows)
    assert demo.redis.proc.pid in rows
    assert env["agent"].pid not in rows  # the agent never shows itself


def test_servicez_lists_every_traced_process_on_request(env):
    b = env["browser"]
    idle = subprocess.Popen(["sleep", "60"])  # traced, no traffic
    try:
        wait_until(lambda: _servicez_pids(env["base"] + "/debug/servicez?format=json&all=1") >= {idle.pid},
                   timeout=10, what="the idle process in servicez?all=1")
        assert idle.pid not in _servicez_pids(env["base"] + "/debug/servicez?format=json")
        b.get(env["base"] + "/debug/servicez")
        b.find_element(By.LINK_TEXT, "every traced process, with traffic or not").click()
        wait_until(lambda: b.find_elements(By.CSS_SELECTOR, f'#services tr.svc[data-pid="{idle.pid}"]'), timeout=5,
                   what="the idle process's row")
    finally:
        idle.kill()
        idle.wait()


def _servicez_pids(url: str) -> set[int]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return {p["pid"] for p in json.loads(r.read())["processes"]}


def test_status_cli_prints_the_same_processes(env):
    demo = env["demo"]
    out = subprocess.run(agent_command() + ["status", "--endpoint", f"127.0.0.1:{env['port']}"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["SERVICE", "PID", "CONTAINER"]
    app_line = next(line for line in lines if line.split()[:2] == [demo.service, str(demo.app.pid)])
    assert "25.0" in app_line.split()
    raw = subprocess.run(agent_command() + ["status", "--json", "--endpoint", f"127.0.0.1:{env['port']}"],
                         capture_output=True, text=True, timeout=30)
    assert demo.app.pid in {p["pid"] for p in json.loads(raw.stdout)["processes"]}


def test_tracez_shows_the_failing_span_in_its_error_column(env):
    b, demo = env["browser"], env["demo"]
    b.get(env["base"] + "/debug/tracez")
    rows = b.find_elements(By.CSS_SELECTOR, "#spans tr.span-name")
    with_errors = [(r.get_attribute("data-name"), r.find_element(By.CSS_SELECTOR, "td.errors a").get_attribute("href"))
                   for r in rows if int(r.get_attribute("data-errors")) > 0]
    found = None
    for name, href in with_errors:  # other processes on this host may have error spans too
        b.get(href)
        for sample in b.find_elements(By.CSS_SELECTOR, "#samples tr.sample"):
            if f"{demo.service} ({demo.app.pid})" in sample.text and "url.path = /fail" in sample.text:
                found = (name, sample)
                break
        if found:
            break
    assert found is not None, with_errors
    name, sample = found
    assert sample.get_attribute("data-error") == "1"
    assert "ERROR" in sample.text and "http.response.status_code = 500" in sample.text
    trace_id = sample.get_attribute("data-trace-id")
    assert len(trace_id) == 32 and trace_id != "0" * 32
    # The same span reached the collector: tracez shows what flows through the pipeline.
    same = [s for s in env["collector"].spans() if s.trace_id == trace_id]
    assert same and any("error" in s.status_code.lower() for s in same), same


def test_pipelinez_shows_components_and_kernel_records(env):
    b = env["browser"]
    b.get(env["base"] + "/debug/pipelinez")
    comps = {r.get_attribute("data-component"): r for r in b.find_elements(By.CSS_SELECTOR, "table.components tr[data-component]")}
    assert {"receivers/ebpf", "processors/batch", "exporters/otlp"} <= set(comps)
    assert "running" in comps["exporters/otlp"].text
    assert "traces:" in comps["exporters/otlp"].text  # its sending queue, used / capacity
    assert "ebpf_receiver_exporter_sent_items_total{signal=traces}" in comps["exporters/otlp"].text
    kernel = b.find_element(By.ID, "kernel").text
    assert "ebpf_receiver_kernel_events_produced_total" in kernel


def test_the_agent_never_traces_its_own_pages(env):
    """Chromium's connections to the zpages port reach the agent's own socket: no span of them
    reaches the collector, and none is kept by tracez."""
    b = env["browser"]
    for page in ("servicez", "servicemap", "tracez", "pipelinez"):
        b.get(env["base"] + "/debug/" + page)
    port = str(env["port"])
    wait_until(lambda: env["collector"].spans(), timeout=10, what="spans at the collector")
    own = [s for s in env["collector"].spans()
           if str(s.attributes.get("server.port", "")) == port or str(s.attributes.get("url.path", "")).startswith("/debug/")]
    assert own == []


def test_every_call_the_proxy_makes_is_a_child_of_the_request_it_serves(env):
    """nginx proxies each request to the app: its upstream call is a child of nginx's server span
    (thread linking) and the parent of the app's server span (same-host linking), in one trace.
    The requests come in a burst, so one batch of records holds many of one worker's requests."""
    demo = env["demo"]

    def proxy_calls():
        spans = env["collector"].spans()
        calls = [s for s in spans if s.resource.get("service.name") == "nginx" and "CLIENT" in s.kind.upper()
                 and s.attributes.get("server.port") == demo.app_port]
        return (spans, calls) if len(calls) >= OK + FAIL else None

    # (at least: the other tests of this module may have driven more by the time this one runs)
    spans, calls = wait_until(proxy_calls, timeout=15, what="nginx's calls to the app at the collector")
    by_id = {s.span_id: s for s in spans}
    orphans = [c for c in calls if c.parent_id not in by_id]
    assert orphans == [], f"{len(orphans)} of {len(calls)} upstream calls without nginx's server span as parent"
    for c in calls:
        parent = by_id[c.parent_id]
        assert parent.resource.get("service.name") == "nginx" and "SERVER" in parent.kind.upper()
        assert parent.trace_id == c.trace_id
    ports = {c.attributes.get("network.local.port") for c in calls}
    app = [s for s in spans if s.resource.get("service.name") == demo.service and "SERVER" in s.kind.upper()
           and s.attributes.get("client.port") in ports]
    assert len(app) == len(calls)
    call_ids = {c.span_id: c for c in calls}
    assert all(s.parent_id in call_ids and call_ids[s.parent_id].trace_id == s.trace_id for s in app)
