"""The resolver: YAML language models (pydantic, with their source positions) -> rule model.

:func:`resolve_facts` and :func:`resolve_decision` check the meaning of what the schema let
through (every fact, codelist and parameter named exists; operators fit the fact's type; day
counts fit the calendar) and build the nodes of :mod:`int_rules.model.nodes`. Every problem is
added to a :class:`Problems` with its ``file:line:column`` and key, so one load reports all of
them. Each fact kind has one resolver in :data:`FACT_RESOLVERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..codelists import CodelistSet
from ..errors import Location, RulesetError, RulesetErrors
from ..language.schema import (
    AllOf,
    AnyOf,
    ConditionRef,
    FactDef,
    FactsFile,
    Not,
    RulesetFile,
)
from ..language.schema import Condition as YamlCondition
from ..language.yamlsrc import locate
from ..pathway import Pathway
from . import nodes as n
from .conditions import ConditionError, resolve_condition
from .nodes import MAX_DAYS, ValueType
from .vocabulary import ATTRIBUTE_NULLABLE, ATTRIBUTE_TYPES, VALUE_FIELDS, WHERE_FIELDS

__all__ = [
    "FACT_RESOLVERS",
    "Problems",
    "expand_named",
    "pathway_table",
    "resolve_decision",
    "resolve_facts",
    "yaml_facts_read",
]


class Problems:
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


class FactProblem(Exception):
    """A problem in one fact definition, ``path`` inside it."""

    def __init__(self, path: tuple[int | str, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def yaml_facts_read(cond: YamlCondition) -> list[str]:
    """Every fact a YAML condition reads (tested facts and fact operands), in order."""
    from ..language.schema import FactRef, Leaf

    out: list[str] = []

    def walk(c: YamlCondition) -> None:
        if isinstance(c, Leaf):
            operand = c.operand
            for name in (c.fact, operand.fact if isinstance(operand, FactRef) else None):
                if name is not None and name not in out:
                    out.append(name)
        elif isinstance(c, AllOf):
            for p in c.all:
                walk(p)
        elif isinstance(c, AnyOf):
            for p in c.any:
                walk(p)
        elif isinstance(c, Not):
            walk(c.not_)

    walk(cond)
    return out


# -- facts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FactInput:
    """What a fact kind's resolver is given."""

    name: str
    fdef: FactDef
    params: Mapping[str, Any]
    codelists: CodelistSet
    pathway: Pathway
    types: Mapping[str, ValueType]  # the facts before this one
    deps: tuple[str, ...]


def resolve_facts(facts_file: FactsFile, raw: Any, file: str, params: Mapping[str, Any],
                  codelists: CodelistSet, pathway: Pathway,
                  problems: Problems) -> tuple[n.Fact, ...]:
    """Every fact, resolved, in dependency order (an anchor or operand before its user)."""
    defs = facts_file.facts
    deps: dict[str, list[str]] = {}
    for name, fdef in defs.items():
        refs = [r for r in (fdef.since, fdef.from_, fdef.until) if r is not None]
        if fdef.when is not None:
            refs += yaml_facts_read(fdef.when)
        deps[name] = refs
        for ref in refs:
            if ref not in defs:
                problems.add(locate(raw, ("facts", name), file),
                             f"fact {name!r} refers to unknown fact {ref!r}", f"facts.{name}")
    if problems.errors:
        return ()
    order = _topological(deps, raw, file, problems)
    if order is None:
        return ()
    resolved: dict[str, n.Fact] = {}
    for name in order:
        if any(dep not in resolved for dep in deps[name]):
            continue  # a fact it reads has a problem, reported there
        fdef = defs[name]
        where = ("facts", name)
        inp = FactInput(name, fdef, params, codelists, pathway,
                        {k: f.type for k, f in resolved.items()}, tuple(deps[name]))
        try:
            _check_keys(fdef)
            fact = FACT_RESOLVERS[fdef.kind](inp)
        except FactProblem as p:
            problems.add(locate(raw, (*where, *p.path), file), p.message, f"facts.{name}")
            continue
        except ConditionError as ce:
            problems.add(locate(raw, (*where, "when", *ce.path), file), ce.message,
                         f"facts.{name}")
            continue
        resolved[name] = fact
    return tuple(resolved[name] for name in order if name in resolved)


def _topological(deps: Mapping[str, list[str]], raw: Any, file: str,
                 problems: Problems) -> list[str] | None:
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


