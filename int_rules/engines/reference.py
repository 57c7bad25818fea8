"""The reference engine: the compiled rulebook evaluated in plain Python.

It is the default for per-patient use and the oracle every other engine is compared with. One
call indexes the record's events by match group, replays the caseload pathway, evaluates every
fact in dependency order and then every rule, applying each ruleset's hit policy.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from ..assessment import Assessment, HitPolicyError
from ..facts import EvalContext
from ..record import PatientRecord
from ..rulebook import pathway_events

if TYPE_CHECKING:
    from ..pathway import PathwayResult
    from ..rulebook import CompiledRule, Rulebook

__all__ = ["assess", "evaluate_facts", "fire_rules"]


def evaluate_facts(book: Rulebook, record: PatientRecord, as_of: dt.date,
                   replayed: PathwayResult | None = None) -> EvalContext:
    """Index the record, replay the pathway and compute every fact; return the context.

    ``replayed`` is the pathway result when another engine has replayed the pathway itself
    (the durable engine's statechart); by default the pathway is replayed here.
    """
    ctx = EvalContext.build(record, as_of, book.match_groups)
    result, allowed = book.pathway.replay_and_allow(
        pathway_events(book.pathway, record), as_of, record.date_of_death, book.may_record_codes)
    ctx.pathway = replayed if replayed is not None else result
    ctx.next_codes = allowed
    values = ctx.values
    values["__as_of__"] = as_of
    evidence = ctx.evidence
    for name, evaluate in book.fact_plan:
        value, items = evaluate(ctx)
        values[name] = value
        if items:
            evidence[name] = items
    return ctx


def fire_rules(book: Rulebook, values: dict[str, Any], patient_id: str) -> tuple[CompiledRule, ...]:
    """The rules that fire for these fact values, after each ruleset's hit policy."""
    fired: list[CompiledRule] = []
    for rs in book.rulesets:
        policy = rs.definition.hit_policy
        if policy == "collect":
            fired.extend(rule for rule in rs.rules if rule.condition.test(values))
        elif policy == "first":
            for rule in rs.rules:
                if rule.condition.test(values):
                    fired.append(rule)
                    break
        else:
            hits = [rule for rule in rs.rules if rule.condition.test(values)]
            if policy == "unique" and len(hits) > 1:
                raise HitPolicyError(patient_id, rs.id, tuple(r.id for r in hits))
            if hits:
                if policy == "priority":
                    best = max(hits, key=lambda r: r.definition.priority or 0)
                    fired.append(best)
                else:
                    fired.append(hits[0])
    return tuple(fired)


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
