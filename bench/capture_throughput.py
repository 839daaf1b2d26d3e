"""Consumer throughput of the capture layer on the real kernel.

Child processes (the agent's own pid is filtered in the kernel) send small UDP datagrams over
loopback at a target rate, a bounded count in bounded time; this process runs the real loader
and drains the ring buffer the way the receiver does (sleep one poll interval, drain, decode)
with :class:`RingBufferReader` and :class:`EventDecoder`.  It reports:

* the rate the producers reached and the records lost at that rate (kernel counters);
* how many of the producers' sends arrived as data records (should be all of them);
* events/s decoded on one core: the thread's CPU time in decoding, apart from waiting and from
  draining (libbpf's callback copying records out), and again offline on the same records;
* CPU seconds the consumer spent (user + system) for the whole run.

    python -m bench.capture_throughput --rate 100000 --seconds 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# -- producer (child process) -------------------------------------------------------------------


def produce(rate: float, count: int, size: int, max_seconds: float) -> dict:
    """Send `count` datagrams of `size` bytes at `rate`/s to a socket nobody reads (no
    backpressure), in 1 ms batches; stop early after max_seconds."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(sink.getsockname())
    send, payload = s.send, b"x" * size
    batch = max(1, int(rate // 1000))
    sent = 0
    start = time.perf_counter()
    while sent < count:
        n = min(batch, count - sent)
        for _ in range(n):
            send(payload)
        sent += n
        now = time.perf_counter()
        if now - start > max_seconds:
            break
        delay = start + sent / rate - now
        if delay > 0:
            time.sleep(delay)
    elapsed = time.perf_counter() - start
    s.close()
    sink.close()
    return {"pid": os.getpid(), "sent": sent, "elapsed_s": elapsed}


# -- consumer -----------------------------------------------------------------------------------


@dataclass
class Result:
    producers: int
    target_rate: float
    sent: int
    produce_seconds: float
    produced_rate: float
    records: int  # every record drained (all processes)
    data_records_of_producers: int
    kernel_produced: int
    kernel_lost: int
    drain_cpu_seconds: float  # ring_buffer__consume + the per-record callback copying it out
    decode_cpu_seconds: float
    decode_wall_seconds: float
    wait_seconds: float
    decode_rate: float  # records / decode CPU seconds, live
    consume_rate: float  # records / (drain + decode) CPU seconds, live
    offline_decode_rate: float  # the same records decoded again in one tight loop (CPU time)
    consumer_cpu_seconds: float
    poll_interval_ms: int
    ring_buffer_bytes: int


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run(rate: float, seconds: float, producers: int, size: int, poll_interval_ms: int, ring_buffer_size: int) -> Result:
    from receiver.bpf.loader import BpfLoader, LoaderKnobs, default_object_path
    from receiver.capture.events import DataEvent, EventDecoder
    from receiver.capture.ringbuf import RingBufferReader

    loader = BpfLoader(default_object_path(), LoaderKnobs(agent_tgid=os.getpid(), ring_buffer_size=ring_buffer_size))
    loader.start()
    reader = RingBufferReader(loader)
    decoder = EventDecoder(loader.abi)
    decode = decoder.decode
    c = loader.abi.const
    try:
        base = loader.read_counters()
        count = int(rate * seconds / producers)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--produce", "--rate", str(rate / producers)]
        cmd += ["--count", str(count), "--size", str(size), "--seconds", str(seconds * 2)]
        cpu0 = _cpu_seconds()
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE) for _ in range(producers)]
        pids = {p.pid for p in procs}
        kept: list[bytes] = []
        records = mine = 0
        wait = drain = dec = dec_wall = 0.0
        cpu = time.thread_time
        quiet_polls = mine_before = 0
        drain_deadline = time.perf_counter() + seconds * 2 + 10.0
        sleep_s = poll_interval_ms / 1000
        data_kind = c("ERX_EV_DATA")
        while True:
            t0 = time.perf_counter()
            time.sleep(sleep_s)
            t1 = time.perf_counter()
            c1 = cpu()
            recs = reader.drain()
            c2 = cpu()
            w2 = time.perf_counter()
            for rec in recs:
                ev = decode(rec)
                if ev.__class__ is DataEvent and ev.pid in pids and ev.kind == data_kind:
                    mine += 1
            c3 = cpu()
            wait += t1 - t0
            drain += c2 - c1
            dec += c3 - c2
            dec_wall += time.perf_counter() - w2
            records += len(recs)
            if len(kept) < 1_000_000:
                kept.extend(recs)
            if all(p.poll() is not None for p in procs):
                # Other processes on the machine keep producing records, so "quiet" means no new
                # record of the producers; and the drain is bounded in any case.
                quiet_polls = quiet_polls + 1 if mine == mine_before else 0
                if quiet_polls >= 3 or time.perf_counter() > drain_deadline:
                    break
            else:
                drain_deadline = time.perf_counter() + 10.0
            mine_before = mine
        cpu_total = _cpu_seconds() - cpu0
        reports = [json.loads(p.stdout.read()) for p in procs]
        counters = loader.read_counters()
    finally:
        reader.close()
        loader.close()

    t = time.thread_time()
    for rec in kept:
        decode(rec)
    offline = len(kept) / max(time.thread_time() - t, 1e-9)

    sent = sum(r["sent"] for r in reports)
    produce_s = max(r["elapsed_s"] for r in reports)
    lost = sum(counters[c(n)] - base[c(n)] for n in ("ERX_CNT_LOST_RINGBUF_FULL", "ERX_CNT_LOST_NO_SCRATCH"))
    return Result(
        producers=producers,
        target_rate=rate,
        sent=sent,
        produce_seconds=produce_s,
        produced_rate=sent / produce_s,
        records=records,
        data_records_of_producers=mine,
        kernel_produced=counters[c("ERX_CNT_PRODUCED")] - base[c("ERX_CNT_PRODUCED")],
        kernel_lost=lost,
        drain_cpu_seconds=drain,
        decode_cpu_seconds=dec,
        decode_wall_seconds=dec_wall,
        wait_seconds=wait,
        decode_rate=records / max(dec, 1e-9),
        consume_rate=records / max(drain + dec, 1e-9),
        offline_decode_rate=offline,
        consumer_cpu_seconds=cpu_total,
        poll_interval_ms=poll_interval_ms,
        ring_buffer_bytes=ring_buffer_size,
    )


