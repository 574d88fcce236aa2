"""Numbers as people type them, read by one explicit rule so that no figure is silently changed.

A figure typed in chat or in a spreadsheet cell is read under a :class:`NumberStyle`, chosen per
contract or import (``NumberStyle.named("uk")``). Each style has one *decimal mark* and a few
*group marks* (thousands separators):

- ``UK`` (the default): ``.`` is the decimal mark; ``,`` separates thousands.
- ``EUROPEAN``: ``,`` is the decimal mark; ``.``, a space (plain, no-break, narrow no-break or
  thin) or an apostrophe (``'`` or ``’``) separates thousands.

The rule:

1. Group marks are accepted only before the decimal mark, all of one kind, in true groups of three:
   1-3 leading digits not starting with 0, then groups of exactly three (``1,234``, ``12,345,678.5``).
2. A lone number that *looks* grouped is read by the style: ``1,234`` is 1234 in UK and 1.234 in
   EUROPEAN; ``1.234`` is 1.234 in UK and 1234 in EUROPEAN.
3. The other convention's decimal mark in any other position is ambiguous, and ambiguity is
   refused showing both readings: ``8,5`` in UK could be 8.5 or 85, ``0,123`` could be 0.123 or 123,
   ``1.5`` in EUROPEAN could be 1,5 or 15. Nothing is guessed.
4. Around the digits only a sign (``+``, ``-``, ``−``), a ``£`` or ``GBP`` prefix and a ``%`` suffix
   are allowed; ``%`` is merely stripped (callers decide units). Letters, exponents, NaN/inf,
   brackets and digits other than ASCII 0-9 are refused.

Every refusal is a :class:`NumberError` whose text is one sentence the user can act on.

>>> parse_number("£12,345.5")
12345.5
>>> parse_number("1 234,5", EUROPEAN)
1234.5
>>> parse_number("8,5")
Traceback (most recent call last):
    ...
kpibot.engine.numbers.AmbiguousNumber: '8,5' could mean 8.5 or 85; write 8.5 with a decimal point (or 85 without a comma).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

# User-facing texts, kept together so the wording stays consistent and reviewable.
EMPTY = "No number was given; write a figure such as {figure}."
NO_DIGITS = "'{text}' has no digits; write a figure such as {figure}."
NOT_FINITE = "'{text}' is not a real figure; write the number in digits, such as {figure}."
EXPONENT = "'{text}' uses an exponent; write the number out in full, without the 'e'."
FOREIGN_DIGITS = "'{text}' uses digits other than 0-9; write the figure with the digits 0-9."
LETTERS = "'{text}' contains letters; write just the figure, such as {figure}."
BRACKETS = (
    "'{text}' uses brackets for a negative figure; write a minus sign instead, such as -{inner}."
)
MISPLACED_SIGN = "'{text}' has a sign or currency symbol in the wrong place; put it at the start, such as -{figure}."
MONEY_AND_PERCENT = "'{text}' is both money and a percentage; write either £ or %, not both."
ODD_CHARACTER = "'{text}' contains \"{char}\", which a number cannot contain; write just the figure, such as {figure}."
SPACE_INSIDE = (
    "'{text}' has a space inside the number; write the figure without it, such as {example}."
)
SEVERAL_DECIMAL_MARKS = (
    "'{text}' has more than one {decimal_name}; a number can have only one, such as {example}."
)
MARK_AFTER_DECIMAL = "'{text}' has a {mark_name} after the {decimal_name}; group thousands only before it, such as {example}."
MIXED_GROUP_MARKS = (
    "'{text}' mixes different thousands separators; use one kind throughout, such as {example}."
)
MISPLACED_GROUP_MARK = "'{text}' has a {mark_name} in the wrong place; {mark_name}s must separate groups of three digits, such as {example}, or be left out."
AMBIGUOUS = "'{text}' could mean {as_decimal} or {as_whole}; write {as_decimal} with a {decimal_name} (or {as_whole} without a {mark_name})."
TOO_LARGE = "'{text}' is too large to store as a figure; check it and write a smaller number."
TOO_PRECISE = "'{text}' has more digits than a figure can hold exactly; round it to at most 15 significant digits."
UNKNOWN_STYLE = "There is no number style '{name}'; use one of: {names}."

_SIGNS = "+-\u2212"  # U+2212 MINUS SIGN: what word processors and some phones type for '-'
_MINUSES = ("-", "\u2212")
_ASCII_DIGITS = "0123456789"
_MARK_NAMES = {
    ".": "point",
    ",": "comma",
    " ": "space",
    "\u00a0": "space",
    "\u202f": "space",
    "\u2009": "space",
    "'": "apostrophe",
    "\u2019": "apostrophe",
}
_SAME_KIND = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2009": " ", "\u2019": "'"})
_EXPONENT = re.compile(r"[0-9.,]*[0-9][eE][+\-\u2212]?[0-9]+")
_QUOTED_LENGTH = 40  # long enough for any real figure, short enough to keep the message one line


class NumberError(ValueError):
    """A typed number was refused; ``str()`` is one sentence to show the user as it is."""


class AmbiguousNumber(NumberError):
    """A number that could be read two ways (``8,5``); the sentence shows both readings."""


@dataclass(frozen=True)
class NumberStyle:
    """How digits are written: which mark is the decimal mark, and which may group thousands.

    Chosen by name from a contract or import setting:

    >>> NumberStyle.named("European") is EUROPEAN
    True
    """

    name: str
    decimal_mark: str
    # The first group mark is the one suggested in messages, so put the commonest first.
    group_marks: str

    @property
    def foreign_mark(self) -> str:
        """The decimal mark of the other convention: a group mark here, but ambiguous if misplaced."""
        return "," if self.decimal_mark == "." else "."

    @classmethod
    def named(cls, name: str) -> NumberStyle:
        """The style called ``name`` (case and surrounding spaces ignored); NumberError if none is."""
        for style in STYLES:
            if style.name == name.strip().lower():
                return style
        names = ", ".join(style.name for style in STYLES)
        raise NumberError(UNKNOWN_STYLE.format(name=name, names=names))


UK = NumberStyle(name="uk", decimal_mark=".", group_marks=",")
EUROPEAN = NumberStyle(name="european", decimal_mark=",", group_marks=".' \u00a0\u202f\u2009\u2019")
STYLES = (UK, EUROPEAN)


@dataclass(frozen=True)
class _Affixes:
    negative: bool
    money: bool
    percent: bool
    body: str

    def around(self, digits: str) -> str:
        """``digits`` with this sign, currency and percent, for showing a reading back to the user."""
        sign = "-" if self.negative else ""
        return f"{sign}{'£' if self.money else ''}{digits}{'%' if self.percent else ''}"


def parse_number(text: str, style: NumberStyle = UK) -> float:
    """The figure ``text`` stands for under ``style``, as a float; NumberError if it is not one.

    Refuses numbers a float cannot hold as typed (more than 15 significant digits, or too large),
    so ``Decimal(repr(result))`` always equals what was typed.

    >>> parse_number("4,5%", EUROPEAN)
    4.5
    """
    exact = parse_decimal(text, style)
    value = float(exact)
    if not math.isfinite(value):
        raise NumberError(TOO_LARGE.format(text=_quoted(text)))
    # repr() is the shortest text that reads back as this float, so comparing it with what was
    # typed catches every loss: rounding of long digit strings and underflow alike.
    if Decimal(repr(value)) != exact:
        raise NumberError(TOO_PRECISE.format(text=_quoted(text)))
    return value


def parse_decimal(text: str, style: NumberStyle = UK) -> Decimal:
    """The figure ``text`` stands for under ``style``, exactly; NumberError if it is not one.

    For money, where every digit typed must be kept:

    >>> parse_decimal("GBP 1,234.50")
    Decimal('1234.50')
    """
    affixes = _split_affixes(text, style)
    body = affixes.body
    _refuse_foreign_characters(text, body, style)
    if body.count(style.decimal_mark) > 1:
        raise NumberError(
            SEVERAL_DECIMAL_MARKS.format(
                text=_quoted(text), decimal_name=_decimal_name(style), example=_example(style)
            )
        )
    whole, has_fraction, fraction = body.partition(style.decimal_mark)
    for char in fraction:
        if char not in _ASCII_DIGITS:
            raise NumberError(
                MARK_AFTER_DECIMAL.format(
                    text=_quoted(text),
                    mark_name=_MARK_NAMES[char],
                    decimal_name=_decimal_name(style),
                    example=_example(style),
                )
            )
    whole_digits = _ungrouped(text, whole, bool(has_fraction), affixes, style)
    sign = "-" if affixes.negative else ""
    # Decimal is built once from text, never by arithmetic, so no context precision can round it;
    # '1,50' keeps its two places (Decimal('1.50')), which money code relies on.
    if fraction:
        return Decimal(f"{sign}{whole_digits or '0'}.{fraction}")
    return Decimal(f"{sign}{whole_digits}")


def _split_affixes(text: str, style: NumberStyle) -> _Affixes:
    """Peel off the sign, currency and percent that may surround the digits."""
    rest = text.strip()
    if not rest:
        raise NumberError(EMPTY.format(figure=_figure(style)))
    if rest.startswith("(") and rest.endswith(")"):
        inner = rest[1:-1].strip() or _figure(style)
        raise NumberError(BRACKETS.format(text=_quoted(text), inner=inner))
    percent = rest.endswith("%")
    if percent:
        rest = rest[:-1].rstrip()
    # A sign may come before or after the currency ('-£5' and '£-5' are both common), but only once.
    sign = ""
    if rest[:1] and rest[0] in _SIGNS:
        sign, rest = rest[0], rest[1:]
    money = False
    if rest.startswith("£"):
        money, rest = True, rest[1:].lstrip()
    elif rest[:3].isascii() and rest[:3].upper() == "GBP":
        money, rest = True, rest[3:].lstrip()
    if money and not sign and rest[:1] and rest[0] in _SIGNS:
        sign, rest = rest[0], rest[1:]
    if money and percent:
        raise NumberError(MONEY_AND_PERCENT.format(text=_quoted(text)))
    return _Affixes(negative=sign in _MINUSES, money=money, percent=percent, body=rest)


def _refuse_foreign_characters(text: str, body: str, style: NumberStyle) -> None:
    """Leave only ASCII digits and the style's marks, explaining the first thing that is not."""
    quoted, figure = _quoted(text), _figure(style)
    if body.strip().lower() in {"nan", "inf", "infinity"}:
        raise NumberError(NOT_FINITE.format(text=quoted, figure=figure))
    if _EXPONENT.fullmatch(body):
        raise NumberError(EXPONENT.format(text=quoted))
    allowed = _ASCII_DIGITS + style.decimal_mark + style.group_marks
    strangers = [char for char in body if char not in allowed]
    # Arabic-Indic and other digits pass str.isdigit() and Decimal(), but a reader who cannot tell
    # '٣' from '3' at a glance cannot check the figure, so they are refused before anything else.
    if any(unicodedata.category(char) == "Nd" for char in strangers):
        raise NumberError(FOREIGN_DIGITS.format(text=quoted))
    if any(char.isalpha() for char in strangers):
        raise NumberError(LETTERS.format(text=quoted, figure=figure))
    if any(char in _SIGNS or char in "£%" for char in strangers):
        raise NumberError(MISPLACED_SIGN.format(text=quoted, figure=figure))
    if any(char.isspace() for char in strangers):
        example = _example(style).replace(style.group_marks[0], "")
        raise NumberError(SPACE_INSIDE.format(text=quoted, example=example))
    if strangers:
        raise NumberError(ODD_CHARACTER.format(text=quoted, char=strangers[0], figure=figure))
    if not any(char in _ASCII_DIGITS for char in body):
        raise NumberError(NO_DIGITS.format(text=quoted, figure=figure))


