"""Database and RPC transactions → span name, attributes, status and metric attributes
(OTel stable database and RPC semantic conventions).

Every mapping returns ``(name, attributes, status, status_message, metric_attributes,
metric_name)`` — the shape :class:`~receiver.telemetry.assemble.TelemetryAssembler` takes.
Database spans are made for the client side only (the conventions define client spans; the
database server's own view of the same call would be a duplicate).  Query text is exported
only obfuscated (:mod:`receiver.telemetry.sql`); when it cannot be tokenized only the
operation is exported.
"""

from __future__ import annotations

from receiver.model.transaction import TrackedTransaction
from receiver.protocols.base import Role
from receiver.model.telemetry import StatusCode
from receiver.telemetry.sql import analyze, redact_error_message

DB_METRIC = "db.client.operation.duration"

# gRPC codes that make a *server* span an error (client spans: every non-OK code).
GRPC_SERVER_ERRORS = frozenset({2, 4, 12, 13, 14, 15})
GRPC_CODE_NAMES = {
    0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
    6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION", 10: "ABORTED",
    11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}


def is_client(tt: TrackedTransaction) -> bool:
    return tt.transaction.role == Role.CLIENT


def _peer(tt: TrackedTransaction, attrs: dict) -> list[tuple[str, object]]:
    """server.address/port (the database, as dialled) and network.peer.* (the real backend
    when the destination was NAT'd); metric attrs for the server."""
    t = tt.tuple
    metric: list[tuple[str, object]] = []
    if t.remote_port:
        attrs["server.address"] = t.remote_addr
        attrs["server.port"] = t.remote_port
        attrs["network.peer.address"], attrs["network.peer.port"] = getattr(tt, "nat_peer", None) or (t.remote_addr, t.remote_port)
        metric += [("server.address", t.remote_addr), ("server.port", t.remote_port)]
        attrs["network.transport"] = "tcp"
    else:
        attrs["network.transport"] = "unix"
    return metric


def _db_name(op: str | None, collection: str | None, namespace: str | None, system: str) -> str:
    if op and collection:
        return f"{op} {collection}"
    if op and namespace:
        return f"{op} {namespace}"
    return op or system


def _sql_parts(tt, system: str, query: str | None, namespace: str | None, fallback_op: str | None,
               dialect: str, error_code: str | None, error_message: str | None, rows: int | None):
    attrs: dict[str, object] = {"db.system.name": system}
    facts = analyze(query, dialect=dialect) if query else None
    op = (facts.operation if facts else None) or fallback_op
    collection = facts.collection if facts else None
    if namespace:
        attrs["db.namespace"] = namespace
    if op:
        attrs["db.operation.name"] = op
    if collection:
        attrs["db.collection.name"] = collection
    if facts is not None and facts.obfuscated is not None:
        attrs["db.query.text"] = facts.obfuscated
    if rows is not None:
        attrs["db.response.returned_rows"] = rows
    metric = [("db.system.name", system)]
    metric += [(k, attrs[k]) for k in ("db.namespace", "db.operation.name", "db.collection.name") if k in attrs]
    metric += _peer(tt, attrs)
    status, message = StatusCode.UNSET, ""
    if error_code:
        status = StatusCode.ERROR
        attrs["db.response.status_code"] = error_code
        attrs["error.type"] = error_code
        metric += [("db.response.status_code", error_code), ("error.type", error_code)]
        # Servers quote the refused values back: only names already exported stay readable.
        known = facts.obfuscated if facts is not None else None
        message = redact_error_message(error_message or "", known, dialect, (namespace or "",))[:256]
    name = _db_name(op, collection, namespace, system)
    return name, attrs, status, message, tuple(sorted(metric)), DB_METRIC


def postgresql_parts(tt: TrackedTransaction):
    req, resp = tt.transaction.request, tt.transaction.response
    code = message = None
    rows = None
    if resp is None:
        code, message = "_OTHER", "connection closed"
    elif resp.error is not None:
        code, message = resp.error.sqlstate, resp.error.message
    elif resp.status.value == "aborted":
        code, message = "aborted", "skipped after an earlier error in the pipeline"
    if resp is not None:
        rows = resp.rows
    return _sql_parts(tt, "postgresql", req.query, req.database, getattr(resp, "operation", None),
                      "postgresql", code, message, rows)


def mysql_parts(tt: TrackedTransaction):
    req, resp = tt.transaction.request, tt.transaction.response
    system = "mariadb" if "mariadb" in (req.server_version or "").lower() else "mysql"
    command = req.command.name.removeprefix("COM_")
    query = req.query or None
    fallback = None if query else command
    code = None
    message = None
    rows = None
    if resp is None:
        if command != "QUIT":  # COM_QUIT never gets an answer
            code, message = "_OTHER", "connection closed"
    else:
        if resp.kind.value == "error":
            code, message = str(resp.error_code), f"{resp.sql_state} {resp.error_message}".strip()
        if resp.result_sets > 0:
            rows = resp.row_count  # a lower bound when the response was truncated
        elif resp.affected_rows:
            rows = resp.affected_rows
    namespace = req.new_schema or req.schema or None
    return _sql_parts(tt, system, query, namespace, fallback, "mysql", code, message, rows)


