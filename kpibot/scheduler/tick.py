"""The reminder tick: which messages fell due since the watermark, written to the outbox.

One periodic job (never one job per reminder) asks the planner for every message in
``(watermark, now]`` over all contracts, writes one outbox row per message and target, and moves
the watermark to ``now``, all in one transaction. After downtime the window is simply longer: the
planner sends each missed message once and collapses stale ladder steps into one "overdue".

It is built to run every minute over 10,000 contracts:

* contracts are re-read only when their ``content_hash`` changes, and only the fields the planner
  needs are validated (not the KPIs);
* contracts with the same calendar terms share one ``ReturnCalendar``;
* each contract's ``ContractInputs`` (whose schedule the planner caches) is kept between ticks.
  It is built over a horizon of a month or two rather than the contract's whole life, which cuts
  the memory and the cold start several times over; horizons end at staggered times, so only a
  few contracts are rebuilt on any one tick;
* receipts (the first figure received per contract and period) come from one grouped query, run
  only for the contracts that may have a reminder, escalation or service failure in the window,
  and are remembered: figures are never deleted, so a received return stays received.

>>> tick = ReminderTick(services, policy)  # doctest: +SKIP
>>> tick.tick(datetime(2020, 1, 10, 9, 1, tzinfo=LONDON))  # doctest: +SKIP
3
"""

from __future__ import annotations

import gc
import logging
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from kpibot.core.access import AccessPolicy
from kpibot.core.audience import Target, targets_for
from kpibot.core.services import IncidentsProvider, MessageProvider, Services
from kpibot.engine.calendar import LONDON, ReturnCalendar
from kpibot.engine.model import Contract
from kpibot.engine.reminders import LADDER, IncidentClock, Message, order
from kpibot.scheduler.inputs import (
    HorizonCalendar,
    SharedCalendars,
    contract_inputs,
    planner_contract,
    read_milestones,
    read_receipts,
)
from kpibot.scheduler.plan import ContractInputs, plan_window
from kpibot.store.database import Database
from kpibot.store.outbox import OutboxRepository, outbox_entries
from kpibot.store.schema import ContractRecord, ReturnRecord, SchedulerStateRecord, as_utc

log = logging.getLogger(__name__)


class FromServices:
    """The default for a provider: take it from ``services.hooks``."""


FROM_SERVICES = FromServices()
STATE = cast(Table, SchedulerStateRecord.__table__)
DEFAULT_NAME = "reminders"
FIRST_WINDOW = timedelta(minutes=1)
HORIZON_DAYS = 30
# Above this many fresh schedules in one tick (a cold start), pause the cyclic GC: the planner
# allocates millions of small long-lived objects, and rescanning them doubles the build time.
_GC_PAUSE_ABOVE = 1000
_LOAD_CHUNK = 500
# The kinds of message a receipt can stop (plan_contract drops them once a return is in).
_RECEIPT_KINDS = frozenset({*LADDER, "escalation", "service_failure"})
# Milestone messages stop once the milestone is reported achieved.
_MILESTONE_KINDS = frozenset({"milestone", "milestone_overdue"})
# Above this many contracts (a long catch-up), read receipts by period label alone.
_RECEIPTS_BY_ID = 5000


@contextmanager
def _gc_paused(pause: bool) -> Iterator[None]:
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        # The new schedules live for weeks: take them out of the collector's sight, or the next
        # full collection rescans them all. Reference counting still frees them when dropped.
        gc.freeze()
        gc.enable()


@dataclass
class _Cached:
    digest: str
    contract: Contract
    calendar: ReturnCalendar | None
    jitter: timedelta
    targets: dict[str, list[Target]] = field(default_factory=dict)
    inputs: ContractInputs | None = None
    since: datetime | None = None
    until: datetime | None = None


def _has_milestones(contract: Contract) -> bool:
    return any(k.kind == "milestone" for k in contract.kpis)


def _message_order(message: Message) -> tuple[datetime, str, int]:
    # plan_window's own order, so a merged plan reads the same.
    return message.when, message.contract, order(message.kind)


