"""The scorecard as an Excel workbook, laid out like the children's trust's own report (seed 004).

Sheets: "Scorecard" (cover block, then the KPI table grouped under heading rows, frozen below
its header and right of the measure, with an autofilter and A4 landscape print setup),
"Exceptions and narrative", "Charts" (each red or amber KPI's figures beside a native line
chart) and "Notes".

Figures are stored as numbers, percentages in percentage points (96, not 0.96) with a format
that prints them as the report does and appends the RAG letter: ``0"% G"`` shows 96 as "96% G".
Every text cell is written as a string; text that could start a formula gains a leading ``'``
(see ``formula_safe``) and Excel's quote-prefix flag.

>>> data = render_xlsx(report)  # doctest: +SKIP
>>> data[:2]  # doctest: +SKIP
b'PK'
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from datetime import datetime, time
from io import BytesIO
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.chart import LineChart, Reference
from openpyxl.chart.data_source import AxDataSource, StrRef
from openpyxl.chart.marker import DataPoint, Marker
from openpyxl.chart.shapes import GraphicalProperties
from openpyxl.chart.text import RichText, Text
from openpyxl.chart.title import Title
from openpyxl.drawing.text import (
    CharacterProperties,
    Paragraph,
    ParagraphProperties,
    RegularTextRun,
)
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter, quote_sheetname
from openpyxl.worksheet.pagebreak import Break
from openpyxl.worksheet.worksheet import Worksheet
from openpyxl.writer.excel import ExcelWriter

from kpibot.files.exports import formula_safe
from kpibot.files.report import (
    BANDS,
    BENCHMARK_COLUMN,
    CHART_COLUMNS,
    CHARTS_HEADING,
    COVER_LABELS,
    EXCEPTIONS_HEADING,
    HEADER_FILL,
    HEADING_FILL,
    HEADING_INK,
    INK,
    KEY_HEADING,
    LEAD_COLUMNS,
    NARRATIVE_HEADING,
    NO,
    NONE_LISTED,
    NOTE_COLUMN,
    NOTES_HEADING,
    PAGE,
    RAG_FILL,
    RAG_LETTER,
    RAG_MEANING,
    RAG_ORDER,
    RAGS,
    TAIL_COLUMNS,
    TITLE,
    TREND_KEY,
    TREND_TEXT,
    YES,
    Rag,
    Report,
    ReportCell,
    ReportChart,
    ReportRow,
    Unit,
    decimals_shown,
    figure_places,
    label_with_rag,
    position_label,
    rag_count_label,
)

SHEETS = ("Scorecard", "Exceptions and narrative", "Charts", "Notes")
_LEAD_WIDTHS = (22, 9, 48, 11, 14, 16, 16)
_PERIOD_WIDTH, _BENCHMARK_WIDTH, _TAIL_WIDTHS, _NOTE_WIDTH = 11, 12, (20, 14, 10), 32
_LINE_PT = 15.0  # one line of 11 pt text
_CHART_BLOCK_ROWS = 16  # one chart's data table and its 7.5 cm chart, stacked down the sheet
_CHARTS_PER_PAGE = 2

_THIN = Side(style="thin", color="BFBFBF")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_BOLD = Font(bold=True, color=INK[1:])
_TITLE_FONT = Font(bold=True, size=14, color=INK[1:])
_HEADING_FONT = Font(bold=True, color=HEADING_INK[1:])
_CRITICAL_FONT = Font(bold=True, color="9C0006")
_WRAP = Alignment(wrap_text=True, vertical="top")
_TOP = Alignment(vertical="top")
_NUMBER = Alignment(horizontal="right", vertical="top")
_CENTRE = Alignment(horizontal="center", vertical="center", wrap_text=True)
_HEADING_FILL = PatternFill("solid", fgColor=HEADING_FILL[1:])
_HEADER_FILL = PatternFill("solid", fgColor=HEADER_FILL[1:])
_HEADER_STYLE = {"font": _BOLD, "fill": _HEADER_FILL, "border": _BORDER, "alignment": _CENTRE}
_FILLS: dict[Rag, PatternFill] = {r: PatternFill("solid", fgColor=RAG_FILL[r][1:]) for r in RAGS}


class _StampedZip(zipfile.ZipFile):
    """A zip whose entries all carry one timestamp, so the same report gives the same bytes."""

    def __init__(self, file: BytesIO, stamp: tuple[int, int, int, int, int, int]) -> None:
        super().__init__(file, "w", zipfile.ZIP_DEFLATED)
        self._stamp = stamp

    def writestr(
        self,
        zinfo_or_arcname: str | zipfile.ZipInfo,
        data: Any,
        compress_type: int | None = None,
        compresslevel: int | None = None,
    ) -> None:
        if isinstance(zinfo_or_arcname, str):
            info = zipfile.ZipInfo(zinfo_or_arcname, self._stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            zinfo_or_arcname = info
        super().writestr(zinfo_or_arcname, data, compress_type, compresslevel)

    def write(
        self,
        filename: Any,
        arcname: Any = None,
        compress_type: int | None = None,
        compresslevel: int | None = None,
    ) -> None:
        # openpyxl writes each worksheet from a temporary file, whose own time would leak in.
        with open(filename, "rb") as source:
            self.writestr(str(arcname or filename), source.read(), compress_type, compresslevel)


def render_xlsx(report: Report) -> bytes:
    """The report as the bytes of an .xlsx workbook (see the module docstring for its sheets)."""
    wb = Workbook()
    stamp = datetime.combine(report.generated_on, time())
    wb.properties.title = report.title
    wb.properties.creator = wb.properties.lastModifiedBy = "kpibot"
    wb.properties.created = wb.properties.modified = stamp
    scorecard = wb.active
    assert scorecard is not None  # a new Workbook always has one sheet
    scorecard.title = SHEETS[0]
    _write_scorecard(scorecard, report)
    _write_exceptions(wb.create_sheet(SHEETS[1]), report)
    _write_charts(wb.create_sheet(SHEETS[2]), report)
    _write_notes(wb.create_sheet(SHEETS[3]), report)
    for sheet in wb.worksheets:
        _print_setup(sheet, report)
    buffer = BytesIO()
    ExcelWriter(wb, _StampedZip(buffer, stamp.timetuple()[:6])).save()
    return buffer.getvalue()


def _text(ws: Worksheet, row: int, column: int, text: str, **style: Any) -> Cell:
    """Write ``text`` as a string cell (never a formula), quote-prefixed where it needs it."""
    # Control characters (a stray form feed from a PDF copy) are not allowed in the XML.
    text = ILLEGAL_CHARACTERS_RE.sub("", text)
    safe = formula_safe(text)
    cell: Cell = ws.cell(row=row, column=column, value=safe)
    cell.data_type = "s"
    if safe is not text:
        cell.quotePrefix = True
    for name, value in style.items():
        setattr(cell, name, value)
    return cell


def number_format(unit: Unit, decimals: int, rag: Rag | None = None) -> str:
    """The Excel number format that prints a figure as the report does, RAG letter appended.

    >>> number_format("percent", 0, "green"), number_format("count", 0), number_format("days", 0)
    ('0"% G"', '#,##0', '0" days"')
    """
    digits = "0" if decimals <= 0 else "0." + "0" * decimals
    base, words = {"percent": (digits, "%"), "days": (digits, " days")}.get(
        unit, ("#,##" + digits, "")
    )
    words += f" {RAG_LETTER[rag]}" if rag else ""
    return f'{base}"{words}"' if words else base


def _figure(ws: Worksheet, row: int, column: int, cell: ReportCell, unit: Unit) -> None:
    if cell.value is None or unit == "grade":
        target = _text(ws, row, column, label_with_rag(cell.text, cell.rag))
        target.alignment = _NUMBER
    else:
        target = ws.cell(row=row, column=column, value=cell.value)
        target.number_format = number_format(unit, decimals_shown(cell.text), cell.rag)
        target.alignment = _NUMBER
    target.border = _BORDER
    if cell.rag:
        target.fill = _FILLS[cell.rag]


def _cover(ws: Worksheet, report: Report, last_column: int) -> int:
    """The block above the table; returns the first free row."""
    _text(ws, 1, 1, f"{TITLE}: {report.contract_name}", font=_TITLE_FONT)
    facts = [
        ("contract", f"{report.contract_name} ({report.contract_id})"),
        ("commissioner", report.commissioner),
        ("provider", report.provider),
        ("period", report.period_label),
        ("year", report.contract_year_label),
    ]
    r = 2
    for key, value in facts:
        _text(ws, r, 1, COVER_LABELS[key], font=_BOLD)
        _text(ws, r, 3, value)
        r += 1
    _text(ws, r, 1, COVER_LABELS["generated"], font=_BOLD)
    generated = ws.cell(row=r, column=3, value=report.generated_on)
    generated.number_format = "d mmmm yyyy"
    generated.alignment = Alignment(horizontal="left")
    r += 1
    # The RAG counts sit to the right of the facts, under the period columns: a label cell
    # merged over two columns and a numeric count, each filled and lettered.
    left = len(LEAD_COLUMNS) + 2
    _text(ws, 2, left, COVER_LABELS["rag"], font=_BOLD)
    for i, rag in enumerate(RAG_ORDER):
        _text(ws, 3 + i, left, rag_count_label(rag), fill=_FILLS[rag], border=_BORDER)
        ws.merge_cells(start_row=3 + i, start_column=left, end_row=3 + i, end_column=left + 1)
        count = ws.cell(row=3 + i, column=left + 2, value=int(report.rag_counts.get(rag, 0)))
        count.fill, count.border, count.font = _FILLS[rag], _BORDER, _BOLD
    for key, lines in (
        ("money", report.money_lines),
        ("actions", report.action_plan_lines),
        ("late", report.late_returns_lines),
    ):
        _text(ws, r, 1, COVER_LABELS[key], font=_BOLD, alignment=_TOP)
        _text(ws, r, 3, "\n".join(lines) or NONE_LISTED, alignment=_WRAP)
        ws.merge_cells(start_row=r, start_column=3, end_row=r, end_column=last_column)
        ws.row_dimensions[r].height = _LINE_PT * max(1, len(lines))
        r += 1
    return r + 1


def _write_scorecard(ws: Worksheet, report: Report) -> None:
    n = len(report.columns)
    titles = [*LEAD_COLUMNS, BENCHMARK_COLUMN, *report.columns, *TAIL_COLUMNS, NOTE_COLUMN]
    widths = [*_LEAD_WIDTHS, _BENCHMARK_WIDTH, *[_PERIOD_WIDTH] * n, *_TAIL_WIDTHS, _NOTE_WIDTH]
    last = len(titles)
    first_period = len(LEAD_COLUMNS) + 2
    for i, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width

    band_row = _cover(ws, report, last)
    header_row = band_row + 1
    # The seed's three bands over the column titles: details, terms, figures and verdict.
    spans = ((1, 5), (6, first_period - 1), (first_period, last))
    for title, (start, end) in zip(BANDS, spans, strict=True):
        _text(ws, band_row, start, title, font=_HEADING_FONT, fill=_HEADING_FILL, alignment=_CENTRE)
        ws.merge_cells(start_row=band_row, start_column=start, end_row=band_row, end_column=end)
    for column, title in enumerate(titles, start=1):
        _text(ws, header_row, column, title, **_HEADER_STYLE)
    r = header_row + 1
    for group in report.groups:
        # The group's name also fills the Group column, so filtering by group keeps its heading.
        _text(ws, r, 1, group.name, font=_HEADING_FONT)
        for column in range(1, last + 1):
            ws.cell(row=r, column=column).fill = _HEADING_FILL
        r += 1
        for row in group.rows:
            _kpi_row(ws, r, group.name, row, widths)
            r += 1

    last_letter = get_column_letter(last)
    ws.freeze_panes = ws.cell(row=header_row + 1, column=len(("Group", "Ref", "Measure")) + 1)
    ws.auto_filter.ref = f"A{header_row}:{last_letter}{max(r - 1, header_row)}"
    ws.row_dimensions[header_row].height = _LINE_PT * max(
        _lines(t, w) for t, w in zip(titles, widths, strict=True)
    )
    ws.print_title_rows = f"{band_row}:{header_row}"


def _kpi_row(ws: Worksheet, r: int, group: str, row: ReportRow, widths: Sequence[float]) -> None:
    # The Group column only serves the filter: it stays one line, cut at its width.
    _text(ws, r, 1, group, alignment=_TOP, border=_BORDER)
    lead = (row.ref, row.measure, row.frequency, row.polarity, row.target, row.tolerance)
    for column, value in enumerate((*lead, row.benchmark or ""), start=2):
        _text(ws, r, column, value, alignment=_WRAP, border=_BORDER)
    first_period = len(LEAD_COLUMNS) + 2
    for offset, cell in enumerate(row.cells):
        _figure(ws, r, first_period + offset, cell, row.unit)
    column = first_period + len(row.cells)
    position = _text(ws, r, column, position_label(row), alignment=_WRAP, border=_BORDER)
    if row.rag:
        position.fill = _FILLS[row.rag]
    _text(ws, r, column + 1, TREND_TEXT[row.trend], alignment=_TOP, border=_BORDER)
    critical = _text(ws, r, column + 2, YES if row.critical else NO, alignment=_TOP, border=_BORDER)
    if row.critical:
        critical.font = _CRITICAL_FONT
    _text(ws, r, column + 3, row.note or "", alignment=_WRAP, border=_BORDER)
    wrapped = ((row.measure, 3), (row.polarity, 5), (row.target, 6), (row.tolerance, 7),
               (position.value, column), (row.note or "", column + 3))  # fmt: skip
    ws.row_dimensions[r].height = _LINE_PT * max(_lines(t, widths[c - 1]) for t, c in wrapped)


def _lines(text: str, width: float) -> int:
    """About how many lines ``text`` wraps to in a column ``width`` characters wide.

    Spreadsheets do not size rows to wrapped text when they open a file (Excel only when a cell is
    edited), so each row is given a height from this estimate.
    """
    per_line = max(1, int(width * 1.05))
    return sum(max(1, -(-len(part) // per_line)) for part in text.split("\n"))


def _print_setup(ws: Worksheet, report: Report) -> None:
    """A4 landscape, one page wide, with the contract and page number on every page."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.gridLines = False
    ws.page_margins.left = ws.page_margins.right = 0.4
    # Header and footer codes: &L/&C/&R sections, &P page number, &N page count. An "&" in the
    # contract's words is doubled so Excel prints it rather than reading a code.
    ws.oddHeader.left.text = report.contract_name.replace("&", "&&")
    ws.oddHeader.right.text = report.period_label.replace("&", "&&")
    ws.oddFooter.left.text = f"{TITLE}, {report.generated_on:%d %B %Y}".replace("&", "&&")
    ws.oddFooter.right.text = PAGE.format("&P", "&N")


