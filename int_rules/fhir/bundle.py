"""One patient's FHIR R4 Bundle (UK Core shape) to a :class:`~int_rules.record.PatientRecord`.

Plain JSON walking: each resource is read as a dict, element by element, so a problem names the
resource and the element path exactly (``Condition/abc: code.coding[0].code: ...``). The record
is then validated by :meth:`PatientRecord.from_dict` (one validation, the same as for our JSON),
and its errors are mapped back to the resource and element they came from.

The mapping (docs/fhir.md has it as a table):

* **Patient** (UKCore-Patient), exactly one per Bundle: ``id`` -> patient_id; ``birthDate``
  (``YYYY-MM`` allowed: month precision); ``gender`` -> sex; ``deceasedDateTime`` -> date of
  death (``deceasedBoolean: true`` without a date is an error: a death must have its date);
  ``generalPractitioner`` -> the practice's ODS code (an ODS identifier on the reference, or the
  referenced Organization's ODS identifier).
* **Condition** (UKCore-Condition) and **Observation** (UKCore-Observation) with a SNOMED CT
  coding -> a coded event. Its date is the *clinical* date when there is one, else the recorded
  date: Condition ``onsetDateTime``, ``onsetPeriod.start``, then ``recordedDate``; Observation
  ``effectiveDateTime``, ``effectivePeriod.start``, ``effectiveInstant``, then ``issued``. A
  dateTime is read as the calendar date written in it (its first ten characters). A Condition
  in category ``problem-list-item`` is a problem. ``valueQuantity`` -> value and unit
  (``valueInteger`` -> value).
* **Observation** in category ``vital-signs`` -> a monitoring reading (an alert when its
  interpretation is critical: AA, HH or LL), measure = ``code.text``, else the first coding's
  display, else its code.
* **Flag** (UKCore-Flag) -> a monitoring alert on ``period.start``.
* **Encounter** (UKCore-Encounter) of class IMP, ACUTE, NONAC or EMER -> an admission
  (``period.start`` admitted, ``period.end`` discharged); emergency when the class is EMER or
  the UK Core admission-method extension carries an emergency method (21-25, 2A-2D, 28).
* **RiskAssessment** -> one risk score per ``prediction`` with ``probabilityDecimal``, dated
  ``occurrenceDateTime`` (or ``occurrencePeriod.start``); the source is ``method.text``, else
  the method coding's display or code, else ``performer.display``.

A concept with several codings uses its SNOMED CT one; codings in other systems are ignored and
counted (two *different* SNOMED CT codes in one concept are an error: we cannot tell which is
meant). A Condition or Observation with no SNOMED CT coding is ignored and counted.
Entered-in-error resources (and refuted Conditions; cancelled Observations, Encounters and
RiskAssessments; planned Encounters) are skipped and counted. Other resource types are ignored
and counted. Nothing is dropped without a count in :attr:`BundleRead.ignored`.

Order: resources are read type by type in name order (Condition, Encounter, Flag,
Observation, RiskAssessment), each type in Bundle order, as the Bulk reader reads its files;
input order matters only to break a tie between two items on the same date.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RecordError, RecordErrors
from ..record import PatientRecord, load_json_document
from . import vocabulary as v

__all__ = ["BundleRead", "is_fhir", "read_bundle", "read_bundle_file"]

JSON = Any  # a parsed JSON value


class _Bad(Exception):
    """A problem at one element of one resource (becomes a RecordError)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


@dataclass(frozen=True)
class BundleRead:
    """A Bundle read into a record, with what was left out and why (reason -> count)."""

    record: PatientRecord
    ignored: Mapping[str, int] = field(default_factory=dict)


def is_fhir(data: object) -> bool:
    """Whether parsed JSON is a FHIR resource (it has a ``resourceType``)."""
    return isinstance(data, dict) and "resourceType" in data


# -- small readers over plain JSON ------------------------------------------------------------


_STEP = re.compile(r"\[\d+\]|[^.\[\]]+")


