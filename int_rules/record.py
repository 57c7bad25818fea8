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
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.dataclasses import dataclass as pydantic_dataclass

from .errors import RecordError, RecordErrors
from .snomed import SnomedConceptId
from .snomed import _string_problem as _code_problem
from .vocabulary import (
    MAX_ID_LENGTH,
    parse_bool,
    parse_date,
    parse_gp_system,
    parse_kind,
    parse_number,
    parse_sex,
)

__all__ = [
    "Admission",
    "CodedEvent",
    "GpSystem",
    "MonitoringEvent",
    "PatientRecord",
    "RiskScore",
    "Sex",
    "load_json_document",
]

Sex = Literal["female", "male", "other", "unknown"]
GpSystem = Literal["EMIS", "SystmOne", "other"]


def _optional(parse: Any) -> Any:
    return BeforeValidator(lambda v: None if v is None else parse(v))


# Every value is read through the one input vocabulary (int_rules.vocabulary), as the
# population tables are: the same text means the same thing in a record and in a table.
_Date = Annotated[dt.date, BeforeValidator(parse_date)]
_OptDate = Annotated[dt.date | None, _optional(parse_date)]
_Number = Annotated[float, BeforeValidator(parse_number)]
_OptNumber = Annotated[float | None, _optional(parse_number)]
_Flag = Annotated[bool, BeforeValidator(parse_bool)]
_Sex = Annotated[Sex, BeforeValidator(parse_sex)]
_Kind = Annotated[Literal["reading", "alert"], BeforeValidator(parse_kind)]
_OptGpSystem = Annotated[GpSystem | None, _optional(parse_gp_system)]

#: JSON records nested deeper than this are refused (a record is four levels deep).
MAX_JSON_DEPTH = 64

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
    date: _Date
    value: _OptNumber = None
    unit: str | None = None
    is_problem: _Flag = False


class Admission(BaseModel):
    """A hospital admission. ``discharged`` is None while the person is still in hospital."""

    model_config = _FROZEN

    admitted: _Date
    discharged: _OptDate = None
    emergency: _Flag

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

    date: _Date
    value: _Number
    source: str = Field(min_length=1)


class MonitoringEvent(BaseModel):
    """A remote-monitoring reading or alert (e.g. a pulse oximetry reading, a telehealth alert)."""

    model_config = _FROZEN

    date: _Date
    kind: _Kind
    measure: str | None = None
    value: _OptNumber = None


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

    patient_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    date_of_birth: _Date
    birth_precision: Literal["day", "month"] = "day"
    sex: _Sex = "unknown"
    practice: str | None = None
    neighbourhood: str | None = None
    gp_system: _OptGpSystem = None
    date_of_death: _OptDate = None
    events: tuple[CodedEvent, ...] = ()
    admissions: tuple[Admission, ...] = ()
    risk_scores: tuple[RiskScore, ...] = ()
    monitoring: tuple[MonitoringEvent, ...] = ()

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
        events = data.get("events")
        if events:
            checked = _plain_events(events)
            if checked is not None:
                data = {**data, "events": checked}
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _record_errors(pid, exc) from None

    @classmethod
    def from_json(cls, text: str | bytes) -> PatientRecord:
        """Parse and validate a record from JSON text (UTF-8 when bytes).

        Returns:
            PatientRecord: the validated, immutable record.

        Raises:
            RecordError: naming where: text that is not UTF-8, invalid JSON (line and column),
                a key given twice in one object, nesting too deep, numbers too long to read;
                or as :meth:`from_dict`.
        """
        return cls.from_dict(load_json_document(text))

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
            raw = p.read_bytes()
        except OSError as exc:
            raise RecordError(None, str(p), f"cannot read file: {exc.strerror}") from None
        try:
            return cls.from_json(raw)
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


def load_json_document(text: str | bytes) -> Any:
    """Parse JSON text (UTF-8 when bytes) as a record file is read, for every reader of JSON
    records (ours and FHIR Bundles).

    Raises:
        RecordError: naming where: text that is not UTF-8, invalid JSON (line and column), a
            key given twice in one object, nesting too deep, numbers too long to read.
    """
    if isinstance(text, (bytes, bytearray)):
        text = _decode(bytes(text))
    return _load_json(text)


