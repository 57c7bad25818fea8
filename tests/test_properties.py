"""Properties of the reference evaluator and the record, over generated records (Hypothesis).

* the same inputs give the same output, byte for byte;
* events after ``as_of`` change nothing (except the fact that exists to count them, and what
  depends on it);
* shifting every date and ``as_of`` by the same number of days changes no outcome;
* an event whose code is in no codelist changes no outcome;
* records round-trip through JSON;
* the SNOMED CT check digit rejects every single-digit change and adjacent transposition.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

import int_rules
from int_rules import PatientRecord
from int_rules.rulebook import Rulebook
from int_rules.snomed import check_digit, is_valid_concept_id

BOOK: Rulebook = int_rules.load()
LISTED = sorted({c for cl in BOOK.codelists.values() for c in cl.codes})
AS_OF = dt.date(2026, 11, 23)


def _unlisted(payload: str) -> str:
    code = payload + "10" + check_digit(payload + "10")
    return code


UNLISTED = [c for c in (_unlisted(str(n)) for n in range(1000000, 1000400)) if c not in LISTED]

days = st.integers(min_value=-3 * 365, max_value=60)  # offsets from as_of (some after it)


@st.composite
def records(draw: st.DrawFn, with_unlisted: bool = True) -> dict[str, Any]:
    """A record as a dict: events clustered on a few dates so same-day cases are common."""
    anchor_days = draw(st.lists(days, min_size=1, max_size=6))
    pool = LISTED + (UNLISTED[:20] if with_unlisted else [])
    events = []
    for _ in range(draw(st.integers(0, 25))):
        offset = draw(st.sampled_from(anchor_days) | days)
        event: dict[str, Any] = {"code": draw(st.sampled_from(pool)),
                                 "date": (AS_OF + dt.timedelta(days=offset)).isoformat()}
        if draw(st.booleans()) and draw(st.booleans()):
            event["value"] = draw(st.integers(0, 9))
        if draw(st.integers(0, 5)) == 0:
            event["is_problem"] = True
        events.append(event)
    admissions = [{"admitted": (AS_OF + dt.timedelta(days=draw(days))).isoformat(),
                   "emergency": draw(st.booleans())} for _ in range(draw(st.integers(0, 3)))]
    scores = [{"date": (AS_OF + dt.timedelta(days=draw(days))).isoformat(),
               "value": draw(st.floats(0, 1)), "source": draw(st.sampled_from(["DELPPHI", "X"]))}
              for _ in range(draw(st.integers(0, 2)))]
    monitoring = [{"date": (AS_OF + dt.timedelta(days=draw(days))).isoformat(),
                   "kind": draw(st.sampled_from(["reading", "alert"]))}
                  for _ in range(draw(st.integers(0, 2)))]
    born = AS_OF - dt.timedelta(days=draw(st.integers(40 * 365, 100 * 365)))
    data: dict[str, Any] = {
        "patient_id": "H1", "date_of_birth": born.isoformat(),
        "gp_system": draw(st.sampled_from(["EMIS", "SystmOne", "other", None])),
        "events": events, "admissions": admissions, "risk_scores": scores,
        "monitoring": monitoring,
    }
    if draw(st.integers(0, 6)) == 0:
        data["date_of_death"] = (AS_OF + dt.timedelta(days=draw(days))).isoformat()
    return data


def build(data: dict[str, Any]) -> PatientRecord:
    return PatientRecord.from_dict(data)


def _lookahead_facts(book: Rulebook) -> set[str]:
    """Facts that may see events after as_of, and every fact derived from them."""
    ahead = {name for name, f in book.facts.items() if f.reads_after_as_of}
    for name in book.fact_order:
        if set(book.facts[name].deps) & ahead:
            ahead.add(name)
    return ahead


AHEAD = _lookahead_facts(BOOK)


def _outcome_view(a: int_rules.Assessment, skip_facts: set[str]) -> dict[str, Any]:
    rules = [r.id for r in a.fired if not set(r.condition.facts) & skip_facts]
    facts = {k: v for k, v in a.values.items() if k not in skip_facts and k != "__as_of__"}
    return {"rules": rules, "facts": facts, "state": a.pathway.state,
            "findings": [f.id for f in a.pathway.findings]}


@given(records())
def test_same_inputs_same_bytes(data: dict[str, Any]) -> None:
    rec = build(data)
    assert BOOK.assess(rec, AS_OF).to_json() == BOOK.assess(build(data), AS_OF).to_json()


@given(records(), st.data())
def test_events_after_as_of_change_nothing(data: dict[str, Any], more: st.DataObject) -> None:
    base = build(data)
    later = {**data}
    for key, item in (("events", {"code": more.draw(st.sampled_from(LISTED))}),
                      ("admissions", {"emergency": True}),
                      ("risk_scores", {"value": 0.99, "source": "DELPPHI"}),
                      ("monitoring", {"kind": "alert"})):
        when = AS_OF + dt.timedelta(days=more.draw(st.integers(1, 400)))
        field = "admitted" if key == "admissions" else "date"
        later[key] = [*data[key], {**item, field: when.isoformat()}]
    assume(data.get("date_of_death") is None or data["date_of_death"] <= AS_OF.isoformat())
    a, b = BOOK.assess(base, AS_OF), BOOK.assess(build(later), AS_OF)
    assert _outcome_view(a, AHEAD) == _outcome_view(b, AHEAD)


def _shift(data: dict[str, Any], n: int) -> dict[str, Any]:
    def s(d: str | None) -> str | None:
        return None if d is None else (dt.date.fromisoformat(d) + dt.timedelta(days=n)).isoformat()
    out = {**data, "date_of_birth": s(data["date_of_birth"]),
           "date_of_death": s(data.get("date_of_death"))}
    out["events"] = [{**e, "date": s(e["date"])} for e in data["events"]]
    out["admissions"] = [{**a, "admitted": s(a["admitted"])} for a in data["admissions"]]
    out["risk_scores"] = [{**r, "date": s(r["date"])} for r in data["risk_scores"]]
    out["monitoring"] = [{**m, "date": s(m["date"])} for m in data["monitoring"]]
    return out


@given(records(), st.integers(-2000, 2000))
def test_shifting_every_date_changes_no_outcome(data: dict[str, Any], n: int) -> None:
    a = BOOK.assess(build(data), AS_OF)
    b = BOOK.assess(build(_shift(data, n)), AS_OF + dt.timedelta(days=n))
    assume(a.values["age"] == b.values["age"])  # whole-year age can differ across a leap day
    va, vb = _outcome_view(a, set()), _outcome_view(b, set())
    date_facts = {k for k, v in va["facts"].items() if isinstance(v, dt.date)}
    for view, shift in ((va, 0), (vb, n)):
        for k in date_facts:
            if view["facts"][k] is not None:
                view["facts"][k] -= dt.timedelta(days=shift)
    assert va == vb


@given(records(with_unlisted=False), st.sampled_from(UNLISTED), st.integers(0, 365))
def test_unlisted_code_changes_no_outcome(data: dict[str, Any], code: str, back: int) -> None:
    born = dt.date.fromisoformat(data["date_of_birth"])
    when = max(AS_OF - dt.timedelta(days=back), born)
    more = {**data, "events": [*data["events"], {"code": code, "date": when.isoformat()}]}
    a, b = BOOK.assess(build(data), AS_OF), BOOK.assess(build(more), AS_OF)
    assert a.rule_ids == b.rule_ids
    assert a.results() == b.results()


@given(records())
def test_record_json_round_trip(data: dict[str, Any]) -> None:
    rec = build(data)
    assert PatientRecord.from_dict(rec.to_dict()) == rec
    assert PatientRecord.from_json(rec.to_json()) == rec


@given(st.sampled_from(LISTED), st.data())
def test_check_digit_rejects_every_single_digit_change(code: str, data: st.DataObject) -> None:
    assert is_valid_concept_id(code)
    i = data.draw(st.integers(0, len(code) - 1))
    for digit in "0123456789":
        changed = code[:i] + digit + code[i + 1:]
        if changed != code:
            assert not is_valid_concept_id(changed), changed
    if i < len(code) - 1 and code[i] != code[i + 1]:
        swapped = code[:i] + code[i + 1] + code[i] + code[i + 2:]
        assert not is_valid_concept_id(swapped), swapped


@given(records())
def test_one_pass_pathway_answers_equal_the_separate_ones(data: dict[str, Any]) -> None:
    rec = build(data)
    pathway = BOOK.pathway
    events = [(e.date, e.code) for e in rec.events]
    result, allowed = pathway.replay_and_allow(events, AS_OF, rec.date_of_death, pathway.codes)
    assert result == pathway.replay(events, AS_OF, rec.date_of_death)
    assert allowed == {d.code for d in pathway.next_codes(events, AS_OF, rec.date_of_death)}
