"""The reference engine: the rule model evaluated in plain Python.

It is the default for per-patient use and the oracle every other engine is compared with.
:func:`compile_model` turns each fact node into a closure (one translation per node type in
:data:`FACT_COMPILERS`) and each condition into one Python expression; :func:`assess` indexes
the record's events by match group, replays the caseload pathway, evaluates every fact in
dependency order and then every rule, applying each decision's hit policy
(:func:`int_rules.model.semantics.select_hits`).

It reads the model only (:mod:`int_rules.model.nodes`), never the YAML language models.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..assessment import Assessment, HitPolicyError
from ..facts import (
    _DATE_OF,
    EvalContext,
    FactResult,
    MatchGroups,
    make_where,
    make_window,
    reduce_items,
    select,
)
from ..model import nodes as n
from ..model.semantics import UniqueOverlap, age_in_years, death_after_as_of, select_hits
from ..record import PatientRecord

if TYPE_CHECKING:
    from ..pathway import Pathway, PathwayResult
    from ..rulebook import CompiledRule, Rulebook

__all__ = [
    "FACT_COMPILERS",
    "CompiledCondition",
    "ReferencePlan",
    "assess",
    "compile_condition",
    "compile_model",
    "evaluate_facts",
    "fire_rules",
]

Evaluate = Callable[[EvalContext], FactResult]
Values = Mapping[str, Any]


# -- conditions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledCondition:
    """A condition ready to evaluate: ``test(values) -> bool``, the facts it reads, the Python
    expression it was compiled to, and the model node it was compiled from."""

    test: Callable[[Values], bool]
    facts: tuple[str, ...]
    source: str = ""
    node: n.Condition | None = None


_ORDER_SYMBOLS = {"at_least": ">=", "at_most": "<=", "greater_than": ">", "less_than": "<"}


def compile_condition(cond: n.Condition, types: Mapping[str, n.ValueType]) -> CompiledCondition:
    """One Python expression over the fact values ``v`` (a dict), e.g.
    ``((_0 := v['age']) is not None and _0 >= c0) and v['frailty'] == c1``: one call per rule
    instead of one per test. The expression is assembled only from the fixed templates below;
    fact names are identifiers checked by the schema and every literal value is bound by name
    (``c0``, ``c1``...), never spliced in as text. ``v['__as_of__']`` is the date assessed.
    """
    gen = _Gen(types)
    expr = gen.expr(cond)
    namespace: dict[str, Any] = {"__builtins__": {}, **gen.consts}
    test = eval(f"lambda v: {expr}", namespace)  # safe: see the docstring
    return CompiledCondition(test=test, facts=n.condition_facts(cond), source=expr, node=cond)


class _Gen:
    """Builds the expression of one condition, collecting its constants."""

    def __init__(self, types: Mapping[str, n.ValueType]) -> None:
        self.types = types
        self.consts: dict[str, Any] = {}
        self.temps = 0

    def ref(self, fact: str) -> str:
        """The expression reading a fact's value (the generated engine reads a local)."""
        return f"v[{fact!r}]"

    def as_of(self) -> str:
        """The expression reading the date assessed."""
        return "v['__as_of__']"

    def const(self, value: Any) -> str:
        name = f"c{len(self.consts)}"
        self.consts[name] = value
        return name

    def temp(self) -> str:
        name = f"_{self.temps}"
        self.temps += 1
        return name

    def expr(self, cond: n.Condition) -> str:
        if isinstance(cond, n.All):
            return "(" + " and ".join(self.expr(c) for c in cond.parts) + ")"
        if isinstance(cond, n.AnyOf):
            return "(" + " or ".join(self.expr(c) for c in cond.parts) + ")"
        if isinstance(cond, n.Not):
            return f"(not {self.expr(cond.part)})"
        if isinstance(cond, n.OutputIs):
            raise TypeError("rules and facts cannot test a decision's output")
        ref = self.ref(cond.fact)
        if isinstance(cond, n.Present):
            return f"{ref} is not None" if cond.present else f"{ref} is None"
        ftype = self.types[cond.fact]
        if isinstance(cond, n.CompareFacts):
            a, b = self.temp(), self.temp()
            both = f"({a} := {ref}) is not None and ({b} := {self.ref(cond.other)}) is not None"
            op = cond.op
            if op in ("after", "before"):
                return f"({both} and {a} {'>' if op == 'after' else '<'} {b})"
            if op in ("equals", "not_equals"):
                return f"({both} and {a} {'==' if op == 'equals' else '!='} {b})"
            symbol = _ORDER_SYMBOLS[op]
            if ftype.kind == "category" and ftype.scale:
                rank = self.const({c: i for i, c in enumerate(ftype.scale)})
                return f"({both} and {rank}[{a}] {symbol} {rank}[{b}])"
            return f"({both} and {a} {symbol} {b})"
        if isinstance(cond, n.DaysAgo):
            # Differences of dates, never a date minus days: no overflow at the calendar's edges.
            span = self.const(dt.timedelta(days=cond.days))
            d = self.temp()
            as_of = self.as_of()
            if cond.op == "within_days":
                return (f"(({d} := {ref}) is not None and {d} <= {as_of} "
                        f"and {as_of} - {d} <= {span})")
            return f"(({d} := {ref}) is not None and {as_of} - {d} > {span})"
        if isinstance(cond, n.InSet):
            return f"({ref} in {self.const(frozenset(cond.values))})"
        literal = self.const(cond.value)
        x = self.temp()
        if cond.op == "equals":
            return f"({ref} == {literal})"
        if cond.op == "not_equals":
            return f"(({x} := {ref}) is not None and {x} != {literal})"
        symbol = _ORDER_SYMBOLS[cond.op]
        if ftype.kind == "category":
            assert ftype.scale is not None
            rank_of = {c: i for i, c in enumerate(ftype.scale)}
            rank = self.const(rank_of)
            level = self.const(rank_of[str(cond.value)])
            return f"(({x} := {ref}) is not None and {rank}[{x}] {symbol} {level})"
        return f"(({x} := {ref}) is not None and {x} {symbol} {literal})"