_ITEM_KINDS = ("exists", "count", "latest_date", "first_date", "latest_value")
_ITEM_TYPES = {
    "exists": (ValueType("bool"), False),
    "count": (ValueType("int"), False),
    "latest_date": (ValueType("date"), True),
    "first_date": (ValueType("date"), True),
    "latest_value": (ValueType("number"), True),
}
_KIND_KEYS: dict[str, set[str]] = {
    "age": set(),
    "attribute": {"field"},
    "derived": {"when"},
    "pathway": {"field", "codelist"},
    "latest_of": {"categories", "scale", "within_days", "since", "from_", "until", "window"},
    "constant": {"value"},
    "codelist_available": {"codelist"},
    "death_after_as_of": set(),
}
_ITEM_KEYS = {"source", "codelist", "where", "within_days", "since", "from_", "until", "window",
              "field"}
_ALWAYS = {"kind", "description", "provenance", "cite"}


def _check_keys(fdef: FactDef) -> None:
    kind = fdef.kind
    allowed = _ALWAYS | (_ITEM_KEYS if kind in _ITEM_KINDS else _KIND_KEYS[kind])
    for key, info in type(fdef).model_fields.items():
        if key not in allowed and getattr(fdef, key) != info.default:
            raise FactProblem((key,), f"{key!r} does not apply to a {kind} fact")


def _code_set(value: str | list[str] | None, path: tuple[int | str, ...],
              codelists: CodelistSet) -> n.CodeSet:
    ids = [value] if isinstance(value, str) else list(value or [])
    for i, cid in enumerate(ids):
        if cid not in codelists:
            sub = path if isinstance(value, str) else (*path, i)
            raise FactProblem(sub, f"unknown codelist {cid!r} (see codelists/codelists.yaml)")
    return n.CodeSet(tuple(ids), frozenset(c for cid in ids for c in codelists[cid].codes))


def _days(value: Any, params: Mapping[str, Any], path: tuple[int | str, ...]) -> int | None:
    if value is None:
        return None
    source = ""
    if hasattr(value, "param"):
        if value.param not in params:
            raise FactProblem(path, f"unknown parameter {value.param!r} (facts parameters: "
                                    f"{', '.join(sorted(params)) or 'none'})")
        source = f" (parameter {value.param})"
        value = params[value.param]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FactProblem(path, f"within_days must be a whole number of days >= 0, got "
                                f"{value!r}{source}")
    if value > MAX_DAYS:
        raise FactProblem(path, f"within_days of {value} days{source} is longer than the "
                                f"calendar (at most {MAX_DAYS} days, 0001-01-01 to 9999-12-31)")
    return int(value)


def _window(inp: FactInput) -> n.Window:
    fdef = inp.fdef
    within = _days(fdef.within_days, inp.params, ("within_days",))
    if fdef.since is not None and fdef.from_ is not None:
        raise FactProblem(("from",), "use since (strictly after) or from (on or after), not both")
    for ref, key in ((fdef.since, "since"), (fdef.from_, "from"), (fdef.until, "until")):
        if ref is not None and inp.types[ref].kind != "date":
            raise FactProblem((key,), f"{key} needs a date fact; {ref!r} is "
                                      f"{inp.types[ref].describe()}")
    if fdef.window is not None and (
        fdef.within_days is not None or fdef.since or fdef.from_ or fdef.until
    ):
        raise FactProblem(("window",), "window replaces within_days/since/until; use one")
    return n.Window(within, fdef.since, fdef.from_, fdef.until, fdef.window)


def _age(inp: FactInput) -> n.Fact:
    return n.AgeFact(name=inp.name, type=ValueType("int"), nullable=False, deps=inp.deps)


def _attribute(inp: FactInput) -> n.Fact:
    field = inp.fdef.field or ""
    if field not in ATTRIBUTE_TYPES:
        raise FactProblem(("field",), f"attribute must be one of "
                                      f"{', '.join(ATTRIBUTE_TYPES)}, got {field!r}")
    return n.AttributeFact(name=inp.name, type=ATTRIBUTE_TYPES[field],
                           nullable=ATTRIBUTE_NULLABLE[field], deps=inp.deps, field=field)


def _derived(inp: FactInput) -> n.Fact:
    if inp.fdef.when is None:
        raise FactProblem(("when",), "a derived fact needs a 'when' condition")
    cond = resolve_condition(inp.fdef.when, inp.types, inp.params)
    return n.DerivedFact(name=inp.name, type=ValueType("bool"), nullable=False, deps=inp.deps,
                         condition=cond)


