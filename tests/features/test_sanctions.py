"""Sanctions in the store, on SQLite and PostgreSQL: the event log (all or nothing, audited,
append-only), waivers (commissioners, audited), a month's ledger on the two fixture contracts with
the arithmetic shown, the CSV rows, the status line, and the alerts through the outbox.

All events and figures here are invented for the tests.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from kpibot.engine.periods import parse_period
from kpibot.features.sanctions import (
    EventLog,
    SanctionError,
    default_month,
    ledger,
    ledger_rows,
    month_range,
    sanction_messages,
    status_lines,
    waive,
)
from kpibot.files.contracts import load_contracts
from kpibot.files.events import check_events
from kpibot.files.tables import read_table_bytes
from kpibot.scheduler.tick import ReminderTick
from kpibot.store.rows import NewFigure
from kpibot.store.schema import AuditEventRecord, OutboxRecord, SanctionEventRecord

LONDON = ZoneInfo("Europe/London")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "contracts"

WASTE_NOVEMBER = "\n".join(
    ["date,kind,reference,affected,rectified_at"]
    + [f"2019-11-04 07:30,missed-collection,UPRN-{i:03d},1,2019-11-05 12:00" for i in range(1, 28)]
    + [
        "2019-11-06 07:30,missed-collection,COMMUNAL-7,12,2019-11-09 09:00",
        "2019-11-11 07:30,missed-collection,UPRN-001,1,2019-11-12 09:00",
        "2019-11-18 07:30,missed-collection,UPRN-001,1,",
        "2019-11-20 08:00,spillage-not-cleared,SP-1,1,",
    ]
).encode()

HOSPITAL_NOVEMBER = b"""date,kind,reference,value
2015-11-02 10:15,handover-delay,HO-1101,45
2015-11-03 11:00,handover-delay,HO-1102,31
2015-11-04 18:20,handover-delay,HO-1103,61
2015-11-05 09:00,handover-delay,HO-1104,25
2015-11-06 13:30,handover-delay,HO-1105,90
2015-11-09 16:45,handover-delay,HO-1106,58
"""


def london(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=LONDON)  # type: ignore[misc]


@pytest.fixture
def money(services, clock):
    """The seed contracts plus the two fixture contracts."""
    services.store_contracts(load_contracts([FIXTURES]), actor="test", with_history=False)
    return services


def import_log(services, contract_id, data, actor="U-PROVIDER"):
    contract = services.contract(contract_id)
    checked = check_events(contract, read_table_bytes(data, "log.csv"), services.now())
    assert checked.errors == []
    return EventLog(services).record(contract, checked.events, actor, "import", file="log.csv")


def submit(services, contract_id, rows):
    contract = services.contract(contract_id)
    figures = [
        NewFigure(kpi, contract.parse_period(period), value=value, numerator=num, denominator=den)
        for kpi, period, value, num, den in rows
    ]
    services.figures.submit(contract_id, figures, actor="test", source="cli")


def audit(services, action):
    with services.db.session(read_only=True) as session:
        return list(
            session.scalars(
                select(AuditEventRecord)
                .where(AuditEventRecord.action == action)
                .order_by(AuditEventRecord.id)
            )
        )


# ------------------------------------------------------------------ done when: a month on each


def test_waste_collection_month_with_the_arithmetic(money, clock):
    """November 2019 on the waste fixture (figures invented, see the YAML), drawn up on 10 Dec:

    points: 27 misses × 1 + COMMUNAL-7's 12 households × 1 + UPRN-001's 2nd (×2) and 3rd (×3)
    misses = 44; not put right within 1 working day: COMMUNAL-7 at the end of 7 and 8 Nov
    (2 × 12 = 24) and UPRN-001 at the end of 19–22 and 25–29 Nov (9 × 1) = 33; the spillage not
    cleared within 24 hours = 10; collections on the day 99.2%, worse than 99.5% = 20.
    44 + 33 + 10 + 20 = 107 points, over the floor of 100: band 1, 1% × £200,000 = £2,000.
    Service credit: recycling 53%, worse than 55%: 1% × £200,000 = £2,000 (under the caps).
    Incentive: needs W1 ≥ 99.9 and W2 ≥ 62: not earned. Off the payment: £4,000."""
    clock.when = london(2019, 12, 10, 10)
    outcome = import_log(money, "waste-collection-example", WASTE_NOVEMBER)
    assert outcome.summary == "Stored 31 event(s) for waste-collection-example from log.csv."
    submit(
        money,
        "waste-collection-example",
        [("W1", "2019-11", 99.2, None, None), ("W2", "2019-11", 53.0, None, None)],
    )
    contract = money.contract("waste-collection-example")
    result = ledger(money, contract, month_range(contract, "2019-11"))
    nov = result.months[0]
    assert nov.points == 107
    assert nov.total().gbp == Decimal(-4000)
    assert nov.verdict() == (
        "2019-11: £4,000 off the payment (points £2,000, recycling-rate £2,000); "
        "107 points, floor 100, band 1 (101-250 points)"
    )
    rows = {(r[3], r[8][:12]): r for r in ledger_rows(result)}
    assert rows[("points", "107 points i")][6] == "-2000.00"
    assert rows[("recycling-rate", "worse than 5")][6] == "-2000.00"
    # Status for Q3 shows its last month: UPRN-001, still not put right, scores again at the end
    # of 2, 3 and 4 December, its 10th to 12th (and last) rectification periods.
    assert status_lines(money, contract, parse_period("2019/20 Q3")) == [
        "⚖️ 2019-12: nothing deducted; 3 points, floor 100, within the floor"
    ]
    assert status_lines(money, contract, parse_period("2019-11")) == [f"⚖️ {nov.verdict()}"]


def test_acute_hospital_month_with_the_arithmetic_and_a_waiver(money, clock):
    """November 2015 on the hospital fixture (sums as public sources report; events invented):

    handovers: HO-1101 45 min, HO-1102 31, HO-1106 58 → 3 × £200; HO-1103 61, HO-1105 90 →
    2 × £1,000; HO-1104 25 min is not over 30: £600 + £2,000 = £2,600.
    52-week waits: 3 patients × £5,000 = £15,000.
    RTT incomplete: 2,150 of 25,000 over 18 weeks; 8% × 25,000 = 2,000 may breach, so 150 ×
    £300 (the rate varied from 1 October 2015) = £45,000.
    Total £2,600 + £15,000 + £45,000 = £62,600. The commissioner waives HO-1105 (£1,000):
    £61,600, and the ledger and the audit trail say who and why."""
    clock.when = london(2016, 1, 15, 10)
    import_log(money, "acute-hospital-example", HOSPITAL_NOVEMBER)
    submit(
        money,
        "acute-hospital-example",
        [("RTT52", "2015-11", 3, None, None), ("RTT18", "2015-11", None, 2150, 25000)],
    )
    contract = money.contract("acute-hospital-example")
    nov = ledger(money, contract, month_range(contract, "2015-11")).months[0]
    assert nov.total().gbp == Decimal(-62600)
    assert nov.verdict() == (
        "2015-11: £62,600 off the payment (handover-delay £2,600, over-52-weeks £15,000, "
        "rtt-incomplete £45,000)"
    )
    waiver = waive(
        money, contract, "HO-1105", "Major incident declared that afternoon", "U-C", "Casey"
    )
    assert waiver.by == "Casey"
    after = ledger(money, contract, month_range(contract, "2015-11")).months[0]
    assert after.total().gbp == Decimal(-61600)
    assert after.verdict().endswith("; 1 item waived")
    waived = next(ln for ln in after.lines if ln.status == "waived")
    assert waived.events == ("HO-1105",)
    assert "waived by Casey on 15 Jan 2016: Major incident declared that afternoon" in waived.note
    entry = audit(money, "waive")[-1]
    assert (entry.actor, entry.contract_id, entry.subject, entry.outcome) == (
        "U-C",
        "acute-hospital-example",
        "HO-1105",
        "ok",
    )
    assert entry.detail == {"reason": "Major incident declared that afternoon", "by": "Casey"}


def test_a_quarter_lists_its_three_months(money, clock):
    clock.when = london(2016, 1, 15, 10)
    contract = money.contract("acute-hospital-example")
    months = month_range(contract, "2015/16 Q3")
    assert [m.label for m in months] == ["2015-10", "2015-11", "2015-12"]
    assert month_range(contract, "2015/16").startswith("'2015/16' is not a month or quarter")
    assert month_range(contract, "2019-11").startswith("2019-11 is outside the contract")
    assert default_month(contract, clock.when.date()).label == "2015-12"


# ------------------------------------------------------------------ the event log


def test_a_log_with_a_conflict_stores_nothing_and_the_refusal_is_audited(money, clock):
    clock.when = london(2016, 1, 15, 10)
    import_log(money, "acute-hospital-example", HOSPITAL_NOVEMBER)
    contract = money.contract("acute-hospital-example")
    changed = HOSPITAL_NOVEMBER.replace(b"HO-1102,31", b"HO-1102,35") + (
        b"2015-11-20 10:00,handover-delay,HO-1199,40\n"
    )
    checked = check_events(contract, read_table_bytes(changed, "again.csv"), money.now())
    outcome = EventLog(money).record(contract, checked.events, "U-P", "import", file="again.csv")
    assert [str(e) for e in outcome.errors] == [
        "again.csv, line 3, column 'reference': the handover-delay event HO-1102 on Tue 3 Nov "
        "2015 11:00 is already recorded with value 31.0; events are never changed, so give this "
        "one its own reference if it is a different event"
    ]
    assert outcome.added == 0
    assert "HO-1199" not in EventLog(money).references(contract.id)
    refused = audit(money, "events")[-1]
    assert refused.outcome == "refused" and "again.csv, line 3" in refused.detail["problems"][0]


def test_rectification_is_recorded_once_and_events_are_never_deleted(money, clock):
    clock.when = london(2019, 11, 20, 10)
    contract = money.contract("waste-collection-example")
    log = b"date,kind,reference\n2019-11-18 07:30,missed-collection,UPRN-5\n"
    import_log(money, contract.id, log)
    again = b"date,kind,reference,rectified_at\n2019-11-18 07:30,missed-collection,UPRN-5,2019-11-19 15:00\n"
    outcome = import_log(money, contract.id, again)
    assert outcome.rectified == 1 and "1 newly recorded as put right" in outcome.summary
    assert (
        EventLog(money)
        .rectify(contract, "UPRN-5", london(2019, 11, 20, 9), "U-P")
        .startswith(
            "UPRN-5 (missed-collection, Mon 18 Nov 2019 07:30) was already recorded as put right at "
            "Tue 19 Nov 2019 15:00"
        )
    )
    with pytest.raises(SanctionError, match="has no event with reference UPRN-404"):
        EventLog(money).rectify(contract, "UPRN-404", london(2019, 11, 20, 9), "U-P")
    for statement in (
        "UPDATE sanction_events SET rectified_at = NULL",
        "UPDATE sanction_events SET reference = 'X'",
        "DELETE FROM sanction_events",
    ):
        with pytest.raises((IntegrityError, DBAPIError)), money.db.session() as session:
            session.execute(text(statement))
    with money.db.session(read_only=True) as session:
        assert session.scalar(select(SanctionEventRecord.reference)) == "UPRN-5"


def test_rectify_in_chat_terms_records_it_and_audits(money, clock):
    clock.when = london(2019, 11, 20, 10)
    contract = money.contract("waste-collection-example")
    import_log(
        money, contract.id, b"date,kind,reference\n2019-11-18 07:30,missed-collection,UPRN-6\n"
    )
    said = EventLog(money).rectify(contract, "UPRN-6", london(2019, 11, 19, 11), "U-P")
    assert (
        said
        == "Recorded UPRN-6 (missed-collection, Mon 18 Nov 2019 07:30) as put right at Tue 19 Nov 2019 11:00."
    )
    assert audit(money, "event_rectified")[-1].subject == "UPRN-6"
    nov = ledger(money, contract, month_range(contract, "2019-11")).months[0]
    assert nov.points == 1  # put right within 1 working day: no recharge


# ------------------------------------------------------------------ waivers


def test_waivers_are_refused_politely_and_audited(money, clock):
    clock.when = london(2016, 1, 15, 10)
    import_log(money, "acute-hospital-example", HOSPITAL_NOVEMBER)
    contract = money.contract("acute-hospital-example")
    with pytest.raises(SanctionError, match="Say why it is waived"):
        waive(money, contract, "HO-1101", "  ", "U-C", "Casey")
    with pytest.raises(SanctionError, match="'HO-9999' is neither an event reference"):
        waive(money, contract, "HO-9999", "why", "U-C", "Casey")
    with pytest.raises(SanctionError, match="'nope:2015-11' is neither"):
        waive(money, contract, "nope:2015-11", "why", "U-C", "Casey")
    with pytest.raises(
        SanctionError, match="A reason is limited to 500 characters; yours is 1 over"
    ):
        waive(money, contract, "HO-1101", "x" * 501, "U-C", "Casey")
    waive(money, contract, "over-52-weeks:2015-11", "validated waiting list error", "U-C", "Casey")
    with pytest.raises(SanctionError, match="over-52-weeks:2015-11 is already waived"):
        waive(money, contract, "over-52-weeks:2015-11", "again", "U-C", "Casey")
    outcomes = [e.outcome for e in audit(money, "waive")]
    assert outcomes == ["refused", "refused", "refused", "refused", "ok", "refused"]
    with pytest.raises((IntegrityError, DBAPIError)), money.db.session() as session:
        session.execute(text("DELETE FROM sanction_waivers"))


# ------------------------------------------------------------------ alerts


def test_alerts_for_bands_termination_and_missed_rectification(money, clock):
    """Invented: a miss on Mon 18 Nov (1 point, and 1 again at the end of Tue 19 Nov, not put
    right) and an upheld Ombudsman complaint (500 points), both recorded at 10:00 on 20 Nov:
    November goes from 0 to 502 points, into band 3 (over 500). With July–September's three
    complaints (1,500 points) the rolling 12-month total goes from 1,500 (60%) to 2,002 (80%):
    the 75% warning. The 6-month total was already at its 1,500 threshold: no new message. The
    missed rectification alerts at its deadline, the end of Tue 19 Nov."""
    contract = money.contract("waste-collection-example")
    clock.when = london(2019, 11, 1, 9)
    import_log(
        money,
        contract.id,
        b"date,kind,reference\n"
        b"2019-07-15,ombudsman-upheld,PSOW-7\n2019-08-15,ombudsman-upheld,PSOW-8\n"
        b"2019-09-15,ombudsman-upheld,PSOW-9\n",
    )
    clock.when = london(2019, 11, 20, 10)
    import_log(
        money,
        contract.id,
        b"date,kind,reference\n2019-11-18 07:30,missed-collection,UPRN-1\n"
        b"2019-11-20 08:00,ombudsman-upheld,PSOW-11\n",
    )
    start, end = london(2019, 11, 19, 12), london(2019, 11, 20, 10, 1)
    messages = sanction_messages(money, start, end)
    kinds = [(m.kind, m.audience, m.step) for m in messages]
    assert ("rectification_missed", "provider", "deadline") in kinds
    assert ("points_band", "commissioner", "band-3") in kinds
    assert [k for k in kinds if k[0] == "termination_warning"] == [
        ("termination_warning", "commissioner", "12m-75")
    ]
    missed = next(m for m in messages if m.kind == "rectification_missed")
    assert missed.when == london(2019, 11, 19, 23, 59, 59, 999999)
    assert "UPRN-1 (Mon 18 Nov 2019 07:30) was not put right within 1 working day" in missed.text
    band = next(m for m in messages if m.kind == "points_band")
    assert "502 penalty points in 2019-11 have reached band 3 (over 500 points)" in band.text
    # Nothing new since: the next window is quiet.
    assert sanction_messages(money, end, london(2019, 11, 20, 10, 2)) == []


def test_a_rolling_total_warns_at_75_and_90_percent_and_when_reached(money, clock):
    """Invented: the 12-month threshold is 2,500 points. Upheld complaints (500 each) in Jul,
    Aug and Sep 2019: 1,500 (60%). A 4th on 20 Oct: 2,000 (80%) → the 75% warning. A missed
    round of 250 households on 21 Oct, put right that day: 2,250 (90%) → the 90% warning. A 5th
    complaint on 22 Oct: 2,750 (110%) → reached."""
    contract = money.contract("waste-collection-example")
    clock.when = london(2019, 10, 1, 9)
    import_log(
        money,
        contract.id,
        b"date,kind,reference\n2019-07-15,ombudsman-upheld,A\n2019-08-15,ombudsman-upheld,B\n"
        b"2019-09-15,ombudsman-upheld,C\n",
    )
    steps = []
    for day, line in (
        (20, b"2019-10-20 09:00,ombudsman-upheld,D,1,"),
        (21, b"2019-10-21 07:00,missed-collection,ROUND-9,250,2019-10-21 15:00"),
        (22, b"2019-10-22 09:00,ombudsman-upheld,E,1,"),
    ):
        clock.when = london(2019, 10, day, 16)
        import_log(money, contract.id, b"date,kind,reference,affected,rectified_at\n" + line)
        window = sanction_messages(
            money, london(2019, 10, day, 15, 59), london(2019, 10, day, 16, 1)
        )
        steps += [
            m.step for m in window if m.kind == "termination_warning" and m.step.startswith("12m")
        ]
        if day == 20:
            assert next(m.text for m in window if m.step == "12m-75").startswith(
                "Household Waste and Recycling Collection (test fixture): nearing a termination "
                "threshold: rolling 12-month points 2,000 of the 2,500"
            )
        if day == 22:
            assert "termination threshold reached" in next(
                m.text for m in window if m.step == "12m-100"
            )
    assert steps == ["12m-75", "12m-90", "12m-100"]


def test_the_tick_puts_the_alerts_in_the_outbox_once(money, clock):
    contract = money.contract("waste-collection-example")
    clock.when = london(2019, 11, 18, 12)
    import_log(
        money, contract.id, b"date,kind,reference\n2019-11-18 07:30,missed-collection,UPRN-1\n"
    )
    tick = ReminderTick(money, None, start=london(2019, 11, 18, 12, 30))
    tick.tick(london(2019, 11, 21, 9))
    tick.tick(london(2019, 11, 22, 9))
    with money.db.session(read_only=True) as session:
        rows = session.scalars(
            select(OutboxRecord).where(OutboxRecord.kind == "rectification_missed")
        ).all()
    assert sorted(r.audience for r in rows) == ["commissioner", "provider"]
    assert {r.period for r in rows} == {"sanction-event-1"}
