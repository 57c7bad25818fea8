"""The ``int-rules`` command line.

Every subcommand reports bad input as one clear message on stderr and exits 2; it never shows a
Python traceback for a problem with the user's files. ``int-rules --help`` lists subcommands.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import errno
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .errors import IntRulesError

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class UsageError(IntRulesError):
    """A command-line argument that cannot be used."""


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (expected YYYY-MM-DD)") from None


def _add_rulebook_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", metavar="DIR", type=Path, default=None,
                   help="rulebook directory (default: the bundled rulesets/)")
    p.add_argument("--params", metavar="FILE", type=Path, default=None,
                   help="an INT's parameter overrides (YAML; see docs/parameters.md)")


def _cmd_assess(args: argparse.Namespace) -> int:
    from .fhir.cli import read_record_file
    from .rulebook import load

    book = load(args.rules, args.params)
    record = read_record_file(args.record)
    result = book.assess(record, args.as_of, engine=args.engine)
    if args.format == "json":
        text = result.to_json()
    elif args.format == "cds-hooks":
        text = json.dumps(result.to_cds_hooks(), indent=2, ensure_ascii=False)
    elif args.format == "html":
        from .theograph import theograph_page

        text = theograph_page(book, record, result)
    else:
        text = printable(result.explain())
    if args.out is not None:
        try:
            args.out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.out}: {exc.strerror}") from None
        print(f"Wrote {args.out.resolve()}")
    else:
        print(text.rstrip("\n"))
    return EXIT_OK


def _cmd_may_record(args: argparse.Namespace) -> int:
    from .fhir.cli import read_record_file
    from .rulebook import load

    book = load(args.rules, args.params)
    record = read_record_file(args.record)
    if args.code:
        decisions = [book.may_record(record, args.code, args.on)]
    else:
        decisions = list(book.next_codes(record, args.on))
    if args.format == "json":
        print(json.dumps([
            {"code": d.code, "term": book.codelists.term(d.code), "on": d.on.isoformat(),
             "allowed": d.allowed, "reason": d.reason, "resulting_state": d.resulting_state,
             "finding_id": d.finding_id}
            for d in decisions
        ], indent=2))
    else:
        for d in decisions:
            verdict = "may be recorded" if d.allowed else "may NOT be recorded"
            term = book.codelists.term(d.code) or ""
            print(printable(f"{d.code} {term}: {verdict} on {d.on.isoformat()} -> "
                            f"{d.resulting_state}. {d.reason}"))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="int-rules",
        description="Executable rules for proactive care in Integrated Neighbourhood Teams "
                    "(HWE implementation guide, 2024 and December 2025).",
    )
    parser.add_argument("--version", action="version", version=f"int-rules {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("assess", help="assess one patient record (JSON) as of a date",
                       description="Assess one record: cohorts, pathway state, next steps, review "
                                   "reasons, step-down, monitoring level, data quality, and why.")
    p.add_argument("record", type=Path, help="a patient record JSON file (see docs/record.md), "
                   "or one patient's FHIR Bundle (UK Core; see docs/fhir.md)")
    p.add_argument("--as-of", type=_date, required=True, metavar="YYYY-MM-DD",
                   help="the date to assess as of; events after it are ignored")
    p.add_argument("--format", choices=("text", "json", "cds-hooks", "html"), default="text",
                   help="text (the explanation), json (Assessment.to_dict), cds-hooks "
                        "(CDS Hooks 2.0 cards), or html: one "
                        "self-contained page with the person's theograph (a timeline of "
                        "pathway codes, CGA/MDT, admissions, frailty and end-of-life codes, "
                        "risk scores and monitoring alerts) and the explanation")
    p.add_argument("--out", type=Path, default=None, metavar="FILE",
                   help="write to FILE instead of standard output")
    p.add_argument("--engine", choices=("reference", "generated", "durable"), default="reference",
                   help="evaluation engine (default: reference, the oracle; generated: the "
                        "same rules as one generated function, faster)")
    _add_rulebook_args(p)
    p.set_defaults(func=_cmd_assess)

    p = sub.add_parser("may-record", help="may a pathway code be recorded now? (or list those "
                                          "that may)")
    p.add_argument("record", type=Path, help="a patient record JSON file, or a FHIR Bundle")
    p.add_argument("--on", type=_date, required=True, metavar="YYYY-MM-DD")
    p.add_argument("--code", help="the SNOMED CT code to check; omit to list every code that "
                                  "may be recorded next")
    p.add_argument("--format", choices=("text", "json"), default="text")
    _add_rulebook_args(p)
    p.set_defaults(func=_cmd_may_record)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


#: Subcommands contributed by other modules (population, synth, docs, lint, diff).
_EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []


def _register_extras() -> None:
    from . import cli_extras

    _EXTRA_COMMANDS.extend(cli_extras.COMMANDS)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 findings where a command says so, 2 bad input,
    130 interrupted)."""
    if not _EXTRA_COMMANDS:
        _register_extras()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        sys.stdout.flush()
        return code
    except IntRulesError as exc:
        _error(str(exc))
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        _quiet_stdout()
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RecursionError:
        _error("the input is nested too deeply to read")
        return EXIT_BAD_INPUT
    except OverflowError as exc:
        # A date computed past the calendar (years 1 to 9999), e.g. from a date at its edge.
        _error(f"a date falls outside the calendar (years 1 to 9999): {exc}")
        return EXIT_BAD_INPUT
    except OSError as exc:
        # A file system problem (disk full, a read-only folder, a missing file): say where.
        where = f"{exc.filename}: " if exc.filename else "cannot write the output: "
        if exc.errno == errno.ENOSPC or not exc.filename:
            _quiet_stdout()
        _error(f"{where}{exc.strerror or exc}")
        return EXIT_BAD_INPUT


#: At most this many lines of one error message are printed (then how many more).
MAX_ERROR_LINES = 25
#: Characters other than tab and line feed below U+0020, DEL and the C1 controls: shown escaped.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F,
                                       *range(0x80, 0xA0))}


def printable(text: str) -> str:
    """``text`` with control characters (other than tab and line feed) escaped as ``\\xNN``,
    so a hostile value cannot move the cursor or rewrite a terminal."""
    return text.translate(_CONTROL)


def _error(message: str) -> None:
    lines = printable(message).split("\n")
    if len(lines) > MAX_ERROR_LINES:
        more = len(lines) - MAX_ERROR_LINES
        lines = [*lines[:MAX_ERROR_LINES], f"... and {more:,} more lines"]
    lines = [ln if len(ln) <= 1000 else ln[:1000] + "..." for ln in lines]
    with contextlib.suppress(OSError):
        print(f"int-rules: error: {lines[0]}", *lines[1:], sep="\n", file=sys.stderr)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
