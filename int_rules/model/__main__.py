"""Print a rulebook's rule model as stable JSON: ``python -m int_rules.model [--rules DIR]``.

What every engine translates, decided once: facts with their code sets, windows in days,
parameter values, types and nullability; conditions; decisions; the pathway table. Two runs on
the same rulebook print the same bytes, so the output can be diffed and reviewed.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import IntRulesError
from ..rulebook import load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m int_rules.model",
        description="Print the rule model of a rulebook (what every engine runs) as JSON.")
    parser.add_argument("--rules", metavar="DIR", help="rulebook directory (default: bundled)")
    parser.add_argument("--params", metavar="FILE", help="an INT's parameter overrides (YAML)")
    args = parser.parse_args(argv)
    try:
        book = load(args.rules, args.params)
    except IntRulesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(book.model.to_json() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
