"""The documented format of :meth:`Assessment.to_dict() <int_rules.Assessment.to_dict>`.

The typed dicts below are the one definition of that JSON: ``to_dict()`` is annotated with them
(so mypy holds the code to the format) and ``docs/schema/assessment.schema.json`` is generated
from them (``python -m int_rules.language.jsonschema``; CI checks it is current, and a test
validates every bundled scenario's output against it).

The format does not depend on the rulebook: ruleset ids, output names and fact names are keys
of open objects; every object int_rules itself defines is closed (no other keys).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, TypeAdapter, WithJsonSchema, with_config
from typing_extensions import TypedDict

__all__ = [
    "AdmissionEvidenceDict",
    "AssessmentDict",
    "CitationDict",
    "EventEvidenceDict",
    "EvidenceDict",
    "FactDict",
    "FactScalar",
    "MonitoringEvidenceDict",
    "OutcomeDict",
    "OutputValue",
    "ParameterValue",
    "PathwayDict",
    "PathwayFindingDict",
    "PathwayStepDict",
    "ProvenanceDict",
    "ResultValue",
    "RiskScoreEvidenceDict",
    "VersionDict",
    "assessment_json_schema",
]

_CLOSED = ConfigDict(extra="forbid")

#: A calendar date, ISO 8601 (``2026-11-23``).
IsoDate = Annotated[str, WithJsonSchema({"type": "string", "format": "date"})]
#: A SNOMED CT concept id (digits; the check digit is verified when records are read).
SnomedCode = Annotated[str, WithJsonSchema({"type": "string", "pattern": "^[0-9]{6,18}$"})]
#: A SHA-256 digest in hex.
Sha256 = Annotated[str, WithJsonSchema({"type": "string", "pattern": "^[0-9a-f]{64}$"})]

#: A fact's value as JSON: dates as ISO strings, ``None`` when the record holds nothing for it.
FactScalar = bool | int | float | str | None
#: A value a rule sets in its ``then`` (declared as an output of its ruleset).
OutputValue = bool | int | float | str
#: One ruleset output in :meth:`~int_rules.Assessment.results`: a list under ``collect``, else
#: the single value (``None`` when no rule set it).
ResultValue = OutputValue | list[OutputValue] | None
#: A parameter's value (as overridden by an INT): a scalar or a list of scalars.
ParameterValue = OutputValue | list[OutputValue]


@with_config(_CLOSED)
class VersionDict(TypedDict):
    """A ruleset's (or the pathway's) id, version and status (draft, approved, retired)."""

    id: str
    version: str
    status: str


@with_config(_CLOSED)
class ProvenanceDict(TypedDict):
    """Which rulebook produced the result, to the byte (``sha256``), and its overrides."""

    rulebook: str
    version: str
    sha256: Sha256
    rulesets: list[VersionDict]
    pathway: VersionDict
    overrides: dict[str, ParameterValue]


@with_config(_CLOSED)
class EventEvidenceDict(TypedDict):
    """A coded event behind a fact, with its term from the codelists (None if unknown)."""

    type: Literal["event"]
    date: IsoDate
    code: SnomedCode
    term: str | None
    value: NotRequired[float]
    unit: NotRequired[str]
    is_problem: NotRequired[bool]


@with_config(_CLOSED)
class AdmissionEvidenceDict(TypedDict):
    """A hospital admission behind a fact (``date`` is the admission date)."""

    type: Literal["admission"]
    date: IsoDate
    discharged: IsoDate | None
    emergency: bool


@with_config(_CLOSED)
class RiskScoreEvidenceDict(TypedDict):
    """An externally computed risk score behind a fact."""

    type: Literal["risk_score"]
    date: IsoDate
    value: float
    source: str


@with_config(_CLOSED)
class MonitoringEvidenceDict(TypedDict):
    """A remote-monitoring reading or alert behind a fact."""

    type: Literal["monitoring"]
    date: IsoDate
    kind: Literal["reading", "alert"]
    measure: str | None
    value: float | None


#: One record item behind a fact, told apart by ``type``.
EvidenceDict = (EventEvidenceDict | AdmissionEvidenceDict | RiskScoreEvidenceDict
                | MonitoringEvidenceDict)


@with_config(_CLOSED)
class FactDict(TypedDict):
    """A fact's value, and the record items behind it when there are any."""

    value: FactScalar
    evidence: NotRequired[list[EvidenceDict]]


@with_config(_CLOSED)
class CitationDict(TypedDict):
    """The guidance passage a rule encodes: file, heading, short verbatim quote."""

    source: str
    section: str
    quote: str


@with_config(_CLOSED)
class OutcomeDict(TypedDict):
    """One rule that fired: what it sets, its provenance and citation, the facts it read."""

    ruleset: str
    rule: str
    title: str
    outputs: dict[str, OutputValue]
    provenance: Literal["guidance", "local-policy", "assumption"]
    cite: CitationDict
    hazards: list[str]
    facts: dict[str, FactScalar]


#: A pathway step's code: a SNOMED CT concept id, or ``""`` for death (from the date of death).
StepCode = Annotated[str, WithJsonSchema({"type": "string", "pattern": "^([0-9]{6,18})?$"})]

# ``from`` is a Python keyword, hence the functional form (and the config set by hand).
PathwayStepDict = TypedDict("PathwayStepDict", {
    "date": IsoDate, "code": StepCode, "step": str, "from": str, "to": str})
PathwayStepDict.__doc__ = ("One change of state: the step, from state to state (``code`` is "
                           '``""`` for death, which comes from the date of death).')
PathwayStepDict.__pydantic_config__ = _CLOSED  # type: ignore[attr-defined]


@with_config(_CLOSED)
class PathwayFindingDict(TypedDict):
    """A pathway step that does not fit (``code`` is None for a finding about death)."""

    id: str
    severity: Literal["error", "warning"]
    date: IsoDate
    code: SnomedCode | None
    state_before: str
    message: str


@with_config(_CLOSED)
class PathwayDict(TypedDict):
    """The caseload pathway replayed to ``as_of``: state, when entered, history, findings."""

    state: str
    entered: IsoDate | None
    history: list[PathwayStepDict]
    findings: list[PathwayFindingDict]


@with_config(_CLOSED)
class AssessmentDict(TypedDict):
    """:meth:`Assessment.to_dict() <int_rules.Assessment.to_dict>`: one record as of one date.

    ``results`` maps ruleset id -> output name -> value; ``facts`` maps fact name -> value and
    evidence, in the rulebook's fact order.
    """

    patient_id: str
    as_of: IsoDate
    engine: str
    provenance: ProvenanceDict
    results: dict[str, dict[str, ResultValue]]
    pathway: PathwayDict
    outcomes: list[OutcomeDict]
    facts: dict[str, FactDict]


def assessment_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of :class:`AssessmentDict`."""
    schema = TypeAdapter(AssessmentDict).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "int_rules assessment"
    return schema
