"""The scorecard as an A4 landscape PDF for board papers, drawn with fpdf2.

Page one carries the cover block, then the KPI table runs on with its header repeated on every
page and a bar above each group. Figure cells are filled by RAG and carry the letter too. The
small charts of red and amber KPIs follow, nine to a page, drawn as vector lines (no images), then
the exception reports, narrative, notes and the key. Every page has a header with the contract
and period and a footer with the page number. Text is real text (DejaVu Sans, embedded and
subset), so it can be searched, copied and read back.

>>> render_pdf(report)[:5]  # doctest: +SKIP
b'%PDF-'
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time
from pathlib import Path

import matplotlib
from fpdf import FPDF

from kpibot.files.report import (
    BENCHMARK_COLUMN,
    CHART_COLUMNS,
    CHARTS_HEADING,
    COVER_LABELS,
    EXCEPTIONS_HEADING,
    GENERATED,
    HEADER_FILL,
    HEADING_FILL,
    HEADING_INK,
    INK,
    KEY_HEADING,
    LEAD_COLUMNS,
    NARRATIVE_HEADING,
    NO,
    NONE_LISTED,
    NOTE_PREFIX,
    NOTES_HEADING,
    PAGE,
    RAG_FILL,
    RAG_LETTER,
    RAG_MEANING,
    RAG_ORDER,
    TAIL_COLUMNS,
    TITLE,
    TREND_KEY,
    TREND_TEXT,
    YES,
    Rag,
    Report,
    ReportChart,
    ReportRow,
    figure_places,
    format_value,
    label_with_rag,
    point_label,
    position_label,
    rag_count_label,
    short_period,
)

# DejaVu Sans ships with matplotlib (a kpibot dependency) and covers the arrows, dashes and
# non-Latin letters that contract words and trend labels use; PDF's built-in fonts do not.
_FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
_FONT = "DejaVu"
_MARGIN, _TOP, _BOTTOM = 8.0, 15.0, 14.0
_SIZE, _LINE, _PAD = 6.5, 2.9, 0.8  # table font (pt), line height and cell padding (mm)
_BASELINE = 2.15  # from the top of a line to its text baseline at 6.5 pt
# Widths in mm, each wide enough for its bold column title without breaking a word.
_FIXED = {
    "ref": 12.0,
    "frequency": 16.0,
    "polarity": 15.0,
    "target": 17.0,
    "tolerance": 17.0,
    "benchmark": 16.5,
    "position": 18.0,
    "trend": 17.0,
    "critical": 11.5,
}
_MIN_MEASURE = 30.0
_LABEL_W = 44.0  # the cover block's labels
_CHART_COLUMNS, _CHART_ROWS, _GAP = 3, 3, 4.0
_LINE_INK, _TARGET_INK, _GRID, _RULE = "#455A64", "#263238", "#E4E4E4", "#BFBFBF"


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


class _ScorecardPdf(FPDF):
    """An FPDF with the report's running header and footer."""

    def __init__(self, report: Report) -> None:
        super().__init__(orientation="L", unit="mm", format="A4")
        self.report = report
        self.set_margins(_MARGIN, _TOP, _MARGIN)
        self.set_auto_page_break(True, margin=_BOTTOM)
        self.add_font(_FONT, "", _FONT_DIR / "DejaVuSans.ttf")
        self.add_font(_FONT, "B", _FONT_DIR / "DejaVuSans-Bold.ttf")
        self.c_margin = _PAD
        self._widths: dict[tuple[str, str, float, str], float] = {}

    def header(self) -> None:
        self.set_font(_FONT, "", 7.5)
        self.set_text_color(*_rgb(INK))
        r = self.report
        self.text(_MARGIN, 9, f"{r.contract_name} · {TITLE}")
        self._text_right(self.w - _MARGIN, 9, f"{r.period_label} · {r.contract_year_label}")
        self.set_draw_color(*_rgb(_RULE))
        self.line(_MARGIN, 11, self.w - _MARGIN, 11)

    def footer(self) -> None:
        self.set_font(_FONT, "", 7.5)
        self.set_text_color(*_rgb(INK))
        y = self.h - 7
        self.text(
            _MARGIN,
            y,
            f"{self.report.contract_name}, {self.report.period_label}. "
            + GENERATED.format(self.report.generated_on),
        )
        # cell(), not text(): fpdf2 fills in the page count alias only in cells.
        self.set_xy(self.w - _MARGIN - 40, y - 2.6)
        self.cell(40, 3.4, PAGE.format(self.page_no(), "{nb}"), align="R")

    def _text_right(self, right: float, y: float, text: str) -> None:
        self.text(right - self.get_string_width(text), y, text)

    def paragraph(self, width: float, height: float, text: str) -> None:
        """``text`` left-aligned and wrapped to ``width`` (0: to the margin), then a new line."""
        self.multi_cell(width, height, text, align="L", new_x="LMARGIN", new_y="NEXT")

    def wrap(self, text: str, width: float) -> list[str]:
        """``text`` broken into lines that fit ``width`` (mm) at the current font.

        A greedy word wrap on measured word widths (each word measured once per font), breaking
        only a word too long for a line on its own. fpdf2's own ``multi_cell(dry_run=True)``
        gives the same lines but measures character by character, and a 113-KPI table spent
        most of its rendering time there.
        """
        limit = width - 2 * _PAD
        lines: list[str] = []
        space = self._width(" ")
        for part in text.split("\n"):
            if self._width(part) <= limit:
                lines.append(part)
                continue
            line, used = "", 0.0
            for word in part.split(" "):
                size = self._width(word)
                if line and used + space + size <= limit:
                    line, used = f"{line} {word}", used + space + size
                    continue
                if line:
                    lines.append(line)
                while size > limit and len(word) > 1:
                    cut = len(word) - 1
                    while cut > 1 and self._width(word[:cut]) > limit:
                        cut -= 1
                    lines.append(word[:cut])
                    word = word[cut:]
                    size = self._width(word)
                line, used = word, size
            lines.append(line)
        return lines or [""]

    def _width(self, text: str) -> float:
        key = (self.font_family, self.font_style, self.font_size_pt, text)
        width = self._widths.get(key)
        if width is None:
            width = self._widths[key] = self.get_string_width(text)
        return width


