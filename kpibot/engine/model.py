"""The contract model: parties, contract years, KPIs and their targets in the contract's own words.

Contracts are written as YAML in ``config/contracts`` and validated here. The engine never reads
files; ``kpibot.files.contracts`` does, and reports the file, line and field of any error.

>>> c = Contract.model_validate({
...     "id": "demo", "name": "Demo", "commissioner": {"name": "Council"},
...     "provider": {"name": "Provider"},
...     "contract_years": [{"year": 1, "start": "2019-04-01", "end": "2020-03-31"}],
...     "kpis": [{"code": "1", "name": "Reviews", "polarity": "bigger", "target": "95%"}],
... })
>>> c.kpi("1").target_text(1)
'95%'
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal, NoReturn

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from kpibot.engine.numbers import NumberStyle
from kpibot.engine.periods import Period, PeriodError, parse_period

Unit = Literal[
    "percent",
    "count",
    "days",
    "score",
    "rate",
    "grade",
    # issue 13: time, money and milestones
    "working_days",
    "weeks",
    "months",
    "hours",
    "minutes",
    "seconds",
    "gbp",
    "milestone",
]
# How a KPI's direction of travel is read: its last three values (the default), or each value
# against the same period a year earlier (as many councils report).
TrendMethod = Literal["last_three", "same_period_last_year"]
Polarity = Literal["bigger", "smaller"]
Category = Literal["outcome", "output", "quality", "activity", "data_submission"]
Rollup = Literal["sum", "mean", "latest"]
ReportFormat = Literal["xlsx", "pdf", "html", "csv"]
NumberStyleName = Literal["uk", "european"]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")

POLARITY_WORDS = {
    "bigger": "bigger",
    "bigger is better": "bigger",
    "higher": "bigger",
    "higher is better": "bigger",
    "more is better": "bigger",
    "up": "bigger",
    "smaller": "smaller",
    "smaller is better": "smaller",
    "lower": "smaller",
    "lower is better": "smaller",
    "less is better": "smaller",
    "down": "smaller",
}


def normalise_polarity(value: object) -> str | None:
    """Map the polarity words contracts use ("Bigger is better", "lower") to bigger/smaller."""
    if value is None:
        return None
    key = " ".join(str(value).lower().split())
    return POLARITY_WORDS.get(key)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------ seasonal profiles

# Shares written to one or two decimals (8.33% a month) add up to 100 give or take this much.
SHARE_SLACK = 0.1


class ProfileError(ValueError):
    """A seasonal profile that cannot be used, with what is wrong and how to fix it."""


def check_shares(shares: Sequence[float], field: str = "profile") -> list[float]:
    """Validate seasonal shares (percent per quarter or month); return them scaled to sum to 100.

    >>> check_shares([20, 30, 30, 20])
    [20.0, 30.0, 30.0, 20.0]
    >>> try:
    ...     check_shares([20, 30, 30, 15])
    ... except ProfileError as exc:
    ...     print(str(exc)[:58])
    the profile's shares add up to 95%, 5 points short of 100%
    """
    values = [float(s) for s in shares]
    if len(values) not in (4, 12):
        raise ProfileError(
            f"the {field} needs 4 shares (one a quarter) or 12 (one a month), not {len(values)}"
        )
    bad = [v for v in values if not math.isfinite(v) or v < 0]
    if bad:
        raise ProfileError(f"the {field}'s shares must be percentages of 0 or more, not {bad[0]:g}")
    total = sum(values)
    gap = total - 100.0
    if abs(gap) > SHARE_SLACK:
        side = "short of" if gap < 0 else "over"
        raise ProfileError(
            f"the {field}'s shares add up to {total:g}%, {abs(gap):g} points {side} 100%; give each "
            "quarter's (or month's) share of the annual target in percent, adding up to 100"
        )
    return [100.0 * v / total for v in values]


# ------------------------------------------------------------------ data submission and service RAG


class DataSubmissionTerms(_Strict):
    """The ``payments.data_submission`` section: targets and the service-failure streak.

    ``accuracy_unit`` says what accuracy counts: whole returns (a return with any amended figure
    is inaccurate) or single figures.
    """

    clause: str
    timeliness_target_percent: float = Field(default=95, gt=0, le=100)
    accuracy_target_percent: float = Field(default=95, gt=0, le=100)
    consecutive_missed_for_failure: int = Field(default=3, ge=1)
    accuracy_unit: Literal["return", "figure"] = "return"
    timeliness_kpi: str | None = None
    accuracy_kpi: str | None = None
    note: str | None = None


class ServiceRagTerms(_Strict):
    """The ``payments.service_rag`` section (seed 003, Schedule 2).

    Achievement below ``red_below_percent`` is red; from there up to ``green_from_percent`` is
    amber; at or above it, green. ``withhold_on_red`` is the share of the annual payment withheld
    for a red year, judged on the year's cumulative achievement or on its latest period.
    """

    clause: str
    red_below_percent: float = Field(default=80, ge=0, le=100)
    green_from_percent: float = Field(default=100, gt=0, le=100)
    withhold_on_red: Decimal = Field(default=Decimal("0.05"), ge=0, le=1)
    withhold_basis: Literal["cumulative", "latest_period"] = "cumulative"
    outcome_categories: list[str] = Field(default_factory=lambda: ["outcome"], min_length=1)
    note: str | None = None

    @model_validator(mode="after")
    def _bands(self) -> ServiceRagTerms:
        if self.green_from_percent < self.red_below_percent:
            raise ValueError(
                f"green_from_percent ({self.green_from_percent:g}) must not be below "
                f"red_below_percent ({self.red_below_percent:g})"
            )
        return self


# ------------------------------------------------------------------ payments

MetRule = Literal["annual_else_latest_period", "annual_only", "every_period"]
INCENTIVE_SCHEMES = ("per_kpi_incentive", "block_plus_incentive", "group_incentive")


def pct(share: Decimal | float) -> str:
    """A share of ACV as a percentage: ``Decimal('0.0025')`` → ``'0.25%'``."""
    text = f"{Decimal(share) * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


# ------------------------------------------------------------------ schema


class PerKpiIncentive(_Strict):
    """Seed 000: a share of ACV for each incentive KPI that meets its performance level.

    ``met_rule`` says what "meets its performance level" for a year means:
    ``annual_else_latest_period`` (the annual figure; failing one, the latest period reported in
    the year), ``annual_only``, or ``every_period`` (every period of the year met).
    ``no_target_rule`` covers years whose level is only to record data ("To record BF rates ...
    in agreement with commissioner"): met by reporting a figure, or not payable.
    """

    clause: str
    share_of_acv_per_kpi: Decimal | None = Field(default=None, gt=0, le=1)
    kpis: list[str] = Field(default_factory=list)
    incentivised_share: Decimal | None = Field(default=None, gt=0, le=1)
    exempt_guaranteed: bool = True
    met_rule: MetRule = "annual_else_latest_period"
    no_target_rule: Literal["reported_counts_as_met", "not_payable"] = "reported_counts_as_met"
    note: str | None = None


class Tier(_Strict):
    """One incentive tier: reaching ``target`` participants pays ``payment`` ("+2%" or 0.02)."""

    label: str
    target: float = Field(gt=0)
    payment: Decimal = Field(gt=0, le=1)

    @field_validator("payment", mode="before")
    @classmethod
    def _percent_text(cls, value: object) -> object:
        return _percent_value(value)


def _percent_value(value: object) -> object:
    """'+2%' or '0.5%' as a share (0.02, 0.005); anything else is left to the field's type."""
    if isinstance(value, str):
        text = value.strip().lstrip("+").strip()
        if text.endswith("%"):
            try:
                return Decimal(text[:-1].strip()) / 100
            except ArithmeticError:
                raise ValueError(f"'{value}' is not a percentage like '+2%'") from None
    return value


class Programme(_Strict):
    """One incentivised programme (seed 001's table row) and the KPI that counts its participants."""

    programme: str
    kpi: str
    critical_failure: float | None = Field(default=None, ge=0)
    baseline_target: float = Field(gt=0)
    max_limit: float | None = Field(default=None, gt=0)
    pot_share: Decimal | None = Field(default=None, gt=0, le=1)
    tiers: list[Tier] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> Programme:
        name = self.programme
        if self.critical_failure is not None and self.critical_failure > self.baseline_target:
            raise ValueError(
                f"{name}: critical_failure {self.critical_failure:g} is above the baseline target "
                f"{self.baseline_target:g}; the floor must be at or below the baseline"
            )
        previous = self.baseline_target
        for tier in self.tiers:
            if tier.target < self.baseline_target:
                raise ValueError(
                    f"{name}: tier '{tier.label}' ({tier.target:g}) is below the baseline target "
                    f"({self.baseline_target:g}); a tier must be at or above its baseline"
                )
            if tier.target < previous:
                raise ValueError(
                    f"{name}: tiers must rise; '{tier.label}' is below the tier before it"
                )
            if self.max_limit is not None and tier.target > self.max_limit:
                raise ValueError(
                    f"{name}: tier '{tier.label}' ({tier.target:g}) is above max_limit {self.max_limit:g}"
                )
            previous = tier.target
        return self


class BlockPlusIncentive(_Strict):
    """Seed 001: a guaranteed block share of ACV plus an incentivised share paid on tiers.

    ``tier_payment_basis`` is how a tier's "+2%" is read: ``share_of_acv`` (2% of the annual
    contract value) or ``share_of_programme_pot`` (2% of the programme's part of the incentivised
    share; ``pot_share`` per programme, else an equal split).
    """

    clause: str
    guaranteed_share: Decimal = Field(ge=0, le=1)
    incentivised_share: Decimal = Field(ge=0, le=1)
    tier_payment_basis: Literal["share_of_acv", "share_of_programme_pot"] = "share_of_acv"
    programmes: list[Programme] = Field(min_length=1)
    critical_failure_clause: str | None = None
    critical_failure_remedy: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _shares(self) -> BlockPlusIncentive:
        if self.guaranteed_share + self.incentivised_share > 1:
            raise ValueError(
                f"guaranteed_share {pct(self.guaranteed_share)} plus incentivised_share "
                f"{pct(self.incentivised_share)} is more than 100% of the contract value"
            )
        names = [p.programme for p in self.programmes]
        kpis = [p.kpi for p in self.programmes]
        for label, values in (("programme", names), ("programme KPI", kpis)):
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"each {label} may appear once; repeated: {', '.join(dupes)}")
        if self.tier_payment_basis == "share_of_acv":
            total = sum((t.payment for p in self.programmes for t in p.tiers), Decimal(0))
            if total > self.incentivised_share:
                raise ValueError(
                    f"the tier payments add up to {pct(total)} of the contract value, more than the "
                    f"incentivised share of {pct(self.incentivised_share)}"
                )
        else:
            pots = sum((p.pot_share or Decimal(0) for p in self.programmes), Decimal(0))
            if pots > 1:
                raise ValueError(
                    f"the programmes' pot_share values add up to {pct(pots)}, more than 100%"
                )
            for p in self.programmes:
                paid = sum((t.payment for t in p.tiers), Decimal(0))
                if paid > 1:
                    raise ValueError(
                        f"{p.programme}: its tiers pay {pct(paid)} of its pot, more than 100%"
                    )
        return self

    def pot(self, programme: Programme) -> Decimal:
        """A programme's part of the incentivised share, as a share of ACV."""
        if self.tier_payment_basis == "share_of_acv":
            return sum((t.payment for t in programme.tiers), Decimal(0))
        share = programme.pot_share or Decimal(1) / len(self.programmes)
        return self.incentivised_share * share

    def tier_share(self, programme: Programme, tier: Tier) -> Decimal:
        """What one tier pays, as a share of ACV, under the chosen reading."""
        if self.tier_payment_basis == "share_of_acv":
            return tier.payment
        return tier.payment * self.pot(programme)

    def reading(self) -> str:
        """The reading of "+2%" in plain English, for reasons and the report footer."""
        if self.tier_payment_basis == "share_of_acv":
            total = sum((t.payment for p in self.programmes for t in p.tiers), Decimal(0))
            return (
                f"a tier's payment is read as a share of the annual contract value, so "
                f"{len(self.programmes)} programmes' tiers add up to {pct(total)}, the "
                f"{pct(self.incentivised_share)} incentivised share ({self.clause})"
            )
        return (
            f"a tier's payment is read as a share of its programme's pot (the "
            f"{pct(self.incentivised_share)} incentivised share split over "
            f"{len(self.programmes)} programmes) ({self.clause})"
        )


