"""The examples in the README and the docs run, so they cannot go stale."""

from __future__ import annotations

import doctest
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_readme_python_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = python_blocks(REPO / "README.md")
    assert blocks, "the README must show a Python example"
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        for block in blocks:
            exec(compile(block, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "Caseload pathway:" in out  # the explanation was printed


@pytest.mark.parametrize("page", ["docs/record.md"])
def test_doc_page_doctests(page: str) -> None:
    result = doctest.testfile(str(REPO / page), module_relative=False,
                              optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# Pages whose Python blocks another test runs (with checks of its own).
TESTED_ELSEWHERE = {"docs/population.md"}
PAGES = sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").rglob("*.md")
               if python_blocks(p) and str(p.relative_to(REPO)) not in TESTED_ELSEWHERE)


def test_the_site_pages_with_examples_are_found() -> None:
    assert {"docs/index.md", "docs/api/index.md"} <= set(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_doc_page_python_examples_run(page: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Every Python block of the docs (and so of the site) runs, from the repository root as
    the pages assume; doctest blocks (``>>>``) are checked against their output."""
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        for i, block in enumerate(python_blocks(REPO / page)):
            if block.lstrip().startswith(">>>"):
                test = doctest.DocTestParser().get_doctest(block, {}, f"{page}[{i}]", page, 0)
                runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
                runner.run(test)
                assert runner.failures == 0, f"{page}: doctest block {i} fails"
            else:
                exec(compile(block, f"{page}[{i}]", "exec"), {})
    finally:
        os.chdir(cwd)
