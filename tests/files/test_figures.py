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
