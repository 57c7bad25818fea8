"""Theographs: one person's contacts with services over time, as one self-contained HTML page.

Both versions of the guide name theographs ("a graphical representation of the different
contacts an individual has with different services over time") as the tool for choosing people
for the caseload. :func:`theograph_page` draws one for a record and its
:class:`~int_rules.assessment.Assessment`: a timeline (inline SVG with a ``viewBox``, so it
scales to a phone) with one lane per kind of item, then the assessment's explanation. The lanes
and which codes go on each come from ``rulesets/theograph.yaml`` (codelist and fact names);
nothing clinical is written here. The page has no scripts and reads nothing from the network.

    >>> # html = theograph_page(book, record, book.assess(record, as_of))  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import __version__
from .errors import RulesetError, RulesetErrors
from .language.plain import format_value
from .language.schema import Citation
from .language.yamlsrc import load_yaml, locate

if TYPE_CHECKING:
    from .assessment import Assessment
    from .record import PatientRecord
    from .rulebook import Rulebook

__all__ = ["Theograph", "load_theograph", "theograph_page", "theograph_svg"]

_STRICT = ConfigDict(extra="forbid", frozen=True)


class LaneDef(BaseModel):
    model_config = _STRICT
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(min_length=1)
    pathway: bool = False
    codelists: list[str] = Field(default_factory=list)
    facts: list[str] = Field(default_factory=list)
    source: Literal["admissions", "risk_scores", "monitoring"] | None = None


class TheographFile(BaseModel):
    model_config = _STRICT
    theograph: str
    title: str
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    status: Literal["draft", "approved", "retired"]
    years: int = Field(ge=1, le=100)
    cite: Citation
    risk_source: str = Field(min_length=1)
    lanes: list[LaneDef] = Field(min_length=1)


@dataclass(frozen=True)
class Lane:
    definition: LaneDef
    codelists: tuple[str, ...]  # resolved: the lane's own and those of its facts


@dataclass(frozen=True)
class Theograph:
    """The loaded ``theograph.yaml``: lanes with their codelists resolved."""

    definition: TheographFile
    file: str
    lanes: tuple[Lane, ...]


def load_theograph(book: Rulebook, path: Path | None = None) -> Theograph:
    """Load ``theograph.yaml`` beside the rulebook (a default of pathway, admissions, risk and
    monitoring lanes when the rulebook has none). Raises
    :class:`~int_rules.errors.RulesetError` naming ``file:line:column`` for a problem."""
    path = path or book.directory / "theograph.yaml"
    if not path.is_file():
        default = TheographFile(
            theograph="default", title="Theograph", version="0.0.0", status="draft", years=3,
            cite=Citation(source="000_ae3274b61be1e38b.txt", section="Theographs",
                          quote="a graphical representation of the different contacts an "
                                "individual has with different services over time"),
            risk_source="DELPPHI",
            lanes=[LaneDef(id="pathway", title="Caseload pathway", pathway=True),
                   LaneDef(id="admissions", title="Hospital admissions", source="admissions"),
                   LaneDef(id="risk", title="Predicted risk", source="risk_scores"),
                   LaneDef(id="monitoring", title="Monitoring alerts", source="monitoring")])
        return Theograph(default, "(built in)", tuple(Lane(d, ()) for d in default.lanes))
    shown = path.name
    raw = load_yaml(path, shown)
    try:
        model = TheographFile.model_validate(raw)
    except ValidationError as exc:
        errs = [RulesetError(locate(raw, tuple(e["loc"]), shown), e["msg"],
                             ".".join(str(p) for p in e["loc"]))
                for e in exc.errors(include_url=False)]
        raise (errs[0] if len(errs) == 1 else RulesetErrors(errs)) from None
    problems: list[RulesetError] = []
    lanes = []
    for i, lane in enumerate(model.lanes):
        lists: list[str] = []
        for j, cid in enumerate(lane.codelists):
            if cid not in book.codelists:
                problems.append(RulesetError(locate(raw, ("lanes", i, "codelists", j), shown),
                                             f"unknown codelist {cid!r}"))
            lists.append(cid)
        for j, name in enumerate(lane.facts):
            fact = book.facts.get(name)
            if fact is None:
                problems.append(RulesetError(locate(raw, ("lanes", i, "facts", j), shown),
                                             f"unknown fact {name!r} (see facts.yaml)"))
                continue
            lists += [c for c in fact.codelists if c not in lists]
        if lane.pathway == bool(lists or lane.source):
            problems.append(RulesetError(locate(raw, ("lanes", i), shown),
                                         "a lane needs either pathway: true, or codelists/facts "
                                         "and/or a source"))
        lanes.append(Lane(lane, tuple(lists)))
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise RulesetErrors(problems)
    return Theograph(model, shown, tuple(lanes))


# -- drawing ----------------------------------------------------------------------------------

_PALETTE = ["#005eb8", "#41b6e6", "#768692", "#ffb81c", "#ed8b00", "#78be20", "#7c2855",
            "#330072", "#00a499", "#8a1538"]
_LABEL_W, _PLOT_W, _LANE_H, _TOP = 190, 760, 46, 30


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


@dataclass(frozen=True)
class _Axis:
    start: dt.date
    end: dt.date

    def x(self, day: dt.date) -> float:
        span = max(1, (self.end - self.start).days)
        days = min(max((day - self.start).days, 0), span)
        return _LABEL_W + _PLOT_W * days / span


def theograph_svg(book: Rulebook, record: PatientRecord, assessment: Assessment,
                  theograph: Theograph | None = None) -> str:
    """The timeline as inline SVG (``viewBox``, width 100%): one lane per ``theograph.yaml``
    lane, from ``years`` before the as-of date to it; every mark has a tooltip (date, code,
    term, value)."""
    tg = theograph or load_theograph(book)
    as_of = assessment.as_of
    start = max(record.date_of_birth, _years_before(as_of, tg.definition.years))
    axis = _Axis(start, as_of)
    height = _TOP + _LANE_H * len(tg.lanes) + 26
    width = _LABEL_W + _PLOT_W + 130
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'width="100%" preserveAspectRatio="xMinYMin meet" role="img" font-size="11" '
           f'font-family="system-ui,Arial,sans-serif" aria-label="Theograph of '
           f'{_e(record.patient_id)}"><title>Theograph of {_e(record.patient_id)}, '
           f"{_e(start.isoformat())} to {_e(as_of.isoformat())}</title>"]
    # year grid
    year = start.year + 1
    while dt.date(year, 1, 1) <= as_of:
        gx = axis.x(dt.date(year, 1, 1))
        out.append(f'<line x1="{gx:.1f}" x2="{gx:.1f}" y1="{_TOP - 6}" y2="{height - 22}" '
                   f'stroke="#ddd"/><text x="{gx:.1f}" y="{_TOP - 10}" text-anchor="middle" '
                   f'fill="#555">{year}</text>')
        year += 1
    out.append(f'<text x="{_LABEL_W + _PLOT_W}" y="{height - 6}" text-anchor="end" fill="#555">'
               f"as of {_e(as_of.isoformat())}</text>"
               f'<text x="{_LABEL_W}" y="{height - 6}" fill="#555">{_e(start.isoformat())}'
               "</text>")
    earlier = 0
    for i, lane in enumerate(tg.lanes):
        y = _TOP + i * _LANE_H
        fill = "#f7f9fb" if i % 2 == 0 else "#ffffff"
        out.append(f'<rect x="0" y="{y}" width="{width}" height="{_LANE_H}" fill="{fill}"/>')
        lines = _wrap(lane.definition.title, 26)
        for k, line in enumerate(lines):
            ly = y + _LANE_H / 2 + 4 + (k - (len(lines) - 1) / 2) * 13
            out.append(f'<text x="{_LABEL_W - 8}" y="{ly:.1f}" text-anchor="end" '
                       f'font-weight="600">{_e(line)}</text>')
        marks, before = _lane(book, record, assessment, tg, lane, axis, y)
        out += marks
        earlier += before
    if record.date_of_death is not None and record.date_of_death <= as_of:
        dx = axis.x(record.date_of_death)
        out.append(f'<line x1="{dx:.1f}" x2="{dx:.1f}" y1="{_TOP}" y2="{height - 22}" '
                   f'stroke="#000" stroke-width="2"><title>Died {_e(record.date_of_death)}'
                   "</title></line>")
    if earlier:
        out.append(f'<text x="{width / 2:.0f}" y="{height - 6}" text-anchor="middle" '
                   f'fill="#777">{earlier} earlier item(s) not shown</text>')
    out.append("</svg>")
    return "".join(out)


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most about ``width`` characters (a lane label)."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def _mark(x: float, y: float, colour: str, tip: str, shape: str = "circle") -> str:
    if shape == "triangle":
        return (f'<path d="M{x:.1f},{y - 6:.1f} L{x + 5:.1f},{y + 4:.1f} L{x - 5:.1f},'
                f'{y + 4:.1f} Z" fill="{colour}"><title>{_e(tip)}</title></path>')
    if shape == "cross":
        return (f'<path d="M{x - 4:.1f},{y - 4:.1f} L{x + 4:.1f},{y + 4:.1f} M{x + 4:.1f},'
                f'{y - 4:.1f} L{x - 4:.1f},{y + 4:.1f}" stroke="{colour}" stroke-width="2.5">'
                f"<title>{_e(tip)}</title></path>")
    return (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{colour}" stroke="#fff">'
            f"<title>{_e(tip)}</title></circle>")


def _lane(book: Rulebook, record: PatientRecord, a: Assessment, tg: Theograph, lane: Lane,
          axis: _Axis, y: float) -> tuple[list[str], int]:
    d = lane.definition
    mid = y + _LANE_H / 2
    out: list[str] = []
    before = 0
    if d.pathway:
        p = a.pathway
        changes = [(t.date, t.to_state) for t in p.history]
        for k, (day, state) in enumerate(changes):
            end = changes[k + 1][0] if k + 1 < len(changes) else axis.end
            if end < axis.start:
                continue
            x0, x1 = axis.x(day), axis.x(end)
            out.append(f'<rect x="{x0:.1f}" y="{mid + 7}" width="{max(1.0, x1 - x0):.1f}" '
                       f'height="6" fill="{_PALETTE[k % len(_PALETTE)]}" opacity="0.45">'
                       f"<title>{_e(state)} from {_e(day)}</title></rect>")
        last_x = -100.0
        row = 0
        for t in p.history:
            if t.date < axis.start:
                before += 1
                continue
            term = book.codelists.term(t.code) or t.step
            x = axis.x(t.date)
            out.append(_mark(x, mid - 4, "#005eb8", f"{t.date} {term} [{t.code}]: "
                                                    f"{t.from_state} -> {t.to_state}"))
            row = (row + 1) % 2 if x - last_x < 60 else 0  # labels close together: stagger
            last_x = x
            out.append(f'<text x="{x:.1f}" y="{y + 9 - 8 * row}" text-anchor="middle" '
                       f'font-size="9" fill="#333">{_e(t.step)}</text>')
        if changes:
            out.append(f'<text x="{axis.x(axis.end) + 2:.1f}" y="{mid + 13}" font-size="9" '
                       f'fill="#333">{_e(p.state)}</text>')
        for f in p.findings:
            if f.date >= axis.start:
                out.append(_mark(axis.x(f.date), mid - 4, "#c62828",
                                 f"{f.date} {f.id} ({f.severity}): {f.message} [{f.code}]",
                                 "cross"))
        return out, before
    if lane.codelists:
        before += _coded(book, record, lane, axis, mid, out)
    if d.source is None:
        return out, before
    return _source(record, tg, lane, axis, y, mid, out, before)


def _coded(book: Rulebook, record: PatientRecord, lane: Lane, axis: _Axis, mid: float,
           out: list[str]) -> int:
    """Draw the lane's coded events; returns how many fall before the timeline."""
    before = 0
    if lane.codelists:
        colour = {cid: _PALETTE[k % len(_PALETTE)] for k, cid in enumerate(lane.codelists)}
        for ev in record.events:
            if ev.date > axis.end:
                continue
            lists = [c for c in book.codelists.lists_containing(ev.code) if c in colour]
            if not lists:
                continue
            if ev.date < axis.start:
                before += 1
                continue
            term = book.codelists.term(ev.code) or ""
            value = f" = {format_value(ev.value)}" if ev.value is not None else ""
            out.append(_mark(axis.x(ev.date), mid, colour[lists[0]],
                             f"{ev.date} {term} [{ev.code}]{value} ({lists[0]})",
                             "triangle" if lane.definition.source == "monitoring" else "circle"))
    return before


