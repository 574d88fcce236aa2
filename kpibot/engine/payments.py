"""Payment terms (the ``payments:`` section of a contract) and what they pay in a contract year.

Three payment models from the seeds, each evaluated from the scorecard, never typed in:

* ``per_kpi_incentive`` (seed 000, Table 1 footnote 1): each main KPI that meets its performance
  level earns a share of the annual contract value (ACV), pro rata for a part year; a KPI exempt
  from its level that year is a guaranteed award.
* ``block_plus_incentive`` (seed 001, 2.2.2): a guaranteed block (80% of ACV) and an incentivised
  share (20%) paid on programme participation tiers, with a critical-failure floor per programme.
* ``service_rag`` (seed 003, Schedule 2): a share of the annual payment withheld when the service
  is graded red (see ``kpibot.engine.compliance``).
* ``group_payments``: a share of ACV earned (or withheld) on a group rule's verdict, "Number of
  standards to be met: 3 of 4", as ``kpibot.engine.groups.group_verdicts`` gives it per period.

Amounts are shares of ACV (``Decimal``); a report turns them into pounds when the contract gives
an ACV. Every line carries a plain-English reason that cites the clause and the figures.

>>> Tier(label="10% Target", target=2000, payment="+2%").payment
Decimal('0.02')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from functools import partial
from typing import Literal

import pandas as pd

from kpibot.engine.compliance import ServiceRating
from kpibot.engine.describe import format_value, money
from kpibot.engine.groups import GroupVerdict, group_verdicts
from kpibot.engine.model import (
    INCENTIVE_SCHEMES,
    BlockPlusIncentive,
    Contract,
    ContractYear,
    GroupPayment,
    GroupRule,
    MetRule,
    PaymentTerms,
    PerKpiIncentive,
    Programme,
    ServiceRagTerms,
    Tier,
    pct,
)
from kpibot.engine.periods import Period, period_containing
from kpibot.engine.sanctions import explain_sanctions
from kpibot.engine.scorecard import compiled

# Lines that withhold a share of the payment (rather than pay an incentive).
WITHHOLDING_SCHEMES = ("service_rag", "group_withholding")
Status = Literal["guaranteed", "earned", "on_track", "at_risk", "not_earned", "withheld"]
STATUS_WORDS: dict[str, str] = {
    "guaranteed": "guaranteed",
    "earned": "earned",
    "on_track": "on track",
    "at_risk": "at risk",
    "not_earned": "not earned",
    "withheld": "withheld",
}


# ------------------------------------------------------------------ evidence from the scorecard


@dataclass(frozen=True)
class KpiEvidence:
    """What the figures say about one incentive KPI in one contract year."""

    code: str
    position: str
    period: str | None = None
    basis: str = ""
    value_text: str = "—"
    final: bool = False
    awaiting: str = ""


@dataclass(frozen=True)
class ProgrammeEvidence:
    """Participants counted so far in a contract year, and how much of the year that covers."""

    code: str
    total: float | None
    through: str | None
    covered: Fraction
    final: bool
    annual: bool = False


def year_periods(contract: Contract, year: ContractYear) -> list[Period]:
    """The reporting periods (quarters, usually) that make up a contract year, in order."""
    kind = contract.reporting.period
    p = period_containing(year.start, kind, contract.reporting.year_start_month)
    out = []
    while p.start <= year.end:
        found = contract.year_for(p)
        if found is not None and found.year == year.year:
            out.append(p)
        p = p.shift(1)
    return out


def _rows(
    contract: Contract,
    frame: pd.DataFrame | None,
    code: str,
    year: ContractYear,
    as_of: Period | None,
) -> pd.DataFrame | None:
    if frame is None or frame.empty:
        return frame
    rows = frame[(frame["kpi"] == code) & (frame["year"] == year.year) & frame["value"].notna()]
    if as_of is not None and not rows.empty:
        ends = rows["period"].map(lambda label: contract.parse_period(label).end)
        rows = rows[ends <= as_of.end]
    return rows.sort_values("period_start") if not rows.empty else rows


@dataclass(frozen=True)
class _YearRow:
    """One evaluated figure of a KPI's contract year, as ``kpi_evidence`` reads it."""

    start: date
    kind: str
    position: str
    period: str
    value: float


