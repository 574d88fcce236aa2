"""Target profiling and roll-ups: annual targets through the year, and months into quarters and years.

An annual count target (the lifestyle programme's 1,800 participants a year) is checked part-way
through the year against a **profile**: evenly (a quarter of it each quarter) or by the seasonal
shares the contract gives, per quarter or per month, in percent adding up to 100.

Figures roll up from months to quarters and years the way the KPI collects them, as Pentana's
collection settings do: ``sum`` (counts), ``mean`` (rates averaged over the periods reported) or
``latest`` (a snapshot: the last period reported).

>>> profile_targets(1800, 4, None)
[450.0, 900.0, 1350.0, 1800.0]
>>> profile_targets(1800, 4, [10, 20, 30, 40])
[180.0, 540.0, 1080.0, 1800.0]
>>> rollup([120.0, None, 135.0], "sum"), rollup([80.0, 90.0], "mean"), rollup([80.0, None], "latest")
(255.0, 85.0, 80.0)
>>> ytd_position([400.0, 420.0], 1800, 4, tolerance=1500).rag
'amber'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from kpibot.engine.evaluate import RAG_OF
from kpibot.engine.model import ProfileError, check_shares
from kpibot.engine.periods import parse_period, period_containing
from kpibot.engine.targets import Target

RollupTo = Literal["quarter", "year"]
ROLLUPS = ("sum", "mean", "latest")  # as model.Rollup
_PER_YEAR = {"month": 12, "quarter": 4, "year": 1}


def period_percents(shares: Sequence[float] | None, periods_per_year: int) -> list[float]:
    """Each of ``periods_per_year`` periods' share of the year, in percent (summing to 100).

    A quarterly profile spreads evenly over its months; a monthly one adds up into quarters.

    >>> period_percents([40, 20, 20, 20], 12)[:4]
    [13.333333333333334, 13.333333333333334, 13.333333333333334, 6.666666666666667]
    >>> period_percents(None, 4)
    [25.0, 25.0, 25.0, 25.0]
    """
    if periods_per_year not in (1, 4, 12):
        raise ProfileError(f"a year has 1, 4 or 12 reporting periods, not {periods_per_year}")
    if shares is None:
        return [100.0 / periods_per_year] * periods_per_year
    pct = check_shares(shares)
    if len(pct) == periods_per_year:
        return pct
    if periods_per_year == 12:  # a quarterly profile, monthly figures
        return [pct[m // 3] / 3.0 for m in range(12)]
    step = len(pct) // periods_per_year  # a monthly profile into quarters (or a whole year)
    return [sum(pct[i * step : (i + 1) * step]) for i in range(periods_per_year)]


def elapsed_share(shares: Sequence[float] | None, periods_per_year: int, elapsed: int) -> float:
    """The fraction of the year's profile in its first ``elapsed`` periods (0 to 1)."""
    return round(sum(period_percents(shares, periods_per_year)[:elapsed]) / 100.0, 12)


def profile_targets(
    annual: float, periods_per_year: int, shares: Sequence[float] | None = None
) -> list[float]:
    """Cumulative year-to-date checkpoints for an annual target; the last one is ``annual``.

    >>> profile_targets(570, 12, None)[2]
    142.5
    """
    cumulative = np.cumsum(period_percents(shares, periods_per_year)) * float(annual) / 100.0
    out = [round(float(c), 9) for c in cumulative]
    out[-1] = float(annual)
    return out


def rollup(values: Sequence[float | None], how: str) -> float | None:
    """One value for a run of periods, by the KPI's collection rule; None when none is reported."""
    _check_how(how)
    reported = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not reported:
        return None
    if how == "sum":
        return float(sum(reported))
    if how == "mean":
        return sum(reported) / len(reported)
    return reported[-1]


def _check_how(how: str) -> None:
    if how not in ROLLUPS:
        raise ProfileError(f"rollup must be one of {', '.join(ROLLUPS)}, not '{how}'")


@dataclass(frozen=True)
class YtdPosition:
    """Where a KPI stands part-way through its year.

    ``checkpoint`` is the profiled year-to-date target (the annual target itself for ``mean`` and
    ``latest`` KPIs); ``share`` is the fraction of the year's profile elapsed.
    """

    value: float | None
    checkpoint: float | None
    tolerance_checkpoint: float | None
    share: float
    position: str
    rag: str


def _threshold(t: float | Target | None) -> float | None:
    if t is None:
        return None
    if isinstance(t, Target):
        return t.threshold_for() if t.kind != "none" else None
    return float(t)


def meets(value: float, threshold: float, polarity: str, t: float | Target | None = None) -> bool:
    """Whether ``value`` meets ``threshold`` in polarity's direction (a ``Target`` keeps its own
    strictness; a plain number is inclusive, as "meeting the target exactly counts as met")."""
    if isinstance(t, Target):
        return t.satisfied(value, threshold)
    v, th = round(value, 9), round(threshold, 9)
    return v >= th if polarity == "bigger" else v <= th


def judge(
    value: float | None,
    target: float | Target | None,
    tolerance: float | Target | None,
    polarity: str,
    scale: float = 1.0,
) -> str:
    """Position of ``value`` against target and tolerance, both multiplied by ``scale``."""
    if value is None or math.isnan(value):
        return "missing"
    thr = _threshold(target)
    if thr is None:
        return "no_target"
    if meets(value, thr * scale, polarity, target):
        return "met"
    tol = _threshold(tolerance)
    if tol is not None and meets(value, tol * scale, polarity, tolerance):
        return "within_tolerance"
    return "not_met"


