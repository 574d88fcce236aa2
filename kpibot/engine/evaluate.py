"""Vectorised evaluation: figures against targets, giving position, RAG, trend and critical failure.

Two inputs, both pandas frames:

* a **terms frame** (``terms_frame``): one row per (contract, kpi, year) with each parsed
  ``Target`` flattened into numeric columns;
* a **figures frame**: one row per (contract, kpi, period) with ``value`` (or NaN when a return is
  missing), an optional ``benchmark`` (national average for that period), and period facts
  added by ``annotate_periods``.

``evaluate`` joins them and computes everything with numpy, so a million rows take about a
second. ``evaluate_scalar`` is the same rules one row at a time on the ``Target`` objects; the
tests hold the two to identical answers.

>>> from kpibot.engine.targets import parse_target, YearTerms
>>> t = YearTerms(0, parse_target("Target 90%", "bigger"), parse_target("Tolerance 85%", "bigger"), None, False)
>>> terms = terms_frame([TermsEntry("c", "1", 0, "bigger", "percent", t)])
>>> figs = annotate_periods(pd.DataFrame({"contract": ["c"], "kpi": ["1"], "period": ["2019/20 Q3"],
...                                        "value": [86.0]}), year_of=lambda c, p: 0)
>>> evaluate(figs, terms)[["position", "rag"]].iloc[0].tolist()
['within_tolerance', 'amber']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from kpibot.engine.periods import Period, parse_period
from kpibot.engine.targets import Target, YearTerms

POSITIONS = ("met", "within_tolerance", "not_met", "no_target", "missing")
RAG_OF = {"met": "green", "within_tolerance": "amber", "not_met": "red", "no_target": "grey", "missing": "grey"}
TRENDS = ("improving", "stable", "worsening", "volatile", "new")
TREND_ARROWS = {"improving": "↗", "stable": "→", "worsening": "↘", "volatile": "↕", "new": "·"}

_KIND = {"none": 0, "threshold": 1, "range": 1, "benchmark": 2, "improvement": 3}
_OP = {"gt": 1, "ge": 2, "lt": 3, "le": 4}
_PER_YEAR = {"quarter": 4, "month": 12, "year": 1}
# A change smaller than this is noise, not a trend: 2 percentage points for percentages,
# 5% of the level for everything else.
_PCT_MATERIAL = 2.0
_REL_MATERIAL = 0.05

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class TermsEntry:
    """The terms of one KPI in one contract year, ready to flatten into the terms frame."""

    contract: str
    kpi: str
    year: int
    polarity: str
    unit: str
    terms: YearTerms
    baseline: float | None = None


def _flatten(t: Target | None, polarity: str, role: str) -> tuple[int, int, float, float, float, float]:
    """(kind, op, value, uplift, combine, hint) for one target; range becomes its meet-side bound."""
    nan = math.nan
    if t is None or t.kind == "none":
        return 0, 0, nan, nan, nan, nan
    if role == "critical":
        op = t.op or ("lt" if polarity == "bigger" else "gt")
    else:
        op = t.op or ("ge" if polarity == "bigger" else "le")
    value = t.value if t.value is not None else nan
    if t.kind == "range":
        op = "ge" if polarity == "bigger" else "le"
        value = t.value if polarity == "bigger" else (t.high if t.high is not None else nan)  # type: ignore[assignment]
    uplift = t.uplift if t.uplift is not None else nan
    combine = -1.0 if t.combine == "min" else 1.0
    hint = t.baseline_hint if t.baseline_hint is not None else nan
    return _KIND[t.kind], _OP[op], float(value), uplift, combine, hint


def terms_frame(entries: Iterable[TermsEntry]) -> pd.DataFrame:
    """Flatten parsed terms into one numeric row per (contract, kpi, year)."""
    rows = []
    for e in entries:
        yt = e.terms
        row: dict[str, object] = {
            "contract": e.contract,
            "kpi": e.kpi,
            "year": e.year,
            "pol": 1.0 if e.polarity == "bigger" else -1.0,
            "pct": e.unit == "percent",
            "exempt": yt.exempt,
            "exception": yt.target.exception_reporting,
            "annual": yt.target.annual,
            "baseline": e.baseline if e.baseline is not None else math.nan,
            "target_text": yt.target.text,
        }
        for prefix, t in (("t", yt.target), ("tol", yt.tolerance), ("crit", yt.critical)):
            k, op, v, up, comb, hint = _flatten(t, e.polarity, "critical" if prefix == "crit" else prefix)
            row.update({f"{prefix}_kind": k, f"{prefix}_op": op, f"{prefix}_value": v,
                        f"{prefix}_uplift": up, f"{prefix}_combine": comb, f"{prefix}_hint": hint})
        rows.append(row)
    return pd.DataFrame(rows)


def annotate_periods(
    figures: pd.DataFrame,
    year_of: Callable[[str, Period], int | None],
    year_start_month: int | Callable[[str], int] = 4,
) -> pd.DataFrame:
    """Add period facts (ordinal, kind, reporting year, position in year, contract year).

    Periods are parsed once per distinct (contract, label), so this stays fast on big frames.
    Rows whose period falls outside the contract get ``year`` = -1.
    """
    ysm = year_start_month if callable(year_start_month) else (lambda _c: year_start_month)
    pairs = figures[["contract", "period"]].drop_duplicates()
    facts = []
    for contract, label in pairs.itertuples(index=False):
        p = parse_period(str(label), ysm(str(contract)))  # type: ignore[operator]
        per_year = _PER_YEAR[p.kind]
        year = year_of(str(contract), p)
        facts.append((contract, label, p.ordinal, p.kind, per_year, p.reporting_year().ordinal,
                      (p.ordinal % per_year) if p.kind != "year" else 0, -1 if year is None else year,
                      p.start))
    fdf = pd.DataFrame(facts, columns=["contract", "period", "ordinal", "kind", "per_year", "ry",
                                       "idx_in_year", "year", "period_start"])
    out = figures.drop(columns=[c for c in fdf.columns if c not in ("contract", "period") and c in figures],
                       errors="ignore")
    return out.merge(fdf, on=["contract", "period"], how="left", sort=False)


def _cmp(v: FloatArray, op: npt.NDArray[np.int64], t: FloatArray) -> BoolArray:
    with np.errstate(invalid="ignore"):
        return (((op == 1) & (v > t)) | ((op == 2) & (v >= t)) | ((op == 3) & (v < t))
                | ((op == 4) & (v <= t)))


def _threshold(spec: pd.DataFrame, prefix: str, bench: FloatArray, prev: FloatArray) -> FloatArray:
    kind = spec[f"{prefix}_kind"].to_numpy()
    value = spec[f"{prefix}_value"].to_numpy(dtype=float)
    uplift = spec[f"{prefix}_uplift"].to_numpy(dtype=float)
    combine = spec[f"{prefix}_combine"].to_numpy(dtype=float)
    hint = spec[f"{prefix}_hint"].to_numpy(dtype=float)
    base = spec["baseline"].to_numpy(dtype=float)
    base = np.where(np.isnan(base), hint, base)
    up = base * (1.0 + uplift)
    combined = np.where(combine < 0, np.fmin(bench, up), np.fmax(bench, up))
    bench_t = np.where(np.isnan(uplift), bench, combined)
    improve_t = np.where(np.isnan(prev), hint, prev)
    out = np.full(len(kind), np.nan)
    out = np.where(kind == 1, value, out)
    out = np.where(kind == 2, bench_t, out)
    return np.where(kind == 3, improve_t, out)


def _previous_year(gid: npt.NDArray[np.int64], ordinal: npt.NDArray[np.int64], per_year: npt.NDArray[np.int64],
                   value: FloatArray) -> FloatArray:
    key = gid * 1_000_000 + ordinal
    lookup = pd.Series(value, index=key)
    lookup = lookup[~lookup.index.duplicated(keep="last")]
    return lookup.reindex(key - per_year).to_numpy(dtype=float)


def _trend(gid: npt.NDArray[np.int64], ordinal: npt.NDArray[np.int64], value: FloatArray, pol: FloatArray,
           pct: BoolArray) -> npt.NDArray[np.int8]:
    """Trend codes (index into TRENDS) from the last three values, read in polarity's direction."""
    n = len(value)
    order = np.lexsort((ordinal, gid))
    gs, vs = gid[order], value[order]
    nn = np.flatnonzero(~np.isnan(vs))
    g, v = gs[nn], vs[nn]
    p1 = np.concatenate(([np.nan], v[:-1]))
    p2 = np.concatenate(([np.nan, np.nan], v[:-2]))[: len(v)]
    g2 = np.concatenate(([-1, -1], g[:-2]))[: len(g)]
    ok = g2 == g
    sign = pol[order][nn]
    d1 = (p1 - p2) * sign
    d2 = (v - p1) * sign
    level = (np.abs(p2) + np.abs(p1) + np.abs(v)) / 3.0
    mat = np.where(pct[order][nn], _PCT_MATERIAL, _REL_MATERIAL * level)
    mat = np.maximum(mat, 1e-9)
    m1, m2 = np.abs(d1) >= mat, np.abs(d2) >= mat
    net = d1 + d2
    code = np.select(
        [~ok, m1 & m2 & (np.sign(d1) != np.sign(d2)), net >= mat, net <= -mat],
        [4, 3, 0, 2],
        1,
    ).astype(np.int8)
    # Rows without a value carry the trend of the group's latest earlier value.
    sorted_codes = np.full(n, -1, dtype=np.int8)
    sorted_codes[nn] = code
    s = pd.Series(sorted_codes).where(sorted_codes >= 0)
    filled = s.groupby(gs).ffill().fillna(4).to_numpy(dtype=np.int8)
    out = np.empty(n, dtype=np.int8)
    out[order] = filled
    return out


