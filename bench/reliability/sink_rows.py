"""Rows whose collector is the fault sink (bench/reliability/fault_sink.py): a fault for the whole
load, then a healthy sink while the agent drains, then a clean shutdown.

    UNAVAILABLE on 70 % of exports, HTTP 429/503 with Retry-After, partial success, a collector
    that answers after 20 s, a ring buffer too small for the load.
"""

from __future__ import annotations

import time

import grpc

from bench.reliability.agent_run import AgentRun, AgentSettings
from bench.reliability.apps import APP_NAME
from bench.reliability.fault_sink import OK, Fault, FaultSink, SinkCounts
from bench.reliability.row import NGINX_NAME, BackgroundLoad, Env, RowResult, wait_settled


def received_by_service(env: Env, counts: SinkCounts) -> dict[str, int]:
    """Distinct span ids the sink accepted, per service of the row's traffic."""
    out: dict[str, int] = {}
    for (pid, system), n in counts.by_source.items():
        name = env.service_of(pid, system)
        if name is not None:
            out[name] = out.get(name, 0) + n
    return out


def run_with_sink(env: Env, result: RowResult, settings: AgentSettings,
                  phases: list[tuple[float, Fault]], load_seconds: float, rate: float | None = None,
                  before_stop=None, apps: bool = True) -> tuple:
    """Nginx traffic (and the database application's, with ``apps``) for ``load_seconds`` while
    the sink goes through ``phases`` ((start second, fault)); then the sink is healthy and the
    agent drains.  Fills ``result``; returns (sink counts, last scrape)."""
    t0 = time.monotonic()
    d = env.rowdir(result.name)
    sink = FaultSink(pids=env.traced_pids(apps)).start()
    endpoint = (f"127.0.0.1:{sink.grpc_port}" if settings.exporter == "otlp"
                else f"http://127.0.0.1:{sink.http_port}")
    agent = AgentRun(d, "agent", settings, endpoint, env.nginx.proc.pid, [sink.grpc_port, sink.http_port],
                     env.also_pids(apps))
    try:
        agent.start()
        time.sleep(2.0)  # past start-up allocations
        before = agent.sample()
        load = BackgroundLoad(env, load_seconds, rate=rate).start()
        app_load = env.app_load(load_seconds, apps)
        for at, fault in phases:
            time.sleep(max(0.0, at - load.elapsed()))
            sink.set_fault(fault)
        loaded = load.join()
        app_result = app_load.join() if app_load is not None else None
        sink.set_fault(OK)
        sent = loaded.completed + (app_result.total() if app_result is not None else 0)
        if loaded.errors or loaded.unfinished:
            result.notes.append(f"load generator: {loaded.errors} errors, {loaded.unfinished} unfinished")
        m = wait_settled(agent, lambda: sink.counts().received_unique, sent, env.scale.drain_timeout,
                         busy=lambda: sink.in_flight() > 0)
        after = agent.sample()
        counts = sink.counts()
        result.account(loaded.completed, app_result, received_by_service(env, counts), m)
        result.duplicated = counts.duplicated
        result.dropped = m.span_drops()
        result.samples(before, after)
        result.foreign(sum(counts.foreign.values()), m.red_other_count(NGINX_NAME, APP_NAME))
        if counts.foreign:
            result.notes.append(f"{sum(counts.foreign.values())} spans of {len(counts.foreign)} processes other than "
                                f"nginx and the application ignored (e.g. {'; '.join(counts.foreign_examples)})")
        if before_stop is not None:
            before_stop(agent, m)
        result.exit_code = agent.stop()
        result.seconds = time.monotonic() - t0
        return counts, m, agent
    finally:
        agent.stop()
        sink.stop()


def unavailable_70(env: Env) -> RowResult:
    r = RowResult("unavailable-70", "70 % of gRPC exports answered UNAVAILABLE, for the whole load")
    counts, m, _ = run_with_sink(env, r, AgentSettings("otlp"), [(0, Fault(fail_ratio=0.7))],
                                 env.scale.load_seconds)
    r.notes.append(f"{counts.exports} exports, {counts.failed_exports} answered UNAVAILABLE (during the load), "
                   f"{m.sum('ebpf_receiver_exporter_retries_total', signal='traces'):.0f} retries")
    r.invariant()
    r.check("no span dropped (every UNAVAILABLE retried)", r.dropped_counted == 0)
    return r


