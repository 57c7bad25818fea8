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
