"""The report as one self-contained HTML file: styles, plotly.min.js and the data inlined.

plotly.min.js comes from the ``plotly`` Python package (the ``report`` extra), read as a
file: no plotly Python code runs, and the page loads nothing from the network. Charts are
drawn when they scroll into view (``#render-all`` in the URL draws every one at once, as
printing does), so a report with hundreds of charts opens quickly.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from alerts.report.periods import Difference, Incident, IspSummary, RuleSummary
from alerts.report.series import RuleSeries
from schemas.durations import format_duration


class ReportDependencyError(RuntimeError):
    """The charting library is not installed."""


def plotly_js() -> str:
    """The text of plotly.min.js from the installed plotly package."""
    try:
        files = resources.files("plotly")
    except ModuleNotFoundError:
        raise ReportDependencyError(
            "the HTML report needs plotly: pip install 'bouncewatch[report]' (or plotly)"
        ) from None
    return (files / "package_data" / "plotly.min.js").read_text(encoding="utf-8")


@dataclass
class Chart:
    id: str
    run: int  # 0: the rule set, 1: the compared one
    series: RuleSeries
    incidents: list[Incident]


@dataclass
class RunView:
    label: str
    rules_source: str
    transitions: int
    incidents: list[Incident]
    summary: list[RuleSummary]
    isps: list[IspSummary]


@dataclass
class ReportView:
    title: str
    source: str
    events: int
    first_event: float | None
    last_event: float | None
    runs: list[RunView]
    #: Sections: (ISP key, ISP name, attempts, rows of charts; a row has one chart per run).
    sections: list[tuple[str, str, int, list[list[Chart | str]]]]
    differences: list[Difference] | None = None
    notes: list[str] = field(default_factory=list)


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _time(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float) -> str:
    whole = round(seconds)
    return format_duration(whole) if whole > 0 else "0s"


def _fmt(value: float | None, is_rate: bool) -> str:
    if value is None:
        return "n/a"
    if not is_rate:
        return f"{value:,.0f}"
    # two decimals under 1 %, as alerts show them: complaint rates live there
    percent = value * 100
    return f"{percent:.2f}%" if 0 < abs(percent) < 1 else f"{percent:.1f}%"


def _group(group: dict[str, str]) -> str:
    return "".join(f" {k}={v}" for k, v in group.items())


def _round(values: Sequence[float | None]) -> list[float | None]:
    return [None if v is None else float(f"{v:.5g}") for v in values]


def _chart_data(chart: Chart) -> dict[str, Any]:
    s = chart.series
    fires = []
    for incident in chart.incidents:
        if incident.fired_at is None:
            continue
        ev = incident.evidence()
        fires.append(
            {
                "t": incident.fired_at,
                "v": float(f"{ev.value:.5g}"),
                "id": incident.id,
                "label": f"{incident.severity} {ev.summary or incident.rule}",
            }
        )
    return {
        "id": chart.id,
        "t0": s.times[0] if s.times else 0,
        "step": s.step_seconds,
        "values": _round(s.values),
        "baselines": _round(s.baselines),
        "attempts": s.attempts,
        "levels": s.levels,
        "spike": s.rule_type == "spike",
        "rate": s.is_rate,
        "metric": s.metric_label,
        "periods": [
            [p.start, p.end, p.state, p.severity] for i in chart.incidents for p in i.periods
        ],
        "resolved": [i.resolved_at for i in chart.incidents if i.resolved_at is not None],
        "fires": fires,
    }


STYLE = """
:root { --fg:#1f2937; --muted:#6b7280; --line:#e5e7eb; --warn:#f59e0b; --crit:#dc2626;
  --pend:#eab308; --ok:#16a34a; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  margin: 0 auto; max-width: 1500px; padding: 16px 24px 64px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 2px solid var(--line);
  padding-bottom: 4px; }
h3 { font-size: 15px; margin: 16px 0 4px; }
.meta { color: var(--muted); margin-bottom: 16px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left;
  vertical-align: top; }
