"""Compliance for one contract: data-submission KPIs, the service-level RAG, and what features add.

* ``compliance_report(services, contract)``: data-submission KPIs from the submission records,
  the service-level RAG rating (``kpibot.features.payments.service_rating``), and the lines other
  features register in ``services.hooks.compliance`` (open action plans, finance exceptions).

>>> # compliance_report(services, services.contract("one-you-lifestyle")).submission_lines()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from kpibot.core.services import Services
from kpibot.engine.calendar import calendar_for
from kpibot.engine.compliance import (
    ReturnDue,
    ReturnReceipt,
    ServiceRating,
    SubmissionAssessment,
    assess_submissions,
)
from kpibot.engine.describe import RAG_DOT
from kpibot.engine.model import Contract, ContractYear, DataSubmissionTerms
from kpibot.engine.payments import short_name
from kpibot.engine.periods import Period
from kpibot.features.payments import default_year, service_rating
from kpibot.features.returns import review_findings, with_review_findings

NO_CALENDAR = "No return calendar in the contract file, so timeliness cannot be measured."
NOT_CONFIGURED_DS = "For information: the contract sets no data-submission KPIs."
NO_SERVICE_RAG = "The contract sets no service-level rating."


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
    for section in services.hooks.compliance:
        extra.extend(section(services, contract))
    return ComplianceReport(
        contract,
        contract.payments.data_submission,
        submissions(services, contract),
        year,
        service_rating(services, contract, year),
        extra,
    )


def status_lines(services: Services, contract: Contract, period: Period) -> list[str]:
    """The line ``/kpi status`` and the quarterly summary show for a service failure, if any."""
    if contract.payments.data_submission is None:
        return []
    assessed = submissions(services, contract)
    if assessed is not None and assessed.service_failure:
        return [f"🚨 {assessed.failure_text()}"]
    return []
