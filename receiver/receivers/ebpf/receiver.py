"""The ``ebpf`` receiver: the composition root of the eBPF event path.

It builds the stages and wires each to the next; a record flows one way and never comes back::

    ring buffer → capture (RecordRouter: decode, route by kind)
                → connections (ConnectionTracker: endpoints, TLS, namespaces/NAT)
                → protocols (ProtocolStage: detect, parse, stitch → TrackedTransaction)
                → telemetry (TelemetryAssembler: spans, RED metrics, links, logs)
                → consumers (the pipelines: processors, exporters)

Side outputs: writes to stdout/stderr go from capture to log capture (then to the assembler,
which stamps them with the serving span); process exec/exit go to resources, discovery and the
tracker.  Control goes the other way only as callbacks into the kernel loader (switch a
connection off) — never as data.

One capture thread polls the ring buffer every ``poll_interval``; after each batch it ends the
batch at the protocol stage (transactions of the batch are linked and released together), and
once a second it expires idle connections and refreshes the clock conversion.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Callable, Sequence

from receiver.component.threads import AgentThread
from receiver.bpf.abi import Abi, load_abi
from receiver.bpf.loader import BpfLoader, LoaderKnobs, agent_pid_namespace, default_object_path
from receiver.bpf.self_observation import seed_agent_endpoints
from receiver.component.backpressure import Backpressure
from receiver.component.cpu_yield import CpuYield
from receiver.component.status import (
    TLS_COVERED,
    TLS_NONE,
    TLS_NOT_COVERED,
    TLS_PARTIAL,
    ProcessStatus,
)
from receiver.capture.events import EventDecoder, HttpTxEvent, ProcEvent
from receiver.capture.ringbuf import RingBufferReader
from receiver.capture.router import RecordRouter
from receiver.connections.netns import NetnsResolver
from receiver.connections.peers import LocalPeers
from receiver.connections.tracker import ConnectionTracker, TrackerLimits
from receiver.discovery import ProcessDiscovery
from receiver.model.serving_spans import ServingSpans
from receiver.discovery.log_pipes import LogPipeClassifier
from receiver.discovery.resources import ProcessResources
from receiver.protocols.http1.paired import PairedHttp1
from receiver.protocols.registry import ProtocolRegistry, builtin_protocols, installed_plugins
from receiver.protocols.stage import ProtocolStage
from receiver.capture.overload import OverloadAggregates
from receiver.receivers.ebpf.config import EbpfReceiverConfig
from receiver.receivers.ebpf.overload import OverloadControl
from receiver.receivers.ebpf.self_metrics import KernelCounters, MergedCollector
from receiver.telemetry.assemble import LogsConsumer, TelemetryAssembler, TracesConsumer
from receiver.telemetry.clock import MonotonicToWall
from receiver.telemetry.logs import LogCapture
from receiver.telemetry.network_metrics import NetworkMetrics, network_knobs
from receiver.telemetry.red_metrics import RedMetrics
from receiver.telemetry.sampling import ALWAYS_ON, Sampler

log = logging.getLogger(__name__)


class _TransactionTap:
    """Hands each batch of transactions to an observer (tests, benches), then to the next stage."""

    def __init__(self, observer: Callable[[list], None], next_stage) -> None:
        self._observer = observer
        self._next = next_stage

    def on_transactions(self, txs: list, now_ns: int) -> None:
        self._observer(txs)
        self._next.on_transactions(txs, now_ns)

    def end_batch(self, now_ns: int, flush: bool = False) -> None:
        self._next.end_batch(now_ns, flush)


class _ProcessEvents:
    """exec/exit → process resources, discovery, and the tracker's per-process state."""

    def __init__(self, resources: ProcessResources, discovery: ProcessDiscovery, tracker: ConnectionTracker) -> None:
        self._resources = resources
        self._discovery = discovery
        self._tracker = tracker

    def on_process(self, ev: ProcEvent, is_exec: bool) -> None:
        if is_exec:  # a new program: its resource is read again
            self._resources.forget(ev.pid)
            self._resources.remember(ev.pid, ev.comm, ev.ppid)
        else:  # spans of this batch still to be assembled keep the resource for a while
            self._resources.exited(ev.pid)
            self._resources.remember(ev.pid, ev.comm)
        self._discovery.on_proc_event(ev.pid, is_exec)
        if not is_exec:
            self._tracker.drop_pid(ev.pid)


