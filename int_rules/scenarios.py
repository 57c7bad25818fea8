"""Scenario tests as data: load them, run them through any engine, measure rule coverage.

A scenario is a patient record, an as-of date and the outcomes expected. Scenario files live
beside the rulesets (``rulesets/tests/*.yaml``, the manifest's ``scenarios`` folder) so clinical
safety reviewers can read them next to the rules they test. The format::

    scenarios:
      - id: idn-severe-frailty-fires          # unique across all files
        description: An 86-year-old with severe frailty coded is in the frailty cohort.
        as_of: 2026-11-23
        record: {patient_id: S001, date_of_birth: 1940-05-02,
                 events: [{code: "925861000000102", date: 2025-01-01}]}
        # or: record_file: ../../examples/records/frail_on_caseload.json (relative to this file)
        overrides: {monitoring.max_available_level: 3}   # optional parameter overrides
        example_for: [identification]                     # optional: the worked example page
        expect:                                           # every key optional
          fired: [IDN-010]                                # these rules fire
          not_fired: [IDN-020]                            # these do not
          results: {identification: {cohort: [frailty]}} # only the keys given are checked;
                                                          # lists compare as sets
          pathway_state: on_caseload
          facts: {frailty_category: severe}               # dates as YYYY-MM-DD

The API (small, typed, stable; other engines' tests call it)::

    book = int_rules.load()
    scenarios = load_scenarios(book)                  # or load_scenarios(book, [path, ...])
    results = run_scenarios(book, scenarios, engine="reference")
    failed = [r for r in results if not r.passed]
    print(failed[0].diff())                           # expected vs got, line by line
    cov = rule_coverage(book, results)                # per rule: scenarios firing / not firing
    print(coverage_table(cov))

``engine`` is an engine name ``Rulebook.assess`` knows (``"reference"``, ``"durable"``) or any
callable ``(book, record, as_of) -> Assessment`` (e.g. a batch engine's per-record adapter).

Errors: a malformed scenario file raises :class:`~int_rules.errors.RulesetError` naming
``file:line:column`` and the scenario; a bad record names the scenario's location, the patient
and the field (the :class:`~int_rules.errors.RecordError` text).

Worked examples: ``python -m int_rules.scenarios --examples docs/examples`` writes one Markdown
page per ruleset from the scenario marked ``example_for`` it (record, results, explanation);
``--check`` fails if the committed pages differ, and the test suite runs that check.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import IntRulesError, Location, RecordError, RulesetError, RulesetErrors
from .language.yamlsrc import load_yaml, locate
from .record import PatientRecord

if TYPE_CHECKING:
    from .assessment import Assessment
    from .rulebook import Rulebook

__all__ = [
    "Expectation",
    "RuleCoverage",
    "Scenario",
    "ScenarioResult",
    "coverage_table",
    "load_scenarios",
    "rule_coverage",
    "run_scenario",
    "run_scenarios",
    "scenario_files",
    "waits_for_codes",
    "write_examples",
]

if TYPE_CHECKING:
    #: An engine: a name ``Rulebook.assess`` knows, or a function assessing one record.
    EngineArg = str | Callable[[Rulebook, PatientRecord, dt.date], Assessment]


# -- the file shape ---------------------------------------------------------------------------

_STRICT = ConfigDict(extra="forbid", frozen=True)


class _ExpectModel(BaseModel):
    model_config = _STRICT
    fired: list[str] = Field(default_factory=list)
    not_fired: list[str] = Field(default_factory=list)
    results: dict[str, dict[str, Any]] = Field(default_factory=dict)
    pathway_state: str | None = None
    facts: dict[str, Any] = Field(default_factory=dict)


class _ScenarioModel(BaseModel):
    model_config = _STRICT
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = Field(min_length=1)
    as_of: dt.date
    record: dict[str, Any] | None = None
    record_file: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)
    example_for: list[str] = Field(default_factory=list)
    expect: _ExpectModel


class _ScenarioFileModel(BaseModel):
    model_config = _STRICT
    scenarios: list[_ScenarioModel] = Field(min_length=1)


# -- loaded scenarios -------------------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """What a scenario expects. Empty fields are not checked."""

    fired: tuple[str, ...] = ()
    not_fired: tuple[str, ...] = ()
    results: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pathway_state: str | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """One scenario: a record, a date, parameter overrides, and the outcomes expected."""

    id: str
    description: str
    as_of: dt.date
    record: PatientRecord
    expect: Expectation
    location: Location
    overrides: Mapping[str, Any] = field(default_factory=dict)
    example_for: tuple[str, ...] = ()
    record_file: str | None = None  # the absolute path, when the record is read from a file


@dataclass(frozen=True)
class ScenarioResult:
    """The outcome of running one scenario: pass/fail, and what differed."""

    scenario: Scenario
    engine: str
    fired: tuple[str, ...]
    problems: tuple[str, ...]
    assessment: Assessment | None = None
    error: str | None = None

    @property
    def passed(self) -> bool:
        return not self.problems

    def diff(self) -> str:
        """A readable report: where the scenario is, and each expectation that was not met."""
        s = self.scenario
        head = f"{s.location}: scenario {s.id} [{self.engine}]: " + (
            "passed" if self.passed else f"{len(self.problems)} problem(s)"
        )
        lines = [head, f"  {s.description}"]
        lines += [f"  - {p}" for p in self.problems]
        if not self.passed:
            lines.append(f"  rules fired: {', '.join(self.fired) or '(none)'}")
        return "\n".join(lines)


@dataclass(frozen=True)
class RuleCoverage:
    """Which scenarios fire a rule and which evaluate it without firing it.

    ``waits_for_codes`` names the empty codelists that keep a rule from firing with this
    rulebook: the rule requires (at the top level of its ``all``) a ``codelist_available`` fact
    to be true, and that fact's codelists are all empty. Such a rule (e.g. "loneliness
    assessment not recorded") starts to work when an INT supplies a local code; until then it
    counts as covered if a scenario evaluates it without firing.
    """

    rule_id: str
    ruleset: str
    fired_in: tuple[str, ...]
    not_fired_in: tuple[str, ...]
    waits_for_codes: tuple[str, ...] = ()

    @property
    def covered(self) -> bool:
        if self.waits_for_codes and not self.fired_in:
            return bool(self.not_fired_in)
        return bool(self.fired_in) and bool(self.not_fired_in)


# -- loading ----------------------------------------------------------------------------------


def scenario_files(book: Rulebook) -> list[Path]:
    """The scenario files of a rulebook (``*.yaml`` in its manifest's ``scenarios`` folder)."""
    folder = book.manifest.scenarios
    if folder is None:
        return []
    return sorted((book.directory / folder).glob("*.yaml"))


def _display(path: Path, root: Path) -> str:
    """How a scenario file is named in messages: relative to the folder holding the rulebook
    folder (the repository root for the bundled one), so names do not depend on the cwd."""
    resolved = path.resolve()
    return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(path)


def load_scenarios(book: Rulebook, paths: Iterable[str | Path] | None = None) -> list[Scenario]:
    """Load and validate scenario files (default: the rulebook's own), in file order.

    Checks the file shape, each record, that scenario ids are unique, and that every rule,
    ruleset, output, fact and pathway state named in an expectation exists in ``book``.
    Raises :class:`RulesetError` (or ``RulesetErrors``) with ``file:line:column`` for every
    problem found.
    """
    files = [Path(p) for p in paths] if paths is not None else scenario_files(book)
    errors: list[RulesetError] = []
    out: list[Scenario] = []
    seen: dict[str, Location] = {}
    root = book.directory.resolve().parent
    for path in files:
        shown = _display(path, root)
        raw = load_yaml(path, shown)
        try:
            model = _ScenarioFileModel.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                msg = err["msg"].removeprefix("Value error, ")
                if err["type"] == "extra_forbidden":
                    msg = "unknown key (see the format in docs/rulesets.md)"
                elif err["type"] == "missing":
                    msg = "required key is missing"
                key = ".".join(str(p) for p in err["loc"])
                errors.append(RulesetError(locate(raw, err["loc"], shown), msg, key))
            continue
        for i, sm in enumerate(model.scenarios):
            loc = locate(raw, ("scenarios", i), shown)
            label = f"scenario {sm.id}"
            if sm.id in seen:
                errors.append(RulesetError(loc, f"duplicate scenario id (also at {seen[sm.id]})",
                                           label))
                continue
            seen[sm.id] = loc
            try:
                record = _record(sm, path, raw, i, shown)
            except RulesetError as exc:
                errors.append(exc)
                continue
            problems = _check_names(book, sm)
            for where, message in problems:
                errors.append(RulesetError(locate(raw, ("scenarios", i, "expect", *where), shown),
                                           message, label))
            if problems:
                continue
            out.append(Scenario(
                id=sm.id,
                description=sm.description,
                as_of=sm.as_of,
                record=record,
                expect=Expectation(
                    fired=tuple(sm.expect.fired),
                    not_fired=tuple(sm.expect.not_fired),
                    results={k: dict(v) for k, v in sm.expect.results.items()},
                    pathway_state=sm.expect.pathway_state,
                    facts=dict(sm.expect.facts),
                ),
                location=loc,
                overrides=dict(sm.overrides),
                example_for=tuple(sm.example_for),
                record_file=(str((path.parent / sm.record_file).resolve())
                             if sm.record_file is not None else None),
            ))
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise RulesetErrors(errors)
    return out


def _record(sm: _ScenarioModel, path: Path, raw: Any, i: int, shown: str) -> PatientRecord:
    label = f"scenario {sm.id}"
    if (sm.record is None) == (sm.record_file is None):
        raise RulesetError(locate(raw, ("scenarios", i), shown),
                           "give exactly one of record or record_file", label)
    try:
        if sm.record is not None:
            return PatientRecord.from_dict(dict(sm.record))
        assert sm.record_file is not None
        return PatientRecord.from_json_file(path.parent / sm.record_file)
    except RecordError as exc:
        key = "record" if sm.record is not None else "record_file"
        raise RulesetError(locate(raw, ("scenarios", i, key), shown), str(exc), label) from None


def _check_names(book: Rulebook, sm: _ScenarioModel) -> list[tuple[tuple[str | int, ...], str]]:
    problems: list[tuple[tuple[str | int, ...], str]] = []
    rule_ids = {r.id for rs in book.rulesets for r in rs.rules}
    for key in ("fired", "not_fired"):
        for j, rid in enumerate(getattr(sm.expect, key)):
            if rid not in rule_ids:
                problems.append(((key, j), f"unknown rule id {rid!r}"))
    both = set(sm.expect.fired) & set(sm.expect.not_fired)
    if both:
        problems.append((("fired",), f"rules both fired and not fired: {sorted(both)}"))
    outputs = {rs.id: rs.definition.outputs for rs in book.rulesets}
    for rs_id, wanted in sm.expect.results.items():
        if rs_id not in outputs:
            problems.append((("results", rs_id), f"unknown ruleset {rs_id!r} "
                                                 f"(rulesets: {', '.join(outputs)})"))
            continue
        for out in wanted:
            if out not in outputs[rs_id]:
                problems.append((("results", rs_id, out),
                                 f"ruleset {rs_id} has no output {out!r}"))
    for name in sm.expect.facts:
        if name not in book.facts:
            problems.append((("facts", name), f"unknown fact {name!r}"))
    state = sm.expect.pathway_state
    if state is not None and state not in book.pathway.fact_domain():
        problems.append((("pathway_state",), f"unknown pathway state {state!r}"))
    return problems


# -- running ----------------------------------------------------------------------------------


def _engine_name(engine: EngineArg) -> str:
    return engine if isinstance(engine, str) else getattr(engine, "__name__", "custom")


def _book_for(book: Rulebook, overrides: Mapping[str, Any],
              cache: dict[str, Rulebook]) -> Rulebook:
    if not overrides:
        return book
    merged = {**book.overrides, **overrides}
    key = json.dumps(merged, sort_keys=True, default=str)
    found = cache.get(key)
    if found is None:
        from .rulebook import load

        found = load(book.directory, overrides=merged)
        cache[key] = found
    return found


def run_scenario(book: Rulebook, scenario: Scenario, engine: EngineArg = "reference",
                 book_cache: dict[str, Rulebook] | None = None) -> ScenarioResult:
    """Run one scenario with ``engine`` and compare the outcome with what it expects.

    A scenario with ``overrides`` runs against ``book`` reloaded with them; pass the same
    ``book_cache`` dict to several calls to load each set of overrides once.
    """
    the_book = _book_for(book, scenario.overrides, book_cache if book_cache is not None else {})
    name = _engine_name(engine)
    try:
        if isinstance(engine, str):
            result = the_book.assess(scenario.record, scenario.as_of, engine=engine)
        else:
            result = engine(the_book, scenario.record, scenario.as_of)
    except Exception as exc:  # a failing engine is a failed scenario, reported as such
        msg = f"engine raised {type(exc).__name__}: {exc}"
        return ScenarioResult(scenario, name, (), (msg,), None, msg)
    fired = tuple(result.rule_ids)
    return ScenarioResult(scenario, name, fired, tuple(_compare(scenario.expect, result, fired)),
                          result)


def run_scenarios(book: Rulebook, scenarios: Sequence[Scenario] | None = None,
                  engine: EngineArg = "reference",
                  book_cache: dict[str, Rulebook] | None = None) -> list[ScenarioResult]:
    """Run scenarios (default: all of the rulebook's) with ``engine``; one result each."""
    todo = load_scenarios(book) if scenarios is None else scenarios
    cache: dict[str, Rulebook] = {} if book_cache is None else book_cache
    return [run_scenario(book, s, engine, cache) for s in todo]


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _same(expected: Any, got: Any) -> bool:
    if isinstance(got, list) and isinstance(expected, list):
        return sorted(map(str, expected)) == sorted(map(str, got)) and len(expected) == len(got)
    if isinstance(got, list):
        return False
    return bool(_plain(expected) == _plain(got))


def _show(value: Any) -> str:
    return json.dumps(_plain(value) if not isinstance(value, list) else [_plain(v) for v in value])


def _compare(expect: Expectation, result: Assessment, fired: tuple[str, ...]) -> list[str]:
    problems: list[str] = []
    fired_set = set(fired)
    for rid in expect.fired:
        if rid not in fired_set:
            problems.append(f"expected {rid} to fire; it did not")
    for rid in expect.not_fired:
        if rid in fired_set:
            problems.append(f"expected {rid} not to fire; it fired")
    if expect.results:
        results = result.results()
        for rs_id, wanted in expect.results.items():
            got_rs = results.get(rs_id, {})
            for key, want in wanted.items():
                got = got_rs.get(key)
                if not _same(want, got):
                    problems.append(f"results.{rs_id}.{key}: expected {_show(want)}, "
                                    f"got {_show(got)}")
    if expect.pathway_state is not None and result.pathway.state != expect.pathway_state:
        problems.append(f"pathway_state: expected {expect.pathway_state!r}, "
                        f"got {result.pathway.state!r}")
    for name, want in expect.facts.items():
        value = result.values.get(name)
        if not _same(want, value):
            problems.append(f"facts.{name}: expected {_show(want)}, got {_show(value)}")
    return problems


# -- coverage ---------------------------------------------------------------------------------


def rule_coverage(book: Rulebook, results: Sequence[ScenarioResult]) -> list[RuleCoverage]:
    """For every rule, the scenarios in which it fired and those in which it did not.

    Scenarios whose engine raised are left out (they show neither).
    """
    ran = [r for r in results if r.error is None]
    out = []
    for rs in book.rulesets:
        for rule in rs.rules:
            fired_in = tuple(r.scenario.id for r in ran if rule.id in r.fired)
            not_in = tuple(r.scenario.id for r in ran if rule.id not in r.fired)
            out.append(RuleCoverage(rule.id, rs.id, fired_in, not_in,
                                    waits_for_codes(book, rule.id)))
    return out


def waits_for_codes(book: Rulebook, rule_id: str) -> tuple[str, ...]:
    """The empty codelists that keep a rule from ever firing with this rulebook (see
    :class:`RuleCoverage`); empty when nothing does."""
    from .language.schema import AllOf, Leaf

    when = book.rule(rule_id).definition.when
    parts = when.all if isinstance(when, AllOf) else [when]
    empty: list[str] = []
    for part in parts:
        if not (isinstance(part, Leaf) and part.op == "equals" and part.operand is True):
            continue
        fdef = book.facts_file.facts.get(part.fact)
        if fdef is None or fdef.kind != "codelist_available":
            continue
        ids = [fdef.codelist] if isinstance(fdef.codelist, str) else list(fdef.codelist or [])
        if ids and not any(book.codelists[cid].codes for cid in ids):
            empty += [cid for cid in ids if cid not in empty]
    return tuple(empty)


def coverage_table(coverage: Sequence[RuleCoverage]) -> str:
    """A plain-text table: rule, ruleset, how many scenarios fire it / do not, and status."""
    rows = [("rule", "ruleset", "fires", "does not", "status")]
    for c in coverage:
        if not c.covered:
            status = "NO FIRING SCENARIO" if not c.fired_in else "NO NON-FIRING SCENARIO"
        elif c.waits_for_codes and not c.fired_in:
            status = f"ok: cannot fire until a code is supplied ({', '.join(c.waits_for_codes)})"
        else:
            status = "ok"
        rows.append((c.rule_id, c.ruleset, str(len(c.fired_in)), str(len(c.not_fired_in)),
                     status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


# -- worked examples --------------------------------------------------------------------------

_HASH_NOTE = "sha256 <elided>"


def example_pages(book: Rulebook, scenarios: Sequence[Scenario],
                  engine: EngineArg = "reference") -> dict[str, str]:
    """One Markdown page per ruleset (``<ruleset>.md``), from its ``example_for`` scenario."""
    pages: dict[str, str] = {}
    cache: dict[str, Rulebook] = {}
    for rs in book.rulesets:
        chosen = next((s for s in scenarios if rs.id in s.example_for), None)
        if chosen is None:
            continue
        res = run_scenario(book, chosen, engine, cache)
        if res.assessment is None or not res.passed:
            raise RuntimeError(f"example scenario for {rs.id} does not pass:\n{res.diff()}")
        pages[f"{rs.id}.md"] = _example_page(book, rs.id, chosen, res.assessment)
    return pages


def _example_page(book: Rulebook, ruleset_id: str, s: Scenario, a: Assessment) -> str:
    rs = book.ruleset(ruleset_id)
    explanation = a.explain().replace(f"sha256 {book.sha256[:12]}", _HASH_NOTE)
    if s.record_file:
        root = book.directory.resolve().parent
        shown = Path(s.record_file)
        if shown.is_relative_to(root):
            shown = shown.relative_to(root)
        source = f"`{shown.as_posix()}`"
    else:
        source = "inline in the scenario"
    fired_here = [r for r in a.rule_ids if book.rule(r).ruleset == ruleset_id]
    lines = [
        f"# Worked example: {rs.definition.title}",
        "",
        "<!-- Generated by `python -m int_rules.scenarios --examples docs/examples` from the "
        f"scenario `{s.id}` ({Path(s.location.file).as_posix()}). Do not edit by hand: the "
        "tests regenerate this page and fail if it differs. -->",
        "",
        f"Ruleset `{ruleset_id}` {rs.definition.version} ({rs.definition.status}), hit policy "
        f"`{rs.definition.hit_policy}`. {s.description}",
        "",
        f"## The record (record {source}, assessed as of {s.as_of.isoformat()})",
        "",
        *_record_lines(book, s.record),
        "",
        f"## The `{ruleset_id}` results",
        "",
        "```json",
        json.dumps(a.results()[ruleset_id], indent=2),
        "```",
        "",
        f"Rules fired in `{ruleset_id}`: " + (", ".join(f"`{r}`" for r in fired_here)
                                             or "none"),
        "",
        "## The explanation (every ruleset)",
        "",
        "Produced by `Assessment.explain()` (and `int-rules assess`). The rulebook hash is "
        "elided so the page changes only when an outcome or its explanation does.",
        "",
        "```text",
        explanation,
        "```",
        "",
    ]
    return "\n".join(lines)


def _record_lines(book: Rulebook, record: PatientRecord) -> list[str]:
    """The record as Markdown: who, then one table per kind of item."""
    who = [f"patient `{record.patient_id}`", f"born {record.date_of_birth.isoformat()}"]
    for label, value in (("sex", record.sex), ("GP system", record.gp_system),
                         ("practice", record.practice), ("neighbourhood", record.neighbourhood),
                         ("died", record.date_of_death)):
        if value is not None and value != "unknown":
            shown = value.isoformat() if isinstance(value, dt.date) else value
            who.append(f"{label} {shown}")
    out = ["; ".join(who) + ".", ""]
    if record.events:
        out += ["| date | code | term | value | problem |", "| --- | --- | --- | --- | --- |"]
        for ev in sorted(record.events, key=lambda e: (e.date, e.code)):
            unit = f" {ev.unit}" if ev.unit else ""
            value = "" if ev.value is None else f"{_plain(ev.value)}{unit}"
            term = book.codelists.term(ev.code) or ""
            out.append(f"| {ev.date.isoformat()} | {ev.code} | {term} | {value} | "
                       f"{'yes' if ev.is_problem else ''} |")
        out.append("")
    if record.admissions:
        out += ["| admitted | discharged | emergency |", "| --- | --- | --- |"]
        for ad in record.admissions:
            left = ad.discharged.isoformat() if ad.discharged else "(in hospital)"
            out.append(f"| {ad.admitted.isoformat()} | {left} | "
                       f"{'yes' if ad.emergency else 'no'} |")
        out.append("")
    if record.risk_scores:
        out += ["| risk score date | source | value |", "| --- | --- | --- |"]
        out += [f"| {r.date.isoformat()} | {r.source} | {_plain(r.value)} |"
                for r in record.risk_scores]
        out.append("")
    if record.monitoring:
        out += ["| monitoring date | kind | measure | value |", "| --- | --- | --- | --- |"]
        out += [f"| {m.date.isoformat()} | {m.kind} | {m.measure or ''} | "
                f"{'' if m.value is None else _plain(m.value)} |" for m in record.monitoring]
        out.append("")
    return out[:-1]


def write_examples(book: Rulebook, directory: str | Path, check: bool = False) -> list[str]:
    """Write (or with ``check``, compare) the worked example pages; return the stale ones."""
    pages = example_pages(book, load_scenarios(book))
    out_dir = Path(directory)
    stale = []
    for name, text in pages.items():
        path = out_dir / name
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != text:
            stale.append(name)
            if not check:
                out_dir.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m int_rules.scenarios``: run scenarios, print coverage, write examples."""
    from .rulebook import load

    p = argparse.ArgumentParser(prog="python -m int_rules.scenarios", description=main.__doc__)
    p.add_argument("--rules", type=Path, default=None, help="rulebook directory")
    p.add_argument("--engine", default="reference")
    p.add_argument("--examples", type=Path, default=None, metavar="DIR",
                   help="write the worked example pages into DIR")
    p.add_argument("--check", action="store_true",
                   help="with --examples: fail if the pages in DIR are out of date")
    args = p.parse_args(argv)
    try:
        return _main(args, load(args.rules))
    except IntRulesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace, book: Rulebook) -> int:
    if args.examples is not None:
        stale = write_examples(book, args.examples, check=args.check)
        verb = "out of date" if args.check else "written"
        for name in stale:
            print(f"{args.examples / name}: {verb}")
        return 1 if (args.check and stale) else 0
    results = run_scenarios(book, engine=args.engine)
    for r in results:
        if not r.passed:
            print(r.diff())
    print(coverage_table(rule_coverage(book, results)))
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
