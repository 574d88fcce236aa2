"""Vectorised evaluation: figures against targets, giving position, RAG, trend and critical failure.

Two inputs, both pandas frames:

* a **terms frame** (``terms_frame``): one row per (contract, kpi, year) with each parsed
  ``Target`` flattened into numeric columns;
* a **figures frame**: one row per (contract, kpi, period) with ``value`` (or NaN when a return is
  missing), an optional ``benchmark`` (national average for that period), and period facts
  added by ``annotate_periods``.

``evaluate`` joins them and computes everything with numpy, so a million rows take under half a
second (``benchmarks/engine.py``). ``evaluate_scalar`` is the same rules one row at a time on the
``Target`` objects; the tests hold the two to identical answers.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from kpibot.engine.periods import Period, parse_period
from kpibot.engine.targets import Target, YearTerms

POSITIONS = ("met", "within_tolerance", "not_met", "no_target", "missing")
RAG_OF = {
    "met": "green",
    "within_tolerance": "amber",
    "not_met": "red",
    "no_target": "grey",
    "missing": "grey",
}
TRENDS = ("improving", "stable", "worsening", "volatile", "new")
TREND_ARROWS = {"improving": "↗", "stable": "→", "worsening": "↘", "volatile": "↕", "new": ""}

_KIND = {"none": 0, "threshold": 1, "range": 1, "benchmark": 2, "improvement": 3}
_KIND.update({"relative": 4, "tolerance_relative": 5, "milestone": 1})
_OP = {"gt": 1, "ge": 2, "lt": 3, "le": 4}
_PER_YEAR = {"quarter": 4, "month": 12, "year": 1}
# A change smaller than this is noise, not a trend: 2 percentage points for percentages,
# 5% of the level for everything else.
_PCT_MATERIAL = 2.0
_REL_MATERIAL = 0.05

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
_S = TypeVar("_S", bound=np.generic)
# With copy-on-write (always on from pandas 3) a shallow copy of the figures is as safe as a deep one.
_COPY_ON_WRITE = int(pd.__version__.split(".")[0]) >= 3


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
    trend: str = "last_three"
    year_to_date: bool = False
    cumulative: tuple[float, ...] | None = None


def _flatten(
    t: Target | None, polarity: str, role: str
) -> tuple[int, int, float, float, float, float]:
    """(kind, op, value, uplift, combine, hint) for one target; range becomes its meet-side bound.

    For a relative target ``combine`` is -1 when the reference is the same period last year;
    for a relative tolerance ``value`` is the factor the target is multiplied by.
    """
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
    if t.kind == "tolerance_relative":
        op = "ge" if polarity == "bigger" else "le"
        value = t.tolerance_factor()
    if t.kind == "milestone":
        op, value = "ge", 1.0
    uplift = t.uplift if t.uplift is not None else nan
    combine = -1.0 if t.combine == "min" else 1.0
    if t.kind == "relative":
        combine = -1.0 if t.baseline_from == "previous_year" else 1.0
    hint = t.baseline_hint if t.baseline_hint is not None else nan
    return _KIND[t.kind], _OP[op], float(value), uplift, combine, hint


Terms = Mapping[str, Any]
"""The terms as columns: a terms frame, or :func:`terms_columns`' plain arrays."""


def terms_frame(entries: Iterable[TermsEntry]) -> pd.DataFrame:
    """Flatten parsed terms into one numeric row per (contract, kpi, year)."""
    return pd.DataFrame(_term_rows(entries))


def terms_columns(entries: Iterable[TermsEntry]) -> dict[str, npt.NDArray[Any]]:
    """:func:`terms_frame` as plain arrays, one per column (no DataFrame to build)."""
    rows = _term_rows(entries)
    if not rows:
        return {}
    return {
        key: _column([r[key] for r in rows], object if key in _OBJECT_COLUMNS else None)
        for key in rows[0]
    }


_OBJECT_COLUMNS = ("target_text", "cumulative")


