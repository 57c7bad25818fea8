"""Writing a run's outputs all or nothing: a staging folder, moved into place on success.

Every output of a run is written into a hidden folder inside the output directory
(``.int-rules-staging-<run id>``, on the same file system, so each move is a rename). Only
when every file is written are they moved into the output directory, ``run_summary.json``
last, and any of our output files that this run did not write (e.g. a ``facts.parquet`` of an
earlier run with ``--with-facts``) removed, so the directory never mixes two runs. A run that
fails or is interrupted removes its staging folder and leaves the output directory as it was.
A run killed outright (SIGKILL) can leave its staging folder behind; the next run into the
directory removes it.

The run id is an argument (the library never reads the clock): :func:`run_id_for` derives one
from what the run reads, so the same inputs give the same id, and the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

from ..errors import IntRulesError

__all__ = ["OUTPUT_NAMES", "OutputError", "Staging", "run_id_for"]

#: The files a population run may write into its output directory.
OUTPUT_NAMES = ("results.csv", "results.parquet", "findings.csv", "dashboard.csv",
                "rejects.csv", "report.html", "facts.parquet", "data_dictionary.csv",
                "run_summary.json")

_PREFIX = ".int-rules-staging-"


class OutputError(IntRulesError):
    """An output directory or file that cannot be written (the run stops; exit code 2)."""


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) and SIGTERM while the outputs are moved, so that the directory
    never holds some files of the new run beside others of the old one: a signal that arrives
    meanwhile is noted, and raised again, to its own handler, once the last file is in place.
    (Only the main thread can set signal handlers; elsewhere this holds nothing.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []

    def note(signum: int, _frame: object) -> None:
        arrived.append(signum)

    held = [signal.SIGINT, signal.SIGTERM]
    before = {sig: signal.signal(sig, note) for sig in held}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        for signum in dict.fromkeys(arrived):
            signal.raise_signal(signum)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def run_id_for(parts: Iterable[str], files: Sequence[Path]) -> str:
    """A run id from ``parts`` (e.g. the rulebook's sha256, the as-of date, options) and each
    input file's name, size and modification time: 16 hex digits."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8") + b"\0")
    for path in sorted(files):
        try:
            st = path.stat()
            h.update(f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        except OSError:
            h.update(f"{path.name}\0?\0".encode())
    return h.hexdigest()[:16]


class Staging:
    """A staging folder for one run's outputs; use as a context manager.

    >>> # with Staging(Path("out"), run_id) as stage:  # doctest: +SKIP
    >>> #     (stage.dir / "results.csv").write_text("...")
    >>> #     stage.commit(["results.csv"])
    """

    def __init__(self, out_dir: Path, run_id: str) -> None:
        self.out_dir = out_dir
        self.dir = out_dir / f"{_PREFIX}{run_id}"
        self.committed = False

    def __enter__(self) -> Staging:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if not os.access(self.out_dir, os.W_OK):
                raise OutputError(f"cannot write into output directory '{self.out_dir}': "
                                  "permission denied")
            if self.dir.exists():
                shutil.rmtree(self.dir)
            self.dir.mkdir()
        except OSError as exc:
            raise OutputError(f"cannot create output directory '{self.out_dir}': "
                              f"{_why(exc)}") from None
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def commit(self, names: Sequence[str]) -> dict[str, Path]:
        """Move ``names`` (written in the staging folder) into the output directory, the last
        one last; remove our other output files and stale staging folders. Returns the final
        paths by name."""
        for name in names:
            if not (self.dir / name).is_file():
                raise OutputError(f"{self.dir / name}: was not written")
        try:
            with _signals_held():
                for name in OUTPUT_NAMES:
                    old = self.out_dir / name
                    if name not in names and old.is_file():
                        old.unlink()
                for name in names:
                    os.replace(self.dir / name, self.out_dir / name)
        except OSError as exc:
            raise OutputError(f"cannot move the outputs into '{self.out_dir}': "
                              f"{_why(exc)}") from None
        self.committed = True
        for stale in self.out_dir.glob(f"{_PREFIX}*"):
            if stale != self.dir and stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        return {name: self.out_dir / name for name in names}
