"""Money and compliance for one contract: reads the store and calendar, then asks the engine.

* ``payment_report(services, contract, year)``: what the contract's payment models pay in a
  contract year (guaranteed, earned, on track, at risk, not earned, withheld), line by line.
* ``compliance_report(services, contract)``: data-submission KPIs from the submission records,
  the service-level RAG rating, and any extra sections registered by other features.
* ``status_hook``: the lines ``/kpi status`` and the quarterly summary show about money at risk;
  ``install(services)`` adds it to ``services.status_hooks``.

>>> # install(services)
>>> # payment_report(services, services.contract("healthy-child-0-19"), year=0).verdict()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import pandas as pd

from kpibot.calendars import calendar_for
from kpibot.engine.compliance import (
    DataSubmissionTerms,
    ReturnDue,
    ReturnReceipt,
    ServiceRating,
    SubmissionAssessment,
    assess_submissions,
    outcome_checks,
    rate_service,
)
from kpibot.engine.model import Contract, ContractYear
from kpibot.engine.payments import (
    PaymentReport,
    ProgrammeEvidence,
    evaluate_payments,
    kpi_evidence,
    programme_evidence,
    short_name,
    year_periods,
)
from kpibot.engine.periods import Period, PeriodError

if TYPE_CHECKING:
    from kpibot.services import Services

# ---- user-facing texts, kept together
NO_PAYMENT_TERMS = (
    "{contract} sets no payment terms kpibot can evaluate; add a `payments:` section to its "
    "contract file (see one-you-lifestyle.yaml for an example)."
)
UNKNOWN_YEAR = "{contract} has no contract year '{text}'; its years are {years}."
NO_ACV = "Amounts are shares of the annual contract value (ACV): the contract file sets no ACV."
NO_CALENDAR = "No return calendar in the contract file, so timeliness cannot be measured."
NOT_CONFIGURED_DS = "For information: the contract sets no data-submission KPIs."
NO_SERVICE_RAG = "The contract sets no service-level rating."

ComplianceSection = Callable[["Services", Contract], list[str]]
"""An extra block of lines for ``/kpi compliance`` (e.g. open action plans), or [] for none."""

COMPLIANCE_SECTIONS: list[ComplianceSection] = []


def add_compliance_section(section: ComplianceSection) -> None:
    """Register an extra compliance section; the action-plan feature plugs in here.

    >>> # add_compliance_section(kpibot.actionplans.open_plans_summary)
    """
    if section not in COMPLIANCE_SECTIONS:
        COMPLIANCE_SECTIONS.append(section)


# ------------------------------------------------------------------ years


def default_year(contract: Contract, today: date) -> ContractYear:
    """The contract year holding ``today``; the last one after the contract, the first before."""
    years = sorted(contract.contract_years, key=lambda y: y.start)
    for y in years:
        if y.start <= today <= y.end:
            return y
    return years[-1] if today > years[-1].end else years[0]


def find_year(contract: Contract, text: str) -> ContractYear | str:
    """A contract year from '0', 'year 0', 'Y3', 'Year 3+' or a period label like '2019/20'."""
    raw = " ".join(text.split())
    word = raw.lower().removeprefix("year").removeprefix("y").strip().rstrip("+")
    if word.isdigit():
        for y in contract.contract_years:
            if y.year == int(word):
                return y
    try:
        found = contract.year_for(contract.parse_period(raw))
    except PeriodError:
        found = None
    if found is not None:
        return found
    years = ", ".join(f"{y.year} ({y.name})" for y in contract.contract_years)
    return UNKNOWN_YEAR.format(contract=contract.id, text=raw, years=years)


# ------------------------------------------------------------------ payments


def payment_report(
    services: Services,
    contract: Contract,
    year: int | ContractYear | None = None,
    as_of: Period | None = None,
) -> PaymentReport:
    """Evaluate the contract's payment terms for one contract year (default: the current one).

    ``as_of`` limits the evidence to periods ending by then (the status view of a past period).
    """
    today = services.now().date()
    if isinstance(year, ContractYear):
        cy = year
    elif year is not None:
        cy = next(y for y in contract.contract_years if y.year == year)
    else:
        cy = default_year(contract, today)
    terms = contract.payments
    # Payments count approved figures only; figures awaiting approval or queried wait.
    frame = services.scorecard(contract, approved_only=True).frame
    kpis = None
    if terms.per_kpi_incentive is not None:
        kpis = kpi_evidence(contract, frame, cy, terms.per_kpi_incentive.met_rule, today, as_of)
    programmes: dict[str, ProgrammeEvidence] | None = None
    if terms.block_plus_incentive is not None:
        programmes = {
            p.kpi: programme_evidence(contract, frame, cy, p.kpi, today, as_of)
            for p in terms.block_plus_incentive.programmes
        }
    rating = service_rating(services, contract, cy, frame, as_of)
    return evaluate_payments(contract, cy, today, kpis, programmes, rating)


def service_rating(
    services: Services,
    contract: Contract,
    year: ContractYear,
    frame: pd.DataFrame | None = None,
    as_of: Period | None = None,
) -> ServiceRating | None:
    """Schedule 2 grades for the year's periods that are due (or have figures), oldest first."""
    terms = contract.payments.service_rag
    if terms is None:
        return None
    if frame is None:
        frame = services.scorecard(contract).frame
    now = services.now().astimezone(UTC)
    cal = calendar_for(contract)
    with_figures: set[str] = set()
    if not frame.empty:
        with_figures = set(frame[frame["value"].notna()]["period"])
    labels = []
    for p in year_periods(contract, year):
        if as_of is not None and p.end > as_of.end:
            continue
        due = cal.due_at(p).astimezone(UTC) <= now if cal is not None else p.end < now.date()
        if due or p.label in with_figures:
            labels.append(p.label)
    return rate_service(terms, outcome_checks(contract, frame, terms, year.year, labels), labels)