def _column(values: list[object], dtype: type | None) -> npt.NDArray[Any]:
    if dtype is object:
        out = np.empty(len(values), dtype=object)
        out[:] = values  # each entry as it is (a profile stays one tuple, not a 2-D array)
        return out
    return np.asarray(values)


def _term_rows(entries: Iterable[TermsEntry]) -> list[dict[str, object]]:
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
            "trend_yoy": e.trend == "same_period_last_year",
            "ytd": e.year_to_date,
            "cumulative": e.cumulative,
        }
        for prefix, t in (("t", yt.target), ("tol", yt.tolerance), ("crit", yt.critical)):
            k, op, v, up, comb, hint = _flatten(
                t, e.polarity, "critical" if prefix == "crit" else prefix
            )
            row.update(
                {
                    f"{prefix}_kind": k,
                    f"{prefix}_op": op,
                    f"{prefix}_value": v,
                    f"{prefix}_uplift": up,
                    f"{prefix}_combine": comb,
                    f"{prefix}_hint": hint,
                }
            )
        rows.append(row)
    return rows


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
        p = parse_period(str(label), ysm(str(contract)))
        per_year = _PER_YEAR[p.kind]
        year = year_of(str(contract), p)
        facts.append(
            (
                contract,
                label,
                p.ordinal,
                p.kind,
                per_year,
                p.reporting_year().ordinal,
                (p.ordinal % per_year) if p.kind != "year" else 0,
                -1 if year is None else year,
                p.start,
            )
        )
    fdf = pd.DataFrame(
        facts,
        columns=[
            "contract",
            "period",
            "ordinal",
            "kind",
            "per_year",
            "ry",
            "idx_in_year",
            "year",
            "period_start",
        ],
    )
    out = figures.drop(
        columns=[c for c in fdf.columns if c not in ("contract", "period") and c in figures],
        errors="ignore",
    )
    return out.merge(fdf, on=["contract", "period"], how="left", sort=False)


def _cmp(v: npt.NDArray[Any], op: npt.NDArray[np.int8], t: npt.NDArray[Any]) -> BoolArray:
    with np.errstate(invalid="ignore"):
        out = (
            ((op == 1) & (v > t))
            | ((op == 2) & (v >= t))
            | ((op == 3) & (v < t))
            | ((op == 4) & (v <= t))
        )
    return np.asarray(out, dtype=bool)


# How a threshold is found, per terms row: one small code plus one number (the constant, the
# uplifted baseline or the improvement hint), so each figure row needs only two lookups.
_T_NONE, _T_CONST, _T_BENCH, _T_BENCH_MAX, _T_BENCH_MIN, _T_IMPROVE = range(6)


def _threshold_rules(terms: Terms, prefix: str) -> tuple[npt.NDArray[np.int8], FloatArray]:
    """Per terms row: (rule code, its number) for the ``prefix`` target."""
    kind = np.asarray(terms[f"{prefix}_kind"])
    value = np.asarray(terms[f"{prefix}_value"], dtype=float)
    uplift = np.asarray(terms[f"{prefix}_uplift"], dtype=float)
    combine = np.asarray(terms[f"{prefix}_combine"], dtype=float)
    hint = np.asarray(terms[f"{prefix}_hint"], dtype=float)
    base = np.asarray(terms["baseline"], dtype=float)
    base = np.where(np.isnan(base), hint, base)
    up = base * (1.0 + uplift)
    bench_rule = np.where(
        np.isnan(uplift), _T_BENCH, np.where(combine < 0, _T_BENCH_MIN, _T_BENCH_MAX)
    )
    # A relative target: the baseline x (1 + change), or last year's figure x (1 + change).
    prev_based = (kind == 4) & (combine < 0)
    base_based = (kind == 4) & ~prev_based
    rule = np.select(
        [kind == 1, kind == 2, kind == 3, prev_based, base_based],
        [_T_CONST, bench_rule, _T_IMPROVE, _T_IMPROVE, _T_CONST],
        _T_NONE,
    )
    number = np.select(
        [kind == 1, kind == 2, kind == 3, prev_based, base_based],
        [value, up, hint, hint, up],
        np.nan,
    )
    return rule.astype(np.int8), number


