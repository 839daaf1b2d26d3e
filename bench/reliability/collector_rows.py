"""Rows about the collector's absence, the agent's own death and its resources: the collector
(rotel) down then up, SIGKILL with a persistent queue then restart, the queue's disk full, and
a minute of process and connection churn.  collector-down and disk-full carry the database
application's traffic too; sigkill-restart and churn are about nginx only."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.reliability.agent_run import AgentRun, AgentSettings
from bench.reliability.apps import APP_NAME
from bench.reliability.fault_sink import OK, Fault, FaultSink
from bench.reliability.row import NGINX_NAME, BackgroundLoad, Env, RowResult, wait_settled
from bench.reliability.sink_rows import received_by_service
from receiver.exporters.persistent_queue import SUFFIX, decode_batch, exporter_directory
from tests.support.rotel import RotelCollector


def collector_down(env: Env) -> RowResult:
    outage = env.scale.outage_seconds
    r = RowResult("collector-down", f"collector (rotel) down for the first {outage:g} s of the load, then up")
    t0 = time.monotonic()
    d = env.rowdir(r.name)
    rotel = RotelCollector(d, signals=("traces",))
    cache: dict = {"size": -1, "counts": Counter(), "services": {}, "foreign": 0}

    def received() -> Counter:
        size = rotel.log_path.stat().st_size if rotel.log_path.exists() else 0
        if size != cache["size"]:  # parsing the debug log is not free: only when it grew
            cache["size"] = size
            spans = rotel.spans()
            counts: Counter = Counter()
            service: dict = {}
            for s in spans:
                pid = s.resource.get("process.pid")
                name = env.service_of(int(pid), str(s.attributes.get("db.system.name", ""))) if pid else None
                if name is not None:
                    counts[s.span_id] += 1
                    service[s.span_id] = name
            cache["counts"], cache["services"] = counts, Counter(service.values())
            cache["foreign"] = len(spans) - sum(counts.values())
        return cache["counts"]

    agent = AgentRun(d, "agent", AgentSettings("otlp"), rotel.grpc_endpoint, env.nginx.proc.pid,
                     [rotel.grpc_port, rotel.http_port], env.also_pids())
    try:
        agent.start()
        time.sleep(2.0)
        before = agent.sample()
        load = BackgroundLoad(env, outage + env.scale.load_seconds).start()
        app_load = env.app_load(outage + env.scale.load_seconds)
        time.sleep(max(0.0, outage - load.elapsed()))
        m = agent.metrics()
        r.notes.append(f"at the end of the outage: {m.sum('ebpf_receiver_exporter_retries_total', signal='traces'):.0f} "
                       f"retries, {m.sum('ebpf_receiver_exporter_signal_queue_size', signal='traces') / 2**20:.1f} "
                       "MiB queued")
        rotel.start()
        nginx_sent = load.join().completed
        app_result = app_load.join() if app_load is not None else None
        sent = nginx_sent + (app_result.total() if app_result is not None else 0)
        m = wait_settled(agent, lambda: len(received()), sent, env.scale.drain_timeout)
        after = agent.sample()
        counts = received()
        r.account(nginx_sent, app_result, dict(cache["services"]), m)
        r.duplicated = sum(counts.values()) - len(counts)
        r.dropped = m.span_drops()
        r.samples(before, after)
        r.foreign(cache["foreign"], m.red_other_count(NGINX_NAME, APP_NAME))
        r.exit_code = agent.stop()
    finally:
        agent.stop()
        rotel.stop()
    r.seconds = time.monotonic() - t0
    r.invariant()
    return r


def queued_span_paths(directory: str) -> dict[bytes, str]:
    """span id -> url.path of every span in the persistent queue's batch files."""
    out: dict[bytes, str] = {}
    names = sorted(n for n in os.listdir(directory) if n.endswith(SUFFIX)) if os.path.isdir(directory) else []
    for name in names:
        try:
            with open(os.path.join(directory, name), "rb") as f:
                _, _, payload = decode_batch(f.read())
        except FileNotFoundError:  # sent and removed meanwhile
            continue
        request = ExportTraceServiceRequest.FromString(payload)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    out[sp.span_id] = next((kv.value.string_value for kv in sp.attributes if kv.key == "url.path"), "")
    return out


