"""The planner chases milestones: before the due date, then the working day after it, until achieved."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from kpibot.engine.reminders import KINDS, title
from kpibot.files.contracts import parse_contract_text
from kpibot.scheduler.inputs import planner_contract, read_milestones
from kpibot.scheduler.plan import ContractInputs, plan_window

LONDON = ZoneInfo("Europe/London")
CONTRACT = parse_contract_text(
    """
id: panel
name: Panel contract
commissioner: {name: Council}
provider: {name: Provider}
contract_years:
  - {year: 1, start: 2019-04-01, end: 2020-03-31}
kpis:
  - {code: Q1, name: Reviews on time, target: "95%"}
  - {code: M1, name: Introduce the complaints panel, kind: milestone, due: 2020-01-31}
""",
    "panel.yaml",
)
START = datetime(2020, 1, 1, tzinfo=LONDON)
END = datetime(2020, 2, 29, tzinfo=LONDON)


def test_milestone_kinds_are_registered_with_titles():
    assert {"milestone", "milestone_overdue"} <= set(KINDS)
    assert (
        title("milestone") == "Milestone due" and title("milestone_overdue") == "Milestone overdue"
    )


def test_a_milestone_is_reminded_twice_then_escalated_the_working_day_after():
    messages = plan_window([ContractInputs(CONTRACT, None)], START, END)
    got = [(m.when.date().isoformat(), m.kind, m.audience, m.step) for m in messages]
    assert got == [
        ("2020-01-17", "milestone", "provider", "d-14"),
        ("2020-01-30", "milestone", "provider", "d-1"),
        ("2020-02-03", "milestone_overdue", "commissioner", "overdue"),
    ]
    assert "due on Fri 31 Jan 2020, in 14 days" in messages[0].text
    assert "has not reported it achieved" in messages[-1].text


def test_reporting_it_achieved_stops_the_chasing():
    done = {"M1": datetime(2020, 1, 20, 12, tzinfo=LONDON)}
    inp = ContractInputs(CONTRACT, None, milestones_done=done)
    assert [m.step for m in plan_window([inp], START, END)] == ["d-14"]


def test_the_planner_keeps_milestone_kpis():
    planned = planner_contract(CONTRACT.model_dump(mode="json"))
    assert [k.code for k in planned.kpis] == ["Q1", "M1"]


def test_read_milestones_finds_the_achieved_figure(services):
    from kpibot.engine.periods import parse_period
    from kpibot.store.rows import NewFigure

    services.store_contracts([CONTRACT], actor="test")
    assert read_milestones(services.db, [CONTRACT]) == {}
    services.figures.submit(
        "panel",
        [NewFigure("M1", parse_period("2019/20 Q4"), value=1.0)],
        actor="U-COMMISSIONER",
        source="chat",
        idempotency_key="m1",
    )
    assert set(read_milestones(services.db, [CONTRACT])["panel"]) == {"M1"}