def _improve_factor(terms: Terms, prefix: str) -> FloatArray:
    """Per terms row: what last year's figure is multiplied by (1 + change; 1 for 'improvement')."""
    kind = np.asarray(terms[f"{prefix}_kind"])
    uplift = np.asarray(terms[f"{prefix}_uplift"], dtype=float)
    factor = np.where((kind == 3) | (kind == 4), 1.0 + np.nan_to_num(uplift), 1.0)
    return np.asarray(factor, dtype=float)


def _threshold(
    rule: npt.NDArray[np.int8], number: FloatArray, bench: FloatArray, prev: FloatArray
) -> FloatArray:
    out = np.full(len(rule), np.nan)
    for code, compute in (
        (_T_CONST, lambda m: number[m]),
        (_T_BENCH, lambda m: bench[m]),
        (_T_BENCH_MAX, lambda m: np.fmax(bench[m], number[m])),
        (_T_BENCH_MIN, lambda m: np.fmin(bench[m], number[m])),
        (_T_IMPROVE, lambda m: np.where(np.isnan(prev[m]), number[m], prev[m])),
    ):
        mask = rule == code
        if mask.any():
            out[mask] = compute(mask)
    return out


def _factorize(values: npt.NDArray[Any]) -> tuple[IntArray, npt.NDArray[Any]]:
    """Codes and distinct values; a missing value is a value too (as an index level treats it)."""
    codes, uniques = pd.factorize(values)
    codes = codes.astype(np.int64, copy=False)
    uniques = np.asarray(uniques)
    if len(codes) and codes.min() < 0:  # cheaper than asking pandas to code missing values
        codes = np.where(codes < 0, len(uniques), codes)
        uniques = np.append(uniques.astype(object), [values[np.argmax(pd.isna(values))]])
    return codes, uniques


def _run_starts(columns: Sequence[npt.NDArray[Any]], n: int) -> IntArray:
    """The first row of each run of rows equal in every one of ``columns``.

    Figures usually arrive grouped by contract and KPI, so working on one row per run instead
    of every row makes the key handling several times quicker; when nothing repeats it costs
    one comparison pass.
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    changed = np.zeros(n - 1, dtype=bool)
    for values in columns:
        try:
            with np.errstate(invalid="ignore"):
                differs = np.asarray(values[1:] != values[:-1], dtype=bool)
        except (TypeError, ValueError):  # no plain truth for "differs" (pd.NA): one row per run
            return np.arange(n, dtype=np.int64)
        if differs.shape != changed.shape:
            return np.arange(n, dtype=np.int64)
        changed |= differs
    return np.concatenate(([0], np.flatnonzero(changed) + 1)).astype(np.int64)


def _codes(values: npt.NDArray[Any]) -> tuple[IntArray, npt.NDArray[Any]]:
    """Factorize one column (missing values get a code too), hashing once per run of equal values."""
    starts = _run_starts([values], len(values))
    codes, uniques = _factorize(values[starts])
    return np.repeat(codes, np.diff(np.append(starts, len(values)))), uniques


def _terms_rows(
    fig_keys: Sequence[npt.NDArray[Any]],
    terms: pd.DataFrame,
    key_cols: list[str],
) -> tuple[IntArray, list[IntArray]]:
    """The terms row of each figure key (-1 when none), and the figures' own codes per key column."""
    n = len(fig_keys[0])
    fig_codes: list[IntArray] = []
    fkey = np.zeros(n, dtype=np.int64)
    tkey = np.zeros(len(terms), dtype=np.int64)
    span = 1
    for values, col in zip(fig_keys, key_cols, strict=True):
        fc, fu = _factorize(values)
        tc, tu = _codes(terms[col].to_numpy())
        width = max(len(tu), 1)
        to_terms = (
            pd.Index(tu).get_indexer(fu).astype(np.int64) if len(tu) else np.full(len(fu), -1)
        )
        fk = to_terms[fc]
        fig_codes.append(fc)
        fkey = np.where((fkey < 0) | (fk < 0), -1, fkey * width + fk)
        tkey = tkey * width + tc
        span *= width
    if span >= 2**62:  # too many distinct keys to number densely: match the labels instead
        tindex = pd.MultiIndex.from_frame(terms[key_cols])
        idx = tindex.get_indexer(pd.MultiIndex.from_arrays(list(fig_keys), names=key_cols))
        return idx.astype(np.int64), fig_codes
    # Terms keys are dense (at most the product of distinct values), so a direct table is the
    # quickest lookup. A duplicated terms row is an error, as with an index.
    rows = np.arange(len(terms), dtype=np.int64)
    if span <= 8 * len(terms) + 1_000_000:
        table = np.full(span, -1, dtype=np.int64)
        table[tkey] = rows
        if not np.array_equal(table[tkey], rows):
            raise pd.errors.InvalidIndexError(
                "Reindexing only valid with uniquely valued Index objects"
            )
        idx = np.where(fkey >= 0, table[np.clip(fkey, 0, None)], -1)
    else:
        idx = np.where(fkey >= 0, pd.Index(tkey).get_indexer(pd.Index(fkey)), -1)
    return idx.astype(np.int64), fig_codes


