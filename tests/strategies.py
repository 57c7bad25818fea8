"""Hypothesis strategies shared by int_rules tests: SNOMED codes, dates and patient records.

Every engine's differential tests draw records from here, so a record shape any engine gets
wrong turns up for all of them. Records are built through :meth:`PatientRecord.from_dict`, the
path real input takes. What they contain:

* coded events whose codes come from the bundled codelists (a codelist is drawn first, then a
  code in it, so small codelists such as the pathway's are drawn as often as big ones), mixed
  with unrelated but valid SNOMED CT concept ids (:func:`unrelated_concept_ids`);
* dates around ``as_of``: mostly within a few years before it, some the same day, some after it
  (to be ignored), and *clusters*: several events on a few shared dates, so same-day ordering
  and same-day conflicts are exercised;
* numeric values that stress number handling (whole and fractional, tiny and huge, ``1e-05``
  and the largest finite float; never NaN or infinity, which a record refuses);
* hospital admissions (emergency or not, discharged or still in), DELPPHI and other risk
  scores, remote-monitoring readings and alerts, a date of death (before or after ``as_of``,
  possibly before some events), birth dates given to the day or the month, free-text
  practice and neighbourhood names.

Use::

    from tests.strategies import AS_OF, patient_records

    @given(patient_records())
    def test_something(record): ...

    @given(patient_records(as_of=dt.date(2025, 4, 1), codes=my_codes))
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from int_rules.codelists import load_codelists
from int_rules.errors import IntRulesError
from int_rules.record import PatientRecord
from int_rules.rulebook import Rulebook
from int_rules.snomed import check_digit

__all__ = [
    "AS_OF",
    "as_of_dates",
    "bundled_codelists",
    "codes_from",
    "dates_near",
    "numbers",
    "patient_records",
    "unrelated_concept_ids",
]

#: The default assessment date of generated records.
AS_OF = dt.date(2026, 11, 23)


@lru_cache(maxsize=1)
def bundled_codelists() -> tuple[tuple[str, ...], ...]:
    """The codes of every non-empty bundled codelist, one sorted tuple per codelist."""
    lists = load_codelists()
    return tuple(tuple(sorted(cl.codes)) for cl in lists.values() if cl.codes)


@st.composite
def unrelated_concept_ids(draw: st.DrawFn) -> str:
    """Valid SNOMED CT concept ids (right check digit, concept partition), mostly in no codelist."""
    long_form = draw(st.booleans())
    if long_form:  # extension concept: item id + 7-digit namespace + partition 10
        item = draw(st.integers(1, 10**6))
        namespace = draw(st.integers(10**6, 10**7 - 1))
        payload = f"{item}{namespace}10"
    else:  # International concept: item id + partition 00
        payload = f"{draw(st.integers(100, 10**9))}00"
    return payload + check_digit(payload)


def codes_from(codelists: Sequence[Sequence[str]]) -> st.SearchStrategy[str]:
    """A code from one of ``codelists`` (codelist drawn first, then a code in it)."""
    return st.sampled_from(list(codelists)).flatmap(st.sampled_from)


def as_of_dates() -> st.SearchStrategy[dt.date]:
    """Assessment dates, including month and year ends and leap days."""
    return st.one_of(
        st.just(AS_OF),
        st.dates(dt.date(2019, 1, 1), dt.date(2032, 12, 31)),
        st.sampled_from([dt.date(2024, 2, 29), dt.date(2025, 12, 31), dt.date(2028, 3, 1)]),
    )


def dates_near(as_of: dt.date, anchors: Sequence[dt.date] = ()) -> st.SearchStrategy[dt.date]:
    """Dates around ``as_of``: one of ``anchors`` (same-day clusters), the day itself, a few
    years before it, far before it, or after it."""
    def offset(days: int) -> dt.date:
        return as_of + dt.timedelta(days=days)

    parts: list[st.SearchStrategy[dt.date]] = [
        st.just(as_of),
        st.integers(-800, 0).map(offset),
        st.integers(-6000, -800).map(offset),
        st.integers(1, 400).map(offset),
    ]
    if anchors:
        parts.insert(0, st.sampled_from(list(anchors)))
        parts.insert(0, st.sampled_from(list(anchors)))
    return st.one_of(parts)


def numbers() -> st.SearchStrategy[float]:
    """Numeric values: small whole numbers (scores), fractions (probabilities), edge cases."""
    return st.one_of(
        st.integers(0, 10).map(float),
        st.floats(0, 1, allow_nan=False),
        st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
        st.sampled_from([1e-05, 5e-324, 2e16, 0.1 + 0.2, -0.0, 0.24, 0.36, 1.7976931348623157e308]),
    )


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@st.composite
def patient_records(
    draw: st.DrawFn,
    as_of: dt.date = AS_OF,
    codes: st.SearchStrategy[str] | None = None,
    max_events: int = 25,
) -> PatientRecord:
    """A patient record to assess as of ``as_of`` (see the module docstring)."""
    if codes is None:
        codes = st.one_of(codes_from(bundled_codelists()), codes_from(bundled_codelists()),
                          unrelated_concept_ids())
    age_days = draw(st.integers(0, 110 * 366))
    born = as_of - dt.timedelta(days=age_days)
    data: dict[str, Any] = {
        "patient_id": f"P{draw(st.integers(0, 10**6))}",
        "date_of_birth": born.isoformat()[:7] if draw(st.booleans()) else born,
        "sex": draw(st.sampled_from(["female", "male", "other", "unknown"])),
        "gp_system": draw(st.sampled_from([None, "EMIS", "SystmOne", "other"])),
        "practice": draw(st.one_of(st.none(), _TEXT)),
        "neighbourhood": draw(st.one_of(st.none(), st.sampled_from(["Stort Valley", "Harlow"]),
                                        _TEXT)),
    }
    anchors = draw(st.lists(dates_near(as_of), min_size=1, max_size=4))
    when = dates_near(as_of, anchors)
    data["events"] = draw(st.lists(
        st.fixed_dictionaries(
            {"code": codes, "date": when},
            optional={"value": numbers(), "is_problem": st.booleans()},
        ),
        max_size=max_events,
    ))
    data["admissions"] = [
        {"admitted": day, "emergency": emergency,
         "discharged": None if stay is None else day + dt.timedelta(days=stay)}
        for day, emergency, stay in draw(st.lists(
            st.tuples(when, st.booleans(), st.one_of(st.none(), st.integers(0, 60))),
            max_size=4))
    ]
    data["risk_scores"] = draw(st.lists(
        st.fixed_dictionaries({"date": when, "value": numbers(),
                               "source": st.sampled_from(["DELPPHI", "other", "delpphi"])}),
        max_size=3))
    data["monitoring"] = draw(st.lists(
        st.fixed_dictionaries({"date": when, "kind": st.sampled_from(["reading", "alert"])},
                              optional={"measure": st.sampled_from(["spo2", "pulse", "bp"]),
                                        "value": numbers()}),
        max_size=4))
    if draw(st.integers(0, 3)) == 0:
        dod = draw(when)
        data["date_of_death"] = max(dod, born)
    return PatientRecord.from_dict(data)


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "records" / "frail_on_caseload.json"


def outcome(book: Rulebook, record: PatientRecord, as_of: dt.date, engine: str) -> Any:
    """The comparable assessment, or the error raised (type and message), for one engine."""
    try:
        return book.assess(record, as_of, engine=engine).comparable()
    except IntRulesError as exc:
        return ("raised", type(exc).__name__, str(exc))