def _pathway(inp: FactInput) -> n.Fact:
    fdef, pathway = inp.fdef, inp.pathway
    pfield = fdef.field
    common: dict[str, Any] = {"name": inp.name, "deps": inp.deps}
    if pfield == "state":
        if fdef.codelist is not None:
            raise FactProblem(("codelist",), "a pathway state fact takes no codelist")
        return n.PathwayFact(**common, type=ValueType("category", tuple(pathway.fact_domain())),
                             nullable=False, field="state")
    if pfield == "entered":
        return n.PathwayFact(**common, type=ValueType("date"), nullable=True, field="entered")
    if pfield == "findings":
        return n.PathwayFact(**common, type=ValueType("int"), nullable=False, field="findings")
    if pfield == "may_record":
        codes = _code_set(fdef.codelist, ("codelist",), inp.codelists)
        if not codes.codes or not codes.codes <= pathway.codes:
            raise FactProblem(("codelist",), "may_record needs a codelist of pathway codes")
        return n.PathwayFact(**common, type=ValueType("bool"), nullable=False,
                             field="may_record", codes=codes)
    raise FactProblem(("field",), f"a pathway fact's field is state, entered, findings or "
                                  f"may_record, got {pfield!r}")


def _constant(inp: FactInput) -> n.Fact:
    raw_value = inp.fdef.value
    if raw_value is None:
        raise FactProblem(("value",), "a constant fact needs value: {param: NAME} or a value")
    if hasattr(raw_value, "param"):
        if raw_value.param not in inp.params:
            known = ", ".join(sorted(inp.params)) or "none"
            raise FactProblem(("value",), f"unknown parameter {raw_value.param!r} (facts "
                                          f"parameters: {known})")
        raw_value = inp.params[raw_value.param]
    const = raw_value
    if isinstance(const, bool):
        ctype = ValueType("bool")
    elif isinstance(const, int):
        ctype = ValueType("int")
    elif isinstance(const, float):
        ctype = ValueType("number")
    else:
        ctype = ValueType("text")
    return n.ConstantFact(name=inp.name, type=ctype, nullable=False, deps=inp.deps,
                          value=const)


def _codelist_available(inp: FactInput) -> n.Fact:
    codes = _code_set(inp.fdef.codelist, ("codelist",), inp.codelists)
    return n.CodelistAvailableFact(name=inp.name, type=ValueType("bool"), nullable=False,
                                   deps=inp.deps, codes=codes, available=bool(codes.codes))


def _death_after_as_of(inp: FactInput) -> n.Fact:
    return n.DeathAfterAsOfFact(name=inp.name, type=ValueType("bool"), nullable=False,
                                deps=inp.deps)


def _latest_of(inp: FactInput) -> n.Fact:
    fdef = inp.fdef
    window = _window(inp)
    if not fdef.categories:
        raise FactProblem(("categories",), "latest_of needs categories: {name: codelist}")
    if fdef.where:
        raise FactProblem(("where",), "latest_of reads events; 'where' does not apply")
    cats = tuple((cat, _code_set(value, ("categories", cat), inp.codelists))
                 for cat, value in fdef.categories.items())
    names = tuple(c for c, _ in cats)
    scale = tuple(fdef.scale) if fdef.scale else None
    if scale is not None and sorted(scale) != sorted(names):
        raise FactProblem(("scale",), f"scale must list exactly the categories "
                                      f"({', '.join(names)})")
    return n.LatestOfFact(name=inp.name, type=ValueType("category", names, scale), nullable=True,
                          deps=inp.deps, categories=cats, window=window)


def _items(inp: FactInput) -> n.Fact:
    fdef = inp.fdef
    kind = fdef.kind
    window = _window(inp)
    source = fdef.source
    where = dict(fdef.where or {})
    allowed_where = WHERE_FIELDS[source]
    for key, wanted in where.items():
        if key not in allowed_where:
            raise FactProblem(("where", key), f"{source} can be filtered on "
                                              f"{', '.join(allowed_where)}; not {key!r}")
        if not isinstance(wanted, allowed_where[key]):
            raise FactProblem(("where", key), f"where {key} must be a "
                                              f"{allowed_where[key].__name__}")
    value_field = VALUE_FIELDS[source][0]
    if fdef.field is not None:
        if kind != "latest_value" or fdef.field not in VALUE_FIELDS[source]:
            raise FactProblem(("field",), f"field applies to latest_value only, one of "
                                          f"{', '.join(VALUE_FIELDS[source])}")
        value_field = fdef.field
    codes: n.CodeSet | None = None
    if source == "events":
        if fdef.codelist is not None:
            codes = _code_set(fdef.codelist, ("codelist",), inp.codelists)
    elif fdef.codelist is not None:
        raise FactProblem(("codelist",), f"{source} are not coded; codelist does not apply")
    ftype, nullable = _ITEM_TYPES[kind]
    return n.ItemFact(name=inp.name, type=ftype, nullable=nullable, deps=inp.deps,
                      item=kind, source=source, codes=codes,  # type: ignore[arg-type]
                      where=tuple(where.items()), window=window, value_field=value_field)