def _year_rows(
    contract: Contract, frame: pd.DataFrame | None, year: ContractYear, as_of: Period | None
) -> dict[str, list[_YearRow]]:
    """The year's rows with a value (ending by ``as_of``), by KPI, oldest first: what
    ``_rows`` gives for every KPI, read in one pass (a pandas filter per KPI costs more)."""
    out: dict[str, list[_YearRow]] = {}
    if frame is None or frame.empty:
        return out
    columns = ("kpi", "year", "value", "period_start", "kind", "position", "period")
    wanted = frame["value"].notna().tolist()
    for present, kpi, y, value, start, kind, position, period in zip(
        wanted, *(frame[c].tolist() for c in columns), strict=True
    ):
        if not present or y != year.year:
            continue
        if as_of is not None and contract.parse_period(period).end > as_of.end:
            continue
        out.setdefault(str(kpi), []).append(
            _YearRow(start, str(kind), str(position), str(period), value)
        )
    for rows in out.values():
        rows.sort(key=lambda r: r.start)
    return out


def kpi_evidence(
    contract: Contract,
    frame: pd.DataFrame | None,
    year: ContractYear,
    rule: MetRule,
    today: date,
    as_of: Period | None = None,
) -> dict[str, KpiEvidence]:
    """Evidence for every KPI in ``frame`` (a ``Scorecard.frame``) under the met rule."""

    comp = compiled(contract)
    periods = year_periods(contract, year)
    ended = today > year.end
    out: dict[str, KpiEvidence] = {}
    by_kpi = _year_rows(contract, frame, year, as_of)
    for kpi in contract.kpis:
        rows = by_kpi.get(kpi.code)
        unit = comp[kpi.code].unit
        if not rows:
            out[kpi.code] = KpiEvidence(kpi.code, "missing", awaiting="a figure")
            continue
        annual = [r for r in rows if r.kind == "year"]
        parts = [r for r in rows if r.kind != "year"]
        if annual:
            r = annual[-1]
            out[kpi.code] = KpiEvidence(
                kpi.code,
                r.position,
                r.period,
                "annual figure",
                format_value(r.value, unit),
                True,
            )
            continue
        awaiting = "the annual figure" if rule == "annual_only" else ""
        if rule == "every_period" and parts:
            bad = [r for r in parts if r.position != "met"]
            r = bad[0] if bad else parts[-1]
            complete = ended and len(parts) >= len(periods)
            final = bool(bad) and bad[0].position in ("not_met", "within_tolerance")
            out[kpi.code] = KpiEvidence(
                kpi.code,
                r.position,
                r.period,
                "a period of the year" if bad else "every period so far",
                format_value(r.value, unit),
                final or complete,
                "" if complete else "the rest of the year's periods",
            )
            continue
        r = parts[-1]
        last = r.period
        is_last = bool(periods) and last == periods[-1].label
        final = rule == "annual_else_latest_period" and ended and is_last
        if not final and not awaiting:
            awaiting = "the year's last period or the annual figure"
        out[kpi.code] = KpiEvidence(
            kpi.code,
            r.position,
            last,
            "latest period",
            format_value(r.value, unit),
            final,
            awaiting,
        )
    return out


def programme_evidence(
    contract: Contract,
    frame: pd.DataFrame | None,
    year: ContractYear,
    code: str,
    today: date,
    as_of: Period | None = None,
) -> ProgrammeEvidence:
    """Participants so far: the annual figure if in, else the sum of the year's periods."""
    rows = _rows(contract, frame, code, year, as_of)
    if rows is None or rows.empty:
        return ProgrammeEvidence(code, None, None, Fraction(0), False)
    annual = rows[rows["kind"] == "year"]
    if not annual.empty:
        return ProgrammeEvidence(
            code,
            float(annual["value"].iloc[-1]),
            str(annual["period"].iloc[-1]),
            Fraction(1),
            True,
            annual=True,
        )
    periods = [p.label for p in year_periods(contract, year)]
    parts = rows[rows["period"].isin(periods)]
    if parts.empty:
        return ProgrammeEvidence(code, None, None, Fraction(0), False)
    last = str(parts["period"].iloc[-1])
    covered = Fraction(periods.index(last) + 1, len(periods))
    final = today > year.end and len(parts) >= len(periods)
    return ProgrammeEvidence(code, float(parts["value"].sum()), last, covered, final)