@dataclass
class _Res:
    """One resource being read: its label (``Condition/abc``) for every message."""

    data: dict[str, JSON]
    label: str

    def bad(self, path: str, message: str) -> _Bad:
        return _Bad(f"{self.label}: {path}", message)

    def get(self, path: str, expect: type | tuple[type, ...]) -> JSON:
        """The value at a dotted path of plain keys (None when absent), type-checked."""
        node: JSON = self.data
        for key in _STEP.findall(path):
            if key.startswith("["):
                index = int(key[1:-1])
                node = node[index] if isinstance(node, list) and index < len(node) else None
            elif isinstance(node, dict):
                node = node.get(key)
            else:
                return None
        numeric = expect in (int, float, _NUMBER)
        if node is not None and (not isinstance(node, expect)
                                 or (numeric and isinstance(node, bool))):
            raise self.bad(path, f"expected {_kind(expect)}, got {_json_kind(node)}")
        return node

    def items(self, path: str) -> list[tuple[str, dict[str, JSON]]]:
        """The objects of an array at ``path`` with their element paths."""
        arr = self.get(path, list)
        out = []
        for i, item in enumerate(arr or []):
            if not isinstance(item, dict):
                raise self.bad(f"{path}[{i}]", f"expected an object, got {_json_kind(item)}")
            out.append((f"{path}[{i}]", item))
        return out


def _kind(expect: type | tuple[type, ...]) -> str:
    names = {str: "a string", dict: "an object", list: "an array", bool: "true or false",
             int: "a number", float: "a number"}
    types = expect if isinstance(expect, tuple) else (expect,)
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def _json_kind(value: JSON) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:60]!r}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


_NUMBER = (int, float)


