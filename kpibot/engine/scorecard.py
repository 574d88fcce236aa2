"""A contract's scorecard: every KPI's figures evaluated against the terms of their contract year.

This is the engine's entry point for everything that shows a contract's position (status,
summaries, charts, payments). It is pure: the caller passes the figures (from the store or the
contract's demo history) and the period to report at.

>>> # card = Scorecard.build(contract, figures_frame)
>>> # card.at(contract.parse_period("2019/20 Q3"))  -> one row per KPI
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from kpibot.engine.charts import KpiChartData

from kpibot.engine.evaluate import TermsEntry, annotate_periods, evaluate, terms_frame
from kpibot.engine.model import KPI, Contract
from kpibot.engine.periods import Period, PeriodError, frequency_kind
from kpibot.engine.profile import period_percents
from kpibot.engine.targets import CompiledKpi, compile_contract

_UNITS = ("percent", "count", "days", "score", "rate", "grade")
FIGURE_COLUMNS = ["contract", "kpi", "period", "value", "benchmark"]


def reporting_kind(kpi: KPI, default: str = "quarter") -> str:
    """The period kind a KPI is reported in, read from its frequency ("Quarterly & Annually";
    ``kpibot.engine.periods.frequency_kind``).

    A KPI without a frequency is reported as the contract reports (``default``).
    """
    if not kpi.frequency:
        return default
    try:
        return frequency_kind(kpi.frequency) or default
    except PeriodError:  # refused when the contract is checked; stored before that: as reported
        return default


_COMPILED: dict[int, tuple[Contract, dict[str, CompiledKpi]]] = {}
_TERMS: dict[int, tuple[Contract, pd.DataFrame]] = {}
# Each entry keeps its contract alive (about 150 KB for 40 KPIs); compiling again is cheap, as
# wordings are compiled once for all contracts (kpibot.engine.targets).
COMPILED_CACHE_SIZE = 1024


def compiled(contract: Contract) -> dict[str, CompiledKpi]:
    """Parsed terms for every KPI and year (cached per contract object)."""
    # Keyed by object identity: the entry holds the contract, so the id cannot be reused.
    hit = _COMPILED.get(id(contract))
    if hit is None:
        if len(_COMPILED) >= COMPILED_CACHE_SIZE:
            _COMPILED.clear()
        hit = _COMPILED[id(contract)] = (contract, compile_contract(contract))
    return hit[1]


def remember_compiled(contract: Contract, terms: dict[str, CompiledKpi]) -> None:
    """Keep ``terms``, compiled earlier from ``contract``'s words (maybe from another copy of
    the same contract), as :func:`compiled`'s answer for it, unless it has one already."""
    if id(contract) in _COMPILED:
        return
    if len(_COMPILED) >= COMPILED_CACHE_SIZE:
        _COMPILED.clear()
    _COMPILED[id(contract)] = (contract, terms)


def contract_terms(contract: Contract) -> pd.DataFrame:
    """The flattened terms frame for one contract (cached)."""
    hit = _TERMS.get(id(contract))
    if hit is None:
        comp = compiled(contract)
        entries = [
            TermsEntry(
                contract.id,
                k.code,
                y,
                k.polarity,
                comp[k.code].unit,
                terms,
                k.baseline,
                comp[k.code].trend,
                k.values == "year_to_date" or bool(k.in_year_targets),
                cumulative_shares(contract, k, comp[k.code].cumulative),
            )
            for k in contract.kpis
            for y, terms in comp[k.code].years.items()
        ]
        if len(_TERMS) > 512:
            _TERMS.clear()
        hit = _TERMS[id(contract)] = (contract, terms_frame(entries))
    return hit[1]


def cumulative_shares(
    contract: Contract, kpi: KPI, in_year: tuple[float, ...] | None
) -> tuple[float, ...] | None:
    """Cumulative shares of the annual target through the year: the in-year targets, else the
    KPI's seasonal profile, else None (even)."""
    if in_year is not None:
        return in_year
    if kpi.profile is None:
        return None
    per_year = {"quarter": 4, "month": 12, "year": 1}[
        reporting_kind(kpi, contract.reporting.period)
    ]
    running = 0.0
    out = []
    for share in period_percents(kpi.profile, per_year):
        running += share
        out.append(running / 100.0)
    return tuple(out)