class _ConnectFailures:
    """Failed connects (in order with the traffic) → error client spans under their request."""

    def __init__(self, assembler: TelemetryAssembler) -> None:
        self._add = assembler.add_connect_failure

    def on_connect_failure(self, ev) -> None:
        self._add(ev, time.monotonic_ns())


class _LogPipes:
    """First writes to a stdout/stderr pipe: is it a log destination?  The verdict goes to the kernel."""

    def __init__(self, classifier: LogPipeClassifier, receiver: EbpfReceiver) -> None:
        self._classifier = classifier
        self._receiver = receiver

    def on_log_pipe(self, ev) -> None:
        loader = self._receiver.loader
        if loader is None:
            return
        verdict = self._classifier.classify(ev.pipe_ino, ev.pid)
        value = loader.abi.const("ERX_PIPE_LOG" if verdict.is_log else "ERX_PIPE_NOT_LOG")
        loader.map_update("erx_log_pipes", ev.pipe_ino.to_bytes(8, "little"), bytes([value]))


class _Optional:
    """Self-metrics of the parts that exist only once started (overload control)."""

    def __init__(self, receiver: EbpfReceiver) -> None:
        self._receiver = receiver

    def collect(self):
        if self._receiver.overload is not None:
            yield from self._receiver.overload.collect()


