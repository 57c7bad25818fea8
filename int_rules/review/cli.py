"""The review subcommands: ``int-rules docs``, ``lint``, ``diff``, ``approve`` and ``safety-case``.

Exit codes follow :mod:`int_rules.cli`: 0 ok; 1 when ``lint`` finds errors or a ``--check``
finds stale files; 2 for bad input (one clear message on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import IntRulesError

__all__ = ["register"]

EXIT_OK = 0
EXIT_FINDINGS = 1

class ReviewUsageError(IntRulesError):
    """A review command given something it cannot use."""


def _rules_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", metavar="DIR", type=Path, default=None,
                   help="rulebook directory (default: the bundled rulesets/)")


def _hazards_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hazards", metavar="FILE", type=Path, default=None,
                   help="hazard log (default: <rulebook>/../docs/safety/hazard-log.yaml)")


def _rulebook_dir(rules: Path | None) -> Path:
    from ..rulebook import default_rulebook_dir

    return rules if rules is not None else default_rulebook_dir()


def _project_root(rules: Path | None) -> Path:
    """The folder whose ``docs/`` the generated pages go to by default: the rulebook's parent,
    or the working folder when the rulebook is the one installed inside the package."""
    from ..bundle import is_installed_bundle

    root = _rulebook_dir(rules).resolve().parent
    return Path.cwd() if is_installed_bundle(root) else root


def _write_or_check(text: str, out: Path, check: bool, what: str, regenerate: str) -> int:
    if check:
        current = out.read_text(encoding="utf-8") if out.is_file() else None
        if current != text:
            state = "missing" if current is None else "out of date"
            print(f"int-rules: {out}: {what} is {state}; run `{regenerate}` and commit it",
                  file=sys.stderr)
            return EXIT_FINDINGS
        print(f"{out}: up to date")
        return EXIT_OK
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {out}")
    return EXIT_OK


# -- docs -------------------------------------------------------------------------------------


def _cmd_docs(args: argparse.Namespace) -> int:
    from ..rulebook import load
    from .docs import check_reference, render_reference, write_reference
    from .lint import hazard_log_for

    book = load(args.rules)
    log = hazard_log_for(book, args.hazards)
    pages = render_reference(book, log)
    out: Path = args.out or _project_root(args.rules) / "docs" / "reference"
    if args.check:
        drift = check_reference(pages, out)
        if not drift.clean:
            print(f"int-rules: the ruleset reference in {out} is stale:\n"
                  f"{drift.describe(out)}\nrun `int-rules docs --out {out}` and commit it",
                  file=sys.stderr)
            return EXIT_FINDINGS
        print(f"{out}: {len(pages)} pages up to date")
        return EXIT_OK
    changed = write_reference(pages, out)
    print(f"{out}: {len(pages)} pages, {len(changed)} changed"
          + (f" ({', '.join(changed)})" if changed else ""))
    return EXIT_OK


# -- lint -------------------------------------------------------------------------------------


def _cmd_lint(args: argparse.Namespace) -> int:
    from .lint import lint

    if args.max_nodes < 1:
        raise ReviewUsageError("--max-nodes must be at least 1")
    path: Path | None = args.path
    only: str | None = None
    if path is not None and path.is_file() and path.name != "rulebook.yaml":
        only = path.name
    elif path is not None and not path.exists():
        raise ReviewUsageError(f"{path}: no such file or directory")
    report = lint(path, hazard_log=args.hazards, project_root=args.project_root,
                  max_nodes=args.max_nodes, use_hazard_log=not args.no_hazards)
    if only is not None:
        from dataclasses import replace

        kept = tuple(f for f in report.findings
                     if f.file is None or Path(f.file).name == only)
        report = replace(report, findings=kept)
    if args.format == "json":
        print(report.to_json())
    else:
        print(report.text())
    return EXIT_FINDINGS if report.errors else EXIT_OK


# -- diff -------------------------------------------------------------------------------------


def _cmd_diff(args: argparse.Namespace) -> int:
    from .diff import diff_specs, render_markdown

    result = diff_specs(args.old, args.new, args.repo, args.rules_path)
    text = render_markdown(result)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    if args.exit_code and not result.empty:
        return EXIT_FINDINGS
    return EXIT_OK


# -- safety case ------------------------------------------------------------------------------


def _cmd_safety_case(args: argparse.Namespace) -> int:
    from ..rulebook import load
    from .lint import hazard_log_for, lint
    from .safety_case import junit_results, render_safety_case

    book = load(args.rules)
    log = hazard_log_for(book, args.hazards)
    root = _project_root(args.rules)
    report = lint(args.rules, hazard_log=args.hazards, max_nodes=args.max_nodes,
                  use_hazard_log=log is not None, book=book)
    results = junit_results(args.junit, root) if args.junit is not None else None
    text = render_safety_case(book, log, report, results)
    out: Path = args.out or root / "docs" / "safety" / "safety-case.md"
    return _write_or_check(text, out, args.check, "the safety case summary",
                           "int-rules safety-case")


# -- approve ----------------------------------------------------------------------------------


def _note(text: str) -> tuple[str, str]:
    rule, sep, note = text.partition("=")
    if not sep or not rule.strip() or not note.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected RULE-ID=TEXT")
    return rule.strip(), note.strip()


def _iso_date(text: str) -> str:
    import datetime as dt

    try:
        dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (expected YYYY-MM-DD)") from None
    if len(text) != 10:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (expected YYYY-MM-DD)")
    return text


def _cmd_approve(args: argparse.Namespace) -> int:
    from ..rulebook import load
    from .signoff import approve

    book = load(args.rules)
    notes = dict(args.note or [])
    record, path, changed = approve(book, args.target, args.by, args.role, args.date, notes)
    print(f"approved {record.target} {record.version} (sha256 {record.sha256}) by {record.by} "
          f"({record.role}) on {record.date}: recorded in {path}"
          + ("; status set to approved" if changed else ""))
    print("regenerate the review pack: int-rules docs && int-rules safety-case")
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``docs``, ``lint``, ``diff``, ``approve`` and ``safety-case`` to the parser."""
    from .analysis import DEFAULT_MAX_NODES

    p = subparsers.add_parser(
        "docs", help="write the ruleset reference (Markdown) for clinical safety review",
        description="Write one Markdown page per ruleset (every rule in plain English with its "
                    "guidance, provenance and hazards), plus facts, the caseload pathway, "
                    "codelists (unverified codes marked) and hazards. --check fails (exit 1) "
                    "if the committed pages are stale.")
    p.add_argument("--out", metavar="DIR", type=Path, default=None,
                   help="output folder (default: docs/reference beside the rulebook)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if the pages in --out differ from the rulebook")
    _rules_arg(p)
    _hazards_arg(p)
    p.set_defaults(func=_cmd_docs)

    p = subparsers.add_parser(
        "lint", help="statically verify a rulebook (exit 1 on errors)",
        description="Unknown and unused facts, codelists and parameters; rules without citation "
                    "or provenance; duplicate ids; overlapping rules (unique), rules that can "
                    "never fire (first/priority), gaps (complete decisions), each with an "
                    "example input; the pathway's static checks; drafts; the hazard log "
                    "against the rules and tests. Exit 1 if any error is found.")
    p.add_argument("path", nargs="?", type=Path, default=None, metavar="PATH",
                   help="a rulebook folder, or one ruleset file in it to report only on that "
                        "file (default: the bundled rulesets/)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    _hazards_arg(p)
    p.add_argument("--no-hazards", action="store_true", help="skip the hazard-log checks")
    p.add_argument("--project-root", metavar="DIR", type=Path, default=None,
                   help="where the tests named by hazard controls live (default: the folder "
                        "holding the hazard log's docs/)")
    p.add_argument("--max-nodes", metavar="N", type=int, default=DEFAULT_MAX_NODES,
                   help="bound on partial inputs explored per decision question "
                        f"(default {DEFAULT_MAX_NODES:,})")
    p.set_defaults(func=_cmd_lint)

    p = subparsers.add_parser(
        "diff", help="what changed between two rulebooks (Markdown for a change record)",
        description="Compare two rulebooks: rule-level changes (conditions in plain English, "
                    "outcomes, parameters, citations, provenance), facts, the pathway and "
                    "codelist membership (codes added and removed, with terms). OLD and NEW "
                    "are rulebook folders or git revisions.")
    p.add_argument("old", metavar="OLD", help="a rulebook folder or a git revision")
    p.add_argument("new", metavar="NEW", help="a rulebook folder or a git revision")
    p.add_argument("--repo", metavar="DIR", type=Path, default=Path.cwd(),
                   help="git repository for revisions (default: the current folder)")
    p.add_argument("--rules-path", metavar="PATH", default="rulesets",
                   help="the rulebook folder inside a revision (default: rulesets)")
    p.add_argument("--out", metavar="FILE", type=Path, default=None,
                   help="write the Markdown here (default: standard output)")
    p.add_argument("--exit-code", action="store_true",
                   help="exit 1 if anything changed (like git diff --exit-code)")
    p.set_defaults(func=_cmd_diff)

    p = subparsers.add_parser(
        "approve", help="record a clinical safety sign-off of a ruleset, the pathway or the "
                        "dashboard",
        description="Append an approval record (who, role, date, version and the content hash "
                    "of exactly what is approved) to approvals.yaml beside the rulebook, and set "
                    "'status: approved' in the target's file. Results then say 'approved' for "
                    "it until its content changes. Refused if this version was approved with "
                    "different content (bump the version first). The date is given, never read "
                    "from the clock.")
    p.add_argument("target", metavar="TARGET",
                   help="a ruleset id (e.g. identification), 'pathway', 'dashboard', or the file")
    p.add_argument("--by", required=True, metavar="NAME", help="who approves")
    p.add_argument("--role", required=True, metavar="ROLE",
                   help="their role, e.g. 'Clinical Safety Officer'")
    p.add_argument("--date", required=True, type=_iso_date, metavar="YYYY-MM-DD",
                   help="the date of the approval")
    p.add_argument("--note", action="append", type=_note, metavar="RULE-ID=TEXT",
                   help="a note on one rule (repeat for several)")
    _rules_arg(p)
    p.set_defaults(func=_cmd_approve)

    p = subparsers.add_parser(
        "safety-case", help="write the clinical safety case summary (DCB0129)",
        description="Write docs/safety/safety-case.md: ruleset versions, statuses and content "
                    "hashes; rules by provenance; unverified codes; hazards with their controls, "
                    "rules and tests; lint results. --check fails (exit 1) if it is stale.")
    p.add_argument("--out", metavar="FILE", type=Path, default=None,
                   help="output file (default: docs/safety/safety-case.md beside the rulebook)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if --out differs from what would be written")
    p.add_argument("--junit", metavar="FILE", type=Path, default=None,
                   help="a pytest JUnit XML report: show each control's test result")
    p.add_argument("--max-nodes", metavar="N", type=int, default=DEFAULT_MAX_NODES,
                   help=argparse.SUPPRESS)
    _rules_arg(p)
    _hazards_arg(p)
    p.set_defaults(func=_cmd_safety_case)
