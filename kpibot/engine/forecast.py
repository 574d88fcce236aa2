"""Year-end forecasts: where each KPI will land on its present trajectory, and what it would take.

**Method, in one sentence each.** A count with an annual target is projected at its year-to-date
pace: the year to date divided by the share of the year's profile those periods carry (the
contract's own profile, else last year's seasonal pattern when last year is complete, else even).
Any other series forecasts its next value by whichever of two simple rules, *the last value* or
*the mean of the last three values*, would have predicted the series' own past periods better one
step ahead (the last value until there are three values, and on a tie); the year-end value then
follows from the KPI's roll-up (``mean``: the year's reported values with the forecast filling the
periods to come; ``latest``: the forecast).

On seed 004's history (predicting 2018/19 Q4 and 2019/20 Q3 for every KPI with figures) this is
more accurate than the last value alone: see ``backtest`` and ``benchmarks/forecast.py``.

``forecast_kpi`` is the rule for one series, written plainly; ``forecast_frame`` applies the same
rules with numpy to a whole scorecard frame (many KPIs and contracts at once) and the tests hold
the two to the same answers.

>>> f = forecast_kpi({"2019/20 Q1": 400, "2019/20 Q2": 410}, 1800, polarity="bigger",
...                  unit="count", tolerance=1500, noun="participants")
>>> f.statement
'on this trajectory 1,620 of 1,800 (90%), amber; 90 more participants a quarter needed to reach target'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from kpibot.engine.describe import format_value
from kpibot.engine.evaluate import RAG_OF
from kpibot.engine.model import Contract
from kpibot.engine.periods import Period, parse_period
from kpibot.engine.profile import ROLLUPS, judge, meets, period_percents
from kpibot.engine.scorecard import Scorecard, compiled
from kpibot.engine.targets import Target

FloatArray = npt.NDArray[np.float64]

METHODS = {
    "last": "the last value",
    "mean3": "the mean of the last three values",
    "pace": "the year-to-date pace against the profile",
}
# Errors are compared at this many decimals, so the scalar and vectorised paths break ties alike.
_TIE_DECIMALS = 6


@dataclass(frozen=True)
class Forecast:
    """One KPI's forecast.

    ``projected`` is the value judged against ``target``: the year's roll-up for an annual target,
    the next period's value for a per-period target. ``per_period_needed`` is what each period
    still to report must bring for the year to meet an annual target (a count, or an average);
    ``per_period_extra`` is how much more (negative: less) that is than the trajectory.
    """

    next_value: float | None
    year_value: float | None
    projected: float | None
    target: float | None
    ratio: float | None
    position: str
    rag: str
    critical: bool
    per_period_needed: float | None
    per_period_extra: float | None
    remaining: int
    method: str
    statement: str


def next_value(values: Sequence[float | None]) -> tuple[float | None, str]:
    """The next value of a series and the rule that gave it (``last`` or ``mean3``).

    >>> next_value([90.0, 84.0, 90.0, 82.0, 85.0, 95.0])
    (87.33333333333333, 'mean3')
    >>> next_value([41.0, 68.0, 76.0])
    (76.0, 'last')
    """
    v = [float(x) for x in values if x is not None and not math.isnan(x)]
    if not v:
        return None, "last"
    if len(v) < 3:
        return v[-1], "last"
    err_last = sum(abs(v[i] - v[i - 1]) for i in range(1, len(v)))
    err_mean = sum(abs(v[i] - sum(v[max(0, i - 3) : i]) / min(i, 3)) for i in range(1, len(v)))
    if _tie_round(err_mean) < _tie_round(err_last):
        return sum(v[-3:]) / 3, "mean3"
    return v[-1], "last"


def _tie_round(x: float) -> float:
    return float(np.round(x, _TIE_DECIMALS))


def _threshold(t: float | Target | None) -> float | None:
    if isinstance(t, Target):
        return t.threshold_for() if t.kind != "none" else None
    return None if t is None or math.isnan(t) else float(t)


def forecast_kpi(
    values_by_period: Mapping[str, float | None],
    target: float | Target | None,
    profile: Sequence[float] | None = None,
    polarity: str = "bigger",
    unit: str = "count",
    tolerance: float | Target | None = None,
    *,
    basis: str = "annual",
    rollup: str = "sum",
    critical: float | Target | None = None,
    noun: str | None = None,
    year_start_month: int = 4,
) -> Forecast:
    """Forecast one KPI from its figures (period label → value) in one kind of period.

    ``target``, ``tolerance`` and ``critical`` are the full-year numbers for an annual target
    (``basis="annual"``) or the per-period ones (``basis="period"``); a ``Target`` keeps its own
    strictness. ``rollup`` is the KPI's: ``sum`` projects the year at its pace against
    ``profile`` (percent per quarter or month; None: last year's pattern or even).
    """
    if rollup not in ROLLUPS:
        raise ValueError(f"rollup must be one of {', '.join(ROLLUPS)}, not '{rollup}'")
    points = sorted(
        (parse_period(label, year_start_month), v)
        for label, v in values_by_period.items()
        if v is not None and not math.isnan(v)
    )
    if not points:
        return Forecast(
            next_value=None, year_value=None, projected=None, target=_threshold(target),
            ratio=None, position="missing", rag="grey", critical=False, per_period_needed=None,
            per_period_extra=None, remaining=0, method="last",
            statement="no figures yet, so no forecast",
        )  # fmt: skip
    series = [float(v) for _, v in points]
    last_p = points[-1][0]
    per_year = {"quarter": 4, "month": 12, "year": 1}[last_p.kind]
    year_start = last_p.reporting_year().start
    this_year = [(p, v) for p, v in points if p.reporting_year().start == year_start]
    ytd_sum = sum(v for _, v in this_year)
    n_rep = len(this_year)
    remaining = per_year - n_rep
    idx_last = last_p.ordinal % per_year
    nxt, method = next_value(series)
    assert nxt is not None

    if rollup == "sum":
        shares = _shares(profile, per_year, points, year_start)
        reported_share = sum(shares[p.ordinal % per_year] for p, _ in this_year)
        if reported_share <= 1e-9:
            reported_share = n_rep / per_year
        year_value = ytd_sum if remaining == 0 else ytd_sum / reported_share
        nxt = year_value * shares[(idx_last + 1) % per_year]
        method = "pace"
    elif rollup == "mean":
        year_value = (ytd_sum + remaining * nxt) / (n_rep + remaining)
    else:
        year_value = nxt if remaining > 0 else series[-1]

    annual = basis == "annual"
    projected = year_value if annual else nxt
    thr = _threshold(target)
    position = judge(projected, target, tolerance, polarity)
    crit_thr = _threshold(critical)
    breached = crit_thr is not None and _beyond(projected, crit_thr, polarity, critical)
    ratio = None if thr is None or thr == 0 else projected / thr
    needed = extra = None
    if annual and thr is not None and remaining > 0 and rollup in ("sum", "mean"):
        if rollup == "sum":
            needed = (thr - ytd_sum) / remaining
            extra = (thr - year_value) / remaining
        else:
            needed = (thr * (n_rep + remaining) - ytd_sum) / remaining
            extra = needed - nxt
    nan = math.nan
    text = statements(
        projected=np.array([projected]),
        year_value=np.array([year_value]),
        next_value=np.array([nxt]),
        target=np.array([nan if thr is None else thr]),
        ratio=np.array([nan if ratio is None else ratio]),
        position=np.array([position], dtype=object),
        bigger=np.array([polarity == "bigger"]),
        unit=np.array([unit], dtype=object),
        per_year=np.array([per_year]),
        remaining=np.array([remaining]),
        annual=np.array([annual]),
        rollup=np.array([rollup], dtype=object),
        extra=np.array([nan if extra is None else extra]),
        needed=np.array([nan if needed is None else needed]),
        critical=np.array([crit_thr if breached and crit_thr is not None else nan]),
        noun=np.array([noun or ""], dtype=object),
    )[0]
    return Forecast(
        next_value=nxt, year_value=year_value, projected=projected, target=thr, ratio=ratio,
        position=position, rag=RAG_OF[position], critical=breached, per_period_needed=needed,
        per_period_extra=extra, remaining=remaining, method=method, statement=text,
    )  # fmt: skip


def _shares(
    profile: Sequence[float] | None,
    per_year: int,
    points: Sequence[tuple[Any, float]],
    year_start: Any,
) -> list[float]:
    """Each period's share of the year: the profile, else last year's pattern, else even."""
    if profile is not None:
        return [p / 100.0 for p in period_percents(profile, per_year)]
    last_year = [(p, v) for p, v in points if p.reporting_year().shift(1).start == year_start]
    total = sum(v for _, v in last_year)
    if len(last_year) == per_year and total > 0:
        out = [0.0] * per_year
        for p, v in last_year:
            out[p.ordinal % per_year] = v / total
        return out
    return [1.0 / per_year] * per_year


def _beyond(value: float, threshold: float, polarity: str, t: float | Target | None) -> bool:
    if isinstance(t, Target):
        return t.breached(value, threshold)
    return not meets(value, threshold, polarity)


# ---------------------------------------------------------------------------- vectorised

FORECAST_COLUMNS = [
    "period",
    "next_period",
    "per_year",
    "reported",
    "remaining",
    "reported_total",
    "method",
    "next_value",
    "ytd_value",
    "year_value",
    "projected",
    "target",
    "tolerance",
    "ratio",
    "position",
    "rag",
    "critical",
    "per_period_needed",
    "per_period_extra",
    "statement",
]
_POSITIONS = np.array(["met", "within_tolerance", "not_met", "no_target"], dtype=object)
_RAGS = np.array([RAG_OF[p] for p in _POSITIONS], dtype=object)


def kpi_meta(contract: Contract) -> pd.DataFrame:
    """What ``forecast_frame`` needs to know about each KPI of ``contract``, one row per KPI.

    Columns: ``contract, kpi, polarity, unit, rollup, target_basis, profile, t_strict,
    tol_strict, noun``. An annual target is rolled up by ``sum`` unless the KPI says ``mean``,
    as ``evaluate`` keeps its year to date as a running total.
    """
    comp = compiled(contract)
    rows = []
    for k in contract.kpis:
        ck = comp[k.code]
        terms = ck.years[max(ck.years)] if ck.years else None
        annual = k.target_basis == "annual" or any(y.target.annual for y in ck.years.values())
        rows.append(
            {
                "contract": contract.id,
                "kpi": k.code,
                "polarity": k.polarity,
                "unit": ck.unit,
                "rollup": "sum" if annual and k.rollup == "latest" else k.rollup,
                "target_basis": "annual" if annual else "period",
                "profile": tuple(k.profile) if k.profile else None,
                "t_strict": bool(terms is not None and terms.target.op in ("gt", "lt")),
                "tol_strict": bool(
                    terms is not None
                    and terms.tolerance is not None
                    and terms.tolerance.op in ("gt", "lt")
                ),
                "noun": None,
            }
        )
    return pd.DataFrame(rows)


def forecast_scorecard(card: Scorecard, as_of: Period | None = None) -> pd.DataFrame:
    """``forecast_frame`` for one contract's scorecard, from the figures up to ``as_of``."""
    frame = card.frame
    if as_of is not None and not frame.empty:
        frame = frame[np.asarray([d <= as_of.end for d in frame["period_start"]], dtype=bool)]
    return forecast_frame(frame, kpi_meta(card.contract))


def _group_ids(columns: list[npt.NDArray[Any]]) -> tuple[npt.NDArray[np.int64], int]:
    """A dense id per distinct combination of ``columns``, hashing once per run of equal rows."""
    n = len(columns[0])
    changed = np.zeros(max(n - 1, 0), dtype=bool)
    for c in columns:
        changed |= np.asarray(c[1:] != c[:-1], dtype=bool)
    starts = np.concatenate(([0], np.flatnonzero(changed) + 1)).astype(np.int64)
    gid = np.zeros(len(starts), dtype=np.int64)
    for c in columns:
        codes, uniques = pd.factorize(c[starts], use_na_sentinel=False)
        gid = gid * max(len(uniques), 1) + codes.astype(np.int64)
    dense, uniques = pd.factorize(gid)
    return np.repeat(dense.astype(np.int64), np.diff(np.append(starts, n))), len(uniques)


def _meets(
    v: FloatArray, t: FloatArray, bigger: npt.NDArray[np.bool_], strict: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    v, t = np.round(v, 9), np.round(t, 9)
    with np.errstate(invalid="ignore"):
        up = np.where(strict, v > t, v >= t)
        down = np.where(strict, v < t, v <= t)
    return np.asarray(np.where(bigger, up, down) & ~np.isnan(t), dtype=bool)


def _column(frame: pd.DataFrame, name: str, rows: npt.NDArray[np.int64]) -> FloatArray:
    if name not in frame:
        return np.full(len(rows), np.nan)
    values: FloatArray = frame[name].to_numpy(dtype=float)
    return values[rows]


def forecast_frame(
    frame: pd.DataFrame, meta: pd.DataFrame | None = None, *, with_statements: bool = True
) -> pd.DataFrame:
    """Forecast every series in a scorecard frame at once: one row per (``[contract,] kpi``).

    ``frame`` has ``Scorecard.frame``'s columns (``kpi, period, ordinal, ry, per_year, value``
    and ``threshold``, ``tolerance_threshold``, ``critical_threshold`` as ``evaluate`` gives them,
    pro-rata for annual targets); ``meta`` (``kpi_meta``) says each KPI's polarity, unit,
    roll-up, target basis and profile. Each series is forecast from its own latest reporting
    year; a KPI reported both quarterly and annually is forecast from its quarters.

    >>> # forecast_frame(Scorecard.build(contract, figures).frame, kpi_meta(contract))
    """
    keys = ["contract", "kpi"] if "contract" in frame else ["kpi"]
    lacking = [c for c in (*keys, "period", "ordinal", "ry", "per_year", "value") if c not in frame]
    if lacking:
        raise ValueError(f"forecast_frame needs a scorecard frame; it lacks {', '.join(lacking)}")
    value_all = frame["value"].to_numpy(dtype=float)
    sel = np.flatnonzero(~np.isnan(value_all))
    per_year_all = frame["per_year"].to_numpy(dtype=np.int64)
    if len(sel) and per_year_all[sel].min() != per_year_all[sel].max():
        finest = (
            pd.DataFrame({k: frame[k].to_numpy()[sel] for k in keys})
            .assign(per_year=per_year_all[sel])
            .groupby(keys, sort=False)["per_year"]
            .transform("max")
            .to_numpy()
        )
        sel = sel[per_year_all[sel] == finest]
    if len(sel) == 0:
        return pd.DataFrame(columns=[*keys, *FORECAST_COLUMNS])
    g0, ng = _group_ids([frame[k].to_numpy()[sel] for k in keys])
    ordinal0 = frame["ordinal"].to_numpy(dtype=np.int64)[sel]
    lo = int(ordinal0.min())
    key = g0 * (int(ordinal0.max()) - lo + 1) + (ordinal0 - lo)
    order = (
        np.arange(len(key)) if bool((key[1:] > key[:-1]).all()) else np.argsort(key, kind="stable")
    )
    ks = key[order]
    order = order[np.append(ks[1:] != ks[:-1], True)]  # a period given twice: the later row counts
    src = sel[order]  # the frame row of each figure, in series order
    g = g0[order]
    v = value_all[src]
    ordinal = ordinal0[order]
    ry = frame["ry"].to_numpy(dtype=np.int64)[src]
    per_year = per_year_all[src]
    m = len(v)
    idx = ordinal % per_year

    counts = np.bincount(g, minlength=ng)
    starts = np.cumsum(counts) - counts
    ends = starts + counts - 1
    pos = np.arange(m) - starts[g]

    # Which rule has predicted this series' past better: the last value, or the last three's mean.
    def back(k: int) -> FloatArray:
        return np.where(pos >= k, v[np.maximum(np.arange(m) - k, 0)], 0.0)

    a1, a2, a3 = back(1), back(2), back(3)
    has = pos >= 1
    mean_pred = ((a3 + a2) + a1) / np.maximum(np.minimum(pos, 3), 1)
    err_last = np.bincount(g, weights=np.where(has, np.abs(v - a1), 0.0), minlength=ng)
    err_mean = np.bincount(g, weights=np.where(has, np.abs(v - mean_pred), 0.0), minlength=ng)
    use_mean = (counts >= 3) & (
        np.round(err_mean, _TIE_DECIMALS) < np.round(err_last, _TIE_DECIMALS)
    )
    last = v[ends]
    mean3 = (v[np.maximum(ends - 2, 0)] + v[np.maximum(ends - 1, 0)]) + last
    nxt = np.where(use_mean, mean3 / 3, last)

    # This reporting year so far, and last year's pattern.
    ry_last = ry[ends]
    in_year = ry == ry_last[g]
    n_rep = np.bincount(g, weights=in_year.astype(float), minlength=ng).astype(np.int64)
    ytd = np.bincount(g, weights=np.where(in_year, v, 0.0), minlength=ng)
    pyg = per_year[ends]
    remaining = pyg - n_rep
    idx_last = idx[ends]

    head = src[ends]
    info = pd.DataFrame({k: frame[k].to_numpy()[head] for k in keys})
    if meta is not None:
        info = info.merge(meta.drop_duplicates(keys, keep="last"), on=keys, how="left")
    thr_raw = _column(frame, "threshold", head)
    tol_raw = _column(frame, "tolerance_threshold", head)
    crit_raw = _column(frame, "critical_threshold", head)
    annual_default = ~np.isnan(_column(frame, "ytd_target", head))
    basis = _text(info, "target_basis", np.where(annual_default, "annual", "period"))
    annual = basis == "annual"
    how = _text(info, "rollup", np.where(annual, "sum", "latest"))
    guess = np.where(tol_raw > thr_raw, "smaller", "bigger")
    bigger = _text(info, "polarity", guess) == "bigger"
    units = _text(info, "unit", np.full(ng, "count"))

    shares = np.where(np.arange(12)[None, :] < pyg[:, None], 1.0 / pyg[:, None], 0.0)
    ly = ry == ry_last[g] - 1
    ly_n = np.bincount(g, weights=ly.astype(float), minlength=ng)
    ly_total = np.bincount(g, weights=np.where(ly, v, 0.0), minlength=ng)
    full = (ly_n == pyg) & (ly_total > 0)
    if full.any():
        pattern = np.zeros((ng, 12))
        pattern[g[ly], idx[ly]] = v[ly]
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = np.where(full[:, None], pattern / ly_total[:, None], shares)
    if "profile" in info:
        profiles = info["profile"].map(_profile_key)
        for prof, at in info.groupby(profiles, dropna=True).indices.items():
            for py in np.unique(pyg[at]):
                row = np.zeros(12)
                row[:py] = np.asarray(period_percents(list(prof), int(py))) / 100.0
                shares[at[pyg[at] == py]] = row
    rep_share = np.bincount(g, weights=np.where(in_year, shares[g, idx], 0.0), minlength=ng)
    rep_share = np.where(rep_share <= 1e-9, n_rep / pyg, rep_share)
    is_sum, is_mean = how == "sum", how == "mean"
    year_sum = np.where(remaining == 0, ytd, ytd / rep_share)
    nxt = np.where(is_sum, year_sum * shares[np.arange(ng), (idx_last + 1) % pyg], nxt)
    year_value = np.select(
        [is_sum, is_mean],
        [year_sum, (ytd + remaining * nxt) / (n_rep + remaining)],
        np.where(remaining > 0, nxt, last),
    )
    ytd_value = np.select([is_sum, is_mean], [ytd, ytd / n_rep], last)

    scale = np.where(annual, pyg / (idx_last + 1), 1.0)
    thr, tol, crit = thr_raw * scale, tol_raw * scale, crit_raw * scale
    projected = np.where(annual, year_value, nxt)
    t_strict = _flag(info, "t_strict", ng)
    met = _meets(projected, thr, bigger, t_strict)
    tol_ok = _meets(projected, tol, bigger, _flag(info, "tol_strict", ng))
    code = np.select([np.isnan(thr), met, tol_ok], [3, 0, 1], 2)
    critical = ~np.isnan(crit) & ~_meets(projected, crit, bigger, np.zeros(ng, dtype=bool))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(np.isnan(thr) | (thr == 0), np.nan, projected / thr)
        want = annual & ~np.isnan(thr) & (remaining > 0) & (is_sum | is_mean)
        needed = np.where(
            is_sum, (thr - ytd) / remaining, (thr * (n_rep + remaining) - ytd) / remaining
        )
        extra = np.where(is_sum, (thr - year_value) / remaining, needed - nxt)
    needed = np.where(want, needed, np.nan)
    extra = np.where(want, extra, np.nan)

    out = info[keys].copy()
    out["period"] = frame["period"].to_numpy()[head]
    out["next_period"] = _next_labels(out["period"])
    out["per_year"] = pyg
    out["reported"] = n_rep
    out["remaining"] = remaining
    out["reported_total"] = counts
    out["method"] = np.where(is_sum, "pace", np.where(use_mean, "mean3", "last"))
    for name, values in (
        ("next_value", nxt),
        ("ytd_value", ytd_value),
        ("year_value", year_value),
        ("projected", projected),
        ("target", thr),
        ("tolerance", tol),
        ("ratio", ratio),
    ):
        out[name] = values
    out["position"] = _POSITIONS[code]
    out["rag"] = _RAGS[code]
    out["critical"] = critical
    out["per_period_needed"] = needed
    out["per_period_extra"] = extra
    if with_statements:
        out["statement"] = statements(
            projected=projected,
            year_value=year_value,
            next_value=nxt,
            target=thr,
            ratio=ratio,
            position=_POSITIONS[code],
            bigger=bigger,
            unit=units,
            per_year=pyg,
            remaining=remaining,
            annual=annual,
            rollup=how,
            extra=extra,
            needed=needed,
            critical=np.where(critical, crit, np.nan),
            noun=_text(info, "noun", np.full(ng, "", dtype=object)),
        )
    else:
        out["statement"] = None
    return out


def _profile_key(profile: object) -> tuple[float, ...] | None:
    if isinstance(profile, list | tuple | np.ndarray) and len(profile):
        return tuple(float(p) for p in profile)
    return None


def _next_labels(labels: pd.Series) -> npt.NDArray[Any]:
    # A label's successor does not depend on the month the year starts: 2019/20 Q4 → 2020/21 Q1.
    following = {label: parse_period(str(label)).shift(1).label for label in pd.unique(labels)}
    return np.asarray(labels.map(following).to_numpy(dtype=object))


def _text(info: pd.DataFrame, column: str, default: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if column not in info:
        return np.asarray(default, dtype=object)
    values = info[column].to_numpy(dtype=object)
    missing = pd.isna(values)
    return np.where(missing, default, values) if missing.any() else values


def _flag(info: pd.DataFrame, column: str, n: int) -> npt.NDArray[np.bool_]:
    if column not in info:
        return np.zeros(n, dtype=bool)
    return np.asarray(info[column].fillna(False).to_numpy(dtype=bool), dtype=bool)


# ------------------------------------------------------------------------------- wording

ObjArray = npt.NDArray[np.object_]


def _texts(values: FloatArray, units: tuple[npt.NDArray[np.int64], Sequence[str]]) -> list[str]:
    """Values in their units (``format_value``'s wording; counts as whole numbers), formatting
    each distinct rounded value once. ``units`` is (code per row, unit per code)."""
    out = np.full(len(values), "", dtype=object)
    unit_code, names = units
    for code, unit in enumerate(names):
        at = np.flatnonzero((unit_code == code) & ~np.isnan(values))
        if not len(at):
            continue
        v = values[at]
        if unit == "count":
            key = np.round(v)
        else:
            key = np.round(v, 1)
            # numpy rounds x * 10 in binary; on a half, round as Python does (0.15 → 0.1).
            half = np.abs(np.abs(v * 10.0) % 1.0 - 0.5) < 1e-6
            key[half] = [round(float(x), 1) for x in v[half]]
        codes, uniques = pd.factorize(key)
        words = [
            f"{int(k):,}" if unit == "count" else format_value(float(k), str(unit)) for k in uniques
        ]
        out[at] = np.asarray(words, dtype=object)[codes]
    return list(out.tolist())


_NO_TARGET_YEAR, _NO_TARGET, _YEAR_ENDED, _ON_TRAJECTORY, _YEAR_AVERAGE, _NEXT = range(6)


def statements(
    *,
    projected: FloatArray,
    year_value: FloatArray,
    next_value: FloatArray,
    target: FloatArray,
    ratio: FloatArray,
    position: ObjArray,
    bigger: npt.NDArray[np.bool_],
    unit: ObjArray,
    per_year: npt.NDArray[np.int64],
    remaining: npt.NDArray[np.int64],
    annual: npt.NDArray[np.bool_],
    rollup: ObjArray,
    extra: FloatArray,
    needed: FloatArray,
    critical: FloatArray,
    noun: ObjArray,
) -> ObjArray:
    """The plain-English forecast line for each row (NaN means none: no target, no critical
    failure). ``forecast_kpi`` and ``forecast_frame`` both word their forecasts here.

    >>> one = dict(projected=np.array([1620.0]), year_value=np.array([1620.0]),
    ...            next_value=np.array([405.0]), target=np.array([1800.0]), ratio=np.array([0.9]),
    ...            position=np.array(["within_tolerance"], dtype=object), bigger=np.array([True]),
    ...            unit=np.array(["count"], dtype=object), per_year=np.array([4]),
    ...            remaining=np.array([2]), annual=np.array([True]),
    ...            rollup=np.array(["sum"], dtype=object), extra=np.array([90.0]),
    ...            needed=np.array([495.0]), critical=np.array([np.nan]),
    ...            noun=np.array(["participants"], dtype=object))
    >>> statements(**one)[0]
    'on this trajectory 1,620 of 1,800 (90%), amber; 90 more participants a quarter needed to reach target'
    """
    n = len(projected)
    rag = [RAG_OF[p] for p in position.tolist()]
    period = np.select(
        [per_year == 4, per_year == 12, per_year == 1], ["quarter", "month", "year"], "period"
    ).tolist()
    what = [f" {w}" if isinstance(w, str) and w else "" for w in noun.tolist()]
    big = bigger.tolist()
    no_target = np.isnan(target)
    is_sum, is_mean = rollup == "sum", rollup == "mean"
    case = np.select(
        [
            no_target & annual,
            no_target,
            annual & is_sum & (remaining == 0),
            annual & is_sum,
            annual,
        ],
        [_NO_TARGET_YEAR, _NO_TARGET, _YEAR_ENDED, _ON_TRAJECTORY, _YEAR_AVERAGE],
        _NEXT,
    )
    with np.errstate(invalid="ignore"):
        short = np.where(bigger, extra > 1e-9, extra < -1e-9).tolist()
        step = np.where(unit == "count", np.ceil(np.round(np.abs(extra), 6)), np.abs(extra))
        catch_up = (is_mean & ~np.isnan(needed) & (position != "met")).tolist()
    codes, names = pd.factorize(unit)
    units = (codes.astype(np.int64), [str(u) for u in names])
    counts = (np.zeros(n, dtype=np.int64), ["count"])
    pct = [f" ({t}%)" if t else "" for t in _texts(np.round(ratio * 100.0), counts)]
    p_txt, y_txt, n_txt, t_txt, step_txt, need_txt, crit_txt = (
        _texts(x, units)
        for x in (projected, year_value, next_value, target, step, needed, critical)
    )
    mean_open = (is_mean & (remaining > 0)).tolist()

    def word(i: int, c: int) -> str:
        if c == _NO_TARGET_YEAR:
            return f"on this trajectory {y_txt[i]} for the year, no target"
        if c == _NO_TARGET:
            return f"on this trajectory {n_txt[i]} next {period[i]}, no target"
        if c == _YEAR_ENDED:
            return f"the year ended at {p_txt[i]} of {t_txt[i]}{pct[i]}, {rag[i]}"
        if c == _ON_TRAJECTORY:
            text = f"on this trajectory {p_txt[i]} of {t_txt[i]}{pct[i]}, {rag[i]}"
            if short[i]:
                more, aim = ("more", "reach") if big[i] else ("fewer", "stay within")
                return f"{text}; {step_txt[i]} {more}{what[i]} a {period[i]} needed to {aim} target"
            return f"{text}; on track to {'reach' if big[i] else 'stay within'} target"
        if c == _YEAR_AVERAGE:
            text = f"on this trajectory {y_txt[i]} for the year against a target of {t_txt[i]}, {rag[i]}"
            if catch_up[i]:
                text += f"; {need_txt[i]} a {period[i]} needed for the rest of the year"
            return text
        text = f"on this trajectory {n_txt[i]} next {period[i]} against a target of {t_txt[i]}, {rag[i]}"
        return text + (f"; {y_txt[i]} for the year" if mean_open[i] else "")

    out = [word(i, c) for i, c in enumerate(case.tolist())]
    for i in np.flatnonzero(~np.isnan(critical)).tolist():
        side = "below" if big[i] else "above"
        out[i] += f"; {side} the critical-failure level of {crit_txt[i]}"
    return np.asarray(out, dtype=object)


# ------------------------------------------------------------------------------ backtest


def backtest(
    frame: pd.DataFrame,
    periods: Sequence[str],
    meta: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Forecast each of ``periods`` from everything reported before it, beside the last value.

    ``frame`` is a scorecard frame (``Scorecard.frame``). Returns one row per KPI with an actual
    figure at the period and at least one earlier figure: ``kpi``, ``period``, ``actual``,
    ``forecast``, ``naive`` (the last value), ``inputs`` (figures used) and ``method``.
    """
    keys = ["contract", "kpi"] if "contract" in frame else ["kpi"]
    out = []
    for label in periods:
        at = frame[(frame["period"] == label) & frame["value"].notna()]
        if at.empty:
            continue
        kind = at["kind"].iloc[0]
        ordinal = int(at["ordinal"].iloc[0])
        before = frame[(frame["kind"] == kind) & (frame["ordinal"] < ordinal)]
        fc = forecast_frame(before, meta, with_statements=False)
        naive = (
            before[before["value"].notna()]
            .sort_values("ordinal")
            .groupby(keys, sort=False)["value"]
            .last()
            .rename("naive")
        )
        got = at[[*keys, "value"]].rename(columns={"value": "actual"})
        got = got.merge(fc[[*keys, "next_value", "reported_total", "method"]], on=keys)
        got = got.join(naive, on=keys)
        got["period"] = label
        out.append(got.rename(columns={"next_value": "forecast", "reported_total": "inputs"}))
    cols = [*keys, "period", "actual", "forecast", "naive", "inputs", "method"]
    if not out:
        return pd.DataFrame(columns=cols)
    return pd.concat(out, ignore_index=True)[cols]