th { background: #f9fafb; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.sev-warning { color: #b45309; font-weight: 600; }
.sev-critical { color: var(--crit); font-weight: 600; }
.grid { display: grid; gap: 16px; } .grid.runs-2 { grid-template-columns: 1fr 1fr; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; min-width: 0; }
.card h3 { margin-top: 4px; } .card .sub { color: var(--muted); font-size: 12px; }
.chart { height: 320px; } .empty { color: var(--muted); padding: 24px; text-align: center; }
details { margin: 4px 0; } summary { cursor: pointer; }
.evidence { margin: 6px 0 12px 16px; font-size: 13px; } .evidence table { margin: 4px 0; }
.reply { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap;
  word-break: break-word; }
.legend span { display: inline-block; margin-right: 14px; }
.sw { display: inline-block; width: 12px; height: 12px; vertical-align: -1px; margin-right: 4px;
  border-radius: 2px; }
:target { outline: 2px solid #2563eb; outline-offset: 2px; }
nav a { margin-right: 10px; }
"""

SCRIPT = r"""
(function () {
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var byId = {};
  data.charts.forEach(function (c) { byId[c.id] = c; });
  var COLORS = {pending: 'rgba(234,179,8,0.18)', warning: 'rgba(245,158,11,0.28)',
                critical: 'rgba(220,38,38,0.28)'};
  var LEVEL = {warning: '#d97706', critical: '#dc2626'};
  function d(t) { return new Date(t * 1000); }
  function draw(el) {
    var c = byId[el.getAttribute('data-chart')];
    if (!c || el.getAttribute('data-drawn')) return;
    el.setAttribute('data-drawn', '1');
    var x = c.values.map(function (_, i) { return d(c.t0 + i * c.step); });
    var traces = [{x: x, y: c.attempts, type: 'bar', name: 'attempts', yaxis: 'y2',
      marker: {color: 'rgba(100,116,139,0.25)'}, hovertemplate: '%{y:,} attempts<extra></extra>'}];
    var fmt = c.rate ? '.1%' : ',.0f';
    traces.push({x: x, y: c.values, type: 'scatter', mode: 'lines', name: c.metric,
      line: {color: '#2563eb', width: 1.5}, connectgaps: false,
      hovertemplate: '%{y:' + fmt + '}<extra>' + c.metric + '</extra>'});
    var x2 = [x[0], x[x.length - 1]];
    Object.keys(c.levels).forEach(function (sev) {
      var lv = c.levels[sev];
      if (c.spike) {
        traces.push({x: x, y: c.baselines.map(function (b) { return b === null ? null : b * lv; }),
          type: 'scatter', mode: 'lines', name: sev + ': ' + lv + '\u00d7 baseline',
          line: {color: LEVEL[sev] || '#000', width: 1, dash: 'dash'}});
      } else {
        traces.push({x: x2, y: [lv, lv], type: 'scatter', mode: 'lines', name: sev + ' threshold',
          line: {color: LEVEL[sev] || '#000', width: 1, dash: 'dash'}, hoverinfo: 'skip'});
      }
    });
    if (c.spike) {
      traces.push({x: x, y: c.baselines, type: 'scatter', mode: 'lines', name: 'baseline',
        line: {color: '#64748b', width: 1, dash: 'dot'}});
    }
    if (c.fires.length) {
      traces.push({x: c.fires.map(function (f) { return d(f.t); }),
        y: c.fires.map(function (f) { return f.v; }), type: 'scatter', mode: 'markers',
        name: 'fired (click: evidence)', customdata: c.fires.map(function (f) { return f.id; }),
        text: c.fires.map(function (f) { return f.label; }),
        marker: {symbol: 'triangle-up', size: 11, color: '#b91c1c'},
        hovertemplate: '%{text}<extra></extra>'});
    }
    var shapes = c.periods.map(function (p) {
      return {type: 'rect', xref: 'x', yref: 'paper', x0: d(p[0]), x1: d(p[1]), y0: 0, y1: 1,
        fillcolor: p[2] === 'pending' ? COLORS.pending : (COLORS[p[3]] || COLORS.warning),
        line: {width: 0}, layer: 'below'};
    });
    c.resolved.forEach(function (t) {
      shapes.push({type: 'line', xref: 'x', yref: 'paper', x0: d(t), x1: d(t), y0: 0, y1: 1,
        line: {color: '#16a34a', width: 1.5, dash: 'dot'}});
    });
    var layout = {margin: {l: 56, r: 56, t: 8, b: 32}, showlegend: true,
      legend: {orientation: 'h', y: -0.18, font: {size: 11}}, hovermode: 'x unified',
      xaxis: {type: 'date'}, yaxis: {title: {text: c.metric}, tickformat: c.rate ? '.0%' : ',',
      rangemode: 'tozero'}, yaxis2: {overlaying: 'y', side: 'right', showgrid: false,
      rangemode: 'tozero', title: {text: 'attempts'}}, shapes: shapes, bargap: 0};
    Plotly.newPlot(el, traces, layout, {responsive: true, displaylogo: false});
    el.on('plotly_click', function (ev) {
      var p = ev.points && ev.points[0];
      if (p && p.customdata) { location.hash = p.customdata; }
    });
  }
  var charts = Array.prototype.slice.call(document.querySelectorAll('[data-chart]'));
  function drawAll() { charts.forEach(draw); }
  if (location.hash === '#render-all' || !('IntersectionObserver' in window)) {
    drawAll();
  } else {
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) { draw(e.target); io.unobserve(e.target); }
      });
    }, {rootMargin: '400px'});
    charts.forEach(function (el) { io.observe(el); });
  }
  window.addEventListener('beforeprint', drawAll);
  // A link to an alert's evidence opens it, and the list it is folded in.
  function reveal() {
    var id = location.hash.slice(1);
    var el = id && document.getElementById(id);
    for (; el; el = el.parentElement) { if (el.tagName === 'DETAILS') el.open = true; }
  }
  window.addEventListener('hashchange', reveal);
  reveal();
  window.addEventListener('hashchange', function () {
    if (location.hash === '#render-all') drawAll();
  });
})();
"""


def _evidence(incident: Incident, is_rate: bool, volume_label: str = "attempts") -> str:
    ev = incident.evidence()
    rows = [
        f"<details id='{_esc(incident.id)}'><summary><span class='sev-{_esc(incident.severity)}'>"
        f"{_esc(incident.severity)}</span> {_esc(incident.rule)} on {_esc(incident.isp_name)}"
        f"{_esc(_group(incident.group))}: {_esc(_time(incident.started_at))}"
        f" &rarr; {_esc(_time(incident.resolved_at) or 'still firing at the end')}"
        f"{'' if incident.fired else ' (pending, never fired)'}</summary><div class='evidence'>"
    ]
    limit = ""
    if ev.threshold is not None:
        limit = f"threshold {_fmt(ev.threshold, is_rate)}"
    elif ev.baseline is not None:
        limit = f"baseline {_fmt(ev.baseline, is_rate)}"
    rows.append(
        f"<p>{_esc(ev.summary)}</p><p>value {_esc(_fmt(ev.value, is_rate))} ({_esc(limit)}) over "
        f"{_esc(format_duration(ev.window_seconds))}, {ev.attempts:,} {volume_label}; firing for "
        f"{_esc(_duration(incident.firing_seconds()))}; cause "
        f"{_esc(ev.cause.value if ev.cause else 'n/a')}</p>"
    )
    if ev.recommended_action:
        rows.append(f"<p><b>Recommended:</b> {_esc(ev.recommended_action)}</p>")
    if ev.categories:
        total = sum(ev.categories.values()) or 1
        cells = "".join(
            f"<tr><td>{_esc(k)}</td><td class='n'>{v:,}</td><td class='n'>{v / total:.0%}</td></tr>"
            for k, v in sorted(ev.categories.items(), key=lambda kv: -kv[1])
        )
        rows.append(
            "<table><tr><th>failure category</th><th>attempts</th><th>share</th></tr>"
            f"{cells}</table>"
        )
    if ev.top_replies:
        cells = "".join(
            f"<tr><td class='n'>{r.count:,}</td><td>{_esc(r.category.value)}</td>"
            f"<td>{_esc(r.code or '')} {_esc(r.enhanced or '')} {_esc(r.isp_code or '')}</td>"
            f"<td class='reply'>{_esc(r.text)}</td></tr>"
            for r in ev.top_replies
        )
        rows.append(
            "<table><tr><th>count</th><th>category</th><th>code</th><th>sample reply</th></tr>"
            f"{cells}</table>"
        )
    changes = ", ".join(
        f"{_time(t.event_time.timestamp())} {t.kind.value} ({t.severity.value})"
        for t in incident.transitions
    )
    rows.append(f"<p class='sub'>transitions: {_esc(changes)}</p></div></details>")
    return "".join(rows)


def _card(chart: Chart | str, run_label: str) -> str:
    if isinstance(chart, str):  # why this run has no chart here
        return f"<div class='card'><div class='empty'>{_esc(run_label)}: {_esc(chart)}</div></div>"
    s = chart.series
    if s.rule_type == "spike":
        levels = ", ".join(f"{k} {v:g}x baseline" for k, v in s.levels.items())
    else:
        levels = ", ".join(f"{k} {s.comparison} {_fmt(v, s.is_rate)}" for k, v in s.levels.items())
    sub = (
        f"{_esc(s.metric_label)} over {_esc(format_duration(s.window_seconds))}, "
        f"min {s.min_attempts:,} {s.volume_label}; {_esc(levels)}"
        f"{'; judged by its Wilson 95% bound' if s.confidence == 'wilson' else ''}; "
        f"one point per {_esc(format_duration(s.step_seconds))} (highest value)"
    )
    evidence = "".join(_evidence(i, s.is_rate, s.volume_label) for i in chart.incidents)
    if len(chart.incidents) > 5:
        evidence = f"<details><summary>{len(chart.incidents)} alerts</summary>{evidence}</details>"
    title = f"{s.rule}{_group(s.group)}"
    prefix = f"{run_label}: " if run_label else ""
    return (
        f"<div class='card'><h3>{_esc(prefix + title)}</h3><div class='sub'>{sub}</div>"
        f"<div class='chart' data-chart='{_esc(chart.id)}'></div>{evidence}</div>"
    )


def _summary_table(run: RunView) -> str:
    if not run.summary:
        return "<p>No alert.</p>"
    rows = "".join(
        f"<tr><td>{_esc(r.rule)}</td><td class='sev-{_esc(r.severity)}'>{_esc(r.severity)}</td>"
        f"<td class='n'>{r.fired}</td><td class='n'>{r.pending_only}</td>"
        f"<td class='n'>{_esc(_duration(r.firing_seconds))}</td>"
        f"<td class='n'>{len(r.keys)}</td></tr>"
        for r in run.summary
    )
    return (
        "<table><tr><th>rule</th><th>severity (highest)</th><th>fired</th>"
        "<th>pending, never fired</th><th>time firing</th><th>keys</th></tr>"
        f"{rows}</table>"
    )


def _isp_table(run: RunView, limit: int = 15) -> str:
    rows = "".join(
        f"<tr><td><a href='#isp-{_esc(r.isp)}'>{_esc(r.name)}</a></td>"
        f"<td class='n'>{r.attempts:,}</td><td class='n'>{r.alerts}</td>"
        f"<td class='n'>{_esc(_duration(r.firing_seconds))}</td></tr>"
        for r in run.isps[:limit]
    )
    return (
        "<table><tr><th>ISP</th><th>attempts</th><th>alerts fired</th><th>time firing</th></tr>"
        f"{rows}</table>"
    )


def _incident_list(run: RunView, limit: int = 200) -> str:
    fired = [i for i in run.incidents if i.fired]
    if not fired:
        return ""
    items = "".join(
        f"<tr><td><a href='#{_esc(i.id)}'>{_esc(_time(i.fired_at))}</a></td>"
        f"<td>{_esc(i.rule)}</td><td>{_esc(i.isp_name)}{_esc(_group(i.group))}</td>"
        f"<td class='sev-{_esc(i.severity)}'>{_esc(i.severity)}</td>"
        f"<td class='n'>{_esc(_duration(i.firing_seconds()))}</td>"
        f"<td>{_esc(i.evidence().summary)}</td></tr>"
        for i in fired[:limit]
    )
    more = f"<p class='sub'>{len(fired) - limit} more below.</p>" if len(fired) > limit else ""
    return (
        "<details><summary>Every alert fired (links to its evidence)</summary><table><tr>"
        "<th>fired</th><th>rule</th><th>key</th><th>severity</th><th>firing</th><th>summary</th>"
        f"</tr>{items}</table>{more}</details>"
    )


def _differences(view: ReportView) -> str:
    diffs = view.differences
    if diffs is None:
        return ""
    a, b = view.runs[0].label, view.runs[1].label
    if not diffs:
        return f"<h2 id='compare'>{_esc(a)} vs {_esc(b)}</h2><p>Both fire the same alerts.</p>"

    def links(found: list[Incident], shown: int = 4) -> str:
        if not found:
            return ""
        each = [
            f"<a href='#{_esc(i.id)}'>{_esc(_time(i.fired_at))} ({_esc(i.severity)})</a>"
            for i in found
        ]
        head = f"<b>{len(found)}</b>: " + ", ".join(each[:shown])
        if len(each) <= shown:
            return head
        return (
            f"{head} <details><summary>{len(each) - shown} more</summary>"
            + ", ".join(each[shown:])
            + "</details>"
        )

    rows = "".join(
        f"<tr><td>{_esc(d.rule)}</td><td>{_esc(d.isp_name)}{_esc(_group(_key_group(d.key)))}</td>"
        f"<td>{links(d.only_a)}</td><td>{links(d.only_b)}</td><td class='n'>{d.both}</td></tr>"
        for d in diffs
    )
    return (
        f"<h2 id='compare'>What fires in one rule set and not the other</h2>"
        f"<p class='sub'>Fired alerts of the same rule name and key that no alert of the other "
        f"set overlaps in time.</p><table><tr><th>rule</th><th>key</th><th>only in {_esc(a)}</th>"
        f"<th>only in {_esc(b)}</th><th>in both</th></tr>{rows}</table>"
    )


def _key_group(key: str) -> dict[str, str]:
    from aggregation.buckets import parse_key

    return parse_key(key)[1]


def render(view: ReportView, charts: Sequence[Chart]) -> str:
    """The whole HTML page."""
    data = {"charts": [_chart_data(c) for c in charts]}
    # JSON inside <script>: "</" must not close the element.
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    runs = len(view.runs)
    head = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_esc(view.title)}</title><style>{STYLE}</style></head><body>"
    )
    meta = (
        f"<h1>{_esc(view.title)}</h1><div class='meta'>{_esc(view.source)}: {view.events:,} "
        f"events, {_esc(_time(view.first_event))} to {_esc(_time(view.last_event))} UTC; "
        + "; ".join(
            f"{_esc(r.label)}: {_esc(r.rules_source)}, {r.transitions:,} transitions"
            for r in view.runs
        )
        + "</div>"
    )
    legend = (
        "<p class='legend'><span><i class='sw' style='background:rgba(234,179,8,.35)'></i>pending"
        "</span><span><i class='sw' style='background:rgba(245,158,11,.5)'></i>firing (warning)"
        "</span><span><i class='sw' style='background:rgba(220,38,38,.5)'></i>firing (critical)"
        "</span><span><i class='sw' style='background:#16a34a'></i>resolved</span>"
        "<span>bars: attempts (right axis); dashed: thresholds, or factor &times; baseline for "
        "spike rules; rates are per delivery attempt, retries included</span></p>"
    )
    parts = [head, meta]
    nav = "".join(
        f"<a href='#isp-{_esc(isp)}'>{_esc(name)}</a>" for isp, name, _, _ in view.sections
    )
    parts.append(f"<nav>ISPs: {nav}</nav>")
    parts.append("<h2 id='summary'>Summary</h2>")
    parts.append(f"<div class='grid runs-{runs}'>")
    for run in view.runs:
        parts.append(
            f"<div><h3>{_esc(run.label)}: alerts per rule and severity</h3>"
            f"{_summary_table(run)}<h3>Busiest ISPs</h3>{_isp_table(run)}"
            f"{_incident_list(run)}</div>"
        )
    parts.append("</div>")
    parts.append(_differences(view))
    for note in view.notes:
        parts.append(f"<p class='sub'>{_esc(note)}</p>")
    parts.append(legend)
    for isp, name, attempts, rows in view.sections:
        parts.append(
            f"<h2 id='isp-{_esc(isp)}'>{_esc(name)} <small>({attempts:,} attempts)</small></h2>"
        )
        for row in rows:
            parts.append(f"<div class='grid runs-{runs}'>")
            for index, chart in enumerate(row):
                label = view.runs[index].label if runs > 1 else ""
                parts.append(_card(chart, label))
            parts.append("</div>")
    parts.append(f"<script type='application/json' id='report-data'>{payload}</script>")
    parts.append(f"<script>{plotly_js()}</script><script>{SCRIPT}</script></body></html>")
    return "".join(parts)
