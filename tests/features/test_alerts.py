"""Alerts end to end on SQLite and PostgreSQL: from a confirmed or imported figure to the outbox,
through the dispatcher to the people who hear it, each alert once."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from slack_sdk import WebClient
from sqlalchemy import func, select

from kpibot.chat.slack_deliverer import SlackDeliverer
from kpibot.commands.bot import Bot
from kpibot.core.access import AccessPolicy, Grant
from kpibot.core.protocol import Reply, Request
from kpibot.core.services import Services
from kpibot.engine.calendar import LONDON
from kpibot.features import alerts
from kpibot.features.alerts import WATCHING_NOTE
from kpibot.features.figures import import_return
from kpibot.features.payments import payment_report
from kpibot.features.sanctions import EventLog
from kpibot.features.subscriptions import Place, watch
from kpibot.features.summary import composer
from kpibot.files.contracts import load_contracts, parse_contract_text
from kpibot.files.events import check_events
from kpibot.files.tables import read_table_bytes
from kpibot.scheduler.dispatch import Dispatcher
from kpibot.scheduler.tick import ReminderTick
from kpibot.store.outbox import OutboxMessage, OutboxRepository
from kpibot.store.rows import NewFigure
from kpibot.store.schema import AlertRecord, AlertRunRecord, OutboxRecord
from tests.conftest import ACCESS_FILE, FixedClock
from tests.engine.test_payments import GROUPED
from tests.engine.test_payments import Q1 as Q1_19
from tests.engine.test_payments import Q2 as Q2_19
from tests.slack_mock import SlackApiServer

LIFESTYLE = "one-you-lifestyle"
TRUST = "childrens-trust"
HEALTH = "healthy-child-0-19"


def london(y: int, m: int, d: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(y, m, d, hour, minute, tzinfo=LONDON)


@pytest.fixture
def policy() -> AccessPolicy:
    return AccessPolicy.load(ACCESS_FILE)


@pytest.fixture
def kpibot(services: Services, policy: AccessPolicy) -> Bot:
    return Bot(services, policy, b"test-secret")


class Recorder:
    """A deliverer for every platform that keeps what it was given and answers with a ts."""

    def __init__(self) -> None:
        self.sent: list[tuple[OutboxMessage, Reply]] = []

    def deliver(self, message: OutboxMessage, reply: Reply) -> str | None:
        self.sent.append((message, reply))
        return f"1700000000.{len(self.sent):06d}"

    def find_delivered(self, message: OutboxMessage) -> str | None:
        return None

    def to(self, platform: str, channel: str) -> list[tuple[OutboxMessage, Reply]]:
        return [(m, r) for m, r in self.sent if (m.platform, m.channel) == (platform, channel)]


def dispatcher(services: Services, policy: AccessPolicy, recorder: Recorder) -> Dispatcher:
    return Dispatcher(
        OutboxRepository(services.db),
        {"console": recorder, "slack": recorder, "teams": recorder},
        composer(services, policy),
        pacing={},
        sleep=lambda _s: None,
    )


def say(bot: Bot, line: str, user: str, channel: str | None = None) -> Reply:
    """Type ``line`` as ``user``; a preview with a Confirm button is confirmed."""
    request = Request.from_text(line, user=user, platform="console", channel=channel)
    reply = bot.handle(request)
    token = next((a.token for a in reply.actions if a.token), None)
    if token is None:
        return reply
    return bot.handle(replace(request, confirm_token=token))


def outbox(services: Services, kind: str | None = None) -> list[OutboxRecord]:
    with services.db.session(read_only=True) as session:
        query = select(OutboxRecord).order_by(OutboxRecord.id)
        if kind is not None:
            query = query.where(OutboxRecord.kind == kind)
        return list(session.scalars(query))


def targets(rows: list[OutboxRecord]) -> set[tuple[str, str, str]]:
    return {(r.kind, r.platform, r.channel) for r in rows}


def count(services: Services, record: Any) -> int:
    with services.db.session(read_only=True) as session:
        return int(session.scalar(select(func.count()).select_from(record)) or 0)


# ---------------------------------------------------------------------------------- alerts


def test_a_critical_failure_reaches_the_commissioner_and_the_channel_at_once(
    services: Services, kpibot: Bot, policy: AccessPolicy
) -> None:
    done = say(kpibot, f"/kpi submit {LIFESTYLE} PA-5 2019/20 Q1 6.5", "U-LIFESTYLE")
    assert done.title.startswith("Recorded")
    rows = outbox(services)
    assert targets(rows) == {
        ("alert_critical", "console", LIFESTYLE),  # the commissioner: no channel set, console
        ("alert_critical", "slack", "C-LIFESTYLE"),  # the contract's channel
        ("alert_red", "slack", "C-LIFESTYLE"),
    }
    assert all(r.due_at == services.now() for r in rows)  # at once: channels have no quiet hours
    critical = rows[0].payload["text"]
    assert "PA-5 User feedback score" in critical and "6.5 against a 8.5 target" in critical
    assert "“Minimum average Below 7.0”" in critical and "2.7.1" in critical  # the clause
    assert "Submitted by Lee (One You provider) in chat." in critical
    recorder = Recorder()
    assert dispatcher(services, policy, recorder).drain(services.now()) == 3
    message, reply = recorder.to("console", LIFESTYLE)[0]
    assert reply.title == f"Critical failure · {LIFESTYLE}" and message.audience == "commissioner"


def test_each_alert_fires_once_whatever_repeats_it(
    services: Services, kpibot: Bot, policy: AccessPolicy, clock: FixedClock
) -> None:
    line = f"/kpi submit {LIFESTYLE} PA-5 2019/20 Q1 6.5"
    request = Request.from_text(line, user="U-LIFESTYLE", platform="slack", channel="D1")
    preview = kpibot.handle(request)
    confirm = replace(request, confirm_token=preview.actions[0].token)
    assert kpibot.handle(confirm).title.startswith("Recorded")
    first = [r.idempotency_key for r in outbox(services)]
    assert len(first) == 3
    # A Slack retry of the same click stores nothing and alerts nothing.
    assert kpibot.handle(confirm).title == "Already recorded"
    # An amendment that leaves the figure red and critical: nothing new.
    say(kpibot, f"{line[:-3]} 6.0 reason: two late forms", "U-LIFESTYLE")
    # The tick's catch-up on this replica and on a second one: those submissions are done.
    clock.when += timedelta(minutes=5)
    assert alerts.catch_up(services, policy, services.now()) == 0
    from kpibot.app.wiring import services_for_database

    replica = services_for_database(services.db, services.settings, clock)
    assert alerts.catch_up(replica, None, replica.now()) == 0
    assert alerts.process(replica, None, [1, 2, 3, 4, 5], replica.now()) == 0
    assert [r.idempotency_key for r in outbox(services)] == first
    with services.db.session(read_only=True) as session:
        ledger = session.execute(select(AlertRecord.kind, AlertRecord.generation)).all()
    assert sorted(ledger) == [("alert_critical", 1), ("alert_red", 1)]


def test_a_replayed_import_alerts_nothing(services: Services, policy: AccessPolicy) -> None:
    table = read_table_bytes(b"kpi,period,value\nPA-5,2019/20 Q1,6.5\n", "q1.csv")
    first = import_return(
        services, LIFESTYLE, table, actor="U-LIFESTYLE", idempotency_key="up-1", policy=policy
    )
    assert not first.errors and len(outbox(services)) == 3
    again = import_return(
        services, LIFESTYLE, table, actor="U-LIFESTYLE", idempotency_key="up-1", policy=policy
    )
    assert again.result is not None and again.result.duplicate
    # The same file sent again as a new return: amendments with the same values, no news.
    import_return(services, LIFESTYLE, table, actor="U-LIFESTYLE", reason="resent", policy=policy)
    assert len(outbox(services)) == 3


def test_a_grouped_import_alert_names_every_kpi(
    services: Services, kpibot: Bot, policy: AccessPolicy, clock: FixedClock
) -> None:
    clock.when = london(2020, 7, 1)  # 2019/20 Q4 has ended
    say(kpibot, f"/kpi watch {TRUST} red", "U-BOARD")
    contract = services.contract(TRUST)
    assert contract is not None
    q3 = services.scorecard(contract).at(contract.parse_period("2019/20 Q3"))
    rated = q3[q3["rag"].isin(["green", "amber"])]
    turned = [(r.kpi, r.threshold) for r in rated.itertuples()][:12]
    assert len(turned) == 12
    kept = q3[q3["rag"] == "grey"]
    lines = []
    units = alerts.units_of(contract)
    for code, _threshold in turned:
        worst = 100 if units[code] == "percent" else 9999
        lines.append(f"{code},2019/20 Q4,{0 if contract.kpi(code).polarity == 'bigger' else worst}")
    for r in kept.itertuples():
        if r.value == r.value:  # has a value: keep it as it was
            lines.append(f"{r.kpi},2019/20 Q4,{r.value}")
    # Pad to 200 rows with the history as it stands (amendments that change nothing).
    history = services.figures.current(TRUST)
    lines += [f"{f.kpi},{f.period},{f.value}" for f in history][: 200 - len(lines)]
    assert len(lines) == 200
    csv = ("kpi,period,value\n" + "\n".join(lines) + "\n").encode()
    out = import_return(
        services,
        TRUST,
        read_table_bytes(csv, "q4.csv"),
        actor="U-TRUST",
        reason="resubmitted with Q4",
        policy=policy,
    )
    assert not out.errors, out.errors[:3]
    reds = outbox(services, "alert_red")
    assert targets(reds) == {("alert_red", "slack", "C-TRUST"), ("alert_red", "console", "U-BOARD")}
    for row in reds:  # one message per audience, naming all twelve
        text = row.payload["text"]
        assert text.startswith("🔴 12 KPIs turned red on")
        for code, _ in turned:
            assert f"• {code} " in text
    assert {r.audience for r in reds} == {"channel", "subscriber"}


def test_an_amendment_that_undoes_a_red_follows_up_in_the_slack_thread(
    services: Services,
    kpibot: Bot,
    policy: AccessPolicy,
    clock: FixedClock,
    slack_api: SlackApiServer,
) -> None:
    clock.when = london(2020, 7, 1)
    say(kpibot, f"/kpi submit {TRUST} S26 2019/20 Q4 10%", "U-TRUST")
    slack = SlackDeliverer(WebClient(token="xoxb-test", base_url=slack_api.api_url))
    recorder = Recorder()
    sending = Dispatcher(
        OutboxRepository(services.db),
        {"slack": slack, "console": recorder},
        composer(services, policy),
        pacing={},
        sleep=lambda _s: None,
    )
    assert sending.drain(services.now()) >= 1
    (alert,) = slack_api.calls("chat.postMessage")
    assert alert["channel"] == "C-TRUST" and "turned red" in alert["text"]
    assert "thread_ts" not in alert
    clock.when += timedelta(hours=1)
    say(kpibot, f"/kpi submit {TRUST} S26 2019/20 Q4 99% reason: keyed wrongly", "U-TRUST")
    (follow,) = outbox(services, "alert_clear")
    assert follow.payload["thread"].startswith(f"{TRUST}|2019/20 Q4|alert_red|channel|")
    assert "now green" in follow.payload["text"]
    sending.drain(services.now())
    posts = slack_api.calls("chat.postMessage")
    assert len(posts) == 2
    ts = outbox(services, "alert_red")[0].payload["delivered"]["ref"]
    assert posts[1]["thread_ts"] == ts and "Back to amber or green" in posts[1]["text"]
    # Red again after the all-clear is news again, once.
    say(
        kpibot,
        f"/kpi submit {TRUST} S26 2019/20 Q4 11% reason: the first figure was right",
        "U-TRUST",
    )
    assert len(outbox(services, "alert_red")) == 2


def test_a_follow_up_waits_for_the_alert_it_follows(
    services: Services, kpibot: Bot, policy: AccessPolicy, clock: FixedClock
) -> None:
    clock.when = london(2020, 7, 1)
    say(kpibot, f"/kpi submit {TRUST} S26 2019/20 Q4 10%", "U-TRUST")
    say(kpibot, f"/kpi submit {TRUST} S26 2019/20 Q4 99% reason: keyed wrongly", "U-TRUST")
    recorder = Recorder()
    repository = OutboxRepository(services.db)
    (red,) = outbox(services, "alert_red")
    (clear,) = outbox(services, "alert_clear")
    only_clear = [m for m in repository.claim("w", services.now(), 50) if m.id == clear.id]
    for m in repository.claim("w", services.now() + timedelta(minutes=5), 50):
        repository.retry(m, services.now(), timedelta(0), "released")
    sender = dispatcher(services, policy, recorder)
    sender._dispatch(only_clear[0], services.now())  # the follow-up first: it must wait
    assert recorder.sent == []
    assert sender.drain(services.now() + timedelta(minutes=1)) == 2
    kinds = [m.kind for m, _ in recorder.sent]
    assert kinds == ["alert_red", "alert_clear"] and red.id < clear.id
    assert recorder.sent[1][0].payload["thread_ref"] == "1700000000.000001"


def test_direct_messages_wait_out_quiet_hours_and_are_not_dropped(
    services: Services, kpibot: Bot, policy: AccessPolicy, clock: FixedClock
) -> None:
    say(kpibot, f"/kpi watch {LIFESTYLE}", "U-BOARD")
    clock.when = london(2020, 2, 20, 21, 30)
    say(kpibot, f"/kpi submit {LIFESTYLE} PA-5 2019/20 Q1 6.5", "U-LIFESTYLE")
    dms = [r for r in outbox(services) if r.channel == "U-BOARD"]
    assert {r.kind for r in dms} == {"alert_critical", "alert_red"}
    assert all(r.due_at == london(2020, 2, 21, 8, 0) for r in dms)
    recorder = Recorder()
    sender = dispatcher(services, policy, recorder)
    sender.drain(services.now())
    assert recorder.to("console", "U-BOARD") == [] and recorder.to("slack", "C-LIFESTYLE")
    sender.drain(london(2020, 2, 21, 7, 59))
    assert recorder.to("console", "U-BOARD") == []
    sender.drain(london(2020, 2, 21, 8, 0))
    assert len(recorder.to("console", "U-BOARD")) == 2


def test_a_subscriber_who_loses_access_stops_hearing(
    services: Services, kpibot: Bot, policy: AccessPolicy, clock: FixedClock
) -> None:
    say(kpibot, f"/kpi watch {LIFESTYLE} red", "U-BOARD")
    say(kpibot, f"/kpi submit {LIFESTYLE} PA-5 2019/20 Q1 6.5", "U-LIFESTYLE")
    assert [r.kind for r in outbox(services) if r.channel == "U-BOARD"] == ["alert_red"]
    # Access is withdrawn after the alert was written and before it is built.
    policy.users["U-BOARD"] = Grant(role="viewer", name="Board member", contracts=[TRUST])
    recorder = Recorder()
    withheld = REGISTRY.get_sample_value(
        "kpibot_outbox_deliveries_total", {"platform": "console", "status": "withheld"}
    )
    dispatcher(services, policy, recorder).drain(services.now())
    assert recorder.to("console", "U-BOARD") == []
    # An operator sees it on /metrics as withheld, not as sent.
    assert (
        REGISTRY.get_sample_value(
            "kpibot_outbox_deliveries_total", {"platform": "console", "status": "withheld"}
        )
        == (withheld or 0) + 1
    )
    (row,) = [r for r in outbox(services) if r.channel == "U-BOARD"]
    assert row.status == "sent" and "withheld" in row.payload
    assert row.last_error is not None and row.last_error.startswith("withheld:")
    assert recorder.to("slack", "C-LIFESTYLE")  # the contract's channel still heard
    # New alerts are not even written for them.
    clock.when += timedelta(hours=1)
    say(kpibot, f"/kpi submit {LIFESTYLE} PA-6 2019/20 Q1 99", "U-LIFESTYLE")
    assert [r.kind for r in outbox(services) if r.channel == "U-BOARD"] == ["alert_red"]


def test_a_muted_watcher_hears_nothing_until_the_mute_ends(
    services: Services, kpibot: Bot, policy: AccessPolicy, clock: FixedClock
) -> None:
    say(kpibot, f"/kpi watch {LIFESTYLE}", "U-BOARD")
    say(kpibot, f"/kpi mute {LIFESTYLE} 2h", "U-BOARD")
    say(kpibot, f"/kpi submit {LIFESTYLE} PA-5 2019/20 Q1 6.5", "U-LIFESTYLE")
    assert [r for r in outbox(services) if r.channel == "U-BOARD"] == []
    assert outbox(services, "alert_critical")  # the contract's own audiences still hear
    clock.when += timedelta(hours=3)
    say(kpibot, f"/kpi submit {LIFESTYLE} PA-6 2019/20 Q1 99", "U-LIFESTYLE")
    dms = [r for r in outbox(services) if r.channel == "U-BOARD"]
    assert [r.kind for r in dms] == ["alert_critical", "alert_red"]
    # Muted after the alert was written: it is withheld when built.
    say(kpibot, f"/kpi mute {LIFESTYLE} 1d", "U-BOARD")
    recorder = Recorder()
    dispatcher(services, policy, recorder).drain(services.now())
    assert recorder.to("console", "U-BOARD") == []


def test_a_crash_between_the_figures_and_their_alerts_is_caught_up_once(
    services: Services,
    kpibot: Bot,
    policy: AccessPolicy,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = alerts._write

    def crash(*args: Any, **kwargs: Any) -> int:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(alerts, "_write", crash)
    done = say(kpibot, f"/kpi submit {LIFESTYLE} PA-5 2019/20 Q1 6.5", "U-LIFESTYLE")
    assert done.title.startswith("Recorded")  # the figure is in whatever happens to alerts
    assert outbox(services) == [] and count(services, AlertRunRecord) == 0
    monkeypatch.setattr(alerts, "_write", real)
    # Too fresh for the catch-up: the fast path may still be at work.
    assert alerts.catch_up(services, policy, services.now()) == 0
    clock.when += timedelta(minutes=1)
    tick = ReminderTick(services, policy, start=clock.when - timedelta(minutes=1))
    assert tick.tick(clock.when) >= 3
    assert targets(outbox(services)) == {
        ("alert_critical", "console", LIFESTYLE),
        ("alert_critical", "slack", "C-LIFESTYLE"),
        ("alert_red", "slack", "C-LIFESTYLE"),
    }
    clock.when += timedelta(minutes=1)
    assert alerts.catch_up(services, policy, services.now()) == 0
    assert len(outbox(services)) == 3


def test_money_newly_at_risk_tells_the_commissioner(
    services: Services, kpibot: Bot, policy: AccessPolicy
) -> None:
    say(kpibot, f"/kpi submit {HEALTH} 1a 2019/20 Q2 50%", "U-HEALTH")  # on track: no money news
    assert outbox(services, "alert_money") == []
    say(kpibot, f"/kpi submit {HEALTH} 1b 2019/20 Q3 20%", "U-HEALTH")
    (money,) = outbox(services, "alert_money")
    assert (money.audience, money.platform, money.channel) == ("commissioner", "console", HEALTH)
    assert (
        "1b Breastfeeding at 6-8 weeks in deprived areas: 0.5% of ACV at risk (below target)"
        in (money.payload["text"])
    )


def test_red_for_two_periods_running_offers_an_action_plan(
    services: Services, kpibot: Bot, policy: AccessPolicy, clock: FixedClock
) -> None:
    clock.when = london(2020, 7, 1)
    contract = services.contract(TRUST)
    assert contract is not None
    frame = services.scorecard(contract).frame
    q2 = dict(
        zip(
            frame[frame["period"] == "2019/20 Q2"]["kpi"],
            frame[frame["period"] == "2019/20 Q2"]["rag"],
            strict=True,
        )
    )
    q3 = frame[frame["period"] == "2019/20 Q3"]
    code = next(
        r.kpi
        for r in q3.itertuples()
        if r.rag == "red" and q2.get(r.kpi) != "red" and contract.kpi(r.kpi).polarity == "bigger"
    )
    say(kpibot, f"/kpi submit {TRUST} {code} 2019/20 Q4 1%", "U-TRUST")
    (run,) = outbox(services, "alert_red_run")
    assert run.audience == "commissioner" and "red 2 periods running" in run.payload["text"]
    recorder = Recorder()
    dispatcher(services, policy, recorder).drain(services.now())
    reply = next(r for m, r in recorder.sent if m.kind == "alert_red_run")
    (button,) = reply.actions
    assert button.label == "Open an action plan"
    assert button.command == f'actionplan {TRUST} new {code} "Red 2 periods running"'
    opened = say(kpibot, f"/kpi {button.command}", "U-COMMISSIONER")
    assert opened.title.startswith("Opened action plan #")


def test_a_contract_can_switch_an_alert_off(
    services: Services, kpibot: Bot, seed_contracts: dict[str, Any]
) -> None:
    contract = seed_contracts[LIFESTYLE]
    quiet = contract.model_copy(
        update={
            "alerts": contract.alerts.model_validate(
                {"red": False, "critical": {"audience": ["commissioner"]}}
            )
        }
    )
    services.store_contracts([quiet], actor="test", with_history=False)
    say(kpibot, f"/kpi submit {LIFESTYLE} PA-5 2019/20 Q1 6.5", "U-LIFESTYLE")
    assert targets(outbox(services)) == {("alert_critical", "console", LIFESTYLE)}


def test_an_every_change_watcher_hears_each_figure(
    services: Services, kpibot: Bot, policy: AccessPolicy
) -> None:
    say(kpibot, f"/kpi watch {TRUST} S26 any-change", "U-BOARD")
    say(kpibot, f"/kpi submit {TRUST} S26 2019/20 Q3 99% reason: recount", "U-TRUST")
    say(kpibot, f"/kpi submit {TRUST} S27 2019/20 Q3 99% reason: recount", "U-TRUST")  # not S26
    (change,) = outbox(services, "alert_change")
    assert change.channel == "U-BOARD" and "S26 2019/20 Q3: 99% (green)" in change.payload["text"]


def test_a_preview_of_alerts_writes_nothing(services: Services, policy: AccessPolicy) -> None:
    contract = services.contract(LIFESTYLE)
    assert contract is not None
    from kpibot.files.figures import check_return

    at = london(2020, 2, 20, 9)
    table = read_table_bytes(
        b"kpi,period,value\nPA-5,2019/20 Q1,6.5\nPA-6,2019/20 Q1,70\n", "f.csv"
    )
    figures = check_return(contract, table, at).figures
    before = (len(outbox(services)), count(services, AlertRecord), count(services, AlertRunRecord))
    messages = alerts.preview_alerts(services, contract, figures, at, policy)
    assert [(m.kind, m.audience) for m in messages] == [
        ("alert_critical", "channel"),
        ("alert_critical", "commissioner"),
        ("alert_red", "channel"),
    ]
    assert "• PA-5 " in messages[0].text and "• PA-6 " in messages[0].text
    after = (len(outbox(services)), count(services, AlertRecord), count(services, AlertRunRecord))
    assert before == after == (0, 0, 0)


@pytest.mark.parametrize("batch", [alerts.CATCH_UP_BATCH, 1], ids=["one-batch", "batch-of-one"])
def test_a_catch_up_of_several_submissions_keeps_their_order(
    services: Services,
    kpibot: Bot,
    policy: AccessPolicy,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    batch: int,
) -> None:
    # After an outage the missed submissions are caught up a batch at a time, in order.
    monkeypatch.setattr(alerts, "CATCH_UP_BATCH", batch)
    clock.when = london(2020, 7, 1)
    real = alerts._write
    monkeypatch.setattr(alerts, "_write", lambda *_a, **_k: (_ for _ in ()).throw(OSError("down")))
    say(kpibot, f"/kpi submit {TRUST} S26 2019/20 Q4 10%", "U-TRUST")  # turns red
    say(kpibot, f"/kpi submit {LIFESTYLE} PA-5 2019/20 Q1 6.5", "U-LIFESTYLE")
    clock.when += timedelta(minutes=1)
    say(kpibot, f"/kpi submit {TRUST} S26 2019/20 Q4 99% reason: keyed wrongly", "U-TRUST")
    assert outbox(services) == []
    monkeypatch.setattr(alerts, "_write", real)
    clock.when += timedelta(minutes=5)
    assert alerts.catch_up(services, policy, services.now()) == 5
    red, clear = outbox(services, "alert_red")[0], outbox(services, "alert_clear")[0]
    assert red.channel == clear.channel == "C-TRUST" and red.id < clear.id
    assert clear.payload["thread"] == red.idempotency_key  # the second saw what the first raised
    assert len(outbox(services, "alert_critical")) == 2  # the lifestyle contract, in the same batch
    assert count(services, AlertRunRecord) == 3


# ---------------------------------------------------------------------------------- money: sanctions and groups

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "contracts"
HOSPITAL = "acute-hospital-example"
HANDOVERS = b"date,kind,reference,value\n2015-11-02 10:15,handover-delay,HO-1,45\n2015-11-03 11:00,handover-delay,HO-2,61\n"


def _handovers(services: Services, data: bytes) -> None:
    contract = services.contract(HOSPITAL)
    checked = check_events(contract, read_table_bytes(data, "log.csv"), services.now())
    assert checked.errors == []
    EventLog(services).record(contract, checked.events, "U-COMMISSIONER", "import", file="log.csv")


def test_a_new_sanctions_deduction_reaches_money_watchers_once(
    services: Services, policy: AccessPolicy, clock: FixedClock
) -> None:
    """Hospital fixture, invented handovers recorded on 1 Dec 2015: HO-1 (45 minutes, over 30:
    £200) and HO-2 (61 minutes, over 60: £1,000) make November's deduction £1,200; HO-3 (90
    minutes, £1,000) the next hour makes it £2,200. The commissioner and a money watcher hear
    each once; a red watcher hears nothing."""
    services.store_contracts(load_contracts([FIXTURES]), actor="test", with_history=False)
    # kpibot.app.wiring registers the provider with the others, so the tick runs it.
    assert alerts.sanction_money_messages in services.hooks.messages
    clock.when = london(2015, 12, 1, 10)
    board = Place("console", "U-BOARD", True)
    watch(services, "U-BOARD", None, board, HOSPITAL, None, "money", clock.when)
    watch(
        services, "U-BOARD", None, Place("slack", "C-RED", False), HOSPITAL, None, "red", clock.when
    )
    tick = ReminderTick(services, policy, start=clock.when)
    clock.when = london(2015, 12, 1, 11)
    _handovers(services, HANDOVERS)
    tick.tick(london(2015, 12, 1, 11, 1))
    rows = outbox(services, "alert_money")
    assert targets(rows) == {
        ("alert_money", "console", HOSPITAL),
        ("alert_money", "console", "U-BOARD"),
    }
    line = (
        "• 2015-11 · handover-delay: £1,200 deducted (Schedule 4 (ambulance handover)): "
        "1 × £200 + 1 × £1,000 = £1,200"
    )
    assert all(line in r.payload["text"] for r in rows)
    # Recomputed on later ticks, and in a window that sees the same month again: nothing new.
    tick.tick(london(2015, 12, 1, 11, 30))
    assert len(alerts.sanction_money_messages(services, london(2015, 12, 1, 10), clock.when)) == 2
    tick.tick(london(2015, 12, 1, 11, 45))
    assert len(outbox(services, "alert_money")) == 2
    # A third delay raises the deduction: news again, once.
    clock.when = london(2015, 12, 1, 12)
    _handovers(services, b"date,kind,reference,value\n2015-11-04 18:20,handover-delay,HO-3,90\n")
    tick.tick(london(2015, 12, 1, 12, 1))
    tick.tick(london(2015, 12, 1, 12, 2))
    rows = outbox(services, "alert_money")
    assert len(rows) == 4
    assert "£2,200 deducted, up from £1,200" in rows[-1].payload["text"]
    recorder = Recorder()
    dispatcher(services, policy, recorder).drain(london(2015, 12, 1, 12, 2))
    heard = recorder.to("console", "U-BOARD")
    assert len(heard) == 2 and recorder.to("slack", "C-RED") == []
    assert heard[0][1].text.endswith(WATCHING_NOTE.format(contract=HOSPITAL))


def test_a_group_payment_lost_on_the_figures_tells_the_commissioner_once(
    services: Services, policy: AccessPolicy, clock: FixedClock
) -> None:
    """The invented grouped contract (tests/engine/test_payments.py): its Q2 quality standards
    are 1 of 4 met (S2, S3 at 80%, S4 to come: at most 2 of the 3 needed), so Q2's £10,000
    bonus (1% of £1,000,000) is not earned, and the year's £20,000 withholding is at risk."""
    contract = parse_contract_text(GROUPED, "grouped.yaml")
    services.store_contracts([contract], actor="test", with_history=False)
    clock.when = london(2019, 10, 20)
    q1 = [("S1", Q1_19, 95), ("S2", Q1_19, 91), ("S3", Q1_19, 90), ("S4", Q1_19, 80)]
    q2 = [("S1", Q2_19, 95), ("S2", Q2_19, 80), ("S3", Q2_19, 80)]
    for rows in (q1, q2):
        figures = [NewFigure(k, contract.parse_period(p), value=v) for k, p, v in rows]
        result = services.figures.submit(contract.id, figures, actor="U-COMMISSIONER", source="cli")
        alerts.figures_stored(services, contract, result, policy)
    report = payment_report(services, contract, 1)
    status = {ln.item: ln.status for ln in report.lines}
    assert status["Quality standards (quality-bonus), 2019/20 Q1"] == "earned"
    assert status["Quality standards (quality-bonus), 2019/20 Q2"] == "not_earned"
    rows = outbox(services, "alert_money")
    assert {(r.platform, r.channel) for r in rows} == {("console", "grouped")}
    (money,) = rows
    assert (
        "• Quality standards (quality-bonus), 2019/20 Q2: £10,000 not earned "
        "(Quality standards not performed)" in money.payload["text"]
    )
    assert (
        "Quality standards (quality-withholding), Year 1: £20,000 at risk" in money.payload["text"]
    )
    # An amendment that leaves Q2 not performed (S2 80% → 82%) is not news again.
    again = [NewFigure("S2", contract.parse_period(Q2_19), value=82, reason="recount")]
    result = services.figures.submit(contract.id, again, actor="U-COMMISSIONER", source="cli")
    alerts.figures_stored(services, contract, result, policy)
    assert len(outbox(services, "alert_money")) == 1