class EbpfReceiver:
    def __init__(
        self,
        config: EbpfReceiverConfig,
        traces: Sequence[TracesConsumer] = (),
        logs: Sequence[LogsConsumer] = (),
        red_metrics: RedMetrics | None = None,
        service_graph=None,
        resources: ProcessResources | None = None,
        object_path: str | None = None,
        agent_pid: int | None = None,
        on_event: Callable[[object], None] | None = None,
        on_transactions: Callable[[list], None] | None = None,
        abi: Abi | None = None,
        backpressure: Backpressure | None = None,
        exemplars=None,  # receiver.telemetry.exemplars.DeferredExemplars: a tail sampler decides later
        slow_threshold_s: float | None = None,  # a tail sampler keeps slower traces: shed them last
        serving_spans: ServingSpans | None = None,
    ) -> None:
        self._cfg = config
        self._slow_threshold_s = slow_threshold_s
        self._backpressure = backpressure
        self._resources = resources or ProcessResources()
        self._object_path = object_path or str(default_object_path())
        self._agent_pid = agent_pid if agent_pid is not None else os.getpid()
        self._loader: BpfLoader | None = None
        self._reader: RingBufferReader | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._started = False
        self._red = red_metrics
        self.overload: OverloadControl | None = None  # with http_pairing: aggregates, CPU budget
        self.network_metrics: NetworkMetrics | None = None  # when network_metrics turns any on
        self.internal_errors = 0  # batches a bug in a stage cut short (never wire data: parsers don't raise)
        self.records_lost_to_errors = 0
        self._tc = None  # tc flow classifiers, when attached
        # The ABI is parsed once (by the loader's module) and handed to every stage that needs it.
        self.abi = abi or load_abi()

        # telemetry ← protocols ← connections ← capture, built from the end of the chain.
        self.clock = MonotonicToWall()
        capture_yield = CpuYield()  # the capture thread's stretches give the CPU back (router, assembler)
        sampler = Sampler(config.sampler.name, config.sampler.ratio) if config.sampler is not None else ALWAYS_ON
        self.assembler = TelemetryAssembler(
            self._resources, self.clock, red_metrics, service_graph=service_graph, sampler=sampler,
            traces=traces, logs=logs, exemplars=exemplars, serving_spans=serving_spans, cpu_yield=capture_yield,
        )
        to_telemetry = self.assembler if on_transactions is None else _TransactionTap(on_transactions, self.assembler)
        protocols = config.protocols or {}
        builtins = builtin_protocols()
        plugins, self.plugin_errors = installed_plugins([s.name for s in builtins])
        for problem in self.plugin_errors:
            log.warning("protocol plug-in %s not loaded: %s", problem.entry_point, problem.reason)
        self.registry = ProtocolRegistry(
            builtins + plugins,
            port_overrides={n: p.ports for n, p in protocols.items() if p.ports},
            disabled=[n for n, p in protocols.items() if not p.enabled],
            max_buffer=config.max_buffer_per_connection,
        )
        c = self.abi.const
        transports = {c("ERX_TRANSPORT_TCP"): "tcp", c("ERX_TRANSPORT_UDP"): "udp",
                      c("ERX_TRANSPORT_UNIX_STREAM"): "unix", c("ERX_TRANSPORT_UNIX_DGRAM"): "unix"}
        self.assembler.use_protocols(self.registry, transports)
        # Namespaces, their addresses, NAT'd destinations of TCP and UDP clients (capture thread).
        self.netns = NetnsResolver(transports={self.abi.const("ERX_TRANSPORT_TCP"): socket.IPPROTO_TCP,
                                               self.abi.const("ERX_TRANSPORT_UDP"): socket.IPPROTO_UDP})
        peers = LocalPeers(config.max_connections)
        http_flags = {name: value for name, value in self.abi.constants.items() if name.startswith("ERX_HTTP_F_")}
        self.protocols = ProtocolStage(self.registry, to_telemetry, peers.scope_of,
                                       on_uninteresting=self._ignore_in_kernel, transports=transports,
                                       paired_http=PairedHttp1(http_flags, HttpTxEvent._fields))
        self.tracker = ConnectionTracker(
            self.protocols,
            self.abi.const("ERX_FLAG_TLS"),
            TrackerLimits(
                max_connections=config.max_connections,
                idle_timeout_ns=int(config.connection_idle_timeout * 1e9),
            ),
            on_tls_ciphertext=self._ignore_ciphertext_in_kernel,
            on_server_ingress=self.assembler.on_server_ingress,
            netns=self.netns,
            peers=peers,
            http_last_flags=c("ERX_HTTP_F_LAST"),
            sys_close=c("ERX_SYS_CLOSE"),
        )
        self.logs = LogCapture(self.assembler.add_log, self._resources.get, self.clock.to_unix_ns, time.monotonic_ns)
        # Which processes are traced (rules, in the kernel) and their TLS libraries.
        self._pidns = agent_pid_namespace()
        self.discovery = ProcessDiscovery(
            config.discovery,
            exclude_pids=config.exclude_pids,
            agent_pid=self._agent_pid,
            events_in_our_pid_namespace=self._pidns == (0, 0),
            resources=self._resources,
        )
        self.router = RecordRouter(
            EventDecoder(self.abi), self.tracker, self.logs, _ProcessEvents(self._resources, self.discovery, self.tracker),
            failures=_ConnectFailures(self.assembler),
            log_pipes=_LogPipes(LogPipeClassifier(config.log_pipe_readers, agent_pid=self._agent_pid), self),
            on_event=on_event,
            cpu_yield=capture_yield,
        )

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def loader(self) -> BpfLoader | None:
        return self._loader

    def serving_state_fd(self) -> int | None:
        """The fd of the kernel's per-thread record of the request each thread serves
        (``erx_serving_state``, kept with http_pairing), for the profiler to reuse; None when
        not started or without pairing."""
        if self._loader is None or self._loader.state != "attached" or not self._cfg.http_pairing.enabled:
            return None
        return self._loader.map_fd("erx_serving_state")

    @property
    def decoder(self) -> EventDecoder:
        return self.router.decoder

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        cfg = self._cfg
        knobs = LoaderKnobs(
            agent_tgid=self._agent_pid,
            capture_size=cfg.capture_size,
            wakeup_bytes=cfg.wakeup_bytes,
            capture_logs=cfg.capture_logs,
            ring_buffer_size=cfg.ring_buffer_size,
            max_connections=cfg.max_connections,
            excluded_pids=tuple(cfg.exclude_pids),
            excluded_ports=tuple(cfg.exclude_ports),
            filter_pids=self.discovery.filters_pids,
            agent_pidns=self._pidns,
            # In a pod, include rules also leave out what this /proc cannot show: the node.
            pidns_only=bool(cfg.discovery.include),
            network=network_knobs(cfg.network_metrics),
            observe_self=cfg.observe_self,
            log_pipes=cfg.log_pipes,
            http_pairing=cfg.http_pairing.enabled,
            http_pairing_connections=cfg.http_pairing.connections,
            http_aggregate_keys=cfg.http_pairing.aggregate_keys,
            shed_ring_fraction=cfg.http_pairing.shed_ring_fraction,
            shed_error_ring_fraction=cfg.http_pairing.shed_error_ring_fraction,
            shed_keep_slower_than_ns=int(1e9 * (cfg.http_pairing.shed_keep_slower_than
                                                if cfg.http_pairing.shed_keep_slower_than is not None
                                                else self._slow_threshold_s or 0)),
        )
        self._loader = BpfLoader(object_path=self._object_path, knobs=knobs, abi=self.abi)
        self._loader.start(before_attach=self._before_attach)
        try:
            self._reader = RingBufferReader(self._loader)
            if cfg.http_pairing.enabled:
                c = self.abi.const
                self.overload = OverloadControl(
                    OverloadAggregates(self._loader), self._red, self._resources.for_metrics, cfg.cpu_budget,
                    self.clock.to_unix_ns, (c("ERX_SHED_NONE"), c("ERX_SHED_SUCCESSES"), c("ERX_SHED_ALL")),
                    backpressure=self._backpressure, node_busy_threshold=cfg.node_busy_threshold,
                    transactions=lambda: self.protocols.transactions,
                )
            self._start_network_metrics()
            self.discovery.start(self._loader)
        except BaseException:
            self.discovery.shutdown()
            if self._tc is not None:
                self._tc.close()
            self._loader.close()
            raise
        self._thread = AgentThread(self._run, "ebpf-capture")
        self._thread.start()
        log.info("ebpf receiver attached %d programs", self._loader.link_count)

    def _before_attach(self, loader: BpfLoader) -> None:
        """Maps that must hold from the first event: discovery's verdicts, the agent's sockets."""
        self.discovery.prepare(loader)
        if not self._cfg.observe_self:
            n = seed_agent_endpoints(loader)
            log.debug("agent sockets registered as not traced: %d", n)

    def _start_network_metrics(self) -> None:
        nm = self._cfg.network_metrics
        if not nm.enabled_metrics:
            return
        self.network_metrics = NetworkMetrics(self._loader, nm, resource_for_pid=self._resources.for_metrics,
                                              host_resource=self._resources.host())
        if nm.tc_flow:
            self._tc = self._loader.tc_flow_attacher()
            for name in nm.tc_interfaces:
                self._tc.attach(name)

    def collect_metrics(self) -> list:
        """Metrics this receiver keeps itself (network health), read on scrape or push."""
        return self.network_metrics.collect() if self.network_metrics is not None else []

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop capturing, drain what the ring buffer still holds, release the kernel objects."""
        self._stop.set()
        self.discovery.shutdown(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.netns.close()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._tc is not None:
            self._tc.close()
            self._tc = None
        if self._loader is not None:
            self._loader.close()

    def register_self_metrics(self, self_metrics) -> None:
        """Serve every stage's counters (and the kernel's) with the agent's own metrics."""
        kernel = KernelCounters(self.kernel_counters, self.abi.const, lambda: self.delivered,
                                lambda: (self.internal_errors, self.records_lost_to_errors))
        self_metrics.add_collector(MergedCollector(
            (kernel, self.router, self.tracker, self.protocols, self.assembler, self.discovery, _Optional(self))
        ))

    def processes(self, pids=(), all_traced: bool = False) -> list[ProcessStatus]:
        """What this receiver knows of each process with connections tracked now, of ``pids``
        (processes an observer saw spans of) and, with ``all_traced``, of every process the
        discovery rules trace: for status pages, from any thread."""
        conns = self.tracker.by_process()
        wanted = set(conns) | set(pids)
        if all_traced:
            wanted |= set(self.discovery.traced_pids())
        out = []
        for pid in sorted(wanted):
            if pid == self._agent_pid:
                continue
            c = conns.get(pid)
            libraries = self.discovery.tls_libraries_of(pid)
            ciphertext_only = c.tls_ciphertext_only if c else 0
            if libraries:
                tls = TLS_PARTIAL if ciphertext_only else TLS_COVERED
            else:
                tls = TLS_NOT_COVERED if ciphertext_only else TLS_NONE
            out.append(ProcessStatus(
                pid=pid, resource=self._resources.get(pid), metrics_resource=self._resources.for_metrics(pid),
                connections=c.connections if c else 0, protocols=tuple(sorted(c.protocols)) if c else (),
                tls_stack=libraries, tls_plaintext=tls, tls_ciphertext_connections=ciphertext_only,
            ))
        return out

    def kernel_counters(self) -> list[int]:
        if self._loader is None or self._loader.state != "attached":
            return []
        return self._loader.read_counters()

    @property
    def delivered(self) -> int:
        return self._reader.delivered if self._reader else 0

    # -- the capture thread ------------------------------------------------------------------

    def _run(self) -> None:
        interval_ms = max(1, int(self._cfg.poll_interval * 1000))
        last_expire = time.monotonic_ns()
        while not self._stop.is_set():
            records = self._reader.poll(interval_ms)
            try:
                last_expire = self._step(records, last_expire)
            except Exception:  # a bug in a stage must not stop capture: the batch is lost, counted
                self._step_failed(len(records))
        # Final drain: what the kernel submitted before detaching still counts (batch by batch).
        for _ in range(self._cfg.ring_buffer_size // self._reader.max_batch_bytes + 2):  # one ring's worth
            if not (records := self._reader.poll(0)):
                break
            try:
                self.router.process(records)
                self.protocols.end_batch(time.monotonic_ns())
            except Exception:
                self._step_failed(len(records))
        try:
            self.flush()
        except Exception:
            self._step_failed(0)

    def _step(self, records: list[bytes], last_expire: int) -> int:
        """One poll's batch through every stage; the once-a-second chores.  Returns when they ran."""
        if records:
            self.router.process(records)
        else:
            self.logs.flush_idle(time.monotonic_ns())
        # Release this batch's spans, or those whose trace decision timed out.
        now = time.monotonic_ns()
        if self.overload is not None:
            self.overload.check()
        if now - last_expire > 1_000_000_000:
            last_expire = now
            self.clock.maybe_refresh(now)
            self.tracker.expire(now)
            if self.overload is not None:
                self.overload.tick(now)
        self.protocols.end_batch(now)
        return last_expire

    def _step_failed(self, records: int) -> None:
        self.internal_errors += 1
        self.records_lost_to_errors += records
        if self.internal_errors <= 10 or self.internal_errors % 1000 == 0:
            log.exception("ebpf receiver: a batch of %d records failed (%d so far); capture goes on",
                          records, self.internal_errors)

    def flush(self) -> None:
        """Everything held goes out: partial log lines, open connections' sessions, pending spans."""
        self.logs.flush_idle(0, everything=True)
        now = time.monotonic_ns()
        if self.overload is not None:
            self.overload.drain(now)
        self.tracker.expire(now + 10**18)
        self.protocols.end_batch(now, flush=True)

    def process_records(self, records: list[bytes]) -> None:
        """One batch through every stage (the capture thread's step; benches replay with it)."""
        self.router.process(records)
        self.protocols.end_batch(time.monotonic_ns())

    # -- control: switching connections off in the kernel -------------------------------------

    def _ignore_in_kernel(self, conn_id: int) -> None:
        if self._loader is not None and self._loader.state == "attached":
            self._loader.ignore_connection(conn_id)

    def _ignore_ciphertext_in_kernel(self, conn_id: int) -> None:
        """TLS ciphertext: no more socket bytes, but plaintext if its library gets attached."""
        if self._loader is not None and self._loader.state == "attached":
            self._loader.ignore_connection(conn_id, socket_only=True)


__all__ = ["EbpfReceiver"]
