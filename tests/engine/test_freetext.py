"""Free-text limits: one sentence per problem, never quoting the text, tab and newlines allowed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpibot.engine import freetext
from kpibot.engine.freetext import (
    FIELDS,
    INCIDENT_REPORT,
    NOTE,
    control_character,
    first_problem,
    text_problem,
)


def test_every_field_has_a_limit_within_a_command_and_a_name() -> None:
    assert len({f.what for f in FIELDS}) == len(FIELDS)
    for field in FIELDS:
        assert 0 < field.limit <= freetext.COMMAND.limit
        assert field.what[0].isupper()


def test_text_at_the_limit_passes_and_one_over_says_how_far() -> None:
    assert text_problem("x" * 2000, INCIDENT_REPORT) is None
    assert text_problem("x" * 2345, INCIDENT_REPORT) == (
        "An incident report is limited to 2,000 characters; yours is 345 over."
    )
    assert text_problem(None, NOTE) is None and text_problem("", NOTE) is None


@pytest.mark.parametrize(
    ("char", "code"),
    [
        ("\x00", "U+0000"),
        ("\x08", "U+0008"),
        ("\x0b", "U+000B"),
        ("\x1f", "U+001F"),
        ("\x7f", "U+007F"),
        ("\x9b", "U+009B"),
        ("\udfff", "U+DFFF"),
        ("\u202e", "U+202E"),  # right-to-left override: shows "paid", stores "diap"
        ("\u2066", "U+2066"),
    ],
)
def test_control_characters_are_refused_by_code_point(char: str, code: str) -> None:
    assert control_character(f"a{char}b") == code
    problem = text_problem(f"secret words{char}", NOTE)
    assert problem is not None and code in problem and "secret words" not in problem


BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


@given(
    st.text(
        alphabet=st.characters(
            blacklist_categories=("Cc", "Cs"), blacklist_characters=BIDI_CONTROLS
        )
        | st.sampled_from("\t\n\r")
    )
)
def test_printable_text_with_tabs_and_line_breaks_is_never_refused_for_its_characters(
    text: str,
) -> None:
    assert control_character(text) is None


def test_the_first_problem_is_reported() -> None:
    assert first_problem(("ok", NOTE), ("also ok", NOTE)) is None
    assert (first_problem(("x" * 600, NOTE), ("\x00", NOTE)) or "").startswith("A note is limited")
