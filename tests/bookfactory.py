"""Build small throwaway rulebooks in a temporary directory, for testing the language itself.

The bundled codelists and pathway are reused (by absolute path); facts and rulesets are given
as YAML text, so each test states exactly the rules it exercises.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import int_rules
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
