"""A module imported on a thread of its own while the caller goes on (see
:func:`imported_ahead`)."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

__all__ = ["imported_ahead"]


@contextmanager
def imported_ahead(module: str) -> Iterator[None]:
    """Import ``module`` on a thread of its own while the block runs, so that it is ready
    when it is first used (work that lets go of the interpreter's lock, as DuckDB's queries
    and Arrow's encoding do, goes on beside it). Leaving waits for the import to end. An
    import that fails is left to fail again where the module is used, with its own message
    (nothing is said here); a module not installed is simply not imported."""

    def work() -> None:
        with suppress(Exception):  # raised again where the module is imported for use
            importlib.import_module(module)

    thread = threading.Thread(target=work, name=f"int-rules-import-{module}")
    thread.start()
    try:
        yield
    finally:
        thread.join()
