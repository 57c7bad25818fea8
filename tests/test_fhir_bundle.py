"""One patient's FHIR Bundle (UK Core) to a record: the mapping, its errors, the CLI."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

import int_rules
from int_rules.cli import main
from int_rules.errors import RecordError
from int_rules.fhir import read_bundle

from .strategies import patient_records

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples" / "fhir").glob("*.bundle.json"))
SCT = "http://snomed.info/sct"
AS_OF = dt.date(2026, 11, 23)


def bundle(*resources: dict[str, Any], patient: dict[str, Any] | None = None) -> dict[str, Any]:
    pat = {"resourceType": "Patient", "id": "p1", "birthDate": "1940-05-01", "gender": "female",
           **(patient or {})}
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in (pat, *resources)]}


def obs(rid: str = "o1", sct: str = "925861000000102", **kw: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": rid, "status": "final",
            "code": {"coding": [{"system": SCT, "code": sct}]},
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2025-09-10", **kw}


def cond(rid: str = "c1", sct: str = "936221000000104", **kw: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": rid,
            "code": {"coding": [{"system": SCT, "code": sct}]},
            "subject": {"reference": "Patient/p1"}, **kw}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_bundles_read_as_their_json_twins(path: Path) -> None:
    twin = int_rules.PatientRecord.from_json_file(
        REPO / "examples" / "records" / path.name.replace(".bundle.json", ".json"))
    record = int_rules.PatientRecord.from_fhir(json.loads(path.read_text()),
                                               neighbourhood=twin.neighbourhood,
                                               gp_system=twin.gp_system)
    assert record == twin


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_bundles_assess_from_the_cli(path: Path, capsys: pytest.CaptureFixture[str]
                                             ) -> None:
    assert main(["assess", str(path), "--as-of", AS_OF.isoformat()]) == 0
    assert "Caseload pathway:" in capsys.readouterr().out


def test_the_rich_example_counts_what_it_left_out() -> None:
    read = read_bundle((REPO / "examples/fhir/frail_on_caseload.bundle.json").read_text())
    assert read.ignored == {
        "Condition with verificationStatus entered-in-error (skipped)": 1,
        "Encounter of class AMB (not an admission)": 1,
        "Observation.code coding in another code system (http://read.info/ctv3)": 1,
    }
    assert read.record.practice == "E82001"  # through the referenced Organization


def every_kind_bundle() -> dict[str, Any]:
    """One resource of each kind and variant the mapping reads (also read as Bulk NDJSON)."""
    return bundle(
        cond("c1", category=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                          "condition-category", "code": "problem-list-item"}]}],
             onsetDateTime="2025-01-02T09:00:00+01:00", recordedDate="2025-03-04"),
        cond("c2", sct="925861000000102", recordedDate="2025-03-04"),
        obs("o1", sct="763264000", valueQuantity={"value": 6, "unit": "score"}),
        obs("o2", sct="763264000", status="entered-in-error"),
        obs("v1", category=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                         "observation-category", "code": "vital-signs"}]}],
            code={"text": "spo2"}, valueQuantity={"value": 91}),
        obs("v2", category=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                         "observation-category", "code": "vital-signs"}]}],
            code={"coding": [{"system": "http://loinc.org", "code": "59408-5",
                              "display": "Oxygen saturation"}]}, valueQuantity={"value": 85},
            interpretation=[{"coding": [{"code": "LL"}]}]),
        {"resourceType": "Flag", "id": "f1", "status": "active", "code": {"text": "telehealth"},
         "subject": {"reference": "Patient/p1"}, "period": {"start": "2026-01-05"}},
        {"resourceType": "Encounter", "id": "e1", "status": "finished", "class": {"code": "EMER"},
         "subject": {"reference": "Patient/p1"}, "period": {"start": "2026-02-01"}},
        {"resourceType": "Encounter", "id": "e2", "status": "finished", "class": {"code": "IMP"},
         "subject": {"reference": "Patient/p1"},
         "period": {"start": "2026-03-01", "end": "2026-03-05"},
         "hospitalization": {"extension": [{
             "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AdmissionMethod",
             "valueCodeableConcept": {"coding": [{"code": "2A"}]}}]}},
        {"resourceType": "Encounter", "id": "e3", "status": "finished", "class": {"code": "IMP"},
         "subject": {"reference": "Patient/p1"}, "period": {"start": "2026-04-01"}},
        {"resourceType": "RiskAssessment", "id": "r1", "status": "final",
         "subject": {"reference": "Patient/p1"}, "occurrenceDateTime": "2026-01-10",
         "method": {"coding": [{"code": "x", "display": "DELPPHI"}]},
         "prediction": [{"probabilityDecimal": 0.31}]},
        {"resourceType": "MedicationStatement", "id": "m1"},
        patient={"deceasedDateTime": "2026-10-01T12:00:00Z",
                 "generalPractitioner": [{"reference": "Practitioner/x"}, {"identifier": {
                     "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                     "value": "E82001"}}]},
    )


def test_mapping_of_each_resource_type() -> None:
    b = every_kind_bundle()
    read = read_bundle(b, gp_system="EMIS")
    r = read.record
    assert (r.patient_id, r.sex, r.practice, r.gp_system) == ("p1", "female", "E82001", "EMIS")
    assert r.date_of_death == dt.date(2026, 10, 1)
    assert [(e.code, e.date.isoformat(), e.is_problem, e.value, e.unit) for e in r.events] == [
        ("936221000000104", "2025-01-02", True, None, None),  # onset before recorded
        ("925861000000102", "2025-03-04", False, None, None),  # recorded when no onset
        ("763264000", "2025-09-10", False, 6.0, "score"),
    ]
    assert [(m.kind, m.measure, m.value) for m in r.monitoring] == [  # Flag before Observation
        ("alert", "telehealth", None), ("reading", "spo2", 91.0),
        ("alert", "Oxygen saturation", 85.0)]
    assert [(a.admitted.isoformat(), a.emergency) for a in r.admissions] == [
        ("2026-02-01", True), ("2026-03-01", True), ("2026-04-01", False)]
    assert [(s.value, s.source) for s in r.risk_scores] == [(0.31, "DELPPHI")]
    assert read.ignored == {
        "MedicationStatement (not read)": 1,
        "Observation with status entered-in-error (skipped)": 1,
    }


def test_a_concept_with_several_codings_uses_the_snomed_one() -> None:
    o = obs()
    o["code"]["coding"].insert(0, {"system": "http://read.info/readv2", "code": "XaX6n"})
    read = read_bundle(bundle(o))
    assert read.record.events[0].code == "925861000000102"
    assert read.ignored == {"Observation.code coding in another code system "
                            "(http://read.info/readv2)": 1}


def test_no_snomed_coding_is_ignored_and_counted() -> None:
    o = obs()
    o["code"]["coding"] = [{"system": "http://loinc.org", "code": "1234-5"}]
    read = read_bundle(bundle(o))
    assert read.record.events == ()
    assert read.ignored["Observation with no SNOMED CT coding (ignored)"] == 1


def _error(b: dict[str, Any]) -> str:
    with pytest.raises(RecordError) as info:
        read_bundle(b)
    return str(info.value)


def test_errors_name_the_resource_and_element_path() -> None:
    assert _error(bundle(cond("abc", sct="12345", onsetDateTime="2025-01-01"))) == (
        "patient 'p1': Condition/abc: code.coding[0].code: '12345' is not a valid SNOMED CT "
        "concept id: it must be 6 to 18 digits long (this one has 5)")
    o = obs("o9")
    o["code"]["coding"].append({"system": SCT, "code": "763264000"})
    assert "Observation/o9: code.coding: several SNOMED CT codes (763264000, 925861000000102)" \
        in _error(bundle(o))
    assert "Observation/o1: effectiveDateTime: '2025-13-01' is not a valid date" in _error(
        bundle(obs(effectiveDateTime="2025-13-01")))
    assert "Condition/c1: onsetDateTime: no date" in _error(bundle(cond()))
    assert "Observation/o1: subject.reference: 'Patient/other' is not this Bundle's Patient" \
        in _error(bundle(obs(subject={"reference": "Patient/other"})))
    assert "Observation/o1: valueQuantity.value: expected a number, got the string 'six'" in \
        _error(bundle(obs(valueQuantity={"value": "six"})))
    assert "Patient/p1: deceasedBoolean: true without a date" in _error(
        bundle(patient={"deceasedBoolean": True}))
    assert "Patient/p1: gender: 'f' is not a sex: one of female, male, other, unknown" in _error(bundle(patient={"gender": "f"}))
    assert "Patient/p1: birthDate: missing" in _error(bundle(patient={"birthDate": None}))
    two = bundle()
    two["entry"].append(copy.deepcopy(two["entry"][0]))
    assert "Bundle: entry: expected exactly one Patient, found 2" in _error(two)
    assert "resourceType: expected a FHIR Bundle, got 'Patient'" in _error(
        {"resourceType": "Patient"})


def test_cli_exits_2_with_the_resource_path(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bundle(cond("abc", sct="12345", onsetDateTime="2025-01-01"))))
    assert main(["assess", str(f), "--as-of", "2026-01-01"]) == 2
    err = capsys.readouterr().err
    assert "Condition/abc: code.coding[0].code: '12345' is not a valid SNOMED CT" in err
    assert "Traceback" not in err


def test_docs_fhir_examples_run(capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    import doctest
    import re

    page = REPO / "docs" / "fhir.md"
    monkeypatch.chdir(REPO)
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    plain = [b for b in blocks if not b.lstrip().startswith(">>>")]
    assert plain
    for block in plain:
        exec(compile(block, str(page), "exec"), {})
    assert capsys.readouterr().out.startswith("EX-001 E82001 13 ")
    result = doctest.testfile(str(page), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def record_to_bundle(r: int_rules.PatientRecord) -> dict[str, Any]:
    """A record as the UK Core Bundle a GP system would send (the test's own writer)."""
    subject = {"reference": f"Patient/{r.patient_id}"}
    patient: dict[str, Any] = {"resourceType": "Patient", "id": r.patient_id, "gender": r.sex,
                               "birthDate": (r.date_of_birth.isoformat()[:7]
                                             if r.birth_precision == "month"
                                             else r.date_of_birth.isoformat())}
    if r.date_of_death:
        patient["deceasedDateTime"] = f"{r.date_of_death.isoformat()}T08:00:00+00:00"
    if r.practice:
        patient["generalPractitioner"] = [{"identifier": {
            "system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": r.practice}}]
    out: list[dict[str, Any]] = [patient]
    for i, e in enumerate(r.events):
        code = {"coding": [{"system": "http://loinc.org", "code": "x"},
                           {"system": SCT, "code": e.code}]}
        if e.is_problem:
            out.append(cond(f"c{i}", e.code, code=code, onsetDateTime=e.date.isoformat(),
                            subject=subject, category=[{"coding": [{
                                "system": "http://terminology.hl7.org/CodeSystem/"
                                          "condition-category", "code": "problem-list-item"}]}]))
        else:
            extra = {"valueQuantity": {"value": e.value}} if e.value is not None else {}
            out.append(obs(f"o{i}", e.code, code=code, subject=subject,
                           effectiveDateTime=e.date.isoformat(), **extra))
    for i, a in enumerate(r.admissions):
        period = {"start": a.admitted.isoformat()}
        if a.discharged:
            period["end"] = a.discharged.isoformat()
        out.append({"resourceType": "Encounter", "id": f"a{i}", "status": "finished",
                    "class": {"code": "EMER" if a.emergency else "IMP"}, "subject": subject,
                    "period": period})
    for i, s in enumerate(r.risk_scores):
        out.append({"resourceType": "RiskAssessment", "id": f"r{i}", "status": "final",
                    "subject": subject, "occurrenceDateTime": s.date.isoformat(),
                    "method": {"text": s.source}, "prediction": [{"probabilityDecimal": s.value}]})
    for i, m in enumerate(r.monitoring):
        o: dict[str, Any] = {
            "resourceType": "Observation", "id": f"m{i}", "status": "final", "subject": subject,
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                      "observation-category", "code": "vital-signs"}]}],
            "code": {"text": m.measure} if m.measure else {}, "effectiveDateTime":
                m.date.isoformat()}
        if m.value is not None:
            o["valueQuantity"] = {"value": m.value}
        if m.kind == "alert":
            o["interpretation"] = [{"coding": [{"code": "AA"}]}]
        out.append(o)
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": res} for res in out]}


@given(patient_records())
def test_any_record_survives_a_bundle(record: int_rules.PatientRecord) -> None:
    """Property: a record written as a Bundle reads back as itself (problems first: resource
    types are read in name order; a problem's value has no place on a Condition; an empty
    practice is no practice in FHIR)."""
    events = sorted(record.events, key=lambda e: not e.is_problem)
    expected = record.model_copy(update={"practice": record.practice or None, "events": tuple(
        dataclasses.replace(e, value=None) if e.is_problem else e for e in events)})
    got = read_bundle(record_to_bundle(record), neighbourhood=record.neighbourhood,
                      gp_system=record.gp_system)
    assert got.record == expected
    assert got.ignored == ({"Observation.code coding in another code system (http://loinc.org)":
                            sum(not e.is_problem for e in record.events)} if any(
        not e.is_problem for e in record.events) else {}) | (
        {"Condition.code coding in another code system (http://loinc.org)":
         sum(e.is_problem for e in record.events)} if any(e.is_problem for e in record.events)
        else {})
