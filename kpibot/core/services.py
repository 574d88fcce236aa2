"""One object that holds the settings, the store and its repositories, the clock and the caches.

Every entry point (CLI, console demo, Slack and Teams adapters, scheduler) gets one ``Services``
from ``kpibot.app.wiring`` (which also fills ``hooks`` with what the features contribute) and
passes it down, so nothing reads globals.

>>> services = Services.from_settings(Settings(database_url="sqlite://"))
>>> services.db.dialect
'sqlite'
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from sqlalchemy import case, func, select

from kpibot.core.access import AccessPolicy
from kpibot.core.protocol import Reply
from kpibot.core.settings import Settings
from kpibot.core.status import StatusCache
from kpibot.engine.calendar import calendar_for, due_date_for
from kpibot.engine.model import Contract
from kpibot.engine.periods import Period
from kpibot.engine.reminders import IncidentClock, Message
from kpibot.engine.returns import approved_only as approved
from kpibot.engine.scorecard import FIGURE_COLUMNS, Scorecard
from kpibot.engine.status import default_period
from kpibot.files.contracts import load_contracts
from kpibot.store.database import Database, Timeouts
from kpibot.store.outbox import OutboxMessage
from kpibot.store.repositories import AuditLog, ContractRepository, FigureRepository
from kpibot.store.rows import NewFigure
from kpibot.store.schema import AuditEventRecord, ContractRecord, FigureRecord

Clock = Callable[[], datetime]
V = TypeVar("V")
SCORECARD_CACHE_SIZE = 1200
# Scorecards built together by prefetch_scorecards: well inside the scorecard cache.
PREFETCH_BATCH = 500
# Two views (the overview and its counts) for each of ten thousand contracts, and room to spare.
VIEW_CACHE_SIZE = 50_000
# Contract definitions kept parsed: a 40-KPI contract is about 150 KB of objects, so ten thousand
# are not all kept; one not kept is read back in under a millisecond.
CONTRACT_CACHE_SIZE = 1000
# A contract's version (see Services.contract_version); the index (contract_id, id) answers it.
CONTRACT_VERSION_SQL = f"SELECT max(id) FROM {AuditEventRecord.__tablename__} WHERE contract_id = ?"  # noqa: S608
# Many versions at once: one step down that index per contract.
CONTRACT_VERSIONS_SQL = (
    f"SELECT c.id, (SELECT max(a.id) FROM {AuditEventRecord.__tablename__} a "  # noqa: S608
    f"WHERE a.contract_id = c.id) FROM {ContractRecord.__tablename__} c"
)
CONTRACT_CACHE_SECONDS = 60.0
# The version the view being built on this thread is keyed on (see Services.view).
_BUILDING = threading.local()


StatusLines = Callable[["Services", Contract, Period], list[str]]
"""Lines a feature adds to a status overview and the quarterly summary (money at risk, plans)."""
ComplianceLines = Callable[["Services", Contract], list[str]]
"""A block of lines a feature adds to ``/kpi compliance`` (open action plans), or []."""
MessageProvider = Callable[["Services", datetime, datetime], list[Message]]
"""Messages a feature wants sent with moments in ``(start, end]`` (action-plan deadlines)."""
IncidentsProvider = Callable[
    ["Services", Sequence[str] | None, datetime], Mapping[str, Sequence[IncidentClock]]
]
"""Open incident clocks by contract id, for the reminder tick."""
MissingNotes = Callable[["Services", Contract, Sequence[Period]], dict[str, str]]
"""What each period's return still lacks ("narrative missing"), for reminder texts."""
StatusLinesMany = Callable[["Services", Sequence[tuple[Contract, Period]]], Mapping[str, list[str]]]
"""A status hook's lines for many (contract, period) pairs at once, by contract id (warm-up)."""
MessageComposer = Callable[["Services", AccessPolicy | None, OutboxMessage], Reply | None]
"""Builds one kind of message when it is delivered (a digest, an alert to a subscriber), with
access checked then; None withholds it (the reader may no longer see the contract)."""
CatchUp = Callable[["Services", AccessPolicy | None, datetime], int]
"""Work a feature does on every tick: writes outbox rows it missed (alerts after a crash)."""


