"""The ``zpages`` extension: an HTTP server of live pages on what the agent sees.

Where its data comes from (read on each request, nothing is written back):

* the host (the agent): the RED histograms, the service graph, the pipelines and their
  components (``status()``), the agent's own metrics (kernel records produced/delivered/lost,
  exporter and processor counters);
* receivers that trace processes: ``processes(pids)`` (:class:`~receiver.component.status.ProcessStatus`);
* spans: the extension asks the host to hand it every batch a receiver emits, before the first
  processor (``host.observe_spans``), and keeps them in a bounded :class:`~.tracez.SpanStore`.

The agent never traces the connections to this server: like every socket of the agent, its
listening socket is an agent endpoint the kernel ignores (``bpf/src/lib/self.h``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from receiver.extensions.http_thread import HttpServer, ServerThread
from receiver.extensions.zpages import render
from receiver.extensions.zpages.config import ZPagesExtensionConfig, bind_address, is_loopback
from receiver.extensions.zpages.layout import LayoutCache
from receiver.extensions.zpages.tracez import ERROR_BUCKET, SpanStore
from receiver.extensions.zpages.views import (
    ComponentView,
    PipelineView,
    RateWindow,
    component_counters,
    service_map,
    service_rows,
)

log = logging.getLogger(__name__)

KERNEL_PREFIX = "ebpf_receiver_kernel_events"


class ZPagesExtension:
    def __init__(self, config: ZPagesExtensionConfig, host, self_metrics=None, clock=time.monotonic,
                 proc_root: str = "/proc") -> None:
        self._cfg = config
        self._proc_root = proc_root
        self._addr = bind_address(config.endpoint)
        self._host = host
        self._self_metrics = self_metrics
        self._clock = clock
        self.spans = SpanStore(config.samples_per_bucket, config.max_span_names, clock=clock)
        self._service_rates = RateWindow(config.rate_window, clock=clock)
        self._map_rates = RateWindow(config.rate_window, clock=clock)
        self.layouts = LayoutCache()
        self._view_lock = threading.Lock()  # rate windows are shared by requests
        self._serving = ServerThread("zpages")
        self.ready = False
        observe = getattr(host, "observe_spans", None)
        if observe is not None:
            observe(self.spans.observe)

    @property
    def port(self) -> int:
        return self._serving.port(self._addr[1])

    # -- pages ---------------------------------------------------------------------------------

    def servicez_rows(self, all_traced: bool = False):
        """The rows of servicez, and how many processes seen earlier were left out: those that
        exited more than ``rate_window`` ago (a curl run leaves no row behind for long)."""
        now = self._clock()
        activity = self.spans.processes()
        live = [a for a in activity
                if now - a.last_seen <= self._cfg.rate_window or os.path.exists(f"{self._proc_root}/{a.pid}")]
        pids = [a.pid for a in live]
        processes = []
        for r in getattr(self._host, "receivers", {}).values():
            listing = getattr(r, "processes", None)
            if listing is not None:
                processes += listing(pids, all_traced=True) if all_traced else listing(pids)
        red = self._host.red_metrics.collect() if getattr(self._host, "red_metrics", None) is not None else []
        with self._view_lock:
            rows = service_rows(processes, live, red, self._service_rates, time.time_ns())
        return rows, len(activity) - len(live)

    def service_map(self):
        graph = self._host.service_graph.collect() if getattr(self._host, "service_graph", None) is not None else []
        red = self._host.red_metrics.collect() if getattr(self._host, "red_metrics", None) is not None else []
        with self._view_lock:
            return service_map(graph, red, self._map_rates, time.time_ns())

    def _samples(self):
        registry = getattr(self._self_metrics, "registry", None)
        if registry is None:
            return []
        out = []
        for family in registry.collect():
            for s in family.samples:
                if s.name.endswith(("_created", "_bucket")):
                    continue
                out.append((s.name, dict(s.labels), s.value))
        return out

    def pipelines(self) -> tuple[list[PipelineView], list]:
        samples = self._samples()
        describe = getattr(self._host, "pipeline_components", None)
        views = []
        for pipeline_id, signal, components in (describe() if describe is not None else []):
            comps = []
            for kind, component_id, instance in components:
                status = getattr(instance, "status", None)
                comps.append(ComponentView(kind, component_id, status() if status is not None else None,
                                           component_counters(samples, kind, component_id)))
            views.append(PipelineView(pipeline_id, signal, tuple(comps)))
        kernel = [(n, ", ".join(f"{k}={v}" for k, v in sorted(lbl.items())), v)
                  for n, lbl, v in samples if n.startswith(KERNEL_PREFIX)]
        return views, kernel

    def render(self, path: str, query: dict[str, list[str]]) -> tuple[int, str, str]:
        """(status, content type, body) of one GET."""
        fragment = query.get("fragment", [""])[0] == "1"
        refresh = self._cfg.refresh_interval
        if path in ("/", "/debug", "/debug/"):
            return 200, "text/html", render.page("zPages", "", render.index_body(), 0, fragment)
        if path == "/debug/servicez":
            all_traced = query.get("all", [""])[0] == "1"
            rows, exited = self.servicez_rows(all_traced)
            if query.get("format", [""])[0] == "json":
                return 200, "application/json", json.dumps({
                    "window_seconds": self._cfg.rate_window, "exited_not_listed": exited,
                    "processes": [_row_json(r) for r in rows]})
            body = render.servicez_body(rows, self._cfg.rate_window, exited, all_traced)
            return 200, "text/html", render.page("servicez", "servicez", body, refresh, fragment)
        if path == "/debug/servicemap":
            m = self.service_map()
            layout = self.layouts.get([n.name for n in m.nodes], [(e.client, e.server) for e in m.edges])
            return 200, "text/html", render.page("servicemap", "servicemap",
                                                 render.servicemap_body(m, layout, self._cfg.rate_window), refresh, fragment)
        if path == "/debug/tracez":
            name = query.get("name", [None])[0]
            try:
                bucket = int(query.get("bucket", [""])[0])
            except ValueError:
                bucket = None
            if bucket is not None and not 0 <= bucket <= ERROR_BUCKET:
                bucket = None
            samples = self.spans.samples(name, bucket) if name is not None and bucket is not None else []
            body = render.tracez_body(self.spans.summary(), self.spans.dropped, name, bucket, samples)
            return 200, "text/html", render.page("tracez", "tracez", body, refresh, fragment)
        if path == "/debug/pipelinez":
            views, kernel = self.pipelines()
            return 200, "text/html", render.page("pipelinez", "pipelinez", render.pipelinez_body(views, kernel),
                                                 refresh, fragment)
        return 404, "text/plain", "not found: the pages are /debug/servicez, /debug/servicemap, /debug/tracez, /debug/pipelinez\n"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._serving.running:
            return
        ext = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                url = urlsplit(self.path)
                try:
                    status, ctype, text = ext.render(url.path, parse_qs(url.query))
                except Exception:  # a page's bug must not take the server down: logged, answered 500
                    log.exception("zpages: cannot render %s", url.path)
                    status, ctype, text = 500, "text/plain", "internal error (see the agent's log)\n"
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", f"{ctype}; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Security-Policy",
                                 "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                                 "connect-src 'self'; img-src 'self' data:")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep the agent's stderr for the agent's own log
                return

        self._serving.start(HttpServer(self._addr, Handler))
        if not is_loopback(self._addr[0]):
            log.warning("zpages: serving on %s, not a loopback address: the pages show process and service names "
                        "and span attributes to whoever reaches it", self._cfg.endpoint)

    def shutdown(self, timeout: float = 5.0) -> None:
        self.ready = False
        self._serving.stop(timeout)


def _row_json(r) -> dict:
    return {
        "service": r.service, "pid": r.pid, "container": r.container, "executable": r.executable,
        "protocols": list(r.protocols), "tls_stack": list(r.tls_stack), "tls_plaintext": r.tls_plaintext,
        "connections": r.connections, "spans": r.spans, "requests_per_s": r.requests_per_s,
        "error_ratio": r.error_ratio, "p50_s": r.p50_s, "p99_s": r.p99_s, "calls_per_s": r.calls_per_s,
        "call_error_ratio": r.call_error_ratio,
    }
