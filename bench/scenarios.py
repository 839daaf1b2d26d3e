"""The macro benchmarks: nginx saturated (off / floor / drain / on), nginx at fixed rates
(off / on), and a Flask app under gunicorn (bare / OTel SDK / bare + agent).  Modes are
interleaved within each round (off, floor, drain, on, off, floor, ...) so drift of a shared
machine hits every mode alike;
every run is one :class:`Run` record, and the report takes medians and spreads over rounds.

Processes the agent must not trace (the load generators, this harness) are started first and
their pids go to the agent's ``exclude_pids``; the sink's and the metrics endpoint's ports go to
``exclude_ports``.  The agent still traces everything else on the machine; spans of other
processes are counted apart (``foreign_spans``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field

from bench import procstat
from bench.bpf_runtime import BpfRuntime
from bench.loadgen import ConstantRateLoad, LoadResult
from bench.machine import BusyMeter
from bench.services import Agent, Floor, Gunicorn, Nginx, Sink, Workdir
from bench.wrk import Wrk

HOST = "127.0.0.1"
SAMPLED_RATIO = 0.1  # the "sampled" mode: 10 % of traces exported, RED metrics of every request
SAMPLED_RATE = 5000.0  # the fixed rate that also runs in the sampled mode
CLOSE_RATE = 2000.0  # the fixed rate of the new-connection-per-request runs


@dataclass
class Options:
    quick: bool = True
    rounds: int = 2  # interleaved rounds of the saturated runs
    flask_rounds: int = 2
    fixed_rounds: int = 1
    saturated_seconds: float = 5.0
    fixed_seconds: float = 10.0
    rates: tuple[float, ...] = (1000.0, 5000.0, 20000.0)
    half_saturation: bool = True
    flask_rate: float = 800.0
    flask_seconds: float = 5.0
    flask_saturated_seconds: float = 5.0
    profile_seconds: float = 5.0
    nginx_workers: int = 1
    nginx_sendfile: bool = False  # the body by sendfile(2) (nginx's default) instead of write
    wrk_connections: int = 32
    sections: tuple[str, ...] = ("saturated", "fixed", "flask", "micro")

    @classmethod
    def for_mode(cls, quick: bool) -> "Options":
        if quick:
            return cls()
        return cls(quick=False, rounds=7, flask_rounds=3, fixed_rounds=3, saturated_seconds=10.0,
                   fixed_seconds=60.0, flask_seconds=15.0, flask_saturated_seconds=10.0, profile_seconds=15.0)


@dataclass
class Run:
    scenario: str
    mode: str
    round: int
    params: dict
    values: dict = field(default_factory=dict)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Context:
    def __init__(self, opts: Options, workdir: Workdir) -> None:
        self.opts = opts
        self.workdir = workdir
        self.sink = Sink().start()
        self.runs: list[Run] = []
        self._agents = 0

    def close(self) -> None:
        self.sink.stop()

    def agent(self, exclude_pids: list[int], sampler_ratio: float | None = None) -> Agent:
        # Not this harness: its children that run Python (gunicorn, the sink) would inherit the
        # exclusion (see bench/loadgen.py); it has no traffic of its own the agent could see
        # except on the excluded sink and metrics ports.
        self._agents += 1
        return Agent(self.workdir, self.sink.port, exclude_pids, name=f"agent-{self._agents}",
                     sampler_ratio=sampler_ratio).start()

    def start_mode(self, mode: str, exclude_pids: list[int]):
        if mode in ("on", "agent"):
            return self.agent(exclude_pids)
        if mode == "sampled":
            return self.agent(exclude_pids, sampler_ratio=SAMPLED_RATIO)
        if mode == "floor":
            return Floor().start()
        if mode == "drain":
            return Floor(drain=True, exclude_pids=exclude_pids).start()
        return None

    def record(self, run: Run) -> Run:
        self.runs.append(run)
        v = run.values
        brief = ", ".join(f"{k}={v[k]:.4g}" if isinstance(v[k], float) else f"{k}={v[k]}" for k in list(v)[:8])
        log(f"{run.scenario} {run.mode} r{run.round} {run.params}: {brief}")
        return run


# -- the agent's side of one run ---------------------------------------------------------------


class AgentProbe:
    """Agent CPU, memory and self-metrics over one run, and what reached the sink."""

    def __init__(self, agent: Agent, baseline_s: float = 2.0) -> None:
        self.agent = agent
        # What the agent spends with no load from us: polling, and tracing the rest of the machine.
        c0 = procstat.cpu_seconds(agent.pid)
        time.sleep(baseline_s)
        self.baseline_cores = (procstat.cpu_seconds(agent.pid) - c0) / baseline_s if baseline_s else 0.0
        self.m0 = agent.self_metrics()
        self.cpu0 = procstat.cpu_seconds(agent.pid)
        self.t0 = time.monotonic()

    def finish(self, sink: Sink, target_pids: set[int], expected: int, quiet: float = 1.5,
               timeout: float = 60.0) -> dict:
        if self.agent.sampler_ratio is None:
            count = lambda s: spans_of_pids(s, target_pids)  # noqa: E731
        else:  # spans exported + spans sampled out (this one counts every process's)
            out0 = self.m0.get("ebpf_receiver_spans_sampled_out_total", 0.0)
            count = lambda s: spans_of_pids(s, target_pids) + (  # noqa: E731
                self.agent.self_metrics().get("ebpf_receiver_spans_sampled_out_total", 0.0) - out0)
        st = wait_delivered(sink, count, expected, quiet, timeout)
        cpu = procstat.cpu_seconds(self.agent.pid) - self.cpu0
        window = time.monotonic() - self.t0
        rss, hwm = procstat.memory(self.agent.pid)
        pss = procstat.pss(self.agent.pid)
        m1 = self.agent.self_metrics()
        d = lambda name: m1.get(name, 0.0) - self.m0.get(name, 0.0)  # noqa: E731
        produced = d("ebpf_receiver_kernel_events_produced_total")
        lost = d("ebpf_receiver_kernel_events_lost_total")
        target = spans_of_pids(st, target_pids)
        return {
            "agent_cpu_s": cpu,
            "agent_baseline_cores": self.baseline_cores,
            # minus what it would have spent anyway over the window (baseline rate × window)
            "agent_net_cpu_s": max(0.0, cpu - self.baseline_cores * window),
            "agent_rss_mb": rss / 2**20,
            "agent_hwm_mb": hwm / 2**20,
            "agent_pss_mb": pss / 2**20,
            "events_produced": produced,
            "events_lost": lost,
            "events_lost_pct": 100 * lost / produced if produced else 0.0,
            "parse_errors": d("ebpf_receiver_parse_errors_total"),
            "exporter_dropped": d("ebpf_receiver_exporter_dropped_items_total"),
            "spans": target,
            "foreign_spans": st["spans"] - target,
            "spans_sampled_out": d("ebpf_receiver_spans_sampled_out_total"),
            "red_count": d("red_nginx_server_count"),
            "aggregated": d("ebpf_receiver_http_transactions_aggregated_total"),
        }


def spans_of_pids(stats: dict, pids: set[int]) -> int:
    return sum(n for pid, n in stats["spans_by_pid"].items() if int(pid) in pids)


def spans_of_service(stats: dict, service: str) -> int:
    return stats["spans_by_service"].get(service, 0)


def wait_delivered(sink: Sink, count, expected: int, quiet: float, timeout: float) -> dict:
    """Sink stats once ``count(stats) >= expected``, or nothing new arrived for ``quiet`` s."""
    deadline = time.monotonic() + timeout
    st = sink.stats()
    last, since = count(st), time.monotonic()
    while time.monotonic() < deadline and last < expected:
        time.sleep(0.2)
        st = sink.stats()
        n = count(st)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return st


def _stop(handle) -> None:
    if handle is not None:
        handle.stop()


# -- 1. nginx saturated ---------------------------------------------------------------------------


def nginx_saturated(ctx: Context) -> None:
    o = ctx.opts
    nginx = Nginx(ctx.workdir, workers=o.nginx_workers, sendfile=o.nginx_sendfile).start()
    url = f"http://{HOST}:{nginx.port}/"
    try:
        Wrk(url, 2, connections=o.wrk_connections).run()  # warm-up
        for rnd in range(o.rounds):
            for mode in ("off", "floor", "drain", "on"):
                time.sleep(1.0)  # let the previous run's processes finish exiting
                ctx.sink.reset()
                wrk = Wrk(url, o.saturated_seconds, connections=o.wrk_connections)
                handle = None
                try:
                    handle = ctx.start_mode(mode, [wrk.pid])
                    probe = AgentProbe(handle) if mode == "on" else None
                    pids = nginx.pids
                    ng0 = procstat.tree_cpu_seconds(pids)
                    busy, la = BusyMeter(), procstat.load_average()[0]
                    t0 = time.monotonic()
                    res = wrk.run()
                    wall = time.monotonic() - t0
                    cores = busy.cores()
                    ng = procstat.tree_cpu_seconds(pids) - ng0
                    v = {
                        "rps": res.rps, "requests": res.requests, "errors": res.non_2xx + res.socket_errors,
                        "nginx_cpu_us_per_req": 1e6 * ng / max(res.requests, 1),
                        "machine_busy_cores": cores, "loadavg": la, "wall_s": wall,
                    }
                    if probe:
                        time.sleep(1.5)  # the kernel's overload aggregates are drained once a second
                        v.update(probe.finish(ctx.sink, set(pids), res.requests, quiet=2.0))
                        v["agent_cores"] = v["agent_cpu_s"] / wall
                        v["spans_pct"] = 100 * v["spans"] / max(res.requests, 1)
                finally:
                    wrk.kill()
                    _stop(handle)
                ctx.record(Run("saturated", mode, rnd, {"connections": o.wrk_connections,
                                                        "nginx_workers": o.nginx_workers}, v))
    finally:
        nginx.stop()


def saturation_rps(ctx: Context) -> float | None:
    vals = sorted(r.values["rps"] for r in ctx.runs if r.scenario == "saturated" and r.mode == "off")
    return vals[len(vals) // 2] if vals else None


# -- 2. nginx at fixed rates ------------------------------------------------------------------------


def _fixed_run(ctx: Context, nginx: Nginx, rate: float, mode: str, rnd: int, seconds: float,
               label: str = "fixed", profile=None, connection_close: bool = False) -> Run:
    ctx.sink.reset()
    load = ConstantRateLoad(HOST, nginx.port, "/", rate, seconds, ctx.workdir.path,
                            connection_close=connection_close)
    handle = None
    try:
        handle = ctx.start_mode(mode, load.pids)
        probe = AgentProbe(handle) if mode in ("on", "sampled") else None
        pids = nginx.pids
        bpf = BpfRuntime(handle.pid) if probe else None
        if bpf is not None:
            bpf.__enter__()
            bpf0 = bpf.snapshot()
        ng0 = procstat.tree_cpu_seconds(pids)
        busy, la = BusyMeter(), procstat.load_average()[0]
        spy = profile(handle) if profile else None
        res: LoadResult = load.run()
        cores = busy.cores()
        ng = procstat.tree_cpu_seconds(pids) - ng0
        if bpf is not None:
            bpf1 = bpf.snapshot()
            bpf.__exit__()
        v = {
            "p50_us": res.latency_us["p50"], "p99_us": res.latency_us["p99"], "p999_us": res.latency_us["p99.9"],
            "max_us": res.latency_us["max"],
            "service_p50_us": res.service_us["p50"], "service_p99_us": res.service_us["p99"],
            "lateness_p99_us": res.lateness_us["p99"], "achieved_rate": res.achieved_rate,
            "completed": res.completed, "errors": res.errors, "unfinished": res.unfinished,
            "generator_kept_up": res.generator_kept_up,
            "generator_cpu_us_per_req": 1e6 * res.generator_cpu_s / max(res.completed, 1),
            "nginx_cpu_us_per_req": 1e6 * ng / max(res.completed, 1),
            "machine_busy_cores": cores, "loadavg": la,
        }
        if spy is not None:
            v["profile"] = spy()
        if probe:
            v.update(probe.finish(ctx.sink, set(pids), res.completed))
            v["agent_cpu_s_per_10k"] = 1e4 * v["agent_cpu_s"] / max(res.completed, 1)
            v["agent_net_cpu_s_per_10k"] = 1e4 * v["agent_net_cpu_s"] / max(res.completed, 1)
            v["spans_pct"] = 100 * v["spans"] / max(res.completed, 1)
            v["bpf_ns_per_req"] = (bpf1[0] - bpf0[0]) / max(res.completed, 1)
    finally:
        load.kill()
        _stop(handle)
    return ctx.record(Run(label, mode, rnd, {"rate": rate, "seconds": seconds}, v))


def nginx_fixed(ctx: Context, half_saturation: float | None) -> None:
    o = ctx.opts
    rates = list(o.rates)
    # half of saturation gets its own runs unless a listed rate is within 10 % of it
    if half_saturation and not any(abs(r - half_saturation) / r < 0.10 for r in rates):
        rates.append(round(half_saturation, -2))
    nginx = Nginx(ctx.workdir, workers=o.nginx_workers, sendfile=o.nginx_sendfile).start()
    try:
        for rnd in range(o.fixed_rounds):
            for rate in rates:
                for mode in ("off", "on", "sampled") if rate == SAMPLED_RATE else ("off", "on"):
                    _fixed_run(ctx, nginx, rate, mode, rnd, o.fixed_seconds)
    finally:
        nginx.stop()
    # One run on the other path: with sendfile(2) the body is counted in the kernel, not copied.
    nginx = Nginx(ctx.workdir, workers=o.nginx_workers, sendfile=not o.nginx_sendfile).start()
    try:
        _fixed_run(ctx, nginx, 5000.0, "on", 0, min(o.fixed_seconds, 10.0), label="fixed-sendfile")
    finally:
        nginx.stop()
    # A new connection per request (Connection: close), the clients many real users have.
    nginx = Nginx(ctx.workdir, workers=o.nginx_workers, sendfile=o.nginx_sendfile).start()
    try:
        for rnd in range(o.fixed_rounds):
            for mode in ("off", "on"):
                _fixed_run(ctx, nginx, CLOSE_RATE, mode, rnd, o.fixed_seconds, label="fixed-close",
                           connection_close=True)
    finally:
        nginx.stop()


# -- 3. Flask under gunicorn: bare, OTel SDK, bare + agent -----------------------------------------

FLASK_PATH = "/users/42"
FLASK_WORKERS, FLASK_THREADS = 2, 4


def flask_compare(ctx: Context) -> None:
    o = ctx.opts
    for rnd in range(o.flask_rounds):
        for mode in ("bare", "otel", "agent"):
            gun = Gunicorn(ctx.workdir, FLASK_WORKERS, FLASK_THREADS, otel=mode == "otel", sink_port=ctx.sink.port)
            gun.start()
            handle = None
            load = wrk = None
            try:
                load = ConstantRateLoad(HOST, gun.port, FLASK_PATH, o.flask_rate, o.flask_seconds, ctx.workdir.path)
                wrk = Wrk(f"http://{HOST}:{gun.port}{FLASK_PATH}", o.flask_saturated_seconds, connections=16)
                handle = ctx.start_mode(mode, load.pids + [wrk.pid])
                ctx.sink.reset()
                pids = gun.pids
                workers = set(pids) - {gun.proc.pid}
                base = AgentProbe(handle) if handle else None  # its 2 s baseline, before the load
                g0 = procstat.tree_cpu_seconds(pids)
                a0 = procstat.cpu_seconds(handle.pid) if handle else 0.0
                t0 = time.monotonic()
                la = procstat.load_average()[0]
                busy = BusyMeter()
                res = load.run()
                cores = busy.cores()
                if mode == "otel":
                    st = wait_delivered(ctx.sink, lambda s: spans_of_service(s, "bench-flask"), res.completed,
                                        quiet=7.0, timeout=20.0)  # BatchSpanProcessor: every 5 s
                    spans = spans_of_service(st, "bench-flask")
                elif mode == "agent":
                    st = wait_delivered(ctx.sink, lambda s, w=workers: spans_of_pids(s, w), res.completed,
                                        quiet=1.5, timeout=20.0)
                    spans = spans_of_pids(st, workers)
                else:
                    spans = 0
                g = procstat.tree_cpu_seconds(pids) - g0
                a = (procstat.cpu_seconds(handle.pid) - a0) if handle else 0.0
                a_net = max(0.0, a - base.baseline_cores * (time.monotonic() - t0)) if base else 0.0
                n = max(res.completed, 1)
                v = {
                    "cpu_us_per_req": 1e6 * (g + a) / n, "app_cpu_us_per_req": 1e6 * g / n,
                    "agent_cpu_us_per_req": 1e6 * a / n,
                    "net_cpu_us_per_req": 1e6 * (g + a_net) / n,
                    "agent_baseline_cores": base.baseline_cores if base else None,
                    "p50_us": res.latency_us["p50"], "p99_us": res.latency_us["p99"],
                    "completed": res.completed, "generator_kept_up": res.generator_kept_up,
                    "spans_pct": 100 * spans / n if mode != "bare" else None,
                    "machine_busy_cores": cores, "loadavg": la,
                }
                ctx.sink.reset()
                w = wrk.run()
                v["rps"] = w.rps
                v["wrk_errors"] = w.non_2xx + w.socket_errors
                if handle is not None:
                    rss, hwm = procstat.memory(handle.pid)
                    v["agent_rss_mb"] = rss / 2**20
                    v["agent_hwm_mb"] = hwm / 2**20
            finally:
                if load:
                    load.kill()
                if wrk:
                    wrk.kill()
                _stop(handle)
                gun.stop()
            ctx.record(Run("flask", mode, rnd, {"rate": o.flask_rate, "seconds": o.flask_seconds,
                                                "workers": FLASK_WORKERS, "threads": FLASK_THREADS}, v))


def flask_instrumentation() -> str:
    try:
        import opentelemetry.instrumentation.flask  # noqa: F401
    except ImportError:
        return "opentelemetry-instrumentation-wsgi (OpenTelemetryMiddleware)"
    return "opentelemetry-instrumentation-flask"


# -- profiles of the agent under a given load ------------------------------------------------------


def profile_load(ctx: Context, load: tuple, seconds: float) -> str:
    """A py-spy profile of the agent under ``load`` (("fixed", rate) | ("saturated",) |
    ("flask",)), summarised."""
    from bench.profile import PySpy, summarise

    out = ctx.workdir.file(f"profile-{'-'.join(str(x) for x in load)}.txt")
    result: dict = {}

    def attach(agent):
        spy = PySpy(agent.pid, out, seconds)

        def done():
            err = spy.wait(seconds + 30)
            result["err"] = err
            result["memory"] = procstat.memory_breakdown(agent.pid)  # still under load
            return str(out)
        return done

    if load[0] in ("fixed", "fixed-close"):
        nginx = Nginx(ctx.workdir, workers=ctx.opts.nginx_workers, sendfile=ctx.opts.nginx_sendfile).start()
        try:
            # the load runs a little longer than the recording, so every sample is under load
            _fixed_run(ctx, nginx, load[1], "on", -1, seconds + 2, label="profile", profile=attach,
                       connection_close=load[0] == "fixed-close")
        finally:
            nginx.stop()
    elif load[0] == "saturated":
        nginx = Nginx(ctx.workdir, workers=ctx.opts.nginx_workers, sendfile=ctx.opts.nginx_sendfile).start()
        wrk = Wrk(f"http://{HOST}:{nginx.port}/", seconds + 2, connections=ctx.opts.wrk_connections)
        handle = None
        try:
            handle = ctx.agent([wrk.pid])
            done = attach(handle)
            wrk.run()
            done()
        finally:
            wrk.kill()
            _stop(handle)
            nginx.stop()
    elif load[0] == "flask":
        gun = Gunicorn(ctx.workdir, FLASK_WORKERS, FLASK_THREADS, otel=False, sink_port=ctx.sink.port).start()
        load_ = ConstantRateLoad(HOST, gun.port, FLASK_PATH, ctx.opts.flask_rate, seconds + 2, ctx.workdir.path)
        handle = None
        try:
            handle = ctx.agent(load_.pids)
            done = attach(handle)
            load_.run()
            done()
        finally:
            load_.kill()
            _stop(handle)
            gun.stop()
    if not out.exists():
        return f"(py-spy produced no profile: {result.get('err', '')[-500:]})"
    text = summarise(out.read_text()).render()
    if result.get("memory"):
        text += "\n\nmemory at the end of the recording:\n" + result["memory"]
    return text


def runs_as_dicts(ctx: Context) -> list[dict]:
    return [asdict(r) for r in ctx.runs]


# -- 4b. per-syscall cost of the hooks: off / floor / on ------------------------------------------


def syscall_overhead(ctx: Context, rounds: int) -> None:
    """getppid (no program attached) and read/write on character devices (programs attached, not
    sockets) in a child process the agent traces: what every process on the machine pays."""
    from bench.micro import syscall_cost

    for rnd in range(rounds):
        for mode in ("off", "floor", "on"):
            handle = ctx.start_mode(mode, [])
            try:
                v = syscall_cost()
                v["loadavg"] = procstat.load_average()[0]
            finally:
                _stop(handle)
            ctx.record(Run("syscalls", mode, rnd, {}, v))