def _str_at(res: _Res, obj: dict[str, JSON], path: str, key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise res.bad(f"{path}.{key}", f"expected a string, got {_json_kind(value)}")
    return value


def _codings(res: _Res, concept_path: str) -> list[tuple[str, str | None, str | None,
                                                         str | None]]:
    """(path, system, code, display) of each coding of a CodeableConcept."""
    out = []
    for path, coding in res.items(f"{concept_path}.coding"):
        out.append((path, _str_at(res, coding, path, "system"), _str_at(res, coding, path, "code"),
                    _str_at(res, coding, path, "display")))
    return out


def _any_code_in(res: _Res, array_path: str, system: str, codes: Iterable[str]) -> bool:
    wanted = set(codes)
    for path, _ in res.items(array_path):
        for _, s, code, _ in _codings(res, path):
            if (s == system or system == "*") and code in wanted:
                return True
    return False


def _date_of(value: str | None) -> str | None:
    """The calendar date written in a FHIR date or dateTime (its first ten characters)."""
    if value is None:
        return None
    return value[:10] if len(value) > 10 and value[10] == "T" else value


def _first_date(res: _Res, paths: Iterable[str]) -> tuple[str, str] | None:
    for path in paths:
        value = res.get(path, str)
        if value is not None:
            return path, _date_of(value) or value
    return None


# -- the reader ------------------------------------------------------------------------------


@dataclass
class _Reader:
    patient_ref: set[str]
    organisations: dict[str, tuple[str, str | None]]  # reference -> (label, ODS code)
    ignored: Counter[str] = field(default_factory=Counter)
    events: list[dict[str, JSON]] = field(default_factory=list)
    admissions: list[dict[str, JSON]] = field(default_factory=list)
    risk_scores: list[dict[str, JSON]] = field(default_factory=list)
    monitoring: list[dict[str, JSON]] = field(default_factory=list)
    # where each item came from: (list name, index) -> (label, {record field: element path})
    origin: dict[tuple[str, int], tuple[str, dict[str, str]]] = field(default_factory=dict)

    def add(self, kind: str, item: dict[str, JSON], res: _Res, paths: dict[str, str]) -> None:
        items: list[dict[str, JSON]] = getattr(self, kind)
        self.origin[(kind, len(items))] = (res.label, paths)
        items.append(item)

    def check_subject(self, res: _Res, path: str = "subject") -> None:
        ref = res.get(f"{path}.reference", str)
        if ref is None:
            raise res.bad(f"{path}.reference", "missing: every resource must name its patient")
        if ref not in self.patient_ref:
            raise res.bad(f"{path}.reference", f"{ref!r} is not this Bundle's Patient "
                          f"({' or '.join(sorted(self.patient_ref))})")

    def skipped(self, res: _Res, type_: str) -> bool:
        status = res.get("status", str)
        if status in v.SKIPPED_STATUSES.get(type_, ()):
            self.ignored[f"{type_} with status {status} (skipped)"] += 1
            return True
        return False

    def snomed(self, res: _Res, concept: str) -> tuple[str, str] | None:
        """(element path, code) of the concept's SNOMED CT coding; other codings counted."""
        found: list[tuple[str, str | None]] = []
        for path, system, code, _ in _codings(res, concept):
            if system == v.SNOMED:
                found.append((f"{path}.code", code))
            else:
                self.ignored[f"{res.data['resourceType']}.{concept} coding in another code "
                              f"system ({system or 'no system'})"] += 1
        distinct = {code for _, code in found}
        if len(distinct) > 1:
            shown = ", ".join(sorted(str(c) for c in distinct))
            raise res.bad(f"{concept}.coding", f"several SNOMED CT codes ({shown}): cannot tell "
                          "which is meant")
        if not found:
            return None
        path, code = found[0]
        if code is None:
            raise res.bad(path, "the SNOMED CT coding has no code")
        return path, code

    # -- resource types --

    def condition(self, res: _Res) -> None:
        verification = {c for _, _, c, _ in _codings(res, "verificationStatus") if c}
        hit = verification & v.SKIPPED_VERIFICATION
        if hit:
            self.ignored[f"Condition with verificationStatus {min(hit)} (skipped)"] += 1
            return
        self.check_subject(res)
        coded = self.snomed(res, "code")
        if coded is None:
            self.ignored["Condition with no SNOMED CT coding (ignored)"] += 1
            return
        when = _first_date(res, ("onsetDateTime", "onsetPeriod.start", "recordedDate"))
        if when is None:
            raise res.bad("onsetDateTime", "no date: give onsetDateTime, onsetPeriod.start or "
                          "recordedDate")
        problem = any(code == v.PROBLEM_LIST_ITEM
                      for path, _ in res.items("category")
                      for _, system, code, _ in _codings(res, path)
                      if system == v.CONDITION_CATEGORY)
        self.add("events", {"code": coded[1], "date": when[1], "is_problem": problem}, res,
                 {"code": coded[0], "date": when[0], "is_problem": "category"})

    def observation(self, res: _Res) -> None:
        if self.skipped(res, "Observation"):
            return
        self.check_subject(res)
        when = _first_date(res, ("effectiveDateTime", "effectivePeriod.start",
                                 "effectiveInstant", "issued"))
        if _any_code_in(res, "category", v.OBSERVATION_CATEGORY, (v.VITAL_SIGNS,)):
            self.vital_sign(res, when)
            return
        coded = self.snomed(res, "code")
        if coded is None:
            self.ignored["Observation with no SNOMED CT coding (ignored)"] += 1
            return
        if when is None:
            raise res.bad("effectiveDateTime", "no date: give effectiveDateTime, "
                          "effectivePeriod.start, effectiveInstant or issued")
        item: dict[str, JSON] = {"code": coded[1], "date": when[1]}
        paths = {"code": coded[0], "date": when[0]}
        quantity = res.get("valueQuantity", dict)
        if quantity is not None:
            item["value"] = res.get("valueQuantity.value", _NUMBER)
            item["unit"] = res.get("valueQuantity.unit", str) or res.get("valueQuantity.code",
                                                                          str)
            paths |= {"value": "valueQuantity.value", "unit": "valueQuantity.unit"}
        elif res.get("valueInteger", int) is not None:
            item["value"] = res.get("valueInteger", int)
            paths["value"] = "valueInteger"
        self.add("events", item, res, paths)

    def vital_sign(self, res: _Res, when: tuple[str, str] | None) -> None:
        if when is None:
            raise res.bad("effectiveDateTime", "no date: give effectiveDateTime, "
                          "effectivePeriod.start, effectiveInstant or issued")
        alert = _any_code_in(res, "interpretation", "*", v.ALERT_INTERPRETATIONS)
        item: dict[str, JSON] = {"date": when[1], "kind": "alert" if alert else "reading",
                                 "measure": _measure(res, "code")}
        paths = {"date": when[0], "kind": "interpretation", "measure": "code"}
        if res.get("valueQuantity", dict) is not None:
            item["value"] = res.get("valueQuantity.value", _NUMBER)
            paths["value"] = "valueQuantity.value"
        self.add("monitoring", item, res, paths)

    def flag(self, res: _Res) -> None:
        if self.skipped(res, "Flag"):
            return
        self.check_subject(res)
        when = _first_date(res, ("period.start",))
        if when is None:
            raise res.bad("period.start", "missing: an alert needs its date")
        self.add("monitoring", {"date": when[1], "kind": "alert",
                                "measure": _measure(res, "code")}, res,
                 {"date": when[0], "measure": "code"})

    def encounter(self, res: _Res) -> None:
        if self.skipped(res, "Encounter"):
            return
        self.check_subject(res)
        klass = res.get("class.code", str)
        if klass not in v.ADMITTED_CLASSES:
            self.ignored[f"Encounter of class {klass or '(none)'} (not an admission)"] += 1
            return
        admitted = res.get("period.start", str)
        if admitted is None:
            raise res.bad("period.start", "missing: an admission needs its date")
        methods: set[str] = set()
        for base in ("hospitalization", ""):
            ext_path = f"{base}.extension" if base else "extension"
            if base and res.get(base, dict) is None:
                continue
            for path, ext in res.items(ext_path):
                if ext.get("url") == v.ADMISSION_METHOD_EXTENSION:
                    methods |= {c for _, _, c, _ in _codings(res, f"{path}.valueCodeableConcept")
                                if c}
        emergency = klass == v.EMERGENCY_CLASS or bool(methods & v.EMERGENCY_ADMISSION_METHODS)
        self.add("admissions", {"admitted": _date_of(admitted),
                                "discharged": _date_of(res.get("period.end", str)),
                                "emergency": emergency}, res,
                 {"admitted": "period.start", "discharged": "period.end",
                  "emergency": "class"})

    def risk_assessment(self, res: _Res) -> None:
        if self.skipped(res, "RiskAssessment"):
            return
        self.check_subject(res)
        when = _first_date(res, ("occurrenceDateTime", "occurrencePeriod.start"))
        if when is None:
            raise res.bad("occurrenceDateTime", "missing: a risk score needs its date")
        source_path, source = _risk_source(res)
        scored = False
        for path, prediction in res.items("prediction"):
            value = prediction.get("probabilityDecimal")
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, _NUMBER):
                raise res.bad(f"{path}.probabilityDecimal",
                              f"expected a number, got {_json_kind(value)}")
            scored = True
            self.add("risk_scores", {"date": when[1], "value": value, "source": source}, res,
                     {"date": when[0], "value": f"{path}.probabilityDecimal",
                      "source": source_path})
        if not scored:
            raise res.bad("prediction", "no prediction with a probabilityDecimal")


