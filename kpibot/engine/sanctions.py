"""Sanctions in a month: sums per event, penalty points, service credits, graded levels,
incentives that need several conditions, suspensions, waivers and earn-back.

The terms are the ``payments:`` sections ``per_event``, ``penalty_points``, ``service_credits``,
``incentives``, ``suspensions``, ``waivers`` and ``earn_back`` (``kpibot.engine.model``). The
inputs are the contract's event log, its monthly figures (a figure may be a count of events) and
the commissioners' waivers; ``as_of`` is the moment the ledger is drawn up (nothing later is
known: events recorded after it, rectifications after it, deadlines not yet passed).

Every line says what it charges or pays, the events or figures behind it, the clause and the rate
in force on the event's date, and any suspension, waiver, cap or floor applied. Amounts are
pounds where the contract gives pounds, a monthly charge or an ACV; shares of ACV otherwise.
Signs are the effect on the provider's payment: a deduction is negative, an incentive positive.

>>> from kpibot.engine.model import PaymentTerms
>>> explain_sanctions(PaymentTerms.model_validate({"per_event": [{"id": "over-52-weeks",
...     "clause": "Schedule 4B", "kpi": "RTT52", "amount_gbp": 5000}]}))[0]
'Sum per event (over-52-weeks, Schedule 4B): £5,000 for each event counted by the monthly figure of KPI RTT52.'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import partial
from typing import Literal

from dateutil.relativedelta import relativedelta

from kpibot.engine.calendar import LONDON, add_working_days
from kpibot.engine.model import (
    Condition,
    Contract,
    EarnBack,
    EventTier,
    FailureType,
    GradedLevels,
    PaymentTerms,
    PenaltyPoints,
    PerEventSum,
    Suspension,
    read_rectification,
)
from kpibot.engine.periods import Period, make_period

LineKind = Literal[
    "sum", "points", "points_deduction", "service_credit", "cap", "incentive", "earn_back"
]
LineStatus = Literal["charged", "waived", "suspended", "earned", "not_earned", "info"]
_HUNDRED = Decimal(100)
_TWELVE = Decimal(12)
_CENT = Decimal("0.01")


# ------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class Event:
    """One event in a contract's log: a failure, a breach, a patient over a waiting limit.

    ``value`` is what the event measured (minutes waited), ``affected`` how many people it
    touched (households on a communal round), ``recorded_at`` when kpibot learnt of it.
    """

    kind: str
    occurred_at: datetime
    reference: str
    rectified_at: datetime | None = None
    value: float | None = None
    affected: int = 1
    recorded_at: datetime | None = None
    note: str | None = None
    id: int | None = None

    @property
    def day(self) -> date:
        return self.occurred_at.astimezone(LONDON).date()


@dataclass(frozen=True)
class MonthFigure:
    """A KPI's figure for a month: ``numerator`` counts events when given; ``met`` is whether it
    met its target (for ``target_met`` conditions)."""

    kpi: str
    month: str
    value: float | None
    numerator: float | None = None
    denominator: float | None = None
    met: bool | None = None
    recorded_at: datetime | None = None

    @property
    def count(self) -> float | None:
        return self.numerator if self.numerator is not None else self.value


@dataclass(frozen=True)
class Waiver:
    """A commissioner's waiver of an item: an event reference, or ``<rule>:<month>``."""

    item: str
    reason: str
    by: str
    at: datetime
    source: str = "chat"


@dataclass(frozen=True)
class SanctionInputs:
    """What the ledger is drawn from: events, monthly figures by (KPI code, month), waivers."""

    events: tuple[Event, ...] = ()
    figures: Mapping[tuple[str, str], MonthFigure] = field(default_factory=dict)
    waivers: tuple[Waiver, ...] = ()

    def known_at(self, as_of: datetime) -> SanctionInputs:
        """The inputs as kpibot knew them at ``as_of``."""

        def seen(moment: datetime | None) -> bool:
            return moment is None or moment <= as_of

        events = tuple(
            e if seen(e.rectified_at) else replace(e, rectified_at=None)
            for e in self.events
            if seen(e.recorded_at)
        )
        figures = {k: f for k, f in self.figures.items() if seen(f.recorded_at)}
        return SanctionInputs(events, figures, tuple(w for w in self.waivers if w.at <= as_of))


@dataclass(frozen=True)
class EventKind:
    """An event kind a contract's sanctions count, and what an event of it must carry."""

    kind: str
    name: str
    rules: tuple[str, ...]
    needs_value: bool = False
    value_hint: str = ""
    rectification: str | None = None


def event_kinds(terms: PaymentTerms) -> dict[str, EventKind]:
    """Every event kind the contract's per-event sums and penalty points count.

    >>> event_kinds(PaymentTerms()) == {}
    True
    """
    found: dict[str, EventKind] = {}

    def add(
        kind: str, name: str, rule: str, tiers: Sequence[EventTier] = (), rect: str | None = None
    ) -> None:
        old = found.get(kind)
        hint = ", ".join(f"over {_int(t.over)}: {pounds(t.amount_gbp)}" for t in tiers)
        found[kind] = EventKind(
            kind,
            old.name if old else name,
            (*(old.rules if old else ()), rule),
            bool(tiers) or (old.needs_value if old else False),
            hint or (old.value_hint if old else ""),
            rect or (old.rectification if old else None),
        )

    for r in terms.per_event:
        if r.event is not None:
            add(r.event, r.name or r.event, r.id, r.tiers)
    if terms.penalty_points is not None:
        for f in terms.penalty_points.failures:
            add(f.event, f.name or f.event, f.rule_id, rect=f.rectification)
    return found


# ------------------------------------------------------------------ amounts


@dataclass(frozen=True)
class Amount:
    """Pounds, or a share of ACV when the contract gives neither a monthly charge nor an ACV."""

    gbp: Decimal = Decimal(0)
    share: Decimal = Decimal(0)

    def __add__(self, other: Amount) -> Amount:
        return Amount(self.gbp + other.gbp, self.share + other.share)

    def __neg__(self) -> Amount:
        return Amount(-self.gbp, -self.share)

    def scaled(self, factor: Decimal) -> Amount:
        return Amount(self.gbp * factor, self.share * factor)

    def __bool__(self) -> bool:
        return bool(self.gbp or self.share)

    def text(self) -> str:
        """'£15,800', '0.17% of ACV', '£200 + 0.17% of ACV'; a sign only when negative."""
        parts = []
        if self.gbp or not self.share:
            parts.append(pounds(self.gbp))
        if self.share:
            parts.append(f"{_num(self.share * 100, 4)}% of ACV")
        return " + ".join(parts)

    def magnitude(self) -> Amount:
        return Amount(abs(self.gbp), abs(self.share))