def _write_exceptions(ws: Worksheet, report: Report) -> None:
    ws.column_dimensions["A"].width = 16
    ws.column_dimensions["B"].width = 110
    _text(ws, 1, 1, EXCEPTIONS_HEADING, font=_TITLE_FONT)
    _text(ws, 2, 1, LEAD_COLUMNS[1], font=_BOLD, fill=_HEADER_FILL, border=_BORDER)
    _text(ws, 2, 2, EXCEPTIONS_HEADING, font=_BOLD, fill=_HEADER_FILL, border=_BORDER)
    r = 3
    for ref, text in report.exceptions or (("", NONE_LISTED),):
        _text(ws, r, 1, ref, alignment=_TOP, border=_BORDER)
        _text(ws, r, 2, text, alignment=_WRAP, border=_BORDER)
        ws.row_dimensions[r].height = _LINE_PT * _lines(text, 110)
        r += 1
    r += 1
    _text(ws, r, 1, NARRATIVE_HEADING, font=_TITLE_FONT)
    r += 1
    for heading, text in report.narrative or ((NONE_LISTED, ""),):
        _text(ws, r, 1, heading, font=_BOLD)
        ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=2)
        _text(ws, r + 1, 1, text, alignment=_WRAP)
        ws.merge_cells(start_row=r + 1, start_column=1, end_row=r + 1, end_column=2)
        # Merged cells do not grow to fit, so the row is sized from the text's length.
        ws.row_dimensions[r + 1].height = _LINE_PT * _lines(text, 126)
        r += 3


