"""Payments tied to a group rule ("Number of standards to be met: 3 of 4"), worked by hand.

The contract, its figures and its money are invented for the tests: an ACV of £1,000,000, four
quality standards (each met at 90% or more) of which 3 must be met, a 1% bonus per quarter when
they are, and 2% of the year's payment withheld when they are not, judged at the year's end.
"""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal

import pandas as pd
import pytest

from kpibot.engine.alerts import money_arising
from kpibot.engine.groups import group_verdicts
from kpibot.engine.model import AlertTerms, Contract
from kpibot.engine.payments import evaluate_payments, explain_payments, group_evidence
from kpibot.engine.scorecard import Scorecard
from kpibot.files.contracts import ContractFilesInvalid, parse_contract_text

GROUPED = """\
id: grouped
name: Grouped
commissioner: {name: C}
provider: {name: P}
annual_contract_value: 1000000
contract_years: [{year: 1, start: 2019-04-01, end: 2020-03-31}]
kpis:
  - {code: S1, name: Standard one, unit: percent, target: "90%"}
  - {code: S2, name: Standard two, unit: percent, target: "90%"}
  - {code: S3, name: Standard three, unit: percent, target: "90%"}
  - {code: S4, name: Standard four, unit: percent, target: "90%"}
groups:
  - {name: Quality standards, kpis: [S1, S2, S3, S4], rule: "3 of 4", clause: "Schedule 5"}
payments:
  group_payments:
    - {id: quality-bonus, clause: "Schedule 6, 2.1", group: Quality standards, share_of_acv: "1%", per: period}
    - {id: quality-withholding, clause: "Schedule 6, 2.2", group: quality standards, share_of_acv: "2%", kind: withholding}
"""
Q1, Q2, Q3, Q4 = "2019/20 Q1", "2019/20 Q2", "2019/20 Q3", "2019/20 Q4"
MID_YEAR = date(2020, 1, 20)
AFTER = date(2020, 6, 1)


@pytest.fixture(scope="module")
def grouped() -> Contract:
    return parse_contract_text(GROUPED, "grouped.yaml")


def frame(contract: Contract, figures: dict[tuple[str, str], float]) -> pd.DataFrame:
    rows = [
        {"contract": contract.id, "kpi": k, "period": p, "value": v, "benchmark": math.nan}
        for (k, p), v in figures.items()
    ]
    return Scorecard.build(contract, pd.DataFrame(rows)).frame


def report(contract: Contract, figures: dict[tuple[str, str], float], today: date = MID_YEAR):
    card = frame(contract, figures)
    year = contract.contract_years[0]
    return evaluate_payments(contract, year, today, groups=group_evidence(contract, card, year))


def lines(rep) -> dict[str, tuple[str, Decimal, str]]:
    return {ln.item: (ln.status, ln.share, ln.cause) for ln in rep.lines}


# Q1: S1-S3 met, S4 80% → 3 of 4 met: performed.
# Q2: S1 met; S2, S3 at 80%; S4 no figure → 1 met + 1 to come < 3: not performed.
# Q3: S1, S2 met; S3 at 80%; S4 no figure → 2 met + 1 to come = 3: pending, one already missed.
# Q4: no figures → pending, nothing missed yet.
YEAR_SO_FAR = {
    ("S1", Q1): 95, ("S2", Q1): 91, ("S3", Q1): 90, ("S4", Q1): 80,
    ("S1", Q2): 95, ("S2", Q2): 80, ("S3", Q2): 80,
    ("S1", Q3): 95, ("S2", Q3): 92, ("S3", Q3): 80,
}  # fmt: skip


def test_each_quarters_bonus_follows_the_groups_verdict_for_that_quarter(grouped):
    rep = report(grouped, YEAR_SO_FAR)
    one = Decimal("0.01")  # 1% of £1,000,000 = £10,000 a quarter
    got = lines(rep)
    assert got["Quality standards (quality-bonus), 2019/20 Q1"] == ("earned", one, "")
    assert got["Quality standards (quality-bonus), 2019/20 Q2"] == (
        "not_earned",
        one,
        "Quality standards not performed",
    )
    assert got["Quality standards (quality-bonus), 2019/20 Q3"] == (
        "at_risk",
        one,
        "pending: 2 of 3 needed met, 1 without a figure",
    )
    assert got["Quality standards (quality-bonus), 2019/20 Q4"] == ("at_risk", one, "no figure yet")
    assert rep.amount(rep.total("earned")) == "£10,000"
    q1 = next(ln for ln in rep.lines if ln.item.endswith(Q1))
    assert q1.reason.startswith(
        "Schedule 6, 2.1: 1% of ACV earned when Quality standards is performed. "
        "Quality standards (Schedule 5): performed (3 of 4 met; the rule is 3 of 4"
    )


