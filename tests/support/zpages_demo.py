"""Real services for the zPages: nginx proxying to a Python app that calls Redis and PostgreSQL,
with one endpoint that fails (``/fail``: 500), and a browser to open the pages.

Used by tests/e2e/test_zpages.py and scripts/zpages_screenshots.py (``make docs``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from tests.fixtures.record_postgresql import PostgresServer
from tests.support.ports import free_port, wait_for_port
from tests.support.servers import NginxServer

APP = textwrap.dedent(
    """
    import sys, psycopg, redis
    from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

    r = redis.Redis(host="127.0.0.1", port=int(sys.argv[2]), protocol=2, lib_name=None, lib_version=None)  # no handshake
    pg = psycopg.connect(sys.argv[3], autocommit=True)
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_GET(self):
            r.incr("visits")
            if self.path.startswith("/fail"):
                code, body = 500, b"failed on purpose\\n"
            else:
                row = pg.execute("SELECT count(*) FROM pg_class").fetchone()
                code, body = 200, str(row[0]).encode() + b"\\n"
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)

ZPAGES_CONFIG = """
receivers:
  ebpf: {{}}
processors:
  batch:
    timeout: 100ms
exporters:
  otlp:
    endpoint: {collector}
    tls: {{insecure: true}}
extensions:
  zpages:
    endpoint: 127.0.0.1:{port}
    refresh_interval: 2s
service:
  extensions: [zpages]
  pipelines:
    traces: {{receivers: [ebpf], processors: [batch], exporters: [otlp]}}
"""


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.proc: subprocess.Popen | None = None

    def __enter__(self):
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        wait_for_port(self.port)
        return self

    def __exit__(self, *exc):
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(10)

    def commands_served(self) -> int:
        """Commands the server was sent, as it counts them (INFO commandstats: executed, rejected and
        failed), INFO itself aside."""
        out = subprocess.run(["redis-cli", "-p", str(self.port), "INFO", "commandstats"], capture_output=True,
                             text=True, timeout=10, check=True).stdout
        total = 0
        for line in out.splitlines():
            if line.startswith("cmdstat_") and not line.startswith("cmdstat_info:"):
                stats = dict(kv.split("=", 1) for kv in line.split(":", 1)[1].split(","))
                total += sum(int(stats.get(k, 0)) for k in ("calls", "rejected_calls", "failed_calls"))
        return total


class DemoServices:
    """nginx (``/app/`` proxied to the app) → app (service name :attr:`service`) → Redis, PostgreSQL."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.service = "zp-shop-" + secrets.token_hex(3)
        self.app_port = free_port()
        self._stack = ExitStack()
        self.app: subprocess.Popen | None = None

    def __enter__(self) -> DemoServices:
        try:
            self.pg = PostgresServer().start()
            self._stack.callback(self.pg.stop)
            self.redis = self._stack.enter_context(RedisServer(self.workdir))
            (self.workdir / "shop.py").write_text(APP)
            env = dict(os.environ, OTEL_SERVICE_NAME=self.service)
            self.app = subprocess.Popen(
                [sys.executable, str(self.workdir / "shop.py"), str(self.app_port), str(self.redis.port),
                 self.pg.tcp_dsn(user="postgres", dbname="postgres")],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
            self._stack.callback(self._stop_app)
            wait_for_port(self.app_port)
            proxy = f"location /app/ {{ proxy_pass http://127.0.0.1:{self.app_port}/; proxy_http_version 1.1; " \
                    'proxy_set_header Connection ""; }'
            self.nginx = self._stack.enter_context(NginxServer(self.workdir, extra_locations=proxy))
        except BaseException:
            self._stack.close()
            raise
        return self

    def _stop_app(self) -> None:
        if self.app is not None and self.app.poll() is None:
            os.killpg(self.app.pid, signal.SIGTERM)
            self.app.wait(10)

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def drive(self, ok: int, fail: int) -> dict[str, int]:
        """``ok`` requests to /app/ok and ``fail`` to /app/fail through nginx, interleaved; returns
        the status codes counted (so a test compares with what really happened)."""
        codes: dict[str, int] = {}
        plan = ["ok"] * ok + ["fail"] * fail
        plan.sort(key=lambda p: secrets.randbelow(1000))
        for which in plan:
            try:
                with urllib.request.urlopen(f"{self.nginx.url}/app/{which}", timeout=10) as r:
                    code = r.status
            except urllib.error.HTTPError as e:
                code = e.code
            codes[str(code)] = codes.get(str(code), 0) + 1
        return codes


def chromium_driver(width: int = 1400, height: int = 1000):
    """Headless Debian chromium through Debian's chromedriver (selenium finds nothing to download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)