def group_evidence(
    contract: Contract, frame: pd.DataFrame | None, year: ContractYear, as_of: Period | None = None
) -> dict[str, list[tuple[str, GroupVerdict]]]:
    """Each group rule's verdict at every reporting period of ``year`` (ending by ``as_of``),
    oldest first, by group name: ``group_verdicts`` on the scorecard's rows of that period.

    >>> # group_evidence(contract, card.frame, year)["Quality standards"][0]
    >>> # ('2019/20 Q1', GroupVerdict('Quality standards', '3 of 4', ..., verdict='performed'))
    """
    out: dict[str, list[tuple[str, GroupVerdict]]] = {g.name: [] for g in contract.groups}
    if not contract.groups:
        return out
    empty = pd.DataFrame(columns=["kpi", "position"])
    for p in year_periods(contract, year):
        if as_of is not None and p.end > as_of.end:
            continue
        rows = empty if frame is None or frame.empty else frame[frame["period"] == p.label]
        for verdict in group_verdicts(contract, rows):
            out[verdict.name].append((p.label, verdict))
    return out


# ------------------------------------------------------------------ the report


@dataclass(frozen=True)
class PaymentLine:
    """One payable item: what, its status, its share of ACV (pro rata), and why.

    ``label`` names it in a verdict ("1b", "Physical Activity"); ``cause`` is the short reason
    it is at risk or not earned ("below target", "no figure yet").
    """

    scheme: str
    label: str
    item: str
    status: Status
    share: Decimal
    reason: str
    cause: str = ""
    critical: bool = False


@dataclass(frozen=True)
class PaymentReport:
    """What a contract pays in one contract year: lines, totals, readings and notes."""

    contract_id: str
    contract_name: str
    year: int
    year_name: str
    months: int
    fraction: Fraction
    complete: bool
    acv: Decimal | None
    currency: str
    lines: tuple[PaymentLine, ...]
    readings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def total(self, *statuses: str, incentive_only: bool = False) -> Decimal:
        """The share of ACV in lines with these statuses (all lines without any)."""
        return sum(
            (
                ln.share
                for ln in self.lines
                if (not statuses or ln.status in statuses)
                and (not incentive_only or ln.scheme in INCENTIVE_SCHEMES)
            ),
            Decimal(0),
        )

    @property
    def incentive_pot(self) -> Decimal:
        """The year's incentive: every incentive line, guaranteed or not (pro rata)."""
        return self.total(incentive_only=True)

    def amount(self, share: Decimal) -> str:
        """'£41,000' with an ACV, else '2% of ACV'."""
        if self.acv is None:
            return f"{pct(share)} of ACV"
        return money(self.acv * share, self.currency)

    def verdict(self) -> str:
        """One line: '£41,000 of £60,000 incentive at risk: 1b, 5b below target'."""
        parts: list[str] = []
        pot = self.incentive_pot
        if pot:
            risk = [
                ln for ln in self.lines if ln.scheme in INCENTIVE_SCHEMES and ln.status == "at_risk"
            ]
            lost = [
                ln
                for ln in self.lines
                if ln.scheme in INCENTIVE_SCHEMES and ln.status == "not_earned"
            ]
            if risk:
                parts.append(
                    f"{self._of(sum((ln.share for ln in risk), Decimal(0)), pot)} at risk: "
                    f"{_causes(risk)}"
                )
            if lost:
                parts.append(
                    f"{self._of(sum((ln.share for ln in lost), Decimal(0)), pot)} not earned: "
                    f"{_causes(lost)}"
                )
            if not risk and not lost:
                word = "earned or guaranteed" if self.complete else "earned, guaranteed or on track"
                parts.append(f"no incentive at risk: all {self.amount(pot)} {word}")
        for line in self.lines:
            if line.scheme in WITHHOLDING_SCHEMES and line.status in ("at_risk", "withheld"):
                verb = "at risk of withholding" if line.status == "at_risk" else "withheld"
                parts.append(f"{self.amount(line.share)} {verb} under {line.label}: {line.cause}")
        if not parts:
            return "Nothing is at risk"
        text = "; ".join(parts)
        return text[0].upper() + text[1:]

    def _of(self, part: Decimal, whole: Decimal) -> str:
        if self.acv is None:
            return f"{pct(part)} of ACV (of a {pct(whole)} incentive)"
        return f"{self.amount(part)} of {self.amount(whole)} incentive"


def _causes(lines: Sequence[PaymentLine]) -> str:
    groups: dict[str, list[str]] = {}
    for line in lines:
        labels = groups.setdefault(line.cause or "see reasons", [])
        if line.label not in labels:
            labels.append(line.label)
    return "; ".join(f"{', '.join(labels)} {cause}" for cause, labels in groups.items())