def open_database(settings: Settings, url: str | None = None) -> Database:
    """The database at ``url`` (default ``settings.database_url``) with the settings' timeouts.

    Every command opens its database here, so ``kpibot db upgrade`` and ``kpibot serve`` read
    the same settings (environment, then ``.env``) and the same timeouts.
    """
    timeouts = Timeouts(
        connect=settings.db_connect_timeout,
        statement=settings.db_statement_timeout,
        pool=settings.db_pool_timeout,
    )
    return Database(url or settings.database_url, timeouts=timeouts)


@dataclass
class FeatureHooks:
    """What the features contribute beyond their own verbs, as ``kpibot.app.wiring`` registers it.

    Core, the scheduler and the summary read these lists; none of them imports a feature.

    >>> hooks = FeatureHooks()
    >>> hooks.status, hooks.incident_clocks
    ([], None)
    """

    status: list[StatusLines] = field(default_factory=list)
    compliance: list[ComplianceLines] = field(default_factory=list)
    messages: list[MessageProvider] = field(default_factory=list)
    incident_clocks: IncidentsProvider | None = None
    missing_notes: MissingNotes | None = None
    # A status hook's lines change only after audit actions starting with these (and with the
    # date); a hook not listed is rebuilt after any change to its contract.
    status_changed_by: dict[StatusLines, tuple[str, ...]] = field(default_factory=dict)
    # A status hook's version for many contracts at once, for the start-up warm-up.
    status_many: dict[StatusLines, StatusLinesMany] = field(default_factory=dict)
    composers: dict[str, MessageComposer] = field(default_factory=dict)
    catch_up: list[CatchUp] = field(default_factory=list)


