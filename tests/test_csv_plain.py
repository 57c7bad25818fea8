"""A plain CSV file (every quote opening or closing a whole cell, no control character but its
line breaks, one kind of line break) is read by DuckDB's own reader instead of line by line:
the rows, their line numbers, the rejects and the counts are the same either way, and anything
that reader cannot number by its lines (a blank line, a line with the wrong number of cells,
text that is not UTF-8) sends the file back to the line-by-line reader."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import int_rules
from int_rules.population import tables
from int_rules.population.csvlines import PlainFile, plain_file, split_line
from int_rules.population.engine import connect

BOOK = int_rules.load()
FRAIL = sorted(BOOK.codelists["frailty_severe"].codes)[0]
PATIENTS = (b"patient_id,date_of_birth,sex,practice,neighbourhood,gp_system,date_of_death\n"
            b"P1,1940-05-02,female,E1,HATFIELD,EMIS,\nP2,1950-02,male,E1,HATFIELD,S1,\n")
EVENTS_HEADER = b"patient_id,date,snomedct_code,numeric_value,is_problem"


# -- which files are plain --------------------------------------------------------------------


@pytest.mark.parametrize(("body", "expected"), [
    (b"a,b\n1,2\n3,4\n", PlainFile(3, "\n", True, 2)),
    (b"a,b\n1,2\n3,4", PlainFile(3, "\n", True, 2)),  # no line break after the last line
    (b"a,b\r\n1,2\r\n3,4\r\n", PlainFile(3, "\r\n", True, 2)),
    (b"a,b\n1, 2\n", PlainFile(2, "\n", False, 1)),  # a space: plain, not clean
    ("a,b\n1,\u00e9\n".encode(), PlainFile(2, "\n", False, 1)),
    (b'"a","b"\n1,2\n', PlainFile(2, "\n", True, 1)),  # quotes in the header only
    (b"a,b\n1,2\n\n3,4\n", PlainFile(4, "\n", True, 2)),  # a blank line: counted, caught later
    (b"a,b\n", PlainFile(1, "\n", True, 0)),
    # Quoted cells, each quote opening or closing a whole cell: a comma inside one is no
    # separator.
    (b'a,b\n1,"2"\n', PlainFile(2, "\n", True, 1)),
    (b'a,b\n"1","2"\n"3",""\n', PlainFile(3, "\n", True, 2)),
    (b'a,b\n"1,5",2\n"x, y",""\n', PlainFile(3, "\n", False, 2)),
    (b'a,b\n1,"2"', PlainFile(2, "\n", True, 1)),
    (b'a,b\r\n"1","2"\r\n', PlainFile(2, "\r\n", True, 1)),
    (b'a,b\n"",""\n', PlainFile(2, "\n", True, 1)),
    (b'a,b\n1,"2\n3",4\n', None),  # a line break inside a quoted cell
    (b'a,b\n1,"2\n', None),  # a quote left open
    (b'a,b\n"a""b",2\n', None),  # a doubled quote
    (b'a,b\n""""\n', None),
    (b'a,b\n1,a"b\n', None),  # a quote inside a cell
    (b'a,b\n1, "2"\n', None),  # a space before the opening quote
    (b'a,b\n1,"2" \n', None),  # and after the closing one
    (b'a,b\n",",x\n', PlainFile(2, "\n", True, 1)),  # a comma alone, quoted
    (b'a,b\n"1"2",3\n', None),
    (b"a,b\n1,\t2\n", None),
    (b"a,b\n1,\x002\n", None),
    (b"a,b\n1,2\r3,4\n", None),  # a "\r" that is no line break
    (b"a,b\n1,2\r\n3,4\n", None),  # "\r\n" and "\n"
    (b"a,b\n1,2\r", None),
    (b"a,b", None),  # a header with no line break
])
def test_plain_file(tmp_path: Path, body: bytes, expected: PlainFile | None) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(body)
    for piece in (1, 2, 3, 5, 1 << 20):  # a "\r\n" split between pieces, and not
        assert plain_file(path, piece) == expected, piece


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.lists(st.sampled_from(["a", ",", '"', "\n", "\r\n", " ", '","', '""']),
                     max_size=30).map("".join))
