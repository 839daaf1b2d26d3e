"""``python -m bench.reliability``: the fault matrix against the real agent (``make reliability``).

    python -m bench.reliability [--quick] [--rows a,b] [--outage-seconds N] [--no-apps] [--write-doc]

Each row starts nginx traffic at a constant rate (with, in most rows, an application's PostgreSQL
and Redis queries at a fixed rate: bench/reliability/apps.py), an agent tracing only those
processes, and a collector (rotel, or the fault sink of bench/reliability/fault_sink.py where the collector must
misbehave on purpose), injects its fault, lets the agent drain and shut down cleanly, and checks
``sent == received (unique span ids) + dropped (counted by the agent)``.  Results are printed,
saved as JSON in the work directory, and with ``--write-doc`` written into docs/reliability.md
between the fault-matrix markers.  Exit 1 when a row's check fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import traceback

from bench.reliability import collector_rows, report, sink_rows
from bench.reliability.apps import DbApp
from bench.reliability.row import Env, RowResult, Scale, start_nginx
from bench.services import Workdir

ROWS = {
    "collector-down": collector_rows.collector_down,
    "unavailable-70": sink_rows.unavailable_70,
    "http-429-503": sink_rows.http_throttled,
    "partial-success": sink_rows.partial_success,
    "slow-collector": sink_rows.slow_collector,
    "sigkill-restart": collector_rows.sigkill_restart,
    "disk-full": collector_rows.disk_full,
    "ring-overflow": sink_rows.ring_overflow,
    "churn": collector_rows.churn,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter rows (about 4 minutes in all)")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of: {', '.join(ROWS)}")
    ap.add_argument("--outage-seconds", type=float, help="how long the collector is down (default 60, quick 10)")
    ap.add_argument("--no-apps", action="store_true", help="nginx traffic only (no PostgreSQL/Redis application)")
    ap.add_argument("--write-doc", action="store_true", help="write the table into docs/reliability.md")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("the fault matrix loads eBPF programs and mounts a tmpfs: run it as root", file=sys.stderr)
        return 2
    names = [n.strip() for n in args.rows.split(",") if n.strip()]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        ap.error(f"unknown rows: {', '.join(unknown)}")
    scale = Scale.quick() if args.quick else Scale()
    if args.outage_seconds is not None:
        scale = dataclasses.replace(scale, outage_seconds=args.outage_seconds)
    workdir = Workdir()
    print(f"work directory {workdir.path}", flush=True)
    load_before = os.getloadavg()
    nginx = start_nginx(workdir)
    app = None
    results: list[RowResult] = []
    try:
        app = None if args.no_apps else DbApp(workdir.path, scale.app_rate).start()
        env = Env(workdir.path, nginx, scale, log=lambda s: print(s, flush=True), app=app)
        for name in names:
            print(f"== {name}", flush=True)
            try:
                result = ROWS[name](env)
            except Exception as e:  # one broken row must not hide the others' figures
                result = RowResult(name, "(row failed to run)")
                result.check(f"row ran: {type(e).__name__}: {e}", False)
                traceback.print_exc()
            results.append(result)
            print(report.row_text(result), flush=True)
    finally:
        if app is not None:
            app.stop()
        nginx.stop()
    meta = {"command": "make reliability" + (" QUICK=1" if args.quick else "")
            + (" RELIABILITY_ARGS=--no-apps" if args.no_apps else ""),
            "scale": dataclasses.asdict(scale), "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count()}
    payload = {"meta": meta, "rows": [report.row_dict(r) for r in results]}
    (workdir.path / "results.json").write_text(json.dumps(payload, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=1)
    if args.write_doc:
        report.write_doc(results, meta)
        print("docs/reliability.md updated", flush=True)
    failed = [r.name for r in results if not r.passed]
    print("all rows passed" if not failed else f"rows with a failed check: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
