"""Read CSV and XLSX files into rows with line numbers, and report problems by file, line and column.

Both the ``kpibot evaluate`` spreadsheet interface and monitoring-return imports (CLI and chat)
read files through here, so every bad file gets the same kind of answer.

>>> table = read_table_bytes(b"KPI,Period,Value\\n1a,2019/20 Q1,45\\n", "return.csv")
>>> table.columns, table.rows[0].line, table.rows[0]["value"]
(['kpi', 'period', 'value'], 2, '45')
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kpibot.engine.freetext import control_character

MAX_BYTES = 5 * 1024 * 1024
# The XLSX reader's default bounds (kpibot.files.xlsx.XlsxLimits) for CSV too, so a return costs
# the same whichever format it comes in: one row per KPI and period fits many times over.
MAX_ROWS = 20_000
MAX_COLUMNS = 200
MAX_CELL_CHARS = 10_000

# What a provider reads about a file it sent, one sentence each.
TOO_MANY_ROWS = (
    "the file has more than {limit:,} rows; a monitoring return should have one row per KPI "
    "and period, so split it"
)
TOO_MANY_COLUMNS = (
    "the row has more than {limit:,} columns; delete the columns to the right of your data and "
    "send it again"
)
CELL_TOO_LONG = "a cell is longer than {limit:,} characters; shorten it and send the file again"
DUPLICATE_COLUMN = (
    "columns {first} and {second} are both called '{column}', so kpibot cannot tell which one "
    "to read; rename or delete one of them"
)
UNCLOSED_QUOTE = (
    'a cell opens a quote (") that is never closed, so every row after it would be read as '
    "part of that cell; close the quote or delete it, and save the file again"
)
TEXT_AFTER_QUOTE = (
    'a cell has text after its closing quote ("); put the whole cell inside the quotes, or '
    "remove them, and save the file again"
)
EXTRA_CELLS = (
    "the row has {cells} cells but the header names {header} columns, so a value may have been "
    "split in two (write 1,234 as 1234, or put it in quotes); fix the row or name the extra "
    "column"
)
CONTROL_CHARACTER = (
    "a cell contains a control character ({code}), which kpibot cannot store; delete it (it is "
    "often pasted in invisibly) and save the file again"
)


@dataclass(frozen=True)
class CellError:
    """One problem in an input file: where it is and what is wrong, in one sentence."""

    file: str
    line: int | None
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f", line {self.line}"
        if self.column:
            where += f", column '{self.column}'"
        return f"{where}: {self.reason}"


class TableError(Exception):
    """The file as a whole cannot be read (empty, not UTF-8, no header, too big)."""

    def __init__(self, error: CellError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class Row:
    """One data row; ``line`` is the 1-based line (CSV) or row (XLSX) in the file."""

    line: int
    cells: dict[str, str]

    def __getitem__(self, key: str) -> str:
        return self.cells.get(key, "")

    def get(self, key: str, default: str = "") -> str:
        value = self.cells.get(key)
        return default if value is None or value == "" else value


@dataclass
class Table:
    name: str
    columns: list[str]
    rows: list[Row] = field(default_factory=list)
    line_word: str = "line"

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def error(self, row: Row | None, column: str | None, reason: str) -> CellError:
        return CellError(self.name, row.line if row else None, column, reason)


def normalise_header(name: object) -> str:
    """Header names are case-insensitive and tolerate spaces: 'Critical Failure' → critical_failure."""
    text = "" if name is None else str(name)
    return "_".join(text.strip().lower().replace("-", " ").split())


def read_table(path: Path) -> Table:
    """Read a ``.csv`` or ``.xlsx`` file from disk; never more than ``MAX_BYTES`` + 1 bytes of it.

    The size a file declares is not trusted: a device or a pipe (``/dev/zero``, ``/dev/stdin``)
    declares none and never ends, so the read itself is bounded.
    """
    if path.is_dir():
        reason = "this is a folder, not a file; give the CSV or XLSX file inside it"
        raise TableError(CellError(str(path), None, None, reason))
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise TableError(
            CellError(str(path), None, None, exc.strerror or "cannot be opened")
        ) from None
    if len(data) > MAX_BYTES:
        raise TableError(CellError(str(path), None, None, _too_big(path)))
    return read_table_bytes(data, str(path))


def _too_big(path: Path) -> str:
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    if size > MAX_BYTES:
        return f"the file is {size / 1024 / 1024:.1f} MB; the limit is 5 MB, so split it"
    return "the file is over the 5 MB limit (it did not end within 5 MB), so split it"


def read_table_bytes(data: bytes, name: str) -> Table:
    """Read CSV or XLSX content; the format comes from the name, or from the content's magic bytes."""
    if len(data) > MAX_BYTES:
        raise TableError(
            CellError(
                name,
                None,
                None,
                f"the file is {len(data) / 1024 / 1024:.1f} MB; the limit is 5 MB, so split it",
            )
        )
    if name.lower().endswith((".xlsx", ".xlsm")) or data[:2] == b"PK":
        return _read_xlsx(data, name)
    if name.lower().endswith(".xls"):
        raise TableError(
            CellError(
                name, None, None, "old .xls files are not supported; save it as .xlsx or .csv"
            )
        )
    return _read_csv(data, name)


