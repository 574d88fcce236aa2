"""Benchmark: the vectorised evaluation engine against a plain per-row Python loop.

Builds 2,000 contracts × 40 KPIs × 12 quarters (2017/18 Q1 … 2019/20 Q4, three contract years)
= 960,000 KPI-period rows with a realistic mix of contract phrasings, all read by
``parse_target``. The same rows are evaluated twice:

* **engine**: ``evaluate(figures, terms)`` over every row;
* **loop**: one ``evaluate_scalar`` + ``trend_scalar`` call per row on the same ``YearTerms``
  objects, over a random sample of whole KPI series (50,004 rows), extrapolated to rows per
  second.

Each is timed as the best of 3 rounds, the two alternating.

Neither timing includes building the data: parsing the targets, ``terms_frame`` and
``annotate_periods`` (24,000 period labels parsed and merged onto the rows, about 2 s, which
would otherwise swamp the engine's time) run once, before both, and feed both.

The run is also a check: on the sample, the engine's position, critical flag, trend and
year-to-date sum must equal the loop's, or it exits non-zero.

    .venv/bin/python benchmarks/engine.py            # or: make bench
    .venv/bin/python benchmarks/engine.py --strict   # also exit non-zero when a goal is missed

Last line: ``engine_rows_per_s=<n> speedup_vs_loop=<x> peak_rss_mb=<m>``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass, replace
from functools import cache

import numpy as np
import pandas as pd
from _common import BenchmarkFailure, emit_result, heading, peak_rss_mb, say, timed

from kpibot.engine.evaluate import (
    TermsEntry,
    annotate_periods,
    evaluate,
    evaluate_scalar,
    terms_frame,
    trend_scalar,
)
from kpibot.engine.periods import Period
from kpibot.engine.targets import Role, Target, YearTerms, parse_target

SEED = 20240611
CONTRACTS = 2_000
KPIS = 40
FIRST_YEAR = 2017
YEARS = 3
PERIODS = [
    f"{FIRST_YEAR + y}/{(FIRST_YEAR + y + 1) % 100:02d} Q{q}"
    for y in range(YEARS)
    for q in (1, 2, 3, 4)
]
LOOP_SAMPLE_ROWS = 50_000
MISSING_RATE = 0.03
EXEMPT_RATE = 0.005
RUNS = 3  # best of: the run least disturbed by other work on the machine

GOAL_ROWS_PER_S = 500_000  # a million rows in 2 s
GOAL_SPEEDUP = 20.0
GOAL_RSS_MB = 1_500


@dataclass(frozen=True)
class KpiProfile:
    """A kind of KPI as contracts write it: its wording per contract year and how its figures run.

    ``targets`` holds one text per contract year. Figures are drawn around ``mean`` with spread
    ``sd``; ``benchmark`` is the national average's level when the target refers to it.
    """

    name: str
    polarity: str
    unit: str
    targets: tuple[str, str, str]
    mean: float
    sd: float
    weight: float
    tolerance: str | None = None
    critical: str | None = None
    annual: bool = False
    benchmark: float | None = None
    baseline: float | None = None
    decimals: int = 1
    ceiling: float | None = None


P, B, S = "percent", "bigger", "smaller"
PROFILES = [
    KpiProfile("target+tolerance", B, P, ("Target 90%", "Target 92%", "Target 95%"),
               mean=90, sd=6, weight=6, tolerance="Tolerance 85%"),
    KpiProfile("plain %", B, P, ("95%",) * 3, mean=94, sd=4, weight=6, ceiling=100),
    KpiProfile("minimum %", B, P, ("35% minimum", "35% minimum", "40% minimum"),
               mean=40, sd=7, weight=2),
    KpiProfile("strict >", B, P, (">40%", ">40%", ">45%"),
               mean=45, sd=8, weight=4, critical="Below 25%"),
    KpiProfile("strict < / leaving early", S, P, ("<22.5%", "<22.5%", "<20%"),
               mean=24, sd=10, weight=3, critical="Higher than 55% leaving early"),
    KpiProfile("less than", S, P, ("Less than 40 %",) * 3, mean=37, sd=8, weight=2),
    KpiProfile("count families", B, "count", ("100 active families",) * 3,
               mean=105, sd=15, weight=3, tolerance="Tolerance 90 active families", decimals=0),
    KpiProfile("count >2000", B, "count", (">2000", ">2000", ">2200"),
               mean=2150, sd=180, weight=2, decimals=0),
    KpiProfile("days", S, "days", ("140 days",) * 3,
               mean=150, sd=30, weight=3, tolerance="180 days", decimals=0),
    KpiProfile("range", B, P, ("50-75%",) * 3, mean=60, sd=12, weight=2),
    KpiProfile("range (smaller)", S, P, ("10-20%",) * 3, mean=17, sd=5, weight=1),
    KpiProfile("> national average", B, P, ("> National average",) * 3,
               mean=61, sd=8, weight=2, benchmark=60),
    KpiProfile("at least national average", S, P, ("At least national average",) * 3,
               mean=22, sd=5, weight=2, benchmark=23),
    KpiProfile("national average or uplift", B, P,
               ("> National average or 5% increase on current baseline whichever is greater",) * 3,
               mean=58, sd=7, weight=2, benchmark=57, baseline=55),
    KpiProfile("improvement", B, P,
               ("Improvement on previous year (62%)",) + ("Improvement on previous year",) * 2,
               mean=63, sd=6, weight=2),
    KpiProfile("exception reporting", B, P, ("100% with exception reporting",) * 3,
               mean=99.5, sd=1.5, weight=2, ceiling=100),
    KpiProfile("no target yet", B, P, ("TBD*", "80%", "80%"), mean=78, sd=9, weight=1),
    # target_basis: annual. Quarters are rated on the year to date against a pro-rata target.
    KpiProfile("annual count", B, "count", ("1,500", "1,500", "1,600"),
               mean=400, sd=60, weight=2, tolerance="1350", critical="1200", annual=True, decimals=0),
]  # fmt: skip


@dataclass(frozen=True)
class Dataset:
    """Everything both paths read; built outside every timed region."""

    figures: pd.DataFrame  # annotated: period facts already added
    terms: pd.DataFrame
    year_terms: dict[tuple[str, str, int], YearTerms]
    kpi_info: dict[tuple[str, str], tuple[str, str]]  # (polarity, unit)
    baselines: dict[tuple[str, str], float]


@cache
def _parse(text: str, polarity: str, unit: str, role: Role) -> Target:
    # Parsing is not what is measured here, and 240,000 YearTerms share a few dozen phrasings:
    # each distinct one is read once. Targets are frozen, so sharing them is safe.
    return parse_target(text, polarity, unit=unit, role=role)


@cache
def _year_terms(profile_index: int, year: int, exempt: bool) -> YearTerms:
    p = PROFILES[profile_index]
    target = _parse(p.targets[year - 1], p.polarity, p.unit, "target")
    if p.annual:
        target = replace(target, annual=True)  # target_basis: annual, as compile_kpi does
    tolerance = _parse(p.tolerance, p.polarity, p.unit, "tolerance") if p.tolerance else None
    critical = _parse(p.critical, p.polarity, p.unit, "critical") if p.critical else None
    return YearTerms(year, target, tolerance, critical, exempt)


def build_dataset(rng: np.random.Generator) -> tuple[Dataset, float]:
    """The rows and terms of the benchmark; returns the dataset and the seconds spent annotating."""
    contracts = [f"C{c:04d}" for c in range(1, CONTRACTS + 1)]
    codes = [str(k) for k in range(1, KPIS + 1)]
    weights = np.array([p.weight for p in PROFILES], dtype=float)
    profile = rng.choice(len(PROFILES), size=(CONTRACTS, KPIS), p=weights / weights.sum())
    exempt = rng.random((CONTRACTS, KPIS, YEARS)) < EXEMPT_RATE
    has_baseline = rng.random((CONTRACTS, KPIS)) < 0.8

    entries: list[TermsEntry] = []
    year_terms: dict[tuple[str, str, int], YearTerms] = {}
    kpi_info: dict[tuple[str, str], tuple[str, str]] = {}
    baselines: dict[tuple[str, str], float] = {}
    for ci, contract in enumerate(contracts):
        for ki, code in enumerate(codes):
            pi = int(profile[ci, ki])
            p = PROFILES[pi]
            baseline = None
            if p.baseline is not None and has_baseline[ci, ki]:
                baseline = round(p.baseline + float(rng.normal(0, 4)), 1)
                baselines[(contract, code)] = baseline
            kpi_info[(contract, code)] = (p.polarity, p.unit)
            for y in range(1, YEARS + 1):
                yt = _year_terms(pi, y, bool(exempt[ci, ki, y - 1]))
                year_terms[(contract, code, y)] = yt
                entries.append(TermsEntry(contract, code, y, p.polarity, p.unit, yt, baseline))
    terms = terms_frame(entries)

    # Figures, row order (contract, kpi, period) as the store returns them.
    periods_n = len(PERIODS)
    series_profile = profile.reshape(-1)
    row_profile = np.repeat(series_profile, periods_n)
    mean = np.array([p.mean for p in PROFILES])[row_profile]
    sd = np.array([p.sd for p in PROFILES])[row_profile]
    level = np.repeat(rng.normal(0, 0.6, series_profile.size), periods_n)
    drift = np.repeat(rng.normal(0, 0.08, series_profile.size), periods_n)
    step = np.tile(np.arange(periods_n, dtype=float), series_profile.size)
    value = mean + sd * (level + drift * step + rng.normal(0, 0.6, row_profile.size))
    value = np.maximum(value, 0.0)
    ceiling = np.array([p.ceiling if p.ceiling is not None else np.inf for p in PROFILES])[
        row_profile
    ]
    value = np.minimum(value, ceiling)
    decimals = np.array([p.decimals for p in PROFILES])[row_profile]
    value = np.where(decimals == 0, np.round(value), np.round(value, 1))
    value[rng.random(value.size) < MISSING_RATE] = np.nan

    # The national average: one figure per KPI kind and quarter, shared by every contract; the
    # last quarter's "> National average" figure is not yet published.
    bench_level = np.array([p.benchmark if p.benchmark is not None else np.nan for p in PROFILES])
    national = np.round(bench_level[:, None] + rng.normal(0, 1.5, (len(PROFILES), periods_n)), 1)
    national[[p.name for p in PROFILES].index("> national average"), -1] = np.nan
    period_idx = np.tile(np.arange(periods_n), series_profile.size)
    benchmark = national[row_profile, period_idx]

    figures = pd.DataFrame(
        {
            "contract": np.repeat(np.array(contracts, dtype=object), KPIS * periods_n),
            "kpi": np.tile(np.repeat(np.array(codes, dtype=object), periods_n), CONTRACTS),
            "period": np.tile(np.array(PERIODS, dtype=object), CONTRACTS * KPIS),
            "value": value,
            "benchmark": benchmark,
        }
    )

    def year_of(_contract: str, p: Period) -> int | None:
        year = p.year_start - FIRST_YEAR + 1
        return year if 1 <= year <= YEARS else None

    annotate_s, annotated = timed(lambda: annotate_periods(figures, year_of, 4))
    data = Dataset(annotated, terms, year_terms, kpi_info, baselines)
    return data, annotate_s


# ------------------------------------------------------------------------------ the loop

Row = tuple[int, str, str, int, int, int, int, float, float | None]
LoopResult = tuple[str, bool, str, float]


def loop_rows(data: Dataset, sample: np.ndarray) -> list[Row]:
    """The sampled rows as plain tuples in period order, with the same period facts as the engine."""
    f = data.figures
    cols = [
        f[c].to_numpy()[sample] for c in ("contract", "kpi", "year", "ordinal", "per_year", "ry")
    ]
    value = f["value"].to_numpy(dtype=float)[sample]
    bench = f["benchmark"].to_numpy(dtype=float)[sample]
    rows: list[Row] = [
        (
            int(i),
            str(c),
            str(k),
            int(y),
            int(o),
            int(py),
            int(ry),
            float(v),
            None if math.isnan(b) else float(b),
        )
        for i, c, k, y, o, py, ry, v, b in zip(sample, *cols, value, bench, strict=True)
    ]
    rows.sort(key=lambda r: (r[4], r[1], r[2]))
    return rows


def scalar_loop(rows: list[Row], data: Dataset) -> dict[int, LoopResult]:
    """Evaluate row by row in period order: the reference rules on the ``Target`` objects.

    Last year's value and the last three reported values of each KPI are kept in dicts as the
    loop goes. For annual count targets the loop keeps the year-to-date sum too, but
    ``evaluate_scalar`` has no pro-rata profile rule, so those rows are rated on the quarter's
    own value (the engine rates their year to date).
    """
    year_terms, baselines, kpi_info = data.year_terms, data.baselines, data.kpi_info
    seen: dict[tuple[str, str, int], float] = {}
    recent: dict[tuple[str, str], list[float]] = {}
    ytd: dict[tuple[str, str, int], float] = {}
    out: dict[int, LoopResult] = {}
    for i, contract, kpi, year, ordinal, per_year, ry, value, bench in rows:
        key = (contract, kpi)
        terms = year_terms[(contract, kpi, year)]
        previous = seen.get((contract, kpi, ordinal - per_year))
        result = evaluate_scalar(
            value, terms, benchmark=bench, previous=previous, baseline=baselines.get(key)
        )
        seen[(contract, kpi, ordinal)] = value
        history = recent.setdefault(key, [])
        if not math.isnan(value):
            history.append(value)
            del history[:-3]
        polarity, unit = kpi_info[key]
        trend = trend_scalar(history, polarity, unit)
        so_far = math.nan
        if terms.target.annual:
            ykey = (contract, kpi, ry)
            so_far = ytd[ykey] = ytd.get(ykey, 0.0) + (0.0 if math.isnan(value) else value)
        out[i] = (result.position, result.critical, trend, so_far)
    return out


def check_agreement(
    result: pd.DataFrame, scalar: dict[int, LoopResult], data: Dataset
) -> Counter[str]:
    """Raise ``BenchmarkFailure`` unless the engine agrees with the loop on every sampled row."""
    idx = np.fromiter(scalar.keys(), dtype=np.int64)
    annual = data.terms.set_index(["contract", "kpi", "year"])["annual"]
    sub = result.iloc[idx]
    is_annual = annual.reindex(pd.MultiIndex.from_frame(sub[["contract", "kpi", "year"]])).to_numpy(
        dtype=bool
    )
    checked: Counter[str] = Counter()
    problems: list[str] = []
    rows = zip(
        idx,
        sub["position"],
        sub["critical"],
        sub["trend"],
        sub["ytd_value"],
        is_annual,
        strict=True,
    )
    for i, position, critical, trend, ytd_value, annual_row in rows:
        s_position, s_critical, s_trend, s_ytd = scalar[int(i)]
        if annual_row:
            checked["annual rows (trend and year-to-date sum only)"] += 1
            if s_ytd != ytd_value:
                problems.append(f"row {i}: year to date {ytd_value} != loop {s_ytd}")
        else:
            checked["rows (position, critical, trend)"] += 1
            if position != s_position:
                problems.append(f"row {i}: position {position} != loop {s_position}")
            if bool(critical) != s_critical:
                problems.append(f"row {i}: critical {critical} != loop {s_critical}")
        if trend != s_trend:
            problems.append(f"row {i}: trend {trend} != loop {s_trend}")
    if problems:
        detail = "\n  ".join(problems[:20])
        raise BenchmarkFailure(
            f"engine and loop disagree on {len(problems)} checks, e.g.\n  {detail}"
        )
    return checked


# ------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(SEED)

    heading("data: building (not timed)")
    build_s, (data, annotate_s) = timed(lambda: build_dataset(rng))
    n = len(data.figures)
    say(
        f"{n:,} rows ({CONTRACTS:,} contracts x {KPIS} KPIs x {len(PERIODS)} quarters), "
        f"{len(data.terms):,} terms rows, {len(PROFILES)} phrasing profiles; "
        f"built in {build_s:.1f} s, of which annotate_periods {annotate_s:.2f} s"
    )

    # Whole KPI series are sampled, so the loop's last-year and last-three-values history is
    # complete for every sampled row. Turning the sampled frame rows into tuples in period
    # order (loop_rows) is preparation, like annotating the periods for the engine.
    series = rng.choice(
        CONTRACTS * KPIS, size=math.ceil(LOOP_SAMPLE_ROWS / len(PERIODS)), replace=False
    )
    sample = (series[:, None] * len(PERIODS) + np.arange(len(PERIODS))).reshape(-1)
    rows = loop_rows(data, sample)

    # Timed: the one evaluate() call on all rows (terms join, thresholds, last year's values,
    # year to date, trend, result frame), and scalar_loop() on the sample. Both read the
    # prepared inputs built above: period facts from annotate_periods, targets parsed once into
    # the terms frame and the YearTerms objects. The two alternate round by round, so a burst
    # of other work on this shared machine slows both rather than one.
    heading(
        f"timing: best of {RUNS} rounds, each evaluate() on all rows then the loop on the sample"
    )
    engine_times: list[float] = []
    loop_times: list[float] = []
    for _ in range(RUNS):
        seconds, result = timed(lambda: evaluate(data.figures, data.terms))
        engine_times.append(seconds)
        seconds, scalar = timed(lambda: scalar_loop(rows, data))
        loop_times.append(seconds)
    engine_s, loop_s = min(engine_times), min(loop_times)
    engine_rate = int(n / engine_s)
    loop_rate = len(rows) / loop_s
    say(
        f"engine: {n:,} rows, runs {', '.join(f'{t:.3f}' for t in engine_times)} s; "
        f"best {engine_s:.3f} s = {engine_rate:,} rows/s"
    )
    say(
        f"loop (evaluate_scalar + trend_scalar per row): {len(rows):,} rows ({series.size:,} whole KPI "
        f"series), runs {', '.join(f'{t:.2f}' for t in loop_times)} s; best {loop_s:.2f} s = "
        f"{loop_rate:,.0f} rows/s, extrapolated: about {n / loop_rate:.0f} s for all {n:,} rows"
    )
    load1, load5, _ = os.getloadavg()
    say(f"machine load average {load1:.1f} (1 min), {load5:.1f} (5 min) on {os.cpu_count()} cores")

    heading("check: engine == loop on the sample")
    checked = check_agreement(result, scalar, data)
    say("; ".join(f"{count:,} {what}" for what, count in checked.items()) + ": all agree")

    positions = result["position"].value_counts()
    trends = result["trend"].value_counts()
    say("positions: " + ", ".join(f"{k} {v:,}" for k, v in positions.items()))
    say(
        "trends: "
        + ", ".join(f"{k} {v:,}" for k, v in trends.items())
        + f"; critical failures {int(result['critical'].sum()):,}, exceptions to report "
        f"{int(result['exception_required'].sum()):,}, exempt {int(result['exempt'].sum()):,}"
    )

    speedup = engine_rate / loop_rate
    rss = peak_rss_mb()
    goals = {
        f"rows/s >= {GOAL_ROWS_PER_S:,}": engine_rate >= GOAL_ROWS_PER_S,
        f"speedup >= {GOAL_SPEEDUP:.0f}x": speedup >= GOAL_SPEEDUP,
        f"peak RSS < {GOAL_RSS_MB:,} MB": rss < GOAL_RSS_MB,
    }
    heading("goals")
    say(
        "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in goals.items())
        + f" (speedup {speedup:.1f}x, peak RSS {rss:,} MB for the whole run)"
    )
    emit_result(engine_rows_per_s=engine_rate, speedup_vs_loop=speedup, peak_rss_mb=rss)
    return 1 if args.strict and not all(goals.values()) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkFailure as exc:
        print(f"engine benchmark FAILED: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