def redis_parts(tt: TrackedTransaction):
    req, resp = tt.transaction.request, tt.transaction.response
    attrs: dict[str, object] = {"db.system.name": "redis", "db.operation.name": req.command}
    if req.database is not None:
        attrs["db.namespace"] = str(req.database)
    # Argument values may be secrets (AUTH, SET values): the text keeps only their places.
    attrs["db.query.text"] = " ".join([req.command] + ["?"] * min(req.arg_count, 16))
    metric = [("db.system.name", "redis"), ("db.operation.name", req.command)]
    if "db.namespace" in attrs:
        metric.append(("db.namespace", attrs["db.namespace"]))
    metric += _peer(tt, attrs)
    status, message = StatusCode.UNSET, ""
    if resp is None:
        status, message = StatusCode.ERROR, "connection closed"
        attrs["error.type"] = "_OTHER"
        metric.append(("error.type", "_OTHER"))
    elif resp.error_prefix:
        # Redis errors may quote the arguments (``unknown command 'x', with args beginning with: ...``).
        text = redact_error_message(resp.error_message or resp.error_prefix, req.command)
        status, message = StatusCode.ERROR, text[:256]
        attrs["db.response.status_code"] = resp.error_prefix
        attrs["error.type"] = resp.error_prefix
        metric += [("db.response.status_code", resp.error_prefix), ("error.type", resp.error_prefix)]
    name = f"{req.command} {attrs['db.namespace']}" if "db.namespace" in attrs else req.command
    return name, attrs, status, message, tuple(sorted(metric)), DB_METRIC


def grpc_parts(tt: TrackedTransaction):
    tx = tt.transaction
    req, resp = tx.request, tx.response
    server = tx.role == Role.SERVER
    service = req.grpc_service or "_OTHER"
    method = req.grpc_method or "_OTHER"
    attrs: dict[str, object] = {
        "rpc.system": "grpc",
        "rpc.service": service,
        "rpc.method": method,
        "network.protocol.name": "http",
        "network.protocol.version": "2",
        "network.transport": "tcp",
        "url.scheme": "https" if getattr(tt, "tls", False) else "http",
    }
    t = tt.tuple
    metric: list[tuple[str, object]] = [("rpc.system", "grpc"), ("rpc.service", service), ("rpc.method", method)]
    host, port = _authority(req.authority)
    if server:
        attrs["server.address"] = host or t.local_addr
        attrs["server.port"] = port or t.local_port
        attrs["client.address"] = t.remote_addr
        attrs["client.port"] = t.remote_port
    else:
        attrs["server.address"] = host or t.remote_addr
        attrs["server.port"] = port or t.remote_port
        metric += [("server.address", attrs["server.address"]), ("server.port", attrs["server.port"])]
    attrs["network.peer.address"], attrs["network.peer.port"] = getattr(tt, "nat_peer", None) or (t.remote_addr, t.remote_port)
    status, message = StatusCode.UNSET, ""
    code = resp.grpc_status if resp is not None else None
    if code is not None:
        attrs["rpc.grpc.status_code"] = code
        metric.append(("rpc.grpc.status_code", code))
        if (server and code in GRPC_SERVER_ERRORS) or (not server and code != 0):
            status = StatusCode.ERROR
            attrs["error.type"] = GRPC_CODE_NAMES.get(code, str(code))
            metric.append(("error.type", attrs["error.type"]))
            message = (resp.grpc_message or "")[:256]
    else:
        status = StatusCode.ERROR
        reason = "reset" if resp is not None and resp.error_code is not None else "no_status"
        attrs["error.type"] = reason
        metric.append(("error.type", reason))
    name = f"{service}/{method}"
    metric_name = "rpc.server.call.duration" if server else "rpc.client.call.duration"
    return name, attrs, status, message, tuple(sorted(metric)), metric_name


def _authority(authority: str | None) -> tuple[str | None, int | None]:
    if not authority:
        return None, None
    host, _, port = authority.rpartition(":") if authority.count(":") == 1 or authority.startswith("[") else (authority, "", "")
    host = host.strip("[]") or None
    try:
        return host, int(port) if port else None
    except ValueError:
        return host, None


class Http2AsHttp:
    """An HTTP/2 request/response seen through the fields the HTTP mapping reads."""

    __slots__ = ("method", "target", "version", "_headers", "body_size", "status_code")

    def __init__(self, msg, request: bool) -> None:
        self._headers = msg.headers
        self.body_size = msg.body_size
        self.version = "2"
        if request:
            self.method = msg.method or "_OTHER"
            self.target = msg.path or "/"
            self.status_code = 0
            if msg.authority and not any(k == "host" for k, _ in msg.headers):
                self._headers = msg.headers + (("host", msg.authority),)
        else:
            self.method = ""
            self.target = ""
            self.status_code = msg.status or 0

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self._headers:
            if k == name:
                return v
        return None