def ring_backlog(m) -> float:
    """Records the kernel produced that the agent had neither read nor counted lost at the scrape:
    what sat in the ring buffer (a SIGKILL then loses them uncounted)."""
    produced, delivered, lost = m.kernel()
    return max(0.0, produced - delivered - lost)


def sigkill_restart(env: Env) -> RowResult:
    batch_timeout = 60.0
    r = RowResult("sigkill-restart", "agent SIGKILLed with spans in memory (persistent queue, collector answering "
                                     f"50 % UNAVAILABLE, batch timeout {batch_timeout:g} s), restarted on the same queue")
    t0 = time.monotonic()
    d = env.rowdir(r.name)
    storage = d / "queue"
    sink = FaultSink(pids=frozenset(env.nginx.pids)).start()
    sink.record_paths()
    # A batch timeout longer than the row: what is below send_batch_size (512) when the load
    # stops stays in the batch processor until the kill.
    agent = AgentRun(d, "agent", AgentSettings("otlp", queue={"storage": str(storage)},
                                               batch={"timeout": f"{batch_timeout:g}s"}),
                     f"127.0.0.1:{sink.grpc_port}", env.nginx.proc.pid, [sink.grpc_port, sink.http_port])
    try:
        agent.start()
        time.sleep(2.0)
        before = agent.sample()
        sink.set_fault(Fault(fail_ratio=0.5))
        seconds, half = env.scale.load_seconds, env.scale.rate / 2
        first = BackgroundLoad(env, seconds, rate=half).start()
        backlog = []  # records in the ring buffer at instants of the load
        while first.elapsed() < seconds - 1.0:
            time.sleep(1.0)
            backlog.append(ring_backlog(agent.metrics()))
        sent_first = first.join().completed
        # The kill comes once the agent has read every request of the load and made its span
        # (the RED metrics count it): the spans then in memory are the pipeline's, which the
        # crash ledger covers; what sits in the ring buffer at a kill is not (measured above).
        deadline = time.monotonic() + env.scale.drain_timeout
        while (m_kill := agent.metrics()).red_server_count(NGINX_NAME) < sent_first and time.monotonic() < deadline:
            time.sleep(0.2)
        red_first = m_kill.red_server_count(NGINX_NAME)
        agent.kill()
        killed_after = first.elapsed() - seconds
        # What the agent had made durable: delivered (the sink has it) or in its queue files.
        queued = queued_span_paths(exporter_directory(str(storage), "otlp"))
        delivered = sink.span_ids()
        durable = {sid for sid in delivered if sink.path_of(sid) == env.path}
        durable |= {sid for sid, path in queued.items() if path == env.path}
        expected = delivered | set(queued)
        agent.start()
        sink.set_fault(OK)
        second = BackgroundLoad(env, seconds / 2, rate=half, path=env.other_path).start()
        sent_second = second.join().completed
        deadline = time.monotonic() + env.scale.drain_timeout
        while not expected <= sink.span_ids() and time.monotonic() < deadline:
            time.sleep(0.5)
        ours = {env.path, env.other_path}
        m = wait_settled(agent, lambda: sum(1 for sid in sink.span_ids() if sink.path_of(sid) in ours),
                         sent_first + sent_second, env.scale.drain_timeout)
        after = agent.sample()
        # The restarted agent holds up to a batch of the second load for the batch timeout: its
        # clean shutdown sends it (or would leave it in the queue files, then missing here).
        r.exit_code = agent.stop()
        got = sink.span_ids()
        counts = sink.counts()
        r.sent = sent_first + sent_second
        r.received = sum(1 for sid in got if sink.path_of(sid) in ours)
        r.duplicated = counts.duplicated
        r.dropped = m.span_drops()  # the restarted agent's: agent_killed, and its own traffic's
        killed = r.dropped.get("exporter_dropped/agent_killed", 0)
        r.samples(before, after)
        r.red = red_first + m.red_server_count(NGINX_NAME)
        r.foreign(sum(counts.foreign.values()), m_kill.red_other_count(NGINX_NAME) + m.red_other_count(NGINX_NAME))
        lost_first = sent_first - len(durable & got)
        r.notes.append(
            f"first load {sent_first} requests, the agent killed {killed_after:.1f} s after its end, once its RED "
            f"metrics counted them ({red_first:.0f}); {len(durable)} of their spans were durable at the kill (delivered "
            f"or in the queue files), {lost_first} were in memory (batch processor): the restarted agent counted "
            f"{killed:.0f} agent_killed; all {len(expected)} durable spans arrived after the restart: "
            f"{expected <= got}; second load (after the restart) {sent_second} requests; ring buffer during the load "
            f"(records produced, neither read nor counted lost, at {len(backlog)} scrapes): max "
            f"{max(backlog, default=0):.0f}, mean {sum(backlog) / max(1, len(backlog)):.1f} — a kill then loses "
            "those uncounted")
        r.check("at-least-once: every span durable at the kill received after the restart", expected <= got)
        r.check(f"the agent read every request of the first load before the kill ({red_first:.0f} == {sent_first})",
                red_first == sent_first)
        r.check(f"spans were in memory at the kill and counted: agent_killed {killed:.0f} > 0", killed > 0)
        r.check(f"agent_killed counts the first load's spans that never arrived ({lost_first}), plus at most "
                f"the other processes' spans (tolerance {r.tolerance})", lost_first <= killed <= lost_first + r.tolerance)
        r.check("the restarted agent dropped nothing else", set(r.dropped) <= {"exporter_dropped/agent_killed"})
    finally:
        agent.stop()
        sink.stop()
    r.seconds = time.monotonic() - t0
    r.invariant()
    return r


