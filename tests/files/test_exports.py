"""Every CSV and spreadsheet kpibot writes is formula-safe (OWASP CSV injection), one test per writer.

Text is stored exactly as typed; only the cells written for a spreadsheet to open gain a leading
``'`` where they could start a formula. Plain signed numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from kpibot.engine.reminders import Message
from kpibot.files.evaluate import evaluate_tables, format_rows
from kpibot.files.exports import formula_safe, safe_cells
from kpibot.files.tables import read_table_bytes
from kpibot.scheduler.preview import format_csv

HOSTILE = ['=HYPERLINK("http://evil","Click")', "+1+1", "-2+3", "@SUM(A1:A9)", "\tx", "\rx"]


@pytest.mark.parametrize("text", HOSTILE)
def test_text_that_could_start_a_formula_gains_a_quote(text: str) -> None:
    assert formula_safe(text) == "'" + text


@pytest.mark.parametrize("text", ["-5%", "+2.5", "-1,234.5", "12", "Target 90%", "<45 days", ""])
def test_plain_numbers_and_ordinary_text_are_left_alone(text: str) -> None:
    assert formula_safe(text) == text


def test_safe_cells_leaves_non_text_cells_as_they_are() -> None:
    assert safe_cells(["=1", 2, None, 3.5, True]) == ["'=1", 2, None, 3.5, True]


def test_kpibot_evaluate_csv_output_is_formula_safe() -> None:
    kpis = read_table_bytes(
        b'kpi,polarity,target\n"=HYPERLINK(""http://evil"",""x"")",bigger,Target 90%\n'
        b"@SUM(A1),bigger,Target 90%\n",
        "k.csv",
    )
    figures = read_table_bytes(
        b'kpi,period,value\n"=HYPERLINK(""http://evil"",""x"")",2019/20 Q1,5\n'
        b"@SUM(A1),2019/20 Q1,95\n",
        "f.csv",
    )
    rows = list(csv.reader(io.StringIO(format_rows(evaluate_tables(kpis, figures), "csv"))))
    assert rows[1][0] == '\'=HYPERLINK("http://evil","x")' and rows[1][2] == "5"
    assert rows[2][0] == "'@SUM(A1)"
    # The JSON output is data for programs, not a spreadsheet: ids come back as given.
    assert "=HYPERLINK" in format_rows(evaluate_tables(kpis, figures), "json").split('"kpi": "')[1]


def test_schedule_preview_csv_is_formula_safe() -> None:
    when = datetime(2020, 1, 10, 9, tzinfo=ZoneInfo("Europe/London"))
    message = Message(when, "=cmd|' /C calc'!A0", "due", "provider", "2019/20 Q3", "0", "-1+1 due")
    row = list(csv.DictReader(io.StringIO(format_csv([message]))))[0]
    assert row["contract"] == "'=cmd|' /C calc'!A0" and row["text"] == "'-1+1 due"
    assert row["when"].startswith("2020-01-10T09:00")


def test_the_quarterly_report_uses_the_same_rule() -> None:
    from kpibot.files import report, report_xlsx

    assert report.formula_safe is formula_safe and report_xlsx.formula_safe is formula_safe


def test_explain_csv_has_the_columns_header_and_a_row_per_kpi_and_year(seed_contracts):
    from kpibot.engine.explain import COLUMNS
    from kpibot.files.exports import explain_csv

    contract = seed_contracts["one-psychology"]
    rows = list(csv.reader(io.StringIO(explain_csv(contract))))
    assert rows[0] == list(COLUMNS)
    assert len(rows) - 1 == len(contract.kpis) * len(contract.contract_years)
