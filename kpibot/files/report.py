"""The quarterly performance report a contract team sends its board: data model, shared wording, CSV.

A ``Report`` is plain data. The scorecard gatherer fills it from the evaluation engine, and each
renderer turns it into bytes: no database, no clock reads, and the same report always gives the
same bytes. This module holds the model, the wording every format shares (RAG letters, position
and trend words, column titles) and the CSV renderer; ``report_xlsx``, ``report_pdf`` and
``report_html`` hold the other three. ``render`` picks one by format name.

RAG is never colour alone: every filled cell also carries its letter (R, A, G, or NT for no
target), as the chat charts do.

>>> cell = ReportCell.of(96.0, "percent", "green")
>>> cell.text, label_with_rag(cell.text, cell.rag)
('96%', '96% G')
>>> row = ReportRow(
...     ref="C1", measure="Assessments completed within <45 days", frequency="Quarterly",
...     polarity="Bigger is better", target="Target 90%", tolerance="Tolerance 85%",
...     unit="percent", cells=(cell,), position="met", rag="green", trend="new")
>>> report = Report(
...     contract_id="childrens-trust", contract_name="Children's Trust", commissioner="Council",
...     provider="Trust", period_label="2019/20 Q3", contract_year_label="Year 1 (2019/20)",
...     generated_on=date(2020, 1, 20), columns=("2019/20 Q3",),
...     groups=(ReportGroup("Contractual Key Performance Indicators", (row,)),))
>>> render(report, "csv").decode("utf-8-sig").splitlines()[1].split(",")[-5:]
['96%', 'met', 'green', 'new', 'false']
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, get_args

from kpibot.files.exports import formula_safe

Rag = Literal["green", "amber", "red", "grey"]
Position = Literal["met", "within_tolerance", "not_met", "no_target", "missing"]
Trend = Literal["improving", "stable", "worsening", "volatile", "new"]
Unit = Literal["percent", "count", "days", "score", "rate", "grade"]
Format = Literal["xlsx", "pdf", "html", "csv"]

RAGS: tuple[Rag, ...] = get_args(Rag)
RAG_ORDER: tuple[Rag, ...] = ("red", "amber", "green", "grey")  # as reports list them
POSITIONS: tuple[Position, ...] = get_args(Position)
TRENDS: tuple[Trend, ...] = get_args(Trend)
UNITS: tuple[Unit, ...] = get_args(Unit)
FORMATS: tuple[Format, ...] = get_args(Format)

# ---------------------------------------------------------------- wording shared by every format

RAG_LETTER: dict[Rag, str] = {"red": "R", "amber": "A", "green": "G", "grey": "NT"}
RAG_MEANING: dict[Rag, str] = {
    "red": "Not met",
    "amber": "Within tolerance",
    "green": "Met",
    "grey": "No target",
}
# Fills light enough that the ink below reads at WCAG AA (4.5:1) or better on every one of them;
# tests/files/test_report.py checks the ratios.
RAG_FILL: dict[Rag, str] = {
    "red": "#E57373",
    "amber": "#FFC000",
    "green": "#92D050",
    "grey": "#D9D9D9",
}
INK = "#1A1A1A"
HEADING_FILL, HEADING_INK = "#1F3864", "#FFFFFF"
HEADER_FILL = "#D6DCE4"

POSITION_TEXT: dict[Position, str] = {
    "met": "Met",
    "within_tolerance": "Within tolerance",
    "not_met": "Not met",
    "no_target": "No target",
    "missing": "Missing",
}
# The arrow shows the direction of performance, not of the number: a smaller-is-better KPI whose
# figure falls is improving, and gets an up arrow.
TREND_TEXT: dict[Trend, str] = {
    "improving": "↑ improving",
    "stable": "→ stable",
    "worsening": "↓ worsening",
    "volatile": "↕ volatile",
    "new": "• new",
}
NO_FIGURE = "—"
NONE_LISTED = "None"

TITLE = "Performance scorecard"
COVER_LABELS = {
    "contract": "Contract",
    "commissioner": "Commissioner",
    "provider": "Provider",
    "period": "Period",
    "year": "Contract year",
    "generated": "Generated on",
    "rag": "RAG at period",
    "money": "Money at risk",
    "actions": "Open action plans",
    "late": "Late or missing returns",
}
BANDS = ("Measurement details", "Targets and comparators", "Performance")
LEAD_COLUMNS = ("Group", "Ref", "Measure", "Frequency", "Polarity", "Target", "Tolerance")
BENCHMARK_COLUMN = "Benchmark"
TAIL_COLUMNS = ("Position", "6-month trend", "Critical failure")
NOTE_COLUMN = "Note"
EXCEPTIONS_HEADING = "Exception reports"
NARRATIVE_HEADING = "Narrative"
CHARTS_HEADING = "Charts: KPIs red or amber at the period"
NOTES_HEADING = "Notes and assumptions"
KEY_HEADING = "Key"
TREND_KEY = "Trend arrows show the direction of performance over the last three quarters."
CHART_COLUMNS = ("Period", "Value", "RAG", "Target", "Tolerance")
YES, NO = "Yes", "No"
NOTE_PREFIX = "Note: "
TABLE_NOTE = "Figures oldest first; each filled cell also shows its RAG letter."
CHART_KEY = "Value: solid line; Target: dashed; Tolerance: dotted."
GENERATED = "Generated {:%d %B %Y} by kpibot."
PAGE = "Page {} of {}"

CSV_LEAD = ("group", "ref", "measure", "polarity", "target", "tolerance")
CSV_TAIL = ("position", "rag", "trend", "critical")
MEDIA_TYPES: dict[Format, str] = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "html": "text/html; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
}

# ------------------------------------------------------------------------------------ the model


def _check(value: object, allowed: tuple[str, ...], what: str, optional: bool = False) -> None:
    if (value is None and optional) or value in allowed:
        return
    raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


@dataclass(frozen=True)
class ReportCell:
    """One KPI's figure for one period: the text as printed, the number behind it, its RAG.

    ``value`` is None when no figure came (``text`` then says why: "—", "New measure") or the
    figure is not a number (an Ofsted grade). ``rag`` is None where the period is not rated.

    >>> ReportCell.of(141, "days", "amber").text
    '141 days'
    """

    text: str
    value: float | None = None
    rag: Rag | None = None

    def __post_init__(self) -> None:
        _check(self.rag, RAGS, "A cell's rag", optional=True)

    @classmethod
    def of(
        cls, value: float | None, unit: Unit, rag: Rag | None = None, decimals: int = 0
    ) -> ReportCell:
        """A cell whose text is ``value`` written the house way for ``unit``."""
        return cls(format_value(value, unit, decimals), value, rag)


@dataclass(frozen=True)
class ReportRow:
    """One KPI on the scorecard: its terms in the contract's own words and its figures.

    ``cells`` hold one cell per report column, oldest first. ``position``, ``rag`` and ``trend``
    are the engine's verdict at the report period (the same codes ``kpibot evaluate`` writes).
    """

    ref: str
    measure: str
    frequency: str
    polarity: str
    target: str
    tolerance: str
    unit: Unit
    cells: tuple[ReportCell, ...]
    position: Position
    rag: Rag | None
    trend: Trend
    critical: bool = False
    benchmark: str | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        _check(self.unit, UNITS, f"KPI {self.ref}: unit")
        _check(self.position, POSITIONS, f"KPI {self.ref}: position")
        _check(self.rag, RAGS, f"KPI {self.ref}: rag", optional=True)
        _check(self.trend, TRENDS, f"KPI {self.ref}: trend")


@dataclass(frozen=True)
class ReportGroup:
    """A block of the scorecard under one heading, e.g. "Strategic Partnership Indicators"."""

    name: str
    rows: tuple[ReportRow, ...]


@dataclass(frozen=True)
class ReportChart:
    """The data of one small chart (a red or amber KPI); each renderer draws it natively.

    The sequences run oldest first, one entry per period; None leaves a gap. Target and
    tolerance are per period because they step when the contract year changes.
    """

    ref: str
    title: str
    periods: tuple[str, ...]
    values: tuple[float | None, ...]
    target: tuple[float | None, ...]
    tolerance: tuple[float | None, ...]
    rags: tuple[Rag | None, ...]
    unit: Unit = "percent"

    def __post_init__(self) -> None:
        n = len(self.periods)
        for name in ("values", "target", "tolerance", "rags"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"Chart {self.ref}: {name} has {len(getattr(self, name))} entries "
                    f"for {n} periods; give one per period (None for a gap)."
                )
        _check(self.unit, UNITS, f"Chart {self.ref}: unit")
        for rag in self.rags:
            _check(rag, RAGS, f"Chart {self.ref}: rag", optional=True)

    def text_alternative(self) -> str:
        """The chart said in words, for screen readers and for anyone who cannot see colour."""
        parts = []
        for period, value, rag in zip(self.periods, self.values, self.rags, strict=True):
            shown = (
                NO_FIGURE if value is None else format_value(value, self.unit, figure_places(value))
            )
            parts.append(f"{period} {shown}" + (f" ({RAG_MEANING[rag]})" if rag else ""))
        text = f"{self.ref} {self.title}: " + "; ".join(parts) + "."
        lines = {
            label: next((v for v in reversed(series) if v is not None), None)
            for label, series in (("Target", self.target), ("Tolerance", self.tolerance))
        }
        for label, level in lines.items():
            if level is not None:
                text += f" {label} {format_value(level, self.unit, figure_places(level))}."
        return text


@dataclass(frozen=True)
class Report:
    """Everything on one contract's quarterly scorecard, ready to render.

    ``columns`` are the period labels of the figure columns, oldest first ("2018/19 Q1" …
    "2019/20 Q3"); every row has one cell per column. ``notes`` are the assumptions kpibot made
    (disputed years, exemptions, carried-forward targets), printed so nobody mistakes them for
    contract terms.
    """

    contract_id: str
    contract_name: str
    commissioner: str
    provider: str
    period_label: str
    contract_year_label: str
    generated_on: date
    columns: tuple[str, ...]
    groups: tuple[ReportGroup, ...]
    rag_counts: Mapping[str, int] = field(default_factory=dict)
    money_lines: tuple[str, ...] = ()
    action_plan_lines: tuple[str, ...] = ()
    late_returns_lines: tuple[str, ...] = ()
    exceptions: tuple[tuple[str, str], ...] = ()
    narrative: tuple[tuple[str, str], ...] = ()
    charts: tuple[ReportChart, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for row in self.rows():
            if len(row.cells) != len(self.columns):
                raise ValueError(
                    f"KPI {row.ref} has {len(row.cells)} figures for {len(self.columns)} "
                    "report columns; give one cell per column (NO_FIGURE text for a gap)."
                )
        for key in self.rag_counts:
            _check(key, RAGS, "A rag_counts key")

    def rows(self) -> Iterator[ReportRow]:
        """Every KPI row, group by group, in report order."""
        for group in self.groups:
            yield from group.rows

    @property
    def title(self) -> str:
        return f"{self.contract_name}: {TITLE.lower()}, {self.period_label}"


# ------------------------------------------------------------------------------ shared helpers


def figure_places(value: float) -> int:
    """Decimal places to show a computed figure with: none when whole, else one."""
    return 0 if float(value).is_integer() else 1


def format_value(value: float | None, unit: Unit, decimals: int = 0) -> str:
    """``value`` written for a person: "96%", "1,620", "141 days"; "—" when there is none.

    >>> format_value(87.5, "percent", 1), format_value(1620, "count"), format_value(None, "days")
    ('87.5%', '1,620', '—')
    """
    if value is None:
        return NO_FIGURE
    number = f"{value:,.{decimals}f}"
    if unit == "percent":
        return number + "%"
    if unit == "days":
        return number + (" day" if number == "1" else " days")
    return number


_FIRST_NUMBER = re.compile(r"\d[\d,]*(?:\.(\d+))?")


def point_label(value: float | None, chart: ReportChart) -> str:
    """A chart point's figure, short enough to sit under it: "96%", "141" (the axis says days)."""
    if value is None:
        return NO_FIGURE
    unit: Unit = "count" if chart.unit == "days" else chart.unit
    return format_value(value, unit, figure_places(value))


