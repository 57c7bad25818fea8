"""An :class:`~int_rules.assessment.Assessment` as a CDS Hooks 2.0 response (cards, no server).

CDS Hooks 2.0, "CDS Service Response" (https://cds-hooks.hl7.org/2.0/#cds-service-response):
a response is ``{"cards": [...]}``; each card has a ``summary`` (fewer than 140 characters),
an ``indicator`` (info, warning, critical), a ``source`` (``label``, optional ``url``,
``topic``), and optionally ``detail`` (markdown), ``suggestions`` (each with a ``label`` and
``actions`` of type create/update/delete) and ``selectionBehavior`` (required with suggestions).
The shape is checked in the tests against ``docs/schema/cds-hooks-response.schema.json``,
written from that section.

The cards, in this order:

* one per rule that fired, in rulebook order: summary the rule's title; detail what it set,
  the facts it read with their values and the coded events behind them, and the guidance
  quote; source the guidance passage (the guide's name, e.g. "Version 2 (December 2025)", and
  section; the file is in the detail) with the rule id as its topic. A rule
  that sets an output of type ``code`` (a pathway code to record once the step is done, e.g.
  AMD-011's 836131000000104) carries a suggestion to record that SNOMED CT code, as a FHIR
  Observation to create, **only when** ``book.may_record`` allows the code as of the
  assessment's date; when it does not, the card says why instead.
* one per pathway finding (a recorded pathway code that does not fit the pathway).

The indicator is ``info``, except ``warning`` for a rule setting an output named in
``indicators`` (by default the data-quality ``error`` output) and for pathway findings of
severity ``error``. ``critical`` is never used: nothing here is time-critical.

Card and suggestion ``uuid`` values are derived from the rulebook hash, the patient, the date
and the rule (UUID 5), so the same inputs give the same bytes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from ..guidance_names import guidance_name
from . import vocabulary as v

if TYPE_CHECKING:
    from ..assessment import Assessment

__all__ = ["DEFAULT_INDICATORS", "RULE_TOPIC_SYSTEM", "SUMMARY_MAX", "CdsAction", "CdsCard",
           "CdsCoding", "CdsHooksResponse", "CdsSource", "CdsSuggestion", "cds_hooks_response"]

Indicator = Literal["info", "warning", "critical"]


class CdsCoding(TypedDict):
    """CDS Hooks 2.0 Coding (a card source's ``topic``)."""

    code: str
    system: NotRequired[str]
    display: NotRequired[str]


class CdsSource(TypedDict):
    """CDS Hooks 2.0 card ``source``: here the guidance passage, with the rule as topic."""

    label: str
    topic: NotRequired[CdsCoding]


class CdsAction(TypedDict):
    """CDS Hooks 2.0 Action: here always ``create`` of a FHIR Observation (``resource``)."""

    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, object]


class CdsSuggestion(TypedDict):
    """CDS Hooks 2.0 Suggestion: record a SNOMED CT code."""

    label: str
    uuid: str
    isRecommended: bool
    actions: list[CdsAction]


class CdsCard(TypedDict):
    """CDS Hooks 2.0 Card."""

    uuid: str
    summary: str
    indicator: Indicator
    detail: str
    source: CdsSource
    suggestions: NotRequired[list[CdsSuggestion]]
    selectionBehavior: NotRequired[Literal["at-most-one", "any"]]


class CdsHooksResponse(TypedDict):
    """CDS Hooks 2.0 CDS Service response (cards only: no system actions here)."""

    cards: list[CdsCard]


#: CDS Hooks 2.0: the summary "SHALL be less than 140 characters".
SUMMARY_MAX = 139

#: Output names whose rules get a ``warning`` card (others ``info``).
DEFAULT_INDICATORS: Mapping[str, Indicator] = {"error": "warning"}

#: The ``system`` of each card's ``source.topic`` (the code is the rule or finding id).
RULE_TOPIC_SYSTEM = "https://int-rules.invalid/rule"

_NAMESPACE = uuid.UUID("5f0b1f39-8d53-4a8e-9a0e-6a8f2f3c9e10")


