"""What every row of the fault matrix shares: the environment (nginx, the database application of
bench/reliability/apps.py, a work directory, the scale), a constant-rate load running in the
background, the wait for the agent to go quiet, and the result with its invariant
``sent == received_unique + dropped_counted`` (summed over the services of the row's traffic; the
agent's drop counters are per agent) and its per-service checks.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bench.loadgen import ConstantRateLoad, LoadResult
from bench.reliability.agent_run import AgentRun, ProcessSample, SelfMetrics
from bench.reliability.apps import APP_NAME, SYSTEMS, AppLoad, AppResult, DbApp
from bench.services import INDEX_HTML, Nginx, Workdir


@dataclass(frozen=True)
class Scale:
    """Durations and rates of a run; ``quick`` shortens every row."""

    rate: float = 200.0  # requests/s of the constant-rate load
    load_seconds: float = 30.0
    outage_seconds: float = 60.0  # collector down
    slow_answer_seconds: float = 20.0  # the collector that answers late
    drain_timeout: float = 60.0  # longest wait for the agent to go quiet once the fault clears
    processes: int = 10_000  # churn row
    connections: int = 100_000
    churn_seconds: float = 60.0
    app_rate: float = 20.0  # operations/s of the application on each of PostgreSQL and Redis

    @classmethod
    def quick(cls) -> "Scale":
        return cls(rate=100.0, load_seconds=12.0, outage_seconds=10.0, slow_answer_seconds=20.0,
                   drain_timeout=40.0, processes=1_000, connections=6_000, churn_seconds=15.0)


NGINX_NAME = "erx-reliability-nginx"  # the executable's name: the service name of its spans


@dataclass
class Env:
    workdir: Path
    nginx: Nginx
    scale: Scale
    path: str = "/erx-reliability.html"  # the page the load asks for (its own RED route)
    other_path: str = "/erx-reliability-2.html"  # a second page, for a second load told apart
    log: Callable[[str], None] = print
    app: DbApp | None = None  # the PostgreSQL/Redis application; None: nginx traffic only

    def rowdir(self, name: str) -> Path:
        d = self.workdir / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def traced_pids(self, apps: bool = True) -> frozenset[int]:
        """The processes whose spans a row counts: nginx's, and the application's when it runs."""
        pids = frozenset(self.nginx.pids)
        return pids | {self.app.pid} if apps and self.app is not None else pids

    def also_pids(self, apps: bool = True) -> tuple[int, ...]:
        """Processes the agent includes besides nginx (``discovery.include`` by pid)."""
        return (self.app.pid,) if apps and self.app is not None else ()

    def app_load(self, seconds: float, apps: bool = True) -> AppLoad | None:
        """The application's load for ``seconds``, started (None without the application)."""
        return AppLoad(self.app, seconds).start() if apps and self.app is not None else None

    def service_of(self, pid: int, db_system: str) -> str | None:
        """The report's service of a span: ``nginx``, ``postgresql`` / ``redis`` (the application's
        spans by their ``db.system.name``; ``app-other`` for any other span of it, none expected),
        or None for another process."""
        if pid in self.nginx.pids:
            return "nginx"
        if self.app is not None and pid == self.app.pid:
            return db_system if db_system in SYSTEMS else "app-other"
        return None


@dataclass
class Service:
    """One service of a row's traffic: operations sent (completed by the client), spans received
    (distinct span ids), and the operations in the agent's RED metrics (None: not read)."""

    sent: int
    received: int
    red: float | None = None