def pounds(value: Decimal) -> str:
    """'£1,250', '£12.50', '-£200'."""
    q = value.quantize(_CENT)
    text = f"{abs(q):,.2f}".removesuffix(".00")
    return f"{'-' if q < 0 else ''}£{text}"


def _num(value: Decimal | float, places: int = 2) -> str:
    text = f"{float(value):,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _int(value: float | Decimal) -> str:
    return f"{value:,.0f}" if float(value) == int(value) else _num(value)


def monthly_charge(contract: Contract) -> Decimal | None:
    """The monthly charge percentages are of: ``monthly_charge_gbp``, else ACV / 12."""
    terms = contract.payments
    if terms.monthly_charge_gbp is not None:
        return terms.monthly_charge_gbp
    acv = contract.annual_contract_value
    return None if acv is None else acv / _TWELVE


def percent_of_monthly(contract: Contract, percent: Decimal) -> Amount:
    charge = monthly_charge(contract)
    if charge is None:
        return Amount(share=percent / _HUNDRED / _TWELVE)
    return Amount(gbp=(charge * percent / _HUNDRED).quantize(_CENT))


# ------------------------------------------------------------------ the ledger


@dataclass(frozen=True)
class LedgerLine:
    """One deduction, credit, incentive or points charge in a month, with its reasons.

    ``item`` is what a commissioner waives (``/kpi waive <contract> <item> "why"``); ``events``
    the references (or the figure) behind it; ``note`` the rate in force, arithmetic, and any
    suspension, waiver, cap or floor.
    """

    month: str
    kpi: str
    rule: str
    kind: LineKind
    status: LineStatus
    clause: str
    note: str
    events: tuple[str, ...] = ()
    points: int = 0
    amount: Amount = Amount()
    item: str = ""

    @property
    def counts(self) -> bool:
        return self.status in ("charged", "earned")


@dataclass(frozen=True)
class Rolling:
    """Points over a rolling window against a termination threshold."""

    months: int
    points: int
    threshold: int
    clause: str | None

    @property
    def percent(self) -> float:
        return 100.0 * self.points / self.threshold

    def sentence(self) -> str:
        """``text()`` as a sentence of its own: 'Rolling 6-month points …'."""
        text = self.text()
        return text[0].upper() + text[1:] + "."

    def text(self) -> str:
        where = f" ({self.clause})" if self.clause else ""
        passed = "; the termination right is reached" if self.points >= self.threshold else ""
        return (
            f"rolling {self.months}-month points {self.points:,} of the {self.threshold:,} that give a "
            f"termination right{where} ({self.percent:.0f}%){passed}"
        )


@dataclass(frozen=True)
class MonthLedger:
    """Everything a contract's sanctions come to in one month."""

    contract_id: str
    month: Period
    lines: tuple[LedgerLine, ...]
    points: int = 0
    floor: int = 0
    band: str = ""
    rolling: tuple[Rolling, ...] = ()

    @property
    def label(self) -> str:
        return self.month.label

    def total(self) -> Amount:
        """The net effect on the month's payment (deductions negative)."""
        out = Amount()
        for line in self.lines:
            if line.counts:
                out = out + line.amount
        return out

    def deductions(self) -> Amount:
        out = Amount()
        for line in self.lines:
            if line.counts and (line.amount.gbp < 0 or line.amount.share < 0):
                out = out + line.amount
        return out

    def verdict(self) -> str:
        """One line: '2019-11: £20,800 off the payment (handover-delay £15,800, …); 0 points'."""
        parts: list[str] = []
        off = self.deductions()
        if off:
            by_rule: dict[str, Amount] = {}
            for line in self.lines:
                if line.counts and (line.amount.gbp < 0 or line.amount.share < 0):
                    by_rule[line.rule] = by_rule.get(line.rule, Amount()) + line.amount
            detail = ", ".join(f"{r} {a.magnitude().text()}" for r, a in by_rule.items())
            parts.append(f"{off.magnitude().text()} off the payment ({detail})")
        else:
            parts.append("nothing deducted")
        paid = [ln for ln in self.lines if ln.counts and (ln.amount.gbp > 0 or ln.amount.share > 0)]
        for line in paid:
            what = "earned back" if line.kind == "earn_back" else "incentive earned"
            if line.kind != "cap":
                parts.append(f"{line.amount.text()} {what} ({line.rule})")
        if any(ln.kind in ("points", "points_deduction") for ln in self.lines) or self.points:
            floor = f", floor {self.floor:,}" if self.floor else ""
            band = f", {self.band}" if self.band else ""
            parts.append(f"{self.points:,} points{floor}{band}")
        for r in self.rolling:
            if r.percent >= 75:
                parts.append(r.text())
        waived = sum(1 for ln in self.lines if ln.status == "waived")
        if waived:
            parts.append(f"{waived} item{'s' if waived != 1 else ''} waived")
        return f"{self.label}: " + "; ".join(parts)


@dataclass(frozen=True)
class Ledger:
    """Several months' ledgers (one month, or a quarter's three)."""

    contract_id: str
    months: tuple[MonthLedger, ...]

    @property
    def lines(self) -> list[LedgerLine]:
        return [ln for m in self.months for ln in m.lines]

    def total(self) -> Amount:
        out = Amount()
        for m in self.months:
            out = out + m.total()
        return out

    def verdict(self) -> str:
        if len(self.months) == 1:
            return self.months[0].verdict()
        points = sum(m.points for m in self.months)
        net = self.total()
        word = "off the payment" if net.gbp < 0 or net.share < 0 else "net"
        first, last = self.months[0].label, self.months[-1].label
        return f"{first} to {last}: {net.magnitude().text()} {word} in all; {points:,} points"


# ------------------------------------------------------------------ windows: suspensions, waivers


