"""Load a rulebook: read and validate its files, resolve them into the rule model.

:func:`load_rulebook` (``int_rules.load``) reads the manifest, codelists, facts, pathway,
rulesets and an INT's parameter overrides; the pydantic language models check their shape
and :mod:`int_rules.model.resolve` their meaning. Every problem found is reported with its
``file:line:column`` and key; all problems found in one pass are raised together as
:class:`~int_rules.errors.RulesetErrors`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .codelists import load_codelists
from .engines.reference import compile_condition, compile_model
from .errors import Location, RulesetError
from .language.schema import (
    FactsFile,
    OverridesFile,
    Parameter,
    RulebookManifest,
    RulesetFile,
)
from .language.yamlsrc import load_yaml, locate, shown_path
from .model.nodes import RuleModel
from .model.resolve import Problems, pathway_table, resolve_decision, resolve_facts
from .pathway import load_pathway
from .rulebook import CompiledRule, CompiledRuleset, Rulebook, default_rulebook_dir

_M = TypeVar("_M", bound=BaseModel)

__all__ = ["load_rulebook"]


def _validate(model: type[_M], raw: Any, file: str, problems: Problems) -> _M | None:
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


def load_rulebook(
    directory: str | Path | None = None,
    overrides: str | Path | Mapping[str, Any] | None = None,
) -> Rulebook:
    """Load, validate and compile the rulebook in ``directory`` (default: the bundled one).

    ``overrides`` is an INT's parameter file (path) or a mapping ``{"ruleset.param": value}``.
    Raises :class:`~int_rules.errors.RulesetError` (or ``RulesetErrors``) naming file, line,
    column and key for every problem.
    """
    base = Path(directory) if directory is not None else default_rulebook_dir()
    manifest_path = base / "rulebook.yaml"
    shown = shown_path(manifest_path, base)
    if not manifest_path.is_file():
        raise RulesetError(Location(shown), "no rulebook manifest here (looked for "
                                            f"{manifest_path.resolve()})")
    problems = Problems()
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
    facts_shown = shown_path(facts_path, base)
    raw_facts = load_yaml(facts_path, facts_shown)
    digest.update(facts_path.read_bytes())
    facts_file = _validate(FactsFile, raw_facts, facts_shown, problems)

    # Pathway
    pathway_path = base / manifest.pathway
    digest.update(pathway_path.read_bytes())
    pathway = load_pathway(
        pathway_path,
        {cid: cl.codes for cid, cl in codelists.items()},
        display_name=shown_path(pathway_path, base),
    )

    # Rulesets (validate shape of all before stopping)
    ruleset_files: list[tuple[RulesetFile, Any, str]] = []
    for name in manifest.rulesets:
        path = base / name
        rs_shown = shown_path(path, base)
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
    facts = resolve_facts(facts_file, raw_facts, facts_shown, fact_params, codelists, pathway,
                          problems)
    problems.raise_if_any()

    fact_types = {f.name: f.type for f in facts}
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
        decision, resolved = resolve_decision(model, raw, rs_shown, params, fact_types,
                                              codelists, seen_rules, problems)
        rules = tuple(
            CompiledRule(model.ruleset, model.rules[r.index].model_copy(
                update={"when": r.expanded_when}) if model.conditions else model.rules[r.index],
                compile_condition(r.node.condition, fact_types),
                locate(raw, ("rules", r.index), rs_shown), r.node)
            for r in resolved
        )
        rulesets.append(CompiledRuleset(model, rs_shown, params, rules, decision))

    for key in override_values:
        if key not in used_overrides:
            problems.add(override_locs.get(key), f"no parameter {key!r} to override "
                                                 "(keys are '<ruleset>.<parameter>')", key)
    problems.raise_if_any()

    for key in sorted(override_values):
        digest.update(f"override {key}={override_values[key]!r}\n".encode())
    sha256 = digest.hexdigest()

    rule_model = RuleModel(
        rulebook=manifest.rulebook,
        version=manifest.version,
        sha256=sha256,
        facts=facts,
        decisions=tuple(rs.decision for rs in rulesets),
        pathway=pathway_table(pathway),
        overrides=tuple((k, tuple(v) if isinstance(v, list) else v)
                        for k, v in sorted(override_values.items())),
    )
    from .engines.generated import generate
    from .review.approvals import attach_approvals

    reference = compile_model(rule_model)
    return attach_approvals(Rulebook(
        manifest=manifest,
        directory=base,
        facts_file=facts_file,
        facts={f.name: f for f in facts},
        fact_order=tuple(f.name for f in facts),
        fact_params=fact_params,
        rulesets=tuple(rulesets),
        codelists=codelists,
        pathway=pathway,
        sha256=sha256,
        overrides=dict(override_values),
        model=rule_model,
        reference=reference,
        generated=generate(rule_model, rulesets, reference.match_groups, pathway.codes),
    ))


def _load_overrides(
    overrides: str | Path | Mapping[str, Any] | None,
    manifest: RulebookManifest,
    base: Path,
    problems: Problems,
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
    problems: Problems,
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