def evaluate_payments(
    contract: Contract,
    year: ContractYear,
    today: date,
    kpis: Mapping[str, KpiEvidence] | None = None,
    programmes: Mapping[str, ProgrammeEvidence] | None = None,
    service: ServiceRating | None = None,
    groups: Mapping[str, Sequence[tuple[str, GroupVerdict]]] | None = None,
) -> PaymentReport:
    """Every payment line for ``year`` from the evidence; ``today`` decides if the year is over.

    ``groups`` is each group rule's verdict per period (``group_evidence``), for the payments
    tied to a group.

    >>> # evaluate_payments(contract, contract.contract_years[0], date(2020, 2, 20), kpis=...)
    """
    terms: PaymentTerms = contract.payments
    fraction = Fraction(year.months, 12) if terms.pro_rata_part_years else Fraction(1)
    frac = Decimal(fraction.numerator) / Decimal(fraction.denominator)
    complete = today > year.end
    lines: list[PaymentLine] = []
    readings: list[str] = []
    notes: list[str] = []
    if terms.per_kpi_incentive is not None:
        got = _per_kpi(contract, year, terms.per_kpi_incentive, kpis or {}, frac)
        lines += got
        readings.append(_met_reading(terms.per_kpi_incentive))
        notes += _guaranteed_note(terms.per_kpi_incentive, year, got, frac)
    if terms.block_plus_incentive is not None:
        block = terms.block_plus_incentive
        got, extra = _block(contract, year, block, programmes or {}, frac)
        lines += got
        notes += extra
        readings.append(block.reading()[0].upper() + block.reading()[1:] + ".")
    if terms.service_rag is not None:
        lines.append(_withholding(year, terms.service_rag, service, frac, complete))
        readings.append(_rag_reading(terms.service_rag))
    for gp in terms.group_payments:
        rule = _group_rule(contract, gp)
        verdicts = (groups or {}).get(rule.name, ())
        periods = len(year_periods(contract, year))
        lines += _group_lines(gp, rule.name, verdicts, year, frac, periods)
        readings.append(_group_reading(gp, rule.name))
    if fraction != 1:
        readings.append(
            f"{short_name(year)} runs {year.months} months, so every share of ACV is pro rata "
            f"{year.months}/12."
        )
    return PaymentReport(
        contract.id,
        contract.name,
        year.year,
        year.name,
        year.months,
        fraction,
        complete,
        contract.annual_contract_value,
        contract.currency,
        tuple(lines),
        tuple(readings),
        tuple(notes),
    )


def short_name(year: ContractYear) -> str:
    """'Year 0' for 'Year 0 (Oct 2016 to March 2017)': the label without its dates."""
    return year.name.split(" (")[0]


def _pro_rata(share: Decimal, frac: Decimal, year: ContractYear) -> str:
    """'0.5%', or '0.5% × 6/12 = 0.25%' for a part year."""
    if frac == 1:
        return pct(share)
    return f"{pct(share)} × {year.months}/12 = {pct(share * frac)}"


def _per_kpi(
    contract: Contract,
    year: ContractYear,
    inc: PerKpiIncentive,
    evidence: Mapping[str, KpiEvidence],
    frac: Decimal,
) -> list[PaymentLine]:

    comp = compiled(contract)
    codes = inc.kpis or [k.code for k in contract.kpis if k.incentive_weight is not None]
    out: list[PaymentLine] = []
    for code in codes:
        kpi = contract.kpi(code)
        weight = kpi.incentive_weight or inc.share_of_acv_per_kpi or Decimal(0)
        terms = comp[kpi.code].years.get(year.year)
        level = terms.target.text.strip() if terms else "(none)"
        line = partial(PaymentLine, "per_kpi_incentive", kpi.code, f"{kpi.code} {kpi.name}")
        worth = f"{_pro_rata(weight, frac, year)} of ACV"
        if terms is not None and terms.exempt and inc.exempt_guaranteed:
            why = (
                f"{inc.clause}: {kpi.code} is exempt from its {short_name(year)} level “{level}”, "
                f"so its {worth} is a guaranteed award."
            )
            out.append(line("guaranteed", weight * frac, why))
            continue
        head = f"{inc.clause}: {worth} if {kpi.code} meets its {short_name(year)} level “{level}”. "
        ev = evidence.get(kpi.code, KpiEvidence(kpi.code, "missing"))
        status, why, cause = _kpi_status(
            inc, year, ev, terms is not None and terms.target.kind != "none"
        )
        out.append(line(status, weight * frac, head + why, cause))
    return out


