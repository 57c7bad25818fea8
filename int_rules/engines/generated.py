"""The generated engine: one straight-line Python function per rulebook, written from the model.

:func:`generate` reads the rule model (:mod:`int_rules.model.nodes`) and writes the source of a
single function that indexes a record's events by match group, computes every fact in
dependency order into a local variable, and tests every rule with its decision's hit policy:
no closure call, no ``(value, evidence)`` tuple and no dict lookup per fact. The source is
compiled once, when the rulebook loads (``Rulebook.generated``), and can be read
(:attr:`GeneratedPlan.source`) for review.

It computes exactly what the reference engine (:mod:`int_rules.engines.reference`) computes,
and the spec suite and the differential tests (``tests/spec/``) hold it to that on every case:
each fact kind below is the same arithmetic as its closure there, the conditions are the
reference's own expressions (:class:`~int_rules.engines.reference.compile_condition`'s
generator, reading locals instead of a dict), and the shared semantics (windows at the
calendar's edges, age, hit policies) are the functions in :mod:`int_rules.model.semantics`.

The source is assembled only from fixed templates: every value from the model (code sets,
day counts, parameter values, rules) is bound by name as a constant (``c0``, ``c1``...), never
spliced in as text; fact values live in locals named by position (``v0``, ``v1``...); record
fields are attribute names from the fixed record vocabulary (:mod:`int_rules.model.vocabulary`).
"""

from __future__ import annotations

import datetime as dt
import operator
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..assessment import Assessment, HitPolicyError
from ..facts import EVIDENCE_CAP, Evidence, MatchGroups
from ..model import nodes as n
from ..model.semantics import (
    UniqueOverlap,
    age_in_years,
    day_after,
    day_before,
    days_before,
    death_after_as_of,
    select_hits,
)
from ..model.vocabulary import VALUE_FIELDS, WHERE_FIELDS
from ..record import PatientRecord
from .reference import _Gen

if TYPE_CHECKING:
    from ..pathway import PathwayResult
    from ..rulebook import CompiledRule, CompiledRuleset, Rulebook

__all__ = ["GeneratedPlan", "assess", "evaluate", "generate"]

#: ``run(record, as_of, pathway, next_codes, fire)`` -> (values, evidence, rules fired).
Run = Callable[[PatientRecord, dt.date, "PathwayResult", frozenset[str], bool],
               tuple[dict[str, Any], Evidence, "list[CompiledRule]"]]

_DATE_FIELD = {"events": "date", "admissions": "admitted", "risk_scores": "date",
               "monitoring": "date"}
_ONE_DAY = dt.timedelta(days=1)
_MEMO_SIZE = 256


@dataclass(frozen=True)
class GeneratedPlan:
    """A rulebook's generated function, its source text, and the codes its pathway reads."""

    run: Run
    source: str
    pathway_codes: frozenset[str]
    may_record_codes: frozenset[str]
    #: The pathway's answer for a record with no step as of a date, by date (a memo of a
    #: pure function: most records have no pathway step; bounded by ``_MEMO_SIZE``).
    no_steps: dict[dt.date, tuple[PathwayResult, frozenset[str]]] = field(
        default_factory=dict, compare=False, repr=False)


def _priority(rule: CompiledRule) -> int | None:
    return rule.node.priority


def _resolve(policy: str, hits: list[CompiledRule], ruleset: str,
             patient_id: str) -> tuple[CompiledRule, ...]:
    """A ``unique`` or ``priority`` decision's hit policy (the reference's ``fire_rules``)."""
    try:
        return select_hits(policy, hits, _priority)
    except UniqueOverlap as overlap:
        raise HitPolicyError(patient_id, ruleset, tuple(r.id for r in overlap.hits)) from None


class _LocalGen(_Gen):
    """The reference's condition expressions, reading fact values from locals."""

    def __init__(self, types: Any, local: dict[str, str]) -> None:
        super().__init__(types)
        self.local = local

    def ref(self, fact: str) -> str:
        return self.local[fact]

    def as_of(self) -> str:
        return "as_of"


