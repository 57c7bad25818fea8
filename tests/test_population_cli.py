"""``int-rules population``, ``synth`` and ``demo`` as an analyst uses them."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import int_rules
from int_rules.cli import main
from int_rules.synth import load_neighbourhoods

BOOK = int_rules.load()


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("extract")
    assert main(["synth", "--patients", "3000", "--seed", "5", "--out", str(out),
                 "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def report(extract: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert main(["population", str(extract), "--as-of", "2026-03-31", "--out", str(out),
                 "--quiet", "--with-facts", "--results-csv"]) == 0
    return out


def test_population_writes_every_output(report: Path) -> None:
    for name in ("results.csv", "results.parquet", "facts.parquet", "findings.csv",
                 "rejects.csv", "dashboard.csv", "report.html", "run_summary.json"):
        assert (report / name).is_file(), name
    summary = json.loads((report / "run_summary.json").read_text())
    pats = summary["patients"]
    assert pats["read"] == 3000
    assert pats["in_results"] + pats["in_rejects"] == pats["read"]
    assert pats["all_accounted_for"] is True
    with (report / "results.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == pats["in_results"]
    for column in ("identification_cohort", "pathway_state", "pathway_next_steps",
                   "review_reason", "step_down_consider_step_down", "monitoring_level",
                   "pathway_findings", "rule_ids", "rejected_rows"):
        assert column in rows[0], column


def test_every_output_carries_the_rulebook_sha256_and_statuses(report: Path) -> None:
    drafts = any(rs.definition.status == "draft" for rs in BOOK.rulesets)
    for name in ("results.csv", "findings.csv", "rejects.csv", "dashboard.csv"):
        with (report / name).open(newline="") as fh:
            reader = csv.DictReader(fh)
            assert reader.fieldnames is not None
            assert {"rulebook_sha256", "rulebook_status"} <= set(reader.fieldnames), name
            for row in reader:
                assert row["rulebook_sha256"] == BOOK.sha256
                assert (row["rulebook_status"] == "draft") == drafts
    with (report / "dashboard.csv").open(newline="") as fh:
        statuses = next(csv.DictReader(fh))["ruleset_statuses"]
    for rs in BOOK.rulesets:
        assert f"{rs.id} {rs.definition.version} {rs.definition.status}" in statuses
    for name in ("results.parquet", "facts.parquet"):
        meta = pq.read_metadata(report / name).metadata
        prov = json.loads(meta[b"int_rules_provenance"])
        assert prov["sha256"] == BOOK.sha256
        assert {r["id"]: r["status"] for r in prov["rulesets"]} == {
            rs.id: rs.definition.status for rs in BOOK.rulesets}
    summary = json.loads((report / "run_summary.json").read_text())
    assert summary["provenance"]["sha256"] == BOOK.sha256


def test_report_is_one_offline_file_with_every_neighbourhood(report: Path) -> None:
    html = (report / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert html.count("<svg") >= 10
    for n in load_neighbourhoods():
        assert n.name.replace("&", "&amp;") in html, n.name
    assert BOOK.sha256 in html
    assert "Draft rules" in html  # the bundled rulesets are drafts: the report says so
    assert "3%" in html and "120" in html and "200" in html


def test_dashboard_csv_has_a_row_per_neighbourhood_and_a_total(report: Path) -> None:
    with (report / "dashboard.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = [r["neighbourhood"] for r in rows]
    assert names[-1] == "All neighbourhoods"
    assert set(names[:-1]) == {n.name for n in load_neighbourhoods()}
    total = rows[-1]
    for column in ("registered_65_plus", "caseload", "cga_recorded", "stepped_down"):
        assert int(total[column]) == sum(int(r[column]) for r in rows[:-1]), column
    # The guide's 120-200 is per neighbourhood: each is compared with it, the total is not.
    assert total["caseload_vs_guidance"] == ""
    assert {r["caseload_vs_guidance"] for r in rows[:-1]} <= {"below", "within", "above"}
    assert total["identified_share_vs_guidance"] in ("below", "about as expected", "above")


def test_quiet_prints_only_where_the_report_is(extract: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["population", str(extract), "--as-of", "2026-03-31", "--out",
                 str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr()
    assert out.out.strip().splitlines() == [f"Report: {(tmp_path / 'report.html').resolve()}"]
    assert out.err == ""


def test_bad_directory_is_exit_2_with_a_message(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["population", str(tmp_path / "missing"), "--as-of", "2026-03-31", "--out",
                 str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("int-rules: error: data directory")
    assert "does not exist" in err
    assert "Traceback" not in err


def test_unreadable_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "patients.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "clinical_events.csv").write_text("patient_id,date,snomedct_code\n")
    code = main(["population", str(tmp_path), "--as-of", "2026-03-31", "--out",
                 str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "patients.parquet: cannot read the file" in err


def test_fail_on_rejects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "patients.csv").write_text("patient_id,date_of_birth\nP1,1940-01-01\n")
    (data / "clinical_events.csv").write_text("patient_id,date,snomedct_code\nP1,never,1\n")
    args = ["population", str(data), "--as-of", "2026-03-31", "--out", str(tmp_path / "o"),
            "--quiet"]
    assert main(args) == 0
    assert main([*args, "--fail-on-rejects"]) == 1
    assert "1 rows were rejected" in capsys.readouterr().err


def test_synth_is_deterministic(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, "7"), (b, "7"), (c, "8")):
        assert main(["synth", "--patients", "400", "--seed", seed, "--out", str(out),
                     "--quiet"]) == 0
    for name in ("patients.csv", "clinical_events.csv", "admissions.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "clinical_events.csv").read_bytes() != (c / "clinical_events.csv").read_bytes()


def test_synth_rejects_a_bad_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["synth", "--patients", "0", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_demo_makes_a_population_and_says_where_the_report_is(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path / "demo"), "--patients", "1500"]) == 0
    out = capsys.readouterr().out
    report = tmp_path / "demo" / "report" / "report.html"
    assert f"Report: {report.resolve()}" in out
    assert report.is_file()
    assert (tmp_path / "demo" / "data" / "patients.csv").is_file()
    assert "1,500 patients read: 1,500 assessed" in out


def test_same_inputs_same_bytes_in_input_order(extract: Path, report: Path,
                                               tmp_path: Path) -> None:
    assert main(["population", str(extract), "--as-of", "2026-03-31", "--out", str(tmp_path),
                 "--quiet", "--threads", "1", "--results-csv"]) == 0
    for name in ("results.csv", "results.parquet", "findings.csv", "rejects.csv",
                 "dashboard.csv"):
        assert (tmp_path / name).read_bytes() == (report / name).read_bytes(), name
    with (extract / "patients.csv").open(newline="") as fh:
        given = [row["patient_id"] for row in csv.DictReader(fh)]
    with (tmp_path / "results.csv").open(newline="") as fh:
        written = [row["patient_id"] for row in csv.DictReader(fh)]
    assert written == given


def test_the_summary_names_each_input_file_by_its_size_and_sha256(tmp_path: Path) -> None:
    """The input files are hashed on a thread of their own while the outputs are written: the
    summary still gives every file's own bytes and sha256."""
    import hashlib

    data = tmp_path / "extract"
    assert main(["synth", "--patients", "300", "--seed", "5", "--out", str(data),
                 "--quiet"]) == 0
    out = tmp_path / "out"
    assert main(["population", str(data), "--as-of", "2026-03-31", "--out", str(out),
                 "--quiet"]) == 0
    inputs = json.loads((out / "run_summary.json").read_text())["inputs"]
    assert sorted(f["file"] for f in inputs) == sorted(p.name for p in data.glob("*.csv"))
    for f in inputs:
        body = (data / f["file"]).read_bytes()
        assert f["bytes"] == len(body)
        assert f["sha256"] == hashlib.sha256(body).hexdigest()


def test_hashing_the_inputs_stops_when_asked(tmp_path: Path) -> None:
    import threading

    from int_rules.population.run import _Stopped, input_files
    from int_rules.population.tables import TableFile

    path = tmp_path / "patients.csv"
    path.write_bytes(b"patient_id\n" + b"P1\n" * 1_000_000)
    stop = threading.Event()
    stop.set()
    with pytest.raises(_Stopped):
        input_files([TableFile("patients", path, "patients.csv", "csv")], stop)
