"""Property-based proof that the caseload pathway's code transitions are valid.

* A small, independent reading of ``rulesets/pathway.yaml`` (plain dicts, a plain loop) is the
  oracle: for every generated record, :meth:`Pathway.replay` must agree with it exactly.
* Generated records: replay is deterministic, independent of the order events are given in,
  unchanged by events after ``as_of``, and unchanged (up to the shift) when every date moves
  together.
* ``may_record`` and ``next_codes`` agree with replaying the record with the code added.
* A ``RuleBasedStateMachine`` records codes, allowed and not, on advancing dates (some on the
  same day, sometimes after a death) and checks after every step the invariants of the issue.
* Mutations of the YAML that make the machine inconsistent fail the load-time checks.

How many examples run is set by the Hypothesis profile (``tests/conftest.py``,
``docs/testing.md``).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections import Counter
from typing import Any

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from int_rules.errors import RulesetError
from int_rules.language.yamlsrc import load_yaml
from int_rules.pathway import Pathway, pathway_from_yaml
from int_rules.pathway_doc import default_pathway_path, load_bundled_pathway

PATHWAY, _TERMS = load_bundled_pathway()
RAW: dict[str, Any] = yaml.safe_load(default_pathway_path().read_text(encoding="utf-8"))
CODELISTS = {cid: PATHWAY.codelist_codes(cid)
             for s in RAW["steps"] for cid in s.get("codelists", ())}
CODES = sorted(PATHWAY.codes)
OTHER_CODES = ["22298006", "38341003"]  # not pathway codes: must be ignored
BASE = dt.date(2024, 1, 1)
DEATH_STEP = next(s["id"] for s in RAW["steps"] if s.get("source") == "date_of_death")


# -- the oracle: an independent, naive reading of the YAML ------------------------------------


def oracle(events: list[tuple[dt.date, str]], as_of: dt.date,
           dod: dt.date | None) -> tuple[str, dt.date | None, list[tuple[Any, ...]],
                                         list[tuple[Any, ...]]]:
    step_of = {code: s["id"] for s in RAW["steps"] for cid in s.get("codelists", ())
               for code in CODELISTS[cid]}
    precedence = {s["id"]: s["precedence"] for s in RAW["steps"]}
    death = DEATH_STEP
    effect = {(f, t["step"]): t for t in RAW["transitions"] for f in t["from"]}
    finding = {f["id"]: f for f in RAW["findings"]}

    todo = [(d, precedence[step_of[code]], code, step_of[code]) for d, code in events
            if code in step_of and d <= as_of]
    if dod is not None and dod <= as_of:
        todo.append((dod, precedence[death], "", death))
    todo.sort()
    state, entered = RAW["initial"], None
    history: list[tuple[Any, ...]] = []
    findings: list[tuple[Any, ...]] = []

    def report(fid: str, d: dt.date, code: str) -> None:
        f = finding[fid]
        findings.append((fid, f["severity"], d, code or None, state, f["message"]))

    for i, (d, _, code, step) in enumerate(todo):
        earlier_today = {e[3] for e in todo[:i] if e[0] == d}
        for sd in RAW.get("same_day", []):
            if step in sd["steps"]:
                other = sd["steps"][1] if sd["steps"][0] == step else sd["steps"][0]
                if other in earlier_today:
                    report(sd["finding"], d, code)
        t = effect[(state, step)]
        if t.get("violation") or t.get("finding"):
            report(t.get("violation") or t["finding"], d, code)
        if t.get("to") is not None:
            history.append((d, code, step, state, t["to"]))
            state, entered = t["to"], d
    return state, entered, history, findings


# -- strategies -------------------------------------------------------------------------------

days = st.integers(min_value=0, max_value=30)  # a short span, so codes often share a date
events_st = st.lists(
    st.tuples(days.map(lambda n: BASE + dt.timedelta(days=n)),
              st.sampled_from(CODES + OTHER_CODES)),
    max_size=20,
)
maybe_dod = st.one_of(st.none(), days.map(lambda n: BASE + dt.timedelta(days=n)))
as_of_st = st.integers(min_value=0, max_value=35).map(lambda n: BASE + dt.timedelta(days=n))


# -- generated records ------------------------------------------------------------------------


@given(events_st, as_of_st, maybe_dod)
def test_replay_agrees_with_the_oracle(events: list[tuple[dt.date, str]], as_of: dt.date,
                                       dod: dt.date | None) -> None:
    r = PATHWAY.replay(events, as_of, dod)
    state, entered, history, findings = oracle(events, as_of, dod)
    assert r.state == state
    assert r.entered == entered
    assert [tuple(t) for t in r.history] == history
    assert [tuple(f) for f in r.findings] == findings
    assert r.state in PATHWAY.states


@given(events_st, as_of_st, maybe_dod, st.randoms(use_true_random=False))
def test_replay_is_deterministic_and_order_independent(
        events: list[tuple[dt.date, str]], as_of: dt.date, dod: dt.date | None,
        rnd: Any) -> None:
    first = PATHWAY.replay(events, as_of, dod)
    assert PATHWAY.replay(events, as_of, dod) == first
    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert PATHWAY.replay(shuffled, as_of, dod) == first
    assert PATHWAY.replay(tuple(reversed(events)), as_of, dod) == first


@given(events_st, events_st, as_of_st, maybe_dod)
def test_events_after_as_of_change_nothing(events: list[tuple[dt.date, str]],
                                           later: list[tuple[dt.date, str]], as_of: dt.date,
                                           dod: dt.date | None) -> None:
    kept = [e for e in events if e[0] <= as_of]
    future = [(as_of + dt.timedelta(days=1 + (d - BASE).days), c) for d, c in later]
    expected = PATHWAY.replay(kept, as_of, dod)
    assert PATHWAY.replay(events, as_of, dod) == expected
    assert PATHWAY.replay(kept + future, as_of, dod) == expected
    # A date of death after as_of is not yet known either.
    if dod is None:
        assert PATHWAY.replay(kept, as_of, as_of + dt.timedelta(days=1)) == expected


@given(events_st, as_of_st, maybe_dod, st.integers(min_value=-20_000, max_value=20_000))
def test_shifting_all_dates_together_changes_nothing(events: list[tuple[dt.date, str]],
                                                     as_of: dt.date, dod: dt.date | None,
                                                     shift: int) -> None:
    delta = dt.timedelta(days=shift)
    before = PATHWAY.replay(events, as_of, dod)
    after = PATHWAY.replay([(d + delta, c) for d, c in events], as_of + delta,
                           dod + delta if dod else None)
    assert after.state == before.state
    assert after.entered == (before.entered + delta if before.entered else None)
    assert after.history == tuple(t._replace(date=t.date + delta) for t in before.history)
    assert after.findings == tuple(f._replace(date=f.date + delta) for f in before.findings)


@given(events_st, st.sampled_from(CODES), as_of_st, maybe_dod)
def test_may_record_agrees_with_replay(events: list[tuple[dt.date, str]], code: str,
                                       on: dt.date, dod: dt.date | None) -> None:
    decision = PATHWAY.may_record(events, code, on, dod)
    before = PATHWAY.replay(events, on, dod)
    after = PATHWAY.replay([*events, (on, code)], on, dod)
    added = Counter(after.findings) - Counter(before.findings)
    assert (decision.code, decision.on) == (code, on)
    assert decision.allowed == (not added)
    assert decision.resulting_state == after.state
    if decision.allowed:
        assert decision.finding_id is None
    else:
        assert decision.finding_id in {f.id for f in added}
        assert decision.finding_id in decision.reason


@given(events_st, as_of_st, maybe_dod)
def test_next_codes_are_exactly_the_allowed_codes(events: list[tuple[dt.date, str]],
                                                  on: dt.date, dod: dt.date | None) -> None:
    allowed = [d for d in (PATHWAY.may_record(events, c, on, dod) for c in CODES) if d.allowed]
    assert sorted(PATHWAY.next_codes(events, on, dod), key=lambda d: d.code) == sorted(
        allowed, key=lambda d: d.code)


@given(events_st, as_of_st, maybe_dod, st.sets(st.sampled_from(CODES + OTHER_CODES)))
def test_replay_and_allow_is_replay_plus_may_record(events: list[tuple[dt.date, str]],
                                                   on: dt.date, dod: dt.date | None,
                                                   codes: set[str]) -> None:
    result, allowed = PATHWAY.replay_and_allow(events, on, dod, codes)
    assert result == PATHWAY.replay(events, on, dod)
    assert allowed == {c for c in codes if c in PATHWAY.codes
                       and PATHWAY.may_record(events, c, on, dod).allowed}


# -- the state machine ------------------------------------------------------------------------

DEATH_STATE = next(t["to"] for t in RAW["transitions"] if t["step"] == DEATH_STEP and "to" in t)


class CaseloadRecord(RuleBasedStateMachine):
    """Record pathway codes one at a time, as a care coordinator would, and hold the engine to
    its answers."""

    pathway: Pathway = PATHWAY

    @initialize()
    def start(self) -> None:
        self.events: list[tuple[dt.date, str]] = []
        self.clock = BASE
        self.dod: dt.date | None = None
        self.stepped_state = self.pathway.initial  # the state, stepping code by code
        self.only_allowed = True  # every code so far was one the engine allowed

    def _advance(self, on: dt.date) -> None:
        self.clock = on
        if self.dod is not None and self.dod <= on:  # death applies at the end of its date
            self.stepped_state = DEATH_STATE

    def _record(self, code: str, on: dt.date) -> None:
        decision = self.pathway.may_record(self.events, code, on, self.dod)
        before = self.pathway.replay(self.events, on, self.dod)
        self.events.append((on, code))
        self._advance(on)
        after = self.pathway.replay(self.events, on, self.dod)
        added = Counter(after.findings) - Counter(before.findings)
        if decision.allowed:
            # Leads exactly where predicted, and adds no finding.
            assert after.state == decision.resulting_state
            assert not added
        else:
            # Reported on replay, with the finding the engine named.
            assert added
            assert decision.finding_id in {f.id for f in added}
            self.only_allowed = False
        self.stepped_state = decision.resulting_state

    @rule(gap=st.integers(min_value=0, max_value=3), data=st.data())
    def record_an_allowed_code(self, gap: int, data: st.DataObject) -> None:
        on = self.clock + dt.timedelta(days=gap)
        allowed = self.pathway.next_codes(self.events, on, self.dod)
        assume(allowed)
        choice = data.draw(st.sampled_from(allowed))
        assert choice.allowed
        self._record(choice.code, on)

    @rule(code=st.sampled_from(CODES), gap=st.integers(min_value=0, max_value=3))
    def record_any_code(self, code: str, gap: int) -> None:
        self._record(code, self.clock + dt.timedelta(days=gap))

    @rule(code=st.sampled_from(OTHER_CODES), gap=st.integers(min_value=0, max_value=3))
    def record_another_code(self, code: str, gap: int) -> None:
        on = self.clock + dt.timedelta(days=gap)
        before = self.pathway.replay(self.events, on, self.dod)
        self.events.append((on, code))
        self._advance(on)
        assert self.pathway.replay(self.events, on, self.dod) == before

    @precondition(lambda self: self.dod is None)
    @rule(gap=st.integers(min_value=0, max_value=5))
    def die(self, gap: int) -> None:
        self.dod = self.clock + dt.timedelta(days=gap)
        self._advance(self.clock)

    @rule(gap=st.integers(min_value=1, max_value=30))
    def time_passes(self, gap: int) -> None:
        self._advance(self.clock + dt.timedelta(days=gap))

    @invariant()
    def state_is_declared_and_replay_matches_stepping(self) -> None:
        if not hasattr(self, "events"):
            return
        r = self.pathway.replay(self.events, self.clock, self.dod)
        assert r.state in self.pathway.states
        assert r.state == self.stepped_state
        # Replaying from scratch, in any order, gives the same.
        assert self.pathway.replay(list(reversed(self.events)), self.clock, self.dod) == r
        if self.only_allowed:
            assert r.findings == ()
        if self.dod is not None and self.dod <= self.clock:
            assert r.state in self.pathway.terminal


TestCaseloadRecord = CaseloadRecord.TestCase


# -- mutations of the YAML fail the static checks ---------------------------------------------
# Mutations are made on a deep copy of the parsed file (positions kept), so each example costs
# a validation, not a YAML parse. ``test_pathway.py`` mutates files on disk and checks lines.

LOCATED = load_yaml(default_pathway_path(), "rulesets/pathway.yaml")
LOC = r"^rulesets/pathway\.yaml:\d+:\d+: "
_CELLS = [(i, j) for i, t in enumerate(RAW["transitions"]) for j in range(len(t["from"]))]


def _check_fails(data: Any) -> str:
    with pytest.raises(RulesetError, match=LOC) as info:
        pathway_from_yaml(data, CODELISTS, "rulesets/pathway.yaml")
    return str(info.value)


def _pop(items: Any, index: int) -> Any:
    """Remove an item from a located list, keeping the other items' positions."""
    del items.item_positions[index]
    return items.pop(index)


