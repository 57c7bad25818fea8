"""The population report: one self-contained HTML file (inline CSS and SVG, no scripts, no
network), readable offline and printable.

It shows, for the run: where the rules came from (rulebook id, version, sha256, each ruleset's
status, with a banner while any is a draft); what was read, accepted and rejected; the INT
development dashboard per neighbourhood (a chart per measure with the guidance's expectation
drawn on it, and the full table); the data-quality findings by id; the reasons rows were
rejected; and how every figure is defined.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..guidance_names import guidance_name
from ..language.plain import format_value
from ..review.approvals import dashboard_status
from .columns import DictionaryEntry
from .dashboard import (
    ALL_NEIGHBOURHOODS,
    DashboardTable,
    Measure,
    csv_header,
    describe_expect,
    unavailable,
)
from .disclosure import round_count
from .engine import provenance
from .expected import GUIDE_SOURCE, SyntheticScale

if TYPE_CHECKING:
    from ..rulebook import Rulebook
    from .engine import PopulationRun

__all__ = ["bar_chart_svg", "write_report"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:0;color:#1b1b1b;
background:#fafafa}
main{max-width:1100px;margin:0 auto;padding:1.5rem}
h1{font-size:1.6rem;margin:.2rem 0}
h2{font-size:1.25rem;margin-top:2rem;border-bottom:2px solid #005eb8;padding-bottom:.2rem}
h3{font-size:1.05rem;margin:1.4rem 0 .3rem}
.meta{color:#444;font-size:.9rem}.meta code{word-break:break-all}
.banner{background:#fff4d6;border-left:6px solid #f0a500;
padding:.6rem .9rem;margin:1rem 0}.ok{background:#e9f6ec;border-left:6px solid #2e7d32;
padding:.6rem .9rem;margin:1rem 0}.bad{background:#fdecea;border-left:6px solid #c62828;
padding:.6rem .9rem;margin:1rem 0}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0;background:#fff}
th,td{border:1px solid #d0d0d0;padding:.25rem .45rem;text-align:right;vertical-align:top}
th{background:#eef3f8}td.l,th.l{text-align:left}tr.total td{font-weight:600;background:#f3f3f3}
.scroll{overflow-x:auto}.small{font-size:.8rem;color:#555}svg{background:#fff;max-width:100%}
.above{color:#b35c00}.below{color:#005eb8}.within,.about{color:#2e7d32}
code{background:#f0f0f0;padding:0 .2rem}code.hash{font-size:.72rem;word-break:break-all}
.headline{font-size:1.05rem}
.synthetic{background:#e8f1fb;border-left:6px solid #005eb8;padding:.6rem .9rem;margin:1rem 0}
@media (max-width:600px){main{padding:.6rem}table{font-size:.75rem}h1{font-size:1.3rem}}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _fmt(value: Any, share: bool = False) -> str:
    if value is None:
        return "–"
    if share and isinstance(value, float):
        return f"{value * 100:.1f}%"
    if isinstance(value, int):
        return f"{value:,}"
    return format_value(value)


def _legend(items: Sequence[tuple[str, str]], x0: float, width: float, y0: float
            ) -> tuple[list[str], float]:
    """Legend swatches wrapped onto as many rows as ``width`` needs; returns (svg, height)."""
    out: list[str] = []
    x, y = x0, y0
    for colour, name in items:
        w = 18 + 6.4 * len(name)
        if x > x0 and x + w > x0 + width:
            x, y = x0, y + 16
        out.append(f'<rect x="{x:.1f}" y="{y}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{x + 13:.1f}" y="{y + 9}">{_e(name)}</text>')
        x += w + 8
    return out, (y - y0 + 16) if items else 0.0


def bar_chart_svg(labels: Sequence[str], values: Sequence[float | None], *,
                  share: bool = False, line: float | None = None,
                  band: tuple[float, float] | None = None, title: str = "",
                  stacks: Sequence[Sequence[float]] | None = None,
                  stack_names: Sequence[str] = (), band_label: str = "",
                  line_label: str = "expected") -> str:
    """A horizontal bar chart as inline SVG: one bar per label, an optional reference line and
    shaded band (the guidance's expectation, labelled in the legend), or stacked bars
    (``stacks``: per label, the parts; legend wrapped so no name is cut off). The SVG has a
    ``viewBox`` and scales to the width of its container (down to a phone's)."""
    palette = ["#005eb8", "#41b6e6", "#768692", "#ffb81c", "#ed8b00", "#78be20", "#7c2855",
               "#330072", "#00a499", "#8a1538"]
    label_w, bar_w, row_h = 250, 500, 18
    total_w = label_w + bar_w + 90
    legend: list[tuple[str, str]] = []
    if stacks:
        legend = [(palette[i % len(palette)], n) for i, n in enumerate(stack_names)]
    if band is not None:
        legend.append(("#cfe8d4", band_label or "expected range"))
        legend.append(("#ed8b00", "outside the range"))
    if line is not None:
        legend.append(("#c62828", f"{_fmt(line, share)} {line_label}"))
    legend_svg, legend_h = _legend(legend, 8, total_w - 16, 6)
    top = int(legend_h) + 14
    height = top + row_h * len(labels) + 10
    nums = [v for v in values if v is not None]
    hi = max([*nums, line or 0, (band[1] if band else 0)], default=0)
    if stacks:
        hi = max([sum(s) for s in stacks] + [hi])
    hi = hi * 1.08 or 1.0

    def x(v: float) -> float:
        return label_w + bar_w * v / hi

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {total_w} {height}" '
           f'width="100%" preserveAspectRatio="xMinYMin meet" role="img" '
           f'aria-label="{_e(title)}" font-size="11" '
           f'font-family="system-ui,Arial,sans-serif"><title>{_e(title)}</title>']
    out += legend_svg
    if band is not None:
        out.append(f'<rect x="{x(band[0]):.1f}" y="{top - 4}" width="{x(band[1]) - x(band[0]):.1f}"'
                   f' height="{row_h * len(labels) + 8}" fill="#cfe8d4" opacity="0.7">'
                   f"<title>{_e(band_label or 'expected range')}</title></rect>")
    for i, label in enumerate(labels):
        y = top + i * row_h
        shown = label if len(label) <= 36 else label[:35] + "…"
        out.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{_e(shown)}'
                   f"<title>{_e(label)}</title></text>")
        if stacks:
            x0 = float(label_w)
            for j, part in enumerate(stacks[i]):
                w = bar_w * part / hi
                if w > 0:
                    out.append(f'<rect x="{x0:.1f}" y="{y + 2}" width="{w:.1f}" '
                               f'height="{row_h - 5}" fill="{palette[j % len(palette)]}">'
                               f'<title>{_e(label)}: {_e(stack_names[j])} {part:,.0f}</title>'
                               "</rect>")
                x0 += w
            out.append(f'<text x="{x0 + 4:.1f}" y="{y + 12}">{sum(stacks[i]):,.0f}</text>')
            continue
        v = values[i]
        if v is None:
            out.append(f'<text x="{label_w + 4}" y="{y + 12}" fill="#777">not available</text>')
            continue
        colour = "#005eb8"
        if band is not None and not band[0] <= v <= band[1]:
            colour = "#ed8b00"
        out.append(f'<rect x="{label_w}" y="{y + 2}" width="{bar_w * v / hi:.1f}" '
                   f'height="{row_h - 5}" fill="{colour}"><title>{_e(label)}: '
                   f"{_e(_fmt(v, share))}</title></rect>")
        out.append(f'<text x="{x(v) + 4:.1f}" y="{y + 12}">{_e(_fmt(v, share))}</text>')
    if line is not None:
        out.append(f'<line x1="{x(line):.1f}" x2="{x(line):.1f}" y1="{top - 6}" '
                   f'y2="{top + row_h * len(labels) + 4}" stroke="#c62828" stroke-width="2" '
                   f'stroke-dasharray="4 3"/>')
    out.append("</svg>")
    return "".join(out)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1,
           total_last: bool = False, titles: Sequence[str] | None = None) -> str:
    out = ['<div class="scroll"><table><thead><tr>']
    tips = titles or [""] * len(headers)
    out += [f'<th class="{"l" if i < left else ""}" title="{_e(tip)}">{_e(h)}</th>'
            for i, (h, tip) in enumerate(zip(headers, tips, strict=True))]
    out.append("</tr></thead><tbody>")
    for r, row in enumerate(rows):
        cls = ' class="total"' if total_last and r == len(rows) - 1 else ""
        out.append(f"<tr{cls}>")
        out += [f'<td class="{"l" if i < left else ""}">{cell}</td>' for i, cell in enumerate(row)]
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _number(value: Any) -> float | None:
    """A figure for a chart: None when not available or suppressed."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _initial_state_column(book: Rulebook, m: Measure) -> str | None:
    """For a count of each pathway state: the column of the pathway's initial state (nearly
    everyone; left out of the chart so the states that matter can be seen)."""
    each = m.definition.count_each
    if each is None or each.fact is None:
        return None
    fdef = book.facts_file.facts.get(each.fact)
    if fdef is None or fdef.kind != "pathway" or fdef.field != "state":
        return None
    initial = book.pathway.definition.initial
    return next((c.name for c in m.columns if c.title.endswith(f": {initial}")), None)


def _measure_section(m: Measure, table: DashboardTable, book: Rulebook) -> str:
    rows = [r for r in table.rows if r["neighbourhood"] != ALL_NEIGHBOURHOODS]
    total = next((r for r in table.rows if r["neighbourhood"] == ALL_NEIGHBOURHOODS), None)
    labels = [r["neighbourhood"] for r in rows]
    parts = [f'<h3 id="m-{_e(m.id)}">{_e(m.definition.title)}</h3>']
    expect = describe_expect(m)
    line = band = None
    band_label = ""
    if m.expect is not None:
        kind, a, b = m.expect
        if kind == "about":
            line, band = a, (a - b, a + b)
            band_label = f"guidance: {expect}"
        else:
            band = (a, b)
            band_label = f"guidance: {expect} per neighbourhood"
    share = m.kind == "share"
    if m.kind == "count_each":
        hidden = _initial_state_column(book, m)
        shown = [c for c in m.columns if c.name != hidden]
        names = [c.title.split(": ", 1)[-1] for c in shown]
        stacks = [[_number(r.get(c.name)) or 0.0 for c in shown] for r in rows]
        parts.append(bar_chart_svg(labels, [None] * len(labels), stacks=stacks,
                                   stack_names=names, title=m.definition.title))
        if hidden is not None and total is not None:
            parts.append(f'<p class="small">Not drawn: the {_e(_fmt(total.get(hidden)))} people '
                         f"in the pathway's first state "
                         f"({_e(book.pathway.definition.initial)}), so the other states can "
                         "be seen.</p>")
    else:
        values = [_number(r.get(m.id)) for r in rows]
        parts.append(bar_chart_svg(labels, values, share=share, line=line, band=band,
                                   title=m.definition.title, band_label=band_label,
                                   line_label="expected (guidance)"))
    if total is not None:
        if m.kind == "count_each":
            bits = ", ".join(f"{c.title.split(': ', 1)[-1]} {_fmt(total.get(c.name))}"
                             for c in m.columns)
            parts.append(f'<p class="small">All neighbourhoods: {_e(bits)}</p>')
        else:
            status = total.get(f"{m.id}_vs_guidance", "")
            note = ""
            if m.expect is not None and not status:
                note = (f" (the guidance's {_e(expect)} is per neighbourhood; the total is not "
                        "compared with it)")
            parts.append(f'<p class="small">All neighbourhoods: '
                         f'<b>{_e(_fmt(total.get(m.id), share))}</b>'
                         + (f' (<span class="{_e(status.split()[0])}">{_e(status)}</span>; '
                            f'guidance: {_e(expect)})' if status else note) + "</p>")
    return "".join(parts)


def _summary_section(table: DashboardTable, scale: SyntheticScale | None) -> str:
    """The first screen: per neighbourhood, the caseload against the guide's range and the
    identified share against the guide's own figure for that neighbourhood."""
    d = table.dashboard
    caseload = next((m for m in d.available if m.id == "caseload"), None)
    ident = next((m for m in d.available if m.id == "identified_share"), None)
    rows = [r for r in table.rows if r["neighbourhood"] != ALL_NEIGHBOURHOODS]
    out = ['<h2 id="summary">Summary by neighbourhood</h2>']
    sample = scale is not None and not scale.is_full_scale

    def full_scale_status(r: Mapping[str, Any]) -> str:
        n = _number(r.get("caseload"))
        if caseload is None or scale is None or n is None:
            return ""
        return table.status(caseload, n * scale.factor)

    if caseload is not None and caseload.expect is not None:
        tally: dict[str, int] = {}
        for r in rows:
            st = (full_scale_status(r) if sample else r.get("caseload_vs_guidance")) or \
                "not available"
            tally[st] = tally.get(st, 0) + 1
        text = ", ".join(f"<b>{n}</b> {_e(st)}" for st, n in sorted(tally.items()))
        at = " (this sample scaled to the full synthetic ICS)" if sample else ""
        out.append(f'<p class="headline">Caseload against the guide\u2019s '
                   f"{_e(describe_expect(caseload))} per neighbourhood{at}: {text} "
                   f"(of {len(rows)} neighbourhoods).</p>")
    headers = ["Neighbourhood", "Registered 65+", "Guide: 65+", "Identified",
               "Identified share", "Guide: identified share", "Caseload",
               "Caseload vs guidance"]
    tips = ["neighbourhood", "registered_65_plus", "guide_registered_65_plus", "identified",
            "identified_share", "guide_identified_share", "caseload", "caseload_vs_guidance"]
    if sample:
        assert scale is not None
        headers += [f"Caseload at full scale (\u00d7{scale.factor:,.1f})",
                    "At full scale vs guidance"]
        tips += ["caseload \u00d7 full-scale size / sample size",
                 "the full-scale caseload against the guide's range"]
    body = []
    for r in rows:
        st = r.get("caseload_vs_guidance") or ""
        cells = [_e(r["neighbourhood"]), _e(_fmt(r.get("registered_65_plus"))),
                 _e(_fmt(r.get("guide_registered_65_plus"))), _e(_fmt(r.get("identified"))),
                 _e(_fmt(r.get("identified_share"), share=True)),
                 _e(_fmt(r.get("guide_identified_share"), share=True)),
                 _e(_fmt(r.get("caseload"))),
                 f'<span class="{_e(st.split()[0]) if st else ""}">{_e(st or "–")}</span>']
        if sample:
            assert scale is not None
            n = _number(r.get("caseload"))
            fs = full_scale_status(r)
            cells.append(_e(_fmt(round(n * scale.factor)) if n is not None else "–"))
            cells.append(f'<span class="{_e(fs.split()[0]) if fs else ""}">{_e(fs or "–")}'
                         "</span>")
        body.append(cells)
    out.append(_table(headers, body, titles=tips))
    out.append('<p class="small">The people behind these figures, list by list (consent, CGA '
               "and MDT due, reviews, step-down, alerts, coding to fix), highest risk first: "
               "<code>int-rules worklist RUN_DIR --neighbourhood NAME</code>.</p>")
    if ident is not None:
        out.append(f'<p class="small">Identified share: the run\u2019s identified people '
                   f"over its 65+; the guide's column is what Version 1's searches found in "
                   f"that neighbourhood ({_e(GUIDE_SOURCE)}). The guidance expects "
                   f"{_e(describe_expect(ident))} overall. The guide: the dashboard \u201cis not "
                   "intended as a tool for comparing INTs against each other\u201d.</p>")
    return "".join(out)


