"""``int-rules lint``: static verification of a rulebook, every finding located, with examples.

Three layers, so one run reports everything it can even when the rulebook does not load:

1. **References** (read straight from the YAML, before compiling): unknown and unused facts,
   codelists and parameters; rules without a citation or provenance; duplicate ids; draft and
   retired rulesets; outputs no rule sets; codelists with unverified codes. Then the rulebook is
   loaded, and any other load problem (schema, types, the caseload pathway's static checks) is
   reported too.
2. **Decisions** (:mod:`int_rules.review.analysis`, when the rulebook loads): under ``unique``,
   rules that overlap; under ``first`` / ``priority``, rules that can never fire because a rule
   that wins over them always holds too; for ``complete: true`` decisions, inputs no rule
   covers; in every ruleset, rules whose condition can never hold. Each with an example input.
3. **Hazards** (:mod:`int_rules.review.hazards`, when a hazard log is found): every hazard has a
   control; every control's rules and tests exist; every hazard a rule names is in the log.

Errors make ``int-rules lint`` exit 1; warnings and notes do not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..codelists import MANIFEST_NAME, CodelistSet, load_codelists
from ..errors import CodelistError, Location, RulesetError, RulesetErrors
from ..language.yamlsrc import LocatedDict, locate
from ..language.yamlsrc import load_yaml as read_yaml
from ..rulebook import Rulebook, default_rulebook_dir, load
from .analysis import DEFAULT_MAX_NODES, RulesetAnalysis, analyse_rulebook
from .findings import Finding, Severity, count_by_severity, sort_findings
from .hazards import (
    HazardRef,
    LoadedHazardLog,
    check_hazard_log,
    default_hazard_log_path,
    load_hazard_log,
)
from .signoff import CHECKS as SIGNOFF_CHECKS
from .signoff import approval_findings

__all__ = ["CHECKS", "LintReport", "lint"]

#: Every check lint runs, with its severity and what it means (docs/review.md lists them).
CHECKS: Mapping[str, tuple[Severity, str]] = {
    "load": ("error", "the rulebook does not load (schema, types, YAML)"),
    "unknown-fact": ("error", "a condition or fact names a fact that is not declared"),
    "unknown-codelist": ("error", "a fact or pathway step names a codelist not in the manifest"),
    "unknown-parameter": ("error", "a condition or fact names a parameter that is not declared"),
    "unused-fact": ("warning", "a fact no rule reads, directly or through another fact"),
    "unused-codelist": ("warning", "a codelist no fact, pathway step or output uses"),
    "unused-parameter": ("warning", "a parameter nothing reads"),
    "unused-output": ("warning", "a declared output no rule sets"),
    "unused-condition": ("warning", "a named condition no rule uses"),
    "duplicate-id": ("error", "two rules, pathway items or rulesets share an id"),
    "missing-provenance": ("error", "a rule without provenance"),
    "missing-citation": ("error", "a rule without a full citation (source, section, quote); "
                                  "a warning for a guidance parameter without one"),
    "citation-source": ("warning", "a rule cites a file its ruleset does not list as guidance"),
    "draft": ("warning", "a ruleset or the pathway is still a draft"),
    "retired": ("warning", "a retired ruleset is still in the rulebook"),
    "unverified-code": ("warning", "a codelist in use holds codes no published source confirms"),
    "uncodable": ("info", "a codelist in use is empty: its domain cannot be checked from codes"),
    "pathway": ("error", "the caseload pathway fails a static check"),
    "codelists": ("error", "the codelists fail to load"),
    "overlap": ("error", "under 'unique', two rules can fire for one input"),
    "gap": ("error", "a 'complete' decision has an input no rule covers"),
    "subsumed": ("error", "under 'first'/'priority', a rule always loses to another"),
    "never-fires": ("error", "a rule whose condition is false for every input"),
    "priority-tie": ("warning", "two overlapping rules with the same priority"),
    "not-settled": ("warning", "the decision search reached its bound; a question is open"),
    "analysis-skipped": ("info", "decision checks were skipped (the rulebook does not load)"),
    "hazard-log": ("error", "the hazard log does not fit its schema"),
    "hazard-duplicate": ("error", "two hazards share an id"),
    "hazard-no-control": ("error", "a hazard (or control) without controls, rules or tests"),
    "hazard-unknown-rule": ("error", "a control names a rule that does not exist"),
    "hazard-unknown-test": ("error", "a control names a test that does not exist"),
    "hazards-tests-skipped": ("info", "the tests controls name were not checked (no tests/)"),
    "hazard-unknown": ("error", "a rule names a hazard that is not in the log"),
    "hazard-risk": ("error", "a risk rating does not match the risk matrix"),
    "hazard-untested-control": ("warning", "a control names no test"),
    "hazard-residual": ("warning", "a residual risk above the initial risk"),
    "hazard-owner": ("error", "a mitigated or closed hazard names no owner"),
    "hazard-unevidenced": ("error", "a mitigated hazard has no control naming a test"),
    "hazard-review-date": ("warning", "an open or mitigated hazard has no review date"),
    "hazards-skipped": ("info", "no hazard log found; hazard checks were skipped"),
    "approvals": ("error", "the approval records do not load"),
    **SIGNOFF_CHECKS,
}

@dataclass(frozen=True)
class LintReport:
    """Everything one lint run found, and how far the decision analysis looked."""

    path: str
    findings: tuple[Finding, ...]
    analyses: tuple[RulesetAnalysis, ...] = ()
    sha256: str | None = None
    hazard_log: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        return count_by_severity(self.findings)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    def of(self, check: str) -> tuple[Finding, ...]:
        """The findings of one check."""
        return tuple(f for f in self.findings if f.check == check)

    def text(self) -> str:
        lines = [f.text() for f in self.findings]
        if self.analyses:
            lines.append("")
            lines.append("Decision analysis (exact over representative fact values; facts "
                         "treated as independent, see docs/review.md):")
            lines.extend(f"  {a.summary()}" for a in self.analyses)
        c = self.counts
        lines.append("")
        lines.append(f"{self.path}: {c['error']} error{'s' if c['error'] != 1 else ''}, "
                     f"{c['warning']} warning{'s' if c['warning'] != 1 else ''}, "
                     f"{c['info']} note{'s' if c['info'] != 1 else ''}")
        return "\n".join(lines).lstrip("\n")

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "hazard_log": self.hazard_log,
            "summary": self.counts,
            "findings": [f.to_dict() for f in self.findings],
            "analysis": [
                {"ruleset": a.ruleset, "hit_policy": a.hit_policy, "complete": a.complete,
                 "facts": list(a.facts), "abstract_inputs": a.abstract_inputs,
                 "questions": a.questions, "settled": a.settled, "exhaustive": a.exhaustive}
                for a in self.analyses
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)


# -- reading the YAML as written --------------------------------------------------------------


def _display(path: Path, base: Path) -> str:
    """How the loader names a file: relative to the folder above the rulebook."""
    try:
        return str(path.resolve().relative_to(base.resolve().parent))
    except ValueError:
        return str(path)


Ref = tuple[Literal["fact", "param", "condition"], str, tuple[int | str, ...]]


def _condition_refs(node: Any, path: tuple[int | str, ...]) -> Iterator[Ref]:
    """Every fact and parameter a ``when`` tree (as written) names, with its path."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _condition_refs(item, (*path, i))
        return
    if not isinstance(node, dict):
        return
    for key in ("all", "any"):
        if key in node:
            yield from _condition_refs(node[key], (*path, key))
    if "not" in node:
        yield from _condition_refs(node["not"], (*path, "not"))
    if isinstance(node.get("condition"), str) and "fact" not in node:
        yield "condition", node["condition"], (*path, "condition")
    if isinstance(node.get("fact"), str):
        yield "fact", node["fact"], (*path, "fact")
        for op, value in node.items():
            if op == "fact" or not isinstance(value, dict):
                continue
            if isinstance(value.get("fact"), str):
                yield "fact", value["fact"], (*path, op, "fact")
            if isinstance(value.get("param"), str):
                yield "param", value["param"], (*path, op, "param")


