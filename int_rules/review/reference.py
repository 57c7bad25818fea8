"""The ruleset reference laid out for line-by-line review: one block per rule, as Markdown and
as a printable HTML pack with a sign-off box.

Each rule is one block (never a wide table row): its id and title; its condition as an indented
list, one test per line, with the ruleset's named conditions referred to by name (each is
defined once, at the top of the page); its outcome; its provenance beside the provenance of
every parameter it reads (its own and, through the facts it tests, the facts file's), with the
weakest of them; the guidance passage; the hazards it controls; any approval note.

:func:`rule_blocks` builds the blocks as plain data; :func:`rule_block_markdown` and
:func:`ruleset_pack_html` render them. The pack (``<ruleset>.pack.html`` beside the Markdown)
prints on A4 with each rule kept on one page, a box per rule for the reviewer's tick and notes,
the facts and codes the rules read, and a sign-off box (name, role, date, signature) naming the
version and content hash being approved.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..language.plain import describe_leaf, format_value
from ..language.schema import AllOf, AnyOf, Citation, Condition, ConditionRef, Leaf, Not, ParamRef
from ..rulebook import CompiledRuleset, Rulebook
from .approvals import approval_state, fact_parameters_read, status_of

__all__ = [
    "PROVENANCE_ORDER",
    "RuleBlock",
    "condition_lines",
    "rule_block_markdown",
    "rule_blocks",
    "ruleset_pack_html",
    "weakest",
]

#: Strongest first: a rule is no stronger than the weakest of its own and its parameters'.
PROVENANCE_ORDER = ("guidance", "local-policy", "assumption")


def weakest(provenances: Sequence[str]) -> str:
    """The weakest of ``provenances`` (``assumption`` < ``local-policy`` < ``guidance``)."""
    return max(provenances, key=PROVENANCE_ORDER.index)


@dataclass(frozen=True)
class ParamUse:
    """A parameter a rule reads: where it is declared, its value and provenance."""

    name: str  # as written: ``min_age`` or ``facts.review_interval_days``
    value: str
    provenance: str


@dataclass(frozen=True)
class RuleBlock:
    """One rule, ready to lay out."""

    id: str
    title: str
    lines: tuple[tuple[int, str], ...]  # (depth, text); a named condition is "condition NAME"
    outcomes: tuple[str, ...]
    provenance: str
    params: tuple[ParamUse, ...]
    cite: Citation
    hazards: tuple[str, ...]
    priority: int | None
    note: str | None
    approval_notes: tuple[str, ...]

    @property
    def effective(self) -> str:
        return weakest([self.provenance, *(p.provenance for p in self.params)])


# -- conditions as lines ----------------------------------------------------------------------


def condition_lines(cond: Condition, params: Mapping[str, Any], depth: int = 0
                    ) -> list[tuple[int, str]]:
    """A condition as indented lines, one test per line: ``ALL of:`` / ``ANY of:`` / ``NOT:``
    introduce their parts one level deeper; a named condition is a line of its own."""
    if isinstance(cond, Leaf):
        return [(depth, describe_leaf(cond, params))]
    if isinstance(cond, ConditionRef):
        return [(depth, f"condition {cond.condition}")]
    if isinstance(cond, Not):
        return [(depth, "NOT:"), *condition_lines(cond.not_, params, depth + 1)]
    parts = cond.all if isinstance(cond, AllOf) else cond.any
    assert isinstance(cond, (AllOf, AnyOf))
    if len(parts) == 1:
        return condition_lines(parts[0], params, depth)
    head = "ALL of:" if isinstance(cond, AllOf) else "ANY of:"
    out = [(depth, head)]
    for part in parts:
        out += condition_lines(part, params, depth + 1)
    return out


def _param_refs(value: Any) -> list[str]:
    found: list[str] = []
    if isinstance(value, ParamRef):
        found.append(value.param)
    elif isinstance(value, (AllOf, AnyOf)):
        for c in value.all if isinstance(value, AllOf) else value.any:
            found += _param_refs(c)
    elif isinstance(value, Not):
        found += _param_refs(value.not_)
    elif isinstance(value, Leaf):
        found += _param_refs(value.operand)
    return found


def rule_blocks(rs: CompiledRuleset, book: Rulebook) -> list[RuleBlock]:
    """Every rule of ``rs`` as a :class:`RuleBlock`, in declared order."""
    d = rs.definition
    approvals = approval_state(book)
    record = approvals.matching(rs.id)
    compiled = {cr.id: cr for cr in rs.rules}
    out = []
    for rule in d.rules:  # as written: named conditions stay named
        cr = compiled.get(rule.id)
        expanded = cr.definition.when if cr is not None else rule.when
        uses: list[ParamUse] = []
        for name in dict.fromkeys(_param_refs(expanded)):
            p = d.parameters.get(name)
            if p is not None:
                value = format_value(rs.params.get(name, p.value))
                uses.append(ParamUse(name, value + (f" {p.unit}" if p.unit else ""),
                                     p.provenance))
        facts = list(cr.condition.facts) if cr is not None else []
        for name in fact_parameters_read(book, facts):
            p = book.facts_file.parameters[name]
            value = format_value(book.fact_params.get(name, p.value))
            uses.append(ParamUse(f"facts.{name}", value + (f" {p.unit}" if p.unit else ""),
                                 p.provenance))
        outcomes = tuple(f"{k} = {format_value(v)}" for k, v in rule.then.items())
        notes = (record.notes[rule.id],) if record is not None and rule.id in record.notes else ()
        out.append(RuleBlock(rule.id, rule.title, tuple(condition_lines(rule.when, rs.params)),
                             outcomes, rule.provenance, tuple(uses), rule.cite,
                             tuple(rule.hazards), rule.priority, rule.note, notes))
    return out


# -- Markdown ---------------------------------------------------------------------------------


def _md_line(text: str) -> str:
    if text.startswith("condition "):
        name = text.removeprefix("condition ")
        return f"the condition [**{name}**](#condition-{name.replace('_', '-')})"
    return text.replace("*", "\\*")


def lines_markdown(lines: Sequence[tuple[int, str]]) -> list[str]:
    """Indented Markdown bullets, one test per line."""
    return [f"{'  ' * depth}- {_md_line(text)}" for depth, text in lines]


def _provenance_md(b: RuleBlock) -> str:
    text = f"**{b.provenance}** (the rule)"
    if b.params:
        text += "; parameters: " + ", ".join(f"`{p.name}` = {p.value} ({p.provenance})"
                                             for p in b.params)
        text += f"; **weakest: {b.effective}**"
    else:
        text += "; it reads no parameter"
    return text


def rule_block_markdown(b: RuleBlock, outcome_text: Sequence[str], hazards_text: str,
                        cite_text: str) -> list[str]:
    """One rule as a Markdown block (heading, condition lines, then, provenance, guidance)."""
    out = [f'### <a id="{b.id.lower()}"></a>{b.id}: {b.title}', ""]
    if b.priority is not None:
        out += [f"Priority {b.priority}.", ""]
    out += ["**When**", "", *lines_markdown(b.lines), "",
            "**Then**: " + "; ".join(outcome_text), "",
            f"- **Provenance**: {_provenance_md(b)}",
            f"- **Guidance**: {cite_text}",
            f"- **Hazards**: {hazards_text or '—'}"]
    if b.note:
        out.append(f"- **Note**: {b.note}")
    for n in b.approval_notes:
        out.append(f"- **Approval note**: {n}")
    out.append("")
    return out


# -- the printable pack -----------------------------------------------------------------------

_CSS = """
body { font: 11pt/1.4 "Segoe UI", Arial, sans-serif; color: #111; max-width: 46em;
       margin: 1.5em auto; padding: 0 1em; }