#: One resolver per fact kind (a new kind: one node type, one resolver here, one translation
#: per engine, and its spec cases).
FACT_RESOLVERS: Mapping[str, Callable[[FactInput], n.Fact]] = {
    "age": _age,
    "attribute": _attribute,
    "derived": _derived,
    "pathway": _pathway,
    "constant": _constant,
    "codelist_available": _codelist_available,
    "death_after_as_of": _death_after_as_of,
    "latest_of": _latest_of,
    **{kind: _items for kind in _ITEM_KINDS},
}


# -- decisions --------------------------------------------------------------------------------


def expand_named(cond: YamlCondition, named: Mapping[str, YamlCondition],
                 path: tuple[int | str, ...], trail: tuple[str, ...]) -> YamlCondition:
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
        return expand_named(named[name], named, path, (*trail, name))
    # model_construct: the parts are validated models already.
    if isinstance(cond, AllOf):
        return AllOf.model_construct(all=[expand_named(c, named, (*path, "all", i), trail)
                                          for i, c in enumerate(cond.all)])
    if isinstance(cond, AnyOf):
        return AnyOf.model_construct(any=[expand_named(c, named, (*path, "any", i), trail)
                                          for i, c in enumerate(cond.any)])
    if isinstance(cond, Not):
        return Not.model_construct(not_=expand_named(cond.not_, named, (*path, "not"), trail))
    return cond


@dataclass(frozen=True)
class ResolvedRule:
    """A rule node with the (expanded) YAML rule it came from and where it is written."""

    node: n.Rule
    index: int
    expanded_when: YamlCondition


def resolve_decision(model: RulesetFile, raw: Any, file: str, params: Mapping[str, Any],
                     fact_types: Mapping[str, ValueType], codelists: CodelistSet,
                     seen_rules: dict[str, str],
                     problems: Problems) -> tuple[n.Decision, tuple[ResolvedRule, ...]]:
    """One ruleset as a decision node; every problem added to ``problems``."""
    named = dict(model.conditions)
    outputs = tuple(n.Output(k, o.type, tuple(o.values) if o.values is not None else None)
                    for k, o in model.outputs.items())

    def decision(rules: Sequence[ResolvedRule]) -> n.Decision:
        return n.Decision(model.ruleset, model.version, model.status, model.hit_policy,
                          outputs, tuple(r.node for r in rules))

    for cname, ccond in named.items():  # check each named condition where it is written
        at: tuple[int | str, ...] = ("conditions", cname)
        try:
            resolve_condition(expand_named(ccond, named, (), (cname,)), fact_types, params)
        except ConditionError as ce:
            problems.add(locate(raw, (*at, *ce.path), file), ce.message, f"condition {cname}")
    if problems.errors:
        return decision(()), ()
    rules: list[ResolvedRule] = []
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
            when = expand_named(rule.when, named, (), ()) if named else rule.when
            cond = resolve_condition(when, fact_types, params)
        except ConditionError as ce:
            problems.add(locate(raw, (*where, "when", *ce.path), file), ce.message, label)
            continue
        node = n.Rule(rule.id, model.ruleset, rule.title, cond, tuple(rule.then.items()),
                      rule.priority, rule.provenance, n.condition_facts(cond), loc)
        rules.append(ResolvedRule(node, i, when))
    return decision(rules), tuple(rules)


def _check_output(model: RulesetFile, key: str, value: Any, codelists: CodelistSet, raw: Any,
                  path: Sequence[int | str], file: str, label: str, problems: Problems) -> None:
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


# -- the pathway ------------------------------------------------------------------------------


def pathway_table(pathway: Pathway) -> n.PathwayTable:
    """The loaded pathway as its table (states, steps with their codes, one cell per
    (state, step), same-day conflicts)."""
    d = pathway.definition
    findings = {f.id: n.PathwayFinding(f.id, f.severity, f.message) for f in d.findings}
    steps = tuple(n.PathwayStep(s.id, s.precedence,
                                None if s.codelists is None else pathway.step_codes[s.id])
                  for s in d.steps)
    cells = tuple(
        n.PathwayCell(state, t.step, t.to or state,
                      findings[t.finding_id] if t.finding_id else None)
        for t in d.transitions for state in t.from_
    )
    same_day = tuple(n.PathwaySameDay(sd.id, (sd.steps[0], sd.steps[1]), findings[sd.finding])
                     for sd in d.same_day)
    return n.PathwayTable(pathway.id, pathway.version, pathway.status, pathway.states,
                          pathway.initial, steps, cells, same_day)
