"""``int-rules diff OLD NEW``: what changed between two rulebooks, for a change record.

``OLD`` and ``NEW`` are each a rulebook directory (a folder with ``rulebook.yaml``, or a project
folder with ``rulesets/rulebook.yaml``) or a git revision (``HEAD~3``, a tag, a commit), whose
rulebook and codelists are extracted with ``git archive`` into a temporary folder.

:func:`diff_rulebooks` compares two loaded rulebooks at the level a clinical safety reviewer
works at: rules added, removed and changed (condition in plain English, outcome, provenance,
citation, hazards, priority, order where order matters), parameters (value, provenance, why),
outputs, hit policy, status and version; facts; the caseload pathway (states, steps,
transitions); codelists (codes added and removed, with their terms; verification status).
:func:`render_markdown` writes it as Markdown.
"""

from __future__ import annotations

import difflib
import io
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from ..errors import IntRulesError
from ..language.plain import describe_condition, format_value
from ..language.schema import RuleDef
from ..rulebook import CompiledRuleset, Rulebook, load
from .approvals import approval_state
from .canonical import canonical, same_meaning
from .docs import describe_fact
from .signoff import targets

__all__ = [
    "Change",
    "DiffError",
    "RulebookDiff",
    "diff_rulebooks",
    "materialise",
    "only_rewrites",
    "render_markdown",
    "word_diff",
]


class DiffError(IntRulesError):
    """An OLD or NEW that is neither a rulebook directory nor a git revision."""


@dataclass(frozen=True)
class Change:
    """One changed item: what it is, whether added / removed / changed, and the field changes.

    ``fields`` holds ``(field, before, after)`` in words; ``before`` is empty for an addition
    and ``after`` for a removal.
    """

    section: str
    item: str
    kind: str  # added | removed | changed
    title: str = ""
    fields: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class RulebookDiff:
    old_label: str
    new_label: str
    header: tuple[tuple[str, str, str], ...]
    changes: tuple[Change, ...] = field(default=())

    def of(self, section: str, kind: str | None = None) -> tuple[Change, ...]:
        return tuple(c for c in self.changes
                     if c.section == section and (kind is None or c.kind == kind))

    @property
    def empty(self) -> bool:
        return not self.changes and all(a == b for _, a, b in self.header)


# -- helpers ----------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, sort_keys=True, default_flow_style=True, width=10_000,
                              allow_unicode=True).strip()
    return format_value(value)


def _cite(c: Any) -> str:
    if c is None:
        return ""
    return f"{c.source}, “{c.section}”: “{c.quote}”"