def _ids(value: Any) -> list[tuple[str, tuple[int | str, ...]]]:
    if isinstance(value, str):
        return [(value, ())]
    if isinstance(value, list):
        return [(v, (i,)) for i, v in enumerate(value) if isinstance(v, str)]
    return []


@dataclass
class _File:
    shown: str
    raw: Any

    def at(self, *path: int | str) -> Location:
        return locate(self.raw, path, self.shown)


@dataclass
class _Source:
    """The rulebook's files as written, and what they name."""

    base: Path
    manifest: _File | None = None
    facts: _File | None = None
    pathway: _File | None = None
    codelist_manifest: _File | None = None
    rulesets: list[_File] = field(default_factory=list)
    codelists: CodelistSet | None = None
    findings: list[Finding] = field(default_factory=list)

    def add(self, location: Location | None, check: str, message: str,
            key: str | None = None, severity: Severity | None = None) -> None:
        sev = severity or CHECKS[check][0]
        self.findings.append(Finding.at(location, check, sev, message, key))


def _read(src: _Source, path: Path) -> _File | None:
    shown = _display(path, src.base)
    try:
        return _File(shown, read_yaml(path, shown))
    except RulesetError as exc:
        check = "duplicate-id" if "appears twice" in exc.message else "load"
        src.add(exc.location, check, exc.message, exc.key)
        return None


