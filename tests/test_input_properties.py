"""Invariants of reading an extract: nothing lost whatever one corruption, same bytes every run.

* Corrupt any one line or byte of any input table of a small extract: the run either refuses
  the file with an error naming it, or every line of every table is accounted for (the header,
  a blank line, an accepted row, or a reject citing that line), every patients row is assessed
  or in the rejects, and the summary's counts add up.
* The same inputs give byte-identical outputs on one thread and on two, and from one run to
  the next (timings aside).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from int_rules import PatientRecord, RecordError
from int_rules.population import csvlines, population_report, run_population
from int_rules.population.tables import PopulationInputError, load_tables
from int_rules.rulebook import Rulebook
from int_rules.synth import write_population

AS_OF = dt.date(2026, 3, 31)
TABLES = ("patients", "clinical_events", "admissions", "risk_scores")
ROW_MASK = (1 << 40) - 1


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prop") / "extract"
    write_population(out, 12, seed=11)
    return out


@st.composite
def corruptions(draw: st.DrawFn) -> tuple[str, str, float, bytes]:
    table = draw(st.sampled_from(TABLES))
    kind = draw(st.sampled_from(["byte", "insert", "delete-line", "duplicate-line",
                                 "truncate"]))
    where = draw(st.floats(min_value=0.0, max_value=1.0))
    payload = draw(st.one_of(
        st.sampled_from([b'"', b"\n", b",", b"\r", b"\x00", b"\xe9", b"\xff\xfe", b" ", b"=",
                         b"9" * 400, b"\xef\xbb\xbf"]),
        st.binary(min_size=1, max_size=3)))
    return table, kind, where, payload


def corrupt(path: Path, kind: str, where: float, payload: bytes) -> None:
    data = path.read_bytes()
    if kind in ("delete-line", "duplicate-line"):
        lines = data.split(b"\n")
        i = min(int(where * len(lines)), len(lines) - 1)
        lines[i:i + 1] = [] if kind == "delete-line" else [lines[i], lines[i]]
        path.write_bytes(b"\n".join(lines))
        return
    pos = min(int(where * len(data)), max(len(data) - 1, 0))
    if kind == "byte":
        path.write_bytes(data[:pos] + payload + data[pos + 1:])
    elif kind == "insert":
        path.write_bytes(data[:pos] + payload + data[pos:])
    else:
        path.write_bytes(data[:pos])


# Each example is a whole run: 15 by default, a few hundred with the deep profile.
@settings(max_examples=max(15, settings.default.max_examples // 7), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(corruptions())
def test_one_corruption_is_refused_or_fully_accounted_for(
        small: Path, book: Rulebook, tmp_path_factory: pytest.TempPathFactory,
        corruption: tuple[str, str, float, bytes]) -> None:
    table, kind, where, payload = corruption
    extract = tmp_path_factory.mktemp("x") / "extract"
    shutil.copytree(small, extract)
    corrupt(extract / f"{table}.csv", kind, where, payload)
    try:
        run = run_population(book, extract, AS_OF)
    except PopulationInputError as exc:
        assert re.match(r"(\w+\.csv: |no \w+ table in )", str(exc)), str(exc)
        return
    try:
        summary = run.summary()
        assert summary["patients"]["all_accounted_for"], summary["patients"]
        con = run.con
        for name, stats in summary["tables"].items():
            assert stats["rows_read"] == (stats["rows_accepted"] + stats["rows_rejected"]
                                          + stats["rows_of_rejected_patients"]), name
            lines = (extract / f"{name}.csv").read_bytes().split(b"\n")
            n_lines = len(lines) - (1 if lines[-1] == b"" else 0)
            assert stats["csv_lines"] == n_lines, name
            assert stats["rows_read"] == n_lines - 1 - stats["csv_blank_lines"], name
            listed = con.execute("SELECT count(*) FROM rejects WHERE tbl = ?",
                                 [name]).fetchall()[0][0]
            assert listed == stats["rows_rejected"], name
        # Every data line of patients.csv is an accepted patient or a reject citing that line.
        lines = (extract / "patients.csv").read_bytes().split(b"\n")
        data_lines = {i + 1 for i, ln in enumerate(lines) if i > 0 and ln.strip(b"\r")}
        accepted = {int(r[0]) & ROW_MASK for r in con.execute("SELECT pid FROM pt").fetchall()}
        rejected = {int(r[0]) for r in con.execute(
            "SELECT line FROM rejects WHERE tbl = 'patients'").fetchall()}
        assert accepted | rejected == data_lines and not accepted & rejected
    finally:
        run.close()


def _comparable(out: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(out.iterdir()):
        data = path.read_bytes()
        if path.name == "run_summary.json":
            summary = json.loads(data)
            del summary["timings_s"]
            data = json.dumps(summary, sort_keys=True).encode()
        elif path.name == "report.html":
            data = re.sub(rb"timings \(s\): [^<]*", b"", data)
            data = data.replace(str(out).encode(), b"OUT")
        files[path.name] = data
    return files


def test_same_bytes_on_one_or_two_threads_any_csv_blocks_and_across_runs(
        book: Rulebook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "extract"
    write_population(data, 1500, seed=5)
    outs = []
    for i, threads in enumerate((1, 2, 2)):
        if i == 1:  # then many blocks per file, many pieces and batches per block
            monkeypatch.setattr(csvlines, "BLOCK_BYTES", 1 << 16)
            monkeypatch.setattr(csvlines, "PIECE_BYTES", 1 << 12)
            monkeypatch.setattr(csvlines, "BATCH_LINES", 100)
        out = tmp_path / f"out{i}"
        population_report(book, data, AS_OF, out, threads=threads, with_facts=True,
                          results_csv=True)
        outs.append(_comparable(out))
    assert set(outs[0]) >= {"results.csv", "results.parquet", "findings.csv", "rejects.csv",
                            "dashboard.csv", "report.html", "run_summary.json",
                            "facts.parquet"}
    for other in outs[1:]:
        for name, content in outs[0].items():
            assert other[name] == content, name


_LINES = [b"a,b", b"", b'"x,1",2', b"c,d\r", b"\xe9,1", b"e,f", b"\r", b"g,h,i", b"a b,c",
          b"x\ry,z\r", b"\tq,\x7f", b"~!,\r\r"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.sampled_from(_LINES), max_size=60), block=st.integers(1, 300),
       piece=st.integers(1, 300), batch=st.integers(1, 8))
def test_every_line_is_read_once_with_its_number_whatever_the_block_sizes(
        tmp_path: Path, lines: list[bytes], block: int, piece: int, batch: int) -> None:
    """However the file is cut into pieces, blocks and batches, every line after the header is
    one row numbered by its line, in order, with its own text; the blank lines are counted and
    the lines with a quote or not UTF-8 are the ones split in Python; the clean lines (ASCII
    from "!" to "~", read without trimming) are told from the rest, and each line's break."""
    path = tmp_path / "t.csv"
    path.write_bytes(b"h1,h2\n" + b"".join(line + b"\n" for line in lines))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(csvlines, "PIECE_BYTES", piece)
        mp.setattr(csvlines, "BATCH_LINES", batch)
        blocks = list(csvlines.read_blocks(path, ValueError, block))
        here = list(csvlines.read_blocks(path, ValueError, block, ahead=False))
    # Read ahead on a thread or here: the same blocks.
    assert len(blocks) == len(here)
    for a, b in zip(blocks, here, strict=True):
        assert a.plain.equals(b.plain) and a.parsed.equals(b.parsed)
        assert a.blank_lines == b.blank_lines
    numbers = [n for b in blocks for n in b.plain.column("line").to_pylist()]
    assert numbers == list(range(2, 2 + len(lines)))
    texts = [t for b in blocks for t in b.plain.column("text").to_pylist()]
    skips = [s for b in blocks for s in b.plain.column("skip").to_pylist()]
    special = {i + 2 for i, line in enumerate(lines) if b'"' in line or b"\xe9" in line}
    blank = {i + 2 for i, line in enumerate(lines) if line in (b"", b"\r")}
    assert {n for n, s in zip(numbers, skips, strict=True) if s} == special | blank
    assert sum(b.blank_lines for b in blocks) == len(blank)
    assert [n for b in blocks for n in b.parsed.column("line").to_pylist()] == sorted(special)
    cleans = [c for b in blocks for c in b.plain.column("clean").to_pylist()]
    breaks = [k for b in blocks for k in b.plain.column("brk").to_pylist()]
    for n, clean, brk in zip(numbers, cleans, breaks, strict=True):
        content = lines[n - 2].removesuffix(b"\r")
        assert brk == (2 if lines[n - 2].endswith(b"\r") else 1)
        assert clean == (content != b"" and b'"' not in content
                         and all(33 <= c <= 126 for c in content)), lines[n - 2]
    for n, text, skip in zip(numbers, texts, skips, strict=True):
        if not skip:
            assert text.rstrip("\r\n") == lines[n - 2].rstrip(b"\r").decode()


