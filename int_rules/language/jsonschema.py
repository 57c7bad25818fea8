"""Export the JSON Schema of every file kind, and of the results, into ``docs/schema/``.

YAML editors (e.g. VS Code's YAML extension) validate rulesets as they are typed when pointed at
these schemas, e.g. with a first line
``# yaml-language-server: $schema=../docs/schema/ruleset.schema.json``.

Run ``python -m int_rules.language.jsonschema`` to write them, ``--check`` to verify they are
current (a test does this, so a schema change without regenerated files fails CI).

``assessment.schema.json`` is the format of ``Assessment.to_dict()`` (and of
``int-rules assess --format json``), from :mod:`int_rules.results_schema`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel

from ..bundle import project_root
from ..record import PatientRecord
from ..results_schema import assessment_json_schema
from .schema import FactsFile, OverridesFile, RulebookManifest, RulesetFile

__all__ = ["SCHEMAS", "main", "render_schemas"]

#: File name -> model, for every kind of file int_rules reads.
SCHEMAS: dict[str, type[BaseModel]] = {
    "rulebook.schema.json": RulebookManifest,
    "facts.schema.json": FactsFile,
    "ruleset.schema.json": RulesetFile,
    "overrides.schema.json": OverridesFile,
    "record.schema.json": PatientRecord,
}


def render_schemas() -> dict[str, str]:
    """Each schema file's text, deterministic (sorted keys, trailing newline)."""
    out = {}
    for name, model in SCHEMAS.items():
        schema = model.model_json_schema(by_alias=True)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        out[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    out["assessment.schema.json"] = json.dumps(assessment_json_schema(), indent=2,
                                               sort_keys=True) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=project_root() / "docs" / "schema",
                        help="output folder (default: docs/schema in the source tree, else in "
                             "the working folder)")
    parser.add_argument("--check", action="store_true", help="fail if the files are not current")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render_schemas().items():
        path = args.out / name
        current = path.read_text() if path.exists() else None
        if current != text:
            stale.append(name)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if args.check and stale:
        print(f"stale JSON Schema in {args.out}: {', '.join(stale)}; run "
              "'python -m int_rules.language.jsonschema'", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
