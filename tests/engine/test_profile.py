"""Target profiling and roll-ups: checkpoints through the year, months into quarters and years."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kpibot.engine.model import KPI, ProfileError, check_shares
from kpibot.engine.profile import (
    period_percents,
    profile_targets,
    rollup,
    rollup_frame,
    ytd_position,
)
from kpibot.engine.scorecard import Scorecard
from kpibot.engine.targets import parse_target
from kpibot.files.contracts import ContractFilesInvalid, parse_contract_text
from tests.conftest import CONTRACTS_DIR

# ------------------------------------------------------------------------- profiles


def test_even_profile_checkpoints():
    assert profile_targets(1800, 4) == [450.0, 900.0, 1350.0, 1800.0]
    monthly = profile_targets(570, 12)
    assert monthly[2] == pytest.approx(142.5)
    assert monthly[-1] == 570.0


def test_seasonal_profile_checkpoints():
    assert profile_targets(1800, 4, [10, 20, 30, 40]) == [180.0, 540.0, 1080.0, 1800.0]


def test_quarterly_profile_on_monthly_figures_and_back():
    monthly = period_percents([40, 20, 20, 20], 12)
    assert monthly[:3] == pytest.approx([40 / 3] * 3)
    assert sum(monthly) == pytest.approx(100.0)
    quarters = period_percents([5, 10, 10, 10, 10, 5, 5, 5, 10, 10, 10, 10], 4)
    assert quarters == pytest.approx([25, 25, 20, 30])


@settings(max_examples=80, deadline=None)
@given(
    st.floats(min_value=1, max_value=1e6),
    st.sampled_from([4, 12]),
    st.lists(st.integers(min_value=0, max_value=50), min_size=4, max_size=4).filter(
        lambda s: sum(s) > 0
    ),
)
def test_profiles_sum_to_the_annual_target(annual, per_year, weights):
    shares = [100.0 * w / sum(weights) for w in weights]
    points = profile_targets(annual, per_year, shares)
    assert len(points) == per_year
    assert points[-1] == annual
    assert all(b >= a - 1e-9 for a, b in zip(points, points[1:], strict=False))
    steps = [points[0]] + [b - a for a, b in zip(points, points[1:], strict=False)]
    assert sum(steps) == pytest.approx(annual)


@pytest.mark.parametrize(
    ("shares", "words"),
    [
        ([20, 30, 30, 15], ["profile", "add up to 95%", "5 points short of 100%"]),
        ([30, 30, 30, 15], ["profile", "add up to 105%", "5 points over 100%"]),
        ([50, 50, 0], ["profile", "4 shares", "not 3"]),
        ([110, -10, 0, 0], ["profile", "0 or more", "-10"]),
    ],
)
def test_a_profile_that_does_not_add_up_is_refused(shares, words):
    with pytest.raises(ProfileError) as caught:
        profile_targets(1800, 4, shares)
    for word in words:
        assert word in str(caught.value)


def test_rounded_monthly_shares_are_accepted():
    assert sum(check_shares([8.33] * 12)) == pytest.approx(100.0)


def test_kpi_profile_field_validates():
    kpi = KPI(
        code="PA-1",
        name="Participants",
        target="1800",
        target_basis="annual",
        rollup="sum",
        profile=[20, 30, 30, 20],
    )
    assert kpi.profile == [20.0, 30.0, 30.0, 20.0]
    assert KPI(code="X", name="X", target="1").profile is None
    with pytest.raises(ValidationError) as caught:
        KPI(code="PA-1", name="Participants", target="1800", profile=[20, 30, 30, 15])
    error = caught.value.errors()[0]
    assert error["loc"] == ("profile",)
    assert "5 points short of 100%" in error["msg"]


def test_contract_file_error_names_the_field_and_the_gap():
    text = (CONTRACTS_DIR / "one-you-lifestyle.yaml").read_text()
    anchor = "    target_basis: annual         # 2.2.2"
    assert anchor in text
    broken = text.replace(anchor, "    profile: [20, 30, 30, 15]\n" + anchor, 1)
    with pytest.raises(ContractFilesInvalid) as caught:
        parse_contract_text(broken, "one-you-lifestyle.yaml")
    (error,) = caught.value.errors
    assert error.field == "kpis[PA-1].profile"
    assert "add up to 95%, 5 points short of 100%" in error.reason


# -------------------------------------------------------------------------- roll-ups


def test_rollup_sum_mean_latest():
    assert rollup([120.0, None, 135.0], "sum") == 255.0
    assert rollup([80.0, math.nan, 90.0], "mean") == 85.0
    assert rollup([80.0, 90.0, None], "latest") == 90.0
    assert rollup([None, None], "sum") is None
    with pytest.raises(ProfileError, match="sum, mean, latest"):
        rollup([1.0], "avg")


MONTHS = ["2019-04", "2019-05", "2019-06", "2019-07", "2019-08"]


def _monthly():
    rows = []
    for kpi, values in {
        "COUNT": [100.0, 120.0, 140.0, 90.0, 110.0],
        "RATE": [80.0, 90.0, None, 70.0, 74.0],
        "SNAP": [10.0, 12.0, None, 15.0, 14.0],
    }.items():
        rows += [
            {"contract": "c", "kpi": kpi, "period": p, "value": v}
            for p, v in zip(MONTHS, values, strict=True)
        ]
    return pd.DataFrame(rows)


HOW = {"COUNT": "sum", "RATE": "mean", "SNAP": "latest"}


def test_monthly_to_quarters_by_each_rule():
    out = rollup_frame(_monthly(), "quarter", HOW).set_index(["kpi", "period"])
    assert out.loc[("COUNT", "2019/20 Q1"), "value"] == 360.0
    assert out.loc[("COUNT", "2019/20 Q2"), "value"] == 200.0
    assert out.loc[("RATE", "2019/20 Q1"), "value"] == 85.0  # June missing: mean of those reported
    assert out.loc[("SNAP", "2019/20 Q1"), "value"] == 12.0  # latest reported, not the empty June
    assert out.loc[("SNAP", "2019/20 Q2"), "value"] == 14.0
    assert bool(out.loc[("COUNT", "2019/20 Q1"), "complete"])
    assert not bool(out.loc[("RATE", "2019/20 Q1"), "complete"])  # 2 of 3 months reported
    assert out.loc[("COUNT", "2019/20 Q2"), "reported"] == 2
    assert out.loc[("COUNT", "2019/20 Q2"), "expected"] == 3


def test_monthly_to_year_to_date_by_each_rule():
    out = rollup_frame(_monthly(), "year", HOW).set_index("kpi")
    assert (out["period"] == "2019/20").all()
    assert out.loc["COUNT", "value"] == 560.0
    assert out.loc["RATE", "value"] == pytest.approx((80 + 90 + 70 + 74) / 4)
    assert out.loc["SNAP", "value"] == 14.0
    assert not out["complete"].any()
    assert out.loc["COUNT", "expected"] == 12


def test_quarters_to_years_and_a_rollup_column():
    frame = pd.DataFrame(
        {
            "kpi": ["A"] * 5,
            "period": ["2018/19 Q3", "2018/19 Q4", "2019/20 Q1", "2019/20 Q2", "2019/20 Q3"],
            "value": [5.0, 6.0, 7.0, 8.0, 9.0],
            "rollup": "sum",
        }
    )
    out = rollup_frame(frame, "year")
    assert out[["period", "value", "reported", "expected"]].values.tolist() == [
        ["2018/19", 11.0, 2, 4],
        ["2019/20", 24.0, 3, 4],
    ]


def test_rollup_follows_the_contracts_year_start():
    # Seed 001's quarters run Nov-Jan: January belongs to Q1 of the year that began in November.
    frame = pd.DataFrame(
        {
            "kpi": "PA-1",
            "period": ["2018-11", "2018-12", "2019-01", "2019-02"],
            "value": [10.0, 20.0, 30.0, 40.0],
        }
    )
    out = rollup_frame(frame, "quarter", {"PA-1": "sum"}, year_start_month=11)
    assert out[["period", "value"]].values.tolist() == [["2018/19 Q1", 60.0], ["2018/19 Q2", 40.0]]


def test_rollup_refuses_longer_periods():
    frame = pd.DataFrame({"kpi": ["A"], "period": ["2019/20"], "value": [1.0]})
    with pytest.raises(ProfileError, match="too long to roll up into a quarter"):
        rollup_frame(frame, "quarter")


# ----------------------------------------------------------------------- year to date


def test_ytd_even_profile_with_tolerance():
    p = ytd_position([400.0, 420.0], 1800, 4, polarity="bigger", tolerance=1500)
    assert (p.value, p.checkpoint, p.tolerance_checkpoint, p.share) == (820.0, 900.0, 750.0, 0.5)
    assert (p.position, p.rag) == ("within_tolerance", "amber")


def test_ytd_seasonal_profile_changes_the_verdict():
    values = [200.0, 350.0]
    assert ytd_position(values, 1800, 4, None).rag == "red"  # 550 against an even 900
    seasonal = ytd_position(values, 1800, 4, [10, 20, 30, 40])
    assert (seasonal.checkpoint, seasonal.rag) == (540.0, "green")


def test_ytd_monthly_figures_on_a_quarterly_profile():
    p = ytd_position([50.0, 60.0, 70.0, 80.0], 1800, 12, [10, 20, 30, 40])
    assert p.checkpoint == pytest.approx(1800 * (0.10 + 0.20 / 3))
    assert p.value == 260.0


def test_ytd_mean_and_latest_meet_the_target_as_it_stands():
    mean = ytd_position([80.0, 92.0], 85.0, 4, polarity="bigger", tolerance=80.0, how="mean")
    assert (mean.value, mean.checkpoint, mean.rag) == (86.0, 85.0, "green")
    latest = ytd_position(
        [9.0, 11.0, None], 9.0, 4, polarity="smaller", tolerance=12.0, how="latest"
    )
    assert (latest.value, latest.rag) == (11.0, "amber")


def test_ytd_keeps_a_targets_strictness_and_handles_no_target():
    strict = parse_target(">40%", "bigger")
    assert ytd_position([40.0], strict, 4, how="latest").position == "not_met"
    assert ytd_position([41.0], strict, 4, how="latest").position == "met"
    tbd = parse_target("TBD*", "bigger")
    assert ytd_position([41.0], tbd, 4, how="latest").rag == "grey"
    assert ytd_position([None], 100, 4).position == "missing"
    with pytest.raises(ProfileError, match="between 1 and 4"):
        ytd_position([1.0] * 5, 100, 4)


def test_ytd_position_agrees_with_evaluate_on_an_even_profile(seed_contracts):
    contract = seed_contracts["one-you-lifestyle"]
    values = [380.0, 430.0, 520.0, 300.0]
    periods = ["2019/20 Q1", "2019/20 Q2", "2019/20 Q3", "2019/20 Q4"]
    figures = pd.DataFrame(
        {"contract": contract.id, "kpi": "PA-1", "period": periods, "value": values}
    )
    card = Scorecard.build(contract, figures).frame.set_index("period")
    for n, label in enumerate(periods, start=1):
        ours = ytd_position(values[:n], 1800, 4, None)
        assert ours.value == card.loc[label, "ytd_value"]
        assert ours.checkpoint == pytest.approx(card.loc[label, "ytd_target"])
        assert ours.position == card.loc[label, "position"]