def evaluate(figures: pd.DataFrame, terms: pd.DataFrame) -> pd.DataFrame:
    """Evaluate annotated figures against the terms frame; returns the figures with result columns.

    Added columns: ``target`` (the contract's words), ``threshold``, ``tolerance_threshold``,
    ``position``, ``rag``, ``trend``, ``critical``, ``exception_required``, ``exempt``,
    ``ytd_value`` and ``ytd_target`` (for annual count targets checked part-way through a year).
    """
    figures = figures.reset_index(drop=True)
    n = len(figures)
    key_cols = ["contract", "kpi", "year"]
    tindex = pd.MultiIndex.from_frame(terms[key_cols])
    idx = tindex.get_indexer(pd.MultiIndex.from_frame(figures[key_cols]))
    unknown = idx < 0
    spec = terms.iloc[np.where(unknown, 0, idx)].reset_index(drop=True) if len(terms) else terms
    value = figures["value"].to_numpy(dtype=float)
    bench = (figures["benchmark"].to_numpy(dtype=float) if "benchmark" in figures
             else np.full(n, np.nan))
    ordinal = figures["ordinal"].to_numpy(dtype=np.int64)
    per_year = figures["per_year"].to_numpy(dtype=np.int64)
    gid = pd.MultiIndex.from_arrays([figures["contract"], figures["kpi"], figures["kind"]]).codes
    gid_arr = (np.asarray(gid[0], dtype=np.int64) * 1_000_003 + np.asarray(gid[1], dtype=np.int64)) * 3 \
        + np.asarray(gid[2], dtype=np.int64)
    gid_arr = pd.factorize(gid_arr)[0].astype(np.int64)
    prev = _previous_year(gid_arr, ordinal, per_year, value)

    t_thr = _threshold(spec, "t", bench, prev)
    tol_thr = _threshold(spec, "tol", bench, prev)
    crit_thr = _threshold(spec, "crit", bench, prev)

    # Annual count targets checked at a quarter: compare the year to date with the pro-rata profile.
    annual = spec["annual"].to_numpy(dtype=bool) & (figures["kind"].to_numpy() != "year")
    ytd_value = np.full(n, np.nan)
    ytd_target = np.full(n, np.nan)
    if annual.any():
        ry = figures["ry"].to_numpy(dtype=np.int64)
        frame = pd.DataFrame({"g": gid_arr, "ry": ry, "o": ordinal, "v": np.nan_to_num(value)})
        frame = frame.sort_values(["g", "ry", "o"])
        cums = frame.groupby(["g", "ry"], sort=False)["v"].cumsum()
        ytd_all = cums.reindex(figures.index).to_numpy(dtype=float)
        frac = (figures["idx_in_year"].to_numpy(dtype=float) + 1.0) / per_year
        ytd_value = np.where(annual, ytd_all, np.nan)
        ytd_target = np.where(annual, t_thr * frac, np.nan)
        cmp_value = np.where(annual, ytd_all, value)
        cmp_value = np.where(np.isnan(value), np.nan, cmp_value)
        t_thr = np.where(annual, t_thr * frac, t_thr)
        tol_thr = np.where(annual, tol_thr * frac, tol_thr)
        crit_thr = np.where(annual, crit_thr * frac, crit_thr)
    else:
        cmp_value = value

    v = np.round(cmp_value, 9)
    t_op = spec["t_op"].to_numpy(dtype=np.int64)
    exempt = spec["exempt"].to_numpy(dtype=bool) & ~unknown
    missing = np.isnan(value)
    has_t = (spec["t_kind"].to_numpy() != 0) & ~np.isnan(t_thr) & ~exempt & ~unknown
    met = has_t & _cmp(v, t_op, np.round(t_thr, 9))
    tol_ok = has_t & _cmp(v, spec["tol_op"].to_numpy(dtype=np.int64), np.round(tol_thr, 9))
    pos_code = np.select([missing, ~has_t, met, tol_ok], [4, 3, 0, 1], 2)
    critical = (~missing & ~exempt & ~unknown
                & _cmp(v, spec["crit_op"].to_numpy(dtype=np.int64), np.round(crit_thr, 9)))
    exception = spec["exception"].to_numpy(dtype=bool) & ((pos_code == 1) | (pos_code == 2))

    pol = spec["pol"].to_numpy(dtype=float)
    pct = spec["pct"].to_numpy(dtype=bool)
    trend = _trend(gid_arr, ordinal, value, pol, pct)

    out = figures.copy()
    out["target"] = np.where(unknown, "", spec["target_text"].to_numpy(dtype=object))
    out["threshold"] = t_thr
    out["tolerance_threshold"] = tol_thr
    out["critical_threshold"] = crit_thr
    position = np.asarray(POSITIONS, dtype=object)[pos_code]
    out["position"] = position
    out["rag"] = pd.Series(position).map(RAG_OF).to_numpy()
    out["trend"] = np.asarray(TRENDS, dtype=object)[trend]
    out["critical"] = critical
    out["exception_required"] = exception
    out["exempt"] = exempt
    out["ytd_value"] = ytd_value
    out["ytd_target"] = ytd_target
    return out


