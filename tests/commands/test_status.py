"""The status overview from the status cache is the overview the per-contract scorecard gave.

``legacy_overview`` below is the overview as ``kpibot/commands/status.py`` built it before the
status cache: two scorecards per contract (one to find the report period, one at it) and pandas
filters over their rows. It stays here as the reference. The overviews built cold, warmed many
at once and refreshed after changes must be identical to it, Reply for Reply, over the four seed
contracts and a generated set of contracts with random figures.

The tests after ``DEMO`` cover issue 13: every KPI of a yearly contract shows without a
frequency, and status shows group rules, milestones and the trend method.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from kpibot.commands.status import (
    MAX_ROWS,
    _short,
    _target_cell,
    _value,
    all_counts,
    cached_overview,
    overview,
    warm,
)
from kpibot.core.protocol import Action, Cell, Reply, Request
from kpibot.engine.describe import RAG_DOT, RAG_ORDER, trend_text
from kpibot.engine.forecast import forecast_scorecard
from kpibot.engine.periods import period_containing
from kpibot.engine.scorecard import compiled, reporting_kind
from kpibot.features.returns import pending_periods
from kpibot.files.contracts import parse_contract_text
from kpibot.store.rows import NewFigure

# ------------------------------------------------------------------ the reference (old path)


def legacy_overview(services, contract, at):
    card0 = services.scorecard(contract)
    period = at or card0.latest_period() or services.default_period(contract)
    card = services.scorecard(contract, period)
    rows = card.at(period)
    comp = compiled(contract)
    year = contract.year_for(period)
    counts = {r: int((rows["rag"] == r).sum()) if not rows.empty else 0 for r in RAG_ORDER}
    summary = (
        f"{RAG_DOT['red']} {counts['red']} red · {RAG_DOT['amber']} {counts['amber']} amber · "
        f"{RAG_DOT['green']} {counts['green']} green · {RAG_DOT['grey']} {counts['grey']} no target or no figure"
    )
    lines = [summary]
    if not rows.empty:
        crit = rows[rows["critical"]]
        if len(crit):
            lines.append(
                "*Critical failures:* "
                + ", ".join(f"{r.kpi} ({_value(r, comp[r.kpi].unit)})" for r in crit.itertuples())
            )
        missing = rows[rows["position"] == "missing"]
        late = ""
        if not missing.empty:
            due = services.due_date(contract, contract.parse_period(missing["period"].iloc[0]))
            today = services.now().date()
            if not (due is not None and today <= due):
                codes = list(missing["kpi"])
                shown = ", ".join(codes[:10]) + (
                    f" …and {len(codes) - 10} more" if len(codes) > 10 else ""
                )
                when = f" (due {due:%-d %b %Y})" if due else ""
                late = f"{len(codes)} KPI(s) have no figure{when}: {shown}"
        if late:
            lines.append("*Late or missing returns:* " + late)
    if period.label in pending_periods(services, contract.id):
        lines.append(
            f"The {period.label} return is *pending* approval; its figures may still change."
        )
    annual = {k.code for k in contract.kpis if k.target_basis == "annual"}
    if annual and not card.frame.empty:
        fc = forecast_scorecard(card, period)
        if not fc.empty:
            risky = fc[fc["kpi"].isin(annual) & fc["rag"].isin(["red", "amber"])]
            if not risky.empty:
                parts = [
                    f"{r.kpi}: {r.statement}"
                    for r in risky.itertuples()
                    if isinstance(r.statement, str)
                ][:4]
                lines.append("*Year-end outlook:* " + "; ".join(parts))
    lines.extend(services.status_extras(contract, period))
    reply = Reply(
        f"{contract.name} · {period.label}" + (f" · {year.name}" if year else ""),
        "\n".join(lines),
        columns=["KPI", "Measure", "Value", "Target", "Trend"],
    )
    focus = rows[rows["rag"].isin(["red", "amber"]) | rows["critical"]] if not rows.empty else rows
    if not focus.empty:
        focus = focus.assign(_o=focus["rag"].map(RAG_ORDER), _c=~focus["critical"]).sort_values(
            ["_c", "_o"]
        )
    for r in list(focus.itertuples())[:MAX_ROWS]:
        kpi = contract.kpi(r.kpi)
        reply.rows.append(
            [
                Cell(r.kpi, r.rag),
                Cell(_short(kpi.name)),
                Cell(_value(r, comp[r.kpi].unit)),
                Cell(_target_cell(contract, r)),
                Cell(trend_text(r.trend)),
            ]
        )
    hidden = len(focus) - MAX_ROWS
    footer = [f"…and {hidden} more red or amber." if hidden > 0 else ""]
    if focus.empty and not rows.empty:
        footer.append("Nothing is red or amber.")
    footer.append(
        f"{counts['green']} green KPIs not listed. `status {contract.id} <kpi>` shows one KPI's history."
    )
    reply.footer = " ".join(f for f in footer if f)
    worst = next(iter(focus["kpi"]), None) if not focus.empty else None
    if worst:
        reply.actions.append(Action(f"Chart {worst}", f"chart {contract.id} {worst}", "primary"))
    return reply


# ------------------------------------------------------------------ a generated population


def periods_of(contract, kind):
    p = period_containing(contract.start, kind, contract.reporting.year_start_month)
    out = []
    while p.start <= contract.end:
        out.append(p)
        p = p.shift(1)
    return out


def add_generated(services, seed_contracts, copies=2, seed=11):
    """Copies of the seed contracts under new ids, each with random figures, stored."""
    rng = random.Random(seed)
    made = []
    for c in seed_contracts.values():
        for n in range(copies):
            twin = c.model_copy(update={"id": f"{c.id}-g{n}", "history": []})
            services.store_contracts([twin], actor="test", with_history=False)
            rows = []
            for k in twin.kpis:
                kind = reporting_kind(k, twin.reporting.period)
                span = periods_of(twin, kind)
                if rng.random() < 0.3:
                    span = span[: rng.randint(0, len(span))]
                for p in span:
                    if rng.random() < 0.1:
                        continue
                    rows.append(NewFigure(k.code, p, value=round(rng.uniform(0, 150), 1)))
            if rows:
                services.figures.submit(twin.id, rows, actor="test", source="import")
            made.append(twin)
    return made


@pytest.fixture
def population(services, seed_contracts):
    generated = add_generated(services, seed_contracts)
    return [*seed_contracts.values(), *generated]


def fresh_services(services):
    """Services on the same store with nothing cached (another process, say)."""
    from kpibot.app.wiring import services_for_database

    return services_for_database(services.db, services.settings, services.clock)


def test_cold_overviews_equal_the_old_path(services, population):
    for contract in population:
        mine = services.contract(contract.id)
        assert overview(services, mine, None) == legacy_overview(services, mine, None), contract.id
        for p in periods_of(mine, mine.reporting.period)[-3:]:
            assert overview(services, mine, p) == legacy_overview(services, mine, p), (
                contract.id,
                p.label,
            )


def test_warmed_overviews_equal_the_old_path(services, population, clock):
    for when in (clock.when, clock.when + timedelta(days=400)):
        clock.when = when
        svc = fresh_services(services)
        ids = [c.id for c in population]
        counts = warm(svc, ids)
        assert sorted(counts) == sorted(ids)
        for cid in ids:
            contract = svc.contract(cid)
            reply = cached_overview(svc, contract, None)
            assert reply == legacy_overview(svc, contract, None), cid
            label, n = counts[cid]
            assert label in reply.title and f"{n['red']} red" in reply.text


def test_all_contracts_counts_match_each_overview_after_a_change(services, population):
    ids = [c.id for c in population]
    before = all_counts(services, ids)
    contract = services.contract(ids[-1])
    status = services.status.standing(contract, None)
    code = status.rows[0].kpi
    services.figures.submit(
        contract.id,
        [NewFigure(code, status.period, value=0.0, reason="recount")],
        actor="test",
        source="chat",
    )
    after = all_counts(services, ids)
    assert list(after) == ids
    for cid in ids:
        legacy = legacy_overview(services, services.contract(cid), None)
        label, n = after[cid]
        assert label in legacy.title and f"{n['red']} red · " in legacy.text, cid
    assert before[ids[0]] == after[ids[0]]


def test_the_refreshed_overview_equals_the_old_path_after_every_kind_of_change(
    services, population, clock
):
    rng = random.Random(5)
    ids = [c.id for c in population]
    warm(services, ids)
    for step in range(12):
        contract = services.contract(rng.choice(ids))
        status = services.status.standing(contract, None)
        kpi = rng.choice(contract.kpis)
        kind = reporting_kind(kpi, contract.reporting.period)
        choices = [p for p in periods_of(contract, kind) if p.start <= status.period.end]
        later = [p for p in periods_of(contract, kind) if p.start > status.period.end][:1]
        period = rng.choice(choices + later * 3)
        existing = {f.period for f in services.figures.current(contract.id, kpi.code)}
        services.figures.submit(
            contract.id,
            [
                NewFigure(
                    kpi.code,
                    period,
                    value=round(rng.uniform(0, 150), 1),
                    reason="recount" if period.label in existing else None,
                )
            ],
            actor="test",
            source="chat",
        )
        if step % 4 == 3:
            clock.when += timedelta(days=rng.choice([1, 40, 200]))
        got = cached_overview(services, contract, None)
        assert got == legacy_overview(services, contract, None), (step, contract.id)


# ---------------------------------------------------------------------------- issue 13

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