def _read_csv(data: bytes, name: str) -> Table:
    if not data.strip():
        raise TableError(
            CellError(name, None, None, "the file is empty; it needs a header row and data rows")
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TableError(
            CellError(
                name,
                line,
                None,
                "the file is not UTF-8 text; in Excel use 'Save as → CSV UTF-8 (comma delimited)'",
            )
        ) from None
    try:
        delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","
    # Only the delimiter is sniffed: the sniffer guesses quoting from the first 4 kB alone (a '""'
    # after that would be misread), and every spreadsheet writes Excel's. strict: an unclosed
    # quote is an error, not a cell that silently swallows every row after it.
    # newline=None: line ends of any kind (an old Mac's lone \r too) end a line.
    reader = csv.reader(
        io.StringIO(text, newline=None), csv.excel, delimiter=delimiter, strict=True
    )
    header: list[str] | None = None
    table: Table | None = None
    last_line = 0  # the line the previous row ended on; a row that fails began on the next
    try:
        for raw in reader:
            last_line = reader.line_num
            if header is None:
                if not any(c.strip() for c in raw):
                    continue
                _check_cells(name, reader.line_num, raw, None)
                header = [normalise_header(c) for c in raw]
                _check_header(name, reader.line_num, header, str)
                table = Table(name, header)
                continue
            if not any(c.strip() for c in raw):
                continue
            assert table is not None
            if len(table.rows) >= MAX_ROWS:
                raise TableError(
                    CellError(name, reader.line_num, None, TOO_MANY_ROWS.format(limit=MAX_ROWS))
                )
            _check_cells(name, reader.line_num, raw, header)
            if any(c.strip() for c in raw[len(header) :]):
                reason = EXTRA_CELLS.format(cells=len(raw), header=len(header))
                raise TableError(CellError(name, reader.line_num, None, reason))
            cells = {h: (raw[i].strip() if i < len(raw) else "") for i, h in enumerate(header) if h}
            table.rows.append(Row(reader.line_num, cells))
    except csv.Error as exc:
        # Python's csv gives no error codes, only these messages (Modules/_csv.c).
        message = str(exc)
        if "end of data" in message:
            line, reason = last_line + 1, UNCLOSED_QUOTE
        elif "expected after" in message:
            line, reason = reader.line_num, TEXT_AFTER_QUOTE
        else:  # a field over Python's own size limit, far above MAX_CELL_CHARS
            line, reason = reader.line_num, CELL_TOO_LONG.format(limit=MAX_CELL_CHARS)
        raise TableError(CellError(name, line, None, reason)) from None
    if table is None:
        raise TableError(CellError(name, None, None, "the file has no header row"))
    if not table.rows:
        raise TableError(CellError(name, None, None, "the file has a header but no data rows"))
    return table


def _check_cells(name: str, line: int, raw: list[str], header: list[str] | None) -> None:
    """Refuse a row with a cell too long, or with a control character, naming where it is."""
    if len(raw) > MAX_COLUMNS:
        raise TableError(CellError(name, line, None, TOO_MANY_COLUMNS.format(limit=MAX_COLUMNS)))
    for index, cell in enumerate(raw):
        column = header[index] if header is not None and index < len(header) else None
        if len(cell) > MAX_CELL_CHARS:
            raise TableError(
                CellError(name, line, column, CELL_TOO_LONG.format(limit=MAX_CELL_CHARS))
            )
        code = control_character(cell)
        if code is not None:
            raise TableError(CellError(name, line, column, CONTROL_CHARACTER.format(code=code)))


def _check_header(
    name: str, line: int, header: list[str], column_name: Callable[[int], str]
) -> None:
    """Refuse a header that names a column twice: reading either copy would be a guess."""
    seen: dict[str, int] = {}
    for number, column in enumerate(header, start=1):
        if not column:
            continue
        if column in seen:
            first, second = column_name(seen[column]), column_name(number)
            reason = DUPLICATE_COLUMN.format(first=first, second=second, column=column)
            raise TableError(CellError(name, line, column, reason))
        seen[column] = number


def _read_xlsx(data: bytes, name: str) -> Table:
    # Imported here, not at the top, for start-up speed: the reader loads openpyxl's value rules.
    from openpyxl.utils.cell import get_column_letter

    from kpibot.files.xlsx import XlsxError, read_xlsx

    try:
        sheet = read_xlsx(data, name)
    except XlsxError as exc:
        raise TableError(CellError(name, exc.line, None, exc.reason)) from None
    rows = sheet.rows
    if not rows:
        raise TableError(CellError(name, None, None, "the first sheet is empty"))
    header_row, header_values = rows[0]
    for min_row, _min_col, max_row, _max_col, coord in sheet.merged:
        if min_row <= header_row <= max_row:
            rows_text = f"rows {min_row}–{max_row}" if max_row > min_row else f"row {min_row}"
            raise TableError(
                CellError(
                    name,
                    header_row,
                    None,
                    f"the header is made of merged cells ({coord}, {rows_text}), like a report "
                    "layout; put one column name per cell on a single header row, such as kpi, period, value",
                )
            )
    for min_row, _min_col, max_row, _max_col, coord in sheet.merged:
        if min_row == header_row + 1 and min_row < max_row:
            raise TableError(
                CellError(
                    name,
                    header_row,
                    None,
                    f"the header continues into merged rows {min_row}–{max_row} ({coord}); "
                    "use a single header row",
                )
            )
    header_texts = [_cell_text(c) for c in header_values]
    _check_cells(name, header_row, header_texts, None)
    header = [normalise_header(c) for c in header_texts]
    _check_header(name, header_row, header, get_column_letter)
    table = Table(name, header, line_word="row")
    for number, raw in rows[1:]:
        texts = [_cell_text(c) for c in raw]
        _check_cells(name, number, texts, header)
        cells = {h: texts[i] if i < len(texts) else "" for i, h in enumerate(header) if h}
        table.rows.append(Row(number, cells))
    if not table.rows:
        raise TableError(CellError(name, None, None, "the sheet has a header but no data rows"))
    return table


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
