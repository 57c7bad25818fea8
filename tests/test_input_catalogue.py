"""The bad-input catalogue: hostile and odd inputs, each with what the CLI must do.

Every case is data: the input it builds (from a small synthetic extract or a record made here),
the exit code, where the message (stderr, or the reject) must point, and, for population runs
that go ahead, that no patient is lost (every patient of the patients file is in the results or
the rejects, and every table's counts add up to the lines of its file).

Cases that belong to engine date semantics (dates at the ends of the calendar, huge windows)
are marked ``xfail(strict=True)``: they flip to passing when that work lands.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

import int_rules
from int_rules import PatientRecord, RecordError
from int_rules.cli import main
from int_rules.language.yamlsrc import MAX_EXPANDED_NODES
from int_rules.synth import write_population

AS_OF = "2026-03-31"
RECORD = {
    "patient_id": "P1", "date_of_birth": "1940-05-01", "sex": "female", "practice": "E1",
    "events": [{"code": "925861000000102", "date": "2025-01-02"}],
}


@pytest.fixture(scope="module")
def base_extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("catalogue") / "extract"
    write_population(out, 40, seed=7)
    return out


# -- building inputs --------------------------------------------------------------------------


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


def set_line(path: Path, line: int, text: str) -> None:
    """Replace line ``line`` (1-based) of ``path``."""
    lines = lines_of(path)
    lines[line - 1] = text
    path.write_text("\n".join(lines), encoding="utf-8")


def set_cell(path: Path, line: int, column: str, value: str) -> None:
    lines = lines_of(path)
    header = lines[0].split(",")
    cells = lines[line - 1].split(",")
    cells[header.index(column)] = value
    lines[line - 1] = ",".join(cells)
    path.write_text("\n".join(lines), encoding="utf-8")


def middle(path: Path) -> int:
    return len([ln for ln in lines_of(path) if ln]) // 2 + 1


Build = Callable[[Path], list[str]]


@dataclass(frozen=True)
class Case:
    """One input: ``build(dir)`` makes it in ``dir`` and returns the CLI arguments."""

    id: str
    build: Build
    exit: int
    where: str  # a regex that the message (stderr) or, with ``in_rejects``, rejects.csv holds
    in_rejects: bool = False
    xfail: str | None = None


def population(mutate: Callable[[Path], None], *extra: str) -> Build:
    def build(tmp: Path) -> list[str]:
        mutate(tmp / "extract")
        return ["population", str(tmp / "extract"), "--as-of", AS_OF, "--out",
                str(tmp / "out"), "--quiet", *extra]
    return build


def events(fn: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda d: fn(d / "clinical_events.csv")


def patients(fn: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda d: fn(d / "patients.csv")


def record(data: object | bytes, *extra: str) -> Build:
    def build(tmp: Path) -> list[str]:
        path = tmp / "record.json"
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(json.dumps(data), encoding="utf-8")
        return ["assess", str(path), "--as-of", AS_OF, *extra]
    return build


def with_record(**fields: object) -> dict[str, object]:
    return {**RECORD, **fields}


def params(text: str, command: str = "assess") -> Build:
    def build(tmp: Path) -> list[str]:
        (tmp / "p.yaml").write_text("overrides_for: hwe-int-proactive-care\nparameters:\n" + text,
                                    encoding="utf-8")
        rec = tmp / "record.json"
        rec.write_text(json.dumps(RECORD), encoding="utf-8")
        if command == "population":
            return ["population", str(tmp / "extract"), "--as-of", AS_OF, "--out",
                    str(tmp / "out"), "--quiet", "--params", str(tmp / "p.yaml")]
        return ["assess", str(rec), "--as-of", AS_OF, "--params", str(tmp / "p.yaml")]
    return build


def _quote_mid(path: Path) -> None:
    set_cell(path, middle(path), "unit", '"mg')


def _quoted_newline(path: Path) -> None:
    n = middle(path)
    set_cell(path, n, "unit", '"m\ng"')
    set_cell(path, n + 5, "snomedct_code", "123")  # line n + 5 before, n + 6 after the break


def _utf16(path: Path) -> None:
    path.write_bytes(path.read_text(encoding="utf-8").encode("utf-16"))


def _gz(corrupt: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def mutate(d: Path) -> None:
        src = d / "clinical_events.csv"
        (d / "clinical_events.csv.gz").write_bytes(corrupt(gzip.compress(src.read_bytes())))
        src.unlink()
    return mutate


def _duplicate_column(path: Path) -> None:
    lines = lines_of(path)
    lines[0] = lines[0].replace("unit", "date")
    path.write_text("\n".join(lines), encoding="utf-8")


def _padded_header(path: Path) -> None:
    lines = lines_of(path)
    lines[0] = ",".join(f" {h} " for h in lines[0].split(","))
    path.write_text("\n".join(lines), encoding="utf-8")


def _header_only(path: Path) -> None:
    path.write_text(lines_of(path)[0] + "\n", encoding="utf-8")


def _blank_lines(path: Path) -> None:
    lines = lines_of(path)
    lines[5:5] = ["", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def _crlf(path: Path) -> None:
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))


def _long_id_rows(path: Path) -> None:
    lines = lines_of(path)
    row = lines[1].split(",")
    row[0] = "X" * 100_000
    lines[1:1] = [",".join(row)] * 20
    path.write_text("\n".join(lines), encoding="utf-8")


def _misspelt(d: Path) -> None:
    (d / "admissions.csv").rename(d / "admission.csv")


def _formula(path: Path) -> None:
    set_cell(path, 2, "neighbourhood", "=HYPERLINK(\"http://x\")")


def _wrong_cells(path: Path) -> None:
    set_line(path, 6, lines_of(path)[5] + ",extra")


CASES = [
    # -- CSV reading: true line numbers, nothing swallowed --------------------------------------
    Case("quoted-newline-later-lines-keep-their-numbers", population(events(_quoted_newline)),
         0, r"clinical_events\.csv,\d+,S\d+,snomedct_code '123'", in_rejects=True),
    Case("blank-lines-are-counted-not-rows", population(events(_blank_lines)), 0, r"^table,",
         in_rejects=True),
    Case("crlf-line-ends", population(events(_crlf)), 0, r"^table,", in_rejects=True),
    Case("padded-header-names", population(events(_padded_header)), 0, r"^table,",
         in_rejects=True),
    Case("utf16-file", population(patients(_utf16)), 2, r"patients\.csv: .*UTF-16"),
    Case("corrupt-gzip-header", population(_gz(lambda b: b"XX" + b[2:])), 2,
         r"clinical_events\.csv\.gz: cannot read the file: not a readable gzip file"),
    Case("truncated-gzip", population(_gz(lambda b: b[: len(b) // 2])), 2,
         r"clinical_events\.csv\.gz: cannot read the file: the gzip file ends early"),
    Case("empty-gzip", population(_gz(lambda _b: gzip.compress(b""))), 2,
         r"clinical_events\.csv\.gz: cannot read the file: line 1 is empty"),
    Case("duplicate-column", population(events(_duplicate_column)), 2,
         r"clinical_events\.csv: line 1: column 'date' appears more than once"),
    Case("header-only-patients", population(patients(_header_only)), 2,
         r"patients\.csv: no rows after the header"),
    Case("empty-file", population(events(lambda p: p.write_bytes(b""))), 2,
         r"clinical_events\.csv: the file is empty"),
    Case("missing-column", population(events(lambda p: set_line(
        p, 1, "patient_id,day,snomedct_code,numeric_value,unit,is_problem"))), 2,
         r"clinical_events\.csv: missing required column\(s\) date \(columns found: "),
    Case("no-data-dir", lambda tmp: ["population", str(tmp / "nowhere"), "--as-of", AS_OF,
                                     "--out", str(tmp / "out")], 2,
         r"data directory '.*nowhere' does not exist"),
    Case("misspelt-optional-table", population(_misspelt), 0,
         r"warning: 'admission\.csv' looks like a misspelt admissions table"),
    # -- one vocabulary: tables ----------------------------------------------------------------
    Case("table-huge-patient-id", population(events(_long_id_rows)), 0,
         r"clinical_events\.csv,2,X{60}\.\.\.,patient_id is 100000 characters long \(at most "
         r"256\)",
         in_rejects=True),
    # -- options -------------------------------------------------------------------------------
    Case("threads-100000", population(lambda d: None, "--threads", "100000"), 2,
         r"--threads: at most \d+ on this machine"),
    Case("params-inf", params("  identification.frailty_min_efi: .inf\n"), 2,
         r"p\.yaml:3:\d+: .*finite number"),
    Case("params-nan-population", params("  identification.frailty_min_efi: .nan\n",
                                         "population"), 2, r"p\.yaml:3:\d+: .*finite number"),
    Case("params-alias-bomb", params("  identification.x: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"  identification.x{i}: &{c} [{', '.join(['*' + p] * 10)}]\n"
        for i, (p, c) in enumerate(zip("abcde", "bcdef", strict=True)))), 2,
         rf"p\.yaml:\d+:\d+: this value expands to more than {MAX_EXPANDED_NODES:,} values"),
    # Day counts longer than the calendar are refused at load (docs/architecture.md).
    Case("params-huge-lookback",
         params("  facts.emergency_admission_lookback_days: 99999999999\n"), 2,
         r"facts\.yaml:\d+:\d+: .*99999999999 days \(parameter "
         r"emergency_admission_lookback_days\) is longer than the calendar"),
    Case("as-of-year-1", lambda tmp: ["assess", str(_write(tmp, RECORD)), "--as-of",
                                      "0001-01-01"], 0, r"^$"),
    Case("as-of-9999-12-31", lambda tmp: ["assess", str(_write(tmp, RECORD)), "--as-of",
                                          "9999-12-31"], 0, r"^$"),
    # -- records (JSON) ------------------------------------------------------------------------
    Case("record-latin1", record(json.dumps(with_record(practice="Caf\u00e9"),
                                           ensure_ascii=False).encode("latin-1")),
         2, r"record\.json: record \(no patient_id\): \(JSON line 1 column \d+\): not UTF-8"),
    Case("record-utf16", record(json.dumps(RECORD).encode("utf-16")), 2,
         r"record\.json: .*UTF-16"),
    Case("record-deep-json", record(b"[" * 100_000 + b"]" * 100_000), 2,
         r"\(JSON line 1 column 65\): nested more than 64 levels"),
    Case("record-5000-digits", record(b'{"patient_id": "P1", "x": ' + b"9" * 5000 + b"}"), 2,
         r"record\.json: .*a number cannot be read"),
    Case("record-duplicate-key", record(b'{"patient_id": "P1", "sex": "male", "sex": "female"}'),
         2, r"key 'sex' appears more than once"),
    Case("record-timestamp-death", record(with_record(date_of_death="1735689600")), 2,
         r"patient 'P1': date_of_death: '1735689600' is not a valid date"),
    Case("record-zero-death", record(with_record(date_of_death="0")), 2,
         r"patient 'P1': date_of_death: '0' is not a valid date"),
    Case("record-bool-value", record(with_record(events=[
        {"code": "925861000000102", "date": "2025-01-02", "value": True}])), 2,
         r"patient 'P1': events\[0\]\.value: True is not a number"),
    Case("record-sex-any-case", record(with_record(sex="Female")), 0, r"^$"),
    Case("record-many-bad-events", record(with_record(events=[
        {"code": "925861000000102", "date": "bad"}] * 10_000)), 2,
         r"and 9,980 more problems"),
    Case("record-huge-id", record(with_record(patient_id="P" * 1_000_000, sex="x")), 2,
         r"patient 'P{60}\.\.\. \(1,000,000 characters\)': sex"),
    Case("record-dob-year-1", record(with_record(date_of_birth="0001-01-01")), 0, r"^$"),
    # -- writing -------------------------------------------------------------------------------
    Case("docs-out-read-only", lambda tmp: ["docs", "--out", "/proc/int-rules-docs"], 2,
         r"/proc/int-rules-docs"),
]


LATIN1 = "(a Latin-1 byte)"

#: Bad rows that reject only themselves, each on its own line of one extract (run once): the
#: table, the line, and the reason the reject must give there.
ROW_CASES = [
    ("unterminated-quote-events", "clinical_events", 580, "unit", '"mg',
     r"CSV line not readable: a quoted cell is not closed"),
    ("unterminated-quote-patients", "patients", 20, "practice", '"N01',
     r"CSV line not readable: a quoted cell is not closed"),
    ("bad-code-cites-its-line-on-two-threads", "clinical_events", 700, "snomedct_code", "123",
     r"snomedct_code '123' is not a SNOMED CT concept id"),
    ("not-utf8-line", "clinical_events", 4, "unit", LATIN1,
     r"CSV line not readable: not UTF-8 text \(byte 0xe9 at column \d+\)"),
    ("wrong-number-of-cells", "clinical_events", 6, "unit", "a,b",
     r"CSV line not readable: it has 7 cells, the header has 6"),
    ("table-timestamp-death", "patients", 3, "date_of_death", "1735689600",
     r"date_of_death '1735689600' is not a date"),
    ("table-5000-digit-number", "clinical_events", 9, "numeric_value", "9" * 5000,
     r"numeric_value '9{60}' is not a finite number"),
    ("table-nan", "clinical_events", 10, "numeric_value", "NaN",
     r"numeric_value 'NaN' is not a finite number"),
    ("table-infinity", "clinical_events", 11, "numeric_value", "-inf",
     r"numeric_value '-inf' is not a finite number"),
    ("table-bool-number", "risk_scores", 2, "score", "true", r"score 'true' is not a finite"),
    ("table-bad-sex", "patients", 4, "sex", "x", r"sex 'x' is not one of"),
    ("table-bad-flag", "clinical_events", 12, "is_problem", "maybe",
     r"is_problem 'maybe' is not true or false"),
    ("table-datetime", "clinical_events", 13, "date", "2025-01-02T10:00",
     r"date '2025-01-02T10:00' is not a date"),
    ("table-impossible-date", "clinical_events", 14, "date", "2025-02-30",
     r"date '2025-02-30' is not a date"),
]


@pytest.fixture(scope="module")
def row_run(base_extract: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Every ROW_CASES edit in one extract, run once on two threads: (out dir, rejects)."""
    tmp = tmp_path_factory.mktemp("rows")
    extract = tmp / "extract"
    shutil.copytree(base_extract, extract)
    # Text edits first, the byte that is not UTF-8 last.
    for _id, table, line, column, value, _why in sorted(ROW_CASES, key=lambda c: c[4] == LATIN1):
        if value == LATIN1:
            path = extract / f"{table}.csv"
            data = path.read_bytes().split(b"\n")
            data[line - 1] = data[line - 1] + b"\xe9"
            path.write_bytes(b"\n".join(data))
        else:
            set_cell(extract / f"{table}.csv", line, column, value)
    assert main(["population", str(extract), "--as-of", AS_OF, "--out", str(tmp / "out"),
                 "--quiet", "--threads", "2"]) == 0
    _assert_nobody_lost(extract, tmp / "out")
    with (tmp / "out" / "rejects.csv").open(newline="", encoding="utf-8") as fh:
        return tmp / "out", "\n".join(",".join(row[:5]) for row in csv.reader(fh))


