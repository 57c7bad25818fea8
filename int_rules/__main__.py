"""The ``int-rules`` command and ``python -m int_rules``: Ctrl-C is ``interrupted`` from the
first line.

This module imports nothing at its top (and ``import int_rules`` imports nothing either): the
command line (:mod:`int_rules.cli`), and with it pydantic, DuckDB and pyarrow, is imported
inside the ``try``. So Ctrl-C at any moment after the interpreter has started (while those
modules load, while a command runs, or as it finishes) prints one line, ``interrupted``, to
stderr and exits 130, and a population run leaves its output folder as it was (see
:mod:`int_rules.population.staging`).
"""

import sys

#: The exit code after Ctrl-C (128 + SIGINT), as :data:`int_rules.cli.EXIT_INTERRUPTED`.
EXIT_INTERRUPTED = 130


def main() -> int:
    """Run the command line on ``sys.argv`` and return its exit code.

    The process's entry point. It takes SIGINT first: Ctrl-C still raises KeyboardInterrupt,
    and is also noted, because a library may turn the KeyboardInterrupt into its own error
    (pydantic building a model while it imports; DuckDB inside a query, which the population
    command undoes). Whatever then reaches here, a noted Ctrl-C is ``interrupted`` and 130.
    Once the outcome is decided, further Ctrl-C is ignored so that the exit itself cannot be
    interrupted into a traceback. A Ctrl-C that lands where Python cannot raise it (a
    finaliser, a weak-reference callback) is not reported as "Exception ignored": it is noted,
    and ends the run as ``interrupted`` like any other.
    """
    noted: list[int] = []
    try:
        import signal

        def on_interrupt(signum: int, _frame: object) -> None:
            noted.append(signum)
            raise KeyboardInterrupt

        report_unraisable = sys.unraisablehook

        def on_unraisable(unraisable: "sys.UnraisableHookArgs") -> None:
            if not (noted and isinstance(unraisable.exc_value, KeyboardInterrupt)):
                report_unraisable(unraisable)

        sys.unraisablehook = on_unraisable
        signal.signal(signal.SIGINT, on_interrupt)
        from .cli import main as run

        code = run()
        _ignore_interrupts()
    except BaseException as exc:
        _ignore_interrupts()
        if not (noted or isinstance(exc, KeyboardInterrupt)):
            raise
        code = _interrupted()
    if noted and code != EXIT_INTERRUPTED:  # Ctrl-C after the command had decided its outcome
        code = _interrupted()
    return code


def _interrupted() -> int:
    _quiet_stdout()
    print("interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def _ignore_interrupts() -> None:
    import signal

    try:  # noqa: SIM105 - contextlib would be one more import in the handler
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to protect
        pass


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that flushing what a command had printed cannot fail at
    exit (as :func:`int_rules.cli.main` does when it is interrupted)."""
    import contextlib
    import os

    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