class FinanceException(_Strict):
    """Seed 003, 5d: an exception report when spend varies from forecast by more than this."""

    clause: str
    variance_percent: float = Field(gt=0)
    report_must_cover: list[str] = Field(default_factory=list)
    note: str | None = None


# ------------------------------------------------------------------ sanctions: sums per event, points,
# service credits, graded levels, suspensions, waivers, earn-back, multi-condition incentives
# (evaluated by kpibot.engine.sanctions)

_RECTIFY = re.compile(r"^(?P<n>\d+)\s+(?P<unit>working\s+days?|days?|hours?)$", re.IGNORECASE)


def read_rectification(text: str) -> tuple[int, str]:
    """'1 working day' → (1, 'working_days'); '24 hours' → (24, 'hours'); '2 days' → (2, 'days').

    >>> read_rectification("2 working days")
    (2, 'working_days')
    """
    m = _RECTIFY.match(" ".join(text.split()))
    if m is None or int(m["n"]) < 1:
        raise ValueError(
            f"'{text}' is not a rectification period I can read; write it like '1 working day', "
            "'24 hours' or '2 days'"
        )
    unit = m["unit"].lower()
    kind = (
        "working_days"
        if unit.startswith("working")
        else "days"
        if unit.startswith("day")
        else "hours"
    )
    return int(m["n"]), kind