def render_pdf(report: Report) -> bytes:
    """The report as the bytes of a PDF (see the module docstring for its pages)."""
    pdf = _ScorecardPdf(report)
    pdf.set_creation_date(datetime.combine(report.generated_on, time(), tzinfo=UTC))
    pdf.set_title(report.title)
    pdf.set_author("kpibot")
    pdf.set_lang("en-GB")
    pdf.add_page()
    _cover(pdf, report)
    _table(pdf, report)
    if report.charts:
        _charts(pdf, report.charts)
    _texts(pdf, report)
    return bytes(pdf.output())


def _heading(pdf: _ScorecardPdf, text: str, size: float = 12) -> None:
    pdf.set_font(_FONT, "B", size)
    pdf.set_text_color(*_rgb(INK))
    pdf.paragraph(0, size * 0.5, text)
    pdf.ln(1)


def _cover(pdf: _ScorecardPdf, report: Report) -> None:
    pdf.set_font(_FONT, "B", 16)
    pdf.set_xy(_MARGIN, _TOP)
    pdf.paragraph(0, 7.5, f"{TITLE}: {report.contract_name}")
    top = pdf.get_y() + 2
    # RAG counts: a filled, lettered box per state, to the right of the facts.
    x0, box_w, box_h = pdf.w - _MARGIN - 4 * 34, 33.0, 9.0
    pdf.set_font(_FONT, "B", 9)
    pdf.text(x0, top + 3, COVER_LABELS["rag"])
    for i, rag in enumerate(RAG_ORDER):
        x = x0 + i * (box_w + 1)
        pdf.set_fill_color(*_rgb(RAG_FILL[rag]))
        pdf.set_draw_color(*_rgb(_RULE))
        pdf.rect(x, top + 5, box_w, box_h, style="DF")
        pdf.set_font(_FONT, "B", 11)
        pdf.text(x + 2, top + 10.5, str(report.rag_counts.get(rag, 0)))
        count_w = pdf.get_string_width(str(report.rag_counts.get(rag, 0)))
        pdf.set_font(_FONT, "", 6.5)
        pdf.text(x + 4 + count_w, top + 10.2, rag_count_label(rag))
    facts = (
        ("contract", f"{report.contract_name} ({report.contract_id})"),
        ("commissioner", report.commissioner),
        ("provider", report.provider),
        ("period", report.period_label),
        ("year", report.contract_year_label),
        ("generated", f"{report.generated_on:%d %B %Y}"),
    )
    pdf.set_y(top)
    for key, value in facts:
        pdf.set_font(_FONT, "B", 9)
        pdf.cell(_LABEL_W, 4.6, COVER_LABELS[key])
        pdf.set_font(_FONT, "", 9)
        pdf.paragraph(x0 - _MARGIN - _LABEL_W - 4, 4.6, value)
    pdf.ln(2)
    for key, lines in (
        ("money", report.money_lines),
        ("actions", report.action_plan_lines),
        ("late", report.late_returns_lines),
    ):
        pdf.set_font(_FONT, "B", 9)
        pdf.cell(_LABEL_W, 4.6, COVER_LABELS[key])
        pdf.set_font(_FONT, "", 9)
        text = "\n".join(f"• {line}" for line in lines) or NONE_LISTED
        pdf.paragraph(0, 4.6, text)
    pdf.ln(3)


