"""Sanctions worked through by hand: sums per event (tiers, per person, tolerance as a share
allowed to breach, rates varied from a date), penalty points (repeats, rectification, graded
levels, bands above a floor, rolling termination totals), service credits with caps, incentives
needing two conditions, suspensions, waivers, earn-back, and the plain-English explanation.

Every figure marked "invented" is made up for the test; the two fixture contracts say which of
their sums come from public sources (tests/fixtures/contracts/*.yaml).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpibot.engine.model import Contract
from kpibot.engine.periods import parse_period
from kpibot.engine.sanctions import (
    Amount,
    Event,
    MonthFigure,
    SanctionInputs,
    Waiver,
    deadlines,
    evaluate_sanctions,
    event_kinds,
    explain_sanctions,
    missed_rectifications,
)
from kpibot.files.contracts import ContractFilesInvalid, load_contract_file, parse_contract_text

LONDON = ZoneInfo("Europe/London")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "contracts"
LATER = datetime(2021, 1, 1, tzinfo=LONDON)


@pytest.fixture(scope="module")
def hospital() -> Contract:
    return load_contract_file(FIXTURES / "acute-hospital.yaml")


@pytest.fixture(scope="module")
def waste() -> Contract:
    return load_contract_file(FIXTURES / "waste-collection.yaml")


def at(day: str, clock: str = "09:00") -> datetime:
    return datetime.fromisoformat(f"{day} {clock}").replace(tzinfo=LONDON)


def ev(kind: str, day: str, ref: str, **kw: object) -> Event:
    return Event(kind, at(day, str(kw.pop("clock", "09:00"))), ref, **kw)  # type: ignore[arg-type]


def fig(kpi: str, month: str, value: float | None = None, **kw: object) -> dict:
    return {(kpi.lower(), month): MonthFigure(kpi, month, value, **kw)}  # type: ignore[arg-type]


def month(contract: Contract, label: str, inputs: SanctionInputs, as_of: datetime = LATER):
    return evaluate_sanctions(contract, [parse_period(label)], inputs, as_of).months[0]


def charged(ledger, rule: str) -> Decimal:
    return sum((ln.amount.gbp for ln in ledger.lines if ln.rule == rule and ln.counts), Decimal(0))


# ------------------------------------------------------------------ sums per event


def test_handover_tiers_reproduce_the_reported_wolverhampton_month(hospital):
    """Express & Star (28 June 2017): "69 patients waiting between 30 and 60 minutes at a cost of
    £200 per patient and two patients waiting for more than an hour at a cost of £1,000 per
    patient": 69 × £200 + 2 × £1,000 = £13,800 + £2,000 = £15,800, the fine it reported.
    The minutes of each wait are invented within the reported bands (31-59 and 61+)."""
    events = [ev("handover-delay", "2015-11-02", f"HO-{i}", value=31 + i % 29) for i in range(69)]
    events += [
        ev("handover-delay", "2015-11-03", "HO-L1", value=61),
        ev("handover-delay", "2015-11-04", "HO-L2", value=125),
    ]
    nov = month(hospital, "2015-11", SanctionInputs(tuple(events)))
    assert charged(nov, "handover-delay") == Decimal(-15800)
    line = next(ln for ln in nov.lines if ln.rule == "handover-delay")
    assert line.note.startswith("69 × £200 + 2 × £1,000 = £15,800, per event")
    assert len(line.events) == 71
    assert nov.verdict().startswith("2015-11: £15,800 off the payment (handover-delay £15,800)")


def test_a_wait_of_exactly_30_minutes_is_not_over_the_threshold(hospital):
    """Tiers are "over 30" and "over 60": 30 minutes exactly charges nothing, 60 exactly is £200."""
    events = (
        ev("handover-delay", "2015-11-02", "A", value=30),
        ev("handover-delay", "2015-11-02", "B", value=60),
        ev("handover-delay", "2015-11-02", "C", value=60.5),
    )
    nov = month(hospital, "2015-11", SanctionInputs(events))
    # B: £200; C: £1,000; A: nothing.
    assert charged(nov, "handover-delay") == Decimal(-1200)
    info = next(ln for ln in nov.lines if ln.status == "info" and ln.rule == "handover-delay")
    assert info.events == ("A",) and "not over the lowest tier (30)" in info.note


def test_a_figure_that_counts_events_is_charged_per_event(hospital):
    """RTT52 is "3 patients over 52 weeks" at the end of November: 3 × £5,000 = £15,000."""
    nov = month(hospital, "2015-11", SanctionInputs(figures=fig("RTT52", "2015-11", 3)))
    assert charged(nov, "over-52-weeks") == Decimal(-15000)
    line = next(ln for ln in nov.lines if ln.rule == "over-52-weeks")
    assert line.events == ("RTT52 2015-11: 3",)
    assert line.note.startswith("3 × £5,000 = £15,000")
    assert line.item == "over-52-weeks:2015-11"


def test_tolerance_is_a_share_allowed_to_breach_and_the_rate_changes_from_its_date_only(hospital):
    """RTT18 (invented figures): 2,150 of 25,000 waiting over 18 weeks. The 92% standard lets 8%
    breach: 8% × 25,000 = 2,000 uncharged, so 2,150 − 2,000 = 150 are charged.
    September 2015 (before the 1 October 2015 variation): 150 × £150 = £22,500.
    November 2015 (after it): 150 × £300 = £45,000."""
    figures = {**fig("RTT18", "2015-09", 8.6, numerator=2150, denominator=25000)}
    figures |= fig("RTT18", "2015-11", 8.6, numerator=2150, denominator=25000)
    both = evaluate_sanctions(
        hospital,
        [parse_period("2015-09"), parse_period("2015-10"), parse_period("2015-11")],
        SanctionInputs(figures=figures),
        LATER,
    ).months
    sep, oct_, nov = both
    assert charged(sep, "rtt-incomplete") == Decimal(-22500)
    assert charged(nov, "rtt-incomplete") == Decimal(-45000)
    assert charged(oct_, "rtt-incomplete") == 0  # no figure, nothing guessed
    sep_line = next(ln for ln in sep.lines if ln.rule == "rtt-incomplete")
    nov_line = next(ln for ln in nov.lines if ln.rule == "rtt-incomplete")
    assert "150 × £150 = £22,500 (rate: Schedule 4 (RTT incomplete pathways, 92%))" in sep_line.note
    assert (
        "150 × £300 = £45,000 (rate: Contract variation, August 2015, from 1 Oct 2015)"
        in nov_line.note
    )
    assert "8% of 25,000 = 2,000 not charged" in nov_line.note


def test_within_the_tolerance_nothing_is_charged(hospital):
    """1,999 of 25,000 over 18 weeks is under the 2,000 allowed: £0, and the line says why."""
    nov = month(
        hospital,
        "2015-11",
        SanctionInputs(figures=fig("RTT18", "2015-11", 8.0, numerator=1999, denominator=25000)),
    )
    assert charged(nov, "rtt-incomplete") == 0
    line = next(ln for ln in nov.lines if ln.rule == "rtt-incomplete")
    assert line.status == "info" and "0 × £300" in line.note


def test_event_rates_follow_each_event_date_across_a_variation():
    """An invented flat sum of £100 per breach, £250 from 15 Nov 2019 (Variation 2): events on
    14 and 15 November: £100 + £250 = £350; each rate named with its source."""
    contract = _contract(
        {
            "per_event": [
                {
                    "id": "breach",
                    "clause": "Sch 5",
                    "event": "breach",
                    "amount_gbp": 100,
                    "variations": [
                        {"effective": "2019-11-15", "reference": "Variation 2", "amount_gbp": 250}
                    ],
                }
            ]
        }
    )
    nov = month(
        contract,
        "2019-11",
        SanctionInputs((ev("breach", "2019-11-14", "B1"), ev("breach", "2019-11-15", "B2"))),
    )
    assert charged(nov, "breach") == Decimal(-350)
    note = next(ln.note for ln in nov.lines if ln.rule == "breach")
    assert note.startswith("1 × £100 (Sch 5) + 1 × £250 (Variation 2, from 15 Nov 2019) = £350")


def test_a_sum_per_person_affected():
    """An invented £50 per person affected: one incident affecting 12 people and one affecting 1:
    12 × £50 + 1 × £50 = 13 × £50 = £650."""
    contract = _contract(
        {
            "per_event": [
                {
                    "id": "breach",
                    "clause": "Sch 5",
                    "event": "breach",
                    "amount_gbp": 50,
                    "per": "person",
                }
            ]
        }
    )
    events = (ev("breach", "2019-11-04", "I1", affected=12), ev("breach", "2019-11-05", "I2"))
    nov = month(contract, "2019-11", SanctionInputs(events))
    assert charged(nov, "breach") == Decimal(-650)
    assert next(ln.note for ln in nov.lines if ln.rule == "breach").startswith("13 × £50 = £650")


# ------------------------------------------------------------------ penalty points (waste fixture)


def _november(waste_events=(), **figures):
    figs: dict = {}
    for key, value in figures.items():
        figs |= fig(key.split("_")[0].upper(), key.split("_", 1)[1].replace("_", "-"), value)
    return SanctionInputs(tuple(waste_events), figs)


def test_points_repeats_rectification_graded_bands_and_deduction(waste):
    """A month of invented events on the waste fixture (1 point a household, 1 working day to put
    a missed collection right, ×2 for the 2nd and ×3 for the 3rd miss at the same property within
    28 days; monthly charge £2,400,000 / 12 = £200,000):

    * 27 single-household misses on Mon 4 Nov, all put right on Tue 5 Nov: 27 × 1 = 27
    * a communal point for 12 households missed Wed 6 Nov: 12 × 1 = 12; put right only on
      Sat 9 Nov, so charged again at the end of Thu 7 and Fri 8 Nov: 2 × 12 = 24
    * UPRN-001 missed again on 11 Nov (2nd in 28 days: 1 × 2 = 2, put right on the 12th) and on
      18 Nov (3rd: 1 × 3 = 3), never put right: charged again at the end of each working day
      19, 20, 21, 22, 25, 26, 27, 28, 29 Nov: 9 × 1 = 9
    * a spillage on 20 Nov not cleared within 24 hours: 10
    * collections on the scheduled day 99.2%, worse than the 99.5% standard: 20

    Failures 27 + 12 + 2 + 3 = 44; recharges 24 + 9 = 33; spillage 10; graded 20: 107 points.
    Over the floor of 100, in band 1 (101–250): 1% × £200,000 = £2,000 deducted."""
    events = [
        ev(
            "missed-collection",
            "2019-11-04",
            f"UPRN-{i:03d}",
            rectified_at=at("2019-11-05", "12:00"),
        )
        for i in range(1, 28)
    ]
    events += [
        ev(
            "missed-collection",
            "2019-11-06",
            "COMMUNAL-7",
            affected=12,
            rectified_at=at("2019-11-09"),
        ),
        ev("missed-collection", "2019-11-11", "UPRN-001", rectified_at=at("2019-11-12")),
        ev("missed-collection", "2019-11-18", "UPRN-001"),
        ev("spillage-not-cleared", "2019-11-20", "SP-1", clock="08:00"),
    ]
    nov = month(waste, "2019-11", _november(events, w1_2019_11=99.2))
    lines = {(ln.rule, ln.note.split(":")[0]): ln for ln in nov.lines}
    failures = next(
        ln for ln in nov.lines if ln.rule == "missed-collection" and "rectification" not in ln.note
    )
    again = next(
        ln for ln in nov.lines if ln.rule == "missed-collection" and "rectification" in ln.note
    )
    assert failures.points == 44
    assert failures.note.startswith(
        "30 failures (41 people or households affected): 39 × 1 pt + 1 × 2 pt + 1 × 3 pt = 44 points"
    )
    assert "UPRN-001 (2nd in the window, ×2), UPRN-001 (3rd in the window, ×3)" in failures.note
    assert again.points == 33 and again.events == ("COMMUNAL-7", "UPRN-001")
    assert "charged at the end of 11 rectification periods" in again.note
    assert next(ln for ln in nov.lines if ln.rule == "spillage-not-cleared").points == 10
    assert next(ln for ln in nov.lines if ln.rule == "scheduled-day").points == 20
    assert nov.points == 107
    assert charged(nov, "points") == Decimal(-2000)
    assert nov.band == "band 1 (101-250 points)"
    deduction = next(ln for ln in nov.lines if ln.rule == "points")
    assert (
        "107 points is in the band 1 (101-250 points): 1% of the monthly charge (1% × £200,000 = £2,000)"
        in deduction.note
    )
    assert lines  # every line carries a note
    # December: UPRN-001's last three recharges (2, 3, 4 Dec) reach the 12-recharge limit.
    dec = month(waste, "2019-12", _november(events))
    assert next(ln for ln in dec.lines if ln.rule == "missed-collection").points == 3


def test_rectification_periods_end_at_the_end_of_the_working_day(waste):
    """1 working day from Fri 20 Dec 2019: Mon 23 Dec, end of day; then Tue 24, Fri 27 (the 25th
    and 26th are bank holidays)."""
    failure = waste.payments.penalty_points.failures[0]
    due = deadlines(failure, ev("missed-collection", "2019-12-20", "X"))
    assert [d.date().isoformat() for d in due[:3]] == ["2019-12-23", "2019-12-24", "2019-12-27"]
    assert due[0].hour == 23 and due[0].minute == 59
    # Put right at 23:59 on the 23rd: in time, so no recharge and no alert.
    fixed = ev("missed-collection", "2019-12-20", "X", rectified_at=at("2019-12-23", "23:59"))
    assert missed_rectifications(waste, [fixed], at("2019-12-01"), at("2020-01-31")) == []
    late = ev("missed-collection", "2019-12-20", "X", rectified_at=at("2019-12-24", "08:00"))
    found = missed_rectifications(waste, [late], at("2019-12-01"), at("2020-01-31"))
    assert [(e.reference, d.date().isoformat()) for e, _f, d in found] == [("X", "2019-12-23")]


def test_recharges_wait_until_the_period_has_run_out(waste):
    """Drawn up at noon on Tue 19 Nov, the miss of Mon 18 Nov is still within its period: its
    1 point counts, no recharge yet. At 09:00 on Wed 20 Nov the period (end of the 19th) has
    run out: 1 + 1 = 2 points."""
    events = (ev("missed-collection", "2019-11-18", "UPRN-9"),)
    assert month(waste, "2019-11", _november(events), at("2019-11-19", "12:00")).points == 1
    assert month(waste, "2019-11", _november(events), at("2019-11-20", "09:00")).points == 2


def test_bedding_in_suspends_charges_and_says_so(waste):
    """The fixture's bedding-in runs 3 months from 1 April 2019 (invented). An upheld Ombudsman
    complaint (500 points, bridgendcounty.org) on 20 June is shown but suspended: 0 points, no
    deduction. The same on 20 August: 500 points, band 2 (251–500): 2.5% × £200,000 = £5,000."""
    june = month(waste, "2019-06", _november([ev("ombudsman-upheld", "2019-06-20", "PSOW-1")]))
    line = next(ln for ln in june.lines if ln.rule == "ombudsman-upheld")
    assert line.status == "suspended" and line.points == 500
    assert "suspended: bedding-in period 1 Apr 2019 to 30 Jun 2019" in line.note
    assert june.points == 0 and charged(june, "points") == 0
    august = month(waste, "2019-08", _november([ev("ombudsman-upheld", "2019-08-20", "PSOW-2")]))
    assert august.points == 500 and charged(august, "points") == Decimal(-5000)


def test_rolling_totals_against_termination_thresholds(waste):
    """Invented: an upheld Ombudsman complaint (500 points) in each of Jul, Aug and Sep 2019 and
    a 4th in Nov: rolling 6 months to November = 4 × 500 = 2,000 of 1,500 (133%, reached); the
    12 months to November: 2,000 of 2,500 = 80%, past the 75% warning."""
    events = [ev("ombudsman-upheld", f"2019-{m:02d}-15", f"PSOW-{m}") for m in (7, 8, 9, 11)]
    nov = month(waste, "2019-11", _november(events))
    six, twelve = nov.rolling
    assert (six.months, six.points, six.threshold) == (6, 2000, 1500)
    assert round(twelve.percent) == 80
    assert "the termination right is reached" in six.text()
    assert "rolling 12-month points 2,000 of the 2,500" in nov.verdict()


def test_points_bands_in_pounds_per_point_above_the_floor():
    """Invented bands: nothing up to 50 points, £10 a point from 51 to 100, £25 a point above.
    130 points: (100 − 50) × £10 + (130 − 100) × £25 = £500 + £750 = £1,250."""
    contract = _contract(
        {
            "penalty_points": {
                "clause": "Sch 3",
                "failures": [{"event": "fault", "points": 130}],
                "floor": 50,
                "bands": [{"over": 50, "gbp_per_point": 10}, {"over": 100, "gbp_per_point": 25}],
            }
        }
    )
    nov = month(contract, "2019-11", SanctionInputs((ev("fault", "2019-11-04", "F1"),)))
    assert charged(nov, "points") == Decimal(-1250)
    assert "50 × £10 + 30 × £25 = £1,250" in next(
        ln.note for ln in nov.lines if ln.rule == "points"
    )


def test_points_rate_varied_from_a_date():
    """Invented: 5 points a fault, 8 from 1 Dec 2019 (Variation 4). Faults on 30 Nov and 1 Dec
    fall in different months: 5 in November, 8 in December."""
    contract = _contract(
        {
            "penalty_points": {
                "clause": "Sch 3",
                "failures": [
                    {
                        "event": "fault",
                        "points": 5,
                        "variations": [
                            {"effective": "2019-12-01", "reference": "Variation 4", "points": 8}
                        ],
                    }
                ],
            }
        }
    )
    inputs = SanctionInputs((ev("fault", "2019-11-30", "F1"), ev("fault", "2019-12-01", "F2")))
    assert month(contract, "2019-11", inputs).points == 5
    assert month(contract, "2019-12", inputs).points == 8


# ------------------------------------------------------------------ service credits, incentives


def test_service_credits_graded_and_capped_per_month_and_year():
    """Invented: W2 standard 60, minimum 50; worse than 60: 2%, worse than 55: 4%, below 50: 8%
    of a £10,000 monthly charge; capped at 5% a month and 1% of the annual charge a year
    (£120,000 × 1% = £1,200).
    * April at 52 → 4% = £400. May below 50 → 8% = £800, capped at 5% = £500 (£300 not taken).
    * June at 45 → 8% = £800, capped at £500 a month, then at the £1,200 − £400 − £500 = £300
      left of the year's cap."""
    contract = _contract(
        {
            "monthly_charge_gbp": 10000,
            "service_credits": {
                "clause": "Sch 4",
                "cap_month_percent": 5,
                "cap_year_percent": 1,
                "levels": [
                    {
                        "id": "recycling",
                        "kpi": "W2",
                        "clause": "Sch 4 para 2",
                        "standard": 60,
                        "minimum": 50,
                        "bands": [
                            {"worse_than": 60, "credit_percent": 2},
                            {"worse_than": 55, "credit_percent": 4},
                        ],
                        "below_minimum": {"worse_than": 50, "credit_percent": 8},
                    }
                ],
            },
        }
    )
    figures = fig("W2", "2019-04", 52) | fig("W2", "2019-05", 49) | fig("W2", "2019-06", 45)
    months = evaluate_sanctions(
        contract,
        [parse_period(m) for m in ("2019-04", "2019-05", "2019-06")],
        SanctionInputs(figures=figures),
        LATER,
    ).months
    assert [m.total().gbp for m in months] == [Decimal(-400), Decimal(-500), Decimal(-300)]
    may_cap = next(ln for ln in months[1].lines if ln.kind == "cap")
    assert "capped at 5% of the monthly charge (£500): £300 not taken" in may_cap.note
    month_cap, year_cap = (ln for ln in months[2].lines if ln.kind == "cap")
    assert month_cap.amount.gbp == 300 and year_cap.amount.gbp == 200
    assert (
        "1% of the annual charge (£1,200 a contract year; £900 credited earlier this year)"
        in year_cap.note
    )


