"""What the persistent queue's crash ledger costs, one core, CPU time (``time.thread_time``).

The ledger adds, per batch (never per span), one ``enter`` at the pipeline's head and one
``settle`` when the exporter has queued the batch: a lock and one 8-byte store into a mapped
page each.  This measures those calls, and a whole traces path in process — the pipeline's head
→ batch processor → OTLP exporter with ``sending_queue.storage`` (encode, write, fsync) — with
and without the ledger, on the same spans.

    python -m bench.crash_ledger_cost [--spans 100000] [--batch 64]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

from receiver.component.ledger import LedgerEntrance, PipelineLedger
from receiver.exporters.crash_ledger import CrashLedger
from receiver.model.signals import Signal


def per_call_ns(n: int = 200_000) -> float:
    with tempfile.TemporaryDirectory() as d:
        ledger = CrashLedger(d)
        ledger.open()
        pipeline = PipelineLedger((ledger,))
        t0 = time.thread_time()
        for _ in range(n):
            pipeline.enter(Signal.TRACES, 64)
        cost = (time.thread_time() - t0) / n * 1e9
        ledger.close()
    return cost


class _Pipeline:
    """head → batch processor → exporter, as the agent wires them (``ledger`` or not)."""

    def __init__(self, storage: str, with_ledger: bool) -> None:
        from receiver.component.self_metrics import SelfMetrics
        from receiver.exporters.config import OtlpExporterConfig, QueueConfig
        from receiver.exporters.otlp_grpc import OtlpGrpcExporter
        from receiver.processors.batch import BatchProcessor, BatchProcessorConfig
        from tests.support.ports import free_port

        config = OtlpExporterConfig(endpoint=f"127.0.0.1:{free_port()}", sending_queue=QueueConfig(storage=storage))
        self.exporter = OtlpGrpcExporter("otlp", config, SelfMetrics())
        ledger = PipelineLedger((self.exporter.crash_ledger,)) if with_ledger else PipelineLedger()
        self.batch = BatchProcessor(BatchProcessorConfig(timeout=3600), [self.exporter], ledger=ledger)
        self.head = LedgerEntrance(ledger, self.batch) if with_ledger else self.batch

    def run(self, batches: list) -> float:
        """CPU seconds of the whole path (the batch thread's sends made in this thread)."""
        self.exporter.start()  # no consumer thread until a request is queued; none is sent
        t0 = time.thread_time()
        for b in batches:
            self.head.consume_traces(b)
            self.batch._flush(final=False)  # the batch thread's work, on this thread's clock
        self.batch._flush(final=True)
        cost = time.thread_time() - t0
        self.exporter.shutdown(0.1)
        return cost


def pipeline_us_per_span(spans: int, batch: int, repeat: int = 5) -> dict[str, float]:
    from bench.micro import sample_spans

    data = sample_spans(spans)
    batches = [data[i : i + batch] for i in range(0, len(data), batch)]
    best: dict[str, float] = {}
    for _ in range(repeat):  # interleaved, best of each: the machine's noise hits both alike
        for name, with_ledger in (("without", False), ("with", True)):
            with tempfile.TemporaryDirectory() as d:
                cost = _Pipeline(d, with_ledger).run(batches)
            best[name] = min(cost, best.get(name, cost))
    return {name: cost / spans * 1e6 for name, cost in best.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=64, help="spans per batch the receiver emits")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the exporter's endpoint is closed: no retry chatter
    print(f"PipelineLedger.enter (one ledger): {per_call_ns():.0f} ns per call (per batch)")
    us = pipeline_us_per_span(args.spans, args.batch)
    print(f"head -> batch -> otlp exporter with storage, {args.spans} spans in batches of {args.batch}: "
          f"{us['without']:.2f} us/span without the ledger, {us['with']:.2f} us/span with it")


if __name__ == "__main__":
    main()
