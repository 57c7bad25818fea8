"""FHIR structure the mapping reads: code system URIs, profile and extension URLs, status codes.

These are FHIR R4 and UK Core *structure* (which element says what), not clinical logic: which
SNOMED CT concepts matter, and what follows from them, is the rulebook's business (``rulesets/``,
``codelists/``). Both readers (:mod:`.bundle` for one patient, :mod:`.bulk` for populations) take
their constants from here, so they read FHIR the same way. docs/fhir.md tabulates the mapping.
"""

from __future__ import annotations

__all__ = [
    "ADMISSION_METHOD_EXTENSION",
    "ADMITTED_CLASSES",
    "ALERT_INTERPRETATIONS",
    "CONDITION_CATEGORY",
    "EMERGENCY_ADMISSION_METHODS",
    "EMERGENCY_CLASS",
    "OBSERVATION_CATEGORY",
    "ODS_ORGANISATION",
    "PROBLEM_LIST_ITEM",
    "PROFILES",
    "SKIPPED_STATUSES",
    "SKIPPED_VERIFICATION",
    "SNOMED",
    "VITAL_SIGNS",
]

#: SNOMED CT's code system URI (FHIR "Using SNOMED CT with FHIR").
SNOMED = "http://snomed.info/sct"

#: The ODS organisation code identifier system (a GP practice's code, e.g. E82001).
ODS_ORGANISATION = "https://fhir.nhs.uk/Id/ods-organization-code"

#: Condition.category: ``problem-list-item`` marks a problem (HL7 condition-category).
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
PROBLEM_LIST_ITEM = "problem-list-item"

#: Observation.category: ``vital-signs`` marks a reading (HL7 observation-category).
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
VITAL_SIGNS = "vital-signs"

#: Observation.interpretation codes (HL7 v3 ObservationInterpretation) that make a vital-sign
#: reading an alert: the sending system's own "critical" flags (AA critical abnormal, HH
#: critical high, LL critical low). int_rules sets no threshold of its own.
ALERT_INTERPRETATIONS = frozenset({"AA", "HH", "LL"})

#: Encounter.class codes (HL7 v3 ActCode) of a stay in hospital: inpatient, inpatient acute,
#: inpatient non-acute, emergency. Other classes (ambulatory, home health, virtual, ...) are
#: not admissions and are ignored (and counted).
EMERGENCY_CLASS = "EMER"
ADMITTED_CLASSES = frozenset({"IMP", "ACUTE", "NONAC", EMERGENCY_CLASS})

#: UK Core's admission method extension (on Encounter.hospitalization; also read on Encounter).
ADMISSION_METHOD_EXTENSION = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AdmissionMethod"
)

#: NHS Data Model and Dictionary, ADMISSION METHOD: the emergency admission codes (21-25,
#: 2A-2D, and 28 "other means"); 11-13 are elective, 31-32 maternity, 81-83 other.
EMERGENCY_ADMISSION_METHODS = frozenset(
    {"21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28"}
)

#: Statuses whose resource did not happen or was recorded in error: the resource is skipped
#: (and counted). Condition uses verificationStatus instead (below).
SKIPPED_STATUSES: dict[str, frozenset[str]] = {
    "Observation": frozenset({"entered-in-error", "cancelled"}),
    "Encounter": frozenset({"entered-in-error", "cancelled", "planned"}),
    "RiskAssessment": frozenset({"entered-in-error", "cancelled"}),
    "Flag": frozenset({"entered-in-error"}),
}

#: Condition.verificationStatus codes whose Condition is skipped: recorded in error, or ruled
#: out (a refuted condition must not count as present).
SKIPPED_VERIFICATION = frozenset({"entered-in-error", "refuted"})

#: The UK Core profiles (and the base resources without one) each resource type is read as.
PROFILES: dict[str, str] = {
    "Patient": "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient",
    "Condition": "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Condition",
    "Observation": "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation",
    "Encounter": "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Encounter",
    "Flag": "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Flag",
    "Organization": "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Organization",
    "RiskAssessment": "http://hl7.org/fhir/StructureDefinition/RiskAssessment",
}