def suspension_window(s: Suspension, contract: Contract) -> tuple[date, date]:
    start = s.start or contract.start
    if s.kind == "bedding_in" and s.months is not None:
        return start, start + relativedelta(months=s.months) - timedelta(days=1)
    return start, s.end or start


def _suspension_note(s: Suspension, contract: Contract) -> str:
    first, last = suspension_window(s, contract)
    what = "bedding-in period" if s.kind == "bedding_in" else "suspension by variation"
    why = f": {s.reason}" if s.reason else ""
    return f"suspended: {what} {first:%-d %b %Y} to {last:%-d %b %Y} ({s.clause}){why}"


def _all_waivers(contract: Contract, inputs: SanctionInputs) -> dict[str, Waiver]:
    out: dict[str, Waiver] = {}
    for recorded in contract.payments.waivers:
        at = datetime.combine(recorded.on, time(12), tzinfo=LONDON)
        out.setdefault(
            recorded.item,
            Waiver(recorded.item, recorded.reason, recorded.by, at, "contract file"),
        )
    for w in sorted(inputs.waivers, key=lambda w: w.at):
        out.setdefault(w.item, w)
    return out


def _waiver_note(w: Waiver) -> str:
    where = "" if w.source == "chat" else f", {w.source}"
    return f"waived by {w.by} on {w.at.astimezone(LONDON):%-d %b %Y}{where}: {w.reason}"


# ------------------------------------------------------------------ rectification


def deadlines(failure: FailureType, event: Event) -> list[datetime]:
    """When an unrectified failure is charged again: the end of each rectification period."""
    if failure.rectification is None:
        return []
    n, unit = read_rectification(failure.rectification)
    count = {"none": 0, "once": 1, "every_period": max(failure.max_recharges, 1)}[failure.recharge]
    if failure.charge == "if_not_rectified":
        count = max(count, 1)
    out: list[datetime] = []
    moment = event.occurred_at
    for _ in range(count):
        if unit == "hours":
            moment = moment + timedelta(hours=n)
        else:
            day = moment.astimezone(LONDON).date()
            day = add_working_days(day, n) if unit == "working_days" else day + timedelta(days=n)
            moment = datetime.combine(day, time.max, tzinfo=LONDON)
        out.append(moment)
    return out


def missed_rectifications(
    contract: Contract, events: Iterable[Event], start: datetime, end: datetime
) -> list[tuple[Event, FailureType, datetime]]:
    """Failures whose first rectification deadline fell in ``(start, end]`` unrectified by then."""
    pp = contract.payments.penalty_points
    if pp is None:
        return []
    kinds = {f.event: f for f in pp.failures if f.rectification is not None}
    out = []
    for e in events:
        failure = kinds.get(e.kind)
        if failure is None:
            continue
        due = deadlines(failure, replace(e, rectified_at=None))
        if due and start < due[0] <= end and (e.rectified_at is None or e.rectified_at > due[0]):
            out.append((e, failure, due[0]))
    return sorted(out, key=lambda t: (t[2], t[0].reference))


# ------------------------------------------------------------------ evaluation


def months_between(first: Period, last: Period) -> list[Period]:
    out = [first]
    while out[-1].start < last.start:
        out.append(out[-1].shift(1))
    return out


def month_of(day: date, contract: Contract) -> Period:
    return make_period("month", day, contract.reporting.year_start_month)


def _label(day: date) -> str:
    return f"{day.year}-{day.month:02d}"


@dataclass(frozen=True)
class _Index:
    """The inputs arranged once per evaluation, so each month costs only its own events:
    events by (kind, month), each failure's repeat multiplier, and the charges for not putting
    a failure right by (rule, month), each event's deadlines worked out once."""

    by_month: Mapping[tuple[str, str], list[Event]]
    repeats: Mapping[tuple[str, str, datetime], tuple[Decimal, int]]
    recharges: Mapping[tuple[str, str], list[tuple[Event, datetime]]]
    windows: _Windows


def _index(contract: Contract, inputs: SanctionInputs, as_of: datetime) -> _Index:
    by_month: dict[tuple[str, str], list[Event]] = {}
    by_kind: dict[str, list[Event]] = {}
    for e in sorted(inputs.events, key=lambda e: (e.occurred_at, e.reference)):
        by_month.setdefault((e.kind, _label(e.day)), []).append(e)
        by_kind.setdefault(e.kind, []).append(e)
    repeats: dict[tuple[str, str, datetime], tuple[Decimal, int]] = {}
    recharges: dict[tuple[str, str], list[tuple[Event, datetime]]] = {}
    pp = contract.payments.penalty_points
    for f in pp.failures if pp is not None else []:
        mine = by_kind.get(f.event, [])
        if f.repeat is not None:
            repeats.update(_repeats(f, mine))
        for e in mine:
            for due in deadlines(f, e):
                if (e.rectified_at is not None and e.rectified_at <= due) or due > as_of:
                    break
                key = (f.rule_id, _label(due.astimezone(LONDON).date()))
                recharges.setdefault(key, []).append((e, due))
    return _Index(by_month, repeats, recharges, _Windows.of(contract, inputs))


def _repeats(
    failure: FailureType, events: Sequence[Event]
) -> dict[tuple[str, str, datetime], tuple[Decimal, int]]:
    """(multiplier, which occurrence) for each failure: the n-th at the same reference (when
    ``same_reference``) within ``within_days`` (else the same month), in time order."""
    rep = failure.repeat
    assert rep is not None
    groups: dict[str, list[Event]] = {}
    for e in events:  # already in time order
        groups.setdefault(e.reference if rep.same_reference else "", []).append(e)
    out: dict[tuple[str, str, datetime], tuple[Decimal, int]] = {}
    for group in groups.values():
        first = 0
        for i, e in enumerate(group):
            if rep.within_days is None:
                while (group[first].day.year, group[first].day.month) != (e.day.year, e.day.month):
                    first += 1
            else:
                while group[first].day < e.day - timedelta(days=rep.within_days - 1):
                    first += 1
            nth = i - first + 1
            found = Decimal(1)
            for m in rep.multipliers:
                if nth >= m.occurrence:
                    found = m.multiplier
            out[(e.kind, e.reference, e.occurred_at)] = (found, nth)
    return out


