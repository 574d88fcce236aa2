"""Payment models from the seeds, worked through by hand: seed 000's per-KPI incentive, seed 001's
block plus incentive tiers, seed 003's withholding on a red service, and bad payment terms."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from kpibot.core.protocol import Request
from kpibot.engine.compliance import OutcomeCheck, rate_service
from kpibot.engine.model import ServiceRagTerms, pct
from kpibot.engine.payments import ProgrammeEvidence, evaluate_payments
from kpibot.files.contracts import ContractFilesInvalid, parse_contract_text
from kpibot.store.rows import NewFigure

CONTRACTS = Path(__file__).resolve().parents[2] / "config" / "contracts"
TODAY = date(2020, 2, 20)
ACV = Decimal("1000000")


def ask(bot, text, user="U-COMMISSIONER", channel=None):
    return bot.handle(Request.from_text(text, user=user, platform="console", channel=channel))


def submit(services, contract_id, rows, reason=None):
    contract = services.contract(contract_id)
    figures = []
    for kpi, label, value, *bench in rows:
        figures.append(
            NewFigure(
                kpi,
                contract.parse_period(label),
                value=value,
                benchmark=bench[0] if bench else None,
                reason=reason,
            )
        )
    services.figures.submit(contract_id, figures, actor="test", source="cli")


def with_acv(contract, acv=ACV):
    return contract.model_copy(update={"annual_contract_value": acv})


def by_code(report):
    return {line.label: line for line in report.lines}


# ------------------------------------------------------------------ seed 000: 0.5% of ACV per main KPI


def test_seed_000_year_0_guarantees_four_exempt_kpis_pro_rata(services):
    """Footnote 1: 2a, 3a, 3b and 6b are exempt in Year 0, so "4 x 0.5% of the Annual Contract Value
    (pro rata) will be a guaranteed award". Year 0 runs Oct 2016 to Mar 2017: 6 of 12 months.

    Each KPI is worth 0.5% x 6/12 = 0.25% of ACV; the guaranteed award is 4 x 0.25% = 1% of ACV.
    All 12 main KPIs make an incentive of 12 x 0.25% = 3% of ACV; with no figures in, the other
    8 x 0.25% = 2% is at risk. With an ACV of £1,000,000: £10,000 guaranteed, £20,000 at risk of £30,000.
    """
    from kpibot.features.payments import payment_report

    contract = services.contract("healthy-child-0-19")
    report = payment_report(services, contract, 0)
    assert report.fraction == Fraction(6, 12)
    lines = by_code(report)
    assert sorted(c for c, ln in lines.items() if ln.status == "guaranteed") == [
        "2a",
        "3a",
        "3b",
        "6b",
    ]
    assert all(ln.share == Decimal("0.0025") for ln in lines.values())
    assert report.total("guaranteed") == Decimal("0.01")
    assert report.incentive_pot == Decimal("0.03")
    assert report.total("at_risk") == Decimal("0.02")
    assert "0.5% × 6/12 = 0.25% of ACV is a guaranteed award" in lines["2a"].reason
    assert any("4 × 0.5% × 6/12 = 1% of ACV is a guaranteed award" in n for n in report.notes)
    assert report.verdict().startswith("2% of ACV (of a 3% incentive) at risk: 1a, 1b, 2b, 4a, 4b")

    pounds = payment_report(services, with_acv(contract), 0)
    assert pounds.amount(pounds.total("guaranteed")) == "£10,000"
    assert pounds.verdict().startswith("£20,000 of £30,000 incentive at risk:")


YEAR_2 = [  # 2018/19 annual figures: (kpi, period, value, national average)
    ("1a", "2018/19", 46.0),
    ("1b", "2018/19", 38.0),
    ("2a", "2018/19", 70.0, 60.0),
    ("2b", "2018/19", 66.0, 60.0),
    ("3a", "2018/19", 70.0),
    ("3b", "2018/19", 55.0, 50.0),
    ("4a", "2018/19", 92.0),
    ("4b", "2018/19", 20.0, 22.0),
    ("5a", "2018/19", 91.0),
    ("5b", "2018/19", 90.0),
    ("6a", "2018/19", 81.0),
    ("6b", "2018/19", 95.0),
]


def test_seed_000_complete_year_pays_on_the_annual_figures(services):
    """Year 2 (2018/19) is over. Annual figures: 1b is 38% against "40%" and 5b 90% against
    "100% parents with at least 60% ...", the other ten meet their Year 2 levels.
    Each KPI is worth 0.5% of £1,000,000 = £5,000 (a full year): earned 10 x £5,000 = £50,000;
    not earned 2 x £5,000 = £10,000 of the £60,000 incentive.
    """
    from kpibot.features.payments import payment_report

    submit(services, "healthy-child-0-19", YEAR_2)
    report = payment_report(services, with_acv(services.contract("healthy-child-0-19")), 2)
    lines = by_code(report)
    assert {c for c, ln in lines.items() if ln.status == "not_earned"} == {"1b", "5b"}
    assert report.amount(report.total("earned")) == "£50,000"
    assert report.verdict() == "£10,000 of £60,000 incentive not earned: 1b, 5b below target"
    assert (
        "Not met: annual figure 2018/19: 38%" in lines["1b"].reason
        and "“40%”" in lines["1b"].reason
    )


def test_the_annual_figure_decides_over_the_latest_quarter(services):
    """met_rule annual_else_latest_period: 1a's Q4 (50%) meets 45.5% but its annual 44% does not,
    so 1a is not earned. 6a has no annual figure; its latest quarter, Q4 at 82% against 80%, is the
    year's last quarter and the year is over, so it is earned. 4a's latest is Q3 (95%): met, but
    provisional until Q4 or the annual figure arrives, so it is on track, not earned."""
    from kpibot.features.payments import payment_report

    submit(
        services,
        "healthy-child-0-19",
        [
            ("1a", "2018/19 Q4", 50.0),
            ("1a", "2018/19", 44.0),
            ("6a", "2018/19 Q3", 70.0),
            ("6a", "2018/19 Q4", 82.0),
            ("4a", "2018/19 Q3", 95.0),
        ],
    )
    lines = by_code(payment_report(services, services.contract("healthy-child-0-19"), 2))
    assert lines["1a"].status == "not_earned" and "annual figure 2018/19: 44%" in lines["1a"].reason
    assert lines["6a"].status == "earned" and "latest period 2018/19 Q4: 82%" in lines["6a"].reason
    assert lines["4a"].status == "on_track" and "provisional until" in lines["4a"].reason


def test_every_period_rule_is_stricter(services):
    """met_rule every_period: 6a missed Q3 (70% < 80%), so the year is lost whatever Q4 says."""
    from kpibot.features.payments import payment_report

    submit(services, "healthy-child-0-19", [("6a", "2018/19 Q3", 70.0), ("6a", "2018/19 Q4", 82.0)])
    contract = services.contract("healthy-child-0-19")
    inc = contract.payments.per_kpi_incentive.model_copy(update={"met_rule": "every_period"})
    strict = contract.model_copy(
        update={"payments": contract.payments.model_copy(update={"per_kpi_incentive": inc})}
    )
    assert by_code(payment_report(services, strict, 2))["6a"].status == "not_earned"


YEAR_3_Q3 = [  # 2019/20 Q3 (Oct-Dec 2019), the latest quarter on 20 Feb 2020
    ("1a", "2019/20 Q3", 47.0),
    ("1b", "2019/20 Q3", 38.0),
    ("2a", "2019/20 Q3", 70.0, 60.0),
    ("2b", "2019/20 Q3", 66.0, 60.0),
    ("4a", "2019/20 Q3", 96.0),
    ("5a", "2019/20 Q3", 91.0),
    ("5b", "2019/20 Q3", 90.0),
    ("6a", "2019/20 Q3", 86.0),
    ("6b", "2019/20 Q3", 100.0),
]


def test_money_at_risk_in_the_current_year_on_the_latest_quarter(services):
    """Year 3+ (2019/20) is running. At Q3, 1b (38% against ">40%") and 5b (90% against 100%) are
    below target, and the annual-only KPIs 3a, 3b and 4b have no figure yet: 5 x £5,000 = £25,000 of
    the 12 x £5,000 = £60,000 incentive is at risk; the other seven are on track.
    """
    from kpibot.features.payments import payment_report

    submit(services, "healthy-child-0-19", YEAR_3_Q3)
    report = payment_report(services, with_acv(services.contract("healthy-child-0-19")))
    assert report.year == 3
    assert (
        report.verdict()
        == "£25,000 of £60,000 incentive at risk: 1b, 5b below target; 3a, 3b, 4b no figure yet"
    )
    assert report.amount(report.total("on_track")) == "£35,000"


def test_status_and_quarterly_summary_show_money_at_risk(services, bot):
    """The status hook puts the verdict in `/kpi status` and the quarterly summary (no ACV shipped,
    so as shares of it: 5 x 0.5% = 2.5% of a 6% incentive)."""
    from kpibot.app.wiring import install_features
    from kpibot.features.summary import quarterly_summary

    install_features(services)
    install_features(services)
    assert services.hooks.status.count(services.hooks.status[0]) == 1
    submit(services, "healthy-child-0-19", YEAR_3_Q3)
    line = (
        "💷 2.5% of ACV (of a 6% incentive) at risk: 1b, 5b below target; 3a, 3b, 4b no figure yet"
    )
    assert line in ask(bot, "status healthy-child-0-19").text
    contract = services.contract("healthy-child-0-19")
    assert (
        line
        in quarterly_summary(
            services, contract, contract.parse_period("2019/20 Q3"), grid=False
        ).text
    )


def test_payments_command_shows_a_table_and_a_verdict(bot, services):
    submit(services, "healthy-child-0-19", YEAR_3_Q3)
    r = ask(bot, "payments healthy-child-0-19")
    assert r.ok and r.title.endswith("Year 3+")
    assert r.text.startswith("*2.5% of ACV (of a 6% incentive) at risk: 1b, 5b below target")
    assert r.columns == ["Item", "Status", "Amount", "Reason"] and len(r.rows) == 12
    assert r.rows[0][1].text == "at risk" and "shares of the annual contract value" in r.text
    assert "annual figure" in r.footer
    year0 = ask(bot, "payments healthy-child-0-19 year 0")
    assert (
        year0.title.endswith("Year 0 (Oct 2016 to March 2017)")
        and "Guaranteed 1% of ACV" in year0.text
    )


def test_payments_command_refuses_clearly(bot):
    r = ask(bot, "payments one-you-lifestyle 9")
    assert r.kind == "error" and "has no contract year '9'; its years are 1" in r.text
    r = ask(bot, "payments childrens-trust")
    assert r.kind == "error" and "sets no payment terms" in r.text
    assert ask(bot, "payments healthy-child-0-19", user="U-TRUST").kind == "refusal"


@pytest.mark.parametrize(
    "text, year",
    [("0", 0), ("year 0", 0), ("Y3", 3), ("Year 3+", 3), ("2018/19", 2), ("2019/20 Q3", 3)],
)
def test_contract_years_can_be_named_several_ways(seed_contracts, text, year):
    from kpibot.features.payments import find_year

    assert find_year(seed_contracts["healthy-child-0-19"], text).year == year


# ------------------------------------------------------------------ seed 001: 80% block, 20% on tiers

# (programme, critical failure, baseline, 10% Target, 20% Target) from the 2.2.2 table
PROGRAMMES = [
    ("PA-1", 1200, 1800, 2000, 2200),
    ("WM-1", 450, 600, 750, 900),
    ("FP-1", 340, 570, 685, 800),
    ("SS-1", 120, 160, 180, 200),
    ("CS-1", 180, 250, 325, 400),
]
CASES = [  # (participants as a function of the row, critical failure?, 10% tier?, 20% tier?, baseline met?)
    (lambda cf, base, t1, t2: cf - 1, True, False, False, False),
    (lambda cf, base, t1, t2: cf, False, False, False, False),
    (lambda cf, base, t1, t2: base, False, False, False, True),
    (lambda cf, base, t1, t2: t1 - 1, False, False, False, True),
    (lambda cf, base, t1, t2: t1, False, True, False, True),
    (lambda cf, base, t1, t2: t2, False, True, True, True),
]


@pytest.mark.parametrize("row", PROGRAMMES, ids=[p[0] for p in PROGRAMMES])
@pytest.mark.parametrize(
    "case", CASES, ids=["floor-1", "floor", "baseline", "tier1-1", "tier1", "tier2"]
)
def test_seed_001_tiers_and_floors_at_every_boundary(seed_contracts, row, case):
    """2.2.2, Physical Activity worked through (the other rows alike): critical failure 1200,
    baseline 1800, 10% Target 2000 (+2%), 20% Target 2200 (+2%); "+2%" read as 2% of ACV.
    1199: below the floor, a Critical Performance Failure, no tier (0%). 1200: attains the minimum
    ("failure to attain as a minimum"), below baseline, 0%. 1800: baseline met, 0% (the table pays
    only on the tiers). 1999: 0%. 2000: 10% Target reached, 2%. 2200: both, 2% + 2% = 4% of ACV.
    The block is 80% of ACV whatever happens.
    """
    code, cf, base, t1, t2 = row
    value_of, critical, tier1, tier2, baseline = case
    contract = seed_contracts["one-you-lifestyle"]
    year1 = contract.contract_years[0]
    total = value_of(cf, base, t1, t2)
    evidence = {
        code: ProgrammeEvidence(code, float(total), "2018/19", Fraction(1), True, annual=True)
    }
    report = evaluate_payments(contract, year1, TODAY, programmes=evidence)
    block = next(ln for ln in report.lines if ln.scheme == "block")
    assert block.status == "guaranteed" and block.share == Decimal("0.8")
    tiers = [
        ln
        for ln in report.lines
        if ln.scheme == "block_plus_incentive" and f"({code})" in ln.reason
    ]
    assert [ln.status for ln in tiers] == [
        "earned" if tier1 else "not_earned",
        "earned" if tier2 else "not_earned",
    ]
    assert all(ln.share == Decimal("0.02") for ln in tiers)
    assert all(ln.critical is critical for ln in tiers)
    earned = sum((ln.share for ln in tiers if ln.status == "earned"), Decimal(0))
    assert earned == Decimal("0.02") * (tier1 + tier2)
    standing = next(n for n in report.notes if n.startswith(tiers[0].label + ":"))
    assert ("Critical Performance Failure (2.2.2, 2.7.1)" in standing) is critical
    assert ("meeting the baseline target" in standing) is baseline


def test_seed_001_year_total_is_the_sum_of_quarters_through_the_store(services):
    """Year 1 (Nov 2018 to Oct 2019) is over: PA-1 quarters 500 + 500 + 450 + 550 = 2000, the 10%
    Target: +2% of ACV earned, the 20% Target (2200) not. The other programmes sent nothing: their
    8 tiers x 2% = 16% is at risk (no figure yet). Incentive: 2% earned, 2% not earned, 16% at risk."""
    from kpibot.features.payments import payment_report

    submit(
        services,
        "one-you-lifestyle",
        [("PA-1", f"2018/19 Q{q}", v) for q, v in ((1, 500.0), (2, 500.0), (3, 450.0), (4, 550.0))],
    )
    report = payment_report(services, services.contract("one-you-lifestyle"), 1)
    pa = [ln for ln in report.lines if ln.label == "Physical Activity"]
    assert [ln.status for ln in pa] == ["earned", "not_earned"]
    assert "Reached: 2,000 participants (to 2018/19 Q4)" in pa[0].reason
    assert report.total("earned") == Decimal("0.02") and report.total("at_risk") == Decimal("0.16")
    assert report.verdict().startswith("16% of ACV (of a 20% incentive) at risk: Weight Management")
    assert report.verdict().endswith(
        "2% of ACV (of a 20% incentive) not earned: Physical Activity below the 20% Target"
    )


@pytest.mark.parametrize(
    "q1, first, second, heading",
    [
        (550.0, "on_track", "on_track", False),
        (549.0, "on_track", "at_risk", False),
        (299.0, "at_risk", "at_risk", True),
    ],
)
def test_seed_001_in_year_tiers_follow_the_profile(services, q1, first, second, heading):
    """Year 2 at 20 Feb 2020: only 2019/20 Q1 (Nov-Jan) is in, a quarter of the year. Profiles:
    10% Target 2000 / 4 = 500, 20% Target 2200 / 4 = 550, critical floor 1200 / 4 = 300.
    550 is on track for both; 549 misses the 20% profile; 299 is heading for a critical failure."""
    from kpibot.features.payments import payment_report

    submit(services, "one-you-lifestyle", [("PA-1", "2019/20 Q1", q1)])
    report = payment_report(services, services.contract("one-you-lifestyle"))
    pa = [ln for ln in report.lines if ln.label == "Physical Activity"]
    assert [ln.status for ln in pa] == [first, second]
    assert "against a profile of 550 (2,200 × 1/4 of the year)" in pa[1].reason
    assert any("heading for a Critical Performance Failure" in n for n in report.notes) is heading


def test_the_programme_pot_reading_is_available_and_shows_what_it_leaves_out(seed_contracts):
    """tier_payment_basis share_of_programme_pot: each programme's pot is 20% / 5 = 4% of ACV, and
    "+2%" is 2% of that, 0.08% of ACV per tier; 10 tiers carry 0.8%, leaving 19.2% tied to no tier."""
    contract = seed_contracts["one-you-lifestyle"]
    block = contract.payments.block_plus_incentive.model_copy(
        update={"tier_payment_basis": "share_of_programme_pot"}
    )
    pot = contract.model_copy(
        update={"payments": contract.payments.model_copy(update={"block_plus_incentive": block})}
    )
    report = evaluate_payments(pot, pot.contract_years[0], TODAY)
    tiers = [ln for ln in report.lines if ln.scheme == "block_plus_incentive"]
    assert {ln.share for ln in tiers} == {Decimal("0.0008")}
    assert "2% of its 4%-of-ACV pot = 0.08%" in tiers[0].reason
    assert any(
        "the other 19.2% of the 20% incentivised share is tied to no tier" in n
        for n in report.notes
    )


# ------------------------------------------------------------------ seed 003: 5% withheld when red


def test_seed_003_grades_at_the_thresholds():
    """Schedule 2: red below 80%, amber "between 80-90%", green when "fully achieved". The shipped
    reading puts 90% to <100% in amber (green_from_percent 100): 79.9 red, 80 amber, 90 amber, 100 green.
    Counted: 799 of 1000 = 79.9%, 4 of 5 = 80%, 9 of 10 = 90%, 5 of 5 = 100%."""
    terms = ServiceRagTerms(clause="Schedule 2")
    for achieved, assessed, rag in (
        (799, 1000, "red"),
        (4, 5, "amber"),
        (9, 10, "amber"),
        (5, 5, "green"),
    ):
        checks = [OutcomeCheck(str(i), "Q1", i < achieved, True) for i in range(assessed)]
        assert rate_service(terms, checks, ["Q1"]).latest.rag == rag
    ninety = ServiceRagTerms(clause="Schedule 2", green_from_percent=90)
    assert (
        rate_service(
            ninety, [OutcomeCheck(str(i), "Q1", i < 9, True) for i in range(10)], ["Q1"]
        ).latest.rag
        == "green"
    )


def test_seed_003_cumulative_achievement_sits_beside_the_period():
    """Q1 1 of 2 achieved (50%, red); Q2 2 of 2 (100%, green); cumulative 3 of 4 = 75%, red."""
    terms = ServiceRagTerms(clause="Schedule 2")
    checks = [
        OutcomeCheck("A", "Q1", True, True),
        OutcomeCheck("B", "Q1", False, True),
        OutcomeCheck("A", "Q2", True, True),
        OutcomeCheck("B", "Q2", True, True),
    ]
    last = rate_service(terms, checks, ["Q1", "Q2"]).latest
    assert (last.rag, last.cumulative_percent, last.cumulative_rag) == ("green", 75.0, "red")


def test_seed_003_withholds_5_percent_for_a_red_year(services):
    """One Psychology Year 1 (Jul 2018 to Jun 2019) is over. HLO-4 (Ofsted "Good or outstanding") is
    the one outcome with a target: Good, Requires improvement, Good, Requires improvement across
    2018/19 Q2 to 2019/20 Q1 is 2 of 4 achieved = 50% cumulative, below 80%: red, so 5% of the
    annual payment is withheld. With an ACV of £1,000,000 that is £50,000."""
    from kpibot.features.payments import payment_report

    submit(
        services,
        "one-psychology",
        [
            ("HLO-4", "2018/19 Q2", 3.0),
            ("HLO-4", "2018/19 Q3", 2.0),
            ("HLO-4", "2018/19 Q4", 3.0),
            ("HLO-4", "2019/20 Q1", 2.0),
        ],
    )
    report = payment_report(services, with_acv(services.contract("one-psychology")), 1)
    (line,) = report.lines
    assert line.status == "withheld" and report.amount(line.share) == "£50,000"
    assert "Graded red: 50% of outcomes achieved (cumulative to 2019/20 Q1)." in line.reason
    assert report.verdict() == (
        "£50,000 withheld under Schedule 2: graded red: 50% of outcomes achieved "
        "(cumulative to 2019/20 Q1)"
    )


def test_seed_003_an_amber_year_keeps_the_5_percent_and_a_red_current_year_puts_it_at_risk(
    services,
):
    from kpibot.features.payments import payment_report

    submit(services, "one-psychology", [("HLO-4", "2019/20 Q2", 2.0)])
    current = payment_report(services, services.contract("one-psychology"))
    assert current.year == 2 and current.lines[0].status == "at_risk"
    assert current.verdict().startswith(
        "5% of ACV at risk of withholding under Schedule 2: graded red"
    )
    submit(
        services,
        "one-psychology",
        [
            ("HLO-4", f"{label}", 4.0)
            for label in ("2018/19 Q2", "2018/19 Q3", "2018/19 Q4", "2019/20 Q1")
        ],
    )
    done = payment_report(services, services.contract("one-psychology"), 1)
    assert done.lines[0].status == "earned" and "Not withheld: graded green" in done.lines[0].reason


# ------------------------------------------------------------------ bad payment terms


def _check(name, old, new, count=1):
    path = CONTRACTS / name
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= count, old
    with pytest.raises(ContractFilesInvalid) as info:
        parse_contract_text(text.replace(old, new, count), str(path))
    return str(info.value)


@pytest.mark.parametrize("acv", ["0", "-250000"])
def test_an_acv_of_zero_or_less_is_refused_at_load(acv):
    err = _check("one-psychology.yaml", "payments:\n", f"annual_contract_value: {acv}\npayments:\n")
    assert "field 'annual_contract_value'" in err and "greater than 0" in err


def test_incentive_weights_above_the_incentivised_share_are_refused():
    """12 KPIs x 0.5% = 6% of ACV, more than a 5% incentivised share."""
    err = _check(
        "healthy-child-0-19.yaml",
        "    exempt_guaranteed: true",
        "    incentivised_share: 0.05\n    exempt_guaranteed: true",
    )
    assert (
        "field 'payments'" in err
        and "add up to 6% of the contract value, more than the incentivised share of 5%" in err
    )


def test_tier_payments_above_the_incentivised_share_are_refused():
    """10 tiers x 3% = 30% of ACV, more than the 20% incentivised."""
    err = _check("one-you-lifestyle.yaml", 'payment: "+2%"', 'payment: "+3%"', count=10)
    assert (
        "payments.block_plus_incentive" in err
        and "add up to 30%" in err
        and "incentivised share of 20%" in err
    )


def test_a_tier_below_its_baseline_is_refused():
    err = _check(
        "one-you-lifestyle.yaml",
        'label: "10% Target", target: 2000',
        'label: "10% Target", target: 1700',
    )
    line = next(
        i
        for i, text in enumerate((CONTRACTS / "one-you-lifestyle.yaml").read_text().splitlines(), 1)
        if 'programme: "Physical Activity"' in text
    )
    assert (
        f"one-you-lifestyle.yaml, line {line}, field 'payments.block_plus_incentive.programmes[0]'"
        in err
    )
    assert "Physical Activity: tier '10% Target' (1700) is below the baseline target (1800)" in err


def test_an_unknown_programme_kpi_is_refused():
    err = _check("one-you-lifestyle.yaml", 'kpi: "WM-1"', 'kpi: "WM-99"')
    assert "field 'payments'" in err
    assert (
        "block_plus_incentive.programmes[1] (Weight Management).kpi names KPI 'WM-99', which this contract does not define"
        in err
    )


def test_an_unknown_incentive_kpi_and_a_bad_tier_payment_are_refused():
    assert "per_kpi_incentive.kpis names KPI '9z'" in _check(
        "healthy-child-0-19.yaml", '"6a", "6b"]', '"6a", "6b", "9z"]'
    )
    assert "is not a percentage like '+2%'" in _check(
        "one-you-lifestyle.yaml", 'payment: "+2%"', 'payment: "+two%"'
    )


def test_percentages_read_cleanly():
    assert [pct(Decimal(x)) for x in ("0.0025", "0.01", "0.2", "0.0008")] == [
        "0.25%",
        "1%",
        "20%",
        "0.08%",
    ]
