"""Numbers as people type them: accepted and refused strings, and properties against an oracle.

The oracle below is written independently of ``kpibot.engine.numbers``: the documented grammar as
one regular expression per style, and the value as "the digits, with the style's decimal mark
where it was typed". Hypothesis then checks that no text is ever read as a different number.
"""

from __future__ import annotations

import ast
import doctest
import re
import sys
from dataclasses import FrozenInstanceError
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from kpibot.engine import numbers
from kpibot.engine.numbers import (
    EUROPEAN,
    UK,
    NumberError,
    NumberStyle,
    parse_decimal,
    parse_number,
)

ACCEPTED = [
    # UK: '.' is the decimal mark, ',' groups thousands in threes.
    ("0.5", UK, "0.5"),
    (".5", UK, "0.5"),
    ("5.", UK, "5"),
    ("  42  ", UK, "42"),
    ("007", UK, "7"),
    ("1,234", UK, "1234"),
    ("1,234.5", UK, "1234.5"),
    ("12,345,678.5", UK, "12345678.5"),
    ("£4,100", UK, "4100"),
    ("GBP 4,100.25", UK, "4100.25"),
    ("gbp12", UK, "12"),
    ("-£5", UK, "-5"),
    ("£-5", UK, "-5"),
    ("−3", UK, "-3"),
    ("+3", UK, "3"),
    ("86%", UK, "86"),
    ("4.5 %", UK, "4.5"),
    ("1.234", UK, "1.234"),
    ("0", UK, "0"),
    # EUROPEAN: ',' is the decimal mark; '.', spaces and apostrophes group thousands in threes.
    ("8,5", EUROPEAN, "8.5"),
    ("4,5%", EUROPEAN, "4.5"),
    ("1,23", EUROPEAN, "1.23"),
    ("1,234", EUROPEAN, "1.234"),
    ("1.234", EUROPEAN, "1234"),
    ("1.234,5", EUROPEAN, "1234.5"),
    ("1 234,5", EUROPEAN, "1234.5"),
    ("1\u00a0234\u00a0567,25", EUROPEAN, "1234567.25"),
    ("1\u202f234,5", EUROPEAN, "1234.5"),
    ("1 234\u00a0567", EUROPEAN, "1234567"),
    ("1'234,5", EUROPEAN, "1234.5"),
    ("1’234", EUROPEAN, "1234"),
    ("£4,100", EUROPEAN, "4.1"),
    (",5", EUROPEAN, "0.5"),
    ("5,", EUROPEAN, "5"),
    ("0,5", EUROPEAN, "0.5"),
    ("−3", EUROPEAN, "-3"),
]

REFUSED = [
    # (text, style, a fragment the one-sentence reason must contain)
    ("8,5", UK, "could mean 8.5 or 85"),
    ("4,5%", UK, "could mean 4.5% or 45%"),
    ("1,23", UK, "could mean 1.23 or 123"),
    ("1,2345", UK, "could mean 1.2345 or 12345"),
    ("1234,5", UK, "could mean 1234.5 or 12345"),
    ("0,123", UK, "could mean 0.123 or 123"),
    (",5", UK, "could mean 0.5 or 5"),
    ("-£8,5", UK, "could mean -£8.5 or -£85"),
    ("12,34,567", UK, "comma in the wrong place"),
    ("1,23.5", UK, "comma in the wrong place"),
    ("5,", UK, "comma in the wrong place"),
    ("1,,234", UK, "comma in the wrong place"),
    ("1.234,5", UK, "comma after the decimal point"),
    ("1 234,5", UK, "space inside the number"),
    ("1 234", UK, "space inside the number"),
    ("1.2.3", UK, "more than one decimal point"),
    ("(3)", UK, "minus sign instead, such as -3"),
    ("1e3", UK, "exponent"),
    ("1.5E-3", UK, "exponent"),
    ("٣", UK, "digits other than 0-9"),
    ("１２", UK, "digits other than 0-9"),
    ("", UK, "No number was given"),
    ("   ", UK, "No number was given"),
    ("abc", UK, "letters"),
    ("12 kg", UK, "letters"),
    ("nan", UK, "not a real figure"),
    ("-inf", UK, "not a real figure"),
    ("Infinity", UK, "not a real figure"),
    (".", UK, "no digits"),
    ("£", UK, "no digits"),
    ("--5", UK, "wrong place"),
    ("5-", UK, "wrong place"),
    ("£5%", UK, "both money and a percentage"),
    ("5#", UK, 'contains "#"'),
    ("1²", UK, 'contains "²"'),
    ("12345678901234567890", UK, "15 significant digits"),
    ("1" + "0" * 400, UK, "too large"),
    # EUROPEAN mirrors UK: a misplaced '.' might be a UK decimal point.
    ("1.5", EUROPEAN, "could mean 1,5 or 15"),
    ("0.5", EUROPEAN, "could mean 0,5 or 5"),
    (".5", EUROPEAN, "could mean 0,5 or 5"),
    ("1.23", EUROPEAN, "could mean 1,23 or 123"),
    ("5.", EUROPEAN, "point in the wrong place"),
    ("1.2.3", EUROPEAN, "point in the wrong place"),
    ("1 23,5", EUROPEAN, "space in the wrong place"),
    ("1.234 567", EUROPEAN, "mixes different thousands separators"),
    ("1,234.5", EUROPEAN, "point after the decimal comma"),
    ("12,34,567", EUROPEAN, "more than one decimal comma"),
    ("1e3", EUROPEAN, "exponent"),
    ("٣", EUROPEAN, "digits other than 0-9"),
    ("(3)", EUROPEAN, "minus sign"),
]


