"""``/kpi event``, ``/kpi waive`` and ``/kpi payments <contract> <month>`` through the bot, as
users type them, on SQLite and PostgreSQL. Events and figures are invented."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from kpibot.commands.bot import Bot
from kpibot.commands.event import parse_event_args
from kpibot.core.access import AccessPolicy
from kpibot.core.protocol import Request
from kpibot.files.contracts import load_contracts
from kpibot.store.schema import AuditEventRecord, SanctionEventRecord, SanctionWaiverRecord

LONDON = ZoneInfo("Europe/London")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "contracts"
POLICY = {
    "users": {
        "U-COMMISSIONER": {"role": "commissioner", "name": "Casey", "contracts": "all"},
        "U-WASTE": {"role": "provider", "name": "Wes", "contracts": ["waste-collection-example"]},
        "U-HOSPITAL": {"role": "provider", "name": "Hal", "contracts": ["acute-hospital-example"]},
        "U-BOARD": {"role": "viewer", "contracts": "all"},
    }
}


@pytest.fixture
def money_bot(services, clock):
    services.store_contracts(load_contracts([FIXTURES]), actor="test", with_history=False)
    clock.when = datetime(2019, 11, 20, 10, tzinfo=LONDON)
    return Bot(services, AccessPolicy.model_validate(POLICY), b"test-secret")


def ask(bot, line, user="U-WASTE"):
    return bot.handle(Request.from_text(line, user=user, platform="console"))


def count(services, model):
    with services.db.session(read_only=True) as session:
        return session.scalar(select(func.count()).select_from(model))


def test_event_arguments_are_read_like_people_type_them():
    cells, note = parse_event_args(
        [
            "HO-7",
            "2015-11-04",
            "14:05",
            "value:75",
            "rectified:2015-11-04",
            "15:00",
            "queue",
            "outside",
        ]
    )
    assert cells == {
        "reference": "HO-7",
        "date": "2015-11-04 14:05",
        "value": "75",
        "rectified_at": "2015-11-04 15:00",
    }
    assert note == "queue outside"


def test_a_provider_records_an_event_and_sees_what_it_costs(money_bot, services):
    reply = ask(
        money_bot,
        "/kpi event waste-collection-example missed-collection COMMUNAL-7 2019-11-18 07:30 affected:12",
    )
    assert reply.kind == "done", reply.plain()
    # 12 households × 1 point; at 10:00 on the 20th its 1 working day (end of the 19th) has run
    # out unrectified: 12 more. 24 points, within the floor of 100.
    assert reply.text == (
        "Recorded: missed-collection COMMUNAL-7, Mon 18 Nov 2019 07:30, 12 affected.\n"
        "2019-11: nothing deducted; 24 points, floor 100, within the floor"
    )
    entry = next(
        e for e in services.audit.recent(5, "waste-collection-example") if e.action == "events"
    )
    assert (entry.action, entry.actor, entry.detail["added"], entry.detail["source"]) == (
        "events",
        "U-WASTE",
        1,
        "chat",
    )
    done = ask(
        money_bot, "/kpi event waste-collection-example rectified COMMUNAL-7 2019-11-20 09:30"
    )
    assert (
        done.text
        == "Recorded COMMUNAL-7 (missed-collection, Mon 18 Nov 2019 07:30) as put right at Wed 20 Nov 2019 09:30."
    )


def test_bad_events_are_refused_with_every_problem_and_nothing_stored(money_bot, services):
    reply = ask(
        money_bot,
        "/kpi event waste-collection-example missed-colection UPRN-1 2019-11-31 affected:0",
    )
    assert reply.kind == "error"
    assert reply.text.splitlines() == [
        "• your message, column 'kind': 'missed-colection' is not an event kind of "
        "waste-collection-example. Did you mean 'missed-collection'? Its kinds: missed-collection, "
        "ombudsman-upheld, spillage-not-cleared",
        "• your message, column 'date': '2019-11-31' is not a date I can read; write it like "
        "2019-11-04 or 2019-11-04 14:30",
        "• your message, column 'affected': '0' should be a whole number from 1 to 1,000,000",
    ]
    assert count(services, SanctionEventRecord) == 0
    assert ask(money_bot, "/kpi event waste-collection-example").text.startswith(
        "Say which kind of event and its reference"
    )
    assert ask(
        money_bot, "/kpi event healthy-child-0-19 x y", user="U-COMMISSIONER"
    ).text.startswith("healthy-child-0-19 counts no events")


def test_only_the_contracts_parties_record_events(money_bot, services):
    refused = ask(
        money_bot, "/kpi event acute-hospital-example handover-delay HO-1 2015-11-02 value:45"
    )
    assert refused.kind == "refusal"
    viewer = ask(
        money_bot, "/kpi event waste-collection-example missed-collection U1", user="U-BOARD"
    )
    assert viewer.kind == "refusal"
    assert count(services, SanctionEventRecord) == 0


def test_waive_is_for_commissioners_and_changes_the_ledger(money_bot, services):
    ask(money_bot, "/kpi event waste-collection-example ombudsman-upheld PSOW-3 2019-11-12")
    before = ask(money_bot, "/kpi payments waste-collection-example 2019-11", user="U-COMMISSIONER")
    assert "*2019-11: £5,000 off the payment (points £5,000); 500 points" in before.text
    # 500 of the 1,500 points that give a termination right over 6 months: 33%.
    assert (
        "Rolling 6-month points 500 of the 1,500 that give a termination right "
        "(Clause 43 (termination)) (33%)." in before.text
    )
    refused = ask(money_bot, '/kpi waive waste-collection-example PSOW-3 "we disagree"')
    assert refused.kind == "refusal" and "waiving sanctions" in refused.text
    assert count(services, SanctionWaiverRecord) == 0
    why = ask(money_bot, "/kpi waive waste-collection-example PSOW-3", user="U-COMMISSIONER")
    assert why.kind == "error" and why.text.startswith("Say why it is waived")
    done = ask(
        money_bot,
        '/kpi waive waste-collection-example PSOW-3 "Ombudsman decision quashed on review"',
        user="U-COMMISSIONER",
    )
    assert done.kind == "done", done.plain()
    assert done.text == (
        "Waived PSOW-3: Ombudsman decision quashed on review. Recorded as waived by Casey.\n"
        "2019-11: nothing deducted; 0 points, floor 100, within the floor; 1 item waived"
    )
    after = ask(money_bot, "/kpi payments waste-collection-example 2019-11", user="U-WASTE")
    row = next(r for r in after.rows if r[1].text == "ombudsman-upheld")
    assert "waived: 1 failure: 1 × 500 pt = 500 points" in row[6].text
    assert "waived by Casey on 20 Nov 2019: Ombudsman decision quashed on review" in row[6].text
    with services.db.session(read_only=True) as session:
        actions = session.scalars(
            select(AuditEventRecord.outcome)
            .where(AuditEventRecord.action.in_(["waive", "refuse:waive"]))
            .order_by(AuditEventRecord.id)
        ).all()
    assert actions == ["refused", "ok"]


def test_payments_shows_the_ledger_for_a_month_or_a_quarter(money_bot, services):
    for ref, minutes in (("HO-1", 45), ("HO-2", 61), ("HO-3", 25)):
        services.clock.when = datetime(2016, 1, 15, 10, tzinfo=LONDON)
        ask(
            money_bot,
            f"/kpi event acute-hospital-example handover-delay {ref} 2015-11-0{ref[-1]} 10:00 value:{minutes}",
            user="U-HOSPITAL",
        )
    month = ask(money_bot, "/kpi payments acute-hospital-example 2015-11", user="U-HOSPITAL")
    assert month.title == "Payments · Acute Hospital Services (test fixture) · 2015-11"
    # HO-1 (45 min) £200 + HO-2 (61 min) £1,000 = £1,200; HO-3 (25 min) is not over 30.
    assert month.text.startswith("*2015-11: £1,200 off the payment (handover-delay £1,200)*")
    assert month.columns == [
        "Month",
        "Rule",
        "Events or figures",
        "Points",
        "Amount",
        "Clause",
        "Why",
    ]
    charged = month.rows[0]
    assert [c.text for c in charged[:5]] == [
        "2015-11",
        "handover-delay",
        "HO-1, HO-2",
        "",
        "-£1,200",
    ]
    assert charged[1].rag == "red"
    quarter = ask(money_bot, "/kpi payments acute-hospital-example 2015/16 Q3", user="U-HOSPITAL")
    assert (
        quarter.text.splitlines()[0]
        == "*2015-10 to 2015-12: £1,200 off the payment in all; 0 points*"
    )
    bad = ask(money_bot, "/kpi payments acute-hospital-example 2015-13", user="U-HOSPITAL")
    assert bad.kind == "error" and "is not a month or quarter I can read" in bad.text
    # The seed contracts still answer by contract year.
    seed = ask(money_bot, "/kpi payments healthy-child-0-19 0", user="U-COMMISSIONER")
    assert seed.title.startswith("Payments · ") and "Year 0" in seed.title
