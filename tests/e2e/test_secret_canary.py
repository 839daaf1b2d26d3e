"""A canary secret planted everywhere a secret travels never leaves the agent (issue 20).

The canary goes into HTTP ``Authorization`` and ``Cookie`` headers and a URL query, SQL string
literals (PostgreSQL and MariaDB, including ``PASSWORD '...'`` clauses and an error message that
echoes the literal back), a PostgreSQL cleartext password exchange, MariaDB and Redis passwords
(``AUTH`` in clear on the wire), an application's log line with credentials, and the environment
of every traced client.  The real agent
(``ebpf-receiver run``, ``capture_logs`` on) traces real servers and clients; then every output
is searched: the spans, logs and metrics a real collector (rotel) received, the Prometheus
scrape, the persistent queue's files (an exporter whose collector is down keeps its batches on
disk) and the agent's own stdout/stderr (the debug exporter at ``detailed`` on stderr, log level debug).

Each search has a positive control (a marker that must be found there), so an empty output
cannot pass for a clean one.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.fixtures.record_mysql import MariaDBServer
from tests.fixtures.record_postgresql import PSQL, PostgresServer
from tests.fixtures.record_redis import HOST, REDIS_SERVER
from tests.support.agent import AgentProcess
from tests.support.ports import free_port, wait_for_port, wait_until
from tests.support.rotel import RotelCollector
from tests.support.servers import NginxServer

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

CANARY = f"erxcanary{uuid.uuid4().hex}"
MARK = f"erxmark{uuid.uuid4().hex[:12]}"  # not secret: must be found (positive control)
ENV = {"PATH": "/usr/bin:/bin:/usr/sbin", "HOME": "/nonexistent", "ERX_CANARY_SECRET": CANARY}


def agent_config(collector: str, dead: str, storage: Path, prom_port: int) -> str:
    return f"""
receivers:
  ebpf:
    poll_interval: 20ms
    capture_logs: true
processors:
  batch:
    timeout: 100ms
exporters:
  otlp:
    endpoint: {collector}
    tls: {{insecure: true}}
  otlp/queued:
    endpoint: {dead}
    tls: {{insecure: true}}
    timeout: 1s
    sending_queue: {{storage: {storage}}}
    retry_on_failure: {{initial_interval: 5s, max_interval: 5s, max_elapsed_time: 0s}}
  prometheus:
    endpoint: 127.0.0.1:{prom_port}
  debug:
    verbosity: detailed
service:
  telemetry: {{logs: {{level: debug}}}}
  shutdown_timeout: 3s
  pipelines:
    traces: {{receivers: [ebpf], processors: [batch], exporters: [otlp, otlp/queued, debug]}}
    logs: {{receivers: [ebpf], processors: [batch], exporters: [otlp, otlp/queued, debug]}}
    metrics: {{receivers: [ebpf], exporters: [otlp, prometheus]}}
