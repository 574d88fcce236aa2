"""Sanctions for one contract in the store: the event log, waivers, the ledger and its alerts.

The rules are :mod:`kpibot.engine.sanctions` (pure); this module reads the store and the clock,
hands the engine its inputs, and writes events and waivers with their audit entries in one
transaction. Bad input leaves the store unchanged: a log with any problem stores nothing.

* ``EventLog(services).record(contract, events, actor, source)``: store checked events, all or
  nothing (an event already stored is left alone, or gains its rectification time);
* ``waive(services, contract, item, reason, actor, now)``: a commissioner's waiver, audited;
* ``ledger(services, contract, months)``: the month's (or quarter's) ledger as of now;
* ``ledger_rows``: the CSV columns ``contract,month,kpi,rule,events,points,amount_gbp,clause,note``;
* ``sanction_messages``: alerts for the outbox (``kpibot.app.wiring`` registers it);
* ``status_lines``: the latest month's verdict for ``/kpi status`` and the quarterly summary.

>>> # ledger(services, contract, month_range(contract, "2019-11")).verdict()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from kpibot.core.services import Services
from kpibot.engine.calendar import LONDON
from kpibot.engine.freetext import REASON, text_problem
from kpibot.engine.model import Contract, sanction_rule_ids
from kpibot.engine.periods import Period, PeriodError, make_period
from kpibot.engine.reminders import Message
from kpibot.engine.returns import approved_only
from kpibot.engine.sanctions import (
    Event,
    Ledger,
    LedgerLine,
    MonthFigure,
    MonthLedger,
    SanctionInputs,
    Waiver,
    deadlines,
    evaluate_sanctions,
    missed_rectifications,
    month_of,
    months_between,
)
from kpibot.files.events import NewEvent
from kpibot.files.tables import CellError
from kpibot.store.audit import add_event
from kpibot.store.schema import (
    AuditEventRecord,
    SanctionEventRecord,
    SanctionWaiverRecord,
    as_utc,
)

# ---- user-facing texts, kept together
NO_SANCTIONS = (
    "{contract} sets no sums per event, penalty points, service credits or incentives; add them "
    "to the `payments:` section of its contract file (README, “Money”)."
)
NO_EVENT_KINDS = (
    "{contract} counts no events: its contract file names no event kinds under "
    "`payments.per_event` or `payments.penalty_points.failures`."
)
EVENTS_REJECTED = (
    "The event log was rejected: {n} problem(s) above. Nothing was stored; fix them and send the "
    "whole file again."
)
EVENTS_STORED = "Stored {added} event(s) for {contract} from {file}{rectified}{unchanged}."
EVENT_CONFLICT = (
    "the {kind} event {reference} on {when} is already recorded{differs}; events are never "
    "changed, so give this one its own reference if it is a different event"
)
EVENT_BUSY = "Someone recorded the same events at the same moment; nothing was stored. Try again."
BAD_MONTH = (
    "'{text}' is not a month or quarter I can read; write a month as 2019-11 or a quarter as "
    "'2019/20 Q3'."
)
OUTSIDE = "{label} is outside the contract, which runs from {start:%-d %b %Y} to {end:%-d %b %Y}."
WAIVE_NO_REASON = (
    'Say why it is waived, in quotes, e.g. `waive {contract} {item} "major incident declared"`.'
)
WAIVE_UNKNOWN = (
    "'{item}' is neither an event reference of {contract} nor a rule and month such as "
    "{example}; `payments {contract} <month>` lists the items."
)
WAIVE_TWICE = "{item} is already waived on {contract} (by {by} on {when:%-d %b %Y}: {reason})."
WAIVED = "Waived {item} on {contract}: {reason}. It is recorded with your name; {verdict}"
NOT_RECTIFIABLE = (
    "{contract} has no event with reference {reference}{kind}; `payments {contract}` lists them."
)
RECTIFIED = "Recorded {reference} ({kind}, {when}) as put right at {at}."
ALREADY_RECTIFIED = "{reference} ({kind}, {when}) was already recorded as put right at {at}."
MONTH_ONLY = "--month takes one month such as 2019-11, not '{text}'; use --quarter for a quarter."
QUARTER_ONLY = "--quarter takes a quarter such as '2019/20 Q3', not '{text}'."
BY_MONTH = (
    "{contract}'s sanctions are counted by month: use --month 2019-11 or --quarter '2019/20 Q3' "
    "instead of --year."
)
CSV_FOR_LEDGER = (
    "--format csv is for the sanctions ledger (--month or --quarter); {contract}'s payments are "
    "by contract year, shown as a table."
)
CSV_COLUMNS = (
    "contract",
    "month",
    "kpi",
    "rule",
    "events",
    "points",
    "amount_gbp",
    "clause",
    "note",
)


class SanctionError(Exception):
    """A refused request: ``str(error)`` is one sentence a user can act on."""


def when_text(moment: datetime) -> str:
    return f"{moment.astimezone(LONDON):%a %-d %b %Y %H:%M}"


# ------------------------------------------------------------------ the event log


@dataclass
class EventOutcome:
    """What recording a log did: problems (then nothing was stored), or what was stored."""

    errors: list[CellError] = field(default_factory=list)
    added: int = 0
    rectified: int = 0
    unchanged: int = 0
    summary: str = ""


def _event(record: SanctionEventRecord) -> Event:
    return Event(
        record.kind,
        record.occurred_at,
        record.reference,
        record.rectified_at,
        record.value,
        record.affected,
        record.recorded_at,
        record.note,
        record.id,
    )


class EventLog:
    """A contract's event log in the store: append-only, audited, all or nothing."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def record(
        self,
        contract: Contract,
        events: Sequence[NewEvent],
        actor: str,
        source: str,
        *,
        file: str = "your message",
    ) -> EventOutcome:
        """Store ``events`` (already checked by ``kpibot.files.events``) in one transaction."""
        now = as_utc(self._services.now())
        outcome = EventOutcome()
        keys = [(e.kind, e.reference, as_utc(e.occurred_at)) for e in events]
        try:
            with self._services.db.session() as session:
                # One range read (not an IN list, which a large log would overflow).
                times = [k[2] for k in keys] or [now]
                wanted = set(keys)
                existing = {
                    key: r
                    for r in session.scalars(
                        select(SanctionEventRecord).where(
                            SanctionEventRecord.contract_id == contract.id,
                            SanctionEventRecord.occurred_at >= min(times),
                            SanctionEventRecord.occurred_at <= max(times),
                        )
                    )
                    if (key := (r.kind, r.reference, as_utc(r.occurred_at))) in wanted
                }
                for e, key in zip(events, keys, strict=True):
                    old = existing.get(key)
                    if old is None:
                        session.add(
                            SanctionEventRecord(
                                contract_id=contract.id,
                                kind=e.kind,
                                reference=e.reference,
                                occurred_at=e.occurred_at,
                                value=e.value,
                                affected=e.affected,
                                note=e.note,
                                source=source,
                                recorded_by=actor,
                                recorded_at=now,
                                rectified_at=e.rectified_at,
                                rectified_by=actor if e.rectified_at else None,
                                rectification_recorded_at=now if e.rectified_at else None,
                                rectify_until=_rectify_until(contract, e),
                            )
                        )
                        outcome.added += 1
                        continue
                    problem = _conflict(old, e)
                    if problem:
                        outcome.errors.append(CellError(file, e.line, "reference", problem))
                    elif e.rectified_at is not None and old.rectified_at is None:
                        old.rectified_at = e.rectified_at
                        old.rectified_by = actor
                        old.rectification_recorded_at = now
                        outcome.rectified += 1
                    else:
                        outcome.unchanged += 1
                if outcome.errors:
                    session.rollback()
                else:
                    add_event(
                        session,
                        at=now,
                        actor=actor,
                        action="events",
                        contract_id=contract.id,
                        subject=file[:300],
                        outcome="ok",
                        detail={
                            "source": source,
                            "added": outcome.added,
                            "rectified": outcome.rectified,
                            "unchanged": outcome.unchanged,
                            "references": [e.reference for e in events][:50],
                        },
                    )
        except IntegrityError:
            outcome.errors = [CellError(file, None, None, EVENT_BUSY)]
        if outcome.errors:
            self._services.audit.record(
                actor,
                "events",
                contract.id,
                file[:300],
                "refused",
                {"source": source, "problems": [str(e) for e in outcome.errors][:20]},
            )
            outcome.added = outcome.rectified = outcome.unchanged = 0
            return outcome
        outcome.summary = EVENTS_STORED.format(
            added=outcome.added,
            contract=contract.id,
            file=file,
            rectified=f", {outcome.rectified} newly recorded as put right"
            if outcome.rectified
            else "",
            unchanged=f", {outcome.unchanged} already stored" if outcome.unchanged else "",
        )
        return outcome

    def rectify(
        self, contract: Contract, reference: str, at: datetime, actor: str, kind: str | None = None
    ) -> str:
        """Record the latest unrectified event with ``reference`` as put right at ``at``."""
        now = as_utc(self._services.now())
        query = select(SanctionEventRecord).where(
            SanctionEventRecord.contract_id == contract.id,
            SanctionEventRecord.reference == reference,
        )
        if kind is not None:
            query = query.where(SanctionEventRecord.kind == kind)
        with self._services.db.session() as session:
            records = list(session.scalars(query.order_by(SanctionEventRecord.occurred_at)))
            if not records:
                raise SanctionError(
                    NOT_RECTIFIABLE.format(
                        contract=contract.id,
                        reference=reference,
                        kind=f" ({kind})" if kind else "",
                    )
                )
            open_ = [r for r in records if r.rectified_at is None]
            if not open_:
                r = records[-1]
                assert r.rectified_at is not None
                return ALREADY_RECTIFIED.format(
                    reference=reference,
                    kind=r.kind,
                    when=when_text(r.occurred_at),
                    at=when_text(r.rectified_at),
                )
            r = open_[-1]
            if at < r.occurred_at:
                raise SanctionError(
                    f"{reference} happened at {when_text(r.occurred_at)}, after {when_text(at)}."
                )
            moved = session.execute(
                update(SanctionEventRecord)
                .where(SanctionEventRecord.id == r.id, SanctionEventRecord.rectified_at.is_(None))
                .values(rectified_at=at, rectified_by=actor, rectification_recorded_at=now)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                raise SanctionError(EVENT_BUSY)
            add_event(
                session,
                at=now,
                actor=actor,
                action="event_rectified",
                contract_id=contract.id,
                subject=reference[:300],
                outcome="ok",
                detail={"kind": r.kind, "rectified_at": as_utc(at).isoformat()},
            )
            return RECTIFIED.format(
                reference=reference, kind=r.kind, when=when_text(r.occurred_at), at=when_text(at)
            )

    def events(self, contract_id: str) -> list[Event]:
        """Every event of a contract, read as plain rows (no ORM objects: logs can be long)."""
        t = SanctionEventRecord
        query = select(
            t.kind,
            t.occurred_at,
            t.reference,
            t.rectified_at,
            t.value,
            t.affected,
            t.recorded_at,
            t.note,
            t.id,
        ).where(t.contract_id == contract_id)
        with self._services.db.session(read_only=True) as session:
            return [Event(*row) for row in session.execute(query.order_by(t.id))]

    def references(self, contract_id: str) -> set[str]:
        query = select(SanctionEventRecord.reference).where(
            SanctionEventRecord.contract_id == contract_id
        )
        with self._services.db.session(read_only=True) as session:
            return set(session.scalars(query))


def _rectify_until(contract: Contract, new: NewEvent) -> datetime | None:
    """The last moment an unrectified ``new`` could be charged again under the contract's terms."""
    pp = contract.payments.penalty_points
    event = Event(new.kind, new.occurred_at, new.reference)
    due = [
        d
        for f in (pp.failures if pp is not None else [])
        if f.event == new.kind
        for d in deadlines(f, event)
    ]
    return max(due) if due else None


def _conflict(old: SanctionEventRecord, new: NewEvent) -> str:
    """Why ``new`` disagrees with the stored ``old`` (same kind, reference and time), or ''."""
    differs = []
    if (old.value or None) != (new.value or None):
        differs.append(f"with value {old.value if old.value is not None else 'none'}")
    if old.affected != new.affected:
        differs.append(f"affecting {old.affected}")
    if (
        old.rectified_at is not None
        and new.rectified_at is not None
        and as_utc(old.rectified_at) != as_utc(new.rectified_at)
    ):
        differs.append(f"as put right at {when_text(old.rectified_at)}")
    if not differs:
        return ""
    return EVENT_CONFLICT.format(
        kind=new.kind,
        reference=new.reference,
        when=when_text(new.occurred_at),
        differs=" " + " and ".join(differs),
    )


# ------------------------------------------------------------------ waivers


def waivers(services: Services, contract_id: str) -> list[Waiver]:
    query = select(SanctionWaiverRecord).where(SanctionWaiverRecord.contract_id == contract_id)
    with services.db.session(read_only=True) as session:
        return [
            Waiver(r.item, r.reason, r.waived_by, r.waived_at)
            for r in session.scalars(query.order_by(SanctionWaiverRecord.id))
        ]


def waive(
    services: Services, contract: Contract, item: str, reason: str, actor: str, who: str
) -> Waiver:
    """Record a commissioner's waiver of ``item`` (audited); refusals are audited too.

    ``actor`` is the user id, ``who`` the name the ledger shows.
    """
    now = as_utc(services.now())
    text = " ".join(reason.split())
    problem = text_problem(text, REASON) or _waiver_problem(services, contract, item, text)
    if problem:
        detail = {"reason": text[: REASON.limit], "problem": problem}
        services.audit.record(actor, "waive", contract.id, item[:300], "refused", detail)
        raise SanctionError(problem)
    try:
        with services.db.session() as session:
            session.add(
                SanctionWaiverRecord(
                    contract_id=contract.id, item=item, reason=text, waived_by=who, waived_at=now
                )
            )
            add_event(
                session,
                at=now,
                actor=actor,
                action="waive",
                contract_id=contract.id,
                subject=item[:300],
                outcome="ok",
                detail={"reason": text, "by": who},
            )
    except IntegrityError:
        raise SanctionError(_waiver_problem(services, contract, item, text) or EVENT_BUSY) from None
    return Waiver(item, text, who, now)


def item_month(services: Services, contract: Contract, item: str) -> Period | None:
    """The month a ledger item falls in: ``rule:month``'s, or its event's (the latest one)."""
    _rule, sep, label = item.partition(":")
    if sep:
        try:
            return month_of(contract.parse_period(label).start, contract)
        except PeriodError:
            return None
    days = [e.day for e in EventLog(services).events(contract.id) if e.reference == item]
    return month_of(max(days), contract) if days else None


def _waiver_problem(services: Services, contract: Contract, item: str, reason: str) -> str:
    if not reason:
        return WAIVE_NO_REASON.format(contract=contract.id, item=item)
    rules = sanction_rule_ids(contract.payments)
    rule, sep, month = item.partition(":")
    example = f"{rules[0]}:2019-11" if rules else "points:2019-11"
    unknown = WAIVE_UNKNOWN.format(item=item, contract=contract.id, example=example)
    if sep:
        if rule not in rules:
            return unknown
        try:
            contract.parse_period(month)
        except PeriodError:
            return unknown
    elif item not in EventLog(services).references(contract.id):
        return unknown
    for w in [*waivers(services, contract.id)]:
        if w.item == item:
            return WAIVE_TWICE.format(
                item=item,
                contract=contract.id,
                by=w.by,
                when=w.at.astimezone(LONDON),
                reason=w.reason,
            )
    for recorded in contract.payments.waivers:
        if recorded.item == item:
            return WAIVE_TWICE.format(
                item=item,
                contract=contract.id,
                by=recorded.by,
                when=recorded.on,
                reason=recorded.reason,
            )
    return ""


# ------------------------------------------------------------------ the ledger


def month_range(contract: Contract, text: str) -> list[Period] | str:
    """The months of '2019-11', 'Nov 2019' or a quarter '2019/20 Q3' (a str says what is wrong)."""
    try:
        period = contract.parse_period(text)
    except PeriodError:
        return BAD_MONTH.format(text=text)
    if period.kind == "year":
        return BAD_MONTH.format(text=text)
    if period.end < contract.start or period.start > contract.end:
        return OUTSIDE.format(label=period.label, start=contract.start, end=contract.end)
    first = month_of(period.start, contract)
    return months_between(first, month_of(period.end, contract))


def default_month(contract: Contract, today: date) -> Period:
    """The last whole month before ``today``, kept inside the contract."""
    month = make_period("month", today.replace(day=1), contract.reporting.year_start_month)
    month = month.previous()
    first, last = month_of(contract.start, contract), month_of(contract.end, contract)
    return first if month.start < first.start else last if month.start > last.start else month


def sanction_inputs(services: Services, contract: Contract) -> SanctionInputs:
    """Events, approved monthly figures (with whether each met its target) and waivers."""
    events = tuple(EventLog(services).events(contract.id))
    frame = approved_only(services.figures.current_frame([contract.id]))
    met: dict[tuple[str, str], bool] = {}
    card = services.scorecard(contract, approved_only=True).frame
    if not card.empty:
        for kpi, period, position in card[["kpi", "period", "position"]].itertuples(index=False):
            met[(str(kpi).lower(), str(period))] = position == "met"
    figures: dict[tuple[str, str], MonthFigure] = {}
    for row in frame.itertuples(index=False):
        key = (str(row.kpi).lower(), str(row.period))
        figures[key] = MonthFigure(
            str(row.kpi),
            str(row.period),
            _float(row.value),
            _float(row.numerator),
            _float(row.denominator),
            met.get(key),
            row.submitted_at.to_pydatetime() if row.submitted_at is not None else None,
        )
    return SanctionInputs(events, figures, tuple(waivers(services, contract.id)))


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if out != out else out


def ledger(services: Services, contract: Contract, months: Sequence[Period]) -> Ledger:
    """The ledger for ``months`` as of now, evaluated from the store."""
    return evaluate_sanctions(
        contract,
        months,
        sanction_inputs(services, contract),
        as_utc(services.now()),
        recorded_by_then=False,
    )


def amount_gbp(line: LedgerLine) -> str:
    """The CSV amount: signed pounds to the penny, or '' when only a share of ACV is known."""
    if not line.amount.gbp and line.amount.share:
        return ""
    return f"{line.amount.gbp.quantize(Decimal('0.01'))}"


def line_note(line: LedgerLine) -> str:
    status = "" if line.status == "charged" else f"{line.status.replace('_', ' ')}: "
    share = f" ({line.amount.text()})" if line.amount.share else ""
    return f"{status}{line.note}{share}"


def ledger_rows(result: Ledger) -> list[list[str]]:
    """One row per ledger line, in the CSV columns' order (not yet formula-safe)."""
    return [
        [
            result.contract_id,
            line.month,
            line.kpi,
            line.rule,
            "; ".join(line.events),
            str(line.points),
            amount_gbp(line),
            line.clause,
            line_note(line),
        ]
        for line in result.lines
    ]


# ------------------------------------------------------------------ alerts


def _band(contract: Contract, points: int) -> int:
    pp = contract.payments.penalty_points
    if pp is None:
        return 0
    return sum(1 for b in pp.bands if points > b.over)


def _level(percent: float) -> int:
    return next((lvl for lvl in (100, 90, 75) if percent >= lvl), 0)


def sanction_candidates(services: Services, start: datetime, end: datetime) -> set[str]:
    """Contracts with sanctions whose ledger may have changed in ``(start, end]``: anything
    recorded about them then (each change writes its audit entry: events, figures, waivers), or
    a rectification deadline of theirs falling then. Two indexed reads when nothing happened."""
    s, e = as_utc(start), as_utc(end)
    with services.db.session(read_only=True) as session:
        changed = set(
            session.scalars(
                select(AuditEventRecord.contract_id)
                .where(AuditEventRecord.at > s, AuditEventRecord.at <= e)
                .distinct()
            )
        )
        open_ = session.scalars(
            select(SanctionEventRecord).where(
                SanctionEventRecord.rectify_until > s,
                SanctionEventRecord.occurred_at <= e,
                or_(
                    SanctionEventRecord.rectified_at.is_(None),
                    SanctionEventRecord.rectified_at > s,
                ),
            )
        ).all()
    out: set[str] = set()
    for cid in changed:
        contract = services.contract(cid) if cid is not None else None
        if cid is not None and contract is not None and contract.payments.has_sanctions:
            out.add(cid)
    for r in open_:
        if r.contract_id in out:
            continue
        contract = services.contract(r.contract_id)
        if contract is not None and _deadline_in(contract, _event(r), s, e):
            out.add(r.contract_id)
    return out


def _deadline_in(contract: Contract, event: Event, start: datetime, end: datetime) -> bool:
    pp = contract.payments.penalty_points
    if pp is None:
        return False
    return any(
        start < due <= end
        for f in pp.failures
        if f.event == event.kind
        for due in deadlines(f, event)
    )


def sanction_messages(services: Services, start: datetime, end: datetime) -> list[Message]:
    """Alerts with moments in ``(start, end]``: points crossing a deduction band, a rolling
    total nearing a termination threshold (75%, 90%, then reached), and a failure not put right
    by its rectification deadline. Keys: ``<contract>|sanctions-<month>|<kind>|<audience>|<step>``
    and ``<contract>|sanction-event-<id>|rectification_missed|<audience>|deadline``.

    >>> # ReminderTick(...) writes sanction_messages(services, watermark, now) to the outbox
    """
    out: list[Message] = []
    when = end.astimezone(LONDON)
    for cid in sorted(sanction_candidates(services, start, end)):
        contract = services.contract(cid)
        if contract is None:
            continue
        inputs = sanction_inputs(services, contract)
        if contract.start <= when.date() <= contract.end + timedelta(days=31):
            month = month_of(min(when.date(), contract.end), contract)
            before = evaluate_sanctions(contract, [month], inputs, as_utc(start)).months
            after = evaluate_sanctions(contract, [month], inputs, as_utc(end)).months
            if before and after:
                out += _threshold_messages(contract, before[0], after[0], when)
        known = inputs.known_at(as_utc(end)).events
        for event, failure, due in missed_rectifications(contract, known, start, end):
            clause = failure.clause or (contract.payments.penalty_points or failure).clause or ""
            text = (
                f"{contract.name}: {failure.name or event.kind} {event.reference} "
                f"({when_text(event.occurred_at)}) was not put right within "
                f"{failure.rectification} (by {when_text(due)}), so it scores "
                f"{failure.points} point(s) again ({clause}). Once it is, record it: "
                f"`/kpi event {contract.id} rectified {event.reference}`."
            )
            period = f"sanction-event-{event.id}"
            for audience in ("provider", "commissioner"):
                out.append(
                    Message(
                        due.astimezone(LONDON),
                        cid,
                        "rectification_missed",
                        audience,
                        period,
                        "deadline",
                        text,
                    )
                )
    return sorted(out, key=lambda m: (m.when, m.contract, m.period, m.step))


def _threshold_messages(
    contract: Contract, before: MonthLedger, after: MonthLedger, when: datetime
) -> list[Message]:
    out: list[Message] = []
    month = after.label
    period = f"sanctions-{month}"
    old, new = _band(contract, before.points), _band(contract, after.points)
    pp = contract.payments.penalty_points
    if pp is not None and new > old:
        band = pp.bands[new - 1]
        name = band.label or f"the band over {band.over:,} points"
        text = (
            f"{contract.name}: {after.points:,} penalty points in {month} have reached {name} "
            f"({pp.clause}). {after.verdict()}"
        )
        for audience in ("provider", "commissioner"):
            out.append(
                Message(when, contract.id, "points_band", audience, period, f"band-{new}", text)
            )
    for b, a in zip(before.rolling, after.rolling, strict=True):
        lo, hi = _level(b.percent), _level(a.percent)
        if hi > lo:
            lead = (
                "termination threshold reached" if hi >= 100 else "nearing a termination threshold"
            )
            out.append(
                Message(
                    when,
                    contract.id,
                    "termination_warning",
                    "commissioner",
                    period,
                    f"{a.months}m-{hi}",
                    f"{contract.name}: {lead}: {a.text()} as of {month}.",
                )
            )
    return out


# ------------------------------------------------------------------ status


def status_lines(services: Services, contract: Contract, period: Period) -> list[str]:
    """The last month of ``period``: its sanctions verdict, for status and the quarterly summary."""
    if not contract.payments.has_sanctions:
        return []
    month = month_of(min(period.end, contract.end), contract)
    result = ledger(services, contract, [month])
    return [f"⚖️ {result.verdict()}"] if result.months else []
