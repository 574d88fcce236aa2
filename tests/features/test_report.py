"""The quarterly performance report built from the store: seed 004's table, read back from each file.

Every figure, position, RAG and trend is checked against ``services.scorecard`` (what kpibot
evaluates), and every figure also against the contract's transcription of seed 004, so the report
reproduces the trust's own table for 2019/20 Q3.
"""

from __future__ import annotations

import io
import math
import re
from datetime import datetime
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from kpibot.core.protocol import Request
from kpibot.features import returns
from kpibot.features.actionplan import ActionPlanService
from kpibot.features.report import (
    EXCEPTION_OWED,
    NO_MONEY,
    ReportError,
    build_report,
    report_columns,
    report_file,
)
from kpibot.features.summary import quarterly_summary
from kpibot.files.report import (
    RAG_FILL,
    RAG_LETTER,
    TREND_TEXT,
    position_label,
)
from kpibot.files.report_html import render_html
from kpibot.files.report_pdf import render_pdf
from kpibot.files.report_xlsx import render_xlsx
from kpibot.store.rows import NewFigure

SEVEN = (
    "2018/19 Q1",
    "2018/19 Q2",
    "2018/19 Q3",
    "2018/19 Q4",
    "2019/20 Q1",
    "2019/20 Q2",
    "2019/20 Q3",
)
LONDON = ZoneInfo("Europe/London")


def ask(bot, text, user="U-COMMISSIONER", channel=None):
    return bot.handle(Request.from_text(text, user=user, platform="console", channel=channel))


def _trust(services):
    contract = services.contract("childrens-trust")
    return contract, contract.parse_period("2019/20 Q3")


def _scorecard_sheet(data: bytes):
    ws = load_workbook(io.BytesIO(data))["Scorecard"]
    header = next(r for r in range(1, 40) if ws.cell(r, 2).value == "Ref")
    titles = [c.value for c in ws[header]]
    rows = {
        ws.cell(r, 2).value: r for r in range(header + 1, ws.max_row + 1) if ws.cell(r, 2).value
    }
    return ws, header, titles, rows


def _evaluated(services, contract, period):
    """What kpibot evaluates: every (kpi, period) row, and one row per KPI at the period."""
    card = services.scorecard(contract, period)
    by_cell = {(r.kpi, r.period): r for r in card.frame.itertuples()}
    at = {r.kpi: r for r in card.at(period).itertuples()}
    return by_cell, at


# ----------------------------------------------------------------------------- XLSX: seed 004


