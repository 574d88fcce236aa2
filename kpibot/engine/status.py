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
    terms_frame,
)
from kpibot.engine.model import KPI, Contract
from kpibot.engine.periods import Period, parse_period, period_containing
from kpibot.engine.scorecard import compiled, reporting_kind

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
    ``latest`` or, without figures, the default period of ``today``).
    """

    contract_id: str
    period: Period
    rows: tuple[KpiStatus, ...]
    latest: Period | None
    asked: Period | None = None
    today: date | None = field(default=None, compare=False)

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
            self.contract_id, self.period, tuple(rows), self.latest, self.asked, self.today
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
    slot_of: dict[tuple[int, str], int] = field(default_factory=dict)
    offsets: list[int] = field(default_factory=list)
    slot_kind: list[str] = field(default_factory=list)
    entries: list[TermsEntry] = field(default_factory=list)
    term_rows: dict[tuple[object, ...], dict[int, int]] = field(default_factory=dict)
    cells: tuple[list[int], list[int], list[int]] = field(default_factory=lambda: ([], [], []))
    max_year: int = 0

    def build(self) -> None:
        slot = 0
        for ci, contract in enumerate(self.contracts):
            self.offsets.append(slot)
            comp = compiled(contract)
            default = contract.reporting.period
            for kpi in contract.kpis:
                self.slot_of[(ci, kpi.code)] = slot
                self.slot_kind.append(reporting_kind(kpi, default))
                for year, row in self._terms(kpi, comp[kpi.code]).items():
                    self.cells[0].append(slot)
                    self.cells[1].append(year)
                    self.cells[2].append(row)
                    self.max_year = max(self.max_year, year)
                slot += 1
        self.offsets.append(slot)

    def _terms(self, kpi: KPI, comp: object) -> dict[int, int]:
        years = comp.years  # type: ignore[attr-defined]
        # Compiled years are shared by every KPI worded alike (and kept alive by them here).
        key = (id(years), comp.polarity, comp.unit, kpi.baseline)  # type: ignore[attr-defined]
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
                        comp.unit,  # type: ignore[attr-defined]
                        terms,
                        kpi.baseline,
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
    run.build()
    index = {c.id: i for i, c in enumerate(contracts)}
    ncon = len(contracts)

    # ---- figures of these contracts, as codes
    cc, cu = _factorize(figures["contract"])
    to_contract = np.asarray([index.get(str(c), -1) for c in cu], dtype=np.int64)
    ci = to_contract[cc] if len(cc) else np.zeros(0, dtype=np.int64)
    kc, ku = _factorize(figures["kpi"])
    lc, lu = _factorize(figures["period"])
    labels = [str(x) for x in lu]
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
    pair = ci * max(len(ku), 1) + kc
    pairs, pair_inv = np.unique(pair, return_inverse=True)
    extra = run.slots
    pair_slot = np.empty(len(pairs), dtype=np.int64)
    for j, key in enumerate(pairs.tolist()):
        c, k = divmod(key, max(len(ku), 1))
        s = run.slot_of.get((c, str(ku[k])))
        if s is None:
            s, extra = extra, extra + 1
        pair_slot[j] = s
    slot = pair_slot[pair_inv] if len(pair_inv) else np.zeros(0, dtype=np.int64)

    # ---- period facts, per distinct (label, reporting year start) and (contract, label)
    periods = _Periods(labels)
    ysm = np.asarray([c.reporting.year_start_month for c in contracts], dtype=np.int64)
    cl = ci * max(len(labels), 1) + lc
    cls, cl_inv = np.unique(cl, return_inverse=True)
    cl_year = np.empty(len(cls), dtype=np.int64)
    cl_period = np.empty(len(cls), dtype=np.int64)
    for j, key in enumerate(cls.tolist()):
        c, label = divmod(key, max(len(labels), 1))
        p_index = periods.index(label, int(ysm[c]))
        y = contracts[c].year_for(periods.period(p_index))
        cl_year[j] = -1 if y is None else y.year
        cl_period[j] = p_index
    year = cl_year[cl_inv] if len(cl_inv) else np.zeros(0, dtype=np.int64)
    pidx = cl_period[cl_inv] if len(cl_inv) else np.zeros(0, dtype=np.int64)

    # ---- the period each contract is shown at
    inside = year >= 0
    has_value = inside & ~np.isnan(value)
    kind_of_row = periods.kind_codes()[pidx] if len(pidx) else np.zeros(0, dtype=np.int64)
    reporting = np.asarray([_KINDS.index(c.reporting.period) for c in contracts], dtype=np.int64)
    latest_p = np.full(ncon, -1, dtype=np.int64)
    wanted = has_value & (kind_of_row == reporting[ci] if len(ci) else has_value)
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
    for c, contract in enumerate(contracts):
        mine = None if latest_p[c] < 0 else contract.parse_period(periods.label(latest_p[c]))
        latest.append(mine)
        asked = at.get(contract.id)
        shown.append(asked or mine or default_period(contract, today))

    # ---- placeholders: a missing row for every KPI without a figure at its shown period
    add_slot: list[int] = []
    add_label: list[int] = []
    present = set((slot * len(labels) + lc).tolist()) if len(labels) else set()
    for c, contract in enumerate(contracts):
        by_kind: dict[str, Period | None] = {}
        only = set(kpis[contract.id]) if kpis and contract.id in kpis else None
        for s in range(run.offsets[c], run.offsets[c + 1]):
            if only is not None and contract.kpis[s - run.offsets[c]].code not in only:
                continue
            kind = run.slot_kind[s]
            if kind not in by_kind:
                by_kind[kind] = period_for(contract, kind, shown[c])
            target = by_kind[kind]
            if target is None:
                continue
            li = periods.label_index(target.label)
            if li < len(labels) and s * len(labels) + li in present:
                continue
            add_slot.append(s)
            add_label.append(li)
    if add_slot:
        more = len(add_slot)
        slot = np.concatenate([slot, np.asarray(add_slot, dtype=np.int64)])
        owner = np.searchsorted(np.asarray(run.offsets[1:]), np.asarray(add_slot), side="right")
        ci = np.concatenate([ci, owner.astype(np.int64)])
        value = np.concatenate([value, np.full(more, np.nan)])
        bench = np.concatenate([bench, np.full(more, np.nan)])
        add_p = np.asarray(
            [
                periods.index(li, int(ysm[c]))
                for li, c in zip(add_label, owner.tolist(), strict=True)
            ],
            dtype=np.int64,
        )
        pidx = np.concatenate([pidx, add_p])
        add_year = np.asarray(
            [
                _year(contracts[c], periods.period(p))
                for c, p in zip(owner.tolist(), add_p.tolist(), strict=True)
            ],
            dtype=np.int64,
        )
        year = np.concatenate([year, add_year])
        lc = np.concatenate([lc, np.asarray(add_label, dtype=np.int64)])
    labels = periods.labels
    kind_of_row = periods.kind_codes()[pidx] if len(pidx) else np.zeros(0, dtype=np.int64)
    bench = _fill_benchmarks(contracts, run, slot, pidx, periods, bench)

    # ---- one evaluation over every row inside its contract
    keep_rows = np.flatnonzero(year >= 0)
    slot, year, pidx, lc = slot[keep_rows], year[keep_rows], pidx[keep_rows], lc[keep_rows]
    value, bench, kind_of_row = value[keep_rows], bench[keep_rows], kind_of_row[keep_rows]
    table = run.table()
    known = slot < run.slots
    idx = np.full(len(slot), -1, dtype=np.int64)
    in_table = known & (year <= run.max_year)
    idx[in_table] = table[slot[in_table], year[in_table]]
    facts = periods.facts()
    terms = terms_frame(run.entries)
    evaluated = evaluate_arrays(
        terms,
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
    where = np.full(max(run.slots, 1) * max(len(labels), 1), -1, dtype=np.int64)
    evaluated_rows = np.flatnonzero(known)
    where[slot[evaluated_rows] * len(labels) + lc[evaluated_rows]] = evaluated_rows
    texts = [*evaluated.texts, ""]
    out: dict[str, ContractStatus] = {}
    for c, contract in enumerate(contracts):
        only = set(kpis[contract.id]) if kpis and contract.id in kpis else None
        by_kind = {}
        picks: list[int] = []
        codes: list[str] = []
        for s in range(run.offsets[c], run.offsets[c + 1]):
            code = contract.kpis[s - run.offsets[c]].code
            if only is not None and code not in only:
                continue
            kind = run.slot_kind[s]
            if kind not in by_kind:
                by_kind[kind] = period_for(contract, kind, shown[c])
            target = by_kind[kind]
            if target is None:
                continue
            r = int(where[s * len(labels) + periods.label_index(target.label)])
            if r >= 0:
                picks.append(r)
                codes.append(code)
        out[contract.id] = ContractStatus(
            contract.id,
            shown[c],
            _rows(evaluated, texts, labels, lc, year, value, picks, codes),
            latest[c],
            at.get(contract.id),
            today,
        )
    return out


def _factorize(column: object) -> tuple[IntArray, Sequence[object]]:
    """Codes and distinct values of a column (a Series, an array or a list)."""
    values = (
        column if isinstance(column, pd.Series | np.ndarray) else np.asarray(column, dtype=object)
    )
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64), []
    codes, uniques = pd.factorize(values)
    return codes.astype(np.int64, copy=False), list(uniques)


def _rows(
    e: Evaluated,
    texts: list[str],
    labels: list[str],
    lc: IntArray,
    year: IntArray,
    value: npt.NDArray[np.float64],
    picks: list[int],
    codes: list[str],
) -> tuple[KpiStatus, ...]:
    if not picks:
        return ()
    p = np.asarray(picks, dtype=np.int64)
    pos = e.position[p].tolist()
    return tuple(
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
            lc[p].tolist(),
            year[p].tolist(),
            value[p].tolist(),
            e.ytd_value[p].tolist(),
            e.ytd_target[p].tolist(),
            e.text[p].tolist(),
            pos,
            e.trend[p].tolist(),
            e.critical[p].tolist(),
            strict=True,
        )
    )


def _year(contract: Contract, period: Period) -> int:
    y = contract.year_for(period)
    return -1 if y is None else y.year


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
    series: dict[int, KPI] = {}
    for c, contract in enumerate(contracts):
        for i, k in enumerate(contract.kpis):
            if k.benchmarks:
                series[run.offsets[c] + i] = k
    if not series:
        return bench
    out = bench.copy()
    for r in np.flatnonzero(np.isin(slot, list(series)) & np.isnan(bench)).tolist():
        b = series[int(slot[r])].benchmark(periods.period(int(pidx[r])))
        if b is not None:
            out[r] = b
    return out
