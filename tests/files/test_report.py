"""The quarterly scorecard renderers, on seed 004's own figures, each file read back as its reader would.

The report is built by hand from the children's trust's performance report (seed 004): the KPI
wording, targets, tolerances and seven quarters of figures are the contract's; position, RAG and
trend are worked out here from those figures, as the engine would.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import replace
from datetime import date
from html.parser import HTMLParser

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from kpibot.files.report import (
    CSV_LEAD,
    CSV_TAIL,
    HEADING_FILL,
    HEADING_INK,
    INK,
    RAG_FILL,
    Report,
    ReportCell,
    ReportChart,
    ReportGroup,
    ReportRow,
    format_value,
    formula_safe,
    render_csv,
)
from kpibot.files.report_formats import render
from kpibot.files.report_html import render_html
from kpibot.files.report_pdf import render_pdf
from kpibot.files.report_xlsx import SHEETS, number_format, render_xlsx

COLUMNS = tuple(f"{y} Q{q}" for y in ("2018/19",) for q in (1, 2, 3, 4)) + tuple(
    f"2019/20 Q{q}" for q in (1, 2, 3)
)
NEW = None  # "New contract measure for 2019/20": no figure in 2018/19


def rag_of(value, target, tolerance, bigger):
    if value is None:
        return None
    if target is None:
        return "grey"
    sign = 1 if bigger else -1
    if sign * (value - target) >= 0:
        return "green"
    if sign * (value - tolerance) >= 0:
        return "amber"
    return "red"


def kpi(
    ref,
    measure,
    polarity,
    target,
    tolerance,
    figures,
    *,
    unit="percent",
    levels=None,
    trend,
    critical=False,
    benchmark="Yes",
    frequency="Quarterly",
    decimals=0,
    note=None,
):
    """A seed 004 row: contract words for the terms, ``levels`` (target, tolerance) to rate by."""
    bigger = polarity != "Smaller is better"
    target_level, tolerance_level = levels or (None, None)
    cells = tuple(
        ReportCell.of(v, unit, rag_of(v, target_level, tolerance_level, bigger), decimals)
        if v is not None
        else ReportCell("New measure")
        for v in figures
    )
    rag = cells[-1].rag
    position = {"green": "met", "amber": "within_tolerance", "red": "not_met", "grey": "no_target"}
    return ReportRow(
        ref=ref,
        measure=measure,
        frequency=frequency,
        polarity=polarity,
        target=target,
        tolerance=tolerance,
        unit=unit,
        cells=cells,
        position=position[rag],
        rag=rag,
        trend=trend,
        critical=critical,
        benchmark=benchmark,
        note=note,
    )


BIG, SMALL = "Bigger is better", "Smaller is better"
CONTRACTUAL = (
    kpi(
        "CKPI01",
        "Assessments completed within <45 days",
        BIG,
        "Target 90%",
        "Tolerance 85%",
        (89, 91, 89, 86, 87, 91, 96),
        levels=(90, 85),
        trend="improving",
    ),
    kpi(
        "CKPI02",
        "Children in need with an appropriate and current plan in place",
        BIG,
        "95%",
        "90%",
        (95, 94, 94, 93, 94, 96, 95),
        levels=(95, 90),
        trend="stable",
        benchmark="No",
    ),
    kpi(
        "CKPI05",
        "Short term stability of placements of children in care: % of children "
        "experiencing 3 or more placements in the year",
        SMALL,
        "9%",
        "12%",
        (11, 9, 10, 12, 11.0, 10.0, 8.0),
        levels=(9, 12),
        trend="improving",
        decimals=1,
    ),
    kpi(
        "CKPI06",
        "Statutory Looked After reviews completed in time scale",
        BIG,
        "95%",
        "90%",
        (NEW, NEW, NEW, NEW, 91, 92, 94),
        levels=(95, 90),
        trend="improving",
        benchmark="No",
    ),
    kpi(
        "CKPI07",
        "Children who wait less than 14 months between entering care and moving in "
        "with their adoptive family.",
        BIG,
        "60%",
        "56%",
        (78, 71, 61, 71, 71, 60, 42),
        levels=(60, 56),
        trend="worsening",
        critical=True,
    ),
    kpi(
        "CKPI10",
        "Front line staff receiving Supervision in Timescale",
        BIG,
        "90%",
        "80%",
        (91, 90, 90, 87, 84, 86, 79),
        levels=(90, 80),
        trend="worsening",
        benchmark="No",
    ),
    kpi(
        "CKPI13",
        "Length of intervention for family support services (days)",
        SMALL,
        "140 days",
        "180 days",
        (226, 175, 169, 146, 193, 173, 141),
        unit="days",
        levels=(140, 180),
        trend="improving",
        benchmark="No",
    ),
    kpi(
        "CKPI15",
        "Referrals that have previously referred where no statutory service was provided",
        SMALL,
        "TBD*",
        "TBD*",
        (NEW, NEW, NEW, NEW, 74, 56, 55),
        trend="stable",
        benchmark="No",
        note="To be determined: a new measure needs three quarters' data "
        "before a target and tolerance can be set.",
    ),
)
STRATEGIC = (
    kpi(
        "SPI01",
        "Referrals that are re-referrals within 12 months",
        SMALL,
        "22%",
        "28%",
        (26, 27, 28, 27, 27, 27, 26),
        levels=(22, 28),
        trend="stable",
    ),
    kpi(
        "SPI09",
        "Rate of first time entrants to youth justice (per 100,000)",
        SMALL,
        "170",
        "210",
        (229, 218, 165, 165, 190, 200, 190),
        unit="rate",
        levels=(170, 210),
        trend="volatile",
    ),
    kpi(
        "SPI11",
        "Long term stability of placement of children in care: %of long term children "
        "in care in stable placements",
        BIG,
        "70%",
        "60%",
        (69, 72, 71, 67, 62, 58, 55),
        levels=(70, 60),
        trend="worsening",
    ),
    kpi(
        "SPI18",
        "Rate of 19 & 20 year olds Staying Put with their foster carers after their 18th birthday",
        BIG,
        "TBD*",
        "TBD*",
        (NEW, NEW, NEW, NEW, NEW, 7, 8),
        trend="new",
    ),
    kpi(
        "SPI20",
        "Case file audits graded outstanding",
        "Outstanding is better",
        "RI+: 95% Good+ 80%",
        "RI+: 90% Good+: 60%",
        (37, 26, 27, 19, 13, 20, 17),
        frequency="- Quarterly",
        benchmark="No -",
        trend="volatile",
        levels=None,
    ),
)
ALL_ROWS = CONTRACTUAL + STRATEGIC


def chart_for(row: ReportRow, levels) -> ReportChart:
    return ReportChart(
        ref=row.ref,
        title=row.measure,
        periods=COLUMNS,
        values=tuple(c.value for c in row.cells),
        target=(levels[0],) * len(COLUMNS),
        tolerance=(levels[1],) * len(COLUMNS),
        rags=tuple(c.rag for c in row.cells),
        unit=row.unit,
    )


LEVELS = {
    "CKPI06": (95, 90),
    "CKPI07": (60, 56),
    "CKPI10": (90, 80),
    "CKPI13": (140, 180),
    "SPI01": (22, 28),
    "SPI09": (170, 210),
    "SPI11": (70, 60),
}


def make_report(rows=ALL_ROWS) -> Report:
    by_ref = {r.ref: r for r in rows}
    groups = (
        ReportGroup(
            "Contractual Key Performance Indicators", tuple(r for r in rows if r.ref[0] == "C")
        ),
        ReportGroup("Strategic Partnership Indicators", tuple(r for r in rows if r.ref[0] == "S")),
    )
    counts = {rag: sum(r.rag == rag for r in rows) for rag in ("red", "amber", "green", "grey")}
    return Report(
        contract_id="childrens-trust",
        contract_name="Children's Trust",
        commissioner="The Council",
        provider="The Children's Trust",
        period_label="2019/20 Q3",
        contract_year_label="Year 1 (2019/20)",
        generated_on=date(2020, 1, 24),
        columns=COLUMNS,
        groups=groups,
        rag_counts=counts,
        money_lines=("No payment is at risk: the contract has no performance deductions.",),
        action_plan_lines=(
            "CKPI07 adoption timeliness: action plan agreed 2019/20 Q2, review due",
        ),
        late_returns_lines=(),
        exceptions=(
            (
                "CKPI07",
                "Three children with complex needs waited over 14 months; "
                "matches were found for all three.",
            ),
        ),
        narrative=(
            (
                "Overview",
                "Timeliness of assessments improved to 96% (<45 days) & stayed above target.",
            ),
        ),
        charts=tuple(chart_for(by_ref[ref], LEVELS[ref]) for ref in LEVELS if ref in by_ref),
        notes=(
            "Targets for 2018/19 are the 2019/20 targets carried back; the seed gives only one year.",
        ),
    )


REPORT = make_report()
RED_AMBER = [r for r in ALL_ROWS if r.rag in ("red", "amber")]


def test_the_seed_rows_rate_as_the_trust_reported():
    by_ref = {r.ref: r for r in ALL_ROWS}
    assert by_ref["CKPI01"].rag == "green" and by_ref["CKPI01"].cells[-1].text == "96%"
    assert (by_ref["CKPI07"].rag, by_ref["CKPI07"].trend) == ("red", "worsening")
    assert by_ref["CKPI13"].rag == "amber" and by_ref["CKPI13"].cells[-1].text == "141 days"
    assert by_ref["CKPI15"].rag == "grey" and by_ref["CKPI15"].position == "no_target"
    assert by_ref["CKPI05"].cells[-1].text == "8.0%"
    assert len(REPORT.charts) == len(RED_AMBER) == 7


# ---------------------------------------------------------------------------------- the model


def test_model_rejects_what_a_renderer_could_not_show():
    with pytest.raises(ValueError, match="rag must be one of"):
        ReportCell("96%", 96.0, "blue")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CKPI01 has 6 figures for 7"):
        make_report((replace(ALL_ROWS[0], cells=ALL_ROWS[0].cells[:6]),))
    with pytest.raises(ValueError, match="values has 1 entries for 7 periods"):
        replace(REPORT.charts[0], values=(1.0,))
    with pytest.raises(ValueError, match="position must be one of"):
        replace(ALL_ROWS[0], position="within tolerance")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+1+1", "'+1+1"),
        ("-5% on last year", "'-5% on last year"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-5%", "-5%"),
        ("+2.5", "+2.5"),
        ("Target 90%", "Target 90%"),
        ("<45 days", "<45 days"),
    ],
)
def test_formula_safe(text, safe):
    assert formula_safe(text) == safe


def test_format_value_and_number_format_agree():
    assert format_value(1620, "count") == "1,620"
    assert format_value(1, "days") == "1 day"
    assert number_format("percent", 1, "amber") == '0.0"% A"'
    assert number_format("days", 0, "red") == '0" days R"'
    assert number_format("count", 0) == "#,##0"
    assert number_format("rate", 0, "grey") == '#,##0" NT"'


# ----------------------------------------------------------------------------------------- XLSX


def _hostile_report() -> Report:
    rows = list(ALL_ROWS)
    rows[0] = replace(
        rows[0],
        measure='=HYPERLINK("http://evil.example","click")',
        tolerance="-5% on last year",
        note="@SUM(1+1)",
    )
    return make_report(tuple(rows))


def _scorecard(data: bytes):
    ws = load_workbook(io.BytesIO(data))["Scorecard"]
    header = next(r for r in range(1, 40) if ws.cell(r, 2).value == "Ref")
    titles = [c.value for c in ws[header]]
    rows = {
        ws.cell(r, 2).value: r for r in range(header + 1, ws.max_row + 1) if ws.cell(r, 2).value
    }
    return ws, header, titles, rows


def test_xlsx_layout_numbers_and_fills():
    data = render_xlsx(REPORT)
    assert load_workbook(io.BytesIO(data)).sheetnames == list(SHEETS)
    ws, header, titles, rows = _scorecard(data)
    first = titles.index("2018/19 Q1") + 1
    assert titles[:8] == [
        "Group",
        "Ref",
        "Measure",
        "Frequency",
        "Polarity",
        "Target",
        "Tolerance",
        "Benchmark",
    ]
    assert titles[first - 1 : first + 6] == list(COLUMNS)
    assert titles[first + 6 :] == ["Position", "6-month trend", "Critical failure", "Note"]
    assert set(rows) == {r.ref for r in ALL_ROWS}

    assessments = [ws.cell(rows["CKPI01"], first + i) for i in range(7)]
    assert [c.value for c in assessments] == [89, 91, 89, 86, 87, 91, 96]
    assert all(c.data_type == "n" for c in assessments)
    assert assessments[-1].number_format == '0"% G"'
    assert assessments[3].number_format == '0"% A"'  # 86% against 90% / 85%
    days = ws.cell(rows["CKPI13"], first + 6)
    assert (days.value, days.number_format) == (141, '0" days A"')
    assert ws.cell(rows["CKPI05"], first + 6).number_format == '0.0"% G"'
    assert ws.cell(rows["SPI09"], first).number_format == '#,##0" R"'
    assert ws.cell(rows["CKPI06"], first).value == "New measure"

    fills = {rag: colour[1:] for rag, colour in RAG_FILL.items()}
    assert assessments[-1].fill.fgColor.rgb.endswith(fills["green"])
    assert assessments[3].fill.fgColor.rgb.endswith(fills["amber"])
    assert ws.cell(rows["CKPI07"], first + 6).fill.fgColor.rgb.endswith(fills["red"])
    assert ws.cell(rows["CKPI15"], first + 6).fill.fgColor.rgb.endswith(fills["grey"])

    position, trend, critical = (ws.cell(rows["CKPI07"], first + 7 + i).value for i in range(3))
    assert (position, trend, critical) == ("Not met (R)", "↓ worsening", "Yes")
    assert ws.cell(rows["CKPI15"], first + 7).value == "No target (NT)"
    assert ws.cell(rows["CKPI01"], 3).value == "Assessments completed within <45 days"

    # Each group has a heading row above its KPIs, its name in the Group column.
    assert ws.cell(rows["CKPI01"] - 1, 1).value == "Contractual Key Performance Indicators"
    assert ws.cell(rows["SPI01"] - 1, 1).value == "Strategic Partnership Indicators"


def test_xlsx_cover_block():
    ws, header, _, _ = _scorecard(render_xlsx(REPORT))
    cover = {ws.cell(r, 1).value: ws.cell(r, 3).value for r in range(2, header)}
    assert cover["Contract"] == "Children's Trust (childrens-trust)"
    assert cover["Period"] == "2019/20 Q3" and cover["Contract year"] == "Year 1 (2019/20)"
    assert cover["Late or missing returns"] == "None"
    assert cover["Money at risk"].startswith("No payment is at risk")
    counts = {ws.cell(r, 9).value: ws.cell(r, 11).value for r in range(3, 7)}
    assert counts == {"R Not met": 3, "A Within tolerance": 4, "G Met": 3, "NT No target": 3}


def test_xlsx_panes_filter_and_print_setup():
    ws, header, titles, rows = _scorecard(render_xlsx(REPORT))
    assert ws.freeze_panes == f"D{header + 1}"
    last_row = max(rows.values())
    last_col = chr(ord("A") + len(titles) - 1)
    assert ws.auto_filter.ref == f"A{header}:{last_col}{last_row}"
    assert ws.page_setup.orientation == "landscape"
    assert int(ws.page_setup.paperSize) == 9  # A4
    assert int(ws.page_setup.fitToWidth) == 1 and int(ws.page_setup.fitToHeight) == 0
    assert ws.sheet_properties.pageSetUpPr.fitToPage is True
    assert ws.print_title_rows == f"${header - 1}:${header}"
    assert "&P" in ws.oddFooter.right.text


def test_xlsx_neutralises_formula_injection():
    data = render_xlsx(_hostile_report())
    ws, _, titles, rows = _scorecard(data)
    r = rows["CKPI01"]
    measure, tolerance = ws.cell(r, 3), ws.cell(r, 7)
    assert measure.value == '\'=HYPERLINK("http://evil.example","click")'
    assert tolerance.value == "'-5% on last year"
    assert ws.cell(r, len(titles)).value == "'@SUM(1+1)"
    assert measure.data_type == tolerance.data_type == "s"
    assert measure.quotePrefix and tolerance.quotePrefix
    for sheet in load_workbook(io.BytesIO(data)):
        assert not [c.coordinate for row in sheet.iter_rows() for c in row if c.data_type == "f"]


def test_xlsx_has_a_native_chart_per_red_or_amber_kpi_and_is_deterministic():
    data = render_xlsx(REPORT)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        charts = [n for n in archive.namelist() if re.fullmatch(r"xl/charts/chart\d+\.xml", n)]
        assert len(charts) == len(RED_AMBER)
        xml = archive.read(charts[0]).decode()
    assert "<lineChart>" in xml and xml.count("<ser>") == 3  # value, target, tolerance
    assert "<strRef><f>'Charts'!$A$5:$A$11</f></strRef>" in xml  # periods as text categories
    assert 'prstDash val="dash"' in xml and 'srgbClr val="FFC000"' in xml  # target; amber point
    ws = load_workbook(io.BytesIO(data))["Charts"]
    assert ws["A3"].value.startswith("CKPI06 ")
    assert [ws.cell(5 + i, 2).value for i in range(7)][-3:] == [91, 92, 94]
    assert render_xlsx(REPORT) == data


def test_xlsx_exceptions_and_notes():
    wb = load_workbook(io.BytesIO(render_xlsx(REPORT)))
    texts = [c.value for row in wb["Exceptions and narrative"].iter_rows() for c in row if c.value]
    assert "CKPI07" in texts and "Overview" in texts
    notes = [c.value for row in wb["Notes"].iter_rows() for c in row if c.value]
    assert REPORT.notes[0] in notes and "Not met" in notes


# ------------------------------------------------------------------------------------------ PDF


def _pdf_text(data: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(io.BytesIO(data))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


def test_pdf_text_reads_back():
    data = render_pdf(REPORT)
    assert data.startswith(b"%PDF-")
    reader, text = _pdf_text(data)
    flat = re.sub(r"\s+", " ", text)
    for row in ALL_ROWS:
        assert row.ref in text
    assert "2019/20" in text and "Q3" in text and "2018/19" in text
    assert "96% G" in flat and "141 days A" in flat and "42% R" in flat and "55% NT" in flat
    assert "Not met (R)" in flat and "Within tolerance (A)" in flat
    assert "Contractual Key Performance Indicators" in flat
    assert "<45 days" in flat
    pages = len(reader.pages)
    assert pages >= 3
    for n in range(1, pages + 1):
        assert f"Page {n} of {pages}" in flat
    first = reader.pages[0].extract_text()
    assert "Children's Trust" in first and "2019/20 Q3" in first
    assert "Exception reports" in flat and "Three children with complex needs" in flat
    assert "Notes and assumptions" in flat and "carried back" in flat
    assert reader.metadata.title == REPORT.title


def test_pdf_is_deterministic_and_draws_charts_as_vectors():
    data = render_pdf(REPORT)
    assert render_pdf(REPORT) == data
    assert b"/Subtype /Image" not in data  # charts are lines, not pictures
    _, text = _pdf_text(data)
    assert "Charts: KPIs red or amber" in text


# ----------------------------------------------------------------------------------------- HTML


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: dict[str, list[str]] = {}
        self._open: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._open.append(tag)

    def handle_endtag(self, tag):
        while self._open and self._open.pop() != tag:
            pass

    def handle_data(self, data):
        if self._open:
            self.text.setdefault(self._open[-1], []).append(data)

    def all(self, tag):
        return [attrs for t, attrs in self.tags if t == tag]


def _page(data: bytes) -> _Page:
    page = _Page()
    page.feed(data.decode("utf-8"))
    return page


def test_html_is_accessible():
    page = _page(render_html(REPORT))
    assert page.all("html") == [{"lang": "en-GB"}]
    assert "".join(page.text["title"]).startswith(
        "Children's Trust: performance scorecard, 2019/20 Q3"
    )
    assert page.text["caption"]
    scopes = [a.get("scope") for a in page.all("th")]
    assert scopes.count("col") == 7 + len(COLUMNS) + 3
    assert scopes.count("row") == len(ALL_ROWS)
    assert scopes.count("colgroup") == len(page.all("colgroup")) == 3
    assert scopes.count("rowgroup") == len(page.all("tbody")) == 2
    svgs = page.all("svg")
    assert len(svgs) == len(RED_AMBER)
    assert all(s["role"] == "img" and s["aria-labelledby"] for s in svgs)
    assert len(page.text["title"]) == 1 + len(svgs) and len(page.text["desc"]) == len(svgs)
    assert "CKPI07" in page.text["desc"][1] and "42%" in page.text["desc"][1]
    assert all(t.strip() for t in page.text["desc"])
    letters = [a["title"] for a in page.all("abbr")]
    assert {"Met", "Within tolerance", "Not met", "No target"} <= set(letters)


def test_html_is_self_contained_and_escaped():
    data = render_html(REPORT)
    page = _page(data)
    assert not page.all("script") and not page.all("link") and not page.all("img")
    for _, attrs in page.tags:
        for name in ("src", "href", "action", "xlink:href"):
            assert name not in attrs
    assert b"url(" not in data and b"@import" not in data
    assert b"Assessments completed within &lt;45 days" in data
    assert b"19 &amp; 20 year olds" in data
    hostile = render_html(make_report((replace(ALL_ROWS[0], measure="<script>alert(1)</script>"),)))
    assert b"<script>" not in hostile and b"&lt;script&gt;" in hostile


def _luminance(colour: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("rag", ["red", "amber", "green", "grey"])
def test_rag_fills_meet_wcag_aa_against_the_ink(rag):
    assert _contrast(RAG_FILL[rag], INK) >= 4.5


def test_heading_bars_meet_wcag_aa():
    assert _contrast(HEADING_FILL, HEADING_INK) >= 4.5


# ------------------------------------------------------------------------------------------ CSV


def test_csv_columns_values_and_safety():
    data = render_csv(_hostile_report())
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == [*CSV_LEAD, *COLUMNS, *CSV_TAIL]
    assert len(rows) == 1 + len(ALL_ROWS)
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["group"] == "Contractual Key Performance Indicators"
    assert first["measure"] == '\'=HYPERLINK("http://evil.example","click")'
    assert first["tolerance"] == "'-5% on last year"
    assert first["2019/20 Q3"] == "96%" and first["rag"] == "green" and first["critical"] == "false"
    wait = dict(zip(rows[0], rows[5], strict=True))
    assert (wait["ref"], wait["position"], wait["trend"], wait["critical"]) == (
        "CKPI07",
        "not_met",
        "worsening",
        "true",
    )
    outstanding = dict(zip(rows[0], rows[-1], strict=True))
    assert outstanding["polarity"] == "Outstanding is better" and outstanding["rag"] == "grey"
    for row in rows[1:]:
        for value in row:
            assert not value.startswith(("=", "+", "@", "\t", "\r")) or value[0] == "'"


@pytest.mark.parametrize(
    ("fmt", "magic"),
    [("xlsx", b"PK"), ("pdf", b"%PDF"), ("html", b"<!DOCTYPE html>"), ("csv", b"\xef\xbb\xbf")],
)
def test_render_by_format_name(fmt, magic):
    assert render(REPORT, fmt).startswith(magic)


def test_render_rejects_an_unknown_format():
    with pytest.raises(ValueError, match="choose one of xlsx, pdf, html, csv"):
        render(REPORT, "docx")


# ------------------------------------------------------------------------------- edge cases


def test_every_format_renders_a_report_with_nothing_to_report():
    empty = replace(
        REPORT,
        groups=(),
        charts=(),
        exceptions=(),
        narrative=(),
        notes=(),
        money_lines=(),
        action_plan_lines=(),
        rag_counts={},
    )
    for fmt in ("xlsx", "pdf", "html", "csv"):
        assert render(empty, fmt)
    _, text = _pdf_text(render_pdf(empty))
    assert "None" in text
    assert render_csv(empty).decode("utf-8-sig").count("\r\n") == 1


def test_control_characters_from_a_pdf_copy_are_dropped():
    row = replace(ALL_ROWS[0], measure="Assessments\x0c completed\x00 within <45 days")
    report = make_report((row,))
    ws, _, _, rows = _scorecard(render_xlsx(report))
    assert ws.cell(rows["CKPI01"], 3).value == "Assessments completed within <45 days"
    assert b"\x0c" not in render_html(report) and b"\x00" not in render_html(report)


def test_pdf_repeats_the_table_header_on_every_table_page():
    many = tuple(replace(row, ref=f"{row.ref[0]}{i:03d}") for i in range(4) for row in ALL_ROWS)
    reader, text = _pdf_text(render_pdf(make_report(many)))
    refs = [row.ref for row in many]
    table_pages = [t for t in (p.extract_text() for p in reader.pages) if any(r in t for r in refs)]
    assert len(table_pages) >= 3
    for page in table_pages:
        assert "Measure" in page and "Tolerance" in page and "2019/20" in page
    assert all(ref in text for ref in refs)


def test_long_cover_values_wrap_instead_of_running_off_the_page():
    long = replace(
        REPORT,
        provider="The Children's Trust, a company limited by guarantee "
        "acting for the Council under the Children's Services Agreement 2018",
    )
    _, text = _pdf_text(render_pdf(long))
    assert "under the Children's Services Agreement 2018" in re.sub(r"\s+", " ", text)