def test_xlsx_reproduces_seed_004s_table_as_kpibot_evaluates_it(services):
    contract, period = _trust(services)
    report = build_report(services, contract, period)
    ws, header, titles, rows = _scorecard_sheet(report_file(report, "xlsx").content)
    by_cell, at = _evaluated(services, contract, period)

    first = titles.index("2018/19 Q1") + 1
    assert tuple(titles[first - 1 : first + 6]) == SEVEN
    position_col = first + 7
    assert titles[position_col - 1 : position_col + 2] == [
        "Position",
        "6-month trend",
        "Critical failure",
    ]
    assert set(rows) == {k.code for k in contract.kpis}

    # Every figure of seed 004 (the contract's transcription of it) sits in its cell.
    history = {(h.kpi, contract.parse_period(h.period).label): h for h in contract.history}
    assert len(history) > 200
    for (code, label), figure in history.items():
        cell = ws.cell(rows[code], first + SEVEN.index(label))
        value = figure.value
        if value is None:
            value = 100.0 * figure.numerator / figure.denominator
        assert cell.value == pytest.approx(value), (code, label)

    fills = {rag: colour[1:] for rag, colour in RAG_FILL.items()}
    for kpi in contract.kpis:
        r = rows[kpi.code]
        assert ws.cell(r, 3).value == kpi.name
        terms = kpi.target_text(2)
        assert (ws.cell(r, 6).value or "") == (terms or "").strip(), kpi.code
        assert (ws.cell(r, 7).value or "") == (kpi.tolerance_text(2) or "").strip(), kpi.code
        for i, label in enumerate(SEVEN):
            cell = ws.cell(r, first + i)
            evaluated = by_cell.get((kpi.code, label))
            if evaluated is None or math.isnan(evaluated.value):
                assert cell.value == "—", (kpi.code, label)
                continue
            # The figure, its RAG as a fill and as the letter its number format prints.
            assert cell.value == pytest.approx(evaluated.value), (kpi.code, label)
            assert cell.fill.fgColor.rgb.endswith(fills[evaluated.rag]), (kpi.code, label)
            assert cell.number_format.endswith(f' {RAG_LETTER[evaluated.rag]}"'), (kpi.code, label)
        verdict = at[kpi.code]
        expected = (
            f"{position_label_of(verdict)}",
            TREND_TEXT[verdict.trend],
            "Yes" if verdict.critical else "No",
        )
        got = tuple(ws.cell(r, position_col + i).value for i in range(3))
        assert got == expected, kpi.code
        assert ws.cell(r, position_col).fill.fgColor.rgb.endswith(fills[verdict.rag])

    # Grouped as the contract records its KPI groups, each under a heading row.
    c1, s1 = rows["C1"], rows["S1"]
    assert ws.cell(c1 - 1, 1).value == "Contractual"
    assert ws.cell(s1 - 1, 1).value == "Strategic partnership"
    assert {ws.cell(rows[k.code], 1).value for k in contract.kpis if k.code.startswith("C")} == {
        "Contractual"
    }

    # The cover's counts are the engine's counts at the period.
    counts = {ws.cell(r, 9).value: ws.cell(r, 11).value for r in range(3, 7)}
    expected_counts = {
        rag: sum(1 for v in at.values() if v.rag == rag)
        for rag in ("red", "amber", "green", "grey")
    }
    assert counts == {
        "R Not met": expected_counts["red"],
        "A Within tolerance": expected_counts["amber"],
        "G Met": expected_counts["green"],
        "NT No target": expected_counts["grey"],
    }
    cover = {ws.cell(r, 1).value: ws.cell(r, 3).value for r in range(2, header)}
    assert cover["Period"] == "2019/20 Q3" and cover["Contract year"] == "Year 2 (2019/20)"
    assert cover["Money at risk"] == NO_MONEY
    assert "S11" in cover["Late or missing returns"]


def position_label_of(verdict) -> str:
    from kpibot.files.report import ReportRow

    row = ReportRow(
        ref=verdict.kpi,
        measure="",
        frequency="",
        polarity="",
        target="",
        tolerance="",
        unit="percent",
        cells=(),
        position=verdict.position,
        rag=verdict.rag,
        trend=verdict.trend,
    )
    return position_label(row)


def test_one_chart_per_red_or_amber_kpi_with_the_steps_the_engine_used(services):
    contract, period = _trust(services)
    report = build_report(services, contract, period)
    by_cell, at = _evaluated(services, contract, period)
    flagged = [k.code for k in contract.kpis if at[k.code].rag in ("red", "amber")]
    assert [c.ref for c in report.charts] == flagged and flagged
    c7 = next(c for c in report.charts if c.ref == "C7")
    assert c7.periods == SEVEN
    assert c7.values == tuple(by_cell[("C7", p)].value for p in SEVEN)
    assert c7.target == tuple(by_cell[("C7", p)].threshold for p in SEVEN)
    assert c7.tolerance == tuple(by_cell[("C7", p)].tolerance_threshold for p in SEVEN)
    assert c7.rags == tuple(by_cell[("C7", p)].rag for p in SEVEN)
    wb = load_workbook(io.BytesIO(render_xlsx(report)))
    titles = [c.value for c in wb["Charts"]["A"] if isinstance(c.value, str)]
    assert sum(1 for t in titles if re.match(r"^(C|S)\d+ ", t)) == len(flagged)


# ----------------------------------------------------------------------------- PDF and HTML


