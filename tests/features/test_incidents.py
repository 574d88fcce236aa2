"""The incident register through the bot and the register, on SQLite and PostgreSQL.

Deadlines come from the contracts' incident rules; reporting stops the clock the scheduler plans
reminders from; refusals say what to do and write nothing but an audit row.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from kpibot.commands.bot import Bot
from kpibot.commands.incidents import (
    ReportArgs,
    parse_report,
    split_action_plan,
)
from kpibot.core.protocol import Reply, Request
from kpibot.core.services import Services
from kpibot.engine.model import Contract
from kpibot.features.incidents import (
    AlreadyReported,
    EmptyDescription,
    IncidentError,
    IncidentNotAllowed,
    IncidentRegister,
    UnknownIncident,
    UnknownIncidentKind,
    incident_kinds,
    open_incident_clocks,
)
from kpibot.scheduler.plan import ContractInputs, plan_window
from kpibot.store.schema import IncidentRecord
from tests.conftest import FixedClock

LONDON = ZoneInfo("Europe/London")


def london(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LONDON)


def ask(bot: Bot, line: str, user: str = "U-COMMISSIONER", channel: str | None = None) -> Reply:
    return bot.handle(Request.from_text(line, user=user, platform="console", channel=channel))


def stored(services: Services) -> list[IncidentRecord]:
    with services.db.session(read_only=True) as session:
        return list(session.scalars(select(IncidentRecord).order_by(IncidentRecord.id)))


def count(services: Services) -> int:
    with services.db.session(read_only=True) as session:
        return session.scalar(select(func.count()).select_from(IncidentRecord)) or 0


def audit(services: Services, contract_id: str | None = None) -> list[tuple[str, str]]:
    return [(e.action, e.outcome) for e in services.audit.recent(200, contract_id)]


# ------------------------------------------------------------------------------------ deadlines


@pytest.mark.parametrize(
    ("user", "line", "opened", "deadline", "words"),
    [
        # Seed 000: SUIs within 24 hours, near misses within 72 hours.
        (
            "U-HEALTH",
            'incident healthy-child-0-19 sui "Child harmed at clinic"',
            london(2020, 2, 20, 10),
            london(2020, 2, 21, 10),
            "Fri 21 Feb 10:00 (within 24 hours)",
        ),
        (
            "U-HEALTH",
            'incident healthy-child-0-19 near-miss "Wrong leaflet"',
            london(2020, 2, 20, 10),
            london(2020, 2, 23, 10),
            "Sun 23 Feb 10:00 (within 72 hours)",
        ),
        # Seed 001: inspection reports within 2 working days, across a weekend ...
        (
            "U-LIFESTYLE",
            'incident one-you-lifestyle inspection "CQC visit"',
            london(2020, 2, 20, 10),
            london(2020, 2, 24, 10),
            "Mon 24 Feb 10:00 (within 2 working days)",
        ),
        # ... and across the VE Day bank holiday (Friday 8 May 2020) and the weekend after it.
        (
            "U-LIFESTYLE",
            'incident one-you-lifestyle inspection "Ofsted visit"',
            london(2020, 5, 7, 15, 30),
            london(2020, 5, 12, 15, 30),
            "Tue 12 May 15:30",
        ),
        # 24 hours are elapsed hours: across the spring clock change the wall clock moves on one.
        (
            "U-TRUST",
            'incident childrens-trust sui "Child harmed"',
            london(2020, 3, 28, 12),
            london(2020, 3, 29, 13),
            "Sun 29 Mar 13:00 (within 24 hours)",
        ),
    ],
)
def test_each_kind_gets_the_deadline_its_contract_sets(
    bot: Bot,
    services: Services,
    clock: FixedClock,
    user: str,
    line: str,
    opened: datetime,
    deadline: datetime,
    words: str,
) -> None:
    clock.when = opened
    reply = ask(bot, line, user=user)
    assert reply.kind == "done", reply.plain()
    assert f"Report due by {words}" in reply.text
    [row] = stored(services)
    assert f"#{row.id}" in reply.title and row.status == "open" and row.opened_by == user
    assert row.opened_at == opened and row.deadline == deadline
    assert row.deadline.tzinfo is UTC


def test_an_interruption_is_due_at_once_and_the_commissioner_is_told_now(
    bot: Bot, services: Services, clock: FixedClock
) -> None:
    reply = ask(bot, 'incident one-you-lifestyle interruption "Gym closed by flood"', "U-LIFESTYLE")
    assert reply.kind == "done" and "commissioner is being notified now" in reply.text
    [row] = stored(services)
    assert row.deadline == row.opened_at == clock.when
    assert row.label == "Service interruption or disruption"


def test_a_bound_channel_supplies_the_contract_and_two_word_types_are_read(
    bot: Bot, services: Services
) -> None:
    for line in (
        'incident sui "Child harmed"',
        'incident near-miss "Door left open"',
        "incident Near miss Door left open again",
    ):
        reply = ask(bot, line, user="U-TRUST", channel="C-TRUST")
        assert reply.kind == "done", reply.plain()
    assert [(r.contract_id, r.kind) for r in stored(services)] == [
        ("childrens-trust", "sui"),
        ("childrens-trust", "near-miss"),
        ("childrens-trust", "near-miss"),
    ]
    assert stored(services)[2].description == "Door left open again"


def test_without_a_contract_or_a_bound_channel_it_asks_which_contract(
    bot: Bot, services: Services
) -> None:
    reply = ask(bot, 'incident sui "Child harmed"', user="U-TRUST")
    assert reply.kind == "error" and "Which contract" in reply.title
    assert "childrens-trust" in reply.text and "healthy-child" not in reply.text
    assert count(services) == 0


def test_the_allowed_kinds_are_the_contracts_own_or_the_defaults(
    seed_contracts: dict[str, Contract],
) -> None:
    assert list(incident_kinds(seed_contracts["healthy-child-0-19"])) == ["sui", "near-miss"]
    assert list(incident_kinds(seed_contracts["one-you-lifestyle"])) == [
        "interruption",
        "inspection",
        "critical_failure",
    ]
    assert list(incident_kinds(seed_contracts["childrens-trust"])) == [
        "sui",
        "near-miss",
        "interruption",
        "inspection",
    ]


# ------------------------------------------------------------------------------------ reports


def test_a_report_stops_the_clock(bot: Bot, services: Services, clock: FixedClock) -> None:
    opened = clock.when
    ask(bot, 'incident childrens-trust sui "Child harmed"', user="U-TRUST")
    [clock_before] = open_incident_clocks(services)["childrens-trust"]
    assert clock_before.reported_at is None and clock_before.label == "Serious untoward incident"
    clock.when = opened + timedelta(hours=3)
    reply = ask(
        bot,
        'incident report 1 "Bruised arm, parent told. Action plan: retrain staff"',
        user="U-TRUST",
    )
    assert reply.kind == "done", reply.plain()
    assert "on time" in reply.text and "clock has stopped" in reply.text
    [row] = stored(services)
    assert (row.status, row.reported_by, row.reported_at) == ("reported", "U-TRUST", clock.when)
    assert (row.report, row.action_plan) == ("Bruised arm, parent told.", "retrain staff")
    [clock_after] = open_incident_clocks(services)["childrens-trust"]
    assert clock_after.reported_at == clock.when


def test_reporting_twice_is_refused_and_the_first_report_stands(
    bot: Bot, services: Services, clock: FixedClock
) -> None:
    ask(bot, 'incident childrens-trust sui "Child harmed"', user="U-TRUST")
    clock.when += timedelta(hours=3)
    assert ask(bot, 'incident report #1 "First"', user="U-TRUST").kind == "done"
    clock.when += timedelta(hours=1)
    again = ask(bot, 'incident report 1 "Second"', user="U-COMMISSIONER")
    assert again.kind == "error"
    assert again.text == (
        "Incident #1 was already reported on Thu 20 Feb 2020 13:00 by U-TRUST, "
        "and a filed report cannot be changed."
    )
    assert stored(services)[0].report == "First"
    with pytest.raises(AlreadyReported):
        IncidentRegister(services).report(1, "Third", None, "U-TRUST", clock.when)


def test_two_reports_at_once_file_exactly_one(
    services: Services, seed_contracts: dict[str, Contract], clock: FixedClock
) -> None:
    register = IncidentRegister(services)
    opened = register.open(seed_contracts["childrens-trust"], "sui", "Harm", "U-TRUST", clock.when)
    barrier = threading.Barrier(2)
    outcomes: list[object] = [None, None]

    def file(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = register.report(opened.id, f"Report {index}", None, "U", clock.when)
        except AlreadyReported as refused:
            outcomes[index] = refused

    threads = [threading.Thread(target=file, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(type(o).__name__ for o in outcomes) == ["AlreadyReported", "Incident"]
    winner = next(o for o in outcomes if not isinstance(o, AlreadyReported))
    assert stored(services)[0].report == getattr(winner, "report", None)
    reports = [
        e for e in services.audit.recent(20, "childrens-trust") if e.action == "incident_report"
    ]
    assert sorted(e.outcome for e in reports) == ["ok", "refused"]


def test_a_late_report_is_recorded_as_late(bot: Bot, services: Services, clock: FixedClock) -> None:
    ask(bot, 'incident childrens-trust sui "Child harmed"', user="U-TRUST")
    clock.when += timedelta(hours=30)
    reply = ask(bot, 'incident report 1 "Filed late"', user="U-TRUST")
    assert "6 h late" in reply.text and "No action plan" in reply.text
    assert IncidentRegister(services).get(1).late  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("user", "line", "says"),
    [
        (
            "U-HEALTH",
            'incident healthy-child-0-19 inspection "Visit"',
            "healthy-child-0-19 has no incident type 'inspection'; use one of: sui, near-miss.",
        ),
        (
            "U-TRUST",
            'incident childrens-trust suii "Child harmed"',
            "childrens-trust has no incident type 'suii' (did you mean 'sui'?); use one of: "
            "sui, near-miss, interruption, inspection.",
        ),
    ],
)
def test_an_unknown_type_lists_the_allowed_ones_and_stores_nothing(
    bot: Bot, services: Services, user: str, line: str, says: str
) -> None:
    reply = ask(bot, line, user=user)
    assert reply.kind == "error" and reply.text == says
    assert count(services) == 0
    assert ("incident_open", "refused") in audit(services)


def test_a_contracts_own_kind_is_matched_loosely(bot: Bot, services: Services) -> None:
    reply = ask(bot, 'incident one-you-lifestyle critical-failure "Floor breached"', "U-LIFESTYLE")
    assert reply.kind == "done" and stored(services)[0].kind == "critical_failure"


@pytest.mark.parametrize(
    ("line", "title", "says"),
    [
        ('incident childrens-trust sui ""', "What happened?", "Say what happened"),
        ('incident childrens-trust sui "   "', "What happened?", "Say what happened"),
        ("incident childrens-trust", "Which type?", "Start with the type"),
        ("incident", "What happened?", "which type of incident"),
        ("incident report", "Which incident?", "Give the incident's number"),
        ('incident report abc "text"', "Which incident?", "Give the incident's number"),
        ("incident report 1", "No report given", "Write the report after the number"),
        ('incident report 1 "Action plan: only a plan"', "No report given", "Write the report"),
        ('incident report 99 "text"', "Report not filed", "There is no incident #99"),
    ],
)
def test_bad_input_gets_one_helpful_sentence_and_no_side_effect(
    bot: Bot, services: Services, line: str, title: str, says: str
) -> None:
    before = len(services.audit.recent(500))
    reply = ask(bot, line, user="U-TRUST")
    assert reply.kind == "error" and reply.title == title and says in reply.text
    prose = re.sub(r"`[^`]*`", "", reply.text).replace("e.g. ", "")
    assert prose.count(". ") == 0 and prose.endswith(".") and "Traceback" not in prose
    assert count(services) == 0
    # Only a refused register action (here: the unknown id) leaves an audit row.
    assert len(services.audit.recent(500)) - before == (1 if "#99" in says else 0)


def test_the_register_refuses_an_empty_description_itself(
    services: Services, seed_contracts: dict[str, Contract], clock: FixedClock
) -> None:
    register = IncidentRegister(services)
    with pytest.raises(EmptyDescription):
        register.open(seed_contracts["childrens-trust"], "sui", " \n ", "U-TRUST", clock.when)
    with pytest.raises(UnknownIncidentKind) as unknown:
        register.open(seed_contracts["childrens-trust"], "fire", "Smoke", "U-TRUST", clock.when)
    assert unknown.value.allowed == ["sui", "near-miss", "interruption", "inspection"]
    with pytest.raises(UnknownIncident):
        register.report(5, "text", None, "U-TRUST", clock.when)
    assert count(services) == 0
    with pytest.raises(IntegrityError), services.db.session() as session:
        session.add(
            IncidentRecord(
                contract_id="childrens-trust",
                kind="sui",
                label="SUI",
                description="  ",
                opened_by="U",
                opened_at=clock.when,
                deadline=clock.when,
                status="open",
            )
        )


# ------------------------------------------------------------------------------------ access


def test_a_provider_cannot_log_or_report_on_another_providers_contract(
    bot: Bot, services: Services, clock: FixedClock
) -> None:
    refused = ask(bot, 'incident healthy-child-0-19 sui "Not mine"', user="U-TRUST")
    assert refused.kind == "refusal" and "logging incidents" in refused.text
    assert ask(bot, 'incident childrens-trust sui "Viewer"', user="U-BOARD").kind == "refusal"
    assert count(services) == 0

    assert ask(bot, 'incident healthy-child-0-19 sui "Mine"', user="U-HEALTH").kind == "done"
    other = ask(bot, 'incident report 1 "I will close it"', user="U-TRUST")
    assert other.kind == "refusal" and "healthy-child-0-19" in other.text
    assert stored(services)[0].status == "open"
    with pytest.raises(IncidentNotAllowed):
        IncidentRegister(services).report(
            1, "x", None, "U-TRUST", clock.when, may=lambda cid: cid == "childrens-trust"
        )
    assert stored(services)[0].status == "open"
    assert ask(bot, 'incident report 1 "Closed by council"', user="U-COMMISSIONER").kind == "done"
    refusals = [a for a in audit(services) if a[1] == "refused"]
    assert ("refuse:incident", "refused") in refusals and ("incident_report", "refused") in refusals


# ------------------------------------------------------------------------------------ register


def test_the_register_lists_with_a_clear_rag_and_is_never_deleted(
    bot: Bot, services: Services, clock: FixedClock
) -> None:
    start = clock.when
    for line in (
        'incident sui "On time"',
        'incident sui "Late"',
        'incident sui "Overdue"',
        'incident near-miss "Running"',
    ):
        assert ask(bot, line, user="U-TRUST", channel="C-TRUST").kind == "done"
    clock.when = start + timedelta(hours=2)
    ask(bot, 'incident report 1 "Filed"', user="U-TRUST")
    clock.when = start + timedelta(hours=26)
    ask(bot, 'incident report 2 "Filed late"', user="U-TRUST")
    clock.when = start + timedelta(hours=30)

    reply = ask(bot, "incidents", user="U-TRUST", channel="C-TRUST")
    assert reply.columns == ["#", "Type", "Opened", "Deadline", "Status"]
    table = [(r[0].text, r[0].rag, r[-1].text) for r in reply.rows]
    assert table == [
        ("#3", "red", "overdue by 6 h"),
        ("#4", "amber", "open · 42 h left"),
        ("#2", "grey", "reported 2 h late"),
        ("#1", "green", "reported on time (20 Feb 2020 12:00)"),
    ]
    assert "1 overdue" in reply.text and "1 reported late" in reply.text
    assert "Red: open past its deadline" in (reply.footer or "")
    assert [r[0].text for r in ask(bot, "incidents childrens-trust open").rows] == ["#3", "#4"]
    everyone = ask(bot, "incidents", user="U-COMMISSIONER")
    assert "Contract" in everyone.columns and len(everyone.rows) == 4
    assert ask(bot, "incidents", user="U-HEALTH").text == "No incidents logged."
    assert ask(bot, "incidents childrens-trust", user="U-HEALTH").kind == "refusal"
    assert len(IncidentRegister(services).list(["childrens-trust"], include_closed=False)) == 2

    for statement in (
        "DELETE FROM incidents",
        "UPDATE incidents SET description = 'rewritten' WHERE id = 3",
        "UPDATE incidents SET deadline = opened_at WHERE id = 3",
        "UPDATE incidents SET report = 'changed' WHERE id = 1",
    ):
        with pytest.raises(IntegrityError, match="append-only"), services.db.session() as session:
            session.execute(text(statement))
    assert count(services) == 4 and stored(services)[0].report == "Filed"


def test_every_open_report_and_refusal_is_audited(
    bot: Bot, services: Services, clock: FixedClock
) -> None:
    ask(bot, 'incident childrens-trust sui "Child harmed"', user="U-TRUST")
    ask(bot, 'incident childrens-trust fire "Smoke"', user="U-TRUST")
    clock.when += timedelta(hours=1)
    ask(bot, 'incident report 1 "Filed. Action plan: retrain"', user="U-TRUST")
    ask(bot, 'incident report 1 "Again"', user="U-TRUST")
    entries = [e for e in services.audit.recent(50, "childrens-trust") if "incident" in e.action]
    assert [(e.action, e.outcome, e.actor) for e in reversed(entries)] == [
        ("incident_open", "ok", "U-TRUST"),
        ("incident_open", "refused", "U-TRUST"),
        ("incident_report", "ok", "U-TRUST"),
        ("incident_report", "refused", "U-TRUST"),
    ]
    opened, report = entries[3], entries[1]
    assert opened.subject == "#1 sui" and opened.detail["rule"] == "within 24 hours"
    assert report.detail == {"incident": 1, "late": False, "action_plan": True}
    assert entries[0].detail["reason"] == "already reported"


# ------------------------------------------------------------------------------------ scheduler


def test_the_planner_reminds_at_50_and_90_percent_and_escalates_only_when_not_reported(
    bot: Bot, services: Services, seed_contracts: dict[str, Contract], clock: FixedClock
) -> None:
    contract = seed_contracts["healthy-child-0-19"]
    opened = clock.when  # Thu 20 Feb 2020 10:00, GMT
    ask(bot, 'incident healthy-child-0-19 sui "Child harmed"', user="U-HEALTH")
    ask(bot, 'incident healthy-child-0-19 sui "Another"', user="U-HEALTH")
    ask(bot, 'incident healthy-child-0-19 sui "A third"', user="U-HEALTH")
    clock.when = opened + timedelta(hours=13)  # after the 50% reminder
    ask(bot, 'incident report 2 "Filed after half the window"', user="U-HEALTH")
    clock.when = opened + timedelta(hours=25)  # after the deadline
    ask(bot, 'incident report 3 "Filed late"', user="U-HEALTH")

    clocks = open_incident_clocks(services, ["healthy-child-0-19"])
    inputs = [ContractInputs(contract, None, incidents=clocks[contract.id])]
    messages = plan_window(inputs, opened, opened + timedelta(days=3))
    sent = {(m.period, m.kind, m.step, m.when) for m in messages}
    expected = {
        ("incident-1", "incident_reminder", "50%", london(2020, 2, 20, 22)),
        ("incident-1", "incident_reminder", "90%", london(2020, 2, 21, 7, 36)),
        ("incident-1", "incident_escalation", "deadline", london(2020, 2, 21, 10)),
        ("incident-2", "incident_reminder", "50%", london(2020, 2, 20, 22)),
        ("incident-3", "incident_reminder", "50%", london(2020, 2, 20, 22)),
        ("incident-3", "incident_reminder", "90%", london(2020, 2, 21, 7, 36)),
        ("incident-3", "incident_escalation", "deadline", london(2020, 2, 21, 10)),
    }
    assert sent == expected
    escalation = next(m for m in messages if m.kind == "incident_escalation")
    assert escalation.audience == "commissioner" and "Incident #1" in escalation.text


def test_an_interruption_escalates_to_the_commissioner_as_it_is_logged(
    bot: Bot, services: Services, seed_contracts: dict[str, Contract], clock: FixedClock
) -> None:
    contract = seed_contracts["one-you-lifestyle"]
    opened = clock.when
    ask(bot, 'incident one-you-lifestyle interruption "Gym closed"', user="U-LIFESTYLE")
    clock.when = opened + timedelta(minutes=30)
    ask(bot, 'incident report 1 "Reopened at noon"', user="U-LIFESTYLE")
    clocks = open_incident_clocks(services)[contract.id]
    messages = plan_window(
        [ContractInputs(contract, None, incidents=clocks)],
        opened - timedelta(minutes=1),
        opened + timedelta(days=1),
    )
    assert [(m.kind, m.audience, m.when) for m in messages] == [
        ("incident_escalation", "commissioner", opened)
    ]
    assert not IncidentRegister(services).get(1).late  # type: ignore[union-attr]


def test_clocks_cover_deadlines_in_the_last_30_days_only(
    bot: Bot, services: Services, clock: FixedClock
) -> None:
    ask(bot, 'incident childrens-trust sui "Old"', user="U-TRUST")
    clock.when += timedelta(days=20)
    ask(bot, 'incident childrens-trust sui "Recent"', user="U-TRUST")
    ask(bot, 'incident healthy-child-0-19 sui "Other contract"', user="U-HEALTH")
    clock.when += timedelta(days=15)
    clocks = open_incident_clocks(services)
    assert {c: [k.id for k in v] for c, v in clocks.items()} == {
        "childrens-trust": [2],
        "healthy-child-0-19": [3],
    }
    assert list(open_incident_clocks(services, ["healthy-child-0-19"])) == ["healthy-child-0-19"]
    assert open_incident_clocks(services, now=clock.when - timedelta(days=15))["childrens-trust"]


# ------------------------------------------------------------------------------------ parsing


NO_FIXTURE_CHECK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
MARKER = re.compile(r"action[ -]?plan", re.IGNORECASE)


@NO_FIXTURE_CHECK
@given(st.text(max_size=60), st.text(max_size=60))
def test_report_text_splits_at_the_action_plan_marker(report: str, plan: str) -> None:
    assume(not MARKER.search(report + " ") and not MARKER.search(" " + plan))
    assert split_action_plan(f"{report} Action plan: {plan}") == (
        report.strip(),
        plan.strip() or None,
    )
    assert split_action_plan(report) == (report.strip(), None)


@NO_FIXTURE_CHECK
@given(st.lists(st.text(max_size=20), max_size=4))
def test_report_arguments_parse_or_explain(args: list[str]) -> None:
    parsed = parse_report(args)
    assert isinstance(parsed, ReportArgs | Reply)
    if isinstance(parsed, Reply):
        assert parsed.kind == "error" and parsed.text.endswith(".")
    else:
        assert parsed.report and parsed.incident_id >= 0


# ------------------------------------------------------------------------------ input limits


@pytest.mark.parametrize(
    ("report", "plan", "words"),
    [
        ("r" * 2001, None, "An incident report is limited to 2,000 characters; yours is 1 over."),
        ("Fell.", "p" * 2010, "An incident's action plan is limited to 2,000 characters"),
        ("Fell\x00 hard.", None, "An incident report contains a control character (U+0000)"),
    ],
)
def test_a_report_too_long_or_with_control_characters_is_refused_and_the_clock_runs(
    services: Services, seed_contracts: dict[str, Contract], clock: FixedClock, report, plan, words
) -> None:
    register = IncidentRegister(services)
    opened = register.open(
        seed_contracts["childrens-trust"], "sui", "Child hurt", "U-T", clock.when
    )
    with pytest.raises(IncidentError) as refused:
        register.report(opened.id, report, plan, "U-T", clock.when)
    assert words in str(refused.value) and report not in str(refused.value)
    [row] = stored(services)
    assert row.status == "open" and row.report is None
    assert audit(services)[0] == ("incident_report", "refused")


def test_a_description_too_long_is_refused_and_nothing_is_stored(
    services: Services, seed_contracts: dict[str, Contract], clock: FixedClock
) -> None:
    register = IncidentRegister(services)
    with pytest.raises(IncidentError, match="limited to 1,000 characters; yours is 9,000 over"):
        register.open(seed_contracts["childrens-trust"], "sui", "d" * 10_000, "U-T", clock.when)
    assert stored(services) == []
    assert "d" * 100 not in str(services.audit.recent(5))