def decimals_shown(text: str) -> int:
    """How many decimal places the first number in ``text`` shows ("11.0%" -> 1)."""
    match = _FIRST_NUMBER.search(text)
    return len(match.group(1)) if match and match.group(1) else 0


def label_with_rag(text: str, rag: Rag | None) -> str:
    """``text`` followed by its RAG letter, so RAG never rests on colour alone."""
    return f"{text} {RAG_LETTER[rag]}" if rag else text


def position_label(row: ReportRow) -> str:
    """ "Not met (R)": the row's position in words with its RAG letter."""
    words = POSITION_TEXT[row.position]
    return f"{words} ({RAG_LETTER[row.rag]})" if row.rag else words


def rag_count_label(rag: Rag) -> str:
    return f"{RAG_LETTER[rag]} {RAG_MEANING[rag]}"


def short_period(label: str) -> tuple[str, str]:
    """ "2018/19 Q1" -> ("Q1", "2018/19"): the two lines of a narrow axis label."""
    head, _, tail = label.rpartition(" ")
    return (tail, head) if head else (label, "")


# ------------------------------------------------------------------------------------------ CSV


def render_csv(report: Report) -> bytes:
    """One row per KPI, for anyone who wants the scorecard as data.

    Columns: ``group,ref,measure,polarity,target,tolerance``, one per period (the figure as the
    report prints it, e.g. "96%"), then ``position,rag,trend,critical`` with the codes
    ``kpibot evaluate`` writes (``within_tolerance``, ``true``). UTF-8 with a byte-order mark and
    CRLF line ends, which Excel opens correctly by double-click; every field is formula-safe.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([*CSV_LEAD, *(formula_safe(c) for c in report.columns), *CSV_TAIL])
    for group in report.groups:
        for row in group.rows:
            fields = [group.name, row.ref, row.measure, row.polarity, row.target, row.tolerance]
            fields += [cell.text for cell in row.cells]
            fields += [row.position, row.rag or "", row.trend]
            writer.writerow(
                [formula_safe(f) for f in fields] + ["true" if row.critical else "false"]
            )
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
