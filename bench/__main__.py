"""``python -m bench`` (``make bench``): the performance harness of the agent.

Runs, in one invocation and interleaved within each round,

1. nginx saturated by wrk: no agent / the floor (same tracepoints, empty programs) / the agent's
   programs with the ring buffer drained and dropped / the agent;
2. nginx at fixed rates (1k, 5k, 20k req/s and half of saturation), open loop, off / on;
3. a Flask app under gunicorn: bare / OTel SDK / bare + agent;
4. micro benchmarks: kernel → decode, parsers per protocol, OTLP encoding;
5. zpages: the pages rendered with 200 services and 1,000 edges (server side and in Chromium);
6. continuous profiling: the agent with and without a profiles pipeline, idle and busy machine;

then checks the targets, profiles the agent with py-spy under the load of every missed target,
prints the report and writes it to docs/performance.md.  ``--quick`` (the default) takes a few
minutes; ``--full`` is the one for the record (about 40 minutes).

    make bench                                  # quick
    make bench BENCH_ARGS="--full"
    python -m bench --sections fixed --rates 5000 --fixed-seconds 60 --no-docs
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import signal
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from bench import machine, procstat, report, scenarios
from bench.services import REPO, Workdir

SECTIONS = ("saturated", "fixed", "flask", "micro", "zpages", "profiling")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a few minutes (the default)")
    mode.add_argument("--full", action="store_true", help="more rounds, 60 s fixed-rate runs (~40 min)")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds of the saturated runs (quick 2, full 7)")
    ap.add_argument("--flask-rounds", type=int, help="interleaved rounds of the Flask runs (quick 2, full 3)")
    ap.add_argument("--fixed-rounds", type=int, help="rounds of the fixed-rate runs (quick 1, full 3)")
    ap.add_argument("--saturated-seconds", type=float, help="seconds per saturated (wrk) run")
    ap.add_argument("--fixed-seconds", type=float,
                    help="seconds per fixed-rate run (quick 10, full 60: the 5k/60 s loss target)")
    ap.add_argument("--rates", help="fixed rates, req/s, comma-separated (default 1000,5000,20000)")
    ap.add_argument("--no-half-saturation", action="store_true",
                    help="do not add half of the measured saturation to the fixed rates")
    ap.add_argument("--flask-rate", type=float, help="fixed rate of the Flask CPU runs (default 800)")
    ap.add_argument("--profile-seconds", type=float, help="py-spy recording per missed target")
    ap.add_argument("--no-profile", action="store_true", help="do not profile missed targets")
    ap.add_argument("--docs", default=str(REPO / "docs" / "performance.md"), help="where to write the report")
    ap.add_argument("--no-docs", action="store_true", help="print the report only")
    ap.add_argument("--sendfile", action="store_true",
                    help="nginx sends the page with sendfile(2) (its default) instead of write")
    ap.add_argument("--json", help="also write every run as JSON here (default: in the work directory)")
    ap.add_argument("--render", metavar="RESULTS_JSON",
                    help="run nothing: render the report again from a previous run's raw results")
    ap.add_argument("--amend", metavar="RESULTS_JSON", action="append", default=[],
                    help="with --render: the runs of the scenarios this later run measured replace the "
                         "first run's (the report says which, by which command, on which commit)")
    return ap


def _options(args) -> scenarios.Options:
    o = scenarios.Options.for_mode(quick=not args.full)
    changes = {}
    for name in ("rounds", "flask_rounds", "fixed_rounds", "saturated_seconds", "fixed_seconds", "flask_rate",
                 "profile_seconds"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.rates:
        changes["rates"] = tuple(float(r) for r in args.rates.split(","))
    if args.no_half_saturation:
        changes["half_saturation"] = False
    if args.sendfile:
        changes["nginx_sendfile"] = True
    sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"bench: unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    changes["sections"] = sections
    return replace(o, **changes)


def _preflight(o: scenarios.Options) -> list[str]:
    """Problems that stop the run (missing tools, no root, no BPF objects)."""
    problems = []
    objects = REPO / "receiver" / "bpf" / "objects"
    macro = set(o.sections) & {"saturated", "fixed", "flask", "profiling"}
    if (macro or "micro" in o.sections) and os.geteuid() != 0:
        problems.append("run as root (the agent and the floor load BPF programs)")
    for obj in ("receiver.bpf.o", "receiver_floor.bpf.o"):
        if not (objects / obj).exists():
            problems.append(f"{objects / obj} missing: make -C bpf")
    if {"saturated", "fixed"} & set(o.sections) and not shutil.which("nginx"):
        problems.append("nginx missing: apt-get install nginx-light (make deps-test)")
    if {"saturated", "flask"} & set(o.sections) and not shutil.which("wrk"):
        problems.append("wrk missing: apt-get install wrk (make deps-test)")
    if "flask" in o.sections:
        for mod in ("flask", "gunicorn", "opentelemetry.sdk", "opentelemetry.instrumentation.wsgi"):
            if importlib.util.find_spec(mod.split(".")[0]) is None or (
                "." in mod and importlib.util.find_spec(mod) is None
            ):
                problems.append(f"python module {mod} missing: pip install -e '.[bench]' (make bench does)")
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    if args.render:
        return _render_again(args, argv)
    o = _options(args)
    problems = _preflight(o)
    if problems:
        for p in problems:
            print(f"bench: {p}", file=sys.stderr)
        return 2
    if not args.no_profile and not (Path(sys.executable).parent / "py-spy").exists() and not shutil.which("py-spy"):
        print("bench: py-spy missing: missed targets will not be profiled (pip install -e '.[bench]')",
              file=sys.stderr)
        args.no_profile = True

    # SIGTERM unwinds like Ctrl-C: every server, agent and generator is stopped on the way out
    # (and they die with this process in any case: procstat.die_with_parent).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    workdir = Workdir()
    scenarios.log(f"{'full' if not o.quick else 'quick'} mode; work directory {workdir.path}")
    data: dict = {
        "command": " ".join([".venv/bin/python -m bench"] + [shlex.quote(a) for a in argv]),
        "machine": machine.describe(),
        "code": machine.code_version(REPO),
        "options": asdict(o),
        "started": time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(started)),
        "flask_instrumentation": scenarios.flask_instrumentation(),
    }
    ctx = scenarios.Context(o, workdir)
    try:
        if "saturated" in o.sections:
            scenarios.nginx_saturated(ctx)
        if "fixed" in o.sections:
            half = scenarios.saturation_rps(ctx)
            scenarios.nginx_fixed(ctx, half / 2 if half and o.half_saturation else None)
        if "flask" in o.sections:
            scenarios.flask_compare(ctx)
        if "micro" in o.sections:
            from bench import micro

            scenarios.log("micro benchmarks")
            data["micro"] = micro.run_all(o.quick, workdir.path)
            scenarios.syscall_overhead(ctx, rounds=3 if o.quick else 5)
        if "zpages" in o.sections:
            from bench import zpages_render

            scenarios.log("zpages: rendering the pages with 200 services and 1,000 edges")
            data["zpages"] = zpages_render.run(o.quick)
        if "profiling" in o.sections:
            from bench import profiling_overhead

            data["profiling"] = profiling_overhead.run(workdir, o.quick, log=scenarios.log)
        data["runs"] = scenarios.runs_as_dicts(ctx)
        targets = report.evaluate(data["runs"])
        # the measurements are kept before the (optional) profiles, whatever happens to those
        (Path(args.json) if args.json else workdir.file("results.json")).write_text(json.dumps(data, indent=1, default=str))
        data["profiles"] = {}
        if not args.no_profile:
            for load in dict.fromkeys(t.profile_load for t in targets if t.passed is False and t.profile_load):
                try:
                    key = report._load_key(load)
                except KeyError:  # a load the report does not know: a bug of the bench, not the agent's
                    scenarios.log(f"no profile for the unknown load {load!r}")
                    continue
                scenarios.log(f"profiling the agent under {key}")
                try:
                    data["profiles"][key] = scenarios.profile_load(ctx, load, o.profile_seconds)
                except Exception as err:  # a profile is an extra: report and go on
                    data["profiles"][key] = f"(profiling failed: {err})"
        data["targets"] = [asdict(t) for t in targets]
        data["runs"] = scenarios.runs_as_dicts(ctx)
    finally:
        ctx.close()
    data["loadavg_end"] = procstat.load_average()
    data["finished"] = time.strftime("%H:%M %Z")
    data["elapsed_min"] = (time.time() - started) / 60
    json_path = Path(args.json) if args.json else workdir.file("results.json")
    data["json_path"] = str(json_path)
    json_path.write_text(json.dumps(data, indent=1, default=str))
    text = report.render(data)
    print(text)
    if not args.no_docs:
        Path(args.docs).write_text(text)
        scenarios.log(f"wrote {args.docs}")
    scenarios.log(f"raw results: {json_path}; configs, logs and profiles: {workdir.path}")
    return 0


def _render_again(args, argv: list[str]) -> int:
    """The report from a previous run's raw results (targets evaluated again, profiles kept)."""
    data = json.loads(Path(args.render).read_text())
    for path in args.amend:
        later = json.loads(Path(path).read_text())
        scenarios_ = {r["scenario"] for r in later["runs"]}
        data["runs"] = [r for r in data["runs"] if r["scenario"] not in scenarios_] + later["runs"]
        data.setdefault("amended", []).append(
            f"{', '.join(sorted(scenarios_))} re-measured {later['started']} → {later['finished']} by "
            f"`{later['command']}`" + (f" on {later['code']}" if later.get("code") else ""))
    data["targets"] = [asdict(t) for t in report.evaluate(data["runs"])]
    data["rendered_with"] = " ".join([".venv/bin/python -m bench"] + [shlex.quote(a) for a in argv])
    text = report.render(data)
    print(text)
    if not args.no_docs:
        Path(args.docs).write_text(text)
        scenarios.log(f"wrote {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
