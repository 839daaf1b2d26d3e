"""TLS for the end-to-end tests: certificates made with the openssl CLI, nginx serving HTTPS
(HTTP/1.1 and HTTP/2 by ALPN, and gRPC proxied to a plaintext backend), and the standard
library's HTTPS server (``tls_http_server.py``) in a child process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port, wait_until
from tests.support.servers import NGINX

TLS_HTTP_SERVER = Path(__file__).with_name("tls_http_server.py")
MEMORY_BIO_SERVER = Path(__file__).with_name("memory_bio_server.py")


@dataclass(frozen=True)
class Certificate:
    cert: Path  # self-signed for localhost and 127.0.0.1: also the CA file clients trust
    key: Path


def make_certificate(workdir: Path) -> Certificate:
    d = Path(workdir) / "tls"
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return Certificate(cert, key)


class TlsNginx:
    """nginx with ``listen ... ssl http2``: ``/`` serves files, ``/status/<code>`` answers that
    code, and, with ``grpc_backend``, ``/fixtures.echo.v1.Echo/`` is passed to that plaintext gRPC
    server."""

    def __init__(self, workdir: Path, cert: Certificate, grpc_backend: int | None = None) -> None:
        self.port = free_port()
        self.root = Path(workdir) / "nginx-tls"
        self._cert = cert
        self._grpc = grpc_backend
        self._proc: subprocess.Popen | None = None

    def start(self) -> "TlsNginx":
        r = self.root
        for sub in ("html", "logs", "tmp"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        (r / "html" / "index.html").write_text("<html>hello over tls</html>\n")
        grpc = ""
        if self._grpc:
            grpc = f"location /fixtures.echo.v1.Echo/ {{ grpc_pass grpc://127.0.0.1:{self._grpc}; }}"
        conf = r / "nginx.conf"
        conf.write_text(
            f"""
daemon off;
master_process on;
user root;
worker_processes 1;
pid {r}/nginx.pid;
error_log {r}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {r}/tmp/body;
    proxy_temp_path {r}/tmp/proxy;
    fastcgi_temp_path {r}/tmp/fastcgi;
    uwsgi_temp_path {r}/tmp/uwsgi;
    scgi_temp_path {r}/tmp/scgi;
    server {{
        listen 127.0.0.1:{self.port} ssl http2;
        ssl_certificate {self._cert.cert};
        ssl_certificate_key {self._cert.key};
        root {r}/html;
        location = /status/404 {{ return 404; }}
        location = /status/204 {{ return 204; }}
        {grpc}
    }}
}}
"""
        )
        self._proc = subprocess.Popen(
            [NGINX, "-p", str(r), "-c", str(conf), "-e", str(r / "logs" / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(lambda: self._listening() or self._dead(), timeout=10, what="nginx (tls) to listen")
        if self._proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {(r / 'logs' / 'error.log').read_text()}")
        return self

    def _dead(self) -> bool:
        return self._proc.poll() is not None

    def _listening(self) -> bool:
        # Read the kernel's table instead of connecting: a bare TCP connect would be a TLS
        # connection without a handshake, traced like any other.
        want = f":{self.port:04X} "
        with open("/proc/net/tcp") as f:
            return any(want in line and " 0A " in line for line in f)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-s", str(self._proc.pid)], capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGQUIT)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(5)
        self._proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class PythonTlsServer:
    """``tls_http_server.py`` (or another ``script`` printing ``READY <port>``, such as
    ``memory_bio_server.py``) in a child process (see its docstring for the options)."""

    def __init__(self, cert: Certificate, *options: str, env: dict | None = None,
                 script: Path = TLS_HTTP_SERVER) -> None:
        self._cert = cert
        self._script = script
        self._options = options
        self._env = env
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.ready_line = ""
        self.pid = 0  # kept after stop()

    def start(self) -> "PythonTlsServer":
        self.proc = subprocess.Popen(
            [sys.executable, str(self._script), "--cert", str(self._cert.cert), "--key", str(self._cert.key),
             *self._options],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self._env,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        if "--import-ssl-on-stdin" in self._options:
            assert self._line() == "WAITING"
        else:
            self._ready()
        return self

    def import_ssl(self) -> None:
        """Let a ``--import-ssl-on-stdin`` server load the ssl module (dlopen libssl) and serve."""
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        self._ready()

    def _ready(self) -> None:
        line = self._line()
        if not line.startswith("READY "):
            raise RuntimeError(f"TLS server did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(line.split()[1])
        self.ready_line = line

    def _line(self, timeout: float = 20.0) -> str:
        got: list[str] = []
        t = threading.Thread(target=lambda: got.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        return got[0].strip() if got else ""

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
