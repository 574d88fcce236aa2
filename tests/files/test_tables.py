"""Reading CSV and XLSX returns: the bounded readers' refusals share one shape (file, line, reason)."""

from __future__ import annotations

import io
import time
from pathlib import Path

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


@pytest.mark.parametrize(
    "header",
    [b"kpi,period,value,value", b"KPI,Period,Value,value ", b"kpi,period,Value,VALUE,note"],
)
def test_a_csv_with_a_column_named_twice_is_refused_not_read_from_one_of_them(
    header: bytes,
) -> None:
    # Reading either copy would be a guess: '12' or '87' gives a different RAG.
    data = header + b"\nS11,2019/20 Q3,87,12\n"
    error = refusal(data, "r.csv").error
    assert (error.line, error.column) == (1, "value")
    assert "columns 3 and 4 are both called 'value'" in error.reason


def test_an_xlsx_with_a_column_named_twice_is_refused_like_a_csv() -> None:
    wb = openpyxl.Workbook()
    wb.active.append(["kpi", "period", "value", "Value"])
    wb.active.append(["S11", "2019/20 Q3", 87, 12])
    buffer = io.BytesIO()
    wb.save(buffer)
    error = refusal(buffer.getvalue(), "r.xlsx").error
    assert (error.line, error.column) == (1, "value")
    assert "columns C and D are both called 'value'" in error.reason


def test_columns_with_no_header_may_repeat() -> None:
    table = read_table_bytes(b"kpi,,period,,value\nS11,x,2019/20 Q3,y,87\n", "r.csv")
    assert table.rows[0].cells == {"kpi": "S11", "period": "2019/20 Q3", "value": "87"}


def test_an_unclosed_quote_is_refused_not_allowed_to_swallow_the_rows_after_it() -> None:
    # Python's csv would read rows 3 and 4 into row 2's note, and they would vanish unreported.
    data = (
        b'kpi,period,value,note\nS11,2019/20 Q3,87,"late\nS12,2019/20 Q3,91,\nS13,2019/20 Q3,5,\n'
    )
    error = refusal(data, "r.csv").error
    assert error.line == 2
    assert "quote" in error.reason and "never closed" in error.reason


def test_text_after_a_closing_quote_is_refused_naming_the_line() -> None:
    data = b'kpi,period,value\nS11,2019/20 Q3,87\nS12,2019/20 Q3,"9"1\n'
    error = refusal(data, "r.csv").error
    assert error.line == 3 and "after its closing quote" in error.reason


def test_a_quoted_note_over_several_lines_is_still_one_cell() -> None:
    data = b'kpi,period,value,note\nS11,2019/20 Q3,87,"two\nlines"\nS12,2019/20 Q3,91,\n'
    table = read_table_bytes(data, "r.csv")
    assert [r["kpi"] for r in table.rows] == ["S11", "S12"]
    assert table.rows[0]["note"] == "two\nlines" and table.rows[1].line == 4


def test_doubled_quotes_after_the_first_4_kb_are_read_as_excel_writes_them() -> None:
    rows = b"".join(b"S%d,2019/20 Q3,87,plain\n" % n for n in range(300))
    data = b"kpi,period,value,note\n" + rows + b'S999,2019/20 Q3,91,"a ""b"", c"\n'
    table = read_table_bytes(data, "r.csv")
    assert table.rows[-1].cells == {
        "kpi": "S999",
        "period": "2019/20 Q3",
        "value": "91",
        "note": 'a "b", c',
    }


def test_a_file_that_never_ends_is_refused_at_the_size_limit(tmp_path) -> None:
    # /dev/zero declares no size and never ends: it was read until memory ran out.
    error = refusal_of(tables.read_table, Path("/dev/zero"))
    assert error.file == "/dev/zero" and "over the 5 MB limit" in error.reason


def test_a_folder_given_as_a_file_is_refused_in_one_sentence(tmp_path) -> None:
    error = refusal_of(tables.read_table, tmp_path)
    assert error.reason == "this is a folder, not a file; give the CSV or XLSX file inside it"


def test_a_large_file_on_disk_says_its_size(tmp_path) -> None:
    big = tmp_path / "big.csv"
    big.write_bytes(b"kpi,period,value\n" + b"x" * (6 * 1024 * 1024))
    error = refusal_of(tables.read_table, big)
    assert error.reason == "the file is 6.0 MB; the limit is 5 MB, so split it"


def refusal_of(read, path: Path) -> tables.CellError:
    with pytest.raises(TableError) as refused:
        read(path)
    return refused.value.error


def test_a_row_longer_than_its_header_is_refused_as_a_value_split_in_two() -> None:
    # An unquoted '1,234' is two cells: the value read as 1 and the 234 silently dropped.
    data = b"kpi,period,value\nS11,2019/20 Q3,90\nS12,2019/20 Q3,1,234\n"
    error = refusal(data, "r.csv").error
    assert error.line == 3
    assert error.reason.startswith("the row has 4 cells but the header names 3 columns")


def test_empty_cells_past_the_header_are_only_trailing_commas() -> None:
    table = read_table_bytes(b"kpi,period,value\nS11,2019/20 Q3,90,,\n", "r.csv")
    assert table.rows[0].cells == {"kpi": "S11", "period": "2019/20 Q3", "value": "90"}


def test_a_csv_with_old_mac_line_ends_is_read_line_by_line() -> None:
    table = read_table_bytes(b"kpi,period,value\rS11,2019/20 Q3,90\rS12,2019/20 Q3,91\r", "r.csv")
    assert [(r.line, r["kpi"], r["value"]) for r in table.rows] == [
        (2, "S11", "90"),
        (3, "S12", "91"),
    ]
