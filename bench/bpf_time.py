"""BPF time per request: the agent's programs (this process's copy of ``receiver.bpf.o``, the
ring buffer drained and dropped) under nginx driven by wrk, from the kernel's own accounting.

``kernel.bpf_stats_enabled=1`` makes the kernel sum each program's run time (``run_time_ns``) and
runs (``run_cnt``); the deltas over one wrk run of this process's programs (other copies loaded
on the machine are left out by program id), divided by the requests wrk completed, give the BPF
time each nginx request cost (wrk's pid is excluded, as in the bench).  Other processes' syscalls on the machine hit the same programs and are counted too: run it on a
quiet machine, and compare modes run back to back.

    python -m bench.bpf_time --seconds 5 --connections 8 --rounds 3 --http-pairing on [--network-metrics on]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

STATS_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")


def own_prog_ids() -> set[int]:
    """Ids of the BPF programs whose fds this process holds (not links' programs)."""
    out: set[int] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("anon_inode:bpf-prog"):
                continue
            info = Path(f"/proc/self/fdinfo/{fd}").read_text()
        except OSError:
            continue
        for line in info.splitlines():
            if line.startswith("prog_id:"):
                out.add(int(line.split()[-1]))
    return out


def prog_stats(ids: set[int]) -> dict[str, tuple[int, int]]:
    """name -> (run_time_ns, run_cnt) of the programs with these ids."""
    res = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True, check=True)
    return {p["name"]: (p.get("run_time_ns", 0), p.get("run_cnt", 0)) for p in json.loads(res.stdout or "[]")
            if p["id"] in ids}


def run_wrk(loader, url: str, seconds: int, connections: int) -> int:
    """One wrk run, wrk itself not traced (its pid excluded before it sends anything, as the
    bench does): the programs' time is nginx's requests' alone."""
    from bench.wrk import Wrk

    wrk = Wrk(url, seconds, connections=connections)
    loader.set_pid_excluded(wrk.pid, True)
    try:
        return wrk.run().requests
    finally:
        loader.set_pid_excluded(wrk.pid, False)


def network_knobs_all():
    """Every network health metric but tc_flow (which needs interfaces), default buckets."""
    from receiver.telemetry.network_config import NetworkMetricsConfig
    from receiver.telemetry.network_metrics import network_knobs

    names = ("rtt", "retransmits", "resets", "connect_failures", "connect_duration", "flow")
    return network_knobs(NetworkMetricsConfig(**{n: True for n in names}))


def measure(http_pairing: bool = True, network: bool = False, seconds: int = 5, connections: int = 8,
            rounds: int = 3, path: str = "/index.html", per_program: bool = False,
            out=sys.stdout) -> list[dict]:
    """One loaded copy of the object, ``rounds`` wrk runs against a fresh nginx: per round, the
    requests and the BPF time per request (and each program's, with ``per_program``)."""
    from receiver.bpf.loader import BpfLoader, LoaderKnobs, default_object_path
    from receiver.capture.ringbuf import RingBufferReader
    from tests.support.servers import NginxServer

    knobs = LoaderKnobs(agent_tgid=os.getpid(), http_pairing=http_pairing, filter_pids=True,
                        network=network_knobs_all() if network else None)
    was_enabled = STATS_SYSCTL.read_text().strip()
    stop = threading.Event()
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp, NginxServer(Path(tmp)) as nginx:
        loader = BpfLoader(default_object_path(), knobs)
        loader.start()
        reader = RingBufferReader(loader)
        drained = [0]

        def drain() -> None:
            while not stop.wait(0.02):
                drained[0] += len(reader.drain())

        thread = threading.Thread(target=drain, daemon=True)
        thread.start()
        ids = own_prog_ids()
        STATS_SYSCTL.write_text("1")
        try:
            for r in range(rounds):
                before = prog_stats(ids)
                requests = run_wrk(loader, nginx.url + path, seconds, connections)
                after = prog_stats(ids)
                deltas = {n: (after[n][0] - before.get(n, (0, 0))[0], after[n][1] - before.get(n, (0, 0))[1])
                          for n in after}
                total_ns = sum(dt for dt, _ in deltas.values())
                results.append({"requests": requests, "ns_per_request": total_ns / max(1, requests),
                                "programs": {n: dt / max(1, requests) for n, (dt, _) in deltas.items() if dt}})
                if out is not None:
                    print(f"round {r + 1}: pairing {'on' if http_pairing else 'off'}, network metrics "
                          f"{'on' if network else 'off'}: {requests} requests, "
                          f"{total_ns / max(1, requests):.0f} ns of BPF time per request", file=out, flush=True)
                    if per_program:
                        for n, (dt, dc) in sorted(deltas.items(), key=lambda kv: -kv[1][0]):
                            if dt:
                                print(f"  {n:32s} {dt / max(1, requests):7.0f} ns/req  {dc / max(1, requests):5.2f} "
                                      f"runs/req  {dt / max(1, dc):6.0f} ns/run", file=out)
                time.sleep(0.5)
        finally:
            STATS_SYSCTL.write_text(was_enabled)
            stop.set()
            thread.join()
            reader.close()
            loader.close()
    return results


def network_cost(seconds: int = 4, pairs: int = 2) -> dict:
    """BPF time per nginx request without and with the network health programs, interleaved
    (``pairs`` × off/on, a fresh load each): the extra kernel time the metrics cost."""
    off: list[float] = []
    on: list[float] = []
    for _ in range(pairs):
        off += [r["ns_per_request"] for r in measure(network=False, seconds=seconds, rounds=1, out=None)]
        on += [r["ns_per_request"] for r in measure(network=True, seconds=seconds, rounds=1, out=None)]
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    return {"off_ns": off, "on_ns": on, "extra_ns": med(on) - med(off), "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bpf_time", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--http-pairing", choices=("on", "off"), default="on")
    ap.add_argument("--network-metrics", choices=("on", "off"), default="off",
                    help="also load the network health programs (every metric but tc_flow, default buckets)")
    ap.add_argument("--path", default="/index.html")
    ap.add_argument("--per-program", action="store_true", help="print each program's share")
    args = ap.parse_args(argv)
    measure(args.http_pairing == "on", args.network_metrics == "on", args.seconds, args.connections, args.rounds,
            args.path, args.per_program)
    return 0


if __name__ == "__main__":
    sys.exit(main())
