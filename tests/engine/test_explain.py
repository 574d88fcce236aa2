"""`contracts explain`: the contract read back in plain English, money included."""

from __future__ import annotations

from kpibot.engine.explain import explain_rows, explain_text
from kpibot.engine.payments import explain_payments
from kpibot.files.contracts import parse_contract_text
from tests.commands.test_status import DEMO


def test_every_kpi_and_year_has_a_row_with_words_and_reading(seed_contracts):
    for c in seed_contracts.values():
        rows = explain_rows(c)
        assert len(rows) == len(c.kpis) * len(c.contract_years)
        for r in rows:
            assert r.target_reading, (c.id, r.kpi, r.year)
            assert " ." not in r.target_reading and "days working days" not in r.target_reading


def test_assumptions_are_shown(seed_contracts):
    rows = {(r.kpi, r.year): r for r in explain_rows(seed_contracts["healthy-child-0-19"])}
    assert (
        "exempt from its target this year"
        in rows[("2a", "Year 0 (Oct 2016 to March 2017)")].assumptions
    )
    trust = {(r.kpi, r.year): r for r in explain_rows(seed_contracts["childrens-trust"])}
    assert trust[("S2", "2019/20")].target_reading == "at least 25% within 20 days"
    assert (
        "the time limit '20 days' comes from the measure's name"
        in trust[("S2", "2019/20")].assumptions
    )


def test_explain_payments_covers_each_existing_term(seed_contracts):
    hc = explain_payments(seed_contracts["healthy-child-0-19"])
    assert hc[0].startswith("Per-KPI incentive (Table 1 footnote 1): each of 12 KPIs")
    assert "earns 0.5% of the annual contract value" in hc[0]
    lifestyle = "\n".join(explain_payments(seed_contracts["one-you-lifestyle"]))
    assert "Block and incentive (2.2.2): 80% of the annual contract value" in lifestyle
    assert (
        "Physical Activity (KPI PA-1): baseline target 1,800; critical failure below 1,200"
        in lifestyle
    )
    assert "Data submission (2.5): timeliness target 95%" in lifestyle
    psychology = "\n".join(explain_payments(seed_contracts["one-psychology"]))
    assert "Service RAG (Schedule 2): red below 80% of outcomes achieved" in psychology
    assert "withholds 5% of the annual payment" in psychology
    assert "Finance exception (5d): spend more than 15% from forecast" in psychology
    assert explain_payments(seed_contracts["childrens-trust"]) == [
        "The contract file sets no payment terms."
    ]


def test_groups_milestones_and_the_trend_setting_are_explained():
    text = explain_text(parse_contract_text(DEMO, "demo.yaml"))
    assert "Trends compare with the same period last year" in text
    assert (
        "Quality standards (Schedule 2): performed when 2 of 3 KPIs meet their targets (Q1, Q2, Q3)"
        in text
    )
    assert "M1 Introduce the complaints panel: due 31 January 2020" in text
    assert "reported: yearly (default)" in text


def test_explain_payments_explains_every_sanction_in_plain_english():
    """`contracts explain` prints each sanction mechanism (issue 18) with its clause, not just
    names it: points, graded bands, deductions, termination, caps, incentives, bedding-in."""
    from pathlib import Path

    from kpibot.files.contracts import load_contract_file

    path = Path(__file__).resolve().parents[1] / "fixtures" / "contracts" / "waste-collection.yaml"
    text = "\n".join(explain_payments(load_contract_file(path)))
    assert "Penalty points (ombudsman-upheld, Schedule 3 Performance Framework): 500" in text
    assert "over 100 points, 1% of the monthly charge" in text
    assert "1,500 points or more over any rolling 6 months" in text
    assert "capped at 2% of the monthly charge a month" in text
    assert "Bedding-in (Schedule 3, paragraph 1.4 (bedding-in))" in text
    assert text.endswith("shows each month's ledger with the arithmetic.")