def test_an_incentive_needs_every_condition(waste):
    """£5,000 (invented) when W1 reaches 99.9 AND W2 reaches 62. December: W1 99.95, W2 61:
    not earned (W2 short). January: 99.95 and 63: earned."""
    figures = fig("W1", "2019-12", 99.95) | fig("W2", "2019-12", 61)
    figures |= fig("W1", "2020-01", 99.95) | fig("W2", "2020-01", 63)
    dec = month(waste, "2019-12", SanctionInputs(figures=figures))
    jan = month(waste, "2020-01", SanctionInputs(figures=figures))
    inc_dec = next(ln for ln in dec.lines if ln.rule == "reliable-and-green")
    inc_jan = next(ln for ln in jan.lines if ln.rule == "reliable-and-green")
    assert inc_dec.status == "not_earned" and "W2 61 is not at least 62" in inc_dec.note
    assert inc_jan.status == "earned" and inc_jan.amount == Amount(gbp=Decimal(5000))
    assert "£5,000 incentive earned (reliable-and-green)" in jan.verdict()


def test_earn_back_on_a_recovery_plan(waste):
    """November: 107 points as in the test above → £2,000 deducted. The recovery plan (invented):
    W1 at least 99.5 in each of the 2 following months earns back 50%: December 99.6 and January
    99.7 → 50% × £2,000 = £1,000 paid back in January. With December at 99.4 nothing comes back."""
    events = [ev("ombudsman-upheld", "2019-11-20", "PSOW-9")]  # 500 points: band 2, £5,000
    good = fig("W1", "2019-12", 99.6) | fig("W1", "2020-01", 99.7)
    jan = month(waste, "2020-01", SanctionInputs(tuple(events), good))
    back = next(ln for ln in jan.lines if ln.rule == "recovery-plan")
    assert back.status == "earned" and back.amount == Amount(gbp=Decimal(2500))  # 50% × £5,000
    assert "50% of the £5,000 deducted in 2019-11 earned back" in back.note
    bad = fig("W1", "2019-12", 99.4) | fig("W1", "2020-01", 99.7)
    jan = month(waste, "2020-01", SanctionInputs(tuple(events), bad))
    back = next(ln for ln in jan.lines if ln.rule == "recovery-plan")
    assert back.status == "not_earned" and not back.counts
    assert "2019-12: W1 99.4 is not at least 99.5" in back.note