def evaluate_sanctions(
    contract: Contract,
    months: Sequence[Period],
    inputs: SanctionInputs,
    as_of: datetime,
    *,
    recorded_by_then: bool = True,
) -> Ledger:
    """The ledger for ``months`` (consecutive months) at ``as_of``: rectification periods that
    have not run out by then charge nothing yet. With ``recorded_by_then`` (the default), only
    what was recorded by ``as_of`` counts, as alerts need; without it, everything stored does
    (a ledger drawn on a simulated or pinned clock).

    Earlier months are evaluated too, from the contract's start, because rolling totals, yearly
    caps and earn-back depend on them; only ``months`` are returned.
    """
    known = inputs.known_at(as_of) if recorded_by_then else inputs
    first = month_of(contract.start, contract)
    wanted = {m.label for m in months}
    if not months:
        return Ledger(contract.id, ())
    last = max(months, key=lambda p: p.start)
    index = _index(contract, known, as_of)
    history: list[MonthLedger] = []
    out: list[MonthLedger] = []
    for month in months_between(min(first, months[0]), month_of(last.start, contract)):
        ledger = _month(contract, month, known, index, history)
        history.append(ledger)
        if month.label in wanted:
            out.append(ledger)
    return Ledger(contract.id, tuple(out))


def _month(
    contract: Contract,
    month: Period,
    inputs: SanctionInputs,
    index: _Index,
    history: Sequence[MonthLedger],
) -> MonthLedger:
    terms = contract.payments
    waivers = index.windows
    lines: list[LedgerLine] = []
    for rule in terms.per_event:
        lines += _per_event(contract, rule, month, inputs, index, waivers)
    points, floor, band = 0, 0, ""
    pp = terms.penalty_points
    if pp is not None:
        point_lines = _points(contract, pp, month, inputs, index, waivers)
        lines += point_lines
        points = sum(ln.points for ln in point_lines if ln.counts)
        floor = pp.floor
        deduction, band = _band_deduction(contract, pp, month, points, waivers)
        if deduction is not None:
            lines.append(deduction)
    if terms.service_credits is not None:
        lines += _service_credits(contract, month, inputs, waivers, history)
    lines += _incentives(contract, month, inputs)
    lines += _earn_back(contract, month, inputs, history)
    rolling = _rolling(pp, month, points, history) if pp is not None else ()
    return MonthLedger(contract.id, month, tuple(lines), points, floor, band, rolling)


@dataclass(frozen=True)
class _Windows:
    """Waivers by item and suspension windows (with their notes), worked out once."""

    waivers: Mapping[str, Waiver]
    suspensions: tuple[tuple[frozenset[str], date, date, str], ...]

    @classmethod
    def of(cls, contract: Contract, inputs: SanctionInputs) -> _Windows:
        spans = []
        for s in contract.payments.suspensions:
            first, last = suspension_window(s, contract)
            spans.append((frozenset(s.rules), first, last, _suspension_note(s, contract)))
        return cls(_all_waivers(contract, inputs), tuple(spans))


def _apply_windows(
    windows: _Windows, rule: str, day: date, reference: str, month: str
) -> tuple[LineStatus, str]:
    """(status, note) for a charge under ``rule`` on ``day``: waived, suspended or charged."""
    waiver = windows.waivers.get(reference) or windows.waivers.get(f"{rule}:{month}")
    if waiver is not None:
        return "waived", _waiver_note(waiver)
    for rules, first, last, note in windows.suspensions:
        if (not rules or rule in rules) and first <= day <= last:
            return "suspended", note
    return "charged", ""


@dataclass(frozen=True)
class _Part:
    """One event's (or recharge's) share of a line, before grouping by status."""

    ref: str
    points: int = 0
    amount: Amount = Amount()
    units: int = 1
    each: Decimal = Decimal(0)
    source: str = ""
    mult: Decimal = Decimal(1)
    nth: int = 1


Groups = dict[tuple[LineStatus, str], list[_Part]]


def _group(
    lines: list[LedgerLine],
    groups: Groups,
    base: LedgerLine,
    describe: Callable[[list[_Part]], str],
) -> None:
    """One line per (status, suspension or waiver note): charged, waived and suspended apart."""
    for (status, extra), parts in groups.items():
        amount = Amount()
        for p in parts:
            amount = amount + p.amount
        note = describe(parts)
        lines.append(
            replace(
                base,
                status=status,
                events=tuple(dict.fromkeys(p.ref for p in parts)),
                points=sum(p.points for p in parts),
                amount=amount,
                note=f"{note}; {extra}" if extra else note,
            )
        )


def _arithmetic(parts: Sequence[_Part], unit: Callable[[Decimal], str]) -> tuple[str, str]:
    """('69 × £200 + 2 × £1,000', 'Schedule 4A'): the sum, and where its rates come from."""
    by: dict[tuple[Decimal, str], int] = {}
    for p in parts:
        by[(p.each * p.mult, p.source)] = by.get((p.each * p.mult, p.source), 0) + p.units
    sources = list(dict.fromkeys(src for _each, src in by))
    single = len(sources) == 1
    terms = [
        f"{n:,} × {unit(each)}" + ("" if single or not src else f" ({src})")
        for (each, src), n in by.items()
    ]
    return " + ".join(terms), (sources[0] if single else "")


# ---- sums per event


def rate_on(rule: PerEventSum, day: date) -> tuple[Decimal | None, list[EventTier], str]:
    """(flat amount, tiers, where the rate comes from) in force on ``day``."""
    amount, tiers, source = rule.amount_gbp, list(rule.tiers), rule.clause
    for v in rule.variations:
        if v.effective <= day:
            amount = v.amount_gbp if v.amount_gbp is not None else amount
            tiers = list(v.tiers) if v.tiers is not None else tiers
            source = f"{v.reference}, from {v.effective:%-d %b %Y}"
    return amount, tiers, source


def _tier_for(tiers: Sequence[EventTier], value: float | None) -> EventTier | None:
    hit = None
    for t in tiers:
        if value is not None and value > t.over:
            hit = t
    return hit