def _columns(report: Report) -> list[tuple[str, float]]:
    """The PDF table's (title, width) pairs: the measure takes what the periods leave."""
    usable = 297.0 - 2 * _MARGIN
    spare = usable - sum(_FIXED.values())
    n = max(1, len(report.columns))
    period_w = max(8.0, min(13.0, (spare - 48.0) / n))
    measure_w = max(_MIN_MEASURE, spare - n * period_w)
    if measure_w == _MIN_MEASURE:  # so many periods that they share what remains
        period_w = (spare - _MIN_MEASURE) / n
    lead = [(LEAD_COLUMNS[1], _FIXED["ref"]), (LEAD_COLUMNS[2], measure_w)]
    lead += [
        (LEAD_COLUMNS[i], _FIXED[k])
        for i, k in ((3, "frequency"), (4, "polarity"), (5, "target"), (6, "tolerance"))
    ]
    lead.append((BENCHMARK_COLUMN, _FIXED["benchmark"]))
    tail = zip(TAIL_COLUMNS, (_FIXED["position"], _FIXED["trend"], _FIXED["critical"]), strict=True)
    return [*lead, *((c, period_w) for c in report.columns), *tail]


# One table cell: its text, fill (None for white), right-aligned, bold.
_Cell = tuple[str, str | None, bool, bool]


def _row_cells(row: ReportRow) -> list[_Cell]:
    measure = f"{row.measure}\n{NOTE_PREFIX}{row.note}" if row.note else row.measure
    cells: list[_Cell] = [(row.ref, None, False, True), (measure, None, False, False)]
    for text in (row.frequency, row.polarity, row.target, row.tolerance, row.benchmark or ""):
        cells.append((text, None, False, False))
    for cell in row.cells:
        fill = RAG_FILL[cell.rag] if cell.rag else None
        cells.append((label_with_rag(cell.text, cell.rag), fill, True, False))
    cells.append((position_label(row), RAG_FILL[row.rag] if row.rag else None, False, False))
    cells.append((TREND_TEXT[row.trend], None, False, False))
    cells.append(
        (
            YES if row.critical else NO,
            RAG_FILL["red"] if row.critical else None,
            False,
            row.critical,
        )
    )
    return cells


def _draw_row(
    pdf: _ScorecardPdf,
    cols: Sequence[tuple[str, float]],
    cells: Sequence[_Cell],
    lines: Sequence[list[str]],
    y: float,
    height: float,
) -> None:
    x = _MARGIN
    for (_, width), (_, fill, right, bold), text_lines in zip(cols, cells, lines, strict=True):
        pdf.set_fill_color(*_rgb(fill or "#FFFFFF"))
        pdf.rect(x, y, width, height, style="DF")
        pdf.set_font(_FONT, "B" if bold else "", _SIZE)
        for i, line in enumerate(text_lines):
            baseline = y + _PAD + i * _LINE + _BASELINE
            if right:
                pdf.text(x + width - _PAD - pdf.get_string_width(line), baseline, line)
            else:
                pdf.text(x + _PAD, baseline, line)
        x += width