# ------------------------------------------------------------------ waivers and suspensions


def test_a_waiver_changes_the_verdict(hospital):
    """Three invented handovers (45, 61 and 90 minutes): £200 + £1,000 + £1,000 = £2,200. The
    commissioner waives HO-3 (major incident): £1,200, and the line says who and why."""
    events = (
        ev("handover-delay", "2015-11-02", "HO-1", value=45),
        ev("handover-delay", "2015-11-03", "HO-2", value=61),
        ev("handover-delay", "2015-11-04", "HO-3", value=90),
    )
    before = month(hospital, "2015-11", SanctionInputs(events))
    waiver = Waiver("HO-3", "major incident declared", "Casey", at("2015-12-01"))
    after = month(hospital, "2015-11", SanctionInputs(events, waivers=(waiver,)))
    assert before.verdict() == "2015-11: £2,200 off the payment (handover-delay £2,200)"
    assert (
        after.verdict() == "2015-11: £1,200 off the payment (handover-delay £1,200); 1 item waived"
    )
    waived = next(ln for ln in after.lines if ln.status == "waived")
    assert waived.events == ("HO-3",) and waived.amount.gbp == Decimal(-1000)
    assert "waived by Casey on 1 Dec 2015: major incident declared" in waived.note


def test_a_rule_waived_for_a_month_and_a_suspension_by_variation():
    """Invented £100 a breach. A variation suspends the rule 10–20 Nov 2019; the breaches of the
    5th and 15th: £100 charged, £100 suspended. Waiving 'breach:2019-11' waives the rest."""
    contract = _contract(
        {
            "per_event": [
                {"id": "breach", "clause": "Sch 5", "event": "breach", "amount_gbp": 100}
            ],
            "suspensions": [
                {
                    "kind": "variation",
                    "clause": "Variation 7",
                    "start": "2019-11-10",
                    "end": "2019-11-20",
                    "rules": ["breach"],
                    "reason": "depot flooded",
                }
            ],
        }
    )
    events = (ev("breach", "2019-11-05", "B1"), ev("breach", "2019-11-15", "B2"))
    nov = month(contract, "2019-11", SanctionInputs(events))
    assert charged(nov, "breach") == Decimal(-100)
    suspended = next(ln for ln in nov.lines if ln.status == "suspended")
    assert (
        "suspension by variation 10 Nov 2019 to 20 Nov 2019 (Variation 7): depot flooded"
        in suspended.note
    )
    waived = month(
        contract,
        "2019-11",
        SanctionInputs(
            events, waivers=(Waiver("breach:2019-11", "storm", "Casey", at("2019-12-02")),)
        ),
    )
    assert charged(waived, "breach") == 0


