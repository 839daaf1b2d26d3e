"""A fault-injecting OTLP server for the fault matrix: gRPC and HTTP on 127.0.0.1, answering trace
exports with the fault currently set (status codes, ``Retry-After``, delays, partial success) and
counting span ids of the exports it accepted.

It stands for a collector that misbehaves in a chosen way; where a real collector can do the
misbehaving on its own (being down), the matrix uses rotel instead.

Counting rules, so that ``sent == received_unique + dropped_counted`` can be checked exactly:

* a failed export (an error status) accepts nothing;
* a partial success accepts the first ``n - rejected`` spans of the request and rejects the
  rest: the agent must count the rejected ones and never send them again;
* a delayed export is counted when it is answered, and only when the client still waits for it
  (gRPC ``context.is_active()``): an export the client gave up on is not received.

Metrics and logs exports are answered OK and not counted (the matrix is about spans).
"""

from __future__ import annotations

import gzip
import threading
import time
from collections import Counter
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass(frozen=True)
class Fault:
    """How trace exports are answered.  ``fail_ratio`` of them (deterministically spread: export
    *i* fails when ``floor((i+1)·r) > floor(i·r)``) get ``grpc_code`` / ``http_status`` (with
    ``Retry-After: retry_after`` on HTTP when set); the others wait ``delay`` seconds, then
    succeed, rejecting the last ``reject_per_request`` spans of each request."""

    fail_ratio: float = 0.0
    grpc_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    http_status: int = 503
    retry_after: float | None = None
    delay: float = 0.0
    reject_per_request: int = 0


OK = Fault()


@dataclass(frozen=True)
class SinkCounts:
    exports: int  # trace export requests, answered or not
    failed_exports: int  # answered with an error status
    received_unique: int  # distinct span ids accepted
    received_total: int  # span ids accepted, duplicates included
    rejected: int  # spans refused by partial success
    abandoned: int  # spans of delayed exports the client no longer waited for
    foreign: dict  # pid -> accepted spans of processes outside ``pids`` (when set)
    foreign_examples: tuple[str, ...]  # a few of them, for the report
    by_source: dict = field(default_factory=dict)  # (pid, db.system.name or "") -> distinct span ids accepted

    @property
    def duplicated(self) -> int:
        return self.received_total - self.received_unique


class _Ledger:
    """What arrived; every method takes the lock."""

    def __init__(self, pids: frozenset[int] | None) -> None:
        self.lock = threading.Lock()
        self.pids = pids
        self.fault = OK
        self.exports = 0
        self.failed = 0
        self.seen: Counter[bytes] = Counter()
        self.by_source: Counter[tuple[int, str]] = Counter()  # (pid, db.system.name) -> distinct span ids
        self.rejected = 0
        self.abandoned = 0
        self.foreign: Counter[int] = Counter()  # pid -> spans
        self.foreign_examples: list[str] = []
        self.paths: dict[bytes, str] | None = None  # span id -> url.path, when asked for
        self.last_change = time.monotonic()
        self.in_flight = 0  # trace exports being answered (a delayed answer holds one for its delay)

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def decide(self) -> tuple[Fault, bool]:
        """The fault in force for the next export, and whether that export fails."""
        with self.lock:
            i = self.exports
            self.exports += 1
            fault = self.fault
            fails = int((i + 1) * fault.fail_ratio) > int(i * fault.fail_ratio)
            if fails:
                self.failed += 1
                self.last_change = time.monotonic()
            return fault, fails

    def _spans(self, request: trace_service_pb2.ExportTraceServiceRequest) -> list[tuple[bytes, int, str]]:
        """(span id, process.pid, db.system.name or "") of every span of the request."""
        out = []
        for rs in request.resource_spans:
            attrs = {kv.key: kv.value for kv in rs.resource.attributes}
            pid = attrs["process.pid"].int_value if "process.pid" in attrs else 0
            for ss in rs.scope_spans:
                out.extend((s.span_id, pid, _db_system(s)) for s in ss.spans)
                if self.paths is not None:
                    for s in ss.spans:
                        path = next((kv.value.string_value for kv in s.attributes if kv.key == "url.path"), "")
                        self.paths[s.span_id] = path
                if self.pids is not None and pid not in self.pids and len(self.foreign_examples) < 3 and ss.spans:
                    exe = attrs.get("process.executable.name") or attrs.get("service.name")
                    self.foreign_examples.append(f"pid {pid} {exe.string_value if exe else '?'}: {ss.spans[0].name}")
        return out

    def accept(self, request, reject: int) -> int:
        """Records an accepted export; returns how many spans it rejected."""
        spans = self._spans(request)
        with self.lock:
            # the last ``reject`` spans of the processes counted (others' spans are not refused:
            # the agent's rejected count then covers exactly the spans this ledger follows)
            ours = [i for i, (_, pid, _) in enumerate(spans) if self.pids is None or pid in self.pids]
            refused = set(ours[len(ours) - min(reject, len(ours)):]) if reject else set()
            reject = len(refused)
            kept = [span for i, span in enumerate(spans) if i not in refused]
            self.rejected += reject
            for sid, pid, system in kept:
                if self.pids is not None and pid not in self.pids:
                    self.foreign[pid] += 1
                else:
                    if sid not in self.seen:
                        self.by_source[(pid, system)] += 1
                    self.seen[sid] += 1
            self.last_change = time.monotonic()
        return reject

    def abandon(self, request) -> None:
        with self.lock:
            self.abandoned += len(self._spans(request))
            self.last_change = time.monotonic()

    def counts(self) -> SinkCounts:
        with self.lock:
            return SinkCounts(
                exports=self.exports, failed_exports=self.failed, received_unique=len(self.seen),
                received_total=sum(self.seen.values()), rejected=self.rejected, abandoned=self.abandoned,
                foreign=dict(self.foreign), foreign_examples=tuple(self.foreign_examples),
                by_source=dict(self.by_source),
            )


