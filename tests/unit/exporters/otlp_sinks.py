"""OTLP sinks the tests own, on 127.0.0.1: a gRPC server and an ``http.server``, both scriptable
to inject faults, both recording what arrived; and a throwaway PKI made with ``openssl``.

Shared by the exporter unit tests and the e2e export tests (``tests/e2e/test_export_*.py``).
"""

from __future__ import annotations

import gzip
import json
import ssl
import subprocess
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

# --- gRPC ------------------------------------------------------------------------------------


def status_details(code: grpc.StatusCode, retry_delay: float | None) -> bytes:
    """A serialized ``google.rpc.Status`` with an optional ``RetryInfo`` detail."""
    status = status_pb2.Status(code=code.value[0], message="slow down")
    if retry_delay is not None:
        info = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=int(retry_delay), nanos=int(retry_delay % 1 * 1e9))
        )
        detail = any_pb2.Any()
        detail.Pack(info)
        status.details.append(detail)
    return status.SerializeToString()


class FaultyOtlpServer(
    trace_service_pb2_grpc.TraceServiceServicer,
    metrics_service_pb2_grpc.MetricsServiceServicer,
    logs_service_pb2_grpc.LogsServiceServicer,
):
    """Answers each Export with the next scripted outcome, then OK.

    Outcomes: ``("fail", code, retry_delay_or_None[, details])``, ``("sleep", seconds)``,
    ``("reject", n)``.
    Only requests answered OK (or with a partial success) count as *accepted*.
    """

    def __init__(self, script=()):
        self.script = list(script)
        self.requests: list = []
        self.accepted: list = []
        self.metadata: list[dict] = []
        self.auth: list[dict] = []  # the peer's TLS identity per request (x509_common_name, ...)
        self.times: list[float] = []
        self.lock = threading.Lock()

    def _answer(self, request, context, response):
        with self.lock:
            self.requests.append(request)
            self.metadata.append(dict(context.invocation_metadata()))
            self.auth.append(context.auth_context())
            self.times.append(time.monotonic())
            outcome = self.script.pop(0) if self.script else ("ok",)
        if outcome[0] == "fail":
            code, delay = outcome[1], outcome[2]
            details = outcome[3] if len(outcome) > 3 else f"injected {code.name}"
            context.set_trailing_metadata((("grpc-status-details-bin", status_details(code, delay)),))
            context.abort(code, details)
        if outcome[0] == "sleep":
            time.sleep(outcome[1])
        if outcome[0] == "reject":
            response.partial_success.rejected_spans = outcome[1]
            response.partial_success.error_message = "rejected some"
        with self.lock:
            self.accepted.append(request)
        return response

    def Export(self, request, context):  # the three services share the method name
        if isinstance(request, logs_service_pb2.ExportLogsServiceRequest):
            return self._answer(request, context, logs_service_pb2.ExportLogsServiceResponse())
        if isinstance(request, metrics_service_pb2.ExportMetricsServiceRequest):
            return self._answer(request, context, metrics_service_pb2.ExportMetricsServiceResponse())
        return self._answer(request, context, trace_service_pb2.ExportTraceServiceResponse())

    def span_ids(self) -> list[str]:
        """Hex span ids of every span in accepted trace requests, duplicates included."""
        with self.lock:
            return [s for r in self.accepted if isinstance(r, trace_service_pb2.ExportTraceServiceRequest) for s in trace_span_ids(r)]


