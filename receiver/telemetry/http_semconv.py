"""HTTP/1.x transactions → span name, attributes, status and metric attributes
(OTel stable HTTP semantic conventions)."""

from __future__ import annotations

from urllib.parse import unquote

from receiver.model.transaction import TrackedTransaction
from receiver.protocols.base import Role
from receiver.model.telemetry import StatusCode
from receiver.telemetry.routes import RouteTemplater

_SERVER_ROLE = Role.SERVER  # enum members as constants: a class attribute lookup costs ~50 ns per span
_UNSET, _ERROR = StatusCode.UNSET, StatusCode.ERROR

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"})
SENSITIVE_QUERY_KEYS = frozenset(
    {"awsaccesskeyid", "signature", "sig", "x-goog-signature", "password", "passwd", "pwd", "token",
     "access_token", "refresh_token", "id_token", "api_key", "apikey", "key", "secret", "client_secret", "auth"}
)
REDACTED = "REDACTED"
_CACHED_TEXT_MAX = 1024  # characters of method, target, Host and User-Agent whose span parts are kept


def split_target(target: str) -> tuple[str, str | None, bool]:
    """Request target → (path, query or None, had userinfo).  Absolute-form targets
    (``http://user:pw@host/p?q``) are reduced to their path."""
    had_userinfo = False
    if "://" in target[:16]:
        rest = target.split("://", 1)[1]
        authority, _, after = rest.partition("/")
        had_userinfo = "@" in authority
        target = "/" + after
    path, sep, query = target.partition("?")
    path = path.split("#", 1)[0]
    return path or "/", (query.split("#", 1)[0] if sep else None), had_userinfo


def redact_query(query: str) -> str:
    parts = []
    for item in query.split("&"):
        k, eq, _v = item.partition("=")
        name = unquote(k).lower()
        if eq and (name in SENSITIVE_QUERY_KEYS or any(s in name for s in ("password", "token", "secret"))):
            parts.append(f"{k}={REDACTED}")
        else:
            parts.append(item)
    return "&".join(parts)


def host_and_port(host_header: str | None) -> tuple[str | None, int | None]:
    if not host_header:
        return None, None
    h = host_header.strip()
    if h.startswith("["):  # [v6]:port
        end = h.find("]")
        host = h[1:end] if end > 0 else h
        rest = h[end + 1 :] if end > 0 else ""
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = h.partition(":")
    try:
        return host or None, int(port) if port else None
    except ValueError:
        return host or None, None


def is_error_status(code: int, server: bool) -> bool:
    """Semantic conventions: 5xx is an error for both sides, 4xx only for the client."""
    return code >= 500 or (not server and code >= 400)


def aggregate_metric_attributes(server: bool, method: str, status: int, version: str, tls: bool,
                                server_address: str, server_port: int) -> tuple[str, tuple]:
    """(metric name, metric attributes) of HTTP transactions the kernel aggregated under overload
    (capture/overload.py): what a span's metric carries, minus what the kernel does not keep —
    no ``http.route`` (the target stays in the kernel), and for a client ``server.address`` is
    the socket's remote address, not the ``Host`` header."""
    metric: tuple = (("url.scheme", "https" if tls else "http"), ("network.protocol.version", version),
                     ("http.request.method", method if method in KNOWN_METHODS else "_OTHER"))
    if not server:
        metric += (("server.address", server_address), ("server.port", server_port))
    if status:
        metric += (("http.response.status_code", status),)
        if is_error_status(status, server):
            metric += (("error.type", str(status)),)
    else:
        metric += (("error.type", "no_response"),)
    name = "http.server.request.duration" if server else "http.client.request.duration"
    return name, tuple(sorted(metric))