# -- cells: a CSV line read as a record reads it ---------------------------------------------

_SPACES = ["", " ", "\t", "\u00a0", "\u2003", "\u3000"]
_DATES = ["2025-03-14", "2025-3-14", "2025-02-30", "20250314", "2025-03-14T10:00", "0000-01-01",
          "9999-12-31", "2025-03-1\u0661", "\u00e9025-03-14", "2025_03_14", "x", "-025-03-14"]
_NUMBERS = ["", "0.31", "-2", "1e3", "1e999", "NaN", "-inf", "1_000", "0x10", "9" * 60, ".5",
            "\u0661", "+4"]
_FLAGS = ["", "true", "false", "TRUE", "Yes", "n", "0", "1", "maybe", "t", "F", "\u00fdes"]
_IDS = ["P1", "P1\u00e9", "x" * 257, "\u00e9" * 200]


@st.composite
def _cell(draw: st.DrawFn, values: list[str]) -> str:
    core = draw(st.one_of(st.sampled_from(values), st.text(
        st.sampled_from("0123456789-.eE+tT aé\u00a0"), max_size=12)))
    return draw(st.sampled_from(_SPACES)) + core + draw(st.sampled_from(_SPACES))


_OTHER_SPACE = "\t\n\x0b\x0c\r\x85" + "".join(_SPACES)


