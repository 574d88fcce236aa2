"""The quarterly performance report: one contract's scorecard for its board, from the engine's answers.

``build_report`` gathers everything a contract team sends its board after a quarter, the way
seed 004's table lays it out, into a ``kpibot.files.report.Report``: per KPI its polarity, this
year's target and tolerance in the contract's words, the last N quarters' figures with their RAG,
the position, trend and critical failure at the period, grouped by the contract's KPI groups.
Around the table: RAG counts, money at risk (``features.payments``), open action plans
(``features.actionplan``), late or missing returns and the return's exception reports and
narrative (``features.returns``), one small chart per red or amber KPI, and a note for every
assumption the engine made (disputed years, exemptions, targets carried forward, no-target
words). Nothing is evaluated twice: every figure's position, RAG and trend is the scorecard's.

``report_file`` renders it (``kpibot.files.report_formats``) as the attachment a reply carries.

>>> # report = build_report(services, contract, contract.parse_period("2019/20 Q3"))
>>> # report_file(report, "xlsx").name
>>> # 'childrens-trust-2019-20-Q3-performance-report.xlsx'
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from kpibot.core.protocol import Attachment
from kpibot.core.services import Services
from kpibot.engine.describe import format_value
from kpibot.engine.model import KPI, Contract, ContractYear
from kpibot.engine.periods import Period
from kpibot.engine.returns import SECTION_WORDS, SECTIONS
from kpibot.engine.scorecard import Scorecard, compiled, reporting_kind
from kpibot.engine.targets import CompiledKpi, YearTerms
from kpibot.features import returns
from kpibot.features.actionplan import ActionPlanService, describe_progress
from kpibot.features.payments import NO_ACV, payment_report, totals_line
from kpibot.files.report import (
    FORMATS,
    MEDIA_TYPES,
    UNITS,
    Format,
    Position,
    Rag,
    Report,
    ReportCell,
    ReportChart,
    ReportGroup,
    ReportRow,
    Trend,
    Unit,
    figure_places,
)
from kpibot.files.report_formats import render

DEFAULT_QUARTERS = 7
MAX_QUARTERS = 20

# ---- user-facing texts, kept together
OTHER_GROUP = "Other indicators"
NO_MONEY = "The contract sets no payment terms kpibot evaluates."
POLARITY_WORDS = {"bigger": "Bigger is better", "smaller": "Smaller is better"}
WRONG_KIND = (
    "{contract} reports by {kind}, so its report is by {kind} too: give one like {example}."
)
BAD_QUARTERS = "Ask for between 1 and {most} periods, not {n}."
UNKNOWN_FORMAT = "There is no report format '{fmt}'; choose one of {choices}."
NOTE_DISPUTED = (
    "{code}, {year}: the contract's target “{text}” is kept as written and rated grey until the "
    "parties confirm it ({why})."
)
NOTE_EXEMPT = "Exempt from its performance level in {year}, so rated grey: {codes}."
NOTE_CARRIED = (
    "{code}: the contract sets no target for {year}; {earlier}'s “{text}” is carried forward."
)
NOTE_NO_TARGET = "No target in {year} ({why}), so rated grey but still collected: {codes}."
NOTE_YTD = (
    "Annual count targets checked at a quarter compare the year to date with a pro-rata share "
    "of the year's target: {codes}."
)
NOTE_ANNUAL = (
    "Reported annually: each year's figure sits under the year's last {kind}, and the position "
    "is the latest complete year's: {codes}."
)
NOTE_UPLIFT = "“{words}” ({code}) is read as the baseline × {factor:g}."
NOTE_PENDING = "The {period} return is pending approval: its figures may still change."
ROW_EXEMPT = "Exempt in {year}."
ROW_YTD = "Year to date {value} against {target} pro rata."
ROW_EXCEPTION = "Exception report required."
EXCEPTION_OWED = "Exception report required; none filed yet."


class ReportError(ValueError):
    """A report that cannot be made as asked; ``str(exc)`` is the sentence for the user."""


@dataclass(frozen=True)
class _Column:
    period: Period
    year: ContractYear | None


# ------------------------------------------------------------------ periods


def latest_period(services: Services, contract: Contract) -> Period:
    """The latest period with figures in, else the latest ended period of the contract."""
    card = services.scorecard(contract)
    return card.latest_period() or services.default_period(contract)


def report_columns(contract: Contract, period: Period, quarters: int) -> list[Period]:
    """The ``quarters`` periods up to ``period``, oldest first, leaving out any before the contract."""
    wanted = [period.shift(-i) for i in range(quarters - 1, -1, -1)]
    return [p for p in wanted if contract.year_for(p) is not None]


def check_request(contract: Contract, period: Period, quarters: int) -> None:
    """Raise ``ReportError`` unless a report of ``quarters`` columns up to ``period`` can be made."""
    kind = contract.reporting.period
    if period.kind != kind:
        example = {"quarter": "2019/20 Q3", "month": "2019-12", "year": "2019/20"}[kind]
        raise ReportError(WRONG_KIND.format(contract=contract.id, kind=kind, example=example))
    if not 1 <= quarters <= MAX_QUARTERS:
        raise ReportError(BAD_QUARTERS.format(most=MAX_QUARTERS, n=quarters))


def check_format(fmt: str) -> Format:
    """``fmt`` as a report format, or ``ReportError`` naming the choices."""
    text = fmt.strip().lower().lstrip(".")
    if text not in FORMATS:
        raise ReportError(UNKNOWN_FORMAT.format(fmt=fmt, choices=", ".join(FORMATS)))
    return text


# ------------------------------------------------------------------ the report


def build_report(
    services: Services,
    contract: Contract,
    period: Period | None = None,
    quarters: int = DEFAULT_QUARTERS,
) -> Report:
    """The contract's performance report at ``period`` (default: its latest period with figures).

    Every position, RAG, trend and threshold comes from ``services.scorecard``; the money, plans
    and returns lines from their features.
    """
    period = period or latest_period(services, contract)
    check_request(contract, period, quarters)
    card = services.scorecard(contract, period)
    at = card.at(period)
    columns = [_Column(p, contract.year_for(p)) for p in report_columns(contract, period, quarters)]
    year = contract.year_for(period)
    comp = compiled(contract)
    lookup = _cells_lookup(card, contract)
    verdicts = {str(r.kpi): r for r in at.itertuples(index=False)} if not at.empty else {}
    narrative, filed = returns.filed_texts(services, contract, period)

    groups: dict[str, list[ReportRow]] = {}
    charts: list[ReportChart] = []
    for kpi in contract.kpis:
        verdict = verdicts.get(kpi.code)
        row, chart = _row(contract, kpi, comp[kpi.code], year, columns, lookup, verdict)
        groups.setdefault(kpi.group or OTHER_GROUP, []).append(row)
        if chart is not None:
            charts.append(chart)

    counts: dict[str, int] = {rag: 0 for rag in ("red", "amber", "green", "grey")}
    for r in verdicts.values():
        counts[str(r.rag)] += 1
    missing = [code for code, r in verdicts.items() if r.position == "missing"]
    late = returns.late_or_missing(services, contract, missing, period)
    pending = period.label in returns.pending_periods(services, contract.id)
    money, money_notes = _money(services, contract, year, period)
    return Report(
        contract_id=contract.id,
        contract_name=contract.name,
        commissioner=contract.commissioner.name,
        provider=contract.provider.name,
        period_label=period.label,
        contract_year_label=_year_label(year),
        generated_on=services.now().date(),
        columns=tuple(c.period.label for c in columns),
        groups=tuple(ReportGroup(name, tuple(rows)) for name, rows in groups.items()),
        rag_counts=counts,
        money_lines=money,
        action_plan_lines=_plans(services, contract),
        late_returns_lines=(
            *([late] if late else []),
            *([NOTE_PENDING.format(period=period.label)] if pending else []),
        ),
        exceptions=_exceptions(contract, filed, verdicts),
        narrative=tuple(
            (SECTION_WORDS[s][:1].upper() + SECTION_WORDS[s][1:], narrative[s])
            for s in SECTIONS
            if narrative.get(s, "").strip()
        ),
        charts=tuple(charts),
        notes=(*_assumptions(contract, comp, columns, verdicts), *money_notes),
    )


def report_file(report: Report, fmt: str, command: str | None = None) -> Attachment:
    """The report rendered as ``fmt``, ready to attach to a reply."""
    chosen = check_format(fmt)
    slug = report.period_label.replace("/", "-").replace(" ", "-")
    return Attachment(
        f"{report.contract_id}-{slug}-performance-report.{chosen}",
        render(report, chosen),
        MEDIA_TYPES[chosen].split(";")[0],
        command,
    )


def report_command(contract: Contract, period: Period, fmt: str) -> str:
    """The chat command that makes this report again: ``report childrens-trust 2019/20 Q3 xlsx``."""
    return f"report {contract.id} {period.label} {fmt}"


def summary_line(report: Report) -> str:
    """ "6 red · 8 amber · 18 green · 12 not rated": the report's RAG counts in one line."""
    c = report.rag_counts
    return (
        f"{c.get('red', 0)} red · {c.get('amber', 0)} amber · {c.get('green', 0)} green · "
        f"{c.get('grey', 0)} not rated"
    )