def clear_caches() -> None:
    """Forget every contract's compiled terms (benchmarks measuring a cold start call this)."""
    _COMPILED.clear()
    _TERMS.clear()


def history_frame(contract: Contract) -> pd.DataFrame:
    """The contract's shipped demo history as a figures frame."""
    rows = []
    for f in contract.history:
        value = f.value
        if value is None and f.numerator is not None and f.denominator:
            value = 100.0 * f.numerator / f.denominator
        rows.append(
            {
                "contract": contract.id,
                "kpi": f.kpi,
                "period": contract.parse_period(f.period).label,
                "value": math.nan if value is None else value,
                "benchmark": math.nan,
            }
        )
    return pd.DataFrame(rows, columns=FIGURE_COLUMNS)


@dataclass(frozen=True)
class Scorecard:
    """Evaluated figures for one contract: ``frame`` has one row per (kpi, period) reported."""

    contract: Contract
    frame: pd.DataFrame

    @classmethod
    def build_many(
        cls,
        contracts: list[Contract],
        figures: pd.DataFrame,
        extra_periods: dict[str, list[Period]] | None = None,
    ) -> dict[str, Scorecard]:
        """:meth:`build` for many contracts, evaluating all their figures in one pass.

        Each scorecard is the one :meth:`build` gives for that contract alone (the tests hold
        them equal); the evaluation, the costly part, runs once over every contract's rows.
        """
        extra_periods = extra_periods or {}
        grouped = dict(iter(figures.groupby("contract", sort=False))) if len(figures) else {}
        parts = []
        for c in contracts:
            own = grouped.get(c.id, figures.iloc[0:0])
            parts.append((c, _with_placeholders(c, own, extra_periods.get(c.id))))
        out = {c.id: cls(c, pd.DataFrame()) for c in contracts}
        result = _evaluate_parts(parts)
        if result.empty:
            return out
        for part, frame in result.groupby("part", sort=False):
            contract = parts[int(part)][0]
            out[contract.id] = cls(contract, frame.drop(columns="part").reset_index(drop=True))
        return out

    @classmethod
    def build(
        cls, contract: Contract, figures: pd.DataFrame, extra_periods: list[Period] | None = None
    ) -> Scorecard:
        """Evaluate ``figures`` (columns contract, kpi, period, value[, benchmark]).

        ``extra_periods`` adds a placeholder (missing) row for every KPI reported in that kind of
        period, so a report at a period shows KPIs whose return has not arrived.
        """
        figs = figures[figures["contract"] == contract.id] if len(figures) else figures
        figs = _with_placeholders(contract, figs, extra_periods)
        if figs.empty:
            return cls(contract, pd.DataFrame())
        figs = figs.astype({"value": float, "benchmark": float})
        figs = _fill_benchmarks(contract, figs)

        def year_of(_c: str, p: Period) -> int | None:
            y = contract.year_for(p)
            return None if y is None else y.year

        annotated = annotate_periods(figs, year_of, contract.reporting.year_start_month)
        inside = annotated["year"] >= 0
        result = evaluate(annotated[inside], contract_terms(contract))
        return cls(contract, result.sort_values(["kpi", "period_start"]).reset_index(drop=True))

    def at(self, period: Period) -> pd.DataFrame:
        """One row per KPI at ``period`` (annual KPIs show their latest complete year)."""
        if self.frame.empty:
            return self.frame
        wanted = {k.code: _period_for(self.contract, k, period) for k in self.contract.kpis}
        labels = {code: p.label for code, p in wanted.items() if p is not None}
        rows = self.frame[self.frame["kpi"].map(labels) == self.frame["period"]]
        order = {k.code: i for i, k in enumerate(self.contract.kpis)}
        return rows.assign(_o=rows["kpi"].map(order)).sort_values("_o").drop(columns="_o")

    def kpi_history(self, code: str) -> pd.DataFrame:
        if self.frame.empty:
            return self.frame
        return self.frame[self.frame["kpi"] == code].sort_values("period_start")

    def chart_data(self, code: str, years: int | None = None) -> KpiChartData:
        """Chart input for one KPI: values, RAG, the target stepping by year, tolerance, benchmark."""
        # Loaded here, not at the top, for start-up speed: the charts module loads matplotlib.
        from kpibot.engine.charts import ChartPoint, KpiChartData

        kpi = self.contract.kpi(code)
        unit = compiled(self.contract)[kpi.code].unit
        hist = self.kpi_history(kpi.code)
        if not hist.empty:
            kind = (
                self.contract.reporting.period
                if (hist["kind"] == self.contract.reporting.period).any()
                else hist["kind"].iloc[0]
            )
            hist = hist[hist["kind"] == kind]
            if years is not None:
                per_year = int(hist["per_year"].iloc[0])
                hist = hist.tail(max(1, years) * per_year)

        def num(v: object) -> float | None:
            f = float(v)  # type: ignore[arg-type]
            return None if math.isnan(f) else f

        points = tuple(
            ChartPoint(
                r.period,
                num(r.value),
                r.rag,
                bool(getattr(r, "status", "") == "pending"),
                num(r.threshold),
                num(r.tolerance_threshold),
                num(r.benchmark),
                num(r.critical_threshold),
            )
            for r in hist.itertuples()
        )
        polarity = "bigger" if kpi.polarity == "bigger" else "smaller"
        return KpiChartData(
            f"{self.contract.id} · {kpi.code} · {kpi.name}",
            unit if unit in _UNITS else "count",  # type: ignore[arg-type]
            polarity,  # type: ignore[arg-type]
            points,
        )

    def latest_period(self) -> Period | None:
        """The latest quarter (or reporting kind) holding any submitted value."""
        if self.frame.empty:
            return None
        kind = self.contract.reporting.period
        rows = self.frame[(self.frame["kind"] == kind) & self.frame["value"].notna()]
        if rows.empty:
            return None
        label = rows.sort_values("period_start")["period"].iloc[-1]
        return self.contract.parse_period(label)


