"""RAG bands in one cell read as the target and tolerance they mean, or are refused naming why."""

from __future__ import annotations

import pytest

from kpibot.engine.bands import BandsError, read_bands
from kpibot.engine.evaluate import evaluate_scalar
from kpibot.engine.targets import TargetError, YearTerms, parse_target


@pytest.mark.parametrize(
    ("text", "polarity", "target", "tolerance"),
    [
        ("Green >= 92%, Amber 85-91.9%, Red < 85%", "bigger", "at least 92%", "at least 85%"),
        ("Green ≥95%, Amber 90–94.9%, Red <90%", "bigger", "at least 95%", "at least 90%"),
        ("Red <85% Amber 85-92% Green >92%", "bigger", "more than 92%", "at least 85%"),
        (
            "Green: 95% and above; Amber: 90% to 94%; Red: below 90%",
            "bigger",
            "at least 95%",
            "at least 90%",
        ),
        ("Green 95-100%, Amber 90-94.9%, Red below 90%", "bigger", "at least 95%", "at least 90%"),
        ("G: <5% A: 5-10% R: >10%", "smaller", "less than 5%", "at most 10%"),
        ("Green = 0, Amber = 1-2, Red = 3+", "smaller", "at most 0", "at most 2"),
        ("Green >=95%, Red <95%", "bigger", "at least 95%", None),
    ],
)
def test_bands_read_as_a_target_and_a_tolerance(text, polarity, target, tolerance):
    bands = read_bands(text)
    assert bands is not None
    assert (bands.polarity, bands.target, bands.tolerance) == (polarity, target, tolerance)


@pytest.mark.parametrize(
    "text",
    [
        "95%",
        "at least 95%",
        "Red 1 calls: 75% within 8 minutes",
        "Green flag awards: 12",
        "a 5% rise",
    ],
)
def test_text_that_is_not_written_as_bands_is_left_to_the_grammar(text):
    assert read_bands(text) is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("Green >= 90, Amber 85-95, Red <85", "overlap between amber (95) and green (90)"),
        ("Green >= 95%, Amber 80-90%, Red < 80%", "leave a gap between amber (90) and green (95)"),
        ("Green >= 95%, Amber 90-94%, Red < 85%", "leave a gap between red (85)"),
        ("Green: on target; Amber: within 5%; Red: more than 5% below", "'Green: on target'"),
    ],
)
def test_bands_that_do_not_fit_together_are_refused_naming_them(text, why):
    with pytest.raises(BandsError) as err:
        read_bands(text)
    assert why in str(err.value)


def test_a_band_cell_rates_as_its_colours_say():
    text = "Green >= 92%, Amber 85-91.9%, Red < 85%"
    target = parse_target(text, "bigger")
    tolerance = parse_target(text, "bigger", role="tolerance")
    terms = YearTerms(1, target, tolerance, None, False)
    rag = {v: evaluate_scalar(v, terms).position for v in (93, 92, 91.9, 85, 84.9)}
    assert rag == {
        93: "met",
        92: "met",
        91.9: "within_tolerance",
        85: "within_tolerance",
        84.9: "not_met",
    }
    assert "RAG bands" in " ".join(target.notes) and target.text == text


def test_bands_against_the_kpis_polarity_or_as_a_critical_failure_are_refused():
    with pytest.raises(TargetError, match="green at the high end, so bigger is better"):
        parse_target("Green >= 92%, Amber 85-91.9%, Red < 85%", "smaller")
    with pytest.raises(TargetError, match="not a critical failure threshold"):
        parse_target("Green >= 92%, Amber 85-91.9%, Red < 85%", "bigger", role="critical")
    with pytest.raises(TargetError, match="no amber band, so they set no tolerance"):
        parse_target("Green >=95%, Red <95%", "bigger", role="tolerance")


@pytest.mark.parametrize(
    ("text", "polarity", "target", "tolerance"),
    [
        ("Target: 85% Tolerance: 80%", "bigger", "at least 85%", "at least 80%"),
        ("Target 90% (tolerance 85%)", "bigger", "at least 90%", "at least 85%"),
        ("Target: 5%; Tolerance: 7%", "smaller", "at most 5%", "at most 7%"),
    ],
)
def test_a_target_and_tolerance_labelled_in_one_cell_read_as_both(
    text, polarity, target, tolerance
):
    assert parse_target(text, polarity).explain() == target
    assert parse_target(text, polarity, role="tolerance").explain() == tolerance
    other = "smaller" if polarity == "bigger" else "bigger"
    with pytest.raises(TargetError, match=f"so {polarity} is better"):
        parse_target(text, other)


def test_a_labelled_relative_tolerance_follows_the_kpis_polarity():
    text = "Target: 95%, Tolerance: within 5% of target"
    assert read_bands(text).polarity is None
    assert "below it" in parse_target(text, "bigger", role="tolerance").explain()


def test_runs_of_spaces_read_like_single_spaces_whatever_their_length():
    # A pasted cell full of padding; the labelled form once backtracked exponentially on a run
    # of spaces (40 spaces took a quarter of a second, 80 took minutes).
    gap = " " * 5000
    bands = read_bands(f"Green{gap}>= 92%,{gap}Amber 85-91.9%,{gap}Red < 85%")
    assert bands is not None and (bands.target, bands.tolerance) == ("at least 92%", "at least 85%")
    labelled = read_bands(f"Target{gap}85%{gap}tolerance{gap}80%")
    assert labelled is not None and (labelled.target, labelled.tolerance) == ("85%", "80%")
    assert read_bands(f"target{gap}x") is None
    assert read_bands("Targeted support 80% tolerance 70%") is None  # 'Targeted' is no label
