"""Alerts: the moment a figure turns a KPI red, the people who care hear of it, once.

When figures are confirmed in chat or imported, ``figures_stored`` works out the alerts they
raise (the rules are pure: ``kpibot.engine.alerts``) and writes them to the outbox, where the
dispatcher paces, retries and delivers them like reminders:

* a critical failure breached → the commissioner and the contract's channels, with the clause;
* a KPI turned red → the contract's channels;
* red for N periods running (the underperformance trigger) → the commissioner, with a button to
  open an action plan;
* money newly at risk or withheld → the commissioner;
* a sanctions deduction for a month that is new or larger (``sanction_money_messages``, a
  message provider for the tick: events, figures and waivers all change the ledger) → the
  commissioner and every ``money`` watcher, once per amount;
* and, to everyone watching the contract (``kpibot.features.subscriptions``), what they watch.

No storm: the ``alerts`` ledger keeps one row per (contract, kind, KPI, period), so each alert
fires once, whatever retries, amendments, replayed imports or second replicas do; the alerts of
one submission go out as one grouped message per kind and audience, naming every KPI; direct
messages wait out quiet hours (18:00 to 08:00 Europe/London) instead of being dropped; and an
amendment that undoes an alert sends a short follow-up, in the original's thread where the
platform has threads.

**When the outbox rows are written, and the failure windows.** Alerts are worked out right after
the figures commit, not inside their transaction: they compare the scorecard before and after
the submission, and the return workflow (``figures_arrived``) settles the figures' statuses in a
transaction of its own after the figures' (money counts approved figures only). A submission's
alerts, their ledger rows and the submission's ``alert_runs`` row are written in ONE
transaction, the ``alert_runs`` row last: if another process got there first the whole
transaction rolls back, so a submission is processed at most once and its alerts are all
written or none are. The window left is a crash (or a database error) after the figures commit
and before that transaction commits; ``catch_up``, run by the scheduler's tick on the leader,
finds submissions of the last two days without an ``alert_runs`` row and processes them. What a
submission raises is reconstructed from the figures' versions as they stood at that submission,
so the catch-up sends exactly what the fast path would have. Cost: an alert can be up to a tick
late after a crash; never lost, never doubled.

>>> # n = figures_stored(services, contract, result, policy)   # right after figures commit
>>> # n = catch_up(services, policy, now)                        # every tick: missed runs
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from kpibot.core.access import AccessPolicy
from kpibot.core.audience import targets_for
from kpibot.core.protocol import Action, Reply
from kpibot.core.services import Services
from kpibot.engine import reminders
from kpibot.engine.alerts import (
    CLEARABLE,
    Alert,
    arising,
    clearing,
    money_arising,
    quiet,
    sanction_money_arising,
)
from kpibot.engine.calendar import LONDON
from kpibot.engine.describe import format_value
from kpibot.engine.model import Contract
from kpibot.engine.periods import Period
from kpibot.engine.reminders import Message
from kpibot.engine.returns import UNDER_REVIEW
from kpibot.engine.sanctions import MonthLedger, evaluate_sanctions, month_of
from kpibot.engine.scorecard import compiled, evaluate_states
from kpibot.features.actionplan import ActionPlanService
from kpibot.features.bind import bindings_by_contract
from kpibot.features.payments import payment_report
from kpibot.features.sanctions import sanction_candidates, sanction_inputs
from kpibot.features.subscriptions import (
    Subscription,
    may_see,
    muted,
    policy_for,
    subscriptions_by_id,
    watchers,
)
from kpibot.store.figures import current_as_of, versions_frame
from kpibot.store.outbox import (
    OutboxEntry,
    OutboxMessage,
    OutboxRepository,
    outbox_entries,
    target_key,
)
from kpibot.store.rows import NewFigure, SubmissionResult
from kpibot.store.schema import (
    AlertRecord,
    AlertRunRecord,
    SubmissionRecord,
    as_utc,
)

log = logging.getLogger(__name__)

ALERTS = cast(Table, AlertRecord.__table__)
# How far back the tick's catch-up looks for submissions whose alerts were never worked out,
# and how long it leaves a fresh one to the fast path that normally handles it.
CATCH_UP_LOOKBACK = timedelta(days=2)
CATCH_UP_GRACE = timedelta(seconds=30)
CATCH_UP_BATCH = 200
# Submissions that are not news: the demo history shipped with a contract.
QUIET_SOURCES = ("history",)
MAX_LISTED = 25

# The kinds this feature writes (and builds at delivery: ``compose_alert``).
ALERT_KINDS = (
    "alert_critical",
    "alert_red",
    "alert_red_run",
    "alert_money",
    "alert_change",
    "alert_clear",
)

# ---- user-facing texts, kept together
HEADS = {
    "alert_critical": "⚠️ Critical failure on {name}",
    "alert_red": "🔴 {n} turned red on {name}",
    "alert_red_run": "🔴 {n} red periods running on {name}",
    "alert_money": "💷 Money newly at risk on {name}",
    "alert_change": "✏️ {n} arrived or changed on {name}",
    "alert_clear": "✅ Back to amber or green on {name}",
}
BY_WHOM = "Submitted by {actor} {source}."
SOURCE_WORDS = {
    "chat": "in chat",
    "import": "in an import",
    "cli": "in an import",
    "api": "by upload",
}
RED_RUN_ACTION = "Open an action plan"
RED_RUN_AREAS = "Red {n} periods running"
WATCHING_NOTE = "You get this because you watch {contract}: `/kpi mute {contract} 1d` pauses it."
MORE = "…and {n} more"
SANCTION_HEAD = "💷 Sanctions deduction on {name}"
SANCTION_FOOT = "`/kpi payments {contract} {month}` shows the month's ledger."
PREVIEW_ACTOR = "whoever imports it"


def _kpis(n: int) -> str:
    return f"{n} KPI{'s' if n != 1 else ''}"


def _figures(n: int) -> str:
    return f"{n} figure{'s' if n != 1 else ''}"


# ---------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Submission:
    """A stored submission whose alerts are to be worked out."""

    id: int
    contract_id: str
    actor: str
    source: str
    at: datetime


@dataclass
class Outcome:
    """What one submission raises: alerts, the (KPI, period) pairs it changed, and the figures."""

    submission: Submission
    contract: Contract
    alerts: list[Alert] = field(default_factory=list)
    changed: list[tuple[str, str]] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    after: pd.DataFrame = field(default_factory=pd.DataFrame)
    red_run: int = 2
    actor_name: str = ""


# ---------------------------------------------------------------------------------- entry points


def figures_stored(
    services: Services,
    contract: Contract,
    result: SubmissionResult,
    policy: AccessPolicy | None = None,
) -> int:
    """Write the alerts a submission just stored raises; returns the outbox rows written.

    Call it right after the figures commit (and after ``figures_arrived``). It never raises:
    the user's figures are stored whatever happens here, and a failure is logged and left to
    ``catch_up`` on the next tick.
    """
    if result.duplicate or result.source in QUIET_SOURCES:
        return 0
    try:
        return process(services, policy, [result.submission_id], services.now())
    except Exception:  # the figures are in; the tick's catch-up will write these alerts
        log.exception("alerts for submission %s not written yet", result.submission_id)
        return 0


def catch_up(services: Services, policy: AccessPolicy | None, now: datetime) -> int:
    """Process recent submissions whose alerts were never written (a crash between the figures'
    commit and the alerts'); a message provider's sibling, run by the tick on the leader."""
    now = as_utc(now)
    done = select(AlertRunRecord.submission_id).where(
        AlertRunRecord.submission_id == SubmissionRecord.id
    )
    query = (
        select(SubmissionRecord.id)
        .where(
            SubmissionRecord.submitted_at >= now - CATCH_UP_LOOKBACK,
            SubmissionRecord.submitted_at <= now - CATCH_UP_GRACE,
            SubmissionRecord.source.not_in(QUIET_SOURCES),
            ~done.exists(),
        )
        .order_by(SubmissionRecord.id)
    )
    with services.db.session(read_only=True) as session:
        missed = list(session.scalars(query))
    if not missed:
        return 0
    log.warning("catching up the alerts of %d submission(s): %s", len(missed), missed[:20])
    # A batch at a time: after an outage there may be thousands, and each batch's evaluation
    # is held in memory until its alerts are written.
    return sum(
        process(services, policy, missed[start : start + CATCH_UP_BATCH], now)
        for start in range(0, len(missed), CATCH_UP_BATCH)
    )


def process(
    services: Services,
    policy: AccessPolicy | None,
    submission_ids: Sequence[int],
    now: datetime,
) -> int:
    """Work out and write the alerts of these submissions, with their ``alert_runs`` rows, in one
    transaction; submissions already processed are skipped. If another process wrote some of
    them meanwhile, the rest are written one transaction each. Returns outbox rows written."""
    submissions = _submissions(services, submission_ids)
    if not submissions:
        return 0
    rules = policy_for(services, policy)
    outcomes = outcomes_of(services, submissions)
    contract_ids = {o.contract.id for o in outcomes}
    watching = watchers(services, contract_ids)
    silenced = muted(services, contract_ids, now)
    stored = bindings_by_contract(services.db)
    outbox = OutboxRepository(services.db)
    plans = []
    for outcome in outcomes:
        outcome.actor_name = rules.identify(outcome.submission.actor).name
        cid = outcome.contract.id
        bound = [ch for ch, c in rules.channels.items() if c == cid]
        bound += [ch for _platform, ch in stored.get(cid, [])]
        plans.append(
            _Fanout(outcome, rules, bound, watching.get(cid, []), silenced.get(cid, {}), now)
        )
    if not plans:
        return 0
    try:
        return _write(services, outbox, plans)
    except _AlreadyDone:
        if len(plans) == 1:
            return 0
    written = 0
    for plan in plans:
        try:
            written += _write(services, outbox, [plan])
        except _AlreadyDone:
            continue
    return written


# ---------------------------------------------------------------------------------- evaluating


def _submissions(services: Services, ids: Sequence[int]) -> list[Submission]:
    query = (
        select(
            SubmissionRecord.id,
            SubmissionRecord.contract_id,
            SubmissionRecord.submitted_by,
            SubmissionRecord.source,
            SubmissionRecord.submitted_at,
        )
        .where(SubmissionRecord.id.in_(list(ids)), SubmissionRecord.source.not_in(QUIET_SOURCES))
        .where(
            ~select(AlertRunRecord.submission_id)
            .where(AlertRunRecord.submission_id == SubmissionRecord.id)
            .exists()
        )
        .order_by(SubmissionRecord.id)
    )
    with services.db.session(read_only=True) as session:
        return [Submission(*row) for row in session.execute(query)]


def outcomes_of(services: Services, submissions: Sequence[Submission]) -> list[Outcome]:
    """The alerts each submission raises, from the store as it stood at that submission.

    Every contract's before and after scorecards are evaluated in one engine pass.
    """
    contracts: dict[str, Contract] = {}
    for s in submissions:
        c = services.contract(s.contract_id)
        if c is not None:
            contracts[c.id] = c
    if not contracts:
        return []
    versions = versions_frame(services.db, contracts)
    # The figures of each state are picked as row positions over plain lists and taken from
    # ``versions`` once: a pandas filter per submission and state costs far more than the few
    # dozen rows it keeps.
    rows_of = {
        str(cid): positions.tolist()
        for cid, positions in versions.groupby("contract", sort=False).indices.items()
    }
    columns = _Versions(versions)
    chosen: list[int] = []
    lengths: list[int] = []
    outcomes: list[Outcome] = []
    for s in submissions:
        contract = contracts.get(s.contract_id)
        if contract is None or s.contract_id not in rows_of:
            continue
        own = rows_of[contract.id]
        outcome = Outcome(s, contract)
        outcome.changed = list(
            dict.fromkeys(
                (columns.kpi[r], columns.period[r]) for r in own if columns.submission[r] == s.id
            )
        )
        # Only the KPIs the submission touched (their whole history: runs and previous periods)
        # and, when money moves, the KPIs payments count: the rest cannot raise anything.
        wanted = {k for k, _p in outcome.changed}
        if _money_moves(contract, outcome.changed):
            wanted |= money_kpis(contract)
        own = [r for r in own if columns.kpi[r] in wanted]
        outcomes.append(outcome)  # outcome i is states 2i (before) and 2i + 1 (after)
        for inclusive in (False, True):
            current = columns.current_at(own, s.id, inclusive)
            chosen += current
            lengths.append(len(current))
    if not outcomes:
        return []
    figures = versions.take(chosen).reset_index(drop=True)
    figures["state"] = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    starts = np.concatenate(([0], np.cumsum(lengths))).tolist()
    frame = evaluate_states(contracts, figures)
    # evaluate_states gives the states in ascending order: each state is one slice of rows.
    state = frame["state"].to_numpy() if not frame.empty else np.empty(0, dtype=np.int64)
    bounds = np.searchsorted(state, np.arange(len(lengths) + 1)).tolist()

    def evaluated(n: int) -> pd.DataFrame:
        start, end = bounds[n], bounds[n + 1]
        return frame.iloc[start:end] if end > start else pd.DataFrame()

    for i, outcome in enumerate(outcomes):
        before, after = evaluated(2 * i), evaluated(2 * i + 1)
        outcome.after = after
        figures_before = figures.iloc[starts[2 * i] : starts[2 * i + 1]]
        figures_after = figures.iloc[starts[2 * i + 1] : starts[2 * i + 2]]
        _raise(services, outcome, before, after, figures_before, figures_after)
    return outcomes


class _Versions:
    """The columns of a ``versions_frame`` that pick each state's figures, as Python lists."""

    def __init__(self, versions: pd.DataFrame) -> None:
        self.id: list[int] = versions["id"].tolist()
        self.submission: list[int] = versions["submission"].tolist()
        self.kpi: list[str] = versions["kpi"].tolist()
        self.period: list[str] = versions["period"].tolist()
        supersedes = versions["supersedes"]
        self.supersedes: list[int | None] = [
            int(v) if known else None
            for v, known in zip(supersedes.tolist(), supersedes.notna().tolist(), strict=True)
        ]

    def current_at(self, rows: Sequence[int], submission: int, inclusive: bool) -> list[int]:
        """``current_as_of(versions.iloc[rows], submission=…, inclusive=…)``, as positions:
        the versions stored by then that nothing stored by then supersedes."""
        if inclusive:
            kept = [r for r in rows if self.submission[r] <= submission]
        else:
            kept = [r for r in rows if self.submission[r] < submission]
        replaced = {self.supersedes[r] for r in kept} - {None}
        return [r for r in kept if self.id[r] not in replaced]


def _red_run(services: Services) -> int:
    return ActionPlanService(services).consecutive_red


def units_of(contract: Contract) -> dict[str, str]:
    return {code: c.unit for code, c in compiled(contract).items()}


def _raise(
    services: Services,
    outcome: Outcome,
    before: pd.DataFrame,
    after: pd.DataFrame,
    figures_before: pd.DataFrame,
    figures_after: pd.DataFrame,
) -> None:
    contract = outcome.contract
    terms = contract.alerts
    units = units_of(contract)
    outcome.red_run = terms.red_run.periods or _red_run(services)
    outcome.alerts = arising(
        contract, before, after, outcome.changed, terms, outcome.red_run, units
    )
    outcome.changes = _change_lines(contract, after, outcome.changed, units)
    if _money_moves(contract, outcome.changed) and terms.audience("money"):
        outcome.alerts += _money(
            services, contract, outcome, before, after, figures_before, figures_after
        )


def _change_lines(
    contract: Contract,
    after: pd.DataFrame,
    changed: Sequence[tuple[str, str]],
    units: Mapping[str, str],
) -> list[str]:
    if after.empty:
        return []
    rags = {
        (k, p): (v, r)
        for k, p, v, r in zip(
            after["kpi"], after["period"], after["value"], after["rag"], strict=True
        )
    }
    out = []
    for kpi, period in changed:
        value, rag = rags.get((kpi, period), (float("nan"), "grey"))
        out.append(
            f"{kpi} {period}: {format_value(value, units.get(kpi, ''))} ({rag if rag != 'grey' else 'not rated'})"
        )
    return out


def money_kpis(contract: Contract) -> set[str]:
    """The KPIs the contract's payment terms count: incentive KPIs, programmes, outcomes, and
    the members of groups a payment is tied to."""
    terms = contract.payments
    if not terms.has_money:
        return set()
    codes: set[str] = set()
    if terms.per_kpi_incentive is not None:
        codes |= set(terms.per_kpi_incentive.kpis) or {
            k.code for k in contract.kpis if k.incentive_weight is not None
        }
    if terms.block_plus_incentive is not None:
        codes |= {p.kpi for p in terms.block_plus_incentive.programmes}
    if terms.service_rag is not None:
        wanted = terms.service_rag.outcome_categories
        codes |= {k.code for k in contract.kpis if k.category in wanted}
    paid = {gp.group.strip().lower() for gp in terms.group_payments}
    for group in contract.groups:
        if group.name.strip().lower() in paid:
            codes |= {contract.kpi(c).code for c in group.kpis}
    return codes


def _money_moves(contract: Contract, changed: Sequence[tuple[str, str]]) -> bool:
    """Whether any changed KPI counts for money."""
    return bool({k for k, _p in changed} & money_kpis(contract))


def _approved(contract: Contract, figures: pd.DataFrame, evaluated: pd.DataFrame) -> pd.DataFrame:
    """The evaluated approved figures payments count (re-evaluated only when some are under review)."""
    if figures.empty or not figures["status"].isin(UNDER_REVIEW).any():
        return evaluated
    kept = figures[~figures["status"].isin(UNDER_REVIEW)].assign(state=0)
    frame = evaluate_states({contract.id: contract}, kept)
    return frame.drop(columns="state") if not frame.empty else frame


def _money(
    services: Services,
    contract: Contract,
    outcome: Outcome,
    before: pd.DataFrame,
    after: pd.DataFrame,
    figures_before: pd.DataFrame,
    figures_after: pd.DataFrame,
) -> list[Alert]:
    years = {}
    for _kpi, label in outcome.changed:
        year = contract.year_for(contract.parse_period(label))
        if year is not None:
            years[year.year] = year
    if not years:
        return []
    # Payments read only the KPIs they count: the rest would be evaluated for nothing.
    counted = money_kpis(contract)

    def only(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["kpi"].isin(counted)] if not frame.empty else frame

    old = only(_approved(contract, figures_before, before.drop(columns="state", errors="ignore")))
    new = only(_approved(contract, figures_after, after.drop(columns="state", errors="ignore")))
    out: list[Alert] = []
    for year in years.values():
        was = payment_report(services, contract, year, frame=old)
        now = payment_report(services, contract, year, frame=new)
        out += money_arising(was, now, contract.alerts)
    return out


# ---------------------------------------------------------------------------------- fan-out


@dataclass
class _Group:
    """One grouped message: a kind of alert to one target, naming every KPI it is about."""

    kind: str
    audience: str
    target: tuple[str, str]
    direct: bool
    alerts: list[Alert] = field(default_factory=list)
    watchers: list[int] = field(default_factory=list)
    thread: str | None = None
    period: str = ""


class _Fanout:
    """Who hears what from one submission: groups per (kind, target)."""

    def __init__(
        self,
        outcome: Outcome,
        policy: AccessPolicy,
        bound: Sequence[str],
        watching: Sequence[Subscription],
        silenced: Mapping[tuple[str, str], datetime],
        now: datetime,
    ) -> None:
        self.outcome = outcome
        self.policy = policy
        self.bound = list(dict.fromkeys(bound))
        self.watching = watching
        self.silenced = silenced
        self.now = now
        # The watchers who may hear now: not muted, and still allowed to see the contract.
        self.hearing = [
            sub
            for sub in watching
            if sub.place.target not in silenced and may_see(policy, sub, outcome.contract.id)
        ]
        self._periods: dict[str, str] = {}

    def period(self, kind: str) -> str:
        """The period a group of ``kind`` is filed under: its first alert's among all the
        submission raised, so a group's outbox key is known before the ledger says which of
        them are news."""
        if kind not in self._periods:
            found = next((a.period for a in self.outcome.alerts if a.kind == kind), None)
            self._periods[kind] = found or next((p for _k, p in self.outcome.changed), "")
        return self._periods[kind]

    def groups(self, alerts: Sequence[Alert]) -> list[_Group]:
        """The raised ``alerts`` (and the submission's changes) grouped per kind and target."""
        contract = self.outcome.contract
        groups: dict[tuple[str, tuple[str, str]], _Group] = {}
        for alert in alerts:
            for audience in alert.audience:
                for target in targets_for(contract, audience, self.bound):
                    group = groups.get((alert.kind, target))
                    if group is None:
                        group = groups[(alert.kind, target)] = _Group(
                            alert.kind, audience, target, False, period=self.period(alert.kind)
                        )
                    group.alerts.append(alert)
        # What each subscriber's group lists so far, as sets: a contract may have hundreds of
        # watchers, and a list searched for each of them grows with every one added.
        listed: dict[tuple[str, tuple[str, str]], tuple[set[Alert], set[int]]] = {}
        for sub in self.hearing:
            for alert in alerts:
                if not sub.hears(
                    alert.kind, None if alert.kind == "alert_money" else alert.subject
                ):
                    continue
                key = (alert.kind, sub.place.target)
                group = groups.get(key)
                if group is None:
                    group = groups[key] = _Group(
                        alert.kind,
                        "subscriber",
                        sub.place.target,
                        sub.place.direct,
                        period=self.period(alert.kind),
                    )
                elif group.audience != "subscriber":
                    continue  # that channel hears it already as the contract's audience
                seen, watchers = listed.setdefault(key, (set(), set()))
                if alert not in seen:
                    seen.add(alert)
                    group.alerts.append(alert)
                if sub.id not in watchers:
                    watchers.add(sub.id)
                    group.watchers.append(sub.id)
        return list(groups.values())

    def change_groups(self) -> list[_Group]:
        """``alert_change`` for every-change watchers: each figure that arrived or changed."""
        out: dict[tuple[str, str], _Group] = {}
        changed = {k for k, _p in self.outcome.changed}
        for sub in self.hearing:
            if sub.what != "any-change" or (sub.kpi is not None and sub.kpi not in changed):
                continue
            group = out.setdefault(
                sub.place.target,
                _Group(
                    "alert_change",
                    "subscriber",
                    sub.place.target,
                    sub.place.direct,
                    period=self.period("alert_change"),
                ),
            )
            group.watchers.append(sub.id)
        return list(out.values())


def _head(kind: str, contract: Contract, n: int) -> str:
    count = _kpis(n) if kind in ("alert_red", "alert_red_run") else _figures(n)
    return HEADS[kind].format(name=contract.name, n=count)


def _text(outcome: Outcome, group: _Group, items: Sequence[str]) -> str:
    lines = [_head(group.kind, outcome.contract, len(items))]
    lines += [f"• {item}" for item in items[:MAX_LISTED]]
    if len(items) > MAX_LISTED:
        lines.append(MORE.format(n=len(items) - MAX_LISTED))
    s = outcome.submission
    actor = outcome.actor_name or s.actor
    lines.append(BY_WHOM.format(actor=actor, source=SOURCE_WORDS.get(s.source, s.source)))
    if group.audience == "subscriber":
        lines.append(WATCHING_NOTE.format(contract=outcome.contract.id))
    return "\n".join(lines)


def _message(outcome: Outcome, group: _Group, text: str, when: datetime) -> Message:
    period = group.period or next((a.period for a in group.alerts), "")
    return Message(
        when,
        outcome.contract.id,
        group.kind,
        group.audience,
        period,
        f"s{outcome.submission.id}",
        text,
    )


def _entries(outcome: Outcome, group: _Group, now: datetime) -> list[OutboxEntry]:
    items = [a.line for a in group.alerts] if group.kind != "alert_change" else outcome.changes
    when = quiet(now) if group.direct else now
    message = _message(outcome, group, _text(outcome, group, items), when.astimezone(LONDON))
    extra: dict[str, Any] = {
        "alerts": [list(a.key) for a in group.alerts],
        "direct": group.direct,
    }
    if group.watchers:
        extra["watchers"] = group.watchers
    if group.thread:
        extra["thread"] = group.thread
    if group.kind == "alert_red_run":
        kpis = " ".join(dict.fromkeys(a.subject for a in group.alerts))
        areas = RED_RUN_AREAS.format(n=outcome.red_run)
        command = f'actionplan {outcome.contract.id} new {kpis} "{areas}"'
        extra["actions"] = [{"label": RED_RUN_ACTION, "command": command}]
    return outbox_entries(message, [group.target], extra)


def _insert(services: Services) -> Any:
    return postgresql.insert if services.db.dialect == "postgresql" else sqlite.insert


class _AlreadyDone(Exception):
    """Another process wrote this submission's alerts first; ours must not commit."""


def _finish(session: Session, services: Services, rows: Mapping[int, int], now: datetime) -> None:
    """Record the submissions' ``alert_runs`` rows, last: if another process already recorded
    one, undo everything this transaction wrote (``_AlreadyDone``)."""
    statement = (
        _insert(services)(AlertRunRecord)
        .on_conflict_do_nothing()
        .returning(AlertRunRecord.submission_id)
    )
    values = [{"submission_id": i, "processed_at": now, "rows": n} for i, n in rows.items()]
    if len(session.execute(statement, values).all()) != len(values):
        raise _AlreadyDone


Key = tuple[str, str, str, str]
"""(contract, kind, subject, period): one row of the ledger."""


def _waves(plans: Sequence[_Fanout]) -> list[list[_Fanout]]:
    """The plans in waves with one submission per contract each, in submission order: a wave's
    ledger changes are then one statement, and a later submission still sees an earlier one's."""
    waves: list[list[_Fanout]] = []
    seen: dict[str, int] = defaultdict(int)
    for plan in plans:
        n = seen[plan.outcome.contract.id]
        seen[plan.outcome.contract.id] += 1
        if n == len(waves):
            waves.append([])
        waves[n].append(plan)
    return waves


def _ledger_raise(
    session: Session,
    services: Services,
    wave: Sequence[_Fanout],
    carriers: Mapping[Key, dict[str, str]],
) -> set[Key]:
    """Record the raised alerts with the outbox keys that carry them (``carriers``: per alert,
    target → key); returns the alerts that are news (not already raised and still standing).
    One statement for the wave: insert, or raise again once cleared."""
    rows: list[dict[str, Any]] = [
        {
            "contract_id": plan.outcome.contract.id,
            "kind": a.kind,
            "subject": a.subject,
            "period": a.period,
            "generation": 1,
            "raised_at": plan.now,
            "submission_id": plan.outcome.submission.id,
            "cleared_at": None,
            "messages": carriers.get((plan.outcome.contract.id, *a.key), {}),
        }
        for plan in wave
        for a in {a.key: a for a in plan.outcome.alerts}.values()
    ]
    if not rows:
        return set()
    # One cached statement over all rows ("insertmanyvalues"), as the outbox writes its rows.
    insert = _insert(services)(ALERTS)
    statement = insert.on_conflict_do_update(
        index_elements=["contract_id", "kind", "subject", "period"],
        set_={
            "generation": ALERTS.c.generation + 1,
            "raised_at": insert.excluded.raised_at,
            "submission_id": insert.excluded.submission_id,
            "cleared_at": None,
            "messages": insert.excluded.messages,
        },
        where=ALERTS.c.cleared_at.is_not(None),
    ).returning(ALERTS.c.contract_id, ALERTS.c.kind, ALERTS.c.subject, ALERTS.c.period)
    return {(c, k, s, p) for c, k, s, p in session.execute(statement, rows)}


def _ledger_clear(
    session: Session, wave: Sequence[_Fanout], now: datetime
) -> list[list[tuple[Alert, dict[str, str]]]]:
    """Clear the standing alerts each submission of the wave undid; returns, per plan, each
    follow-up with the targets (and outbox keys) of the alert it follows. Two statements."""
    out: list[list[tuple[Alert, dict[str, str]]]] = [[] for _ in wave]
    kpis = {k for plan in wave for k, _p in plan.outcome.changed}
    periods = {p for plan in wave for _k, p in plan.outcome.changed}
    if not kpis:
        return out
    standing = session.execute(
        select(
            ALERTS.c.id, ALERTS.c.contract_id, ALERTS.c.kind, ALERTS.c.subject, ALERTS.c.period
        ).where(
            ALERTS.c.contract_id.in_(sorted({plan.outcome.contract.id for plan in wave})),
            ALERTS.c.cleared_at.is_(None),
            ALERTS.c.kind.in_(CLEARABLE),
            ALERTS.c.subject.in_(sorted(kpis)),
            ALERTS.c.period.in_(sorted(periods)),
        )
    ).all()
    ids: dict[Key, int] = {(c, k, s, p): i for i, c, k, s, p in standing}
    follows: list[list[Alert]] = []
    for plan in wave:
        outcome = plan.outcome
        cid = outcome.contract.id
        changed = set(outcome.changed)
        candidates = [key[1:] for key in ids if key[0] == cid and (key[2], key[3]) in changed]
        follow = (
            clearing(outcome.contract, outcome.after, candidates, units_of(outcome.contract))
            if candidates and not outcome.after.empty
            else []
        )
        follows.append(follow)
    wanted = [
        ids[(plan.outcome.contract.id, *a.key)]
        for plan, f in zip(wave, follows, strict=True)
        for a in f
    ]
    if not wanted:
        return out
    cleared = session.execute(
        update(ALERTS)
        .where(ALERTS.c.id.in_(wanted), ALERTS.c.cleared_at.is_(None))
        .values(cleared_at=now)
        .returning(ALERTS.c.id, ALERTS.c.messages)
    ).all()
    sent = {i: dict(m or {}) for i, m in cleared}
    for n, (plan, follow) in enumerate(zip(wave, follows, strict=True)):
        cid = plan.outcome.contract.id
        for alert in follow:
            row = ids[(cid, *alert.key)]
            if row in sent:
                out[n].append((alert, sent[row]))
    return out


def _carriers(plan: _Fanout, groups: Sequence[_Group]) -> dict[Key, dict[str, str]]:
    """Per alert, each target and the outbox key of the message that carries it there."""
    out: dict[Key, dict[str, str]] = defaultdict(dict)
    cid = plan.outcome.contract.id
    for group in groups:
        message = _message(plan.outcome, group, "", plan.now)
        key = target_key(message, *group.target)
        for alert in group.alerts:
            out[(cid, *alert.key)][f"{group.target[0]}:{group.target[1]}"] = key
    return out


def _write(services: Services, outbox: OutboxRepository, plans: Sequence[_Fanout]) -> int:
    """The submissions' alerts, follow-ups, ledger rows and ``alert_runs`` rows: one transaction.

    Submissions are taken in waves (see ``_waves``), so a later submission on a contract sees
    what an earlier one raised or cleared. Raises ``_AlreadyDone`` (and writes nothing) when
    another process processed one of them.
    """
    entries: list[OutboxEntry] = []
    rows: dict[int, int] = {}
    with services.db.session() as session:
        for wave in _waves(plans):
            carriers: dict[Key, dict[str, str]] = {}
            raised = [plan.groups(plan.outcome.alerts) for plan in wave]
            for plan, groups in zip(wave, raised, strict=True):
                carriers.update(_carriers(plan, groups))
            news = _ledger_raise(session, services, wave, carriers)
            cleared = _ledger_clear(session, wave, wave[0].now)
            for plan, undone, groups in zip(wave, cleared, raised, strict=True):
                outcome = plan.outcome
                cid = outcome.contract.id
                fresh = [a for a in outcome.alerts if (cid, *a.key) in news]
                # Usually every alert raised is news: its groups are then the carriers' groups.
                if len(fresh) != len(outcome.alerts):
                    groups = plan.groups(fresh)
                mine = [
                    entry
                    for group in groups + plan.change_groups()
                    for entry in _entries(outcome, group, plan.now)
                ]
                mine += _follow_ups(plan, undone)
                rows[outcome.submission.id] = len(mine)
                entries += mine
        now = plans[0].now
        written = outbox.enqueue_new_in(session, entries, now)
        _finish(session, services, rows, now)
    if written:
        log.info("alerts: %d submission(s) wrote %d outbox row(s)", len(plans), written)
    return written


def _follow_ups(plan: _Fanout, undone: Sequence[tuple[Alert, dict[str, str]]]) -> list[OutboxEntry]:
    """The "back to amber/green" follow-ups, one per target that heard the original, threaded."""
    outcome = plan.outcome
    by_target: dict[str, _Group] = {}
    for alert, sent in undone:
        for target, key in sent.items():
            platform, _, channel = target.partition(":")
            group = by_target.get(target)
            if group is None:
                direct = _is_direct_target(plan, (platform, channel))
                group = by_target[target] = _Group(
                    "alert_clear",
                    "subscriber" if direct is not None else "channel",
                    (platform, channel),
                    bool(direct),
                    thread=key,
                )
                group.watchers = _watchers_of(plan, (platform, channel))
            if alert not in group.alerts:
                group.alerts.append(alert)
    out = []
    for group in by_target.values():
        if group.target in plan.silenced:
            continue
        out += _entries(outcome, group, plan.now)
    return out


def _is_direct_target(plan: _Fanout, target: tuple[str, str]) -> bool | None:
    """For a subscriber's target: whether it is a DM; None when it is not a subscriber's."""
    for sub in plan.watching:
        if sub.place.target == target:
            return sub.place.direct
    return None


def _watchers_of(plan: _Fanout, target: tuple[str, str]) -> list[int]:
    return [s.id for s in plan.watching if s.place.target == target]


# ---------------------------------------------------------------------------------- building


def compose_alert(
    services: Services, policy: AccessPolicy | None, message: OutboxMessage
) -> Reply | None:
    """An alert as delivered (``services.hooks.composers`` for every alert kind).

    A subscriber's copy is checked when it is built: the watch must still exist, its owner must
    still see the contract, and the target must not have muted it since; otherwise None
    withholds it. The contract's own audiences always hear.
    """
    cid = message.contract_id or ""
    if message.audience == "subscriber" and not _still_wanted(services, policy, message, cid):
        return None
    title = reminders.title(message.kind) + (f" · {cid}" if cid else "")
    reply = Reply(title, message.text, kind="info")
    for action in message.payload.get("actions") or []:
        reply.actions.append(Action(str(action["label"]), str(action["command"]), "primary"))
    return reply


def _still_wanted(
    services: Services, policy: AccessPolicy | None, message: OutboxMessage, cid: str
) -> bool:
    ids = [int(i) for i in message.payload.get("watchers") or []]
    rules = policy_for(services, policy)
    if ids:
        subs = subscriptions_by_id(services, ids)
    else:
        # Written by the tick (``sanction_money_messages``): the watches are the target's own
        # that hear this kind now, so an unwatch after the row was queued still withholds it.
        target = (message.platform, message.channel)
        subs = [
            s
            for s in watchers(services, [cid]).get(cid, [])
            if s.place.target == target and s.hears(message.kind, None)
        ]
    if not any(may_see(rules, s, cid) for s in subs):
        return False
    silenced = muted(services, [cid], services.now()).get(cid, {})
    return (message.platform, message.channel) not in silenced


# ---------------------------------------------------------------------------------- sanctions


def _recent_months(contract: Contract, end: datetime) -> list[Period]:
    """The month holding ``end`` and the one before (a month's figures and late events arrive
    in the next), kept inside the contract; none once it is over by more than a month."""
    day = end.astimezone(LONDON).date()
    if day < contract.start or day > contract.end + timedelta(days=31):
        return []
    current = month_of(min(day, contract.end), contract)
    first = month_of(contract.start, contract)
    previous = current.previous()
    return [previous, current] if previous.start >= first.start else [current]


def _band(contract: Contract, points: int) -> int:
    pp = contract.payments.penalty_points
    return 0 if pp is None else sum(1 for b in pp.bands if points > b.over)


def sanction_money_messages(services: Services, start: datetime, end: datetime) -> list[Message]:
    """``alert_money`` for sanctions deductions new or larger in ``(start, end]``: a message
    provider for the tick (``services.hooks.messages``).

    For each contract whose ledger may have changed then (``kpibot.features.sanctions``'s
    candidates: events, figures or waivers recorded, or a rectification deadline passing), the
    ledgers of the month holding ``end`` and the one before, as known at ``start`` and at
    ``end``, are compared (``sanction_money_arising``). The contract's ``alerts.money``
    audience hears each, and so does every ``money`` (or every-alert) watcher, by DM after quiet
    hours. Keys are ``<contract>|sanctions-<month>|alert_money|<audience>|sanction:<rule>:<amount>``
    (plus the target): the same deduction seen again writes nothing, a larger one is news once.
    The banded points deduction is left to ``points_band`` for the contract's own audience
    when the points crossed a band in the same window, so nobody hears it twice.
    """
    out: list[Message] = []
    when = end.astimezone(LONDON)
    candidates = sanction_candidates(services, start, end)
    watching = watchers(services, candidates)
    silenced = muted(services, candidates, end)
    for cid in sorted(candidates):
        contract = services.contract(cid)
        if contract is None:
            continue
        months = _recent_months(contract, end)
        if not months:
            continue
        inputs = sanction_inputs(services, contract)
        before = evaluate_sanctions(contract, months, inputs, as_utc(start)).months
        after = evaluate_sanctions(contract, months, inputs, as_utc(end)).months
        for was, now in zip(before, after, strict=True):
            out += _sanction_messages(contract, was, now, when, watching.get(cid, []), silenced)
    return out


def _sanction_messages(
    contract: Contract,
    before: MonthLedger,
    after: MonthLedger,
    when: datetime,
    watching: Sequence[Subscription],
    silenced: Mapping[str, Mapping[tuple[str, str], datetime]],
) -> list[Message]:
    terms = contract.alerts
    banded = _band(contract, after.points) > _band(contract, before.points)
    kpis = {ln.rule: ln.kpi for ln in after.lines}
    head = SANCTION_HEAD.format(name=contract.name)
    foot = SANCTION_FOOT.format(contract=contract.id, month=after.label)
    period = f"sanctions-{after.label}"
    out: list[Message] = []
    for alert in sanction_money_arising(before, after, terms):
        rule = alert.subject.split(":")[1]
        body = f"{head}\n• {alert.line}\n{foot}"
        if not (banded and rule == "points"):
            for audience in alert.audience:
                out.append(
                    Message(when, contract.id, alert.kind, audience, period, alert.subject, body)
                )
        quiet_ones = silenced.get(contract.id, {})
        for sub in watching:
            target = sub.place.target
            if target in quiet_ones or not sub.hears(alert.kind, kpis.get(rule) or None):
                continue
            note = WATCHING_NOTE.format(contract=contract.id)
            out.append(
                Message(
                    quiet(when) if sub.place.direct else when,
                    contract.id,
                    alert.kind,
                    "subscriber",
                    period,
                    alert.subject,
                    f"{body}\n{note}",
                    target,
                )
            )
    # One message per (audience or target, key): two watches of one target hear it once.
    return list({(m.key, m.target): m for m in out}.values())


# ---------------------------------------------------------------------------------- preview


def preview_alerts(
    services: Services,
    contract: Contract,
    figures: Sequence[NewFigure],
    at: datetime,
    policy: AccessPolicy | None = None,
) -> list[Message]:
    """The alerts ``figures`` would raise if imported at ``at``, one message per kind and
    audience (subscribers by name); reads the store, writes nothing."""
    rules = policy_for(services, policy)
    versions = versions_frame(services.db, [contract.id])
    before = current_as_of(versions)
    staged = pd.DataFrame(
        [
            {
                "id": -1 - i,
                "contract": contract.id,
                "kpi": f.kpi,
                "period": f.period.label,
                "value": f.value,
                "benchmark": f.benchmark,
                "submission": 2**62,
                "supersedes": None,
                "status": "submitted",
            }
            for i, f in enumerate(figures)
        ]
    )
    changed = list(dict.fromkeys((f.kpi, f.period.label) for f in figures))
    keep = ~before.set_index(["kpi", "period"]).index.isin(changed)
    after = pd.concat([before[keep], staged], ignore_index=True)
    submission = Submission(0, contract.id, "preview", "import", as_utc(at))
    outcome = Outcome(submission, contract, changed=changed, actor_name=PREVIEW_ACTOR)
    frame = evaluate_states(
        {contract.id: contract},
        pd.concat([before.assign(state=0), after.assign(state=1)], ignore_index=True),
    )
    old = frame[frame["state"] == 0] if not frame.empty else frame
    new = frame[frame["state"] == 1] if not frame.empty else frame
    outcome.after = new
    _raise(services, outcome, old, new, before, after)
    with services.db.session(read_only=True) as session:
        standing = session.execute(
            select(ALERTS.c.kind, ALERTS.c.subject, ALERTS.c.period).where(
                ALERTS.c.contract_id == contract.id, ALERTS.c.cleared_at.is_(None)
            )
        ).all()
    active = {(k, s, p) for k, s, p in standing}
    alerts = [a for a in outcome.alerts if a.key not in active]
    follow = clearing(
        contract,
        new,
        [a for a in active if (a[1], a[2]) in set(changed)],
        units_of(contract),
    )
    stored = bindings_by_contract(services.db)
    bound = [ch for ch, c in rules.channels.items() if c == contract.id]
    bound += [ch for _p, ch in stored.get(contract.id, [])]
    plan = _Fanout(
        outcome,
        rules,
        bound,
        watchers(services, [contract.id]).get(contract.id, []),
        {},
        as_utc(at),
    )
    out: list[Message] = []
    seen: set[tuple[str, str, str]] = set()
    for group in plan.groups(alerts) + plan.change_groups():
        items = [a.line for a in group.alerts] if group.kind != "alert_change" else outcome.changes
        who = group.audience
        who_key = f"{group.target[0]}:{group.target[1]}" if who == "subscriber" else who
        if (group.kind, who, who_key) in seen:
            continue
        seen.add((group.kind, who, who_key))
        text = _text(outcome, group, items)
        if who == "subscriber":
            text = f"To {who_key}: {text}"
        when = quiet(at) if group.direct else at
        out.append(_message(outcome, group, text, when.astimezone(LONDON)))
    if follow:
        group = _Group("alert_clear", "channel", ("", ""), False, list(follow))
        out.append(_message(outcome, group, _text(outcome, group, [a.line for a in follow]), at))
    return sorted(out, key=lambda m: (m.when, reminders.order(m.kind), m.audience))
