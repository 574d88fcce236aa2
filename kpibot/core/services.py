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
from kpibot.engine.calendar import calendar_for, due_date_for
from kpibot.engine.model import Contract
from kpibot.engine.periods import Period, period_containing
from kpibot.engine.reminders import IncidentClock, Message
from kpibot.engine.returns import approved_only as approved
from kpibot.engine.scorecard import FIGURE_COLUMNS, Scorecard
from kpibot.files.contracts import load_contracts
from kpibot.store.database import Database
from kpibot.store.outbox import OutboxMessage
from kpibot.store.repositories import AuditLog, ContractRepository, FigureRepository
from kpibot.store.rows import NewFigure
from kpibot.store.schema import AuditEventRecord, FigureRecord

Clock = Callable[[], datetime]
V = TypeVar("V")
SCORECARD_CACHE_SIZE = 1200
VIEW_CACHE_SIZE = 2000
# A contract's version (see Services.contract_version); the index (contract_id, id) answers it.
CONTRACT_VERSION_SQL = f"SELECT max(id) FROM {AuditEventRecord.__tablename__} WHERE contract_id = ?"  # noqa: S608
CONTRACT_CACHE_SECONDS = 60.0


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
MessageComposer = Callable[["Services", AccessPolicy | None, OutboxMessage], Reply | None]
"""Builds one kind of message when it is delivered (a digest, an alert to a subscriber), with
access checked then; None withholds it (the reader may no longer see the contract)."""
CatchUp = Callable[["Services", AccessPolicy | None, datetime], int]
"""Work a feature does on every tick: writes outbox rows it missed (alerts after a crash)."""


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
    _contract_cache: dict[str, Contract] = field(default_factory=dict)
    _card_cache: OrderedDict[tuple[object, ...], Scorecard] = field(default_factory=OrderedDict)
    _view_cache: OrderedDict[tuple[object, ...], Any] = field(default_factory=OrderedDict)
    _cache_lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: tuple[float, list[str]] | None = None
    hooks: FeatureHooks = field(default_factory=lambda: FeatureHooks())

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock | None = None) -> Services:
        return cls.for_database(Database(settings.database_url), settings, clock)

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
        now = time.monotonic()
        if self._ids is None or now - self._ids[0] > CONTRACT_CACHE_SECONDS:
            self._ids = (now, self.contracts.ids())
        return list(self._ids[1])

    def contract(self, contract_id: str) -> Contract | None:
        """A contract by id (cached; ``reload`` clears it)."""
        if contract_id not in self._contract_cache:
            c = self.contracts.get(contract_id)
            if c is None:
                return None
            self._contract_cache[contract_id] = c
        return self._contract_cache[contract_id]

    def all_contracts(self) -> list[Contract]:
        for c in self.contracts.all():
            self._contract_cache.setdefault(c.id, c)
        return [self._contract_cache[i] for i in sorted(self._contract_cache)]

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
        """
        return int(self.db.read_scalar(CONTRACT_VERSION_SQL, contract_id) or 0)

    def view(self, contract: Contract, name: str, build: Callable[[], V], *params: object) -> V:
        """``build()``'s result (a status overview, say), reused until anything about the contract
        changes (see :meth:`contract_version`) or the date moves on (lateness and the default
        period follow the date). ``params`` are whatever else the view depends on.

        The version is read before ``build`` runs, so a change racing the build at worst makes
        the next caller build again; it never leaves a stale view behind a newer version.
        """
        key = (
            name,
            contract.id,
            id(contract),
            self.now().date(),
            self.contract_version(contract.id),
            *params,
        )
        with self._cache_lock:
            if key in self._view_cache:
                self._view_cache.move_to_end(key)
                return self._view_cache[key]  # type: ignore[no-any-return]
        value = build()
        with self._cache_lock:
            self._view_cache[key] = value
            while len(self._view_cache) > VIEW_CACHE_SIZE:
                self._view_cache.popitem(last=False)
        return value

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
        today = self.now().date()
        p = period_containing(
            today, contract.reporting.period, contract.reporting.year_start_month
        ).previous()
        last = period_containing(
            contract.end, contract.reporting.period, contract.reporting.year_start_month
        )
        if p.start > last.start:
            return last
        first = period_containing(
            contract.start, contract.reporting.period, contract.reporting.year_start_month
        )
        return first if p.start < first.start else p
