"""Reading CSV and XLSX returns: the bounded readers' refusals share one shape (file, line, reason)."""

from __future__ import annotations

import io
import time

import openpyxl
import pytest

from kpibot.files import tables
from kpibot.files.tables import TableError, read_table_bytes
from tests.files.test_xlsx import book, deflate_pieces, inline, raw_book, sheet


def refusal(data: bytes, name: str) -> TableError:
    with pytest.raises(TableError) as refused:
        read_table_bytes(data, name)
    error = refused.value.error
    assert error.file == name and "\n" not in error.reason
    return refused.value


def test_a_csv_over_the_row_limit_is_refused_at_the_first_row_over() -> None:
    data = b"kpi,period,value\n" + b"S11,2019/20 Q3,1\n" * 25_000
    error = refusal(data, "big.csv").error
    assert error.line == tables.MAX_ROWS + 2
    assert error.reason.startswith("the file has more than 20,000 rows")


def test_a_csv_cell_over_the_length_limit_is_refused_naming_its_column() -> None:
    data = b"kpi,period,value,note\nS11,2019/20 Q3,1," + b"n" * 10_001 + b"\n"
    error = refusal(data, "r.csv").error
    assert (error.line, error.column) == (2, "note")
    assert error.reason.startswith("a cell is longer than 10,000 characters")


def test_a_csv_field_beyond_pythons_own_limit_is_refused_not_raised() -> None:
    data = b'kpi,period,value\nS11,2019/20 Q3,"' + b"v" * 200_000 + b'"\n'
    assert "longer than 10,000 characters" in str(refusal(data, "r.csv"))


def test_a_csv_row_of_thousands_of_columns_is_refused() -> None:
    data = b"kpi,period,value\nS11,2019/20 Q3,1" + b",x" * 500 + b"\n"
    assert "more than 200 columns" in str(refusal(data, "r.csv"))


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f"])
def test_control_characters_in_a_csv_are_refused_naming_the_cell(char: str) -> None:
    data = f"kpi,period,value,note\nS11,2019/20 Q3,1,ok{char}\n".encode()
    error = refusal(data, "r.csv").error
    assert (error.line, error.column) == (2, "note")
    assert f"control character (U+{ord(char):04X})" in error.reason


def test_tabs_in_a_semicolon_csv_are_ordinary() -> None:
    table = read_table_bytes(b"kpi;period;value;note\nS11;2019/20 Q3;1;a\tb\n", "r.csv")
    assert table.rows[0]["note"] == "a\tb"


def test_an_xlsx_bomb_becomes_the_same_one_sentence_shape_in_milliseconds() -> None:
    head = sheet(b"")[: -len(b"</sheetData></worksheet>")]
    pieces = (
        (head, 1),
        (b'<row><c s="1"/></row>' * 50_000, 1024),
        (b"</sheetData></worksheet>", 1),
    )
    data = raw_book(deflate_pieces(*pieces))
    started = time.process_time()
    error = refusal(data, "bomb.xlsx").error
    assert time.process_time() - started < 1.0
    assert str(error) == (
        "bomb.xlsx: the workbook expands to more than 50 MB when unzipped (a return is normally "
        "a few kB); save it again as a plain .xlsx or send a CSV"
    )


def test_an_xlsx_refusal_names_the_row_when_there_is_one() -> None:
    rows = b"".join(
        f'<row r="{r}">'.encode() + inline(f"A{r}", "x") + b"</row>" for r in range(1, 20_003)
    )
    error = refusal(book(sheet(rows)), "rows.xlsx").error
    assert error.line == 20_001 and "more than 20,000 rows" in error.reason


def test_xlsx_cells_are_checked_for_control_characters_like_csv() -> None:
    # XML cannot hold most C0 controls, but DEL and the C1 controls are legal in it.
    header = b'<row r="1">' + b"".join(
        inline(f"{c}1", t) for c, t in zip("ABCD", ["kpi", "period", "value", "note"], strict=True)
    )
    row = b'<row r="2">' + inline("A2", "S11") + inline("D2", "ok\x7fx") + b"</row>"
    error = refusal(book(sheet(header + b"</row>" + row)), "r.xlsx").error
    assert (error.line, error.column) == (2, "note") and "U+007F" in error.reason


def test_a_header_continued_into_merged_rows_is_refused() -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["kpi", "period", "value"])
    ws.append(["Measure", None, None])
    ws.append(["More", None, None])
    ws.merge_cells("A2:A3")
    buffer = io.BytesIO()
    wb.save(buffer)
    assert "continues into merged rows 2–3 (A2:A3)" in str(refusal(buffer.getvalue(), "m.xlsx"))