# ------------------------------------------------------------------ data submission


def submission_inputs(
    services: Services, contract: Contract
) -> tuple[list[ReturnDue], dict[str, ReturnReceipt]]:
    """Returns owed (from the calendar) and received (from the figures, first versions)."""
    cal = calendar_for(contract)
    if cal is None:
        return [], {}
    dues = [
        ReturnDue(r.period.label, r.kind, r.name, r.due_at.astimezone(UTC))
        for r in cal.returns_due_between(date(1900, 1, 1), date(2999, 12, 31))
    ]
    first: dict[str, datetime] = {}
    counts: dict[str, list[int]] = {}
    for row in services.figures.current(contract.id):
        when = row.submitted_at
        if row.supersedes_id is not None:
            # The return arrived when the figure's first version did, not its amendment.
            when = services.figures.history(contract.id, row.kpi, row.period)[0].submitted_at
        when = when.astimezone(UTC)
        first[row.period] = min(first.get(row.period, when), when)
        n = counts.setdefault(row.period, [0, 0])
        n[0] += 1
        n[1] += row.supersedes_id is not None
    receipts = {
        label: ReturnReceipt(label, first[label], n[0], n[1]) for label, n in counts.items()
    }
    from kpibot.returns import review_findings, with_review_findings

    receipts = with_review_findings(receipts, review_findings(services, contract.id))
    return dues, receipts


def submissions(services: Services, contract: Contract) -> SubmissionAssessment | None:
    """Timeliness, accuracy and service failure as of now; None without a return calendar."""
    dues, receipts = submission_inputs(services, contract)
    if not dues:
        return None
    return assess_submissions(
        contract.payments.data_submission, dues, receipts, services.now().astimezone(UTC)
    )


