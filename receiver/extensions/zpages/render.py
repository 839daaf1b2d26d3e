"""HTML of the zPages, from the view models of :mod:`.views` (pure functions: views in, text out).

Every value is escaped; the page carries its style and script inline (:mod:`.assets`).  Elements
carry ``data-*`` attributes with the raw numbers (``data-error-ratio``...), so tests and scripts
read the page without parsing formatted text.
"""

from __future__ import annotations

import math
import time
from html import escape
from urllib.parse import quote

from receiver.extensions.zpages.assets import SCRIPT, STYLE
from receiver.extensions.zpages.layout import Layout
from receiver.extensions.zpages.tracez import ERROR_BUCKET, LATENCY_LABELS, SampledSpan, SpanNameSummary
from receiver.extensions.zpages.views import PipelineView, ServiceMap, ServiceRow

PAGES = (("servicez", "/debug/servicez"), ("servicemap", "/debug/servicemap"), ("tracez", "/debug/tracez"),
         ("pipelinez", "/debug/pipelinez"))


def page(title: str, current: str, body: str, refresh: float, fragment: bool = False) -> str:
    if fragment:
        return body
    nav = " ".join(f'<a href="{href}" class="{"on" if name == current else ""}">{name}</a>' for name, href in PAGES)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)} · ebpf-receiver</title><style>{STYLE}</style></head><body>"
        f"<header><b>ebpf-receiver</b> {nav}<span class=\"meta\">rendered {stamp}</span></header>"
        f"<main id=\"content\" data-refresh=\"{refresh:g}\">{body}</main>"
        f"<script>{SCRIPT}</script></body></html>"
    )


def index_body() -> str:
    items = "".join(f'<li><a href="{href}">{name}</a></li>' for name, href in PAGES)
    return f"<h1>zPages</h1><ul>{items}</ul>"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio * 100:.1f}%"


def fmt_rate(rate: float) -> str:
    return f"{rate:.2f}" if rate < 10 else f"{rate:.0f}"


def _pills(values) -> str:
    return " ".join(f'<span class="pill">{escape(v)}</span>' for v in values) or '<span class="muted">–</span>'


def _file_pills(paths) -> str:
    """File names, the whole path in the tooltip."""
    return " ".join(f'<span class="pill" title="{escape(p)}">{escape(p.rsplit("/", 1)[-1])}</span>' for p in paths) \
        or '<span class="muted">–</span>'


# -- servicez -----------------------------------------------------------------------------------

SERVICEZ_COLUMNS = ("service", "pid", "container", "executable", "protocols", "TLS stack", "TLS plaintext",
                    "connections", "spans", "req/s", "errors", "p50", "p99", "calls/s", "call errors")


def servicez_body(rows: list[ServiceRow], window: float, exited: int = 0, all_traced: bool = False) -> str:
    head = "".join(f'<th class="{"num" if i >= 7 else ""}">{escape(c)}</th>' for i, c in enumerate(SERVICEZ_COLUMNS))
    body = []
    for r in rows:
        err = "err" if r.error_ratio else ""
        body.append(
            f'<tr class="svc" data-pid="{r.pid}" data-service="{escape(r.service)}" '
            f'data-error-ratio="{"" if r.error_ratio is None else f"{r.error_ratio:.4f}"}">'
            f"<td>{escape(r.service)}</td><td class=\"num\">{r.pid}</td><td>{escape(r.container) or '–'}</td>"
            f"<td>{escape(r.executable) or '–'}</td><td>{_pills(r.protocols)}</td>"
            f"<td>{_file_pills(r.tls_stack)}</td><td>{escape(r.tls_plaintext)}</td>"
            f"<td class=\"num\">{r.connections}</td><td class=\"num\">{r.spans}</td>"
            f"<td class=\"num\">{fmt_rate(r.requests_per_s)}</td><td class=\"num {err}\">{fmt_ratio(r.error_ratio)}</td>"
            f"<td class=\"num\">{fmt_duration(r.p50_s)}</td><td class=\"num\">{fmt_duration(r.p99_s)}</td>"
            f"<td class=\"num\">{fmt_rate(r.calls_per_s)}</td><td class=\"num\">{fmt_ratio(r.call_error_ratio)}</td></tr>"
        )
    empty = "" if rows else '<tr><td colspan="15" class="muted">no traced process has been seen yet</td></tr>'
    return (
        f"<h1>Services <span class=\"muted\">({len(rows)} processes)</span></h1>"
        + ('<p><a href="?">only the processes with traffic</a></p>' if all_traced else
           '<p><a href="?all=1">every traced process, with traffic or not</a></p>')
        + f"<table id=\"services\"><thead><tr>{head}</tr></thead><tbody>{''.join(body)}{empty}</tbody></table>"
        + (f"<p class=\"muted\">{exited} processes that exited more than {window:g} s ago are not listed.</p>"
           if exited else "")
        + f"<p class=\"muted\">Processes with connections tracked now or spans seen. Rates: per second over the last "
        f"{window:g} s; errors, p50 and p99: since the agent started, from the RED histograms of the service instance "
        f"(served requests; calls: requests it made).</p>"
    )