def evaluate_states(contracts: Mapping[str, Contract], figures: pd.DataFrame) -> pd.DataFrame:
    """Evaluate many states of many contracts in one engine pass (as :meth:`Scorecard.build_many`).

    ``figures`` has the figure columns plus ``state`` (an int): rows of one (contract, state)
    are one scorecard's figures, so a contract's figures before and after a batch can be
    evaluated side by side. Returns, per state, what ``Scorecard.build(contract,
    figures).frame`` gives, with ``state`` kept, states in ascending order.

    >>> # frame = evaluate_states({c.id: c}, pd.concat([old.assign(state=0), new.assign(state=1)]))
    """
    if figures.empty:
        return pd.DataFrame()
    groups = figures.groupby(["contract", "state"], sort=True).indices
    # Parts by state, a state's contracts in sorted order. The rows are taken once, in that
    # order, and each part is a slice of them: a take per part costs more than its rows.
    keys = sorted(groups, key=lambda k: (int(k[1]), str(k[0])))
    rows = figures.reindex(columns=FIGURE_COLUMNS).take(np.concatenate([groups[k] for k in keys]))
    bounds = np.cumsum([0, *(len(groups[k]) for k in keys)]).tolist()
    parts = [
        (contracts[str(cid)], rows.iloc[bounds[n] : bounds[n + 1]])
        for n, (cid, _state) in enumerate(keys)
    ]
    result = _evaluate_parts(parts)
    if result.empty:
        return result
    states = np.array([int(state) for _cid, state in keys], dtype=np.int64)
    picked = result["part"].to_numpy(dtype=np.int64)
    return result.drop(columns="part").assign(state=states[picked])


def _with_placeholders(
    contract: Contract, figures: pd.DataFrame, extra_periods: list[Period] | None
) -> pd.DataFrame:
    """A contract's figures with a missing row for every KPI reported in the kind of each of
    ``extra_periods`` that has no figure there."""
    figs = figures.reindex(columns=FIGURE_COLUMNS)
    placeholders = []
    present = set(zip(figs["kpi"], figs["period"], strict=False))
    for p in extra_periods or []:
        for k in contract.kpis:
            target_p = _period_for(contract, k, p)
            if target_p is not None and (k.code, target_p.label) not in present:
                placeholders.append(
                    {
                        "contract": contract.id,
                        "kpi": k.code,
                        "period": target_p.label,
                        "value": math.nan,
                        "benchmark": math.nan,
                    }
                )
                present.add((k.code, target_p.label))
    if placeholders:
        figs = pd.concat(
            [figs, pd.DataFrame(placeholders, columns=FIGURE_COLUMNS)], ignore_index=True
        )
    return figs


