"""docs/population.md stays true: its Python runs, its tables match the code and the files."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import int_rules
from int_rules.population.dashboard import load_dashboard
from int_rules.population.tables import TABLES
from int_rules.synth import DEFAULT_AS_OF

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "population.md"
TEXT = PAGE.read_text(encoding="utf-8")


def test_python_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
    assert blocks
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        for block in blocks:
            exec(compile(block, str(PAGE), "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "True report.html" in out


def test_every_input_column_is_documented() -> None:
    for table in TABLES:
        section = TEXT.split(f"### `{table.name}`", 1)[1].split("###", 1)[0]
        for column in table.columns:
            row = f"| `{column.name}` | {'yes' if column.required else 'no'} |"
            assert row in section, (table.name, column.name)


def test_every_dashboard_measure_is_documented() -> None:
    dash = load_dashboard(int_rules.load(), DEFAULT_AS_OF)
    assert dash is not None
    for m in dash.measures:
        name = f"`{m.id}_<" if m.kind == "count_each" else f"`{m.id}`"
        assert name in TEXT or f"`{m.id}`" in TEXT, m.id


def test_example_extract_is_clean(tmp_path: Path) -> None:
    from int_rules.population.run import population_report

    report = population_report(int_rules.load(), REPO / "examples" / "population",
                               DEFAULT_AS_OF, tmp_path)
    assert report.summary["patients"]["read"] == 200
    assert report.summary["rejected_rows"] == 0
    assert report.summary["notes"] == []
