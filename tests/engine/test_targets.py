"""The target grammar: every phrasing in the seeds, boundaries, and text it must refuse to guess."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kpibot.engine.evaluate import POSITIONS, evaluate_scalar
from kpibot.engine.targets import TargetError, YearTerms, parse_target

# (text, polarity, role, kind, op, value, explanation fragment)
SEED_PHRASINGS = [
    ("44.0%", "bigger", "target", "threshold", None, 44.0, "at least 44%"),
    (">40%", "bigger", "target", "threshold", "gt", 40.0, "more than 40%"),
    ("<22.5%", "smaller", "target", "threshold", "lt", 22.5, "less than 22.5%"),
    ("≥ 95%", "bigger", "target", "threshold", "ge", 95.0, "at least 95%"),
    ("Less than 40 %", "smaller", "target", "threshold", "lt", 40.0, "less than 40%"),
    ("35% minimum", "bigger", "target", "threshold", "ge", 35.0, "at least 35%"),
    ("Minimum average 8.5", "bigger", "target", "threshold", "ge", 8.5, "at least 8.5"),
    (
        "Higher than 55% leaving early",
        "smaller",
        "critical",
        "threshold",
        "gt",
        55.0,
        "more than 55%",
    ),
    (
        "100 active families",
        "bigger",
        "target",
        "threshold",
        None,
        100.0,
        "at least 100 active families",
    ),
    (">2000", "bigger", "target", "threshold", "gt", 2000.0, "more than 2,000"),
    ("140 days", "smaller", "target", "threshold", None, 140.0, "at most 140 days"),
    ("50-75%", "bigger", "target", "range", None, 50.0, "between 50% and 75%"),
    ("Target 90%", "bigger", "target", "threshold", None, 90.0, "at least 90%"),
    ("Tolerance 85%", "bigger", "tolerance", "threshold", None, 85.0, "at least 85%"),
    (
        "> National average",
        "bigger",
        "target",
        "benchmark",
        "gt",
        None,
        "above the national average",
    ),
    (
        "At least national average",
        "smaller",
        "target",
        "benchmark",
        "le",
        None,
        "no worse than the national average (at or below it)",
    ),
    (
        "<national average",
        "smaller",
        "target",
        "benchmark",
        "lt",
        None,
        "below the national average",
    ),
    (
        "> National average or 5% increase on current baseline whichever is greater",
        "bigger",
        "target",
        "benchmark",
        "gt",
        None,
        "whichever is greater",
    ),
    (
        "Improvement on previous year",
        "bigger",
        "target",
        "improvement",
        "gt",
        None,
        "better (higher) than the previous year",
    ),
    (
        "100% with exception reporting",
        "bigger",
        "target",
        "threshold",
        None,
        100.0,
        "at least 100%, exceptions must be reported",
    ),
    ("At least good", "bigger", "target", "threshold", "ge", 3.0, "at least Good"),
    ("TBD*", "bigger", "target", "none", None, None, "to be determined"),
    ("n/a**", "bigger", "target", "none", None, None, "no target"),
    ("For information only", "bigger", "target", "none", None, None, "for information only"),
    ("For baseline information", "bigger", "target", "none", None, None, "baseline"),
    (
        "To record BF rates for IMD 1 & 2 in agreement with commissioner",
        "bigger",
        "target",
        "none",
        None,
        None,
        "To record",
    ),
    (
        "To collect data required in agreement with commissioner",
        "bigger",
        "target",
        "none",
        None,
        None,
        "no target",
    ),
    (
        "To develop method in agreement with commissioner and record reviews",
        "bigger",
        "target",
        "none",
        None,
        None,
        "no target",
    ),
    ("Minimum average Below 7.0", "bigger", "critical", "threshold", "lt", 7.0, "less than 7"),
    (
        "100% of parents with at least 50% parental capacity improvement with exception reporting",
        "bigger",
        "target",
        "threshold",
        None,
        100.0,
        "exceptions must be reported",
    ),
    ("<32% academic year 15/16", "smaller", "target", "threshold", "lt", 32.0, "less than 32%"),
    (
        "Improvement on previous year (53% 2014)",
        "bigger",
        "target",
        "improvement",
        "gt",
        None,
        "baseline 53%",
    ),
]


@pytest.mark.parametrize(
    ("text", "polarity", "role", "kind", "op", "value", "words"), SEED_PHRASINGS
)
def test_every_seed_phrasing_is_read(text, polarity, role, kind, op, value, words):
    t = parse_target(text, polarity, role=role)
    assert t.kind == kind
    assert t.op == op
    assert t.value == value
    assert words in t.explain()


def test_explains_itself_in_plain_english():
    assert (
        parse_target("100% with exception reporting", "bigger").explain()
        == "at least 100%, exceptions must be reported"
    )


@pytest.mark.parametrize(
    "text",
    [
        "50% reduction on baseline",  # a reduction for a bigger-is-better KPI
        "RI+: 95% Good+ 80%",
        "around about forty",
        "> 40% and < 50% or more",
        "95% or 90%",
        "2e-5",
        "40x",
    ],
)
def test_refuses_to_guess(text):
    with pytest.raises(TargetError) as err:
        parse_target(text, "bigger")
    assert text.strip() in str(err.value)


def test_uplift_reads_whichever_is_greater():
    t = parse_target(
        "> National average or 5% increase on current baseline whichever is greater", "bigger"
    )
    assert t.threshold_for(national_average=60.0, baseline=60.0) == pytest.approx(63.0)
    assert t.threshold_for(national_average=70.0, baseline=60.0) == pytest.approx(70.0)
    assert t.threshold_for(national_average=None, baseline=None) is None


def _terms(target: str, tol: str | None, pol: str) -> YearTerms:
    return YearTerms(
        1,
        parse_target(target, pol),
        parse_target(tol, pol, role="tolerance") if tol else None,
        None,
        False,
    )


@pytest.mark.parametrize(
    ("target", "tol", "pol", "value", "position"),
    [
        ("95%", "90%", "bigger", 95.0, "met"),  # meeting exactly is met
        ("95%", "90%", "bigger", 90.0, "within_tolerance"),  # on the tolerance threshold: within
        ("95%", "90%", "bigger", 89.99, "not_met"),
        (">40%", None, "bigger", 40.0, "not_met"),  # '>' is strict
        ("9%", "12%", "smaller", 9.0, "met"),
        ("9%", "12%", "smaller", 12.0, "within_tolerance"),
        ("9%", "12%", "smaller", 12.01, "not_met"),
        ("140 days", "180 days", "smaller", 141.0, "within_tolerance"),
        ("TBD*", "TBD*", "bigger", 55.0, "no_target"),
    ],
)
def test_boundaries_follow_the_glossary(target, tol, pol, value, position):
    assert evaluate_scalar(value, _terms(target, tol, pol)).position == position


def test_95_of_95_computed_from_a_fraction_is_met():
    # 57/60 is 95.00000000000001 or 94.99999999999999 in floating point; it must still be met.
    value = 100 * 57 / 60
    assert evaluate_scalar(value, _terms("95%", None, "bigger")).position == "met"


_RANK = {p: i for i, p in enumerate(["met", "within_tolerance", "not_met"])}


@given(
    target=st.floats(1, 1000),
    gap=st.floats(0, 100),
    a=st.floats(0, 2000),
    b=st.floats(0, 2000),
    pol=st.sampled_from(["bigger", "smaller"]),
    strict=st.booleans(),
)
def test_a_better_value_never_gets_a_worse_position(target, gap, a, b, pol, strict):
    tol = target - gap if pol == "bigger" else target + gap
    assume(tol >= 0)
    sym = (">" if pol == "bigger" else "<") if strict else ""
    terms = _terms(f"{sym}{target:.4f}", f"{tol:.4f}", pol)
    better, worse = (max(a, b), min(a, b)) if pol == "bigger" else (min(a, b), max(a, b))
    pb = evaluate_scalar(better, terms).position
    pw = evaluate_scalar(worse, terms).position
    assert _RANK[pb] <= _RANK[pw]


@given(st.text(max_size=60))
def test_any_text_is_read_or_refused_never_crashes(text):
    try:
        t = parse_target(text, "bigger")
    except TargetError as exc:
        assert "cannot read" in str(exc)
    else:
        assert t.kind in ("threshold", "range", "benchmark", "improvement", "none")
        assert isinstance(t.explain(), str)


@given(
    st.sampled_from(["", ">", "<", "≥ ", "at least ", "less than "]),
    st.floats(0, 10_000, allow_nan=False),
    st.booleans(),
)
def test_numbers_with_comparators_round_trip(prefix, number, pct):
    text = f"{prefix}{number:.4f}{'%' if pct else ''}"
    pol = "smaller" if prefix in ("<", "less than ") else "bigger"
    t = parse_target(text, pol)
    assert t.kind == "threshold"
    assert math.isclose(t.value, float(f"{number:.4f}"))
    assert (t.unit == "percent") == pct


def test_positions_are_the_designed_set():
    assert POSITIONS == ("met", "within_tolerance", "not_met", "no_target", "missing")
