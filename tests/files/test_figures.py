"""Reading one figure: signed measures may go below zero; a milestone is achieved or not."""

from __future__ import annotations

import pytest

from kpibot.files.figures import parse_value


def _read(unit, value, signed=False):
    problems: list[str] = []
    parsed = parse_value(unit, value, complain=lambda _c, why: problems.append(why), signed=signed)
    return (None if parsed is None else parsed.value), problems


def test_a_signed_measure_takes_negative_figures():
    assert _read("days", "-10", signed=True) == (-10.0, [])
    assert _read("percent", "-5%", signed=True) == (-5.0, [])
    value, problems = _read("days", "-10")
    assert value is None and "cannot be below zero" in problems[0]


@pytest.mark.parametrize(
    ("text", "value"),
    [("achieved", 1.0), ("Achieved", 1.0), ("yes", 1.0), ("not achieved", 0.0), ("no", 0.0)],
)
def test_a_milestone_is_achieved_or_not(text, value):
    assert _read("milestone", text) == (value, [])


def test_a_milestone_refuses_anything_else():
    value, problems = _read("milestone", "nearly")
    assert value is None and problems == ["'nearly' is not 'achieved' or 'not achieved'"]


@pytest.mark.parametrize(
    ("value", "numerator", "denominator"),
    [("87", "867", "1000"), ("86.7", "867", "1000"), ("86.67%", "26", "30"), ("100", "5", "5")],
)
def test_a_value_beside_its_numerator_and_denominator_is_read_when_they_agree(
    value, numerator, denominator
):
    problems: list[str] = []
    parsed = parse_value(
        "percent", value, numerator, denominator, lambda _c, why: problems.append(why)
    )
    assert problems == [] and parsed is not None
    assert parsed.value == float(value.rstrip("%"))


@pytest.mark.parametrize(
    ("value", "numerator", "denominator"),
    [("95", "10", "100"), ("86.6", "867", "1000"), ("88", "867", "1000")],
)
def test_a_value_that_disagrees_with_its_numerator_and_denominator_is_refused(
    value, numerator, denominator
):
    # Reading the value and ignoring the ratio (as before) could be green where the ratio is red.
    problems: list[tuple[str, str]] = []
    parsed = parse_value(
        "percent", value, numerator, denominator, lambda c, why: problems.append((c, why))
    )
    assert parsed is None and len(problems) == 1
    column, why = problems[0]
    assert column == "value" and f"the value ({value}) and the numerator and denominator" in why
    assert why.endswith("disagree; correct one of them, or leave the value empty")


@pytest.mark.parametrize("text", ["-0", "-0.0%", "−0"])
def test_minus_zero_is_stored_as_zero_not_shown_as_minus_zero(text):
    value, problems = _read("percent", text)
    assert problems == [] and value == 0 and f"{value:g}" == "0"


@pytest.mark.parametrize(
    ("unit", "text", "words"),
    [
        ("days", "5%", "'5%' is a percentage, but this KPI is measured in days"),
        (
            "working_days",
            "12 %",
            "'12 %' is a percentage, but this KPI is measured in working days",
        ),
        ("gbp", "50%", "'50%' is a percentage, but this KPI is measured in pounds"),
        ("percent", "£50", "'£50' is an amount of money, but this KPI is measured in per cent"),
        ("hours", "GBP 4", "'GBP 4' is an amount of money, but this KPI is measured in hours"),
    ],
)
def test_a_figure_whose_sign_contradicts_its_unit_is_refused_not_read_bare(unit, text, words):
    # '5%' for a KPI in days was read as 5 days without a word.
    value, problems = _read(unit, text)
    assert value is None and len(problems) == 1 and problems[0].startswith(words)


@pytest.mark.parametrize(
    ("unit", "text", "expected"),
    [("percent", "87%", 87.0), ("gbp", "£1,250", 1250.0), ("count", "87%", 87.0)],
)
def test_a_sign_that_fits_the_unit_or_a_unit_not_stated_is_read(unit, text, expected):
    # A count is also what a KPI with no stated unit is taken to be, so it accepts either sign.
    assert _read(unit, text) == (expected, [])
