"""Every Assessment says which rules produced it: rulebook content hash, ruleset versions and
statuses, pathway, and the parameter overrides used (issue 7, item 6)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import yaml

import int_rules
from int_rules.record import PatientRecord
from tests.review_support import bundled, copy_rulebook, edit_yaml

AS_OF = dt.date(2026, 11, 23)
RECORD = PatientRecord.from_dict({"patient_id": "P1", "date_of_birth": "1940-05-02"})


def test_assessment_carries_rulebook_hash_and_ruleset_statuses() -> None:
    book = bundled()
    result = book.assess(RECORD, AS_OF)
    prov = result.provenance()
    assert prov["sha256"] == book.sha256 and len(prov["sha256"]) == 64
    assert prov["rulebook"] == book.id and prov["version"] == book.version
    declared = {}
    for name in book.manifest.rulesets:
        doc = yaml.safe_load((book.directory / name).read_text(encoding="utf-8"))
        declared[doc["ruleset"]] = (doc["version"], doc["status"])
    assert {r["id"]: (r["version"], r["status"]) for r in prov["rulesets"]} == declared
    assert prov["pathway"]["status"] == book.pathway.status
    # the JSON every caller stores carries the same block, and the explanation the hash
    data = json.loads(result.to_json())
    assert data["provenance"] == prov
    assert book.sha256[:12] in result.explain()


def test_status_change_shows_in_the_provenance_and_the_hash(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    before = int_rules.load(rules)
    first = before.manifest.rulesets[0]
    edit_yaml(rules / first, lambda d: d.update({"status": "approved"}))
    after = int_rules.load(rules)
    assert after.sha256 != before.sha256
    statuses = {r["id"]: r["status"] for r in after.assess(RECORD, AS_OF).provenance()["rulesets"]}
    # saying "approved" in the file is not enough: without an approval record it is a draft
    assert statuses[after.rulesets[0].id] == "draft"


def test_overrides_change_the_hash_and_are_listed() -> None:
    book = bundled()
    key, value = _an_overridable_parameter(book)
    other = int_rules.load(overrides={key: value})
    assert other.sha256 != book.sha256
    prov = other.assess(RECORD, AS_OF).provenance()
    assert prov["overrides"] == {key: value}
    assert book.assess(RECORD, AS_OF).provenance()["overrides"] == {}


def test_same_rulebook_same_hash() -> None:
    assert int_rules.load().sha256 == int_rules.load().sha256


def _an_overridable_parameter(book: int_rules.Rulebook) -> tuple[str, object]:
    for rs in book.rulesets:
        for name, p in rs.definition.parameters.items():
            if p.provenance != "guidance" and isinstance(p.value, int) \
                    and not isinstance(p.value, bool):
                return f"{rs.id}.{name}", p.value + 1
    raise AssertionError("no overridable whole-number parameter in the bundled rulesets")
