"""``health_check`` extension: like the Collector's, an HTTP endpoint answering 200 while the
agent is running and 503 while it starts or stops."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar
from http.server import BaseHTTPRequestHandler

from receiver.configuration.checks import host_port, url_path
from receiver.extensions.http_thread import HttpServer, ServerThread
from receiver.configuration.section import ConfigSection, setting


@dataclass(frozen=True, slots=True)
class HealthCheckExtensionConfig(ConfigSection):
    """``health_check``: an HTTP endpoint answering 200 while the agent is healthy."""

    signals: ClassVar[frozenset[str]] = frozenset()

    endpoint: str = setting("127.0.0.1:13133", "Address the health server listens on.", check=host_port)
    path: str = setting("/", "URL path of the health check.", check=url_path)




class HealthCheckExtension:
    def __init__(self, config: HealthCheckExtensionConfig) -> None:
        host, _, port = config.endpoint.rpartition(":")
        self._addr = (host.strip("[]") or "127.0.0.1", int(port))
        self._path = config.path
        self._serving = ServerThread("health-check")
        self.ready = False

    @property
    def port(self) -> int:
        return self._serving.port(self._addr[1])

    def start(self) -> None:
        if self._serving.running:
            return
        ext = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                if self.path.split("?", 1)[0] != ext._path:
                    self.send_error(404)
                    return
                ok = ext.ready
                body = json.dumps({"status": "Server available" if ok else "Server not available"}).encode()
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep the agent's stderr for the agent's own log
                return

        self._serving.start(HttpServer(self._addr, Handler))

    def shutdown(self, timeout: float = 5.0) -> None:
        self.ready = False
        self._serving.stop(timeout)
