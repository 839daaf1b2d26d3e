"""How long the zPages take to render with a large service graph (issue 21: < 200 ms with 200
services and 1,000 edges).

The host holds the agent's real aggregators (RedMetrics, ServiceGraph, the zpages SpanStore), fed
with spans of 200 services calling each other along 1,000 edges (a DAG, 10 % of calls failing),
and a receiver listing the 200 processes.  Each page is rendered through the extension's request
path (views, layout, HTML) without the socket: the first service map pays for the layout, later
ones find it cached while the graph is unchanged; ``servicemap (new layout)`` forces the layout on
every render.
"""

from __future__ import annotations

import random
import statistics
import time

from receiver.component.status import TLS_NONE, ProcessStatus
from receiver.extensions.zpages import ZPagesExtension, ZPagesExtensionConfig
from receiver.extensions.zpages.layout import LayoutCache
from receiver.model.telemetry import Resource, Span, SpanKind, StatusCode
from receiver.telemetry.red_metrics import RedMetrics
from receiver.telemetry.service_graph import ServiceGraph

TARGET_MS = 200.0


class _Receiver:
    def __init__(self, statuses: list[ProcessStatus]) -> None:
        self._statuses = statuses

    def processes(self, pids=()) -> list[ProcessStatus]:
        return list(self._statuses)


class _Host:
    def __init__(self) -> None:
        self.red_metrics = RedMetrics()
        self.service_graph = ServiceGraph(wait_ns=0, max_edges=2000)
        self.receivers: dict = {}
        self.observers: list = []

    def observe_spans(self, observer) -> None:
        self.observers.append(observer)


def build(services: int = 200, edges: int = 1000, calls_per_edge: int = 5, seed: int = 21):
    rnd = random.Random(seed)
    host = _Host()
    ext = ZPagesExtension(ZPagesExtensionConfig(), host)
    resources = [Resource.from_dict({"service.name": f"svc-{i:03d}", "process.pid": 10_000 + i}) for i in range(services)]
    pairs: set[tuple[int, int]] = {(i, i + 1) for i in range(services - 1)}  # every service has an edge
    while len(pairs) < edges:
        a = rnd.randrange(services - 1)
        pairs.add((a, rnd.randrange(a + 1, services)))
    t0 = time.time_ns()
    spans: list[Span] = []
    n = 0
    for a, b in sorted(pairs):
        for _ in range(calls_per_edge):
            n += 1
            failed = rnd.random() < 0.1
            status = StatusCode.ERROR if failed else StatusCode.UNSET
            d = rnd.randint(200_000, 50_000_000)
            client_id = n.to_bytes(8, "big")
            attrs = {"http.request.method": "GET", "url.path": f"/api/{b}"}
            spans.append(Span(n.to_bytes(16, "big"), client_id, f"GET /api/{b}", SpanKind.CLIENT, t0, t0 + d + 100_000,
                              resources[a], attributes=dict(attrs), status_code=status))
            spans.append(Span(n.to_bytes(16, "big"), (n + 10**9).to_bytes(8, "big"), f"GET /api/{b}", SpanKind.SERVER,
                              t0, t0 + d, resources[b], parent_span_id=client_id, attributes=dict(attrs), status_code=status))
            host.red_metrics.record("http.server.request.duration", resources[b],
                                    (("http.request.method", "GET"),) + ((("error.type", "500"),) if failed else ()),
                                    d / 1e9, t0)
    host.service_graph.observe(spans)
    for observe in host.observers:
        observe(spans)
    host.receivers["ebpf"] = _Receiver([
        ProcessStatus(10_000 + i, r, r, connections=rnd.randint(0, 40), protocols=("http",), tls_stack=(),
                      tls_plaintext=TLS_NONE, tls_ciphertext_connections=0)
        for i, r in enumerate(resources)
    ])
    return ext, len(spans)


def _time(fn, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def run(quick: bool = True) -> dict:
    ext, n_spans = build()
    rounds = 10 if quick else 30
    pages: dict[str, list[float]] = {}
    status, _, body = ext.render("/debug/servicemap", {})
    m = ext.service_map()
    first = _time(lambda: ext.render("/debug/servicemap", {}), 1)  # layout cached by the call above
    ext.layouts = LayoutCache()
    pages["servicemap (first: layout)"] = _time(lambda: ext.render("/debug/servicemap", {}), 1)
    pages["servicemap"] = first + _time(lambda: ext.render("/debug/servicemap", {}), rounds)

    def fresh_layout():
        ext.layouts = LayoutCache()
        ext.render("/debug/servicemap", {})

    pages["servicemap (new layout)"] = _time(fresh_layout, rounds)
    for page in ("servicez", "tracez", "pipelinez"):
        pages[page] = _time(lambda page=page: ext.render(f"/debug/{page}", {}), rounds)
    name = ext.spans.summary()[0].name
    pages["tracez (samples of a cell)"] = _time(lambda: ext.render("/debug/tracez", {"name": [name], "bucket": ["9"]}),
                                                rounds)
    results = []
    browser = _in_chromium(ext, rounds)
    for page, times in pages.items():
        results.append({"page": page, "rounds": len(times), "median_ms": statistics.median(times),
                        "max_ms": max(times), "passed": max(times) < TARGET_MS})
    return {"services": len({n.name for n in m.nodes}), "edges": len(m.edges), "spans": n_spans,
            "html_bytes": len(body), "status": status, "target_ms": TARGET_MS, "pages": results, "browser": browser}


def _in_chromium(ext: ZPagesExtension, rounds: int) -> list[dict]:
    """Each page loaded over the extension's socket in headless Chromium: the navigation's
    duration (request sent → load event ended: server render, transfer, parse, layout, script)."""
    import shutil

    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        return []
    from receiver.extensions.zpages.config import ZPagesExtensionConfig as Config
    from tests.support.ports import free_port
    from tests.support.zpages_demo import chromium_driver

    port = free_port()
    served = ZPagesExtension(Config(endpoint=f"127.0.0.1:{port}", refresh_interval=0), ext._host)
    served.spans = ext.spans
    served.start()
    driver = chromium_driver()
    out = []
    try:
        for page in ("servicemap", "servicez", "tracez", "pipelinez"):
            times = []
            for _ in range(rounds):
                driver.get(f"http://127.0.0.1:{port}/debug/{page}")
                times.append(driver.execute_script(
                    "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;"))
            out.append({"page": page, "rounds": rounds, "median_ms": statistics.median(times), "max_ms": max(times),
                        "passed": statistics.median(times) < TARGET_MS})
    finally:
        driver.quit()
        served.shutdown()
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=1))
