"""Where every KPI of many contracts stands at a report period, worked out in one vectorised pass.

``/kpi status`` shows, per contract, one row per KPI at a period (the latest with figures in,
unless asked for another): value, target, RAG, trend, critical failure. :func:`standings` works
those rows out for any number of contracts at once: the figures of all of them are one set of
arrays, every distinct wording of terms is one row of one small terms table, and
:func:`~kpibot.engine.evaluate.evaluate_arrays` runs once over everything. The answer for each
contract is exactly ``Scorecard.build(contract, figures, [period]).at(period)`` (the tests hold
the two to identical rows), kept as small tuples instead of a DataFrame per contract, so ten
thousand contracts' rows take tens of megabytes.

Only the evaluated rows at the period are kept; a figure arriving later changes its own KPI's
series and nothing else, so :func:`standings` with ``kpis`` re-evaluates just those KPIs and
:meth:`ContractStatus.with_rows` splices them in (unless the figure opens a later period, which
moves the whole contract on: :meth:`ContractStatus.moved_by`).

>>> # status = standings([contract], figures, today=date(2020, 6, 1))[contract.id]
>>> # status.period.label, status.counts()
>>> # ('2019/20 Q4', {'red': 6, 'amber': 8, 'green': 18, 'grey': 12})
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from kpibot.engine.evaluate import (
    POSITIONS,
    RAG_OF,
    TRENDS,
    Evaluated,
    TermsEntry,
    evaluate_arrays,
    terms_columns,
)
from kpibot.engine.model import KPI, Contract
from kpibot.engine.periods import Period, parse_period, period_containing
from kpibot.engine.scorecard import compiled, cumulative_shares, reporting_kind
from kpibot.engine.targets import CompiledKpi

RAGS = ("red", "amber", "green", "grey")
_KINDS = ("quarter", "month", "year")
_PER_YEAR = {"quarter": 4, "month": 12, "year": 1}
_RAG_OF_CODE = tuple(RAG_OF[p] for p in POSITIONS)
IntArray = npt.NDArray[np.int64]


class KpiStatus(NamedTuple):
    """One KPI at the report period, as ``Scorecard.at`` gives it (the columns status shows)."""

    kpi: str
    period: str
    year: int
    value: float
    ytd_value: float
    ytd_target: float
    target: str
    position: str
    rag: str
    trend: str
    critical: bool


@dataclass(frozen=True)
class ContractStatus:
    """A contract's KPIs at ``period``, in the contract's KPI order.

    ``latest`` is the latest period of the contract's reporting kind holding a value (None
    without figures); ``asked`` the period asked for (None: the report period, which is
    ``latest`` or, without figures, the default period of ``today``). ``terms`` are the
    compiled terms the rows were evaluated with: kept with them, a refresh and the overview
    built from them need not compile the contract's words again (compiling them would be most
    of a refresh's cost once the contract has left ``compiled``'s cache).
    """

    contract_id: str
    period: Period
    rows: tuple[KpiStatus, ...]
    latest: Period | None
    asked: Period | None = None
    today: date | None = field(default=None, compare=False)
    terms: dict[str, CompiledKpi] | None = field(default=None, compare=False, repr=False)

    def counts(self) -> dict[str, int]:
        """KPIs by RAG: ``{'red': 6, 'amber': 8, 'green': 18, 'grey': 12}``."""
        out = dict.fromkeys(RAGS, 0)
        for r in self.rows:
            out[r.rag] += 1
        return out

    def depends_on_today(self) -> bool:
        """Whether the period came from the date (no figures and no period asked for)."""
        return self.asked is None and self.latest is None

    def moved_by(self, contract: Contract, labels: Iterable[str]) -> bool:
        """Whether figures with values for ``labels`` move the report period on (or set it)."""
        if self.asked is not None:
            return False
        kind = contract.reporting.period
        for label in labels:
            p = contract.parse_period(label)
            if p.kind != kind or contract.year_for(p) is None:
                continue
            if self.latest is None or p.start > self.latest.start:
                return True
        return False

    def with_rows(self, contract: Contract, fresh: ContractStatus) -> ContractStatus:
        """This status with ``fresh``'s KPI rows in place of its own (same period, KPI order)."""
        new = {r.kpi: r for r in fresh.rows}
        order = {k.code: i for i, k in enumerate(contract.kpis)}
        rows = [new.pop(r.kpi, r) for r in self.rows]
        rows.extend(new.values())
        rows.sort(key=lambda r: order.get(r.kpi, len(order)))
        return ContractStatus(
            self.contract_id,
            self.period,
            tuple(rows),
            self.latest,
            self.asked,
            self.today,
            self.terms if self.terms is not None else fresh.terms,
        )


