"""A small HTTP server of the test's own, in a thread of the test process: requests to it make
spans (the agent's own endpoints do not: the agent never observes itself)."""

from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator


class _NotFound(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server API)
        self.send_error(404)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def web_server() -> Iterator[int]:
    """Serves 404 for every GET on 127.0.0.1; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