def _series_order(
    gid: npt.NDArray[np.int64],
    ordinal: npt.NDArray[np.int64],
) -> tuple[IntArray | None, npt.NDArray[np.int64], int]:
    """Row order by (group, ordinal), stable; None when the rows already are in that order.

    Returns (order, sorted key, lowest ordinal); key = group * span + (ordinal - lowest).
    """
    if len(ordinal) == 0:
        return None, np.empty(0, dtype=np.int64), 0
    lo, hi = int(ordinal.min()), int(ordinal.max())
    span = hi - lo + 1
    if (int(gid.max()) + 1) * span >= 2**62:
        gid = pd.factorize(gid)[0].astype(np.int64)
    key = gid * span + (ordinal - lo)
    if bool((key[1:] >= key[:-1]).all()):
        return None, key, lo
    n = len(key)
    if (int(key.max()) + 1) * n < 2**62:
        # Ties broken by row number make the keys unique, so the fast unstable sort is stable.
        order = np.argsort(key * n + np.arange(n, dtype=np.int64))
    else:
        order = np.argsort(key, kind="stable")
    return order, key[order], lo


def _sorted(a: npt.NDArray[_S], order: IntArray | None) -> npt.NDArray[_S]:
    return a if order is None else a[order]


def _unsorted(a: npt.NDArray[_S], order: IntArray | None) -> npt.NDArray[_S]:
    if order is None:
        return a
    out = np.empty_like(a)
    out[order] = a
    return out


def _previous_year(
    order: IntArray | None,
    key_s: IntArray,
    lowest: int,
    ordinal: IntArray,
    per_year: IntArray,
    value: FloatArray,
) -> FloatArray:
    """The value of the same period a year earlier in the same group (the last such row), or NaN."""
    n = len(key_s)
    if n == 0:
        return np.full(0, np.nan)
    value_s = _sorted(value, order)
    back_s = _sorted(per_year, order)
    want = key_s - back_s
    valid = _sorted(ordinal, order) - back_s >= lowest
    last = np.ones(n, dtype=bool)
    last[:-1] = key_s[1:] != key_s[:-1]  # of rows repeating a period, the last one counts
    top = int(key_s[-1])
    if top < 4 * n + 1024:
        table = np.full(top + 1, -1, dtype=np.int64)
        table[key_s[last]] = np.flatnonzero(last)
        pos = np.where(valid, table[np.clip(want, 0, top)], -1)
    else:
        pos = np.searchsorted(key_s, want, side="right") - 1
        pos = np.where(valid & (pos >= 0) & (key_s[np.clip(pos, 0, None)] == want), pos, -1)
    prev_s = np.where(pos >= 0, value_s[np.clip(pos, 0, None)], np.nan)
    return _unsorted(prev_s, order)


