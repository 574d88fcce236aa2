"""Year-end forecasts: the wording, the rules, the vectorised path, and accuracy on seed 004."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from kpibot.engine.evaluate import TermsEntry, annotate_periods, evaluate, terms_frame
from kpibot.engine.forecast import (
    backtest,
    forecast_frame,
    forecast_kpi,
    forecast_scorecard,
    kpi_meta,
    next_value,
)
from kpibot.engine.periods import parse_period
from kpibot.engine.scorecard import Scorecard, history_frame
from kpibot.engine.targets import YearTerms, parse_target

Q = ["2019/20 Q1", "2019/20 Q2", "2019/20 Q3", "2019/20 Q4"]

# --------------------------------------------------------------------------- wording


def _count(values, **kw):
    args = {"polarity": "bigger", "unit": "count", "tolerance": 1500, "noun": "participants"} | kw
    return forecast_kpi(dict(zip(Q, values, strict=False)), 1800, **args)


def test_statement_for_a_count_kpi_half_way():
    f = _count([400, 410])
    assert f.statement == (
        "on this trajectory 1,620 of 1,800 (90%), amber; 90 more participants a quarter needed to reach target"
    )
    assert (f.projected, f.ratio, f.rag, f.remaining) == (1620, 0.9, "amber", 2)
    assert f.per_period_needed == 495  # (1,800 - 810) / 2 quarters
    assert f.per_period_extra == 90  # 495 against the 405 a quarter on this trajectory


@pytest.mark.parametrize(("values", "more"), [([405], 60), ([400, 410, 405], 180)])
def test_the_shortfall_is_spread_over_the_quarters_left(values, more):
    f = _count(values)
    assert f.statement == (
        f"on this trajectory 1,620 of 1,800 (90%), amber; {more} more participants a quarter needed "
        "to reach target"
    )


def test_statement_on_track_and_year_ended():
    assert (
        _count([460, 470]).statement
        == "on this trajectory 1,860 of 1,800 (103%), green; on track to reach target"
    )
    done = _count([400, 410, 405, 405])
    assert done.statement == "the year ended at 1,620 of 1,800 (90%), amber"
    assert done.per_period_needed is None


def test_statement_without_a_noun_rounds_the_need_up():
    f = forecast_kpi(
        {"2019/20 Q1": 400, "2019/20 Q2": 410.2}, 1800, polarity="bigger", unit="count"
    )
    assert f.per_period_extra == pytest.approx(89.8)
    assert (
        f.statement
        == "on this trajectory 1,620 of 1,800 (90%), red; 90 more a quarter needed to reach target"
    )


def test_statement_names_a_critical_failure():
    f = forecast_kpi(
        {"2019/20 Q1": 250, "2019/20 Q2": 300}, 1800, critical=1200, noun="participants"
    )
    assert f.critical
    assert f.statement.endswith("; below the critical-failure level of 1,200")


def test_statement_for_a_smaller_is_better_count():
    f = forecast_kpi(
        {"2019/20 Q1": 4, "2019/20 Q2": 5},
        12,
        polarity="smaller",
        unit="count",
        tolerance=15,
        noun="complaints",
    )
    assert f.statement == (
        "on this trajectory 18 of 12 (150%), red; 3 fewer complaints a quarter needed to stay within target"
    )


def test_statement_for_percentages():
    f = forecast_kpi(
        {"2019/20 Q1": 87, "2019/20 Q2": 91, "2019/20 Q3": 96},
        90,
        polarity="bigger",
        unit="percent",
        tolerance=85,
        basis="period",
        rollup="latest",
    )
    assert f.statement == "on this trajectory 96% next quarter against a target of 90%, green"
    mean = forecast_kpi(
        {"2019/20 Q1": 80, "2019/20 Q2": 84},
        90,
        polarity="bigger",
        unit="percent",
        tolerance=85,
        basis="annual",
        rollup="mean",
    )
    assert mean.year_value == 83.0
    assert mean.per_period_needed == 98.0  # (90 × 4 - 164) / 2
    assert mean.statement == (
        "on this trajectory 83% for the year against a target of 90%, red; 98% a quarter needed "
        "for the rest of the year"
    )
    tbd = forecast_kpi(
        {"2019/20 Q1": 74, "2019/20 Q2": 56}, None, unit="percent", basis="period", rollup="latest"
    )
    assert (tbd.rag, tbd.statement) == ("grey", "on this trajectory 56% next quarter, no target")


def test_no_figures_no_forecast():
    f = forecast_kpi({}, 1800)
    assert (f.projected, f.rag) == (None, "grey")


def test_a_strict_target_is_kept():
    strict = parse_target(">40%", "bigger")
    f = forecast_kpi(
        {"2019/20 Q1": 40.0},
        strict,
        polarity="bigger",
        unit="percent",
        basis="period",
        rollup="latest",
    )
    assert f.position == "not_met"


# ----------------------------------------------------------------------------- rules


def test_next_value_rules():
    assert next_value([]) == (None, "last")
    assert next_value([70.0, 75.0]) == (75.0, "last")  # too few values to judge
    assert next_value([41.0, 68.0, 76.0, 81.0]) == (81.0, "last")  # a trend: the last value wins
    value, rule = next_value([90.0, 84.0, 90.0, 82.0, 85.0, 95.0])  # see-saw: the mean wins
    assert (rule, value) == ("mean3", pytest.approx((82 + 85 + 95) / 3))
    assert next_value([5.0, 5.0, 5.0]) == (5.0, "last")  # a tie keeps the last value


def test_profile_beats_last_years_pattern_beats_even():
    history = {
        "2018/19 Q1": 300,
        "2018/19 Q2": 420,
        "2018/19 Q3": 480,
        "2018/19 Q4": 500,
        "2019/20 Q1": 380,
        "2019/20 Q2": 430,
    }
    seasonal = forecast_kpi(history, 1800)
    assert seasonal.year_value == pytest.approx(810 / (720 / 1700))
    assert seasonal.next_value == pytest.approx(seasonal.year_value * 480 / 1700)
    profiled = forecast_kpi(history, 1800, profile=[20, 30, 25, 25])
    assert profiled.year_value == pytest.approx(810 / 0.5)
    assert profiled.next_value == pytest.approx(1620 * 0.25)
    part_year = {k: v for k, v in history.items() if k != "2018/19 Q1"}
    # Last year is incomplete, so the profile is even.
    assert forecast_kpi(part_year, 1800).year_value == pytest.approx(1620)


def test_a_missing_quarter_is_paced_on_the_quarters_reported():
    f = forecast_kpi({"2019/20 Q1": 400, "2019/20 Q2": None, "2019/20 Q3": 410}, 1800)
    assert f.year_value == pytest.approx(810 / 0.5)
    assert f.remaining == 2  # Q2's return may still come, and Q4's is due


# ------------------------------------------------------------------- vectorised path


def _synthetic(seed: int, n_series: int):
    """Evaluated frames for random series of every shape, and each series' scalar arguments."""
    rng = random.Random(seed)
    figures, entries, args = [], [], {}
    for i in range(n_series):
        code = f"K{i}"
        kind = rng.choice(["quarter", "quarter", "month", "year"])
        shape = rng.choice(["count", "count", "pct_latest", "pct_mean", "pct_annual_mean"])
        pol = rng.choice(["bigger", "smaller"])
        start = parse_period({"quarter": "2017/18 Q1", "month": "2017-04", "year": "2017/18"}[kind])
        start = start.shift(rng.randrange(0, 3))
        length = rng.randrange(1, 13) if kind == "quarter" else rng.randrange(1, 30)
        labels = [start.shift(k).label for k in range(length)]
        if shape == "count":
            level = rng.uniform(50, 600)
            values = [round(level * rng.uniform(0.6, 1.4)) for _ in labels]
            target_v, tol_v, crit_v = level * 4 * rng.uniform(0.8, 1.2), None, level * 3
            if kind == "month":
                target_v *= 3
                crit_v *= 3
            tol_v = target_v * (0.85 if pol == "bigger" else 1.15) if rng.random() < 0.6 else None
            unit, rollup, basis = "count", "sum", "annual"
            profile = rng.choice([None, None, [10, 20, 30, 40], [9.0] * 4 + [8.0] * 8])
        else:
            values = [round(rng.uniform(40, 100), rng.choice([0, 1])) for _ in labels]
            target_v = rng.choice([60.0, 80.0, 95.0])
            tol_v = target_v - 10 if pol == "bigger" else target_v + 10
            crit_v = None
            unit, profile = "percent", None
            rollup = "latest" if shape == "pct_latest" else "mean"
            basis = "annual" if shape == "pct_annual_mean" else "period"
        values = [
            None if rng.random() < 0.1 and k < length - 1 else v for k, v in enumerate(values)
        ]
        target = parse_target(f"{target_v!r}", pol)
        if basis == "annual":
            target = replace(target, annual=True)
        tol = parse_target(f"{tol_v!r}", pol, role="tolerance") if tol_v is not None else None
        crit = (
            parse_target(f"{'<' if pol == 'bigger' else '>'}{crit_v!r}", pol, role="critical")
            if crit_v is not None
            else None
        )
        entries.append(TermsEntry("c", code, 0, pol, unit, YearTerms(0, target, tol, crit, False)))
        figures += [
            {
                "contract": "c",
                "kpi": code,
                "period": p,
                "value": math.nan if v is None else float(v),
            }
            for p, v in zip(labels, values, strict=True)
        ]
        args[code] = (
            {p: v for p, v in zip(labels, values, strict=True)},
            {
                "target": target_v,
                "tolerance": tol_v,
                "critical": crit_v,
                "profile": profile,
                "polarity": pol,
                "unit": unit,
                "basis": basis,
                "rollup": rollup,
            },
        )
    frame = evaluate(
        annotate_periods(pd.DataFrame(figures), year_of=lambda c, p: 0), terms_frame(entries)
    )
    meta = pd.DataFrame(
        [
            {
                "contract": "c",
                "kpi": k,
                "polarity": a["polarity"],
                "unit": a["unit"],
                "rollup": a["rollup"],
                "target_basis": a["basis"],
                "profile": tuple(a["profile"]) if a["profile"] else None,
            }
            for k, (_, a) in args.items()
        ]
    )
    return frame, meta, args