def _per_event(
    contract: Contract,
    rule: PerEventSum,
    month: Period,
    inputs: SanctionInputs,
    index: _Index,
    waivers: _Windows,
) -> list[LedgerLine]:
    label = month.label
    base = LedgerLine(
        label, rule.kpi or rule.event or "", rule.id, "sum", "charged", rule.clause, ""
    )
    if rule.kpi is not None:
        return [_per_count(contract, rule, month, inputs, waivers, base)]
    events = index.by_month.get((rule.event or "", label), [])
    allowed, tolerance = _allowance(rule, label, inputs)
    groups: Groups = {}
    below: list[str] = []
    for e in events:
        amount, tiers, source = rate_on(rule, e.day)
        tier = _tier_for(tiers, e.value)
        each = amount if amount is not None else tier.amount_gbp if tier is not None else None
        if each is None:
            below.append(e.reference)
            continue
        units = e.affected if rule.per == "person" else 1
        if allowed > 0:
            allowed -= 1
            groups.setdefault(("info", "within the tolerance, not charged"), []).append(
                _Part(e.reference, units=units, each=each, source=source)
            )
            continue
        status, extra = _apply_windows(waivers, rule.id, e.day, e.reference, label)
        groups.setdefault((status, extra), []).append(
            _Part(
                e.reference, amount=Amount(gbp=-each * units), units=units, each=each, source=source
            )
        )
    lines: list[LedgerLine] = []
    unit = "person affected" if rule.per == "person" else "event"

    def describe(parts: list[_Part]) -> str:
        total = sum((p.each * p.units for p in parts), Decimal(0))
        terms, source = _arithmetic(parts, pounds)
        text = f"{terms} = {pounds(total)}, per {unit}" + (f" (rate: {source})" if source else "")
        return f"{text}; {tolerance}" if tolerance else text

    _group(lines, groups, base, describe)
    if below:
        lowest = min((t.over for t in rule.tiers), default=0.0)
        lines.append(
            replace(
                base,
                status="info",
                events=tuple(below),
                note=f"{len(below)} event(s) not over the lowest tier ({_int(lowest)}): nothing charged",
            )
        )
    return lines


def _allowance(rule: PerEventSum, month: str, inputs: SanctionInputs) -> tuple[int, str]:
    """How many breaches the tolerance lets through uncharged this month, and why."""
    tol = rule.tolerance
    if tol is None:
        return 0, ""
    code = tol.of_kpi or rule.kpi or ""
    fig = _figure(inputs, code, month)
    if fig is None or fig.denominator is None:
        return 0, (
            f"tolerance of {_num(tol.allowed_percent)}% not applied: no total (the denominator "
            f"of {code}) for {month}"
        )
    allowed = math.floor(float(tol.allowed_percent) / 100 * fig.denominator + 1e-9)
    return allowed, (
        f"tolerance (a share allowed to breach): {_num(tol.allowed_percent)}% of "
        f"{_int(fig.denominator)} = {allowed:,} not charged"
    )


def _figure(inputs: SanctionInputs, kpi: str, month: str) -> MonthFigure | None:
    return inputs.figures.get((kpi.lower(), month))


def _per_count(
    contract: Contract,
    rule: PerEventSum,
    month: Period,
    inputs: SanctionInputs,
    waivers: _Windows,
    base: LedgerLine,
) -> LedgerLine:
    """A sum per event where a KPI's monthly figure is the count of events."""
    code = rule.kpi or ""
    base = replace(base, item=f"{rule.id}:{month.label}")
    fig = _figure(inputs, code, month.label)
    if fig is None or fig.count is None:
        return replace(base, status="info", note=f"no figure for {code} in {month.label} yet")
    count = int(round(fig.count))
    allowed, tolerance = _allowance(rule, month.label, inputs)
    charged = max(0, count - allowed)
    amount, _tiers, source = rate_on(rule, month.end)
    each = amount or Decimal(0)
    seen = f"{code} {month.label}: {_int(fig.count)}"
    if fig.denominator is not None:
        seen += f" of {_int(fig.denominator)}"
    note = f"{charged:,} × {pounds(each)} = {pounds(each * charged)} (rate: {source})"
    if tolerance:
        note = f"{note}; {tolerance}"
    status, extra = _apply_windows(waivers, rule.id, month.end, "", month.label)
    if extra:
        note = f"{note}; {extra}"
    return replace(
        base,
        status=status if charged else "info",
        events=(seen,),
        amount=Amount(gbp=-each * charged),
        note=note,
    )


# ---- penalty points


def points_on(failure: FailureType, day: date, default_clause: str) -> tuple[int, str]:
    """(points, where the rate comes from) in force on ``day``."""
    points, source = failure.points, failure.clause or default_clause
    for v in failure.variations:
        if v.effective <= day and v.points is not None:
            points, source = v.points, f"{v.reference}, from {v.effective:%-d %b %Y}"
    return points, source


def _points(
    contract: Contract,
    pp: PenaltyPoints,
    month: Period,
    inputs: SanctionInputs,
    index: _Index,
    waivers: _Windows,
) -> list[LedgerLine]:
    lines: list[LedgerLine] = []
    label = month.label
    for f in pp.failures:
        base = LedgerLine(label, f.event, f.rule_id, "points", "charged", f.clause or pp.clause, "")
        occurred: Groups = {}
        again: Groups = {}
        if f.charge == "on_occurrence":
            for e in index.by_month.get((f.event, label), []):
                units = e.affected if f.per == "person" else 1
                pts, source = points_on(f, e.day, pp.clause)
                mult, nth = index.repeats.get((e.kind, e.reference, e.occurred_at), (Decimal(1), 1))
                total = int((pts * units * mult).to_integral_value())
                status, extra = _apply_windows(waivers, f.rule_id, e.day, e.reference, label)
                occurred.setdefault((status, extra), []).append(
                    _Part(
                        e.reference,
                        total,
                        units=units,
                        each=Decimal(pts),
                        source=source,
                        mult=mult,
                        nth=nth,
                    )
                )
        for e, due in index.recharges.get((f.rule_id, label), []):
            units = e.affected if f.per == "person" else 1
            day = due.astimezone(LONDON).date()
            pts, source = points_on(f, day, pp.clause)
            status, extra = _apply_windows(waivers, f.rule_id, day, e.reference, label)
            again.setdefault((status, extra), []).append(
                _Part(e.reference, pts * units, units=units, each=Decimal(pts), source=source)
            )
        _group(lines, occurred, base, partial(_points_note, f, recharge=False))
        _group(lines, again, base, partial(_points_note, f, recharge=True))
    for level in pp.levels:
        lines.append(_graded(contract, level, month, inputs, waivers, "points", pp.clause))
    return lines


