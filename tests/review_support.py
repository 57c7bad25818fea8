"""Helpers for the review-pack tests: copy the bundled rulebook to a temporary folder, break it.

Each lint test copies ``rulesets/`` and ``codelists/`` (and, where it needs them, the hazard log)
into ``tmp_path``, changes one thing, and checks lint reports exactly that. Toy facts and toy
rulesets are added to the copy, so the tests do not depend on how the real rulesets are worded.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from int_rules.rulebook import Rulebook, default_rulebook_dir, load

REPO = default_rulebook_dir().parent
HAZARD_LOG = REPO / "docs" / "safety" / "hazard-log.yaml"
CITE = {"source": "001_0d4f5c8ba846d66c.txt", "section": "Using This Toolkit",
        "quote": "people living with frailty"}

#: Facts the toy rulesets read (added to the copied facts.yaml).
TOY_FACTS: dict[str, Any] = {
    "toy_age": {"kind": "age", "description": "Age (toy)."},
    "toy_frailty": {"kind": "latest_of", "description": "Frailty (toy).",
                    "categories": {"severe": "frailty_severe", "moderate": "frailty_moderate",
                                   "mild": "frailty_mild"},
                    "scale": ["mild", "moderate", "severe"]},
    "toy_care_home": {"kind": "exists", "codelist": "care_home_resident",
                      "description": "Care home code (toy)."},
    "toy_last_review": {"kind": "latest_date", "codelist": "mdt_review",
                        "description": "Latest MDT review (toy)."},
    "toy_admissions": {"kind": "count", "source": "admissions", "where": {"emergency": True},
                       "description": "Emergency admissions (toy)."},
    "toy_old": {"kind": "derived", "description": "Old (toy).",
                "when": {"fact": "toy_age", "at_least": 80}},
}


@functools.cache
def bundled() -> Rulebook:
    """The bundled rulebook, loaded once for all the review tests (it is immutable)."""
    return load()


def copy_rulebook(tmp: Path, hazards: bool = False, all_rulesets: bool = False) -> Path:
    """Copy the bundled rulesets and codelists (and the hazard log) into ``tmp``; return the
    rulebook folder. Toy facts are added to the copy's facts.yaml. Unless ``all_rulesets``, the
    copy's manifest keeps only the first ruleset (YAML parsing dominates a lint run, so small
    copies keep the tests fast)."""
    shutil.copytree(REPO / "rulesets", tmp / "rulesets")
    shutil.copytree(REPO / "codelists", tmp / "codelists")
    if hazards:
        (tmp / "docs" / "safety").mkdir(parents=True)
        shutil.copy(HAZARD_LOG, tmp / "docs" / "safety" / "hazard-log.yaml")
    edit_yaml(tmp / "rulesets" / "facts.yaml", lambda d: d["facts"].update(TOY_FACTS))
    if not all_rulesets:
        edit_yaml(tmp / "rulesets" / "rulebook.yaml",
                  lambda m: m.update({"rulesets": m["rulesets"][:1]}))
    return tmp / "rulesets"


def edit_yaml(path: Path, change: Callable[[Any], Any]) -> None:
    """Load a YAML file, let ``change`` mutate it in place (its result is ignored), write it
    back."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100),
                    encoding="utf-8")


def rule(rule_id: str, when: Any, then: dict[str, Any], **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rule_id, "title": f"Toy rule {rule_id}", "when": when,
                           "then": then, "provenance": "guidance", "cite": dict(CITE),
                           "hazards": ["HAZ-001"]}
    out.update(more)
    return out


def add_ruleset(rules_dir: Path, ruleset_id: str, hit_policy: str,
                rules: list[dict[str, Any]], complete: bool = False,
                parameters: dict[str, Any] | None = None,
                outputs: dict[str, Any] | None = None) -> Path:
    """Write a toy ruleset into the copied rulebook and list it in the manifest."""
    doc: dict[str, Any] = {
        "ruleset": ruleset_id, "title": f"Toy {ruleset_id}", "version": "0.1.0",
        "status": "draft", "guidance": [CITE["source"]], "hit_policy": hit_policy,
    }
    if complete:
        doc["complete"] = True
    doc["description"] = "A toy decision for testing lint."
    doc["parameters"] = parameters or {}
    doc["outputs"] = outputs or {"level": {"type": "category", "values": ["a", "b", "c", "d"],
                                           "description": "A toy outcome."}}
    doc["rules"] = rules
    path = rules_dir / f"{ruleset_id}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=100), encoding="utf-8")
    edit_yaml(rules_dir / "rulebook.yaml", lambda m: m["rulesets"].append(path.name))
    return path


def add_codelist(tmp: Path, codelist_id: str, rows: list[tuple[str, str, bool]]) -> None:
    """Add a codelist CSV and its manifest entry (with the right SHA-256) to the copy."""
    body = _csv(rows)
    csv_path = tmp / "codelists" / f"{codelist_id}.csv"
    csv_path.write_text(body, encoding="utf-8", newline="\n")
    entry = {"id": codelist_id, "title": f"Toy {codelist_id}", "file": csv_path.name,
             "source": {"kind": "local", "ref": "test"}, "verified": all(r[2] for r in rows)
             and bool(rows), "description": "A toy codelist.",
             "sha256": hashlib.sha256(csv_path.read_bytes()).hexdigest()}
    edit_yaml(tmp / "codelists" / "codelists.yaml", lambda m: m["codelists"].append(entry))


def set_codelist_rows(tmp: Path, codelist_id: str, rows: list[tuple[str, str, bool]]) -> None:
    """Replace the codes of an existing codelist in the copy (and its SHA-256)."""
    body = _csv(rows)
    manifest = tmp / "codelists" / "codelists.yaml"
    data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    for entry in data["codelists"]:
        if entry["id"] == codelist_id:
            csv_path = tmp / "codelists" / entry["file"]
            csv_path.write_text(body, encoding="utf-8", newline="\n")
            entry["sha256"] = hashlib.sha256(csv_path.read_bytes()).hexdigest()
            entry["verified"] = bool(rows) and all(r[2] for r in rows)
    manifest.write_text(yaml.safe_dump(data, sort_keys=False, width=100), encoding="utf-8")


def read_rows(tmp: Path, codelist_id: str) -> list[tuple[str, str, bool]]:
    """The (code, term, verified) rows of a codelist in the copy."""
    text = (tmp / "codelists" / f"{codelist_id}.csv").read_text(encoding="utf-8")
    return [(r[0], r[1], r[2] == "true") for r in list(csv.reader(io.StringIO(text)))[1:]]


def _csv(rows: list[tuple[str, str, bool]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["code", "term", "verified"])
    for code, term, ok in sorted(rows):
        writer.writerow([code, term, "true" if ok else "false"])
    return out.getvalue()
