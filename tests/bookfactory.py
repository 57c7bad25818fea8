"""Build small throwaway rulebooks in a temporary directory, for testing the language itself.

The bundled codelists and pathway are reused (by absolute path); facts and rulesets are given
as YAML text, so each test states exactly the rules it exercises.
"""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import int_rules
from int_rules.language.schema import RulesetFile
from int_rules.rulebook import Rulebook, default_rulebook_dir

REPO = default_rulebook_dir().parent


def write_book(tmp: Path, facts: str, rulesets: dict[str, str], name: str = "book") -> Path:
    """Write a rulebook directory and return it."""
    base = tmp / name
    base.mkdir(parents=True, exist_ok=True)
    (base / "facts.yaml").write_text(textwrap.dedent(facts))
    for rid, text in rulesets.items():
        (base / f"{rid}.yaml").write_text(textwrap.dedent(text))
    files = "\n".join(f"  - {rid}.yaml" for rid in rulesets)
    (base / "rulebook.yaml").write_text(
        "rulebook: test-book\ntitle: Test\nversion: 0.0.1\nfacts: facts.yaml\n"
        f"pathway: {REPO / 'rulesets' / 'pathway.yaml'}\ncodelists: {REPO / 'codelists'}\n"
        f"rulesets:\n{files}\n"
    )
    return base


def make_book(tmp: Path, facts: str, rulesets: dict[str, str], **kw: object) -> Rulebook:
    return int_rules.load(write_book(tmp, facts, rulesets), **kw)  # type: ignore[arg-type]


CITE = "cite: {source: 001_0d4f5c8ba846d66c.txt, section: S, quote: q}"


def ruleset(rid: str, rules: str, outputs: str, hit_policy: str = "collect",
            parameters: str = "{}") -> str:
    """A ruleset's YAML from its rules block (already indented by 2)."""
    return (
        f"ruleset: {rid}\ntitle: T\nversion: 0.0.1\nstatus: draft\n"
        f"guidance: [001_0d4f5c8ba846d66c.txt]\nhit_policy: {hit_policy}\ndescription: D\n"
        f"parameters: {parameters}\noutputs:\n{outputs}\nrules:\n{rules}"
    )


def with_ruleset(base: Rulebook, definition: RulesetFile) -> Rulebook:
    """``base`` with one ruleset (a validated model, no YAML file) in place of its own: its
    rule model, the reference engine's compiled rules and the generated function replaced."""
    from int_rules.engines.reference import compile_condition
    from int_rules.errors import Location
    from int_rules.model.resolve import Problems, resolve_decision
    from int_rules.rulebook import CompiledRule, CompiledRuleset

    problems = Problems()
    types = base.model.fact_types
    decision, resolved = resolve_decision(definition, None, "gen.yaml", {}, types,
                                          base.codelists, {}, problems)
    problems.raise_if_any()
    rules = tuple(CompiledRule(definition.ruleset, definition.rules[r.index],
                               compile_condition(r.node.condition, types),
                               Location("gen.yaml", r.index + 1), r.node) for r in resolved)
    from int_rules.engines.generated import generate

    rulesets = (CompiledRuleset(definition, "gen.yaml", {}, rules, decision),)
    model = dataclasses.replace(base.model, decisions=(decision,))
    return dataclasses.replace(
        base, rulesets=rulesets, model=model,
        generated=generate(model, rulesets, base.match_groups, base.pathway.codes))