def test_pdf_text_holds_every_kpi_and_its_position(services):
    contract, period = _trust(services)
    report = build_report(services, contract, period)
    reader = PdfReader(io.BytesIO(render_pdf(report)))
    text = re.sub(r"\s+", " ", "\n".join(page.extract_text() for page in reader.pages))
    for kpi in contract.kpis:
        assert re.search(rf"(^|\s){re.escape(kpi.code)}\s", text), kpi.code
    _, at = _evaluated(services, contract, period)
    assert "42% R" in text  # C7 at 2019/20 Q3, not met
    assert text.count("Not met (R)") >= sum(1 for v in at.values() if v.rag == "red")
    assert "Contractual" in text and "Strategic partnership" in text
    assert "Notes and assumptions" in text and "TBD*" in text


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.row_headers: list[str] = []
        self._in_row_header = False
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "th" and attributes.get("scope") == "row":
            self._in_row_header = True
            self.row_headers.append("")

    def handle_endtag(self, tag):
        if tag == "th":
            self._in_row_header = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_row_header:
            self.row_headers[-1] += data

    def all(self, tag):
        return [attrs for t, attrs in self.tags if t == tag]


def test_html_has_every_kpi_with_table_headers_caption_and_chart_text(services):
    contract, period = _trust(services)
    report = build_report(services, contract, period)
    page = _Page()
    page.feed(render_html(report).decode("utf-8"))
    assert page.all("html") == [{"lang": "en-GB"}]
    assert len(page.all("caption")) == 1
    # Each KPI's measure heads its row (a note, where there is one, follows it in the header).
    assert len(page.row_headers) == len(contract.kpis)
    for kpi, header in zip(contract.kpis, page.row_headers, strict=True):
        assert header.startswith(kpi.name), kpi.code
    scopes = [a.get("scope") for a in page.all("th")]
    assert scopes.count("col") == 8 + len(SEVEN) + 3 - 1  # lead (less Group), periods, tail
    assert scopes.count("rowgroup") == 2  # Contractual, Strategic partnership
    cells = [t.strip() for t in page.text]
    for kpi in contract.kpis:
        assert kpi.code in cells, kpi.code
    svgs = page.all("svg")
    assert len(svgs) == len(report.charts)
    assert all(s.get("role") == "img" and s.get("aria-labelledby") for s in svgs)
    assert not page.all("img") and not page.all("script")


# ----------------------------------------------------------------------------- around the table


def test_notes_say_every_assumption_disputed_years_and_exemptions(services):
    contract = services.contract("healthy-child-0-19")
    period = contract.parse_period("2017/18 Q1")
    report = build_report(services, contract, period)
    assert report.columns == ("2016/17 Q3", "2016/17 Q4", "2017/18 Q1")  # none before Year 0
    notes = " ".join(report.notes)
    assert "T3-31, Year 1: the contract's target “>15.0” is kept as written" in notes
    assert "Exempt from its performance level in Year 0 (Oct 2016 to March 2017)" in notes
    for code in ("2a", "3a", "3b", "6b"):
        assert re.search(rf"rated grey: [^.]*\b{code}\b", notes), code
    assert "is read as the baseline × 1.05" in notes
    assert "Reported annually" in notes


def test_cover_lists_open_action_plans_the_returns_texts_and_money(services):
    contract, period = _trust(services)
    now = datetime(2020, 2, 20, 10, tzinfo=LONDON)
    opened = ActionPlanService(services).detect_and_open(contract, "U-COMMISSIONER", now, period)
    assert opened
    returns.set_narrative(
        services,
        contract,
        period,
        {"working": "Case file audits improving", "challenges": "Adoption matching delays"},
        "U-TRUST",
        "provider",
    )
    returns.file_exception(
        services, contract, period, "C7", "Three adoptions delayed by court", "U-TRUST", "provider"
    )
    report = build_report(services, contract, period)
    assert report.action_plan_lines[0].startswith(f"#{opened[0].id} ")
    assert ("C7", "Three adoptions delayed by court") in report.exceptions
    assert ("What is working well", "Case file audits improving") in report.narrative
    assert ("Challenges", "Adoption matching delays") in report.narrative
    wb = load_workbook(io.BytesIO(render_xlsx(report)))
    texts = [c.value for row in wb["Exceptions and narrative"].iter_rows() for c in row]
    assert "Three adoptions delayed by court" in texts

    money = services.contract("one-you-lifestyle")
    lifestyle = build_report(services, money)
    assert "ACV" in lifestyle.money_lines[0] and NO_MONEY not in lifestyle.money_lines