def _covers(cached: _Cached, start: datetime, end: datetime) -> bool:
    if cached.inputs is None:
        return False
    if cached.since is None or cached.until is None:  # the whole calendar
        return True
    return cached.since <= start and end <= cached.until


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=LONDON).astimezone(UTC)


class _Superseded(Exception):
    """Another tick moved the watermark first; this one's work is already done."""


class ReminderTick:
    """Plans ``(watermark, now]`` over every stored contract and writes it to the outbox.

    ``start`` is the first watermark (default: ``now`` minus a minute, so a new deployment does
    not replay history); ``horizon_days`` is how far ahead each contract's inputs are built
    (None: the whole contract, as ``preview`` does). Call ``tick(now)`` from one replica only
    (see ``LeaderLock``); a second caller is harmless but wasted work.

    >>> tick = ReminderTick(services, policy, start=datetime(2020, 1, 1, tzinfo=LONDON))
    ... # doctest: +SKIP
    >>> tick.tick(datetime(2020, 1, 11, tzinfo=LONDON))  # doctest: +SKIP
    """

    def __init__(
        self,
        services: Services,
        policy: AccessPolicy | None = None,
        incidents_provider: IncidentsProvider | None | FromServices = FROM_SERVICES,
        *,
        name: str = DEFAULT_NAME,
        start: datetime | None = None,
        horizon_days: int | None = HORIZON_DAYS,
        outbox: OutboxRepository | None = None,
        extra_providers: Sequence[MessageProvider] | None = None,
    ) -> None:
        self.services = services
        # What features plan beside the return calendars (action plans, finance exceptions) and
        # the incident clocks: ``services.hooks`` as kpibot.app.wiring filled it, unless given.
        self.extra_providers = list(
            services.hooks.messages if extra_providers is None else extra_providers
        )
        if isinstance(incidents_provider, FromServices):
            incidents_provider = services.hooks.incident_clocks
        self.db: Database = services.db
        self.policy = policy
        self.incidents_provider = incidents_provider
        self.name = name
        self.start = start
        self.horizon = None if horizon_days is None else timedelta(days=horizon_days)
        self.outbox = outbox or OutboxRepository(self.db)
        # The contracts and period labels whose receipts the last tick read (diagnostics).
        self.last_reads: tuple[list[str], set[str]] = ([], set())
        # Receipts seen so far. Figures are never deleted, so a return once received stays so.
        self._known: dict[str, dict[str, datetime]] = {}
        self._cache: dict[str, _Cached] = {}
        self._calendars = SharedCalendars()
        self._bound: dict[str, list[str]] = {}
        for channel, cid in (policy.channels if policy is not None else {}).items():
            self._bound.setdefault(cid, []).append(channel)

    # ------------------------------------------------------------------ the tick
    def tick(self, now: datetime) -> int:
        """Enqueue every message due in ``(watermark, now]``, and let the features catch up on
        outbox rows they write themselves (``services.hooks.catch_up``: alerts a crash left
        unwritten); returns how many rows were new."""
        now = as_utc(now)
        return self._catch_up(now) + self._tick(now)

    def _catch_up(self, now: datetime) -> int:
        added = 0
        for catch_up in self.services.hooks.catch_up:
            try:
                added += catch_up(self.services, self.policy, now)
            except Exception:  # reminders must still go out when a feature's catch-up fails
                log.exception("tick %s: catch-up %s failed", self.name, catch_up.__name__)
        return added

    def _tick(self, now: datetime) -> int:
        with self.db.session(read_only=True) as session:
            mark = session.scalar(select(STATE.c.watermark).where(STATE.c.name == self.name))
            digests = self._digests(session)
        if mark is None:
            mark = self.watermark(now)
        if now <= mark:
            return 0
        messages = self._plan(mark, now, digests)
        entries = [
            entry
            for m in messages
            for entry in outbox_entries(
                m, [m.target] if m.target is not None else self._targets(m.contract, m.audience)
            )
        ]
        try:
            with self.db.session() as session:
                moved = session.execute(
                    update(STATE)
                    .where(STATE.c.name == self.name, STATE.c.watermark == mark)
                    .values(watermark=now)
                )
                if moved.rowcount != 1:  # type: ignore[attr-defined]
                    raise _Superseded
                added = self.outbox.enqueue_in(session, entries, now)
        except _Superseded:
            log.info("tick %s: watermark moved by another replica; skipped", self.name)
            return 0
        log.debug(
            "tick %s: (%s, %s] %d message(s), %d new row(s)",
            self.name,
            mark,
            now,
            len(messages),
            added,
        )
        return added

    def watermark(self, now: datetime) -> datetime:
        """The stored watermark, created on first use from ``start`` or ``now`` minus a minute."""
        query = select(STATE.c.watermark).where(STATE.c.name == self.name)
        with self.db.session(read_only=True) as session:
            mark = session.scalar(query)
        if mark is not None:
            return cast(datetime, mark)
        first = as_utc(self.start) if self.start is not None else as_utc(now) - FIRST_WINDOW
        insert = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        with self.db.session() as session:
            session.execute(
                insert(STATE).values(name=self.name, watermark=first).on_conflict_do_nothing()
            )
            return cast(datetime, session.scalar(query))

    def messages(self, start: datetime, end: datetime) -> list[Message]:
        """What the planner says is due in ``(start, end]`` with the store as it is now.

        A receipt only ever stops a ladder, escalation or service-failure message, so a first
        pass with the receipts already known finds every contract that may have such a message
        in the window (on most minutes, none); receipts are then read for those contracts alone,
        in one grouped query, and they are planned again. Figures are never deleted, so a
        receipt once seen is kept and never read again.
        """
        with self.db.session(read_only=True) as session:
            digests = self._digests(session)
        return self._plan(start, end, digests)

    def _plan(self, start: datetime, end: datetime, digests: Mapping[str, str]) -> list[Message]:
        planned = self._plan_contracts(start, end, digests)
        extras = [
            m
            for provider in self.extra_providers
            for m in provider(self.services, start, end)
            if m.contract in self._cache or m.target is not None
        ]
        return sorted(planned + extras, key=_message_order) if extras else planned

    def _plan_contracts(
        self, start: datetime, end: datetime, digests: Mapping[str, str]
    ) -> list[Message]:
        start, end = as_utc(start), as_utc(end)
        self._refresh_contracts(digests)
        fresh = self._refresh_inputs(start, end)
        clocks: Mapping[str, Sequence[IncidentClock]] = {}
        if self.incidents_provider is not None:
            clocks = self.incidents_provider(self.services, None, start)
        active: list[ContractInputs] = []
        for cached in self._cache.values():
            inp = cached.inputs
            if inp is None:
                continue
            cid = inp.contract.id
            inp.received = self._known.get(cid, {})
            inp.incidents = tuple(c for c in clocks.get(cid, ()) if c.contract == cid)
            if inp.calendar is not None or inp.incidents or _has_milestones(inp.contract):
                active.append(inp)
        with _gc_paused(fresh > _GC_PAUSE_ABOVE):
            draft = plan_window(active, start, end)
        chased = {m.contract for m in draft if m.kind in _MILESTONE_KINDS}
        if chased:
            done = read_milestones(self.db, [i.contract for i in active if i.contract.id in chased])
            for inp in active:
                if inp.contract.id in chased:
                    inp.milestones_done = done.get(inp.contract.id, {})
            kept = [m for m in draft if m.contract not in chased]
            draft = sorted(
                kept + plan_window([i for i in active if i.contract.id in chased], start, end),
                key=_message_order,
            )
        needs = {m.contract for m in draft if m.kind in _RECEIPT_KINDS}
        if not needs:
            return draft
        busy = [inp for inp in active if inp.contract.id in needs]
        labels = {r.period.label for inp in busy for r in inp.returns()}
        self.last_reads = (sorted(needs), labels)
        ids = sorted(needs) if len(needs) <= _RECEIPTS_BY_ID else None
        receipts = read_receipts(self.db, ids, labels)
        for inp in busy:
            cid = inp.contract.id
            inp.received = self._known[cid] = {**self._known.get(cid, {}), **receipts.get(cid, {})}
        started = self._returns_started([inp.contract.id for inp in busy])
        if len(started) > 1:
            # What each return still needs reads its contract's scorecard: build them together.
            known = [self.services.contract(cid) for cid in sorted(started)]
            self.services.prefetch_scorecards([c for c in known if c is not None])
        for inp in busy:
            if inp.contract.id in started:
                inp.missing_note = self._missing_notes(inp, start, end)
        kept = [m for m in draft if m.contract not in needs]
        return sorted(kept + plan_window(busy, start, end), key=_message_order)

    def _returns_started(self, contract_ids: list[str]) -> set[str]:
        """Contracts where a provider has started building a return: only they get a "still needed" note."""
        if not contract_ids:
            return set()
        query = (
            select(ReturnRecord.contract_id)
            .where(ReturnRecord.contract_id.in_(contract_ids))
            .distinct()
        )
        with self.db.session(read_only=True) as session:
            return {str(cid) for cid in session.scalars(query)}

    def _missing_notes(self, inp: ContractInputs, start: datetime, end: datetime) -> dict[str, str]:
        """What each return near the window still lacks, for the reminder texts."""
        missing_notes = self.services.hooks.missing_notes
        contract = self.services.contract(inp.contract.id)
        if contract is None or missing_notes is None:
            return {}
        periods = [
            r.period for r in inp.returns_near(start.date(), end.date()) if r.kind != "annual"
        ]
        try:
            return missing_notes(self.services, contract, periods)
        except Exception:  # a reminder without the note is better than no reminder
            log.exception("tick %s: could not work out what %s still needs", self.name, contract.id)
            return {}

    # ------------------------------------------------------------------ caches
    def _targets(self, contract_id: str, audience: str) -> list[Target]:
        cached = self._cache[contract_id]
        if audience not in cached.targets:
            bound = self._bound.get(contract_id, [])
            cached.targets[audience] = targets_for(cached.contract, audience, bound)
        return cached.targets[audience]

    @staticmethod
    def _digests(session: Session) -> dict[str, str]:
        query = select(ContractRecord.id, ContractRecord.content_hash)
        return {cid: digest for cid, digest in session.connection().execute(query)}

    def _refresh_contracts(self, digests: Mapping[str, str]) -> None:
        changed = [
            cid
            for cid, digest in digests.items()
            if cid not in self._cache or self._cache[cid].digest != digest
        ]
        if changed:
            with self.db.session(read_only=True) as session:
                for i in range(0, len(changed), _LOAD_CHUNK):
                    rows = session.execute(
                        select(
                            ContractRecord.id,
                            ContractRecord.content_hash,
                            ContractRecord.definition,
                        ).where(ContractRecord.id.in_(changed[i : i + _LOAD_CHUNK]))
                    ).all()
                    for cid, digest, definition in rows:
                        self._load(cid, digest, definition)
        for cid in set(self._cache) - set(digests):
            del self._cache[cid]
            self._known.pop(cid, None)

    def _load(self, cid: str, digest: str, definition: Mapping[str, Any]) -> None:
        try:
            contract = planner_contract(definition)
        except ValueError as error:
            log.warning("contract %s cannot be planned and is skipped: %s", cid, error)
            self._cache.pop(cid, None)
            return
        jitter = timedelta(days=zlib.crc32(cid.encode()) % max(self._horizon_days(), 1))
        self._cache[cid] = _Cached(digest, contract, self._calendars.get(contract), jitter)

    def _horizon_days(self) -> int:
        return 0 if self.horizon is None else self.horizon.days

    def _refresh_inputs(self, start: datetime, end: datetime) -> int:
        """(Re)build inputs whose horizon does not cover the window; returns how many."""
        built = 0
        for cached in self._cache.values():
            if _covers(cached, start, end):
                continue
            calendar: ReturnCalendar | None = cached.calendar
            cached.since = cached.until = None
            if calendar is not None and self.horizon is not None:
                first = start.astimezone(LONDON).date() - timedelta(days=1)
                last = max(end.astimezone(LONDON).date(), first + self.horizon + cached.jitter)
                last += timedelta(days=1)
                calendar = cast(ReturnCalendar, HorizonCalendar(calendar, first, last))
                cached.since, cached.until = _midnight(first), _midnight(last)
            cached.inputs = contract_inputs(cached.contract, calendar)
            built += 1
        return built
