"""Many contracts' status in one pass gives exactly what one scorecard per contract gives.

``standings`` evaluates every contract's figures together; ``Scorecard.build(...).at(period)`` is
the per-contract path the status overview used before. These tests hold the two to identical
rows over the four seed contracts (their demo history) and a generated set that exercises every
phrasing in the seeds, monthly and annual KPIs, benchmarks, missing returns, figures outside the
contract and figures for KPIs the contract does not define.
"""

from __future__ import annotations

import math
import random
from datetime import date

import pandas as pd
import pytest

from kpibot.engine.model import Contract
from kpibot.engine.periods import Period, period_containing
from kpibot.engine.scorecard import FIGURE_COLUMNS, Scorecard, history_frame, reporting_kind
from kpibot.engine.status import KpiStatus, default_period, standings

TODAY = date(2020, 6, 1)


def legacy(contract: Contract, figures: pd.DataFrame, at: Period | None, today: date):
    """The per-contract path: the report period, then the scorecard at it, as status had it."""
    if at is None:
        latest = Scorecard.build(contract, figures).latest_period()
        at = latest or default_period(contract, today)
    rows = Scorecard.build(contract, figures, [at]).at(at)
    out = []
    if not rows.empty:
        for r in rows.itertuples():
            out.append(
                KpiStatus(
                    r.kpi,
                    r.period,
                    int(r.year),
                    float(r.value),
                    float(r.ytd_value),
                    float(r.ytd_target),
                    str(r.target),
                    r.position,
                    r.rag,
                    r.trend,
                    bool(r.critical),
                )
            )
    return at, out


def same(a: KpiStatus, b: KpiStatus) -> bool:
    for x, y in zip(a, b, strict=True):
        if isinstance(x, float) and isinstance(y, float):
            if not (math.isnan(x) and math.isnan(y)) and x != y:
                return False
        elif x != y:
            return False
    return True


def periods_of(contract: Contract, kind: str) -> list[Period]:
    ysm = contract.reporting.year_start_month
    p = period_containing(contract.start, kind, ysm)
    out = []
    while p.start <= contract.end:
        out.append(p)
        p = p.shift(1)
    return out


def generated(contract: Contract, rng: random.Random, copy: int) -> tuple[Contract, pd.DataFrame]:
    """A copy of ``contract`` under a new id with random figures for every KPI and period."""
    twin = contract.model_copy(update={"id": f"{contract.id}-{copy}"})
    rows = []
    for k in twin.kpis:
        kind = reporting_kind(k, twin.reporting.period)
        span = periods_of(twin, kind)
        # Keep some series short, so the latest period differs from KPI to KPI.
        span = span[: rng.randint(0, len(span))] if rng.random() < 0.3 else span
        for p in span:
            if rng.random() < 0.1:
                continue
            value = math.nan if rng.random() < 0.05 else round(rng.uniform(0, 150), 1)
            bench = round(rng.uniform(20, 90), 1) if rng.random() < 0.2 else math.nan
            rows.append((twin.id, k.code, p.label, value, bench))
    outside = period_containing(twin.end, twin.reporting.period, twin.reporting.year_start_month)
    rows.append((twin.id, twin.kpis[0].code, outside.shift(3).label, 50.0, math.nan))
    rows.append((twin.id, "NOT-A-KPI", outside.shift(-2).label, 12.0, math.nan))
    return twin, pd.DataFrame(rows, columns=FIGURE_COLUMNS)


@pytest.fixture(scope="module")
def population(seed_contracts):
    rng = random.Random(20240612)
    contracts, frames = [], []
    for c in seed_contracts.values():
        contracts.append(c)
        frames.append(history_frame(c))
        for copy in range(6):
            twin, figures = generated(c, rng, copy)
            contracts.append(twin)
            frames.append(figures)
    return contracts, pd.concat(frames, ignore_index=True)


def check(contracts, figures, at, today=TODAY):
    got = standings(contracts, figures, today, at)
    for c in contracts:
        asked = at.get(c.id) if at else None
        own = figures[figures["contract"] == c.id]
        period, rows = legacy(c, own, asked, today)
        status = got[c.id]
        assert status.period.label == period.label, c.id
        assert len(status.rows) == len(rows), c.id
        for a, b in zip(status.rows, rows, strict=True):
            assert same(a, b), (c.id, a, b)


def test_one_pass_equals_one_scorecard_per_contract_at_the_latest_period(population):
    contracts, figures = population
    check(contracts, figures, None)


def test_one_pass_equals_one_scorecard_per_contract_at_every_period(population):
    contracts, figures = population
    rng = random.Random(7)
    for _ in range(4):
        at = {}
        for c in contracts:
            choices = periods_of(c, c.reporting.period)
            at[c.id] = rng.choice([*choices, choices[0].shift(-2), choices[-1].shift(2)])
        check(contracts, figures, at)


def test_contracts_without_figures_show_the_default_period_of_the_day(population):
    contracts, _ = population
    empty = pd.DataFrame(columns=FIGURE_COLUMNS)
    for today in (date(2018, 1, 10), date(2020, 6, 1), date(2030, 1, 1)):
        check(contracts, empty, None, today)
        got = standings(contracts, empty, today)
        assert all(s.depends_on_today() for s in got.values())


def test_one_kpi_refreshed_alone_matches_the_whole_contract(population):
    contracts, figures = population
    whole = standings(contracts, figures, TODAY)
    for c in contracts[:10]:
        status = whole[c.id]
        code = c.kpis[len(c.kpis) // 2].code
        own = figures[(figures["contract"] == c.id) & (figures["kpi"] == code)]
        fresh = standings([c], own, TODAY, {c.id: status.period}, {c.id: [code]})[c.id]
        assert [r.kpi for r in fresh.rows] in ([code], [])
        spliced = status.with_rows(c, fresh)
        assert all(same(a, b) for a, b in zip(spliced.rows, status.rows, strict=True))
