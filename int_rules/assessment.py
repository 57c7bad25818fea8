"""The result of assessing one record as of one date, and its explanation.

An :class:`Assessment` holds the fact values with the record items behind them, the rules that
fired (with the ruleset's hit policy applied), the caseload pathway replay, and where it all came
from (rulebook id, version, content hash, ruleset versions and statuses). ``to_dict()`` gives
stable JSON; ``explain()`` gives plain English.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import IntRulesError
from .facts import EvidenceItem, FactValue
from .fhir.cds_hooks import CdsHooksResponse
from .guidance_names import guidance_name
from .language.plain import describe_condition, format_value
from .model.semantics import aggregate_outputs, overlap_message
from .record import Admission, CodedEvent, MonitoringEvent, PatientRecord, RiskScore
from .results_schema import (
    AssessmentDict,
    EventEvidenceDict,
    EvidenceDict,
    FactDict,
    OutcomeDict,
    OutputValue,
    PathwayDict,
    ProvenanceDict,
    ResultValue,
)
from .review.approvals import status_of

if TYPE_CHECKING:
    from .pathway import PathwayResult
    from .rulebook import CompiledRule, Rulebook

__all__ = ["Assessment", "FactPyValue", "HitPolicyError", "Outcome"]

#: A fact's value in Python (``to_dict()`` writes dates as ISO text).
FactPyValue = bool | int | float | str | dt.date | None


class HitPolicyError(IntRulesError):
    """Two rules of a ``unique`` decision fired for one record (the rules overlap)."""

    def __init__(self, patient_id: str, ruleset: str, rule_ids: tuple[str, ...]) -> None:
        self.patient_id = patient_id
        self.ruleset = ruleset
        self.rule_ids = rule_ids
        super().__init__(f"patient {patient_id!r}: {overlap_message(ruleset, rule_ids)}")


@dataclass(frozen=True, slots=True)
class Outcome:
    """One rule that fired: what it sets, and where it comes from.

    ``outputs`` maps each output the rule sets to its value; ``provenance`` is ``guidance``,
    ``local-policy`` or ``assumption``; ``facts`` names the facts its condition read.
    """

    ruleset: str
    rule_id: str
    title: str
    outputs: Mapping[str, OutputValue]
    provenance: str
    facts: tuple[str, ...]


def _iso(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return value
    return value


@dataclass(frozen=True, slots=True)
class Assessment:
    """Everything int_rules concluded about one record as of one date, and why.

    Returned by :meth:`Rulebook.assess <int_rules.Rulebook.assess>`; immutable. Read it as

    * :meth:`results`: each ruleset's outputs (``{"identification": {"cohort": [...]}}``);
    * :attr:`rule_ids` / :attr:`outcomes`: the rules that fired, in rulebook order;
    * :attr:`pathway`: the caseload pathway replayed to ``as_of`` (state, history, findings);
    * :attr:`facts`: every fact's value with the record items behind it;
    * :meth:`explain`: all of it in plain English, with the guidance each rule cites;
    * :meth:`to_dict` / :meth:`to_json`: stable JSON in the format of
      ``docs/schema/assessment.schema.json``.

    ``values`` holds each fact's Python value (``bool``, ``int``, ``float``, ``str``,
    ``datetime.date`` or ``None``); ``evidence`` the record items behind each fact.
    Nothing here raises: every error is raised by ``assess`` before an Assessment exists.
    """

    book: Rulebook
    record: PatientRecord
    as_of: dt.date
    engine: str
    values: Mapping[str, FactPyValue]
    evidence: Mapping[str, tuple[EvidenceItem, ...]]
    fired: tuple[CompiledRule, ...]
    pathway: PathwayResult

    # -- plain data -----------------------------------------------------------------------

    @property
    def patient_id(self) -> str:
        """The assessed record's ``patient_id``."""
        return self.record.patient_id

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """Ids of the rules that fired, in rulebook order."""
        return tuple(rule.id for rule in self.fired)

    def fired_rule(self, rule_id: str) -> bool:
        """Whether the rule with this id fired."""
        return any(rule.id == rule_id for rule in self.fired)

    @property
    def facts(self) -> dict[str, FactValue]:
        """Every fact's value with its evidence, in dependency order."""
        return {
            name: FactValue(name, self.values[name], self.evidence.get(name, ()))
            for name in self.book.fact_order
        }

    @property
    def outcomes(self) -> tuple[Outcome, ...]:
        """The rules that fired, as plain :class:`Outcome` values, in rulebook order."""
        return tuple(
            Outcome(
                ruleset=rule.ruleset,
                rule_id=rule.id,
                title=rule.node.title,
                outputs=dict(rule.node.then),
                provenance=rule.node.provenance,
                facts=rule.node.facts,
            )
            for rule in self.fired
        )

    def results(self) -> dict[str, dict[str, ResultValue]]:
        """Each ruleset's outputs: lists under ``collect``, single values otherwise.

        Every declared output appears (an empty list, or None, when no rule set it), so the
        shape does not depend on the record.
        """
        return {
            rs.id: aggregate_outputs(rs.decision, [rule.node.then for rule in self.fired
                                                   if rule.ruleset == rs.id])
            for rs in self.book.rulesets
        }

    def provenance(self) -> ProvenanceDict:
        """Which rulebook produced this: id, version, content hash, rulesets and overrides."""
        return self.book.provenance()

    def evidence_dict(self, item: EvidenceItem) -> EvidenceDict:
        """One record item behind a fact, as JSON-ready data (coded events with their term)."""
        if isinstance(item, CodedEvent):
            d: EventEvidenceDict = {"type": "event", "date": item.date.isoformat(),
                                 "code": item.code, "term": self.book.codelists.term(item.code)}
            if item.value is not None:
                d["value"] = item.value
                if item.unit:
                    d["unit"] = item.unit
            if item.is_problem:
                d["is_problem"] = True
            return d
        if isinstance(item, Admission):
            return {"type": "admission", "date": item.admitted.isoformat(),
                    "discharged": _iso(item.discharged), "emergency": item.emergency}
        if isinstance(item, RiskScore):
            return {"type": "risk_score", "date": item.date.isoformat(), "value": item.value,
                    "source": item.source}
        assert isinstance(item, MonitoringEvent)
        return {"type": "monitoring", "date": item.date.isoformat(), "kind": item.kind,
                "measure": item.measure, "value": item.value}

    def pathway_dict(self) -> PathwayDict:
        """The pathway replay as JSON-ready data (the ``pathway`` key of :meth:`to_dict`)."""
        p = self.pathway
        return {
            "state": p.state,
            "entered": _iso(p.entered),
            "history": [
                {"date": t.date.isoformat(), "code": t.code, "step": t.step,
                 "from": t.from_state, "to": t.to_state}
                for t in p.history
            ],
            "findings": [
                {"id": f.id, "severity": f.severity, "date": f.date.isoformat(), "code": f.code,
                 "state_before": f.state_before, "message": f.message}
                for f in p.findings
            ],
        }

    def to_dict(self) -> AssessmentDict:
        """Stable JSON-ready data: same inputs, same output, key for key.

        The format is documented as JSON Schema in ``docs/schema/assessment.schema.json``
        (the typed dicts of :mod:`int_rules.results_schema`). Raises nothing.
        """
        facts: dict[str, FactDict] = {}
        for name in self.book.fact_order:
            entry: FactDict = {"value": _iso(self.values[name])}
            items = self.evidence.get(name)
            if items:
                entry["evidence"] = [self.evidence_dict(i) for i in items]
            facts[name] = entry
        outcomes: list[OutcomeDict] = []
        for rule in self.fired:
            d = rule.definition
            outcomes.append({
                "ruleset": rule.ruleset,
                "rule": d.id,
                "title": d.title,
                "outputs": dict(d.then),
                "provenance": d.provenance,
                "cite": {"source": d.cite.source, "section": d.cite.section,
                         "quote": d.cite.quote},
                "hazards": list(d.hazards),
                "facts": {f: _iso(self.values[f]) for f in rule.condition.facts},
            })
        return {
            "patient_id": self.patient_id,
            "as_of": self.as_of.isoformat(),
            "engine": self.engine,
            "provenance": self.provenance(),
            "results": self.results(),
            "pathway": self.pathway_dict(),
            "outcomes": outcomes,
            "facts": facts,
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text (UTF-8 characters kept as they are)."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False, ensure_ascii=False)

    def to_cds_hooks(self) -> CdsHooksResponse:
        """CDS Hooks 2.0 cards for this assessment, ``{"cards": [...]}`` (see docs/fhir.md)."""
        from .fhir.cds_hooks import cds_hooks_response

        return cds_hooks_response(self)

    def comparable(self) -> dict[str, Any]:
        """``to_dict()`` without the engine name: equal across engines for the same inputs."""
        d: dict[str, Any] = dict(self.to_dict())
        del d["engine"]
        return d

    # -- explanation ----------------------------------------------------------------------

    def evidence_lines(self, name: str, last: int = 3) -> list[str]:
        """The last ``last`` coded events, admissions, scores or readings behind fact ``name``,
        each in words (term, code and date), as explanations and cards show them."""
        parts = []
        for item in self.evidence.get(name, ())[-last:]:
            e = self.evidence_dict(item)
            if e["type"] == "event":
                term = e["term"] or "(term unknown)"
                parts.append(f"{term} [{e['code']}] on {e['date']}")
            elif e["type"] == "admission":
                kind = "emergency admission" if e["emergency"] else "admission"
                parts.append(f"{kind} on {e['date']}")
            elif e["type"] == "risk_score":
                parts.append(f"{e['source']} score {format_value(e['value'])} on {e['date']}")
            else:
                parts.append(f"monitoring {e['kind']} on {e['date']}")
        return parts

    def _evidence_text(self, name: str) -> str:
        items = self.evidence.get(name, ())
        if not items:
            return ""
        more = f" and {len(items) - 3} more" if len(items) > 3 else ""
        return f" ({'; '.join(self.evidence_lines(name))}{more})"

    def explain(self) -> str:
        """Why each outcome holds, in plain English, with the guidance it comes from."""
        book = self.book
        lines = [
            f"Patient {self.patient_id}, as of {self.as_of.isoformat()} "
            f"(rulebook {book.id} {book.version}, sha256 {book.sha256[:12]}, "
            f"engine {self.engine})",
            "",
        ]
        p = self.pathway
        since = f" since {p.entered.isoformat()}" if p.entered else ""
        lines.append(f"Caseload pathway: {p.state}{since}")
        for t in p.history:
            term = book.codelists.term(t.code) or t.step
            lines.append(f"  {t.date.isoformat()} {term} [{t.code}]: {t.from_state} -> "
                         f"{t.to_state}")
        for f in p.findings:
            lines.append(f"  ! {f.id} ({f.severity}) {f.date.isoformat()}: {f.message}")
        results = self.results()
        for rs in book.rulesets:
            d = rs.definition
            lines.append("")
            lines.append(f"{d.title} [{rs.id} {d.version}, {status_of(book, rs.id)}, "
                         f"hit policy {d.hit_policy}]")
            fired = [r for r in self.fired if r.ruleset == rs.id]
            if not fired:
                lines.append("  No rule applies.")
                continue
            summary = ", ".join(f"{k} = {format_value(v)}" for k, v in results[rs.id].items()
                                if v not in (None, []))
            lines.append(f"  Result: {summary}")
            for rule in fired:
                rd = rule.definition
                outs = ", ".join(f"{k} = {format_value(v)}" for k, v in rd.then.items())
                lines.append(f"  {rd.id} {rd.title} -> {outs}")
                lines.append(f"    when {describe_condition(rd.when, rs.params)}")
                for fact in rule.condition.facts:
                    value = format_value(_iso(self.values[fact]))
                    lines.append(f"      {fact} = {value}{self._evidence_text(fact)}")
                c = rd.cite
                source = guidance_name(self.book.manifest.guidance_names, c.source)
                lines.append(f"    {rd.provenance}; {source}, \"{c.section}\": \"{c.quote}\"")
        return "\n".join(lines)
