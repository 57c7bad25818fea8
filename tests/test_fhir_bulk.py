"""FHIR Bulk Data NDJSON in: the same results as the CSV extract, every line counted."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from int_rules import PatientRecord
from int_rules.cli import main
from int_rules.fhir import read_bundle
from int_rules.fhir.bulk import read_bulk_export
from int_rules.population.engine import records_from_tables, run_tables_only
from int_rules.synth import write_population

from .test_fhir_bundle import every_kind_bundle

REPO = Path(__file__).resolve().parent.parent
AS_OF = "2026-03-31"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def same_people(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One synthetic population run from CSV and from its FHIR export."""
    base = tmp_path_factory.mktemp("fhir-vs-csv")
    out = {}
    for fmt in ("csv", "fhir"):
        write_population(base / fmt, 1500, seed=7, fmt=fmt)  # type: ignore[arg-type]
        args = ["population", str(base / fmt), "--as-of", AS_OF, "--out",
                str(base / f"{fmt}-out"), "--quiet", "--results-csv"]
        assert main([*args, "--fhir"] if fmt == "fhir" else args) == 0
        out[fmt] = base / f"{fmt}-out"
    return out["csv"], out["fhir"]


@pytest.mark.parametrize("name", ["results.csv", "findings.csv", "dashboard.csv"])
def test_fhir_export_gives_the_csv_results(same_people: tuple[Path, Path], name: str) -> None:
    """Byte for byte, but for the run id, which names the input files and so differs."""
    from_csv, from_fhir = same_people

    def without_run_id(path: Path) -> list[list[str]]:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        if "run_id" not in rows[0]:
            return rows
        at = rows[0].index("run_id")
        return [row[:at] + row[at + 1:] for row in rows]

    assert (from_fhir / name).read_bytes() != b""
    assert without_run_id(from_fhir / name) == without_run_id(from_csv / name)


def test_every_patient_and_line_is_accounted_for(same_people: tuple[Path, Path]) -> None:
    from_csv, from_fhir = same_people
    summary = json.loads((from_fhir / "run_summary.json").read_text())
    assert summary["patients"]["all_accounted_for"]
    assert summary["patients"] == json.loads((from_csv / "run_summary.json").read_text()
                                             )["patients"]
    fhir = json.loads((from_fhir / "fhir_summary.json").read_text())
    assert fhir["all_lines_accounted_for"] and fhir["lines"] > 1500


def _ndjson(path: Path, resources: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in resources)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")


def test_bundles_and_bulk_read_the_same_records(tmp_path: Path) -> None:
    """Every example Bundle's resources, and one of every kind the mapping reads, as one Bulk
    export (gzip for Observations): the records the population reader builds from it equal
    those read from each Bundle."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    expected = {}
    bundles = [json.loads(p.read_text())
               for p in sorted((REPO / "examples" / "fhir").glob("*.bundle.json"))]
    for b in [*bundles, every_kind_bundle()]:
        rec = read_bundle(b).record
        expected[rec.patient_id] = rec
        for entry in b["entry"]:
            res = entry["resource"]
            by_type.setdefault(res["resourceType"], []).append(res)
    export = tmp_path / "export"
    export.mkdir()
    for rtype, resources in by_type.items():
        name = f"{rtype}.ndjson.gz" if rtype == "Observation" else f"{rtype}.ndjson"
        _ndjson(export / name, resources)
    read = read_bulk_export(export, tmp_path / "tables")
    assert read.to_dict()["all_lines_accounted_for"]
    con = run_tables_only(tmp_path / "tables")
    try:
        got = {r.patient_id: r for r in records_from_tables(con)}
    finally:
        con.close()
    # the population tables carry units, but records built from them do not (no rule reads one)
    assert got == {pid: _without_units(r) for pid, r in expected.items()}
    units = duckdb.sql(f"SELECT list(unit ORDER BY unit) FILTER (WHERE unit IS NOT NULL) FROM "
                       f"read_parquet('{tmp_path}/tables/clinical_events/*.parquet')").fetchall()
    assert units[0][0] == ["score"]


def _without_units(record: PatientRecord) -> PatientRecord:
    return record.model_copy(update={"events": tuple(
        dataclasses.replace(e, unit=None) for e in record.events)})


def _patient(pid: str = "p1") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "birthDate": "1940-01-01"}


def _obs(rid: str, codes: list[str], pid: str = "p1") -> dict[str, Any]:
    return {"resourceType": "Observation", "id": rid, "status": "final",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": c} for c in codes]},
            "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": "2025-01-01"}


def test_bad_resources_go_to_the_rejects_traceably(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    _ndjson(export / "Patient.ndjson", [_patient(), {**_patient("p2"), "deceasedBoolean": True}])
    _ndjson(export / "Observation.ndjson", [
        _obs("ok", ["925861000000102"]), _obs("bad", ["925861000000101"]),
        _obs("two", ["925861000000102", "763264000"]), _obs("orphan", ["763264000"], "zz"),
        {**_obs("err", ["763264000"]), "status": "entered-in-error"},
    ])
    out = tmp_path / "out"
    assert main(["population", str(export), "--fhir", "--as-of", AS_OF, "--out", str(out),
                 "--quiet"]) == 0
    rejects = {(r["table"], r["row"]): r for r in _rows(out / "rejects.csv")}
    assert "date_of_death 'deceasedBoolean true without a date'" in \
        rejects[("patients", "2")]["reason"]
    assert "Verhoeff check digit" in rejects[("clinical_events", "2")]["reason"]
    assert "several SNOMED CT codes (763264000, 925861000000102)" in \
        rejects[("clinical_events", "3")]["reason"]
    assert "'zz' is not in the patients table" in rejects[("clinical_events", "4")]["reason"]
    # a reject's file and row lead back to the resource
    traced = duckdb.sql(f"SELECT fhir_source FROM read_parquet("
                        f"'{out / 'fhir_tables' / rejects[('clinical_events', '2')]['file']}')"
                        ).fetchall()[1][0]
    assert traced == "Observation.ndjson line 2, Observation/bad"
    fhir = json.loads((out / "fhir_summary.json").read_text())
    assert fhir["all_lines_accounted_for"]
    assert fhir["files"]["Observation.ndjson"]["skipped"] == {
        "Observation with status entered-in-error (skipped)": 1}


def test_unreadable_export_stops_with_exit_2(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "export"
    export.mkdir()
    _ndjson(export / "Condition.ndjson", [])
    assert main(["population", str(export), "--fhir", "--as-of", AS_OF, "--out",
                 str(tmp_path / "o"), "--quiet"]) == 2
    assert "no Patient.ndjson" in capsys.readouterr().err
    _ndjson(export / "Patient.ndjson", [_patient()])
    (export / "Condition.ndjson").write_text('{"resourceType": "Condition", "code": "x"}\n')
    assert main(["population", str(export), "--fhir", "--as-of", AS_OF, "--out",
                 str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Condition.ndjson: cannot read the file as FHIR NDJSON" in err and "line 1" in err
    assert "Traceback" not in err


def test_synth_fhir_is_repeatable_and_fhir_shaped(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_population(tmp_path / name, 300, seed=3, fmt="fhir")  # type: ignore[arg-type]
    for f in [*sorted((tmp_path / "a").glob("*.ndjson")), tmp_path / "a" / "practices.csv"]:
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name
    for line in (tmp_path / "a" / "Observation.ndjson").read_text().splitlines()[:200]:
        resource = json.loads(line)
        assert resource["resourceType"] == "Observation"
        assert None not in resource.values()  # FHIR has no nulls: absent elements are left out
        assert resource["subject"]["reference"].startswith("Patient/")
