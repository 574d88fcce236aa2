"""Values every replica sees alike: long Slack button values and the generated signing key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kpibot.store.database import Database
from kpibot.store.shared import SharedValues, secret


def test_a_value_written_by_one_replica_is_read_by_another(db: Database) -> None:
    other = Database(db.url)  # a second process's engine on the same database
    try:
        SharedValues(db).put("button:x", "y" * 5000, timedelta(hours=1))
        assert SharedValues(other).get("button:x") == "y" * 5000
        SharedValues(other).put("button:x", "z", timedelta(hours=1))  # replaced, not duplicated
        assert SharedValues(db).get("button:x") == "z"
    finally:
        other.dispose()


def test_values_expire(db: Database) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    clock = [now]
    shared = SharedValues(db, clock=lambda: clock[0])
    shared.put("button:old", "v", timedelta(minutes=5))
    assert shared.get("button:old") == "v"
    clock[0] = now + timedelta(minutes=6)
    assert shared.get("button:old") is None
    assert shared.get("button:never-written") is None


def test_the_signing_key_is_generated_once_per_database(db: Database) -> None:
    other = Database(db.url)
    try:
        first = secret(db)
        assert len(first) == 64 and secret(other) == first == secret(db)
    finally:
        other.dispose()
