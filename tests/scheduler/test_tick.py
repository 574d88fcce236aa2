"""The scheduler end to end: tick, outbox, dispatcher, deliverers, leader, runner and preview.

Store-backed tests run on SQLite and PostgreSQL: the ``db`` fixture, or ``shared_db`` (one
migrated database per backend, its outbox emptied per test) for tests that touch only the outbox.
The kill test (both backends) and the replica test (PostgreSQL, as in production) run
``tests/scheduler/worker.py`` as real processes and SIGKILL one mid-work.
"""

from __future__ import annotations

import csv
import io
import logging
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import select, text

from kpibot.app.wiring import services_for_database
from kpibot.chat.console import ConsoleDeliverer
from kpibot.chat.slack_deliverer import SlackDeliverer
from kpibot.core.access import AccessPolicy
from kpibot.core.audience import audience_targets
from kpibot.core.protocol import Reply
from kpibot.core.services import Services
from kpibot.core.settings import Settings
from kpibot.engine.calendar import LONDON
from kpibot.engine.model import Contract, Party
from kpibot.features.summary import composer
from kpibot.scheduler.delivery import DeliveryError, RateLimited
from kpibot.scheduler.dispatch import Dispatcher, plain_composer
from kpibot.scheduler.inputs import read_receipts
from kpibot.scheduler.leader import LeaderLock
from kpibot.scheduler.preview import format_csv, preview
from kpibot.scheduler.runner import SchedulerService
from kpibot.scheduler.tick import ReminderTick
from kpibot.store.database import Database
from kpibot.store.outbox import OutboxEntry, OutboxMessage, OutboxRepository
from kpibot.store.rows import NewFigure
from kpibot.store.schema import OutboxRecord
from tests.conftest import ACCESS_FILE, BACKENDS, FixedClock, _database, _postgres_database
from tests.slack_mock import SlackApiServer

ROOT = Path(__file__).resolve().parents[2]
# Seed 003, section 4a: the contract's own table of report due dates.
SEED_003_DUE = [
    date(2018, 10, 13), date(2019, 1, 11), date(2019, 4, 12), date(2019, 7, 12),
    date(2019, 10, 11), date(2020, 1, 10), date(2020, 4, 10), date(2020, 7, 10),
    date(2020, 10, 9), date(2021, 1, 8), date(2021, 4, 9), date(2021, 6, 30),
]  # fmt: skip
LADDER = ("reminder", "due", "overdue", "escalation")


