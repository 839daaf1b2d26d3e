"""Who keeps a waiting task off its CPU: ``perf sched`` during a fixed-rate nginx run, then,
for every wakeup of the watched task that waited longer than a threshold to run, which tasks
held the CPU it waited on (after its migrations) and for how long.

The question it answers: does the agent, whose threads run at SCHED_IDLE, still delay the
processes around it?  It found that it does on kernels without full preemption (a task
waking behind an idle-class thread in user space waits for the next tick): the load
generator of nginx at 5,000 req/s waited > 0.5 ms ~300 times in 6 s behind the agent, which
led to the yield points of ``receiver/component/cpu_yield.py``.

    python -m bench.sched_delay --mode on        # nginx + generator + agent + sink
    python -m bench.sched_delay --mode off       # the same without the agent

Needs ``perf`` (linux-perf).  Prints the run's latencies, then the delays of nginx and of the
load generator with the tasks that held their CPU (``AGENT:``/``SINK:`` mark the agent's and
the OTLP sink's threads).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

_LINE = re.compile(r"\s*\[(\d+)\]\s+([\d.]+):\s+(\S+):\s+(.*)")
_KV = re.compile(r"(\w+)=(\S+)")


@dataclass
class Delays:
    """What :func:`analyse` found for one watched task (or set of pids)."""

    wakeups: int = 0
    delays_us: list[float] = field(default_factory=list)
    long_waits: int = 0
    held_ms: collections.Counter = field(default_factory=collections.Counter)  # label+comm -> ms

    def quantile(self, q: float) -> float:
        d = sorted(self.delays_us)
        return d[min(len(d) - 1, int(q * len(d)))] if d else 0.0


def analyse(script: str, watched, labels: dict[str, str], threshold_s: float = 0.0005) -> Delays:
    """``script``: ``perf script -F cpu,time,event,trace`` of sched_switch/sched_waking/
    sched_wakeup/sched_migrate_task; ``watched(comm, pid)``: the tasks whose delays count;
    ``labels``: tid → prefix for the tasks that held the CPU."""
    running: dict[int, tuple[str, str, float]] = {}  # cpu -> (tid, comm, since)
    waiting: dict[str, tuple[float, int, list]] = {}  # tid -> (since, cpu, [(tid, comm, t0, t1)])
    out = Delays()
    for line in script.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        cpu, t, event, rest = int(m[1]), float(m[2]), m[3], m[4]
        if event.endswith("sched_switch") and "==>" in rest:
            after = dict(_KV.findall(rest.split("==>", 1)[1]))
            cur = running.get(cpu)
            if cur is not None:
                for since, wcpu, segments in waiting.values():
                    if wcpu == cpu:
                        segments.append((cur[0], cur[1], max(since, cur[2]), t))
            running[cpu] = (after["next_pid"], after["next_comm"], t)
            tid = after["next_pid"]
            if tid in waiting and watched(after["next_comm"], tid):
                since, _, segments = waiting.pop(tid)
                out.wakeups += 1
                out.delays_us.append((t - since) * 1e6)
                if t - since > threshold_s:
                    out.long_waits += 1
                    for held_tid, comm, t0, t1 in segments:
                        out.held_ms[labels.get(held_tid, "") + comm] += (t1 - t0) * 1e3
        elif event.endswith(("sched_waking", "sched_wakeup")):
            a = dict(_KV.findall(rest))
            if watched(a.get("comm", ""), a.get("pid", "")) and a["pid"] not in waiting:
                waiting[a["pid"]] = (t, int(a["target_cpu"]), [])
        elif event.endswith("sched_migrate_task"):
            a = dict(_KV.findall(rest))
            if a.get("pid") in waiting:
                since, _, segments = waiting[a["pid"]]
                waiting[a["pid"]] = (since, int(a["dest_cpu"]), segments)
    return out


def report(name: str, d: Delays, top: int = 8) -> str:
    lines = [f"{name}: {d.wakeups} wakeups, delay to run p50 {d.quantile(0.5):.0f} µs, p99 {d.quantile(0.99):.0f} µs, "
             f"max {max(d.delays_us, default=0):.0f} µs; {d.long_waits} waited > 0.5 ms, while their CPU ran:"]
    lines += [f"  {ms:9.2f} ms  {who}" for who, ms in d.held_ms.most_common(top)]
    return "\n".join(lines)


def _tids(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sched_delay", description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("on", "off"), default="on")
    ap.add_argument("--rate", type=float, default=5000.0)
    ap.add_argument("--seconds", type=float, default=8.0, help="load duration (perf records 6 s of it)")
    args = ap.parse_args(argv)
    if shutil.which("perf") is None:
        print("perf not found (apt install linux-perf)", file=sys.stderr)
        return 2
    from bench.scenarios import Context, Options, _fixed_run
    from bench.services import Nginx, Workdir

    wd = Workdir()
    ctx = Context(Options(), wd)
    nginx = Nginx(wd, workers=1, sendfile=False).start()
    data = wd.file("perf.data")
    labels: dict[str, str] = {}
    generator: list[str] = []

    def profile(handle):
        perf = subprocess.Popen(["perf", "sched", "record", "-o", str(data), "--", "sleep", str(min(6.0, args.seconds))],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def done():
            if handle is not None:
                labels.update({t: "AGENT:" for t in _tids(handle.pid)})
            labels.update({t: "SINK:" for t in _tids(ctx.sink.proc.pid)})
            perf.wait()
            return str(data)
        return done

    start_mode = ctx.start_mode

    def start_mode_noting_the_generator(mode, exclude_pids):
        generator.extend(str(p) for p in exclude_pids)  # the generator's processes (the agent leaves them out)
        return start_mode(mode, exclude_pids)

    ctx.start_mode = start_mode_noting_the_generator
    try:
        run = _fixed_run(ctx, nginx, args.rate, args.mode, 0, args.seconds, profile=profile)
    finally:
        nginx.stop()
        ctx.close()
    v = run.values
    print(f"mode {args.mode}, {args.rate:.0f} req/s: p50 {v['p50_us']} µs, p99 {v['p99_us']} µs, "
          f"service p99 {v['service_p99_us']} µs")
    script = subprocess.run(["perf", "script", "-i", str(data), "-F", "cpu,time,event,trace"],
                            capture_output=True, text=True, check=True).stdout
    print(report("nginx", analyse(script, lambda comm, pid: comm == "nginx", labels)))
    if generator:
        pids = set(generator)
        print(report("load generator", analyse(script, lambda comm, pid: pid in pids, labels)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