# ------------------------------------------------------------------ property


@settings(max_examples=60, deadline=None)
@given(
    base=st.lists(
        st.tuples(
            st.sampled_from(["missed-collection", "ombudsman-upheld", "spillage-not-cleared"]),
            st.integers(1, 30),
            st.integers(0, 5),
            st.integers(1, 4),
            st.booleans(),
        ),
        max_size=25,
    ),
    extra=st.tuples(
        st.sampled_from(["missed-collection", "ombudsman-upheld", "spillage-not-cleared"]),
        st.integers(1, 30),
        st.integers(0, 5),
        st.integers(1, 4),
        st.booleans(),
    ),
)
def test_adding_an_event_never_lowers_the_deduction(waste, base, extra):
    """Whatever events a month already has, one more never lowers its deduction or its points."""

    def build(spec):
        kind, day, prop, affected, fixed = spec
        occurred = at(f"2019-11-{day:02d}")
        return Event(
            kind,
            occurred,
            f"P{prop}-{day}-{affected}",
            rectified_at=occurred + timedelta(hours=2) if fixed else None,
            affected=affected,
        )

    events = tuple(dict.fromkeys(build(s) for s in base))
    more = tuple(dict.fromkeys((*events, build(extra))))
    before = month(waste, "2019-11", SanctionInputs(events))
    after = month(waste, "2019-11", SanctionInputs(more))
    assert after.points >= before.points
    assert after.deductions().gbp <= before.deductions().gbp


