"""Text kpibot writes into spreadsheets and CSV files, made inert where it could start a formula.

A note typed as ``=HYPERLINK("http://evil","Click")`` is stored exactly as typed, but a CSV or
XLSX kpibot writes may be opened in Excel, which would run it. Every writer (``kpibot evaluate``
CSV, ``schedule preview`` CSV, the quarterly report's CSV and XLSX) passes its text cells through
:func:`formula_safe`, following OWASP's CSV-injection advice: a cell that starts with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return gains a leading ``'``, which spreadsheets show
as text. Plain signed numbers (``-5%``, ``+2.5``) are left alone, so figures stay figures.

>>> formula_safe("=HYPERLINK(1)"), formula_safe("-5% on last year"), formula_safe("-5%")
("'=HYPERLINK(1)", "'-5% on last year", '-5%')
>>> safe_cells(["=1+1", 42, None, "Target 90%"])
["'=1+1", 42, None, 'Target 90%']
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import asdict

from kpibot.engine.explain import COLUMNS, explain_rows
from kpibot.engine.model import Contract

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A plain signed number ("-5%", "+2.5") is read by a spreadsheet as that number, never as a
# formula, so it keeps its sign instead of gaining a quote.
_PLAIN_NUMBER = re.compile(r"[+-]?\d[\d,]*(?:\.\d+)?%?\Z")


def formula_safe(text: str) -> str:
    """``text`` made inert for spreadsheets: a leading ``'`` when it could start a formula.

    Follows OWASP's CSV-injection advice for cells starting with ``=``, ``+``, ``-``, ``@``, tab
    or carriage return; plain signed numbers pass unchanged.
    """
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(text):
        return "'" + text
    return text


def safe_cells(cells: Iterable[object]) -> list[object]:
    """One row for ``csv.writer``: text cells through :func:`formula_safe`, others as they are."""
    return [formula_safe(c) if isinstance(c, str) else c for c in cells]


def explain_csv(contract: Contract) -> str:
    """``kpibot contracts explain --format csv``: every KPI and year (``explain_rows``) under the
    ``COLUMNS`` header, formula-safe, since the contract's own words are opened in spreadsheets."""
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in explain_rows(contract):
        writer.writerow(
            dict(zip(COLUMNS, safe_cells(asdict(row)[c] for c in COLUMNS), strict=True))
        )
    return out.getvalue()
