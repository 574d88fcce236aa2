"""Which messages fall due in a window of time: the pure core of the scheduler.

``plan_window(inputs, start, end)`` lists every message whose moment lies in ``(start, end]``,
from the contract calendars, the returns received and the open incidents. The live tick, the
catch-up after downtime and ``kpibot schedule preview`` all call it; only the clock differs.

Each message has an idempotency key (contract, period, kind, audience, step), so writing the
same window twice stores it once. When a window holds several steps of one return's ladder (a
catch-up after downtime), only the latest survives: stale reminders collapse into one message.

>>> # plan_window([ContractInputs(contract, calendar, received={})], start, end)
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from kpibot.engine.calendar import LONDON, DueReturn, ReturnCalendar, add_working_days
from kpibot.engine.milestones import REMIND_BEFORE_DAYS
from kpibot.engine.model import Contract
from kpibot.engine.reminders import LADDER, IncidentClock, Message, at, order

MEETING_NOTICE_DAYS = 3


@dataclass
class ContractInputs:
    """What the planner needs about one contract. ``received`` maps period label → first receipt."""

    contract: Contract
    calendar: ReturnCalendar | None
    received: dict[str, datetime] = field(default_factory=dict)
    incidents: Sequence[IncidentClock] = ()
    missing_note: dict[str, str] = field(default_factory=dict)
    # milestone KPI code → when its "achieved" figure arrived (it stops the chasing)
    milestones_done: dict[str, datetime] = field(default_factory=dict)
    _returns: list[DueReturn] | None = None
    _dues: list[date] | None = None
    _schedule: tuple[list[datetime], list[_Entry]] | None = None

    def returns(self) -> list[DueReturn]:
        if self._returns is None:
            cal = self.calendar
            self._returns = (
                [] if cal is None else cal.returns_due_between(date(1900, 1, 1), date(2999, 12, 31))
            )
            self._dues = [r.due_date for r in self._returns]
        return self._returns

    def returns_near(self, start: date, end: date) -> list[DueReturn]:
        """Returns whose ladder could touch [start, end]: due up to 30 days after, or 60 days before."""
        rets = self.returns()
        assert self._dues is not None
        lo = bisect.bisect_left(self._dues, start - timedelta(days=60))
        hi = bisect.bisect_right(self._dues, end + timedelta(days=30))
        return rets[lo:hi]


def _fmt(day: date) -> str:
    return f"{day:%a %-d %b %Y}"


def _return_ladder(inp: ContractInputs, ret: DueReturn) -> list[Message]:
    """Every step of one return's ladder, ignoring receipt; receipt is applied by the caller."""
    cal = inp.calendar
    assert cal is not None
    c = inp.contract
    spec = cal.spec.reminders
    label = ret.period.label
    name = f"{ret.name} for {label}" if ret.kind != "annual" else ret.name
    # What is still missing is added when a message is planned (it changes as figures arrive).
    missing = ""
    out: list[Message] = []
    for days in spec.before_days:
        if days <= 0:
            continue
        out.append(
            Message(
                at(ret.due_date - timedelta(days=days)),
                c.id,
                "reminder",
                "provider",
                label,
                f"d-{days}",
                f"Reminder: the {name} for {c.name} is due in {days} day{'s' if days != 1 else ''} "
                f"({_fmt(ret.due_date)}).{missing}",
            )
        )
    out.append(
        Message(
            at(ret.due_date),
            c.id,
            "due",
            "provider",
            label,
            "due",
            f"The {name} for {c.name} is due today ({_fmt(ret.due_date)}).{missing}",
        )
    )
    n_overdue = spec.escalate_after_working_days
    step = spec.overdue_every_working_days
    for k in range(step, n_overdue, step):
        day = add_working_days(ret.due_date, k)
        out.append(
            Message(
                at(day),
                c.id,
                "overdue",
                "provider",
                label,
                f"overdue-{k}",
                f"Overdue: the {name} for {c.name} was due on {_fmt(ret.due_date)} "
                f"({k} working day{'s' if k != 1 else ''} ago). Please submit it now.{missing}",
            )
        )
    esc_day = add_working_days(ret.due_date, n_overdue)
    out.append(
        Message(
            at(esc_day),
            c.id,
            "escalation",
            "commissioner",
            label,
            f"escalation-{n_overdue}",
            f"Escalation: {c.provider.name} has not submitted the {name} for {c.name}, due "
            f"{_fmt(ret.due_date)} ({n_overdue} working days overdue).",
        )
    )
    return out


