"""`/kpi status` for issue 13: every KPI of a yearly contract, group rules, milestones, trend method."""

from __future__ import annotations

import pytest

from kpibot.core.protocol import Request
from kpibot.files.contracts import parse_contract_text

DEMO = """
id: demo-13
name: Demo issue 13
commissioner: {name: Council}
provider: {name: Provider}
reporting: {period: year, year_start_month: 4}
trend: same_period_last_year
contract_years:
  - {year: 1, label: "2018/19", start: 2018-04-01, end: 2019-03-31}
  - {year: 2, label: "2019/20", start: 2019-04-01, end: 2020-03-31}
groups:
  - {name: Quality standards, kpis: [Q1, Q2, Q3], rule: "2 of 3", clause: "Schedule 2"}
kpis:
  - {code: Q1, name: Complaints answered within 15 working days, polarity: bigger, target: "90%"}
  - {code: Q2, name: Reviews on time, polarity: bigger, target: "95%"}
  - {code: Q3, name: Waiting time, polarity: smaller, target: "no more than 6 weeks"}
  - {code: M1, name: Introduce the complaints panel, kind: milestone, due: 2020-01-31}
history:
  - {kpi: Q1, period: "2018/19", value: 80}
  - {kpi: Q1, period: "2019/20", value: 92}
  - {kpi: Q2, period: "2019/20", value: 90}
  - {kpi: Q3, period: "2019/20", value: 5}
"""


def ask(bot, text, user="U-COMMISSIONER"):
    return bot.handle(Request.from_text(text, user=user, platform="console"))


@pytest.fixture
def demo(services):
    contract = parse_contract_text(DEMO, "demo-13.yaml")
    services.store_contracts([contract], actor="test")
    return contract


def test_every_kpi_of_a_yearly_contract_shows_without_a_frequency(bot, demo):
    """Defect: KPIs without `frequency` vanished from status on a yearly-reporting contract."""
    reply = ask(bot, "status demo-13")
    assert "2019/20" in reply.title
    assert "🔴 1 red · 🟠 0 amber · 🟢 2 green · ⚪ 1 no target or no figure" in reply.text
    assert [row[0].text for row in reply.rows] == ["Q2"]


def test_status_shows_the_group_verdict_the_milestone_and_the_trend_method(bot, demo):
    text = ask(bot, "status demo-13").text
    assert (
        "*Group rule:* Quality standards (Schedule 2): performed (2 of 3 met; the rule is 2 of 3)"
        in text
    )
    assert (
        "*Milestone:* M1 Introduce the complaints panel: due 31 Jan 2020, overdue by 20 days"
        in text
    )
    assert "Trends compare with the same period last year." in text


def test_kpi_detail_names_its_trend_method(bot, demo):
    text = ask(bot, "status demo-13 Q1").text
    assert "*Trend (against the same period last year):* ↗ improving" in text


def test_an_achieved_milestone_is_green_and_shown_achieved(bot, demo, services):
    from kpibot.engine.periods import parse_period
    from kpibot.store.rows import NewFigure

    services.figures.submit(
        "demo-13",
        [NewFigure("M1", parse_period("2019/20"), value=1.0)],
        actor="U-COMMISSIONER",
        source="chat",
        idempotency_key="m1-achieved",
    )
    text = ask(bot, "status demo-13").text
    assert (
        "*Milestone:* M1 Introduce the complaints panel: achieved (2019/20; due 31 Jan 2020)"
        in text
    )
    assert "🟢 3 green" in text


def test_the_quarterly_summary_carries_the_same_lines(services, demo):
    from kpibot.features.summary import quarterly_summary

    reply = quarterly_summary(services, demo, demo.parse_period("2019/20"), grid=False)
    assert "*Group rule:* Quality standards" in reply.text and "*Milestone:* M1" in reply.text