FIELDS = [
    "next_value",
    "year_value",
    "projected",
    "target",
    "ratio",
    "per_period_needed",
    "per_period_extra",
]


def _same(row, f):
    for field in FIELDS:
        want = getattr(f, field)
        got = row[field]
        if want is None:
            assert math.isnan(got), field
        else:
            assert got == pytest.approx(want, rel=1e-12, abs=1e-9), field
    assert (
        row["position"],
        row["rag"],
        bool(row["critical"]),
        row["remaining"],
        row["method"],
    ) == (f.position, f.rag, f.critical, f.remaining, f.method)
    assert row["statement"] == f.statement


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_forecast_frame_equals_forecast_kpi(seed):
    frame, meta, args = _synthetic(seed, 150)
    out = forecast_frame(frame, meta).set_index("kpi")
    assert len(out) == len(args)
    for code, (values, a) in args.items():
        _same(out.loc[code], forecast_kpi(values, **a))


def test_forecast_frame_equals_forecast_kpi_on_seed_004(seed_contracts):
    contract = seed_contracts["childrens-trust"]
    card = Scorecard.build(contract, history_frame(contract))
    out = forecast_frame(card.frame, kpi_meta(contract)).set_index("kpi")
    meta = kpi_meta(contract).set_index("kpi")
    for code, rows in card.frame.groupby("kpi"):
        if rows["value"].isna().all():
            continue
        last = rows[rows["value"].notna()].iloc[-1]
        values = dict(zip(rows["period"], rows["value"], strict=True))
        m = meta.loc[code]
        f = forecast_kpi(
            values,
            None if math.isnan(last["threshold"]) else last["threshold"],
            polarity=m["polarity"],
            unit=m["unit"],
            tolerance=None
            if math.isnan(last["tolerance_threshold"])
            else last["tolerance_threshold"],
            basis=m["target_basis"],
            rollup=m["rollup"],
        )
        _same(out.loc[code], f)