def _write_charts(ws: Worksheet, report: Report) -> None:
    """Each chart's figures as a small table, with a native line chart drawn from it alongside."""
    for column, width in zip("ABCDE", (14, 12, 8, 12, 12), strict=True):
        ws.column_dimensions[column].width = width
    _text(ws, 1, 1, CHARTS_HEADING, font=_TITLE_FONT)
    if not report.charts:
        _text(ws, 2, 1, NONE_LISTED)
    for i, chart in enumerate(report.charts):
        top = 3 + i * _CHART_BLOCK_ROWS
        if i and i % _CHARTS_PER_PAGE == 0:  # a printed page ends between charts, not inside one
            ws.row_breaks.append(Break(id=top - 1))
        _chart_block(ws, top, chart)


def _chart_block(ws: Worksheet, top: int, chart: ReportChart) -> None:
    _text(ws, top, 1, f"{chart.ref} {chart.title}", font=_BOLD)
    head = top + 1
    for column, title in enumerate(CHART_COLUMNS, start=1):
        _text(ws, head, column, title, font=_BOLD, fill=_HEADER_FILL, border=_BORDER)
    fmt = number_format(chart.unit, 0)
    rows = zip(chart.periods, chart.values, chart.rags, chart.target, chart.tolerance, strict=True)
    for r, (period, value, rag, target, tolerance) in enumerate(rows, start=head + 1):
        _text(ws, r, 1, period)
        for column, number in ((2, value), (4, target), (5, tolerance)):
            if number is not None:
                figure = ws.cell(row=r, column=column, value=number)
                figure.number_format = number_format(chart.unit, figure_places(number))
        if rag:
            _text(
                ws,
                r,
                3,
                RAG_LETTER[rag],
                fill=_FILLS[rag],
                alignment=Alignment(horizontal="center"),
            )
    last = head + len(chart.periods)

    line = LineChart()
    line.title = _chart_title(f"{chart.ref} {chart.title}")
    line.style = 2
    line.height, line.width = 7.5, 17.0
    line.display_blanks = "gap"
    line.y_axis.title = {"percent": "%", "days": "Days"}.get(chart.unit, chart.unit.title())
    line.y_axis.number_format = fmt
    # openpyxl 3.1 marks chart axes deleted unless told otherwise.
    line.x_axis.delete = line.y_axis.delete = False
    # Value solid; target dashed and tolerance dotted, each only when the contract sets one.
    styles = [(2, "solid")] + [
        (c, dash)
        for c, dash, levels in ((4, "dash", chart.target), (5, "sysDot", chart.tolerance))
        if any(v is not None for v in levels)
    ]
    for column, _ in styles:
        line.add_data(
            Reference(ws, min_col=column, min_row=head, max_row=last), titles_from_data=True
        )
    # Period labels are text: a string reference, or some readers number the categories 1..n.
    periods = f"{quote_sheetname(ws.title)}!$A${head + 1}:$A${last}"
    for series in line.series:
        series.cat = AxDataSource(strRef=StrRef(f=periods))
    value_series = line.series[0]
    value_series.graphicalProperties.line.solidFill = "455A64"
    # Points without a RAG are white; the rest take their RAG fill (the RAG column says it too).
    value_series.marker = Marker(symbol="circle", size=7, spPr=_marker_props("#FFFFFF"))
    value_series.smooth = False
    for index, rag in enumerate(chart.rags):
        if rag:
            marker = Marker("circle", size=7, spPr=_marker_props(RAG_FILL[rag]))
            value_series.dPt.append(DataPoint(idx=index, marker=marker))
    for series, (_, dash) in zip(line.series[1:], styles[1:], strict=True):
        series.graphicalProperties.line.solidFill = "263238"
        series.graphicalProperties.line.dashStyle = dash
        series.marker = Marker(symbol="none")
        series.smooth = False
    ws.add_chart(line, f"G{top}")


