"""Stopping the scheduler: the message in flight finishes, the rest of the batch is handed back at once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from kpibot.app.wiring import services_for_database
from kpibot.core.protocol import Reply
from kpibot.core.settings import Settings
from kpibot.scheduler.dispatch import Dispatcher
from kpibot.scheduler.leader import LeaderLock
from kpibot.scheduler.runner import SchedulerService
from kpibot.store.database import Database
from kpibot.store.outbox import OutboxEntry, OutboxMessage, OutboxRepository
from tests.conftest import ACCESS_FILE


class Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def deliver(self, message: OutboxMessage, reply: Reply) -> str | None:
        self.sent.append(message.key)
        return f"ref-{message.id}"

    def find_delivered(self, message: OutboxMessage) -> str | None:
        return None


def _due(n: int, channel: str = "C-BUSY") -> list[OutboxEntry]:
    due = datetime.now(UTC) - timedelta(minutes=1)
    return [
        OutboxEntry(
            f"k{i}", None, "reminder", "provider", "table", channel, None, None, due, {"text": "hi"}
        )
        for i in range(n)
    ]


def _wait(predicate, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_shutdown_hands_back_the_batch_and_releases_the_claims(db: Database) -> None:
    outbox = OutboxRepository(db)
    outbox.enqueue(_due(12), datetime.now(UTC))
    services = services_for_database(
        db, Settings(access_file=ACCESS_FILE), lambda: datetime.now(UTC)
    )
    sink = Recorder()
    service = SchedulerService(
        services,
        None,
        {"table": sink},
        tick_seconds=3600,
        dispatch_seconds=3600,
        leader=LeaderLock(db, "runner-test"),
    )
    service.dispatcher.pacing = {"table": 0.5}  # two a second in one channel: the batch is slow
    service.start()
    _wait(lambda: len(sink.sent) >= 2)
    assert outbox.counts().get("claimed", 0) > 0
    started = time.monotonic()
    service.shutdown(timeout=5)
    assert time.monotonic() - started < 2  # the pacing pause was interrupted, not waited out
    counts = outbox.counts()
    assert counts.get("claimed", 0) == 0, counts
    assert counts["sent"] == len(sink.sent) and counts["pending"] == 12 - len(sink.sent)
    # Handed back rows are due now, for any dispatcher, and no attempt was spent on them.
    again = outbox.claim("replica-2", datetime.now(UTC), limit=50)
    assert len(again) == 12 - len(sink.sent)
    assert {m.attempts for m in again} == {1}


def test_release_hands_back_only_this_process_s_claims(db: Database) -> None:
    outbox = OutboxRepository(db)
    outbox.enqueue(_due(4), datetime.now(UTC))
    now = datetime.now(UTC)
    mine = outbox.claim("host:1", now, limit=2)
    theirs = outbox.claim("host:10", now, limit=2)
    assert len(mine) == len(theirs) == 2
    assert outbox.release("host:1", now) == 2
    assert outbox.counts() == {"pending": 2, "claimed": 2}
    # The claim a released row carried can no longer settle it.
    assert not outbox.mark_sent(mine[0], now)
    assert outbox.mark_sent(theirs[0], now)


def test_a_stopped_dispatcher_hands_back_what_it_has_not_sent(db: Database) -> None:
    outbox = OutboxRepository(db)
    outbox.enqueue(_due(5), datetime.now(UTC))
    sink = Recorder()
    dispatcher = Dispatcher(outbox, {"table": sink}, pacing={"table": 30.0}, max_pause=60)
    stopper = threading.Timer(0.3, dispatcher.stop)
    stopper.start()
    started = time.monotonic()
    assert dispatcher.run_once(datetime.now(UTC)) == 1
    assert time.monotonic() - started < 5
    assert outbox.counts() == {"sent": 1, "pending": 4}
