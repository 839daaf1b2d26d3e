"""Real servers (Debian packages) started by tests on loopback, in a temp dir, and stopped."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from tests.support.ports import free_port, wait_for_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class NginxServer:
    """nginx in the foreground with its own prefix; ``/`` serves ``index.html`` and
    ``/big.bin``; ``/status/<code>`` returns that code; ``/slow`` is proxied nowhere."""

    def __init__(self, workdir: Path, port: int | None = None, extra_locations: str = "") -> None:
        self.port = port or free_port()
        self.root = Path(workdir) / "nginx"
        self._extra = extra_locations
        self._proc: subprocess.Popen | None = None

    def start(self) -> "NginxServer":
        r = self.root
        (r / "html").mkdir(parents=True, exist_ok=True)
        (r / "logs").mkdir(exist_ok=True)
        (r / "tmp").mkdir(exist_ok=True)
        (r / "html" / "index.html").write_text("<html>hello from nginx</html>\n")
        (r / "html" / "big.bin").write_bytes(os.urandom(100_000))
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
    keepalive_requests 10000;
    server {{
        listen 127.0.0.1:{self.port};
        root {r}/html;
        location /status/ {{ return 200 "ok\\n"; }}
        location = /status/404 {{ return 404; }}
        location = /status/500 {{ return 500; }}
        location = /status/204 {{ return 204; }}
        {self._extra}
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
        wait_for_port(self.port)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
