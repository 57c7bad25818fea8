"""CSV blocks read ahead on a thread: an error is raised where it happened, and a caller that
stops early stops the reading."""

from __future__ import annotations

import gzip
import threading
import time
from pathlib import Path

import pytest

from int_rules.population import csvlines


class Unreadable(Exception):
    pass


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "int-rules-csv-lines"]


def _wait_for_no_reader(seconds: float = 5.0) -> None:
    end = time.monotonic() + seconds
    while _reader_threads() and time.monotonic() < end:
        time.sleep(0.01)


def _events(n: int) -> bytes:
    return b"patient_id,date\n" + b"".join(b"P%d,2025-01-01\n" % i for i in range(n))


def _blocks_then_error(path: Path, ahead: bool) -> tuple[list[list[int]], str]:
    got: list[list[int]] = []
    with pytest.raises(Unreadable) as caught:
        for block in csvlines.read_blocks(path, Unreadable, 4096, ahead=ahead):
            got.append(block.plain.column("line").to_pylist())
    return got, str(caught.value)


def test_a_truncated_file_gives_the_same_blocks_then_the_same_error_read_ahead_or_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csvlines, "PIECE_BYTES", 1024)
    whole = gzip.compress(_events(20_000), mtime=0)
    path = tmp_path / "clinical_events.csv.gz"
    path.write_bytes(whole[: len(whole) * 3 // 4])
    ahead, ahead_error = _blocks_then_error(path, ahead=True)
    here, here_error = _blocks_then_error(path, ahead=False)
    assert ahead == here and len(here) > 1  # some blocks were read before the error
    assert ahead_error == here_error == "the gzip file ends early (truncated)"
    _wait_for_no_reader()
    assert _reader_threads() == []


def test_a_caller_that_stops_early_stops_the_reading_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csvlines, "PIECE_BYTES", 1024)
    path = tmp_path / "clinical_events.csv"
    path.write_bytes(_events(50_000))
    blocks = csvlines.read_blocks(path, Unreadable, 4096)
    first = next(blocks)
    assert first.plain.column("line").to_pylist()[0] == 2
    assert len(_reader_threads()) == 1
    blocks.close()  # what leaving a for loop by an error does
    _wait_for_no_reader()
    assert _reader_threads() == []