def _period_for(contract: Contract, kpi: KPI, period: Period) -> Period | None:
    kind = reporting_kind(kpi, contract.reporting.period)
    if kind == period.kind:
        return period if contract.year_for(period) is not None else None
    if kind == "year":
        last = period.reporting_year()
        if period.end < last.end:
            last = last.shift(-1)
        return last if contract.year_for(last) is not None else None
    return None


def _fill_benchmarks(contract: Contract, figs: pd.DataFrame) -> pd.DataFrame:
    series = {k.code: k for k in contract.kpis if k.benchmarks}
    if not series:
        return figs
    bench = figs["benchmark"].to_numpy(copy=True)
    for i, (code, label) in enumerate(zip(figs["kpi"], figs["period"], strict=True)):
        k = series.get(code)
        if k is not None and math.isnan(bench[i]):
            b = k.benchmark(contract.parse_period(label))
            if b is not None:
                bench[i] = b
    return figs.assign(benchmark=bench)


def _as_floats(figs: pd.DataFrame) -> pd.DataFrame:
    """``figs`` with float values and benchmarks; as it is when they are already (an astype
    costs about a millisecond a frame, whatever its size, and a pass may have hundreds)."""
    if figs["value"].dtype == np.float64 and figs["benchmark"].dtype == np.float64:
        return figs
    return figs.astype({"value": float, "benchmark": float})


def _evaluate_parts(parts: Sequence[tuple[Contract, pd.DataFrame]]) -> pd.DataFrame:
    """Evaluate each part (one contract's figures: one scorecard) in one engine pass.

    Returns every part's evaluated rows with ``part`` (its index in ``parts``), sorted by part,
    KPI and period start: a part's rows are exactly what :meth:`Scorecard.build` gives for it.
    A contract may come in several parts (its figures before and after a batch); its periods
    are then read once, and each part is evaluated as a series of its own.
    """
    frames: list[pd.DataFrame] = []
    terms: list[pd.DataFrame] = []
    tags: list[str] = []
    indexes: list[int] = []
    by_id: dict[str, Contract] = {}
    for i, (contract, figs) in enumerate(parts):
        if figs.empty:
            continue
        # A contract's second part onwards is evaluated under a tag of its own; contract ids
        # are slugs, so a tag with '#' cannot be another contract's id.
        seen = contract.id in by_id
        tag = f"{contract.id}#{i}" if seen else contract.id
        by_id[contract.id] = contract
        frames.append(_fill_benchmarks(contract, _as_floats(figs)))
        own_terms = contract_terms(contract)
        terms.append(own_terms.assign(contract=tag) if seen else own_terms)
        tags.append(tag)
        indexes.append(i)
    if not frames:
        return pd.DataFrame()
    figs = pd.concat(frames, ignore_index=True)
    lengths = [len(f) for f in frames]

    def year_of(cid: str, p: Period) -> int | None:
        y = by_id[cid].year_for(p)
        return None if y is None else y.year

    # Periods are read once per (contract, label), whatever the parts (the merge keeps the order).
    annotated = annotate_periods(figs, year_of, lambda cid: by_id[cid].reporting.year_start_month)
    annotated["part"] = np.repeat(np.array(indexes, dtype=np.int64), lengths)
    retagged = len(tags) > len(by_id)
    if retagged:
        annotated["contract"] = np.repeat(np.array(tags, dtype=object), lengths)
    inside = annotated["year"] >= 0
    result = evaluate(annotated[inside], pd.concat(terms, ignore_index=True))
    if retagged:
        cids = np.array([c.id for c, _f in parts], dtype=object)
        result["contract"] = cids[result["part"].to_numpy(dtype=np.int64)]
    # A stable sort: each part's rows in the order build's own sort gives them.
    return result.sort_values(["part", "kpi", "period_start"], kind="stable").reset_index(drop=True)