def _measure(res: _Res, concept: str) -> str | None:
    text = res.get(f"{concept}.text", str)
    if text:
        return str(text)
    for _, _, code, display in _codings(res, concept):
        return display or code
    return None


def _risk_source(res: _Res) -> tuple[str, str | None]:
    text = res.get("method.text", str)
    if text:
        return "method.text", text
    for path, _, code, display in _codings(res, "method"):
        if display or code:
            return path, display or code
    performer = res.get("performer.display", str)
    return "performer.display", performer


def _ods_code(res: _Res, path: str) -> str | None:
    ident = res.get(f"{path}.identifier", dict)
    if ident is not None and ident.get("system") == v.ODS_ORGANISATION:
        return _str_at(res, ident, f"{path}.identifier", "value")
    return None


# -- the Bundle ------------------------------------------------------------------------------


def _resources(bundle: dict[str, JSON]) -> list[tuple[str, str | None, _Res]]:
    """(entry path, fullUrl, resource) for every entry, checked for shape."""
    top = _Res(bundle, "Bundle")
    out = []
    for path, entry in top.items("entry"):
        resource = entry.get("resource")
        if resource is None:
            request = entry.get("request")
            if isinstance(request, dict) and request.get("method") == "DELETE":
                continue
            raise top.bad(f"{path}.resource", "missing")
        if not isinstance(resource, dict):
            raise top.bad(f"{path}.resource", f"expected an object, got {_json_kind(resource)}")
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str) or not rtype:
            raise top.bad(f"{path}.resource.resourceType", "missing")
        rid = resource.get("id")
        if rid is not None and not isinstance(rid, str):
            raise top.bad(f"{path}.resource.id", f"expected a string, got {_json_kind(rid)}")
        label = f"{rtype}/{rid}" if rid else f"{rtype} ({path})"
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        out.append((path, full_url, _Res(resource, label)))
    return out