def _decode(raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise RecordError(None, "(file)", "the file is UTF-16; save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise RecordError(None, f"(JSON line {line} column {column})",
                          f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as "
                          "UTF-8") from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _depth_at(text: str) -> tuple[int, int] | None:
    """(line, column) where ``text`` first nests deeper than MAX_JSON_DEPTH, if it does."""
    depth = 0
    in_string = False
    escaped = False
    line, col = 1, 0
    for ch in text:
        col += 1
        if ch == "\n":
            line, col = line + 1, 0
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return line, col
        elif ch in "]}":
            depth -= 1
    return None


def _load_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        where = f"(JSON line {exc.lineno} column {exc.colno})"
        raise RecordError(None, where, exc.msg) from None
    except _DuplicateKey as exc:
        raise RecordError(None, "(JSON)", f"key {exc.key[:60]!r} appears more than once in "
                                          "one object (we cannot tell which is meant)") from None
    except RecursionError:
        at = _depth_at(text)
        where = f"(JSON line {at[0]} column {at[1]})" if at else "(JSON)"
        raise RecordError(None, where, f"nested more than {MAX_JSON_DEPTH} levels deep "
                                       "(a record is a few levels deep)") from None
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise RecordError(None, "(JSON)", f"a number cannot be read: {exc}") from None


_EVENT_FIELDS = frozenset({"code", "date", "value", "unit", "is_problem"})
_new_event = object.__new__
# The slots' own setters: an event is filled in without the frozen class's __setattr__.
_SET_CODE, _SET_DATE, _SET_VALUE, _SET_UNIT, _SET_PROBLEM = (
    CodedEvent.__dict__[name].__set__ for name in ("code", "date", "value", "unit", "is_problem"))
_FROM_ISO = dt.date.fromisoformat


def _plain_events(raw: Any) -> tuple[CodedEvent, ...] | None:
    """The events of a record, built without validating each through pydantic, when every
    one is in the plain form: a dict of known fields, a valid concept id, a ``YYYY-MM-DD``
    date naming a real day (or a ``date``), a finite number or nothing, a unit without
    surrounding spaces, a true/false ``is_problem``.

    These are values the validated path accepts unchanged (an int value becomes a float, as
    there), so the events are exactly the ones it would build. Anything else (another type,
    text to convert, any mistake) gives ``None``, and the whole record then goes through
    the validated path, which names the patient and field of every problem as before.
    """
    if type(raw) is not list and type(raw) is not tuple:
        return None
    out: list[CodedEvent] = []
    append = out.append
    fields = _EVENT_FIELDS
    code_problem = _code_problem
    new = _new_event
    set_code, set_date, set_value, set_unit, set_problem = (
        _SET_CODE, _SET_DATE, _SET_VALUE, _SET_UNIT, _SET_PROBLEM)
    parse = _FROM_ISO
    for ev in raw:
        if type(ev) is not dict:
            return None
        code = ev.get("code")
        day = ev.get("date")
        if type(code) is not str or code_problem(code) is not None:
            return None
        if type(day) is str:
            # fromisoformat also reads other ISO forms; only YYYY-MM-DD is this plain one.
            if len(day) != 10 or day[4] != "-" or day[7] != "-":
                return None
            try:
                day = parse(day)
            except ValueError:
                return None
        elif type(day) is not dt.date:
            return None
        if len(ev) == 2:  # code and date only: the common case
            value = unit = None
            problem = False
        else:
            if not ev.keys() <= fields:
                return None
            value = ev.get("value")
            if value is not None:
                if type(value) is int and -(2**53) <= value <= 2**53:
                    value = float(value)
                elif type(value) is not float or not math.isfinite(value):
                    return None
            unit = ev.get("unit")
            if unit is not None and (type(unit) is not str or unit != unit.strip()):
                return None
            problem = ev.get("is_problem", False)
            if problem is not True and problem is not False:
                return None
        event = new(CodedEvent)
        set_code(event, code)
        set_date(event, day)
        set_value(event, value)
        set_unit(event, unit)
        set_problem(event, problem)
        append(event)
    return tuple(out)


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
