"""The style sheet and script every zPage carries inline (no file, CDN or font is fetched)."""

from __future__ import annotations

STYLE = """
:root { --ok:#2e9d4f; --warn:#e0a100; --bad:#d33a2c; --idle:#9aa3ad; --ext:#5b6ee1; --fg:#1d2329; --mute:#69737d; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg); background: #f6f7f9; }
header { background: #1d2329; color: #fff; padding: 8px 16px; display: flex; gap: 18px; align-items: baseline; }
header b { font-size: 15px; } header a { color: #c9d3dd; text-decoration: none; } header a.on { color: #fff; border-bottom: 2px solid #7fb2ff; }
header .meta { margin-left: auto; color: #9aa3ad; font-size: 12px; }
main { padding: 12px 16px; }
h1 { font-size: 17px; margin: 4px 0 10px; } h2 { font-size: 14px; margin: 16px 0 6px; }
table { border-collapse: collapse; background: #fff; box-shadow: 0 1px 2px rgba(0,0,0,.08); margin-bottom: 12px; }
th, td { padding: 4px 8px; border-bottom: 1px solid #e6e9ed; text-align: left; vertical-align: top; white-space: nowrap; }
th { background: #eef1f4; font-weight: 600; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.wrap { white-space: normal; max-width: 760px; word-break: break-all; }
.muted { color: var(--mute); } .err { color: var(--bad); font-weight: 600; }
.pill { display: inline-block; padding: 0 6px; border-radius: 8px; background: #e8edf3; margin: 0 2px 1px 0; font-size: 12px; }
.state-retrying, .state-stopped { color: var(--bad); font-weight: 600; } .state-running { color: var(--ok); }
.legend span { margin-right: 14px; } .legend i { display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin-right: 4px; }
#map svg { background: #fff; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.node circle { stroke: #fff; stroke-width: 2; cursor: pointer; }
.node text { font-size: 12px; paint-order: stroke; stroke: #fff; stroke-width: 3px; cursor: pointer; }
.health-ok circle { fill: var(--ok); } .health-warn circle { fill: var(--warn); } .health-bad circle { fill: var(--bad); }
.health-idle circle { fill: var(--idle); } .external circle { stroke: var(--ext); stroke-width: 3; stroke-dasharray: 3 2; }
.edge path { fill: none; stroke: #8c96a0; stroke-width: 1.4; } .edge.health-bad path { stroke: var(--bad); }
.edge.health-warn path { stroke: var(--warn); } .edge text { font-size: 10.5px; fill: #3b444d; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
.dim { opacity: .12; } .selected circle { stroke: #1d2329; stroke-width: 3; }
a { color: #1f5fbf; }
.kv { display: inline-block; margin: 0 12px 1px 0; white-space: nowrap; }
"""

# Refreshes <main data-refresh=N> from the same URL with ?fragment=1 (filters kept), and on the
# service map filters to a clicked node's edges (the selection lives in the URL's #hash).
SCRIPT = """
(function () {
  function applyFilter() {
    var sel = decodeURIComponent((location.hash || '').slice(1));
    var svg = document.querySelector('#map svg');
    if (!svg) return;
    var keep = {};
    if (sel) keep[sel] = true;
    svg.querySelectorAll('g.edge').forEach(function (e) {
      var on = !sel || e.dataset.client === sel || e.dataset.server === sel;
      e.classList.toggle('dim', !on);
      if (on && sel) { keep[e.dataset.client] = true; keep[e.dataset.server] = true; }
    });
    svg.querySelectorAll('g.node').forEach(function (n) {
      n.classList.toggle('dim', !!sel && !keep[n.dataset.node]);
      n.classList.toggle('selected', !!sel && n.dataset.node === sel);
    });
    document.querySelectorAll('#edges tr[data-client]').forEach(function (r) {
      r.style.display = (!sel || r.dataset.client === sel || r.dataset.server === sel) ? '' : 'none';
    });
    var f = document.getElementById('filter');
    if (f) f.textContent = sel ? ('showing the edges of ' + sel + ' (click it again, or the background, to show all)') : '';
  }
  document.addEventListener('click', function (ev) {
    var svg = document.querySelector('#map svg');
    if (!svg || !svg.contains(ev.target)) return;
    var g = ev.target.closest('g.node');
    var name = g ? g.dataset.node : '';
    var cur = decodeURIComponent((location.hash || '').slice(1));
    history.replaceState(null, '', name && name !== cur ? '#' + encodeURIComponent(name) : location.pathname + location.search);
    applyFilter();
  });
  window.addEventListener('hashchange', applyFilter);
  var main = document.querySelector('main[data-refresh]');
  var every = main ? parseFloat(main.dataset.refresh) : 0;
  if (every > 0) {
    setInterval(function () {
      var url = new URL(location.href);
      url.hash = '';
      url.searchParams.set('fragment', '1');
      fetch(url.toString(), {cache: 'no-store'}).then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { main.innerHTML = html; applyFilter(); } })
        .catch(function () {});
    }, every * 1000);
  }
  applyFilter();
})();
"""