def _refs(rtype: str, rid: str | None, full_url: str | None) -> set[str]:
    refs = set()
    if rid:
        refs.add(f"{rtype}/{rid}")
    if full_url:
        refs.add(full_url)
    return refs


_HANDLERS = {
    "Condition": _Reader.condition,
    "Observation": _Reader.observation,
    "Flag": _Reader.flag,
    "Encounter": _Reader.encounter,
    "RiskAssessment": _Reader.risk_assessment,
}


def read_bundle(bundle: Mapping[str, JSON] | str | bytes, *, neighbourhood: str | None = None,
                gp_system: str | None = None) -> BundleRead:
    """Read one patient's FHIR R4 Bundle (UK Core shape) into a record.

    ``bundle`` is parsed JSON or JSON text. FHIR carries no INT neighbourhood or GP system, so
    give them here when known (the GP system matters: EMIS problems are treated specially).
    Raises :class:`~int_rules.errors.RecordError` naming the resource and element path.
    """
    data: JSON = bundle
    if isinstance(bundle, str | bytes):
        data = load_json_document(bundle)
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        got = data.get("resourceType") if isinstance(data, dict) else type(data).__name__
        raise RecordError(None, "resourceType", f"expected a FHIR Bundle, got {got!r}")
    try:
        return _read(data, neighbourhood, gp_system)
    except _Bad as bad:
        raise RecordError(_patient_id(data), bad.where, bad.message) from None


def _patient_id(bundle: dict[str, JSON]) -> str | None:
    for entry in bundle.get("entry") or []:
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            res = entry["resource"]
            if res.get("resourceType") == "Patient" and isinstance(res.get("id"), str):
                return str(res["id"])
    return None


def _read(bundle: dict[str, JSON], neighbourhood: str | None,
          gp_system: str | None) -> BundleRead:
    resources = _resources(bundle)
    patients = [(p, u, r) for p, u, r in resources if r.data["resourceType"] == "Patient"]
    if len(patients) != 1:
        found = ", ".join(r.label for _, _, r in patients) or "none"
        raise _Bad("Bundle: entry", f"expected exactly one Patient, found {len(patients)} "
                   f"({found})")
    _, p_url, patient = patients[0]
    pid = patient.get("id", str)
    if not pid:
        raise patient.bad("id", "missing: the Patient's id names the patient")
    organisations: dict[str, tuple[str, str | None]] = {}
    for _, url, res in resources:
        if res.data["resourceType"] == "Organization":
            ods = None
            for path, ident in res.items("identifier"):
                if ident.get("system") == v.ODS_ORGANISATION:
                    ods = _str_at(res, ident, path, "value")
            for ref in _refs("Organization", res.get("id", str), url):
                organisations[ref] = (res.label, ods)
    reader = _Reader(_refs("Patient", pid, p_url), organisations)
    # Resource types in name order, each as given: the order a Bulk export's files are read in
    # (which matters only where input order breaks a tie between items on one date).
    for _, _, res in sorted(resources, key=lambda r: str(r[2].data["resourceType"])):
        rtype = res.data["resourceType"]
        handler = _HANDLERS.get(rtype)
        if handler is not None:
            handler(reader, res)
        elif rtype not in ("Patient", "Organization"):
            reader.ignored[f"{rtype} (not read)"] += 1
    record_data, patient_paths = _patient_fields(patient, reader, neighbourhood, gp_system)
    record_data |= {"events": reader.events, "admissions": reader.admissions,
                    "risk_scores": reader.risk_scores, "monitoring": reader.monitoring}
    try:
        record = PatientRecord.from_dict(record_data)
    except RecordError as exc:
        raise _relabel(exc, patient.label, patient_paths, reader.origin) from None
    return BundleRead(record, dict(sorted(reader.ignored.items())))