# ------------------------------------------------------------------ the model and its explanation


def test_explain_gives_every_mechanism_in_plain_english(hospital, waste):
    text = "\n".join(explain_sanctions(hospital.payments) + explain_sanctions(waste.payments))
    for phrase in (
        "£200 for each 'handover-delay' event whose value is over 30 (30 to 60 minutes)",
        "£5,000 for each event counted by KPI RTT52's monthly figure",
        "“Tolerance” is read as a share allowed to breach, inside the standard: 8%",
        "From 1 Oct 2015 (Contract variation, August 2015): £300.",
        "1 for each person or household affected by a 'missed-collection' failure; charged again "
        "at the end of every further period not rectified within 1 working day",
        "repeated failures within 28 days at the same reference are multiplied: ×2 from the 2nd, ×3 from the 3rd",
        "points up to 100 cost nothing; over 100 points, 1% of the monthly charge",
        "1,500 points or more over any rolling 6 months; kpibot warns at 75% and 90%",
        "KPI W1 between the standard 99.5 and the minimum tolerable level 98 scores points by band",
        "Service credits are capped at 2% of the monthly charge a month and 1% of the annual charge",
        "£5,000 for a month in which KPI W1 reaches 99.9 and KPI W2 reaches 62",
        "every sanction not applied for 3 months from the service start",
        "50% of a month's points is paid back when, in each of the next 2 months, KPI W1 reaches 99.5",
    ):
        assert phrase in text, phrase