# ------------------------------------------------------------------ rows and charts

_Lookup = dict[tuple[str, Any], Any]
_CELL_COLUMNS = [
    "kpi",
    "period",
    "kind",
    "value",
    "rag",
    "threshold",
    "tolerance_threshold",
    "ytd_value",
]


def _cells_lookup(card: Scorecard, contract: Contract) -> _Lookup:
    """Evaluated rows by (KPI, period end): a yearly KPI's figure lands under the year's last
    quarter. Where a KPI has figures of two kinds ending together, its own reporting kind wins."""
    out: _Lookup = {}
    if card.frame.empty:
        return out
    ends: dict[str, Any] = {}
    kinds = {k.code: reporting_kind(k, contract.reporting.period) for k in contract.kpis}
    # Only the columns a cell or chart reads: itertuples costs by the column.
    for r in card.frame[_CELL_COLUMNS].itertuples(index=False):
        label = str(r.period)
        if label not in ends:
            ends[label] = contract.parse_period(label).end
        key = (str(r.kpi), ends[label])
        if key not in out or r.kind == kinds.get(str(r.kpi)):
            out[key] = r
    return out


def _number(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def _frequency(contract: Contract, kpi: KPI) -> str:
    """The KPI's reporting frequency as written, or the contract's when it states none."""
    if kpi.frequency:
        return kpi.frequency[:1].upper() + kpi.frequency[1:]
    kind = reporting_kind(kpi, contract.reporting.period)
    return {"quarter": "Quarterly", "month": "Monthly", "year": "Annually"}.get(kind, kind)


def _unit(terms: CompiledKpi) -> Unit:
    unit = terms.unit
    return unit if unit in UNITS else "count"


def _cell(row: Any, unit: Unit) -> ReportCell:
    if row is None:
        return ReportCell(format_value(None, unit))
    value = _number(row.value)
    if value is None:
        return ReportCell(format_value(None, unit))
    rag = cast(Rag, str(row.rag))
    if unit == "grade":
        return ReportCell(format_value(value, unit), value, rag)
    return ReportCell.of(value, unit, rag, figure_places(round(value, 1)))


def _row(
    contract: Contract,
    kpi: KPI,
    terms: CompiledKpi,
    year: ContractYear | None,
    columns: list[_Column],
    lookup: _Lookup,
    verdict: Any,
) -> tuple[ReportRow, ReportChart | None]:
    unit = _unit(terms)
    found = [lookup.get((kpi.code, c.period.end)) for c in columns]
    cells = tuple(_cell(r, unit) for r in found)
    year_terms = terms.years.get(year.year) if year is not None else None
    position = cast(Position, str(verdict.position)) if verdict is not None else "missing"
    rag = cast(Rag, str(verdict.rag)) if verdict is not None else "grey"
    trend = cast(Trend, str(verdict.trend)) if verdict is not None else "new"
    row = ReportRow(
        ref=kpi.code,
        measure=kpi.name,
        frequency=_frequency(contract, kpi),
        polarity=POLARITY_WORDS[kpi.polarity],
        target=year_terms.target.text.strip() if year_terms else (kpi.target or ""),
        tolerance=_words(year_terms.tolerance) if year_terms else "",
        unit=unit,
        cells=cells,
        position=position,
        rag=rag,
        trend=trend,
        critical=bool(verdict.critical) if verdict is not None else False,
        benchmark=_benchmark(kpi, verdict, unit),
        note=_row_note(year, year_terms, verdict, unit),
    )
    if rag not in ("red", "amber"):
        return row, None
    # An annual count target checked at a quarter is judged on the year to date: chart that.
    ytd = [r is not None and _number(r.ytd_value) is not None for r in found]
    values = tuple(
        None if r is None else _number(r.ytd_value if has_ytd else r.value)
        for r, has_ytd in zip(found, ytd, strict=True)
    )
    chart = ReportChart(
        ref=kpi.code,
        title=kpi.name,
        periods=tuple(c.period.label for c in columns),
        values=values,
        target=tuple(None if r is None else _number(r.threshold) for r in found),
        tolerance=tuple(None if r is None else _number(r.tolerance_threshold) for r in found),
        rags=tuple(
            None if r is None or _number(r.value) is None else cast(Rag, str(r.rag)) for r in found
        ),
        unit=unit,
    )
    return row, chart


def _words(target: Any) -> str:
    return "" if target is None else str(target.text).strip()


def _benchmark(kpi: KPI, verdict: Any, unit: Unit) -> str:
    """The period's benchmark figure where the contract gives one, else whether data exists."""
    if verdict is not None:
        bench = _number(verdict.benchmark)
        if bench is not None:
            return format_value(bench, unit)
    if kpi.benchmark_available is None:
        return ""
    return "Yes" if kpi.benchmark_available else "No"


def _row_note(
    year: ContractYear | None, terms: YearTerms | None, verdict: Any, unit: Unit
) -> str | None:
    parts = []
    if terms is not None and terms.exempt and year is not None:
        parts.append(ROW_EXEMPT.format(year=year.name))
    elif terms is not None and terms.target.kind == "none":
        why = terms.target.explain()
        parts.append(why[:1].upper() + why[1:] + ".")
    if verdict is not None:
        ytd, ytd_target = _number(verdict.ytd_value), _number(verdict.ytd_target)
        if ytd is not None and ytd_target is not None:
            parts.append(
                ROW_YTD.format(value=format_value(ytd, unit), target=format_value(ytd_target, unit))
            )
        if bool(verdict.exception_required):
            parts.append(ROW_EXCEPTION)
    return " ".join(parts) or None


# ------------------------------------------------------------------ around the table


def _year_label(year: ContractYear | None) -> str:
    """ "Year 2 (2019/20)"; a label that names the year already stands alone."""
    if year is None:
        return ""
    if year.label and "year" not in year.label.lower():
        return f"Year {year.year} ({year.label})"
    return year.name


def _money(
    services: Services, contract: Contract, year: ContractYear | None, period: Period
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The cover's money lines and the payment readings and notes for the notes section."""
    if not contract.payments.has_money or year is None:
        return (NO_MONEY,), ()
    report = payment_report(services, contract, year, as_of=period)
    lines = [report.verdict(), totals_line(report)]
    if report.acv is None:
        lines.append(NO_ACV)
    return tuple(lines), (*report.readings, *report.notes)


def _plans(services: Services, contract: Contract) -> tuple[str, ...]:
    today = services.now().date()
    return tuple(
        f"#{p.id} {', '.join(p.kpis) or 'no KPI named'}: {describe_progress(p, today)}"
        for p in ActionPlanService(services).list([contract.id], open_only=True)
    )


def _exceptions(
    contract: Contract, filed: dict[str, str], verdicts: dict[str, Any]
) -> tuple[tuple[str, str], ...]:
    """The exception reports filed with the return, and a line for each one owed but missing."""
    order = {k.code: i for i, k in enumerate(contract.kpis)}
    reports = dict(filed)
    for code, r in verdicts.items():
        if bool(r.exception_required):
            reports.setdefault(code, EXCEPTION_OWED)
    return tuple(sorted(reports.items(), key=lambda item: order.get(item[0], len(order))))


def _assumptions(
    contract: Contract,
    comp: dict[str, CompiledKpi],
    columns: list[_Column],
    verdicts: dict[str, Any],
) -> list[str]:
    """Every assumption the engine made over the report's years, one sentence each.

    The same assumption in several years is said once, naming the years.
    """
    notes: list[str] = []
    exempt: dict[tuple[str, ...], list[str]] = {}
    no_target: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    uplifts: dict[tuple[str, float], list[str]] = {}
    years = sorted({c.year.year: c.year for c in columns if c.year is not None}.items())
    for number, year in years:
        exempt_now: list[str] = []
        no_target_now: dict[str, list[str]] = {}
        for kpi in contract.kpis:
            terms = comp[kpi.code].years.get(number)
            if terms is None:
                continue
            if number in kpi.disputed_years:
                notes.append(
                    NOTE_DISPUTED.format(
                        code=kpi.code,
                        year=year.name,
                        text=terms.target.text.strip(),
                        why=kpi.disputed_years[number],
                    )
                )
            elif terms.exempt:
                exempt_now.append(kpi.code)
            elif terms.target.kind == "none" and kpi.kind != "deliverable":
                no_target_now.setdefault(terms.target.explain(), []).append(kpi.code)
            earlier = [y for y in kpi.targets if y < number]
            if kpi.targets and number not in kpi.targets and earlier:
                source = next(y for y in contract.contract_years if y.year == max(earlier))
                notes.append(
                    NOTE_CARRIED.format(
                        code=kpi.code,
                        year=year.name,
                        earlier=source.name,
                        text=kpi.targets[max(earlier)].strip(),
                    )
                )
            if terms.target.uplift is not None:
                key = (terms.target.text.strip(), 1 + terms.target.uplift)
                if kpi.code not in uplifts.setdefault(key, []):
                    uplifts[key].append(kpi.code)
        if exempt_now:
            exempt.setdefault(tuple(exempt_now), []).append(year.name)
        for why, codes in no_target_now.items():
            no_target.setdefault((why, tuple(codes)), []).append(year.name)
    for exempt_codes, names in exempt.items():
        notes.append(NOTE_EXEMPT.format(year=_and(names), codes=_codes(exempt_codes)))
    for (why, grey), names in no_target.items():
        notes.append(NOTE_NO_TARGET.format(year=_and(names), why=why, codes=_codes(grey)))
    for (words, factor), uplifted in uplifts.items():
        notes.append(NOTE_UPLIFT.format(words=words, code=", ".join(uplifted), factor=factor))
    ytd = [c for c, r in verdicts.items() if _number(r.ytd_value) is not None]
    if ytd:
        notes.append(NOTE_YTD.format(codes=_codes(ytd)))
    kind = contract.reporting.period
    annual = [k.code for k in contract.kpis if reporting_kind(k, kind) == "year" and kind != "year"]
    if annual:
        notes.append(NOTE_ANNUAL.format(kind=kind, codes=_codes(annual)))
    return notes


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _codes(codes: Iterable[str], most: int = 40) -> str:
    listed = list(codes)
    shown = ", ".join(listed[:most])
    return shown + (f" …and {len(listed) - most} more" if len(listed) > most else "")