def _patient_fields(patient: _Res, reader: _Reader, neighbourhood: str | None,
                    gp_system: str | None) -> tuple[dict[str, JSON], dict[str, str]]:
    data: dict[str, JSON] = {"patient_id": patient.get("id", str)}
    paths = {"patient_id": "id", "date_of_birth": "birthDate", "sex": "gender",
             "date_of_death": "deceasedDateTime", "practice": "generalPractitioner",
             "neighbourhood": "(argument neighbourhood)", "gp_system": "(argument gp_system)"}
    birth = patient.get("birthDate", str)
    if birth is None:
        raise patient.bad("birthDate", "missing: int_rules needs the date of birth")
    data["date_of_birth"] = birth
    gender = patient.get("gender", str)
    if gender is not None:
        data["sex"] = gender
    died = patient.get("deceasedDateTime", str)
    if died is not None:
        data["date_of_death"] = _date_of(died)
    elif patient.get("deceasedBoolean", bool):
        raise patient.bad("deceasedBoolean", "true without a date: give deceasedDateTime "
                          "(the rules need the date of death)")
    # The first generalPractitioner with an ODS identifier; else the first that references an
    # Organization (in the Bundle) with one. Practitioners are not practices.
    practices = patient.items("generalPractitioner")
    for path, _gp in practices:
        code = _ods_code(patient, path)
        if code:
            data["practice"], paths["practice"] = code, f"{path}.identifier.value"
            break
    else:
        for path, gp in practices:
            target = gp.get("reference")
            if isinstance(target, str) and reader.organisations.get(target, ("", None))[1]:
                data["practice"] = reader.organisations[target][1]
                paths["practice"] = f"{path}.reference"
                break
    if neighbourhood is not None:
        data["neighbourhood"] = neighbourhood
    if gp_system is not None:
        data["gp_system"] = gp_system
    return data, paths


_ITEM = re.compile(r"^(events|admissions|risk_scores|monitoring)\[(\d+)\](?:\.(\w+))?(.*)$")


def _relabel(exc: RecordError, patient_label: str, patient_paths: Mapping[str, str],
             origin: Mapping[tuple[str, int], tuple[str, dict[str, str]]]) -> RecordError:
    problems = exc.problems if isinstance(exc, RecordErrors) else [(exc.field, exc.message)]
    out = []
    for where, message in problems:
        m = _ITEM.match(where)
        if m:
            label, paths = origin[(m.group(1), int(m.group(2)))]
            element = paths.get(m.group(3) or "", m.group(3) or "(resource)")
            out.append((f"{label}: {element}", message))
        else:
            top = where.split(".")[0].split("[")[0]
            out.append((f"{patient_label}: {patient_paths.get(top, where)}", message))
    if len(out) == 1:
        return RecordError(exc.patient_id, *out[0])
    return RecordErrors(exc.patient_id, out)


def read_bundle_file(path: str | Path, **kwargs: str | None) -> BundleRead:
    """Read a Bundle from a JSON file (errors name the file too)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecordError(None, str(p), f"cannot read file: {exc.strerror}") from None
    try:
        return read_bundle(text, **kwargs)
    except RecordError as exc:
        exc.args = (f"{p}: {exc.args[0]}",)
        raise
