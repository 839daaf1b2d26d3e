"""``ebpf-receiver status``: the servicez view as a terminal table (pure: rows in, text out)."""

from __future__ import annotations

COLUMNS = ("SERVICE", "PID", "CONTAINER", "PROTOCOLS", "TLS", "CONNS", "SPANS", "REQ/S", "ERR%", "P50", "P99", "CALLS/S")


def _duration(seconds) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f}us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f}ms"
    return f"{seconds:.2f}s"


def _ratio(ratio) -> str:
    return "-" if ratio is None else f"{ratio * 100:.1f}"


def _tls(row: dict) -> str:
    stack = row.get("tls_stack") or []
    if not stack:
        return row.get("tls_plaintext", "") if row.get("tls_plaintext") == "not covered" else "-"
    name = stack[0].rsplit("/", 1)[-1] + (f" +{len(stack) - 1}" if len(stack) > 1 else "")
    return f"{name} ({row.get('tls_plaintext', '')})"


def format_servicez(rows: list[dict], width: int | None = None) -> str:
    """One line per process, columns aligned; cells longer than 40 characters are cut."""
    table = [COLUMNS]
    for r in rows:
        table.append((
            r["service"], str(r["pid"]), r.get("container") or "-", ",".join(r.get("protocols") or []) or "-",
            _tls(r), str(r.get("connections", 0)), str(r.get("spans", 0)), f"{r.get('requests_per_s', 0.0):.2f}",
            _ratio(r.get("error_ratio")), _duration(r.get("p50_s")), _duration(r.get("p99_s")),
            f"{r.get('calls_per_s', 0.0):.2f}",
        ))
    table = [tuple(c if len(c) <= 40 else c[:39] + "…" for c in row) for row in table]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    numeric = {1, 5, 6, 7, 8, 9, 10, 11}
    lines = ["  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in table]
    if width:
        lines = [line[:width] for line in lines]
    if len(table) == 1:
        lines.append("(no traced process has been seen yet)")
    return "\n".join(lines)
