"""Service graph metrics from client/server span pairs, named like the OpenTelemetry
Collector's ``servicegraph`` connector (and Grafana Tempo):

* ``traces_service_graph_request_total{client, server, connection_type}``
* ``traces_service_graph_request_failed_total{...}``
* ``traces_service_graph_request_server_seconds`` / ``..._client_seconds`` histograms
* ``traces_service_graph_unpaired_spans_total{client|server}``

A pair is a SERVER span whose parent is a CLIENT span.  A client span still unpaired after
``wait_ns`` is counted as an edge to a *virtual node* when it names its peer (a database
system, or ``server.address``) — e.g. ``checkout → postgresql`` — else as unpaired.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from receiver.model.telemetry import Metric, MetricKind, Resource, Span, SpanKind, StatusCode, SumPoint
from receiver.telemetry.red_metrics import RedMetrics

PREFIX = "traces_service_graph_request"


@dataclass(slots=True)
class _Side:
    service: str
    duration_s: float
    failed: bool
    peer: str  # virtual-node name for an unpaired client span
    connection_type: str
    deadline_ns: int


def _side(span: Span, now_ns: int, wait_ns: int) -> _Side:
    a = span.attributes
    db = a.get("db.system.name")
    peer = str(db or a.get("server.address") or "")
    return _Side(
        service=span.resource.service_name,
        duration_s=max(0, span.end_unix_nano - span.start_unix_nano) / 1e9,
        failed=span.status_code == StatusCode.ERROR,
        peer=peer,
        connection_type="database" if db else ("virtual_node" if peer else ""),
        deadline_ns=now_ns + wait_ns,
    )


class ServiceGraph:
    def __init__(self, wait_ns: int = 2 * 10**9, max_pending: int = 10000, max_edges: int = 1000,
                 clock_ns=time.monotonic_ns) -> None:
        self._wait = wait_ns
        self._max_pending = max_pending
        self._max_edges = max_edges
        self._clock = clock_ns
        self._clients: OrderedDict[bytes, _Side] = OrderedDict()  # client span id -> side
        self._servers: OrderedDict[bytes, _Side] = OrderedDict()  # parent (client) span id -> side
        self._totals: dict[tuple, list] = {}  # attrs -> [requests, failed, start]
        self._unpaired: dict[str, int] = {"client": 0, "server": 0}
        self._durations = RedMetrics(max_series_per_metric=max_edges)
        self._lock = threading.Lock()
        self.resource = Resource.from_dict({"service.name": "ebpf-receiver"})

    def observe(self, spans: list[Span]) -> None:
        now = self._clock()
        with self._lock:
            for s in spans:
                if s.kind == SpanKind.CLIENT:
                    side = _side(s, now, self._wait)
                    srv = self._servers.pop(s.span_id, None)
                    if srv is not None:
                        self._edge(side, srv, "")
                    else:
                        self._clients[s.span_id] = side
                elif s.kind == SpanKind.SERVER and s.parent_span_id:
                    side = _side(s, now, self._wait)
                    cli = self._clients.pop(s.parent_span_id, None)
                    if cli is not None:
                        self._edge(cli, side, "")
                    else:
                        self._servers[s.parent_span_id] = side
            self._expire(now)

    def _expire(self, now: int) -> None:
        for table, kind in ((self._clients, "client"), (self._servers, "server")):
            while table:
                key, side = next(iter(table.items()))
                if side.deadline_ns > now and len(table) <= self._max_pending:
                    break
                del table[key]
                if kind == "client" and side.peer:
                    self._edge(side, None, side.connection_type)
                else:
                    self._unpaired[kind] += 1

    def _edge(self, client: _Side, server: _Side | None, connection_type: str) -> None:
        server_name = server.service if server is not None else client.peer
        attrs = (("client", client.service), ("connection_type", connection_type), ("server", server_name))
        failed = client.failed or (server is not None and server.failed)
        entry = self._totals.get(attrs)
        if entry is None:
            if len(self._totals) >= self._max_edges:
                attrs = (("otel.metric.overflow", True),)
                entry = self._totals.setdefault(attrs, [0, 0, time.time_ns()])
            else:
                entry = self._totals[attrs] = [0, 0, time.time_ns()]
        entry[0] += 1
        entry[1] += 1 if failed else 0
        now = time.time_ns()
        self._durations.record(f"{PREFIX}_client", self.resource, attrs, client.duration_s, now)
        if server is not None:
            self._durations.record(f"{PREFIX}_server", self.resource, attrs, server.duration_s, now)

    def collect(self) -> list[Metric]:
        with self._lock:
            self._expire(self._clock())
            now = time.time_ns()
            requests = [SumPoint(a, v[2], now, v[0]) for a, v in self._totals.items()]
            failed = [SumPoint(a, v[2], now, v[1]) for a, v in self._totals.items()]
            unpaired = [SumPoint((("side", k),), 0, now, v) for k, v in self._unpaired.items()]
        out = [
            Metric(PREFIX, "Requests between two services.", "1", MetricKind.SUM, requests, self.resource),
            Metric(f"{PREFIX}_failed", "Failed requests between two services.", "1", MetricKind.SUM, failed,
                   self.resource),
            Metric("traces_service_graph_unpaired_spans", "Spans that found no peer.", "1", MetricKind.SUM,
                   unpaired, self.resource),
        ]
        for m in self._durations.collect():
            m.description = "Duration of requests between two services, seen by the " + m.name.rsplit("_", 1)[-1] + "."
            out.append(m)
        return [m for m in out if m.points]