# -- facts ------------------------------------------------------------------------------------

FactCompiler = Callable[[Any, MatchGroups, Mapping[str, n.ValueType]], Evaluate]


def _age(fact: n.AgeFact, match: MatchGroups, types: Mapping[str, n.ValueType]) -> Evaluate:
    def age(ctx: EvalContext) -> FactResult:
        return age_in_years(ctx.record.date_of_birth, ctx.as_of), ()
    return age


def _attribute(fact: n.AttributeFact, match: MatchGroups,
               types: Mapping[str, n.ValueType]) -> Evaluate:
    field = fact.field

    def attribute(ctx: EvalContext) -> FactResult:
        return getattr(ctx.record, field), ()
    return attribute


def _derived(fact: n.DerivedFact, match: MatchGroups,
             types: Mapping[str, n.ValueType]) -> Evaluate:
    test = compile_condition(fact.condition, types).test

    def derived(ctx: EvalContext) -> FactResult:
        return test(ctx.values), ()
    return derived


def _pathway(fact: n.PathwayFact, match: MatchGroups,
             types: Mapping[str, n.ValueType]) -> Evaluate:
    if fact.field == "state":
        def state(ctx: EvalContext) -> FactResult:
            assert ctx.pathway is not None
            return ctx.pathway.state, ()
        return state
    if fact.field == "entered":
        def entered(ctx: EvalContext) -> FactResult:
            assert ctx.pathway is not None
            return ctx.pathway.entered, ()
        return entered
    if fact.field == "findings":
        def findings(ctx: EvalContext) -> FactResult:
            assert ctx.pathway is not None
            return len(ctx.pathway.findings), ()
        return findings
    assert fact.codes is not None
    codes = fact.codes.codes

    def may_record(ctx: EvalContext) -> FactResult:
        assert ctx.next_codes is not None
        return bool(codes & ctx.next_codes), ()
    return may_record


def _constant(fact: n.ConstantFact, match: MatchGroups,
              types: Mapping[str, n.ValueType]) -> Evaluate:
    const = fact.value

    def constant(ctx: EvalContext) -> FactResult:
        return const, ()
    return constant


def _codelist_available(fact: n.CodelistAvailableFact, match: MatchGroups,
                        types: Mapping[str, n.ValueType]) -> Evaluate:
    available = fact.available

    def codelist_available(ctx: EvalContext) -> FactResult:
        return available, ()
    return codelist_available


def _death_after_as_of(fact: n.DeathAfterAsOfFact, match: MatchGroups,
                       types: Mapping[str, n.ValueType]) -> Evaluate:
    def died_after(ctx: EvalContext) -> FactResult:
        return death_after_as_of(ctx.record.date_of_death, ctx.as_of), ()
    return died_after


def _latest_of(fact: n.LatestOfFact, match: MatchGroups,
               types: Mapping[str, n.ValueType]) -> Evaluate:
    window_fn = make_window(fact.window)
    cat_groups = tuple((cat, match.group_for(frozenset(cs.codelists), cs.codes))
                       for cat, cs in fact.categories)
    cat_gids = frozenset(gid for _, gid in cat_groups)
    date_of = _DATE_OF["events"]

    def latest_of(ctx: EvalContext) -> FactResult:
        groups = ctx.groups
        if not groups.keys() & cat_gids:
            return None, ()
        bounds = window_fn(ctx)
        if bounds is None:
            return None, ()
        best: Any = None
        best_cat: str | None = None
        for cat, gid in cat_groups:
            items = groups.get(gid)
            if not items:
                continue
            found = select(items, bounds, date_of, None)
            if found and (best is None or found[-1].date > best.date):
                best, best_cat = found[-1], cat
        return (best_cat, (best,)) if best is not None else (None, ())

    return latest_of


