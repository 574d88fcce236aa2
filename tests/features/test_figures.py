"""Monitoring-return imports (CSV and XLSX): all rows or none, every problem named, on both backends."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from kpibot.engine.numbers import STYLES, NumberStyle
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
        (b"PK\x03\x04 not really a workbook", "not a readable .xlsx workbook"),
    ],
)
def test_unreadable_files_are_named(data, words):
    with pytest.raises(TableError) as err:
        read_table_bytes(data, "f.csv")
    assert words in str(err.value) and "f.csv" in str(err.value)


# ---------------------------------------------------------------------- number styles


def _written(number: Decimal, style: NumberStyle, grouped: bool) -> str:
    """``number`` as a person using ``style`` types it, with or without thousands separators."""
    sign = "-" if number < 0 else ""
    whole, _, fraction = f"{abs(number):f}".partition(".")
    if grouped:
        mark = style.group_marks[0]
        whole = f"{int(whole):,}".replace(",", mark)
    return sign + whole + (style.decimal_mark + fraction if fraction else "")


def _return(value: str, kpi: str = "S16", delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["kpi", "period", "value"])
    writer.writerow([kpi, "2019/20 Q3", value])
    return buffer.getvalue().encode()


figures_as_typed = st.decimals(
    min_value=Decimal("0"), max_value=Decimal("99999999"), places=2, allow_nan=False
) | st.decimals(min_value=Decimal("0"), max_value=Decimal("100"), places=4, allow_nan=False)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    number=figures_as_typed,
    style=st.sampled_from(STYLES),
    grouped=st.booleans(),
    declared_by=st.sampled_from(["option", "contract"]),
    delimiter=st.sampled_from([",", ";"]),
)
def test_no_number_string_is_ever_stored_as_a_different_number(
    services, number, style, grouped, declared_by, delimiter
):
    """Through the real import path (file bytes → table → check → store → read back), a figure
    written in the style the import reads is stored as exactly that figure, or refused whole."""
    typed = _written(number, style, grouped)
    contract = services.contract("childrens-trust")
    if declared_by == "contract":
        european_or_uk = contract.model_copy(update={"number_style": style.name})
        services.store_contracts([european_or_uk], actor="test", with_history=False)
    table = read_table_bytes(_return(typed, delimiter=delimiter), "return.csv")
    before = services.figures.history("childrens-trust", "S16", "2019/20 Q3")

    out = import_return(
        services,
        "childrens-trust",
        table,
        actor="U-TRUST",
        reason="property test",
        number_style=style if declared_by == "option" else None,
    )

    after = services.figures.history("childrens-trust", "S16", "2019/20 Q3")
    if out.errors:
        assert after == before, f"{typed!r} was refused but something was stored"
    else:
        assert after[-1].value == float(number), f"{typed!r} stored as {after[-1].value}"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    whole=st.integers(min_value=0, max_value=999),
    fraction=st.text(alphabet="0123456789", min_size=1, max_size=6).filter(lambda f: len(f) != 3),
)
def test_a_decimal_comma_in_a_uk_return_is_refused_never_stored(services, whole, fraction):
    """'8,5' in a UK return could be 8.5 or 85: refused whole, showing both readings."""
    typed = f"{whole},{fraction}"
    before = services.figures.history("childrens-trust", "S16", "2019/20 Q3")
    table = read_table_bytes(_return(typed), "return.csv")

    out = import_return(services, "childrens-trust", table, actor="U-TRUST", reason="x")

    assert services.figures.history("childrens-trust", "S16", "2019/20 Q3") == before
    (error,) = out.errors
    assert error.column == "value"
    assert "could mean" in error.reason or "in the wrong place" in error.reason


def test_a_european_return_is_read_by_the_contract_setting(services):
    contract = services.contract("childrens-trust")
    european = contract.model_copy(update={"number_style": "european"})
    services.store_contracts([european], actor="test", with_history=False)
    out = import_return(
        services,
        "childrens-trust",
        read_table_bytes(
            b"kpi;period;value\nS11;2019/20 Q3;8,5\nS16;2019/20 Q3;1.234,5\n", "r.csv"
        ),
        actor="U-TRUST",
        reason="recount",
    )
    assert not out.errors, out.errors
    assert services.figures.current("childrens-trust", "S11")[-1].value == 8.5
    assert services.figures.current("childrens-trust", "S16")[-1].value == 1234.5


def test_the_same_file_read_uk_is_refused_showing_both_readings(services):
    out = import_return(
        services,
        "childrens-trust",
        read_table_bytes(b"kpi;period;value\nS11;2019/20 Q3;8,5\n", "r.csv"),
        actor="U-TRUST",
    )
    (error,) = out.errors
    assert error.line == 2 and error.column == "value"
    assert error.reason == (
        "'8,5' could mean 8.5 or 85; write 8.5 with a decimal point (or 85 without a comma)"
    )


def test_a_reject_list_shows_the_first_50_problems_then_a_count(services):
    rows = "".join(f"S11,2019/20 Q3,bad{i}\n" for i in range(130))
    out = import_return(
        services, "childrens-trust", _csv("kpi,period,value\n" + rows), actor="U-TRUST"
    )
    assert len(out.errors) == 50 and out.more == 80
    listed = out.listed()
    assert len(listed) == 51 and "…and 80 more problem(s)" in str(listed[-1])
    refused = services.audit.recent(1, "childrens-trust")[0]
    assert refused.outcome == "refused" and len(refused.detail["errors"]) == 50


@pytest.mark.parametrize(
    ("column", "text", "words"),
    [
        ("note", "x" * 501, "A note is limited to 500 characters; yours is 1 over"),
        ("reason", "y" * 600, "A reason is limited to 500 characters; yours is 100 over"),
        ("note", "fine\x00hidden", "control character (U+0000)"),
        ("note", "esc\x1b[31m", "control character (U+001B)"),
    ],
)
def test_free_text_cells_are_limited_and_refused_with_where_they_are(services, column, text, words):
    body = io.StringIO()
    csv.writer(body, lineterminator="\n").writerows(
        [["kpi", "period", "value", column], ["S11", "2019/20 Q3", "98", text]]
    )
    before = _count(services)
    try:
        table = read_table_bytes(body.getvalue().encode(), "r.csv")
    except TableError as exc:  # control characters are refused as the file is read
        assert words in str(exc) and "r.csv, line 2" in str(exc)
        return
    out = import_return(services, "childrens-trust", table, actor="U-TRUST")
    (error,) = out.errors
    assert (error.line, error.column) == (2, column) and words in error.reason
    assert _count(services) == before


def test_an_import_reason_over_the_limit_is_refused(services):
    out = import_return(
        services,
        "childrens-trust",
        _csv("kpi,period,value\nS11,2019/20 Q3,98\n"),
        actor="U-TRUST",
        reason="r" * 501,
    )
    assert "A reason is limited to 500 characters" in str(out.errors[0])
