"""What is not engine-specific, written once: date arithmetic at the calendar's edges, age,
the pathway's same-day order, hit-policy resolution, output aggregation and provenance.

Every engine calls these (or, in SQL, states the same rule and is held to it by the spec
suite in ``tests/spec/``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from ..results_schema import ProvenanceDict
from .nodes import Decision, OutputValue, RuleModel, Scalar

__all__ = [
    "UniqueOverlap",
    "age_in_years",
    "aggregate_outputs",
    "day_after",
    "days_before",
    "death_after_as_of",
    "overlap_message",
    "pathway_order",
    "provenance",
    "select_hits",
]

_R = TypeVar("_R")
_ONE_DAY = dt.timedelta(days=1)


# -- dates ------------------------------------------------------------------------------------


def days_before(day: dt.date, days: int) -> dt.date:
    """``day - days``, or 0001-01-01 when that is before the calendar starts: a window
    longer than the calendar reaches back to its first day. (Day counts longer than the whole
    calendar are refused when the rulebook loads.)"""
    try:
        return day - dt.timedelta(days=days)
    except OverflowError:
        return dt.date.min


def day_after(day: dt.date) -> dt.date | None:
    """The next day, or ``None`` after 9999-12-31 (nothing can be dated after it)."""
    return day + _ONE_DAY if day < dt.date.max else None


def day_before(day: dt.date) -> dt.date | None:
    """The previous day, or ``None`` before 0001-01-01 (nothing can be dated before it)."""
    return day - _ONE_DAY if day > dt.date.min else None


def age_in_years(born: dt.date, on: dt.date) -> int:
    """Whole years from ``born`` to ``on``; someone born on 29 February has a birthday on
    1 March in years that have no 29 February."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def death_after_as_of(date_of_death: dt.date | None, as_of: dt.date) -> bool:
    """Whether the date of death is after ``as_of`` (strictly; no date of death: false).

    SQL: ``COALESCE(dod > as_of, FALSE)``."""
    return date_of_death is not None and date_of_death > as_of


# -- the pathway ------------------------------------------------------------------------------


def pathway_order(
    events: Iterable[tuple[dt.date, str]],
    by_code: Mapping[str, tuple[int, int]],
    death: tuple[int, int],
    as_of: dt.date,
    date_of_death: dt.date | None,
) -> list[tuple[dt.date, int, str, int]]:
    """The pathway events as replay takes them: ``(date, precedence, code, step index)``.

    ``by_code`` maps each pathway code to its step's (precedence, index); ``death`` is the
    death step's. Codes the pathway does not record and events after ``as_of`` are left out;
    death is a step at its date (code ``""``). The order is by date, then the declared
    precedence, then code (SQL: ``ORDER BY date, precedence, code``).
    """
    get = by_code.get
    out = [(day, info[0], code, info[1]) for day, code in events
           if (info := get(code)) is not None and day <= as_of]
    if date_of_death is not None and date_of_death <= as_of:
        out.append((date_of_death, death[0], "", death[1]))
    out.sort()
    return out


# -- decisions --------------------------------------------------------------------------------


class UniqueOverlap(Exception):
    """More than one rule of a ``unique`` decision holds."""

    def __init__(self, hits: Sequence[Any]) -> None:
        super().__init__(len(hits))
        self.hits = tuple(hits)


def select_hits(policy: str, hits: Sequence[_R],
                priority: Callable[[_R], int | None]) -> tuple[_R, ...]:
    """The rules that fire among ``hits`` (those whose condition holds, in declared order).

    ``collect``: all; ``first``: the first; ``priority``: the highest priority (the first
    declared on a tie); ``unique``: the one, and :class:`UniqueOverlap` when more hold.
    """
    if not hits:
        return ()
    if policy == "collect":
        return tuple(hits)
    if policy == "unique":
        if len(hits) > 1:
            raise UniqueOverlap(hits)
        return (hits[0],)
    if policy == "priority":
        return (max(hits, key=lambda r: priority(r) or 0),)
    return (hits[0],)


def overlap_message(decision: str, rule_ids: Sequence[str]) -> str:
    """Why a patient could not be assessed: a ``unique`` decision's rules overlap."""
    return (f"ruleset {decision} has hit policy 'unique' but rules {', '.join(rule_ids)} all "
            "fired; the rules overlap (run 'int-rules lint')")


def aggregate_outputs(decision: Decision,
                      fired: Iterable[Sequence[tuple[str, Scalar]]]) -> dict[str, OutputValue]:
    """One decision's outputs from the ``then`` of each rule that fired, in order.

    Every declared output appears. Under ``collect`` each is a list of the distinct values set,
    in order (empty when none); otherwise the value set, or ``None``.
    """
    if decision.hit_policy == "collect":
        lists: dict[str, list[Scalar]] = {o.name: [] for o in decision.outputs}
        for then in fired:
            for key, value in then:
                if value not in lists[key]:
                    lists[key].append(value)
        return dict(lists)
    res: dict[str, OutputValue] = {o.name: None for o in decision.outputs}
    for then in fired:
        for key, value in then:
            res[key] = value
    return res


def provenance(model: RuleModel, statuses: Mapping[str, str] | None = None) -> ProvenanceDict:
    """Which rulebook produced a result: id, version, sha256, decision versions and statuses,
    the pathway's, and the parameter overrides. ``statuses`` (decision id or ``pathway`` ->
    status) are the statuses results report when they differ from those declared (e.g. from
    approval records)."""
    given = statuses or {}
    return {
        "rulebook": model.rulebook,
        "version": model.version,
        "sha256": model.sha256,
        "rulesets": [{"id": d.id, "version": d.version, "status": given.get(d.id, d.status)}
                     for d in model.decisions],
        "pathway": {"id": model.pathway.id, "version": model.pathway.version,
                    "status": given.get("pathway", model.pathway.status)},
        "overrides": {k: (list(v) if isinstance(v, tuple) else v)
                      for k, v in sorted(model.overrides)},
    }