def _items(fact: n.ItemFact, match: MatchGroups, types: Mapping[str, n.ValueType]) -> Evaluate:
    window_fn = make_window(fact.window)
    kind, source, value_field = fact.item, fact.source, fact.value_field
    keep = make_where(dict(fact.where))
    date_of = _DATE_OF[source]
    nothing = reduce_items(kind, [], date_of, value_field)

    if source == "events" and fact.codes is None:
        def over_all_events(ctx: EvalContext) -> FactResult:
            bounds = window_fn(ctx)
            if bounds is None:
                return nothing
            return reduce_items(kind, select(ctx.events, bounds, date_of, keep), date_of,
                                value_field)
        return over_all_events

    if source == "events":
        assert fact.codes is not None
        gid = match.group_for(frozenset(fact.codes.codelists), fact.codes.codes)

        def over_events(ctx: EvalContext) -> FactResult:
            items = ctx.groups.get(gid)
            if not items:  # the common case: the record has no event of these codelists
                return nothing
            bounds = window_fn(ctx)
            if bounds is None:
                return nothing
            return reduce_items(kind, select(items, bounds, date_of, keep), date_of, value_field)
        return over_events

    def over_items(ctx: EvalContext) -> FactResult:
        if not getattr(ctx.record, source):
            return nothing
        bounds = window_fn(ctx)
        if bounds is None:
            return nothing
        return reduce_items(kind, select(ctx.items(source), bounds, date_of, keep), date_of,
                            value_field)
    return over_items


#: One translation per fact node type.
FACT_COMPILERS: Mapping[type[n.Fact], FactCompiler] = {
    n.AgeFact: _age,
    n.AttributeFact: _attribute,
    n.DerivedFact: _derived,
    n.PathwayFact: _pathway,
    n.ConstantFact: _constant,
    n.CodelistAvailableFact: _codelist_available,
    n.DeathAfterAsOfFact: _death_after_as_of,
    n.LatestOfFact: _latest_of,
    n.ItemFact: _items,
}


@dataclass(frozen=True)
class ReferencePlan:
    """The model compiled for the reference engine: match groups and the fact loop."""

    match_groups: MatchGroups
    #: (name, evaluate) for every fact in dependency order: the evaluator's loop.
    facts: tuple[tuple[str, Evaluate], ...]
    may_record_codes: frozenset[str]


def compile_model(model: n.RuleModel) -> ReferencePlan:
    """Compile every fact of ``model`` to a closure."""
    match = MatchGroups()
    types = model.fact_types
    plan = tuple((f.name, FACT_COMPILERS[type(f)](f, match, types)) for f in model.facts)
    return ReferencePlan(match, plan, model.may_record_codes)


# -- evaluation -------------------------------------------------------------------------------


def pathway_events(pathway: Pathway, record: PatientRecord) -> list[tuple[dt.date, str]]:
    """The record's (date, code) events the pathway reacts to."""
    codes = pathway.codes
    return [(ev.date, ev.code) for ev in record.events if ev.code in codes]


def evaluate_facts(book: Rulebook, record: PatientRecord, as_of: dt.date,
                   replayed: tuple[PathwayResult, frozenset[str]] | None = None) -> EvalContext:
    """Index the record, replay the pathway and compute every fact; return the context.

    ``replayed`` is the pathway result and the ``may_record`` codes allowed on ``as_of`` when
    another engine has replayed the pathway itself (the durable engine's statechart); then
    the pathway is not replayed here.
    """
    plan = book.reference
    ctx = EvalContext.build(record, as_of, plan.match_groups)
    if replayed is None:
        ctx.pathway, ctx.next_codes = book.pathway.replay_and_allow(
            pathway_events(book.pathway, record), as_of, record.date_of_death,
            plan.may_record_codes)
    else:
        ctx.pathway, ctx.next_codes = replayed
    values = ctx.values
    values["__as_of__"] = as_of
    evidence = ctx.evidence
    for name, evaluate in plan.facts:
        value, items = evaluate(ctx)
        values[name] = value
        if items:
            evidence[name] = items
    return ctx


def fire_rules(book: Rulebook, values: dict[str, Any], patient_id: str) -> tuple[CompiledRule, ...]:
    """The rules that fire for these fact values, after each decision's hit policy."""
    fired: list[CompiledRule] = []
    for rs in book.rulesets:
        policy = rs.decision.hit_policy
        if policy == "first":  # stop at the first that holds
            for rule in rs.rules:
                if rule.condition.test(values):
                    fired.append(rule)
                    break
            continue
        hits = [rule for rule in rs.rules if rule.condition.test(values)]
        if not hits:
            continue
        try:
            fired.extend(select_hits(policy, hits, _priority))
        except UniqueOverlap as overlap:
            raise HitPolicyError(patient_id, rs.id, tuple(r.id for r in overlap.hits)) from None
    return tuple(fired)


def _priority(rule: CompiledRule) -> int | None:
    return rule.node.priority


def assess(book: Rulebook, record: PatientRecord, as_of: dt.date) -> Assessment:
    """Evaluate the whole rulebook for one record as of one date (the reference semantics)."""
    ctx = evaluate_facts(book, record, as_of)
    values = ctx.values
    fired = fire_rules(book, values, record.patient_id)
    assert ctx.pathway is not None
    return Assessment(
        book=book,
        record=record,
        as_of=as_of,
        engine="reference",
        values=values,
        evidence=ctx.evidence,
        fired=fired,
        pathway=ctx.pathway,
    )