def _trend(
    order: IntArray | None, gid: IntArray, value: FloatArray, pol: FloatArray, pct: BoolArray
) -> npt.NDArray[np.int8]:
    """Trend codes (index into TRENDS) from the last three values, read in polarity's direction."""
    n = len(value)
    reported = ~np.isnan(_sorted(value, order))
    nn = np.flatnonzero(reported)
    src = nn if order is None else order[nn]  # the reported values' own rows, in series order
    g, v = gid[src], value[src]
    code = np.full(len(nn), 4, dtype=np.int8)  # the first two values of a series are new
    if len(nn) > 2:
        # Each value with the two reported before it: p2, p1, v3.
        p2, p1, v3 = v[:-2], v[1:-1], v[2:]
        sign = pol[src[2:]]
        d1 = p1 - p2
        d1 *= sign
        d2 = v3 - p1
        d2 *= sign
        size = np.abs(v)
        level = size[:-2] + size[1:-1]
        level += size[2:]
        level /= 3.0
        mat = np.where(pct[src[2:]], _PCT_MATERIAL, _REL_MATERIAL * level)
        np.maximum(mat, 1e-9, out=mat)
        net = d1 + d2
        # Assigned from the weakest rule up, so the strongest that holds wins.
        c = np.ones(len(v3), dtype=np.int8)
        c[net <= -mat] = 2
        c[net >= mat] = 0
        c[(np.abs(d1) >= mat) & (np.abs(d2) >= mat) & ((d1 > 0) != (d2 > 0))] = 3
        c[g[:-2] != g[2:]] = 4
        code[2:] = c
    sorted_codes = np.full(n, 4, dtype=np.int8)
    sorted_codes[nn] = code
    if len(nn) < n and len(nn):
        # Rows without a value carry the trend of the group's latest earlier value.
        gaps = np.flatnonzero(~reported)
        before = np.searchsorted(nn, gaps) - 1
        has = before >= 0
        gaps, before = gaps[has], before[has]
        gap_rows = gaps if order is None else order[gaps]
        same = gid[gap_rows] == g[before]
        sorted_codes[gaps[same]] = code[before[same]]
    return _unsorted(sorted_codes, order)


def _profile_fractions(
    terms: Terms,
    at: IntArray,
    unknown: BoolArray,
    in_year: FloatArray,
    per_year: IntArray,
    even: FloatArray,
) -> FloatArray:
    """Each row's cumulative share of the annual target from its KPI's in-year profile."""
    column = terms["cumulative"]
    raw = column.to_numpy() if isinstance(column, pd.Series) else column
    profiles = np.asarray(raw, dtype=object)
    has = np.fromiter((isinstance(p, tuple) for p in profiles), dtype=bool, count=len(profiles))
    if not has.any():
        return even
    idx = in_year.astype(np.int64)
    out = even.copy()
    for r in np.flatnonzero(has[at] & ~unknown):
        shares = profiles[at[r]]
        if len(shares) == per_year[r] and 0 <= idx[r] < len(shares):
            out[r] = shares[idx[r]]
    return out


def _trend_yoy(
    order: IntArray | None,
    gid: IntArray,
    value: FloatArray,
    prev: FloatArray,
    pol: FloatArray,
    pct: BoolArray,
) -> npt.NDArray[np.int8]:
    """Trend codes against the same period a year earlier (rows without a value carry the last)."""
    with np.errstate(invalid="ignore"):
        d = (value - prev) * pol
        level = (np.abs(value) + np.abs(prev)) / 2.0
    mat = np.maximum(np.where(pct, _PCT_MATERIAL, _REL_MATERIAL * level), 1e-9)
    code = np.full(len(value), 1, dtype=np.int8)
    code[d >= mat] = 0
    code[d <= -mat] = 2
    code[np.isnan(prev) | np.isnan(value)] = 4
    # a missing value shows the trend of the group's latest earlier value
    missing = np.isnan(_sorted(value, order))
    if missing.any():
        codes_s = _sorted(code, order)
        gid_s = _sorted(gid, order)
        last = -1
        for k in range(len(codes_s)):
            if k > 0 and gid_s[k] != gid_s[k - 1]:
                last = -1
            if missing[k]:
                if last >= 0:
                    codes_s[k] = codes_s[last]
            else:
                last = k
        code = _unsorted(codes_s, order)
    return code


