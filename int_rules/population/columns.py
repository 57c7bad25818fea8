"""The columns of ``results.csv`` and ``results.parquet`` an analyst queries, and their data
dictionary (``data_dictionary.csv``).

The engine's ``results`` view keeps every ``collect`` output as a list (as ``Assessment``
does). The files written for analysts differ in two ways, both decided by the rulebook:

* an output that holds at most one value (:func:`~.worklist.single_valued_outputs`) is a
  scalar: ``identification_candidate_for_review`` is a boolean (false when no rule set it), so
  ``WHERE identification_candidate_for_review`` works; a code output is the code (text);
* the facts named under ``columns`` in ``rulesets/worklists.yaml`` (the predicted risk and its
  date, the key dates of the pathway) are added, named by the fact.

Every column has a row in the data dictionary: its name, meaning, type and source (the rule,
ruleset output or fact it comes from).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..engines.sql import fact_column

if TYPE_CHECKING:
    from ..rulebook import Rulebook
    from .worklist import Worklists

__all__ = ["DictionaryEntry", "data_dictionary", "results_select", "worklist_fact_columns",
           "write_data_dictionary"]


@dataclass(frozen=True)
class DictionaryEntry:
    """One column of the results: name, meaning, type (as in Parquet) and source."""

    column: str
    meaning: str
    type: str
    source: str


_BASE: tuple[DictionaryEntry, ...] = (
    DictionaryEntry("patient_id", "Pseudonymised patient identifier, as in the patients table",
                    "text", "patients.patient_id"),
    DictionaryEntry("practice", "Registered practice", "text", "patients.practice"),
    DictionaryEntry("neighbourhood", "The INT (neighbourhood) of the practice", "text",
                    "patients.neighbourhood"),
    DictionaryEntry("gp_system", "GP clinical system (EMIS, SystmOne, other)", "text",
                    "patients.gp_system"),
    DictionaryEntry("sex", "female, male, other or unknown", "text", "patients.sex"),
    DictionaryEntry("age", "Age in whole years on the as-of date", "integer", "fact age"),
    DictionaryEntry("date_of_death", "Date of death, if recorded", "date",
                    "patients.date_of_death"),
)
_PATHWAY: tuple[DictionaryEntry, ...] = (
    DictionaryEntry("pathway_state", "Where the person is on the caseload pathway (replayed "
                    "from pathway codes)", "text", "pathway (rulesets/pathway.yaml)"),
    DictionaryEntry("pathway_entered", "Date the person entered that pathway state", "date",
                    "pathway (rulesets/pathway.yaml)"),
    DictionaryEntry("pathway_next_steps", "Pathway steps allowed next that change the state",
                    "list of text", "pathway (rulesets/pathway.yaml)"),
    DictionaryEntry("pathway_findings", "Ids of pathway codes that do not fit the pathway "
                    "(see findings.csv)", "list of text", "pathway (rulesets/pathway.yaml)"),
    DictionaryEntry("rule_ids", "Every rule that fired for the person", "list of text",
                    "every ruleset"),
    DictionaryEntry("rejected_rows", "How many of the person's input rows were rejected (see "
                    "rejects.csv); above 0 means an incomplete record", "integer",
                    "input checks"),
)
_TYPES = {"bool": "boolean", "category": "text", "code": "text (SNOMED CT code)",
          "text": "text"}


def data_dictionary(book: Rulebook, wl: Worklists | None) -> list[DictionaryEntry]:
    """The columns of ``results.csv`` / ``results.parquet``, in file order."""
    scalars = wl.scalar_outputs if wl is not None else frozenset()
    out = list(_BASE)
    for rs in book.rulesets:
        for key, o in rs.definition.outputs.items():
            col = f"{rs.id}_{key}"
            rules = [r.id for r in rs.rules if key in r.definition.then]
            kind = _TYPES[o.type]
            if col not in scalars:
                kind = f"list of {kind}"
            elif o.type == "bool" and rs.definition.hit_policy == "collect":
                kind += " (false when no rule set it)"
            src = f"ruleset {rs.id} ({rs.definition.hit_policy}), output {key}"
            if rules:
                src += f"; rules {', '.join(rules)}"
            out.append(DictionaryEntry(col, " ".join(o.description.split()), kind, src))
    out += _PATHWAY
    if wl is not None:
        for c in wl.columns:
            meaning = " ".join(book.facts_file.facts[c.fact].description.split())
            out.append(DictionaryEntry(c.fact, meaning, book.facts[c.fact].type.describe(),
                                       f"fact {c.fact} (facts.yaml)"))
    out += [DictionaryEntry("rulebook_sha256", "sha256 of the exact rulesets, codelists and "
                            "overrides used", "text", "provenance"),
            DictionaryEntry("rulebook_status", "draft while any ruleset is a draft, else "
                            "approved", "text", "provenance"),
            DictionaryEntry("run_id", "the run's id: the same inputs, rulebook and as-of date "
                            "give the same id", "text", "provenance"),
            DictionaryEntry("as_of", "the date the run assessed every patient as of", "date",
                            "provenance")]
    return out


def results_select(inner: str, book: Rulebook, wl: Worklists | None, text: bool) -> str:
    """The results file's query from the engine's results query ``inner`` (``pid`` first, one
    row per assessed patient; ``text``: lists already joined as text; with the worklist fact
    columns, named by the fact, before the provenance columns: see
    :func:`worklist_fact_columns`; in ``pid`` order, the order of the patients table):
    single-valued outputs as scalars, ``pid`` left out."""
    replace: list[str] = []
    scalars = wl.scalar_outputs if wl is not None else frozenset()
    for rs in book.rulesets:
        if rs.definition.hit_policy != "collect":
            continue
        for key, o in rs.definition.outputs.items():
            col = f"{rs.id}_{key}"
            if col not in scalars:
                continue
            if o.type == "bool":
                expr = (f"COALESCE(r.{col} = 'true', FALSE)" if text
                        else f"COALESCE(len(r.{col}) > 0, FALSE)")
            else:
                expr = f"NULLIF(r.{col}, '')" if text else f"r.{col}[1]"
            replace.append(f"{expr} AS {col}")
    rep = f" REPLACE ({', '.join(replace)})" if replace else ""
    return f"SELECT r.* EXCLUDE (pid){rep} FROM ({inner}) r"


def worklist_fact_columns(wl: Worklists | None) -> str:
    """The worklist fact columns of the results (``, b.f_x AS x, ...``), read from the engine's
    ``__res`` (``b``), which carries the run's ``result_facts``."""
    if wl is None:
        return ""
    return "".join(f", b.{fact_column(c.fact)} AS {c.fact}" for c in wl.columns)