def render(r: Result) -> str:
    lines = [
        f"producers            {r.producers} x UDP send over loopback, target {r.target_rate:,.0f}/s total",
        f"sent                 {r.sent:,} in {r.produce_seconds:.2f} s = {r.produced_rate:,.0f}/s",
        f"records drained      {r.records:,} (data records of the producers: {r.data_records_of_producers:,})",
        f"kernel produced/lost {r.kernel_produced:,} / {r.kernel_lost:,}",
        f"decode (one core)    {r.decode_rate:,.0f} records/s live ({r.decode_cpu_seconds:.3f} CPU s, "
        f"{r.decode_wall_seconds:.3f} wall s), {r.offline_decode_rate:,.0f} records/s offline",
        f"drain + decode       {r.consume_rate:,.0f} records/s (drain {r.drain_cpu_seconds:.3f} CPU s)",
        f"consumer CPU         {r.consumer_cpu_seconds:.3f} s (waiting {r.wait_seconds:.2f} s, "
        f"poll every {r.poll_interval_ms} ms, ring {r.ring_buffer_bytes >> 20} MiB)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.capture_throughput", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=100_000, help="target sends per second, all producers together")
    ap.add_argument("--seconds", type=float, default=3.0, help="how long the producers send at that rate")
    ap.add_argument("--producers", type=int, default=1, help="producer processes")
    ap.add_argument("--size", type=int, default=64, help="payload bytes per send")
    ap.add_argument("--poll-interval-ms", type=int, default=20, help="sleep between drains")
    ap.add_argument("--ring-buffer-size", type=int, default=16 << 20)
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--produce", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.produce:
        print(json.dumps(produce(args.rate, args.count, args.size, args.seconds)))
        return 0
    r = run(args.rate, args.seconds, args.producers, args.size, args.poll_interval_ms, args.ring_buffer_size)
    print(json.dumps(asdict(r)) if args.json else render(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