def default_period(contract: Contract, today: date) -> Period:
    """The latest ended reporting period inside the contract, as of ``today``."""
    kind, ysm = contract.reporting.period, contract.reporting.year_start_month
    p = period_containing(today, kind, ysm).previous()
    last = period_containing(contract.end, kind, ysm)
    if p.start > last.start:
        return last
    first = period_containing(contract.start, kind, ysm)
    return first if p.start < first.start else p


def period_for(contract: Contract, kind: str, period: Period) -> Period | None:
    """The period a KPI reported in ``kind`` is shown at when the contract is shown at ``period``."""
    if kind == period.kind:
        return period if contract.year_for(period) is not None else None
    if kind == "year":
        last = period.reporting_year()
        if period.end < last.end:
            last = last.shift(-1)
        return last if contract.year_for(last) is not None else None
    return None


@dataclass
class _Pass:
    """The shared tables of one :func:`standings` call."""

    contracts: Sequence[Contract]
    comps: list[dict[str, CompiledKpi]] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    slot_kind: list[int] = field(default_factory=list)
    slot_code: list[str] = field(default_factory=list)
    slot_kpi: list[KPI] = field(default_factory=list)
    entries: list[TermsEntry] = field(default_factory=list)
    term_rows: dict[tuple[object, ...], dict[int, int]] = field(default_factory=dict)
    cells: tuple[list[int], list[int], list[int]] = field(default_factory=lambda: ([], [], []))
    max_year: int = 0

    def build(self, only: Mapping[str, Iterable[str]] | None = None) -> None:
        slot = 0
        for contract in self.contracts:
            self.offsets.append(slot)
            comp = compiled(contract)
            self.comps.append(comp)
            default = contract.reporting.period
            wanted = set(only[contract.id]) if only and contract.id in only else None
            for kpi in contract.kpis:
                if wanted is not None and kpi.code not in wanted:
                    continue
                self.slot_code.append(kpi.code)
                self.slot_kpi.append(kpi)
                self.slot_kind.append(_KINDS.index(reporting_kind(kpi, default)))
                for year, row in self._terms(contract, kpi, comp[kpi.code]).items():
                    self.cells[0].append(slot)
                    self.cells[1].append(year)
                    self.cells[2].append(row)
                    self.max_year = max(self.max_year, year)
                slot += 1
        self.offsets.append(slot)

    def _terms(self, contract: Contract, kpi: KPI, comp: CompiledKpi) -> dict[int, int]:
        years = comp.years
        ytd = kpi.values == "year_to_date" or bool(kpi.in_year_targets)
        shares = cumulative_shares(contract, kpi, comp.cumulative)
        # Compiled years are shared by every KPI worded alike (and kept alive by them here).
        key = (id(years), comp.polarity, comp.unit, kpi.baseline, comp.trend, ytd, shares)
        rows = self.term_rows.get(key)
        if rows is None:
            rows = {}
            for year, terms in years.items():
                rows[year] = len(self.entries)
                self.entries.append(
                    TermsEntry(
                        "",
                        "",
                        year,
                        kpi.polarity,
                        comp.unit,
                        terms,
                        kpi.baseline,
                        comp.trend,
                        ytd,
                        shares,
                    )
                )
            self.term_rows[key] = rows
        return rows

    @property
    def slots(self) -> int:
        return self.offsets[-1]

    def table(self) -> IntArray:
        """Terms row by (slot, contract year); -1 where the KPI has no terms that year."""
        out = np.full((max(self.slots, 1), self.max_year + 1), -1, dtype=np.int64)
        slots, years, rows = self.cells
        if slots:
            out[np.asarray(slots), np.asarray(years)] = np.asarray(rows)
        return out


