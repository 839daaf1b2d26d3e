"""``--sections profiling``: what continuous CPU profiling costs, on an idle and on a busy machine.

Two agents are compared side by side in interleaved rounds, each run for the same window:

* **off**: the ``ebpf`` receiver alone (its discovery includes no process, so it traces nothing:
  the baseline agent of this comparison), traces to the debug exporter;
* **on**: the same plus the ``profiling`` receiver at 19 Hz (default settings) and the ``pprof``
  exporter writing to a directory.

Measured per run, after the first report (warm-up reported apart): the agent's CPU time (all threads, ``/proc/<pid>/stat``), and the run time of
the profiler's BPF program from the kernel's own accounting (``kernel.bpf_stats_enabled``; the
program runs in the sampled task's interrupt, so its time is charged to whatever ran, not to
the agent), both in % of one core.  **busy**: one CPU burner per core (a Python busy loop) during
the window (started once the agent runs), so every sample lands on a running task and its stacks
are walked; **idle**: nothing
added (the machine is shared: other work may run).  The overhead of profiling is
``on - off`` (agent) + BPF time; the target is at most 1 % of one core.

    python -m bench --sections profiling --no-docs
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import procstat
from bench.profile import py_spy_path
from bench.services import REPO, VENV_BIN, BenchError, Workdir

TARGET_PCT = 1.0
_STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
_CONFIG = """
receivers:
  ebpf:
    discovery:
      include: [{{exe: erx-bench-no-such-program}}]
{profiling_receiver}
exporters:
  debug: {{verbosity: basic}}
{pprof_exporter}
service:
  pipelines:
    traces: {{receivers: [ebpf], exporters: [debug]}}
{profiles_pipeline}
"""


def _config(mode: str, out: Path) -> str:
    on = mode == "on"
    return _CONFIG.format(
        profiling_receiver="  profiling: {}" if on else "",
        pprof_exporter=f"  pprof: {{directory: {out}}}" if on else "",
        profiles_pipeline="    profiles: {receivers: [profiling], exporters: [pprof]}" if on else "",
    )


def _start_agent(workdir: Workdir, name: str, mode: str) -> tuple[subprocess.Popen, Path]:
    config = workdir.file(f"{name}.yaml")
    config.write_text(_config(mode, workdir.file(f"{name}-profiles")))
    log = workdir.file(f"{name}.log")
    with open(log, "w") as f:
        proc = subprocess.Popen([str(VENV_BIN / "ebpf-receiver"), "run", "--config", str(config)], cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                preexec_fn=procstat.die_with_parent)
    deadline = time.monotonic() + 60
    while "running (pid" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise BenchError(f"agent {name} did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    return proc, log


def _prog_ids(pid: int) -> set[int]:
    """Ids of the BPF programs whose fds ``pid`` holds."""
    out: set[int] = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("anon_inode:bpf-prog"):
                continue
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        out.update(int(line.split()[-1]) for line in info.splitlines() if line.startswith("prog_id:"))
    return out


def _profiler_bpf_ns(pid: int) -> int:
    """Run time (ns) of the perf_event (profiler) programs the agent ``pid`` loaded."""
    ids = _prog_ids(pid)
    res = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True, check=True)
    return sum(p.get("run_time_ns", 0) for p in json.loads(res.stdout or "[]")
               if p["id"] in ids and p.get("type") == "perf_event")


def _burners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=procstat.die_with_parent)
            for _ in range(n)]


def run(workdir: Workdir, quick: bool, log=print) -> dict:
    # settle: past the first report (10 s), whose cold caches (every library's symbols read
    # once) are reported apart as the warm-up CPU; the window measures the steady state.
    rounds, window, settle = (2, 20.0, 12.0) if quick else (3, 60.0, 12.0)
    stats_before = _STATS.read_text().strip() if _STATS.exists() else "0"
    _STATS.write_text("1")
    runs: list[dict] = []
    try:
        for state in ("idle", "busy"):
            for rnd in range(rounds):
                for mode in (("off", "on") if rnd % 2 == 0 else ("on", "off")):
                    name = f"profiling-{state}-{mode}-{rnd}"
                    log(f"profiling overhead: {state}, profiling {mode}, round {rnd + 1}/{rounds}")
                    proc, _ = _start_agent(workdir, name, mode)  # started on a calm machine
                    burners = _burners(os.cpu_count() or 2) if state == "busy" else []
                    try:
                        time.sleep(settle)
                        cpu0, bpf0, t0 = procstat.cpu_seconds(proc.pid), _profiler_bpf_ns(proc.pid), time.monotonic()
                        time.sleep(window)
                        cpu1, bpf1, t1 = procstat.cpu_seconds(proc.pid), _profiler_bpf_ns(proc.pid), time.monotonic()
                        warmup = cpu0
                        load = procstat.load_average()[0]
                    finally:
                        for b in burners:
                            b.kill()
                            b.wait()
                        hung = _stop(proc, workdir, name, log)
                    wall = t1 - t0
                    runs.append({"state": state, "mode": mode, "round": rnd, "seconds": wall, "shutdown_hung": hung,
                                 "agent_pct": 100 * (cpu1 - cpu0) / wall, "bpf_pct": 100 * (bpf1 - bpf0) / 1e9 / wall,
                                 "warmup_cpu_s": warmup, "loadavg": load})
    finally:
        _STATS.write_text(stats_before)
    return {"rounds": rounds, "window_s": window, "runs": runs}


def _stop(proc: subprocess.Popen, workdir: Workdir, name: str, log, timeout: float = 30.0) -> bool:
    """SIGTERM the agent; True if it did not exit within ``timeout``: then its threads' stacks
    go to ``<name>-hung.txt`` (py-spy dump) and it is killed, and the run is kept, marked."""
    proc.terminate()
    try:
        proc.wait(timeout)
        return False
    except subprocess.TimeoutExpired:
        dump = workdir.file(f"{name}-hung.txt")
        spy = py_spy_path()
        text = (subprocess.run([spy, "dump", "--pid", str(proc.pid)], capture_output=True, text=True, timeout=30).stdout
                if spy else "py-spy not found")
        dump.write_text(text)
        log(f"profiling overhead: the agent of {name} did not stop within {timeout:.0f} s of SIGTERM; "
            f"its stacks: {dump}")
        proc.kill()
        proc.wait(10)
        return True


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def summary(result: dict) -> dict[str, dict[str, float]]:
    """Per state: median agent % off and on, BPF % on, and the overhead (paired by round)."""
    out = {}
    for state in ("idle", "busy"):
        runs = [r for r in result["runs"] if r["state"] == state]
        by = {(r["mode"], r["round"]): r for r in runs}
        rounds = sorted({r["round"] for r in runs})
        overhead = [by[("on", k)]["agent_pct"] - by[("off", k)]["agent_pct"] + by[("on", k)]["bpf_pct"]
                    for k in rounds if ("on", k) in by and ("off", k) in by]
        if not overhead:
            continue
        out[state] = {
            "agent_off_pct": _median([r["agent_pct"] for r in runs if r["mode"] == "off"]),
            "agent_on_pct": _median([r["agent_pct"] for r in runs if r["mode"] == "on"]),
            "bpf_pct": _median([r["bpf_pct"] for r in runs if r["mode"] == "on"]),
            "overhead_pct": _median(overhead),
            "overhead_max_pct": max(overhead),
            "warmup_off_s": _median([r.get("warmup_cpu_s", 0.0) for r in runs if r["mode"] == "off"]),
            "warmup_on_s": _median([r.get("warmup_cpu_s", 0.0) for r in runs if r["mode"] == "on"]),
            "loadavg": _median([r["loadavg"] for r in runs]),
        }
    return out


def render(result: dict | None) -> list[str]:
    if not result:
        return []
    rows = []
    for state, s in summary(result).items():
        verdict = "met" if s["overhead_pct"] <= TARGET_PCT else "MISSED"
        rows.append(f"| {state} | {s['agent_off_pct']:.2f} | {s['agent_on_pct']:.2f} | {s['bpf_pct']:.3f} | "
                    f"**{s['overhead_pct']:.2f}** (max {s['overhead_max_pct']:.2f}) | {verdict} | "
                    f"{s['warmup_off_s']:.2f} / {s['warmup_on_s']:.2f} | {s['loadavg']:.2f} |")
    hung = [f"{r['state']} {r['mode']} round {r['round'] + 1}" for r in result["runs"] if r.get("shutdown_hung")]
    if hung:
        rows.append("")
        rows.append(f"**An agent did not stop within 30 s of SIGTERM** ({', '.join(hung)}): killed; its threads' "
                    "stacks are in the run's work directory (`*-hung.txt`).")
    return [
        "## Continuous profiling overhead",
        "",
        f"19 Hz per CPU, default settings; {result['rounds']} interleaved rounds of {result['window_s']:.0f} s per "
        "machine state (see `bench/profiling_overhead.py`). Agent CPU in % of one core (all threads), BPF: the "
        "profiler program's run time (kernel accounting, charged to the sampled tasks); overhead = on − off + BPF, "
        f"paired by round, median. Target: ≤ {TARGET_PCT:g} % of one core. The window starts after the "
        "first report; the agent's CPU until then (start-up, and the first report's cold symbol caches) is "
        "the warm-up column.",
        "",
        "| machine | agent off % | agent on % | BPF % | overhead % | target | warm-up CPU s (off / on) | load avg |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
