"""The quarterly return: the pure state machine, the store-backed workflow and the chat verbs."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kpibot.commands.returns import parse_sections
from kpibot.core.protocol import Request
from kpibot.engine import returns as machine
from kpibot.engine.returns import Missing, ReturnState, Step, TransitionRefused, approved_only
from kpibot.features import returns
from kpibot.store.rows import NewFigure
from kpibot.store.schema import OutboxRecord, ReturnEventRecord

COMMISSIONER, PROVIDER = "U-COMMISSIONER", "U-TRUST"

# ------------------------------------------------------------------------ the pure machine


@pytest.mark.parametrize("row", machine.TRANSITIONS, ids=lambda r: f"{r.source}-{r.event}")
def test_every_allowed_transition_works(row: machine.Transition) -> None:
    role = sorted(row.roles)[0]
    after = machine.apply(
        ReturnState(row.source, "someone-else"), Step(row.event, role, "U9", "why")
    )
    assert after.state == row.target


FORBIDDEN = [(s, e) for s in machine.STATES for e in machine.EVENTS if (s, e) not in machine.TABLE]


@pytest.mark.parametrize(("state", "event"), FORBIDDEN)
def test_every_forbidden_transition_is_refused_with_a_reason(state, event) -> None:
    step = Step(event, "commissioner", "U9", "why")
    reason = machine.refusal(ReturnState(state), step)
    assert reason and reason.endswith(".") and machine.STATE_WORDS[state] in reason
    with pytest.raises(TransitionRefused):
        machine.apply(ReturnState(state), step)


def test_role_ownership_reason_and_completeness_rules() -> None:
    submitted = ReturnState("submitted", submitted_by=PROVIDER)
    assert machine.refusal(submitted, Step("approve", "provider", PROVIDER)) == (
        "Only the commissioner can approve the return; you act for the provider."
    )
    own = ReturnState("submitted", submitted_by=COMMISSIONER)
    assert "someone else" in (
        machine.refusal(own, Step("approve", "commissioner", COMMISSIONER)) or ""
    )
    assert "needs a reason" in (
        machine.refusal(submitted, Step("query", "commissioner", "U9")) or ""
    )
    lacking = ReturnState("draft", missing=Missing(figures=("C1",), exceptions=("C5",)))
    reason = machine.refusal(lacking, Step("submit", "provider", PROVIDER))
    assert reason == (
        "This return is not complete yet; still needed: figure for C1; an exception report for C5."
    )


def test_narrative_rules() -> None:
    required = machine.narrative_problem({}, required=True)
    assert required and "requires one each quarter" in required
    over = machine.narrative_problem({"challenges": "x" * 2345}, required=False)
    assert over == "The 'challenges' section is limited to 2,000 characters; yours is 345 over."
    assert machine.narrative_problem({"working": "x" * 60}, False, limit=50) is not None
    assert machine.narrative_problem({"working": "fine"}, required=True) is None


def test_missing_summary_reads_like_a_reminder() -> None:
    lack = machine.missing(["A", "B"], ["A", "B"], {}, True, [], [])
    assert lack.summary(figures_in=True) == "figures in, narrative missing"
    assert lack.needed() == "the narrative (working well, challenges, actions)"


def test_parse_sections() -> None:
    assert parse_sections(["working:", "all good", "challenges:", "staff", "actions:", "hire"]) == {
        "working": "all good",
        "challenges": "staff",
        "actions": "hire",
    }
    assert parse_sections(["a b", "c"]) == {"working": "a b", "challenges": "c"}


# ------------------------------------------------------------------------ store-backed workflow


def fill(services, contract, period) -> None:
    """Submit a figure for every KPI the return still lacks (100 meets '100%' targets)."""
    view = returns.load(services, contract, period)
    rows = [NewFigure(k, period, value=100.0) for k in view.missing.figures]
    if rows:
        services.figures.submit(contract.id, rows, actor=PROVIDER, source="chat")


@pytest.fixture
def trust(services):
    contract = services.contract("childrens-trust")
    return contract, contract.parse_period("2019/20 Q3")


def statuses(services, contract, period) -> set[str]:
    frame = services.figures_frame([contract.id])
    return set(frame[frame["period"] == period.label]["status"])


def query_rows(services) -> list[OutboxRecord]:
    with services.db.session(read_only=True) as s:
        rows = s.scalars(select(OutboxRecord).where(OutboxRecord.kind == "return_query")).all()
        return [(r.idempotency_key, r.audience, r.payload["text"]) for r in rows]


def test_submit_approve_moves_figure_statuses_and_audits(services, trust) -> None:
    contract, period = trust
    draft = returns.load(services, contract, period)
    assert draft.state == "draft" and draft.missing.figures  # history lacks some KPIs
    with pytest.raises(TransitionRefused, match="still needed: figure"):
        returns.submit_return(services, contract, period, PROVIDER, "provider")
    fill(services, contract, period)
    view = returns.submit_return(services, contract, period, PROVIDER, "provider")
    assert view.state == "submitted" and view.rounds == 1
    assert statuses(services, contract, period) == {"pending"}
    assert returns.pending_periods(services, contract.id) == {"2019/20 Q3"}
    frame = services.figures_frame([contract.id])
    kept = approved_only(frame)
    assert "2019/20 Q3" not in set(kept["period"]) and "2019/20 Q2" in set(kept["period"])
    with pytest.raises(TransitionRefused, match="Only the commissioner"):
        returns.approve(services, contract, period, PROVIDER, "provider")
    assert (
        returns.approve(services, contract, period, COMMISSIONER, "commissioner").state
        == "approved"
    )
    assert statuses(services, contract, period) == {"approved"}
    assert returns.pending_periods(services, contract.id) == set()
    actions = [e.action for e in services.audit.recent(20, contract.id)]
    assert "return:submit" in actions and "return:approve" in actions


def test_approving_a_return_that_is_not_submitted_is_refused(services, trust) -> None:
    contract, period = trust
    with pytest.raises(TransitionRefused, match="Only a submitted return can be approved"):
        returns.approve(services, contract, period, COMMISSIONER, "commissioner")


def test_a_query_notifies_the_provider_exactly_once(services, trust) -> None:
    contract, period = trust
    fill(services, contract, period)
    returns.submit_return(services, contract, period, PROVIDER, "provider")
    with pytest.raises(TransitionRefused, match="needs a reason"):
        returns.query(services, contract, period, "  ", COMMISSIONER, "commissioner")
    assert query_rows(services) == []
    view = returns.query(
        services, contract, period, "C5 looks doubled.", COMMISSIONER, "commissioner"
    )
    assert view.state == "queried" and view.last_query == "C5 looks doubled."
    assert statuses(services, contract, period) == {"queried"}
    with pytest.raises(TransitionRefused):
        returns.query(services, contract, period, "again", COMMISSIONER, "commissioner")
    rows = query_rows(services)
    assert len(rows) == 1 and rows[0][1] == "provider" and "C5 looks doubled." in rows[0][2]
    # The provider amends and resubmits; a second query is a second, distinct notification.
    services.figures.submit(
        contract.id,
        [NewFigure("C5", period, value=50.0, reason="halved")],
        actor=PROVIDER,
        source="chat",
    )
    returns.submit_return(services, contract, period, PROVIDER, "provider")
    returns.query(services, contract, period, "Still odd.", COMMISSIONER, "commissioner")
    assert len({key for key, _a, _t in query_rows(services)}) == 2
    assert returns.review_findings(services, contract.id) == {"2019/20 Q3": 2}


def test_correction_approves_and_counts_against_accuracy(services, trust) -> None:
    from datetime import UTC, datetime

    from kpibot.engine.compliance import ReturnReceipt

    contract, period = trust
    fill(services, contract, period)
    returns.submit_return(services, contract, period, PROVIDER, "provider")
    with pytest.raises(TransitionRefused, match="needs a reason"):
        returns.correct(
            services,
            contract,
            period,
            [NewFigure("C1", period, value=1.0)],
            "",
            COMMISSIONER,
            "commissioner",
        )
    view = returns.correct(
        services,
        contract,
        period,
        [NewFigure("C1", period, value=42.0)],
        "spot-check of case files",
        COMMISSIONER,
        "commissioner",
    )
    assert view.state == "approved" and statuses(services, contract, period) == {"approved"}
    findings = returns.review_findings(services, contract.id)
    assert findings == {"2019/20 Q3": 1}
    got = {"2019/20 Q3": ReturnReceipt("2019/20 Q3", datetime(2020, 1, 1, tzinfo=UTC), 44, 0)}
    assert returns.with_review_findings(got, findings)["2019/20 Q3"].amended == 1
    # New figures after approval reopen the return for approval.
    services.figures.submit(
        contract.id,
        [NewFigure("C2", period, value=7.0, reason="late data")],
        actor=PROVIDER,
        source="chat",
    )
    assert returns.figures_arrived(services, contract, period, PROVIDER).state == "submitted"
    assert statuses(services, contract, period) == {"pending"}


def test_narrative_required_and_missing_note(services) -> None:
    contract = services.contract("one-psychology")
    period = contract.parse_period("2019/20 Q3")
    assert returns.narrative_required(contract)
    assert not returns.narrative_required(services.contract("childrens-trust"))
    fill(services, contract, period)
    assert returns.missing_for(services, contract, period) == (
        "the narrative (working well, challenges, actions)"
    )
    with pytest.raises(TransitionRefused, match="requires one each quarter"):
        returns.set_narrative(services, contract, period, {"working": " "}, "U-PSYCH", "provider")
    with pytest.raises(TransitionRefused, match="yours is 1 over"):
        returns.set_narrative(
            services, contract, period, {"actions": "x" * 2001}, "U-PSYCH", "provider"
        )
    returns.set_narrative(
        services, contract, period, {"working": "Referrals up"}, "U-PSYCH", "provider"
    )
    view = returns.set_narrative(
        services,
        contract,
        period,
        {"challenges": "Vacancies", "actions": "Recruiting"},
        "U-PSYCH",
        "provider",
    )
    assert view.narrative == {
        "working": "Referrals up",
        "challenges": "Vacancies",
        "actions": "Recruiting",
    }
    assert returns.missing_for(services, contract, period) == ""
    assert returns.missing_notes(services, contract, [period]) == {}
    with services.db.session(read_only=True) as s:
        events = s.scalars(select(ReturnEventRecord.event)).all()
    assert events == ["narrative", "narrative"]


# ------------------------------------------------------------------------ chat


@pytest.fixture
def chat(bot):
    def ask(line: str, user: str = PROVIDER):
        return bot.handle(Request.from_text(line, user=user, platform="console"))

    return ask


def test_chat_workflow(chat, services, trust) -> None:
    contract, period = trust
    shown = chat("return childrens-trust 2019/20 Q3")
    assert shown.ok and "Still needed: figures for" in shown.text
    fill(services, contract, period)
    assert "Figures in, ready to submit." in chat("return childrens-trust 2019/20 Q3").text
    done = chat("return childrens-trust 2019/20 Q3 submit")
    assert done.kind == "done" and "pending approval" in done.text
    assert chat("approve childrens-trust 2019/20 Q3").kind == "refusal"  # a provider, own return
    no_reason = chat("query childrens-trust 2019/20 Q3", user=COMMISSIONER)
    assert no_reason.kind == "refusal" and "needs a reason" in no_reason.text
    queried = chat('query childrens-trust 2019/20 Q3 "C5 looks doubled"', user=COMMISSIONER)
    assert queried.kind == "done" and "C5 looks doubled" in queried.text
    assert len(query_rows(services)) == 1
    again = chat("approve childrens-trust 2019/20 Q3", user=COMMISSIONER)
    assert again.kind == "refusal" and "Only a submitted return can be approved" in again.text


def test_chat_narrative_form_and_limits(chat) -> None:
    form = chat("narrative one-psychology 2019/20 Q3", user="U-PSYCH")
    assert form.form is not None and [f.name for f in form.form.fields][2:] == list(
        machine.SECTIONS
    )
    empty = chat('narrative one-psychology 2019/20 Q3 working: ""', user="U-PSYCH")
    assert empty.kind == "refusal" and "requires one" in empty.text
    long = "x" * 2010
    over = chat(f'narrative one-psychology 2019/20 Q3 challenges: "{long}"', user="U-PSYCH")
    assert over.kind == "refusal" and "10 over" in over.text
    ok = chat(
        'narrative one-psychology 2019/20 Q3 working: "Referrals up" challenges: "Staff" '
        'actions: "Hire"',
        user="U-PSYCH",
    )
    assert ok.kind == "done" and "Referrals up" in ok.text


def test_reminders_name_what_the_return_still_needs(services):
    """The provider started the 2019/20 Q3 return (narrative in, figures not): the due-day
    reminder from the live tick says what is still missing."""
    from datetime import datetime

    from kpibot.core.access import AccessPolicy
    from kpibot.engine.calendar import LONDON
    from kpibot.features.returns import set_narrative
    from kpibot.scheduler.tick import ReminderTick
    from tests.conftest import ACCESS_FILE

    contract = services.contract("one-psychology")
    period = contract.parse_period("2019/20 Q3")
    set_narrative(
        services,
        contract,
        period,
        {"working": "Referrals up", "challenges": "Waiting list", "actions": "Extra clinic"},
        actor="U-PSYCH",
        role="provider",
    )
    tick = ReminderTick(
        services, AccessPolicy.load(ACCESS_FILE), start=datetime(2020, 1, 9, tzinfo=LONDON)
    )
    messages = tick.messages(
        datetime(2020, 1, 9, tzinfo=LONDON), datetime(2020, 1, 11, tzinfo=LONDON)
    )
    due = [m for m in messages if m.kind == "due" and m.contract == "one-psychology"]
    assert len(due) == 1 and "Still needed: figures" in due[0].text


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("q" * 1001, "A review reason is limited to 1,000 characters; yours is 1 over."),
        ("C5\x0c looks doubled.", "A review reason contains a control character (U+000C)"),
    ],
)
def test_a_query_reason_too_long_or_with_control_characters_is_refused(
    services, trust, reason, words
) -> None:
    contract, period = trust
    fill(services, contract, period)
    returns.submit_return(services, contract, period, PROVIDER, "provider")
    with pytest.raises(TransitionRefused) as refused:
        returns.query(services, contract, period, reason, COMMISSIONER, "commissioner")
    assert str(refused.value).startswith(words)
    assert query_rows(services) == [] and statuses(services, contract, period) == {"pending"}


def test_narratives_and_exception_reports_refuse_control_characters() -> None:
    assert machine.narrative_problem({"working": "ok\x00"}, required=False) == (
        "The 'what is working well' section contains a control character (U+0000), which "
        "kpibot cannot store; delete it (it is often pasted in invisibly) and send it again."
    )
    assert "control character (U+001B)" in (machine.exception_problem("late\x1b") or "")
    assert machine.exception_problem("two lines\nand a tab\t") is None
