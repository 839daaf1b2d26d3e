"""The capture stage's output: decoded records routed by kind to the next stages.

One call of :meth:`RecordRouter.process` takes one batch of raw ring-buffer records, decodes
each (:class:`~receiver.capture.events.EventDecoder`) and hands it on:

* data and sendfile events, connection open/close, HTTP/1 transactions paired in the kernel and
  the threads serving them → the connection tracker (``connections``);
* writes to stdout/stderr → ``logs`` (log capture);
* process exec/exit → ``processes`` (resources, discovery, the tracker's per-process state);
* a stdout/stderr pipe written for the first time → ``log_pipes`` (is it a log destination?);
* failed TCP connects (network metrics on) → ``failures`` (error spans under the request that
  dialled: they come in order with the traffic).

The next stages are typed by the small protocols below; this module imports none of them.
"""

from __future__ import annotations

from typing import Callable, Iterator, Protocol

from prometheus_client.core import CounterMetricFamily

from receiver.component.cpu_yield import NO_YIELD, STEP, CpuYield, in_chunks
from receiver.capture.events import (
    ConnEvent,
    ConnFailureEvent,
    DataEvent,
    EventDecoder,
    HttpTxEvent,
    LogPipeEvent,
    ProcEvent,
    ServingEvent,
)


class ConnectionSink(Protocol):
    def on_data(self, ev: DataEvent) -> None: ...

    def on_conn(self, ev: ConnEvent, is_close: bool) -> None: ...

    def on_http_tx(self, ev: HttpTxEvent) -> None: ...

    def on_serving(self, ev: ServingEvent) -> None: ...


class LogSink(Protocol):
    def on_write(self, ev: DataEvent) -> None: ...


class ProcessSink(Protocol):
    def on_process(self, ev: ProcEvent, is_exec: bool) -> None: ...


class FailureSink(Protocol):
    def on_connect_failure(self, ev: ConnFailureEvent) -> None: ...


class LogPipeSink(Protocol):
    def on_log_pipe(self, ev: LogPipeEvent) -> None: ...


class RecordRouter:
    """Decode → route.  Counts records by kind; what cannot be decoded is counted by the decoder."""

    def __init__(
        self,
        decoder: EventDecoder,
        connections: ConnectionSink,
        logs: LogSink,
        processes: ProcessSink,
        failures: FailureSink | None = None,
        log_pipes: LogPipeSink | None = None,
        on_event: Callable[[object], None] | None = None,
        cpu_yield: CpuYield = NO_YIELD,
    ) -> None:
        self.decoder = decoder
        self._yield = cpu_yield  # the capture thread's: a long batch gives the CPU back now and then
        self._connections = connections
        self._logs = logs
        self._processes = processes
        self._failures = failures
        self._log_pipes = log_pipes
        self._on_event = on_event
        self.records = 0
        self.data_events = 0
        self.conn_events = 0
        self.proc_events = 0
        self.log_writes = 0
        self.connect_failures = 0
        self.http_transactions = 0  # paired in the kernel
        self.other_kinds: dict[int, int] = {}

    def process(self, records: list[bytes]) -> None:
        dec = self.decoder
        decode = dec.decode
        on_data = self._connections.on_data
        on_http_tx = self._connections.on_http_tx
        ev_data, ev_sendfile, ev_http = dec.EV_DATA, dec.EV_SENDFILE, dec.EV_HTTP_TX
        on_event = self._on_event
        data_events = http_transactions = 0
        self.records += len(records)
        for part in in_chunks(records, self._yield, STEP):  # cpu_yield between chunks
            for rec in part:
                ev = decode(rec)
                if ev is None:
                    continue
                if on_event is not None:
                    on_event(ev)
                kind = ev.kind
                if kind == ev_http:
                    http_transactions += 1
                    on_http_tx(ev)
                elif kind == ev_data or kind == ev_sendfile:
                    # sendfile bytes are counted, not captured: a known-length gap in the stream
                    # that parsers skip using lengths on the wire (a body served by sendfile).
                    data_events += 1
                    on_data(ev)
                elif kind == dec.EV_SERVING:
                    self._connections.on_serving(ev)
                elif kind == dec.EV_CONN_OPEN or kind == dec.EV_CONN_CLOSE:
                    self.conn_events += 1
                    self._connections.on_conn(ev, kind == dec.EV_CONN_CLOSE)
                elif kind == dec.EV_LOG:
                    self.log_writes += 1
                    self._logs.on_write(ev)
                elif kind == dec.EV_PROC_EXEC or kind == dec.EV_PROC_EXIT:
                    self.proc_events += 1
                    self._processes.on_process(ev, kind == dec.EV_PROC_EXEC)
                elif kind == dec.EV_LOG_PIPE and self._log_pipes is not None:
                    self._log_pipes.on_log_pipe(ev)
                elif kind == dec.EV_CONN_FAILURE and self._failures is not None:
                    self.connect_failures += 1
                    self._failures.on_connect_failure(ev)
                else:
                    self.other_kinds[kind] = self.other_kinds.get(kind, 0) + 1
        self.data_events += data_events
        self.http_transactions += http_transactions

    # -- self-metrics ------------------------------------------------------------------------

    def collect(self) -> Iterator[CounterMetricFamily]:
        malformed = CounterMetricFamily("ebpf_receiver_decode_errors", "Ring-buffer records that could not be decoded.")
        malformed.add_metric([], self.decoder.malformed)
        yield malformed

    def describe(self) -> list:
        return []
