"""The rule model: one node type per fact kind, every engine translating each, stable JSON."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest

import int_rules
from int_rules.engines.reference import FACT_COMPILERS
from int_rules.language.schema import FactDef
from int_rules.model import nodes as n
from int_rules.model.__main__ import main
from int_rules.model.resolve import FACT_RESOLVERS

BOOK = int_rules.load()


def test_every_fact_kind_has_a_resolver_and_every_node_a_reference_translation() -> None:
    kinds = set(typing.get_args(FactDef.model_fields["kind"].annotation))
    assert set(FACT_RESOLVERS) == kinds
    node_types = {cls for cls in vars(n).values()
                  if isinstance(cls, type) and issubclass(cls, n.Fact) and cls is not n.Fact}
    assert set(FACT_COMPILERS) == node_types


def test_nodes_are_immutable() -> None:
    fact = BOOK.model.facts[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fact.name = "other"  # type: ignore[misc]


def test_nullability_is_decided_once_per_fact() -> None:
    by_kind: dict[str, set[bool]] = {}
    for fact in BOOK.model.facts:
        by_kind.setdefault(fact.kind, set()).add(fact.nullable)
    assert by_kind["exists"] == {False} and by_kind["count"] == {False}
    assert by_kind["latest_date"] == {True} and by_kind["latest_of"] == {True}
    assert by_kind["age"] == {False} and by_kind["derived"] == {False}


def test_windows_and_parameters_are_resolved_to_values() -> None:
    lookback = BOOK.fact_params["emergency_admission_lookback_days"]
    fact = BOOK.model.fact("emergency_admissions_recent")
    assert isinstance(fact, n.ItemFact) and fact.window.within_days == lookback
    local = int_rules.load(overrides={"facts.emergency_admission_lookback_days": 90})
    fact = local.model.fact("emergency_admissions_recent")
    assert isinstance(fact, n.ItemFact) and fact.window.within_days == 90


def test_the_model_prints_as_stable_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    first = capsys.readouterr().out
    assert first == int_rules.load().model.to_json() + "\n"
    data = json.loads(first)
    assert data["node"] == "RuleModel" and data["sha256"] == BOOK.sha256
    assert {f["name"] for f in data["facts"]} == set(BOOK.fact_order)
    rule = data["decisions"][0]["rules"][0]
    assert rule["location"].startswith("rulesets/") and rule["node"] == "Rule"


def test_a_bad_rulebook_is_a_located_error(tmp_path: typing.Any,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--rules", str(tmp_path)]) == 2
    assert "rulebook.yaml" in capsys.readouterr().err
