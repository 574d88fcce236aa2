"""The status cache: each contract's evaluated KPI rows and feature lines, kept up to date by
what actually changed.

A contract's status overview is built from three kinds of input, each cached here per contract
until something that can change it happens:

* its KPIs' rows at the report period (:class:`~kpibot.engine.status.ContractStatus`), changed
  only by figures;
* the lines features add (money at risk, open action plans, owed finance reports), each changed
  by the audit actions its feature declares (``FeatureHooks.status_changed_by``), or by any
  change when it declares none;
* anything else a caller derives (:meth:`StatusCache.derived`, such as the pending returns).

Every change to a contract writes its audit entry in the same transaction, so the contract's
latest audit id is its version (``Services.contract_version``). When it has moved on, the audit
entries in between say what happened: a submission or amendment re-reads the figures stored
since (``FigureRepository.added_since``) and re-evaluates only their KPIs; a return, an action
plan or a finance statement rebuilds only the lines that depend on it; a contract reloaded from
its file starts again from nothing. The date moving on rebuilds what depends on the date. All of
it is read from the store, so a change made by another process or replica shows at once.

>>> # status = services.status.standing(contract, None)   # rows at the report period
>>> # lines = services.status.lines(contract, status.period)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from kpibot.engine.model import Contract
from kpibot.engine.periods import Period
from kpibot.engine.scorecard import remember_compiled
from kpibot.engine.status import ContractStatus, standings
from kpibot.store.figures import CHANGED_SINCE_SQL, changed_rows
from kpibot.store.schema import AuditEventRecord

if TYPE_CHECKING:
    from datetime import datetime

    from kpibot.store.database import Database
    from kpibot.store.figures import FigureRepository


class Services(Protocol):
    """What the status cache uses of ``kpibot.core.services.Services`` (which owns the cache,
    so it is described here rather than imported)."""

    figures: FigureRepository
    db: Database
    hooks: Any  # FeatureHooks: status, status_changed_by, status_many

    def now(self) -> datetime: ...

    def contract_version(self, contract_id: str) -> int: ...


V = TypeVar("V")
FIGURE_ACTIONS = ("submit", "amend")
MEMO_CACHE_SIZE = 50_000
PERIODS_PER_CONTRACT = 8
# What changed a contract between two versions, in one round trip: the audit actions (rows
# without a figure id, the action in the second column), then the current figures of every
# KPI that got a figure since the memo's (FigureRepository.changed_since).
_CHANGES_SQL = (
    "SELECT NULL, action, NULL, NULL, NULL "  # noqa: S608
    f"FROM {AuditEventRecord.__tablename__} "
    "WHERE contract_id = ? AND id > ? AND id <= ? AND outcome = 'ok' "
    f"UNION ALL {CHANGED_SINCE_SQL}"
)


@dataclass
class _Memo:
    """What is known of one contract, as of audit entry ``version`` and figure ``figure_id``."""

    version: int
    figure_id: int
    day: date
    standings: OrderedDict[str | None, ContractStatus] = field(default_factory=OrderedDict)
    derived: dict[tuple[object, ...], tuple[Any, tuple[str, ...] | None]] = field(
        default_factory=dict
    )
    lock: threading.Lock = field(default_factory=threading.Lock)


def _affects(changed_by: tuple[str, ...] | None, actions: set[str]) -> bool:
    if changed_by is None:
        return True
    return any(a.startswith(prefix) for a in actions for prefix in changed_by)


class StatusCache:
    """Per contract: KPI rows at the periods asked for, feature lines and derived values.

    Thread-safe: each contract is brought up to date under its own lock, so requests for
    different contracts never wait on one another.
    """

    def __init__(self, services: Services) -> None:
        self._services = services
        self._memos: OrderedDict[str, _Memo] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ reading
    def standing(
        self, contract: Contract, at: Period | None, version: int | None = None
    ) -> ContractStatus:
        """The contract's KPI rows at ``at`` (None: the report period), up to date."""
        memo = self._sync(contract, version)
        key = at.label if at is not None else None
        with memo.lock:
            hit = memo.standings.get(key)
            if hit is not None:
                memo.standings.move_to_end(key)
                return hit
            folded = memo.figure_id
        services = self._services
        figures = services.figures.current_values([contract.id])
        status = standings(
            [contract], figures, services.now().date(), {contract.id: at} if at else None
        )[contract.id]
        with memo.lock:
            # Kept only if no refresh ran meanwhile: one that did may have folded in figures
            # this read missed, and would not fold them in again.
            if memo.figure_id == folded:
                self._keep(memo, key, status)
        return status

    def lines(self, contract: Contract, period: Period, version: int | None = None) -> list[str]:
        """The features' status lines for ``period``, each cached until what it reads changes."""
        services = self._services
        changed_by = services.hooks.status_changed_by
        out: list[str] = []
        for hook in services.hooks.status:
            out.extend(
                self.derived(
                    contract,
                    ("lines", hook, period.label),
                    lambda hook=hook: hook(services, contract, period),  # type: ignore[misc]
                    changed_by.get(hook),
                    version,
                )
            )
        return out

    def derived(
        self,
        contract: Contract,
        key: tuple[object, ...],
        build: Callable[[], V],
        changed_by: tuple[str, ...] | None,
        version: int | None = None,
    ) -> V:
        """``build()``, kept until an audit action starting with one of ``changed_by`` (any
        action when None) or the date moves on."""
        memo = self._sync(contract, version)
        with memo.lock:
            hit = memo.derived.get(key)
            built_at = (memo.version, memo.day)
        if hit is not None:
            return hit[0]  # type: ignore[no-any-return]
        value = build()
        with memo.lock:
            if (memo.version, memo.day) == built_at:  # else it may be stale already
                memo.derived[key] = (value, changed_by)
        return value

    # ------------------------------------------------------------------ warming many at once
    def read_figures(self, contract_ids: Sequence[str]) -> tuple[dict[str, int], Any]:
        """What :meth:`warm` evaluates: each contract's latest figure id, read first, then
        the current figures (a figure stored in between is folded in again later, never
        missed). Safe to run on another thread while the contracts are parsed."""
        figures = self._services.figures
        latest = figures.latest_ids(contract_ids)
        return latest, figures.current_values(contract_ids)

    def warm(
        self,
        contracts: Sequence[Contract],
        versions: Mapping[str, int],
        lines: Mapping[str, list[list[str]]] | None = None,
        read: tuple[dict[str, int], Any] | None = None,
    ) -> dict[str, ContractStatus]:
        """Evaluate ``contracts`` in one pass and keep their rows at the report period.

        ``versions`` are the contracts' versions read before this call; ``lines``, when given,
        are each contract's feature lines at its report period, one list per status hook (as
        the hooks' batch versions work them out); ``read`` is :meth:`read_figures` for them,
        when it was read already.
        """
        services = self._services
        ids = [c.id for c in contracts]
        today = services.now().date()
        latest, figures = read if read is not None else self.read_figures(ids)
        result = standings(contracts, figures, today)
        hooks = services.hooks
        for contract in contracts:
            memo = _Memo(versions.get(contract.id, 0), latest.get(contract.id, 0), today)
            status = result[contract.id]
            self._keep(memo, None, status)
            for hook, hook_lines in zip(
                hooks.status, (lines or {}).get(contract.id, []), strict=False
            ):
                memo.derived[("lines", hook, status.period.label)] = (
                    hook_lines,
                    hooks.status_changed_by.get(hook),
                )
            with self._lock:
                known = self._memos.get(contract.id)
                if known is None or known.version <= memo.version:
                    self._memos[contract.id] = memo
                    self._memos.move_to_end(contract.id)
                self._trim()
        return result

    def put(
        self,
        contract: Contract,
        key: tuple[object, ...],
        value: object,
        changed_by: tuple[str, ...] | None,
    ) -> None:
        """Keep a derived value worked out for many contracts at once (see :meth:`derived`)."""
        with self._lock:
            memo = self._memos.get(contract.id)
        if memo is not None:
            with memo.lock:
                memo.derived[key] = (value, changed_by)

    def forget(self) -> None:
        """Drop everything (contracts reloaded in this process)."""
        with self._lock:
            self._memos.clear()

    # ------------------------------------------------------------------ bringing up to date
    def _sync(self, contract: Contract, version: int | None) -> _Memo:
        services = self._services
        if version is None:
            version = services.contract_version(contract.id)
        today = services.now().date()
        with self._lock:
            memo = self._memos.get(contract.id)
            if memo is not None:
                self._memos.move_to_end(contract.id)
        if memo is None:
            # Read before anything is evaluated, so nothing stored later is skipped.
            fresh = _Memo(version, self._figure_id(contract.id), today)
            with self._lock:
                memo = self._memos.setdefault(contract.id, fresh)
                self._trim()
            if memo is fresh:
                return memo
        with memo.lock:
            if memo.version == version and memo.day == today:
                return memo
            if version > memo.version:
                actions, figures = self._changes(contract.id, memo, version)
                if "load_contract" in actions:
                    memo.standings.clear()
                    memo.derived.clear()
                    memo.figure_id = self._figure_id(contract.id)
                else:
                    if any(a in FIGURE_ACTIONS for a in actions):
                        self._apply_figures(contract, memo, today, figures)
                    memo.derived = {
                        k: v for k, v in memo.derived.items() if not _affects(v[1], actions)
                    }
                memo.version = version
            elif version < memo.version:  # a database rolled back or swapped: start again
                memo.standings.clear()
                memo.derived.clear()
                memo.figure_id = self._figure_id(contract.id)
                memo.version = version
            if memo.day != today:
                memo.derived.clear()
                for key in [k for k, s in memo.standings.items() if s.depends_on_today()]:
                    del memo.standings[key]
                memo.day = today
        return memo

    def _changes(
        self, contract_id: str, memo: _Memo, version: int
    ) -> tuple[set[str], list[tuple[int, str, str, float | None, float | None]]]:
        """The audit actions after ``memo.version`` up to ``version``, and the current figures
        of every KPI that got a figure after ``memo.figure_id``."""
        actions: set[str] = set()
        figures = []
        for row in self._services.db.read_rows(
            _CHANGES_SQL,
            contract_id,
            memo.version,
            version,
            contract_id,
            contract_id,
            memo.figure_id,
        ):
            if row[0] is None:
                actions.add(str(row[1]))
            else:
                figures.append(row)
        return actions, changed_rows(figures)

    def _apply_figures(
        self,
        contract: Contract,
        memo: _Memo,
        today: date,
        rows: list[tuple[int, str, str, float | None, float | None]],
    ) -> None:
        """Fold ``rows``, the figures changed since ``memo.figure_id``
        (``FigureRepository.changed_since``), into the cached rows, KPI by KPI."""
        if not rows:
            return
        since = memo.figure_id
        memo.figure_id = max(since, *(r[0] for r in rows))
        if not memo.standings:
            return
        kpis = sorted({r[1] for r in rows})
        valued = {r[2] for r in rows if r[0] > since and r[3] is not None and r[3] == r[3]}
        stale = [key for key, s in memo.standings.items() if s.moved_by(contract, valued)]
        for key in stale:
            del memo.standings[key]
        if not memo.standings:
            return
        figures = {
            "contract": [contract.id] * len(rows),
            "kpi": [r[1] for r in rows],
            "period": [r[2] for r in rows],
            "value": [r[3] for r in rows],
            "benchmark": [r[4] for r in rows],
        }
        for key, status in list(memo.standings.items()):
            if status.terms is not None:
                # The rows' own terms: the contract's words are unchanged since (a reload
                # starts its memo again), so they need not be compiled again.
                remember_compiled(contract, status.terms)
            fresh = standings(
                [contract], figures, today, {contract.id: status.period}, {contract.id: kpis}
            )[contract.id]
            memo.standings[key] = status.with_rows(contract, fresh)

    def _figure_id(self, contract_id: str) -> int:
        return self._services.figures.latest_ids([contract_id]).get(contract_id, 0)

    @staticmethod
    def _keep(memo: _Memo, key: str | None, status: ContractStatus) -> None:
        memo.standings[key] = status
        memo.standings.move_to_end(key)
        while len(memo.standings) > PERIODS_PER_CONTRACT:
            memo.standings.popitem(last=False)

    def _trim(self) -> None:
        while len(self._memos) > MEMO_CACHE_SIZE:
            self._memos.popitem(last=False)


def batched_lines(
    services: Services, pairs: Iterable[tuple[Contract, Period]]
) -> dict[str, list[list[str]]]:
    """Every status hook's lines for many (contract, period) pairs: one call per hook that has
    a batch version (``FeatureHooks.status_many``), else one call per contract."""
    todo = list(pairs)
    out: dict[str, list[list[str]]] = {c.id: [] for c, _ in todo}
    for hook in services.hooks.status:
        many = services.hooks.status_many.get(hook)
        if many is not None:
            found = many(services, todo)
            for c, _ in todo:
                out[c.id].append(list(found.get(c.id, [])))
        else:
            for c, p in todo:
                out[c.id].append(hook(services, c, p))
    return out