def _guaranteed_note(
    inc: PerKpiIncentive, year: ContractYear, lines: Sequence[PaymentLine], frac: Decimal
) -> list[str]:
    """'Table 1 footnote 1: 4 KPIs exempt in Year 0 (2a, …): 4 × 0.5% × 6/12 = 1% of ACV guaranteed.'"""
    exempt = [ln for ln in lines if ln.status == "guaranteed"]
    if not exempt:
        return []
    total = sum((ln.share for ln in exempt), Decimal(0))
    shares = {ln.share / frac for ln in exempt}
    sums = (
        f"{len(exempt)} × {pct(shares.pop())}"
        if len(shares) == 1
        else " + ".join(pct(ln.share / frac) for ln in exempt)
    )
    rata = f" × {year.months}/12" if frac != 1 else ""
    codes = ", ".join(ln.label for ln in exempt)
    return [
        f"{inc.clause}: {len(exempt)} KPI(s) exempt in {short_name(year)} ({codes}), so {sums}{rata} = "
        f"{pct(total)} of ACV is a guaranteed award."
    ]


def _kpi_status(
    inc: PerKpiIncentive, year: ContractYear, ev: KpiEvidence, has_target: bool
) -> tuple[Status, str, str]:
    """(status, reason, cause) for one incentive KPI that is not exempt, from its evidence."""
    seen = f"{ev.basis} {ev.period}: {ev.value_text}" if ev.period else ""
    later = f"; provisional until {ev.awaiting} is in" if ev.awaiting and not ev.final else ""
    if ev.position == "missing":
        return "at_risk", f"No figure for {short_name(year)} yet.", "no figure yet"
    if not has_target:
        if inc.no_target_rule == "not_payable":
            return (
                "not_earned",
                "The level sets no target, and the config reads that as not payable.",
                "no target",
            )
        return (
            "earned" if ev.final else "on_track",
            f"The level is to record data; reported ({seen}), so it is met{later}.",
            "",
        )
    if ev.position == "met":
        return "earned" if ev.final else "on_track", f"Met: {seen}{later}.", ""
    if ev.position in ("not_met", "within_tolerance"):
        return "not_earned" if ev.final else "at_risk", f"Not met: {seen}{later}.", "below target"
    return (
        "at_risk",
        f"Cannot be assessed: {seen}, but the level needs a benchmark (such as the national "
        "average) that is not in.",
        "cannot be assessed",
    )


def _met_reading(inc: PerKpiIncentive) -> str:
    rule = {
        "annual_else_latest_period": "its annual figure meets that year's target; failing an annual "
        "figure, the latest period reported in the year (final once the year's last period is in)",
        "annual_only": "its annual figure meets that year's target (periods only show the trajectory)",
        "every_period": "every period of the year meets the target",
    }[inc.met_rule]
    extra = (
        " A year whose level is only to record data is met by reporting a figure."
        if inc.no_target_rule == "reported_counts_as_met"
        else ""
    )
    return f"A KPI meets its performance level for a year when {rule} ({inc.clause}).{extra}"


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _block(
    contract: Contract,
    year: ContractYear,
    block: BlockPlusIncentive,
    evidence: Mapping[str, ProgrammeEvidence],
    frac: Decimal,
) -> tuple[list[PaymentLine], list[str]]:
    lines = [
        PaymentLine(
            "block",
            "block",
            "Guaranteed block payment",
            "guaranteed",
            block.guaranteed_share * frac,
            f"{block.clause}: a guaranteed block payment of {_pro_rata(block.guaranteed_share, frac, year)} "
            "of the annual contract value, whatever the participation figures.",
        )
    ]
    notes: list[str] = []
    for p in block.programmes:
        ev = evidence.get(p.kpi, ProgrammeEvidence(p.kpi, None, None, Fraction(0), False))
        lines += [_tier_line(block, p, tier, ev, year, frac) for tier in p.tiers]
        notes.append(_standing(block, p, ev, year))
    tied = sum((ln.share for ln in lines if ln.scheme == "block_plus_incentive"), Decimal(0))
    unallocated = block.incentivised_share * frac - tied
    if unallocated > 0:
        notes.append(
            f"Under this reading the tiers carry {pct(tied)} of ACV; the other {pct(unallocated)} of "
            f"the {pct(block.incentivised_share * frac)} incentivised share is tied to no tier."
        )
    return lines, notes