def _short(text: str, limit: int = SUMMARY_MAX) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _uuid(a: Assessment, *parts: str) -> str:
    key = "|".join((a.book.sha256, a.patient_id, a.as_of.isoformat(), *parts))
    return str(uuid.uuid5(_NAMESPACE, key))


def _value(value: Any) -> str:
    from ..language.plain import format_value

    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(format_value(value))


def _rule_card(a: Assessment, rule: Any, indicators: Mapping[str, Indicator]) -> CdsCard:
    d = rule.definition
    rs = a.book.ruleset(rule.ruleset)
    outputs = ", ".join(f"{k} = {_value(val)}" for k, val in d.then.items())
    detail = [f"**{d.id}** ({rule.ruleset} {rs.definition.version}, {rs.definition.status}, "
              f"{d.provenance}): {outputs}.", ""]
    for fact in rule.condition.facts:
        evidence = "; ".join(a.evidence_lines(fact))
        detail.append(f"- {fact} = {_value(a.values[fact])}"
                      + (f" ({evidence})" if evidence else ""))
    c = d.cite
    guide = guidance_name(a.book.manifest.guidance_names, c.source)
    where = f"{guide} ({c.source})" if guide != c.source else c.source
    detail += ["", f"> {c.quote}", "", f"Guidance: {where}, \"{c.section}\"."]
    card: CdsCard = {
        "uuid": _uuid(a, d.id),
        "summary": _short(d.title),
        "indicator": next((indicators[k] for k in d.then if k in indicators), "info"),
        "detail": "",
        "source": {"label": _short(f"HWE proactive care guide, {guide}: {c.section}", 200),
                   "topic": {"system": RULE_TOPIC_SYSTEM, "code": d.id,
                             "display": _short(d.title, 200)}},
    }
    suggestions: list[CdsSuggestion] = []
    for key, code in d.then.items():
        if rs.definition.outputs[key].type != "code":
            continue
        decision = a.book.may_record(a.record, str(code), a.as_of)
        term = a.book.codelists.term(str(code)) or ""
        if not decision.allowed:
            detail += ["", f"Not suggested: {code} {term} may not be recorded now. "
                       f"{decision.reason}"]
            continue
        suggestions.append(_record_suggestion(a, d.id, str(code), term))
    card["detail"] = "\n".join(detail)
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "at-most-one"
    return card


def _record_suggestion(a: Assessment, rule_id: str, code: str, term: str) -> CdsSuggestion:
    coding: dict[str, str] = {"system": v.SNOMED, "code": code}
    if term:
        coding["display"] = term
    return {
        "label": _short(f"Record {term or 'SNOMED CT'} ({code}) when done", 80),
        "uuid": _uuid(a, rule_id, code),
        "isRecommended": True,
        "actions": [{
            "type": "create",
            "description": f"Record SNOMED CT {code} {term}".rstrip(),
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [coding]},
                "subject": {"reference": f"Patient/{a.patient_id}"},
            },
        }],
    }


def _finding_card(a: Assessment, finding: Any) -> CdsCard:
    p = a.book.pathway
    term = a.book.codelists.term(finding.code) or ""
    return {
        "uuid": _uuid(a, finding.id, finding.code, finding.date.isoformat()),
        "summary": _short(f"{finding.id}: {finding.message}"),
        "indicator": "warning" if finding.severity == "error" else "info",
        "detail": (f"**{finding.id}** ({finding.severity}): {finding.message}\n\n"
                   f"Code {finding.code} {term} on {finding.date.isoformat()}, in state "
                   f"{finding.state_before}."),
        "source": {"label": f"Caseload pathway {p.id} {p.version} ({p.status})",
                   "topic": {"system": RULE_TOPIC_SYSTEM, "code": finding.id}},
    }


def cds_hooks_response(assessment: Assessment,
                       indicators: Mapping[str, Indicator] = DEFAULT_INDICATORS
                       ) -> CdsHooksResponse:
    """The assessment as a CDS Hooks 2.0 response: ``{"cards": [...]}`` (JSON-ready)."""
    cards = [_rule_card(assessment, rule, indicators) for rule in assessment.fired]
    cards += [_finding_card(assessment, f) for f in assessment.pathway.findings]
    return {"cards": cards}
