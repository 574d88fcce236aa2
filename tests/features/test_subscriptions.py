"""Watches, digests and mutes in the store (SQLite and PostgreSQL): where they deliver, what a
digest says, that it is exactly the changes since the last one, and that access is checked when
it is built."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest
from sqlalchemy import select

from kpibot.commands.bot import Bot
from kpibot.core.access import AccessPolicy, Grant
from kpibot.core.protocol import Reply, Request
from kpibot.core.services import Services
from kpibot.engine.calendar import LONDON
from kpibot.features import subscriptions
from kpibot.features.bind import ConversationRef, ConversationStore
from kpibot.features.subscriptions import DigestComposer, Place, digest_messages
from kpibot.features.summary import composer
from kpibot.scheduler.tick import ReminderTick
from kpibot.store.outbox import OutboxMessage, outbox_entries
from kpibot.store.schema import OutboxRecord
from tests.conftest import ACCESS_FILE, FixedClock

TRUST = "childrens-trust"
PSYCH = "one-psychology"


def london(y: int, m: int, d: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(y, m, d, hour, minute, tzinfo=LONDON)


@pytest.fixture
def policy() -> AccessPolicy:
    return AccessPolicy.load(ACCESS_FILE)


@pytest.fixture
def kpibot(services: Services, policy: AccessPolicy) -> Bot:
    return Bot(services, policy, b"test-secret")


def say(
    bot: Bot, line: str, user: str, channel: str | None = None, platform: str = "console"
) -> Reply:
    request = Request.from_text(line, user=user, platform=platform, channel=channel)  # type: ignore[arg-type]
    reply = bot.handle(request)
    token = next((a.token for a in reply.actions if a.token), None)
    return reply if token is None else bot.handle(replace(request, confirm_token=token))


def digests(services: Services) -> list[OutboxRecord]:
    with services.db.session(read_only=True) as session:
        query = select(OutboxRecord).where(OutboxRecord.kind == "digest")
        return list(session.scalars(query.order_by(OutboxRecord.due_at)))


def as_message(row: OutboxRecord) -> OutboxMessage:
    """The row as the dispatcher hands it to the composer."""
    return OutboxMessage(
        row.id,
        row.idempotency_key,
        row.contract_id,
        row.kind,
        row.audience,
        row.platform,
        row.channel,
        row.period,
        row.step,
        row.due_at,
        dict(row.payload),
        1,
        "test",
        row.due_at,
    )


def build(services: Services, policy: AccessPolicy, row: OutboxRecord) -> Reply | None:
    return composer(services, policy)(as_message(row))


# ---------------------------------------------------------------------------------- places


def test_where_a_subscription_delivers(services: Services) -> None:
    place = subscriptions.place_of
    assert place(services, "slack", "U1", "D123") == Place("slack", "U1", True)  # a DM
    assert place(services, "slack", "U1", "C-TRUST") == Place("slack", "C-TRUST", False)
    assert place(services, "console", "U1", None) == Place("console", "U1", True)
    assert place(services, "teams", "aad-1", "a:1on1") == Place("teams", "a:1on1", True)
    ConversationStore(services.db).remember(
        ConversationRef(
            "teams", "19:chat@thread.v2", "https://smba.example", "28:bot", None, "personal"
        )
    )
    assert place(services, "teams", "aad-1", "19:chat@thread.v2").direct
    channel = "19:team@thread.tacv2"
    assert place(services, "teams", "aad-1", channel) == Place("teams", channel, False)
    # A person's own DMs from a Teams channel: a bot can only post where it has a reference.
    assert subscriptions.personal_place(services, "teams", "aad-1", channel) is None
    assert subscriptions.personal_place(services, "slack", "U1", "C-TRUST") == Place(
        "slack", "U1", True
    )


def test_watch_unwatch_digest_and_mute_are_stored_per_place_and_audited(
    services: Services, kpibot: Bot
) -> None:
    assert say(kpibot, f"/kpi watch {TRUST} C7 red", "U-BOARD", "D9", "slack").kind == "done"
    assert say(kpibot, f"/kpi watch {TRUST} C7 red", "U-BOARD", "D9", "slack").kind == "info"
    assert say(kpibot, f"/kpi watch {TRUST} critical", "U-COMMISSIONER", "C-TRUST", "slack").ok
    say(kpibot, "/kpi digest daily childrens-trust", "U-BOARD", "C-TRUST", "slack")
    say(kpibot, f"/kpi mute {TRUST} 3d", "U-BOARD", "D9", "slack")
    listed = say(kpibot, "/kpi watching", "U-BOARD", "C-TRUST", "slack")
    rows = [row[0].text for row in listed.rows]
    assert rows == [
        "childrens-trust: critical failures, in this channel",
        "childrens-trust C7: turning red and red periods running, in your direct messages",
        "Daily digest of childrens-trust, by DM",
    ]
    assert "Muted: childrens-trust until Sun 23 Feb 10:00" in listed.text
    gone = say(kpibot, f"/kpi unwatch {TRUST}", "U-BOARD", "D9", "slack")
    assert gone.title == f"Stopped watching {TRUST}"
    assert say(kpibot, f"/kpi unwatch {TRUST}", "U-BOARD", "D9", "slack").title.startswith("Not")
    actions = [
        e.action for e in services.audit.recent(20) if e.actor in ("U-BOARD", "U-COMMISSIONER")
    ]
    assert {"watch", "unwatch", "digest", "mute"} <= set(actions)
    entry = next(e for e in services.audit.recent(20) if e.action == "watch")
    assert entry.subject in ("slack:U-BOARD", "slack:C-TRUST") and entry.outcome == "ok"


def test_subscription_commands_refuse_what_the_user_may_not_see(kpibot: Bot) -> None:
    refused = say(kpibot, f"/kpi watch {TRUST}", "U-HEALTH")
    assert refused.kind == "refusal" and "childrens-trust" in refused.text
    assert say(kpibot, "/kpi digest weekly childrens-trust", "U-HEALTH").kind == "refusal"
    assert say(kpibot, f"/kpi mute {TRUST} 2h", "U-HEALTH").kind == "refusal"
    assert say(kpibot, "/kpi watch childrens-trust Z99", "U-BOARD").kind == "error"
    assert say(kpibot, "/kpi mute childrens-trust soon", "U-BOARD").kind == "error"
    assert say(kpibot, "/kpi digest hourly", "U-BOARD").kind == "error"


# ---------------------------------------------------------------------------------- digests


def test_digests_are_planned_once_at_09_00_on_their_days_by_any_number_of_ticks(
    services: Services, kpibot: Bot, policy: AccessPolicy, clock: FixedClock
) -> None:
    say(kpibot, "/kpi digest weekly", "U-BOARD")  # Thursday 20 February 2020
    say(kpibot, "/kpi digest daily", "U-COMMISSIONER", "D1", "slack")
    end = london(2020, 3, 3, 12)
    messages = digest_messages(services, clock.when, end)
    weekly = [m.when for m in messages if m.target == ("console", "U-BOARD")]
    assert weekly == [london(2020, 2, 24, 9), london(2020, 3, 2, 9)]
    daily = [m for m in messages if m.target == ("slack", "U-COMMISSIONER")]
    assert [m.when.day for m in daily] == [21, 24, 25, 26, 27, 28, 2, 3]
    # Two replicas' ticks over the same days, and one replaying a window: each digest once.
    first = ReminderTick(services, policy, name="a", start=clock.when)
    second = ReminderTick(services, policy, name="b", start=clock.when)
    for tick in (first, second):
        tick.tick(london(2020, 2, 24, 9, 1))
        tick.tick(end)
    rows = digests(services)
    assert len(rows) == 10
    assert rows[0].idempotency_key == "|2020-02-21|digest|subscriber|digest-2|slack:U-COMMISSIONER"
    assert rows[0].contract_id is None and rows[0].channel == "U-COMMISSIONER"


def test_a_digest_is_exactly_the_changes_since_the_last_one(
    services: Services, kpibot: Bot, policy: AccessPolicy, clock: FixedClock
) -> None:
    say(kpibot, f"/kpi digest weekly {TRUST}", "U-BOARD")
    clock.when = london(2020, 2, 21, 11)
    say(kpibot, f"/kpi submit {TRUST} S26 2019/20 Q3 10% reason: recount", "U-TRUST")
    tick = ReminderTick(services, policy, start=london(2020, 2, 20, 10))
    tick.tick(london(2020, 2, 24, 9, 1))
    (monday,) = digests(services)
    first = build(services, policy, monday)
    assert first is not None
    assert first.title == "Weekly digest · Thu 20 Feb 10:00 to Mon 24 Feb 09:00"
    assert "🔴 Turned red: S26 2019/20 Q3 10%" in first.text
    # A retried delivery of the same digest builds the same digest.
    again = build(services, policy, monday)
    assert again is not None and again.text == first.text
    clock.when = london(2020, 2, 25, 11)
    say(kpibot, f"/kpi submit {TRUST} S27 2019/20 Q3 10% reason: recount", "U-TRUST")
    say(kpibot, f"/kpi submit {TRUST} S26 2019/20 Q3 99% reason: recount", "U-TRUST")
    tick.tick(london(2020, 3, 2, 9, 1))
    second = build(services, policy, digests(services)[1])
    assert second is not None
    assert second.title == "Weekly digest · Mon 24 Feb 09:00 to Mon 2 Mar 09:00"
    assert (
        "Turned red: S27 2019/20 Q3 10%" in second.text and "S26 2019/20 Q3 10%" not in second.text
    )
    assert "🟢 Back to green: S26 2019/20 Q3 99%" in second.text
    # The first digest delivered after the second is stale: withheld, not rebuilt wrongly.
    assert build(services, policy, monday) is None
    tick.tick(london(2020, 3, 9, 9, 1))
    third = build(services, policy, digests(services)[2])
    assert third is not None and third.text == f"Nothing changed on {TRUST} since Mon 2 Mar 09:00."


def test_a_digest_reports_late_returns_incidents_and_actions_due(
    services: Services, kpibot: Bot, policy: AccessPolicy, clock: FixedClock
) -> None:
    clock.when = london(2020, 1, 6, 10)
    say(kpibot, f"/kpi digest weekly {PSYCH} {TRUST}", "U-COMMISSIONER")
    clock.when = london(2020, 1, 8, 13)
    say(kpibot, f'/kpi incident {PSYCH} sui "A fall on the ward"', "U-PSYCH")
    say(kpibot, f'/kpi actionplan {TRUST} new C7 "Adoption timeliness"', "U-COMMISSIONER")
    say(
        kpibot,
        f'/kpi actionplan {TRUST} update 1 add-action "Weekly panel" owner:"Head of Adoption" '
        "due:2020-01-15",
        "U-COMMISSIONER",
    )
    ReminderTick(services, policy, start=london(2020, 1, 6, 10)).tick(london(2020, 1, 13, 9, 5))
    (row,) = digests(services)
    reply = build(services, policy, row)
    assert reply is not None
    assert "⏰ Returns now late: quarterly return for 2019/20 Q3 (due Fri 10 Jan)" in reply.text
    assert (
        "🚨 Incidents: #1 Serious untoward incident opened Wed 8 Jan 13:00, now overdue"
        in reply.text
    )
    assert (
        "📋 Action plan actions due: plan #1 action 1 “Weekly panel” (Head of Adoption) due Wed 15 Jan"
        in reply.text
    )


def test_a_digest_covers_only_what_its_reader_may_see_when_it_is_built(
    services: Services, kpibot: Bot, policy: AccessPolicy, clock: FixedClock
) -> None:
    say(kpibot, "/kpi digest weekly", "U-BOARD")  # every contract the viewer can see
    clock.when = london(2020, 2, 21, 11)
    say(kpibot, f"/kpi submit {TRUST} S26 2019/20 Q3 10% reason: recount", "U-TRUST")
    say(kpibot, "/kpi submit healthy-child-0-19 1b 2019/20 Q3 20%", "U-HEALTH")
    ReminderTick(services, policy, start=london(2020, 2, 20, 10)).tick(london(2020, 2, 24, 9, 1))
    (row,) = digests(services)
    policy.users["U-BOARD"] = Grant(
        role="viewer", name="Board member", contracts=["healthy-child-0-19"]
    )
    reply = build(services, policy, row)
    assert reply is not None
    assert "healthy-child-0-19" in reply.text and TRUST not in reply.text
    policy.users["U-BOARD"] = Grant(role="viewer", name="Board member", contracts=[])
    assert (
        DigestComposer().build(
            services,
            policy,
            subscriptions.digest_subscriptions(services)[0],
            clock.when,
            clock.when,
        )
        is None
    )


def test_a_digest_reaches_a_slack_dm_and_a_teams_1_1_chat(
    services: Services, kpibot: Bot, policy: AccessPolicy, clock: FixedClock
) -> None:
    say(kpibot, "/kpi digest weekly", "U-BOARD", "C-TRUST", "slack")  # asked in a channel
    say(kpibot, "/kpi digest monthly", "U-COMMISSIONER", "a:1casey", "teams")
    refused = say(kpibot, "/kpi digest weekly", "U-COMMISSIONER", "19:x@thread.tacv2", "teams")
    assert refused.kind == "error" and "1:1 chat" in refused.text
    targets = {m.target for m in digest_messages(services, clock.when, london(2020, 3, 3))}
    assert targets == {("slack", "U-BOARD"), ("teams", "a:1casey")}
    entries = [
        e
        for m in digest_messages(services, clock.when, london(2020, 3, 3))
        for e in outbox_entries(m, [m.target])
    ]  # type: ignore[list-item]
    assert {(e.platform, e.channel) for e in entries} == targets
