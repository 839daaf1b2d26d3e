"""The health_check extension answers on IPv4 and IPv6 loopback: 503 until ready, 200 while
running, 404 elsewhere; start and shutdown are idempotent."""

from __future__ import annotations

import http.client
import socket

import pytest

from receiver.extensions.health_check import HealthCheckExtension, HealthCheckExtensionConfig


def _free_port(family: int, host: str) -> int:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("family, host, endpoint_host", [
    (socket.AF_INET, "127.0.0.1", "127.0.0.1"),
    (socket.AF_INET6, "::1", "[::1]"),
])
def test_health_check_serves_on_ipv4_and_ipv6(family, host, endpoint_host):
    port = _free_port(family, host)
    ext = HealthCheckExtension(HealthCheckExtensionConfig(endpoint=f"{endpoint_host}:{port}"))
    ext.start()
    ext.start()  # idempotent
    try:
        def get(path: str) -> int:
            conn = http.client.HTTPConnection(host, ext.port, timeout=5)
            try:
                conn.request("GET", path)
                return conn.getresponse().status
            finally:
                conn.close()

        assert get("/") == 503
        ext.ready = True
        assert get("/") == 200
        assert get("/other") == 404
    finally:
        ext.shutdown()
        ext.shutdown()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=1).close()