# -- service map --------------------------------------------------------------------------------


def _health(ratio: float | None) -> str:
    if ratio is None:
        return "idle"
    return "bad" if ratio >= 0.05 else ("warn" if ratio >= 0.01 else "ok")


EDGE_LABELS_UP_TO = 80  # more edges: their figures are in each edge's tooltip and the table only


def servicemap_svg(m: ServiceMap, layout: Layout) -> str:
    pos = layout.positions
    labels = len(m.edges) <= EDGE_LABELS_UP_TO
    out = [f'<svg width="{layout.width:.0f}" height="{layout.height:.0f}" '
           f'viewBox="0 0 {layout.width:.0f} {layout.height:.0f}" role="img" aria-label="service map">'
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#8c96a0"/></marker></defs>']
    for e in m.edges:
        (x1, y1), (x2, y2) = pos[e.client], pos[e.server]
        if e.client == e.server:
            d = f"M{x1:.1f},{y1 - 12:.1f} c30,-45 60,0 14,10"
            lx, ly = x1 + 38, y1 - 34
        else:
            dx, dy = x2 - x1, y2 - y1
            dist = math.hypot(dx, dy) or 1.0
            ux, uy = dx / dist, dy / dist
            sx, sy, tx, ty = x1 + ux * 13, y1 + uy * 13, x2 - ux * 15, y2 - uy * 15
            bend = 0.0 if abs(dx) > 1 else 40.0  # same layer: bow out
            cx, cy = (sx + tx) / 2 + bend - uy * 18 * (1 if dx >= 0 else -1), (sy + ty) / 2 + ux * 18 * 0.5
            d = f"M{sx:.1f},{sy:.1f} Q{cx:.1f},{cy:.1f} {tx:.1f},{ty:.1f}"
            lx, ly = (sx + 2 * cx + tx) / 4, (sy + 2 * cy + ty) / 4 - 3
        label = f"{fmt_rate(e.rate_per_s)}/s · {fmt_ratio(e.error_ratio)} · p99 {fmt_duration(e.p99_s)}"
        out.append(
            f'<g class="edge health-{_health(e.error_ratio if e.requests else None)}" data-client="{escape(e.client)}" '
            f'data-server="{escape(e.server)}" data-requests="{e.requests}" data-failed="{e.failed}" '
            f'data-error-ratio="{e.error_ratio:.4f}" data-rate="{e.rate_per_s:.3f}">'
            f'<title>{escape(e.client)} → {escape(e.server)}: {escape(label)} ({e.requests} requests, {e.failed} failed)</title>'
            f'<path d="{d}" marker-end="url(#arrow)"/>'
            + (f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="middle">{escape(label)}</text>' if labels else "")
            + "</g>"
        )
    for n in m.nodes:
        x, y = pos[n.name]
        ext = " external" if n.external else ""
        rate = f"{fmt_rate(n.rate_per_s)}/s, {fmt_ratio(n.error_ratio)} errors" if n.requests else "no requests received"
        out.append(
            f'<g class="node health-{n.health}{ext}" data-node="{escape(n.name)}" data-requests="{n.requests}" '
            f'data-errors="{n.errors}" data-error-ratio="{"" if n.error_ratio is None else f"{n.error_ratio:.4f}"}">'
            f"<title>{escape(n.name)}: {escape(rate)}</title><circle cx=\"{x:.1f}\" cy=\"{y:.1f}\" r=\"11\"/>"
            f'<text x="{x:.1f}" y="{y + 25:.1f}" text-anchor="middle">{escape(n.name)}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)


def servicemap_body(m: ServiceMap, layout: Layout, window: float) -> str:
    rows = "".join(
        f'<tr data-client="{escape(e.client)}" data-server="{escape(e.server)}">'
        f"<td>{escape(e.client)}</td><td>{escape(e.server)}</td><td>{escape(e.connection_type or 'traced')}</td>"
        f"<td class=\"num\">{e.requests}</td><td class=\"num\">{fmt_rate(e.rate_per_s)}</td>"
        f"<td class=\"num {'err' if e.failed else ''}\">{fmt_ratio(e.error_ratio)}</td>"
        f"<td class=\"num\">{fmt_duration(e.p99_s)}</td></tr>"
        for e in m.edges
    )
    overflow = (f"<p class=\"err\">{m.overflow_requests} requests on edges over the service graph's limit "
                "are not drawn.</p>") if m.overflow_requests else ""
    legend = ('<p class="legend"><span><i style="background:var(--ok)"></i>errors &lt; 1%</span>'
              '<span><i style="background:var(--warn)"></i>&lt; 5%</span><span><i style="background:var(--bad)"></i>'
              '≥ 5%</span><span><i style="background:var(--idle)"></i>no requests received</span>'
              '<span><i style="border:2px dashed var(--ext)"></i>external peer</span> '
              '<span class="muted">click a node to show only its edges</span> <b id="filter"></b></p>')
    # A large map's table stays folded: the browser lays out its rows only once it is opened.
    fold = " open" if len(m.edges) <= EDGE_LABELS_UP_TO else ""
    return (
        f"<h1>Service map <span class=\"muted\">({len(m.nodes)} nodes, {len(m.edges)} edges)</span></h1>{legend}"
        f"<div id=\"map\">{servicemap_svg(m, layout)}</div>{overflow}"
        f"<details{fold}><summary><b>Edges</b> ({len(m.edges)})</summary><table id=\"edges\"><thead><tr><th>client</th>"
        "<th>server</th><th>type</th><th class=\"num\">requests</th><th class=\"num\">req/s</th>"
        f"<th class=\"num\">errors</th><th class=\"num\">p99</th></tr></thead><tbody>{rows}</tbody></table></details>"
        f"<p class=\"muted\">Edges: the service graph (client/server span pairs; a database or remote peer without a "
        f"traced server is an external node). Rates over the last {window:g} s; error % and p99 (client side) since "
        f"the agent started. Layout: networkx (layered).</p>"
    )


# -- tracez -------------------------------------------------------------------------------------


def tracez_body(summary: list[SpanNameSummary], dropped: int, selected: str | None, bucket: int | None,
                samples: list[SampledSpan]) -> str:
    head = "".join(f'<th class="num">{escape(label)}</th>' for label in LATENCY_LABELS)
    rows = []
    for s in summary:
        q = quote(s.name, safe="")
        cells = "".join(
            f'<td class="num"><a href="?name={q}&amp;bucket={i}#sampled">{n}</a></td>' if n else '<td class="num">0</td>'
            for i, n in enumerate(s.latency_counts)
        )
        err = f'<a href="?name={q}&amp;bucket={ERROR_BUCKET}#sampled">{s.errors}</a>' if s.errors else "0"
        rows.append(f'<tr class="span-name" data-name="{escape(s.name)}" data-errors="{s.errors}">'
                    f"<td>{escape(s.name)}</td>{cells}<td class=\"num errors{' err' if s.errors else ''}\">{err}</td></tr>")
    out = [
        f"<h1>Spans <span class=\"muted\">({len(summary)} names)</span></h1>"
        f"<table id=\"spans\"><thead><tr><th>span name</th>{head}<th class=\"num\">errors</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    ]
    if dropped:
        out.append(f"<p class=\"err\">{dropped} spans of names over the limit were counted nowhere else.</p>")
    if selected is not None and bucket is not None:
        which = "errors" if bucket == ERROR_BUCKET else f"latency {LATENCY_LABELS[bucket]}"
        out.append(f"<h2 id=\"sampled\">Most recent spans: {escape(selected)}, {escape(which)}</h2>")
        out.append('<table id="samples"><thead><tr><th>start</th><th class="num">duration</th><th>trace id</th>'
                   '<th>span id</th><th>parent</th><th>kind</th><th>service (pid)</th><th>status</th>'
                   '<th>attributes</th></tr></thead><tbody>')
        for sp in samples:
            start = time.strftime("%H:%M:%S", time.localtime(sp.start_unix_nano / 1e9)) + f".{sp.start_unix_nano % 10**9 // 10**6:03d}"
            attrs = " ".join(f'<span class="kv">{escape(k)} = {escape(v)}</span>' for k, v in sp.attributes)
            status = f'<span class="err">ERROR</span> {escape(sp.status_message)}' if sp.error else "unset"
            out.append(
                f'<tr class="sample" data-trace-id="{sp.trace_id}" data-error="{int(sp.error)}"><td>{start}</td>'
                f"<td class=\"num\">{fmt_duration(sp.duration_ns / 1e9)}</td><td>{sp.trace_id}</td><td>{sp.span_id}</td>"
                f"<td>{sp.parent_span_id or '–'}</td><td>{escape(sp.kind)}</td>"
                f"<td>{escape(sp.service)} ({sp.pid})</td><td>{status}</td><td class=\"wrap\">{attrs}</td></tr>"
            )
        if not samples:
            out.append('<tr><td colspan="9" class="muted">none kept</td></tr>')
        out.append("</tbody></table>")
    out.append("<p class=\"muted\">Counts since the agent started, per latency bucket; error spans (status ERROR) "
               "are counted in the errors column only. The most recent spans of each cell are kept.</p>")
    return "".join(out)


# -- pipelinez ----------------------------------------------------------------------------------


def pipelinez_body(pipelines: list[PipelineView], kernel: list[tuple[str, str, float]]) -> str:
    out = ["<h1>Pipelines</h1>"]
    for p in pipelines:
        out.append(f'<h2 class="pipeline" data-pipeline="{escape(p.id)}">{escape(p.id)} '
                   f'<span class="muted">({escape(p.signal)})</span></h2>')
        out.append('<table class="components"><thead><tr><th>component</th><th>state</th><th>queues (used / capacity)</th>'
                   '<th>last error</th><th>counters</th></tr></thead><tbody>')
        for c in p.components:
            st = c.status
            state = getattr(st, "state", "running")
            queues = "<br>".join(f"{escape(n)}: {u} / {cap} {escape(unit)}" for n, u, cap, unit in getattr(st, "queues", ()))
            details = "".join(f"<br>{escape(k)}: {escape(v)}" for k, v in getattr(st, "details", ()))
            err = getattr(st, "last_error", "")
            when = time.strftime(" (%H:%M:%S)", time.localtime(st.last_error_unix)) if err else ""
            counters = "<br>".join(f"{escape(n)}{{{escape(lbl)}}} {v:g}" for n, lbl, v in c.counters)
            out.append(
                f'<tr data-component="{escape(c.kind)}/{escape(c.id)}"><td>{escape(c.kind[:-1])} <b>{escape(c.id)}</b></td>'
                f'<td class="state-{escape(state)}">{escape(state)}</td><td>{queues or "–"}{details}</td>'
                f'<td class="wrap">{escape(err) + escape(when) if err else "–"}</td>'
                f'<td class="wrap">{counters or "–"}</td></tr>'
            )
        out.append("</tbody></table>")
    rows = "".join(f"<tr><td>{escape(n)}</td><td>{escape(lbl)}</td><td class=\"num\">{v:g}</td></tr>" for n, lbl, v in kernel)
    out.append("<h2>Kernel records</h2><table id=\"kernel\"><thead><tr><th>counter</th><th>labels</th>"
               f"<th class=\"num\">value</th></tr></thead><tbody>{rows or '<tr><td colspan=3>–</td></tr>'}</tbody></table>"
               "<p class=\"muted\">produced = delivered + lost (per reason): see docs/architecture.md, Accounting.</p>")
    return "".join(out)