def test_event_kinds_say_which_need_a_value(hospital, waste):
    kinds = event_kinds(hospital.payments)
    assert (
        kinds["handover-delay"].needs_value
        and "over 30: £200" in kinds["handover-delay"].value_hint
    )
    assert event_kinds(waste.payments)["missed-collection"].rectification == "1 working day"


BASE = """
id: demo
name: Demo
commissioner: {name: C}
provider: {name: P}
reporting: {period: month}
contract_years: [{year: 1, start: 2019-04-01, end: 2020-03-31}]
kpis:
  - {code: W1, name: On time, unit: percent, target: "99%"}
  - {code: W2, name: Recycling, unit: percent, target: "60%"}
payments:
"""


def _contract(payments: dict) -> Contract:
    data = parse_contract_text(BASE + "  pro_rata_part_years: true\n").model_dump()
    data["payments"] = {**data["payments"], **payments}
    return Contract.model_validate(data)


@pytest.mark.parametrize(
    ("yaml", "line", "field", "reason"),
    [
        (
            "  per_event:\n    - {id: b, clause: X, event: breach}\n",
            13,
            "payments.per_event[0]",
            "needs one of amount_gbp (a sum per event) or tiers",
        ),
        (
            "  per_event:\n    - {id: b, clause: X, kpi: W9, amount_gbp: 5}\n",
            13,
            "payments.per_event[0].kpi",
            "names KPI 'W9', which this contract does not define",
        ),
        (
            "  penalty_points:\n    clause: X\n    failures: [{event: miss, points: 1, rectification: 'soon'}]\n",
            14,
            "payments.penalty_points.failures[0]",
            "'soon' is not a rectification period I can read",
        ),
        (
            "  penalty_points:\n    clause: X\n    failures: [{event: miss, points: 1}]\n"
            "    bands: [{over: 100, deduction_percent: 5}, {over: 50, deduction_percent: 9}]\n",
            12,
            "payments.penalty_points",
            "deduction bands ('over') must rise",
        ),
        (
            "  per_event:\n    - {id: b, clause: X, event: breach, amount_gbp: 5, tolerance: {allowed_percent: 8}}\n",
            13,
            "payments.per_event[0]",
            "needs the total it is a share of",
        ),
        (
            "  service_credits:\n    clause: X\n    levels:\n      - {id: g, kpi: W2, clause: Y, standard: 60, minimum: 70,"
            " bands: [{worse_than: 60, credit_percent: 1}]}\n",
            15,
            "payments.service_credits.levels[0]",
            "the minimum tolerable level 70 is above the standard 60",
        ),
        (
            "  per_event:\n    - {id: b, clause: X, event: e, amount_gbp: 5}\n  suspensions:\n"
            "    - {kind: variation, clause: V, start: 2019-05-01, end: 2019-06-01, rules: [nope]}\n",
            15,
            "payments.suspensions[0].rules",
            "names rule 'nope', which is not one of: b",
        ),
    ],
)
def test_bad_terms_name_file_line_and_field(yaml, line, field, reason):
    with pytest.raises(ContractFilesInvalid) as caught:
        parse_contract_text(BASE + yaml, "demo.yaml")
    error = caught.value.errors[0]
    assert (error.path, error.line, error.field) == ("demo.yaml", line, field)
    assert reason in error.reason


def test_seed_contracts_have_no_sanctions_and_their_money_is_unchanged(seed_contracts):
    for contract in seed_contracts.values():
        terms = contract.payments
        assert not terms.has_sanctions
        assert terms.per_event == [] and terms.penalty_points is None
        assert explain_sanctions(terms) == []
    assert {c for c, k in seed_contracts.items() if k.payments.has_money} == {
        "healthy-child-0-19",
        "one-you-lifestyle",
        "one-psychology",
    }