def test_the_verdicts_are_group_verdicts_not_worked_out_again(grouped):
    card = frame(grouped, YEAR_SO_FAR)
    evidence = group_evidence(grouped, card, grouped.contract_years[0])
    for label, verdict in evidence["Quality standards"]:
        (expected,) = group_verdicts(grouped, card[card["period"] == label])
        assert verdict == expected


def test_the_years_withholding_is_at_risk_while_pending_then_withheld_or_not(grouped):
    """2% of £1,000,000 = £20,000, judged at Q4."""
    rep = report(grouped, YEAR_SO_FAR)
    (withhold,) = [ln for ln in rep.lines if ln.scheme == "group_withholding"]
    assert (withhold.status, withhold.cause) == (
        "at_risk",
        "pending: 2 of 3 needed met, 1 without a figure",
    )
    assert "£20,000 at risk of withholding under Quality standards" in rep.verdict()
    # Q4: S1 met, S2-S4 at 80% → 1 of 4: not performed, and the year is over: withheld.
    bad = {**YEAR_SO_FAR, ("S1", Q4): 95, ("S2", Q4): 80, ("S3", Q4): 80, ("S4", Q4): 80}
    (withheld,) = [
        ln for ln in report(grouped, bad, AFTER).lines if ln.scheme == "group_withholding"
    ]
    assert (withheld.status, withheld.share) == ("withheld", Decimal("0.02"))
    # Q4: S1-S3 met → performed: nothing withheld.
    good = {**YEAR_SO_FAR, ("S1", Q4): 95, ("S2", Q4): 95, ("S3", Q4): 95}
    (kept,) = [ln for ln in report(grouped, good, AFTER).lines if ln.scheme == "group_withholding"]
    assert kept.status == "earned" and kept.reason.endswith(
        "Judged at 2019/20 Q4: Quality standards (Schedule 5): performed (3 of 4 met; the rule "
        "is 3 of 4; 1 without a figure)."
    )


def test_a_figure_within_tolerance_does_not_count_as_met(grouped):
    tolerant = parse_contract_text(
        GROUPED.replace('{code: S3, name: Standard three, unit: percent, target: "90%"}',
                        '{code: S3, name: Standard three, unit: percent, target: "90%", tolerance: "85%"}'),
        "grouped.yaml",
    )  # fmt: skip
    got = lines(report(tolerant, {**YEAR_SO_FAR, ("S3", Q1): 87}))
    assert got["Quality standards (quality-bonus), 2019/20 Q1"][0] == "not_earned"  # 2 of 4


def test_a_group_payment_newly_lost_is_money_news(grouped):
    """Q2 goes from 'no figure yet' (not news) to not performed (news), once."""
    q1_only = {k: v for k, v in YEAR_SO_FAR.items() if k[1] == Q1}
    before = report(grouped, q1_only)
    after = report(grouped, YEAR_SO_FAR)
    found = money_arising(before, after, AlertTerms())
    assert [a.line for a in found] == [
        "Quality standards (quality-bonus), 2019/20 Q2: £10,000 not earned "
        "(Quality standards not performed)",
        "Quality standards (quality-bonus), 2019/20 Q3: £10,000 at risk "
        "(pending: 2 of 3 needed met, 1 without a figure)",
        "Quality standards (quality-withholding), Year 1: £20,000 at risk "
        "(pending: 2 of 3 needed met, 1 without a figure)",
    ]
    assert money_arising(after, after, AlertTerms()) == []


def test_explain_says_what_the_group_payment_pays(grouped):
    text = "\n".join(explain_payments(grouped))
    assert (
        "Group payment quality-bonus (Schedule 6, 2.1): 1% of ACV for each reporting period, "
        "earned when Quality standards is performed, judged at that period; at risk while the "
        "group is pending. Quality standards is performed when 3 of 4 of S1, S2, S3, S4 meet "
        "their targets (a KPI within tolerance does not); not performed, the payment is not "
        "earned." in text
    )
    assert "withheld when Quality standards is not performed" in text


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (
            ('group: Quality standards, share_of_acv: "1%"', 'group: Quality, share_of_acv: "1%"'),
            "payments.group_payments[0].group",
            "group payment 'quality-bonus' names group 'Quality', which is not one of this "
            "contract's groups: 'Quality standards'",
        ),
        (
            ("id: quality-withholding", "id: quality-bonus"),
            "payments.group_payments[1].id",
            "group payment id 'quality-bonus' is used twice",
        ),
        (
            ('share_of_acv: "2%"', 'share_of_acv: "120%"'),
            "payments.group_payments[1].share_of_acv",
            "less than or equal to 1",
        ),
    ],
)
def test_a_bad_group_payment_is_refused_naming_the_field(change, field, reason):
    with pytest.raises(ContractFilesInvalid) as caught:
        parse_contract_text(GROUPED.replace(*change), "grouped.yaml")
    (error,) = caught.value.errors
    assert (error.path, error.field) == ("grouped.yaml", field)
    assert error.line == (16 if "[0]" in field else 17)  # the payment's own line
    assert reason in error.reason
