"""Building records: the plain-events path gives exactly what validating every event gives.

``PatientRecord.from_dict`` builds events in the plain form itself and validates the rest of
the record through pydantic; anything else goes wholly through pydantic. These tests feed
both paths the same dicts, valid and not, and require the same record or the same error.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from int_rules import PatientRecord
from int_rules.errors import RecordError
from int_rules.record import _record_errors

_CODES = st.sampled_from(["925791000000100", "925861000000102", "836131000000104",
                          "925791000000101", " 925791000000100", "12345", "", "0123456"])
_DATES = st.one_of(
    st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)).map(dt.date.isoformat),
    st.dates(dt.date(1900, 1, 1), dt.date(2030, 1, 1)),
    st.sampled_from(["2026-02-30", "20260101", "2026-W01-1", "2026-1-01", " 2026-01-01",
                     "2026-01-01T00:00", "２０２６-01-01", "0000-01-01", ""]),
    st.just(dt.datetime(2026, 1, 1, 12, 0)),
)
_VALUES = st.one_of(st.none(), st.integers(-(2**60), 2**60), st.floats(), st.booleans(),
                    st.sampled_from(["6", " 6 ", "six", 6.5]))
_UNITS = st.one_of(st.none(), st.sampled_from(["mg", " mg", "mg ", "", "\u00a0mg", 3]))
_PROBLEMS = st.one_of(st.booleans(), st.sampled_from([0, 1, "true", None]))


@st.composite
def _events(draw: st.DrawFn) -> dict[str, Any]:
    ev: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        ev["code"] = draw(_CODES)
    if draw(st.integers(0, 9)):
        ev["date"] = draw(_DATES)
    for key, values in (("value", _VALUES), ("unit", _UNITS), ("is_problem", _PROBLEMS)):
        if draw(st.integers(0, 3)) == 0:
            ev[key] = draw(values)
    if draw(st.integers(0, 30)) == 0:
        ev["extra"] = 1
    return ev


def _validated(data: dict[str, Any]) -> PatientRecord | str:
    """What validating every event through pydantic gives: a record or the error text."""
    try:
        return PatientRecord.model_validate(data)
    except ValidationError as exc:
        return str(_record_errors(str(data["patient_id"]), exc))


def _built(data: dict[str, Any]) -> PatientRecord | str:
    try:
        return PatientRecord.from_dict(data)
    except RecordError as exc:
        return str(exc)


@given(events=st.lists(_events(), max_size=6), dob=st.sampled_from(["1950-01-01", "1950-13"]))
def test_from_dict_equals_validating_every_event(events: list[dict[str, Any]], dob: str) -> None:
    data = {"patient_id": "P1", "date_of_birth": dob, "events": events}
    got, want = _built(data), _validated(data)
    assert got == want
    if isinstance(got, PatientRecord):
        assert isinstance(want, PatientRecord)
        assert got.to_dict() == want.to_dict()
        assert [type(e.value) for e in got.events] == [type(e.value) for e in want.events]


def test_a_bad_event_is_named_with_the_patient_and_field() -> None:
    data = {"patient_id": "P7", "date_of_birth": "1950-01-01",
            "events": [{"code": "925791000000100", "date": "2026-01-01"},
                       {"code": "925791000000100", "date": "2026-02-30"}]}
    assert _built(data) == _validated(data)
    assert "patient 'P7'" in str(_built(data)) and "events[1].date" in str(_built(data))
