"""The loaded rulebook: the public object applications hold.

:func:`load` (in :mod:`int_rules.loader`) gives a :class:`Rulebook`: the rule model
(:attr:`Rulebook.model`, what every engine translates), the YAML it came from (for docs and
review), the codelists and the caseload pathway. A Rulebook is immutable and safe to share
between threads; :meth:`Rulebook.assess` evaluates one record as of a date on an engine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .bundle import bundle_root
from .codelists import CodelistSet
from .errors import Location
from .facts import MatchGroups
from .language.schema import FactsFile, RulebookManifest, RuleDef, RulesetFile
from .model import nodes as n
from .model.nodes import ParamValue
from .pathway import Pathway, RecordDecision
from .record import PatientRecord

if TYPE_CHECKING:
    from .assessment import Assessment
    from .engines.generated import GeneratedPlan
    from .engines.reference import CompiledCondition, ReferencePlan
    from .results_schema import ProvenanceDict
    from .review.approvals import Approvals

__all__ = ["CompiledRule", "CompiledRuleset", "Rulebook", "default_rulebook_dir", "load"]


def default_rulebook_dir() -> Path:
    """The bundled ``rulesets/`` directory (absolute): inside the installed package, or the
    source tree's ``rulesets/`` (see :mod:`int_rules.bundle`)."""
    return bundle_root() / "rulesets"


@dataclass(frozen=True)
class CompiledRule:
    """A rule: its model node, the YAML it was written as, and where.

    ``condition`` is the reference engine's compiled test (``condition.test(values)``,
    ``condition.facts``, ``condition.node``); ``definition`` is the YAML rule (named conditions
    expanded), kept for documentation and review.
    """

    ruleset: str
    definition: RuleDef
    condition: CompiledCondition
    location: Location
    node: n.Rule

    @property
    def id(self) -> str:
        return self.node.id


@dataclass(frozen=True)
class CompiledRuleset:
    """A ruleset: its decision node, its effective parameters and rules, in declared order."""

    definition: RulesetFile
    file: str
    params: Mapping[str, ParamValue]
    rules: tuple[CompiledRule, ...]
    decision: n.Decision

    @property
    def id(self) -> str:
        return self.decision.id

    @property
    def hit_policy(self) -> str:
        return self.decision.hit_policy


