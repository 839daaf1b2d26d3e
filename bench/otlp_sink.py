"""A minimal OTLP/gRPC sink, in its own process, that only counts what arrives.

It accepts traces, metrics and logs on 127.0.0.1 (any compression grpcio understands) and
answers every Export with success.  Spans are counted by kind, by ``service.name`` and by
``process.pid``; metric data points and log records in total.

Control is a line protocol on stdin/stdout, so the sink needs no second port:
``stats`` prints one JSON line with the counts, ``reset`` zeroes them, ``quit`` (or EOF) stops.
On start it prints ``port <n>``.

    python -m bench.otlp_sink --port 0
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from concurrent import futures

SPAN_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


class Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.spans_by_kind: Counter[str] = Counter()
        self.spans_by_service: Counter[str] = Counter()
        self.spans_by_pid: Counter[int] = Counter()
        self.trace_requests = 0
        self.metric_points = 0
        self.metric_requests = 0
        self.log_records = 0
        self.last_export = 0.0

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "spans": sum(self.spans_by_kind.values()),
                "spans_by_kind": dict(self.spans_by_kind),
                "spans_by_service": dict(self.spans_by_service),
                "spans_by_pid": {str(k): v for k, v in self.spans_by_pid.items()},
                "trace_requests": self.trace_requests,
                "metric_points": self.metric_points,
                "metric_requests": self.metric_requests,
                "log_records": self.log_records,
                "idle_seconds": time.monotonic() - self.last_export if self.last_export else None,
            }


def _service_and_pid(resource) -> tuple[str, int]:
    name, pid = "unknown", 0
    for kv in resource.attributes:
        if kv.key == "service.name":
            name = kv.value.string_value
        elif kv.key == "process.pid":
            pid = kv.value.int_value
    return name, pid


def _metric_points(metric) -> int:
    field = metric.WhichOneof("data")
    return len(getattr(metric, field).data_points) if field else 0


def serve(port: int) -> None:
    import grpc
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    counts = Counts()

    class Sink(
        trace_service_pb2_grpc.TraceServiceServicer,
        metrics_service_pb2_grpc.MetricsServiceServicer,
        logs_service_pb2_grpc.LogsServiceServicer,
    ):
        def Export(self, request, context):  # noqa: N802 (gRPC's name)
            if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
                kinds: Counter[int] = Counter()
                services: Counter[str] = Counter()
                pids: Counter[int] = Counter()
                for rs in request.resource_spans:
                    n = 0
                    for ss in rs.scope_spans:
                        n += len(ss.spans)
                        kinds.update(s.kind for s in ss.spans)
                    service, pid = _service_and_pid(rs.resource)
                    services[service] += n
                    pids[pid] += n
                with counts.lock:
                    counts.trace_requests += 1
                    for k, n in kinds.items():
                        counts.spans_by_kind[SPAN_KINDS.get(k, str(k))] += n
                    counts.spans_by_service.update(services)
                    counts.spans_by_pid.update(pids)
                    counts.last_export = time.monotonic()
                return trace_service_pb2.ExportTraceServiceResponse()
            if isinstance(request, metrics_service_pb2.ExportMetricsServiceRequest):
                n = sum(_metric_points(m) for rm in request.resource_metrics
                        for sm in rm.scope_metrics for m in sm.metrics)
                with counts.lock:
                    counts.metric_requests += 1
                    counts.metric_points += n
                return metrics_service_pb2.ExportMetricsServiceResponse()
            n = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
            with counts.lock:
                counts.log_records += n
            return logs_service_pb2.ExportLogsServiceResponse()

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 64 << 20)],
    )
    sink = Sink()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(sink, server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(sink, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(f"port {bound}", flush=True)
    try:
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "stats":
                print(json.dumps(counts.snapshot()), flush=True)
            elif cmd == "reset":
                with counts.lock:
                    counts.reset()
                print("ok", flush=True)
            elif cmd == "quit":
                break
    finally:
        server.stop(grace=0.5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.otlp_sink", description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    args = ap.parse_args(argv)
    serve(args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