def _late(inp: ContractInputs, ret: DueReturn) -> bool:
    got = inp.received.get(ret.period.label)
    return got is None or got > ret.due_at


def _summary(inp: ContractInputs, ret: DueReturn) -> Message:
    cal = inp.calendar
    assert cal is not None
    c = inp.contract
    day = cal.summary_date(ret.period)
    return Message(
        at(day),
        c.id,
        "summary",
        "channel",
        ret.period.label,
        "summary",
        f"Quarterly RAG summary for {c.name}, {ret.period.label}.",
    )


def _meetings(inp: ContractInputs, start: date, end: date) -> list[Message]:
    cal = inp.calendar
    if cal is None or cal.spec.meetings is None:
        return []
    out = []
    c = inp.contract
    for m in cal.meetings_between(start, end + timedelta(days=MEETING_NOTICE_DAYS + 1)):
        notice = m.day - timedelta(days=MEETING_NOTICE_DAYS)
        out.append(
            Message(
                at(notice),
                c.id,
                "meeting",
                "attendees",
                m.period.label,
                f"meeting-{m.day.isoformat()}",
                f"The {m.label} for {c.name} is on {_fmt(m.day)}. The pre-meeting pack is the latest "
                "quarterly summary.",
            )
        )
    return out


def _incident_messages(inc: IncidentClock, contract: Contract) -> list[Message]:
    window = inc.deadline - inc.opened_at
    out = []
    key = f"incident-{inc.id}"
    if window > timedelta(0):
        for pct in (50, 90):
            when = inc.opened_at + window * pct / 100
            out.append(
                Message(
                    when.astimezone(LONDON),
                    contract.id,
                    "incident_reminder",
                    "provider",
                    key,
                    f"{pct}%",
                    f"Incident #{inc.id} ({inc.label}) on {contract.name}: the report and action plan "
                    f"are due by {inc.deadline.astimezone(LONDON):%a %-d %b %H:%M} ({100 - pct}% of the "
                    "time left). Reply `/kpi incident report "
                    f'{inc.id} "…"` when filed.',
                )
            )
    if window > timedelta(0):
        text = (
            f"Incident #{inc.id} ({inc.label}) on {contract.name}: the reporting deadline "
            f"({inc.deadline.astimezone(LONDON):%a %-d %b %H:%M}) has passed without a report from "
            f"{contract.provider.name}."
        )
    else:
        text = (
            f"Incident #{inc.id} ({inc.label}) on {contract.name}: {contract.provider.name} has notified "
            "a service interruption, which the contract requires immediately. The report and action plan "
            "are now due."
        )
    out.append(
        Message(
            inc.deadline.astimezone(LONDON),
            contract.id,
            "incident_escalation",
            "commissioner",
            key,
            "deadline",
            text,
        )
    )
    return out


@dataclass(frozen=True)
class _Entry:
    """A scheduled candidate: the message, and the return it belongs to (None for meetings)."""

    when: datetime
    message: Message
    ret: DueReturn | None
    prior: tuple[DueReturn, ...] = ()


def _schedule(inp: ContractInputs) -> tuple[list[datetime], list[_Entry]]:
    """Every candidate message for the contract, sorted by moment; built once and cached."""
    if inp._schedule is not None:
        return inp._schedule
    entries: list[_Entry] = []
    if inp.calendar is not None:
        periodic = [r for r in inp.returns() if r.kind != "annual"]
        for ret in inp.returns():
            entries.extend(_Entry(m.when, m, ret) for m in _return_ladder(inp, ret))
        for i, ret in enumerate(periodic):
            summ = _summary(inp, ret)
            entries.append(_Entry(summ.when, summ, ret))
            if i >= 2:
                c = inp.contract
                streak = (*periodic[i - 2 : i], ret)
                labels = ", ".join(r.period.label for r in streak)
                sf = Message(
                    at(add_working_days(ret.due_date, 1)),
                    c.id,
                    "service_failure",
                    "commissioner",
                    ret.period.label,
                    "service-failure",
                    f"Service failure: {c.provider.name} has missed or been late with three consecutive "
                    f"returns for {c.name} ({labels}). Contractual or improvement action applies.",
                )
                entries.append(_Entry(sf.when, sf, ret, streak))
        if inp.returns():
            first, last = inp.returns()[0].due_date, inp.returns()[-1].due_date
            entries.extend(
                _Entry(m.when, m, None) for m in _meetings(inp, first - timedelta(days=400), last)
            )
    entries.extend(_Entry(m.when, m, None) for m in _milestone_messages(inp.contract))
    entries.sort(key=lambda e: (e.when, order(e.message.kind)))
    inp._schedule = ([e.when for e in entries], entries)
    return inp._schedule