h1 { font-size: 17pt; margin-bottom: .2em; } h2 { font-size: 13.5pt; margin-top: 1.6em;
  border-bottom: 1px solid #888; } h3 { font-size: 12pt; margin: 0 0 .4em; }
table { border-collapse: collapse; width: 100%; margin: .4em 0; }
th, td { border: 1px solid #999; padding: .25em .45em; text-align: left; vertical-align: top; }
th { background: #eee; } code { font-size: 10pt; } .hash { word-break: break-all; }
.rule, .condition, .signoff { border: 1.5px solid #444; border-radius: 4px; padding: .6em .8em;
  margin: .8em 0; break-inside: avoid; page-break-inside: avoid; }
.when { margin: .3em 0 .5em; } .when div { margin: .1em 0; }
.op { font-weight: bold; } .named { font-weight: bold; }
.meta { color: #333; font-size: 10pt; } .weak { font-weight: bold; }
.check { margin-top: .5em; border-top: 1px dashed #888; padding-top: .4em; font-size: 10pt; }
.box { display: inline-block; width: .9em; height: .9em; border: 1px solid #111;
  vertical-align: middle; margin-right: .3em; }
.notes { border-bottom: 1px dotted #888; height: 1.6em; }
.signoff td { height: 2.2em; } .status { font-weight: bold; }
.unverified { font-weight: bold; }
@page { size: A4; margin: 16mm 14mm; }
@media print { body { margin: 0; max-width: none; font-size: 10pt; } a { color: inherit;
  text-decoration: none; } h2 { break-after: avoid; } }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _name(text: str) -> str:
    """An identifier that may wrap after its underscores."""
    return _e(text).replace("_", "_<wbr>")


def _lines_html(lines: Sequence[tuple[int, str]]) -> str:
    out = []
    for depth, text in lines:
        pad = f' style="padding-left:{1.4 * depth:.1f}em"'
        if text in ("ALL of:", "ANY of:", "NOT:"):
            out.append(f'<div{pad}><span class="op">{_e(text)}</span></div>')
        elif text.startswith("condition "):
            name = text.removeprefix("condition ")
            out.append(f'<div{pad}>the condition <a class="named" '
                       f'href="#condition-{_e(name)}">{_e(name)}</a></div>')
        else:
            out.append(f"<div{pad}>{_e(text)}</div>")
    return '<div class="when">' + "".join(out) + "</div>"


def _rule_html(b: RuleBlock, outcome_text: Sequence[str]) -> str:
    params = ("; ".join(f"<code>{_name(p.name)}</code> = {_e(p.value)} ({_e(p.provenance)})"
                        for p in b.params) or "none")
    prio = (f'<div class="meta">priority {b.priority}</div>' if b.priority is not None
            else "")
    notes = "".join(f"<p><b>Note:</b> {_e(n)}</p>" for n in (b.note,) if n)
    notes += "".join(f"<p><b>Approval note:</b> {_e(n)}</p>" for n in b.approval_notes)
    return (
        f'<section class="rule" id="{_e(b.id.lower())}"><h3>{_e(b.id)}: {_e(b.title)}</h3>'
        f"{prio}"
        f"<p><b>When</b></p>{_lines_html(b.lines)}"
        f"<p><b>Then</b>: {_e('; '.join(outcome_text))}</p>"
        f'<p class="meta"><b>Provenance</b>: {_e(b.provenance)} (the rule); parameters: '
        f'{params}; <span class="weak">weakest: {_e(b.effective)}</span></p>'
        f'<p class="meta"><b>Guidance</b>: <code>{_e(b.cite.source)}</code>, '
        f"“{_e(b.cite.section)}”: “{_e(b.cite.quote)}”</p>"
        f'<p class="meta"><b>Hazards</b>: {_e(", ".join(b.hazards) or "—")}</p>{notes}'
        f'<div class="check"><span class="box"></span>reviewed, agreed '
        f'<span class="box" style="margin-left:1em"></span>query (note below)'
        f'<div class="notes"></div></div></section>')


def ruleset_pack_html(rs: CompiledRuleset, book: Rulebook, marker: str, hit_policy_text: str,
                      outcome_text: Mapping[str, Sequence[str]],
                      facts_text: Sequence[tuple[str, str, str]],
                      codes: Sequence[tuple[str, str, str, bool]]) -> str:
    """The printable review pack of one ruleset (deterministic HTML).

    ``outcome_text``: rule id -> outcome lines in words; ``facts_text``: (fact, type, how it is
    worked out) for every fact the rules read; ``codes``: (codelist, code, term, verified) for
    every code those facts use.
    """
    d = rs.definition
    approvals = approval_state(book)
    sha = approvals.hashes.get(rs.id, "")
    status = status_of(book, rs.id)
    record = approvals.matching(rs.id)
    blocks = rule_blocks(rs, book)
    body: list[str] = [
        f"<h1>{_e(d.title)}</h1>",
        f'<p class="meta">Review pack · ruleset <code>{_e(d.ruleset)}</code> version '
        f'<b>{_e(d.version)}</b> · status <span class="status">{_e(status)}</span> · file '
        f"<code>{_e(rs.file)}</code> · rulebook <code>{_e(book.id)}</code> "
        f"{_e(book.version)}</p>",
        f'<p class="meta">Content hash of what is approved (SHA-256): '
        f'<code class="hash">{_e(sha)}</code></p>',
        f"<p>{_e(d.description)}</p>",
        f"<p><b>How the rules combine</b> (<code>{_e(d.hit_policy)}</code>"
        f"{', complete' if d.complete else ''}): {_e(hit_policy_text)}</p>",
        "<p class=\"meta\">A test of something not recorded is false (except “is not "
        "recorded”), and NOT simply negates it.</p>",
        "<h2>Parameters</h2>",
    ]
    if d.parameters:
        body.append("<table><tr><th>parameter</th><th>value</th><th>provenance</th><th>why</th>"
                    "</tr>")
        for name, p in d.parameters.items():
            value = format_value(rs.params.get(name, p.value)) + (f" {p.unit}" if p.unit else "")
            body.append(f"<tr><td><code>{_name(name)}</code></td><td>{_e(value)}</td>"
                        f"<td>{_e(p.provenance)}</td><td>{_e(p.why)}</td></tr>")
        body.append("</table>")
    else:
        body.append("<p>None.</p>")
    if d.conditions:
        body.append("<h2>Named conditions</h2><p class=\"meta\">Defined once; rules refer to "
                    "them by name.</p>")
        for name, cond in d.conditions.items():
            body.append(f'<section class="condition" id="condition-{_e(name)}"><h3>condition '
                        f"{_e(name)}</h3>{_lines_html(condition_lines(cond, rs.params))}"
                        "</section>")
    body.append(f"<h2>Rules ({len(blocks)})</h2>")
    body += [_rule_html(b, outcome_text.get(b.id, b.outcomes)) for b in blocks]
    if facts_text:
        body.append("<h2>Facts these rules read</h2><table><tr><th>fact</th><th>type</th>"
                    "<th>how it is worked out</th></tr>")
        body += [f"<tr><td><code>{_name(n)}</code></td><td>{_e(t)}</td><td>{_e(h)}</td></tr>"
                 for n, t, h in facts_text]
        body.append("</table>")
    if codes:
        body.append("<h2>Codes those facts use</h2><table><tr><th>codelist</th><th>code</th>"
                    "<th>term</th><th>verified</th></tr>")
        body += [f"<tr><td><code>{_name(c)}</code></td><td><code>{_e(code)}</code></td>"
                 f"<td>{_e(term)}</td><td{'' if ok else ' class=unverified'}>"
                 f"{'yes' if ok else '⚠ UNVERIFIED'}</td></tr>" for c, code, term, ok in codes]
        body.append("</table>")
    signed = ""
    if record is not None:
        signed = (f"<p>Recorded approval: {_e(record.by)} ({_e(record.role)}), "
                  f"{_e(record.date)}.</p>")
    body.append(
        '<h2>Sign-off</h2><section class="signoff">'
        f"<p>I have reviewed every rule above of <code>{_e(d.ruleset)}</code> version "
        f"<b>{_e(d.version)}</b>, content hash <code class=\"hash\">{_e(sha)}</code>.</p>"
        f"{signed}"
        "<table><tr><th style=\"width:30%\">decision</th><td><span class=\"box\"></span>approved"
        ' <span class="box" style="margin-left:1em"></span>not approved (queries noted)</td></tr>'
        "<tr><th>name</th><td></td></tr><tr><th>role</th><td></td></tr>"
        "<tr><th>date</th><td></td></tr><tr><th>signature</th><td></td></tr></table>"
        f"<p class=\"meta\">Record it with <code>int-rules approve {_e(d.ruleset)} --by NAME "
        "--role ROLE --date YYYY-MM-DD</code>; results then say “approved” while this hash "
        "holds.</p></section>")
    return ("<!DOCTYPE html>\n" + marker + "\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Review pack: {_e(d.ruleset)} {_e(d.version)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")