def _year_to_date(
    order: IntArray | None,
    gid: npt.NDArray[np.int64],
    ry: npt.NDArray[np.int64],
    ordinal: npt.NDArray[np.int64],
    value: FloatArray,
    annual: BoolArray,
) -> FloatArray:
    """Running total within (group, reporting year) in period order, for the rows of ``annual``."""
    n = len(value)
    gs, rys = _sorted(gid, order), _sorted(ry, order)
    same_group = gs[1:] == gs[:-1]
    if not bool((rys[1:][same_group] >= rys[:-1][same_group]).all()):
        # Reporting years out of step with ordinals: sort by (group, year, ordinal) as well.
        order = np.lexsort((ordinal, ry, gid))
        gs, rys = gid[order], ry[order]
    new_seg = np.ones(n, dtype=bool)
    new_seg[1:] = (gs[1:] != gs[:-1]) | (rys[1:] != rys[:-1])
    seg = np.cumsum(new_seg) - 1
    wanted = np.zeros(int(seg[-1]) + 1 if n else 0, dtype=bool)
    wanted[seg[_sorted(annual, order)]] = True
    rows = np.flatnonzero(wanted[seg])
    v = np.nan_to_num(_sorted(value, order)[rows])
    # pandas' grouped cumsum, so the totals match to the last bit what evaluate always returned.
    cums = pd.Series(v).groupby(seg[rows], sort=False).cumsum().to_numpy(dtype=float)
    out = np.full(n, np.nan)
    out[rows if order is None else order[rows]] = cums
    return out


def _labels(names: Sequence[str], codes: npt.NDArray[np.integer[Any]]) -> Any:
    """A text column from small codes, with the dtype pandas infers for those texts.

    Inferring from the distinct texts gives the dtype the full column would get, without
    checking a million strings one by one.
    """
    used = np.zeros(len(names), dtype=bool)
    used[codes] = True
    renumber = np.cumsum(used) - 1
    return pd.Series(np.asarray(names, dtype=object)[used]).array.take(renumber[codes])


def evaluate(figures: pd.DataFrame, terms: pd.DataFrame) -> pd.DataFrame:
    """Evaluate annotated figures against the terms frame; returns the figures with result columns.

    Added columns: ``target`` (the contract's words), ``threshold``, ``tolerance_threshold``,
    ``position``, ``rag``, ``trend``, ``critical``, ``exception_required``, ``exempt``,
    ``ytd_value`` and ``ytd_target`` (for annual count targets checked part-way through a year).
    """
    figures = figures.reset_index(drop=True)
    n = len(figures)
    # Keys are resolved once per run of rows sharing contract, KPI, year and period kind.
    key_cols = ["contract", "kpi", "year"]
    keys = [figures[c].to_numpy() for c in (*key_cols, "kind")]
    starts = _run_starts(keys, n)
    lengths = np.diff(np.append(starts, n))
    heads = [k[starts] for k in keys]
    idx_h, (c_h, k_h, _y) = _terms_rows(heads[:3], terms, key_cols)
    kind_h, kinds = _factorize(heads[3])
    gid_h = (c_h * (int(k_h.max(initial=0)) + 1) + k_h) * max(len(kinds), 1) + kind_h
    is_year = np.asarray([k == "year" for k in kinds], dtype=bool)
    per_year = figures["per_year"].to_numpy(dtype=np.int64)
    evaluated = evaluate_arrays(
        terms,
        np.repeat(idx_h, lengths),
        np.repeat(gid_h, lengths),
        is_year[np.repeat(kind_h, lengths)] if len(kinds) else np.zeros(n, dtype=bool),
        figures["value"].to_numpy(dtype=float),
        figures["benchmark"].to_numpy(dtype=float)
        if "benchmark" in figures
        else np.full(n, np.nan),
        figures["ordinal"].to_numpy(dtype=np.int64),
        per_year,
        lambda: figures["ry"].to_numpy(dtype=np.int64),
        lambda: figures["idx_in_year"].to_numpy(dtype=float),
    )
    return evaluated.attach(figures)


