"""Load, validate and compile a rulebook: facts, rulesets, codelists and the caseload pathway.

:func:`load` is the entry point. Every problem found is reported with its ``file:line:column``
and key; all problems found in one pass are raised together as
:class:`~int_rules.errors.RulesetErrors`. A loaded :class:`Rulebook` is immutable and safe to
share between threads; :meth:`Rulebook.assess` evaluates one record as of a date.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from .bundle import bundle_root
from .codelists import CodelistSet, load_codelists
from .conditions import CompiledCondition, ConditionError, compile_condition, facts_read
from .errors import EngineUnavailableError, Location, RulesetError, RulesetErrors
from .facts import (
    _DATE_OF,
    ATTRIBUTE_TYPES,
    VALUE_FIELDS,
    WHERE_FIELDS,
    CompiledFact,
    EvalContext,
    FactResult,
    FactType,
    MatchGroups,
    age_in_years,
    make_where,
    make_window,
    reduce_items,
    select,
)
from .language.schema import (
    AllOf,
    AnyOf,
    Condition,
    ConditionRef,
    FactDef,
    FactsFile,
    Not,
    OverridesFile,
    Parameter,
    RulebookManifest,
    RuleDef,
    RulesetFile,
)
from .language.yamlsrc import load_yaml, locate
from .pathway import Pathway, load_pathway
from .record import PatientRecord
from .results_schema import ParameterValue

if TYPE_CHECKING:
    from .assessment import Assessment
    from .review.approvals import Approvals

_M = TypeVar("_M", bound=BaseModel)

__all__ = ["CompiledRule", "CompiledRuleset", "Rulebook", "default_rulebook_dir", "load"]

ENGINES = ("reference", "durable")


def default_rulebook_dir() -> Path:
    """The bundled ``rulesets/`` directory (absolute): inside the installed package, or the
    source tree's ``rulesets/`` (see :mod:`int_rules.bundle`)."""
    return bundle_root() / "rulesets"


# -- compiled structures ----------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to evaluate."""

    ruleset: str
    definition: RuleDef
    condition: CompiledCondition
    location: Location

    @property
    def id(self) -> str:
        return self.definition.id


@dataclass(frozen=True)
class CompiledRuleset:
    """A ruleset with its effective parameters and compiled rules, in declared order."""

    definition: RulesetFile
    file: str
    params: Mapping[str, Any]
    rules: tuple[CompiledRule, ...]

    @property
    def id(self) -> str:
        return self.definition.ruleset


@dataclass(frozen=True)
class Rulebook:
    """A validated, compiled rulebook. Immutable; share it between threads freely.

    Use :func:`load` to get one. ``sha256`` identifies the exact rules, facts, pathway,
    codelists and parameter overrides it was built from.
    """

    manifest: RulebookManifest
    directory: Path
    facts_file: FactsFile
    facts: Mapping[str, CompiledFact]
    fact_order: tuple[str, ...]
    fact_params: Mapping[str, Any]
    rulesets: tuple[CompiledRuleset, ...]
    codelists: CodelistSet
    pathway: Pathway
    match_groups: MatchGroups
    sha256: str
    overrides: Mapping[str, Any]
    #: The codes ``may_record`` facts ask about (the pathway decides only these per record).
    may_record_codes: frozenset[str]
    #: (name, evaluate) for every fact in dependency order: the evaluator's loop.
    fact_plan: tuple[tuple[str, Any], ...]
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
        self, record: PatientRecord, as_of: dt.date, engine: str = "reference"
    ) -> Assessment:
        """Evaluate every fact and rule for ``record`` as of ``as_of``.

        Events dated after ``as_of`` are ignored; the clock is never read. ``engine`` is
        ``"reference"`` (plain Python, the default) or ``"durable"`` (the same rulebook
        compiled to durable_rules; needs the ``durable`` extra). Pure and thread-safe.

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
        if not isinstance(as_of, dt.date) or isinstance(as_of, dt.datetime):
            raise TypeError(f"as_of must be a datetime.date, got {type(as_of).__name__}")
        _require_record(record)
        if engine == "reference":
            from .engines.reference import assess

            return assess(self, record, as_of)
        if engine == "durable":
            from .engines.durable import assess as durable_assess

            return durable_assess(self, record, as_of)
        raise EngineUnavailableError(
            f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}"
        )

    def may_record(self, record: PatientRecord, code: str, on: dt.date) -> Any:
        """May ``code`` be recorded for this person on ``on``? (see :meth:`Pathway.may_record`)."""
        _require_record(record)
        return self.pathway.may_record(pathway_events(self.pathway, record), code, on,
                                       record.date_of_death)

    def next_codes(self, record: PatientRecord, on: dt.date) -> Any:
        """The pathway codes that may validly be recorded next, each with its resulting state."""
        return self.pathway.next_codes(pathway_events(self.pathway, record), on,
                                       record.date_of_death)


def pathway_events(pathway: Pathway, record: PatientRecord) -> list[tuple[dt.date, str]]:
    """The record's (date, code) events the pathway reacts to."""
    codes = pathway.codes
    return [(ev.date, ev.code) for ev in record.events if ev.code in codes]