def _table(pdf: _ScorecardPdf, report: Report) -> None:
    cols = _columns(report)
    full = sum(w for _, w in cols)
    bottom = pdf.h - _BOTTOM
    max_lines = int((bottom - _TOP - 20) / _LINE)
    pdf.set_font(_FONT, "B", _SIZE)
    header_cells: list[_Cell] = [(t, HEADER_FILL, False, True) for t, _ in cols]
    # A period label breaks before its quarter ("2018/19" over "Q1"), never inside the year.
    periods = set(report.columns)
    header_lines = [pdf.wrap(t.replace(" ", "\n") if t in periods else t, w) for t, w in cols]
    header_h = max(len(ls) for ls in header_lines) * _LINE + 2 * _PAD
    pdf.set_draw_color(*_rgb(_RULE))
    pdf.set_text_color(*_rgb(INK))

    def header(y: float) -> float:
        _draw_row(pdf, cols, header_cells, header_lines, y, header_h)
        return y + header_h

    y = header(pdf.get_y())
    for group in report.groups:
        prepared = []
        for row in group.rows:
            cells = _row_cells(row)
            lines = []
            for (_, width), (text, _, _, bold) in zip(cols, cells, strict=True):
                pdf.set_font(_FONT, "B" if bold else "", _SIZE)
                lines.append(pdf.wrap(text, width)[:max_lines])
            height = max(len(ls) for ls in lines) * _LINE + 2 * _PAD
            prepared.append((cells, lines, height))
        first = prepared[0][2] if prepared else 0.0
        if y + 6 + first > bottom:
            pdf.add_page()
            y = header(pdf.get_y())
        pdf.set_fill_color(*_rgb(HEADING_FILL))
        pdf.rect(_MARGIN, y, full, 6, style="F")
        pdf.set_font(_FONT, "B", 8)
        pdf.set_text_color(*_rgb(HEADING_INK))
        pdf.text(_MARGIN + _PAD, y + 4.2, group.name)
        pdf.set_text_color(*_rgb(INK))
        pdf.set_draw_color(*_rgb(_RULE))
        y += 6
        for cells, lines, height in prepared:
            if y + height > bottom:
                pdf.add_page()
                y = header(pdf.get_y())
            _draw_row(pdf, cols, cells, lines, y, height)
            y += height
    pdf.set_y(y + 4)


def _charts(pdf: _ScorecardPdf, charts: Sequence[ReportChart]) -> None:
    per_page = _CHART_COLUMNS * _CHART_ROWS
    width = (pdf.w - 2 * _MARGIN - (_CHART_COLUMNS - 1) * _GAP) / _CHART_COLUMNS
    for start in range(0, len(charts), per_page):
        pdf.add_page()
        _heading(pdf, CHARTS_HEADING, 11)
        top = pdf.get_y()
        height = (pdf.h - _BOTTOM - top - (_CHART_ROWS - 1) * _GAP) / _CHART_ROWS
        for i, chart in enumerate(charts[start : start + per_page]):
            column, row = i % _CHART_COLUMNS, i // _CHART_COLUMNS
            x = _MARGIN + column * (width + _GAP)
            _chart(pdf, chart, x, top + row * (height + _GAP), width, height)