def _record_event(cells: dict[str, str]) -> tuple[str, dict[str, object]] | None:
    """(patient_id, the event's fields) as a record reads these cells, or None if it refuses
    them. A cell empty once trimmed is not recorded (tables trim text of white space, other
    cells of spaces: docs/population.md)."""
    ev: dict[str, object] = {"code": "925861000000102"}
    for name, key in (("date", "date"), ("numeric_value", "value"),
                      ("is_problem", "is_problem")):
        if cells[name].strip(" "):
            ev[key] = cells[name]
    try:
        rec = PatientRecord.from_dict({"patient_id": cells["patient_id"],
                                       "date_of_birth": "1940-01-01", "events": [ev]})
    except RecordError:
        return None
    e = rec.events[0]
    return rec.patient_id, {"d": e.date, "value": e.value, "is_problem": e.is_problem}


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.fixed_dictionaries({
    "patient_id": _cell(_IDS), "date": _cell(_DATES), "numeric_value": _cell(_NUMBERS),
    "is_problem": _cell(_FLAGS)}), min_size=1, max_size=25), crlf=st.booleans())
def test_every_cell_is_read_as_a_record_reads_it(
        tmp_path: Path, rows: list[dict[str, str]], crlf: bool) -> None:
    """Whatever the cells, each events row is accepted exactly when a record accepts the same
    text, with the same values; clean lines (ASCII with no space, read without trimming) and
    the rest agree, and a CSV file reads as the same text in a Parquet file of strings does."""
    header = ["patient_id", "date", "snomedct_code", "numeric_value", "unit", "is_problem"]
    table = {h: [r.get(h, "925861000000102" if h == "snomedct_code" else "") for r in rows]
             for h in header}
    found = []
    for fmt in ("csv", "parquet"):
        d = Path(tempfile.mkdtemp(dir=tmp_path))
        (d / "patients.csv").write_text("patient_id,date_of_birth\nP1,1940-01-01\n")
        if fmt == "csv":
            end = "\r\n" if crlf else "\n"
            (d / "clinical_events.csv").write_bytes("".join(
                ",".join(cells) + end for cells in [header, *zip(*table.values(), strict=True)]
            ).encode())
        else:
            pq.write_table(pa.table({h: pa.array(v, pa.string()) for h, v in table.items()}),
                           d / "clinical_events.parquet")
        con = duckdb.connect()
        load_tables(con, d)
        found.append(con.execute(
            "SELECT seq & ((1::BIGINT << 40) - 1), patient_id, d, value, is_problem, bad, reason "
            "FROM __src_ev ORDER BY seq").fetchall())
        con.close()
    csv_rows, parquet_rows = found
    # Lines 2.. in the CSV file, rows 1.. in Parquet: otherwise the same.
    assert [(n - 1, *rest) for n, *rest in csv_rows] == [tuple(r) for r in parquet_rows]
    for cells, (_n, pid, d, value, problem, bad, reason) in zip(rows, csv_rows, strict=True):
        if any(cells[c].strip(" ")[:1] in _OTHER_SPACE or cells[c].strip(" ")[-1:]
               in _OTHER_SPACE for c in ("date", "numeric_value", "is_problem")
               if cells[c].strip(" ")):
            continue  # records trim these of all white space, tables of spaces (documented)
        expected = _record_event(cells)
        assert (expected is None) == bad, (cells, reason)
        if expected is not None:
            assert (pid, {"d": d, "value": value, "is_problem": problem}) == expected, cells