class _Writer:
    """Source lines with indentation."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 1

    def __call__(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    def indent(self) -> None:
        self.depth += 1

    def dedent(self) -> None:
        self.depth -= 1


def _ident(name: str) -> str:
    if not name.isidentifier():  # the record vocabulary is fixed; this never fails
        raise ValueError(f"not a field name: {name!r}")
    return name


def generate(model: n.RuleModel, rulesets: Sequence[CompiledRuleset],
             match: MatchGroups, pathway_codes: frozenset[str]) -> GeneratedPlan:
    """Write and compile the rulebook's function. ``rulesets`` are the rule objects the
    assessment lists as fired (in the model's decision order); ``match`` assigns the match
    groups (the same as the reference's, so evidence is the same events)."""
    local = {f.name: f"v{i}" for i, f in enumerate(model.facts)}
    gen = _LocalGen(model.fact_types, local)
    w = _Writer()
    sources_used = sorted({f.source for f in model.facts
                           if isinstance(f, n.ItemFact) and f.source != "events"})
    days = sorted({f.window.within_days for f in model.facts
                   if isinstance(f, (n.ItemFact, n.LatestOfFact))
                   and f.window.special is None and f.window.within_days is not None})

    # Each match group's events ascending by date, ties in record order (as the reference,
    # which filters the stably sorted events): the events are sorted stably once, by date,
    # and each group filled in that order. ``S_events`` (every event, by date) is that list.
    groups_at_start = len(match)
    # ``groups[gid]``: the list of a match group's events, ``None`` when the record has none.
    w("events = record.events")
    w(f"groups = [None] * {len(match)}")
    w("if events:")
    w("    S_events = sorted(events, key=_BY_DATE)")
    w("    earliest = S_events[0].date")
    w("    past = S_events[-1].date <= as_of")
    w("    for ev in S_events:")
    w("        gids = _CODE_GROUPS(ev.code)")
    w("        if gids:")
    w("            for gid in gids:")
    w("                found = groups[gid]")
    w("                if found is None:")
    w("                    groups[gid] = [ev]")
    w("                else:")
    w("                    found.append(ev)")
    w("else:")
    w("    S_events = events")
    w("    earliest = None")
    w("    past = True")
    w("E = {}")
    for d in days:
        w(f"start{d} = _days_before(as_of, {gen.const(d)})")
    for used in sources_used:
        w(f"S_{used} = None")

    for fact in model.facts:
        v = local[fact.name]
        w(f"# {type(fact).__name__} {fact.name}".replace("\n", " "))
        name = gen.const(fact.name)
        if isinstance(fact, n.AgeFact):
            w(f"{v} = _age(record.date_of_birth, as_of)")
        elif isinstance(fact, n.AttributeFact):
            w(f"{v} = record.{_ident(fact.field)}")
        elif isinstance(fact, n.ConstantFact):
            w(f"{v} = {gen.const(fact.value)}")
        elif isinstance(fact, n.CodelistAvailableFact):
            w(f"{v} = {gen.const(fact.available)}")
        elif isinstance(fact, n.DeathAfterAsOfFact):
            w(f"{v} = _died_after(record.date_of_death, as_of)")
        elif isinstance(fact, n.DerivedFact):
            w(f"{v} = {gen.expr(fact.condition)}")
        elif isinstance(fact, n.PathwayFact):
            if fact.field == "state":
                w(f"{v} = pathway.state")
            elif fact.field == "entered":
                w(f"{v} = pathway.entered")
            elif fact.field == "findings":
                w(f"{v} = len(pathway.findings)")
            else:
                assert fact.codes is not None
                w(f"{v} = bool({gen.const(fact.codes.codes)} & next_codes)")
        elif isinstance(fact, n.ItemFact):
            _items(w, gen, fact, v, name, match, local)
        elif isinstance(fact, n.LatestOfFact):
            _latest_of(w, gen, fact, v, name, match, local)
        else:  # pragma: no cover - every fact kind is above (tests/test_model.py)
            raise TypeError(f"no generated translation for {type(fact).__name__}")

    if len(match) != groups_at_start:  # every fact's group exists once the reference is built
        raise AssertionError("a fact read codelists the reference engine has no group for")
    w("if fire:")
    w.indent()
    w("fired = []")
    w("append = fired.append")
    by_id = {rs.id: rs for rs in rulesets}
    for decision in model.decisions:
        rs = by_id[decision.id]
        objects = [gen.const(rule) for rule in rs.rules]
        tests = [gen.expr(rule.node.condition) for rule in rs.rules]
        w(f"# decision {decision.id} ({decision.hit_policy})".replace("\n", " "))
        if decision.hit_policy == "first":
            for i, (obj, test) in enumerate(zip(objects, tests, strict=True)):
                w(f"{'if' if i == 0 else 'elif'} {test}:")
                w(f"    append({obj})")
        elif decision.hit_policy == "collect":
            for obj, test in zip(objects, tests, strict=True):
                w(f"if {test}:")
                w(f"    append({obj})")
        else:
            w("hits = []")
            for obj, test in zip(objects, tests, strict=True):
                w(f"if {test}:")
                w(f"    hits.append({obj})")
            w("if hits:")
            w(f"    fired.extend(_resolve({gen.const(decision.hit_policy)}, hits, "
              f"{gen.const(decision.id)}, record.patient_id))")
    w.dedent()
    w("else:")
    w("    fired = []")
    entries = ", ".join(f"{f.name!r}: {local[f.name]}" for f in model.facts)
    w(f"return {{'__as_of__': as_of, {entries}}}, _Evidence(E), fired")

    source = ("def run(record, as_of, pathway, next_codes, fire):\n"
              + "\n".join(w.lines) + "\n")
    namespace: dict[str, Any] = {
        "__builtins__": {"sorted": sorted, "len": len, "bool": bool, "float": float,
                         "tuple": tuple, "range": range, "max": max, "min": min,
                         "list": list, "map": map},
        "_BY_DATE": operator.attrgetter("date"),
        "_ADMITTED": operator.attrgetter("admitted"),
        "_CODE_GROUPS": match.code_groups.get,
        "_days_before": days_before, "_day_after": day_after, "_day_before": day_before,
        "_age": age_in_years, "_died_after": death_after_as_of,
        "_bisect_left": bisect_left, "_bisect_right": bisect_right,
        "_resolve": _resolve, "_Evidence": Evidence, "_ONE_DAY": _ONE_DAY, "_CAP": EVIDENCE_CAP,
        **gen.consts,
    }
    code = compile(source, f"<generated {model.rulebook} {model.version}>", "exec")
    exec(code, namespace)  # safe: the source is built from fixed templates (module docstring)
    return GeneratedPlan(namespace["run"], source, pathway_codes, model.may_record_codes)


def _bounds(w: _Writer, window: n.Window, local: dict[str, str]) -> tuple[bool, str, str]:
    """Write lines setting the inclusive bounds ``_s`` and ``_e`` and, when the window can be
    empty, ``_ok``: the same bounds as :func:`int_rules.facts.make_window`. Returns whether
    ``_ok`` is set, and what is known of each bound when the source is written: ``"none"``
    (open; the variable is not set), ``"as_of"`` (the end is ``as_of``; not set), ``"set"``
    (a date) or ``"maybe"`` (a date or ``None``)."""
    special = window.special
    if special == "before_birth":
        w("_e = _day_before(record.date_of_birth)")
        w("_ok = _e is not None")
        return True, "none", "set"
    if special == "after_death":
        w("_dod = record.date_of_death")
        w("_ok = _dod is not None and _dod < as_of")
        w("if _ok:")
        w("    _s = _dod + _ONE_DAY")
        return True, "set", "as_of"
    if special == "after_as_of":
        w("_s = _day_after(as_of)")
        w("_ok = _s is not None")
        return True, "set", "none"
    start = "none"
    if window.within_days is not None:
        w(f"_s = start{window.within_days}")
        start = "set"
    elif window.since is not None or window.from_ is not None:
        w("_s = None")
        start = "maybe"
    end = "as_of"
    can_be_empty = window.since is not None or window.until is not None
    if can_be_empty:
        w("_ok = True")
    if window.since is not None:
        w(f"if {local[window.since]} is not None:")
        w(f"    _a = _day_after({local[window.since]})")
        w("    if _a is None:")
        w("        _ok = False")
        w("    elif _s is None or _a > _s:")
        w("        _s = _a")
    if window.from_ is not None:
        w(f"_a = {local[window.from_]}")
        w("if _a is not None and (_s is None or _a > _s):")
        w("    _s = _a")
    if window.until is not None:
        end = "set"
        w("_e = as_of")
        w(f"_a = {local[window.until]}")
        w("if _a is None:")
        w("    _ok = False")
        w("elif _a < as_of:")
        w("    _e = _a")
    return can_be_empty, start, end


def _select(w: _Writer, key: str, start: str, end: str, events: bool) -> None:
    """Write ``_lo``/``_hi``: the slice of ``_it`` (ascending by date) inside the bounds.
    ``events``: ``_it`` holds coded events, so ``past`` (no event after ``as_of``) applies."""
    if start == "none":
        w("_lo = 0")
    elif start == "set":
        w(f"_lo = _bisect_left(_it, _s, key={key})")
    else:
        w(f"_lo = 0 if _s is None else _bisect_left(_it, _s, key={key})")
    if end == "none":
        w("_hi = len(_it)")
    elif end == "as_of" and events:
        w(f"_hi = len(_it) if past else _bisect_right(_it, as_of, lo=_lo, key={key})")
    else:
        bound = "as_of" if end == "as_of" else "_e"
        w(f"_hi = _bisect_right(_it, {bound}, lo=_lo, key={key})")


def _items(w: _Writer, gen: _Gen, fact: n.ItemFact, v: str, name: str, match: MatchGroups,
           local: dict[str, str]) -> None:
    kind, source = fact.item, fact.source
    datef = _DATE_FIELD[source]
    key = "_BY_DATE" if datef == "date" else "_ADMITTED"
    nothing = {"exists": "False", "count": "0"}.get(kind, "None")
    w(f"{v} = {nothing}")
    if source == "events" and fact.codes is None:
        # Every event, sorted once when a fact needs them all; a window no event can fall in
        # (after as_of with none after it, before birth with none before it) is skipped.
        if fact.window.special == "after_as_of":
            w("if not past:")
        elif fact.window.special == "before_birth":
            w("if earliest is not None and earliest < record.date_of_birth:")
        else:
            w("if events:")
        w("    _it = S_events")
    elif source == "events":
        assert fact.codes is not None
        gid = match.group_for(frozenset(fact.codes.codelists), fact.codes.codes)
        w(f"_it = groups[{int(gid)}]")
        w("if _it:")
    else:
        w(f"if record.{_ident(source)}:")
        w(f"    if S_{source} is None:")
        w(f"        S_{source} = sorted(record.{source}, key={key})")
        w(f"    _it = S_{source}")
    w.indent()
    guarded, start, end = _bounds(w, fact.window, local)
    if guarded:
        w("if _ok:")
        w.indent()
    _select(w, key, start, end, source == "events")
    if fact.where:
        tests = []
        for field, wanted in fact.where:
            if field not in WHERE_FIELDS[source]:
                raise ValueError(f"{source} cannot be filtered on {field!r}")
            tests.append(f"_x.{_ident(field)} == {gen.const(wanted)}")
        w(f"_it = [_x for _x in _it[_lo:_hi] if {' and '.join(tests)}]")
        w("_lo = 0")
        w("_hi = len(_it)")
    if kind == "exists":
        w("if _hi > _lo:")
        w(f"    {v} = True")
        w(f"    E[{name}] = _it[_hi - 1]")
    elif kind == "count":
        w(f"{v} = _hi - _lo")
        w(f"if {v}:")
        w(f"    E[{name}] = tuple(_it[max(_lo, _hi - _CAP):_hi])")
    elif kind in ("latest_date", "first_date"):
        at = "_hi - 1" if kind == "latest_date" else "_lo"
        w("if _hi > _lo:")
        w(f"    _x = _it[{at}]")
        w(f"    {v} = _x.{datef}")
        w(f"    E[{name}] = _x")
    else:
        if fact.value_field not in VALUE_FIELDS[source]:
            raise ValueError(f"{source} has no number {fact.value_field!r}")
        w("for _j in range(_hi - 1, _lo - 1, -1):")
        w("    _x = _it[_j]")
        w(f"    _y = _x.{_ident(fact.value_field)}")
        w("    if _y is not None:")
        w(f"        {v} = float(_y)")
        w(f"        E[{name}] = _x")
        w("        break")
    if guarded:
        w.dedent()
    w.dedent()


def _latest_of(w: _Writer, gen: _Gen, fact: n.LatestOfFact, v: str, name: str,
               match: MatchGroups, local: dict[str, str]) -> None:
    """Which category has the latest event in the window; on the same day, the first listed
    (as the reference: a later category wins only with a strictly later date)."""
    w(f"{v} = None")
    gids = [match.group_for(frozenset(cs.codelists), cs.codes) for _, cs in fact.categories]
    present = " or ".join(f"groups[{int(g)}] is not None" for g in gids) or "False"
    w(f"if {present}:")
    w.indent()
    guarded, start, end = _bounds(w, fact.window, local)
    if guarded:
        w("if _ok:")
        w.indent()
    w("_best = None")
    for (category, _), gid in zip(fact.categories, gids, strict=True):
        w(f"_it = groups[{int(gid)}]")
        w("if _it:")
        w.indent()
        _select(w, "_BY_DATE", start, end, True)
        w("if _hi > _lo and (_best is None or _it[_hi - 1].date > _best.date):")
        w("    _best = _it[_hi - 1]")
        w(f"    {v} = {gen.const(category)}")
        w.dedent()
    w("if _best is not None:")
    w(f"    E[{name}] = _best")
    if guarded:
        w.dedent()
    w.dedent()


def evaluate(book: Rulebook, record: PatientRecord, as_of: dt.date, fire: bool = True,
             replayed: tuple[PathwayResult, frozenset[str]] | None = None,
             ) -> tuple[dict[str, Any], Evidence, list[CompiledRule], PathwayResult]:
    """Every fact value, the evidence behind them, the rules fired (when ``fire``) and the
    pathway result. ``replayed``: the pathway result and allowed ``may_record`` codes when
    another engine replayed the pathway itself (the durable engine's statechart)."""
    plan = book.generated
    if replayed is None:
        codes = plan.pathway_codes
        steps = [(ev.date, ev.code) for ev in record.events if ev.code in codes]
        died = record.date_of_death
        if not steps and (died is None or died > as_of):
            # No pathway step as of this date: the answer depends on the date alone.
            memo = plan.no_steps
            found = memo.get(as_of)
            if found is None:
                if len(memo) >= _MEMO_SIZE:
                    memo.clear()
                found = memo[as_of] = book.pathway.replay_and_allow(
                    (), as_of, None, plan.may_record_codes)
            pathway, allowed = found
        else:
            pathway, allowed = book.pathway.replay_and_allow(steps, as_of, died,
                                                             plan.may_record_codes)
    else:
        pathway, allowed = replayed
    values, evidence, fired = plan.run(record, as_of, pathway, allowed, fire)
    return values, evidence, fired, pathway


def assess(book: Rulebook, record: PatientRecord, as_of: dt.date) -> Assessment:
    """Evaluate the whole rulebook for one record as of one date with the generated function.

    Equal to the reference engine's assessment (``comparable()``), with ``engine="generated"``.
    """
    values, evidence, fired, pathway = evaluate(book, record, as_of)
    return Assessment(book=book, record=record, as_of=as_of, engine="generated", values=values,
                      evidence=evidence, fired=tuple(fired), pathway=pathway)