def _slug(value: str, what: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(
            f"{what} '{value}' must be lower-case letters, digits and hyphens, like 'missed-bin'"
        )
    return value


def _rising(values: Sequence[float | Decimal], what: str, strictly: bool = True) -> None:
    for a, b in zip(values, values[1:], strict=False):
        if b < a or (strictly and b == a):
            raise ValueError(
                f"{what} must {'rise' if strictly else 'not fall'} from one to the next"
            )


class EventTier(_Strict):
    """A sum for events whose measured value is strictly over ``over`` (minutes waited, say).

    The highest tier an event passes applies: £200 over 30 minutes, £1,000 over 60.
    """

    over: float = Field(ge=0)
    amount_gbp: Decimal = Field(gt=0)
    label: str | None = None


class Variation(_Strict):
    """A rate changed by contract variation: events on or after ``effective`` use the new rate."""

    effective: date
    reference: str = Field(min_length=1)
    amount_gbp: Decimal | None = Field(default=None, gt=0)
    tiers: list[EventTier] | None = None
    points: int | None = Field(default=None, gt=0)


class BreachTolerance(_Strict):
    """ "Tolerance" read as a share allowed to breach, inside the standard (not an amber band).

    A 92% standard lets 8% of the total breach: only breaches above that share are charged. The
    total is the denominator of ``of_kpi``'s figure for the month (or of the rule's own KPI).
    """

    allowed_percent: Decimal = Field(gt=0, lt=100)
    of_kpi: str | None = None


class PerEventSum(_Strict):
    """A fixed sum per event (or per person affected), optionally tiered by the event's value.

    Events come from the event log (``event``: a kind) or from a KPI whose monthly figure is a
    count (``kpi``: "3 patients over 52 weeks"; its numerator when given, else its value).
    """

    id: str
    clause: str = Field(min_length=1)
    name: str | None = None
    event: str | None = None
    kpi: str | None = None
    amount_gbp: Decimal | None = Field(default=None, gt=0)
    tiers: list[EventTier] = Field(default_factory=list)
    per: Literal["event", "person"] = "event"
    tolerance: BreachTolerance | None = None
    variations: list[Variation] = Field(default_factory=list)
    note: str | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _slug(value, "a rule id")

    @model_validator(mode="after")
    def _shape(self) -> PerEventSum:
        if (self.event is None) == (self.kpi is None):
            raise ValueError(
                f"per_event rule '{self.id}' needs exactly one of 'event' (a kind in the event "
                "log) or 'kpi' (a KPI whose monthly figure counts the events)"
            )
        if (self.amount_gbp is None) == (not self.tiers):
            raise ValueError(
                f"per_event rule '{self.id}' needs one of amount_gbp (a sum per event) or tiers "
                "(sums by the event's value), not both"
            )
        if self.tiers and self.event is None:
            raise ValueError(
                f"per_event rule '{self.id}': tiers read each event's value, so they need 'event', not 'kpi'"
            )
        if self.per == "person" and self.event is None:
            raise ValueError(
                f"per_event rule '{self.id}': 'per: person' needs events, not a KPI count"
            )
        if self.tolerance is not None and self.event is not None and self.tolerance.of_kpi is None:
            raise ValueError(
                f"per_event rule '{self.id}': a tolerance read as a share allowed to breach needs "
                "the total it is a share of; name the KPI whose denominator counts it (tolerance.of_kpi)"
            )
        _check_tiers(self.tiers, f"per_event rule '{self.id}'")
        last: date | None = None
        for v in self.variations:
            if last is not None and v.effective <= last:
                raise ValueError(f"per_event rule '{self.id}': variations must be in date order")
            last = v.effective
            if self.tiers and v.tiers is None:
                raise ValueError(
                    f"per_event rule '{self.id}': variation {v.reference} must give new tiers"
                )
            if self.amount_gbp is not None and v.amount_gbp is None:
                raise ValueError(
                    f"per_event rule '{self.id}': variation {v.reference} must give amount_gbp"
                )
            if v.points is not None:
                raise ValueError(
                    f"per_event rule '{self.id}': variation {v.reference} gives points; this rule charges pounds"
                )
            _check_tiers(v.tiers or [], f"per_event rule '{self.id}', variation {v.reference}")
        return self


def _check_tiers(tiers: Sequence[EventTier], where: str) -> None:
    _rising([t.over for t in tiers], f"{where}: tier thresholds ('over')")
    _rising([t.amount_gbp for t in tiers], f"{where}: tier amounts", strictly=False)


class RepeatMultiplier(_Strict):
    """The ``occurrence``-th failure (2nd, 3rd …) within the window scores ``multiplier`` × points."""

    occurrence: int = Field(ge=2)
    multiplier: Decimal = Field(ge=1)


class RepeatRule(_Strict):
    """Repeated failures: counted within ``within_days`` (default: the same month), per reference
    (the same property or location) when ``same_reference``."""

    within_days: int | None = Field(default=None, ge=1)
    same_reference: bool = True
    multipliers: list[RepeatMultiplier] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> RepeatRule:
        _rising([m.occurrence for m in self.multipliers], "repeat occurrences")
        _rising([m.multiplier for m in self.multipliers], "repeat multipliers", strictly=False)
        return self


class FailureType(_Strict):
    """Points for one kind of failure, per event or per person (household) affected.

    ``charge``: points on the failure itself, or only if it is not rectified in time. With a
    ``rectification`` period, an unrectified failure is charged again when the period runs out
    (``recharge: once``) or at the end of every further period until put right (``every_period``).
    """

    event: str = Field(min_length=1)
    id: str | None = None
    name: str | None = None
    clause: str | None = None
    points: int = Field(gt=0)
    per: Literal["event", "person"] = "event"
    charge: Literal["on_occurrence", "if_not_rectified"] = "on_occurrence"
    rectification: str | None = None
    recharge: Literal["none", "once", "every_period"] = "every_period"
    max_recharges: int = Field(default=12, ge=0)
    repeat: RepeatRule | None = None
    variations: list[Variation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shape(self) -> FailureType:
        if self.rectification is not None:
            read_rectification(self.rectification)
        elif self.charge == "if_not_rectified":
            raise ValueError(
                f"failure '{self.event}' is charged only if not rectified, so it needs a "
                "rectification period, like '1 working day'"
            )
        _slug(self.rule_id, "a failure id")
        last: date | None = None
        for v in self.variations:
            if v.points is None or v.amount_gbp is not None or v.tiers is not None:
                raise ValueError(
                    f"failure '{self.event}': variation {v.reference} must give points only"
                )
            if last is not None and v.effective <= last:
                raise ValueError(f"failure '{self.event}': variations must be in date order")
            last = v.effective
        return self

    @property
    def rule_id(self) -> str:
        return self.id or self.event


class GradedBand(_Strict):
    """A band below the standard: a value strictly worse than ``worse_than`` scores this band's
    ``points`` (under ``penalty_points``) or ``credit_percent`` of the monthly charge (under
    ``service_credits``); the worst band the value is past applies."""

    worse_than: float
    points: int | None = Field(default=None, gt=0)
    credit_percent: Decimal | None = Field(default=None, gt=0, le=100)


class GradedLevels(_Strict):
    """Graded bands between the standard service level and the minimum tolerable level.

    The bands run from the standard (the first band's ``worse_than``) towards the minimum;
    ``below_minimum`` is what a value worse than the minimum tolerable level scores.
    """

    id: str
    kpi: str
    clause: str = Field(min_length=1)
    standard: float
    minimum: float
    bands: list[GradedBand] = Field(min_length=1)
    below_minimum: GradedBand | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _slug(value, "a graded level id")

    def charges(self) -> list[GradedBand]:
        return [*self.bands, *([self.below_minimum] if self.below_minimum else [])]


def _check_graded(
    level: GradedLevels, polarity: str, field: Literal["points", "credit_percent"]
) -> None:
    """The bands run from the standard towards the minimum, each charging at least the last."""
    where = f"graded level '{level.id}' (KPI {level.kpi})"
    sign = 1 if polarity == "bigger" else -1
    if sign * level.minimum > sign * level.standard:
        better = "above" if sign == 1 else "below"
        raise ValueError(
            f"{where}: the minimum tolerable level {level.minimum:g} is {better} the standard {level.standard:g}"
        )
    if level.bands[0].worse_than != level.standard:
        raise ValueError(
            f"{where}: the first band must start at the standard ({level.standard:g}), not {level.bands[0].worse_than:g}"
        )
    lines = [sign * -b.worse_than for b in level.bands]
    _rising(lines, f"{where}: band thresholds (from the standard towards the minimum)")
    if any(sign * b.worse_than < sign * level.minimum for b in level.bands):
        raise ValueError(
            f"{where}: every band must lie between the standard and the minimum tolerable level"
        )
    if level.below_minimum is not None and level.below_minimum.worse_than != level.minimum:
        raise ValueError(
            f"{where}: below_minimum.worse_than must be the minimum tolerable level ({level.minimum:g})"
        )
    other = "credit_percent" if field == "points" else "points"
    for band in level.charges():
        if getattr(band, field) is None or getattr(band, other) is not None:
            raise ValueError(
                f"{where}: each band here scores {field.replace('_', ' ')} (and nothing else)"
            )
    _rising(
        [getattr(b, field) for b in level.charges()],
        f"{where}: band {field.replace('_', ' ')}",
        strictly=False,
    )


class DeductionBand(_Strict):
    """A band of monthly points: a total strictly over ``over`` takes ``deduction_percent`` of the
    monthly charge, or ``gbp_per_point`` for each point in the band (above ``over``)."""

    over: int = Field(ge=0)
    deduction_percent: Decimal | None = Field(default=None, gt=0, le=100)
    gbp_per_point: Decimal | None = Field(default=None, gt=0)
    label: str | None = None

    @model_validator(mode="after")
    def _one(self) -> DeductionBand:
        if (self.deduction_percent is None) == (self.gbp_per_point is None):
            raise ValueError(
                f"the band over {self.over} points needs one of deduction_percent or gbp_per_point"
            )
        return self


class TerminationThreshold(_Strict):
    """A termination right when the points over a rolling ``months`` reach ``points``."""

    months: int = Field(ge=1, le=36)
    points: int = Field(gt=0)
    clause: str | None = None


class PenaltyPoints(_Strict):
    """Penalty (performance) points: per failure type, multiplied for repeats, charged again when
    not rectified in time; the month's total above ``floor`` becomes a banded deduction, and
    rolling totals give termination rights."""

    clause: str = Field(min_length=1)
    failures: list[FailureType] = Field(default_factory=list)
    levels: list[GradedLevels] = Field(default_factory=list)
    floor: int = Field(default=0, ge=0)
    bands: list[DeductionBand] = Field(default_factory=list)
    termination: list[TerminationThreshold] = Field(default_factory=list)
    note: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> PenaltyPoints:
        if not self.failures and not self.levels:
            raise ValueError(
                "penalty_points lists no failures and no graded levels, so nothing scores points"
            )
        ids = [f.rule_id for f in self.failures]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(
                f"each failure may appear once; repeated: {', '.join(dupes)} (give them distinct ids)"
            )
        if self.bands:
            if self.bands[0].over < self.floor:
                raise ValueError(
                    f"the first band starts at {self.bands[0].over} points, below the floor of {self.floor}"
                )
            _rising([b.over for b in self.bands], "deduction bands ('over')")
            kinds = {b.deduction_percent is None for b in self.bands}
            if len(kinds) > 1:
                raise ValueError(
                    "deduction bands must all use deduction_percent or all gbp_per_point"
                )
            values = [b.deduction_percent or b.gbp_per_point or Decimal(0) for b in self.bands]
            if self.bands[0].deduction_percent is not None:
                _rising(values, "band deductions", strictly=False)
        return self


class ServiceCredits(_Strict):
    """Service credits: graded levels charging a percentage of the monthly charge, capped per
    month (of the monthly charge) and per contract year (of the annual charge)."""

    clause: str = Field(min_length=1)
    levels: list[GradedLevels] = Field(min_length=1)
    cap_month_percent: Decimal | None = Field(default=None, gt=0, le=100)
    cap_year_percent: Decimal | None = Field(default=None, gt=0, le=100)
    note: str | None = None


class Condition(_Strict):
    """One condition of an incentive or a recovery plan, on a KPI's monthly figure: the value
    ``reaches`` a level (at or better than it, by the KPI's polarity), or the KPI meets its target."""

    kpi: str
    reaches: float | None = None
    target_met: bool = False

    @model_validator(mode="after")
    def _one(self) -> Condition:
        if (self.reaches is None) == (not self.target_met):
            raise ValueError(
                f"a condition on KPI {self.kpi} needs either 'reaches: <level>' or 'target_met: true'"
            )
        return self


class MultiConditionIncentive(_Strict):
    """An incentive paid for a month only when every condition holds (both sub-targets met)."""

    id: str
    clause: str = Field(min_length=1)
    name: str | None = None
    amount_gbp: Decimal | None = Field(default=None, gt=0)
    percent_of_monthly: Decimal | None = Field(default=None, gt=0, le=100)
    all_of: list[Condition] = Field(min_length=2)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _slug(value, "an incentive id")

    @model_validator(mode="after")
    def _one(self) -> MultiConditionIncentive:
        if (self.amount_gbp is None) == (self.percent_of_monthly is None):
            raise ValueError(f"incentive '{self.id}' needs one of amount_gbp or percent_of_monthly")
        return self


class Suspension(_Strict):
    """Charges not applied for events in a window: a ``bedding_in`` period of ``months`` from the
    service start (``start``, default the contract's start), or a temporary suspension by
    contract ``variation`` from ``start`` to ``end``. ``rules`` limits it (default: every rule)."""

    kind: Literal["bedding_in", "variation"]
    clause: str = Field(min_length=1)
    start: date | None = None
    end: date | None = None
    months: int | None = Field(default=None, ge=1, le=36)
    rules: list[str] = Field(default_factory=list)
    reason: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> Suspension:
        if self.kind == "bedding_in" and (self.months is None or self.end is not None):
            raise ValueError("a bedding_in suspension gives its length in months (and no end date)")
        if self.kind == "variation" and (
            self.start is None or self.end is None or self.months is not None
        ):
            raise ValueError("a suspension by variation gives its start and end dates")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"the suspension ends ({self.end}) before it starts ({self.start})")
        return self


class RecordedWaiver(_Strict):
    """A commissioner's waiver written into the contract file: the item, who, when and why.

    ``item`` is an event reference (every charge arising from that event) or ``<rule>:<month>``
    (the rule's whole charge that month, e.g. ``handover-delay:2019-11``)."""

    item: str = Field(min_length=1)
    by: str = Field(min_length=1)
    on: date
    reason: str = Field(min_length=1)


class EarnBack(_Strict):
    """Deductions the provider earns back by meeting a recovery plan: when every condition holds
    in each of the ``months`` months after a deduction, ``percent`` of it is paid back."""

    id: str
    clause: str = Field(min_length=1)
    rules: list[str] = Field(default_factory=list)
    percent: Decimal = Field(default=Decimal(100), gt=0, le=100)
    months: int = Field(ge=1, le=12)
    all_of: list[Condition] = Field(min_length=1)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _slug(value, "an earn-back id")


def sanction_rule_ids(terms: PaymentTerms) -> list[str]:
    """Every rule a suspension, waiver or earn-back may name: per-event sums, failures, graded
    levels, and ``points`` (the banded deduction)."""
    ids = [r.id for r in terms.per_event]
    if terms.penalty_points is not None:
        ids += [f.rule_id for f in terms.penalty_points.failures]
        ids += [g.id for g in terms.penalty_points.levels]
        ids.append("points")
    if terms.service_credits is not None:
        ids += [g.id for g in terms.service_credits.levels]
    return ids


def _fail(loc: tuple[str | int, ...], message: str) -> NoReturn:
    """Refuse with ``message`` located at ``loc`` inside ``payments`` (so the file's line is the
    offending rule's, not the section's)."""
    error = PydanticCustomError("value_error", "{message}", {"message": message})
    raise ValidationError.from_exception_data(
        "PaymentTerms", [InitErrorDetails(type=error, loc=loc, input=None)]
    )


def check_sanctions(terms: PaymentTerms, kpis: Sequence[Any]) -> None:
    """Cross-check the sanction terms with the KPIs and with each other."""
    known = {k.code.lower(): k for k in kpis}

    def kpi(code: str, where: str, loc: tuple[str | int, ...]) -> Any:
        found = known.get(code.strip().lower())
        if found is None:
            _fail(loc, f"{where} names KPI '{code}', which this contract does not define")
        return found

    for i, r in enumerate(terms.per_event):
        if r.kpi is not None:
            kpi(r.kpi, f"per_event rule '{r.id}'", ("per_event", i, "kpi"))
        if r.tolerance is not None and r.tolerance.of_kpi is not None:
            kpi(
                r.tolerance.of_kpi,
                f"per_event rule '{r.id}' tolerance",
                ("per_event", i, "tolerance"),
            )
    for section, field in (("penalty_points", "points"), ("service_credits", "credit_percent")):
        block = getattr(terms, section)
        for i, level in enumerate(block.levels if block is not None else []):
            loc = (section, "levels", i)
            found = kpi(level.kpi, f"{section} graded level '{level.id}'", (*loc, "kpi"))
            try:
                _check_graded(level, found.polarity, field)  # type: ignore[arg-type]
            except ValueError as exc:
                _fail(loc, str(exc))
    conditions = [("incentives", i, x.id, x.all_of) for i, x in enumerate(terms.incentives)]
    conditions += [("earn_back", i, x.id, x.all_of) for i, x in enumerate(terms.earn_back)]
    for name, i, ident, all_of in conditions:
        for j, c in enumerate(all_of):
            kpi(c.kpi, f"{name} '{ident}'", (name, i, "all_of", j, "kpi"))
    ids = sanction_rule_ids(terms)
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        _fail(
            (),
            "sanction rule ids must be unique across per_event, failures and graded levels; "
            f"repeated: {', '.join(dupes)}",
        )
    named = [("suspensions", i, x.rules) for i, x in enumerate(terms.suspensions)]
    named += [("earn_back", i, x.rules) for i, x in enumerate(terms.earn_back)]
    for name, i, rules in named:
        stray = [n for n in rules if n not in ids]
        if stray:
            _fail(
                (name, i, "rules"),
                f"{name}[{i}] names rule '{stray[0]}', which is not one of: {', '.join(ids) or 'none'}",
            )
    for i, w in enumerate(terms.waivers):
        rule, sep, month = w.item.partition(":")
        if sep and rule not in ids:
            _fail(
                ("waivers", i, "item"),
                f"the waiver names rule '{rule}', which is not one of: {', '.join(ids) or 'none'}",
            )
        if sep and not re.fullmatch(r"\d{4}-\d{2}", month):
            _fail(("waivers", i, "item"), f"'{w.item}' should name a month like '{rule}:2019-11'")


class GroupPayment(_Strict):
    """A payment tied to a group rule (``groups:``, "Number of standards to be met: 3 of 4").

    ``kind: incentive`` is earned when the group is performed and not earned when it is not;
    ``kind: withholding`` is withheld when it is not performed. ``per: period`` judges the
    group at each reporting period of the contract year (``share_of_acv`` each); ``per: year``
    once, at the year's last period (``share_of_acv`` for the year, pro rata for a part year).
    While the group is pending (figures to come could still make it) the payment is at risk.
    """

    id: str
    clause: str
    group: str = Field(min_length=1)
    share_of_acv: Decimal = Field(gt=0, le=1)
    kind: Literal["incentive", "withholding"] = "incentive"
    per: Literal["period", "year"] = "year"
    note: str | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _slug(value, "group payment")

    @field_validator("share_of_acv", mode="before")
    @classmethod
    def _percent_text(cls, value: object) -> object:
        return _percent_value(value)


class PaymentTerms(_Strict):
    """The ``payments:`` section: which payment models a contract uses and how it reads them.

    ``pro_rata_part_years`` scales every ACV share by the contract year's months / 12 (seed 000's
    Year 0 is Oct–Mar: 6/12).
    """

    pro_rata_part_years: bool = True
    per_kpi_incentive: PerKpiIncentive | None = None
    block_plus_incentive: BlockPlusIncentive | None = None
    service_rag: ServiceRagTerms | None = None
    data_submission: DataSubmissionTerms | None = None
    finance_exception: FinanceException | None = None
    # Sanctions (kpibot.engine.sanctions): the monthly charge they are shares of (default ACV / 12)
    monthly_charge_gbp: Decimal | None = Field(default=None, gt=0)
    per_event: list[PerEventSum] = Field(default_factory=list)
    penalty_points: PenaltyPoints | None = None
    service_credits: ServiceCredits | None = None
    incentives: list[MultiConditionIncentive] = Field(default_factory=list)
    suspensions: list[Suspension] = Field(default_factory=list)
    waivers: list[RecordedWaiver] = Field(default_factory=list)
    earn_back: list[EarnBack] = Field(default_factory=list)
    # Payments tied to group rules (kpibot.engine.groups), checked against ``Contract.groups``
    group_payments: list[GroupPayment] = Field(default_factory=list)

    @property
    def has_money(self) -> bool:
        """True when the contract sets a payment model kpibot evaluates."""
        return any((self.per_kpi_incentive, self.block_plus_incentive, self.service_rag)) or bool(
            self.group_payments
        )

    @property
    def has_sanctions(self) -> bool:
        """True when the contract sets sums per event, points, service credits or incentives."""
        return bool(
            self.per_event or self.penalty_points or self.service_credits or self.incentives
        )


def check_against_contract(terms: PaymentTerms, info: ValidationInfo) -> PaymentTerms:
    """Cross-check payment terms with the contract's KPIs (validated before ``payments``)."""
    kpis = info.data.get("kpis")
    if not kpis:
        return terms
    known = {k.code.lower(): k for k in kpis}

    def need(code: str, where: str) -> Any:
        kpi = known.get(code.strip().lower())
        if kpi is None:
            raise ValueError(f"{where} names KPI '{code}', which this contract does not define")
        return kpi

    inc = terms.per_kpi_incentive
    if inc is not None:
        weighted = [k.code for k in kpis if k.incentive_weight is not None]
        listed = [need(c, "per_kpi_incentive.kpis").code for c in inc.kpis] or weighted
        if not listed:
            raise ValueError("per_kpi_incentive lists no KPIs and no KPI has an incentive_weight")
        stray = [c for c in weighted if c not in listed]
        if stray:
            raise ValueError(
                f"KPI {stray[0]} has an incentive_weight but is not in per_kpi_incentive.kpis; "
                "list it or remove its weight"
            )
        total = Decimal(0)
        for code in listed:
            weight = known[code.lower()].incentive_weight or inc.share_of_acv_per_kpi
            if weight is None:
                raise ValueError(
                    f"per_kpi_incentive: KPI {code} has no incentive_weight and the section sets no "
                    "share_of_acv_per_kpi"
                )
            total += weight
        cap = inc.incentivised_share if inc.incentivised_share is not None else Decimal(1)
        if total > cap:
            raise ValueError(
                f"per_kpi_incentive: the incentive weights add up to {pct(total)} of the contract "
                f"value, more than the incentivised share of {pct(cap)}"
            )
    if terms.block_plus_incentive is not None:
        for i, p in enumerate(terms.block_plus_incentive.programmes):
            need(p.kpi, f"block_plus_incentive.programmes[{i}] ({p.programme}).kpi")
    ds = terms.data_submission
    if ds is not None:
        for name in ("timeliness_kpi", "accuracy_kpi"):
            code = getattr(ds, name)
            if code is not None:
                need(code, f"data_submission.{name}")
    if terms.has_sanctions or terms.suspensions or terms.waivers or terms.earn_back:
        check_sanctions(terms, kpis)
    return terms


PaymentsField = Annotated[PaymentTerms, AfterValidator(check_against_contract)]
"""The type of ``Contract.payments``: the schema plus the cross-checks against the KPIs."""


# ------------------------------------------------------------------ alerts

AlertAudience = Literal["commissioner", "provider", "channel"]
AlertName = Literal["critical", "red", "red_run", "money"]
# Who hears each built-in alert unless the contract says otherwise.
DEFAULT_ALERT_AUDIENCE: dict[str, tuple[AlertAudience, ...]] = {
    "critical": ("commissioner", "channel"),
    "red": ("channel",),
    "red_run": ("commissioner",),
    "money": ("commissioner",),
}


class AlertRule(_Strict):
    """One built-in alert: on or off, and who hears it (the contract's parties or its channels).

    ``critical: false`` in YAML is short for ``critical: {enabled: false}``; without
    ``audience`` the default audience for that alert applies.
    """

    enabled: bool = True
    audience: list[AlertAudience] | None = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        return {"enabled": value} if isinstance(value, bool) else value


class RedRunRule(AlertRule):
    """Red for ``periods`` periods running; without it, the action-plan trigger's count (2)."""

    periods: int | None = Field(default=None, ge=1)


class AlertTerms(_Strict):
    """The ``alerts:`` section: which built-in alerts a contract sends, and to whom.

    Every alert is on by default: a critical failure to the commissioner and the contract's
    channels, a KPI turning red to the channels, red for N periods running and money newly at risk
    or withheld to the commissioner. A contract file without the section loads unchanged.

    >>> terms = AlertTerms.model_validate({"money": False, "red": {"audience": ["provider"]}})
    >>> terms.audience("money"), terms.audience("red"), terms.audience("critical")
    ([], ['provider'], ['commissioner', 'channel'])
    """

    critical: AlertRule = Field(default_factory=AlertRule)
    red: AlertRule = Field(default_factory=AlertRule)
    red_run: RedRunRule = Field(default_factory=RedRunRule)
    money: AlertRule = Field(default_factory=AlertRule)
    note: str | None = None

    def audience(self, name: AlertName) -> list[AlertAudience]:
        """Who hears alert ``name``: [] when the contract switched it off."""
        rule: AlertRule = getattr(self, name)
        if not rule.enabled:
            return []
        return list(rule.audience or DEFAULT_ALERT_AUDIENCE[name])


class Party(_Strict):
    """A commissioner or provider, with where kpibot talks to them."""

    name: str
    contact: str | None = None
    slack_channel: str | None = None
    teams_conversation: str | None = None


class ContractYear(_Strict):
    """One contract year. Year 0 may be a part year (seed 000: Oct 2016 to Mar 2017)."""

    year: int = Field(ge=0)
    label: str | None = None
    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> ContractYear:
        if self.end <= self.start:
            raise ValueError(
                f"contract year {self.year} ends ({self.end}) before it starts ({self.start})"
            )
        return self

    @property
    def name(self) -> str:
        return self.label or f"Year {self.year}"

    @property
    def months(self) -> int:
        return (self.end.year - self.start.year) * 12 + self.end.month - self.start.month + 1


YearText = str | dict[int, str]


class KPI(_Strict):
    """One key performance indicator, with per-year targets kept as the contract wrote them."""

    code: str = Field(min_length=1)
    name: str = Field(min_length=1)
    kind: Literal["measure", "deliverable", "milestone"] = "measure"
    category: Category = "outcome"
    group: str | None = None
    priority: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    unit: Unit | None = None
    polarity: Polarity = "bigger"
    frequency: str | None = Field(
        default=None, description="How often it is reported; none: as the contract reports"
    )
    source: str | None = None
    target: str | None = None
    targets: dict[int, str] = Field(default_factory=dict)
    tolerance: YearText | None = None
    critical_failure: YearText | None = None
    incentive_weight: Decimal | None = Field(default=None, ge=0, le=1)
    exempt_years: list[int] = Field(default_factory=list)
    disputed_years: dict[int, str] = Field(
        default_factory=dict,
        description="Years whose target text contradicts the KPI (kept verbatim, rated grey) and why",
    )
    benchmarks: dict[str, dict[str, float]] = Field(default_factory=dict)
    baseline: float | None = None
    benchmark_available: bool | None = None
    target_basis: Literal["period", "annual"] = "period"
    rollup: Rollup = "latest"
    profile: list[float] | None = Field(
        default=None,
        description="Seasonal shares of an annual target per quarter (4) or month (12), in percent",
    )
    notes: str | None = None
    due: date | None = Field(default=None, description="A milestone's due date")
    signed: bool | None = Field(
        default=None, description="Values may be below zero (days ahead/behind, % change)"
    )
    trend: TrendMethod | None = Field(
        default=None, description="How its trend is read; none: as the contract says"
    )
    values: Literal["period", "year_to_date"] = Field(
        default="period",
        description="Whether each figure is the period's own or the year to date (cumulative)",
    )
    in_year_targets: dict[str, str] = Field(
        default_factory=dict,
        description="Cumulative targets through the year, such as {Q1: '25%', Q4: '97%'}",
    )

    @field_validator("polarity", mode="before")
    @classmethod
    def _polarity_words(cls, value: object) -> object:
        if value == "bigger" or value == "smaller":  # as stored: skip the word lookup
            return value
        return normalise_polarity(value) or value

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        return value.strip()

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: list[float] | None) -> list[float] | None:
        return None if value is None else check_shares(value)

    @field_validator("in_year_targets", mode="before")
    @classmethod
    def _in_year_keys(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        out = {}
        for key, text in value.items():
            m = re.fullmatch(r"(?i)\s*(q|quarter|m|month)\s*(\d{1,2})\s*", str(key))
            if not m:
                raise ValueError(
                    f"in_year_targets key '{key}' is not a quarter or month; write Q1-Q4 or M1-M12"
                )
            size = 4 if m.group(1).lower().startswith("q") else 12
            n = int(m.group(2))
            if not 1 <= n <= size:
                raise ValueError(f"in_year_targets key '{key}' is out of range")
            out[f"{'Q' if size == 4 else 'M'}{n:02d}" if size == 12 else f"Q{n}"] = str(text)
        return out

    @model_validator(mode="after")
    def _has_target(self) -> KPI:
        if self.kind == "milestone":
            if self.due is None:
                raise ValueError(
                    f"KPI {self.code} is a milestone with no due date; give 'due: YYYY-MM-DD'"
                )
            return self
        if self.target is None and not self.targets:
            raise ValueError(
                f"KPI {self.code} has no target; give 'target' (all years) or 'targets' per year "
                "(use 'For information only' where the contract sets none)"
            )
        return self

    def target_text(self, year: int) -> str | None:
        """The contract's words for the target in ``year`` (the latest earlier year's if absent)."""
        return _by_year(self.targets, year, self.target)

    def tolerance_text(self, year: int) -> str | None:
        return _year_text(self.tolerance, year)

    def critical_text(self, year: int) -> str | None:
        return _year_text(self.critical_failure, year)

    def is_exempt(self, year: int) -> bool:
        return year in self.exempt_years

    def benchmark(self, period: Period, series: str = "national_average") -> float | None:
        """A benchmark for ``period``, falling back to the reporting year's figure."""
        values = self.benchmarks.get(series, {})
        if period.label in values:
            return values[period.label]
        return values.get(period.reporting_year().label)


def _by_year(per_year: dict[int, str], year: int, default: str | None) -> str | None:
    if year in per_year:
        return per_year[year]
    earlier = [y for y in per_year if y <= year]
    return per_year[max(earlier)] if earlier else default


def _year_text(value: YearText | None, year: int) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return _by_year(value, year, None)


class Reporting(_Strict):
    """How figures are reported: the period kind and the month the reporting year starts."""

    period: Literal["quarter", "month", "year"] = "quarter"
    year_start_month: int = Field(default=4, ge=1, le=12)


class HistoryFigure(_Strict):
    """A figure shipped with the contract as demo history (seed 004's seven quarters)."""

    kpi: str
    period: str
    value: float | None = None
    numerator: float | None = None
    denominator: float | None = None
    note: str | None = None


class GroupRule(_Strict):
    """A group rule: a category is performed when ``need`` of its KPIs meet their targets.

    Seed-style wording "Number of standards to be met: 3 of 4" is written ``rule: "3 of 4"``;
    ``kpis`` lists the group's KPI codes (their number must match the "of" figure).
    """

    name: str = Field(min_length=1)
    kpis: list[str] = Field(min_length=1)
    rule: str
    clause: str | None = None

    @property
    def need(self) -> int:
        return _group_need(self.rule, len(self.kpis))

    @model_validator(mode="after")
    def _readable(self) -> GroupRule:
        _group_need(self.rule, len(self.kpis))
        return self


def _group_need(rule: str, size: int) -> int:
    """'3 of 4' → 3; 'all' → size; '75%' → ceil(75% of size). Raises ValueError otherwise."""
    text = " ".join(str(rule).lower().split())
    m = re.fullmatch(r"(\d+)\s*(?:of|out of|/)\s*(\d+)", text)
    if m:
        need, of = int(m.group(1)), int(m.group(2))
        if of != size:
            raise ValueError(f"the rule '{rule}' counts {of} KPIs but the group lists {size}")
        if not 1 <= need <= of:
            raise ValueError(f"the rule '{rule}' needs between 1 and {of} KPIs met")
        return need
    if text in ("all", "all of them", "every"):
        return size
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", text)
    if m and 0 < float(m.group(1)) <= 100:
        return max(1, math.ceil(float(m.group(1)) * size / 100 - 1e-9))
    example = f"'{max(size - 1, 1)} of {size}'" if size > 1 else "'1 of 1'"
    both = " ('both' is written 'all')" if re.search(r"\bboth\b", text) else ""
    raise ValueError(
        f"'{rule}' is not a group rule I can read; write {example}, 'all' or '75%'{both}"
    )


class Contract(_Strict):
    """A contract: who, when, how much, and the KPIs it sets."""

    id: str
    name: str
    commissioner: Party
    provider: Party
    description: str | None = None
    source: str | None = None
    financial_year_start_month: int = Field(default=4, ge=1, le=12)
    reporting: Reporting = Field(default_factory=Reporting)
    contract_years: list[ContractYear] = Field(min_length=1)
    annual_contract_value: Decimal | None = Field(default=None, gt=0)
    currency: str = "GBP"
    kpis: list[KPI] = Field(min_length=1)
    history: list[HistoryFigure] = Field(default_factory=list)
    calendar: dict[str, Any] = Field(default_factory=dict)
    incidents: dict[str, Any] = Field(default_factory=dict)
    payments: PaymentsField = Field(default_factory=PaymentTerms)
    meetings: dict[str, Any] = Field(default_factory=dict)
    report_format: ReportFormat = Field(
        default="xlsx",
        description="The performance report the quarterly summary attaches: xlsx (default), pdf, html or csv",
    )
    number_style: NumberStyleName = Field(
        default="uk",
        description="How the provider writes figures: 'uk' (1,234.5) or 'european' (1.234,5); "
        "anything that could be read either way is refused",
    )
    alerts: AlertTerms = Field(default_factory=AlertTerms)
    trend: TrendMethod = Field(
        default="last_three", description="How trends are read, unless a KPI says otherwise"
    )
    groups: list[GroupRule] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError(
                "contract id must be lower-case letters, digits and hyphens, like 'one-you-lifestyle'"
            )
        return value

    @field_validator("number_style", mode="before")
    @classmethod
    def _style_name(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def numbers(self) -> NumberStyle:
        """The :class:`~kpibot.engine.numbers.NumberStyle` figures for this contract are read by."""
        return NumberStyle.named(self.number_style)

    @model_validator(mode="after")
    def _groups_known(self) -> Contract:
        known = {k.code.lower() for k in self.kpis}
        for i, g in enumerate(self.groups):
            for code in g.kpis:
                if code.strip().lower() not in known:
                    raise ValueError(
                        f"groups[{i}] ({g.name}) names KPI '{code}', which the contract does not "
                        "define"
                    )
            if g.need > len(g.kpis):
                raise ValueError(
                    f"groups[{i}] ({g.name}) needs {g.need} of {len(g.kpis)} KPIs met, more than "
                    "it has"
                )
        names = [g.name.strip().lower() for g in self.groups]
        seen: set[str] = set()
        for i, gp in enumerate(self.payments.group_payments):
            loc: tuple[str | int, ...] = ("payments", "group_payments", i)
            if gp.id in seen:
                _fail((*loc, "id"), f"group payment id '{gp.id}' is used twice; give each its own")
            seen.add(gp.id)
            if gp.group.strip().lower() not in names:
                groups_known = (
                    ", ".join(f"'{g.name}'" for g in self.groups) or "none (add `groups:`)"
                )
                _fail(
                    (*loc, "group"),
                    f"group payment '{gp.id}' names group '{gp.group}', which is not one of this "
                    f"contract's groups: {groups_known}",
                )
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Contract:
        years = [y.year for y in self.contract_years]
        if len(set(years)) != len(years):
            raise ValueError("contract years must be numbered once each")
        ordered = sorted(self.contract_years, key=lambda y: y.start)
        for prev, cur in zip(ordered, ordered[1:], strict=False):
            if cur.start <= prev.end:
                raise ValueError(f"contract years {prev.year} and {cur.year} overlap")
        codes = [k.code for k in self.kpis]
        dupes = sorted(c for c, n in Counter(codes).items() if n > 1)
        if dupes:
            raise ValueError(f"KPI codes must be unique; repeated: {', '.join(dupes)}")
        known = set(codes)
        for k in self.kpis:
            bad = [y for y in [*k.targets, *k.exempt_years] if y not in years]
            if bad:
                raise ValueError(
                    f"KPI {k.code} names contract year {bad[0]}, which the contract does not have"
                )
        for i, fig in enumerate(self.history):
            if fig.kpi not in known:
                raise ValueError(
                    f"history[{i}] names KPI '{fig.kpi}', which the contract does not define"
                )
            try:
                self.parse_period(fig.period)
            except PeriodError as exc:
                raise ValueError(f"history[{i}]: {exc}") from None
        return self

    @property
    def start(self) -> date:
        return min(y.start for y in self.contract_years)

    @property
    def end(self) -> date:
        return max(y.end for y in self.contract_years)

    def kpi(self, code: str) -> KPI:
        for k in self.kpis:
            if k.code.lower() == code.strip().lower():
                return k
        raise KeyError(code)

    def parse_period(self, text: str) -> Period:
        """Read a period label in this contract's reporting year (Nov–Jan quarters for seed 001)."""
        return parse_period(text, self.reporting.year_start_month)

    def year_for(self, period: Period) -> ContractYear | None:
        """The contract year holding the end of ``period``, or None outside the contract."""
        for y in self.contract_years:
            if y.start <= period.end <= y.end:
                return y
        for y in self.contract_years:
            if y.start <= period.start <= y.end:
                return y
        return None

    def covers(self, period: Period) -> bool:
        return self.start <= period.end and period.start <= self.end