def test_forecast_scorecard_for_an_annual_count(seed_contracts):
    contract = seed_contracts["one-you-lifestyle"]
    periods = ["2019/20 Q1", "2019/20 Q2", "2019/20 Q3"]
    figures = pd.DataFrame(
        {"contract": contract.id, "kpi": "PA-1", "period": periods, "value": [400.0, 410.0, 999.0]}
    )
    card = Scorecard.build(contract, figures)
    meta = kpi_meta(contract).set_index("kpi")
    assert (meta.loc["PA-1", "rollup"], meta.loc["PA-1", "target_basis"]) == ("sum", "annual")
    assert meta.loc["PA-2", "target_basis"] == "period"
    row = (
        forecast_scorecard(card, as_of=contract.parse_period("2019/20 Q2"))
        .set_index("kpi")
        .loc["PA-1"]
    )
    assert (row["period"], row["next_period"], row["target"], row["projected"]) == (
        "2019/20 Q2",
        "2019/20 Q3",
        1800.0,
        1620.0,
    )
    assert (
        row["statement"]
        == "on this trajectory 1,620 of 1,800 (90%), red; 90 more a quarter needed to reach target"
    )
    assert not row["critical"]


def test_forecast_frame_without_figures_or_columns():
    assert forecast_frame(
        pd.DataFrame(
            {"kpi": [], "period": [], "ordinal": [], "ry": [], "per_year": [], "value": []}
        )
    ).empty
    with pytest.raises(ValueError, match="lacks ordinal"):
        forecast_frame(pd.DataFrame({"kpi": ["A"], "period": ["2019/20 Q1"], "value": [1.0]}))


