"""The contract model: parties, contract years, KPIs and their targets in the contract's own words.

Contracts are written as YAML in ``config/contracts`` and validated here. The engine never reads
files; ``kpibot.contract_files`` does, and reports the file, line and field of any error.

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

import re
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kpibot.engine.payments import PaymentsField, PaymentTerms
from kpibot.engine.periods import Period, PeriodError, parse_period
from kpibot.engine.profile import check_shares

Unit = Literal["percent", "count", "days", "score", "rate", "grade"]
Polarity = Literal["bigger", "smaller"]
Category = Literal["outcome", "output", "quality", "activity", "data_submission"]
Rollup = Literal["sum", "mean", "latest"]

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
    kind: Literal["measure", "deliverable"] = "measure"
    category: Category = "outcome"
    group: str | None = None
    priority: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    unit: Unit | None = None
    polarity: Polarity = "bigger"
    frequency: str = "quarterly"
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

    @field_validator("polarity", mode="before")
    @classmethod
    def _polarity_words(cls, value: object) -> object:
        return normalise_polarity(value) or value

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        return value.strip()

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: list[float] | None) -> list[float] | None:
        return None if value is None else check_shares(value)

    @model_validator(mode="after")
    def _has_target(self) -> KPI:
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

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError(
                "contract id must be lower-case letters, digits and hyphens, like 'one-you-lifestyle'"
            )
        return value

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
        dupes = sorted({c for c in codes if codes.count(c) > 1})
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