@dataclass
class Services:
    """The store, repositories, settings and clock that commands run against."""

    settings: Settings
    db: Database
    contracts: ContractRepository
    figures: FigureRepository
    audit: AuditLog
    clock: Clock
    _contract_cache: OrderedDict[str, Contract] = field(default_factory=OrderedDict)
    _card_cache: OrderedDict[tuple[object, ...], Scorecard] = field(default_factory=OrderedDict)
    _view_cache: OrderedDict[tuple[object, ...], Any] = field(default_factory=OrderedDict)
    _cache_lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: tuple[float, list[str], frozenset[str]] | None = None
    hooks: FeatureHooks = field(default_factory=lambda: FeatureHooks())
    _status: StatusCache | None = None

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock | None = None) -> Services:
        return cls.for_database(open_database(settings), settings, clock)

    @classmethod
    def for_database(cls, db: Database, settings: Settings, clock: Clock | None = None) -> Services:
        now = clock or settings.now

        def utc() -> datetime:
            return now().astimezone(UTC)

        return cls(
            settings,
            db,
            ContractRepository(db, clock=utc),
            FigureRepository(db, clock=utc),
            AuditLog(db, clock=utc),
            now,
        )

    def now(self) -> datetime:
        return self.clock()

    # ---- contracts ----
    def contract_ids(self) -> list[str]:
        """Loaded contract ids, cached for a minute (every command needs them)."""
        return list(self._known_ids()[1])

    def has_contract(self, contract_id: str) -> bool:
        """Whether a contract with this id is loaded: the cached ids when they are fresh, else
        the contract itself (one read, kept; listing ten thousand ids to ask about one is not
        worth it, and whoever asks usually reads the contract next)."""
        known = self._ids
        fresh = known is not None and time.monotonic() - known[0] <= CONTRACT_CACHE_SECONDS
        if fresh and contract_id in known[2]:  # type: ignore[index]
            return True
        return self.contract(contract_id) is not None

    def _known_ids(self) -> tuple[float, list[str], frozenset[str]]:
        now = time.monotonic()
        known = self._ids
        if known is None or now - known[0] > CONTRACT_CACHE_SECONDS:
            ids = self.contracts.ids()
            known = self._ids = (now, ids, frozenset(ids))
        return known

    def contract(self, contract_id: str) -> Contract | None:
        """A contract by id (cached, the most recently used first kept; ``reload`` clears it)."""
        with self._cache_lock:
            hit = self._contract_cache.get(contract_id)
            if hit is not None:
                self._contract_cache.move_to_end(contract_id)
                return hit
        c = self.contracts.get(contract_id)
        if c is None:
            return None
        return self._remember(c)

    def contracts_by_id(self, contract_ids: Sequence[str]) -> list[Contract]:
        """The contracts with these ids that exist, in that order; the ones not cached are read
        in one query."""
        with self._cache_lock:
            known = {i: self._contract_cache[i] for i in contract_ids if i in self._contract_cache}
        missing = [i for i in contract_ids if i not in known]
        if missing:
            for c in self.contracts.many(missing):
                known[c.id] = self._remember(c)
        return [known[i] for i in contract_ids if i in known]

    def _remember(self, contract: Contract) -> Contract:
        with self._cache_lock:
            kept = self._contract_cache.setdefault(contract.id, contract)
            self._contract_cache.move_to_end(contract.id)
            while len(self._contract_cache) > CONTRACT_CACHE_SIZE:
                self._contract_cache.popitem(last=False)
        return kept

    def all_contracts(self) -> list[Contract]:
        return [self._remember(c) for c in self.contracts.all()]

    def reload(self) -> None:
        self._contract_cache.clear()
        self._ids = None

    def load_contracts(
        self, paths: Iterable[Path], actor: str, with_history: bool = True
    ) -> list[Contract]:
        """Validate every file first; only if all are valid, upsert them (and their demo history)."""
        return self.store_contracts(load_contracts(paths), actor, with_history)

    def store_contracts(
        self, contracts: list[Contract], actor: str, with_history: bool = True
    ) -> list[Contract]:
        """Upsert already-validated contracts (and their demo history)."""
        for c in contracts:
            self.contracts.upsert(c, actor=actor)
            if with_history and c.history:
                self._load_history(c, actor)
        self.reload()
        return contracts

    def _load_history(self, contract: Contract, actor: str) -> None:
        digest = hashlib.sha256(
            "|".join(
                f"{h.kpi}:{h.period}:{h.value}:{h.numerator}:{h.denominator}"
                for h in contract.history
            ).encode()
        ).hexdigest()[:16]
        rows = []
        for h in contract.history:
            value = h.value
            if value is None and h.numerator is not None and h.denominator:
                value = 100.0 * h.numerator / h.denominator
            rows.append(
                NewFigure(
                    h.kpi,
                    contract.parse_period(h.period),
                    value=value,
                    numerator=h.numerator,
                    denominator=h.denominator,
                    note=h.note,
                    reason="contract demo history",
                )
            )
        existing = {(f.kpi, f.period) for f in self.figures.current(contract.id)}
        fresh = [r for r in rows if (r.kpi, r.period.label) not in existing]
        if fresh:
            self.figures.submit(
                contract.id,
                fresh,
                actor=actor,
                source="history",
                idempotency_key=f"history:{contract.id}:{digest}",
                note="Demo history shipped with the contract",
            )

    # ---- figures and scorecards ----
    def figures_frame(self, contract_ids: Iterable[str] | None = None) -> pd.DataFrame:
        frame = self.figures.current_frame(contract_ids)
        return frame.reindex(columns=[*FIGURE_COLUMNS, "late", "submitted_at", "status"])

    def figures_version(self, contract_id: str) -> tuple[int, int, int]:
        """Changes whenever a contract's figures change: (latest id, rows, rows not 'submitted')."""
        query = select(
            func.max(FigureRecord.id),
            func.count(FigureRecord.id),
            func.sum(case((FigureRecord.status != "submitted", 1), else_=0)),
        ).where(FigureRecord.contract_id == contract_id)
        with self.db.session(read_only=True) as session:
            latest, rows, flagged = session.execute(query).one()
        return int(latest or 0), int(rows or 0), int(flagged or 0)

    def contract_version(self, contract_id: str) -> int:
        """Grows with every change to anything about a contract: its terms, figures, returns,
        action plans, finance. Each of those writes its audit entry in the same transaction as the
        change, so the contract's latest audit entry id versions them all, across processes too.

        While :meth:`view` builds a contract's view, this is the version the view is keyed on
        (read once, and the parts of the view agree with its key).
        """
        building = getattr(_BUILDING, "version", None)
        if building is not None and building[0] == contract_id:
            return int(building[1])
        return int(self.db.read_scalar(CONTRACT_VERSION_SQL, contract_id) or 0)

    def contract_versions(self, contract_ids: Sequence[str]) -> dict[str, int]:
        """:meth:`contract_version` for many contracts in one query (0 for none yet)."""
        ids = list(contract_ids)
        if not ids:
            return {}
        sql = f"{CONTRACT_VERSIONS_SQL} WHERE c.id IN ({', '.join('?' * len(ids))})"
        found = {str(c): int(v) for c, v in self.db.read_rows(sql, *ids) if v is not None}
        return {i: found.get(i, 0) for i in ids}

    @property
    def status(self) -> StatusCache:
        """Each contract's evaluated status rows and feature lines (see kpibot.core.status)."""
        if self._status is None:
            with self._cache_lock:
                if self._status is None:
                    self._status = StatusCache(self)
        return self._status

    def view(
        self,
        contract: Contract,
        name: str,
        build: Callable[[], V],
        *params: object,
        version: int | None = None,
    ) -> V:
        """``build()``'s result (a status overview, say), reused until anything about the contract
        changes (see :meth:`contract_version`) or the date moves on (lateness and the default
        period follow the date). ``params`` are whatever else the view depends on; ``version``,
        when the caller has just read it, saves reading it again.

        The version is read before ``build`` runs, so a change racing the build at worst makes
        the next caller build again; it never leaves a stale view behind a newer version.
        """
        key = self._view_key(contract.id, name, version, params)
        with self._cache_lock:
            if key in self._view_cache:
                self._view_cache.move_to_end(key)
                return self._view_cache[key]  # type: ignore[no-any-return]
        outer = getattr(_BUILDING, "version", None)
        _BUILDING.version = (contract.id, key[3])
        try:
            value = build()
        finally:
            _BUILDING.version = outer
        self._keep_view(key, value)
        return value

    def remember_view(
        self, contract: Contract, name: str, value: object, *params: object, version: int
    ) -> None:
        """Keep ``value`` as :meth:`view` would have built it at ``version`` (warm-up)."""
        self._keep_view(self._view_key(contract.id, name, version, params), value)

    def peek_view(self, contract_id: str, name: str, *params: object, version: int) -> object:
        """The view :meth:`view` keeps for this contract at ``version`` today, or None."""
        key = self._view_key(contract_id, name, version, params)
        with self._cache_lock:
            return self._view_cache.get(key)

    def _view_key(
        self, contract_id: str, name: str, version: int | None, params: tuple[object, ...]
    ) -> tuple[object, ...]:
        if version is None:
            version = self.contract_version(contract_id)
        return (name, contract_id, self.now().date(), version, *params)

    def _keep_view(self, key: tuple[object, ...], value: object) -> None:
        with self._cache_lock:
            self._view_cache[key] = value
            self._view_cache.move_to_end(key)
            while len(self._view_cache) > VIEW_CACHE_SIZE:
                self._view_cache.popitem(last=False)

    def scorecard(
        self, contract: Contract, at: Period | None = None, *, approved_only: bool = False
    ) -> Scorecard:
        """The contract's evaluated scorecard, cached until its figures change.

        ``approved_only`` leaves out figures awaiting approval or queried (payments use it).
        """
        key = (
            contract.id,
            id(contract),
            self.figures_version(contract.id),
            at.label if at else None,
            approved_only,
        )
        with self._cache_lock:
            hit = self._card_cache.get(key)
            if hit is not None:
                self._card_cache.move_to_end(key)
                return hit
        figures = self.figures_frame([contract.id])
        if approved_only:
            figures = approved(figures)
        card = Scorecard.build(contract, figures, [at] if at is not None else None)
        with self._cache_lock:
            self._card_cache[key] = card
            while len(self._card_cache) > SCORECARD_CACHE_SIZE:
                self._card_cache.popitem(last=False)
        return card

    def prefetch_scorecards(
        self, contracts: Sequence[Contract], at: Mapping[str, Period] | None = None
    ) -> None:
        """Build many contracts' scorecards (at ``at[contract id]``, if given) in one pass and
        keep them as :meth:`scorecard` would: the quarterly summaries a dispatcher claimed
        together, the contracts a reminder tick looks at."""
        todo = list(contracts)
        for start in range(0, len(todo), PREFETCH_BATCH):
            part = todo[start : start + PREFETCH_BATCH]
            ids = [c.id for c in part]
            versions = self.figures_versions(ids)  # read first: a later figure only misses
            periods = {cid: [p] for cid, p in (at or {}).items() if cid in set(ids)}
            cards = Scorecard.build_many(part, self.figures_frame(ids), periods)
            with self._cache_lock:
                for c in part:
                    p = (at or {}).get(c.id)
                    key = (c.id, id(c), versions[c.id], p.label if p else None, False)
                    self._card_cache[key] = cards[c.id]
                    self._card_cache.move_to_end(key)
                while len(self._card_cache) > SCORECARD_CACHE_SIZE:
                    self._card_cache.popitem(last=False)

    def figures_versions(self, contract_ids: Sequence[str]) -> dict[str, tuple[int, int, int]]:
        """:meth:`figures_version` for many contracts in one query."""
        ids = list(contract_ids)
        found: dict[str, tuple[int, int, int]] = {}
        if ids:
            query = (
                select(
                    FigureRecord.contract_id,
                    func.max(FigureRecord.id),
                    func.count(FigureRecord.id),
                    func.sum(case((FigureRecord.status != "submitted", 1), else_=0)),
                )
                .where(FigureRecord.contract_id.in_(ids))
                .group_by(FigureRecord.contract_id)
            )
            with self.db.session(read_only=True) as session:
                for cid, latest, rows, flagged in session.execute(query):
                    found[str(cid)] = (int(latest or 0), int(rows or 0), int(flagged or 0))
        return {i: found.get(i, (0, 0, 0)) for i in ids}

    def is_late(self, contract: Contract) -> Callable[[Period], bool]:
        """Whether a return for a period arriving now is late (after its due date)."""
        now = self.now().date()

        def late(period: Period) -> bool:
            due = due_date_for(contract, period)
            return due is not None and now > due

        return late

    def due_date(self, contract: Contract, period: Period) -> date | None:
        """The return due date the contract sets for ``period``, or None without a calendar."""
        return due_date_for(contract, period)

    def next_due(self, contract: Contract, today: date) -> str | None:
        """'2019/20 Q4 on Fri 10 Apr 2020' for the next return due on or after ``today``."""
        cal = calendar_for(contract)
        if cal is None:
            return None
        upcoming = cal.returns_due_between(today, today + timedelta(days=400))
        if not upcoming:
            return None
        nxt = upcoming[0]
        return f"{nxt.name} on {nxt.due_date:%a %-d %b %Y}"

    def received_periods(self, contract_id: str) -> dict[str, datetime]:
        """When each period's return first arrived (earliest figure submitted), by period label."""
        frame = self.figures.current_frame([contract_id])
        if frame.empty:
            return {}
        first = frame.groupby("period")["submitted_at"].min()
        return {str(k): v.to_pydatetime() for k, v in first.items()}

    def status_extras(self, contract: Contract, period: Period) -> list[str]:
        """Extra lines for a status overview from the features' hooks (money, plans, finance)."""
        lines: list[str] = []
        for hook in self.hooks.status:
            lines.extend(hook(self, contract, period))
        return lines

    def default_period(self, contract: Contract) -> Period:
        """The latest ended reporting period inside the contract, as of now."""
        return default_period(contract, self.now().date())