def _read_source(base: Path, codelists: CodelistSet | None = None) -> _Source:
    src = _Source(base, codelists=codelists)
    src.manifest = _read(src, base / "rulebook.yaml")
    m = src.manifest.raw if src.manifest else None
    if not isinstance(m, dict):
        return src

    def named(key: str) -> Path | None:
        value = m.get(key)
        return base / value if isinstance(value, str) else None

    if (p := named("facts")) is not None:
        src.facts = _read(src, p)
    if (p := named("pathway")) is not None:
        src.pathway = _read(src, p)
    for name in m.get("rulesets") or []:
        if isinstance(name, str):
            f = _read(src, base / name)
            if f is not None:
                src.rulesets.append(f)
    if (p := named("codelists")) is not None:
        cdir = p.resolve()
        try:
            if src.codelists is None:
                src.codelists = load_codelists(cdir)
        except (CodelistError, RulesetError) as exc:
            if isinstance(exc, RulesetError):
                src.add(exc.location, "codelists", exc.message, exc.key)
            else:
                src.add(None, "codelists", str(exc))
        if (cdir / MANIFEST_NAME).is_file():
            src.codelist_manifest = _read(src, cdir / MANIFEST_NAME)
    return src


def _codelist_ids(src: _Source) -> dict[str, Location | None]:
    """Codelist id -> where the manifest declares it."""
    if src.codelists is not None:
        out: dict[str, Location | None] = {cid: None for cid in src.codelists}
    else:
        out = {}
    cm = src.codelist_manifest
    if cm is not None and isinstance(cm.raw, dict) and isinstance(cm.raw.get("codelists"), list):
        for i, entry in enumerate(cm.raw["codelists"]):
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                out[entry["id"]] = cm.at("codelists", i, "id")
    return out


# -- the reference checks ---------------------------------------------------------------------


@dataclass
class _Uses:
    facts: set[str]
    params: set[str]
    conditions: set[str]


def _scan_condition(src: _Source, rf: _File, when: Any, path: tuple[int | str, ...], label: str,
                    params: Mapping[str, Any], rs_id: Any, declared_facts: set[str],
                    uses: _Uses) -> None:
    """Record what a ``when`` tree of a ruleset names; report unknown facts and parameters."""
    for kind, ref, where in _condition_refs(when, path):
        if kind == "fact":
            uses.facts.add(ref)
            if src.facts is not None and ref not in declared_facts:
                src.add(rf.at(*where), "unknown-fact",
                        f"condition names fact {ref!r}, which is not declared in "
                        f"{src.facts.shown}", label)
        elif kind == "param":
            uses.params.add(ref)
            if ref not in params:
                src.add(rf.at(*where), "unknown-parameter",
                        f"condition names parameter {ref!r}, which ruleset {rs_id} does not "
                        f"declare (parameters: {', '.join(params) or 'none'})", label)
        else:
            uses.conditions.add(ref)