@dataclass(frozen=True)
class Evaluated:
    """What :func:`evaluate_arrays` works out for each figure row, as numpy arrays.

    ``position`` and ``trend`` are codes into ``POSITIONS`` and ``TRENDS``; ``text`` indexes
    ``texts`` (the terms' target words, with "" last for rows without terms).
    """

    texts: tuple[str, ...]
    text: IntArray
    threshold: FloatArray
    tolerance_threshold: FloatArray
    critical_threshold: FloatArray
    position: npt.NDArray[np.int8]
    trend: npt.NDArray[np.int8]
    critical: BoolArray
    exception_required: BoolArray
    exempt: BoolArray
    ytd_value: FloatArray
    ytd_target: FloatArray

    def attach(self, figures: pd.DataFrame) -> pd.DataFrame:
        """``figures`` with the result columns added, as :func:`evaluate` returns them."""
        results = {
            "target": _labels([*self.texts, ""], self.text),
            "threshold": self.threshold,
            "tolerance_threshold": self.tolerance_threshold,
            "critical_threshold": self.critical_threshold,
            "position": _labels(POSITIONS, self.position),
            "rag": _labels([RAG_OF[p] for p in POSITIONS], self.position),
            "trend": _labels(TRENDS, self.trend),
            "critical": self.critical,
            "exception_required": self.exception_required,
            "exempt": self.exempt,
            "ytd_value": self.ytd_value,
            "ytd_target": self.ytd_target,
        }
        if figures.columns.intersection(list(results)).empty:
            # One concat instead of a dozen column inserts (each of which rebuilds the block list).
            return pd.concat(
                [figures, pd.DataFrame(results, index=figures.index, copy=False)], axis=1
            )
        out = figures.copy(deep=not _COPY_ON_WRITE)
        for column, values in results.items():
            out[column] = values
        return out