def standings(
    contracts: Sequence[Contract],
    figures: Mapping[str, Any],
    today: date,
    at: Mapping[str, Period | None] | None = None,
    kpis: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, ContractStatus]:
    """Each contract's KPIs at its period, evaluating all their ``figures`` in one pass.

    ``figures`` has columns ``contract, kpi, period, value`` and optionally ``benchmark``
    (current figures, as the store gives them; other contracts' rows are ignored). ``at`` gives
    a contract's period (missing or None: the latest period with a value, else the default
    period of ``today``). ``kpis`` limits a contract's rows to those KPIs (its ``figures`` need
    hold only theirs then, and the period must be given): an incremental refresh.
    """
    if not contracts:
        return {}
    at = at or {}
    run = _Pass(contracts)
    run.build(kpis)
    ncon, nslots = len(contracts), run.slots
    slot_contract = np.repeat(np.arange(ncon, dtype=np.int64), np.diff(run.offsets))
    slot_kind = np.asarray(run.slot_kind, dtype=np.int64)
    index = {c.id: i for i, c in enumerate(contracts)}

    # ---- figures of these contracts, as codes
    cc, cu = _factorize(figures["contract"])
    to_contract = np.asarray([index.get(str(c), -1) for c in cu], dtype=np.int64)
    ci = to_contract[cc] if len(cc) else np.zeros(0, dtype=np.int64)
    kc, ku = _factorize(figures["kpi"])
    lc, lu = _factorize(figures["period"])
    value = np.asarray(figures["value"], dtype=float)
    bench = (
        np.asarray(figures["benchmark"], dtype=float)
        if "benchmark" in figures
        else np.full(len(value), np.nan)
    )
    keep = ci >= 0
    if not keep.all():
        ci, kc, lc, value, bench = ci[keep], kc[keep], lc[keep], value[keep], bench[keep]

    # ---- slots: one per (contract, KPI); figures of KPIs the contract lacks get their own
    nk = max(len(ku), 1)
    code_at = None
    if len(ku):
        # A dict, not a pandas Index: building the Index costs more than a one-KPI refresh's
        # whole lookup, and a dict keeps pace with it on a thousand contracts' slots.
        code_of = {str(k): i for i, k in enumerate(ku)}
        code_at = np.fromiter(
            (code_of.get(c, -1) for c in run.slot_code), dtype=np.int64, count=len(run.slot_code)
        )
    slot = np.full(len(ci), -1, dtype=np.int64)
    if code_at is not None:
        has = np.flatnonzero(code_at >= 0)
        skeys = slot_contract[has] * nk + code_at[has]
        order = np.argsort(skeys)
        skeys, sslots = skeys[order], has[order]
        fkeys = ci * nk + kc
        pos = np.clip(np.searchsorted(skeys, fkeys), 0, max(len(skeys) - 1, 0))
        if len(skeys):
            slot = np.where(skeys[pos] == fkeys, sslots[pos], -1)
        stray = slot < 0
        if stray.any():
            _u, inverse = np.unique(fkeys[stray], return_inverse=True)
            slot[stray] = nslots + inverse

    # ---- period facts: each label parsed once per reporting-year start
    periods = _Periods([str(x) for x in lu])
    ysm = np.asarray([c.reporting.year_start_month for c in contracts], dtype=np.int64)
    ysm_values, ysm_code = np.unique(ysm, return_inverse=True)
    by_ysm = np.asarray(
        [[periods.index(li, int(y)) for li in range(len(lu))] for y in ysm_values],
        dtype=np.int64,
    ).reshape(len(ysm_values), len(lu))
    pidx = by_ysm[ysm_code[ci], lc] if len(ci) else np.zeros(0, dtype=np.int64)
    years = _Years(contracts)
    year = years.of(ci, pidx, periods)

    # ---- the period each contract is shown at
    kinds = periods.kind_codes()
    reporting = np.asarray([_KINDS.index(c.reporting.period) for c in contracts], dtype=np.int64)
    latest_p = np.full(ncon, -1, dtype=np.int64)
    wanted = (year >= 0) & ~np.isnan(value)
    if len(ci):
        wanted &= kinds[pidx] == reporting[ci]
    if wanted.any():
        rows = np.flatnonzero(wanted)
        starts = periods.start_ordinals()[pidx[rows]]
        order = np.lexsort((starts, ci[rows]))
        last = np.ones(len(order), dtype=bool)
        last[:-1] = ci[rows][order][1:] != ci[rows][order][:-1]
        chosen = rows[order][last]
        latest_p[ci[chosen]] = pidx[chosen]
    shown: list[Period] = []
    latest: list[Period | None] = []
    # Per contract and KPI kind: the label, parsed period and contract year a KPI is shown at.
    show_label = np.full((ncon, len(_KINDS)), -1, dtype=np.int64)
    show_period = np.full((ncon, len(_KINDS)), -1, dtype=np.int64)
    show_year = np.full((ncon, len(_KINDS)), -1, dtype=np.int64)
    for c, contract in enumerate(contracts):
        mine = None if latest_p[c] < 0 else periods.period(int(latest_p[c]))
        latest.append(mine)
        here = at.get(contract.id) or mine or default_period(contract, today)
        shown.append(here)
        for k, kind in enumerate(_KINDS):
            target = period_for(contract, kind, here)
            if target is not None:
                li = periods.label_index(target.label)
                show_label[c, k] = li
                show_period[c, k] = periods.index(li, int(ysm[c]))
                show_year[c, k] = _year(contract, target)

    # ---- placeholders: a missing row for every KPI without a figure at its shown period
    nl = max(len(periods.labels), 1)
    wanted_label = show_label[slot_contract, slot_kind]
    shows = np.flatnonzero(wanted_label >= 0)
    present = np.isin(
        shows * nl + wanted_label[shows], slot[slot < nslots] * nl + lc[slot < nslots]
    )
    add = shows[~present]
    if len(add):
        owner = slot_contract[add]
        add_kind = slot_kind[add]
        slot = np.concatenate([slot, add])
        ci = np.concatenate([ci, owner])
        value = np.concatenate([value, np.full(len(add), np.nan)])
        bench = np.concatenate([bench, np.full(len(add), np.nan)])
        pidx = np.concatenate([pidx, show_period[owner, add_kind]])
        year = np.concatenate([year, show_year[owner, add_kind]])
        lc = np.concatenate([lc, show_label[owner, add_kind]])
    bench = _fill_benchmarks(contracts, run, slot, pidx, periods, bench)

    # ---- one evaluation over every row inside its contract
    inside = np.flatnonzero(year >= 0)
    slot, year, pidx, lc = slot[inside], year[inside], pidx[inside], lc[inside]
    value, bench = value[inside], bench[inside]
    kinds = periods.kind_codes()  # placeholders may have brought periods not seen before
    kind_of_row = kinds[pidx] if len(pidx) else np.zeros(0, dtype=np.int64)
    table = run.table()
    known = slot < nslots
    idx = np.full(len(slot), -1, dtype=np.int64)
    in_table = known & (year <= run.max_year)
    idx[in_table] = table[slot[in_table], year[in_table]]
    facts = periods.facts()
    evaluated = evaluate_arrays(
        terms_columns(run.entries),
        idx,
        slot * len(_KINDS) + kind_of_row,
        kind_of_row == _KINDS.index("year"),
        value,
        bench,
        facts.ordinal[pidx],
        facts.per_year[pidx],
        lambda: facts.ry[pidx],
        lambda: facts.idx_in_year[pidx].astype(float),
    )

    # ---- each contract's rows at its period, in KPI order
    where = np.full(max(nslots, 1) * nl, -1, dtype=np.int64)
    rows_known = np.flatnonzero(known)
    where[slot[rows_known] * nl + lc[rows_known]] = rows_known
    picked = shows[where[shows * nl + wanted_label[shows]] >= 0]
    picks = where[picked * nl + wanted_label[picked]]
    built = _rows(
        evaluated,
        [*evaluated.texts, ""],
        periods.labels,
        [run.slot_code[s] for s in picked.tolist()],
        lc[picks],
        year[picks],
        value[picks],
        picks,
    )
    ends = np.cumsum(np.bincount(slot_contract[picked], minlength=ncon)).tolist()
    out: dict[str, ContractStatus] = {}
    begin = 0
    for c, contract in enumerate(contracts):
        out[contract.id] = ContractStatus(
            contract.id,
            shown[c],
            tuple(built[begin : ends[c]]),
            latest[c],
            at.get(contract.id),
            today,
            run.comps[c],
        )
        begin = ends[c]
    return out