def _reference_checks(src: _Source) -> tuple[set[str], list[HazardRef]]:
    """Run layer 1; return every rule/pathway item id and every hazard reference."""
    codelists = _codelist_ids(src)
    known_codelists = set(codelists)
    used_codelists: set[str] = set()
    item_ids: dict[str, str] = {}
    hazard_refs: list[HazardRef] = []

    def item(item_id: Any, file: _File, path: tuple[int | str, ...], what: str) -> None:
        if not isinstance(item_id, str):
            return
        if item_id in item_ids:
            src.add(file.at(*path), "duplicate-id",
                    f"{what} id {item_id} is also used in {item_ids[item_id]}", item_id)
        else:
            item_ids[item_id] = file.shown

    def hazards(value: Any, label: str, file: _File, path: tuple[int | str, ...]) -> None:
        if isinstance(value, list):
            for j, hz in enumerate(value):
                if isinstance(hz, str):
                    hazard_refs.append(HazardRef(hz, label, file.at(*path, j)))

    def codelist_refs(value: Any, file: _File, path: tuple[int | str, ...], who: str) -> None:
        for cid, sub in _ids(value):
            used_codelists.add(cid)
            if src.codelists is not None and cid not in known_codelists:
                src.add(file.at(*path, *sub), "unknown-codelist",
                        f"{who} names codelist {cid!r}, which is not in the codelist manifest",
                        who)

    # Facts
    facts_raw = src.facts.raw if src.facts and isinstance(src.facts.raw, dict) else {}
    fact_defs = facts_raw.get("facts") if isinstance(facts_raw.get("facts"), dict) else {}
    assert isinstance(fact_defs, dict)
    declared_facts = set(fact_defs)
    fact_params = facts_raw.get("parameters") or {}
    used_fact_params: set[str] = set()
    fact_deps: dict[str, set[str]] = {n: set() for n in declared_facts}
    if src.facts is not None:
        ff = src.facts
        for name, fdef in fact_defs.items():
            if not isinstance(fdef, dict):
                continue
            base = ("facts", name)
            who = f"facts.{name}"
            codelist_refs(fdef.get("codelist"), ff, (*base, "codelist"), who)
            cats = fdef.get("categories")
            if isinstance(cats, dict):
                for cat, value in cats.items():
                    codelist_refs(value, ff, (*base, "categories", cat), who)
            for key in ("since", "until", "from"):
                ref = fdef.get(key)
                if isinstance(ref, str):
                    fact_deps[name].add(ref)
                    if ref not in declared_facts:
                        src.add(ff.at(*base, key), "unknown-fact",
                                f"{key} names fact {ref!r}, which is not declared", who)
            for key in ("within_days", "value"):
                v = fdef.get(key)
                if isinstance(v, dict) and isinstance(v.get("param"), str):
                    used_fact_params.add(v["param"])
                    if v["param"] not in fact_params:
                        src.add(ff.at(*base, key, "param"), "unknown-parameter",
                                f"names parameter {v['param']!r}, which facts.yaml does not "
                                "declare", who)
            for kind, ref, path in _condition_refs(fdef.get("when"), (*base, "when")):
                if kind == "fact":
                    fact_deps[name].add(ref)
                    if ref not in declared_facts:
                        src.add(ff.at(*path), "unknown-fact",
                                f"condition names fact {ref!r}, which is not declared", who)
                else:
                    used_fact_params.add(ref)
                    if ref not in fact_params:
                        src.add(ff.at(*path), "unknown-parameter",
                                f"condition names parameter {ref!r}, which facts.yaml does not "
                                "declare", who)

    # Pathway
    if src.pathway is not None and isinstance(src.pathway.raw, dict):
        pf = src.pathway
        praw = pf.raw
        for i, step in enumerate(praw.get("steps") or []):
            if isinstance(step, dict):
                codelist_refs(step.get("codelists"), pf, ("steps", i, "codelists"),
                              f"pathway step {step.get('id')}")
        for key in ("transitions", "same_day", "findings"):
            for i, t in enumerate(praw.get(key) or []):
                if isinstance(t, dict):
                    item(t.get("id"), pf, (key, i, "id"), "pathway item")
                    if isinstance(t.get("id"), str):
                        hazards(t.get("hazards"), t["id"], pf, (key, i, "hazards"))
        if praw.get("status") == "draft":
            src.add(pf.at("status"), "draft", f"the caseload pathway {praw.get('pathway')} is a "
                                              "draft: not approved for clinical use",
                    "pathway status")

    # Rulesets
    read_by_rules: set[str] = set()
    seen_rulesets: dict[str, str] = {}
    for rf in src.rulesets:
        raw = rf.raw
        if not isinstance(raw, dict):
            continue
        rs_id = raw.get("ruleset")
        if isinstance(rs_id, str):
            if rs_id in seen_rulesets:
                src.add(rf.at("ruleset"), "duplicate-id",
                        f"ruleset id {rs_id} is also used by {seen_rulesets[rs_id]}", "ruleset")
            seen_rulesets.setdefault(rs_id, rf.shown)
        status = raw.get("status")
        if status == "draft":
            src.add(rf.at("status"), "draft", "a draft: not approved for clinical use",
                    f"ruleset {rs_id}")
        elif status == "retired":
            src.add(rf.at("status"), "retired", "retired but still listed in the rulebook "
                                                "manifest", f"ruleset {rs_id}")
        params = raw.get("parameters") if isinstance(raw.get("parameters"), dict) else {}
        assert isinstance(params, dict)
        guidance = raw.get("guidance")
        guidance_files = set(guidance if isinstance(guidance, list) else [guidance])
        outputs = raw.get("outputs") if isinstance(raw.get("outputs"), dict) else {}
        assert isinstance(outputs, dict)
        used_params: set[str] = set()
        set_outputs: set[str] = set()
        named = raw.get("conditions") if isinstance(raw.get("conditions"), dict) else {}
        assert isinstance(named, dict)
        used_named: set[str] = set()

        uses = _Uses(read_by_rules, used_params, used_named)
        for cname, cond in named.items():
            _scan_condition(src, rf, cond, ("conditions", cname), f"condition {cname}", params,
                            rs_id, declared_facts, uses)
        for pname, pdef in params.items():
            if isinstance(pdef, dict) and pdef.get("provenance") == "guidance" and \
                    not isinstance(pdef.get("cite"), dict):
                src.add(rf.at("parameters", pname), "missing-citation",
                        f"parameter {pname} says it comes from the guidance but cites no "
                        "passage", f"parameters.{pname}", "warning")
        for i, rule in enumerate(raw.get("rules") or []):
            if not isinstance(rule, dict):
                continue
            rid = rule.get("id")
            label = f"rule {rid}" if isinstance(rid, str) else f"rules[{i}]"
            here = ("rules", i)
            item(rid, rf, (*here, "id"), "rule")
            if isinstance(rid, str):
                hazards(rule.get("hazards"), rid, rf, (*here, "hazards"))
            prov = rule.get("provenance")
            if not isinstance(prov, str) or not prov:
                src.add(rf.at(*here), "missing-provenance",
                        "rule has no provenance (guidance, local-policy or assumption)", label)
            cite = rule.get("cite")
            if not isinstance(cite, dict):
                src.add(rf.at(*here), "missing-citation",
                        "rule has no citation (cite: source, section, quote)", label)
            else:
                missing = [k for k in ("source", "section", "quote")
                           if not isinstance(cite.get(k), str) or not cite[k].strip()]
                if missing:
                    src.add(rf.at(*here, "cite"), "missing-citation",
                            f"citation has no {', '.join(missing)}", label)
                elif cite["source"] not in guidance_files and prov == "guidance":
                    src.add(rf.at(*here, "cite", "source"), "citation-source",
                            f"cites {cite['source']}, which the ruleset's guidance list "
                            f"({', '.join(sorted(str(g) for g in guidance_files))}) does not "
                            "name", label)
            then = rule.get("then")
            if isinstance(then, dict):
                for key, value in then.items():
                    set_outputs.add(key)
                    out = outputs.get(key)
                    if isinstance(out, dict) and out.get("type") == "code" and \
                            src.codelists is not None:
                        used_codelists.update(src.codelists.lists_containing(str(value)))
            _scan_condition(src, rf, rule.get("when"), (*here, "when"), label, params, rs_id,
                            declared_facts, uses)
        used_by_rules = set(used_named)
        for cname, cond in named.items():  # names used only by other named conditions
            for kind, ref, _ in _condition_refs(cond, ()):
                if kind == "condition" and ref != cname:
                    used_by_rules.add(ref)
        for cname in named:
            if cname not in used_by_rules:
                src.add(rf.at("conditions", cname), "unused-condition",
                        "named condition no rule uses", f"conditions.{cname}")
        for pname in params:
            if pname not in used_params:
                src.add(rf.at("parameters", pname), "unused-parameter",
                        f"declared but no rule of {rs_id} reads it",
                        f"parameters.{pname}")
        for oname in outputs:
            if oname not in set_outputs:
                src.add(rf.at("outputs", oname), "unused-output",
                        "declared but no rule sets it", f"outputs.{oname}")

    # Unused facts: not reachable from any rule through fact dependencies.
    if src.facts is not None and src.rulesets:
        reached: set[str] = set()
        stack = [f for f in read_by_rules if f in declared_facts]
        while stack:
            name = stack.pop()
            if name in reached:
                continue
            reached.add(name)
            stack.extend(d for d in fact_deps.get(name, ()) if d in declared_facts)
        for name in fact_defs:
            if name not in reached:
                src.add(src.facts.at("facts", name), "unused-fact",
                        "declared but no rule reads it (directly or through another fact)",
                        f"facts.{name}")
        for pname in fact_params:
            if pname not in used_fact_params:
                src.add(src.facts.at("parameters", pname), "unused-parameter",
                        "declared but no fact reads it",
                        f"parameters.{pname}")

    # Codelists: unused, unverified, empty.
    if src.codelists is not None:
        for cid, cl in src.codelists.items():
            loc = codelists.get(cid)
            if cid not in used_codelists:
                src.add(loc, "unused-codelist",
                        "not used by any fact, pathway step or output",
                        f"codelist {cid}")
                continue
            if cl.is_empty:
                src.add(loc, "uncodable",
                        f"empty: '{cl.title}' cannot be checked from codes until a verified "
                        "code is supplied", f"codelist {cid}")
            elif cl.unverified_codes:
                codes = ", ".join(f"{e.code} {e.term}" for e in cl.unverified_codes)
                src.add(loc, "unverified-code",
                        f"{len(cl.unverified_codes)} code(s) no published source confirms: "
                        f"{codes}", f"codelist {cid}")
    return set(item_ids), hazard_refs


