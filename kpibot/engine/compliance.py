"""Data-submission KPIs and the service-level RAG rating, as pure functions over plain inputs.

Two contract terms live here:

* **Data-submission KPIs** (seed 001, 2.5): timeliness is the share of returns received by their
  due moment; accuracy is the share of received returns none of whose figures was later amended;
  both have a 95% target, and three consecutive periods missed (late or not received) is a
  service failure. ``assess_submissions`` computes them from submission records, so nobody types
  them in.
* **Service-level RAG** (seed 003, Schedule 2): the share of outcome KPIs achieved in a period,
  red below 80% (and 5% of the annual payment withheld), amber from 80%, green when fully achieved.
  ``rate_service`` grades each period and the year's cumulative achievement beside it.

The caller (``kpibot.features.compliance``) reads the store and the calendar; nothing here does I/O or reads the
clock.

>>> terms = ServiceRagTerms(clause="Schedule 2")
>>> [grade(p, terms) for p in (79.9, 80.0, 90.0, 100.0)]
['red', 'amber', 'amber', 'green']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import pandas as pd

from kpibot.engine.model import Contract, DataSubmissionTerms, ServiceRagTerms
from kpibot.engine.scorecard import compiled

ReturnStatus = Literal["on_time", "late", "missing", "not_due"]
Rag = Literal["red", "amber", "green", "grey"]


# ------------------------------------------------------------------ data-submission KPIs


@dataclass(frozen=True)
class ReturnDue:
    """One return the provider owes: period label, kind ('quarterly', 'annual') and due moment."""

    label: str
    kind: str
    name: str
    due_at: datetime


@dataclass(frozen=True)
class ReturnReceipt:
    """What arrived for one period: first receipt, how many figures, how many later amended."""

    label: str
    received_at: datetime
    figures: int
    amended: int


@dataclass(frozen=True)
class ReturnRecord:
    """One return with its outcome: on time, late, missing, or not yet due."""

    label: str
    kind: str
    name: str
    due_at: datetime
    received_at: datetime | None
    status: ReturnStatus
    figures: int
    amended: int


@dataclass(frozen=True)
class SubmissionScore:
    """A data-submission KPI: percent (None with nothing to count), its parts and target."""

    name: str
    percent: float | None
    numerator: int
    denominator: int
    target: float
    reason: str

    @property
    def met(self) -> bool | None:
        return None if self.percent is None else self.percent >= self.target


@dataclass(frozen=True)
class MissedStreak:
    """Consecutive returns of one kind missed or late; a failure from ``threshold`` long."""

    kind: str
    labels: tuple[str, ...]
    failure: bool


@dataclass(frozen=True)
class SubmissionAssessment:
    """Timeliness, accuracy and service-failure status for one contract as of ``now``."""

    clause: str | None
    records: tuple[ReturnRecord, ...]
    timeliness: SubmissionScore
    accuracy: SubmissionScore
    streaks: tuple[MissedStreak, ...]
    threshold: int

    @property
    def service_failure(self) -> bool:
        return any(s.failure for s in self.streaks)

    @property
    def current_streak(self) -> int:
        """How many of the latest due periodic returns in a row were missed or late."""
        periodic = [r for r in self.records if r.kind != "annual" and r.status != "not_due"]
        n = 0
        for r in reversed(periodic):
            if r.status == "on_time":
                break
            n += 1
        return n

    def failure_text(self) -> str:
        """'Service failure (2.5): …' or '' when there has been none."""
        failed = [s for s in self.streaks if s.failure]
        if not failed:
            return ""
        where = f" ({self.clause})" if self.clause else ""
        spans = "; ".join(
            f"{len(s.labels)} consecutive {s.kind} returns missed or late: {', '.join(s.labels)}"
            for s in failed
        )
        return f"Service failure{where}: {spans}"


def assess_submissions(
    terms: DataSubmissionTerms | None,
    dues: Sequence[ReturnDue],
    receipts: Mapping[str, ReturnReceipt],
    now: datetime,
) -> SubmissionAssessment:
    """Timeliness, accuracy and missed-period streaks from the returns owed and received.

    A return is on time when it first arrived at or before its due moment, late when after, and
    missing when nothing has arrived and the due moment has passed. Returns not yet due count
    only once received (they can only be on time). Without ``terms`` the seed's defaults apply
    (95%, three periods), for information.

    >>> from datetime import UTC
    >>> due = [ReturnDue(f"Q{i}", "quarterly", "return", datetime(2019, 3 * i, 15, tzinfo=UTC))
    ...        for i in (1, 2, 3)]
    >>> got = {"Q1": ReturnReceipt("Q1", datetime(2019, 3, 1, tzinfo=UTC), 10, 1)}
    >>> a = assess_submissions(None, due, got, datetime(2019, 12, 1, tzinfo=UTC))
    >>> round(a.timeliness.percent, 1), a.accuracy.percent, a.current_streak
    (33.3, 0.0, 2)
    """
    terms = terms or DataSubmissionTerms(clause="")
    records: list[ReturnRecord] = []
    for due in sorted(dues, key=lambda d: d.due_at):
        got = receipts.get(due.label)
        when = got.received_at if got is not None else None
        status: ReturnStatus
        if when is not None:
            status = "on_time" if when <= due.due_at else "late"
        else:
            status = "missing" if due.due_at <= now else "not_due"
        records.append(
            ReturnRecord(
                due.label,
                due.kind,
                due.name,
                due.due_at,
                when,
                status,
                got.figures if got else 0,
                got.amended if got else 0,
            )
        )
    counted = [r for r in records if r.status != "not_due"]
    on_time = sum(r.status == "on_time" for r in counted)
    late = sum(r.status == "late" for r in counted)
    missing = sum(r.status == "missing" for r in counted)
    timeliness = SubmissionScore(
        "Timeliness",
        _percent(on_time, len(counted)),
        on_time,
        len(counted),
        terms.timeliness_target_percent,
        (
            f"{on_time} of {len(counted)} returns due so far arrived by their due date "
            f"({late} late, {missing} not received)"
            if counted
            else "no return has fallen due yet"
        ),
    )
    accuracy = _accuracy(terms, [r for r in records if r.received_at is not None])
    return SubmissionAssessment(
        terms.clause or None,
        tuple(records),
        timeliness,
        accuracy,
        _streaks(records, terms.consecutive_missed_for_failure),
        terms.consecutive_missed_for_failure,
    )


def _accuracy(terms: DataSubmissionTerms, received: list[ReturnRecord]) -> SubmissionScore:
    target = terms.accuracy_target_percent
    if terms.accuracy_unit == "figure":
        total = sum(r.figures for r in received)
        clean = total - sum(r.amended for r in received)
        why = f"{clean} of {total} figures received were never amended afterwards"
    else:
        total = len(received)
        clean = sum(r.amended == 0 for r in received)
        amended = [r.label for r in received if r.amended]
        why = f"{clean} of {total} returns received had no figure amended afterwards" + (
            f" (amended: {', '.join(amended)})" if amended else ""
        )
    if total == 0:
        why = "no return has been received yet, so accuracy cannot be measured"
    return SubmissionScore("Accuracy", _percent(clean, total), clean, total, target, why)


def _streaks(records: list[ReturnRecord], threshold: int) -> tuple[MissedStreak, ...]:
    """Runs of consecutive missed or late returns, per kind of return (quarterly, annual)."""
    out: list[MissedStreak] = []
    for kind in dict.fromkeys(r.kind for r in records):
        run: list[str] = []
        for r in [r for r in records if r.kind == kind and r.status != "not_due"] + [None]:
            if r is not None and r.status in ("late", "missing"):
                run.append(r.label)
                continue
            if run:
                out.append(MissedStreak(kind, tuple(run), len(run) >= threshold))
            run = []
    return tuple(out)


def _percent(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


# ------------------------------------------------------------------ service-level RAG


@dataclass(frozen=True)
class OutcomeCheck:
    """One outcome KPI with a target in one period: achieved, not achieved, or no figure."""

    kpi: str
    period: str
    achieved: bool
    has_figure: bool


@dataclass(frozen=True)
class PeriodRating:
    """One period's grade and the year's cumulative achievement up to and including it."""

    period: str
    achieved: int
    assessed: int
    rag: Rag
    cumulative_achieved: int
    cumulative_assessed: int
    cumulative_rag: Rag
    shortfalls: tuple[str, ...]
    no_figure: tuple[str, ...]

    @property
    def percent(self) -> float | None:
        return _percent(self.achieved, self.assessed)

    @property
    def cumulative_percent(self) -> float | None:
        return _percent(self.cumulative_achieved, self.cumulative_assessed)


@dataclass(frozen=True)
class ServiceRating:
    """Schedule 2 grades for the periods of one contract year, oldest first."""

    terms: ServiceRagTerms
    periods: tuple[PeriodRating, ...]

    @property
    def latest(self) -> PeriodRating | None:
        return self.periods[-1] if self.periods else None

    def year_grade(self) -> tuple[Rag, float | None, str]:
        """The grade that decides withholding (per ``withhold_basis``), its percent and basis."""
        last = self.latest
        if last is None:
            return "grey", None, "no outcome figures"
        if self.terms.withhold_basis == "latest_period":
            return last.rag, last.percent, f"latest period {last.period}"
        return last.cumulative_rag, last.cumulative_percent, f"cumulative to {last.period}"


def grade(percent: float | None, terms: ServiceRagTerms) -> Rag:
    """Schedule 2: red below ``red_below_percent``, green from ``green_from_percent``, else amber.

    The seed's "between 80-90%" amber band and "fully achieved" green leave 90-<100% open; the
    shipped config (green_from_percent 100) reads it strictly, so 90-<100% is amber.
    """
    if percent is None:
        return "grey"
    p = round(percent, 9)
    if p < terms.red_below_percent:
        return "red"
    if p >= terms.green_from_percent:
        return "green"
    return "amber"


def rate_service(
    terms: ServiceRagTerms, checks: Sequence[OutcomeCheck], periods: Sequence[str]
) -> ServiceRating:
    """Grade each of ``periods`` (oldest first) from the outcome checks, with the running total.

    A period with no outcome figure at all is not rated (grey): kpibot has nothing to judge.
    Where some figures are in, an outcome with no figure counts as not achieved.

    >>> t = ServiceRagTerms(clause="Schedule 2")
    >>> cs = [OutcomeCheck(str(i), "Q1", i < 4, True) for i in range(5)]
    >>> r = rate_service(t, cs, ["Q1"]).latest
    >>> r.percent, r.rag
    (80.0, 'amber')
    """
    out: list[PeriodRating] = []
    cum_a = cum_n = 0
    for label in periods:
        rows = [c for c in checks if c.period == label]
        if not any(c.has_figure for c in rows):
            continue
        achieved = sum(c.achieved for c in rows)
        cum_a += achieved
        cum_n += len(rows)
        out.append(
            PeriodRating(
                label,
                achieved,
                len(rows),
                grade(_percent(achieved, len(rows)), terms),
                cum_a,
                cum_n,
                grade(_percent(cum_a, cum_n), terms),
                tuple(c.kpi for c in rows if c.has_figure and not c.achieved),
                tuple(c.kpi for c in rows if not c.has_figure),
            )
        )
    return ServiceRating(terms, tuple(out))


def outcome_checks(
    contract: Contract,
    frame: pd.DataFrame | None,
    terms: ServiceRagTerms,
    year: int,
    periods: Sequence[str],
) -> list[OutcomeCheck]:
    """One check per outcome KPI with a target in ``year``, for each of ``periods``.

    ``frame`` is a ``Scorecard.frame``. Only "met" counts as achieved: within tolerance is not
    "achieved". KPIs exempt that year, and figures whose target cannot be assessed (a benchmark
    not in), are left out.
    """
    # The scorecard imports the contract model, which imports this module for its schema.

    comp = compiled(contract)
    rated = []
    for k in contract.kpis:
        t = comp[k.code].years.get(year)
        if (
            k.category in terms.outcome_categories
            and t is not None
            and t.target.kind != "none"
            and not t.exempt
        ):
            rated.append(k.code)
    found: dict[tuple[str, str], str] = {}
    if frame is not None and not frame.empty:
        sub = frame[
            frame["kpi"].isin(rated) & frame["period"].isin(list(periods)) & frame["value"].notna()
        ]
        found = {(r.kpi, r.period): str(r.position) for r in sub.itertuples()}
    out = []
    for label in periods:
        for code in rated:
            position = found.get((code, label))
            if position == "no_target":
                continue
            out.append(OutcomeCheck(code, label, position == "met", position is not None))
    return out