@given(st.sampled_from(_CELLS))
def test_removing_any_declared_effect_fails_the_checks(cell: tuple[int, int]) -> None:
    i, j = cell
    data = copy.deepcopy(LOCATED)
    t = data["transitions"][i]
    gone = _pop(t["from"], j)
    if not t["from"]:
        _pop(data["transitions"], i)
    assert f"has no effect declared in state(s) {gone}" in _check_fails(data)


@given(st.sampled_from(_CELLS), st.sampled_from([s["id"] for s in RAW["states"]]))
def test_any_second_effect_for_a_code_and_state_fails_the_checks(cell: tuple[int, int],
                                                                 target: str) -> None:
    i, j = cell
    data = copy.deepcopy(LOCATED)
    t = data["transitions"][i]
    state = t["from"][j]
    extra: dict[str, Any] = {"id": "PWY-999", "step": t["step"], "from": [state],
                             "provenance": "assumption", "why": "mutation"}
    if target == state:
        extra["no_change"] = True
    else:
        extra["to"] = target
    data["transitions"].append(extra)
    data["transitions"].item_positions.append(data["transitions"].item_positions[-1])
    assert "already has an effect" in _check_fails(data)


@given(st.sampled_from([i for i, t in enumerate(RAW["transitions"]) if t.get("to")]),
       st.sampled_from(["nowhere", "on_casload"]))
def test_any_transition_to_an_unknown_state_fails_the_checks(i: int, target: str) -> None:
    data = copy.deepcopy(LOCATED)
    data["transitions"][i]["to"] = target
    message = _check_fails(data)
    assert f"unknown state '{target}'" in message
    line = data["transitions"][i].value_positions["to"][0]
    assert message.startswith(f"rulesets/pathway.yaml:{line}:")


def test_unmutated_copy_loads() -> None:
    """The control for the mutation tests: the copy itself loads cleanly."""
    assert pathway_from_yaml(copy.deepcopy(LOCATED), CODELISTS, "rulesets/pathway.yaml").states
