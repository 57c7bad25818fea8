"""CSV cells a spreadsheet will not run as formulas (OWASP "CSV Injection").

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return can be taken for
a formula by Excel, LibreOffice or Google Sheets. In every CSV we write, such a text cell is
prefixed with a single quote (``'``), as OWASP recommends; numbers, dates and flags are written
as they are (a negative number is not text). Control characters other than tab are not
changed here: CSV quoting keeps them inside their cell.
"""

from __future__ import annotations

from collections.abc import Collection

import duckdb

__all__ = ["FORMULA_STARTS", "neutralise", "neutralise_sql", "safe_csv_select"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """``text`` prefixed with ``'`` when a spreadsheet would read it as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_STARTS = "[" + ", ".join("'" + s.replace("'", "''") + "'" for s in FORMULA_STARTS) + "]"


def neutralise_sql(expr: str) -> str:
    """SQL for :func:`neutralise` of the text ``expr`` (NULL stays NULL)."""
    return f"CASE WHEN list_contains({_STARTS}, {expr}[1]) THEN '''' || {expr} ELSE {expr} END"


def safe_csv_select(con: duckdb.DuckDBPyConnection, sql: str,
                    neutralised: Collection[str] = ()) -> str:
    """``sql`` with every text column's formula-like cells neutralised (same columns, order).

    ``neutralised`` names columns that ``sql`` has already neutralised (looked up from a small
    table whose cells were neutralised once, say): they are left as they are."""
    described = con.execute(f"DESCRIBE SELECT * FROM ({sql})").fetchall()
    cols = []
    for row in described:
        name, typ = str(row[0]), str(row[1]).upper()
        col = _ident(name)
        if typ == "VARCHAR" and name not in neutralised:
            cols.append(f"{neutralise_sql(col)} AS {col}")
        else:
            cols.append(col)
    return f"SELECT {', '.join(cols)} FROM ({sql})"
