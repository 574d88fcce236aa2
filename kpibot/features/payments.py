"""Money for one contract: reads the store and calendar, then asks the engine.

* ``payment_report(services, contract, year)``: what the contract's payment models pay in a
  contract year (guaranteed, earned, on track, at risk, not earned, withheld), line by line.
* ``service_rating(...)``: seed 003's service-level RAG for a contract year.
* ``status_lines``: what ``/kpi status`` and the quarterly summary show about money at risk;
  ``kpibot.app.wiring`` registers it in ``services.hooks.status``.

>>> # payment_report(services, services.contract("healthy-child-0-19"), year=0).verdict()
"""

from __future__ import annotations

from datetime import UTC, date

import pandas as pd

from kpibot.core.services import Services
from kpibot.engine.calendar import calendar_for
from kpibot.engine.compliance import (
    ServiceRating,
    outcome_checks,
    rate_service,
)
from kpibot.engine.model import Contract, ContractYear
from kpibot.engine.payments import (
    STATUS_WORDS,
    PaymentReport,
    ProgrammeEvidence,
    evaluate_payments,
    group_evidence,
    kpi_evidence,
    programme_evidence,
    year_periods,
)
from kpibot.engine.periods import Period, PeriodError

# ---- user-facing texts, kept together
NO_PAYMENT_TERMS = (
    "{contract} sets no payment terms kpibot can evaluate; add a `payments:` section to its "
    "contract file (see one-you-lifestyle.yaml for an example)."
)
UNKNOWN_YEAR = "{contract} has no contract year '{text}'; its years are {years}."
NO_ACV = "Amounts are shares of the annual contract value (ACV): the contract file sets no ACV."

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
    frame: pd.DataFrame | None = None,
) -> PaymentReport:
    """Evaluate the contract's payment terms for one contract year (default: the current one).

    ``as_of`` limits the evidence to periods ending by then (the status view of a past period).
    ``frame`` is the evaluated approved figures to use instead of the store's (the alerts
    compare the money before and after a batch of figures).
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
    if frame is None:
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
    groups = group_evidence(contract, frame, cy, as_of) if terms.group_payments else None
    return evaluate_payments(contract, cy, today, kpis, programmes, rating, groups)


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


# ------------------------------------------------------------------ status


def status_lines(services: Services, contract: Contract, period: Period) -> list[str]:
    """Lines for ``/kpi status`` and the quarterly summary: money at risk.

    >>> # status_lines(services, contract, contract.parse_period("2019/20 Q3"))
    >>> # ['💷 £41,000 of £60,000 incentive at risk: 1b, 5b below target']
    """
    terms = contract.payments
    lines: list[str] = []
    year = contract.year_for(period)
    if terms.has_money and year is not None:
        report = payment_report(services, contract, year, as_of=period)
        lines.append(f"💷 {report.verdict()}")
    return lines


def totals_line(report: PaymentReport) -> str:
    """'Guaranteed 1% of ACV · At risk 2% of ACV' — every status with money in it."""
    parts = []
    for status, word in STATUS_WORDS.items():
        share = report.total(status)
        if share:
            parts.append(f"{word.capitalize()} {report.amount(share)}")
    return " · ".join(parts) or f"Nothing payable in {report.year_name}"