class HttpSpanMapper:
    """HTTP/1.x (and HTTP/2 seen as HTTP) transactions → span parts.

    Most attributes of a span are the same for every request between two places (addresses,
    the server's port, scheme, protocol version, the ``Host`` header): they are built once per
    distinct combination and copied, and the ephemeral port of the connection set in the copy
    (a new connection per request costs no new entry).  Metric attribute sets repeat even more; each distinct one is built
    and sorted once.  A span's whole parts repeat too (the same request to the same place,
    answered the same way): they are kept per distinct transaction, less its ephemeral port and
    body sizes, which each span's copy of the attributes gets set.  The caches are bounded
    (cleared when full; a request whose method, target, ``Host`` and ``User-Agent`` together are
    longer than ``_CACHED_TEXT_MAX`` characters is not kept: at most ~1 MiB of text).
    """

    def __init__(self, routes: RouteTemplater | None = None, max_cached: int = 4096,
                 max_cached_spans: int = 1024) -> None:
        self._routes = routes or RouteTemplater()
        self._max = max_cached
        self._max_spans = max_cached_spans
        self._bases: dict[tuple, tuple[dict, tuple]] = {}
        self._metric_sets: dict[tuple, tuple] = {}
        self._spans: dict[tuple, tuple] = {}

    def _base(self, tt: TrackedTransaction, req, server: bool, scheme: str) -> tuple[dict, tuple]:
        tup = tt.tuple
        host_header = req.header("host")
        # The ephemeral end (a server's client port, a client's local port) is not in the key:
        # one entry serves every connection between the same two places, and parts() sets it.
        fixed_port = tup.local_port if server else tup.remote_port
        key = (tup.local_addr, tup.remote_addr, fixed_port, tt.nat_peer, server, scheme, req.version, host_header)
        hit = self._bases.get(key)
        if hit is not None:
            return hit
        attrs: dict[str, object] = {
            "url.scheme": scheme,
            "network.protocol.name": "http",
            "network.protocol.version": req.version,
            "network.transport": "tcp",
        }
        host, host_port = host_and_port(host_header)
        metric_base: tuple = (("url.scheme", scheme), ("network.protocol.version", req.version))
        if server:
            attrs["server.address"] = host or tup.local_addr
            attrs["server.port"] = host_port or tup.local_port
            attrs["client.address"] = tup.remote_addr
            attrs["client.port"] = tup.remote_port
        else:
            attrs["server.address"] = host or tup.remote_addr
            attrs["server.port"] = host_port or tup.remote_port
            metric_base += (("server.address", attrs["server.address"]), ("server.port", attrs["server.port"]))
        # The socket's remote end, or the real backend a NAT'd (Service / virtual IP) destination
        # reached; server.address above stays what the client dialled.
        peer_addr, peer_port = tt.nat_peer or (tup.remote_addr, tup.remote_port)
        attrs["network.peer.address"] = peer_addr
        attrs["network.peer.port"] = peer_port
        attrs["network.local.address"] = tup.local_addr
        attrs["network.local.port"] = tup.local_port
        if len(self._bases) >= self._max:
            self._bases.clear()
        hit = self._bases[key] = (attrs, metric_base)
        return hit

    def _metric_attrs(self, key: tuple) -> tuple:
        m = self._metric_sets.get(key)
        if m is None:
            if len(self._metric_sets) >= self._max:
                self._metric_sets.clear()
            m = self._metric_sets[key] = tuple(sorted(key))
        return m

    def metric_only(self, tt: TrackedTransaction) -> tuple[str, tuple] | None:
        """(metric name, metric attributes) of a transaction whose span is sampled out; None
        when the transaction is an error (its span still feeds the error log record)."""
        tx = tt.transaction
        req, resp = tx.request, tx.response
        if resp is None:
            return None
        server = tx.role == _SERVER_ROLE
        code = resp.status_code
        if is_error_status(code, server):
            return None
        method = req.method if req.method in KNOWN_METHODS else "_OTHER"
        _, metric = self._base(tt, req, server, "https" if tt.tls else "http")
        metric += (("http.request.method", method), ("http.response.status_code", code))
        route = self._routes.route(split_target(req.target)[0]) if server else None
        if route:
            metric += (("http.route", route),)
        name = "http.server.request.duration" if server else "http.client.request.duration"
        return name, self._metric_attrs(metric)

    def parts(self, tt: TrackedTransaction):
        """Returns (name, attributes, status, status_message, metric_attributes, metric_name); the
        attributes are the caller's own dict."""
        tx = tt.transaction
        req, resp = tx.request, tx.response
        server = tx.role == _SERVER_ROLE
        tup = tt.tuple
        target, ua = req.target, req.header("user-agent")
        req_size = req.body_size
        resp_size = resp.body_size if resp is not None else 0
        # Everything parts() reads but the ephemeral port and the body sizes (their presence is).
        key = (tup.local_addr, tup.remote_addr, tup.local_port if server else tup.remote_port, tt.nat_peer, server,
               tt.tls, req.version, req.header("host"), req.method, target, ua, req_size != 0,
               resp.status_code if resp is not None else None, resp_size != 0)
        hit = self._spans.get(key)
        if hit is None:
            hit = self._parts(tt)
            if len(target) + len(ua or "") + len(key[7] or "") + len(req.method) <= _CACHED_TEXT_MAX:
                if len(self._spans) >= self._max_spans:
                    self._spans.clear()
                self._spans[key] = hit
        name, template, status, message, metric, metric_name = hit
        attrs = template.copy()
        if server:
            attrs["client.port"] = tup.remote_port
            if tt.nat_peer is None:
                attrs["network.peer.port"] = tup.remote_port
        else:
            attrs["network.local.port"] = tup.local_port
        if req_size:
            attrs["http.request.body.size"] = req_size
        if resp_size:
            attrs["http.response.body.size"] = resp_size
        return name, attrs, status, message, metric, metric_name

    def _parts(self, tt: TrackedTransaction):
        """parts() built afresh (the attributes of the transaction's first span: a template)."""
        tx = tt.transaction
        req, resp = tx.request, tx.response
        server = tx.role == _SERVER_ROLE
        method = req.method if req.method in KNOWN_METHODS else "_OTHER"
        path, query, _ = split_target(req.target)
        route = self._routes.route(path) if server else None  # http.route: server spans only
        scheme = "https" if tt.tls else "http"  # tls: plaintext read at the TLS library
        base, metric = self._base(tt, req, server, scheme)
        attrs = base.copy()  # its ephemeral port is the first connection's: parts() sets each span's
        attrs["http.request.method"] = method
        attrs["url.path"] = path
        metric += (("http.request.method", method),)
        if method == "_OTHER":
            attrs["http.request.method_original"] = req.method[:64]
        if query is not None:
            attrs["url.query"] = redact_query(query)
        ua = req.header("user-agent")
        if ua:
            attrs["user_agent.original"] = ua[:512]
        if req.body_size:
            attrs["http.request.body.size"] = req.body_size
        if route:
            attrs["http.route"] = route
            metric += (("http.route", route),)
        status = _UNSET
        message = ""
        if resp is not None:
            code = resp.status_code
            attrs["http.response.status_code"] = code
            metric += (("http.response.status_code", code),)
            if resp.body_size:
                attrs["http.response.body.size"] = resp.body_size
            if is_error_status(code, server):
                status = _ERROR
                attrs["error.type"] = str(code)
                metric += (("error.type", str(code)),)
        else:
            status = _ERROR
            attrs["error.type"] = "no_response"
            metric += (("error.type", "no_response"),)
            message = "connection closed before a response"
        name = f"{method} {route}" if route else method
        metric_name = "http.server.request.duration" if server else "http.client.request.duration"
        return name, attrs, status, message, self._metric_attrs(metric), metric_name