def write_data_dictionary(entries: Sequence[DictionaryEntry], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["column", "meaning", "type", "source"])
        for e in entries:
            writer.writerow([e.column, e.meaning, e.type, e.source])


def entries_by_column(entries: Sequence[DictionaryEntry]) -> Mapping[str, DictionaryEntry]:
    return {e.column: e for e in entries}


def dictionary_markdown(entries: Sequence[DictionaryEntry]) -> str:
    """The data dictionary as a Markdown table (as in ``docs/population.md``)."""
    lines = ["| column | meaning | type | source |", "| --- | --- | --- | --- |"]
    lines += [f"| `{e.column}` | {e.meaning.replace('|', '/')} | {e.type} | "
              f"{e.source.replace('|', '/')} |" for e in entries]
    return "\n".join(lines) + "\n"


DOC_START = "<!-- data dictionary: generated by python -m int_rules.population.columns -->\n"
DOC_END = "<!-- end of data dictionary -->\n"


def _main(argv: Sequence[str] | None = None) -> int:
    """``python -m int_rules.population.columns [--check] [PAGE]``: write (or check) the
    bundled rulebook's data dictionary between the markers of PAGE (docs/population.md)."""
    import argparse
    import sys

    from ..rulebook import load
    from .worklist import load_worklists

    parser = argparse.ArgumentParser(prog="python -m int_rules.population.columns",
                                     description=_main.__doc__)
    parser.add_argument("page", nargs="?", type=Path, default=Path("docs/population.md"))
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    args = parser.parse_args(argv)
    book = load()
    table = dictionary_markdown(data_dictionary(book, load_worklists(book)))
    text = args.page.read_text(encoding="utf-8")
    if DOC_START not in text or DOC_END not in text:
        print(f"{args.page}: no data dictionary markers", file=sys.stderr)
        return 2
    head, rest = text.split(DOC_START, 1)
    _, tail = rest.split(DOC_END, 1)
    new = head + DOC_START + table + DOC_END + tail
    if args.check:
        if new != text:
            print(f"{args.page}: the data dictionary is out of date; run "
                  "python -m int_rules.population.columns", file=sys.stderr)
            return 1
        print(f"{args.page}: data dictionary up to date")
        return 0
    args.page.write_text(new, encoding="utf-8")
    print(f"wrote the data dictionary into {args.page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
