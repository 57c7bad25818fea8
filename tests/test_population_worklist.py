"""What an analyst opens after a population run: queryable results, a data dictionary,
worklists (XLSX and CSV), a report that reads at a glance, theographs, suppression."""

from __future__ import annotations

import csv
import json
import re
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

import int_rules
from int_rules.cli import main
from int_rules.population.disclosure import REDACTED, round_count
from int_rules.population.worklist import load_worklists, single_valued_outputs
from int_rules.synth import full_scale_patients, load_neighbourhoods, share_65_plus

BOOK = int_rules.load()
WORKLISTS = load_worklists(BOOK)
DOCS = Path(__file__).resolve().parent.parent / "docs" / "population.md"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("extract")
    assert main(["synth", "--patients", "4000", "--seed", "3", "--out", str(data),
                 "--quiet"]) == 0
    out = tmp_path_factory.mktemp("run")
    assert main(["population", str(data), "--as-of", "2026-03-31", "--out", str(out),
                 "--quiet", "--results-csv"]) == 0
    return out


# -- results and dictionary -----------------------------------------------------------------


def test_single_valued_outputs_are_scalars_in_parquet_and_csv(run: Path) -> None:
    schema = pq.read_schema(run / "results.parquet")
    assert str(schema.field("identification_candidate_for_review").type) == "bool"
    assert str(schema.field("identification_record_code").type) == "string"
    assert str(schema.field("identification_cohort").type).startswith("list")
    con = duckdb.connect()
    n = con.sql(f"SELECT count(*) FROM '{run / 'results.parquet'}' "
                "WHERE identification_candidate_for_review").fetchall()[0][0]
    with (run / "results.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["identification_candidate_for_review"] for r in rows} <= {"true", "false"}
    assert sum(r["identification_candidate_for_review"] == "true" for r in rows) == n > 0
    assert {r["identification_record_code"] for r in rows} <= {"", "936221000000104"}


def test_results_carry_the_risk_score_and_key_dates(run: Path) -> None:
    con = duckdb.connect()
    rows = con.sql(f"SELECT predicted_risk, predicted_risk_date, caseload_start, pathway_state "
                   f"FROM '{run / 'results.parquet'}'").fetchall()
    scored = [r for r in rows if r[0] is not None]
    assert scored and all(r[1] is not None for r in scored)
    on = [r for r in rows if r[3] and r[3].startswith("on_caseload")]
    assert on and all(r[2] is not None for r in on)


def test_every_results_column_is_in_the_dictionary_and_the_docs(run: Path) -> None:
    with (run / "results.csv").open(newline="") as fh:
        header = next(csv.reader(fh))
    with (run / "data_dictionary.csv").open(newline="") as fh:
        entries = list(csv.DictReader(fh))
    assert [e["column"] for e in entries] == header
    assert all(e["meaning"] and e["type"] and e["source"] for e in entries)
    text = DOCS.read_text(encoding="utf-8")
    for column in header:
        assert f"| `{column}` |" in text, column
    # and the docs' table is the generated one (python -m int_rules.population.columns)
    from int_rules.population.columns import _main

    assert _main(["--check", str(DOCS)]) == 0


def test_a_collect_output_set_to_two_values_stays_a_list() -> None:
    scalars = single_valued_outputs(BOOK)
    assert "identification_candidate_for_review" in scalars
    assert "assessment_mdt_record_code" not in scalars  # CGA and MDT codes
    assert "monitoring_level" in scalars  # hit policy first


# -- worklists ------------------------------------------------------------------------------


def _sheet_xml(path: Path, index: int) -> str:
    with zipfile.ZipFile(path) as z:
        return z.read(f"xl/worksheets/sheet{index}.xml").decode("utf-8")


def test_worklist_for_a_neighbourhood_is_ordered_by_risk_with_codes_as_text(
        run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    con = duckdb.connect()
    name = con.sql(f"SELECT neighbourhood FROM '{run / 'results.parquet'}' WHERE "
                   "identification_candidate_for_review OR pathway_state = 'identified' "
                   "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchall()[0][0]
    assert main(["worklist", str(run), "--neighbourhood", name, "--out", str(tmp_path)]) == 0
    assert "Worklists:" in capsys.readouterr().out
    stem = "worklists_" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    with (tmp_path / f"{stem}_consent.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {r["neighbourhood"] for r in rows} == {name}
    assert len({r["patient_id"] for r in rows}) == len(rows)
    risks = [float(r["predicted_risk"]) if r["predicted_risk"] else -1.0 for r in rows]
    assert risks == sorted(risks, reverse=True)
    expected = con.sql(f"SELECT patient_id FROM '{run / 'results.parquet'}' WHERE "
                       f"neighbourhood = '{name}' AND (identification_candidate_for_review "
                       "OR pathway_state = 'identified')").fetchall()
    assert {r["patient_id"] for r in rows} == {e[0] for e in expected}
    for r in rows:
        assert r["reason"]
        if r["pathway_state"] == "not_identified":
            assert r["record_code"] == "936221000000104"
            assert r["record_term"]
    # One sheet per list after About; codes are strings, header frozen.
    xlsx = tmp_path / f"{stem}.xlsx"
    with zipfile.ZipFile(xlsx) as z:
        workbook = z.read("xl/workbook.xml").decode("utf-8")
    assert WORKLISTS is not None
    assert workbook.count("<sheet ") == 1 + len(WORKLISTS.lists)
    sheet = _sheet_xml(xlsx, 2)
    assert 'state="frozen"' in sheet and 'ySplit="1"' in sheet
    coded = [r["record_code"] for r in rows if r["record_code"]]
    assert coded
    for code in coded:
        assert f"<t>{code}</t>" in sheet, code  # a text cell, all digits kept
    assert not re.search(r"<v>\d{10,}</v>", sheet)  # no code became a number


def test_worklist_refuses_an_unknown_neighbourhood(run: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worklist", str(run), "--neighbourhood", "NOWHERE"]) == 2
    err = capsys.readouterr().err
    assert "no neighbourhood 'NOWHERE'" in err and "HATFIELD" in err


def test_every_list_is_defined_by_ruleset_outputs_or_facts() -> None:
    assert WORKLISTS is not None
    ids = [cl.id for cl in WORKLISTS.lists]
    assert ids == ["consent", "cga_due", "mdt_due", "review_due", "step_down", "urgent",
                   "data_quality"]
    for cl in WORKLISTS.lists:
        assert cl.definition.cite.quote
        for r in cl.reasons:
            assert r.words or r.rules, cl.id


# -- the report -----------------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _self_contained(page: _Page) -> None:
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "img", "iframe", "object"), tag
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            assert not re.match(r"^[a-z]+:", value), (tag, value)


def test_report_is_self_contained_responsive_and_starts_with_a_summary(run: Path) -> None:
    page = _parse(run / "report.html")
    _self_contained(page)
    svgs = [a for t, a in page.tags if t == "svg"]
    assert len(svgs) > 5
    assert all(a.get("viewbox") for a in svgs)  # html.parser lower-cases attribute names
    ids = [a.get("id") for _, a in page.tags if a.get("id")]
    assert ids.index("summary") < ids.index("dashboard")
    text = (run / "report.html").read_text(encoding="utf-8")
    assert "Synthetic data." in text and "4,000-person sample" in text
    summary = json.loads((run / "run_summary.json").read_text())
    for f in summary["inputs"]:
        assert f["sha256"] in text and len(f["sha256"]) == 64
    assert "Small-number suppression: <b>off</b>" in text
    first = text.split('id="summary"', 1)[1].split("</table>", 1)[0]
    for n in load_neighbourhoods():
        assert n.name.replace("&", "&amp;") in first


def test_dashboard_csv_has_the_guides_figures_per_neighbourhood(run: Path) -> None:
    with (run / "dashboard.csv").open(newline="") as fh:
        rows = {r["neighbourhood"]: r for r in csv.DictReader(fh)}
    for n in load_neighbourhoods():
        assert int(rows[n.name]["guide_registered_65_plus"]) == n.registered_65_plus
        assert int(rows[n.name]["guide_identified"]) == n.identified
    assert rows["All neighbourhoods"]["small_number_suppression"] == "off"


def test_small_number_suppression(run: Path, tmp_path: Path) -> None:
    assert [round_count(n) for n in (0, 1, 7, 8, 12, 13, 102)] == [0, REDACTED, REDACTED,
                                                                 10, 10, 15, 100]
    summary = json.loads((run / "run_summary.json").read_text())
    assert main(["population", summary["data_dir"], "--as-of", "2026-03-31", "--out",
                 str(tmp_path), "--quiet", "--suppress-small-numbers"]) == 0
    with (tmp_path / "dashboard.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["small_number_suppression"].startswith("counts 1-7 suppressed")
    for r in rows:
        for column in ("registered_65_plus", "caseload", "stepped_down"):
            assert r[column] == REDACTED or int(r[column]) % 5 == 0, (column, r[column])
    assert "counts 1-7 suppressed" in (tmp_path / "report.html").read_text(encoding="utf-8")


# -- theographs -----------------------------------------------------------------------------


def test_theograph_of_a_record_is_one_self_contained_page(tmp_path: Path) -> None:
    record = Path(__file__).resolve().parent.parent / "examples" / "records" / \
        "care_home_awaiting_consent.json"
    out = tmp_path / "person.html"
    assert main(["assess", str(record), "--as-of", "2026-03-31", "--format", "html",
                 "--out", str(out)]) == 0
    page = _parse(out)
    _self_contained(page)
    svgs = [a for t, a in page.tags if t == "svg"]
    assert len(svgs) == 1 and svgs[0].get("viewbox")
    text = out.read_text(encoding="utf-8")
    for lane in ("Caseload pathway", "Hospital admissions", "Frailty", "Remote-monitoring"):
        assert lane in text
    assert "Why</h2>" in text


def test_theograph_of_a_population_patient(run: Path, tmp_path: Path) -> None:
    con = duckdb.connect()
    pid = con.sql(f"SELECT patient_id FROM '{run / 'results.parquet'}' WHERE "
                  "pathway_state LIKE 'on_caseload%' LIMIT 1").fetchall()[0][0]
    assert main(["theograph", str(run), pid, "--out", str(tmp_path), "--quiet"]) == 0
    page = tmp_path / f"theograph_{pid.lower()}.html"
    text = page.read_text(encoding="utf-8")
    assert "Synthetic data" in text and "viewBox" in text
    assert text.count("<circle") > 0  # pathway codes at least
    assert main(["theograph", str(run), "NOBODY", "--out", str(tmp_path), "--quiet"]) == 2


# -- the synthetic ICS ----------------------------------------------------------------------


def test_full_scale_synth_gives_each_neighbourhood_the_guides_over_65s() -> None:
    nbhs = load_neighbourhoods()
    total = sum(n.registered_65_plus for n in nbhs)
    assert full_scale_patients() * share_65_plus(nbhs, full_scale_patients()) == \
        pytest.approx(total)
    # The living over-65s (the guide's registered population) match when some have died.
    alive = full_scale_patients() * share_65_plus(nbhs, full_scale_patients(), 0.02) * 0.98
    assert alive == pytest.approx(total)


def test_a_sample_has_an_identified_share_of_the_order_the_searches_found(run: Path) -> None:
    with (run / "dashboard.csv").open(newline="") as fh:
        total = next(r for r in csv.DictReader(fh) if r["neighbourhood"] == "All neighbourhoods")
    share = float(total["identified_share"])
    guide = float(total["guide_identified_share"])
    assert 0.6 * guide <= share <= 1.6 * guide, (share, guide)


def test_a_worklist_naming_an_unknown_output_is_located(tmp_path: Path) -> None:
    from int_rules.errors import RulesetError

    src = (BOOK.directory / "worklists.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "worklists.yaml"
    bad.write_text(src.replace("review.review_due", "review.review_overdue", 1), encoding="utf-8")
    with pytest.raises(RulesetError, match=r"no output 'review\.review_overdue'") as err:
        load_worklists(BOOK, bad)
    assert err.value.location is not None and err.value.location.line is not None


def test_a_theograph_lane_naming_an_unknown_codelist_is_located(tmp_path: Path) -> None:
    from int_rules.errors import RulesetError
    from int_rules.theograph import load_theograph

    src = (BOOK.directory / "theograph.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "theograph.yaml"
    bad.write_text(src.replace("[cga, mdt_review]", "[cga, mdt_reveiw]", 1), encoding="utf-8")
    with pytest.raises(RulesetError, match="unknown codelist 'mdt_reveiw'") as err:
        load_theograph(BOOK, bad)
    assert err.value.location is not None and err.value.location.line is not None


def test_worklist_links_the_first_people_to_their_theographs(run: Path, tmp_path: Path) -> None:
    assert main(["worklist", str(run), "--list", "consent", "--theographs", "2",
                 "--out", str(tmp_path), "--quiet"]) == 0
    with (tmp_path / "worklists_consent.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    linked = [r for r in rows if r["theograph"]]
    assert [r["rank"] for r in linked] == ["1", "2"]
    for r in linked:
        page = tmp_path / r["theograph"]
        assert r["patient_id"] in page.read_text(encoding="utf-8")
    with zipfile.ZipFile(tmp_path / "worklists.xlsx") as z:
        rels = z.read("xl/worksheets/_rels/sheet2.xml.rels").decode("utf-8")
    assert Path(linked[0]["theograph"]).name in rels  # a relative link (Excel writes it with \\)
