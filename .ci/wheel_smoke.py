"""Smoke test of an installed wheel, run by .ci/run from a temporary folder outside the checkout.

Loads the bundled rulebook, assesses a bundled example record and serialises the result: what
every Python application does first. Fails loudly if int_rules was imported from a checkout.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import int_rules
from int_rules.bundle import bundle_root

package = Path(int_rules.__file__).resolve().parent
if "site-packages" not in package.parts:
    sys.exit(f"int_rules was imported from {package}, not from the installed wheel")
if bundle_root() != package / "_bundle":
    sys.exit(f"the bundled rulebook was looked for in {bundle_root()}, not inside the wheel")

book = int_rules.load()
record = int_rules.PatientRecord.from_json_file(
    bundle_root() / "examples" / "records" / "frail_on_caseload.json")
result = book.assess(record, as_of=dt.date(2026, 11, 23))
data = result.to_dict()
text = json.dumps(data, sort_keys=True)
assert json.loads(text) == data, "to_dict() is not plain JSON data"
assert data["provenance"]["sha256"] == book.sha256
assert result.rule_ids, "the example record fires no rule"
assert "Caseload pathway:" in result.explain()
print(f"int_rules {int_rules.__version__} from {package}: {len(result.rule_ids)} rules fired, "
      f"pathway state {result.pathway.state}, {len(text)} bytes of JSON")

# A batch from memory, results as Arrow (no files written).
import pyarrow as pa  # noqa: E402

from int_rules.population import assess_tables  # noqa: E402

patients = pa.table({"patient_id": [record.patient_id, "BAD"],
                     "date_of_birth": [record.date_of_birth.isoformat(), "not a date"]})
events = pa.table({"patient_id": [record.patient_id] * len(record.events),
                   "date": [e.date.isoformat() for e in record.events],
                   "snomedct_code": [e.code for e in record.events]})
batch = assess_tables(book, {"patients": patients, "clinical_events": events},
                      dt.date(2026, 11, 23))
assert batch.results.column("patient_id").to_pylist() == [record.patient_id]
assert batch.rejects.column("patient_id").to_pylist() == ["BAD"]
print(f"assess_tables: {batch.results.num_rows} assessed, {batch.rejects.num_rows} rejected")
