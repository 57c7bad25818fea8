"""The ruleset language as pydantic models.

These models are the *shape* of the YAML files; :mod:`int_rules.language.compile` checks the
meaning (every fact, codelist and parameter named exists; operators fit the fact's type) and
compiles them. ``python -m int_rules.language.jsonschema`` writes the JSON Schema of these models
into ``docs/schema/`` so YAML editors validate rulesets as they are typed.

Three kinds of file:

* the **rulebook manifest** (``rulesets/rulebook.yaml``): which files make up the rulebook;
* the **facts file** (``rulesets/facts.yaml``): named facts derived from a record as of a date;
* a **ruleset** (``rulesets/<id>.yaml``): parameters and rules over facts, with a hit policy.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    model_validator,
)

__all__ = [
    "AllOf",
    "AnyOf",
    "Citation",
    "Condition",
    "ConditionRef",
    "FactDef",
    "FactRef",
    "FactsFile",
    "Leaf",
    "Not",
    "OutputDef",
    "OverridesFile",
    "ParamRef",
    "Parameter",
    "RuleDef",
    "RulebookManifest",
    "RulesetFile",
]

_STRICT = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

Provenance = Literal["guidance", "local-policy", "assumption"]
Status = Literal["draft", "approved", "retired"]
HitPolicy = Literal["collect", "unique", "first", "priority"]
# Strict, bool first: YAML's true stays a bool and 1 stays an int (no lax coercion between them).
# Floats are finite: .nan compares false with everything and .inf passes every threshold, so
# either would silently switch a rule off (or on).
Scalar = StrictBool | StrictInt | Annotated[StrictFloat, AllowInfNan(False)] | StrictStr
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
RuleId = Annotated[str, Field(pattern=r"^[A-Z]{2,5}-[0-9]{3}[a-z]?$")]
HazardId = Annotated[str, Field(pattern=r"^HAZ-[0-9]{3}$")]


class Citation(BaseModel):
    """Where in the guidance a rule comes from: file, heading, and a short verbatim quote."""

    model_config = _STRICT
    source: str = Field(min_length=1, description="Guidance file, e.g. 001_0d4f5c8ba846d66c.txt")
    section: str = Field(min_length=1, description="The heading the passage sits under")
    quote: str = Field(min_length=1, description="A short verbatim quote from that passage")


class Parameter(BaseModel):
    """A named number or value used by rules or facts, with its provenance.

    ``local-policy``: a value the guidance leaves to the INT (overridable per INT);
    ``assumption``: our reading where the guidance is silent (overridable per INT);
    ``guidance``: a value the guidance states (not overridable).
    """

    model_config = _STRICT
    value: Scalar | list[Scalar]
    provenance: Provenance
    why: str = Field(min_length=1)
    unit: str | None = None
    cite: Citation | None = None


class ParamRef(BaseModel):
    """An operand that reads a parameter: ``{param: name}``."""

    model_config = _STRICT
    param: str


class FactRef(BaseModel):
    """An operand that reads another fact: ``{fact: name}``."""

    model_config = _STRICT
    fact: str


Operand = Annotated[ParamRef | FactRef | Scalar, Field(union_mode="left_to_right")]
ListOperand = Annotated[ParamRef | list[Scalar], Field(union_mode="left_to_right")]
DaysOperand = Annotated[ParamRef | int, Field(union_mode="left_to_right")]


class Leaf(BaseModel):
    """A test of one fact. Exactly one operator besides ``fact``.

    Two-valued logic: a test of a fact with no value (e.g. no such event) is false, except
    ``present: false``; ``not`` negates that plainly.
    """

    model_config = _STRICT
    fact: str
    equals: Operand | None = None
    not_equals: Operand | None = None
    in_: ListOperand | None = Field(default=None, alias="in")
    at_least: Operand | None = None
    at_most: Operand | None = None
    greater_than: Operand | None = None
    less_than: Operand | None = None
    present: bool | None = None
    within_days: DaysOperand | None = Field(
        default=None, description="date fact: on or before as_of and at most N days before it"
    )
    older_than_days: DaysOperand | None = Field(
        default=None, description="date fact: more than N days before as_of"
    )
    after: FactRef | None = Field(default=None, description="date fact: strictly after another")
    before: FactRef | None = Field(default=None, description="date fact: strictly before another")

    @model_validator(mode="after")
    def _one_operator(self) -> Leaf:
        ops = self.operators()
        if len(ops) != 1:
            names = ", ".join(OPERATORS)
            if not ops:
                raise ValueError(f"a test of fact {self.fact!r} needs one operator ({names})")
            raise ValueError(
                f"a test of fact {self.fact!r} has {len(ops)} operators ({', '.join(ops)}); "
                "use all/any to combine tests"
            )
        return self

    def operators(self) -> list[str]:
        return [op for op in OPERATORS if getattr(self, _attr(op)) is not None]

    @property
    def op(self) -> str:
        return self.operators()[0]

    @property
    def operand(self) -> Any:
        return getattr(self, _attr(self.op))


OPERATORS = (
    "equals", "not_equals", "in", "at_least", "at_most", "greater_than", "less_than",
    "present", "within_days", "older_than_days", "after", "before",
)


def _attr(op: str) -> str:
    return "in_" if op == "in" else op


class AllOf(BaseModel):
    """True when every listed condition is true."""

    model_config = _STRICT
    all: list[Condition] = Field(min_length=1)


class AnyOf(BaseModel):
    """True when at least one listed condition is true."""

    model_config = _STRICT
    any: list[Condition] = Field(min_length=1)


class Not(BaseModel):
    """True when the condition is false."""

    model_config = _STRICT
    not_: Condition = Field(alias="not")


class ConditionRef(BaseModel):
    """A use of one of the ruleset's named ``conditions``: ``{condition: NAME}``.

    Expanded at load, so engines, docs and lint see the condition itself; naming it once keeps
    a condition that several rules share from drifting apart when one copy is edited.
    """

    model_config = _STRICT
    condition: str


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for key in ("all", "any", "not"):
            if key in value:
                return key
        return "ref" if "condition" in value else "leaf"
    if isinstance(value, BaseModel):
        kinds = {AllOf: "all", AnyOf: "any", Not: "not", Leaf: "leaf", ConditionRef: "ref"}
        return kinds.get(type(value))
    return None


Condition = Annotated[
    Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[Not, Tag("not")]
    | Annotated[Leaf, Tag("leaf")]
    | Annotated[ConditionRef, Tag("ref")],
    Discriminator(
        _condition_kind,
        custom_error_type="condition",
        custom_error_message="a condition must be {all: [...]}, {any: [...]}, {not: ...}, "
        "{condition: NAME} or {fact: NAME, <operator>: VALUE}",
    ),
]


# -- facts ------------------------------------------------------------------------------------

Source = Literal["events", "admissions", "risk_scores", "monitoring"]
SpecialWindow = Literal["before_birth", "after_death", "after_as_of"]


class FactDef(BaseModel):
    """A named per-patient value derived from the record as of a date.

    Kinds (``kind``):

    * ``age``: whole years from date of birth to as_of.
    * ``attribute``: a field of the record (``field``: sex, gp_system, neighbourhood, practice).
    * ``exists``: whether any matching item is in the window (bool).
    * ``count``: how many matching items are in the window (int).
    * ``latest_date`` / ``first_date``: the date of the latest / first matching item.
    * ``latest_value``: the numeric value of the latest matching item that has one.
    * ``latest_of``: which of several named categories has the latest matching event;
      ``categories`` maps category -> codelist(s); on the same day the category listed first
      wins; ``scale`` (optional) orders categories low to high for at_least/at_most tests.
    * ``derived``: a boolean fact defined by a condition over other facts (``when``).
    * ``pathway``: from the caseload pathway replay (``field``: state, entered, findings (how
      many invalid steps) or may_record (with ``codelist``: may such a code be recorded now)).
    * ``constant``: a parameter's value (``value: {param: name}``), so rules can test local
      settings such as the monitoring level an INT has available.
    * ``codelist_available``: whether ``codelist`` has any codes (false for an assessment with
      no verified SNOMED CT code, which therefore cannot be checked from the record).
    * ``death_after_as_of``: whether the record's date of death is after as_of (bool; false
      when there is none), used to report a future date of death.

    Matching items come from ``source`` (default ``events``); for events, ``codelist`` names one
    codelist or a list of them (no codelist: every coded event). ``where`` filters on fields of
    the item (events: is_problem; admissions: emergency; risk_scores: source; monitoring: kind,
    measure). The window is everything on or before as_of, narrowed by ``within_days`` (at most
    N days before as_of), ``since`` (strictly after the date held by another fact; unbounded if
    that fact has no value), ``from`` (on or after it; likewise) and ``until`` (on or before
    the date held by another fact; nothing if it has no value). ``window`` selects one of the
    data-quality windows instead: ``before_birth``, ``after_death`` (after date of death, up to
    as_of) or ``after_as_of`` (the only way a fact can see events dated after as_of, used to
    report future-dated events).
    """

    model_config = _STRICT
    kind: Literal[
        "age", "attribute", "exists", "count", "latest_date", "first_date", "latest_value",
        "latest_of", "derived", "pathway", "constant", "codelist_available",
        "death_after_as_of",
    ]
    description: str = Field(min_length=1)
    source: Source = "events"
    codelist: str | list[str] | None = None
    categories: dict[str, str | list[str]] | None = None
    scale: list[str] | None = None
    where: dict[str, Scalar] | None = None
    within_days: DaysOperand | None = None
    since: str | None = None
    from_: str | None = Field(default=None, alias="from")
    until: str | None = None
    window: SpecialWindow | None = None
    value: ParamRef | Scalar | None = None
    field: str | None = None
    when: Condition | None = None
    provenance: Provenance | None = None
    cite: Citation | None = None


class FactsFile(BaseModel):
    """``rulesets/facts.yaml``: the shared fact vocabulary."""

    model_config = _STRICT
    facts_version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    title: str
    parameters: dict[Identifier, Parameter] = Field(default_factory=dict)
    facts: dict[Identifier, FactDef]


# -- rulesets ---------------------------------------------------------------------------------


class OutputDef(BaseModel):
    """An output a ruleset's rules may set in ``then``, with its type and allowed values."""

    model_config = _STRICT
    type: Literal["category", "bool", "text", "code"]
    values: list[str] | None = None
    description: str = Field(min_length=1)