@pytest.mark.parametrize(("text", "style", "expected"), ACCEPTED)
def test_accepted(text: str, style: NumberStyle, expected: str) -> None:
    assert parse_decimal(text, style) == Decimal(expected)
    assert parse_number(text, style) == float(Decimal(expected))


@pytest.mark.parametrize(("text", "style", "fragment"), REFUSED)
def test_refused_with_one_sentence(text: str, style: NumberStyle, fragment: str) -> None:
    with pytest.raises(NumberError) as caught:
        parse_number(text, style)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message
    assert message.endswith(".")
    assert message.count(". ") == 0, "one sentence, not several"


def test_eight_comma_five_names_both_readings() -> None:
    with pytest.raises(NumberError) as caught:
        parse_number("8,5")
    assert str(caught.value) == (
        "'8,5' could mean 8.5 or 85; write 8.5 with a decimal point (or 85 without a comma)."
    )


def test_european_ambiguity_is_shown_in_european_notation() -> None:
    with pytest.raises(
        NumberError, match=r"write 1,5 with a decimal comma \(or 15 without a point\)"
    ):
        parse_number("1.5", EUROPEAN)


def test_number_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_number("8,5")


def test_uk_is_the_default() -> None:
    assert parse_number("1,234") == 1234.0


def test_decimal_keeps_the_places_typed() -> None:
    assert str(parse_decimal("£1,234.50")) == "1234.50"
    assert str(parse_decimal("1,50", EUROPEAN)) == "1.50"


def test_decimal_keeps_digits_a_float_cannot() -> None:
    assert parse_decimal("12,345,678,901,234,567,890.12") == Decimal("12345678901234567890.12")
    with pytest.raises(NumberError, match="15 significant digits"):
        parse_number("12,345,678,901,234,567,890.12")


def test_long_text_is_shortened_in_the_message() -> None:
    with pytest.raises(NumberError) as caught:
        parse_number("x" * 500)
    assert len(str(caught.value)) < 120


@pytest.mark.parametrize(
    ("name", "style"), [("uk", UK), ("UK", UK), (" european ", EUROPEAN), ("European", EUROPEAN)]
)
def test_style_by_name(name: str, style: NumberStyle) -> None:
    assert NumberStyle.named(name) is style


def test_unknown_style_is_refused_with_a_sentence() -> None:
    with pytest.raises(NumberError) as caught:
        NumberStyle.named("french")
    assert str(caught.value) == "There is no number style 'french'; use one of: uk, european."


def test_styles_are_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        UK.decimal_mark = ","  # type: ignore[misc]


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(numbers).failed == 0