def _tier_line(
    block: BlockPlusIncentive,
    p: Programme,
    tier: Tier,
    ev: ProgrammeEvidence,
    year: ContractYear,
    frac: Decimal,
) -> PaymentLine:
    share = block.tier_share(p, tier) * frac
    paid = (
        pct(tier.payment)
        if block.tier_payment_basis == "share_of_acv"
        else f"{pct(tier.payment)} of its {pct(block.pot(p))}-of-ACV pot = {pct(block.tier_share(p, tier))}"
    )
    head = (
        f"{block.clause}: {p.programme} ({p.kpi}) reaching the {tier.label} of {_count(tier.target)} "
        f"participants in {short_name(year)} pays {paid} of ACV"
        + (f" (pro rata {pct(share)})" if frac != 1 else "")
    )
    total = ev.total
    scale = 1.0 if ev.final or ev.annual else float(ev.covered)
    critical = (
        total is not None and p.critical_failure is not None and total < p.critical_failure * scale
    )

    def line(status: Status, why: str, cause: str = "") -> PaymentLine:
        item = f"{p.programme}: {tier.label} ({_count(tier.target)})"
        return PaymentLine(
            "block_plus_incentive",
            p.programme,
            item,
            status,
            share,
            f"{head}. {why}",
            cause,
            critical,
        )

    if total is None:
        return line(
            "at_risk", f"No participation figures for {short_name(year)} yet.", "no figure yet"
        )
    where = "the annual figure" if ev.annual else f"to {ev.through}"
    if total >= tier.target:
        return line("earned", f"Reached: {_count(total)} participants ({where}).")
    if ev.final:
        return line(
            "not_earned",
            f"Not reached: the year's total is {_count(total)}.",
            f"below the {tier.label}",
        )
    profile = tier.target * float(ev.covered)
    why = (
        f"{_count(total)} participants {where} against a profile of {_count(profile)} "
        f"({_count(tier.target)} × {ev.covered.numerator}/{ev.covered.denominator} of the year)"
    )
    if total >= profile:
        return line("on_track", f"On track: {why}.")
    return line("at_risk", f"Below profile: {why}.", "below profile")


def _standing(
    block: BlockPlusIncentive, p: Programme, ev: ProgrammeEvidence, year: ContractYear
) -> str:
    """One sentence on a programme against its baseline and critical-failure floor."""
    if ev.total is None:
        return f"{p.programme}: no participation figures for {short_name(year)} yet."
    scale = 1.0 if ev.final or ev.annual else float(ev.covered)
    so_far = "in the year" if ev.final or ev.annual else f"to {ev.through}"
    profile = "" if scale == 1.0 else " profile"
    text = f"{p.programme}: {_count(ev.total)} participants {so_far}"
    floor = p.critical_failure
    if floor is not None and ev.total < floor * scale:
        clause = block.critical_failure_clause or block.clause
        remedy = f" {block.critical_failure_remedy}" if block.critical_failure_remedy else ""
        return (
            f"{text}, below the critical-failure{profile} of {_count(floor * scale)}: "
            f"{'a' if not profile else 'heading for a'} Critical Performance Failure ({clause}).{remedy}"
        )
    if ev.total < p.baseline_target * scale:
        return f"{text}, below the baseline target{profile} of {_count(p.baseline_target * scale)}."
    return f"{text}, meeting the baseline target{profile} of {_count(p.baseline_target * scale)}."


def _withholding(
    year: ContractYear,
    terms: ServiceRagTerms,
    rating: ServiceRating | None,
    frac: Decimal,
    complete: bool,
) -> PaymentLine:
    share = terms.withhold_on_red * frac
    head = (
        f"{terms.clause}: {_pro_rata(terms.withhold_on_red, frac, year)} of the annual payment is withheld "
        f"when the service is graded red (below {terms.red_below_percent:g}% of outcomes achieved)"
    )
    rag, percent, basis = (
        rating.year_grade() if rating is not None else ("grey", None, "no outcome figures")
    )
    item = f"Schedule 2 withholding ({pct(terms.withhold_on_red)} of the annual payment)"

    def line(status: Status, why: str, cause: str = "") -> PaymentLine:
        return PaymentLine(
            "service_rag", terms.clause, item, status, share, f"{head}. {why}", cause
        )

    if rag == "grey":
        return line(
            "at_risk",
            f"Not rated: no outcome figures for {short_name(year)} yet, and Schedule 2 also grades "
            "red when monitoring is not taking place.",
            "not rated (no outcome figures)",
        )
    graded = f"graded {rag}: {_num(percent)}% of outcomes achieved ({basis})"
    if rag == "red":
        return line(
            "withheld" if complete else "at_risk", graded[0].upper() + graded[1:] + ".", graded
        )
    return line("earned" if complete else "on_track", f"Not withheld: {graded}.")


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}".rstrip("0").rstrip(".")