class RuleDef(BaseModel):
    """One rule: when the condition holds, the outcome is set."""

    model_config = _STRICT
    id: RuleId
    title: str = Field(min_length=1)
    when: Condition
    then: dict[Identifier, Scalar] = Field(min_length=1)
    provenance: Provenance
    cite: Citation
    hazards: list[HazardId] = Field(default_factory=list)
    priority: int | None = None
    note: str | None = None


class RulesetFile(BaseModel):
    """``rulesets/<id>.yaml``: one decision (or collection) over the facts."""

    model_config = _STRICT
    ruleset: Identifier
    title: str = Field(min_length=1)
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    status: Status
    guidance: list[str] = Field(min_length=1)
    hit_policy: HitPolicy
    complete: bool = Field(
        default=False,
        description="The rules cover every input: `int-rules lint` reports any input (an example) "
        "for which no rule fires",
    )
    description: str = Field(min_length=1)
    parameters: dict[Identifier, Parameter] = Field(default_factory=dict)
    conditions: dict[Identifier, Condition] = Field(
        default_factory=dict,
        description="Named conditions rules share, used as {condition: NAME}",
    )
    outputs: dict[Identifier, OutputDef] = Field(min_length=1)
    rules: list[RuleDef] = Field(min_length=1)


class RulebookManifest(BaseModel):
    """``rulesets/rulebook.yaml``: the files that make one rulebook."""

    model_config = _STRICT
    rulebook: str
    title: str
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    facts: str
    pathway: str
    codelists: str
    rulesets: list[str] = Field(min_length=1)
    scenarios: str | None = None
    guidance_names: dict[str, str] = Field(
        default_factory=dict,
        description="Guidance file -> the name people read for it (e.g. 'Version 1 (2024)'), "
        "shown in explanations, the reference, the report and the safety case",
    )


class OverridesFile(BaseModel):
    """An INT's own parameter values: ``{overrides_for: RULEBOOK, parameters: {...}}``.

    Keys are ``<ruleset id>.<parameter>`` (or ``facts.<parameter>``). Only ``local-policy`` and
    ``assumption`` parameters may be overridden; rules cannot be.
    """

    model_config = _STRICT
    overrides_for: str
    description: str | None = None
    parameters: dict[str, Scalar | list[Scalar]]


AllOf.model_rebuild()
AnyOf.model_rebuild()
ConditionRef.model_rebuild()
Not.model_rebuild()
FactDef.model_rebuild()
RuleDef.model_rebuild()
RulesetFile.model_rebuild()