def _flatten(exc: RulesetError) -> list[RulesetError]:
    if isinstance(exc, RulesetErrors):
        out: list[RulesetError] = []
        for e in exc.errors:
            out.extend(_flatten(e) if e is not exc else [e])
        return out
    return [exc]


def _load_findings(exc: RulesetError, src: _Source) -> list[Finding]:
    """Load problems not already reported by the reference checks (same file and line)."""
    taken = {(f.file, f.line) for f in src.findings if f.severity == "error"}
    pathway_file = src.pathway.shown if src.pathway else None
    out = []
    yaml_broken = {f.file for f in src.findings if f.message.startswith("invalid YAML")}
    for e in _flatten(exc):
        loc = e.location
        if loc is not None and (loc.file, loc.line) in taken:
            continue
        if loc is not None and loc.file in yaml_broken and e.message.startswith("invalid YAML"):
            continue
        check = "pathway" if loc is not None and loc.file == pathway_file else "load"
        if "appears twice" in e.message or "duplicate rule id" in e.message:
            check = "duplicate-id"
        out.append(Finding.at(loc, check, "error", e.message, e.key))
    return out


def _analysis_findings(analyses: Sequence[RulesetAnalysis], book: Rulebook) -> list[Finding]:
    out = []
    for a in analyses:
        rs = book.ruleset(a.ruleset)
        for f in a.findings:
            loc = f.rule.location if f.rule is not None else Location(rs.file)
            if f.rule is None:
                # A finding about the whole decision: point at its hit policy.
                loc = _hit_policy_location(rs.file, book) or loc
            key = f"rule {f.rule.id}" if f.rule is not None else f"ruleset {a.ruleset}"
            out.append(Finding.at(loc, f.check, CHECKS[f.check][0], f.message, key,
                                  example=f.example, rules=f.rules))
    return out