@dataclass(frozen=True)
class Rulebook:
    """A validated, resolved rulebook. Immutable; share it between threads freely.

    Use :func:`load` to get one. ``sha256`` identifies the exact rules, facts, pathway,
    codelists and parameter overrides it was built from. ``model`` is the rule model every
    engine reads; ``facts`` maps each fact's name to its model node.
    """

    manifest: RulebookManifest
    directory: Path
    facts_file: FactsFile
    facts: Mapping[str, n.Fact]
    fact_order: tuple[str, ...]
    fact_params: Mapping[str, ParamValue]
    rulesets: tuple[CompiledRuleset, ...]
    codelists: CodelistSet
    pathway: Pathway
    sha256: str
    overrides: Mapping[str, ParamValue]
    model: n.RuleModel
    #: The model compiled for the reference engine (built once, at load).
    reference: ReferencePlan
    #: The model as one generated Python function (built once, at load).
    generated: GeneratedPlan
    #: Approval records, content hashes and the status results report (review/approvals.py).
    approvals: Approvals | None = None

    @property
    def id(self) -> str:
        """The rulebook's id (``rulebook:`` in ``rulebook.yaml``)."""
        return self.manifest.rulebook

    @property
    def version(self) -> str:
        """The rulebook's version (``version:`` in ``rulebook.yaml``)."""
        return self.manifest.version

    @property
    def match_groups(self) -> MatchGroups:
        """The reference engine's event index: one group per distinct set of codelists read."""
        return self.reference.match_groups

    @property
    def may_record_codes(self) -> frozenset[str]:
        """The codes ``may_record`` facts ask about (the pathway decides only these per record)."""
        return self.reference.may_record_codes

    def provenance(self) -> ProvenanceDict:
        """Which rulebook this is: id, version, content hash, each ruleset's and the pathway's
        version with the status results report (from the approval records), and overrides."""
        from .model.semantics import provenance
        from .review.approvals import status_of

        targets = [*(rs.id for rs in self.rulesets), "pathway"]
        return provenance(self.model, {t: status_of(self, t) for t in targets})

    def ruleset(self, ruleset_id: str) -> CompiledRuleset:
        """The ruleset with this id; raises ``KeyError`` if there is none."""
        for rs in self.rulesets:
            if rs.id == ruleset_id:
                return rs
        raise KeyError(ruleset_id)

    def rule(self, rule_id: str) -> CompiledRule:
        """The rule with this id, in any ruleset; raises ``KeyError`` if there is none."""
        for rs in self.rulesets:
            for rule in rs.rules:
                if rule.id == rule_id:
                    return rule
        raise KeyError(rule_id)

    def assess(
        self, record: PatientRecord, as_of: dt.date, engine: str = "generated"
    ) -> Assessment:
        """Evaluate every fact and rule for ``record`` as of ``as_of``.

        Events dated after ``as_of`` are ignored; the clock is never read. ``engine`` is
        ``"generated"`` (the default: the rulebook as one generated Python function, built
        at load), ``"reference"`` (the oracle: one closure per fact, which the generated
        engine is proven equal to) or ``"durable"`` (the same rulebook compiled to
        durable_rules; needs the ``durable`` extra). Pure and thread-safe.

        Returns:
            Assessment: every ruleset's outputs, the rules that fired, the pathway replay
                and every fact with its evidence (``to_dict()`` gives stable JSON,
                ``explain()`` plain English).

        Raises:
            TypeError: ``as_of`` is not a ``datetime.date`` (a ``datetime`` is refused too).
            HitPolicyError: two rules of a ``unique`` decision fired for this record.
            EngineUnavailableError: ``engine`` is unknown, or its optional dependency is
                missing.
        """
        from .engines import record_engine

        if not isinstance(as_of, dt.date) or isinstance(as_of, dt.datetime):
            raise TypeError(f"as_of must be a datetime.date, got {type(as_of).__name__}")
        _require_record(record)
        return record_engine(engine)(self, record, as_of)

    def may_record(self, record: PatientRecord, code: str, on: dt.date) -> RecordDecision:
        """May ``code`` be recorded for this person on ``on``? (see :meth:`Pathway.may_record`)."""
        _require_record(record)
        return self.pathway.may_record(pathway_events(self.pathway, record), code, on,
                                       record.date_of_death)

    def next_codes(self, record: PatientRecord, on: dt.date) -> tuple[RecordDecision, ...]:
        """The pathway codes that may validly be recorded next, each with its resulting state."""
        return self.pathway.next_codes(pathway_events(self.pathway, record), on,
                                       record.date_of_death)


def _require_record(record: object) -> None:
    """A :class:`RecordError` (not an AttributeError deep inside) for a record of another type."""
    if not isinstance(record, PatientRecord):
        from .errors import RecordError

        raise RecordError(None, "(record)", f"expected a PatientRecord, got "
                          f"{type(record).__name__} (build one with PatientRecord.from_dict)")


def pathway_events(pathway: Pathway, record: PatientRecord) -> list[tuple[dt.date, str]]:
    """The record's (date, code) events the pathway reacts to."""
    codes = pathway.codes
    return [(ev.date, ev.code) for ev in record.events if ev.code in codes]


def load(
    directory: str | Path | None = None,
    overrides: str | Path | Mapping[str, ParamValue] | None = None,
) -> Rulebook:
    """Load, validate and resolve the rulebook in ``directory`` (default: the bundled one).

    The bundled rulebook is found with :mod:`importlib.resources` wherever int_rules is
    installed (see :mod:`int_rules.bundle`). ``overrides`` is an INT's parameter file (path) or
    a mapping ``{"ruleset.param": value}``; only ``local-policy`` and ``assumption``
    parameters can be overridden.

    Returns:
        Rulebook: immutable and safe to share between threads; its ``sha256`` names the
            exact rules, facts, pathway, codelists and overrides it was built from.

    Raises:
        RulesetError: a problem with the manifest, a ruleset, the facts, the pathway or the
            overrides, naming file, line, column and key; when there is no rulebook at
            ``directory``, the message names the full path looked for.
        RulesetErrors: several such problems, all reported together (a ``RulesetError``).
        CodelistError: a codelist file that cannot be used (missing, malformed, or not what
            the manifest's sha256 says).
    """
    from .loader import load_rulebook

    return load_rulebook(directory, overrides)