# ----------------------------------------------------------------- accuracy on seed 004

# 2018/19 Q4 is forecast from 2018/19 Q1-Q3 (nothing earlier exists); 2019/20 Q3 from every
# earlier quarter of the series, 2018/19 Q1 to 2019/20 Q2 (Q1-Q2 only for 2019/20's new measures).
HOLDOUTS = ["2018/19 Q4", "2019/20 Q3"]


def test_forecast_error_on_seed_004_is_no_worse_than_the_last_value(seed_contracts):
    contract = seed_contracts["childrens-trust"]
    card = Scorecard.build(contract, history_frame(contract))
    result = backtest(card.frame, HOLDOUTS, kpi_meta(contract))
    # Every KPI with a figure at the holdout and at least one before it.
    history = card.frame[card.frame["value"].notna()]
    for label in HOLDOUTS:
        cut = parse_period(label).ordinal
        expected = {
            k
            for k, rows in history.groupby("kpi")
            if (rows["period"] == label).any() and (rows["ordinal"] < cut).any()
        }
        assert set(result.loc[result["period"] == label, "kpi"]) == expected
    assert len(result) == 71
    mae = float(np.mean(np.abs(result["forecast"] - result["actual"])))
    naive = float(np.mean(np.abs(result["naive"] - result["actual"])))
    pct = result["kpi"].map(kpi_meta(contract).set_index("kpi")["unit"]) == "percent"
    mae_pct = float(np.mean(np.abs(result["forecast"] - result["actual"])[pct]))
    naive_pct = float(np.mean(np.abs(result["naive"] - result["actual"])[pct]))
    print(
        f"\nseed 004 holdouts {', '.join(HOLDOUTS)}: {len(result)} forecasts; "
        f"MAE {mae:.3f} vs last value {naive:.3f} (percent KPIs: {mae_pct:.3f} vs {naive_pct:.3f})"
    )
    assert mae <= naive
    assert mae_pct <= naive_pct
