"""The ``int-rules`` command line.

Every subcommand reports bad input as one clear message on stderr and exits 2; it never shows a
Python traceback for a problem with the user's files. ``int-rules --help`` lists subcommands.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .errors import IntRulesError

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2


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
        print(result.to_json())
    elif args.format == "cds-hooks":
        print(json.dumps(result.to_cds_hooks(), indent=2, ensure_ascii=False))
    else:
        print(result.explain())
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
            print(f"{d.code} {term}: {verdict} on {d.on.isoformat()} -> {d.resulting_state}. "
                  f"{d.reason}")
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
    p.add_argument("--format", choices=("text", "json", "cds-hooks"), default="text",
                   help="text (the explanation), json (Assessment.to_dict) or cds-hooks "
                        "(CDS Hooks 2.0 cards)")
    p.add_argument("--engine", choices=("reference", "durable"), default="reference",
                   help="evaluation engine (default: reference)")
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
    """Run the CLI; return the exit code (0 ok, 1 findings where a command says so, 2 bad input)."""
    if not _EXTRA_COMMANDS:
        _register_extras()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except IntRulesError as exc:
        print(f"int-rules: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        print("int-rules: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