def london(y: int, m: int, d: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(y, m, d, hour, minute, tzinfo=LONDON)


def rows(db: Database, **where: Any) -> list[OutboxRecord]:
    with db.session(read_only=True) as session:
        query = select(OutboxRecord).order_by(OutboxRecord.due_at, OutboxRecord.id)
        for name, value in where.items():
            query = query.where(getattr(OutboxRecord, name) == value)
        return list(session.scalars(query))


def local(row: OutboxRecord) -> datetime:
    return row.due_at.astimezone(LONDON)


def tick_daily(tick: ReminderTick, first: date, last: date, hour: int = 0) -> int:
    written, day = 0, first
    while day <= last:
        written += tick.tick(london(day.year, day.month, day.day, hour))
        day += timedelta(days=1)
    return written


def stored(services: Services, contract_id: str) -> Contract:
    contract = services.contract(contract_id)
    assert contract is not None
    return contract


@pytest.fixture(scope="module", params=BACKENDS)
def shared_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """One migrated database per backend for the outbox-only tests (migrating is the slow part)."""
    with _database(request.param, request, tmp_path_factory.mktemp("outbox")) as database:
        database.upgrade()
        yield database


@pytest.fixture
def odb(shared_db: Database) -> Database:
    """``shared_db`` with an empty outbox."""
    with shared_db.session() as session:
        session.execute(text("DELETE FROM outbox"))
    return shared_db


@pytest.fixture
def policy() -> AccessPolicy:
    return AccessPolicy.load(ACCESS_FILE)


@pytest.fixture
def svc(db: Database, seed_contracts: dict[str, Contract]) -> Services:
    """The four seed contracts without demo history: every return is still owed."""
    services = services_for_database(
        db, Settings(access_file=ACCESS_FILE), FixedClock(london(2018, 6, 1))
    )
    services.store_contracts(list(seed_contracts.values()), actor="test", with_history=False)
    return services


def entry(
    key: str,
    *,
    platform: str = "table",
    channel: str = "C1",
    due: datetime,
    contract: str | None = None,
    kind: str = "reminder",
    text_: str = "hello",
) -> OutboxEntry:
    return OutboxEntry(
        key, contract, kind, "provider", platform, channel, "2019/20 Q3", key, due, {"text": text_}
    )


# ---------------------------------------------------------------------------- targets


def test_each_audience_goes_to_its_parties_and_bound_channels(
    seed_contracts: dict[str, Contract],
) -> None:
    contract = seed_contracts["one-you-lifestyle"].model_copy(
        update={
            "provider": Party(
                name="P", slack_channel="C-PROV", teams_conversation="19:prov@thread.tacv2"
            ),
            "commissioner": Party(name="C", slack_channel="C-COMM"),
        }
    )
    policy = AccessPolicy(
        channels={
            "C-LIFESTYLE": "one-you-lifestyle",
            "19:board@thread.v2": "one-you-lifestyle",
            "C-TRUST": "childrens-trust",
        }
    )
    assert audience_targets(contract, "provider", policy) == [
        ("slack", "C-PROV"),
        ("teams", "19:prov@thread.tacv2"),
    ]
    assert audience_targets(contract, "commissioner", policy) == [("slack", "C-COMM")]
    assert audience_targets(contract, "channel", policy) == [
        ("slack", "C-LIFESTYLE"),
        ("teams", "19:board@thread.v2"),
        ("slack", "C-PROV"),
        ("teams", "19:prov@thread.tacv2"),
        ("slack", "C-COMM"),
    ]
    bare = seed_contracts["one-psychology"]
    assert audience_targets(bare, "provider", policy) == [("console", "one-psychology")]
    assert audience_targets(bare, "attendees", None) == [("console", "one-psychology")]


# ---------------------------------------------------------------------------- the tick


def test_ticking_a_contract_year_follows_each_calendar(
    svc: Services, db: Database, policy: AccessPolicy
) -> None:
    """Daily ticks over one-you-lifestyle's Year 1 (Nov 2018-Oct 2019) and one-psychology's Year 2
    (Jul 2019-Jun 2020); the preview tests cover every date of seed 003's table."""
    tick = ReminderTick(svc, policy, None, start=london(2018, 11, 1))
    tick_daily(tick, date(2018, 11, 2), date(2020, 7, 1))
    psych = rows(db, contract_id="one-psychology")
    life = rows(db, contract_id="one-you-lifestyle")

    # Seed 003's own table, one due message per return, on its due date.
    due = [r for r in psych if r.kind == "due"]
    assert [local(r).date() for r in due] == [
        d for d in SEED_003_DUE if date(2018, 11, 1) < d < date(2020, 7, 1)
    ]
    assert len({r.period for r in due}) == len(due)
    # Seed 001: quarters Nov-Jan due the 15th of the month after ("15th February for Q1"), and
    # the annual return by 30 April.
    quarterly = [
        (r.period, local(r).date()) for r in life if r.kind == "due" and "Q" in (r.period or "")
    ]
    assert quarterly == [
        ("2018/19 Q1", date(2019, 2, 15)),
        ("2018/19 Q2", date(2019, 5, 15)),
        ("2018/19 Q3", date(2019, 8, 15)),
        ("2018/19 Q4", date(2019, 11, 15)),
        ("2019/20 Q1", date(2020, 2, 15)),
        ("2019/20 Q2", date(2020, 5, 15)),
    ]
    annual = [
        (r.period, local(r).date()) for r in life if r.kind == "due" and "Q" not in (r.period or "")
    ]
    assert annual == [("2018/19", date(2019, 4, 30)), ("2019/20", date(2020, 4, 30))]

    steps = {(r.contract_id, r.period, r.step): local(r) for r in psych + life}
    # 10 April 2020 was Good Friday: Easter Monday is no working day.
    assert steps["one-psychology", "2019/20 Q4", "overdue-1"] == london(2020, 4, 14, 9)
    assert steps["one-psychology", "2019/20 Q4", "escalation-5"] == london(2020, 4, 20, 9)
    # Due Tuesday 30 April 2019; Monday 6 May was the early May bank holiday.
    assert steps["one-you-lifestyle", "2018/19", "overdue-3"] == london(2019, 5, 3, 9)
    assert steps["one-you-lifestyle", "2018/19", "overdue-4"] == london(2019, 5, 7, 9)
    assert steps["one-you-lifestyle", "2018/19", "escalation-5"] == london(2019, 5, 8, 9)

    # Every ladder message is at 09:00 local time, in winter (GMT) and summer (BST) alike.
    ladder = [r for r in psych + life if r.kind in LADDER]
    assert {local(r).time().isoformat() for r in ladder} == {"09:00:00"}
    assert {local(r).utcoffset() for r in ladder} == {timedelta(0), timedelta(hours=1)}

    # The channel audience of one-you-lifestyle also reaches its bound Slack channel.
    summary = [
        (r.platform, r.channel) for r in life if r.kind == "summary" and r.period == "2019/20 Q1"
    ]
    assert summary == [("slack", "C-LIFESTYLE")]

    # The live tick wrote exactly what the preview lists for the same days.
    for cid in ("one-psychology", "one-you-lifestyle"):
        listed = preview(
            stored(svc, cid), date(2018, 11, 1), date(2020, 6, 30), no_submissions=True
        )
        written = {r.payload["message"] for r in rows(db, contract_id=cid)}
        assert {m.key for m in listed} == written


def test_the_ladder_stops_as_soon_as_the_return_is_submitted(svc: Services, db: Database) -> None:
    tick = ReminderTick(svc, None, start=london(2019, 12, 20))
    tick_daily(tick, date(2019, 12, 21), date(2020, 1, 5))
    contract = stored(svc, "one-psychology")
    svc.clock.when = london(2020, 1, 5, 12)  # type: ignore[attr-defined]
    svc.figures.submit(
        "one-psychology",
        [NewFigure("HLO-1", contract.parse_period("2019/20 Q3"), value=3)],
        actor="U-PSYCH",
        source="chat",
    )
    tick_daily(tick, date(2020, 1, 6), date(2020, 1, 31))
    q3 = rows(db, contract_id="one-psychology", period="2019/20 Q3")
    assert [(r.kind, r.step) for r in q3] == [
        ("reminder", "d-14"),
        ("reminder", "d-7"),
        ("summary", "summary"),
        ("meeting", "meeting-2020-01-31"),
    ]
    assert not rows(db, kind="service_failure", period="2019/20 Q3")


def test_catch_up_sends_each_message_once_and_collapses_stale_steps(
    svc: Services, db: Database
) -> None:
    tick = ReminderTick(svc, None, start=london(2020, 1, 8))
    assert tick.tick(london(2020, 1, 9, 8)) == 0
    written = tick.tick(london(2020, 1, 19, 8))  # ten days down
    q3 = rows(db, contract_id="one-psychology", period="2019/20 Q3")
    assert [(r.kind, r.step) for r in q3] == [
        ("service_failure", "service-failure"),
        ("summary", "summary"),
        ("overdue", "overdue-4"),
        ("escalation", "escalation-5"),
    ]
    assert written == len(rows(db))
    overdue = q3[2]
    assert (
        "4 working days ago" in overdue.payload["text"]
        and "not sent while kpibot was down" in overdue.payload["text"]
    )
    assert tick.tick(london(2020, 1, 19, 8)) == 0
    assert tick.tick(london(2020, 1, 19, 8, 1)) == 0


def test_two_replicas_ticking_one_window_write_it_once(svc: Services, db: Database) -> None:
    first = ReminderTick(svc, None, start=london(2020, 1, 1))
    second = ReminderTick(svc, None, start=london(2020, 1, 1))
    assert first.watermark(london(2020, 1, 2)) == second.watermark(london(2020, 1, 2))
    now = london(2020, 1, 20)
    planned = second.messages(london(2020, 1, 1), now)
    assert first.tick(now) > 0
    assert second.tick(now) == 0  # the watermark moved: nothing written twice
    assert len(rows(db)) == len(planned) and len({r.idempotency_key for r in rows(db)}) == len(
        planned
    )


def test_horizon_inputs_plan_exactly_what_whole_calendars_plan(
    seed_contracts: dict[str, Contract],
) -> None:
    """The tick builds each contract's inputs over a horizon; the plan must not change."""
    from kpibot.engine.calendar import ReturnCalendar
    from kpibot.scheduler.inputs import HorizonCalendar
    from kpibot.scheduler.plan import ContractInputs, plan_window

    life = seed_contracts["one-you-lifestyle"]
    monthly = life.model_copy(
        update={
            "id": "monthly",
            "reporting": life.reporting.model_copy(update={"period": "month"}),
            "calendar": {
                "due": "10 working days after period end",
                "reminders": {"before_days": [3], "escalate_after_working_days": 12},
            },
        }
    )
    yearly = life.model_copy(
        update={
            "id": "yearly",
            "reporting": life.reporting.model_copy(update={"period": "year"}),
            "calendar": {"due": "within 3 months of year end", "summary_grace_days": 20},
        }
    )
    rng = random.Random(11)
    for contract in (seed_contracts["one-psychology"], life, monthly, yearly):
        calendar = ReturnCalendar(contract)
        received: dict[str, datetime] = {}
        for ret in calendar.returns_due_between(date.min, date.max):  # on time, late, or never
            late = rng.choice([None, -3, 2, 9])
            if late is not None:
                received[ret.period.label] = (ret.due_at + timedelta(days=late)).astimezone(UTC)
        whole = ContractInputs(contract, calendar, received)
        start = london(2018, 6, 1)
        while start < london(2022, 1, 1):
            end = start + timedelta(hours=rng.choice([1, 9, 24, 24 * 3, 24 * 11, 24 * 40]))
            first = start.date() - timedelta(days=1)
            last = end.date() + timedelta(days=1 + rng.choice([0, 5, 30]))
            view = ContractInputs(contract, HorizonCalendar(calendar, first, last), received)  # type: ignore[arg-type]
            assert plan_window([view], start, end) == plan_window([whole], start, end), (
                contract.id,
                start,
                end,
            )
            start = end


def test_open_incidents_are_planned_with_the_returns(svc: Services, db: Database) -> None:
    from kpibot.engine.reminders import IncidentClock

    assert svc.hooks.incident_clocks is not None  # kpibot.features.incidents, via the wiring
    assert svc.hooks.incident_clocks(svc, None, london(2020, 1, 1)) == {}  # no incident yet
    clock = IncidentClock(
        7,
        "one-psychology",
        "sui",
        "Serious untoward incident",
        london(2020, 2, 3, 10),
        london(2020, 2, 4, 10),
    )
    tick = ReminderTick(svc, None, lambda *_: {"one-psychology": [clock]}, start=london(2020, 2, 3))
    tick.tick(london(2020, 2, 3, 12))
    tick.tick(london(2020, 2, 5))
    found = [(r.kind, r.audience, local(r)) for r in rows(db, period="incident-7")]
    assert found == [
        ("incident_reminder", "provider", london(2020, 2, 3, 22)),
        ("incident_reminder", "provider", london(2020, 2, 4, 7, 36)),
        ("incident_escalation", "commissioner", london(2020, 2, 4, 10)),
    ]


# ---------------------------------------------------------------------------- the outbox


def test_enqueue_ignores_keys_already_written(odb: Database) -> None:
    outbox = OutboxRepository(odb)
    now = london(2020, 1, 10, 9)
    db_entries = [entry(f"k{i}", due=now) for i in range(5)]
    assert outbox.enqueue(db_entries, now) == 5
    assert outbox.enqueue([*db_entries, entry("k5", due=now)], now) == 1
    assert outbox.counts() == {"pending": 6}


def test_claims_are_exclusive_and_a_dead_dispatchers_rows_come_back(odb: Database) -> None:
    outbox = OutboxRepository(odb, lease=timedelta(minutes=2))
    now = london(2020, 1, 10, 9)
    outbox.enqueue(
        [entry(f"k{i}", due=now - timedelta(minutes=i)) for i in range(40)]
        + [entry("later", due=now + timedelta(hours=1))],
        now,
    )
    claimed: list[list[int]] = []

    def claim_all(worker: str) -> None:
        mine: list[int] = []
        while batch := outbox.claim(worker, now, limit=3):
            mine.extend(m.id for m in batch)
        claimed.append(mine)

    threads = [threading.Thread(target=claim_all, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for mine in claimed for i in mine]
    assert len(every) == len(set(every)) == 40  # no row claimed twice, the future one not at all
    assert outbox.claim("late", now + timedelta(minutes=1)) == []  # leases still running

    # Leases end: another dispatcher takes the rows over, and the first can no longer settle them.
    stale = OutboxMessage(**{**_fields(rows(odb, idempotency_key="k0")[0])})
    again = outbox.claim("rescuer", now + timedelta(minutes=3), limit=100)
    assert len(again) == 40 and all(m.attempts == 2 for m in again)
    assert not outbox.mark_sent(stale, now)
    assert outbox.mark_sent(next(m for m in again if m.key == "k0"), now, "ref-1")
    assert rows(odb, idempotency_key="k0")[0].payload["delivered"] == {"ref": "ref-1"}


def _fields(record: OutboxRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "key": record.idempotency_key,
        "contract_id": record.contract_id,
        "kind": record.kind,
        "audience": record.audience,
        "platform": record.platform,
        "channel": record.channel,
        "period": record.period,
        "step": record.step,
        "due_at": record.due_at,
        "payload": record.payload,
        "attempts": record.attempts,
        "claim": record.claimed_by,
        "claimed_at": record.claimed_at,
    }


# ---------------------------------------------------------------------------- the dispatcher


class Recorder:
    """A deliverer that records, optionally failing the first calls with given errors."""

    def __init__(self, *errors: Exception) -> None:
        self.sent: list[tuple[str, str]] = []
        self.errors = list(errors)

    def deliver(self, message: OutboxMessage, reply: Reply) -> str | None:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((message.channel, message.key))
        return f"ref-{message.id}"

    def find_delivered(self, message: OutboxMessage) -> str | None:
        return None


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


def test_dispatch_keeps_one_message_a_second_per_channel(odb: Database) -> None:
    outbox, clock, sink = OutboxRepository(odb), FakeTime(), Recorder()
    now = london(2020, 1, 10, 9)
    outbox.enqueue(
        [entry(f"a{i}", channel="C1", due=now) for i in range(3)]
        + [entry(f"b{i}", channel="C2", due=now) for i in range(2)],
        now,
    )
    dispatcher = Dispatcher(
        outbox, {"table": sink}, pacing={"table": 1.0}, sleep=clock.sleep, monotonic=clock.monotonic
    )
    assert dispatcher.run_once(now) == 5
    assert sink.sent == [("C1", "a0"), ("C1", "a1"), ("C1", "a2"), ("C2", "b0"), ("C2", "b1")]
    assert clock.sleeps == [1.0, 1.0, 1.0]  # C2's first message needed no wait
    assert outbox.counts() == {"sent": 5}


def test_a_batch_that_runs_long_hands_its_rows_back_before_the_lease_ends(odb: Database) -> None:
    outbox, clock, sink = OutboxRepository(odb, lease=timedelta(seconds=10)), FakeTime(), Recorder()
    now = london(2020, 1, 10, 9)
    outbox.enqueue([entry(f"a{i}", channel="C1", due=now) for i in range(9)], now)
    dispatcher = Dispatcher(
        outbox, {"table": sink}, pacing={"table": 1.0}, sleep=clock.sleep, monotonic=clock.monotonic
    )
    assert dispatcher.run_once(now) == 7  # 1 s apart: past 5 s, half the lease is gone
    assert [r.idempotency_key for r in rows(odb, status="pending")] == ["a7", "a8"]
    assert {r.attempts for r in rows(odb, status="pending")} == {0}


def test_a_rate_limited_channel_is_rescheduled_not_failed(odb: Database) -> None:
    outbox, clock = OutboxRepository(odb), FakeTime()
    sink = Recorder(RateLimited(30))
    now = london(2020, 1, 10, 9)
    outbox.enqueue(
        [entry(f"a{i}", channel="C1", due=now) for i in range(3)]
        + [entry("b0", channel="C2", due=now)],
        now,
    )
    dispatcher = Dispatcher(outbox, {"table": sink}, sleep=clock.sleep, monotonic=clock.monotonic)
    assert dispatcher.run_once(now) == 1 and sink.sent == [("C2", "b0")]
    waiting = rows(odb, status="pending")
    assert [r.idempotency_key for r in waiting] == ["a0", "a1", "a2"]
    assert all(
        r.attempts == 0 and r.next_attempt_at >= now + timedelta(seconds=29) for r in waiting
    )
    clock.now += 31  # the channel's pause is kept in real (monotonic) time
    assert dispatcher.run_once(now + timedelta(seconds=31)) == 3


def test_failures_back_off_then_give_up(odb: Database) -> None:
    outbox = OutboxRepository(odb)
    now = london(2020, 1, 10, 9)
    outbox.enqueue([entry("x", due=now)], now)
    sink = Recorder(*[DeliveryError("Slack refused chat.postMessage: fatal_error")] * 3)
    dispatcher = Dispatcher(outbox, {"table": sink}, max_attempts=3, backoff=timedelta(seconds=30))
    delays = []
    for _ in range(3):
        dispatcher.run_once(now)
        row = rows(odb)[0]
        if row.status == "pending":
            delays.append(row.next_attempt_at - now.astimezone(UTC))
            now = row.next_attempt_at
    assert delays == [timedelta(seconds=30), timedelta(seconds=60)]
    row = rows(odb)[0]
    assert row.status == "failed" and row.attempts == 3 and "fatal_error" in (row.last_error or "")
    outbox.enqueue([entry("y", due=now)], now)
    Dispatcher(
        outbox, {"table": Recorder(DeliveryError("channel_not_found", permanent=True))}
    ).run_once(now)
    assert rows(odb, idempotency_key="y")[0].status == "failed"  # at once: no retry can cure it


def test_slack_429_is_retried_after_retry_after_and_sent_once(
    odb: Database, slack_api: SlackApiServer
) -> None:
    outbox = OutboxRepository(odb)
    now = london(2020, 1, 10, 9)
    outbox.enqueue(
        [entry("s", platform="slack", channel="C-PROV", due=now, text_="Return due today")], now
    )
    slack = SlackDeliverer(WebClient(token="xoxb-test", base_url=slack_api.api_url))
    dispatcher = Dispatcher(outbox, {"slack": slack}, sleep=lambda _: None)
    slack_api.fail_next("chat.postMessage", retry_after=1)
    assert dispatcher.run_once(now) == 0
    row = rows(odb)[0]
    assert (row.status, row.attempts, row.next_attempt_at) == (
        "pending",
        0,
        (now + timedelta(seconds=1)).astimezone(UTC),
    )
    assert dispatcher.run_once(now) == 0  # not before Retry-After
    assert dispatcher.run_once(now + timedelta(seconds=1)) == 1
    posts = slack_api.calls("chat.postMessage")
    assert (
        len(posts) == 2
        and posts[1]["channel"] == "C-PROV"
        and "Return due today" in posts[1]["text"]
    )
    assert posts[1]["metadata"]["event_payload"]["outbox_id"] == row.id
    assert rows(odb)[0].status == "sent" and rows(odb)[0].payload["delivered"]["ref"].startswith(
        "1700000000."
    )


@pytest.mark.parametrize(
    ("header", "wait"),
    [("soon", 1), ("inf", 1), ("nan", 1), ("-30", 1), ("999999999999", 900), ("120", 120)],
)
def test_a_retry_after_slack_could_not_mean_waits_a_bounded_time_and_sends_once(
    odb: Database, slack_api: SlackApiServer, header: str, wait: int
) -> None:
    # 'inf' made timedelta() raise out of the dispatcher; a thousand years parked the channel.
    outbox = OutboxRepository(odb)
    now = london(2020, 1, 10, 9)
    outbox.enqueue([entry("s", platform="slack", channel="C-PROV", due=now)], now)
    slack = SlackDeliverer(WebClient(token="xoxb-test", base_url=slack_api.api_url))
    clock = [0.0]
    dispatcher = Dispatcher(
        outbox, {"slack": slack}, sleep=lambda _: None, monotonic=lambda: clock[0]
    )
    slack_api.fail_next("chat.postMessage", retry_after=header)
    assert dispatcher.run_once(now) == 0
    row = rows(odb)[0]
    assert (row.status, row.next_attempt_at) == (
        "pending",
        (now + timedelta(seconds=wait)).astimezone(UTC),
    )
    clock[0] += wait
    assert dispatcher.run_once(now + timedelta(seconds=wait)) == 1
    assert len(slack_api.calls("chat.postMessage")) == 2 and rows(odb)[0].status == "sent"


def test_a_quarterly_summary_is_composed_at_delivery_with_its_chart(
    services: Services, slack_api: SlackApiServer
) -> None:
    outbox = OutboxRepository(services.db)
    now = london(2020, 1, 20, 9)
    outbox.enqueue(
        [
            OutboxEntry(
                "sum",
                "childrens-trust",
                "summary",
                "channel",
                "slack",
                "C-TRUST",
                "2019/20 Q3",
                "summary",
                now,
                {"text": "Quarterly RAG summary"},
            )
        ],
        now,
    )
    slack = SlackDeliverer(WebClient(token="xoxb-test", base_url=slack_api.api_url))
    dispatcher = Dispatcher(outbox, {"slack": slack}, composer(services), sleep=lambda _: None)
    slack_api.fail_next("files.getUploadURLExternal", retry_after=1)
    assert dispatcher.run_once(now) == 0  # posted, but the chart was rate limited
    assert dispatcher.run_once(now + timedelta(seconds=1)) == 1
    assert len(slack_api.calls("chat.postMessage")) == 1  # the text was not posted twice
    post = slack_api.calls("chat.postMessage")[0]
    assert "Quarterly RAG summary" in post["text"] and "red" in post["text"]
    assert slack_api.calls("files.completeUploadExternal")
    assert next(iter(slack_api.uploads.values())).startswith(b"\x89PNG")


class _FailFirstReportUpload(WebClient):
    """Slack refuses the first upload of the report (after the chart went), as a 429 would."""

    def __init__(self, server: SlackApiServer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.server = server
        self.armed = True

    def files_upload_v2(self, **kwargs: Any) -> Any:
        if self.armed and str(kwargs.get("filename", "")).endswith(".xlsx"):
            self.armed = False
            self.server.fail_next("files.getUploadURLExternal", retry_after=1)
        return super().files_upload_v2(**kwargs)


def test_a_quarterly_summary_uploads_its_report_and_a_retry_sends_only_what_is_missing(
    services: Services, slack_api: SlackApiServer
) -> None:
    outbox = OutboxRepository(services.db)
    now = london(2020, 1, 20, 9)
    outbox.enqueue(
        [
            OutboxEntry(
                "sum-report",
                "childrens-trust",
                "summary",
                "channel",
                "slack",
                "C-TRUST",
                "2019/20 Q3",
                "summary",
                now,
                {"text": "Quarterly RAG summary"},
            )
        ],
        now,
    )
    client = _FailFirstReportUpload(slack_api, token="xoxb-test", base_url=slack_api.api_url)
    dispatcher = Dispatcher(
        outbox, {"slack": SlackDeliverer(client)}, composer(services), sleep=lambda _: None
    )
    assert dispatcher.run_once(now) == 0  # posted with its chart; the report was rate limited
    assert dispatcher.run_once(now + timedelta(seconds=1)) == 1
    assert len(slack_api.calls("chat.postMessage")) == 1
    names = [c["filename"] for c in slack_api.calls("files.getUploadURLExternal")]
    report = "childrens-trust-2019-20-Q3-performance-report.xlsx"
    assert names == ["childrens-trust-2019-20-Q3-rag-grid.png", report, report]
    assert len(slack_api.calls("files.completeUploadExternal")) == 2
    png, xlsx = slack_api.uploads.values()
    assert png.startswith(b"\x89PNG") and xlsx.startswith(b"PK")
    assert rows(services.db)[0].status == "sent"


class HistoryClient(WebClient):
    """The mock has no conversations.history: answer it from the messages the mock received."""

    def __init__(self, server: SlackApiServer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.server = server

    def conversations_history(self, **kwargs: Any) -> Any:
        return {
            "messages": [
                {"ts": f"1.{i}", "metadata": body.get("metadata")}
                for i, body in enumerate(self.server.calls("chat.postMessage"))
                if body.get("channel") == kwargs["channel"]
            ]
        }


@pytest.mark.parametrize("history", [True, False], ids=["deduped", "at-least-once"])
def test_slack_redelivery_after_a_crash(
    odb: Database, slack_api: SlackApiServer, history: bool
) -> None:
    outbox = OutboxRepository(odb)
    now = london(2020, 1, 10, 9)
    outbox.enqueue([entry("s", platform="slack", channel="C-PROV", due=now)], now)
    client = (
        HistoryClient(slack_api, token="x", base_url=slack_api.api_url)
        if history
        else WebClient(token="x", base_url=slack_api.api_url)
    )
    slack = SlackDeliverer(client)
    [claimed] = outbox.claim("crashing", now)
    slack.deliver(claimed, plain_composer(claimed))  # ... and the process dies before mark_sent
    Dispatcher(outbox, {"slack": slack}, sleep=lambda _: None).run_once(now + timedelta(minutes=3))
    assert rows(odb)[0].status == "sent"
    # With the history scope the duplicate is caught; without it, delivery is at-least-once.
    assert len(slack_api.calls("chat.postMessage")) == (1 if history else 2)


def test_console_deliverer_prints_when_kind_audience_and_text(odb: Database) -> None:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=200, color_system=None)
    outbox = OutboxRepository(odb)
    now = london(2020, 1, 10, 9)
    outbox.enqueue(
        [
            entry(
                "c",
                platform="console",
                channel="one-psychology",
                due=now,
                kind="due",
                text_="The return is due today [sic].",
            )
        ],
        now,
    )
    Dispatcher(outbox, {"console": ConsoleDeliverer(console)}).run_once(now)
    assert console.file.getvalue().strip() == (  # type: ignore[attr-defined]
        "[2020-01-10 09:00] due → provider (one-psychology): The return is due today [sic]."
    )


def test_console_deliverer_saves_an_attached_report_and_says_where(
    odb: Database, tmp_path: Path
) -> None:
    from rich.console import Console

    from kpibot.core.protocol import Attachment, Reply

    console = Console(file=io.StringIO(), width=300, color_system=None)
    message = OutboxRepository(odb)
    now = london(2020, 1, 20, 9)
    message.enqueue([entry("r", platform="console", channel="one-psychology", due=now)], now)
    (claimed,) = message.claim("test", now, 1)
    report = Attachment("one-psychology-2019-20-Q3-performance-report.xlsx", b"PK\x03\x04")
    reply = Reply("Quarterly RAG summary", "0 red", attachment=report)
    ConsoleDeliverer(console, file_dir=tmp_path / "files").deliver(claimed, reply)
    saved = tmp_path / "files" / report.name
    assert saved.read_bytes() == b"PK\x03\x04"
    assert f"(file {saved})" in console.file.getvalue()  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- processes


def worker(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.scheduler.worker", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def url(db: Database) -> str:
    return db.url.render_as_string(hide_password=False)


def create_delivery_log(db: Database) -> None:
    with db.session() as session:
        session.execute(
            text(
                "CREATE TABLE IF NOT EXISTS delivery_log (outbox_id INTEGER NOT NULL, "
                "worker VARCHAR(50) NOT NULL, body VARCHAR(200))"
            )
        )
        session.execute(text("DELETE FROM delivery_log"))


def delivery_counts(db: Database) -> Counter[int]:
    with db.session(read_only=True) as session:
        return Counter(session.scalars(text("SELECT outbox_id FROM delivery_log")))


def test_a_dispatcher_killed_mid_batch_delivers_everything_exactly_once(
    odb: Database, tmp_path: Path
) -> None:
    db = odb
    create_delivery_log(db)
    now = london(2020, 1, 10, 9)
    outbox = OutboxRepository(db)
    outbox.enqueue(
        [
            entry(
                f"kill-{i}",
                platform=("table", "file")[i % 2],
                channel=f"C{i % 3}",
                due=now - timedelta(hours=1),
            )
            for i in range(40)
        ],
        now,
    )
    log_file, go = tmp_path / "deliveries.tsv", tmp_path / "go"

    def lines() -> list[int]:
        return (
            [int(line.split("\t")[0]) for line in log_file.read_text().splitlines()]
            if log_file.exists()
            else []
        )

    common = ["dispatch", "--db", url(db), "--file", str(log_file)]
    first = worker(*common, "--now", now.isoformat(), "--delay", "0.1", "--worker", "first")
    # The restart: a fresh process, started now so that its imports overlap the first's work.
    after_lease = (now + timedelta(minutes=3)).isoformat()
    second = worker(*common, "--now", after_lease, "--wait-for", str(go), "--worker", "second")
    wait_until(
        lambda: sum(delivery_counts(db).values()) + len(lines()) >= 8 or first.poll() is not None,
        60,
        "the first deliveries",
    )
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL
    assert outbox.counts().get("claimed", 0) > 0  # killed mid-batch, its claims left behind
    go.touch()
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    by_platform: dict[str, set[int]] = {"table": set(), "file": set()}
    for r in rows(db):
        by_platform[r.platform].add(r.id)
    table, file = delivery_counts(db), Counter(lines())
    assert set(table) == by_platform["table"] and set(table.values()) == {1}
    assert set(file) == by_platform["file"] and set(file.values()) == {1}
    assert outbox.counts() == {"sent": 40}


@pytest.fixture
def pg_svc(
    request: pytest.FixtureRequest, seed_contracts: dict[str, Contract]
) -> Iterator[Services]:
    """The seed contracts (no history) on PostgreSQL only: the replica test is about its locks."""
    with _postgres_database(request.getfixturevalue("postgres_server")) as database:
        database.upgrade()
        services = services_for_database(database, Settings(), FixedClock(london(2020, 1, 1)))
        services.store_contracts(list(seed_contracts.values()), actor="test", with_history=False)
        yield services


@pytest.mark.postgres
def test_two_replicas_over_a_simulated_month_deliver_once_and_survive_the_leader(
    pg_svc: Services, tmp_path: Path
) -> None:
    svc, db = pg_svc, pg_svc.db
    create_delivery_log(db)
    with db.session() as session:
        session.execute(
            text(
                "CREATE TABLE leader_log (worker VARCHAR(20) NOT NULL, t0 DOUBLE PRECISION NOT NULL, "
                "t1 DOUBLE PRECISION NOT NULL, sim VARCHAR(40) NOT NULL)"
            )
        )
    start, end = london(2020, 1, 1), london(2020, 2, 1)
    month = (end - start).total_seconds()
    real_seconds = 4.0
    args = [
        "--db",
        url(db),
        "--start",
        start.isoformat(),
        "--end",
        end.isoformat(),
        "--speed",
        str(month / real_seconds),
        "--control",
        str(tmp_path),
    ]
    procs = {name: worker("replica", *args, "--worker", name) for name in ("A", "B")}
    wait_until(
        lambda: all((tmp_path / f"ready-{n}").exists() for n in procs), 60, "replicas to start"
    )
    epoch = time.time() + 0.2
    (tmp_path / "go").write_text(str(epoch))

    def ticks() -> list[tuple[str, float, float, str]]:
        with db.session(read_only=True) as session:
            return [
                tuple(r)
                for r in session.execute(
                    text("SELECT worker, t0, t1, sim FROM leader_log ORDER BY t0")
                )
            ]

    wait_until(
        lambda: time.time() > epoch + real_seconds * 0.4 and ticks(), 30, "the leader to tick"
    )
    leader = ticks()[0][0]
    procs[leader].send_signal(signal.SIGKILL)
    killed_at = time.time()
    procs[leader].wait()
    survivor = "B" if leader == "A" else "A"
    out, err = procs[survivor].communicate(timeout=60)
    assert procs[survivor].returncode == 0, err

    log = ticks()
    assert {w for w, *_ in log} == {leader, survivor}
    assert all(w == leader for w, t0, *_ in log if t0 < killed_at)  # one leader at a time ...
    assert all(w == survivor for w, t0, *_ in log if t0 > killed_at)  # ... and the other takes over
    assert max(sim for *_, sim in log) == end.isoformat()

    expected = set()
    for cid in ("one-psychology", "one-you-lifestyle"):
        for m in preview(
            stored(svc, cid), date(2020, 1, 1), date(2020, 1, 31), no_submissions=True
        ):
            expected.add(f"{m.key}|console:{cid}")
    written = rows(db)
    assert {r.idempotency_key for r in written} == expected
    counts = delivery_counts(db)
    assert set(counts) == {r.id for r in written} and set(counts.values()) == {1}
    assert {r.status for r in written} == {"sent"}


# ---------------------------------------------------------------------------- leader and runner


def test_only_one_process_leads_until_it_lets_go(odb: Database) -> None:
    first, second = LeaderLock(odb, "test-lock"), LeaderLock(odb, "test-lock")
    try:
        assert first.acquire() and first.acquire()  # held, and still held
        assert not second.acquire()
        assert LeaderLock(odb, "other-lock").acquire()  # locks are per name
        first.release()
        assert second.acquire()
    finally:
        first.release()
        second.release()


def test_the_service_ticks_dispatches_and_logs_job_errors(
    svc: Services, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    svc.clock.when = london(2020, 1, 11)  # type: ignore[attr-defined]
    sink = Recorder()
    tick = ReminderTick(svc, None, start=london(2020, 1, 8))
    service = SchedulerService(
        svc,
        None,
        {"console": sink},
        tick_seconds=0.05,
        dispatch_seconds=0.05,
        tick=tick,
        leader=LeaderLock(db, "service-test"),
    )
    service.start()
    try:
        wait_until(lambda: len(sink.sent) >= 1, 20, "the service to deliver")
    finally:
        service.shutdown()
    # One tick over 8-11 January: the day-before reminder collapsed into the due message.
    assert [key.split("|")[2] for _, key in sink.sent] == ["due"]

    def broken(now: datetime) -> int:
        raise RuntimeError("store unreachable")

    tick.tick = broken  # type: ignore[method-assign]
    caplog.set_level(logging.ERROR, logger="kpibot.scheduler.runner")
    service = SchedulerService(
        svc,
        None,
        {"console": sink},
        tick_seconds=0.05,
        dispatch_seconds=0.05,
        tick=tick,
        leader=LeaderLock(db, "service-test"),
    )
    service.start()
    try:
        wait_until(lambda: "store unreachable" in caplog.text, 20, "the error to be logged")
    finally:
        service.shutdown()
    assert "scheduler job kpibot-tick failed" in caplog.text


# ---------------------------------------------------------------------------- preview and CLI


def kpibot(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the ``kpibot`` command line in this process; (exit code, stdout, stderr)."""
    from kpibot.cli.main import main

    try:
        code = main(list(args))
    except SystemExit as done:  # --help
        code = int(done.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_preview_cli_lists_the_seed_due_dates_and_the_full_ladder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = kpibot(
        capsys,
        "schedule",
        "preview",
        "one-psychology",
        "--from",
        "2018-07-01",
        "--to",
        "2021-07-31",
        "--no-submissions",
        "--database",
        f"sqlite:///{tmp_path / 'p.db'}",
    )
    assert code == 0, err
    listed = list(csv.DictReader(io.StringIO(out)))
    assert list(listed[0]) == ["when", "contract", "kind", "audience", "period", "text"]
    due = [datetime.fromisoformat(r["when"]) for r in listed if r["kind"] == "due"]
    assert [d.date() for d in due] == SEED_003_DUE and {d.hour for d in due} == {9}
    q3 = [(r["when"][:10], r["kind"], r["audience"]) for r in listed if r["period"] == "2019/20 Q3"]
    assert q3 == [
        ("2019-12-27", "reminder", "provider"),
        ("2020-01-03", "reminder", "provider"),
        ("2020-01-09", "reminder", "provider"),
        ("2020-01-10", "due", "provider"),
        ("2020-01-13", "overdue", "provider"),
        ("2020-01-13", "service_failure", "commissioner"),
        ("2020-01-14", "overdue", "provider"),
        ("2020-01-15", "overdue", "provider"),
        ("2020-01-15", "summary", "channel"),
        ("2020-01-16", "overdue", "provider"),
        ("2020-01-17", "escalation", "commissioner"),
        ("2020-01-28", "meeting", "attendees"),
    ]
    # 27 October 2019: the clocks went back; reminders stay at 09:00 on both sides.
    assert "2019-10-04T09:00:00+01:00" in out and "2019-12-27T09:00:00+00:00" in out
    code, table, _ = kpibot(
        capsys,
        "schedule",
        "preview",
        "one-psychology",
        "--from",
        "2020-01-01",
        "--to",
        "2020-01-31",
        "--format",
        "table",
        "--database",
        f"sqlite:///{tmp_path / 'p.db'}",
    )
    assert code == 0 and "Fri 10 Jan 2020 09:00" in table


def test_preview_counts_working_days_over_christmas(seed_contracts: dict[str, Contract]) -> None:
    base = seed_contracts["one-psychology"]
    contract = base.model_copy(
        update={"calendar": {**base.calendar, "due_dates": {"2019/20 Q2": "2019-12-23"}}}
    )
    listed = preview(contract, date(2019, 12, 1), date(2020, 1, 10), no_submissions=True)
    steps = {m.step: m.when for m in listed if m.period == "2019/20 Q2"}
    assert steps["overdue-1"] == london(2019, 12, 24, 9)
    assert steps["overdue-2"] == london(2019, 12, 27, 9)  # 25 and 26 December are bank holidays
    assert steps["escalation-5"] == london(2020, 1, 2, 9)  # and so is New Year's Day


def test_preview_reads_receipts_unless_told_not_to(svc: Services) -> None:
    contract = stored(svc, "one-psychology")
    svc.clock.when = london(2020, 1, 2)  # type: ignore[attr-defined]
    svc.figures.submit(
        "one-psychology",
        [NewFigure("HLO-1", contract.parse_period("2019/20 Q3"), value=1)],
        actor="t",
        source="chat",
    )
    received = read_receipts(svc.db, ["one-psychology"])["one-psychology"]
    assert received == {"2019/20 Q3": london(2020, 1, 2).astimezone(UTC)}
    with_receipts = preview(contract, date(2019, 12, 1), date(2020, 1, 31), received)
    without = preview(contract, date(2019, 12, 1), date(2020, 1, 31), received, no_submissions=True)
    assert [m.step for m in with_receipts if m.kind in LADDER] == ["d-14"]
    assert len([m for m in without if m.kind in LADDER]) == 9
    assert format_csv(with_receipts).splitlines()[0] == "when,contract,kind,audience,period,text"


def test_cli_errors_are_one_sentence_and_every_command_has_help(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = f"sqlite:///{tmp_path / 'e.db'}"
    code, _, err = kpibot(
        capsys,
        "schedule",
        "preview",
        "one-psycholgy",
        "--from",
        "2019-01-01",
        "--to",
        "2019-02-01",
        "--database",
        database,
    )
    assert code == 2 and err.strip().splitlines() == [
        "There is no contract 'one-psycholgy'. Did you mean 'one-psychology' or 'one-you-lifestyle'?"
    ]
    code, _, err = kpibot(
        capsys,
        "schedule",
        "preview",
        "one-psychology",
        "--from",
        "2019-02-30",
        "--to",
        "2019-03-01",
        "--database",
        database,
    )
    assert (code, err.strip()) == (
        2,
        "--from '2019-02-30' is not a date; write it like 2019-07-01.",
    )
    code, _, err = kpibot(
        capsys,
        "schedule",
        "preview",
        "childrens-trust",
        "--from",
        "2019-01-01",
        "--to",
        "2019-03-01",
        "--database",
        database,
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "has no reporting calendar" in err
    for command in (["schedule"], ["schedule", "preview"], ["scheduler"], ["scheduler", "run"]):
        code, out, _ = kpibot(capsys, *command, "--help")
        assert code == 0 and "usage: kpibot" in out


def test_scheduler_run_once_delivers_to_the_console(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KPIBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'r.db'}")
    monkeypatch.setenv("KPIBOT_TODAY", "2020-01-10")
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    assert kpibot(capsys, "contracts", "load", "config/contracts", "--no-history")[0] == 0
    code, out, err = kpibot(capsys, "scheduler", "run", "--once", "--since", "2020-01-10")
    assert code == 0, err
    assert "[2020-01-10 09:00] due → provider (one-psychology): The quarterly return" in out
    assert "Tick wrote 1 new outbox message(s); 1 delivered." in out


def test_scheduler_run_once_posts_to_slack_when_a_token_is_set(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    slack_api: SlackApiServer,
) -> None:
    monkeypatch.setenv("KPIBOT_DATABASE_URL", f"sqlite:///{tmp_path / 's.db'}")
    monkeypatch.setenv("KPIBOT_TODAY", "2020-02-20")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_API_URL", slack_api.api_url)
    monkeypatch.chdir(ROOT)
    assert kpibot(capsys, "contracts", "load", "config/contracts")[0] == 0
    code, out, err = kpibot(capsys, "scheduler", "run", "--once", "--since", "2020-02-20")
    assert code == 0, err
    # Seed 001's Q1 summary (due 15 February, 5 days' grace) goes to the channel bound to it.
    [post] = slack_api.calls("chat.postMessage")
    assert post["channel"] == "C-LIFESTYLE" and "Quarterly RAG summary" in post["text"]
    assert "overdue → provider (one-you-lifestyle)" in out  # the provider has no channel