def _points_note(f: FailureType, parts: Sequence[_Part], *, recharge: bool) -> str:
    """'30 failures (41 households): 39 × 1 pt + 1 × 2 pt + 1 × 3 pt = 44 points; repeats …'."""
    total = sum(p.points for p in parts)
    terms, source = _arithmetic(parts, lambda n: f"{_num(n)} pt")
    rate = f" (rate: {source})" if source else ""
    failures = len({p.ref for p in parts}) if recharge else len(parts)
    people = sum(p.units for p in parts) if not recharge else 0
    what = f"{failures:,} failure{'s' if failures != 1 else ''}"
    if f.per == "person" and people != failures and not recharge:
        what += f" ({people:,} people or households affected)"
    if recharge:
        times = len(parts)
        return (
            f"{what} not rectified within {f.rectification}: charged at the end of {times:,} "
            f"rectification period{'s' if times != 1 else ''}: {terms} = {total:,} points{rate}"
        )
    text = f"{what}: {terms} = {total:,} points{rate}"
    repeats = [p for p in parts if p.mult != 1]
    if repeats:
        text += "; repeats multiplied: " + ", ".join(
            f"{p.ref} ({_ordinal(p.nth)} in the window, ×{_num(p.mult)})" for p in repeats
        )
    return text


def _band_deduction(
    contract: Contract, pp: PenaltyPoints, month: Period, points: int, waivers: _Windows
) -> tuple[LedgerLine | None, str]:
    """The month's points total above the floor, turned into a deduction by band."""
    if not pp.bands:
        return None, ""
    floor = pp.bands[0].over
    base = LedgerLine(
        month.label,
        "",
        "points",
        "points_deduction",
        "charged",
        pp.clause,
        "",
        item=f"points:{month.label}",
    )
    if points <= floor:
        note = f"{points:,} points, within the floor of {floor:,}: no deduction"
        return (replace(base, status="info", note=note) if points else None), "within the floor"
    band = max((b for b in pp.bands if points > b.over), key=lambda b: b.over)
    name = band.label or f"band over {band.over:,} points"
    if band.deduction_percent is not None:
        amount = -percent_of_monthly(contract, band.deduction_percent)
        note = f"{points:,} points is in the {name}: {_num(band.deduction_percent)}% of the monthly charge"
        charge = monthly_charge(contract)
        if charge is not None:
            note += f" ({_num(band.deduction_percent)}% × {pounds(charge)} = {amount.magnitude().text()})"
    else:
        amount = Amount()
        steps = []
        for i, b in enumerate(pp.bands):
            top = pp.bands[i + 1].over if i + 1 < len(pp.bands) else points
            n = max(0, min(points, top) - b.over)
            if n:
                rate = b.gbp_per_point or Decimal(0)
                amount = amount + Amount(gbp=-rate * n)
                steps.append(f"{n:,} × {pounds(rate)}")
        note = (
            f"{points:,} points, {points - floor:,} over the floor of {floor:,}: "
            f"{' + '.join(steps)} = {amount.magnitude().text()}"
        )
    status, extra = _apply_windows(waivers, "points", month.end, "", month.label)
    if extra:
        note = f"{note}; {extra}"
    return replace(base, status=status, amount=amount, note=note), name


def _rolling(
    pp: PenaltyPoints, month: Period, points: int, history: Sequence[MonthLedger]
) -> tuple[Rolling, ...]:
    out = []
    for t in pp.termination:
        first = month.shift(-(t.months - 1)).start
        earlier = sum(m.points for m in history if first <= m.month.start < month.start)
        out.append(Rolling(t.months, points + earlier, t.points, t.clause))
    return tuple(out)


# ---- graded levels and service credits


def _worse(value: float, than: float, polarity: str) -> bool:
    return value < than if polarity == "bigger" else value > than


def _graded(
    contract: Contract,
    level: GradedLevels,
    month: Period,
    inputs: SanctionInputs,
    waivers: _Windows,
    field: Literal["points", "credit_percent"],
    clause_default: str,
) -> LedgerLine:
    """A graded level's charge for a month: the worst band the KPI's figure is past."""
    kpi = contract.kpi(level.kpi)
    kind: LineKind = "points" if field == "points" else "service_credit"
    base = LedgerLine(
        month.label, kpi.code, level.id, kind, "charged", level.clause or clause_default, ""
    )
    base = replace(base, item=f"{level.id}:{month.label}")
    fig = _figure(inputs, kpi.code, month.label)
    if fig is None or fig.value is None:
        return replace(base, status="info", note=f"no figure for {kpi.code} in {month.label} yet")
    seen = f"{kpi.code} {month.label}: {_num(fig.value)}"
    hit = None
    for band in level.charges():
        if _worse(fig.value, band.worse_than, kpi.polarity):
            hit = band
    if hit is None:
        return replace(
            base,
            status="info",
            events=(seen,),
            note=f"at or better than the standard {_num(level.standard)}: nothing charged",
        )
    under = "below the minimum tolerable level" if level.below_minimum is hit else "a band"
    where = f"worse than {_num(hit.worse_than)} ({under}; standard {_num(level.standard)}, minimum {_num(level.minimum)})"
    status, extra = _apply_windows(waivers, level.id, month.end, "", month.label)
    if field == "points":
        note = f"{where}: {hit.points} points"
        line = replace(base, events=(seen,), points=hit.points or 0, note=note)
    else:
        percent = hit.credit_percent or Decimal(0)
        amount = -percent_of_monthly(contract, percent)
        note = f"{where}: service credit {_num(percent)}% of the monthly charge = {amount.magnitude().text()}"
        line = replace(base, events=(seen,), amount=amount, note=note)
    if extra:
        line = replace(line, note=f"{line.note}; {extra}")
    return replace(line, status=status)


