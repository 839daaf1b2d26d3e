"""The ``ebpf`` receiver component: load → capture → reassemble → parse → stitch → assemble.

One capture thread polls the ring buffer every ``poll_interval``, decodes the batch, feeds
the connection tracker (which runs the protocol sessions) and turns finished transactions
into spans and RED metric observations, handed to the next consumers in batches.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from receiver.bpf.loader import BpfLoader, LoaderKnobs, agent_pid_namespace, default_object_path
from receiver.capture.connections import ConnectionTracker, TrackerLimits
from receiver.capture.events import ConnEvent, DataEvent, EventDecoder, ProcEvent
from receiver.capture.netns import NetnsResolver
from receiver.capture.ringbuf import RingBufferReader
from receiver.discovery import ProcessDiscovery
from receiver.protocols.base import Direction
from receiver.protocols.registry import ProtocolRegistry
from receiver.telemetry.assemble import TelemetryAssembler
from receiver.telemetry.clock import MonotonicToWall
from receiver.telemetry.logs import LogLineAssembler, log_record
from receiver.telemetry.model import Span
from receiver.telemetry.red_metrics import RedMetrics
from receiver.telemetry.resources import ProcessResources
from receiver.telemetry.sampling import ALWAYS_ON, Sampler

log = logging.getLogger(__name__)
INGRESS = Direction.INGRESS


class TracesConsumer(Protocol):
    def consume_traces(self, spans: list[Span]) -> None: ...


@dataclass
class CaptureStats:
    """Counters of the user-space side of capture (the kernel keeps its own)."""

    records: int = 0
    data_events: int = 0
    conn_events: int = 0
    proc_events: int = 0
    transactions: int = 0
    spans: int = 0
    logs: int = 0
    log_writes: int = 0
    by_kind: dict = field(default_factory=dict)


class EbpfReceiver:
    def __init__(
        self,
        config,
        traces: Sequence[TracesConsumer] = (),
        logs: Sequence = (),
        red_metrics: RedMetrics | None = None,
        service_graph=None,
        resources: ProcessResources | None = None,
        object_path: str | None = None,
        agent_pid: int | None = None,
        on_event: Callable[[object], None] | None = None,
        on_transactions: Callable[[list], None] | None = None,
    ) -> None:
        self._cfg = config
        self._traces = list(traces)
        self._logs = list(logs)
        self._red = red_metrics
        self._resources = resources or ProcessResources()
        self._object_path = object_path or str(default_object_path())
        self._agent_pid = agent_pid if agent_pid is not None else os.getpid()
        self._on_event = on_event
        self._on_transactions = on_transactions
        self._loader: BpfLoader | None = None
        self._reader: RingBufferReader | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._started = False
        self.stats = CaptureStats()
        self.decoder: EventDecoder | None = None
        protocols = getattr(config, "protocols", {}) or {}
        self.registry = ProtocolRegistry(
            port_overrides={n: p.ports for n, p in protocols.items() if getattr(p, "ports", ())},
            disabled=[n for n, p in protocols.items() if not getattr(p, "enabled", True)],
            max_buffer=config.max_buffer_per_connection,
        )
        self.netns = NetnsResolver()  # namespaces, their addresses, NAT (used by the capture thread)
        self.tracker = ConnectionTracker(
            self.registry,
            TrackerLimits(
                max_connections=config.max_connections,
                idle_timeout_ns=int(config.connection_idle_timeout * 1e9),
            ),
            on_uninteresting=self._ignore_in_kernel,
            on_tls_ciphertext=self._ignore_ciphertext_in_kernel,
            netns=self.netns,
        )
        # Which processes are traced (rules, in the kernel) and their TLS libraries.
        self._pidns = agent_pid_namespace()
        self.discovery = ProcessDiscovery(
            config.discovery,
            exclude_pids=config.exclude_pids,
            agent_pid=self._agent_pid,
            events_in_our_pid_namespace=self._pidns == (0, 0),
        )
        self.clock = MonotonicToWall()
        sampler_cfg = getattr(config, "sampler", None)
        sampler = Sampler(sampler_cfg.name, sampler_cfg.ratio) if sampler_cfg is not None else ALWAYS_ON
        self.assembler = TelemetryAssembler(
            self._resources, self.clock, red_metrics, service_graph=service_graph, sampler=sampler
        )
        self._log_assembler = LogLineAssembler()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def loader(self) -> BpfLoader | None:
        return self._loader

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
        )
        self._loader = BpfLoader(object_path=self._object_path, knobs=knobs)
        self._loader.start(before_attach=self.discovery.prepare)
        try:
            self.decoder = EventDecoder(self._loader.abi)
            self._reader = RingBufferReader(self._loader)
            self.discovery.start(self._loader)
        except BaseException:
            self.discovery.shutdown()
            self._loader.close()
            raise
        self._thread = threading.Thread(target=self._run, name="ebpf-capture", daemon=True)
        self._thread.start()
        log.info("ebpf receiver attached %d programs", self._loader.link_count)

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
        if self._loader is not None:
            self._loader.close()

    def kernel_counters(self) -> list[int]:
        if self._loader is None or self._loader.state != "attached":
            return []
        return self._loader.read_counters()

    @property
    def delivered(self) -> int:
        return self._reader.delivered if self._reader else 0

    # -- hot path --------------------------------------------------------------------------

    def _run(self) -> None:
        interval_ms = max(1, int(self._cfg.poll_interval * 1000))
        last_expire = time.monotonic_ns()
        while not self._stop.is_set():
            records = self._reader.poll(interval_ms)
            if records:
                self.process_records(records)
            else:
                self._log_lines(self._log_assembler.flush_idle(time.monotonic_ns()))
                self._emit(())  # release spans whose trace decision timed out
            now = time.monotonic_ns()
            if now - last_expire > 1_000_000_000:
                last_expire = now
                self.clock.maybe_refresh(now)
                self._emit(self.tracker.expire(now))
        # Final drain: what the kernel submitted before detaching still counts.
        records = self._reader.poll(0)
        if records:
            self.process_records(records)
        self._log_lines(self._log_assembler.flush_idle(0, everything=True))
        self._emit(self.tracker.expire(time.monotonic_ns() + 10**18), flush=True)

    def process_records(self, records: list[bytes]) -> None:
        decode = self.decoder.decode
        tracker = self.tracker
        on_data, get_conn = tracker.on_data, tracker.get
        stats = self.stats
        dec = self.decoder
        ev_data, ev_sendfile = dec.EV_DATA, dec.EV_SENDFILE
        on_event = self._on_event
        on_server_ingress = self.assembler.on_server_ingress
        finished = []
        data_events = 0
        stats.records += len(records)
        for rec in records:
            ev = decode(rec)
            if ev is None:
                continue
            if on_event is not None:
                on_event(ev)
            kind = ev.kind
            if kind == ev_data or kind == ev_sendfile:
                # sendfile bytes are counted, not captured: a known-length gap in the stream
                # that parsers skip using lengths on the wire (a body served by sendfile).
                data_events += 1
                txs = on_data(ev)
                if txs:
                    finished.extend(txs)
                if ev.direction == INGRESS:
                    c = get_conn(ev.conn_id)
                    if c is not None and c.is_server:
                        on_server_ingress(ev.pid, ev.tid, ev.conn_id, ev.ts_exit_ns)
            elif kind == dec.EV_CONN_OPEN or kind == dec.EV_CONN_CLOSE:
                stats.conn_events += 1
                txs = tracker.on_conn(ev, kind == dec.EV_CONN_CLOSE)
                if txs:
                    finished.extend(txs)
            elif kind == dec.EV_LOG:
                self._on_log_write(ev)
            elif kind == dec.EV_PROC_EXEC or kind == dec.EV_PROC_EXIT:
                stats.proc_events += 1
                self._resources.forget(ev.pid)
                self._resources.remember_comm(ev.pid, ev.comm)
                self.discovery.on_proc_event(ev.pid, kind == dec.EV_PROC_EXEC)
                if kind == dec.EV_PROC_EXIT:
                    tracker.drop_pid(ev.pid)
            else:
                stats.by_kind[kind] = stats.by_kind.get(kind, 0) + 1
        stats.data_events += data_events
        self._emit(finished)

    def _emit(self, finished, flush: bool = False) -> None:
        now = time.monotonic_ns()
        if finished:
            self.stats.transactions += len(finished)
            if self._on_transactions is not None:
                self._on_transactions(finished)
            add = self.assembler.add
            for tt in finished:
                add(tt, now)
        spans, logs = self.assembler.flush() if flush else self.assembler.take(now)
        if spans:
            self.stats.spans += len(spans)
            for c in self._traces:
                c.consume_traces(spans)
        if logs:
            self.stats.logs += len(logs)
            for c in self._logs:
                c.consume_logs(logs)

    def _on_log_write(self, ev: DataEvent) -> None:
        self.stats.log_writes += 1
        self._log_lines(self._log_assembler.feed(ev.pid, ev.tid, ev.fd, ev.payload, ev.ts_exit_ns))

    def _log_lines(self, lines) -> None:
        if not lines:
            return
        now = time.monotonic_ns()
        observed = self.clock.to_unix_ns(now)
        for line in lines:
            rec = log_record(line, self._resources.get(line.pid), self.clock.to_unix_ns(line.mono_ns), observed)
            self.assembler.add_log(rec, line.pid, line.tid, now)

    def _ignore_in_kernel(self, conn_id: int) -> None:
        if self._loader is not None and self._loader.state == "attached":
            self._loader.ignore_connection(conn_id)

    def _ignore_ciphertext_in_kernel(self, conn_id: int) -> None:
        """TLS ciphertext: no more socket bytes, but plaintext if its library gets attached."""
        if self._loader is not None and self._loader.state == "attached":
            self._loader.ignore_connection(conn_id, socket_only=True)


__all__ = ["EbpfReceiver", "CaptureStats", "ConnEvent", "DataEvent", "ProcEvent"]