def _rag_reading(terms: ServiceRagTerms) -> str:
    band = (
        f"amber from {terms.red_below_percent:g}% up to {terms.green_from_percent:g}%, "
        f"green at {terms.green_from_percent:g}%"
    )
    basis = (
        "the year's cumulative achievement"
        if terms.withhold_basis == "cumulative"
        else "the latest period's achievement"
    )
    return (
        f"Service RAG ({terms.clause}): red below {terms.red_below_percent:g}% of outcomes achieved, {band}; "
        f"withholding is judged on {basis}."
    )


# ------------------------------------------------------------------ payments tied to a group rule

GROUP_STATUS: dict[tuple[str, str], Status] = {
    ("incentive", "performed"): "earned",
    ("incentive", "not performed"): "not_earned",
    ("withholding", "performed"): "earned",
    ("withholding", "not performed"): "withheld",
}


def _group_rule(contract: Contract, gp: GroupPayment) -> GroupRule:
    """The group a payment names (the contract model checked that it exists)."""
    wanted = gp.group.strip().lower()
    return next(g for g in contract.groups if g.name.strip().lower() == wanted)


def _group_words(gp: GroupPayment, name: str) -> str:
    if gp.kind == "incentive":
        return f"earned when {name} is performed"
    return f"withheld when {name} is not performed"


def _group_reading(gp: GroupPayment, name: str) -> str:
    when = "each reporting period" if gp.per == "period" else "the contract year"
    judged = (
        "judged at that period"
        if gp.per == "period"
        else "judged at the year's last period (earlier periods show the trajectory)"
    )
    return (
        f"Group payment {gp.id} ({gp.clause}): {pct(gp.share_of_acv)} of ACV for {when}, "
        f"{_group_words(gp, name)}, {judged}; at risk while the group is pending."
    )


def _pending_cause(v: GroupVerdict) -> str:
    """A pending group only waiting for figures is not news; one with a KPI already missing is."""
    if not v.not_met:
        return "no figure yet"
    return f"pending: {v.met} of {v.need} needed met, {v.awaiting} without a figure"


def _group_lines(
    gp: GroupPayment,
    name: str,
    verdicts: Sequence[tuple[str, GroupVerdict]],
    year: ContractYear,
    frac: Decimal,
    periods: int,
) -> list[PaymentLine]:
    scheme = "group_incentive" if gp.kind == "incentive" else "group_withholding"
    bad = "not earned" if gp.kind == "incentive" else "withheld"

    def line(item: str, share: Decimal, status: Status, why: str, cause: str = "") -> PaymentLine:
        head = f"{gp.clause}: {pct(share)} of ACV {_group_words(gp, name)}"
        return PaymentLine(scheme, name, item, status, share, f"{head}. {why}", cause)

    if gp.per == "period":
        out = []
        for label, v in verdicts:
            item = f"{name} ({gp.id}), {label}"
            if v.verdict == "pending":
                out.append(
                    line(item, gp.share_of_acv, "at_risk", f"{v.text()}.", _pending_cause(v))
                )
            else:
                cause = "" if v.verdict == "performed" else f"{name} {v.verdict}"
                out.append(
                    line(
                        item,
                        gp.share_of_acv,
                        GROUP_STATUS[(gp.kind, v.verdict)],
                        f"{v.text()}.",
                        cause,
                    )
                )
        return out
    share = gp.share_of_acv * frac
    item = f"{name} ({gp.id}), {short_name(year)}"
    if not verdicts:
        return [
            line(item, share, "at_risk", f"No period of {short_name(year)} yet.", "no figure yet")
        ]
    last_label, last = verdicts[-1]
    final = len(verdicts) == periods and last.verdict != "pending"
    if final:
        status = GROUP_STATUS[(gp.kind, last.verdict)]
        cause = "" if last.verdict == "performed" else f"{name} {last.verdict}"
        return [line(item, share, status, f"Judged at {last_label}: {last.text()}.", cause)]
    seen = [(lb, v) for lb, v in verdicts if v.awaiting < v.of]
    if not seen:
        return [line(item, share, "at_risk", f"No figures for {name} yet.", "no figure yet")]
    label, v = seen[-1]
    so_far = f"So far, at {label}: {v.text()}; the year's last period decides."
    if v.verdict == "performed":
        return [line(item, share, "on_track", so_far)]
    cause = _pending_cause(v) if v.verdict == "pending" else f"{name} not performed at {label}"
    return [line(item, share, "at_risk", f"{so_far} {bad.capitalize()} if it stays so.", cause)]