def _service_credits(
    contract: Contract,
    month: Period,
    inputs: SanctionInputs,
    waivers: _Windows,
    history: Sequence[MonthLedger],
) -> list[LedgerLine]:
    sc = contract.payments.service_credits
    assert sc is not None
    lines: list[LedgerLine] = []
    for level in sc.levels:
        lines.append(_graded(contract, level, month, inputs, waivers, "credit_percent", sc.clause))
    credited = Amount()
    for ln in lines:
        if ln.counts:
            credited = credited + ln.amount
    taken = credited.magnitude()
    caps: list[tuple[Amount, str]] = []
    if sc.cap_month_percent is not None:
        cap = percent_of_monthly(contract, sc.cap_month_percent)
        caps.append(
            (cap, f"capped at {_num(sc.cap_month_percent)}% of the monthly charge ({cap.text()})")
        )
    if sc.cap_year_percent is not None:
        year = contract.year_for(month)
        earlier = Amount()
        for m in history:
            if year is not None and contract.year_for(m.month) == year:
                for ln in m.lines:
                    if ln.counts and ln.kind in ("service_credit", "cap"):
                        earlier = earlier + ln.amount
        cap_year = percent_of_monthly(contract, sc.cap_year_percent).scaled(_TWELVE)
        left = cap_year + earlier
        left = Amount(max(left.gbp, Decimal(0)), max(left.share, Decimal(0)))
        caps.append(
            (
                left,
                f"capped at {_num(sc.cap_year_percent)}% of the annual charge ({cap_year.text()} a "
                f"contract year; {earlier.magnitude().text()} credited earlier this year)",
            )
        )
    for cap, why in caps:
        if taken.gbp > cap.gbp or taken.share > cap.share:
            back = Amount(
                taken.gbp - min(taken.gbp, cap.gbp), taken.share - min(taken.share, cap.share)
            )
            lines.append(
                LedgerLine(
                    month.label,
                    "",
                    "service-credit-cap",
                    "cap",
                    "charged",
                    sc.clause,
                    f"service credits of {taken.text()} {why}: {back.text()} not taken",
                    amount=back,
                )
            )
            taken = Amount(taken.gbp - back.gbp, taken.share - back.share)
    return lines


# ---- incentives and earn-back


def _holds(
    contract: Contract, c: Condition, month: str, inputs: SanctionInputs
) -> tuple[bool, str]:
    kpi = contract.kpi(c.kpi)
    fig = _figure(inputs, kpi.code, month)
    if fig is None or fig.value is None:
        return False, f"{kpi.code}: no figure for {month}"
    if c.target_met:
        ok = bool(fig.met)
        return ok, f"{kpi.code} {_num(fig.value)} {'meets' if ok else 'does not meet'} its target"
    level = c.reaches or 0.0
    ok = not _worse(fig.value, level, kpi.polarity)
    word = "at least" if kpi.polarity == "bigger" else "at most"
    return ok, f"{kpi.code} {_num(fig.value)} {'is' if ok else 'is not'} {word} {_num(level)}"


def _incentives(contract: Contract, month: Period, inputs: SanctionInputs) -> list[LedgerLine]:
    out = []
    for inc in contract.payments.incentives:
        results = [_holds(contract, c, month.label, inputs) for c in inc.all_of]
        kpis = ", ".join(contract.kpi(c.kpi).code for c in inc.all_of)
        amount = (
            Amount(gbp=inc.amount_gbp)
            if inc.amount_gbp is not None
            else percent_of_monthly(contract, inc.percent_of_monthly or Decimal(0))
        )
        every = all(ok for ok, _ in results)
        why = "; ".join(text for _, text in results)
        note = f"all {len(results)} conditions {'met' if every else 'needed'}: {why}"
        out.append(
            LedgerLine(
                month.label,
                kpis,
                inc.id,
                "incentive",
                "earned" if every else "not_earned",
                inc.clause,
                note,
                events=tuple(text for _, text in results),
                amount=amount if every else Amount(),
            )
        )
    return out


def _earn_back(
    contract: Contract, month: Period, inputs: SanctionInputs, history: Sequence[MonthLedger]
) -> list[LedgerLine]:
    out = []
    for eb in contract.payments.earn_back:
        start = month.shift(-eb.months)
        past = next((m for m in history if m.month.start == start.start), None)
        if past is None:
            continue
        taken = Amount()
        earnable = [ln for ln in past.lines if ln.counts and _earnable(eb, ln)]
        if any(ln.kind == "service_credit" for ln in earnable):
            # A cap gave part of those credits back already: only the net was deducted.
            earnable += [ln for ln in past.lines if ln.kind == "cap"]
        for ln in earnable:
            taken = taken + ln.amount
        if not taken:
            continue
        failed = []
        for k in range(1, eb.months + 1):
            label = start.shift(k).label
            for c in eb.all_of:
                ok, text = _holds(contract, c, label, inputs)
                if not ok:
                    failed.append(f"{label}: {text}")
        back = taken.magnitude().scaled(eb.percent / _HUNDRED)
        plan = f"recovery plan: every condition in each of the {eb.months} month(s) after {start.label}"
        if failed:
            out.append(
                LedgerLine(
                    month.label,
                    "",
                    eb.id,
                    "earn_back",
                    "not_earned",
                    eb.clause,
                    f"{plan} not met ({'; '.join(failed[:3])}), so the {taken.magnitude().text()} "
                    f"deducted in {start.label} stays deducted",
                )
            )
            continue
        out.append(
            LedgerLine(
                month.label,
                "",
                eb.id,
                "earn_back",
                "earned",
                eb.clause,
                f"{plan} met: {_num(eb.percent)}% of the {taken.magnitude().text()} deducted in "
                f"{start.label} earned back",
                amount=back,
            )
        )
    return out


def _earnable(eb: EarnBack, line: LedgerLine) -> bool:
    """A deduction the recovery plan covers: of one of its rules (any rule without a list)."""
    if line.kind not in ("sum", "points_deduction", "service_credit"):
        return False
    return not eb.rules or line.rule in eb.rules


# ------------------------------------------------------------------ plain English


