"""The agent's user space alone, on recorded kernel output: CPU per request, by stage.

``record`` loads the agent's BPF object (the agent's knobs, the load generator excluded), drives
nginx at a constant rate and writes every ring-buffer record to a file (length-prefixed).
``run`` feeds that file to the agent's capture → parse → assemble path in batches, as the
capture thread gets them from the ring, releases the spans, and encodes them as the OTLP
exporter does — timing each stage on one core (``time.thread_time``), with no kernel, no
competition and no sink, so two versions of the code can be compared on the very same input.

    python -m bench.replay record --out /tmp/nginx.rec --rate 5000 --seconds 4
    python -m bench.replay run /tmp/nginx.rec [--repeat 3] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import threading
import time
import zlib
from pathlib import Path

_LEN = struct.Struct("<I")
BATCH = 256  # records per process_records call: fixed, so that replays compare across trees


def record(out: Path, rate: float, seconds: float, http_pairing: bool = False, connection_close: bool = False) -> int:
    from bench.loadgen import ConstantRateLoad
    from bench.services import Nginx, Workdir
    from receiver.bpf.loader import BpfLoader, LoaderKnobs, default_object_path
    from receiver.capture.ringbuf import RingBufferReader

    wd = Workdir()
    nginx = Nginx(wd, workers=1, sendfile=False).start()
    load = ConstantRateLoad("127.0.0.1", nginx.port, "/", rate, seconds, wd.path, connection_close=connection_close)
    loader = BpfLoader(default_object_path(), LoaderKnobs(agent_tgid=os.getpid(), excluded_pids=tuple(load.pids),
                                                          http_pairing=http_pairing))
    records: list[bytes] = []
    stop = threading.Event()
    try:
        loader.start()
        reader = RingBufferReader(loader)

        def drain() -> None:
            while not stop.wait(0.01):
                records.extend(reader.drain())

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        res = load.run()
        time.sleep(0.3)
        stop.set()
        t.join()
        records.extend(reader.drain())
        reader.close()
    finally:
        stop.set()
        load.kill()
        loader.close()
        nginx.stop()
    with open(out, "wb") as f:
        for r in records:
            f.write(_LEN.pack(len(r)))
            f.write(r)
    print(f"{len(records)} records for {res.completed} requests → {out}", file=sys.stderr)
    return 0


def read_records(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out, off = [], 0
    while off + 4 <= len(data):
        (n,) = _LEN.unpack_from(data, off)
        out.append(data[off + 4 : off + 4 + n])
        off += 4 + n
    return out


class _Collect:
    def __init__(self) -> None:
        self.spans: list = []

    def consume_traces(self, spans: list) -> None:
        self.spans.extend(spans)


def run_once(records: list[bytes], sampler_ratio: float | None = None, gzip: bool = False) -> dict:
    from receiver.receivers.ebpf.receiver import EbpfReceiver
    from receiver.receivers.ebpf.config import EbpfReceiverConfig, SamplerConfig
    from receiver.exporters.otlp_encoding import Signal
    from receiver.exporters.otlp_wire import OtlpWireEncoder
    from receiver.telemetry.red_metrics import RedMetrics

    encoder = OtlpWireEncoder()  # what the OTLP exporters send with
    sink = _Collect()
    red = RedMetrics()
    cfg = EbpfReceiverConfig()
    if sampler_ratio is not None:
        cfg = EbpfReceiverConfig(sampler=SamplerConfig("parentbased_traceidratio", sampler_ratio))
    rx = EbpfReceiver(cfg, traces=[sink], red_metrics=red, agent_pid=os.getpid())
    t0 = time.thread_time()
    for i in range(0, len(records), BATCH):
        rx.process_records(records[i : i + BATCH])
    rx.flush()
    t1 = time.thread_time()
    spans = sink.spans
    size = 0
    for i in range(0, len(spans), 512):
        body = encoder.serialize(Signal.TRACES, spans[i : i + 512])
        size += len(body)
        if gzip:
            zlib.compress(body, 6)
    t2 = time.thread_time()
    # per request: every server transaction is a request, whether its span was exported or not
    n = max(rx.protocols.transactions, 1)
    return {"records": len(records), "requests": rx.protocols.transactions, "spans": len(spans),
            "capture_us_per_request": 1e6 * (t1 - t0) / n, "encode_us_per_request": 1e6 * (t2 - t1) / n,
            "total_us_per_request": 1e6 * (t2 - t0) / n, "bytes_per_span": size / max(len(spans), 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record", help="capture ring-buffer records of nginx under load")
    rec.add_argument("--out", type=Path, required=True)
    rec.add_argument("--rate", type=float, default=5000)
    rec.add_argument("--seconds", type=float, default=4)
    rec.add_argument("--http-pairing", action="store_true", help="HTTP/1 paired in the kernel (one record each)")
    rec.add_argument("--connection-close", action="store_true", help="a new connection per request")
    run = sub.add_parser("run", help="time the agent's user space on recorded records")
    run.add_argument("file", type=Path)
    run.add_argument("--repeat", type=int, default=3)
    run.add_argument("--profile", type=Path, help="write a cProfile of one pass here")
    run.add_argument("--sampler-ratio", type=float, help="parentbased_traceidratio with this ratio")
    run.add_argument("--gzip", action="store_true", help="also gzip each encoded request (the exporters' default)")
    run.add_argument("--default-gc", action="store_true",
                     help="keep CPython's collector settings (the agent freezes its start-up objects and collects "
                          "the young generation every 20,000 allocations; replays before 2026-12-06 did not)")
    args = ap.parse_args(argv)
    if args.cmd == "record":
        return record(args.out, args.rate, args.seconds, args.http_pairing, args.connection_close)
    records = read_records(args.file)
    if not args.default_gc:  # as `ebpf-receiver run` does
        from receiver.cli import tune_garbage_collector

        tune_garbage_collector()
    results = [run_once(records, args.sampler_ratio, args.gzip) for _ in range(args.repeat)]
    best = min(results, key=lambda r: r["total_us_per_request"])
    print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in best.items()))
    if args.profile:
        import cProfile

        cProfile.runctx("run_once(records, ratio)", globals(),
                        {"records": records, "run_once": run_once, "ratio": args.sampler_ratio}, str(args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