@dataclass
class ComplianceReport:
    """Everything ``/kpi compliance`` shows for one contract."""

    contract: Contract
    terms: DataSubmissionTerms | None
    submissions: SubmissionAssessment | None
    year: ContractYear
    rating: ServiceRating | None
    extra: list[str] = field(default_factory=list)

    def submission_lines(self) -> list[str]:
        """Plain lines for the data-submission KPIs, the service-failure status included."""
        a = self.submissions
        if a is None:
            return [NO_CALENDAR]
        lines = [] if self.terms is not None else [NOT_CONFIGURED_DS]
        clause = f" ({self.terms.clause})" if self.terms is not None else ""
        for score in (a.timeliness, a.accuracy):
            reason = f"{score.reason[0].upper()}{score.reason[1:]}."
            if self.terms is None:
                lines.append(f"{score.name}: {_pc(score.percent)}. {reason}")
                continue
            verdict = "" if score.met is None else (": met" if score.met else ": not met")
            lines.append(
                f"{score.name}{clause}: {_pc(score.percent)} against a {score.target:g}% target"
                f"{verdict}. {reason}"
            )
        streak = f"{a.current_streak} return(s) in a row missed or late now"
        if self.terms is None:
            lines.append(f"{streak[0].upper()}{streak[1:]}.")
        elif a.service_failure:
            lines.append(f"🚨 {a.failure_text()}. Contractual or improvement action applies.")
        else:
            lines.append(
                f"No service failure: {streak}; {a.threshold} in a row is a service failure."
            )
        return lines

    def rating_lines(self) -> list[str]:
        """Plain lines for the service-level RAG, latest period and the year's cumulative."""
        from kpibot.engine.describe import RAG_DOT

        r = self.rating
        if r is None:
            return [NO_SERVICE_RAG]
        last = r.latest
        clause = r.terms.clause
        if last is None:
            return [
                f"{clause}: not rated for {short_name(self.year)} yet, as no outcome figures are in."
            ]
        lines = [
            f"{clause}, {last.period}: {RAG_DOT[last.rag]} {last.rag}, {_pc(last.percent)} of outcomes achieved "
            f"({last.achieved} of {last.assessed})",
            f"Cumulative {short_name(self.year)}: {RAG_DOT[last.cumulative_rag]} {last.cumulative_rag}, "
            f"{_pc(last.cumulative_percent)} ({last.cumulative_achieved} of {last.cumulative_assessed})",
        ]
        if last.shortfalls:
            lines.append(f"Not achieved in {last.period}: {', '.join(last.shortfalls)}")
        if last.no_figure:
            lines.append(
                f"No figure in {last.period} (counted as not achieved): {', '.join(last.no_figure)}"
            )
        return lines


def _pc(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%".replace(".0%", "%")


def compliance_report(services: Services, contract: Contract) -> ComplianceReport:
    """Data-submission KPIs, the service RAG for the current year, and registered sections."""
    year = default_year(contract, services.now().date())
    extra: list[str] = []
    for section in COMPLIANCE_SECTIONS:
        extra.extend(section(services, contract))
    return ComplianceReport(
        contract,
        contract.payments.data_submission,
        submissions(services, contract),
        year,
        service_rating(services, contract, year),
        extra,
    )


# ------------------------------------------------------------------ status


def status_hook(services: Services, contract: Contract, period: Period) -> list[str]:
    """Lines for ``/kpi status`` and the quarterly summary: money at risk, service failure.

    >>> # status_hook(services, contract, contract.parse_period("2019/20 Q3"))
    >>> # ['💷 £41,000 of £60,000 incentive at risk: 1b, 5b below target']
    """
    terms = contract.payments
    lines: list[str] = []
    year = contract.year_for(period)
    if terms.has_money and year is not None:
        report = payment_report(services, contract, year, as_of=period)
        lines.append(f"💷 {report.verdict()}")
    if terms.data_submission is not None:
        assessed = submissions(services, contract)
        if assessed is not None and assessed.service_failure:
            lines.append(f"🚨 {assessed.failure_text()}")
    return lines


def install(services: Services) -> None:
    """Show money at risk in status and summaries (idempotent)."""
    if status_hook not in services.status_hooks:
        services.status_hooks.append(status_hook)


def totals_line(report: PaymentReport) -> str:
    """'Guaranteed 1% of ACV · At risk 2% of ACV' — every status with money in it."""
    from kpibot.engine.payments import STATUS_WORDS

    parts = []
    for status, word in STATUS_WORDS.items():
        share = report.total(status)
        if share:
            parts.append(f"{word.capitalize()} {report.amount(share)}")
    return " · ".join(parts) or f"Nothing payable in {report.year_name}"