def http_throttled(env: Env) -> RowResult:
    half = env.scale.load_seconds / 2
    r = RowResult("http-429-503", "OTLP/HTTP: half the load 50 % 429 Retry-After: 1, "
                                  "then 50 % 503 Retry-After: 2")
    phases = [(0, Fault(fail_ratio=0.5, http_status=429, retry_after=1)),
              (half, Fault(fail_ratio=0.5, http_status=503, retry_after=2))]
    counts, m, _ = run_with_sink(env, r, AgentSettings("otlphttp"), phases, env.scale.load_seconds)
    r.notes.append(f"{counts.exports} exports, {counts.failed_exports} throttled, "
                   f"{m.sum('ebpf_receiver_exporter_retries_total', signal='traces'):.0f} retries")
    r.invariant()
    r.check("no span dropped (every 429/503 retried after Retry-After)", r.dropped_counted == 0)
    return r


def partial_success(env: Env) -> RowResult:
    r = RowResult("partial-success", "every gRPC export answered with partial success: its last 2 spans rejected")
    counts, m, _ = run_with_sink(env, r, AgentSettings("otlp"), [(0, Fault(reject_per_request=2))],
                                 env.scale.load_seconds)
    agent_rejected = m.sum("ebpf_receiver_exporter_failed_items_total", signal="traces", reason="rejected")
    r.notes.append(f"{counts.exports} exports, sink rejected {counts.rejected}, agent counted {agent_rejected:.0f}")
    r.invariant()
    r.check("agent's rejected count == sink's", agent_rejected == counts.rejected)
    r.check("rejected spans never resent (no duplicate, no retry)",
            r.duplicated == 0 and m.sum("ebpf_receiver_exporter_retries_total", signal="traces") == 0)
    return r


def slow_collector(env: Env) -> RowResult:
    delay = env.scale.slow_answer_seconds
    r = RowResult("slow-collector", f"every gRPC export answered after {delay:g} s "
                                    "(exporter timeout 30 s, queue 1 MiB, requests of at most 256 KiB)")
    settings = AgentSettings("otlp", timeout="30s",
                             queue={"queue_size": 1024 * 1024, "batch": "{max_size: 262144}"})
    seconds = max(env.scale.load_seconds, 2 * delay)
    counts, m, _ = run_with_sink(env, r, settings, [(0, Fault(delay=delay))], seconds)
    capacity = m.sum("ebpf_receiver_exporter_signal_queue_capacity", signal="traces")
    r.notes.append(f"{counts.exports} exports; queue capacity {capacity / 2**20:.0f} MiB; "
                   f"{counts.abandoned} spans of abandoned exports")
    r.invariant()
    r.check("peak RSS below 250 MiB", r.rss_peak < 250 * 2**20)
    return r


def _kernel_settled(agent: AgentRun, m, timeout: float = 10.0):
    """A scrape where produced == delivered + lost, if one comes within ``timeout``: records still
    in the ring are produced but not yet delivered (other processes' traffic may keep some there)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        produced, delivered, lost = m.kernel()
        if produced == delivered + lost:
            break
        time.sleep(0.2)
        m = agent.metrics()
    return m


def ring_overflow(env: Env) -> RowResult:
    ring = 4096
    r = RowResult("ring-overflow", f"ring buffer of {ring // 1024} KiB, reader woken only when full or every "
                                   "500 ms, kernel shedding off, 4x the load rate")
    settings = AgentSettings("otlp", ebpf={"ring_buffer_size": ring, "wakeup_bytes": ring, "poll_interval": "500ms",
                                           "http_pairing": "{shed_ring_fraction: 0, shed_error_ring_fraction: 0}"})
    kernel = {}

    def before_stop(agent: AgentRun, m):
        kernel["m"] = _kernel_settled(agent, m)

    # nginx only: the database transactions are not aggregated in the kernel, so a lost record of
    # theirs would be missing from the RED metrics too (its count is of records, not spans)
    counts, m, _ = run_with_sink(env, r, settings, [(0, OK)], env.scale.load_seconds, rate=4 * env.scale.rate,
                                 before_stop=before_stop, apps=False)
    produced, delivered, lost = kernel["m"].kernel()
    r.notes.append(f"kernel records: produced {produced:.0f}, delivered {delivered:.0f}, lost {lost:.0f}")
    r.check("kernel: produced == delivered + lost, exactly", produced == delivered + lost)
    r.check("the ring overflowed (lost > 0)", lost > 0)
    red = kernel["m"].red_server_count(NGINX_NAME)
    r.check(f"every request in the RED metrics (span or kernel aggregate: {red:.0f})", red == r.sent)
    # A lost record is not always a span's (connection events, serving markers share the ring):
    # the counted side is an upper bound, the span gap must not be positive.
    r.check(f"every missing span counted (gap {r.gap} <= 0)", r.gap <= 0)
    r.check("no crash (clean exit 0)", r.exit_code == 0)
    return r
