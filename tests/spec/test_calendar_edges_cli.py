"""The calendar's edges from the command line: no traceback, a located error or an answer.

``--as-of 0001-01-01`` and ``9999-12-31``, a date of birth of 0001-01-01, and an INT's
parameter file with a lookback longer than the calendar, for ``assess`` and ``population``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from int_rules.cli import main
from int_rules.rulebook import default_rulebook_dir

REPO = default_rulebook_dir().parent
RECORD = REPO / "examples" / "records" / "care_home_awaiting_consent.json"
EXTRACT = REPO / "examples" / "population"


@pytest.mark.parametrize("as_of", ["0001-01-01", "9999-12-31"])
@pytest.mark.parametrize("engine", ["reference", "durable"])
def test_assess_at_the_calendar_edges(as_of: str, engine: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    if engine == "durable":
        pytest.importorskip("durable_rules_engine", reason="the durable extra is not installed")
    assert main(["assess", str(RECORD), "--as-of", as_of, "--engine", engine,
                 "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["as_of"] == as_of


def test_assess_someone_born_on_the_first_day(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(RECORD.read_text())
    data["date_of_birth"] = "0001-01-01"
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    assert main(["assess", str(path), "--as-of", "2026-01-01", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["facts"]["age"]["value"] == 2025


def _huge_lookback(tmp_path: Path) -> Path:
    params = tmp_path / "params.yaml"
    params.write_text("overrides_for: hwe-int-proactive-care\nparameters:\n"
                      "  facts.emergency_admission_lookback_days: 99999999999\n")
    return params


def test_assess_with_a_lookback_longer_than_the_calendar(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["assess", str(RECORD), "--as-of", "2026-01-01",
                 "--params", str(_huge_lookback(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "facts.yaml:" in err and "longer than the calendar" in err
    assert "parameter emergency_admission_lookback_days" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("as_of", ["0001-01-01", "9999-12-31"])
def test_population_at_the_calendar_edges(as_of: str, tmp_path: Path) -> None:
    assert main(["population", str(EXTRACT), "--as-of", as_of, "--out",
                 str(tmp_path / "out"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "out" / "run_summary.json").read_text())
    assert summary["patients"]["all_accounted_for"] is True


def test_population_with_a_lookback_longer_than_the_calendar(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["population", str(EXTRACT), "--as-of", "2026-01-01", "--out",
                 str(tmp_path / "out"), "--params", str(_huge_lookback(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "longer than the calendar" in err and "Traceback" not in err