"""


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env or ENV, capture_output=True, text=True, timeout=60)


def http_traffic(nginx: NginxServer) -> None:
    done = run([
        "curl", "-s", "-o", "/dev/null",
        "-H", f"Authorization: Bearer {CANARY}",
        "-H", f"Cookie: session={CANARY}; theme=dark",
        f"{nginx.url}/{MARK}/index.html?token={CANARY}&page=2",
    ])
    assert done.returncode == 0, done.stderr


def postgres_traffic(pg: PostgresServer) -> None:
    # A user who logs in with a cleartext password (the password travels as is on the wire).
    hba = pg.data / "pg_hba.conf"
    hba.write_text("local all all trust\nhost all erx_clear 127.0.0.1/32 password\n" + hba.read_text())
    setup = [PSQL, "-X", "-h", str(pg.socket_dir), "-p", str(pg.port), "-U", "postgres", "-d", "postgres"]
    # PostgreSQL's own log quotes failed statements and refused values; with capture_logs the
    # agent would export that log as the server wrote it (an application's log is its own text:
    # only credential patterns are redacted from it, see app_logs below).  Off, as in production.
    for setting in ("log_min_error_statement = 'panic'", "log_min_messages = 'panic'"):
        assert run([*setup, "-c", f"ALTER SYSTEM SET {setting}"]).returncode == 0
    assert run([*setup, "-c", "SELECT pg_reload_conf()"]).returncode == 0
    tcp = [PSQL, "-X", "-h", "127.0.0.1", "-p", str(pg.port), "-d", "postgres"]
    statements = [
        f"CREATE USER erx_clear PASSWORD '{CANARY}'",
        f"ALTER USER erx_clear PASSWORD '{CANARY}'",
        f"SELECT count(*) AS {MARK} FROM pg_class WHERE relname = '{CANARY}'",
        f"SELECT '{CANARY}'::int",  # the server's error message quotes the literal back
    ]
    for sql in statements:
        run([*tcp, "-U", "postgres", "-c", sql])
    done = run([*tcp, "-U", "erx_clear", "-c", "SELECT 1"], env={**ENV, "PGPASSWORD": CANARY})
    assert done.returncode == 0, done.stderr


def mariadb_traffic(db: MariaDBServer) -> None:
    base = ["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(db.port)]
    root = [*base, "-uroot"]
    for sql in (
        f"CREATE USER IF NOT EXISTS 'erx_canary'@'%' IDENTIFIED BY '{CANARY}'",
        f"SET PASSWORD FOR 'erx_canary'@'%' = PASSWORD('{CANARY}')",
        "GRANT ALL ON *.* TO 'erx_canary'@'%'",
        f"SELECT COUNT(*) AS {MARK} FROM mysql.user WHERE user = '{CANARY}'",
        f"SELECT CAST('{CANARY}' AS DATE) + 1 FROM no_such_table",  # an error naming the statement
    ):
        run([*root, "-e", sql])
    done = run([*base, "-uerx_canary", f"-p{CANARY}", "-e", "SELECT 1"])
    assert done.returncode == 0, done.stderr


def redis_traffic(port: int) -> None:
    cli = ["redis-cli", "-h", HOST, "-p", str(port), "--no-auth-warning"]
    assert run([*cli, "-a", CANARY, "SET", f"{MARK}:key", CANARY]).stdout.strip() == "OK"
    run([*cli, "AUTH", "default", CANARY])
    assert run([*cli, "-a", CANARY, "GET", f"{MARK}:key"]).returncode == 0


def app_logs(log_file: Path) -> None:
    """An application logging credentials in the forms the log redaction knows, to stderr
    redirected to a file (a log destination for capture_logs)."""
    line = f"{MARK} login failed: password={CANARY} token={CANARY} Authorization: Bearer {CANARY}"
    with open(log_file, "ab") as stderr:
        done = subprocess.run(["sh", "-c", f"echo '{line}' >&2; sleep 0.2"], env=ENV, stderr=stderr, timeout=30)
    assert done.returncode == 0


def start_redis(tmp_path: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path), "--requirepass", CANARY],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    return proc, port


def files_under(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


def test_a_canary_secret_never_leaves_the_agent(tmp_path):
    storage = tmp_path / "queue"
    prom_port = free_port()
    dead = f"127.0.0.1:{free_port()}"  # nothing listens: the queued exporter keeps its batches
    db = MariaDBServer(tmp_path / "mariadb")
    (tmp_path / "mariadb").mkdir()
    redis_proc, redis_port = start_redis(tmp_path)
    try:
        with RotelCollector(tmp_path) as collector, NginxServer(tmp_path) as nginx, PostgresServer() as pg:
            db.start()
            agent = AgentProcess(tmp_path, agent_config(collector.grpc_endpoint, dead, storage, prom_port)).start()
            try:
                http_traffic(nginx)
                postgres_traffic(pg)
                mariadb_traffic(db)
                redis_traffic(redis_port)
                app_logs(tmp_path / "app.log")

                def marked():
                    text = collector.text()
                    return text.count(MARK) >= 3 and all(s in text for s in ("postgresql", "mariadb", "redis"))

                wait_until(marked, timeout=30, what="the marked spans at the collector")
                time.sleep(1.5)  # a last batch, a last metrics push
                scrape = requests.get(f"http://127.0.0.1:{prom_port}/metrics", timeout=10).text
            finally:
                rc = agent.stop()
            db_text = collector.text()
    finally:
        db.stop()
        redis_proc.terminate()
        redis_proc.wait(10)
    assert rc == 0, agent.stderr()

    queued = files_under(storage)
    outputs = {
        "collector (spans, logs, metrics)": db_text.encode(),
        "collector raw output": collector.raw_bytes(),
        "prometheus scrape": scrape.encode(),
        "persistent queue files": queued,
        "agent stdout": agent.stdout().encode(),
        "agent stderr": agent.stderr().encode(),
    }
    # Positive controls: each output really holds what the traffic produced.
    assert MARK.encode() in outputs["collector (spans, logs, metrics)"]
    assert MARK.encode() in queued, "the queued exporter kept no batch on disk"
    assert MARK.encode() in outputs["agent stderr"]  # the debug exporter writes there
    assert b"db_client_operation_duration_seconds" in outputs["prometheus scrape"]
    assert f"{MARK} login failed: password=REDACTED".encode() in outputs["collector (spans, logs, metrics)"]
    for system in ("postgresql", "mariadb", "redis"):
        assert f"db.system.name: Str({system})".encode() in outputs["collector (spans, logs, metrics)"] or \
            system.encode() in outputs["collector (spans, logs, metrics)"], system
    # The canary, whole or as a 12-character fragment, is nowhere.
    leaks = {name: data.count(CANARY.encode()) for name, data in outputs.items() if CANARY[9:21].encode() in data}
    assert not leaks, f"the canary leaked into: {leaks}"
    assert os.environ.get("ERX_CANARY_SECRET") is None  # planted only in the clients' environment