def _milestone_messages(contract: Contract) -> list[Message]:
    """A milestone is chased before its due date and escalated the working day after it."""
    out = []
    for k in contract.kpis:
        if k.kind != "milestone" or k.due is None:
            continue
        key = f"milestone-{k.code}"
        for days in REMIND_BEFORE_DAYS:
            out.append(
                Message(
                    at(k.due - timedelta(days=days)),
                    contract.id,
                    "milestone",
                    "provider",
                    key,
                    f"d-{days}",
                    f"Milestone {k.code} for {contract.name} ({k.name}) is due on {_fmt(k.due)}, "
                    f"in {days} day{'s' if days != 1 else ''}. Reply `/kpi submit {contract.id} "
                    f"{k.code} <period> achieved` when it is done.",
                )
            )
        out.append(
            Message(
                at(add_working_days(k.due, 1)),
                contract.id,
                "milestone_overdue",
                "commissioner",
                key,
                "overdue",
                f"Milestone {k.code} for {contract.name} ({k.name}) was due on {_fmt(k.due)} and "
                f"{contract.provider.name} has not reported it achieved.",
            )
        )
    return out


def plan_contract(
    inp: ContractInputs, start: datetime, end: datetime, *, collapse: bool = True
) -> list[Message]:
    """Messages for one contract with moments in ``(start, end]``, after receipts and collapse."""
    times, entries = _schedule(inp)
    lo, hi = bisect.bisect_right(times, start), bisect.bisect_right(times, end)
    out: list[Message] = []
    ladders: dict[str, list[Message]] = {}
    for e in entries[lo:hi]:
        m = e.message
        got = inp.received.get(e.ret.period.label) if e.ret is not None else None
        if m.kind == "service_failure":
            if not all(_late(inp, r) for r in e.prior) or (got is not None and m.when >= got):
                continue
            out.append(m)
        elif m.kind in ("milestone", "milestone_overdue"):
            done = inp.milestones_done.get(m.period.removeprefix("milestone-"))
            if done is None or m.when < done:
                out.append(m)
        elif m.kind in (*LADDER, "escalation"):
            # A return submitted stops its ladder at once.
            if got is None or m.when < got:
                ladders.setdefault(m.period + "|" + (e.ret.kind if e.ret else ""), []).append(m)
        else:
            out.append(m)
    for ladder in ladders.values():
        out.extend(_with_missing(inp, m) for m in (_collapse(ladder, end) if collapse else ladder))
    for inc in inp.incidents:
        for m in _incident_messages(inc, inp.contract):
            if start < m.when <= end and (inc.reported_at is None or m.when < inc.reported_at):
                out.append(m)
    return sorted(out, key=lambda m: (m.when, order(m.kind)))


def _with_missing(inp: ContractInputs, m: Message) -> Message:
    """A provider reminder names what the return still lacks ("figures in, narrative missing")."""
    note = inp.missing_note.get(m.period) if m.audience == "provider" else None
    return replace(m, text=f"{m.text} Still needed: {note}.") if note else m


def _collapse(ladder: list[Message], now: datetime) -> list[Message]:
    """Several steps of one provider ladder in one window: keep the latest, say how overdue it is."""
    provider = [m for m in ladder if m.kind in LADDER]
    if len(provider) <= 1:
        return ladder
    latest = provider[-1]
    if latest.kind == "overdue":
        latest = replace(
            latest, text=latest.text + " (Earlier reminders were not sent while kpibot was down.)"
        )
    return [m for m in ladder if m.kind not in LADDER] + [latest]


def plan_window(
    inputs: Iterable[ContractInputs], start: datetime, end: datetime, *, collapse: bool = True
) -> list[Message]:
    """Every contract's messages in ``(start, end]``, in time order."""
    out: list[Message] = []
    for inp in inputs:
        out.extend(plan_contract(inp, start, end, collapse=collapse))
    return sorted(out, key=lambda m: (m.when, m.contract, order(m.kind)))