@pytest.mark.parametrize(("table", "line", "why"), [
    pytest.param(t, n, why, id=cid) for cid, t, n, _c, _v, why in ROW_CASES])
def test_bad_row_is_rejected_on_its_line(row_run: tuple[Path, str], table: str, line: int,
                                         why: str) -> None:
    rejects = row_run[1]
    pattern = rf"^{table},{table}\.csv,{line},S\d+,{why}"
    assert re.search(pattern, rejects, re.MULTILINE), rejects[:3000]


def _write(tmp: Path, data: object) -> Path:
    path = tmp / "record.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _params(case: Case) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


def _nonblank_data_lines(path: Path) -> int:
    return sum(1 for ln in path.read_bytes().split(b"\n")[1:] if ln.strip(b"\r"))


@pytest.mark.parametrize("case", [_params(c) for c in CASES])
def test_bad_input(case: Case, base_extract: Path, tmp_path: Path,
                   capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(base_extract, tmp_path / "extract")
    argv = case.build(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses an option value
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err) < 20_000, "stderr is bounded"
    assert code == case.exit, err
    if case.in_rejects:
        with (tmp_path / "out" / "rejects.csv").open(newline="", encoding="utf-8") as fh:
            text = "\n".join(",".join(row[:5]) for row in csv.reader(fh))
        assert re.search(case.where, text, re.MULTILINE), text[:2000]
    else:
        assert re.search(case.where, err), err
    if argv[0] == "population" and code == 0:
        _assert_nobody_lost(tmp_path / "extract", tmp_path / "out")
    if argv[0] == "population" and code != 0:
        assert not (tmp_path / "out" / "results.parquet").exists(), "no partial outputs"


def _assert_nobody_lost(extract: Path, out: Path) -> None:
    summary = json.loads((out / "run_summary.json").read_text(encoding="utf-8"))
    pats = summary["patients"]
    assert pats["all_accounted_for"]
    assert pats["read"] == _nonblank_data_lines(extract / "patients.csv")
    results = duckdb.sql(f"SELECT count(*) FROM read_parquet('{out / 'results.parquet'}')")
    assert results.fetchall()[0][0] == pats["in_results"]
    for name, st in summary["tables"].items():
        assert st["rows_read"] == (st["rows_accepted"] + st["rows_rejected"]
                                   + st["rows_of_rejected_patients"]), name
        csv_path = extract / f"{name}.csv"
        if csv_path.is_file():
            assert st["csv_lines"] == len(csv_path.read_bytes().rstrip(b"\n").split(b"\n"))
            assert st["rows_read"] == st["csv_lines"] - 1 - st["csv_blank_lines"], name


# -- the API raises our errors ----------------------------------------------------------------


def test_assess_of_a_dict_is_a_record_error(book: int_rules.Rulebook) -> None:
    import datetime as dt

    with pytest.raises(RecordError, match="expected a PatientRecord, got dict"):
        book.assess(RECORD, dt.date(2026, 3, 31))  # type: ignore[arg-type]


def test_records_and_tables_share_one_vocabulary() -> None:
    """The same text is the same value in a record and in a table (see int_rules.vocabulary)."""
    rec = PatientRecord.from_dict(with_record(
        sex=" Female ", gp_system="s1",
        events=[{"code": "925861000000102", "date": "2025-01-02", "value": "0.3",
                 "is_problem": "Yes"}]))
    assert (rec.sex, rec.gp_system) == ("female", "SystmOne")
    assert rec.events[0].value == 0.3 and rec.events[0].is_problem is True
    for bad in ("2025-1-2", "20250102", "2025-01-02T00:00", 1735689600):
        with pytest.raises(RecordError, match="date"):
            PatientRecord.from_dict(with_record(date_of_death=bad))
    for bad_value in ("nan", "inf", "1e999", True, "1_000"):
        with pytest.raises(RecordError, match=r"events\[0\]\.value"):
            PatientRecord.from_dict(with_record(events=[
                {"code": "925861000000102", "date": "2025-01-02", "value": bad_value}]))


def test_a_future_date_of_death_is_a_finding_in_records_and_tables(
        base_extract: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A date of death after as_of is reported (DQ-042) by assess and by a population run."""
    rec = _write(tmp_path, with_record(date_of_death="2026-04-01"))
    assert main(["assess", str(rec), "--as-of", AS_OF, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"]["data_quality"]["error"] == ["DQ-042"]

    extract = tmp_path / "extract"
    shutil.copytree(base_extract, extract)
    set_cell(extract / "patients.csv", 2, "date_of_death", "2026-04-01")
    patient = lines_of(extract / "patients.csv")[1].split(",")[0]
    assert main(["population", str(extract), "--as-of", AS_OF, "--out", str(tmp_path / "out"),
                 "--quiet"]) == 0
    with (tmp_path / "out" / "findings.csv").open(newline="", encoding="utf-8") as fh:
        found = {r["patient_id"] for r in csv.DictReader(fh) if r["finding_id"] == "DQ-042"}
    assert found == {patient}


# -- interrupted and failed runs leave the output directory as it was --------------------------


@pytest.mark.parametrize("failure", [KeyboardInterrupt(), RuntimeError("Query interrupted"),
                                     OSError(28, "No space left on device")],
                         ids=["ctrl-c", "duckdb-interrupt", "disk-full"])
def test_a_run_that_stops_writes_nothing(failure: BaseException, base_extract: Path,
                                         row_run: tuple[Path, str], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    shutil.copytree(row_run[0], out)  # the outputs of an earlier run
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail(*_args: object, **_kwargs: object) -> None:
        raise failure

    monkeypatch.setattr("int_rules.population.run.write_report", fail)
    code = main(["population", str(base_extract), "--as-of", "2026-03-30", "--out", str(out),
                 "--quiet"])
    err = capsys.readouterr().err
    if isinstance(failure, OSError):
        assert code == 2 and "No space left on device" in err
    else:
        assert code == 130 and err == "interrupted\n"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_ctrl_c_while_the_outputs_move_into_place_takes_effect_after_the_last(
        base_extract: Path, row_run: tuple[Path, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A Ctrl-C between two of the moves never leaves new files beside old ones: it is held
    until every output is in place, then the command stops as interrupted."""
    import os
    import signal

    from int_rules.population import staging

    out = tmp_path / "out"
    shutil.copytree(row_run[0], out)  # the outputs of an earlier run
    real_replace = os.replace
    moved: list[str] = []

    def replace_then_interrupt(src: Path, dst: Path) -> None:
        real_replace(src, dst)
        moved.append(Path(dst).name)
        if len(moved) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(staging.os, "replace", replace_then_interrupt)
    code = main(["population", str(base_extract), "--as-of", "2026-03-30", "--out", str(out),
                 "--quiet"])
    assert code == 130 and capsys.readouterr().err == "interrupted\n"
    assert len(moved) > 3 and moved[-1] == "run_summary.json"
    run_ids = set()
    for name in moved:
        lines = (out / name).read_text(encoding="utf-8").splitlines() \
            if name.endswith(".csv") else []
        if len(lines) > 1:
            header, first = lines[:2]
            if "run_id" in header.split(","):
                run_ids.add(first.split(",")[header.split(",").index("run_id")])
    summary = json.loads((out / "run_summary.json").read_text(encoding="utf-8"))
    assert run_ids <= {summary["run_id"]}, "files of two runs side by side"


#: Where the command starts: the installed console script, and ``python -m int_rules``.
_SCRIPT = Path(sys.executable).with_name("int-rules")
_ENTRIES = {"int-rules": [str(_SCRIPT)], "python -m int_rules": [sys.executable, "-m",
                                                                  "int_rules"]}
#: Marks the end of the interpreter's own start-up (site and its .pth files, which run before
#: any int_rules code can): ``site`` imports ``sitecustomize`` last.
_READY = "import os\nos.write(int(os.environ['READY_FD']), b'.')\n"


@pytest.mark.skipif(not _SCRIPT.is_file(), reason="int-rules is not installed beside python")
@pytest.mark.parametrize(("entry", "delay"), [
    ("int-rules", 0.05), ("int-rules", 0.2), ("int-rules", 0.5), ("int-rules", 1.0),
    ("python -m int_rules", 0.05), ("python -m int_rules", 0.5)])
def test_ctrl_c_while_the_command_starts_is_interrupted(entry: str, delay: float,
                                                        base_extract: Path,
                                                        tmp_path: Path) -> None:
    """Ctrl-C ``delay`` seconds after the interpreter has started (while pydantic, DuckDB,
    pyarrow and the rulebook load, or as the run begins): one line, exit 130, no outputs."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(_READY, encoding="utf-8")
    ready, ready_w = os.pipe()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "READY_FD": str(ready_w)}
    out = tmp_path / "out"
    child = subprocess.Popen(
        [*_ENTRIES[entry], "population", str(base_extract), "--as-of", AS_OF, "--out", str(out),
         "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        pass_fds=(ready_w,))
    os.close(ready_w)
    try:
        assert select.select([ready], [], [], 30)[0], "the interpreter did not start"
        assert os.read(ready, 1) == b"."
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        _stdout, stderr = child.communicate(timeout=60)
    finally:
        os.close(ready)
        if child.poll() is None:
            child.kill()
            child.wait()
    assert stderr.decode() == "interrupted\n"
    # Under -m, CPython itself ends the process by SIGINT (which a shell shows as 130, too) when
    # the KeyboardInterrupt passed through an extension's nested PyRun call on its way to us.
    allowed = {130} if entry == "int-rules" else {130, -signal.SIGINT}
    assert child.returncode in allowed
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())


def test_a_run_replaces_every_output_of_the_last_one(base_extract: Path, row_run: tuple[Path, str],
                                                     tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(row_run[0], out)
    (out / "facts.parquet").write_bytes(b"from an earlier run with --with-facts")
    (out / "results.csv").write_bytes(b"from an earlier run with --results-csv")
    (out / ".int-rules-staging-0123456789abcdef").mkdir()  # left by a killed run
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    assert main(["population", str(base_extract), "--as-of", AS_OF, "--out", str(out),
                 "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "dashboard.csv", "data_dictionary.csv", "findings.csv", "notes.txt", "outcomes.csv",
        "rejects.csv", "report.html", "results.parquet", "run_summary.json"]
    run_id = json.loads((out / "run_summary.json").read_text(encoding="utf-8"))["run_id"]
    for name in ("findings.csv", "rejects.csv", "dashboard.csv"):
        with (out / name).open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            assert reader.fieldnames and {"run_id", "as_of", "rulebook_sha256"} <= set(
                reader.fieldnames), name
            assert all(row["run_id"] == run_id and row["as_of"] == AS_OF for row in reader)
    assert run_id in (out / "report.html").read_text(encoding="utf-8")


def test_stdout_on_a_full_disk_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    full = open("/dev/full", "w")  # noqa: SIM115 - closed below
    try:
        monkeypatch.setattr("sys.stdout", full)
        code = main(["assess", str(_write(tmp_path, RECORD)), "--as-of", AS_OF])
    finally:
        monkeypatch.undo()
        full.close()
    assert code == 2
    assert "No space left on device" in capsys.readouterr().err


def test_control_characters_are_escaped_in_text_output(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    rec = with_record(patient_id="P\x1b[2J1")
    assert main(["assess", str(_write(tmp_path, rec)), "--as-of", AS_OF]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "P\\x1b[2J1" in out


def test_formula_cells_are_neutralised_in_csv(base_extract: Path, tmp_path: Path) -> None:
    shutil.copytree(base_extract, tmp_path / "extract")
    _formula(tmp_path / "extract" / "patients.csv")
    assert main(["population", str(tmp_path / "extract"), "--as-of", AS_OF, "--out",
                 str(tmp_path / "out"), "--quiet", "--results-csv"]) == 0
    with (tmp_path / "out" / "results.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["neighbourhood"] == "'=HYPERLINK(\"http://x\")"
    dashboard = (tmp_path / "out" / "dashboard.csv").read_text(encoding="utf-8")
    assert "\n=HYPERLINK" not in dashboard and "'=HYPERLINK" in dashboard


def test_ctrl_c_where_python_cannot_raise_it_is_interrupted_not_ignored() -> None:
    """A Ctrl-C that arrives inside a finaliser (where Python reports the KeyboardInterrupt as
    "Exception ignored" and carries on) still ends the command as one line, ``interrupted``,
    and exit 130."""
    probe = textwrap.dedent("""
        import os, signal, sys
        import int_rules.__main__ as entry
        import int_rules.cli as cli

        class Finalised:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):
                    pass

        def command():
            thing = Finalised()
            del thing
            return 0

        cli.main = command
        sys.exit(entry.main())
        """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=False)
    assert (done.returncode, done.stderr) == (130, "interrupted\n")


def test_the_entry_point_imports_nothing_before_its_ctrl_c_handler() -> None:
    """What the console script imports before ``main`` runs: nothing of our dependencies, nor the
    command line itself (so a Ctrl-C while they load reaches the handler)."""
    heavy = ("pydantic", "yaml", "duckdb", "pyarrow", "int_rules.cli", "int_rules.rulebook")
    probe = ("import sys, int_rules.__main__; "
             f"print([m for m in {heavy!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "[]"


def test_formula_like_rule_output_text_is_neutralised_in_csv_only(base_extract: Path,
                                                                   tmp_path: Path) -> None:
    """A value a rule outputs that starts with '=' (a copy of the rulebook whose cohort that
    codes cannot show is named '=advanced_disease') reaches results.csv made safe for
    spreadsheets, and results.parquet as written."""
    repo = Path(int_rules.__file__).resolve().parent.parent
    shutil.copytree(repo / "rulesets", tmp_path / "rulesets")
    shutil.copytree(repo / "codelists", tmp_path / "codelists")
    path = tmp_path / "rulesets" / "identification.yaml"
    text = path.read_text(encoding="utf-8")
    for old, new in (("values: [advanced_disease]", 'values: ["=advanced_disease"]'),
                     ("{cannot_check_from_codes: advanced_disease}",
                      '{cannot_check_from_codes: "=advanced_disease"}')):
        assert old in text
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    assert main(["population", str(base_extract), "--as-of", AS_OF, "--out",
                 str(tmp_path / "out"), "--quiet", "--rules", str(tmp_path / "rulesets"),
                 "--results-csv"]) == 0
    column = "identification_cannot_check_from_codes"
    with (tmp_path / "out" / "results.csv").open(newline="", encoding="utf-8") as fh:
        in_csv = [r[column] for r in csv.DictReader(fh)]
    in_parquet = [r[0] for r in duckdb.sql(
        f"SELECT {column} FROM read_parquet('{tmp_path / 'out' / 'results.parquet'}')"
    ).fetchall()]
    assert "'=advanced_disease" in in_csv
    assert in_csv == [f"'{v}" if v else "" for v in in_parquet]
    assert set(in_parquet) <= {"=advanced_disease", None}