def _hit_policy_location(shown: str, book: Rulebook) -> Location | None:
    path = book.directory.resolve().parent / shown
    try:
        raw = read_yaml(path, shown)
    except RulesetError:
        return None
    if isinstance(raw, LocatedDict):
        return locate(raw, ("complete",) if "complete" in raw else ("hit_policy",), shown)
    return None


def lint(
    directory: str | Path | None = None,
    hazard_log: str | Path | None = None,
    project_root: str | Path | None = None,
    max_nodes: int = DEFAULT_MAX_NODES,
    use_hazard_log: bool = True,
    book: Rulebook | None = None,
) -> LintReport:
    """Lint the rulebook in ``directory`` (default: the bundled one).

    ``hazard_log`` defaults to ``<rulebook>/../docs/safety/hazard-log.yaml`` when that exists;
    ``project_root`` (where the tests named by controls live) defaults to the folder that holds
    the hazard log's ``docs/``. ``book``: the rulebook already loaded from ``directory`` (saves
    loading it again). Raises :class:`~int_rules.errors.RulesetError` only when there is no
    rulebook at ``directory`` at all.
    """
    base = Path(directory) if directory is not None else default_rulebook_dir()
    if base.is_file():
        base = base.parent
    if not (base / "rulebook.yaml").is_file():
        raise RulesetError(Location(str(base)), "no rulebook here (looked for "
                                                f"{(base / 'rulebook.yaml').resolve()})")
    problem: Exception | None = None
    if book is None:
        try:
            book = load(base)
        except (RulesetError, CodelistError, OSError) as exc:
            problem = exc
    src = _read_source(base, book.codelists if book is not None else None)
    rule_ids, hazard_refs = _reference_checks(src)
    findings = list(src.findings)
    if isinstance(problem, RulesetError):
        findings += _load_findings(problem, src)
    elif isinstance(problem, CodelistError):
        if not any(f.check == "codelists" for f in findings):
            findings.append(Finding("codelists", "error", str(problem)))
    elif isinstance(problem, OSError) and not any(  # a file the manifest names is missing
            f.check == "load" and "cannot read" in f.message for f in findings):
        findings.append(Finding("load", "error", f"cannot read {problem.filename}: "
                                                     f"{problem.strerror}"))

    analyses: tuple[RulesetAnalysis, ...] = ()
    if book is not None:
        analyses = analyse_rulebook(book, max_nodes)
        findings += _analysis_findings(analyses, book)
    else:
        findings.append(Finding("analysis-skipped", "info",
                                "decision checks (overlaps, gaps, rules that never fire) need a "
                                "rulebook that loads; fix the errors above and run lint again"))

    if book is not None:
        try:
            findings += approval_findings(book)
        except RulesetError as exc:
            findings.append(Finding.at(exc.location, "approvals", "error", exc.message, exc.key))

    log_path: Path | None = None
    if use_hazard_log:
        log_path = Path(hazard_log) if hazard_log is not None else default_hazard_log_path(base)
        if hazard_log is None and not log_path.is_file():
            findings.append(Finding("hazards-skipped", "info",
                                    f"no hazard log at {log_path}; pass --hazards FILE to check "
                                    "hazards against the rules and tests"))
            log_path = None
    shown_log: str | None = None
    if log_path is not None:
        if not log_path.is_file():
            raise RulesetError(Location(str(log_path)), "no hazard log here")
        root = Path(project_root) if project_root is not None else \
            log_path.resolve().parent.parent.parent
        loaded, problems = load_hazard_log(log_path, _relative(log_path, root))
        findings += problems
        if loaded is not None:
            shown_log = loaded.file
            rb_id = book.id if book is not None else None
            findings += check_hazard_log(loaded, rule_ids, hazard_refs, root, rb_id)

    return LintReport(
        path=str(base),
        findings=tuple(sort_findings(findings)),
        analyses=analyses,
        sha256=book.sha256 if book is not None else None,
        hazard_log=shown_log,
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def hazard_log_for(book: Rulebook, hazard_log: str | Path | None = None
                   ) -> LoadedHazardLog | None:
    """The hazard log next to a rulebook (or at ``hazard_log``), or None if there is none."""
    path = Path(hazard_log) if hazard_log is not None else default_hazard_log_path(book.directory)
    if not path.is_file():
        if hazard_log is not None:
            raise RulesetError(Location(str(path)), "no hazard log here")
        return None
    loaded, problems = load_hazard_log(path, _relative(path, path.resolve().parents[2]))
    if loaded is None:
        raise RulesetError(None, "the hazard log does not load:\n" +
                           "\n".join(p.text() for p in problems))
    return loaded
