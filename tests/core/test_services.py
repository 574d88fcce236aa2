"""A status overview is built once and reused, so it must change the moment its contract does.

``Services.view`` keys each overview on the contract's latest audit entry and today's date; these
tests change a contract in every way a user can (a submission, one from another process, a return
moving to pending, the date moving on) and check that the next ``status`` shows it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from kpibot.app.warmup import Warmup
from kpibot.app.wiring import services_for_database
from kpibot.commands.bot import Bot
from kpibot.core.access import AccessPolicy
from kpibot.core.protocol import Request
from kpibot.core.settings import Settings
from kpibot.store.database import Database
from tests.conftest import ACCESS_FILE


def ask(bot, text, user="U-COMMISSIONER"):
    return bot.handle(Request.from_text(text, user=user, platform="console"))


def row(reply, code):
    return next((r for r in reply.rows if r[0].text == code), None)


def amend_c1(bot):
    preview = ask(
        bot, "submit childrens-trust C1 2019/20 Q3 86/100 reason: recount", user="U-TRUST"
    )
    token = next(a.token for a in preview.actions if a.token)
    done = bot.handle(
        replace(Request.from_text("x", user="U-TRUST", platform="console"), confirm_token=token)
    )
    assert done.kind == "done", done.plain()


def test_repeated_status_is_the_same_answer_built_once(bot, monkeypatch):
    from kpibot.commands import status

    first = ask(bot, "status childrens-trust")
    builds = []
    monkeypatch.setattr(status, "overview", lambda *a: builds.append(a) or first)
    again = ask(bot, "status childrens-trust")
    assert builds == [] and again.plain() == first.plain()


def test_a_submission_shows_in_the_next_status(bot):
    before = ask(bot, "status childrens-trust")
    assert row(before, "C1") is None  # 96%: green, so not listed
    amend_c1(bot)
    after = ask(bot, "status childrens-trust")
    c1 = row(after, "C1")
    assert c1 is not None and c1[0].rag == "amber" and c1[2].text == "86%"
    assert "9 amber" in after.text and "8 amber" in before.text


def test_a_change_made_by_another_process_shows_at_once(bot, services, db, clock):
    ask(bot, "status childrens-trust")  # cached here
    other_db = Database(db.url)
    try:
        other = services_for_database(other_db, Settings(access_file=ACCESS_FILE), clock)
        amend_c1(Bot(other, AccessPolicy.load(ACCESS_FILE), b"test-secret"))
    finally:
        other_db.dispose()
    c1 = row(ask(bot, "status childrens-trust"), "C1")
    assert c1 is not None and c1[2].text == "86%"


def test_a_submitted_return_shows_as_pending(bot, services):
    from kpibot.features import returns
    from kpibot.store.rows import NewFigure

    contract = services.contract("childrens-trust")
    period = contract.parse_period("2019/20 Q3")
    assert "pending" not in ask(bot, "status childrens-trust 2019/20 Q3").text
    lacking = returns.load(services, contract, period).missing.figures
    services.figures.submit(
        contract.id,
        [NewFigure(k, period, value=100.0) for k in lacking],
        actor="U-TRUST",
        source="chat",
    )
    returns.submit_return(services, contract, period, "U-TRUST", "provider")
    assert "*pending* approval" in ask(bot, "status childrens-trust 2019/20 Q3").text
    returns.approve(services, contract, period, "U-COMMISSIONER", "commissioner")
    assert "pending" not in ask(bot, "status childrens-trust 2019/20 Q3").text


def test_the_submit_button_follows_who_asks_not_who_asked_first(bot):
    viewer = ask(bot, "status childrens-trust", user="U-BOARD")
    provider = ask(bot, "status childrens-trust", user="U-TRUST")
    viewer_again = ask(bot, "status childrens-trust", user="U-BOARD")
    submit = "Submit a figure"
    assert submit not in [a.label for a in viewer.actions]
    assert submit in [a.label for a in provider.actions]
    assert submit not in [a.label for a in viewer_again.actions]


def test_a_new_day_rebuilds_the_status(bot, clock, monkeypatch):
    from kpibot.commands import status

    ask(bot, "status childrens-trust")
    builds = []
    real = status.overview
    monkeypatch.setattr(status, "overview", lambda *a: builds.append(a) or real(*a))
    ask(bot, "status childrens-trust")
    assert builds == []
    clock.when += timedelta(days=1)
    ask(bot, "status childrens-trust")
    assert len(builds) == 1


def test_all_contracts_view_counts_agree_with_each_overview(bot):
    listing = ask(bot, "status")
    for cells in listing.rows:
        overview = ask(bot, f"status {cells[0].text}")
        assert cells[1].text in overview.title
        assert f"{cells[2].text} red" in overview.text and f"{cells[3].text} amber" in overview.text


@pytest.mark.parametrize("batch", [1000, 1], ids=["one-batch", "batches-of-one"])
def test_warm_up_builds_every_contract_before_it_says_ready(services, monkeypatch, batch):
    from kpibot.app import warmup as module
    from kpibot.commands import status

    # In batches of one, each batch's figures are read while the one before is evaluated.
    monkeypatch.setattr(module, "WARM_BATCH", batch)
    warmup = Warmup(services)
    assert not warmup.ready and warmup.progress()["status"] == "warming"
    warmup.start()
    assert warmup.wait(120)
    assert warmup.warmed == warmup.contracts == len(services.contract_ids()) and warmup.failed == 0
    # Every contract's status is now answered without building anything.
    monkeypatch.setattr(status, "overview", lambda *a: (_ for _ in ()).throw(AssertionError(a)))
    bot = Bot(services, AccessPolicy.load(ACCESS_FILE), b"test-secret")
    for cid in services.contract_ids():
        assert ask(bot, f"status {cid}").ok


def test_a_settling_warm_up_pauses_the_collector_and_always_resumes_it(services, monkeypatch):
    from kpibot.app import warmup as module
    from kpibot.commands import status

    calls = []

    class Collector:
        def isenabled(self):
            return True

        def disable(self):
            calls.append("disable")

        def enable(self):
            calls.append("enable")

        def freeze(self):
            calls.append("freeze")

    monkeypatch.setattr(module, "gc", Collector())  # the heap frozen once warm
    monkeypatch.setattr(status, "gc", Collector())  # the collector paused (collector_paused)
    monkeypatch.setattr(module, "warm", lambda *a: calls.append("warm") or {})
    Warmup(services, settle=True).run()
    assert calls[0] == "disable" and calls[-2:] == ["freeze", "enable"] and "warm" in calls

    calls.clear()
    monkeypatch.setattr(services, "contract_ids", lambda: 1 / 0)  # listing the contracts fails
    Warmup(services, settle=True).run()
    assert calls == ["disable", "freeze", "enable"]


def test_warm_up_stores_phrase_readings_that_are_missing_or_from_other_code(services):
    from sqlalchemy import update

    from kpibot.store.schema import ContractRecord

    with services.db.session() as session:  # as an upgrade to another grammar leaves them
        session.execute(update(ContractRecord).values(readings_key="0" * 64))
    assert len(services.contracts.stale_readings()) == len(services.contract_ids())
    warmup = Warmup(services)
    warmup.run()  # what start() runs on its thread: warm, say ready, then store the readings
    assert warmup.ready
    assert services.contracts.stale_readings() == []


def test_scorecards_built_together_are_the_ones_built_alone(services, monkeypatch):
    from kpibot.app.wiring import services_for_database
    from kpibot.engine.scorecard import Scorecard

    contracts = [services.contract(cid) for cid in services.contract_ids()]
    at = {c.id: services.default_period(c) for c in contracts}
    services.prefetch_scorecards(contracts, at)
    monkeypatch.setattr(Scorecard, "build", lambda *a: (_ for _ in ()).throw(AssertionError(a)))
    cards = {c.id: services.scorecard(c, at[c.id]).frame for c in contracts}
    monkeypatch.undo()
    alone = services_for_database(services.db, services.settings, services.clock)
    for c in contracts:
        mine = alone.contract(c.id)
        expected = alone.scorecard(mine, alone.default_period(mine)).frame
        assert cards[c.id].equals(expected), c.id


def test_summaries_prepared_together_read_as_composed_alone(services):
    from kpibot.app.wiring import services_for_database
    from kpibot.features.summary import composer
    from kpibot.store.outbox import OutboxMessage

    def message(cid):
        period = services.default_period(services.contract(cid))
        now = services.now()
        return OutboxMessage(
            id=1,
            key=f"{cid}|s",
            contract_id=cid,
            kind="summary",
            audience="channel",
            platform="console",
            channel="c",
            period=period.label,
            step=None,
            due_at=now,
            payload={},
            attempts=0,
            claim="x",
            claimed_at=now,
        )

    ids = services.contract_ids()
    together = composer(services)
    together.prepare([message(cid) for cid in ids])
    alone = composer(services_for_database(services.db, services.settings, services.clock))
    for cid in ids:
        a, b = together(message(cid)), alone(message(cid))
        assert (a.title, a.text, a.rows, a.chart) == (b.title, b.text, b.rows, b.chart), cid