def test_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(numbers.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


# --- The oracle: the documented grammar, written out independently as regular expressions. ---

_SIGN = "[+\\-\u2212]"
_MONEY = "(?:£|[Gg][Bb][Pp])\\s*"
_UK_WHOLE = r"(?:[1-9][0-9]{0,2}(?:,[0-9]{3})+|[0-9]+)"
_UK_BODY = rf"(?:{_UK_WHOLE}(?:\.[0-9]*)?|\.[0-9]+)"
_EU_GROUPS = "|".join(
    rf"[1-9][0-9]{{0,2}}(?:{mark}[0-9]{{3}})+"
    for mark in (r"\.", "[ \u00a0\u202f\u2009]", "['\u2019]")
)
_EU_WHOLE = rf"(?:{_EU_GROUPS}|[0-9]+)"
_EU_BODY = rf"(?:{_EU_WHOLE}(?:,[0-9]*)?|,[0-9]+)"


def _grammar(body: str) -> re.Pattern[str]:
    money = rf"(?:{_SIGN}?{_MONEY}|{_MONEY}{_SIGN})"
    plain = rf"{_SIGN}?{body}(?:\s*%)?"
    return re.compile(rf"\s*(?:{money}{body}|{plain})\s*")


GRAMMAR = {UK: _grammar(_UK_BODY), EUROPEAN: _grammar(_EU_BODY)}
DECIMAL_MARK = {UK: ".", EUROPEAN: ","}


def oracle(text: str, style: NumberStyle) -> Decimal | None:
    """The one reading ``text`` may have under ``style``, or None if the grammar refuses it."""
    if not GRAMMAR[style].fullmatch(text):
        return None
    negative = "-" in text or "\u2212" in text
    before, _, after = text.partition(DECIMAL_MARK[style])
    whole = "".join(c for c in before if c in "0123456789") or "0"
    fraction = "".join(c for c in after if c in "0123456789") or "0"
    return Decimal(f"{'-' if negative else ''}{whole}.{fraction}")


def _read(text: str, style: NumberStyle) -> Decimal | None:
    try:
        return parse_decimal(text, style)
    except NumberError:
        return None


NOISY_ALPHABET = st.sampled_from(list("0123456789" * 4 + ".,,.. '’\u00a0\u202f-+−£%eE()Gbp٣\t"))


@st.composite
def grouped_like(draw: st.DrawFn) -> str:
    """Digit runs joined by marks: lands on valid and nearly valid groupings often."""
    runs = draw(st.lists(st.text("0123456789", min_size=0, max_size=5), min_size=1, max_size=5))
    marks = draw(st.lists(st.sampled_from([",", ".", " ", "'", "\u00a0"]), min_size=len(runs)))
    body = "".join(run + mark for run, mark in zip(runs, marks, strict=False))[:-1]
    prefix = draw(st.sampled_from(["", "-", "−", "£", "£-", "-£", "GBP ", "+", " "]))
    suffix = draw(st.sampled_from(["", "%", " %", " ", "5", ",5", ".5"]))
    return prefix + body + suffix


ANY_TEXT = st.one_of(st.text(), st.text(NOISY_ALPHABET, max_size=14), grouped_like())
STYLE = st.sampled_from([UK, EUROPEAN])


@given(text=ANY_TEXT, style=STYLE)
@example(text="8,5", style=UK)
@example(text="1,234", style=UK)
@example(text="1,234", style=EUROPEAN)
@example(text="1.234", style=EUROPEAN)
@example(text="0,123", style=UK)
@example(text="12,34,567", style=UK)
@example(text="£ -1 234,5 ", style=EUROPEAN)
def test_no_text_is_read_as_another_number(text: str, style: NumberStyle) -> None:
    expected = oracle(text, style)
    assert _read(text, style) == expected
    try:
        value = parse_number(text, style)
    except NumberError:
        return
    assert expected is not None
    assert value == float(expected)
    assert Decimal(repr(value)) == expected, "the float holds exactly what was typed"


@st.composite
def decimals_up_to_six_places(draw: st.DrawFn) -> Decimal:
    """Any number with at most 6 decimal places and 15 significant digits (what a float holds)."""
    places = draw(st.integers(min_value=0, max_value=6))
    digits = draw(st.integers(min_value=-(10**15 - 1), max_value=10**15 - 1))
    return Decimal(digits).scaleb(-places)


AFFIXES = st.sampled_from([("", ""), ("£", ""), ("GBP ", ""), ("", "%"), (" ", " ")])


@given(number=decimals_up_to_six_places(), grouped=st.booleans(), affixes=AFFIXES)
def test_uk_formatted_numbers_read_back_exactly(
    number: Decimal, grouped: bool, affixes: tuple[str, str]
) -> None:
    text = f"{number:,f}" if grouped else f"{number:f}"
    typed = affixes[0] + text + affixes[1]
    assert parse_decimal(typed, UK) == number
    assert parse_number(typed, UK) == float(number)


@given(
    number=decimals_up_to_six_places(),
    mark=st.sampled_from(["", ".", " ", "\u00a0", "\u202f", "'", "’"]),
    affixes=AFFIXES,
)
def test_european_formatted_numbers_read_back_exactly(
    number: Decimal, mark: str, affixes: tuple[str, str]
) -> None:
    text = f"{number:,f}".translate(str.maketrans({",": mark, ".": ","}))
    typed = affixes[0] + text + affixes[1]
    assert parse_decimal(typed, EUROPEAN) == number
    assert parse_number(typed, EUROPEAN) == float(number)


@given(number=decimals_up_to_six_places())
def test_floats_formatted_to_their_places_read_back_exactly(number: Decimal) -> None:
    # Format to the places the number has: more would print the float's binary noise
    # ('0.1' as '0.1000000000000000055'), digits a float does not hold and the parser refuses.
    places = -int(number.as_tuple().exponent)
    value = float(number)
    uk = f"{value:,.{places}f}"
    assert parse_number(uk, UK) == value
    european = uk.translate(str.maketrans({",": ".", ".": ","}))
    assert parse_number(european, EUROPEAN) == value