def test_a_plain_file_splits_into_its_lines_cells_as_a_csv_reader_splits_each_line(
        tmp_path: Path, body: str) -> None:
    """Whatever the bytes, the answer does not depend on where the pieces break; and when the
    file is plain, each line after the header is one row that Python's ``csv`` reads without
    a problem, and the commas counted are those between its cells."""
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\n" + body.encode())
    found = {plain_file(path, piece) for piece in (1, 2, 3, 7, 1 << 20)}
    assert len(found) == 1
    plain = found.pop()
    if plain is None:
        return
    lines = body.split(plain.newline) if body else []
    if lines and lines[-1] == "":
        lines.pop()  # the line break after the last line
    assert plain.lines == 1 + len(lines)
    cells = [split_line(line) for line in lines if line]  # a blank line: no row
    assert all(problem is None for _, problem in cells)
    assert plain.commas == sum(len(c) - 1 for c, _ in cells if c)


def test_a_look_at_a_file_that_is_stopped_gives_no_answer(tmp_path: Path) -> None:
    """The look-ahead of a run that has ended (an error, Ctrl-C) stops at its next piece."""
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * 100)
    stop = threading.Event()
    assert plain_file(path, 16, stop=stop) == PlainFile(101, "\n", True, 100)
    stop.set()
    assert plain_file(path, 16, stop=stop) is None


def test_a_compressed_file_is_read_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n1,2\n"))
    assert plain_file(path) is None


# -- the same result either way ---------------------------------------------------------------


def _load(data: Path, stage: Path, line_by_line: bool,
          monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    with monkeypatch.context() as m:
        if line_by_line:
            m.setattr(tables, "plain_file", lambda *_a, **_k: None)
        con = connect()
        try:
            result = tables.load_tables(con, data, stage_dir=stage)
            return {t: con.execute(f"SELECT * FROM __src_{t} ORDER BY seq").fetchall()
                    for t in ("pt", "ev", "adm", "rs", "mon")} | {
                "rejects": con.execute("SELECT * FROM rejects ORDER BY ALL").fetchall(),
                "stats": {k: v.to_dict() for k, v in result.stats.items()}}
        finally:
            con.close()


def _load_whole(data: Path, stage: Path, monkeypatch: pytest.MonkeyPatch
                ) -> tuple[dict[str, Any], list[Path]]:
    """What :func:`_load` reads, each plain file whole; and the files read line by line."""
    by_lines: list[Path] = []
    real = tables.read_blocks

    def spy(path: Path, *args: Any, **kwargs: Any) -> Iterator[Any]:
        by_lines.append(path)
        return real(path, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(tables, "read_blocks", spy)
        return _load(data, stage, False, monkeypatch), by_lines


CELLS = {
    "patient_id": ["P1", "P2", "P3", " P1", "P2 ", "P1\u00a0", "\u2003P2", "", "P!1", "P\x7f"],
    "date": ["2025-01-01", "2024-12-31", " 2025-02-03", "2025-13-01", "2025-1-2", "", "soon"],
    "snomedct_code": [FRAIL, "42", "", " " + FRAIL, "1234567"],
    "numeric_value": ["", "7.5", " 7.5 ", "1e3", "nan", "abc", "-0"],
    "is_problem": ["", "true", "YES", " no", "0", "maybe"],
}
# A cell written as it is, or quoted (a comma inside a quoted cell is a character of it).
CELL = {name: st.one_of(st.sampled_from(v), st.sampled_from([*v, "7,5", " , "]).map(
    lambda c: f'"{c}"')) for name, v in CELLS.items()}
ROW = st.tuples(*CELL.values()).map(",".join)
# Mostly rows of five cells (files DuckDB's reader reads whole), now and then a line that
# sends the file back to the line-by-line reader.
ODD_LINE = st.sampled_from([b"", b"P1,2025-01-01", b"P1,2025-01-01,1,2,3,4",
                            b"P1,2025-01-01,\xff\xfe,,", b"   ",
                            f"P1,2025-01-01,{FRAIL},,,,".encode(), b",",
                            # quotes that do not open or close a whole cell
                            f'P1,2025"-01-01,{FRAIL},,'.encode(),
                            f'"P1" ,2025-01-01,{FRAIL},,'.encode(),
                            f'"P""1",2025-01-01,{FRAIL},,'.encode(),
                            f'P1,"2025-01-01,{FRAIL},,'.encode(),
                            f'P1,"2025-01-01\n",{FRAIL},,'.encode()])
LINE = st.integers(0, 9).flatmap(lambda k: ODD_LINE if k == 0 else ROW.map(str.encode))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(LINE, min_size=1, max_size=12), newline=st.sampled_from([b"\n", b"\r\n"]),
       last_break=st.booleans())
def test_read_whole_or_by_lines_the_rows_are_the_same(
        tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
        lines: list[bytes], newline: bytes, last_break: bool) -> None:
    data = tmp_path_factory.mktemp("data")
    (data / "patients.csv").write_bytes(PATIENTS.replace(b"\n", newline))
    body = newline.join([EVENTS_HEADER, *lines]) + (newline if last_break else b"")
    (data / "clinical_events.csv").write_bytes(body)
    whole = _load(data, tmp_path_factory.mktemp("stage"), False, monkeypatch)
    by_lines = _load(data, tmp_path_factory.mktemp("stage"), True, monkeypatch)
    assert whole == by_lines


def _refuse_lines(*args: Any, **kwargs: Any) -> Iterator[Any]:
    raise AssertionError("read line by line")


def test_a_plain_file_with_bad_rows_is_read_whole_and_its_rows_keep_their_lines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "patients.csv").write_bytes(PATIENTS)
    (data / "clinical_events.csv").write_bytes(
        EVENTS_HEADER + f"\nP1,2025-01-01,{FRAIL},,\nP2,2025-13-01,{FRAIL},,\n"
                        f"P1, 2025-02-01 ,{FRAIL}, 7.5 ,yes\nP9,2025-03-01,,,\n".encode())
    monkeypatch.setattr(tables, "read_blocks", _refuse_lines)
    con = connect()
    try:
        result = tables.load_tables(con, data, stage_dir=tmp_path / "stage")
        rejects = con.execute("SELECT line, patient_id, reason FROM rejects WHERE tbl = "
                              "'clinical_events' ORDER BY line").fetchall()
        kept = con.execute("SELECT seq & 1023, d, value, is_problem FROM __src_ev "
                           "WHERE NOT bad ORDER BY seq").fetchall()
    finally:
        con.close()
    assert [(line, pid) for line, pid, _ in rejects] == [(3, "P2"), (5, "P9")]
    assert "date '2025-13-01' is not a date" in rejects[0][2]
    # The cells are checked as they are read; the codes after, once each (line 5's).
    assert [(line, str(d), value, flag) for line, d, value, flag in kept] == [
        (2, "2025-01-01", None, False), (4, "2025-02-01", 7.5, True),
        (5, "2025-03-01", None, False)]
    assert result.stats["clinical_events"].lines == 5