def test_an_exception_report_owed_but_not_filed_is_listed(services):
    contract = services.contract("healthy-child-0-19")
    period = contract.parse_period("2019/20 Q3")
    services.figures.submit(
        contract.id, [NewFigure("5b", period, value=90.0)], actor="test", source="cli"
    )
    card = services.scorecard(contract, period).at(period)
    owed = set(card[card["exception_required"]]["kpi"])
    report = build_report(services, contract, period)
    assert owed and {ref for ref, text in report.exceptions if text == EXCEPTION_OWED} == owed


def test_columns_never_reach_before_the_contract_and_bad_requests_are_refused(services):
    contract, period = _trust(services)
    assert [p.label for p in report_columns(contract, period, 12)] == list(SEVEN)
    with pytest.raises(ReportError, match="reports by quarter"):
        build_report(services, contract, contract.parse_period("2019/20"))
    with pytest.raises(ReportError, match="between 1 and 20"):
        build_report(services, contract, period, quarters=0)
    with pytest.raises(ReportError, match="choose one of xlsx, pdf, html, csv"):
        report_file(build_report(services, contract, period), "docx")


# ----------------------------------------------------------------------------- chat and summary


def test_report_verb_attaches_the_file_and_summarises_inline(bot, services):
    reply = ask(bot, "report childrens-trust 2019/20 Q3")
    assert reply.ok and reply.attachment is not None
    assert reply.attachment.name == "childrens-trust-2019-20-Q3-performance-report.xlsx"
    assert reply.attachment.content[:2] == b"PK"
    assert reply.attachment.command == "report childrens-trust 2019/20 Q3 xlsx"
    _, at = _evaluated(services, *_trust(services))
    reds = sum(1 for v in at.values() if v.rag == "red")
    assert f"{reds} red" in reply.text
    assert {row[0].text for row in reply.rows} <= {
        code for code, v in at.items() if v.rag in ("red", "amber")
    }
    assert {a.label for a in reply.actions} == {"PDF", "HTML", "CSV"}

    pdf = ask(bot, "report childrens-trust pdf 2019/20 Q3")
    assert pdf.attachment.name.endswith(".pdf") and pdf.attachment.content[:5] == b"%PDF-"
    assert pdf.attachment.media_type == "application/pdf"


def test_report_verb_refuses_clearly(bot):
    wrong = ask(bot, "report childrens-trust 2019/20 Q3 docx")
    assert wrong.kind == "error" and "docx" in wrong.text
    future = ask(bot, "report childrens-trust 2020/21 Q3")
    assert future.kind == "error" and "2020/21 Q3" in future.text
    other = ask(bot, "report healthy-child-0-19", user="U-TRUST")
    assert other.kind == "refusal" and other.attachment is None
    own = ask(bot, "report childrens-trust 2019/20 Q3 csv", user="U-TRUST")
    assert own.ok and own.attachment.content.startswith(b"\xef\xbb\xbfgroup,ref")


def test_the_quarterly_summary_attaches_the_report_in_the_contracts_format(services):
    contract, period = _trust(services)
    summary = quarterly_summary(services, contract, period, grid=False)
    assert summary.attachment is not None and summary.attachment.name.endswith(".xlsx")
    ws, _, _, rows = _scorecard_sheet(summary.attachment.content)
    assert set(rows) == {k.code for k in contract.kpis}
    assert "performance report is attached" in (summary.footer or "")

    as_pdf = contract.model_copy(update={"report_format": "pdf"})
    summary = quarterly_summary(services, as_pdf, period, grid=False)
    assert summary.attachment.name.endswith(".pdf")
    assert summary.attachment.content.startswith(b"%PDF-")
    assert summary.attachment.command == "report childrens-trust 2019/20 Q3 pdf"


def test_a_kpi_without_a_frequency_is_reported_as_the_contract_reports(services):
    """Issue 13: `frequency` is optional and follows the contract's reporting."""
    from kpibot.files.contracts import parse_contract_text
    from tests.commands.test_status import DEMO

    contract = parse_contract_text(DEMO, "demo-13.yaml")
    services.store_contracts([contract], actor="test")
    report = build_report(services, contract, contract.parse_period("2019/20"))
    rows = {row.ref: row for row in report.rows()}
    assert {"Q1", "Q2", "Q3", "M1"} <= set(rows)
    assert rows["Q1"].frequency == "Annually"
