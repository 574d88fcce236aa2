"""Monitoring-return imports (CSV and XLSX): all rows or none, every problem named, on both backends."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook

from kpibot.features.figures import import_return
from kpibot.files.tables import TableError, read_table_bytes


def _csv(text: str, name: str = "return.csv"):
    return read_table_bytes(text.encode(), name)


def _count(services, contract="childrens-trust"):
    return len(services.figures.current(contract))


def test_a_good_return_is_stored_whole(services):
    before = _count(services)
    out = import_return(
        services,
        "childrens-trust",
        _csv("kpi,period,value\nS11,2019/20 Q3,98\nS25,2019/20 Q3,9\n"),
        actor="U-TRUST",
    )
    assert not out.errors and "Stored 2 figure(s)" in out.summary
    assert _count(services) == before + 2
    assert services.audit.recent(5, "childrens-trust")[0].action == "import"


@pytest.mark.parametrize(
    ("body", "where", "words"),
    [
        ("kpi,period,value\nS11,2019/20 Q3,98\nC99,2019/20 Q3,5\n", (3, "kpi"), "Did you mean"),
        (
            "kpi,period,value\nS11,2019/20 Q3,98\nS25,2025/26 Q1,5\n",
            (3, "period"),
            "outside the contract",
        ),
        ("kpi,period,value\nS11,2019/20 Q3,98\nS25,2019/20 Q9,5\n", (3, "period"), "not a period"),
        (
            "kpi,period,value\nS11,2019/20 Q3,98\nS25,2019/20 Q3,lots\n",
            (3, "value"),
            "not a number",
        ),
        (
            "kpi,period,numerator,denominator\nS11,2019/20 Q3,98,100\nS25,2019/20 Q3,11,10\n",
            (3, "numerator"),
            "above the denominator",
        ),
        ("kpi,period,value\nS11,2019/20 Q3,98\nS16,2019/20 Q3,-4\n", (3, "value"), "negative"),
        ("kpi,period,value\nS11,2019/20 Q3,98\nS11,2019/20 Q3,97\n", (3, None), "duplicate row"),
    ],
)
def test_one_bad_row_rejects_the_whole_return(services, body, where, words):
    before = _count(services)
    out = import_return(services, "childrens-trust", _csv(body), actor="U-TRUST")
    assert len(out.errors) == 1
    e = out.errors[0]
    assert (e.line, e.column) == where and words in e.reason and e.file == "return.csv"
    assert _count(services) == before


def test_future_periods_are_refused(services):
    out = import_return(
        services, "childrens-trust", _csv("kpi,period,value\nS11,2019/20 Q4,98\n"), actor="U-TRUST"
    )
    assert "has not ended yet" in out.errors[0].reason


def test_amendments_need_a_reason_and_keep_history(services):
    body = "kpi,period,value\nC7,2019/20 Q3,45\n"
    refused = import_return(services, "childrens-trust", _csv(body), actor="U-TRUST")
    assert refused.errors and "amendment" in refused.errors[0].reason
    ok = import_return(
        services, "childrens-trust", _csv(body), actor="U-TRUST", reason="recoded after audit"
    )
    assert not ok.errors and "1 amended" in ok.summary
    versions = services.figures.history("childrens-trust", "C7", "2019/20 Q3")
    assert [v.value for v in versions] == [42.0, 45.0] and versions[
        -1
    ].reason == "recoded after audit"


def test_unknown_contract_suggests(services):
    out = import_return(
        services, "childrens-trst", _csv("kpi,period,value\nS11,2019/20 Q3,98\n"), actor="U-TRUST"
    )
    assert "Did you mean 'childrens-trust'" in out.errors[0].reason


def _xlsx(rows, merge: str | None = None) -> bytes:
    wb = Workbook()
    ws = wb.active
    for r in rows:
        ws.append(r)
    if merge:
        ws.merge_cells(merge)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_xlsx_returns_import(services):
    data = _xlsx([["KPI", "Period", "Numerator", "Denominator"], ["S11", "2019/20 Q3", 49, 50]])
    out = import_return(
        services, "childrens-trust", read_table_bytes(data, "q3.xlsx"), actor="U-TRUST"
    )
    assert not out.errors, out.errors
    assert services.figures.current("childrens-trust", "S11")[-1].value == pytest.approx(98.0)


def test_xlsx_with_a_merged_header_like_seed_004_is_refused_clearly():
    data = _xlsx(
        [
            ["MEASUREMENT DETAILS", None, None, "TARGETS AND COMPARATORS"],
            ["Measure", "Reporting", "Polarity", "Target"],
        ],
        merge="A1:C1",
    )
    with pytest.raises(TableError) as err:
        read_table_bytes(data, "seed004.xlsx")
    assert "seed004.xlsx, line 1" in str(err.value) and "merged" in str(err.value)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"kpi,period,value\n", "no data rows"),
        ("kpi,period,value\nS11,2019/20 Q3,9\xe9\n".encode("latin-1"), "not UTF-8"),
        (b"x" * (5 * 1024 * 1024 + 1), "limit is 5 MB"),
        (b"PK\x03\x04 not really a workbook", "not a readable XLSX"),
    ],
)
def test_unreadable_files_are_named(data, words):
    with pytest.raises(TableError) as err:
        read_table_bytes(data, "f.csv")
    assert words in str(err.value) and "f.csv" in str(err.value)