def _ungrouped(
    text: str, whole: str, has_fraction: bool, affixes: _Affixes, style: NumberStyle
) -> str:
    """The digits before the decimal mark, with thousands separators checked and removed."""
    # A no-break space looks exactly like a space, so mixing them is not mixing separators.
    whole = whole.translate(_SAME_KIND)
    marks = {char for char in whole if char not in _ASCII_DIGITS}
    if not marks:
        return whole
    if len(marks) > 1:
        raise NumberError(MIXED_GROUP_MARKS.format(text=_quoted(text), example=_example(style)))
    (mark,) = marks
    groups = whole.split(mark)
    leading, following = groups[0], groups[1:]
    # '0,123' is never how anyone writes a hundred and twenty-three: it is a decimal in disguise.
    if 1 <= len(leading) <= 3 and leading[0] != "0" and all(len(g) == 3 for g in following):
        return "".join(groups)
    if mark == style.foreign_mark and len(groups) == 2 and not has_fraction:
        left, right = groups
        as_decimal = f"{left or '0'}{style.decimal_mark}{right}"
        as_whole = (left + right).lstrip("0") or "0"
        if right and Decimal(f"{left or '0'}.{right}") != Decimal(as_whole):
            raise AmbiguousNumber(
                AMBIGUOUS.format(
                    text=_quoted(text),
                    as_decimal=_quoted(affixes.around(as_decimal)),
                    as_whole=_quoted(affixes.around(as_whole)),
                    decimal_name=_decimal_name(style),
                    mark_name=_MARK_NAMES[mark],
                )
            )
    raise NumberError(
        MISPLACED_GROUP_MARK.format(
            text=_quoted(text), mark_name=_MARK_NAMES[mark], example=_example(style, mark)
        )
    )


def _decimal_name(style: NumberStyle) -> str:
    return f"decimal {_MARK_NAMES[style.decimal_mark]}"


def _figure(style: NumberStyle) -> str:
    return f"12{style.decimal_mark}5"


def _example(style: NumberStyle, group_mark: str = "") -> str:
    mark = group_mark or style.group_marks[0]
    return f"1{mark}234{mark}567{style.decimal_mark}5"


def _quoted(text: str) -> str:
    shown = text.strip()
    return shown if len(shown) <= _QUOTED_LENGTH else shown[: _QUOTED_LENGTH - 1] + "…"