@dataclass
class RowResult:
    name: str
    fault: str
    sent: int = 0
    received: int = 0
    dropped: dict = field(default_factory=dict)  # where/reason -> count
    duplicated: int = 0
    rss_before: int = 0
    rss_after: int = 0
    rss_peak: int = 0
    fds_before: int = 0
    fds_after: int = 0
    exit_code: int | None = None  # of the agent's clean shutdown at the end (0 expected)
    tolerance: int = 0
    red: float | None = None  # nginx requests in the agent's RED metrics, when read
    services: dict = field(default_factory=dict)  # name -> Service, when the row has the application's traffic
    checks: list = field(default_factory=list)  # (description, passed)
    notes: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def dropped_counted(self) -> int:
        return int(sum(self.dropped.values()))

    @property
    def gap(self) -> int:
        """Spans neither received nor counted as dropped (negative: counted more than missing)."""
        return self.sent - self.received - self.dropped_counted

    def check(self, what: str, passed: bool) -> None:
        self.checks.append((what, bool(passed)))

    @property
    def passed(self) -> bool:
        return all(ok for _, ok in self.checks)

    def invariant(self) -> None:
        """Nothing lost uncounted (gap <= 0); counted more than missing only by what other processes'
        spans explain (``tolerance``: the agent's drop counters are per agent, not per process,
        and processes the agent traced besides this nginx are counted there too)."""
        self.check(f"sent == received + dropped (gap {self.gap}, tolerance -{self.tolerance})",
                   -self.tolerance <= self.gap <= 0)
        nginx_sent = self.services["nginx"].sent if self.services else self.sent
        if self.red is not None:
            self.check(f"every nginx request in the RED metrics (span or kernel aggregate: {self.red:.0f})",
                       self.red == nginx_sent)
        for name, svc in self.services.items():
            if name != "nginx" and svc.red is not None:
                self.check(f"every {name} operation in the RED metrics ({svc.red:.0f} of {svc.sent})",
                           svc.red == svc.sent)
        if self.services and not self.dropped:
            # nothing dropped: each service's spans arrived, one for one (not only their sum)
            self.check("nothing dropped: received == sent for every service ("
                       + ", ".join(f"{n} {s.received}/{s.sent}" for n, s in self.services.items()) + ")",
                       all(s.received == s.sent for s in self.services.values()))
        self.check("no crash (clean exit 0)", self.exit_code == 0)

    def account(self, nginx_sent: int, app: AppResult | None, received: dict[str, int], m: SelfMetrics) -> None:
        """``sent``, ``received`` and the RED counts, per service and in all, from what the clients
        completed, the distinct span ids received per service (:meth:`Env.service_of`) and the
        agent's last scrape."""
        self.red = m.red_server_count(NGINX_NAME)
        if app is None:
            self.sent, self.received = nginx_sent, received.get("nginx", 0)
            return
        self.services = {"nginx": Service(nginx_sent, received.get("nginx", 0), self.red)}
        for system in SYSTEMS:
            self.services[system] = Service(app.completed[system], received.get(system, 0),
                                            m.red_db_client_count(APP_NAME, system))
        if received.get("app-other"):
            self.services["app-other"] = Service(0, received["app-other"], None)
        for system, error in app.errors.items():
            self.notes.append(f"the application's {system} load stopped early: {error}")
        self.check("the application's loads ran to the end", not app.errors)
        self.sent = sum(s.sent for s in self.services.values())
        self.received = sum(s.received for s in self.services.values())

    def foreign(self, spans: int, red_others: float = 0.0) -> None:
        """The tolerance on the counted side: operations of other processes the agent traced —
        ``spans`` of them reached the collector, ``red_others`` is what its RED metrics counted of
        them (spans and kernel aggregates, delivered or not)."""
        self.tolerance = int(max(spans, red_others))

    def samples(self, before: ProcessSample, after: ProcessSample) -> None:
        self.rss_before, self.fds_before = before.rss, before.fds
        self.rss_after, self.fds_after, self.rss_peak = after.rss, after.fds, after.hwm


def start_nginx(workdir: Workdir) -> Nginx:
    """nginx under a name of its own (its spans and RED series are told apart from other nginx
    servers on the machine that the agent may see), serving ``Env.path``."""
    binary = workdir.file(NGINX_NAME)
    shutil.copy(shutil.which("nginx"), binary)
    nginx = Nginx(workdir, binary=str(binary)).start()
    for path in (Env.path, Env.other_path):
        (nginx.dir / "www" / path.lstrip("/")).write_text(INDEX_HTML)
    return nginx


class BackgroundLoad:
    """The constant-rate load (bench/loadgen.py) against the row's nginx, in a thread."""

    def __init__(self, env: Env, seconds: float, rate: float | None = None, connection_close: bool = False,
                 connections: int = 16, processes: int | None = None, path: str | None = None) -> None:
        self.load = ConstantRateLoad("127.0.0.1", env.nginx.port, path or env.path, rate or env.scale.rate, seconds,
                                     env.workdir, processes=processes, connections=connections,
                                     connection_close=connection_close)
        self.result: LoadResult | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self.started = 0.0

    def _run(self) -> None:
        try:
            self.result = self.load.run()
        except BaseException as e:  # reported by join()
            self.error = e

    def start(self) -> "BackgroundLoad":
        self.started = time.monotonic()
        self._thread.start()
        return self

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def join(self) -> LoadResult:
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.result


def wait_settled(agent: AgentRun, received: Callable[[], int], sent: int, timeout: float,
                 quiet: float = 3.0, busy: Callable[[], bool] | None = None) -> SelfMetrics:
    """Waits until every sent span is received or counted as dropped (or nothing changed for
    ``quiet`` seconds after the pipeline emptied and the collector answered every export it was
    sent — ``busy``: it still holds one, e.g. a delayed answer —, or ``timeout``); the last scrape."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while True:
        m = agent.metrics()
        got = received()
        accounted = got + sum(m.span_drops().values())
        state = (got, accounted)
        if state != last:
            last, since = state, time.monotonic()
        if accounted >= sent and time.monotonic() - since >= 1.0:
            return m
        if time.monotonic() - since >= quiet and _queue_empty(m) and not (busy is not None and busy()):
            return m
        if time.monotonic() > deadline:
            return m
        time.sleep(0.5)


def _queue_empty(m: SelfMetrics) -> bool:
    return m.sum("ebpf_receiver_exporter_signal_queue_size", signal="traces") == 0