def write_report(run: PopulationRun, table: DashboardTable | None, path: Path,
                 outputs: Mapping[str, Path], summary: Mapping[str, Any], *,
                 dictionary: Sequence[DictionaryEntry] = (),
                 scale: SyntheticScale | None = None, sections: Sequence[str] = ()) -> None:
    """Write the HTML report of a population run to ``path``: a summary per neighbourhood
    first, then the dashboard charts, every figure, the findings, the input (with each file's
    size and sha256), the data dictionary of the results, definitions and provenance.
    ``sections`` (HTML, e.g. the outcomes section) follow the dashboard."""
    book = run.book
    prov = provenance(book)
    drafts = [f"{r['id']} ({r['status']})" for r in prov["rulesets"] if r["status"] != "approved"]
    if prov["pathway"]["status"] != "approved":
        drafts.append(f"pathway ({prov['pathway']['status']})")
    pats = summary["patients"]
    body: list[str] = []
    body.append(f"<h1>INT proactive care: population report</h1>"
                f'<p class="meta">As of <b>{_e(run.as_of.isoformat())}</b> · data '
                f"<code>{_e(run.data_dir)}</code> · rulebook <b>{_e(book.id)} "
                f"{_e(book.version)}</b> · sha256 <code>{_e(book.sha256)}</code> · int-rules "
                f"{_e(__version__)} · run <code>{_e(summary.get('run_id', ''))}</code></p>")
    if scale is not None:
        body.append(_synthetic_banner(scale))
    suppression = summary.get("small_number_suppression", "off")
    body.append(f'<p class="small">Small-number suppression: <b>{_e(suppression)}</b>'
                + (" (figures may be shared beyond the care team)." if suppression != "off"
                   else " (exact counts: for the care team; run with "
                        "<code>--suppress-small-numbers</code> before sharing further).")
                + "</p>")
    if drafts:
        body.append(f'<div class="banner"><b>Draft rules.</b> Not yet approved by clinical '
                    f"safety review: {_e(', '.join(drafts))}. Use these figures to check the "
                    "coding and the rules, not to make decisions about people.</div>")
    dashboard_state = (dashboard_status(book, table.dashboard.definition)
                       if table is not None else None)
    if table is not None and dashboard_state != "approved":
        body.append(f'<p class="small">Dashboard definitions '
                    f"({_e(table.dashboard.file)} {_e(table.dashboard.definition.version)}) are "
                    f"{_e(dashboard_state)}.</p>")
    for warning in summary.get("warnings", ()):
        body.append(f'<div class="banner"><b>Warning.</b> {_e(warning)}</div>')
    cls = "ok" if pats["all_accounted_for"] else "bad"
    body.append(f'<div class="{cls}"><b>{pats["read"]:,}</b> patients read: '
                f'<b>{pats["in_results"]:,}</b> assessed, <b>{pats["in_rejects"]:,}</b> in the '
                f"rejects ({pats['rejected_in_patients_table']:,} with a bad patients row, "
                f"{pats['rejected_rule_conflicts']:,} where rules overlapped). "
                + ("Every patient is accounted for." if pats["all_accounted_for"] else
                   "<b>Some patients are not accounted for: report this as a bug.</b>")
                + "</div>")

    if table is not None:
        body.append(_summary_section(table, scale))

    # Contents
    body.append('<p class="small">Contents: <a href="#summary">summary</a> · '
                '<a href="#dashboard">dashboard</a> · '
                '<a href="#figures">all figures</a> · <a href="#findings">data-quality '
                'findings</a> · <a href="#input">input and rejects</a> · '
                '<a href="#dictionary">results columns</a> · '
                '<a href="#definitions">definitions</a> · <a href="#provenance">rules used</a></p>')

    # Dashboard
    if table is not None:
        d = table.dashboard
        body.append(f'<h2 id="dashboard">{_e(d.definition.title)}</h2>')
        body.append(f"<p>{_e(d.definition.description)}</p>")
        body.append('<p class="small">Counted: ' + _e(d.definition.population.title)
                    + f" ({_e(d.population_text)}). The guide: the dashboard \u201cis not intended"
                    " as a tool for comparing INTs against each other\u201d.</p>")
        for m in d.available:
            body.append(_measure_section(m, table, book))
        missing = unavailable(d)
        if missing:
            body.append('<div class="banner"><b>Not available with this rulebook:</b><ul>'
                        + "".join(f"<li>{_e(mid)}: {_e(why)}</li>" for mid, why in missing)
                        + "</ul></div>")
        names = csv_header(table)
        rows = []
        for r in table.rows:
            rows.append([_e(_fmt(r.get(n), share=n.endswith("share"))) for n in names])
        body.append('<h2 id="figures">All figures by neighbourhood</h2>')
        body.append('<p class="small">The columns of <code>dashboard.csv</code>; hover a '
                    'heading for its column name, or see the <a href="#definitions">'
                    'definitions</a>.</p>')
        body.append(_table([_column_title(table, n) for n in names], rows, total_last=True,
                           titles=names))
    else:
        body.append('<h2 id="dashboard">Dashboard</h2><p>This rulebook has no dashboard.yaml, '
                    "so no dashboard figures were computed.</p>")

    body.extend(sections)

    # Findings
    body.append('<h2 id="findings">Data-quality findings</h2>')
    frows = run.con.sql("SELECT source, finding_id, any_value(severity) AS severity, "
                        "any_value(message) AS message, count(*) AS n, "
                        "count(DISTINCT patient_id) AS people FROM findings GROUP BY ALL "
                        "ORDER BY severity, finding_id").to_arrow_table().to_pylist()
    if frows and suppression != "off":  # the same disclosure control as the dashboard
        for r in frows:
            r["n"], r["people"] = round_count(int(r["n"])), round_count(int(r["people"]))
    if frows:
        body.append(bar_chart_svg([f"{r['finding_id']} ({r['severity']})" for r in frows],
                                  [_number(r["n"]) for r in frows], title="Findings by id"))
        body.append(_table(["finding", "severity", "from", "what", "findings", "people"],
                           [[_e(r["finding_id"]), _e(r["severity"] or ""), _e(r["source"]),
                             _e(r["message"]), _fmt(r["n"]), _fmt(r["people"])]
                            for r in frows], left=4))
        body.append(f'<p class="small">One row per finding in '
                    f'<code>{_e(outputs.get("findings_csv", "findings.csv"))}</code>.</p>')
    else:
        body.append("<p>No data-quality findings.</p>")

    # Input
    body.append('<h2 id="input">Input and rejects</h2>')
    trows = []
    for name, st in summary["tables"].items():
        trows.append([_e(name), _e(", ".join(st["files"])), _fmt(st["rows_read"]),
                      _fmt(st["rows_accepted"]), _fmt(st["rows_rejected"]),
                      _fmt(st["rows_of_rejected_patients"])])
    body.append(_table(["table", "files", "rows read", "accepted", "rejected",
                        "of rejected patients"], trows, left=2))
    if summary["tables_missing"]:
        body.append(f'<p class="small">Not supplied (no such items for anyone): '
                    f'{_e(", ".join(summary["tables_missing"]))}.</p>')
    for note in summary["notes"]:
        body.append(f'<p class="small">Note: {_e(note)}</p>')
    inputs = summary.get("inputs") or []
    if inputs:
        body.append("<h3>Input files</h3>")
        body.append(_table(["table", "file", "size", "sha256"],
                           [[_e(f["table"]), _e(f["file"]),
                             _e(_size(f["bytes"]) if f["bytes"] is not None else "in memory"),
                             f'<code class="hash">{_e(f["sha256"] or "")}</code>']
                            for f in inputs],
                           left=4))
    rrows = run.con.sql("SELECT tbl, regexp_replace(reason, '''[^'']*''', '''…''', 'g') AS why, "
                        "count(*) AS n FROM rejects_out GROUP BY ALL ORDER BY n DESC LIMIT 25"
                        ).to_arrow_table().to_pylist()
    if rrows:
        body.append("<h3>Why rows were rejected (most common first)</h3>")
        body.append(_table(["table", "reason (values elided)", "rows"],
                           [[_e(r["tbl"]), _e(r["why"]), _fmt(r["n"])] for r in rrows], left=2))
        body.append(f'<p class="small">Every rejected row, with its file and row, is in '
                    f'<code>{_e(outputs.get("rejects_csv", "rejects.csv"))}</code>.</p>')
    else:
        body.append("<p>No rows were rejected.</p>")

    # Data dictionary
    if dictionary:
        body.append('<h2 id="dictionary">Results columns (data dictionary)</h2>')
        csv_too = (" and <code>results.csv</code>" if "results_csv" in outputs else "")
        body.append(f'<p class="small">The columns of <code>results.parquet</code>{csv_too}, '
                    'also in '
                    f'<code>{_e(outputs.get("data_dictionary_csv", "data_dictionary.csv"))}'
                    "</code>. A single-valued output is one value; a list is a Parquet list and "
                    "in CSV (<code>--results-csv</code>) its values joined with "
                    "\u201c; \u201d.</p>")
        body.append(_table(["column", "meaning", "type", "source"],
                           [[f"<code>{_e(e.column)}</code>", _e(e.meaning), _e(e.type),
                             _e(e.source)] for e in dictionary], left=4))

    # Definitions
    if table is not None:
        d = table.dashboard
        body.append('<h2 id="definitions">Definitions</h2>')
        drows = []
        for m in d.measures:
            what = m.description if m.unavailable is None else f"not available: {m.unavailable}"
            drows.append([_e(m.id), _e(m.definition.title), _e(what), _e(describe_expect(m)),
                          _e(m.definition.note or "")])
        body.append(_table(["measure", "title", "counts", "guidance", "note"], drows, left=5))
        prow = []
        for name, p in d.definition.parameters.items():
            src = (f"{guidance_name(book.manifest.guidance_names, p.cite.source)}, "
                   f"\u201c{p.cite.section}\u201d: \u201c{p.cite.quote}\u201d"
                   if p.cite else "")
            prow.append([_e(name), _e(format_value(p.value)), _e(p.provenance), _e(p.why),
                         _e(src)])
        body.append("<h3>Figures the dashboard compares with</h3>")
        body.append(_table(["parameter", "value", "provenance", "why", "source"], prow,
                           left=5))

    # Provenance
    body.append('<h2 id="provenance">Rules used</h2>')
    body.append(_table(["ruleset", "version", "status"],
                       [[_e(r["id"]), _e(r["version"]), _e(r["status"])]
                        for r in prov["rulesets"]]
                       + [[_e("pathway " + prov["pathway"]["id"]),
                           _e(prov["pathway"]["version"]), _e(prov["pathway"]["status"])]],
                       left=3))
    if prov["overrides"]:
        body.append("<p>Local parameter overrides: " + _e(", ".join(
            f"{k} = {v}" for k, v in prov["overrides"].items())) + "</p>")
    files = "".join(f"<li><code>{_e(p.name)}</code></li>" for p in outputs.values())
    body.append(f"<h3>Files of this run</h3><ul>{files}</ul>")
    body.append(f'<p class="small">Made by int-rules {_e(__version__)}; timings (s): '
                f'{_e(", ".join(f"{k} {v}" for k, v in summary["timings_s"].items()))}.</p>')

    title = f"INT population report, as of {run.as_of.isoformat()}"
    doc = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
           f'<meta name="viewport" content="width=device-width, initial-scale=1">'
           f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
           + "\n".join(body) + "</main></body></html>\n")
    path.write_text(doc, encoding="utf-8")


def _synthetic_banner(scale: SyntheticScale) -> str:
    size = (f"the full-scale synthetic ICS ({scale.patients:,} people)" if scale.is_full_scale
            else f"a {scale.patients:,}-person sample of the {scale.full_scale:,}-person "
                 f"synthetic ICS (1 in {scale.factor:,.1f}); caseload figures at full scale "
                 "are about this many times larger (see the summary)")
    return (f'<div class="synthetic"><b>Synthetic data.</b> These people are made up by '
            f"<code>int-rules synth</code>: {_e(size)}. Not real patients; for trying the "
            "rules, the report and the worklists.</div>")


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return str(n)


def _column_title(table: DashboardTable, name: str) -> str:
    if name == "neighbourhood":
        return "neighbourhood"
    if name == "population":
        return "people counted"
    for c in [*table.columns, *table.extra]:
        if c.name == name:
            return c.title
    if name.endswith("_vs_guidance"):
        return name[: -len("_vs_guidance")] + " vs guidance"
    return name