def _marker_props(fill: str) -> GraphicalProperties:
    props = GraphicalProperties(solidFill=fill[1:])
    props.line.solidFill = INK[1:]
    return props


def _chart_title(text: str, limit: int = 100) -> Title:
    """A 10 pt bold chart title, cut at a word with an ellipsis past ``limit`` characters."""
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + "…"
    props = CharacterProperties(sz=1000, b=True)
    paragraph = Paragraph(
        pPr=ParagraphProperties(defRPr=props), r=[RegularTextRun(rPr=props, t=text)]
    )
    return Title(tx=Text(rich=RichText(p=[paragraph])), overlay=False)


def _write_notes(ws: Worksheet, report: Report) -> None:
    ws.column_dimensions["A"].width = 22
    ws.column_dimensions["B"].width = 100
    _text(ws, 1, 1, NOTES_HEADING, font=_TITLE_FONT)
    r = 2
    for note in report.notes or (NONE_LISTED,):
        _text(ws, r, 1, note, alignment=_WRAP)
        ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=2)
        ws.row_dimensions[r].height = _LINE_PT * _lines(note, 122)
        r += 1
    r += 1
    _text(ws, r, 1, KEY_HEADING, font=_TITLE_FONT)
    for rag in RAG_ORDER:
        r += 1
        _text(
            ws,
            r,
            1,
            RAG_LETTER[rag],
            fill=_FILLS[rag],
            border=_BORDER,
            font=_BOLD,
            alignment=Alignment(horizontal="center"),
        )
        _text(ws, r, 2, RAG_MEANING[rag])
    for trend in TREND_TEXT.values():
        r += 1
        _text(ws, r, 1, trend)
    _text(ws, r + 1, 1, TREND_KEY)
