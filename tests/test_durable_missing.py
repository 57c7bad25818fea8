"""Without the optional durable-rules package the library works and the durable engine says
how to install it. Runs whether or not the extra is installed (the import is made to fail)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

import int_rules
from int_rules import EngineUnavailableError, PatientRecord
from int_rules.cli import main
from tests.strategies import EXAMPLE

AS_OF = dt.date(2026, 11, 23)


def _without_durable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("durable", "durable.engine", "durable_rules_engine"):
        monkeypatch.setitem(sys.modules, name, None)  # import now raises ImportError


def test_missing_extra_gives_a_clear_error_and_the_library_still_works(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _without_durable(monkeypatch)
    book = int_rules.load()  # a fresh rulebook, so nothing is compiled yet
    record = PatientRecord.from_json_file(EXAMPLE)
    assert book.assess(record, AS_OF).engine == "generated"
    with pytest.raises(EngineUnavailableError) as err:
        book.assess(record, AS_OF, engine="durable")
    assert "pip install 'int_rules[durable]'" in str(err.value)


def test_missing_extra_on_the_cli_is_one_line_and_exit_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _without_durable(monkeypatch)
    code = main(["assess", str(EXAMPLE), "--as-of", AS_OF.isoformat(), "--engine", "durable"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("int-rules: error:") and "pip install 'int_rules[durable]'" in err
    assert "Traceback" not in err


def test_the_library_does_not_import_durable_rules_unless_asked() -> None:
    code = (
        "import datetime, sys, int_rules\n"
        "book = int_rules.load()\n"
        f"record = int_rules.PatientRecord.from_json_file({str(EXAMPLE)!r})\n"
        "book.assess(record, datetime.date(2026, 11, 23))\n"
        "assert 'durable' not in sys.modules and 'durable_rules_engine' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