def evaluate_arrays(
    terms: Terms,
    idx: IntArray,
    gid_arr: IntArray,
    is_year: BoolArray,
    value: FloatArray,
    bench: FloatArray,
    ordinal: IntArray,
    per_year: IntArray,
    ry: Callable[[], IntArray],
    idx_in_year: Callable[[], FloatArray],
) -> Evaluated:
    """The rules of :func:`evaluate` on plain arrays, one entry per figure row.

    ``idx`` is each row's terms row (-1 when it has none), ``gid_arr`` its series (rows of one
    KPI in one period kind share it), ``is_year`` whether its period is a whole year; ``ry`` and
    ``idx_in_year`` are asked for only when some row has an annual target. Evaluating many
    contracts at once is this one call over all their rows.
    """
    n = len(value)
    unknown = idx < 0
    at = np.where(unknown, 0, idx)

    def spec(column: str, dtype: type | str) -> npt.NDArray:  # type: ignore[type-arg]
        values = np.asarray(terms[column], dtype=dtype)
        return values[at] if len(values) else np.zeros(n, dtype=values.dtype)

    order, key_s, lowest = _series_order(gid_arr, ordinal)
    prev = _previous_year(order, key_s, lowest, ordinal, per_year, value)

    thresholds = []
    for prefix in ("t", "tol", "crit"):
        rule, number = _threshold_rules(terms, prefix)
        rule_r = rule[at] if len(rule) else np.zeros(n, dtype=np.int8)
        number_r = number[at] if len(number) else np.full(n, np.nan)
        thr = _threshold(rule_r, number_r, bench, prev)
        factor = _improve_factor(terms, prefix)
        if len(factor) and (factor != 1.0).any():
            thr = np.where(rule_r == _T_IMPROVE, thr * factor[at], thr)
        thresholds.append(thr)
    if unknown.any():  # a KPI the terms do not define has no thresholds (not terms row 0's)
        thresholds = [np.where(unknown, np.nan, t) for t in thresholds]
    t_thr, tol_thr, crit_thr = thresholds
    t_kind = spec("t_kind", np.int64)
    tol_kind = spec("tol_kind", np.int64)
    if (tol_kind == 5).any():
        # "within 10% of target": the tolerance is a share of this period's target
        tol_thr = np.where(tol_kind == 5, t_thr * spec("tol_value", float), tol_thr)

    # Annual targets checked part-way through a year: compare the year to date with the profile
    # (even, the KPI's seasonal profile, or its cumulative in-year targets). Year-to-date
    # figures are compared as they are; period figures are added up first.
    ytd_flag = (spec("ytd", bool) if "ytd" in terms else np.zeros(n, dtype=bool)) & ~unknown
    annual = (spec("annual", bool) | ytd_flag) & ~is_year & ~unknown
    ytd_value = np.full(n, np.nan)
    ytd_target = np.full(n, np.nan)
    if annual.any():
        summed = _year_to_date(order, gid_arr, ry(), ordinal, value, annual & ~ytd_flag)
        ytd_all = np.where(ytd_flag, value, summed)
        in_year = idx_in_year()
        frac = (in_year + 1.0) / per_year
        if "cumulative" in terms:
            frac = _profile_fractions(terms, at, unknown, in_year, per_year, frac)
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
    exempt = spec("exempt", bool) & ~unknown
    missing = np.isnan(value)
    has_t = (t_kind != 0) & ~np.isnan(t_thr) & ~exempt & ~unknown
    met = has_t & _cmp(v, spec("t_op", np.int8), np.round(t_thr, 9))
    tol_ok = has_t & _cmp(v, spec("tol_op", np.int8), np.round(tol_thr, 9))
    pos_code = np.select([missing, ~has_t, met, tol_ok], [4, 3, 0, 1], 2).astype(np.int8)
    critical = (
        ~missing & ~exempt & ~unknown & _cmp(v, spec("crit_op", np.int8), np.round(crit_thr, 9))
    )
    exception = spec("exception", bool) & ((pos_code == 1) | (pos_code == 2))

    # Rows without terms read their trend as bigger-is-better counts, whatever terms row 0 says.
    pol = np.where(unknown, 1.0, spec("pol", float))
    trend = _trend(order, gid_arr, value, pol, spec("pct", bool) & ~unknown)
    if "trend_yoy" in terms:
        yoy = spec("trend_yoy", bool) & ~unknown
        if yoy.any():
            yoy_codes = _trend_yoy(order, gid_arr, value, prev, pol, spec("pct", bool) & ~unknown)
            trend = np.where(yoy, yoy_codes, trend).astype(np.int8)

    text_code, texts = _codes(np.asarray(terms["target_text"], dtype=object))
    text_r = np.where(unknown, len(texts), text_code[at] if len(text_code) else 0)
    return Evaluated(
        tuple(texts),
        text_r.astype(np.int64),
        t_thr,
        tol_thr,
        crit_thr,
        pos_code,
        trend,
        critical,
        exception,
        exempt,
        ytd_value,
        ytd_target,
    )


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
        tthr = tol.threshold_for(benchmark, baseline, previous, target=thr)
        if tthr is not None and tol.satisfied(value, tthr):
            return ScalarResult("within_tolerance", crit, thr)
    return ScalarResult("not_met", crit, thr)


def trend_scalar(
    values: Sequence[float],
    polarity: str,
    unit: str,
    *,
    method: str = "last_three",
    previous: float | None = None,
) -> str:
    """The trend from a KPI's values in period order (the last three count), or, with
    ``method="same_period_last_year"``, the latest value against ``previous`` (a year earlier).
    """
    if method == "same_period_last_year":
        latest = values[-1] if values else None
        if latest is None or previous is None or math.isnan(latest) or math.isnan(previous):
            return "new"
        d = (latest - previous) * (1.0 if polarity == "bigger" else -1.0)
        level = (abs(latest) + abs(previous)) / 2.0
        mat = max(_PCT_MATERIAL if unit == "percent" else _REL_MATERIAL * level, 1e-9)
        return "improving" if d >= mat else "worsening" if d <= -mat else "stable"
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
