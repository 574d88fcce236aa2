"""Confirm buttons work whichever replica the click lands on: nothing is remembered per process."""

from __future__ import annotations

from kpibot.app.wiring import services_for_database
from kpibot.chat.blocks import MAX_BUTTON_VALUE, ButtonValues
from kpibot.commands.bot import Bot
from kpibot.core.access import AccessPolicy
from kpibot.core.protocol import Request
from kpibot.core.settings import Settings
from kpibot.store.database import Database
from kpibot.store.shared import SharedValues
from tests.conftest import ACCESS_FILE


def test_long_button_values_survive_a_click_on_another_replica(db: Database) -> None:
    other = Database(db.url)  # the second replica's own engine on the same database
    try:
        here = ButtonValues(shared=SharedValues(db))
        there = ButtonValues(shared=SharedValues(other))
        long_value = "token." + "n" * 3000
        ref = here.pack(long_value)
        assert len(ref) <= MAX_BUTTON_VALUE and ref != long_value
        assert there.unpack(ref) == long_value
        assert there.pack("short") == "short" and there.unpack("short") == "short"
    finally:
        other.dispose()


def test_a_preview_on_one_replica_is_confirmed_on_another(services, db: Database, clock) -> None:
    # Two replicas: their own Services, engines and bots, no KPIBOT_SECRET_KEY on either.
    other_db = Database(db.url)
    try:
        policy = AccessPolicy.load(ACCESS_FILE)
        first = Bot(services, policy, Bot.secret_from(Settings()))
        second = Bot(
            services_for_database(other_db, Settings(access_file=ACCESS_FILE), clock), policy, None
        )
        note = ("recounted after the audit " * 20)[:480]  # long texts make a long token
        reason = ("two adoptions recoded " * 30)[:480]
        preview = first.handle(
            Request.from_text(
                f"submit childrens-trust C7 2019/20 Q3 45% {note} reason: {reason}",
                user="U-TRUST",
                platform="slack",
            )
        )
        assert preview.kind == "preview", preview
        token = preview.actions[0].token
        assert token is not None
        button = ButtonValues(shared=SharedValues(db)).pack(token)
        clicked = ButtonValues(shared=SharedValues(other_db)).unpack(button)

        done = second.handle(Request("submit", [], "U-TRUST", "slack", None, confirm_token=clicked))
        assert done.kind == "done", done
        figures = second.services.figures.current("childrens-trust", "C7")
        assert [f.value for f in figures if f.period == "2019/20 Q3"] == [45.0]
        # The same click again (Slack retries) stores nothing twice, on either replica.
        again = first.handle(Request("submit", [], "U-TRUST", "slack", None, confirm_token=token))
        assert again.kind != "error" or "already" in again.text
        assert len(services.figures.current("childrens-trust", "C7")) == len(figures)
    finally:
        other_db.dispose()
