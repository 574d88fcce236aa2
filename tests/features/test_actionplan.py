"""Underperformance action plans: the state machine, detection, the store, reminders and chat.

The state machine is tested exhaustively: every row of the table works for every role it names,
every other (state, event) pair is refused with a reason, and so is every wrong role. Store, chat
and reminder tests run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from kpibot.commands.actionplan import parse_due, parse_new, split_tags
from kpibot.commands.bot import Bot
from kpibot.core.protocol import Reply, Request
from kpibot.core.services import Services
from kpibot.engine.actionplan import (
    ACTION_NEEDS,
    EVENTS,
    NO_ACTIONS,
    NO_FINAL_ACTIONS,
    ROLES,
    STATES,
    TABLE,
    TERMINAL,
    TRANSITIONS,
    ActionItem,
    PlanState,
    Step,
    Transition,
    TransitionRefused,
    allowed,
    apply,
    detect,
    refusal,
    review_outcome,
)
from kpibot.engine.model import Contract
from kpibot.engine.reminders import Message
from kpibot.engine.scorecard import Scorecard, history_frame
from kpibot.features.actionplan import (
    ActionPlanService,
    BadPlanInput,
    StepRefused,
    UnknownPlan,
    action_plan_messages,
    open_plans_summary,
)
from kpibot.store.schema import ActionPlanRecord, ActionPlanTransitionRecord
from tests.conftest import FixedClock

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2020, 2, 20, 10, 0, tzinfo=LONDON)
DUE = date(2020, 3, 31)
Q2, Q3 = "2019/20 Q2", "2019/20 Q3"


def london(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LONDON)


def ask(bot: Bot, line: str, user: str = "U-COMMISSIONER", channel: str | None = None) -> Reply:
    return bot.handle(Request.from_text(line, user=user, platform="console", channel=channel))


# ------------------------------------------------------------------------ the state machine


def ready(state: str) -> PlanState:
    """A plan in ``state`` meeting every precondition: complete actions, one open, one final."""
    actions = (
        ActionItem(1, "Weekly caseload audit", "Jane Smith", DUE),
        ActionItem(2, "Recruit two social workers", "Sam Lee", DUE, "final"),
    )
    return PlanState(state, actions)  # type: ignore[arg-type]


def valid_step(event: str, role: str) -> Step:
    """A step that satisfies every precondition except the state and the role."""
    return Step(
        event,  # type: ignore[arg-type]
        role,  # type: ignore[arg-type]
        note="A note",
        action=ActionItem(0, "Daily huddle", "Ali Khan", DUE),
        number=1,
        at=NOW,
    )


ALLOWED = [(t, role) for t in TRANSITIONS for role in sorted(t.roles)]
FORBIDDEN = [(s, e) for s in STATES for e in EVENTS if (s, e) not in TABLE]
WRONG_ROLE = [(t, role) for t in TRANSITIONS for role in ROLES if role not in t.roles]


def test_the_table_covers_every_state_and_event() -> None:
    assert len(ALLOWED) >= len(TRANSITIONS) == len(TABLE)
    assert len(TABLE) + len(FORBIDDEN) == len(STATES) * len(EVENTS) == 72
    # Every non-terminal state has a way on; terminal states have none.
    for state in STATES:
        outgoing = [t for t in TRANSITIONS if t.source == state and t.target != state]
        assert bool(outgoing) == (state not in TERMINAL), state


@pytest.mark.parametrize(
    ("row", "role"), ALLOWED, ids=[f"{t.source}-{t.event}-{r}" for t, r in ALLOWED]
)
def test_every_allowed_transition_works(row: Transition, role: str) -> None:
    before = ready(row.source)
    step = valid_step(row.event, role)
    assert refusal(before, step) is None
    after = apply(before, step)
    assert after.state == row.target
    if row.event == "add_action":
        added = after.actions[-1]
        assert len(after.actions) == len(before.actions) + 1
        assert (added.number, added.owner, added.due) == (3, "Ali Khan", DUE)
        assert added.stage == ("final" if row.source == "final_plan" else "plan")
    elif row.event == "complete_action":
        assert after.action(1).done_at == NOW  # type: ignore[union-attr]
    else:
        assert after.actions == before.actions


@pytest.mark.parametrize(("state", "event"), FORBIDDEN, ids=[f"{s}-{e}" for s, e in FORBIDDEN])
@pytest.mark.parametrize("role", ROLES)
def test_every_forbidden_transition_is_refused_with_a_reason(
    state: str, event: str, role: str
) -> None:
    plan = ready(state)
    reason = refusal(plan, valid_step(event, role))
    assert reason and reason.endswith(".") and "\n" not in reason
    assert state in reason  # the reason says where the plan is
    with pytest.raises(TransitionRefused, match="."):
        apply(plan, valid_step(event, role))


@pytest.mark.parametrize(
    ("row", "role"), WRONG_ROLE, ids=[f"{t.source}-{t.event}-{r}" for t, r in WRONG_ROLE]
)
def test_every_transition_refuses_the_wrong_role(row: Transition, role: str) -> None:
    reason = refusal(ready(row.source), valid_step(row.event, role))
    assert reason is not None and reason.startswith("Only the commissioner can")
    assert f"you act for the {role}" in reason


def test_the_refusal_names_the_state_and_what_is_needed() -> None:
    agreed = ready("plan_agreed")
    assert refusal(agreed, valid_step("close", "commissioner")) == (
        "A plan can only be closed after a review meeting (or once penalties apply); "
        "this one is at 'plan_agreed'."
    )
    assert "nothing more can happen" in (
        refusal(ready("closed"), valid_step("agree", "commissioner")) or ""
    )


@pytest.mark.parametrize(
    ("plan", "step", "reason"),
    [
        (PlanState("opened"), Step("agree", "commissioner"), NO_ACTIONS),
        (
            PlanState("opened", (ActionItem(1, "Audit", None, DUE),)),
            Step("agree", "commissioner"),
            "Action 1 (“Audit”) has no owner; every action needs an owner and a due date "
            "before the plan can be agreed.",
        ),
        (
            PlanState("opened", (ActionItem(1, "Audit", "Jo", None),)),
            Step("agree", "commissioner"),
            "Action 1 (“Audit”) has no due date; every action needs an owner and a due date "
            "before the plan can be agreed.",
        ),
        (
            PlanState("opened"),
            Step("add_action", "provider", action=ActionItem(0, "Audit", " ", DUE)),
            ACTION_NEEDS["owner"],
        ),
        (
            PlanState("opened"),
            Step("add_action", "provider", action=ActionItem(0, "Audit", "Jo", None)),
            ACTION_NEEDS["due"],
        ),
        (
            PlanState("opened"),
            Step("add_action", "provider", action=ActionItem(0, "  ", "Jo", DUE)),
            ACTION_NEEDS["description"],
        ),
        (
            PlanState("opened"),
            Step(
                "add_action",
                "provider",
                action=ActionItem(0, "Audit", "Jo", date(2020, 2, 19)),
                at=NOW,
            ),
            "The due date 19 Feb 2020 has already passed; give a date from today on.",
        ),
        (
            PlanState("under_review", ready("x").actions),
            Step("escalate", "commissioner"),
            "An escalation needs the exception report to the Assistant Director: say why "
            "performance has not improved or the plan was not kept.",
        ),
        (
            PlanState("under_review", ready("x").actions),
            Step("close", "commissioner", note="  "),
            "Closing needs the progress report to commissioners: say what improved.",
        ),
        (
            PlanState("final_plan", ready("x").actions[:1]),
            Step("review", "commissioner"),
            NO_FINAL_ACTIONS,
        ),
        (
            ready("plan_agreed"),
            Step("complete_action", "provider", number=7),
            "There is no action 7 on this plan; it has actions 1, 2.",
        ),
        (
            PlanState("plan_agreed", (ActionItem(1, "Audit", "Jo", DUE, done_at=NOW),)),
            Step("complete_action", "provider", number=1),
            "Action 1 was already marked done on 20 Feb 2020.",
        ),
    ],
)
def test_preconditions_refuse_with_a_reason(plan: PlanState, step: Step, reason: str) -> None:
    assert refusal(plan, step) == reason
    with pytest.raises(TransitionRefused) as refused:
        apply(plan, step)
    assert refused.value.reason == reason


def test_a_plan_walks_the_whole_schedule_3_flow() -> None:
    plan = PlanState("opened")
    steps = [
        Step("add_action", "provider", action=ActionItem(0, "Audit", "Jo", DUE)),
        Step("agree", "commissioner"),
        Step("complete_action", "provider", number=1, at=NOW),
        Step("review", "commissioner", note="Review 15 Apr"),
        Step("escalate", "commissioner", note="Exception report: no improvement"),
        Step("add_action", "provider", action=ActionItem(0, "Recruit", "Sam", DUE)),
        Step("review", "commissioner"),
        Step("penalty", "commissioner", note="Clause 12 applies"),
        Step("decommission", "commissioner", note="Persistent failure"),
    ]
    seen = [plan.state]
    for step in steps:
        plan = apply(plan, step)
        seen.append(plan.state)
    assert seen == [
        "opened",
        "opened",
        "plan_agreed",
        "plan_agreed",
        "under_review",
        "final_plan",
        "final_plan",
        "final_review",
        "penalty",
        "decommissioned",
    ]
    assert [a.stage for a in plan.actions] == ["plan", "final"]
    assert allowed(plan, "commissioner") == []


def test_allowed_lists_each_roles_next_steps() -> None:
    drafted = PlanState("opened", (ActionItem(1, "Audit", "Jo", DUE),))
    assert [t.event for t in allowed(drafted, "provider")] == ["add_action", "complete_action"]
    assert [t.event for t in allowed(drafted, "commissioner")] == [
        "add_action",
        "complete_action",
        "agree",
        "withdraw",
    ]
    # Agreeing needs an action, so an empty draft offers no 'agree' button.
    assert "agree" not in [t.event for t in allowed(PlanState("opened"), "commissioner")]
    assert [t.event for t in allowed(ready("under_review"), "commissioner")] == [
        "complete_action",
        "close",
        "escalate",
    ]


def test_a_review_outcome_depends_on_the_round() -> None:
    assert review_outcome("under_review", True) == "close"
    assert review_outcome("under_review", False) == "escalate"
    assert review_outcome("final_review", False) == "penalty"


# ------------------------------------------------------------------------ detection


def red_streaks(frame: pd.DataFrame, at: str, n: int) -> set[str]:
    """KPIs red in each of the ``n`` quarters ending at ``at``, read straight off the scorecard."""
    rag = frame.pivot_table(index="kpi", columns="period", values="rag", aggfunc="first")
    ordered = sorted(rag.columns)  # '2018/19 Q4' < '2019/20 Q1': labels sort in time order
    stop = ordered.index(at) + 1
    window = ordered[stop - n : stop]
    return {kpi for kpi, row in rag[window].iterrows() if all(row == "red")}


def test_detection_finds_the_kpis_red_two_quarters_running(
    seed_contracts: dict[str, Contract],
) -> None:
    contract = seed_contracts["childrens-trust"]
    frame = Scorecard.build(contract, history_frame(contract)).frame
    expected = red_streaks(frame, Q3, 2)
    assert expected  # the seed's history has some: the test is not vacuous
    [trigger] = detect(contract, frame)
    assert trigger.reason == "consecutive_red" and trigger.period == Q3
    assert set(trigger.kpis) == expected
    for breach in trigger.breaches:
        assert breach.periods[-2:] == (Q2, Q3)
    # Three quarters running is a subset; the key changes with the rule, the text names the KPIs.
    [three] = detect(contract, frame, consecutive_red=3)
    assert set(three.kpis) == red_streaks(frame, Q3, 3) < expected
    assert three.key != trigger.key and all(k in trigger.text for k in expected)


def test_a_gap_breaks_a_red_streak(seed_contracts: dict[str, Contract]) -> None:
    contract = seed_contracts["childrens-trust"]
    frame = Scorecard.build(contract, history_frame(contract)).frame
    [trigger] = detect(contract, frame)
    victim = trigger.kpis[0]
    gapped = frame[~((frame["kpi"] == victim) & (frame["period"] == Q2))]
    [again] = detect(contract, gapped)
    assert victim not in again.kpis
    # A streak that ended before the latest period is history, not current underperformance.
    earlier = frame[frame["period"] != Q3]
    found = {k for t in detect(contract, earlier) for k in t.kpis}
    assert found == red_streaks(frame, Q2, 2)


def test_a_critical_failure_triggers_at_once(seed_contracts: dict[str, Contract]) -> None:
    contract = seed_contracts["one-you-lifestyle"]
    figures = pd.DataFrame(
        [
            {
                "contract": contract.id,
                "kpi": "PA-5",
                "period": "2019/20 Q1",
                "value": 6.5,
                "benchmark": None,
            },
            {
                "contract": contract.id,
                "kpi": "PA-6",
                "period": "2019/20 Q1",
                "value": 30.0,
                "benchmark": None,
            },
        ]
    )
    frame = Scorecard.build(contract, figures).frame
    assert frame.set_index("kpi").loc["PA-5", "critical"]
    [trigger] = detect(contract, frame)
    assert (trigger.reason, trigger.kpis, trigger.key) == (
        "critical_failure",
        ("PA-5",),
        "critical@2019/20 Q1",
    )
    assert detect(contract, frame.iloc[0:0]) == []


# ------------------------------------------------------------------------ the store


def plan_count(services: Services) -> int:
    with services.db.session(read_only=True) as session:
        return session.scalar(select(func.count()).select_from(ActionPlanRecord)) or 0


def test_detection_opens_one_plan_per_trigger_and_is_idempotent(
    services: Services, seed_contracts: dict[str, Contract]
) -> None:
    contract = seed_contracts["childrens-trust"]
    plans = ActionPlanService(services)
    frame = services.scorecard(contract).frame
    expected = red_streaks(frame, Q3, 2)
    [opened] = plans.detect_and_open(contract, "kpibot", NOW)
    assert set(opened.kpis) == expected and opened.state == "opened"
    assert opened.trigger_key == "red2@2019/20 Q3" and opened.trigger and Q3 in opened.trigger
    assert plans.detect_and_open(contract, "kpibot", NOW) == []
    assert plans.detect_and_open(contract, "kpibot", NOW + timedelta(days=1)) == []
    assert plan_count(services) == 1
    # Asked about an earlier quarter, only KPIs not already under a plan would open a new one.
    at_q2 = plans.triggers(contract, contract.parse_period(Q2))
    assert {k for t in at_q2 for k in t.kpis} == red_streaks(frame, Q2, 2)
    fresh = plans.detect_and_open(contract, "kpibot", NOW, contract.parse_period(Q2))
    assert all(not set(p.kpis) & expected for p in fresh)
    assert [e.action for e in services.audit.recent(5, contract.id)].count(
        "actionplan_open"
    ) == 1 + len(fresh)


def test_concurrent_detection_opens_one_plan(
    services: Services, seed_contracts: dict[str, Contract]
) -> None:
    contract = seed_contracts["childrens-trust"]
    barrier = threading.Barrier(4)
    opened: list[int] = []

    def run() -> None:
        barrier.wait()
        opened.extend(
            p.id for p in ActionPlanService(services).detect_and_open(contract, "kpibot", NOW)
        )

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(opened) == 1 and plan_count(services) == 1


def test_opening_by_hand_refuses_bad_input(
    services: Services, seed_contracts: dict[str, Contract]
) -> None:
    contract = seed_contracts["childrens-trust"]
    plans = ActionPlanService(services)
    plan = plans.open(contract, ["c7", "C9"], "Adoption timeliness", "U-COMMISSIONER", NOW)
    assert plan.kpis == ("C7", "C9")
    with pytest.raises(BadPlanInput, match="no KPI C99"):
        plans.open(contract, ["C99"], "x", "U-COMMISSIONER", NOW)
    with pytest.raises(BadPlanInput, match="Say which areas"):
        plans.open(contract, ["C1"], "  ", "U-COMMISSIONER", NOW)
    with pytest.raises(BadPlanInput, match=f"C9 is already covered by open action plan #{plan.id}"):
        plans.open(contract, ["C9", "C1"], "More", "U-COMMISSIONER", NOW)
    refused = [e for e in services.audit.recent(10, contract.id) if e.outcome == "refused"]
    assert len(refused) == 3 and all(e.action == "actionplan_open" for e in refused)


def test_every_change_is_logged_and_audited_and_nothing_is_deleted(
    services: Services, seed_contracts: dict[str, Contract]
) -> None:
    contract = seed_contracts["childrens-trust"]
    plans = ActionPlanService(services)
    plan = plans.open(contract, ["C7"], "Adoption timeliness", "U-COMMISSIONER", NOW)
    t = NOW
    plans.add_action(plan.id, "Weekly tracker", "Jane Smith", DUE, "provider", "U-TRUST", t)
    with pytest.raises(StepRefused, match="Only the commissioner can agree"):
        plans.transition(plan.id, "agree", "provider", "U-TRUST", t)
    plans.transition(plan.id, "agree", "commissioner", "U-COMMISSIONER", t)
    plans.complete_action(plan.id, 1, "provider", "U-TRUST", t, "Tracker live")
    plans.transition(plan.id, "review", "commissioner", "U-COMMISSIONER", t, "15 Apr")
    with pytest.raises(StepRefused, match="exception report"):
        plans.transition(plan.id, "escalate", "commissioner", "U-COMMISSIONER", t)
    done = plans.transition(
        plan.id, "close", "commissioner", "U-COMMISSIONER", t, "C7 back on target"
    )
    assert done.state == "closed" and not done.is_open
    assert [(e.from_state, e.to_state, e.event) for e in done.history] == [
        (None, "opened", "open"),
        ("opened", "opened", "add_action"),
        ("opened", "plan_agreed", "agree"),
        ("plan_agreed", "plan_agreed", "complete_action"),
        ("plan_agreed", "under_review", "review"),
        ("under_review", "closed", "close"),
    ]
    assert (
        done.history[-1].note == "C7 back on target" and done.history[-1].actor == "U-COMMISSIONER"
    )
    assert done.actions[0].done_by == "U-TRUST" and done.actions[0].done_note == "Tracker live"
    audit = [(e.action, e.outcome) for e in reversed(services.audit.recent(20, contract.id))]
    assert [a for a in audit if a[0].startswith("actionplan")] == [
        ("actionplan_open", "ok"),
        ("actionplan_add_action", "ok"),
        ("actionplan_agree", "refused"),
        ("actionplan_agree", "ok"),
        ("actionplan_complete_action", "ok"),
        ("actionplan_review", "ok"),
        ("actionplan_escalate", "refused"),
        ("actionplan_close", "ok"),
    ]
    # The database itself refuses to delete or rewrite any of it.
    for sql in (
        "DELETE FROM action_plans",
        "DELETE FROM action_plan_actions",
        "DELETE FROM action_plan_transitions",
        "UPDATE action_plan_transitions SET note = 'x'",
        "UPDATE action_plans SET areas = 'x'",
        "UPDATE action_plan_actions SET done_note = 'x'",
    ):
        with pytest.raises(IntegrityError, match="append-only"), services.db.session() as session:
            session.execute(text(sql))
    assert plans.get(plan.id).history == done.history


def test_a_plan_is_found_only_on_its_own_contract(
    services: Services, seed_contracts: dict[str, Contract]
) -> None:
    plans = ActionPlanService(services)
    plan = plans.open(seed_contracts["childrens-trust"], ["C7"], "Adoption", "U-COMMISSIONER", NOW)
    assert plans.get(plan.id, "childrens-trust").id == plan.id
    with pytest.raises(UnknownPlan, match=f"no action plan #{plan.id} on one-you-lifestyle"):
        plans.get(plan.id, "one-you-lifestyle")
    with pytest.raises(UnknownPlan):
        plans.transition(
            plan.id, "agree", "commissioner", "U", NOW, contract_id="one-you-lifestyle"
        )
    with pytest.raises(UnknownPlan):
        plans.get(999)


# ------------------------------------------------------------------------ reminders


def by_day(services: Services, start: datetime, end: datetime) -> list[Message]:
    """What a tick running once a day would produce between ``start`` and ``end``."""
    out = []
    day = start
    while day < end:
        out.extend(action_plan_messages(services, day, day + timedelta(days=1)))
        day += timedelta(days=1)
    return out


def test_reminders_for_action_due_dates_stop_when_done(
    services: Services, seed_contracts: dict[str, Contract]
) -> None:
    contract = seed_contracts["childrens-trust"]
    plans = ActionPlanService(services)
    plan = plans.open(contract, ["C7"], "Adoption", "U-COMMISSIONER", NOW)
    plans.add_action(plan.id, "Weekly tracker", "Jane Smith", DUE, "provider", "U-TRUST", NOW)
    plans.add_action(
        plan.id, "Panel dates", "Sam Lee", date(2020, 3, 10), "provider", "U-TRUST", NOW
    )
    start, end = london(2020, 2, 21), london(2020, 4, 10)
    messages = by_day(services, start, end)
    mine = [
        (m.when, m.kind, m.audience, m.step) for m in messages if m.step.startswith("action-1-")
    ]
    assert mine == [
        (london(2020, 3, 24, 9), "reminder", "provider", "action-1-d-7"),
        (london(2020, 3, 30, 9), "reminder", "provider", "action-1-d-1"),
        (london(2020, 3, 31, 9), "due", "provider", "action-1-due"),
        (london(2020, 4, 1, 9), "escalation", "commissioner", "action-1-overdue"),
    ]
    assert {m.period for m in messages} == {f"action-plan-{plan.id}"}
    assert all(m.contract == contract.id for m in messages)
    assert "Jane Smith" in messages[-1].text and "not marked done" in messages[-1].text
    # Keys are stable: planning the same window again gives the same messages.
    assert [m.key for m in by_day(services, start, end)] == [m.key for m in messages]
    # A catch-up over the whole range collapses each action's provider steps into the latest.
    caught_up = action_plan_messages(services, start, end)
    assert sorted(m.step for m in caught_up) == sorted(
        ["action-1-due", "action-1-overdue", "action-2-due", "action-2-overdue"]
    )
    # Done on 26 March: the week-before reminder went, nothing after it does.
    plans.complete_action(plan.id, 1, "provider", "U-TRUST", london(2020, 3, 26, 12))
    after = [m.step for m in by_day(services, start, end) if m.step.startswith("action-1-")]
    assert after == ["action-1-d-7"]


def test_reminders_stop_when_the_plan_leaves_the_working_states(
    services: Services, seed_contracts: dict[str, Contract]
) -> None:
    contract = seed_contracts["childrens-trust"]
    plans = ActionPlanService(services)
    plan = plans.open(contract, ["C7"], "Adoption", "U-COMMISSIONER", NOW)
    plans.add_action(plan.id, "Tracker", "Jane Smith", DUE, "provider", "U-TRUST", NOW)
    plans.transition(plan.id, "agree", "commissioner", "U-COMMISSIONER", NOW)
    plans.transition(plan.id, "review", "commissioner", "U-COMMISSIONER", NOW)
    plans.transition(
        plan.id, "close", "commissioner", "U-COMMISSIONER", london(2020, 3, 27), "Improved"
    )
    steps = [m.step for m in by_day(services, london(2020, 2, 21), london(2020, 4, 10))]
    assert steps == ["action-1-d-7"]


# ------------------------------------------------------------------------ chat


def test_a_plan_through_chat_from_opening_to_closing(
    bot: Bot, services: Services, clock: FixedClock
) -> None:
    opened = ask(bot, 'actionplan childrens-trust new C7 C9 "Adoption timeliness and care leavers"')
    assert opened.kind == "done", opened.plain()
    plan_id = ActionPlanService(services).list(["childrens-trust"])[0].id
    assert opened.title == f"Opened action plan #{plan_id}"
    assert "underperformance identified" in opened.text and "C7, C9" in opened.text
    base = f"actionplan childrens-trust update {plan_id}"
    # The provider drafts the plan ...
    added = ask(
        bot,
        f'{base} add-action "Weekly adoption tracker" owner:"Jane Smith" due:2020-03-31',
        user="U-TRUST",
    )
    assert added.kind == "done", added.plain()
    assert [c.text for c in added.rows[0]] == [
        "1",
        "Weekly adoption tracker",
        "Jane Smith",
        "Tue 31 Mar 2020",
        "not yet",
    ]
    # ... as a form would send it (unquoted, tags typed into each field).
    form_line = f"{base} add-action Care leaver contact calls owner: Sam Lee due: 15/04/2020"
    assert ask(bot, form_line, user="U-TRUST").rows[1][2].text == "Sam Lee"
    # The provider may not agree it; its buttons do not offer it.
    assert "agree" not in " ".join(a.command for a in added.actions)
    refused = ask(bot, f"{base} agree", user="U-TRUST")
    assert refused.kind == "error"
    assert (
        refused.text == "Only the commissioner can agree the action plan; you act for the provider."
    )
    # The commissioner agrees; buttons show the next steps.
    agreed = ask(bot, f"{base} agree")
    assert agreed.kind == "done" and "action plan agreed" in agreed.text
    commands = [a.command for a in agreed.actions]
    assert f"{base} review" in commands and f"{base} done 1" in commands
    closing = ask(bot, f'actionplan childrens-trust close {plan_id} "Improved"')
    assert closing.text == (
        "A plan can only be closed after a review meeting (or once penalties apply); "
        "this one is at 'plan_agreed'."
    )
    assert ask(bot, f'{base} review "Review meeting 15 Apr 2020"').kind == "done"
    # A step that needs a note asks for it with a form ...
    ask_note = ask(bot, f"{base} not-improved")
    assert ask_note.form is not None and "exception report" in ask_note.text
    assert ask_note.form.verb == f"{base} not-improved"
    escalated = ask(bot, f'{base} not-improved "No improvement; exception report sent to the AD"')
    assert escalated.kind == "done" and "FINAL" in escalated.text
    assert "Exception report:* No improvement" in escalated.text
    final = ask(bot, f"{base} review")
    assert final.text == NO_FINAL_ACTIONS
    ask(
        bot,
        f'{base} add-action "Recruit two workers" owner:"HR lead" due:2020-04-30',
        user="U-TRUST",
    )
    assert ask(bot, f"{base} review").kind == "done"
    done = ask(bot, f'actionplan childrens-trust close {plan_id} "C7 and C9 back on target"')
    assert done.kind == "done" and "*State:* closed" in done.text, done.plain()
    assert done.actions == []
    listing = ask(bot, "actionplan childrens-trust")
    assert listing.rows[0][0].text == f"#{plan_id}" and listing.rows[0][2].text == "closed"


@pytest.mark.parametrize(
    ("user", "line", "title", "words"),
    [
        ("U-TRUST", 'actionplan childrens-trust new C99 "x"', "Unknown KPI", "has no KPI 'C99'"),
        (
            "U-TRUST",
            "actionplan childrens-trust new C7",
            "Action plan unchanged",
            "Say which areas",
        ),
        (
            "U-TRUST",
            "actionplan childrens-trust show 42",
            "Unknown action plan",
            "There is no action plan #42",
        ),
        (
            "U-TRUST",
            "actionplan childrens-trust update 42 agree",
            "Action plan unchanged",
            "no action plan #42",
        ),
        ("U-TRUST", "actionplan childrens-trust update", "Which plan?", "Give the plan's number"),
        (
            "U-TRUST",
            "actionplan childrens-trust frobnicate",
            "Action plans",
            "I don't know 'frobnicate'",
        ),
        (
            "U-LIFESTYLE",
            'actionplan childrens-trust new C7 "x"',
            "Not allowed",
            "is not open to you",
        ),
        ("U-BOARD", 'actionplan childrens-trust new C7 "x"', "Not allowed", "is not open to you"),
        ("U-TRUST", "actionplan childrens-trust detect", "Not allowed", "approving returns"),
    ],
)
def test_chat_refusals_are_one_helpful_sentence(
    bot: Bot, user: str, line: str, title: str, words: str
) -> None:
    reply = ask(bot, line, user=user)
    assert not reply.ok and reply.title == title, reply.plain()
    assert words in reply.text and "Traceback" not in reply.text


def test_chat_refuses_an_action_without_owner_or_date(bot: Bot, services: Services) -> None:
    ask(bot, 'actionplan childrens-trust new C7 "Adoption"')
    plan_id = ActionPlanService(services).list(["childrens-trust"])[0].id
    base = f"actionplan childrens-trust update {plan_id} add-action"
    no_owner = ask(bot, f'{base} "Tracker" due:2020-03-31', user="U-TRUST")
    assert no_owner.title == "Action not added"
    assert no_owner.text.startswith(
        "Every action needs an owner: name who is accountable for it, e.g."
    )
    no_date = ask(bot, f'{base} "Tracker" owner:"Jo"', user="U-TRUST")
    assert no_date.text.startswith("Every action needs a due date (its timeframe), e.g.")
    bad_date = ask(bot, f'{base} "Tracker" owner:"Jo" due:31st-ish', user="U-TRUST")
    assert (
        bad_date.text
        == "I could not read '31st-ish' as a date; write it as 2020-03-31 or 31/03/2020."
    )
    empty = ask(bot, base, user="U-TRUST")
    assert empty.form is not None and [f.name for f in empty.form.fields] == [
        "description",
        "owner",
        "due",
    ]
    # The other provider cannot touch this plan even by number.
    other = ask(bot, f"actionplan one-you-lifestyle update {plan_id} agree", user="U-LIFESTYLE")
    assert other.title == "Action plan unchanged" and "no action plan" in other.text
    assert ActionPlanService(services).get(plan_id).actions == ()


def test_chat_detect_opens_plans_once_and_viewers_can_look(bot: Bot, services: Services) -> None:
    first = ask(bot, "actionplan childrens-trust detect")
    assert first.kind == "done" and first.title.startswith("Opened 1 action plan"), first.plain()
    again = ask(bot, "actionplan childrens-trust detect")
    assert again.title.startswith("No new action plan") and "already covered" in again.text
    look = ask(bot, "actionplan childrens-trust", user="U-BOARD")
    assert look.ok and len(look.rows) == 1 and look.text.startswith("📋 1 open action plan: #")
    plan_id = look.rows[0][0].text.lstrip("#")
    shown = ask(bot, f"actionplan childrens-trust #{plan_id}", user="U-BOARD")
    assert shown.ok and shown.title.startswith(f"Action plan #{plan_id}")
    assert shown.actions == []  # a viewer gets no buttons


def test_open_plans_summary(
    services: Services, seed_contracts: dict[str, Contract], clock: FixedClock
) -> None:
    contract = seed_contracts["childrens-trust"]
    assert open_plans_summary(services, contract) == []
    plans = ActionPlanService(services)
    plan = plans.open(contract, ["C7", "C9"], "Adoption", "U-COMMISSIONER", NOW)
    plans.add_action(plan.id, "Tracker", "Jo", DUE, "provider", "U-TRUST", NOW)
    plans.add_action(plan.id, "Audit", "Jo", date(2020, 2, 25), "provider", "U-TRUST", NOW)
    plans.transition(plan.id, "agree", "commissioner", "U-COMMISSIONER", NOW)
    clock.when = london(2020, 3, 2, 9)
    assert open_plans_summary(services, contract) == [
        f"📋 1 open action plan: #{plan.id} C7, C9 — plan agreed; next action due Tue 31 Mar 2020; "
        "1 action overdue"
    ]
    plans.transition(plan.id, "review", "commissioner", "U-COMMISSIONER", NOW, "15 Apr 2020")
    [line] = open_plans_summary(services, contract)
    assert "review meeting arranged (15 Apr 2020)" in line


# ------------------------------------------------------------------------ parsing


@given(
    what=st.text(
        st.characters(categories=["L", "N"], max_codepoint=0x2FF), min_size=1, max_size=20
    ),
    owner=st.text(st.characters(categories=["L"], max_codepoint=0x2FF), min_size=1, max_size=15),
    due=st.dates(date(2000, 1, 1), date(2099, 12, 31)),
    quoted=st.booleans(),
)
def test_action_tags_read_the_same_quoted_or_not(
    what: str, owner: str, due: date, quoted: bool
) -> None:
    words = (
        [what, f"owner:{owner}", f"due:{due.isoformat()}"]
        if quoted
        else [
            what,
            "owner:",
            owner,
            "due:",
            due.strftime("%d/%m/%Y"),
        ]
    )
    free, tags = split_tags(words, {"owner": "owner", "due": "due"})
    assert (free, tags["owner"], parse_due(tags["due"])) == (what, owner, due)


def test_new_reads_codes_then_areas() -> None:
    codes = ["C7", "C9", "S17"]
    assert parse_new(["c7", "C9,", "Adoption", "timeliness"], codes).areas == "Adoption timeliness"  # type: ignore[union-attr]
    assert parse_new(["C7", "C99", "x"], codes) == "C99"
    assert parse_new(["C7"], codes).kpis == ("C7",)  # type: ignore[union-attr]


def test_transitions_are_stamped_in_utc(
    services: Services, seed_contracts: dict[str, Contract]
) -> None:
    plans = ActionPlanService(services)
    plan = plans.open(seed_contracts["childrens-trust"], ["C7"], "Adoption", "U", NOW)
    with services.db.session(read_only=True) as session:
        at = session.scalar(
            select(ActionPlanTransitionRecord.at).where(
                ActionPlanTransitionRecord.plan_id == plan.id
            )
        )
    assert at == NOW.astimezone(UTC) and at.tzinfo == UTC


# ------------------------------------------------------------------------------ input limits


@pytest.mark.parametrize(
    ("step", "words"),
    [
        (
            Step("add_action", "provider", action=ActionItem(0, "a" * 501, "Jo", DUE), at=NOW),
            "An action is limited to 500 characters; yours is 1 over.",
        ),
        (
            Step("add_action", "provider", action=ActionItem(0, "Audit", "o" * 101, DUE), at=NOW),
            "An action's owner is limited to 100 characters; yours is 1 over.",
        ),
        (
            Step("add_action", "provider", action=ActionItem(0, "Au\x00dit", "Jo", DUE), at=NOW),
            "An action contains a control character (U+0000)",
        ),
        (
            Step("agree", "commissioner", note="n" * 1001, at=NOW),
            "A note on the action plan is limited to 1,000 characters; yours is 1 over.",
        ),
    ],
)
def test_free_text_in_a_plan_is_limited_by_the_state_machine(step: Step, words: str) -> None:
    reason = refusal(PlanState("opened"), step)
    assert reason is not None and reason.startswith(words)


def test_areas_over_the_limit_open_no_plan(
    services: Services, seed_contracts: dict[str, Contract], clock: FixedClock
) -> None:
    plans = ActionPlanService(services)
    with pytest.raises(BadPlanInput, match="limited to 1,000 characters; yours is 200 over"):
        plans.open(seed_contracts["childrens-trust"], ["C7"], "x" * 1200, "U-C", clock.when)
    assert plan_count(services) == 0