# ------------------------------------------------------------------ explained for sign-off (issue 13)


def explain_payments(contract: Contract) -> list[str]:
    """The contract's money terms in plain English, one line each, for ``contracts explain``.

    >>> # explain_payments(contract) -> ["Per-KPI incentive (Table 1 footnote 1): each of 12 KPIs ..."]
    """
    terms = contract.payments
    acv = (
        f"the annual contract value ({money(contract.annual_contract_value, contract.currency)})"
        if contract.annual_contract_value is not None
        else "the annual contract value (ACV, not given in the contract file)"
    )
    lines: list[str] = []
    inc = terms.per_kpi_incentive
    if inc is not None:
        weighted = [k.code for k in contract.kpis if k.incentive_weight is not None]
        codes = inc.kpis or weighted
        share = (
            f"{pct(inc.share_of_acv_per_kpi)} of {acv}"
            if inc.share_of_acv_per_kpi is not None
            else f"its own incentive_weight share of {acv}"
        )
        exempt = (
            " A KPI exempt from its level that year is a guaranteed award."
            if inc.exempt_guaranteed
            else ""
        )
        lines.append(
            f"Per-KPI incentive ({inc.clause}): each of {len(codes)} KPIs ({', '.join(codes)}) that "
            f"meets its performance level earns {share}.{exempt} {_met_reading(inc)}"
        )
    block = terms.block_plus_incentive
    if block is not None:
        lines.append(
            f"Block and incentive ({block.clause}): {pct(block.guaranteed_share)} of {acv} is "
            f"guaranteed; {pct(block.incentivised_share)} is paid on participation tiers. "
            f"Reading: {block.reading()}."
        )
        for p in block.programmes:
            tiers = ", ".join(
                f"{t.label} ({_count(t.target)}) pays {pct(block.tier_share(p, t))} of ACV"
                for t in p.tiers
            )
            floor = (
                f"; critical failure below {_count(p.critical_failure)}"
                if p.critical_failure is not None
                else ""
            )
            lines.append(
                f"  {p.programme} (KPI {p.kpi}): baseline target {_count(p.baseline_target)}"
                f"{floor}; {tiers}."
            )
    rag = terms.service_rag
    if rag is not None:
        lines.append(
            f"{_rag_reading(rag)} A red year withholds {pct(rag.withhold_on_red)} of the annual "
            f"payment; outcomes are the KPIs in categor"
            f"{'y' if len(rag.outcome_categories) == 1 else 'ies'} "
            f"{', '.join(rag.outcome_categories)}."
        )
    ds = terms.data_submission
    if ds is not None:
        lines.append(
            f"Data submission ({ds.clause}): timeliness target {ds.timeliness_target_percent:g}%, "
            f"accuracy target {ds.accuracy_target_percent:g}% (counted by {ds.accuracy_unit}); "
            f"{ds.consecutive_missed_for_failure} consecutive missed periods are a service failure."
        )
    fin = terms.finance_exception
    if fin is not None:
        cover = f" covering {', '.join(fin.report_must_cover)}" if fin.report_must_cover else ""
        lines.append(
            f"Finance exception ({fin.clause}): spend more than {fin.variance_percent:g}% from "
            f"forecast needs an exception report{cover}."
        )
    for gp in terms.group_payments:
        rule = _group_rule(contract, gp)
        bad = "not earned" if gp.kind == "incentive" else "withheld"
        lines.append(
            f"{_group_reading(gp, rule.name)} {rule.name} is performed when {rule.rule} of "
            f"{', '.join(rule.kpis)} meet their targets (a KPI within tolerance does not); "
            f"not performed, the payment is {bad}."
        )
    if terms.pro_rata_part_years and (
        inc is not None or block is not None or any(g.per == "year" for g in terms.group_payments)
    ):
        lines.append("Shares of ACV are pro rata for a part contract year (months / 12).")
    if terms.has_sanctions:
        # Each sanction in plain English (sums per event, points, credits, bands, suspensions,
        # waivers, earn-back), then where the month's arithmetic is.
        lines.extend(explain_sanctions(terms))
        lines.append(
            f"`kpibot payments {contract.id} --month` shows each month's ledger with the arithmetic."
        )
    if not lines:
        lines.append("The contract file sets no payment terms.")
    return lines