def start_grpc_sink(
    script=(), credentials=None, port: int = 0, max_receive_message_length: int | None = None
) -> tuple[grpc.Server, FaultyOtlpServer, int]:
    """A scripted OTLP/gRPC server on 127.0.0.1 (``port`` 0 picks one); ``server.stop(None)`` ends it.

    ``max_receive_message_length`` is grpcio's own limit: a larger request never reaches the
    servicer, the client gets ``RESOURCE_EXHAUSTED`` "Received message larger than max".
    """
    options = [] if max_receive_message_length is None else [("grpc.max_receive_message_length", max_receive_message_length)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=options)
    servicer = FaultyOtlpServer(script)
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(servicer, server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(servicer, server)
    address = f"127.0.0.1:{port}"
    bound = server.add_insecure_port(address) if credentials is None else server.add_secure_port(address, credentials)
    server.start()
    return server, servicer, bound


def trace_span_ids(request: trace_service_pb2.ExportTraceServiceRequest) -> list[str]:
    return [s.span_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


# --- HTTP ------------------------------------------------------------------------------------


class Recorded:
    def __init__(self, path, headers, body, status, peer_cert=None):
        self.path, self.headers, self.body, self.status = path, headers, body, status
        self.peer_cert = peer_cert  # the client certificate (ssl.getpeercert()), if any

    @property
    def peer_common_name(self) -> str | None:
        for rdn in (self.peer_cert or {}).get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return value
        return None

    def payload(self) -> bytes:
        return gzip.decompress(self.body) if self.headers.get("Content-Encoding") == "gzip" else self.body

    def span_ids(self) -> list[str]:
        """Hex span ids in a traces request (protobuf or OTLP/JSON)."""
        if self.headers.get("Content-Type") == "application/json":
            doc = json.loads(self.payload())
            return [s["spanId"] for rs in doc.get("resourceSpans", ()) for ss in rs.get("scopeSpans", ()) for s in ss.get("spans", ())]
        return trace_span_ids(trace_service_pb2.ExportTraceServiceRequest.FromString(self.payload()))


class FaultyOtlpHttpServer(ThreadingHTTPServer):
    """Answers each POST with the next scripted (status, headers, body), then 200 with no body."""

    daemon_threads = True

    def __init__(self, script=(), port: int = 0, max_body: int | None = None):
        self.script = list(script)
        self.max_body = max_body  # larger (decompressed) bodies are answered 413, before the script
        self.received: list[Recorded] = []
        self.times: list[float] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def span_ids(self) -> list[str]:
        """Hex span ids of every span in requests answered 2xx, duplicates included."""
        with self.lock:
            return [s for r in self.received if 200 <= r.status < 300 and r.path.endswith("/v1/traces") for s in r.span_ids()]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        peer_cert = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        with server.lock:
            too_large = server.max_body is not None and len(Recorded(self.path, dict(self.headers), body, 0).payload()) > server.max_body
            if too_large:
                status, headers, out = 413, {"Content-Type": "text/plain"}, b"request body too large"
            else:
                status, headers, out = server.script.pop(0) if server.script else (200, {}, b"")
            server.received.append(Recorded(self.path, dict(self.headers), body, status, peer_cert))
            server.times.append(time.monotonic())
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def start_http_sink(
    script=(), ssl_context: ssl.SSLContext | None = None, port: int = 0, max_body: int | None = None
) -> tuple[FaultyOtlpHttpServer, str]:
    """A scripted OTLP/HTTP server on 127.0.0.1; returns it and its base URL.  Stop it with
    ``server.shutdown(); server.server_close()``.  Bodies over ``max_body`` bytes get 413."""
    server = FaultyOtlpHttpServer(script, port, max_body)
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server, f"{'https' if ssl_context else 'http'}://127.0.0.1:{server.server_address[1]}"


# --- PKI -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: str
    server_cert: str  # for localhost / 127.0.0.1, signed by ca_cert
    server_key: str
    client_cert: str  # signed by ca_cert
    client_key: str


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _signed(name: str, cn: str, d: Path, ext: str) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    (d / f"{name}.ext").write_text(ext)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", f"{name}.crt", "-days", "2", "-sha256", "-extfile", f"{name}.ext", cwd=d,
    )


def make_pki(d: Path, ca_name: str = "test-ca") -> TlsFiles:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate, in ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", f"/CN={ca_name}", cwd=d,
    )
    _signed("server", "localhost", d, "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _signed("client", "test-client", d, "extendedKeyUsage=clientAuth\n")
    return TlsFiles(
        str(d / "ca.crt"), str(d / "server.crt"), str(d / "server.key"), str(d / "client.crt"), str(d / "client.key")
    )


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def grpc_server_credentials(tls: TlsFiles, require_client_cert: bool) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(read_bytes(tls.server_key), read_bytes(tls.server_cert))],
        root_certificates=read_bytes(tls.ca_cert) if require_client_cert else None,
        require_client_auth=require_client_cert,
    )


def https_server_context(tls: TlsFiles, require_client_cert: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls.server_cert, tls.server_key)
    if require_client_cert:
        ctx.load_verify_locations(tls.ca_cert)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