def _db_system(span) -> str:
    return next((kv.value.string_value for kv in span.attributes if kv.key == "db.system.name"), "")


def _response(rejected: int) -> trace_service_pb2.ExportTraceServiceResponse:
    response = trace_service_pb2.ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = f"fault sink rejected {rejected} spans"
    return response


class _GrpcService(
    trace_service_pb2_grpc.TraceServiceServicer,
    metrics_service_pb2_grpc.MetricsServiceServicer,
    logs_service_pb2_grpc.LogsServiceServicer,
):
    def __init__(self, ledger: _Ledger) -> None:
        self.ledger = ledger

    def Export(self, request, context):  # noqa: N802 (gRPC's name)
        if isinstance(request, metrics_service_pb2.ExportMetricsServiceRequest):
            return metrics_service_pb2.ExportMetricsServiceResponse()
        if isinstance(request, logs_service_pb2.ExportLogsServiceRequest):
            return logs_service_pb2.ExportLogsServiceResponse()
        self.ledger.enter()
        try:
            fault, fails = self.ledger.decide()
            if fails:
                context.abort(fault.grpc_code, f"fault sink: injected {fault.grpc_code.name}")
            if fault.delay:
                time.sleep(fault.delay)
                if not context.is_active():
                    self.ledger.abandon(request)
                    return _response(0)
            return _response(self.ledger.accept(request, fault.reject_per_request))
        finally:
            self.ledger.leave()


class _HttpHandler(BaseHTTPRequestHandler):
    ledger: _Ledger  # set on the subclass made per sink

    def log_message(self, *args) -> None:  # no access log on stderr
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if not self.path.endswith("/v1/traces"):
            self._send(200, b"")  # metrics, logs: an empty protobuf response is a success
            return
        self.ledger.enter()
        try:
            fault, fails = self.ledger.decide()
            if fails:
                headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
                self._send(fault.http_status, b"fault sink: injected status", headers, "text/plain")
                return
            if fault.delay:
                time.sleep(fault.delay)
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            self._send(200, _response(self.ledger.accept(request, fault.reject_per_request)).SerializeToString())
        finally:
            self.ledger.leave()

    def _send(self, status: int, body: bytes, headers: dict | None = None,
              content_type: str = "application/x-protobuf") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


class FaultSink:
    """Both servers on free ports of 127.0.0.1 (``grpc_port``, ``http_port``)."""

    def __init__(self, pids: frozenset[int] | None = None) -> None:
        self.ledger = _Ledger(pids)
        self._grpc: grpc.Server | None = None
        self._http: ThreadingHTTPServer | None = None
        self.grpc_port = 0
        self.http_port = 0

    def start(self) -> "FaultSink":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                             options=[("grpc.max_receive_message_length", 64 << 20)])
        service = _GrpcService(self.ledger)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(service, server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(service, server)
        self.grpc_port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._grpc = server
        handler = type("Handler", (_HttpHandler,), {"ledger": self.ledger})
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._http.daemon_threads = True
        self.http_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, name="fault-sink-http", daemon=True).start()
        return self

    def set_fault(self, fault: Fault) -> None:
        with self.ledger.lock:
            self.ledger.fault = fault

    def record_paths(self) -> None:
        """From now on remember each span's ``url.path`` (:meth:`path_of`)."""
        with self.ledger.lock:
            self.ledger.paths = {}

    def path_of(self, span_id: bytes) -> str | None:
        with self.ledger.lock:
            return None if self.ledger.paths is None else self.ledger.paths.get(span_id)

    def set_pids(self, pids: frozenset[int]) -> None:
        with self.ledger.lock:
            self.ledger.pids = pids

    def counts(self) -> SinkCounts:
        return self.ledger.counts()

    def span_ids(self) -> set[bytes]:
        """The distinct span ids accepted so far."""
        with self.ledger.lock:
            return set(self.ledger.seen)

    def in_flight(self) -> int:
        """Trace exports received and not answered yet."""
        with self.ledger.lock:
            return self.ledger.in_flight

    def idle_seconds(self) -> float:
        with self.ledger.lock:
            return time.monotonic() - self.ledger.last_change

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=0.5)
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
