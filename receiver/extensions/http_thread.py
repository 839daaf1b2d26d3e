"""The HTTP servers of the extensions (health_check, zpages): an ``http.server`` on a daemon
thread of its own, started once and shut down idempotently."""

from __future__ import annotations

import socket
import threading
from http.server import ThreadingHTTPServer

from receiver.component.threads import AgentThread


class HttpServer(ThreadingHTTPServer):
    """A threading HTTP server on an IPv4 or an IPv6 address (``::1``, ``::``): the family is
    the address's, where the standard library's server is IPv4 only."""

    daemon_threads = True

    def __init__(self, addr: tuple[str, int], handler) -> None:
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        super().__init__(addr, handler)


class ServerThread:
    """Owns one server and the thread that serves it."""

    def __init__(self, name: str) -> None:
        self._name = name
        self.server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.server is not None

    def port(self, default: int) -> int:
        """The port it listens on (``default`` before it started: the configured one)."""
        return self.server.server_address[1] if self.server is not None else default

    def start(self, server: ThreadingHTTPServer) -> None:
        """Serve ``server`` (its request threads daemonic: a slow client never holds shutdown)."""
        server.daemon_threads = True
        self.server = server
        self._thread = AgentThread(server.serve_forever, self._name)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
