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
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from int_rules.population import csvlines, population_report, run_population
from int_rules.population.tables import PopulationInputError
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


_LINES = [b"a,b", b"", b'"x,1",2', b"c,d\r", b"\xe9,1", b"e,f", b"\r", b"g,h,i"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.sampled_from(_LINES), max_size=60), block=st.integers(1, 300),
       piece=st.integers(1, 300), batch=st.integers(1, 8))
def test_every_line_is_read_once_with_its_number_whatever_the_block_sizes(
        tmp_path: Path, lines: list[bytes], block: int, piece: int, batch: int) -> None:
    """However the file is cut into pieces, blocks and batches, every line after the header is
    one row numbered by its line, in order, with its own text; the blank lines are counted and
    the lines with a quote or not UTF-8 are the ones split in Python."""
    path = tmp_path / "t.csv"
    path.write_bytes(b"h1,h2\n" + b"".join(line + b"\n" for line in lines))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(csvlines, "PIECE_BYTES", piece)
        mp.setattr(csvlines, "BATCH_LINES", batch)
        blocks = list(csvlines.read_blocks(path, ValueError, block))
    numbers = [n for b in blocks for n in b.plain.column("line").to_pylist()]
    assert numbers == list(range(2, 2 + len(lines)))
    texts = [t for b in blocks for t in b.plain.column("text").to_pylist()]
    skips = [s for b in blocks for s in b.plain.column("skip").to_pylist()]
    special = {i + 2 for i, line in enumerate(lines) if b'"' in line or b"\xe9" in line}
    blank = {i + 2 for i, line in enumerate(lines) if line in (b"", b"\r")}
    assert {n for n, s in zip(numbers, skips, strict=True) if s} == special | blank
    assert sum(b.blank_lines for b in blocks) == len(blank)
    assert [n for b in blocks for n in b.parsed.column("line").to_pylist()] == sorted(special)
    for n, text, skip in zip(numbers, texts, skips, strict=True):
        if not skip:
            assert text.rstrip("\r\n") == lines[n - 2].rstrip(b"\r").decode()