def _factorize(column: object) -> tuple[IntArray, Sequence[object]]:
    """Codes and distinct values of a column (a Series, an array or a list)."""
    values = (
        column if isinstance(column, pd.Series | np.ndarray) else np.asarray(column, dtype=object)
    )
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64), []
    if len(values) <= _SMALL and all(isinstance(v, str) for v in values):
        # A refresh's handful of labels: a dict is ten times quicker than pandas' hash table.
        seen: dict[object, int] = {}
        codes = [seen.setdefault(v, len(seen)) for v in values]
        return np.asarray(codes, dtype=np.int64), list(seen)
    codes, uniques = pd.factorize(values)
    return codes.astype(np.int64, copy=False), list(uniques)


_SMALL = 64


def _rows(
    e: Evaluated,
    texts: list[str],
    labels: list[str],
    codes: list[str],
    lc: IntArray,
    year: IntArray,
    value: npt.NDArray[np.float64],
    p: IntArray,
) -> list[KpiStatus]:
    return [
        KpiStatus(
            code,
            labels[label],
            y,
            v,
            yv,
            yt,
            texts[t],
            POSITIONS[pc],
            _RAG_OF_CODE[pc],
            TRENDS[tc],
            crit,
        )
        for code, label, y, v, yv, yt, t, pc, tc, crit in zip(
            codes,
            lc.tolist(),
            year.tolist(),
            value.tolist(),
            e.ytd_value[p].tolist(),
            e.ytd_target[p].tolist(),
            e.text[p].tolist(),
            e.position[p].tolist(),
            e.trend[p].tolist(),
            e.critical[p].tolist(),
            strict=True,
        )
    ]