def _fields(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[tuple[str, str, str], ...]:
    keys = list(old) + [k for k in new if k not in old]
    return tuple((k, old.get(k, ""), new.get(k, "")) for k in keys
                 if old.get(k, "") != new.get(k, ""))


def _outcome(rule: RuleDef) -> str:
    return ", ".join(f"{k} = {format_value(v)}" for k, v in rule.then.items())


def _rule_view(rule: RuleDef, params: Mapping[str, Any], compare: bool = False
               ) -> dict[str, str]:
    """A rule's fields in words. ``compare``: the condition in its canonical form, so two
    versions line up word by word (an added or removed rule shows it as written)."""
    return {
        "title": rule.title,
        "condition": describe_condition(canonical(rule.when) if compare else rule.when, params),
        "outcome": _outcome(rule),
        "provenance": rule.provenance,
        "citation": _cite(rule.cite),
        "hazards": ", ".join(rule.hazards),
        "priority": "" if rule.priority is None else str(rule.priority),
        "note": rule.note or "",
    }


def _param_view(p: Any, effective: Any) -> dict[str, str]:
    value = _text(effective)
    if p.unit:
        value += f" {p.unit}"
    return {"value": value, "provenance": p.provenance, "why": p.why, "citation": _cite(p.cite)}


def _keyed(old: Mapping[str, Any], new: Mapping[str, Any]
           ) -> Iterator[tuple[str, Any | None, Any | None]]:
    for key in old:
        yield key, old[key], new.get(key)
    for key in new:
        if key not in old:
            yield key, None, new[key]


# -- comparing --------------------------------------------------------------------------------


def _diff_ruleset(old: CompiledRuleset | None, new: CompiledRuleset | None,
                  out: list[Change]) -> None:
    rs = new or old
    assert rs is not None
    section = f"ruleset {rs.id}"
    if old is None or new is None:
        d = rs.definition
        kind = "added" if old is None else "removed"
        summary = {"title": d.title, "version": d.version, "status": d.status,
                   "hit policy": d.hit_policy, "rules": ", ".join(r.id for r in d.rules)}
        pairs = tuple((k, "", v) if kind == "added" else (k, v, "") for k, v in summary.items())
        out.append(Change("rulesets", rs.id, kind, d.title, pairs))
        for cr in rs.rules:
            view = _rule_view(cr.definition, rs.params)
            fields = tuple((k, "", v) if kind == "added" else (k, v, "")
                           for k, v in view.items() if v)
            out.append(Change(f"{section}: rules", cr.id, kind, cr.definition.title, fields))
        return

    od, nd = old.definition, new.definition
    meta_old = {"title": od.title, "version": od.version, "status": od.status,
                "hit policy": od.hit_policy, "complete": _text(od.complete),
                "description": od.description, "guidance": ", ".join(od.guidance)}
    meta_new = {"title": nd.title, "version": nd.version, "status": nd.status,
                "hit policy": nd.hit_policy, "complete": _text(nd.complete),
                "description": nd.description, "guidance": ", ".join(nd.guidance)}
    if nd.hit_policy in ("first", "priority"):
        common = [r.id for r in od.rules if any(n.id == r.id for n in nd.rules)]
        new_order = [r.id for r in nd.rules if r.id in common]
        if common != new_order:
            meta_old["rule order (it decides the outcome)"] = ", ".join(common)
            meta_new["rule order (it decides the outcome)"] = ", ".join(new_order)
    fields = _fields(meta_old, meta_new)
    if fields:
        out.append(Change("rulesets", rs.id, "changed", nd.title, fields))

    for name, a, b in _keyed(od.parameters, nd.parameters):
        va = _param_view(a, old.params.get(name)) if a is not None else {}
        vb = _param_view(b, new.params.get(name)) if b is not None else {}
        kind = "added" if a is None else "removed" if b is None else "changed"
        f = _fields(va, vb)
        if f:
            out.append(Change(f"{section}: parameters", name, kind, "", f))

    for name, a, b in _keyed(od.outputs, nd.outputs):
        va = {"type": a.type, "values": ", ".join(a.values or []),
              "meaning": a.description} if a is not None else {}
        vb = {"type": b.type, "values": ", ".join(b.values or []),
              "meaning": b.description} if b is not None else {}
        kind = "added" if a is None else "removed" if b is None else "changed"
        f = _fields(va, vb)
        if f:
            out.append(Change(f"{section}: outputs", name, kind, "", f))

    for cname, ca, cb in _keyed(od.conditions, nd.conditions):
        _diff_condition(f"{section}: named conditions", cname, ca, cb, od.conditions,
                        nd.conditions, old.params, new.params, out)

    old_rules = {r.id: r.definition for r in old.rules}
    new_rules = {r.id: r.definition for r in new.rules}
    for rid, ra, rb in _keyed(old_rules, new_rules):
        both = ra is not None and rb is not None
        va = _rule_view(ra, old.params, both) if ra is not None else {}
        vb = _rule_view(rb, new.params, both) if rb is not None else {}
        kind = "added" if ra is None else "removed" if rb is None else "changed"
        f = _fields(va, vb)
        if ra is not None and rb is not None:
            written_a = ra.when.model_dump(by_alias=True, exclude_none=True)
            written_b = rb.when.model_dump(by_alias=True, exclude_none=True)
            if same_meaning(ra.when, rb.when, params_a=old.params, params_b=new.params):
                rest = tuple(x for x in f if x[0] != "condition")
                if written_a != written_b:
                    rewrite = ("condition", describe_condition(ra.when, old.params),
                               describe_condition(rb.when, new.params))
                    if not rest:
                        out.append(Change(f"{section}: rules", rid, "rewritten", rb.title,
                                          (rewrite,)))
                        continue
                    f = (*rest, ("condition (rewritten, same meaning)", *rewrite[1:]))
                else:
                    f = rest
            elif not any(x[0] == "condition" for x in f):
                f = (*f, ("condition (as written)", _text(written_a), _text(written_b)))
        if f:
            shown = rb if rb is not None else ra
            out.append(Change(f"{section}: rules", rid, kind, shown.title if shown else "", f))


def _diff_condition(section: str, name: str, a: Any, b: Any, named_a: Mapping[str, Any],
                    named_b: Mapping[str, Any], params_a: Mapping[str, Any],
                    params_b: Mapping[str, Any], out: list[Change]) -> None:
    """A named condition added, removed, changed or rewritten (same meaning)."""
    ta = describe_condition(canonical(a, named_a), params_a) if a is not None else ""
    tb = describe_condition(canonical(b, named_b), params_b) if b is not None else ""
    if a is None or b is None:
        out.append(Change(section, name, "added" if a is None else "removed", "",
                          (("condition", ta, tb),)))
        return
    if a.model_dump() == b.model_dump() and ta == tb:
        return
    same = same_meaning(a, b, named_a, named_b, params_a, params_b)
    out.append(Change(section, name, "rewritten" if same else "changed", "",
                      (("condition", ta, tb),)))


def _fact_view(fdef: Any, params: Mapping[str, Any]) -> dict[str, str]:
    return {"meaning": fdef.description, "how": describe_fact(fdef, params),
            "definition": _text(fdef.model_dump(by_alias=True, exclude_none=True,
                                                exclude={"description"}))}


def _diff_facts(old: Rulebook, new: Rulebook, out: list[Change]) -> None:
    of, nf = old.facts_file, new.facts_file
    if of.facts_version != nf.facts_version:
        out.append(Change("facts", "facts.yaml", "changed", of.title,
                          (("version", of.facts_version, nf.facts_version),)))
    for name, a, b in _keyed(of.parameters, nf.parameters):
        va = _param_view(a, old.fact_params.get(name)) if a is not None else {}
        vb = _param_view(b, new.fact_params.get(name)) if b is not None else {}
        kind = "added" if a is None else "removed" if b is None else "changed"
        f = _fields(va, vb)
        if f:
            out.append(Change("facts: parameters", name, kind, "", f))
    for name, a, b in _keyed(of.facts, nf.facts):
        va = _fact_view(a, old.fact_params) if a is not None else {}
        vb = _fact_view(b, new.fact_params) if b is not None else {}
        kind = "added" if a is None else "removed" if b is None else "changed"
        f = _fields(va, vb)
        if f:
            out.append(Change("facts", name, kind, "", f))


def _pathway_items(book: Rulebook) -> dict[str, tuple[str, dict[str, str]]]:
    d = book.pathway.definition
    items: dict[str, tuple[str, dict[str, str]]] = {}
    for s in d.states:
        items[f"state {s.id}"] = (s.title, {"title": s.title, "meaning": s.description,
                                             "terminal": _text(s.terminal),
                                             "group": s.group or ""})
    for st in d.steps:
        items[f"step {st.id}"] = (st.title, {"title": st.title,
                                             "codelists": ", ".join(st.codelists or ()),
                                             "source": st.source or "",
                                             "precedence": str(st.precedence)})
    for t in d.transitions:
        effect = (f"to {t.to}" + (f" with {t.finding}" if t.finding else "")) if t.to else \
            (f"violation {t.violation}" if t.violation else "no change")
        items[t.id] = (f"{t.step} from {', '.join(t.from_)}",
                       {"step": t.step, "from": ", ".join(t.from_), "effect": effect,
                        "provenance": t.provenance, "citation": _cite(t.cite),
                        "why": t.why or "", "hazards": ", ".join(t.hazards)})
    for sd in d.same_day:
        items[sd.id] = (f"same day: {' and '.join(sd.steps)}",
                        {"steps": " and ".join(sd.steps), "finding": sd.finding,
                         "provenance": sd.provenance, "citation": _cite(sd.cite),
                         "why": sd.why or "", "hazards": ", ".join(sd.hazards)})
    for fd in d.findings:
        items[fd.id] = (fd.title, {"severity": fd.severity, "title": fd.title,
                                   "message": fd.message})
    return items


def _diff_pathway(old: Rulebook, new: Rulebook, out: list[Change]) -> None:
    a, b = old.pathway, new.pathway
    meta = _fields({"version": a.version, "status": a.status, "initial": a.initial},
                   {"version": b.version, "status": b.status, "initial": b.initial})
    if meta:
        out.append(Change("pathway", a.id, "changed", a.definition.title, meta))
    for key, ia, ib in _keyed(_pathway_items(old), _pathway_items(new)):
        va = ia[1] if ia is not None else {}
        vb = ib[1] if ib is not None else {}
        kind = "added" if ia is None else "removed" if ib is None else "changed"
        f = _fields(va, vb)
        if f:
            title = (ib or ia)[0] if (ib or ia) is not None else ""  # type: ignore[index]
            out.append(Change("pathway", key, kind, title, f))


def _diff_codelists(old: Rulebook, new: Rulebook, out: list[Change]) -> None:
    for cid, a, b in _keyed(dict(old.codelists), dict(new.codelists)):
        if a is None or b is None:
            cl = a or b
            assert cl is not None
            kind = "added" if a is None else "removed"
            codes = "; ".join(f"{e.code} {e.term}" for e in cl.entries) or "(no codes)"
            pair = ("codes", "", codes) if kind == "added" else ("codes", codes, "")
            out.append(Change("codelists", cid, kind, cl.title,
                              (("source", *(("", f"{cl.source.kind}: {cl.source.ref}")
                                            if kind == "added" else
                                            (f"{cl.source.kind}: {cl.source.ref}", "")),), pair)))
            continue
        fields: list[tuple[str, str, str]] = list(_fields(
            {"title": a.title, "source": f"{a.source.kind}: {a.source.ref}",
             "source version": a.source.version or "", "verified": _text(a.verified),
             "description": a.description},
            {"title": b.title, "source": f"{b.source.kind}: {b.source.ref}",
             "source version": b.source.version or "", "verified": _text(b.verified),
             "description": b.description}))
        ea = {e.code: e for e in a.entries}
        eb = {e.code: e for e in b.entries}
        added = [eb[c] for c in sorted(eb) if c not in ea]
        removed = [ea[c] for c in sorted(ea) if c not in eb]
        for e in added:
            flag = "" if e.verified else " (UNVERIFIED)"
            fields.append(("code added", "", f"{e.code} {e.term}{flag}"))
        for e in removed:
            fields.append(("code removed", f"{e.code} {e.term}", ""))
        for c in sorted(set(ea) & set(eb)):
            if ea[c].term != eb[c].term:
                fields.append((f"term of {c}", ea[c].term, eb[c].term))
            if ea[c].verified != eb[c].verified:
                fields.append((f"{c} verified", _text(ea[c].verified), _text(eb[c].verified)))
        if fields:
            out.append(Change("codelists", cid, "changed", b.title, tuple(fields)))


def _approval_view(book: Rulebook) -> dict[str, dict[str, str]]:
    approvals = approval_state(book)
    try:
        parts = targets(book)
    except IntRulesError:  # a dashboard that does not load in this version: leave it out
        parts = targets(book, with_dashboard=False)
    out: dict[str, dict[str, str]] = {}
    for t in parts.values():
        records = approvals.for_target(t.id)
        match = [r for r in records if r.version == t.version and r.sha256 == t.sha256]
        status = approvals.statuses.get(t.id)
        if status is None:  # the dashboard
            from .approvals import effective_status

            status = effective_status(t.declared, t.version, t.sha256, records)
        out[t.id] = {
            "status": status, "version": t.version, "content hash": t.sha256,
            "approved by": "; ".join(f"{r.by} ({r.role}), {r.date}" for r in match),
            "sign-offs recorded": str(len(records)),
        }
    return out


def _diff_approvals(old: Rulebook, new: Rulebook, out: list[Change]) -> None:
    for target, a, b in _keyed(_approval_view(old), _approval_view(new)):
        kind = "added" if a is None else "removed" if b is None else "changed"
        f = _fields(a or {}, b or {})
        if f:
            out.append(Change("approvals", target, kind, "", f))


def diff_rulebooks(old: Rulebook, new: Rulebook, old_label: str = "old",
                   new_label: str = "new") -> RulebookDiff:
    """Every reviewer-visible change from ``old`` to ``new``."""
    header = (
        ("rulebook", old.id, new.id),
        ("version", old.version, new.version),
        ("content hash (sha256)", old.sha256, new.sha256),
    )
    changes: list[Change] = []
    old_rs = {rs.id: rs for rs in old.rulesets}
    new_rs = {rs.id: rs for rs in new.rulesets}
    for _, a, b in _keyed(old_rs, new_rs):
        _diff_ruleset(a, b, changes)
    _diff_facts(old, new, changes)
    _diff_pathway(old, new, changes)
    _diff_codelists(old, new, changes)
    _diff_approvals(old, new, changes)
    return RulebookDiff(old_label, new_label, header, tuple(changes))


# -- Markdown ---------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|") or "—"


def _count(d: RulebookDiff) -> list[str]:
    rule_changes = [c for c in d.changes if c.section.endswith(": rules")]
    codes_added = sum(1 for c in d.of("codelists") for f in c.fields if f[0] == "code added")
    codes_removed = sum(1 for c in d.of("codelists") for f in c.fields if f[0] == "code removed")
    for c in d.of("codelists"):
        for name, before, after in c.fields:
            if name == "codes":
                n = len([x for x in (after or before).split("; ") if x and x != "(no codes)"])
                if c.kind == "added":
                    codes_added += n
                else:
                    codes_removed += n
    params = [c for c in d.changes if c.section.endswith("parameters")]
    return [
        f"- rules: {sum(c.kind == 'added' for c in rule_changes)} added, "
        f"{sum(c.kind == 'removed' for c in rule_changes)} removed, "
        f"{sum(c.kind == 'changed' for c in rule_changes)} changed, "
        f"{sum(c.kind == 'rewritten' for c in rule_changes)} rewritten (same meaning)",
        f"- rulesets: {len(d.of('rulesets', 'added'))} added, "
        f"{len(d.of('rulesets', 'removed'))} removed, {len(d.of('rulesets', 'changed'))} changed",
        f"- parameters: {len(params)} added, removed or changed",
        f"- facts: {len(d.of('facts'))} added, removed or changed",
        f"- caseload pathway: {len(d.of('pathway'))} items added, removed or changed",
        f"- codelists: {len(d.of('codelists', 'added'))} added, "
        f"{len(d.of('codelists', 'removed'))} removed, {len(d.of('codelists', 'changed'))} "
        f"changed; {codes_added} codes added, {codes_removed} codes removed",
    ]


def word_diff(before: str, after: str) -> tuple[str, str]:
    """``before`` and ``after`` with the words that differ marked: removed words ``~~struck~~``
    in ``before``, added words in **bold** in ``after`` (Markdown)."""
    a, b = before.split(), after.split()
    ma: list[str] = []
    mb: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            ma += a[i1:i2]
            mb += b[j1:j2]
            continue
        if i2 > i1:
            ma.append("~~" + " ".join(a[i1:i2]) + "~~")
        if j2 > j1:
            mb.append("**" + " ".join(b[j1:j2]) + "**")
    return " ".join(ma), " ".join(mb)


def _marked(before: str, after: str) -> tuple[str, str]:
    if not before or not after:
        return _cell(before), _cell(after)
    a, b = word_diff(_cell(before), _cell(after))
    return a, b


def _summary(d: RulebookDiff) -> list[str]:
    """The reviewer's summary: parameters, codelist membership, approvals, then rewrites."""
    out = ["## Reviewer's summary", ""]
    params = [c for c in d.changes if c.section.endswith("parameters")]
    out += ["### Parameters (value and provenance)", ""]
    if params:
        out += ["| parameter | | value | provenance |", "| --- | --- | --- | --- |"]
        for c in params:
            where = c.section.removesuffix(": parameters").removeprefix("ruleset ")
            f = {name: (a, b) for name, a, b in c.fields}
            value = f.get("value")
            prov = f.get("provenance")
            if c.kind == "changed" and value is None and prov is None:
                what = ", ".join(name for name, _, _ in c.fields)
                out.append(f"| `{where}.{c.item}` | changed | {what} changed | |")
                continue
            vtext = "unchanged" if value is None else (
                " → ".join(_marked(*value)) if c.kind == "changed" else _cell(value[0] or value[1]))
            ptext = "unchanged" if prov is None else (
                " → ".join(_marked(*prov)) if c.kind == "changed" else _cell(prov[0] or prov[1]))
            out.append(f"| `{where}.{c.item}` | {c.kind} | {vtext} | {ptext} |")
    else:
        out.append("No parameter changed.")
    out += ["", "### Codelist membership", ""]
    lines = []
    for c in d.of("codelists"):
        for name, a, b in c.fields:
            if name == "code added":
                lines.append(f"- `{c.item}`: **added** {_cell(b)}")
            elif name == "code removed":
                lines.append(f"- `{c.item}`: **removed** {_cell(a)}")
            elif name.startswith("term of "):
                lines.append(f"- `{c.item}`: {name}: {_cell(a)} → {_cell(b)}")
            elif name == "codes":
                lines.append(f"- `{c.item}` (codelist {c.kind}): {_cell(a or b)}")
    out += lines or ["No code was added to or removed from a codelist."]
    out += ["", "### Approvals", ""]
    appr = d.of("approvals")
    if appr:
        out += ["| part | | before | after |", "| --- | --- | --- | --- |"]
        for c in appr:
            for name, a, b in c.fields:
                if name == "content hash":
                    a, b = a[:16] + "…" if a else "", b[:16] + "…" if b else ""
                out.append(f"| `{c.item}` | {name} | {_cell(a)} | {_cell(b)} |")
    else:
        out.append("No approval changed.")
    rewrites = [c for c in d.changes if c.kind == "rewritten"]
    out += ["", "### Rewrites (same meaning)", ""]
    if rewrites and only_rewrites(d):
        out += ["**Only rewrites: every condition means what it meant, and no rule, parameter, "
                "fact, pathway item or code changed** (the content hashes change because the "
                "text did; a version bump and a new approval are still needed).", ""]
    if rewrites:
        out.append("These conditions are written differently but mean the same (after "
                   "flattening nested all/any, sorting operands and resolving named "
                   "conditions); nothing a person gets changes:")
        out.append("")
        out += [f"- `{c.item}`{': ' + c.title if c.title else ''} ({c.section})"
                for c in rewrites]
    else:
        out.append("None.")
    out.append("")
    return out


def only_rewrites(d: RulebookDiff) -> bool:
    """Whether ``d`` holds rewrites and nothing that changes meaning (besides versions and the
    approval state, which a rewrite changes too)."""
    for c in d.changes:
        if c.kind == "rewritten" or c.section == "approvals":
            continue
        if c.section in ("rulesets", "pathway") and c.kind == "changed" and \
                all(name in ("version", "status") for name, _, _ in c.fields):
            continue
        return False
    return any(c.kind == "rewritten" for c in d.changes)


def render_markdown(d: RulebookDiff) -> str:
    """The diff as Markdown for a change record (deterministic): the reviewer's summary first
    (parameters, codelist membership, approvals, rewrites), then every change in detail with
    the words that differ marked."""
    out = [f"# Rulebook changes: `{d.old_label}` → `{d.new_label}`", "",
           "| | before | after |", "| --- | --- | --- |"]
    for name, a, b in d.header:
        mark = "" if a == b else " (changed)"
        out.append(f"| {name}{mark} | `{a}` | `{b}` |")
    out += ["", *_summary(d), "## Counts", "", *_count(d), ""]
    if not d.changes:
        out += ["No rule, parameter, fact, pathway or codelist changed.", ""]
        return "\n".join(out)
    sections: list[str] = []
    for c in d.changes:
        if c.section not in sections:
            sections.append(c.section)
    for section in sections:
        out += [f"## {section[0].upper()}{section[1:]}", ""]
        for kind in ("added", "removed", "changed", "rewritten"):
            items = [c for c in d.changes if c.section == section and c.kind == kind]
            for c in items:
                title = f": {c.title}" if c.title else ""
                label = "Rewritten (same meaning)" if kind == "rewritten" else kind.capitalize()
                out += [f"### {label}: `{c.item}`{title}", ""]
                if kind in ("changed", "rewritten"):
                    out += ["| | before | after |", "| --- | --- | --- |"]
                    for name, a, b in c.fields:
                        ma, mb = _marked(a, b)
                        out.append(f"| {name} | {ma} | {mb} |")
                else:
                    out += ["| | |", "| --- | --- |"]
                    out += [f"| {name} | {_cell(a or b)} |" for name, a, b in c.fields]
                out.append("")
    return "\n".join(out)


# -- finding the two rulebooks ----------------------------------------------------------------


def _git(repo: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    except OSError as exc:
        raise DiffError(f"cannot run git: {exc.strerror}") from None
    if done.returncode != 0:
        msg = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DiffError(f"git {' '.join(args)}: {msg[-1] if msg else 'failed'}")
    return done.stdout


def _rulebook_dir(path: Path) -> Path | None:
    if (path / "rulebook.yaml").is_file():
        return path
    if (path / "rulesets" / "rulebook.yaml").is_file():
        return path / "rulesets"
    return None


@contextmanager
def materialise(spec: str, repo: Path, rules_path: str = "rulesets") -> Iterator[Path]:
    """The rulebook directory for ``spec``: a folder as it is, or a git revision extracted
    (rulebook folder and the codelists it names) into a temporary folder."""
    as_path = Path(spec)
    if as_path.is_dir():
        found = _rulebook_dir(as_path)
        if found is None:
            raise DiffError(f"{spec}: no rulebook.yaml here (nor in {spec}/rulesets)")
        yield found
        return
    try:
        rev = _git(repo, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}").decode().strip()
    except DiffError:
        raise DiffError(f"{spec!r} is neither a rulebook directory nor a git revision of "
                        f"{repo}") from None
    manifest_path = str(PurePosixPath(rules_path) / "rulebook.yaml")
    try:
        manifest = yaml.safe_load(_git(repo, "show", f"{rev}:{manifest_path}"))
    except DiffError:
        raise DiffError(f"revision {spec} has no {manifest_path} (use --rules-path)") from None
    codelists = str(manifest.get("codelists", "../codelists")) if isinstance(manifest, dict) \
        else "../codelists"
    codelist_path = _normalise(PurePosixPath(rules_path) / codelists)
    archive = _git(repo, "archive", "--format=tar", rev, rules_path, codelist_path)
    with tempfile.TemporaryDirectory(prefix="int-rules-diff-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp) / rules_path


def _normalise(path: PurePosixPath) -> str:
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def diff_specs(old: str, new: str, repo: Path, rules_path: str = "rulesets") -> RulebookDiff:
    """Load both sides (directories or git revisions) and compare them."""
    with materialise(old, repo, rules_path) as old_dir, \
            materialise(new, repo, rules_path) as new_dir:
        # compared while both folders exist: the dashboard is read from its file
        return diff_rulebooks(_load_side(old, old_dir), _load_side(new, new_dir), old, new)


def _load_side(spec: str, directory: Path) -> Rulebook:
    try:
        return load(directory)
    except IntRulesError as exc:
        raise DiffError(f"{spec}: the rulebook does not load:\n{exc}") from None
    except OSError as exc:
        raise DiffError(f"{spec}: the rulebook does not load: cannot read "
                        f"{Path(exc.filename or '').name or 'a file'} "
                        f"({exc.strerror})") from None
