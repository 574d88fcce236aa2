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
* receipts (the first figure received per contract and period) come from one grouped query,
  limited to the periods the horizons hold.

>>> tick = ReminderTick(services, policy)  # doctest: +SKIP
>>> tick.tick(datetime(2020, 1, 10, 9, 1, tzinfo=LONDON))  # doctest: +SKIP
3
"""

from __future__ import annotations

import bisect
import gc
import json
import logging
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from kpibot.engine.calendar import LONDON, CalendarError, DueReturn, ReturnCalendar
from kpibot.engine.model import Contract, Party
from kpibot.scheduler.outbox import OutboxEntry, OutboxRepository
from kpibot.scheduler.plan import ContractInputs, IncidentClock, Message, plan_window
from kpibot.store.database import Database
from kpibot.store.schema import ContractRecord, FigureRecord, SchedulerStateRecord, as_utc

if TYPE_CHECKING:
    from kpibot.access import AccessPolicy
    from kpibot.services import Services

log = logging.getLogger(__name__)

Target = tuple[str, str]
IncidentsProvider = Callable[
    ["Services", Sequence[str] | None, datetime], Mapping[str, Sequence[IncidentClock]]
]
STATE = cast(Table, SchedulerStateRecord.__table__)
DEFAULT_NAME = "reminders"
FIRST_WINDOW = timedelta(minutes=1)
HORIZON_DAYS = 30
# Above this many fresh schedules in one tick (a cold start), pause the cyclic GC: the planner
# allocates millions of small acyclic objects, and rescanning them doubles the build time.
_GC_PAUSE_ABOVE = 1000
_PLANNER_FIELDS = (
    "id",
    "name",
    "commissioner",
    "provider",
    "financial_year_start_month",
    "reporting",
    "contract_years",
    "calendar",
)
_LOAD_CHUNK = 500


# ---------------------------------------------------------------------------- targets
def channel_platform(channel: str) -> str:
    """The platform a bound channel id belongs to: Teams ids carry a colon (``19:…@thread``)."""
    return "teams" if ":" in channel else "slack"


def _party_targets(party: Party) -> list[Target]:
    out: list[Target] = []
    if party.slack_channel:
        out.append(("slack", party.slack_channel))
    if party.teams_conversation:
        out.append(("teams", party.teams_conversation))
    return out


def audience_targets(
    contract: Contract, audience: str, policy: AccessPolicy | None
) -> list[Target]:
    """Where a message for ``audience`` goes, as (platform, channel) pairs.

    provider and commissioner: that party's Slack channel and Teams conversation; channel and
    attendees: every channel bound to the contract in the access policy plus both parties'.
    With nothing configured the message still goes to ``("console", contract.id)``, so it is
    recorded and the console deliverer prints it.

    >>> # audience_targets(contract, "provider", policy) -> [("slack", "C-PROVIDER")]
    """
    if audience == "provider":
        found = _party_targets(contract.provider)
    elif audience == "commissioner":
        found = _party_targets(contract.commissioner)
    else:
        bound = policy.channels.items() if policy is not None else ()
        found = [(channel_platform(ch), ch) for ch, cid in bound if cid == contract.id]
        found += _party_targets(contract.provider) + _party_targets(contract.commissioner)
    unique = list(dict.fromkeys(found))
    return unique or [("console", contract.id)]


def outbox_entries(message: Message, targets: Iterable[Target]) -> list[OutboxEntry]:
    """One outbox entry per target; the key is the message key plus ``|platform:channel``."""
    payload = {"text": message.text, "when": message.when.isoformat(), "message": message.key}
    return [
        OutboxEntry(
            key=f"{message.key}|{platform}:{channel}",
            contract_id=message.contract,
            kind=message.kind,
            audience=message.audience,
            platform=platform,
            channel=channel,
            period=message.period,
            step=message.step,
            due_at=message.when,
            payload=payload,
        )
        for platform, channel in targets
    ]


# ---------------------------------------------------------------------------- inputs
def read_receipts(
    db: Database,
    contract_ids: Iterable[str] | None = None,
    labels: Iterable[str] | None = None,
) -> dict[str, dict[str, datetime]]:
    """When each return was received: the earliest figure per (contract, period), in UTC.

    Every figure counts, amendments and demo history included. One grouped query.

    >>> # read_receipts(db, ["one-psychology"]) -> {"one-psychology": {"2019/20 Q3": datetime(…)}}
    """
    first = FigureRecord.submitted_at
    # func.min keeps the column's type, so SQLite's text comes back as an aware UTC datetime.
    query = select(FigureRecord.contract_id, FigureRecord.period_label, func.min(first)).group_by(
        FigureRecord.contract_id, FigureRecord.period_label
    )
    if contract_ids is not None:
        query = query.where(FigureRecord.contract_id.in_(list(contract_ids)))
    if labels is not None:
        query = query.where(FigureRecord.period_label.in_(sorted(set(labels))))
    with db.session(read_only=True) as session:
        rows = session.execute(query).all()
    out: dict[str, dict[str, datetime]] = {}
    for contract_id, label, when in rows:
        out.setdefault(contract_id, {})[label] = when
    return out


def contract_inputs(
    contract: Contract,
    calendar: ReturnCalendar | None,
    received: Mapping[str, datetime] | None = None,
    incidents: Sequence[IncidentClock] = (),
) -> ContractInputs:
    """The planner's inputs for one contract: the same construction for the tick and preview.

    Receipts are normalised to UTC: the planner compares them with Europe/London moments, and
    Python compares two datetimes sharing one zone by wall time, which is wrong in the autumn's
    repeated hour.
    """
    got = {label: as_utc(when) for label, when in (received or {}).items()}
    return ContractInputs(contract, calendar, received=got, incidents=tuple(incidents))


def planner_contract(definition: Mapping[str, Any]) -> Contract:
    """A stored contract as the planner sees it: identity, parties, years, reporting, calendar.

    The planner never reads KPIs, so only the first is kept (the model requires one); with 40
    KPIs per contract that makes loading 10,000 contracts a matter of seconds, not minutes.
    """
    data = {k: definition[k] for k in _PLANNER_FIELDS if k in definition}
    data["kpis"] = list(definition.get("kpis", []))[:1]
    return Contract.model_validate(data)


def _calendar_key(contract: Contract) -> str:
    years = sorted((y.start.isoformat(), y.end.isoformat()) for y in contract.contract_years)
    terms = [
        contract.calendar,
        contract.reporting.model_dump(),
        contract.financial_year_start_month,
        years,
    ]
    return json.dumps(terms, sort_keys=True, default=str)


class _Horizon:
    """A calendar seen over ``[start, end]``: only the returns whose messages can fall there.

    For any window inside the horizon the planner gives exactly what it gives with the whole
    calendar (the test suite checks this), provided it keeps its current reach: a ladder from
    ``max(before_days)`` before a due date to the escalation after it, a summary
    ``summary_grace_days`` after, and a service failure looking back two periodic returns.
    Everything else is read from the full calendar.
    """

    def __init__(self, calendar: ReturnCalendar, start: date, end: date) -> None:
        self._calendar = calendar
        spec = calendar.spec.reminders
        before = timedelta(days=max(spec.before_days, default=0) + 2)
        # A working-day ladder of N days spans at most 2N + 14 calendar days, holidays included.
        after_days = max(calendar.spec.summary_grace_days, 2 * spec.escalate_after_working_days)
        after = timedelta(days=after_days + 16)
        rets = calendar.returns_due_between(date.min, date.max)
        dues = [r.due_date for r in rets]
        lo = bisect.bisect_left(dues, start - after)
        # Two earlier periodic returns: a service failure looks back over three in a row.
        earlier = 0
        while lo > 0 and earlier < 2:
            lo -= 1
            earlier += rets[lo].kind != "annual"
        # One return past the end: the planner lists meetings up to its last return.
        hi = bisect.bisect_right(dues, end + before) + 1
        self._returns = rets[lo:hi]

    def returns_due_between(self, start: date, end: date) -> list[DueReturn]:
        return [r for r in self._returns if start <= r.due_date <= end]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._calendar, name)


@contextmanager
def _gc_paused(pause: bool) -> Iterator[None]:
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
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


def _covers(cached: _Cached, start: datetime, end: datetime) -> bool:
    if cached.inputs is None:
        return False
    if cached.since is None or cached.until is None:  # the whole calendar
        return True
    return cached.since <= start and end <= cached.until


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=LONDON).astimezone(UTC)


def default_incidents(
    services: Services, contract_ids: Sequence[str] | None, since: datetime
) -> Mapping[str, Sequence[IncidentClock]]:
    """Incident clocks from ``kpibot.incidents``, or none while that module is absent."""
    try:
        from kpibot.incidents import open_incident_clocks
    except ImportError:
        return {}
    return open_incident_clocks(services, contract_ids, now=since)


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
        incidents_provider: IncidentsProvider | None = default_incidents,
        *,
        name: str = DEFAULT_NAME,
        start: datetime | None = None,
        horizon_days: int | None = HORIZON_DAYS,
        outbox: OutboxRepository | None = None,
    ) -> None:
        self.services = services
        self.db: Database = services.db
        self.policy = policy
        self.incidents_provider = incidents_provider
        self.name = name
        self.start = start
        self.horizon = None if horizon_days is None else timedelta(days=horizon_days)
        self.outbox = outbox or OutboxRepository(self.db)
        self.last_labels: set[str] | None = None
        self._cache: dict[str, _Cached] = {}
        self._calendars: weakref.WeakValueDictionary[str, ReturnCalendar] = (
            weakref.WeakValueDictionary()
        )

    # ------------------------------------------------------------------ the tick
    def tick(self, now: datetime) -> int:
        """Enqueue every message due in ``(watermark, now]``; returns how many rows were new."""
        now = as_utc(now)
        mark = self.watermark(now)
        if now <= mark:
            return 0
        messages = self.messages(mark, now)
        entries = [
            entry
            for m in messages
            for entry in outbox_entries(m, self._targets(m.contract, m.audience))
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
        """What the planner says is due in ``(start, end]`` with the store as it is now."""
        start, end = as_utc(start), as_utc(end)
        self._refresh_contracts()
        fresh = self._refresh_inputs(start, end)
        inputs = [c.inputs for c in self._cache.values() if c.inputs is not None]
        labels = None
        if self.horizon is not None:
            labels = {r.period.label for inp in inputs for r in inp.returns()}
        self.last_labels = labels
        receipts = read_receipts(self.db, labels=labels)
        clocks: Mapping[str, Sequence[IncidentClock]] = {}
        if self.incidents_provider is not None:
            clocks = self.incidents_provider(self.services, None, start)
        for inp in inputs:
            cid = inp.contract.id
            inp.received = receipts.get(cid, {})
            inp.incidents = tuple(c for c in clocks.get(cid, ()) if c.contract == cid)
        active = [i for i in inputs if i.calendar is not None or i.incidents]
        with _gc_paused(fresh > _GC_PAUSE_ABOVE):
            return plan_window(active, start, end)

    # ------------------------------------------------------------------ caches
    def _targets(self, contract_id: str, audience: str) -> list[Target]:
        cached = self._cache[contract_id]
        if audience not in cached.targets:
            cached.targets[audience] = audience_targets(cached.contract, audience, self.policy)
        return cached.targets[audience]

    def _refresh_contracts(self) -> None:
        with self.db.session(read_only=True) as session:
            digests = dict(
                session.execute(select(ContractRecord.id, ContractRecord.content_hash)).all()
            )
            changed = [
                cid
                for cid, digest in digests.items()
                if cid not in self._cache or self._cache[cid].digest != digest
            ]
            for i in range(0, len(changed), _LOAD_CHUNK):
                rows = session.execute(
                    select(
                        ContractRecord.id, ContractRecord.content_hash, ContractRecord.definition
                    ).where(ContractRecord.id.in_(changed[i : i + _LOAD_CHUNK]))
                ).all()
                for cid, digest, definition in rows:
                    self._load(cid, digest, definition)
        for cid in set(self._cache) - set(digests):
            del self._cache[cid]

    def _load(self, cid: str, digest: str, definition: Mapping[str, Any]) -> None:
        try:
            contract = planner_contract(definition)
        except ValueError as error:
            log.warning("contract %s cannot be planned and is skipped: %s", cid, error)
            self._cache.pop(cid, None)
            return
        jitter = timedelta(days=zlib.crc32(cid.encode()) % max(self._horizon_days(), 1))
        self._cache[cid] = _Cached(digest, contract, self._calendar(contract), jitter)

    def _horizon_days(self) -> int:
        return 0 if self.horizon is None else self.horizon.days

    def _calendar(self, contract: Contract) -> ReturnCalendar | None:
        if not contract.calendar:
            return None
        key = _calendar_key(contract)
        calendar = self._calendars.get(key)
        if calendar is None:
            try:
                calendar = ReturnCalendar(contract)
            except CalendarError as error:
                log.warning("contract %s has an unusable calendar: %s", contract.id, error)
                return None
            self._calendars[key] = calendar
        return calendar

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
                calendar = cast(ReturnCalendar, _Horizon(calendar, first, last))
                cached.since, cached.until = _midnight(first), _midnight(last)
            cached.inputs = contract_inputs(cached.contract, calendar)
            built += 1
        return built