# -- loading ----------------------------------------------------------------------------------


class _Problems:
    """Collects located problems so one load reports all of them."""

    def __init__(self) -> None:
        self.errors: list[RulesetError] = []

    def add(self, location: Location | None, message: str, key: str | None = None) -> None:
        self.errors.append(RulesetError(location, message, key))

    def raise_if_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise RulesetErrors(self.errors)


def _display(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve().parent))
    except ValueError:
        return str(path)


def _validate(model: type[_M], raw: Any, file: str, problems: _Problems) -> _M | None:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = locate(raw, err["loc"], file, at_key=err["type"] == "extra_forbidden")
            key = ".".join(str(p) for p in err["loc"] if not _is_tag(p)) or None
            msg = err["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling against the schema in docs/schema/)"
            elif err["type"] == "missing":
                msg = "required key is missing"
            problems.add(loc, msg, key)
        return None


def _is_tag(part: int | str) -> bool:
    """Discriminator tags pydantic puts in error paths of a ``when`` tree."""
    return part == "leaf"


def load(
    directory: str | Path | None = None,
    overrides: str | Path | Mapping[str, ParameterValue] | None = None,
) -> Rulebook:
    """Load, validate and compile the rulebook in ``directory`` (default: the bundled one).

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
    base = Path(directory) if directory is not None else default_rulebook_dir()
    manifest_path = base / "rulebook.yaml"
    shown = _display(manifest_path, base)
    if not manifest_path.is_file():
        raise RulesetError(Location(shown), "no rulebook manifest here (looked for "
                                            f"{manifest_path.resolve()})")
    problems = _Problems()
    raw_manifest = load_yaml(manifest_path, shown)
    manifest = _validate(RulebookManifest, raw_manifest, shown, problems)
    problems.raise_if_any()
    assert manifest is not None

    digest = hashlib.sha256()
    digest.update(manifest_path.read_bytes())
    for key in ("facts", "pathway", "codelists", "rulesets"):
        names = getattr(manifest, key)
        for i, name in enumerate(names if isinstance(names, list) else [names]):
            target = base / name
            if not (target.is_dir() if key == "codelists" else target.is_file()):
                where = (key, i) if isinstance(names, list) else (key,)
                problems.add(locate(raw_manifest, where, shown),
                             f"{'directory' if key == 'codelists' else 'file'} {name!r} "
                             f"does not exist (looked for {target})", key)
    problems.raise_if_any()

    # Codelists
    codelist_dir = (base / manifest.codelists).resolve()
    codelists = load_codelists(codelist_dir)
    digest.update(codelists.sha256.encode())

    # Overrides
    override_values, override_locs = _load_overrides(overrides, manifest, base, problems)
    problems.raise_if_any()

    # Facts
    facts_path = base / manifest.facts
    facts_shown = _display(facts_path, base)
    raw_facts = load_yaml(facts_path, facts_shown)
    digest.update(facts_path.read_bytes())
    facts_file = _validate(FactsFile, raw_facts, facts_shown, problems)

    # Pathway
    pathway_path = base / manifest.pathway
    digest.update(pathway_path.read_bytes())
    pathway = load_pathway(
        pathway_path,
        {cid: cl.codes for cid, cl in codelists.items()},
        display_name=_display(pathway_path, base),
    )

    # Rulesets (validate shape of all before stopping)
    ruleset_files: list[tuple[RulesetFile, Any, str]] = []
    for name in manifest.rulesets:
        path = base / name
        rs_shown = _display(path, base)
        raw = load_yaml(path, rs_shown)
        digest.update(path.read_bytes())
        model = _validate(RulesetFile, raw, rs_shown, problems)
        if model is not None:
            ruleset_files.append((model, raw, rs_shown))
    problems.raise_if_any()
    assert facts_file is not None

    used_overrides: set[str] = set()
    fact_params = _effective_params(
        "facts", facts_file.parameters, override_values, used_overrides, raw_facts, facts_shown,
        override_locs, problems,
    )
    match = MatchGroups()
    facts, order = _compile_facts(
        facts_file, raw_facts, facts_shown, fact_params, codelists, pathway, match, problems
    )
    problems.raise_if_any()

    fact_types = {name: f.type for name, f in facts.items()}
    rulesets: list[CompiledRuleset] = []
    seen_rules: dict[str, str] = {}
    seen_rulesets: dict[str, str] = {}
    for model, raw, rs_shown in ruleset_files:
        if model.ruleset in seen_rulesets:
            problems.add(locate(raw, ("ruleset",), rs_shown),
                         f"ruleset id {model.ruleset!r} is also used by "
                         f"{seen_rulesets[model.ruleset]}", "ruleset")
            continue
        seen_rulesets[model.ruleset] = rs_shown
        params = _effective_params(
            model.ruleset, model.parameters, override_values, used_overrides, raw, rs_shown,
            override_locs, problems,
        )
        rulesets.append(_compile_ruleset(model, raw, rs_shown, params, fact_types, codelists,
                                         seen_rules, problems))

    for key in override_values:
        if key not in used_overrides:
            problems.add(override_locs.get(key), f"no parameter {key!r} to override "
                                                 "(keys are '<ruleset>.<parameter>')", key)
    problems.raise_if_any()

    for key in sorted(override_values):
        digest.update(f"override {key}={override_values[key]!r}\n".encode())

    from .review.approvals import attach_approvals

    return attach_approvals(Rulebook(
        manifest=manifest,
        directory=base,
        facts_file=facts_file,
        facts=facts,
        fact_order=order,
        fact_params=fact_params,
        rulesets=tuple(rulesets),
        codelists=codelists,
        pathway=pathway,
        match_groups=match,
        sha256=digest.hexdigest(),
        overrides=dict(override_values),
        may_record_codes=frozenset(
            code for f in facts.values() if f.may_record for code in f.may_record
        ),
        fact_plan=tuple((name, facts[name].evaluate) for name in order),
    ))


def _load_overrides(
    overrides: str | Path | Mapping[str, Any] | None,
    manifest: RulebookManifest,
    base: Path,
    problems: _Problems,
) -> tuple[dict[str, Any], dict[str, Location]]:
    if overrides is None:
        return {}, {}
    if isinstance(overrides, Mapping):
        return dict(overrides), {}
    path = Path(overrides)
    shown = str(path)
    raw = load_yaml(path, shown)
    model = _validate(OverridesFile, raw, shown, problems)
    if model is None:
        return {}, {}
    if model.overrides_for != manifest.rulebook:
        problems.add(locate(raw, ("overrides_for",), shown),
                     f"these overrides are for rulebook {model.overrides_for!r}, not "
                     f"{manifest.rulebook!r}", "overrides_for")
    locs = {key: locate(raw, ("parameters", key), shown) for key in model.parameters}
    return dict(model.parameters), locs


def _effective_params(
    scope: str,
    declared: Mapping[str, Parameter],
    overrides: Mapping[str, Any],
    used: set[str],
    raw: Any,
    file: str,
    override_locs: Mapping[str, Location],
    problems: _Problems,
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, param in declared.items():
        value = param.value
        key = f"{scope}.{name}"
        if key in overrides:
            used.add(key)
            new = overrides[key]
            loc = override_locs.get(key) or locate(raw, ("parameters", name), file)
            if param.provenance == "guidance":
                problems.add(loc, f"parameter {key} comes from the guidance and cannot be "
                                  "overridden locally", key)
            elif isinstance(new, float) and not math.isfinite(new):
                problems.add(loc, f"override of {key} must be a finite number, got {new!r}", key)
            elif type(new) is not type(value) and not (
                isinstance(new, (int, float)) and isinstance(value, (int, float))
                and not isinstance(new, bool) and not isinstance(value, bool)
            ):
                problems.add(loc, f"override of {key} must be a {type(value).__name__} like "
                                  f"its default {value!r}, got {new!r}", key)
            else:
                value = new
        params[name] = value
    return params


# -- facts ------------------------------------------------------------------------------------


def _compile_facts(
    facts_file: FactsFile,
    raw: Any,
    file: str,
    params: Mapping[str, Any],
    codelists: CodelistSet,
    pathway: Pathway,
    match: MatchGroups,
    problems: _Problems,
) -> tuple[dict[str, CompiledFact], tuple[str, ...]]:
    defs = facts_file.facts
    deps: dict[str, list[str]] = {}
    for name, fdef in defs.items():
        refs = [r for r in (fdef.since, fdef.from_, fdef.until) if r is not None]
        if fdef.when is not None:
            refs += facts_read(fdef.when)
        deps[name] = refs
        for ref in refs:
            if ref not in defs:
                problems.add(locate(raw, ("facts", name), file),
                             f"fact {name!r} refers to unknown fact {ref!r}", f"facts.{name}")
    if problems.errors:
        return {}, ()

    order = _topological(deps, raw, file, problems)
    if order is None:
        return {}, ()

    compiled: dict[str, CompiledFact] = {}
    for name in order:
        fdef = defs[name]
        where = ("facts", name)
        try:
            fact = _compile_fact(name, fdef, params, codelists, pathway, match,
                                 {n: c.type for n, c in compiled.items()}, tuple(deps[name]))
        except _FactProblem as p:
            problems.add(locate(raw, (*where, *p.path), file), p.message, f"facts.{name}")
            continue
        except ConditionError as ce:
            problems.add(locate(raw, (*where, "when", *ce.path), file), ce.message,
                         f"facts.{name}")
            continue
        compiled[name] = fact
    return compiled, tuple(order)


class _FactProblem(Exception):
    def __init__(self, path: tuple[int | str, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _topological(deps: Mapping[str, list[str]], raw: Any, file: str,
                 problems: _Problems) -> list[str] | None:
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> bool:
        if state.get(name) == 2:
            return True
        if state.get(name) == 1:
            cycle = " -> ".join([*trail[trail.index(name):], name])
            problems.add(locate(raw, ("facts", name), file), f"facts depend on each other in a "
                                                             f"cycle: {cycle}", f"facts.{name}")
            return False
        state[name] = 1
        for dep in deps[name]:
            if not visit(dep, [*trail, name]):
                return False
        state[name] = 2
        order.append(name)
        return True

    for name in deps:
        if not visit(name, []):
            return None
    return order


def _codelist_ids(value: str | list[str] | None, path: tuple[int | str, ...],
                  codelists: CodelistSet) -> list[str]:
    ids = [value] if isinstance(value, str) else list(value or [])
    for i, cid in enumerate(ids):
        if cid not in codelists:
            sub = path if isinstance(value, str) else (*path, i)
            raise _FactProblem(sub, f"unknown codelist {cid!r} (see codelists/codelists.yaml)")
    return ids


def _resolve_days(value: Any, params: Mapping[str, Any], path: tuple[int | str, ...]) -> int | None:
    if value is None:
        return None
    if hasattr(value, "param"):
        if value.param not in params:
            raise _FactProblem(path, f"unknown parameter {value.param!r} (facts parameters: "
                                     f"{', '.join(sorted(params)) or 'none'})")
        value = params[value.param]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _FactProblem(path, f"within_days must be a whole number of days >= 0, got {value!r}")
    return int(value)


_ITEM_KINDS = {"exists", "count", "latest_date", "first_date", "latest_value"}
_ITEM_TYPES = {
    "exists": FactType("bool"),
    "count": FactType("int"),
    "latest_date": FactType("date"),
    "first_date": FactType("date"),
    "latest_value": FactType("number"),
}
_KIND_KEYS: dict[str, set[str]] = {
    "age": set(),
    "attribute": {"field"},
    "derived": {"when"},
    "pathway": {"field", "codelist"},
    "latest_of": {"categories", "scale", "within_days", "since", "from_", "until", "window"},
    "constant": {"value"},
    "codelist_available": {"codelist"},
}
_ITEM_KEYS = {"source", "codelist", "where", "within_days", "since", "from_", "until", "window",
              "field"}
_ALWAYS = {"kind", "description", "provenance", "cite"}


def _compile_fact(
    name: str,
    fdef: FactDef,
    params: Mapping[str, Any],
    codelists: CodelistSet,
    pathway: Pathway,
    match: MatchGroups,
    types_so_far: Mapping[str, FactType],
    deps: tuple[str, ...],
) -> CompiledFact:
    kind = fdef.kind
    allowed = _ALWAYS | (_ITEM_KEYS if kind in _ITEM_KINDS else _KIND_KEYS[kind])
    for key in type(fdef).model_fields:
        alias = key
        if key not in allowed and getattr(fdef, key) != type(fdef).model_fields[key].default:
            raise _FactProblem((alias,), f"{alias!r} does not apply to a {kind} fact")

    if kind == "age":
        def age(ctx: EvalContext) -> FactResult:
            return age_in_years(ctx.record.date_of_birth, ctx.as_of), ()
        return CompiledFact(name, FactType("int"), deps, (), False, age)

    if kind == "attribute":
        field = fdef.field or ""
        if field not in ATTRIBUTE_TYPES:
            raise _FactProblem(("field",), f"attribute must be one of "
                                           f"{', '.join(ATTRIBUTE_TYPES)}, got {field!r}")

        def attribute(ctx: EvalContext) -> FactResult:
            return getattr(ctx.record, field), ()
        return CompiledFact(name, ATTRIBUTE_TYPES[field], deps, (), False, attribute)

    if kind == "derived":
        if fdef.when is None:
            raise _FactProblem(("when",), "a derived fact needs a 'when' condition")
        cond = compile_condition(fdef.when, types_so_far, params)
        test = cond.test

        def derived(ctx: EvalContext) -> FactResult:
            return test(ctx.values), ()
        return CompiledFact(name, FactType("bool"), deps, (), False, derived)

    if kind == "pathway":
        pfield = fdef.field
        if pfield == "state":
            if fdef.codelist is not None:
                raise _FactProblem(("codelist",), "a pathway state fact takes no codelist")

            def state(ctx: EvalContext) -> FactResult:
                assert ctx.pathway is not None
                return ctx.pathway.state, ()
            return CompiledFact(name, FactType("category", tuple(pathway.fact_domain())), deps,
                                (), False, state)
        if pfield == "entered":
            def entered(ctx: EvalContext) -> FactResult:
                assert ctx.pathway is not None
                return ctx.pathway.entered, ()
            return CompiledFact(name, FactType("date"), deps, (), False, entered)
        if pfield == "findings":
            def findings(ctx: EvalContext) -> FactResult:
                assert ctx.pathway is not None
                return len(ctx.pathway.findings), ()
            return CompiledFact(name, FactType("int"), deps, (), False, findings)
        if pfield == "may_record":
            ids = _codelist_ids(fdef.codelist, ("codelist",), codelists)
            codes = frozenset(c for cid in ids for c in codelists[cid].codes)
            if not codes or not codes <= pathway.codes:
                raise _FactProblem(("codelist",), "may_record needs a codelist of pathway codes")

            def may_record(ctx: EvalContext) -> FactResult:
                assert ctx.next_codes is not None
                return bool(codes & ctx.next_codes), ()
            return CompiledFact(name, FactType("bool"), deps, tuple(ids), False, may_record,
                                may_record=codes)
        raise _FactProblem(("field",), f"a pathway fact's field is state, entered, findings or "
                                       f"may_record, got {pfield!r}")

    if kind == "constant":
        raw_value = fdef.value
        if raw_value is None:
            raise _FactProblem(("value",), "a constant fact needs value: {param: NAME} or a value")
        if hasattr(raw_value, "param"):
            if raw_value.param not in params:
                known = ", ".join(sorted(params)) or "none"
                raise _FactProblem(("value",), f"unknown parameter {raw_value.param!r} (facts "
                                               f"parameters: {known})")
            raw_value = params[raw_value.param]
        const = raw_value
        if isinstance(const, bool):
            ctype = FactType("bool")
        elif isinstance(const, int):
            ctype = FactType("int")
        elif isinstance(const, float):
            ctype = FactType("number")
        else:
            ctype = FactType("text")

        def constant(ctx: EvalContext) -> FactResult:
            return const, ()
        return CompiledFact(name, ctype, deps, (), False, constant)

    if kind == "codelist_available":
        ids = _codelist_ids(fdef.codelist, ("codelist",), codelists)
        available = any(codelists[cid].codes for cid in ids)

        def codelist_available(ctx: EvalContext) -> FactResult:
            return available, ()
        return CompiledFact(name, FactType("bool"), deps, tuple(ids), False, codelist_available)

    window_fn = make_window(
        _resolve_days(fdef.within_days, params, ("within_days",)), fdef.since, fdef.until,
        fdef.window, fdef.from_,
    )
    if fdef.since is not None and fdef.from_ is not None:
        raise _FactProblem(("from",), "use since (strictly after) or from (on or after), not both")
    for ref, key in ((fdef.since, "since"), (fdef.from_, "from"), (fdef.until, "until")):
        if ref is not None and types_so_far[ref].kind != "date":
            raise _FactProblem((key,), f"{key} needs a date fact; {ref!r} is "
                                       f"{types_so_far[ref].describe()}")
    if fdef.window is not None and (
        fdef.within_days is not None or fdef.since or fdef.from_ or fdef.until
    ):
        raise _FactProblem(("window",), "window replaces within_days/since/until; use one")
    reads_ahead = fdef.window == "after_as_of"

    if kind == "latest_of":
        if not fdef.categories:
            raise _FactProblem(("categories",), "latest_of needs categories: {name: codelist}")
        if fdef.where:
            raise _FactProblem(("where",), "latest_of reads events; 'where' does not apply")
        cats: list[tuple[str, int]] = []
        all_ids: list[str] = []
        for cat, value in fdef.categories.items():
            ids = _codelist_ids(value, ("categories", cat), codelists)
            all_ids += ids
            codes = frozenset(c for cid in ids for c in codelists[cid].codes)
            cats.append((cat, match.group_for(frozenset(ids), codes)))
        names = tuple(c for c, _ in cats)
        scale = tuple(fdef.scale) if fdef.scale else None
        if scale is not None and sorted(scale) != sorted(names):
            raise _FactProblem(("scale",), f"scale must list exactly the categories "
                                           f"({', '.join(names)})")
        cat_groups = tuple(cats)
        cat_gids = frozenset(gid for _, gid in cats)

        def latest_of(ctx: EvalContext) -> FactResult:
            groups = ctx.groups
            if not groups.keys() & cat_gids:
                return None, ()
            bounds = window_fn(ctx)
            if bounds is None:
                return None, ()
            best: Any = None
            best_cat: str | None = None
            for cat, gid in cat_groups:
                items = groups.get(gid)
                if not items:
                    continue
                found = select(items, bounds, _DATE_OF["events"], None)
                if found and (best is None or found[-1].date > best.date):
                    best, best_cat = found[-1], cat
            return (best_cat, (best,)) if best is not None else (None, ())

        return CompiledFact(name, FactType("category", names, scale), deps, tuple(all_ids),
                            reads_ahead, latest_of)

    # exists / count / latest_date / first_date / latest_value
    source = fdef.source
    where = dict(fdef.where or {})
    allowed_where = WHERE_FIELDS[source]
    for key, wanted in where.items():
        if key not in allowed_where:
            raise _FactProblem(("where", key), f"{source} can be filtered on "
                                               f"{', '.join(allowed_where)}; not {key!r}")
        if not isinstance(wanted, allowed_where[key]):
            raise _FactProblem(("where", key), f"where {key} must be a "
                                               f"{allowed_where[key].__name__}")
    keep = make_where(where)
    value_field = VALUE_FIELDS[source][0]
    if fdef.field is not None:
        if kind != "latest_value" or fdef.field not in VALUE_FIELDS[source]:
            raise _FactProblem(("field",), f"field applies to latest_value only, one of "
                                           f"{', '.join(VALUE_FIELDS[source])}")
        value_field = fdef.field
    date_of = _DATE_OF[source]
    ftype = _ITEM_TYPES[kind]

    if source == "events" and fdef.codelist is None:
        def over_all_events(ctx: EvalContext) -> FactResult:
            bounds = window_fn(ctx)
            if bounds is None:
                return reduce_items(kind, [], date_of, value_field)
            return reduce_items(kind, select(ctx.events, bounds, date_of, keep), date_of,
                                value_field)

        return CompiledFact(name, ftype, deps, (), reads_ahead, over_all_events)

    if source == "events":
        ids = _codelist_ids(fdef.codelist, ("codelist",), codelists)
        codes = frozenset(c for cid in ids for c in codelists[cid].codes)
        gid = match.group_for(frozenset(ids), codes)

        nothing = reduce_items(kind, [], date_of, value_field)

        def over_events(ctx: EvalContext) -> FactResult:
            items = ctx.groups.get(gid)
            if not items:  # the common case: the record has no event of these codelists
                return nothing
            bounds = window_fn(ctx)
            if bounds is None:
                return nothing
            return reduce_items(kind, select(items, bounds, date_of, keep), date_of, value_field)

        return CompiledFact(name, ftype, deps, tuple(ids), reads_ahead, over_events)

    if fdef.codelist is not None:
        raise _FactProblem(("codelist",), f"{source} are not coded; codelist does not apply")

    no_items = reduce_items(kind, [], date_of, value_field)

    def over_items(ctx: EvalContext) -> FactResult:
        if not getattr(ctx.record, source):
            return no_items
        bounds = window_fn(ctx)
        if bounds is None:
            return no_items
        matched = select(ctx.items(source), bounds, date_of, keep)
        return reduce_items(kind, matched, date_of, value_field)

    return CompiledFact(name, ftype, deps, (), reads_ahead, over_items)


# -- rulesets ---------------------------------------------------------------------------------


def _compile_ruleset(
    model: RulesetFile,
    raw: Any,
    file: str,
    params: Mapping[str, Any],
    fact_types: Mapping[str, FactType],
    codelists: CodelistSet,
    seen_rules: dict[str, str],
    problems: _Problems,
) -> CompiledRuleset:
    rules: list[CompiledRule] = []
    named = dict(model.conditions)
    for cname, ccond in named.items():  # check each named condition where it is written
        at: tuple[int | str, ...] = ("conditions", cname)
        try:
            compile_condition(_expand(ccond, named, (), (cname,)), fact_types, params)
        except ConditionError as ce:
            problems.add(locate(raw, (*at, *ce.path), file), ce.message, f"condition {cname}")
    if problems.errors:
        return CompiledRuleset(model, file, params, ())
    for i, rule in enumerate(model.rules):
        where = ("rules", i)
        loc = locate(raw, where, file)
        label = f"rule {rule.id}"
        if rule.id in seen_rules:
            problems.add(locate(raw, (*where, "id"), file),
                         f"duplicate rule id (first defined at {seen_rules[rule.id]})", label)
            continue
        seen_rules[rule.id] = str(locate(raw, (*where, "id"), file))
        if model.hit_policy == "priority" and rule.priority is None:
            problems.add(loc, "rules under the priority hit policy need a priority", label)
        for key, value in rule.then.items():
            _check_output(model, key, value, codelists, raw, (*where, "then", key), file, label,
                          problems)
        try:
            if named:
                rule = rule.model_copy(update={"when": _expand(rule.when, named, (), ())})
            cond = compile_condition(rule.when, fact_types, params)
        except ConditionError as ce:
            problems.add(locate(raw, (*where, "when", *ce.path), file), ce.message, label)
            continue
        rules.append(CompiledRule(model.ruleset, rule, cond, loc))
    return CompiledRuleset(model, file, params, tuple(rules))


def _expand(cond: Condition, named: Mapping[str, Condition], path: tuple[int | str, ...],
            trail: tuple[str, ...]) -> Condition:
    """``cond`` with every ``{condition: NAME}`` replaced by the named condition itself."""
    if isinstance(cond, ConditionRef):
        name = cond.condition
        if name not in named:
            known = ", ".join(sorted(named)) or "none"
            raise ConditionError((*path, "condition"), f"unknown condition {name!r} (this "
                                                       f"ruleset's named conditions: {known})")
        if name in trail:
            cycle = " -> ".join((*trail[trail.index(name):], name))
            raise ConditionError((*path, "condition"), f"named conditions refer to each other "
                                                       f"in a cycle: {cycle}")
        return _expand(named[name], named, path, (*trail, name))
    # model_construct: the parts are validated models already.
    if isinstance(cond, AllOf):
        return AllOf.model_construct(all=[_expand(c, named, (*path, "all", i), trail)
                                          for i, c in enumerate(cond.all)])
    if isinstance(cond, AnyOf):
        return AnyOf.model_construct(any=[_expand(c, named, (*path, "any", i), trail)
                                          for i, c in enumerate(cond.any)])
    if isinstance(cond, Not):
        return Not.model_construct(not_=_expand(cond.not_, named, (*path, "not"), trail))
    return cond


def _check_output(model: RulesetFile, key: str, value: Any, codelists: CodelistSet, raw: Any,
                  path: Sequence[int | str], file: str, label: str, problems: _Problems) -> None:
    out = model.outputs.get(key)
    loc = locate(raw, tuple(path), file)
    if out is None:
        problems.add(loc, f"output {key!r} is not declared in this ruleset's outputs "
                          f"({', '.join(model.outputs)})", label)
        return
    if out.type == "bool":
        if not isinstance(value, bool):
            problems.add(loc, f"output {key!r} is a bool; got {value!r}", label)
    elif out.type == "category":
        if out.values is None or value not in out.values:
            problems.add(loc, f"{value!r} is not a value of output {key!r} "
                              f"({', '.join(out.values or [])})", label)
    elif out.type == "code":
        code = str(value)
        if codelists.term(code) is None:
            problems.add(loc, f"output {key!r} recommends code {code}, which is in no codelist",
                         label)
    elif not isinstance(value, str):
        problems.add(loc, f"output {key!r} is text; got {value!r}", label)


def _require_record(record: object) -> None:
    """A :class:`RecordError` (not an AttributeError deep inside) for a record of another type."""
    from .record import PatientRecord

    if not isinstance(record, PatientRecord):
        from .errors import RecordError

        raise RecordError(None, "(record)", f"expected a PatientRecord, got "
                          f"{type(record).__name__} (build one with PatientRecord.from_dict)")
