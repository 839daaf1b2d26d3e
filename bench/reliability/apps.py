"""The fault matrix's database traffic: a small application (one Python process, service
``erx-reliability-app``) that talks to a real PostgreSQL and a real Redis on 127.0.0.1 at a fixed,
bounded rate, next to nginx's HTTP load.

The servers are the tests' own launchers (``PostgresServer`` of tests/fixtures/record_postgresql.py,
``RedisServer`` of tests/support/zpages_demo.py).  The application is started once, before any
agent, so a row's agent includes it by pid as it includes nginx; a row asks it for a load over
its stdin (``run <rate> <seconds>``) and reads back, on its stdout, how many operations it
completed.  Each load opens its own connections (after the row's agent started: the agent sees
them from the first byte) and closes them at the end:

* PostgreSQL: ``SELECT $1::int`` through psycopg (extended protocol, autocommit): one client
  transaction, one span ``SELECT`` of ``db.system.name`` postgresql, per query;
* Redis: ``INCR`` through redis-py in RESP2 with no client name or version, so no handshake
  command: one client span ``INCR`` of ``db.system.name`` redis per command.

The startup/authentication exchange of PostgreSQL and psycopg's ``Terminate`` make no
transaction (receiver/protocols/postgresql/session.py); the servers' side of these connections
makes no span (database spans are client spans, receiver/telemetry/db_semconv.py).  So the
operations the application completed are exactly the spans it should produce, and each is
counted once in ``db.client.operation.duration`` under its service.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.record_postgresql import PostgresServer
from tests.support.zpages_demo import RedisServer

APP_NAME = "erx-reliability-app"  # OTEL_SERVICE_NAME of the application: its spans' service and RED job
SYSTEMS = ("postgresql", "redis")  # db.system.name of its spans, in the order of the report's columns
DEFAULT_RATE = 20.0  # operations/s of each database

APP = textwrap.dedent(
    """
    import json, sys, threading, time
    import psycopg, redis

    def paced(rate, seconds, op):
        # op(i) at a fixed rate (operation i due at i/rate; a late one runs at once), bounded in
        # count; the operations completed, and the error that stopped the load if one did
        t0, done = time.monotonic(), 0
        for i in range(int(rate * seconds)):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                op(i)
            except Exception as e:
                return done, f"{type(e).__name__}: {e}"
            done += 1
        return done, None

    def postgresql(dsn, rate, seconds, out):
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                out["postgresql"] = paced(rate, seconds, lambda i: conn.execute("SELECT %s::int", (i,)).fetchone())
        except Exception as e:
            out.setdefault("postgresql", (0, f"{type(e).__name__}: {e}"))

    def redis_load(port, rate, seconds, out):
        r = redis.Redis(host="127.0.0.1", port=port, protocol=2, lib_name=None, lib_version=None,
                        socket_timeout=30)
        try:
            out["redis"] = paced(rate, seconds, lambda i: r.incr("erx-reliability"))
        except Exception as e:
            out.setdefault("redis", (0, f"{type(e).__name__}: {e}"))
        finally:
            r.close()

    dsn, redis_port = sys.argv[1], int(sys.argv[2])
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] != ["run"]:
            break
        rate, seconds, out = float(words[1]), float(words[2]), {}
        loads = [threading.Thread(target=postgresql, args=(dsn, rate, seconds, out)),
                 threading.Thread(target=redis_load, args=(redis_port, rate, seconds, out))]
        for t in loads:
            t.start()
        for t in loads:
            t.join()
        print(json.dumps(out), flush=True)
    """
)


@dataclass(frozen=True)
class AppResult:
    """One load of the application: operations completed per ``db.system.name``, and the errors
    that stopped a database's load early (none expected)."""

    completed: dict
    errors: dict

    def total(self) -> int:
        return sum(self.completed.values())


class DbApp:
    """PostgreSQL, Redis and the application (``pid``), started once for a whole run."""

    def __init__(self, workdir: Path, rate: float = DEFAULT_RATE) -> None:
        self.workdir = Path(workdir)
        self.rate = rate
        self._stack = ExitStack()
        self.proc: subprocess.Popen | None = None
        self._lock = threading.Lock()  # one load at a time

    def start(self) -> "DbApp":
        try:
            self.pg = PostgresServer().start()
            self._stack.callback(self.pg.stop)
            self.redis = self._stack.enter_context(RedisServer(self.workdir))
            script = self.workdir / "erx_reliability_app.py"
            script.write_text(APP)
            self.proc = subprocess.Popen(
                [sys.executable, str(script), self.pg.tcp_dsn(user="postgres", dbname="postgres"),
                 str(self.redis.port)],
                env=dict(os.environ, OTEL_SERVICE_NAME=APP_NAME), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=open(self.workdir / "erx_reliability_app.log", "w"), text=True, start_new_session=True,
            )
            self._stack.callback(self._stop_app)
            if self.proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"the application did not start: see {self.workdir / 'erx_reliability_app.log'}")
        except BaseException:
            self._stack.close()
            raise
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def ports(self) -> tuple[int, int]:
        return self.pg.port, self.redis.port

    def run(self, seconds: float, rate: float | None = None) -> AppResult:
        """A load of ``rate`` (default: the app's) operations/s on each database for ``seconds``."""
        with self._lock:
            self.proc.stdin.write(f"run {rate or self.rate} {seconds}\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the application exited ({self.proc.poll()}): see its log in {self.workdir}")
        out = json.loads(line)
        completed = {s: out[s][0] if s in out else 0 for s in SYSTEMS}
        errors = {s: out[s][1] if s in out else "no result" for s in SYSTEMS if s not in out or out[s][1]}
        return AppResult(completed, errors)

    def _stop_app(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)

    def stop(self) -> None:
        self._stack.close()

    def __enter__(self) -> "DbApp":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class AppLoad:
    """One load of the application in a thread, beside nginx's (``join()`` returns the result)."""

    def __init__(self, app: DbApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds
        self.result: AppResult | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="app-load", daemon=True)

    def _run(self) -> None:
        try:
            self.result = self.app.run(self.seconds)
        except BaseException as e:  # reported by join()
            self.error = e

    def start(self) -> "AppLoad":
        self._thread.start()
        return self

    def join(self) -> AppResult:
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.result