@pytest.mark.parametrize(("rows", "why"), [
    (f"P1,2025-01-01,{FRAIL},,\n\nP1,2025-01-02,{FRAIL},,\n", "a blank line"),
    (f"P1,2025-01-01,{FRAIL},,\nP1,2025-01-02\n", "a line with too few cells"),
    (f"P1,2025-01-01,{FRAIL},,\nP1,2025-01-02,{FRAIL},,,,\n", "a line with too many cells"),
    (f"P1,2025-01-01,{FRAIL},,\nP1,2025-01-02,{FRAIL},,,9\n", "a line with too many cells"),
    (f"P1,2025-01-01,{FRAIL},,\nP1,2025-01-02,\xe9t\xe9,,\n", "text that is not UTF-8"),
])
def test_what_that_reader_cannot_number_sends_the_file_back_to_the_lines(
        tmp_path: Path, rows: str, why: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "patients.csv").write_bytes(PATIENTS)
    (data / "clinical_events.csv").write_bytes(EVENTS_HEADER + b"\n" + rows.encode("latin-1"))
    assert plain_file(data / "clinical_events.csv") is not None
    seen: list[Path] = []
    real = tables.read_blocks

    def spy(path: Path, *args: Any, **kwargs: Any) -> Iterator[Any]:
        seen.append(path)
        return real(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(tables, "read_blocks", spy)
        con = connect()
        try:
            result = tables.load_tables(con, data, stage_dir=tmp_path / "stage")
            lines = [r[0] for r in con.execute("SELECT seq & 1023 FROM __src_ev ORDER BY seq")
                     .fetchall()]
        finally:
            con.close()
    assert seen == [data / "clinical_events.csv"], why
    assert sorted(p.name for p in (tmp_path / "stage").iterdir()) == [
        "ev-00000.parquet", "pt-00000.parquet"]  # what the first reader staged is gone
    st_ev = result.stats["clinical_events"]
    assert lines == ([2, 4] if why == "a blank line" else [2, 3])
    assert st_ev.blank_lines == (1 if why == "a blank line" else 0)


def test_a_big_file_read_on_two_threads_keeps_every_line_number(
        tmp_path: Path) -> None:
    """2 million lines (about 70 MB, many buffers of DuckDB's reader, two threads): the rows
    with a bad date, spread through the file, are rejected at their own lines, and the rows
    keep the file's order."""
    n = 2_000_000
    bad = {2, 3, 777_777, 1_000_003, 1_999_999, n + 1}  # lines (the header is line 1)
    data = tmp_path / "data"
    data.mkdir()
    (data / "patients.csv").write_bytes(PATIENTS)
    rows = (f"P{1 + line % 2},{'2025-13-01' if line in bad else '2025-01-01'},{FRAIL},"
            f"{line},\n" for line in range(2, n + 2))
    (data / "clinical_events.csv").write_text(
        EVENTS_HEADER.decode() + "\n" + "".join(rows), encoding="utf-8")
    con = connect(threads=2)
    try:
        with pytest.MonkeyPatch.context() as m:
            m.setattr(tables, "read_blocks", _refuse_lines)  # read whole, on both threads
            tables.load_tables(con, data, stage_dir=tmp_path / "stage")
        rejected = con.execute("SELECT line FROM rejects WHERE tbl = 'clinical_events' "
                               "ORDER BY line").fetchall()
        out_of_place = con.execute(
            f"SELECT count(*) FROM __src_ev WHERE value <> (seq & {(1 << 40) - 1})"
        ).fetchall()[0][0]
    finally:
        con.close()
    assert [r[0] for r in rejected] == sorted(bad)
    assert out_of_place == 0  # each row's value is its line number


def test_every_table_of_a_synthetic_extract_is_read_whole_and_the_same_as_by_lines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks of each table (sexes, GP systems, flags, monitoring kinds, dates, numbers)
    keep DuckDB's rows in order, so each plain file is read whole; and the rows, the rejects
    and the counts are what the line-by-line reader makes of the same files."""
    import datetime as dt

    from int_rules.synth import write_population

    data = tmp_path / "data"
    write_population(data, 300, 7, dt.date(2026, 3, 31), "csv")
    whole, by_lines = _load_whole(data, tmp_path / "whole", monkeypatch)
    # Only a file of a header alone (no one monitored, here) goes line by line.
    assert [(p, plain_file(p)) for p in by_lines] == [
        (p, PlainFile(1, "\n", True, 0)) for p in by_lines]
    assert whole == _load(data, tmp_path / "lines", True, monkeypatch)
    assert all(whole["stats"][name]["rows_read"] > 0
               for name in ("patients", "clinical_events", "admissions", "risk_scores"))


def test_an_extract_with_every_cell_quoted_is_read_whole_and_the_same_as_by_lines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An export may quote every cell (``"P1","2025-01-01",""``): each quote opens or closes a
    whole cell, so DuckDB's reader splits the lines as the line-by-line reader does, and reads
    each file whole; a comma inside a quoted cell is no separator."""
    import csv
    import datetime as dt

    from int_rules.synth import write_population

    made = tmp_path / "made"
    write_population(made, 300, 7, dt.date(2026, 3, 31), "csv")
    data = tmp_path / "data"
    data.mkdir()
    for path in made.glob("*.csv"):
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        if path.name == "patients.csv":  # a practice's name with a comma in it
            rows[1][rows[0].index("practice")] = "Hatfield, North"
        with (data / path.name).open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    assert (data / "clinical_events.csv").read_text().splitlines()[1].startswith('"')
    whole, by_lines = _load_whole(data, tmp_path / "whole", monkeypatch)
    assert [p.name for p in by_lines] == ["monitoring.csv"]  # a header alone
    assert whole == _load(data, tmp_path / "lines", True, monkeypatch)
    assert any("Hatfield, North" in row for row in whole["pt"])