def ytd_position(
    values: Sequence[float | None],
    target: float | Target | None,
    periods_per_year: int,
    shares: Sequence[float] | None = None,
    polarity: str = "bigger",
    tolerance: float | Target | None = None,
    how: str = "sum",
) -> YtdPosition:
    """The year to date against the profile checkpoint, with a position and RAG.

    ``values`` are this year's figures so far in period order (None for a missing return). For a
    ``sum`` KPI the annual target and tolerance are both profiled to the periods elapsed, as
    ``evaluate`` does with an even profile; ``mean`` and ``latest`` KPIs meet the target as it is.

    >>> p = ytd_position([180.0, 300.0], 1800, 4, [10, 20, 30, 40])
    >>> (p.value, p.checkpoint, p.position)
    (480.0, 540.0, 'not_met')
    """
    _check_how(how)
    elapsed = len(values)
    if not 0 < elapsed <= periods_per_year:
        raise ProfileError(
            f"give between 1 and {periods_per_year} values for the year so far, not {elapsed}"
        )
    share = elapsed_share(shares, periods_per_year, elapsed)
    scale = share if how == "sum" else 1.0
    value = rollup(values, how)
    thr = _threshold(target)
    tol = _threshold(tolerance)
    position = judge(value, target, tolerance, polarity, scale)
    return YtdPosition(
        value=value,
        checkpoint=None if thr is None else round(thr * scale, 9),
        tolerance_checkpoint=None if tol is None else round(tol * scale, 9),
        share=share,
        position=position,
        rag=RAG_OF[position],
    )


# ------------------------------------------------------------------ vectorised roll-ups


def _coarser(kind: str, to: RollupTo) -> bool:
    return _PER_YEAR[kind] < _PER_YEAR[to]


def rollup_frame(
    frame: pd.DataFrame,
    to: RollupTo = "quarter",
    how_by_kpi: Mapping[str, str] | None = None,
    *,
    default: str = "latest",
    year_start_month: int = 4,
) -> pd.DataFrame:
    """Roll figures (columns ``[contract,] kpi, period, value``) up to quarters or years.

    The rule per KPI comes from a ``rollup`` column when the frame has one, else ``how_by_kpi``
    (KPI code → ``sum``/``mean``/``latest``), else ``default``. A year rolled up before it ends
    is the year to date. Returns one row per (``[contract,] kpi, period``) in period order with
    ``value``, ``reported`` (sub-periods with a figure), ``expected`` (sub-periods in the period)
    and ``complete``.

    >>> f = pd.DataFrame({"kpi": ["PA-1"] * 4, "period": ["2019-04", "2019-05", "2019-06", "2019-07"],
    ...                   "value": [100.0, 120.0, 140.0, 90.0]})
    >>> rollup_frame(f, "quarter", {"PA-1": "sum"})[["period", "value", "complete"]].values.tolist()
    [['2019/20 Q1', 360.0, True], ['2019/20 Q2', 90.0, False]]
    """
    if to not in ("quarter", "year"):
        raise ProfileError(f"roll up to 'quarter' or 'year', not '{to}'")
    keys = ["contract", "kpi"] if "contract" in frame else ["kpi"]
    columns = [*keys, "period", "value", "reported", "expected", "complete"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    facts = {}
    for label in pd.unique(frame["period"]):
        p = parse_period(str(label), year_start_month)
        if _coarser(p.kind, to):
            raise ProfileError(f"'{label}' is a {p.kind}, too long to roll up into a {to}")
        target = period_containing(p.start, to, year_start_month)
        expected = _PER_YEAR[p.kind] // _PER_YEAR[to]
        facts[label] = (target.label, target.ordinal, p.start.toordinal(), expected)
    fact = pd.DataFrame.from_dict(
        facts, orient="index", columns=["_to", "_to_ord", "_ord", "_expected"]
    )
    work = frame[[*keys, "period", "value"]].join(fact, on="period")
    work["value"] = work["value"].astype(float)
    how = _how_column(frame, how_by_kpi, default)
    work["_how"] = how
    work = work.sort_values([*keys, "_to_ord", "_ord"], kind="stable")
    grouped = work.groupby([*keys, "_to_ord"], sort=False)
    values = grouped["value"]
    agg = grouped[["_to", "_expected", "_how"]].first()
    agg = agg.assign(
        _sum=values.sum(min_count=1),
        _mean=values.mean(),
        _last=values.last(),
        reported=values.count(),
    ).reset_index()
    agg = agg.rename(columns={"_to": "period", "_expected": "expected"})
    agg["value"] = np.select(
        [agg["_how"] == "sum", agg["_how"] == "mean"], [agg["_sum"], agg["_mean"]], agg["_last"]
    )
    agg["complete"] = agg["reported"] >= agg["expected"]
    return agg[columns].reset_index(drop=True)


def _how_column(frame: pd.DataFrame, how_by_kpi: Mapping[str, str] | None, default: str) -> object:
    _check_how(default)
    if "rollup" in frame:
        how = frame["rollup"].fillna(default).astype(str)
    else:
        how = frame["kpi"].map(dict(how_by_kpi or {})).fillna(default).astype(str)
    bad = sorted(set(how.unique()) - set(ROLLUPS))
    if bad:
        _check_how(bad[0])
    return how.to_numpy()