def _year(contract: Contract, period: Period) -> int:
    y = contract.year_for(period)
    return -1 if y is None else y.year


class _Years:
    """Contract years as arrays, to find the year of many (contract, period) pairs at once."""

    def __init__(self, contracts: Sequence[Contract]) -> None:
        width = max(len(c.contract_years) for c in contracts)
        self.start = np.full((len(contracts), width), np.iinfo(np.int64).max, dtype=np.int64)
        self.end = np.full((len(contracts), width), np.iinfo(np.int64).min, dtype=np.int64)
        self.year = np.full((len(contracts), width), -1, dtype=np.int64)
        for c, contract in enumerate(contracts):
            for j, y in enumerate(contract.contract_years):
                self.start[c, j] = y.start.toordinal()
                self.end[c, j] = y.end.toordinal()
                self.year[c, j] = y.year

    def of(self, ci: IntArray, pidx: IntArray, periods: _Periods) -> IntArray:
        """``Contract.year_for`` for every row: the year holding the period's end, else its
        start, the first in the contract's order; -1 outside the contract."""
        if len(ci) == 0:
            return np.zeros(0, dtype=np.int64)
        width = int(pidx.max()) + 1
        _pairs, first, inverse = np.unique(
            ci * width + pidx, return_index=True, return_inverse=True
        )
        c, p = ci[first], pidx[first]
        starts, ends = periods.start_ordinals()[p][:, None], periods.end_ordinals()[p][:, None]
        ys, ye = self.start[c], self.end[c]
        by_end = (ys <= ends) & (ends <= ye)
        by_start = (ys <= starts) & (starts <= ye)
        j = np.where(
            by_end.any(axis=1),
            by_end.argmax(axis=1),
            np.where(by_start.any(axis=1), by_start.argmax(axis=1), -1),
        )
        found = np.where(j >= 0, self.year[c, np.clip(j, 0, None)], -1)
        return found[inverse]


