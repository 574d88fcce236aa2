"""Benchmark: year-end forecasts for a whole estate at once, and their accuracy on seed 004.

Builds a scorecard-shaped frame (the columns ``Scorecard.frame`` has, thresholds pro-rata for
annual targets as ``evaluate`` gives them) for 2,000 contracts × 40 KPIs, each series 8–12
quarters long and ending in 2019/20 Q1–Q4: a quarter are annual counts (seasonal, some with a
contract profile, rolled up by ``sum``), the rest percentages (``latest`` or ``mean``), with 5%
of returns missing. Seeded, so every run sees the same data.

Timed (best of 3): one ``forecast_frame`` call over every series, statements included. Building
the data is not timed.

Checked: on a sample of series the vectorised forecasts equal ``forecast_kpi``'s; on seed 004's
history (2018/19 Q4 from 2018/19 Q1–Q3; 2019/20 Q3 from every earlier quarter) the method's
mean absolute error must be no worse than the last value's. Either failing exits non-zero.

    .venv/bin/python benchmarks/forecast.py            # or: make bench
    .venv/bin/python benchmarks/forecast.py --strict   # also exit 1 when the 2 s goal is missed

Last line: ``forecast_ms=<n> mae=<x> naive_mae=<y>``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import BenchmarkFailure, best_of, emit_result, heading, peak_rss_mb, say, timed

from kpibot.engine.forecast import backtest, forecast_frame, forecast_kpi, kpi_meta
from kpibot.engine.periods import parse_period
from kpibot.engine.scorecard import Scorecard, history_frame
from kpibot.files.contracts import load_contract_file

SEED = 20240612
CONTRACTS = 2_000
KPIS = 40
COUNT_SHARE = 0.25
MISSING = 0.05
RUNS = 3
GOAL_S = 2.0
SAMPLE = 300
PERIODS = [f"{y}/{(y + 1) % 100:02d} Q{q}" for y in (2017, 2018, 2019) for q in (1, 2, 3, 4)]
PROFILES = [(10.0, 20.0, 30.0, 40.0), (30.0, 25.0, 20.0, 25.0)]
SEED_004 = Path(__file__).resolve().parent.parent / "config" / "contracts" / "childrens-trust.yaml"
HOLDOUTS = ["2018/19 Q4", "2019/20 Q3"]


def build(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The synthetic scorecard frame and its KPI meta frame."""
    n_series = CONTRACTS * KPIS
    length = rng.integers(8, 13, n_series)
    end = rng.integers(len(PERIODS) - 4, len(PERIODS), n_series)  # the last quarter reported
    start = np.maximum(end - length + 1, 0)
    length = end - start + 1
    series = np.repeat(np.arange(n_series), length)
    offsets = np.arange(len(series)) - np.repeat(np.cumsum(length) - length, length)
    q = np.repeat(start, length) + offsets

    periods = [parse_period(p) for p in PERIODS]
    ordinals = np.array([p.ordinal for p in periods])
    rys = np.array([p.reporting_year().ordinal for p in periods])
    starts = np.array([p.start for p in periods], dtype=object)
    idx = ordinals[q] % 4

    count = rng.random(n_series) < COUNT_SHARE
    bigger = rng.random(n_series) < 0.8
    is_count = count[series]
    # Counts: a level, a seasonal pattern, noise. Percentages: a level that wanders, noise.
    level = rng.uniform(50, 600, n_series)
    season = 1.0 + 0.3 * np.sin(
        np.arange(4)[None, :] * np.pi / 2 + rng.uniform(0, 6.3, n_series)[:, None]
    )
    counts = np.round(level[series] * season[series, idx] * rng.normal(1.0, 0.1, len(series)))
    walk = np.cumsum(rng.normal(0, 2.0, len(series)))
    walk -= np.repeat(walk[np.cumsum(length) - length], length)
    pct = np.clip(
        rng.uniform(40, 95, n_series)[series] + walk + rng.normal(0, 3.0, len(series)), 0, 100
    )
    value = np.where(is_count, np.maximum(counts, 0), np.round(pct, 1))
    value[rng.random(len(series)) < MISSING] = np.nan

    annual = level * 4 * rng.uniform(0.85, 1.15, n_series)
    pct_target = rng.choice([60.0, 80.0, 90.0, 95.0], n_series)
    pct_target = np.where(bigger, pct_target, 100.0 - pct_target)
    frac = np.where(is_count, (idx + 1) / 4.0, 1.0)
    threshold = np.where(is_count, annual[series], pct_target[series]) * frac
    tol_gap = np.where(bigger, -1.0, 1.0)
    tolerance = np.where(
        is_count,
        annual[series] * (1 + 0.15 * tol_gap[series]) * frac,
        pct_target[series] + 5.0 * tol_gap[series],
    )
    critical = np.where(is_count, annual[series] * (1 + 0.35 * tol_gap[series]) * frac, np.nan)

    contract = np.array([f"contract-{c:04d}" for c in range(CONTRACTS)], dtype=object)
    codes = np.array([f"K{k:02d}" for k in range(KPIS)], dtype=object)
    frame = pd.DataFrame(
        {
            "contract": contract[series // KPIS],
            "kpi": codes[series % KPIS],
            "period": np.asarray(PERIODS, dtype=object)[q],
            "kind": "quarter",
            "ordinal": ordinals[q],
            "ry": rys[q],
            "idx_in_year": idx,
            "per_year": 4,
            "year": rys[q] - rys[0],
            "period_start": starts[q],
            "value": value,
            "threshold": threshold,
            "tolerance_threshold": tolerance,
            "critical_threshold": critical,
            "ytd_target": np.where(is_count, threshold, np.nan),
        }
    )
    profile = np.empty(n_series, dtype=object)
    with_profile = count & (rng.random(n_series) < 0.3)
    for n, i in enumerate(np.flatnonzero(with_profile)):
        profile[i] = PROFILES[n % 2]
    meta = pd.DataFrame(
        {
            "contract": contract[np.arange(n_series) // KPIS],
            "kpi": codes[np.arange(n_series) % KPIS],
            "polarity": np.where(bigger, "bigger", "smaller"),
            "unit": np.where(count, "count", "percent"),
            "rollup": np.where(
                count, "sum", np.where(rng.random(n_series) < 0.5, "latest", "mean")
            ),
            "target_basis": np.where(count, "annual", "period"),
            "profile": profile,
            "noun": ["participants" if c else None for c in count.tolist()],
        }
    )
    return frame, meta


def check_sample(
    frame: pd.DataFrame, meta: pd.DataFrame, result: pd.DataFrame, rng: np.random.Generator
) -> int:
    """Raise ``BenchmarkFailure`` unless sampled series agree with ``forecast_kpi``."""
    picks = rng.choice(len(meta), size=SAMPLE, replace=False)
    keyed = result.set_index(["contract", "kpi"])
    groups = frame.groupby(["contract", "kpi"], sort=False).indices
    for i in picks:
        m = meta.iloc[int(i)]
        rows = frame.iloc[groups[(m["contract"], m["kpi"])]]
        reported = rows[rows["value"].notna()]
        if reported.empty:
            continue
        last = reported.iloc[-1]
        scale = 4 / (last["idx_in_year"] + 1) if m["target_basis"] == "annual" else 1.0
        crit = last["critical_threshold"] * scale
        f = forecast_kpi(
            dict(zip(rows["period"], rows["value"], strict=True)),
            last["threshold"] * scale,
            m["profile"],
            m["polarity"],
            m["unit"],
            last["tolerance_threshold"] * scale,
            basis=m["target_basis"],
            rollup=m["rollup"],
            critical=None if math.isnan(crit) else crit,
            noun=m["noun"],
        )
        got = keyed.loc[(m["contract"], m["kpi"])]
        same = (
            got["statement"] == f.statement
            and got["rag"] == f.rag
            and math.isclose(got["projected"], f.projected or math.nan, rel_tol=1e-9)
        )
        if not same:
            raise BenchmarkFailure(
                f"{m['contract']} {m['kpi']}: forecast_frame says {got['statement']!r}, "
                f"forecast_kpi says {f.statement!r}"
            )
    return SAMPLE


def seed_004_errors() -> tuple[float, float, int]:
    """(method MAE, last-value MAE, forecasts) on seed 004's holdout quarters."""
    contract = load_contract_file(SEED_004)
    card = Scorecard.build(contract, history_frame(contract))
    result = backtest(card.frame, HOLDOUTS, kpi_meta(contract))
    mae = float(np.mean(np.abs(result["forecast"] - result["actual"])))
    naive = float(np.mean(np.abs(result["naive"] - result["actual"])))
    return mae, naive, len(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 when the time goal is missed")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(SEED)

    heading("data: building (not timed)")
    build_s, (frame, meta) = timed(lambda: build(rng))
    say(
        f"{len(frame):,} rows, {len(meta):,} series ({CONTRACTS:,} contracts x {KPIS} KPIs, "
        f"{int((meta['unit'] == 'count').sum()):,} annual counts); built in {build_s:.1f} s"
    )

    heading(f"timing: best of {RUNS} forecast_frame() calls over every series")
    seconds, result = best_of(RUNS, lambda: forecast_frame(frame, meta))
    cpu_start = time.process_time()
    forecast_frame(frame, meta)
    cpu_s = time.process_time() - cpu_start
    load1, _, _ = os.getloadavg()
    say(
        f"forecast_frame: {len(result):,} forecasts in {seconds:.3f} s wall, {cpu_s:.3f} s CPU "
        f"(load average {load1:.1f} on {os.cpu_count()} cores: wall time rises with load)"
    )
    say(
        "RAG: "
        + ", ".join(f"{k} {v:,}" for k, v in result["rag"].value_counts().items())
        + f"; critical {int(result['critical'].sum()):,}"
    )
    say("e.g. " + result.loc[result["method"] == "pace", "statement"].iloc[0])

    heading("check: forecast_frame == forecast_kpi on a sample")
    say(f"{check_sample(frame, meta, result, rng):,} sampled series agree")

    heading("accuracy: seed 004 holdouts " + ", ".join(HOLDOUTS))
    mae, naive, n = seed_004_errors()
    say(f"{n} forecasts: MAE {mae:.3f} against the last value's {naive:.3f}")
    if mae > naive:
        raise BenchmarkFailure(
            f"the forecast's MAE {mae:.3f} is worse than the last value's {naive:.3f}"
        )

    ms = int(round(seconds * 1000))
    goal = seconds <= GOAL_S
    say(
        f"goals: <= {GOAL_S:.0f} s {'met' if goal else 'MISSED'}; MAE no worse than naive met; "
        f"peak RSS {peak_rss_mb()} MB"
    )
    emit_result(forecast_ms=ms, mae=f"{mae:.3f}", naive_mae=f"{naive:.3f}")
    return 1 if args.strict and not goal else 0


if __name__ == "__main__":
    sys.exit(main())