def _source(record: PatientRecord, tg: Theograph, lane: Lane, axis: _Axis, y: float,
            mid: float, out: list[str], before: int) -> tuple[list[str], int]:
    d = lane.definition
    if d.source == "admissions":
        for adm in record.admissions:
            if adm.admitted > axis.end:
                continue
            end = adm.discharged or axis.end
            if end < axis.start:
                before += 1
                continue
            stay = (f"{(adm.discharged - adm.admitted).days} days" if adm.discharged
                    else "still in hospital")
            x0, x1 = axis.x(adm.admitted), axis.x(min(end, axis.end))
            colour = "#c62828" if adm.emergency else "#768692"
            kind = "Emergency" if adm.emergency else "Planned"
            out.append(f'<rect x="{x0:.1f}" y="{mid - 7}" width="{max(3.0, x1 - x0):.1f}" '
                       f'height="14" fill="{colour}"><title>{kind} admission '
                       f"{_e(adm.admitted)}, {stay}</title></rect>")
            days = f"{(adm.discharged - adm.admitted).days}d" if adm.discharged else "in"
            out.append(f'<text x="{x0:.1f}" y="{mid - 10}" font-size="9" fill="#333">'
                       f"{days}</text>")
        return out, before
    if d.source == "risk_scores":
        points = sorted((r.date, r.value) for r in record.risk_scores
                        if r.source == tg.definition.risk_source and r.date <= axis.end)
        shown = [(day, v) for day, v in points if day >= axis.start]
        before += len(points) - len(shown)
        top, bottom = y + 6, y + _LANE_H - 6
        coords = [(axis.x(day), bottom - (bottom - top) * min(max(v, 0.0), 1.0))
                  for day, v in shown]
        if len(coords) > 1:
            out.append('<polyline fill="none" stroke="#7c2855" stroke-width="1.5" points="'
                       + " ".join(f"{px:.1f},{py:.1f}" for px, py in coords) + '"/>')
        for (day, v), (px, py) in zip(shown, coords, strict=True):
            out.append(_mark(px, py, "#7c2855", f"{day} {tg.definition.risk_source} "
                                                f"predicted risk {v:.3f}"))
        return out, before
    if d.source == "monitoring":
        for m in record.monitoring:
            if m.date > axis.end:
                continue
            if m.date < axis.start:
                before += m.kind == "alert"
                continue
            what = f"{m.measure or ''} {format_value(m.value) if m.value is not None else ''}"
            if m.kind == "alert":
                out.append(_mark(axis.x(m.date), mid, "#ed8b00", f"{m.date} alert: {what}",
                                 "triangle"))
            else:
                out.append(f'<circle cx="{axis.x(m.date):.1f}" cy="{mid + 10}" r="2" '
                           f'fill="#aaa"><title>{_e(m.date)} reading: {_e(what)}</title>'
                           "</circle>")
        return out, before
    return out, before


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:0;color:#1b1b1b;
background:#fafafa}main{max-width:1100px;margin:0 auto;padding:1.2rem}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.15rem;margin-top:1.6rem;
border-bottom:2px solid #005eb8}.meta{color:#444;font-size:.9rem}
.banner{background:#fff4d6;border-left:6px solid #f0a500;padding:.6rem .9rem;margin:1rem 0}
table{border-collapse:collapse;font-size:.85rem;background:#fff}td,th{border:1px solid #d0d0d0;
padding:.25rem .45rem;text-align:left;vertical-align:top}th{background:#eef3f8}
pre{white-space:pre-wrap;background:#fff;border:1px solid #ddd;padding:.8rem;font-size:.8rem}
svg{background:#fff;border:1px solid #ddd}.small{font-size:.8rem;color:#555}
@media (max-width:600px){main{padding:.5rem}h1{font-size:1.2rem}}
"""


def theograph_page(book: Rulebook, record: PatientRecord, assessment: Assessment,
                   theograph: Theograph | None = None, note: str = "") -> str:
    """One self-contained HTML page for one person: who, the key results, the theograph, and
    the full explanation (why each outcome holds, with the guidance)."""
    tg = theograph or load_theograph(book)
    a = assessment
    results = a.results()
    rows: list[tuple[str, str]] = [
        ("Pathway state", f"{a.pathway.state}"
                          + (f" since {a.pathway.entered}" if a.pathway.entered else "")),
    ]
    for rs in book.rulesets:
        for key, value in results[rs.id].items():
            if value in (None, [], False):
                continue
            rows.append((f"{rs.definition.title}: {key.replace('_', ' ')}",
                         format_value(value)))
    drafts = [rs.id for rs in book.rulesets if rs.definition.status != "approved"]
    who = ", ".join(x for x in (
        f"born {record.date_of_birth.isoformat()[:7]}", record.sex,
        f"practice {record.practice}" if record.practice else "",
        f"neighbourhood {record.neighbourhood}" if record.neighbourhood else "") if x)
    body = [f"<h1>Theograph: {_e(record.patient_id)}</h1>",
            f'<p class="meta">{_e(who)} · as of <b>{_e(a.as_of)}</b> · rulebook '
            f"{_e(book.id)} {_e(book.version)} (sha256 <code>{_e(book.sha256[:12])}</code>) · "
            f"int-rules {_e(__version__)}</p>"]
    if note:
        body.append(f'<div class="banner">{_e(note)}</div>')
    if drafts:
        body.append(f'<div class="banner"><b>Draft rules</b> ({_e(", ".join(drafts))}): not '
                    "yet approved by clinical safety review. Check each outcome clinically.</div>")
    body.append(theograph_svg(book, record, a, tg))
    body.append(f'<p class="small">{_e(tg.definition.cite.quote[:1].upper())}'
                f"{_e(tg.definition.cite.quote[1:])} (the guide, \u201c"
                f"{_e(tg.definition.cite.section)}\u201d). Lanes as declared in "
                f"<code>{_e(tg.file)}</code>; hover a mark for its date, code and term. "
                f"The last {tg.definition.years} years to the as-of date.</p>")
    body.append("<h2>Results</h2><table><tbody>"
                + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
                + "</tbody></table>")
    body.append(f"<h2>Why</h2><pre>{_e(a.explain())}</pre>")
    title = f"Theograph {record.patient_id} as of {a.as_of.isoformat()}"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
            + "\n".join(body) + "</main></body></html>\n")


def lanes_of(tg: Theograph) -> Sequence[str]:
    """The lane ids, in order (for tests and docs)."""
    return [lane.definition.id for lane in tg.lanes]
