"""The patient record snapshot: what int_rules knows about one person, as immutable data.

A :class:`PatientRecord` is built from a dict (:meth:`PatientRecord.from_dict`), a JSON string
or file (:meth:`PatientRecord.from_json`, :meth:`PatientRecord.from_json_file`), or by the
population reader from analyst tables. Any problem raises :class:`~int_rules.errors.RecordError`
naming the patient and the field, e.g. ``patient 'P001': events[3].code: '12345' is not a valid
SNOMED CT concept id: ...``.

Dates are ISO ``YYYY-MM-DD``. ``date_of_birth`` may also be given as ``YYYY-MM`` (year and
month only, as many extracts give it); it is then taken as the first day of that month and
``birth_precision`` is ``"month"``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from .errors import RecordError, RecordErrors
from .snomed import SnomedConceptId

__all__ = [
    "Admission",
    "CodedEvent",
    "GpSystem",
    "MonitoringEvent",
    "PatientRecord",
    "RiskScore",
    "Sex",
]

Sex = Literal["female", "male", "other", "unknown"]
GpSystem = Literal["EMIS", "SystmOne", "other"]

# NaN and infinity are refused: they compare in no useful way and engines would disagree on them.
_FROZEN = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)


@pydantic_dataclass(frozen=True, slots=True,
                    config=ConfigDict(extra="forbid", str_strip_whitespace=True,
                                      allow_inf_nan=False))
class CodedEvent:
    """One coded entry in the record: a SNOMED CT concept on a date.

    ``value``/``unit`` carry a numeric result (e.g. a Clinical Frailty Scale score of 6).
    ``is_problem`` says whether the entry was recorded (or upgraded) as a problem, which
    matters in EMIS, where only problems reach the Shared Care Record.

    A slotted pydantic dataclass rather than a model: records carry many events, and this
    shape validates about 40% faster (see benchmarks/bench_assess.py).
    """

    code: SnomedConceptId
    date: dt.date
    value: float | None = None
    unit: str | None = None
    is_problem: bool = False


class Admission(BaseModel):
    """A hospital admission. ``discharged`` is None while the person is still in hospital."""

    model_config = _FROZEN

    admitted: dt.date
    discharged: dt.date | None = None
    emergency: bool

    @model_validator(mode="after")
    def _discharge_not_before_admission(self) -> Admission:
        if self.discharged is not None and self.discharged < self.admitted:
            raise ValueError(
                f"discharged {self.discharged} is before admitted {self.admitted}"
            )
        return self

    @property
    def length_of_stay(self) -> int | None:
        """Nights in hospital, or None while still admitted."""
        if self.discharged is None:
            return None
        return (self.discharged - self.admitted).days


class RiskScore(BaseModel):
    """An externally computed risk score, e.g. DELPPHI's predicted risk of emergency admission.

    ``value`` is a probability between 0 and 1 when ``source`` says so; int_rules does not
    rescale it. ``source`` names the model (e.g. ``"DELPPHI"``).
    """

    model_config = _FROZEN

    date: dt.date
    value: float
    source: str = Field(min_length=1)


class MonitoringEvent(BaseModel):
    """A remote-monitoring reading or alert (e.g. a pulse oximetry reading, a telehealth alert)."""

    model_config = _FROZEN

    date: dt.date
    kind: Literal["reading", "alert"]
    measure: str | None = None
    value: float | None = None


def _parse_birth(value: Any) -> tuple[Any, str]:
    if isinstance(value, str) and len(value) == 7 and value[4] == "-":
        return f"{value}-01", "month"
    return value, "day"


class PatientRecord(BaseModel):
    """A snapshot of one patient's record. Immutable; hashable fields only.

    Events, admissions, risk scores and monitoring are kept as given (tuples); engines index
    them themselves. Build it with :meth:`from_dict`, :meth:`from_json` or
    :meth:`from_json_file` to get our errors (:class:`~int_rules.errors.RecordError`, naming
    the patient and field); the JSON form is ``docs/schema/record.schema.json`` and
    ``docs/record.md``.
    """

    model_config = _FROZEN

    patient_id: str = Field(min_length=1)
    date_of_birth: dt.date
    birth_precision: Literal["day", "month"] = "day"
    sex: Sex = "unknown"
    practice: str | None = None
    neighbourhood: str | None = None
    gp_system: GpSystem | None = None
    date_of_death: dt.date | None = None
    events: tuple[CodedEvent, ...] = ()
    admissions: tuple[Admission, ...] = ()
    risk_scores: tuple[RiskScore, ...] = ()
    monitoring: tuple[MonitoringEvent, ...] = ()

    @field_validator("gp_system", mode="before")
    @classmethod
    def _gp_system_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            folded = {"emis": "EMIS", "systmone": "SystmOne", "s1": "SystmOne", "other": "other"}
            return folded.get(value.strip().lower(), value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _birth_month(cls, data: Any) -> Any:
        if isinstance(data, dict) and "date_of_birth" in data:
            dob, precision = _parse_birth(data["date_of_birth"])
            if precision == "month":
                data = {**data, "date_of_birth": dob, "birth_precision": "month"}
        return data

    @model_validator(mode="after")
    def _death_after_birth(self) -> PatientRecord:
        if self.date_of_death is not None and self.date_of_death < self.date_of_birth:
            raise ValueError(
                f"date_of_death {self.date_of_death} is before date_of_birth {self.date_of_birth}"
            )
        return self

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: object) -> PatientRecord:
        """Validate ``data`` (a mapping as in the JSON form) into a record.

        Returns:
            PatientRecord: the validated, immutable record.

        Raises:
            RecordError: ``data`` is not a mapping, or a field is missing or bad (naming the
                patient and the field; ``RecordErrors`` when there are several).
        """
        if not isinstance(data, dict):
            kind = type(data).__name__
            raise RecordError(None, "(record)", f"expected a JSON object, got {kind}")
        patient_id = data.get("patient_id")
        pid = str(patient_id) if patient_id not in (None, "") else None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _record_errors(pid, exc) from None

    @classmethod
    def from_json(cls, text: str | bytes) -> PatientRecord:
        """Parse and validate a record from JSON text.

        Returns:
            PatientRecord: the validated, immutable record.

        Raises:
            RecordError: the text is not JSON (naming line and column), or as
                :meth:`from_dict`.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            where = f"(JSON line {exc.lineno} column {exc.colno})"
            raise RecordError(None, where, exc.msg) from None
        return cls.from_dict(data)

    @classmethod
    def from_json_file(cls, path: str | Path) -> PatientRecord:
        """Read one record from a JSON file (UTF-8).

        Returns:
            PatientRecord: the validated, immutable record.

        Raises:
            RecordError: the file cannot be read, or as :meth:`from_json` (the message names
                the file).
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise RecordError(None, str(p), f"cannot read file: {exc.strerror}") from None
        try:
            return cls.from_json(text)
        except RecordError as exc:
            raise _prefix_file(exc, p) from None

    @classmethod
    def from_fhir(cls, bundle: Mapping[str, object] | str | bytes,
                  **context: str | None) -> PatientRecord:
        """Read one patient's FHIR R4 Bundle (UK Core; a dict or JSON text): see docs/fhir.md.

        ``neighbourhood=`` and ``gp_system=`` give what FHIR does not carry.
        """
        from .fhir.bundle import read_bundle

        return read_bundle(bundle, **context).record

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data; ``from_dict(r.to_dict()) == r``."""
        data = self.model_dump(mode="json", exclude_defaults=False)
        if self.birth_precision == "month":
            data["date_of_birth"] = data["date_of_birth"][:7]
        del data["birth_precision"]
        return data

    def to_json(self) -> str:
        """The record as JSON text (keys in a stable order)."""
        return json.dumps(self.to_dict(), sort_keys=True)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "constrained-")) or part in ("literal['day','month']",):
            continue
        else:
            out += f".{part}" if out else part
    return out or "(record)"


_DATE_ERRORS = frozenset(
    {"date_from_datetime_parsing", "date_parsing", "date_from_datetime_inexact", "date_type"}
)


def _record_errors(pid: str | None, exc: ValidationError) -> RecordError:
    problems: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        value = err.get("input")
        if err["type"] in _DATE_ERRORS:
            message = f"{value!r} is not a valid date (expected YYYY-MM-DD): {message}"
        elif err["type"] == "extra_forbidden":
            message = "unknown field (check the spelling against the record schema)"
        problems.append((_loc(err["loc"]), message))
    if len(problems) == 1:
        return RecordError(pid, *problems[0])
    return RecordErrors(pid, problems)


def _prefix_file(exc: RecordError, path: Path) -> RecordError:
    if isinstance(exc, RecordErrors):
        new: RecordError = RecordErrors(exc.patient_id, exc.problems)
    else:
        new = RecordError(exc.patient_id, exc.field, exc.message)
    new.args = (f"{path}: {exc.args[0]}",)
    return new