def explain_sanctions(terms: PaymentTerms) -> list[str]:
    """Each sanction mechanism in plain English, for ``kpibot contracts explain``."""
    out: list[str] = []
    out += [_per_event_text(r) for r in terms.per_event]
    pp = terms.penalty_points
    if pp is not None:
        for f in pp.failures:
            unit = "person or household affected by a" if f.per == "person" else ""
            when = "each" if f.charge == "on_occurrence" else "each unrectified"
            what = f"{when} {unit} '{f.event}' failure".replace("  ", " ")
            text = f"Penalty points ({f.rule_id}, {f.clause or pp.clause}): {f.points} for {what}"
            if f.rectification:
                again = {
                    "none": "",
                    "once": "; charged again once if not rectified within",
                    "every_period": "; charged again at the end of every further period not rectified within",
                }[f.recharge]
                text += (
                    f"{again} {f.rectification}"
                    if again
                    else f" (rectification period {f.rectification})"
                )
            if f.repeat is not None:
                within = (
                    f"within {f.repeat.within_days} days"
                    if f.repeat.within_days
                    else "in the same month"
                )
                where = " at the same reference" if f.repeat.same_reference else ""
                mults = ", ".join(
                    f"×{_num(m.multiplier)} from the {_ordinal(m.occurrence)}"
                    for m in f.repeat.multipliers
                )
                text += f"; repeated failures {within}{where} are multiplied: {mults}"
            for v in f.variations:
                text += f"; {v.points} points from {v.effective:%-d %b %Y} ({v.reference})"
            out.append(text + ".")
        for level in pp.levels:
            out.append(_graded_text(level, "points"))
        if pp.bands:
            if pp.bands[0].deduction_percent is not None:
                bands = "; ".join(
                    f"over {b.over:,} points, {_num(b.deduction_percent or 0)}% of the monthly charge"
                    for b in pp.bands
                )
            else:
                bands = "; ".join(
                    f"{pounds(b.gbp_per_point or Decimal(0))} a point over {b.over:,}"
                    for b in pp.bands
                )
            out.append(
                f"Monthly points deduction ({pp.clause}): points up to {pp.bands[0].over:,} cost nothing; {bands}."
            )
        for t in pp.termination:
            where = f" ({t.clause})" if t.clause else ""
            out.append(
                f"Termination right{where}: {t.points:,} points or more over any rolling {t.months} months; "
                "kpibot warns at 75% and 90%."
            )
    sc = terms.service_credits
    if sc is not None:
        for level in sc.levels:
            out.append(_graded_text(level, "credit_percent"))
        caps = []
        if sc.cap_month_percent is not None:
            caps.append(f"{_num(sc.cap_month_percent)}% of the monthly charge a month")
        if sc.cap_year_percent is not None:
            caps.append(f"{_num(sc.cap_year_percent)}% of the annual charge a contract year")
        if caps:
            out.append(f"Service credits are capped at {' and '.join(caps)} ({sc.clause}).")
    for inc in terms.incentives:
        pay = (
            pounds(inc.amount_gbp)
            if inc.amount_gbp is not None
            else f"{_num(inc.percent_of_monthly or 0)}% of the monthly charge"
        )
        conds = " and ".join(_condition_text(c) for c in inc.all_of)
        out.append(f"Incentive ({inc.id}, {inc.clause}): {pay} for a month in which {conds}.")
    for s in terms.suspensions:
        rules = ", ".join(s.rules) if s.rules else "every sanction"
        if s.kind == "bedding_in":
            start = f"from {s.start:%-d %b %Y}" if s.start else "from the service start"
            out.append(
                f"Bedding-in ({s.clause}): {rules} not applied for {s.months} months {start}."
            )
        else:
            why = f": {s.reason}" if s.reason else ""
            out.append(
                f"Suspension by variation ({s.clause}): {rules} not applied from {s.start:%-d %b %Y} "
                f"to {s.end:%-d %b %Y}{why}."
            )
    for w in terms.waivers:
        out.append(f"Waiver of {w.item}, by {w.by} on {w.on:%-d %b %Y}: {w.reason}.")
    for eb in terms.earn_back:
        rules = ", ".join(eb.rules) if eb.rules else "any deduction"
        conds = " and ".join(_condition_text(c) for c in eb.all_of)
        out.append(
            f"Earn-back ({eb.id}, {eb.clause}): {_num(eb.percent)}% of a month's {rules} is paid back "
            f"when, in each of the next {eb.months} months, {conds}."
        )
    if _uses_percent(terms):
        charge = (
            f"{pounds(terms.monthly_charge_gbp)} a month"
            if terms.monthly_charge_gbp is not None
            else "the annual contract value / 12 (or a share of ACV without one)"
        )
        out.append(f"Percentages of the monthly charge are of {charge}.")
    return out


def _uses_percent(terms: PaymentTerms) -> bool:
    pp = terms.penalty_points
    return bool(
        terms.service_credits
        or (pp is not None and pp.bands and pp.bands[0].deduction_percent is not None)
        or any(i.percent_of_monthly is not None for i in terms.incentives)
    )


def _per_event_text(r: PerEventSum) -> str:
    if r.kpi is not None:
        source, unit = f"each event counted by KPI {r.kpi}'s monthly figure", "event"
    else:
        unit = "person affected by" if r.per == "person" else ""
        source = f"each {unit} '{r.event}' event".replace("  ", " ")
    if r.amount_gbp is not None:
        rate = f"{pounds(r.amount_gbp)} for {source}"
    else:
        rate = "; ".join(
            f"{pounds(t.amount_gbp)} for {source} whose value is over {_int(t.over)}"
            + (f" ({t.label})" if t.label else "")
            for t in r.tiers
        )
    text = f"Sum per event ({r.id}, {r.clause}): {rate}."
    if r.tolerance is not None:
        text += (
            f" “Tolerance” is read as a share allowed to breach, inside the standard: "
            f"{_num(r.tolerance.allowed_percent)}% of the month's total (the denominator of "
            f"{r.tolerance.of_kpi or r.kpi}) is not charged."
        )
    for v in r.variations:
        new = pounds(v.amount_gbp) if v.amount_gbp is not None else "new tiers"
        text += f" From {v.effective:%-d %b %Y} ({v.reference}): {new}."
    return text


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _condition_text(c: Condition) -> str:
    if c.target_met:
        return f"KPI {c.kpi} meets its target"
    return f"KPI {c.kpi} reaches {_num(c.reaches or 0)}"


def _graded_text(level: GradedLevels, field: str) -> str:
    what = "points" if field == "points" else "a service credit"
    bands = "; ".join(
        f"worse than {_num(b.worse_than)}: "
        + (
            f"{b.points} points"
            if field == "points"
            else f"{_num(b.credit_percent or 0)}% of the monthly charge"
        )
        for b in level.charges()
    )
    return (
        f"Graded levels ({level.id}, {level.clause}): KPI {level.kpi} between the standard "
        f"{_num(level.standard)} and the minimum tolerable level {_num(level.minimum)} scores {what} by band: {bands}."
    )