def _mount_tmpfs(path: Path, size: str, remount: bool = False) -> None:
    opts = f"remount,size={size}" if remount else f"size={size},mode=0700"
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "erx-reliability", str(path)], check=True, timeout=10)


def disk_full(env: Env) -> RowResult:
    small = "256k"
    r = RowResult("disk-full", f"persistent queue on a {small} tmpfs, collector down for half the load "
                               "(the disk fills), then the tmpfs grown to 64 MiB and the collector back")
    t0 = time.monotonic()
    d = env.rowdir(r.name)
    storage = d / "queue"
    storage.mkdir(exist_ok=True)
    _mount_tmpfs(storage, small)
    sink = FaultSink(pids=env.traced_pids()).start()
    agent = AgentRun(d, "agent", AgentSettings("otlp", queue={"storage": str(storage)}),
                     f"127.0.0.1:{sink.grpc_port}", env.nginx.proc.pid, [sink.grpc_port, sink.http_port],
                     env.also_pids())
    try:
        agent.start()
        time.sleep(2.0)
        before = agent.sample()
        sink.set_fault(Fault(fail_ratio=1.0))
        half = env.scale.load_seconds
        load = BackgroundLoad(env, 2 * half).start()
        app_load = env.app_load(2 * half)
        time.sleep(max(0.0, half - load.elapsed()))
        full = agent.metrics().span_drops().get("exporter_dropped/storage_error", 0)
        _mount_tmpfs(storage, "64m", remount=True)
        sink.set_fault(OK)
        received_at_remount = sink.counts().received_unique
        time.sleep(3.0)
        settled_errors = agent.metrics().span_drops().get("exporter_dropped/storage_error", 0)
        nginx_sent = load.join().completed
        app_result = app_load.join() if app_load is not None else None
        sent = nginx_sent + (app_result.total() if app_result is not None else 0)
        m = wait_settled(agent, lambda: sink.counts().received_unique, sent, env.scale.drain_timeout)
        after = agent.sample()
        counts = sink.counts()
        r.account(nginx_sent, app_result, received_by_service(env, counts), m)
        r.duplicated = counts.duplicated
        r.dropped = m.span_drops()
        r.samples(before, after)
        r.foreign(sum(counts.foreign.values()), m.red_other_count(NGINX_NAME, APP_NAME))
        r.exit_code = agent.stop()
        end_errors = r.dropped.get("exporter_dropped/storage_error", 0)
        r.notes.append(f"storage_error drops: {full:.0f} while full, {end_errors - settled_errors:.0f} after space "
                       f"returned; {counts.received_unique - received_at_remount} spans received after the remount")
        r.check("drops counted while the disk was full", full > 0)
        r.check("recovers: no storage error once space returned", end_errors == settled_errors)
    finally:
        agent.stop()
        sink.stop()
        subprocess.run(["umount", str(storage)], timeout=10)
    r.seconds = time.monotonic() - t0
    r.invariant()
    return r


