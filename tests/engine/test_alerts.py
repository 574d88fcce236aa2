"""The alert rules: which alerts a batch raises, which it clears, money, and quiet hours."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kpibot.engine.alerts import (
    Alert,
    arising,
    clearing,
    money_arising,
    quiet,
    sanction_money_arising,
)
from kpibot.engine.calendar import LONDON
from kpibot.engine.model import AlertTerms, Contract
from kpibot.engine.payments import PaymentLine, PaymentReport
from kpibot.engine.periods import parse_period
from kpibot.engine.sanctions import Event, SanctionInputs, Waiver, evaluate_sanctions
from kpibot.engine.scorecard import Scorecard, compiled
from kpibot.files.contracts import load_contract_file

DEFAULT = AlertTerms()


def card(contract: Contract, figures: dict[tuple[str, str], float]) -> pd.DataFrame:
    rows = [
        {"contract": contract.id, "kpi": k, "period": p, "value": v, "benchmark": math.nan}
        for (k, p), v in figures.items()
    ]
    return Scorecard.build(contract, pd.DataFrame(rows)).frame


def units(contract: Contract) -> dict[str, str]:
    return {code: c.unit for code, c in compiled(contract).items()}


def raised(
    contract: Contract,
    before: dict[tuple[str, str], float],
    batch: dict[tuple[str, str], float],
    terms: AlertTerms = DEFAULT,
    red_run: int = 2,
) -> list[tuple[str, str, str]]:
    after = {**before, **batch}
    found = arising(
        contract,
        card(contract, before) if before else None,
        card(contract, after),
        list(batch),
        terms,
        red_run,
        units(contract),
    )
    return [(a.kind, a.subject, a.period) for a in found]


@pytest.fixture
def trust(seed_contracts: dict[str, Contract]) -> Contract:
    return seed_contracts["childrens-trust"]  # C7: 60% target, 56% tolerance, bigger is better


@pytest.fixture
def lifestyle(seed_contracts: dict[str, Contract]) -> Contract:
    return seed_contracts["one-you-lifestyle"]  # PA-5: "Minimum average 8.5", critical below 7.0


Q2, Q3, Q4 = "2019/20 Q2", "2019/20 Q3", "2019/20 Q4"


def test_a_kpi_that_turns_red_raises_one_alert_red(trust: Contract) -> None:
    assert raised(trust, {("C7", Q2): 70}, {("C7", Q3): 40}) == [("alert_red", "C7", Q3)]
    assert raised(trust, {("C7", Q2): 70}, {("C7", Q3): 58}) == []  # amber is not red
    assert raised(trust, {}, {("C7", Q3): 40}) == [("alert_red", "C7", Q3)]  # first figure


def test_an_amendment_that_leaves_a_red_red_raises_nothing_new(trust: Contract) -> None:
    before = {("C7", Q2): 70, ("C7", Q3): 40}
    assert raised(trust, before, {("C7", Q3): 41}) == []


def test_red_for_n_periods_running_fires_when_the_run_reaches_n(trust: Contract) -> None:
    before = {("C7", Q2): 40}
    assert raised(trust, before, {("C7", Q3): 41}) == [("alert_red_run", "C7", Q3)]
    # The run goes on, but the trigger was already pulled when it reached two.
    assert raised(trust, {**before, ("C7", Q3): 41}, {("C7", Q4): 42}) == []
    # The contract's own count wins over the action-plan setting.
    three = AlertTerms.model_validate({"red_run": {"periods": 3}})
    assert raised(trust, before, {("C7", Q3): 41}, three) == []
    assert raised(trust, {**before, ("C7", Q3): 41}, {("C7", Q4): 42}, three) == [
        ("alert_red_run", "C7", Q4)
    ]


def test_a_critical_failure_breached_names_the_threshold_and_the_clause(
    lifestyle: Contract,
) -> None:
    period = "2018/19 Q4"
    after = card(lifestyle, {("PA-5", period): 6.5})
    (critical, red) = arising(
        lifestyle, None, after, [("PA-5", period)], DEFAULT, 2, units(lifestyle)
    )
    assert (critical.kind, red.kind) == ("alert_critical", "alert_red")
    assert critical.audience == ("commissioner", "channel") and red.audience == ("channel",)
    assert "“Minimum average Below 7.0”" in critical.line and "2.7.1" in critical.line
    assert "6.5 against a 8.5 target" in critical.line
    # Still critical after an amendment: nothing new.
    assert raised(lifestyle, {("PA-5", period): 6.5}, {("PA-5", period): 6.0}) == []


def test_only_a_kpis_latest_period_raises_back_filled_history_is_not_news(
    trust: Contract,
) -> None:
    before = {("C7", Q3): 70}
    assert raised(trust, before, {("C7", Q2): 10}) == []


def test_alerts_switched_off_or_sent_elsewhere_by_the_contract(trust: Contract) -> None:
    off = AlertTerms.model_validate({"red": False, "red_run": {"enabled": False}})
    assert raised(trust, {("C7", Q2): 70}, {("C7", Q3): 40}, off) == []
    assert raised(trust, {("C7", Q2): 40}, {("C7", Q3): 40}, off) == []
    elsewhere = AlertTerms.model_validate({"red": {"audience": ["provider", "commissioner"]}})
    (alert,) = arising(
        trust,
        card(trust, {("C7", Q2): 70}),
        card(trust, {("C7", Q2): 70, ("C7", Q3): 40}),
        [("C7", Q3)],
        elsewhere,
        2,
        units(trust),
    )
    assert alert.audience == ("provider", "commissioner")


def test_alert_terms_in_contract_yaml_and_old_files_load_unchanged(
    seed_contracts: dict[str, Contract],
) -> None:
    data = seed_contracts["childrens-trust"].model_dump(mode="json")
    data.pop("alerts")
    assert Contract.model_validate(data).alerts == AlertTerms()  # no alerts: section
    data["alerts"] = yaml.safe_load(
        "critical: {audience: [commissioner]}\nmoney: off\nred_run: {periods: 3}\n"
    )
    terms = Contract.model_validate(data).alerts
    assert terms.audience("critical") == ["commissioner"] and terms.audience("money") == []
    assert terms.audience("red") == ["channel"] and terms.red_run.periods == 3
    with pytest.raises(ValueError, match="audience"):
        AlertTerms.model_validate({"red": {"audience": ["everyone"]}})
    with pytest.raises(ValueError):
        AlertTerms.model_validate({"red": {"audience": []}})


def test_clearing_says_which_standing_alerts_no_longer_hold(
    trust: Contract, lifestyle: Contract
) -> None:
    after = card(trust, {("C7", Q2): 70, ("C7", Q3): 58})
    standing = [("alert_red", "C7", Q3), ("alert_red_run", "C7", Q3)]
    follow = clearing(trust, after, standing, units(trust))
    assert [(a.kind, a.follows, a.subject) for a in follow] == [
        ("alert_clear", "alert_red", "C7"),
        ("alert_clear", "alert_red_run", "C7"),
    ]
    assert all(a.key[0] in ("alert_red", "alert_red_run") for a in follow)
    assert "now amber" in follow[0].line
    still = card(trust, {("C7", Q3): 41})
    assert clearing(trust, still, standing, units(trust)) == []
    period = "2018/19 Q4"
    better = card(lifestyle, {("PA-5", period): 7.5})  # red (below 8.5), no longer critical
    (cleared,) = clearing(lifestyle, better, [("alert_critical", "PA-5", period)], units(lifestyle))
    assert "no longer a critical failure" in cleared.line
    assert clearing(lifestyle, better, [("alert_red", "PA-5", period)], units(lifestyle)) == []


def _report(*lines: PaymentLine) -> PaymentReport:
    return PaymentReport(
        "c",
        "C",
        3,
        "Year 3+",
        12,
        1,
        False,
        Decimal(1_000_000),
        "GBP",
        tuple(lines),  # type: ignore[arg-type]
    )


def _line(status: str, cause: str = "", item: str = "1a Breastfeeding") -> PaymentLine:
    return PaymentLine(
        "per_kpi_incentive",
        "1a",
        item,
        status,
        Decimal("0.005"),
        "why",
        cause,  # type: ignore[arg-type]
    )


def test_money_alerts_only_for_lines_the_figures_put_at_risk_or_withheld() -> None:
    waiting = _report(_line("at_risk", "no figure yet"))
    below = _report(_line("at_risk", "below target"))
    met = _report(_line("on_track"))
    lost = _report(_line("not_earned", "below target"))
    assert money_arising(None, waiting, DEFAULT) == []  # no figure yet is not news
    (alert,) = money_arising(waiting, below, DEFAULT)
    assert alert.kind == "alert_money" and alert.period == "Year 3+"
    assert alert.line == "1a Breastfeeding: £5,000 at risk (below target)"
    assert alert.audience == ("commissioner",)
    assert money_arising(below, below, DEFAULT) == []  # still at risk: said already
    assert money_arising(met, below, DEFAULT) != []
    assert [a.subject for a in money_arising(below, lost, DEFAULT)] == [
        "not_earned:1a Breastfeeding"
    ]
    assert money_arising(waiting, below, AlertTerms.model_validate({"money": False})) == []


# ------------------------------------------------------------------ sanctions: money alerts

HOSPITAL = Path(__file__).resolve().parents[1] / "fixtures" / "contracts" / "acute-hospital.yaml"


def _handover(ref: str, minutes: float, day: int = 2) -> Event:
    return Event("handover-delay", datetime(2015, 11, day, 10, tzinfo=LONDON), ref, value=minutes)


def _november(contract: Contract, *events: Event, waivers: tuple[Waiver, ...] = ()):
    inputs = SanctionInputs(tuple(events), waivers=waivers)
    as_of = datetime(2016, 1, 1, tzinfo=LONDON)
    return evaluate_sanctions(contract, [parse_period("2015-11")], inputs, as_of).months[0]


def test_a_new_or_larger_sanctions_deduction_is_money_news_once() -> None:
    """Hospital fixture, invented handovers: HO-1 45 minutes is over 30 (£200); HO-2 61 minutes
    is over 60 (£1,000): £200 + £1,000 = £1,200. A third, HO-3 at 90 minutes, adds £1,000:
    £2,200, up from £1,200. Seeing the same month again says nothing."""
    hospital = load_contract_file(HOSPITAL)
    empty = _november(hospital)
    two = _november(hospital, _handover("HO-1", 45), _handover("HO-2", 61))
    (alert,) = sanction_money_arising(empty, two, DEFAULT)
    assert (alert.kind, alert.period, alert.audience) == (
        "alert_money",
        "2015-11",
        ("commissioner",),
    )
    assert alert.subject == "sanction:handover-delay:120000"
    assert alert.line.startswith(
        "2015-11 · handover-delay: £1,200 deducted (Schedule 4 (ambulance handover)): "
        "1 × £200 + 1 × £1,000 = £1,200"
    )
    assert sanction_money_arising(two, two, DEFAULT) == []  # recomputed: no news
    three = _november(hospital, _handover("HO-1", 45), _handover("HO-2", 61), _handover("HO-3", 90))
    (more,) = sanction_money_arising(two, three, DEFAULT)
    assert more.subject == "sanction:handover-delay:220000"
    assert "£2,200 deducted, up from £1,200" in more.line
    assert sanction_money_arising(three, two, DEFAULT) == []  # smaller is not news
    assert sanction_money_arising(empty, two, AlertTerms.model_validate({"money": False})) == []


def test_a_waived_deduction_raises_no_money_alert() -> None:
    """HO-3 (90 minutes, £1,000) is waived before anyone hears of it: nothing deducted, no alert;
    and waiving HO-2 from £1,200 leaves £200, a smaller deduction, which is not news either."""
    hospital = load_contract_file(HOSPITAL)
    waived = Waiver(
        "HO-3", "major incident declared", "Casey", datetime(2015, 12, 1, tzinfo=LONDON)
    )
    alone = _november(hospital, _handover("HO-3", 90), waivers=(waived,))
    assert alone.deductions().gbp == 0
    assert sanction_money_arising(_november(hospital), alone, DEFAULT) == []
    two = _november(hospital, _handover("HO-1", 45), _handover("HO-2", 61))
    less = Waiver("HO-2", "ambulance fault", "Casey", datetime(2015, 12, 1, tzinfo=LONDON))
    cut = _november(hospital, _handover("HO-1", 45), _handover("HO-2", 61), waivers=(less,))
    assert cut.deductions().gbp == Decimal(-200)
    assert sanction_money_arising(two, cut, DEFAULT) == []


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        (datetime(2020, 1, 6, 12, 0), datetime(2020, 1, 6, 12, 0)),
        (datetime(2020, 1, 6, 8, 0), datetime(2020, 1, 6, 8, 0)),
        (datetime(2020, 1, 6, 7, 59), datetime(2020, 1, 6, 8, 0)),
        (datetime(2020, 1, 6, 18, 0), datetime(2020, 1, 7, 8, 0)),
        (datetime(2020, 1, 6, 23, 30), datetime(2020, 1, 7, 8, 0)),
        # Across the spring clock change: 08:00 is 08:00 London time (BST) on the Sunday.
        (datetime(2020, 3, 28, 22, 0), datetime(2020, 3, 29, 8, 0)),
    ],
)
def test_quiet_hours_move_a_dm_to_08_00_london(local: datetime, expected: datetime) -> None:
    moved = quiet(local.replace(tzinfo=LONDON))
    assert moved.astimezone(LONDON).replace(tzinfo=None) == expected


def test_an_alert_key_is_kind_subject_and_period_and_a_follow_up_keys_as_its_original() -> None:
    alert = Alert("alert_red", "C7", Q3, "line")
    follow = Alert("alert_clear", "C7", Q3, "line", follows="alert_red")
    assert alert.key == follow.key == ("alert_red", "C7", Q3)