# ------------------------------------------------------------------ scalar reference path


@dataclass(frozen=True)
class ScalarResult:
    position: str
    critical: bool
    threshold: float | None


def evaluate_scalar(
    value: float | None,
    terms: YearTerms,
    *,
    benchmark: float | None = None,
    previous: float | None = None,
    baseline: float | None = None,
) -> ScalarResult:
    """One figure against one year's terms, using the ``Target`` objects directly."""
    target = terms.target
    thr = target.threshold_for(benchmark, baseline, previous)
    if value is None or math.isnan(value):
        return ScalarResult("missing", False, thr)
    crit = False
    if terms.critical is not None and not terms.exempt and terms.critical.kind != "none":
        cthr = terms.critical.threshold_for(benchmark, baseline, previous)
        crit = cthr is not None and terms.critical.breached(value, cthr)
    if terms.exempt or target.kind == "none" or thr is None:
        return ScalarResult("no_target", crit, thr)
    if target.satisfied(value, thr):
        return ScalarResult("met", crit, thr)
    tol = terms.tolerance
    if tol is not None and tol.kind != "none":
        tthr = tol.threshold_for(benchmark, baseline, previous)
        if tthr is not None and tol.satisfied(value, tthr):
            return ScalarResult("within_tolerance", crit, thr)
    return ScalarResult("not_met", crit, thr)


def trend_scalar(values: Sequence[float], polarity: str, unit: str) -> str:
    """The trend from a KPI's values in period order (the last three count)."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if len(vals) < 3:
        return "new"
    a, b, c = vals[-3:]
    sign = 1.0 if polarity == "bigger" else -1.0
    d1, d2 = (b - a) * sign, (c - b) * sign
    mat = _PCT_MATERIAL if unit == "percent" else _REL_MATERIAL * (abs(a) + abs(b) + abs(c)) / 3.0
    mat = max(mat, 1e-9)
    if abs(d1) >= mat and abs(d2) >= mat and (d1 > 0) != (d2 > 0):
        return "volatile"
    if d1 + d2 >= mat:
        return "improving"
    if d1 + d2 <= -mat:
        return "worsening"
    return "stable"
