"""The fault matrix's results as text (console), as JSON, and as the table of docs/reliability.md,
written only between the fault-matrix markers so other sections of that file stay untouched."""

from __future__ import annotations

from pathlib import Path

from bench.reliability.row import RowResult
from bench.services import REPO

DOC = REPO / "docs" / "reliability.md"
BEGIN = "<!-- fault-matrix:begin -->"
END = "<!-- fault-matrix:end -->"


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f}"


def row_dict(r: RowResult) -> dict:
    return {
        "name": r.name, "fault": r.fault, "sent": r.sent, "received": r.received, "dropped": r.dropped,
        "dropped_counted": r.dropped_counted, "duplicated": r.duplicated, "gap": r.gap, "tolerance": r.tolerance,
        "red": r.red,
        "services": {n: {"sent": v.sent, "received": v.received, "red": v.red} for n, v in r.services.items()},
        "rss_before": r.rss_before, "rss_after": r.rss_after, "rss_peak": r.rss_peak,
        "fds_before": r.fds_before, "fds_after": r.fds_after, "exit_code": r.exit_code,
        "checks": [{"what": w, "passed": ok} for w, ok in r.checks], "notes": r.notes,
        "seconds": round(r.seconds, 1), "passed": r.passed,
    }


def row_text(r: RowResult) -> str:
    lines = [f"{r.name}: {'PASS' if r.passed else 'FAIL'} ({r.seconds:.0f} s) {r.fault}",
             f"  sent {r.sent}  received {r.received}  dropped {r.dropped_counted} {r.dropped}  "
             f"duplicated {r.duplicated}  gap {r.gap} (tolerance -{r.tolerance})"]
    lines += [f"  {n}: sent {v.sent}  received {v.received}  RED {'–' if v.red is None else f'{v.red:.0f}'}"
              for n, v in r.services.items()]
    lines.append(f"  RSS {_mib(r.rss_before)} -> {_mib(r.rss_after)} MiB (peak {_mib(r.rss_peak)})  "
                 f"fds {r.fds_before} -> {r.fds_after}  exit {r.exit_code}")
    lines += [f"  [{'ok' if ok else 'FAILED'}] {w}" for w, ok in r.checks]
    lines += [f"  note: {n}" for n in r.notes]
    return "\n".join(lines)


def _per_service(r: RowResult, total: int, attr: str) -> str:
    """``total (nginx + PostgreSQL + Redis)``, or the total alone for a row of nginx only."""
    if not r.services:
        return f"{total} (nginx only)"
    return f"{total} ({' + '.join(str(getattr(v, attr)) for v in r.services.values())})"


def _red(r: RowResult) -> str:
    if not r.services:
        return "–" if r.red is None else f"{r.red:.0f}"
    return " / ".join("–" if v.red is None else f"{v.red:.0f}" for v in r.services.values())


def _drops(r: RowResult) -> str:
    if not r.dropped:
        return "0"
    parts = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r.dropped.items()))
    return f"{r.dropped_counted} ({parts})"


def table(results: list[RowResult], meta: dict) -> str:
    out = [
        f"Produced by `{meta['command']}` on {meta['date']} ({meta['cpus']} CPUs shared with other work; "
        f"load average {meta['loadavg_before'][0]:.1f} before, {meta['loadavg_after'][0]:.1f} after).",
        "",
        "| row | fault | sent (nginx + PostgreSQL + Redis) | received, unique (nginx + PostgreSQL + Redis) | "
        "dropped, counted | duplicated | gap (tolerance) | RED count (nginx / PostgreSQL / Redis) | "
        "RSS before → after (peak), MiB | fds before → after | result |",
        "|---|---|--:|--:|---|--:|--:|--:|---|---|---|",
    ]
    for r in results:
        out.append(
            f"| {r.name} | {r.fault} | {_per_service(r, r.sent, 'sent')} | {_per_service(r, r.received, 'received')} | "
            f"{_drops(r)} | {r.duplicated} | {r.gap} (-{r.tolerance}) | {_red(r)} | "
            f"{_mib(r.rss_before)} → {_mib(r.rss_after)} ({_mib(r.rss_peak)}) | {r.fds_before} → {r.fds_after} | "
            f"{'pass' if r.passed else '**FAIL**'} |"
        )
    out.append("")
    for r in results:
        failed = [w for w, ok in r.checks if not ok]
        details = [f"checks failed: {'; '.join(failed)}"] if failed else []
        details += r.notes
        if details:
            out.append(f"- **{r.name}**: " + "; ".join(details) + ".")
    return "\n".join(out).rstrip() + "\n"


def replace_between_markers(text: str, body: str) -> str:
    """``text`` with what lies between the markers replaced by ``body`` (markers kept)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{DOC} has no {BEGIN} ... {END} block")
    return text[: start + len(BEGIN)] + "\n" + body + text[end:]


def write_doc(results: list[RowResult], meta: dict, path: Path = DOC) -> None:
    path.write_text(replace_between_markers(path.read_text(), table(results, meta)))
