"""Synthetic populations written as a FHIR Bulk Data export (``synth --format fhir``).

The same people as the CSV and Parquet tables (the synth views), as UK Core shaped NDJSON, one
file per resource type, in DuckDB: problems as Conditions (category problem-list-item), other
coded events as Observations, admissions as Encounters (class IMP, UK Core admission method
21 emergency or 11 elective), risk scores as RiskAssessments (method.text the model),
monitoring as vital-sign Observations (alerts with interpretation AA), and ``practices.csv``
(each practice's neighbourhood and GP system, which FHIR does not carry). JSON objects are built
with ``json_merge_patch`` over ``json_object``, which drops absent (null) elements, as FHIR
requires.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from . import vocabulary as v

__all__ = ["FHIR_FILES", "write_bulk_export"]

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
ADMISSION_METHOD_ENGLAND = "https://fhir.hl7.org.uk/CodeSystem/UKCore-AdmissionMethodEngland"
SYNTH_EMERGENCY_METHOD = "21"  # Emergency: emergency care department or dental casualty
SYNTH_ELECTIVE_METHOD = "11"  # Elective: waiting list

#: The files written, each with its view.
FHIR_FILES = ("Patient.ndjson", "Condition.ndjson", "Observation.ndjson", "Encounter.ndjson",
              "RiskAssessment.ndjson", "practices.csv")


def _q(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _meta(rtype: str) -> str:
    return f"json_object('profile', [{_q(v.PROFILES[rtype])}])"


def _subject() -> str:
    return "json_object('reference', 'Patient/' || patient_id)"


def _coding(system: str, code: str) -> str:
    return f"json_object('coding', [json_object('system', {_q(system)}, 'code', {code})])"


def _resource(*pairs: str) -> str:
    return f"json_merge_patch('{{}}', json_object({', '.join(pairs)}))"


def _copy(con: duckdb.DuckDBPyConnection, select: str, path: Path) -> int:
    written = con.execute(f"COPY ({select}) TO {_q(str(path))} (FORMAT csv, HEADER false, "
                          "QUOTE '', ESCAPE '', DELIMITER '\t')").fetchall()
    return int(written[0][0])  # COPY returns the number of rows it wrote


def write_bulk_export(con: duckdb.DuckDBPyConnection, out: Path) -> dict[str, int]:
    """Write the synth views (``s_patients``, ``s_events``, ...) as NDJSON into ``out``.

    Returns the number of resources (lines) per file.
    """
    rows: dict[str, int] = {}
    gp = (f"CASE WHEN practice IS NOT NULL THEN [json_object('identifier', json_object("
          f"'system', {_q(v.ODS_ORGANISATION)}, 'value', practice))] END")
    patient = _resource("'resourceType', 'Patient'", "'id', patient_id",
                        f"'meta', {_meta('Patient')}", "'gender', sex",
                        "'birthDate', date_of_birth",
                        "'deceasedDateTime', CAST(date_of_death AS VARCHAR)",
                        f"'generalPractitioner', {gp}")
    patients = f"SELECT {patient} FROM s_patients"
    rows["Patient.ndjson"] = _copy(con, patients, out / "Patient.ndjson")
    con.execute("CREATE OR REPLACE TEMP TABLE __fe AS SELECT row_number() OVER () AS n, * "
                "FROM s_events")
    condition = _resource(
        "'resourceType', 'Condition'", "'id', 'c' || n", f"'meta', {_meta('Condition')}",
        f"'clinicalStatus', {_coding(CONDITION_CLINICAL, _q('active'))}",
        f"'category', [{_coding(v.CONDITION_CATEGORY, _q(v.PROBLEM_LIST_ITEM))}]",
        f"'code', {_coding(v.SNOMED, 'snomedct_code')}", f"'subject', {_subject()}",
        "'onsetDateTime', CAST(date AS VARCHAR)")
    conditions = f"SELECT {condition} FROM __fe WHERE is_problem"
    rows["Condition.ndjson"] = _copy(con, conditions, out / "Condition.ndjson")
    vital = _coding(v.OBSERVATION_CATEGORY, _q(v.VITAL_SIGNS))
    value = ("CASE WHEN numeric_value IS NOT NULL THEN json_object('value', numeric_value, "
             "'unit', unit) END")
    observation = _resource(
        "'resourceType', 'Observation'", "'id', 'o' || n", f"'meta', {_meta('Observation')}",
        "'status', 'final'", f"'code', {_coding(v.SNOMED, 'snomedct_code')}",
        f"'subject', {_subject()}", "'effectiveDateTime', CAST(date AS VARCHAR)",
        f"'valueQuantity', {value}")
    alert = f"CASE WHEN kind = 'alert' THEN [{_coding(INTERPRETATION, _q('AA'))}] END"
    reading = _resource(
        "'resourceType', 'Observation'", "'id', 'm' || row_number() OVER ()",
        f"'meta', {_meta('Observation')}", "'status', 'final'", f"'category', [{vital}]",
        "'code', json_object('text', measure)", f"'subject', {_subject()}",
        "'effectiveDateTime', CAST(date AS VARCHAR)",
        "'valueQuantity', CASE WHEN value IS NOT NULL THEN json_object('value', value) END",
        f"'interpretation', {alert}")
    observations = (f"SELECT {observation} FROM __fe WHERE NOT coalesce(is_problem, FALSE) "
                    f"UNION ALL SELECT {reading} FROM s_monitoring")
    rows["Observation.ndjson"] = _copy(con, observations, out / "Observation.ndjson")
    con.execute("DROP TABLE __fe")
    method_code = (f"CASE WHEN emergency THEN {_q(SYNTH_EMERGENCY_METHOD)} "
                   f"ELSE {_q(SYNTH_ELECTIVE_METHOD)} END")
    method = (f"[json_object('url', {_q(v.ADMISSION_METHOD_EXTENSION)}, 'valueCodeableConcept', "
              f"{_coding(ADMISSION_METHOD_ENGLAND, method_code)})]")
    period = ("json_object('start', CAST(admission_date AS VARCHAR), "
              "'end', CAST(discharge_date AS VARCHAR))")
    encounter = _resource(
        "'resourceType', 'Encounter'", "'id', 'a' || row_number() OVER ()",
        f"'meta', {_meta('Encounter')}",
        "'status', CASE WHEN discharge_date IS NULL THEN 'in-progress' ELSE 'finished' END",
        f"'class', json_object('system', {_q(ACT_CODE)}, 'code', 'IMP')",
        f"'subject', {_subject()}", f"'period', {period}",
        f"'hospitalization', json_object('extension', {method})")
    encounters = f"SELECT {encounter} FROM s_admissions"
    rows["Encounter.ndjson"] = _copy(con, encounters, out / "Encounter.ndjson")
    risk = _resource(
        "'resourceType', 'RiskAssessment'", "'id', 'r' || row_number() OVER ()",
        "'status', 'final'", f"'subject', {_subject()}",
        "'occurrenceDateTime', CAST(date AS VARCHAR)", "'method', json_object('text', source)",
        "'prediction', [json_object('probabilityDecimal', score)]")
    risks = f"SELECT {risk} FROM s_risk_scores"
    rows["RiskAssessment.ndjson"] = _copy(con, risks, out / "RiskAssessment.ndjson")
    practices = ("SELECT DISTINCT practice, neighbourhood, gp_system FROM s_patients "
                 "WHERE practice IS NOT NULL ORDER BY practice")
    con.execute(f"COPY ({practices}) TO {_q(str(out / 'practices.csv'))} "
                "(FORMAT csv, HEADER true)")
    rows["practices.csv"] = int(con.execute(f"SELECT count(*) FROM ({practices})"
                                            ).fetchall()[0][0])
    return rows
