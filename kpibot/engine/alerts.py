"""Which alerts a batch of figures raises: pure rules over the scorecard before and after it.

Given a contract, its evaluated figures (``Scorecard.frame``) before and after a batch, the
(KPI, period) pairs the batch changed and the contract's ``alerts:`` terms, ``arising`` says
which built-in alerts arise:

* ``alert_critical``: the KPI's figure breaches its critical-failure threshold, and did not before;
* ``alert_red``: the KPI turned red: red now, and its previous period was not red;
* ``alert_red_run``: the KPI's run of red periods reached the contract's underperformance trigger
  (N periods running, the same count that opens an action plan);
* ``alert_money`` (``money_arising``): a payment line newly at risk, not earned or withheld
  because of the figures (not merely because a figure is still missing); and
  (``sanction_money_arising``) a sanctions deduction for a month that is new or larger than
  before, with its amount, clause and cause.

Only a KPI's latest period raises an alert: back-filling old quarters is history, not news.
``clearing`` says which alerts already sent no longer hold (an amendment undid a red), for the
short "back to amber/green" follow-up. ``quiet`` moves a direct message out of quiet hours.

Nothing here reads the clock or the store; the feature (``kpibot.features.alerts``) passes both
frames in and keeps the ledger that makes each alert fire once.

>>> quiet(datetime(2020, 1, 6, 21, 30, tzinfo=LONDON)).isoformat()
'2020-01-07T08:00:00+00:00'
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

import pandas as pd

from kpibot.engine.calendar import LONDON
from kpibot.engine.describe import format_value
from kpibot.engine.model import AlertTerms, Contract
from kpibot.engine.payments import PaymentReport
from kpibot.engine.sanctions import Amount, LedgerLine, MonthLedger

# Direct messages wait outside these hours (Europe/London); channels hear at once.
QUIET_UNTIL = time(8, 0)
QUIET_FROM = time(18, 0)
# Why a payment line is at risk when the figures themselves are not to blame: no news yet.
PLACEHOLDER_CAUSES = frozenset({"no figure yet", "not rated (no outcome figures)"})
BAD_MONEY = ("at_risk", "not_earned", "withheld")
MONEY_WORDS = {"at_risk": "at risk", "not_earned": "not earned", "withheld": "withheld"}
# The longest cause a sanctions alert quotes from the ledger's note before cutting it short.
CAUSE_LIMIT = 240
# What each alert that can be undone is cleared by (see ``clearing``).
CLEARABLE = ("alert_critical", "alert_red", "alert_red_run")


@dataclass(frozen=True)
class Alert:
    """One alert about one KPI (or payment line) in one period (or contract year).

    ``subject`` is the KPI code, or the payment line for money; ``line`` is what people read
    about it; ``audience`` who hears it (from the contract's ``alerts:`` terms). For
    ``alert_clear``, ``follows`` is the kind of the alert it clears.
    """

    kind: str
    subject: str
    period: str
    line: str
    audience: tuple[str, ...] = ()
    rag: str = ""
    follows: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """(kind, subject, period): what must alert only once at a time."""
        return self.follows or self.kind, self.subject, self.period


@dataclass(frozen=True)
class _Row:
    period: str
    ordinal: int
    rag: str
    critical: bool
    value: float
    threshold: float
    tolerance: float
    critical_threshold: float
    year: int


Index = dict[tuple[str, str, int], _Row]


def _index(frame: pd.DataFrame | None) -> tuple[Index, dict[tuple[str, str], int]]:
    """Rows with a value by (kpi, kind, ordinal), and each (kpi, kind)'s latest ordinal."""
    rows: Index = {}
    latest: dict[tuple[str, str], int] = {}
    if frame is None or frame.empty:
        return rows, latest
    columns = (
        "kpi",
        "kind",
        "ordinal",
        "period",
        "rag",
        "critical",
        "value",
        "threshold",
        "tolerance_threshold",
        "critical_threshold",
        "year",
    )
    for kpi, kind, ordinal, period, rag, crit, value, thr, tol, cthr, year in zip(
        *(frame[c].tolist() for c in columns), strict=True
    ):
        # Rows without a value are skipped as they come: a filtered copy costs more than this.
        if value is None or value != value:  # missing, or NaN
            continue
        key = (str(kpi), str(kind), int(ordinal))
        rows[key] = _Row(
            str(period), int(ordinal), str(rag), bool(crit), value, thr, tol, cthr, int(year)
        )
        latest[key[:2]] = max(latest.get(key[:2], key[2]), key[2])
    return rows, latest


def _streak(rows: Index, kpi: str, kind: str, ordinal: int) -> int:
    """How many red periods run back from ``ordinal`` without a gap."""
    n = 0
    while (row := rows.get((kpi, kind, ordinal - n))) is not None and row.rag == "red":
        n += 1
    return n


def _turned_red(rows: Index, kpi: str, kind: str, ordinal: int) -> bool:
    row = rows.get((kpi, kind, ordinal))
    before = rows.get((kpi, kind, ordinal - 1))
    return row is not None and row.rag == "red" and (before is None or before.rag != "red")


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value


def describe_row(contract: Contract, code: str, row: _Row, units: Mapping[str, str]) -> str:
    """'C7 Children who wait … 2019/20 Q3: 42% against a 60% target (tolerance 56%)'."""
    unit = units.get(code, "")
    kpi = contract.kpi(code)
    text = f"{kpi.code} {kpi.name} · {row.period}: {format_value(row.value, unit)}"
    threshold = _num(row.threshold)
    if threshold is not None:
        text += f" against a {format_value(threshold, unit)} target"
        tolerance = _num(row.tolerance)
        if tolerance is not None and tolerance != threshold:
            text += f" (tolerance {format_value(tolerance, unit)})"
    return text


def _critical_words(contract: Contract, code: str, row: _Row, units: Mapping[str, str]) -> str:
    """The threshold in the contract's words, and the clause and remedy where the terms give one."""
    kpi = contract.kpi(code)
    words = kpi.critical_text(row.year) or ""
    floor = _num(row.critical_threshold)
    shown = f"“{words}”" if words else format_value(floor, units.get(code, ""))
    text = f"breaches the critical-failure threshold {shown}"
    block = contract.payments.block_plus_incentive
    if block is not None and block.critical_failure_clause:
        text += f" ({block.critical_failure_clause}"
        text += f": {block.critical_failure_remedy})" if block.critical_failure_remedy else ")"
    return text


def arising(
    contract: Contract,
    before: pd.DataFrame | None,
    after: pd.DataFrame,
    changed: Collection[tuple[str, str]],
    terms: AlertTerms,
    red_run: int,
    units: Mapping[str, str],
) -> list[Alert]:
    """The alerts ``changed`` (KPI code, period label) pairs raise, going from ``before`` to ``after``.

    Each rule compares the KPI's latest period in ``after`` with the same period in ``before``:
    an alert arises when its condition holds after the batch and did not before, so an
    amendment that leaves a red figure red raises nothing new. ``red_run`` is N, the run of red
    periods that is the contract's underperformance trigger (the contract's own
    ``alerts.red_run.periods`` wins over it). ``units`` maps KPI codes to their units.
    """
    rows_after, latest = _index(after)
    rows_before, _ = _index(before)
    wanted = set(changed)
    n = terms.red_run.periods or red_run
    order = {k.code: i for i, k in enumerate(contract.kpis)}
    out: list[Alert] = []
    for (kpi, kind), ordinal in sorted(latest.items(), key=lambda kv: order.get(kv[0][0], 0)):
        row = rows_after[(kpi, kind, ordinal)]
        if (kpi, row.period) not in wanted:
            continue
        was = rows_before.get((kpi, kind, ordinal))
        line = describe_row(contract, kpi, row, units)
        if row.critical and not (was is not None and was.critical) and terms.audience("critical"):
            out.append(
                Alert(
                    "alert_critical",
                    kpi,
                    row.period,
                    f"{line} — {_critical_words(contract, kpi, row, units)}",
                    tuple(terms.audience("critical")),
                    row.rag,
                )
            )
        if (
            _turned_red(rows_after, kpi, kind, ordinal)
            and not _turned_red(rows_before, kpi, kind, ordinal)
            and terms.audience("red")
        ):
            out.append(
                Alert("alert_red", kpi, row.period, line, tuple(terms.audience("red")), "red")
            )
        run = _streak(rows_after, kpi, kind, ordinal)
        if (
            run >= n
            and _streak(rows_after, kpi, kind, ordinal - 1) < n
            and _streak(rows_before, kpi, kind, ordinal) < n
            and terms.audience("red_run")
        ):
            first = rows_after[(kpi, kind, ordinal - run + 1)].period
            out.append(
                Alert(
                    "alert_red_run",
                    kpi,
                    row.period,
                    f"{line} — red {run} periods running ({first} to {row.period})",
                    tuple(terms.audience("red_run")),
                    "red",
                )
            )
    return out


def clearing(
    contract: Contract,
    after: pd.DataFrame,
    active: Iterable[tuple[str, str, str]],
    units: Mapping[str, str],
) -> list[Alert]:
    """Follow-ups (``alert_clear``) for ``active`` (kind, KPI, period) alerts that no longer hold.

    A red or red-run alert is cleared when the figure is no longer red; a critical failure when
    it no longer breaches the threshold. A period with no figure left clears nothing.
    """
    rows, _ = _index(after)
    by_period = {(kpi, row.period): row for (kpi, _kind, _o), row in rows.items()}
    out: list[Alert] = []
    for kind, kpi, period in active:
        row = by_period.get((kpi, period))
        if row is None or kind not in CLEARABLE:
            continue
        held = row.critical if kind == "alert_critical" else row.rag == "red"
        if held:
            continue
        line = describe_row(contract, kpi, row, units)
        now = "no longer a critical failure" if kind == "alert_critical" else f"now {row.rag}"
        out.append(Alert("alert_clear", kpi, period, f"{line} — {now}", (), row.rag, kind))
    return out


def _money_key(line: Any) -> tuple[str, str]:
    return str(line.scheme), str(line.item)


def _real(line: Any) -> bool:
    return line.status in BAD_MONEY and line.cause not in PLACEHOLDER_CAUSES


def money_arising(
    before: PaymentReport | None, after: PaymentReport, terms: AlertTerms
) -> list[Alert]:
    """Payment lines newly at risk, not earned or withheld because of the figures.

    A line at risk only because its figure is not in yet is not news; a line that moves from at
    risk to withheld (or not earned) is. The subject is the line, the period its contract year.
    """
    audience = tuple(terms.audience("money"))
    if not audience:
        return []
    was = {_money_key(ln): ln for ln in before.lines} if before is not None else {}
    out: list[Alert] = []
    for line in after.lines:
        if not _real(line):
            continue
        old = was.get(_money_key(line))
        if old is not None and _real(old) and old.status == line.status:
            continue
        amount = after.amount(line.share)
        text = f"{line.item}: {amount} {MONEY_WORDS[line.status]} ({line.cause})"
        out.append(
            Alert(
                "alert_money",
                f"{line.status}:{line.item}"[:200],
                after.year_name.split(" (")[0],
                text,
                audience,
            )
        )
    return out


def _deducted(line: LedgerLine) -> bool:
    """A deduction that counts: charged (not waived or suspended) and taking money off."""
    return line.counts and (line.amount.gbp < 0 or line.amount.share < 0)


def deductions_by_rule(month: MonthLedger | None) -> dict[str, tuple[Amount, list[LedgerLine]]]:
    """Each rule's counted deductions in ``month`` (as a positive amount) and their lines."""
    out: dict[str, tuple[Amount, list[LedgerLine]]] = {}
    for line in month.lines if month is not None else ():
        if _deducted(line):
            total, lines = out.get(line.rule, (Amount(), []))
            out[line.rule] = (total + line.amount.magnitude(), [*lines, line])
    return out


def _more(new: Amount, old: Amount) -> bool:
    return new.gbp > old.gbp or new.share > old.share


def _cause(lines: Sequence[LedgerLine]) -> str:
    text = "; ".join(dict.fromkeys(ln.note for ln in lines if ln.note))
    return text if len(text) <= CAUSE_LIMIT else text[: CAUSE_LIMIT - 1].rstrip() + "…"


def sanction_money_arising(
    before: MonthLedger | None, after: MonthLedger, terms: AlertTerms
) -> list[Alert]:
    """Sanctions deductions for ``after``'s month that are new, or larger than in ``before``.

    One alert per rule, in one line: the amount, the clause and the cause (the ledger's
    arithmetic). A waived or suspended charge does not count, so it raises nothing; a deduction
    that shrank or went is not news. The subject carries the amount
    (``sanction:<rule>:<pence or share>``): the same deduction seen again is the same alert,
    a larger one is a new one.

    >>> # sanction_money_arising(ledger_at(start), ledger_at(end), contract.alerts)
    >>> # [Alert('alert_money', 'sanction:handover-delay:1580000', '2015-11',
    >>> #        '2015-11 · handover-delay: £15,800 deducted (Schedule 4 …): 69 × £200 + …')]
    """
    audience = tuple(terms.audience("money"))
    if not audience:
        return []
    was = deductions_by_rule(before)
    out: list[Alert] = []
    for rule, (amount, lines) in deductions_by_rule(after).items():
        old = was.get(rule, (Amount(), []))[0]
        if not _more(amount, old):
            continue
        clause = lines[0].clause
        grew = f", up from {old.text()}" if old else ""
        text = f"{after.label} · {rule}: {amount.text()} deducted{grew} ({clause}): {_cause(lines)}"
        size = f"{int(amount.gbp * 100)}" if amount.gbp else f"{amount.share.normalize()}s"
        out.append(
            Alert("alert_money", f"sanction:{rule}:{size}"[:200], after.label, text, audience)
        )
    return out


def quiet(when: datetime) -> datetime:
    """``when``, or 08:00 Europe/London next when it falls in quiet hours (18:00 to 08:00).

    Direct messages are queued until morning, never dropped.

    >>> quiet(datetime(2020, 1, 6, 6, 0, tzinfo=LONDON)).astimezone(LONDON).time()
    datetime.time(8, 0)
    >>> quiet(datetime(2020, 1, 6, 12, 0, tzinfo=LONDON)).astimezone(LONDON).time()
    datetime.time(12, 0)
    """
    local = when.astimezone(LONDON)
    if QUIET_UNTIL <= local.time() < QUIET_FROM:
        return when
    day = local.date() if local.time() < QUIET_UNTIL else local.date() + timedelta(days=1)
    return datetime.combine(day, QUIET_UNTIL, tzinfo=LONDON)
