"""Synthetic contracts and figures shared by the status benchmarks (``status_latency.py``, ``scale.py``).

Contracts of ``KPIS`` KPIs drawn from ``PROFILES`` (real target phrasings, one text per contract
year), three contract years 2017/18 … 2019/20, and twelve quarters of figures per KPI: a level, a
drift and noise, with 3% of returns missing.

>>> rng = np.random.default_rng(1)
>>> [c.id for c in contract_definitions(rng, 2)]
['bench-001', 'bench-002']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kpibot.engine.model import Contract
from kpibot.engine.periods import parse_period
from kpibot.engine.targets import compile_contract
from kpibot.store.rows import NewFigure

JsonDict = dict[str, Any]
KPIS = 40
FIRST_YEAR = 2017
YEARS = 3
PERIODS = [
    f"{FIRST_YEAR + y}/{(FIRST_YEAR + y + 1) % 100:02d} Q{q}"
    for y in range(YEARS)
    for q in (1, 2, 3, 4)
]
MISSING_RATE = 0.03


@dataclass(frozen=True)
class KpiProfile:
    """A kind of KPI as contracts word it (one text per contract year) and how its figures run."""

    label: str
    unit: str
    polarity: str
    targets: tuple[str, str, str]
    mean: float
    sd: float
    weight: float
    tolerance: str | None = None
    critical: str | None = None
    decimals: int = 1
    ceiling: float | None = None


PROFILES = [
    KpiProfile(
        "Assessments completed within 45 days",
        "percent",
        "bigger",
        ("Target 90%", "Target 92%", "Target 95%"),
        90,
        6,
        6,
        tolerance="Tolerance 85%",
        ceiling=100,
    ),
    KpiProfile(
        "Children with a current plan",
        "percent",
        "bigger",
        ("95%",) * 3,
        94,
        4,
        6,
        tolerance="90%",
        ceiling=100,
    ),
    KpiProfile(
        "Smokers quit at four weeks",
        "percent",
        "bigger",
        (">40%", ">40%", ">45%"),
        45,
        8,
        4,
        critical="Below 25%",
    ),
    KpiProfile(
        "Participants leaving early",
        "percent",
        "smaller",
        ("<22.5%", "<22.5%", "<20%"),
        24,
        10,
        3,
        critical="Higher than 55% leaving early",
    ),
    KpiProfile(
        "Days from referral to adoption",
        "days",
        "smaller",
        ("140 days",) * 3,
        150,
        30,
        3,
        tolerance="180 days",
        decimals=0,
    ),
    KpiProfile(
        "Health checks taken up",
        "percent",
        "bigger",
        ("35% minimum", "35% minimum", "40% minimum"),
        40,
        7,
        2,
    ),
    KpiProfile(
        "Families actively supported",
        "count",
        "bigger",
        ("100 active families",) * 3,
        105,
        15,
        2,
        tolerance="Tolerance 90 active families",
        decimals=0,
    ),
    KpiProfile("Visits within the agreed window", "percent", "bigger", ("50-75%",) * 3, 60, 12, 2),
    KpiProfile(
        "New measure: repeat referrals", "percent", "bigger", ("TBD*", "80%", "80%"), 78, 9, 1
    ),
    KpiProfile(
        "Clients reporting improved wellbeing",
        "percent",
        "bigger",
        (
            "Improvement on previous year (62%)",
            "Improvement on previous year",
            "Improvement on previous year",
        ),
        63,
        6,
        1,
    ),
]


# ------------------------------------------------------------------------------ the data


def contract_definitions(
    rng: np.random.Generator, count: int, *, first: int = 1, compile_terms: bool = True
) -> list[Contract]:
    """``count`` contracts of ``KPIS`` KPIs each, drawn from ``PROFILES``, validated (and
    compiled, unless ``compile_terms`` is false); ids count from ``first``."""
    weights = np.array([p.weight for p in PROFILES])
    kinds = rng.choice(len(PROFILES), size=(count, KPIS), p=weights / weights.sum())
    years = [
        {
            "year": y + 1,
            "label": f"{FIRST_YEAR + y}/{(FIRST_YEAR + y + 1) % 100:02d}",
            "start": f"{FIRST_YEAR + y}-04-01",
            "end": f"{FIRST_YEAR + y + 1}-03-31",
        }
        for y in range(YEARS)
    ]
    contracts = []
    for c in range(first - 1, first - 1 + count):
        kpis: list[JsonDict] = []
        for k in range(KPIS):
            p = PROFILES[int(kinds[c - first + 1, k])]
            kpi: JsonDict = {
                "code": f"K{k + 1:02d}",
                "name": f"{p.label} ({k + 1})",
                "unit": p.unit,
                "polarity": p.polarity,
                "frequency": "Quarterly",
                "category": "quality",
            }
            if len(set(p.targets)) == 1:
                kpi["target"] = p.targets[0]
            else:
                kpi["targets"] = {y + 1: text for y, text in enumerate(p.targets)}
            if p.tolerance:
                kpi["tolerance"] = p.tolerance
            if p.critical:
                kpi["critical_failure"] = p.critical
            kpis.append(kpi)
        contract = Contract.model_validate(
            {
                "id": f"bench-{c + 1:03d}",
                "name": f"Benchmark contract {c + 1:03d}",
                "commissioner": {"name": "The Council"},
                "provider": {"name": f"Provider {c + 1:03d}"},
                "reporting": {"period": "quarter", "year_start_month": 4},
                "contract_years": years,
                "kpis": kpis,
            }
        )
        if compile_terms:
            compile_contract(contract)  # every phrasing must read, as at a real contract load
        contracts.append(contract)
    return contracts


def figures_for(contract: Contract, rng: np.random.Generator) -> list[NewFigure]:
    """Twelve quarters of figures for every KPI: a level, a drift and noise; some returns missing."""
    periods = [parse_period(label, 4) for label in PERIODS]
    by_label = {p.label: p for p in PROFILES}
    rows = []
    step = np.arange(len(periods), dtype=float)
    for kpi in contract.kpis:
        p = by_label[kpi.name.rsplit(" (", 1)[0]]
        values = p.mean + p.sd * (
            rng.normal(0, 0.6) + rng.normal(0, 0.08) * step + rng.normal(0, 0.6, len(periods))
        )
        values = np.clip(values, 0.0, p.ceiling if p.ceiling is not None else np.inf)
        values = np.round(values, p.decimals)
        missing = rng.random(len(periods)) < MISSING_RATE
        rows.extend(
            NewFigure(kpi.code, period, value=float(v))
            for period, v, gone in zip(periods, values, missing, strict=True)
            if not gone
        )
    return rows