def _spawn_processes(count: int, seconds: float, stop: threading.Event, done: list) -> None:
    """``count`` short-lived processes (/bin/true), evenly spread over ``seconds``."""
    t0 = time.monotonic()
    for i in range(count):
        if stop.is_set():
            break
        delay = t0 + i * seconds / count - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        subprocess.run(["/bin/true"], check=False)
        done[0] += 1


def churn(env: Env) -> RowResult:
    s = env.scale
    r = RowResult("churn", f"{s.processes} short-lived processes and {s.connections} short connections "
                           f"(Connection: close) in {s.churn_seconds:g} s")
    t0 = time.monotonic()
    d = env.rowdir(r.name)
    sink = FaultSink(pids=frozenset(env.nginx.pids)).start()
    agent = AgentRun(d, "agent", AgentSettings("otlp", include=('{exe: "true"}',)),
                     f"127.0.0.1:{sink.grpc_port}", env.nginx.proc.pid, [sink.grpc_port, sink.http_port])
    stop = threading.Event()
    try:
        agent.start()
        time.sleep(2.0)
        before = agent.sample()
        m0 = agent.metrics()
        spawned = [0]
        spawner = threading.Thread(target=_spawn_processes, args=(s.processes, s.churn_seconds, stop, spawned),
                                   daemon=True)
        load = BackgroundLoad(env, s.churn_seconds, rate=s.connections / s.churn_seconds,
                              connection_close=True, connections=32, processes=2).start()
        spawner.start()
        loaded = load.join()
        spawner.join(s.churn_seconds + 60)
        r.sent = loaded.completed
        m = wait_settled(agent, lambda: sink.counts().received_unique, r.sent, s.drain_timeout)
        time.sleep(3.0)  # a discovery rescan (2 s) past the last exit
        m = agent.metrics()
        after = agent.sample()
        counts = sink.counts()
        r.received, r.duplicated = counts.received_unique, counts.duplicated
        r.dropped = m.span_drops()
        r.samples(before, after)
        r.red = m.red_server_count(NGINX_NAME)
        r.foreign(sum(counts.foreign.values()), m.red_other_count(NGINX_NAME))
        conns = (m0.sum("ebpf_receiver_connections_tracked"), m.sum("ebpf_receiver_connections_tracked"))
        procs = (m0.sum("ebpf_receiver_discovery_processes"), m.sum("ebpf_receiver_discovery_processes"))
        r.notes.append(f"{spawned[0]} processes run, {loaded.completed} connections ({loaded.achieved_rate:.0f}/s, "
                       f"{loaded.errors} errors); connections tracked {conns[0]:.0f} -> {conns[1]:.0f}; "
                       f"processes known to discovery {procs[0]:.0f} -> {procs[1]:.0f}")
        r.exit_code = agent.stop()
        r.check("connection table back to its size before (closed connections forgotten)",
                conns[1] <= conns[0] + 64)
        r.check("discovery's process table back to its size before (+/- 64)", abs(procs[1] - procs[0]) <= 64)
        r.check("fds before == after (+/- 4)", abs(r.fds_after - r.fds_before) <= 4)
        r.check("RSS grew by less than 64 MiB", r.rss_after - r.rss_before < 64 * 2**20)
    finally:
        stop.set()
        agent.stop()
        sink.stop()
    r.seconds = time.monotonic() - t0
    r.invariant()
    return r