def _segments(points: Sequence[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive points, split where a period has no figure (drawn as a gap)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for point in points:
        if point is None:
            runs.append([])
        else:
            runs[-1].append(point)
    return [run for run in runs if run]


def _chart(pdf: _ScorecardPdf, chart: ReportChart, x: float, y: float, w: float, h: float) -> None:
    pdf.set_draw_color(*_rgb(_RULE))
    pdf.set_line_width(0.2)
    pdf.rect(x, y, w, h)
    pdf.set_font(_FONT, "B", 7)
    title = pdf.wrap(f"{chart.ref} {chart.title}", w)
    if len(title) > 2:  # two lines at most; the table above has the measure in full
        title = title[:2]
        while title[1] and pdf.get_string_width(title[1] + "…") > w - 2 * _PAD:
            title[1] = title[1][:-1]
        title[1] = title[1].rstrip() + "…"
    for i, line in enumerate(title):
        pdf.text(x + _PAD, y + 3.2 + i * _LINE, line)
    left, right = x + 12, x + w - 3
    top, bottom = y + 4 + 2 * _LINE, y + h - 13
    numbers = [v for s in (chart.values, chart.target, chart.tolerance) for v in s if v is not None]
    lo, hi = (min(numbers), max(numbers)) if numbers else (0.0, 1.0)
    pad = (hi - lo) * 0.12 or max(abs(hi) * 0.1, 1.0)
    lo, hi = lo - pad, hi + pad
    n = len(chart.periods)

    def px(i: int) -> float:
        return left + (i + 0.5) * (right - left) / max(n, 1)

    def py(v: float) -> float:
        return bottom - (v - lo) / (hi - lo) * (bottom - top)

    pdf.set_font(_FONT, "", 5.5)
    for level in (lo + pad, (lo + hi) / 2, hi - pad):
        pdf.set_draw_color(*_rgb(_GRID))
        pdf.line(left, py(level), right, py(level))
        label = format_value(level, chart.unit, figure_places(round(level, 1)))
        pdf.text(left - 1 - pdf.get_string_width(label), py(level) + 0.8, label)
    pdf.set_draw_color(*_rgb(_TARGET_INK))
    for series, dash in ((chart.tolerance, (0.4, 0.8)), (chart.target, (1.6, 1.0))):
        pdf.set_dash_pattern(dash=dash[0], gap=dash[1])
        points = [(px(i), py(v)) if v is not None else None for i, v in enumerate(series)]
        for run in _segments(points):
            _polyline(pdf, run)
    pdf.set_dash_pattern()
    pdf.set_draw_color(*_rgb(_LINE_INK))
    pdf.set_line_width(0.5)
    values = [(px(i), py(v)) if v is not None else None for i, v in enumerate(chart.values)]
    for run in _segments(values):
        _polyline(pdf, run)
    pdf.set_line_width(0.2)
    pdf.set_draw_color(*_rgb(INK))
    for i, (point, value, rag) in enumerate(zip(values, chart.values, chart.rags, strict=True)):
        if point is not None:
            pdf.set_fill_color(*_rgb(RAG_FILL[rag] if rag else "#FFFFFF"))
            pdf.ellipse(point[0] - 1.1, point[1] - 1.1, 2.2, 2.2, style="DF")
        upper, lower = short_period(chart.periods[i])
        for j, text in enumerate((upper, lower, label_with_rag(point_label(value, chart), rag))):
            pdf.text(px(i) - pdf.get_string_width(text) / 2, bottom + 2.6 + j * 2.4, text)
    _legend(pdf, x + _PAD, y + h - 1.2)


def _polyline(pdf: _ScorecardPdf, run: list[tuple[float, float]]) -> None:
    if len(run) == 1:  # a lone figure between gaps still gets its marker, a line needs two
        return
    pdf.polyline(run)


def _legend(pdf: _ScorecardPdf, x: float, y: float) -> None:
    pdf.set_font(_FONT, "", 5.5)
    pdf.set_text_color(*_rgb(INK))
    styles = (
        (_LINE_INK, 0.5, None),
        (_TARGET_INK, 0.2, (1.6, 1.0)),
        (_TARGET_INK, 0.2, (0.4, 0.8)),
    )
    for label, (ink, width, dash) in zip(
        (CHART_COLUMNS[1], CHART_COLUMNS[3], CHART_COLUMNS[4]), styles, strict=True
    ):
        pdf.set_draw_color(*_rgb(ink))
        pdf.set_line_width(width)
        if dash:
            pdf.set_dash_pattern(dash=dash[0], gap=dash[1])
        pdf.line(x, y - 0.7, x + 5, y - 0.7)
        pdf.set_dash_pattern()
        pdf.text(x + 6, y, label)
        x += 8 + pdf.get_string_width(label)
    pdf.set_line_width(0.2)


def _texts(pdf: _ScorecardPdf, report: Report) -> None:
    """Exception reports, narrative, notes and the key, flowing from a new page."""
    pdf.add_page()
    pdf.set_text_color(*_rgb(INK))
    _heading(pdf, EXCEPTIONS_HEADING)
    for ref, text in report.exceptions or (("", NONE_LISTED),):
        pdf.set_font(_FONT, "B", 9)
        pdf.cell(20, 4.6, ref)
        pdf.set_font(_FONT, "", 9)
        pdf.paragraph(0, 4.6, text)
        pdf.ln(1.5)
    pdf.ln(3)
    _heading(pdf, NARRATIVE_HEADING)
    for heading, text in report.narrative or ((NONE_LISTED, ""),):
        pdf.set_font(_FONT, "B", 9.5)
        pdf.paragraph(0, 4.8, heading)
        pdf.set_font(_FONT, "", 9)
        pdf.paragraph(0, 4.6, text)
        pdf.ln(2)
    pdf.ln(3)
    _heading(pdf, NOTES_HEADING)
    pdf.set_font(_FONT, "", 9)
    for note in report.notes or (NONE_LISTED,):
        pdf.paragraph(0, 4.6, f"• {note}")
    pdf.ln(3)
    _key(pdf)


def _key(pdf: _ScorecardPdf) -> None:
    _heading(pdf, KEY_HEADING)
    for rag in RAG_ORDER:
        _key_line(pdf, rag)
    pdf.set_font(_FONT, "", 9)
    pdf.paragraph(0, 4.6, "   ".join(TREND_TEXT.values()))
    pdf.paragraph(0, 4.6, TREND_KEY)


def _key_line(pdf: _ScorecardPdf, rag: Rag) -> None:
    pdf.set_fill_color(*_rgb(RAG_FILL[rag]))
    pdf.set_draw_color(*_rgb(_RULE))
    pdf.set_font(_FONT, "B", 9)
    pdf.cell(10, 5, RAG_LETTER[rag], border=1, fill=True, align="C")
    pdf.set_font(_FONT, "", 9)
    pdf.cell(0, 5, f"  {RAG_MEANING[rag]}", new_x="LMARGIN", new_y="NEXT")
