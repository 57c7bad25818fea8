"""The JSON Schema files in docs/schema/ match the language models (so editors validate right)."""

from __future__ import annotations

from int_rules.language.jsonschema import main, render_schemas


def test_committed_json_schema_is_current() -> None:
    assert main(["--check"]) == 0, "run: python -m int_rules.language.jsonschema"


def test_schema_describes_rules_and_records() -> None:
    schemas = render_schemas()
    assert '"hit_policy"' in schemas["ruleset.schema.json"]
    assert '"collect"' in schemas["ruleset.schema.json"]
    assert '"events"' in schemas["record.schema.json"]