@dataclass(frozen=True)
class _Facts:
    ordinal: IntArray
    per_year: IntArray
    ry: IntArray
    idx_in_year: IntArray


class _Periods:
    """Labels met in one pass, each parsed once per reporting-year start."""

    def __init__(self, labels: list[str]) -> None:
        self.labels = list(labels)
        self._label_index = {label: i for i, label in enumerate(self.labels)}
        self._parsed: list[Period] = []
        self._index: dict[tuple[int, int], int] = {}

    def label_index(self, label: str) -> int:
        i = self._label_index.get(label)
        if i is None:
            i = self._label_index[label] = len(self.labels)
            self.labels.append(label)
        return i

    def label(self, p_index: int | np.integer) -> str:
        return self._parsed[int(p_index)].label

    def index(self, label: int, year_start_month: int) -> int:
        key = (label, year_start_month)
        i = self._index.get(key)
        if i is None:
            i = self._index[key] = len(self._parsed)
            self._parsed.append(parse_period(self.labels[label], year_start_month))
        return i

    def period(self, p_index: int) -> Period:
        return self._parsed[p_index]

    def kind_codes(self) -> IntArray:
        return np.asarray([_KINDS.index(p.kind) for p in self._parsed], dtype=np.int64)

    def start_ordinals(self) -> IntArray:
        return np.asarray([p.start.toordinal() for p in self._parsed], dtype=np.int64)

    def end_ordinals(self) -> IntArray:
        return np.asarray([p.end.toordinal() for p in self._parsed], dtype=np.int64)

    def facts(self) -> _Facts:
        ps = self._parsed
        return _Facts(
            np.asarray([p.ordinal for p in ps], dtype=np.int64),
            np.asarray([_PER_YEAR[p.kind] for p in ps], dtype=np.int64),
            np.asarray([p.reporting_year().ordinal for p in ps], dtype=np.int64),
            np.asarray(
                [(p.ordinal % _PER_YEAR[p.kind]) if p.kind != "year" else 0 for p in ps],
                dtype=np.int64,
            ),
        )


def _fill_benchmarks(
    contracts: Sequence[Contract],
    run: _Pass,
    slot: IntArray,
    pidx: IntArray,
    periods: _Periods,
    bench: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """National averages from the contract where a figure brings none (as Scorecard.build)."""
    series = {s: k for s, k in enumerate(run.slot_kpi) if k.benchmarks}
    if not series:
        return bench
    out = bench.copy()
    for r in np.flatnonzero(np.isin(slot, list(series)) & np.isnan(bench)).tolist():
        b = series[int(slot[r])].benchmark(periods.period(int(pidx[r])))
        if b is not None:
            out[r] = b
    return out
