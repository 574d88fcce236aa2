"""Check figures against a contract before anything is stored: monitoring returns and chat submissions.

Every problem names the file, line and column, and says how to fix it. A return with any problem
is rejected whole; ``check_return`` never writes.

>>> # result = check_return(contract, read_table(Path("q3.csv")), now)
>>> # result.errors -> [CellError(...)], result.figures -> [NewFigure(...)]
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from kpibot.engine import freetext
from kpibot.engine.model import KPI, Contract
from kpibot.engine.numbers import UK, NumberError, NumberStyle, parse_decimal
from kpibot.engine.numbers import parse_number as read_number
from kpibot.engine.periods import Period, PeriodError
from kpibot.engine.scorecard import compiled
from kpibot.engine.targets import parse_grade
from kpibot.files.tables import CellError, Row, Table
from kpibot.store.rows import NewFigure

NON_NEGATIVE: tuple[str, ...] = (
    "count",
    "days",
    "percent",
    "rate",
    "score",
    "working_days",
    "weeks",
    "months",
)
NON_NEGATIVE += ("hours", "minutes", "seconds")
# A milestone's figure, as people type it.
MILESTONE_WORDS = {
    "achieved": 1.0,
    "met": 1.0,
    "done": 1.0,
    "yes": 1.0,
    "1": 1.0,
    "not achieved": 0.0,
    "not met": 0.0,
    "missed": 0.0,
    "no": 0.0,
    "0": 0.0,
}
#: A return with more problems than this lists the first ones and counts the rest.
MAX_PROBLEMS = 50
MORE_PROBLEMS = "…and {n:,} more problem(s) after these; fix these first and send the file again"


def parse_number(text: str, style: NumberStyle = UK) -> float:
    """A number as people type it: '1,620', '86%', '£4,100', read by ``style``'s separators.

    Raises :class:`~kpibot.engine.numbers.NumberError` (a ValueError) with one sentence when
    ``text`` is not a number, or could be read two ways ('8,5' under the UK style).

    >>> parse_number("1,620"), parse_number("8,5", NumberStyle.named("european"))
    (1620.0, 8.5)
    """
    return read_number(text, style)


@dataclass(frozen=True)
class ParsedValue:
    value: float | None
    numerator: float | None = None
    denominator: float | None = None


def parse_value(
    unit: str,
    value: str = "",
    numerator: str = "",
    denominator: str = "",
    complain: Callable[[str, str], None] | None = None,
    style: NumberStyle = UK,
    signed: bool = False,
) -> ParsedValue | None:
    """Read a figure from ``value`` or ``numerator``/``denominator``; None (after complaining) if bad.

    ``complain(column, reason)`` receives one sentence per problem; numbers are read by
    ``style`` (the contract's or the import's number style), and a number that could be read two
    ways is refused, never guessed. A ``signed`` KPI (days ahead or behind, a % change) may be
    below zero; a milestone's figure is "achieved" (1) or "not achieved" (0).
    """

    def bad(column: str, reason: str) -> None:
        if complain is not None:
            complain(column, reason)

    if value:
        if unit == "grade" and parse_grade(value) is not None:
            return ParsedValue(parse_grade(value))
        if unit == "milestone":
            word = " ".join(value.lower().replace("-", " ").split())
            if word in MILESTONE_WORDS:
                return ParsedValue(MILESTONE_WORDS[word])
            bad("value", f"'{value}' is not 'achieved' or 'not achieved'")
            return None
        try:
            v = parse_number(value, style)
        except NumberError as exc:
            bad("value", not_a_number(value, exc))
            return None
        mismatch = _unit_mismatch(value, unit)
        if mismatch is not None:
            bad("value", mismatch)
            return None
        num = den = None
        if numerator or denominator:
            # Both given: they must agree, or which one to read would be a guess.
            ratio = parse_value(unit, "", numerator, denominator, complain, style, signed)
            if ratio is None:
                return None
            if ratio.value is not None and not _agrees(value, style, ratio.value):
                bad(
                    "value",
                    f"the value ({value}) and the numerator and denominator "
                    f"({numerator}/{denominator} = {ratio.value:.4g}%) disagree; correct one of "
                    "them, or leave the value empty",
                )
                return None
    elif numerator or denominator:
        try:
            num = parse_number(numerator, style)
        except NumberError as exc:
            bad(
                "numerator",
                not_a_number(numerator, exc) if numerator else "the numerator is missing",
            )
            return None
        try:
            den = parse_number(denominator, style)
        except NumberError as exc:
            bad(
                "denominator",
                not_a_number(denominator, exc) if denominator else "the denominator is missing",
            )
            return None
        if den <= 0:
            bad("denominator", "the denominator must be above zero")
            return None
        if num < 0:
            bad("numerator", "the numerator cannot be negative")
            return None
        if num > den and unit == "percent":
            bad(
                "numerator",
                f"the numerator ({num:g}) is above the denominator ({den:g}), so it cannot be a percentage",
            )
            return None
        v = 100.0 * num / den
    else:
        return ParsedValue(None)
    if v < 0 and unit in NON_NEGATIVE and not signed:
        bad("value", f"{v:g} is negative, and a {unit} cannot be below zero")
        return None
    if unit == "percent" and v > 100 and not signed:
        bad("value", f"{v:g}% is above 100%")
        return None
    # '-0' is zero: kept as -0.0 it would be stored and shown as '-0%' wherever the figure goes.
    return ParsedValue(v + 0.0, num, den)


def _unit_mismatch(value: str, unit: str) -> str | None:
    """Why a figure's own sign ('%', '£') contradicts its KPI's unit, or None when it does not.

    '5%' for a KPI measured in days, or '£50' for a percentage, was read as the bare number: a
    figure in the wrong unit read without a word. A count is also what a KPI with no stated unit
    is taken to be, so it accepts either sign, as before.
    """
    text = value.strip()
    measured = _UNIT_WORDS.get(unit, unit.replace("_", " "))
    if text.endswith("%") and unit in _NOT_PERCENT:
        return (
            f"'{text[:40]}' is a percentage, but this KPI is measured in {measured}; check the "
            "figure and write it without the % sign"
        )
    money = "£" in text or text.lstrip("+-−").upper().startswith("GBP")
    if money and unit in _NOT_MONEY:
        return (
            f"'{text[:40]}' is an amount of money, but this KPI is measured in {measured}; "
            "check the figure and write it without the £ sign"
        )
    return None


_TIME_UNITS = frozenset({"days", "working_days", "weeks", "months", "hours", "minutes", "seconds"})
_NOT_PERCENT = _TIME_UNITS | {"gbp"}
_NOT_MONEY = _TIME_UNITS | {"percent"}
_UNIT_WORDS = {"gbp": "pounds", "percent": "per cent"}


def _agrees(value: str, style: NumberStyle, computed: float) -> bool:
    """Whether ``value`` is ``computed`` rounded to the places ``value`` was written with."""
    written = parse_decimal(value, style)
    places = Decimal(1).scaleb(min(0, int(written.as_tuple().exponent)))
    return Decimal(repr(computed)).quantize(places, ROUND_HALF_UP) == written


def not_a_number(text: str, exc: NumberError) -> str:
    """The reason for a refused number, shaped like the other reasons: no closing full stop.

    Text with no digit at all keeps the plain "is not a number"; anything that looks like a
    number gets the rule it broke, such as both readings of '8,5'.
    """
    if not any(char.isdigit() for char in text):
        return f"'{text[:40]}' is not a number"
    return str(exc).rstrip(".")


def suggest(word: str, choices: list[str]) -> str:
    """' Did you mean …?' for the closest choices, or '' when nothing is close."""
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=3, cutoff=0.5)
    if not close:
        return ""
    names = [lowered[c] for c in close]
    return " Did you mean " + " or ".join(f"'{n}'" for n in names) + "?"


def find_kpi(contract: Contract, text: str) -> KPI | None:
    """A KPI by code (case-insensitive), or by exact name."""
    t = text.strip().lower()
    for k in contract.kpis:
        if k.code.lower() == t or k.name.lower() == t:
            return k
    return None


def unknown_kpi_message(contract: Contract, text: str) -> str:
    hint = suggest(text, [k.code for k in contract.kpis] + [k.name for k in contract.kpis])
    return f"'{contract.id}' has no KPI '{text}'.{hint or ' Try `status ' + contract.id + '` to list its KPIs.'}"


def check_period(contract: Contract, text: str, today: date) -> Period | str:
    """The period, or one sentence saying why it cannot be used for this contract."""
    try:
        period = contract.parse_period(text)
    except PeriodError as exc:
        return str(exc)
    if contract.year_for(period) is None:
        return (
            f"{period.label} is outside the contract, which runs from "
            f"{contract.start:%-d %b %Y} to {contract.end:%-d %b %Y}."
        )
    if period.end >= today:
        return (
            f"{period.label} has not ended yet (it ends {period.end:%-d %b %Y}); "
            "submit its figures after it ends."
        )
    return period


@dataclass
class ReturnCheck:
    """The outcome of checking a return: figures ready to store, or the reasons it was rejected."""

    figures: list[NewFigure] = field(default_factory=list)
    errors: list[CellError] = field(default_factory=list)
    #: Problems found beyond the first ``MAX_PROBLEMS``, counted but not kept.
    more: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.figures)

    def add(self, error: CellError) -> None:
        """Keep the first ``MAX_PROBLEMS`` problems; count the rest."""
        if len(self.errors) < MAX_PROBLEMS:
            self.errors.append(error)
        else:
            self.more += 1

    def listed(self) -> list[CellError]:
        """The problems kept, then one line counting the rest when there are more."""
        if not self.more or not self.errors:
            return list(self.errors)
        name = self.errors[0].file
        return [*self.errors, CellError(name, None, None, MORE_PROBLEMS.format(n=self.more))]


def check_return(
    contract: Contract,
    table: Table,
    now: datetime,
    *,
    is_late: Callable[[Period], bool] | None = None,
    reason: str | None = None,
    style: NumberStyle | None = None,
) -> ReturnCheck:
    """Validate every row of a monitoring return against ``contract``; never writes.

    Numbers are read by ``style``, else by the contract's ``number_style`` (UK by default).
    """
    out = ReturnCheck()
    style = style or contract.numbers
    for col in ("kpi", "period"):
        if col not in table.columns:
            out.errors.append(
                table.error(
                    None,
                    col,
                    f"the header has no '{col}' column; expected columns are "
                    "kpi, period and value (or numerator and denominator)",
                )
            )
    if not ({"value"} <= set(table.columns) or {"numerator", "denominator"} <= set(table.columns)):
        out.errors.append(
            table.error(
                None,
                "value",
                "the header needs a 'value' column, or both 'numerator' and 'denominator'",
            )
        )
    if out.errors:
        return out
    units = {code: ck.unit for code, ck in compiled(contract).items()}
    seen: dict[tuple[str, str], int] = {}
    for row in table:
        _check_row(contract, table, row, now, units, seen, out, is_late, reason, style)
    if not out.figures and not out.errors:
        out.add(table.error(None, None, "no row has a figure in it"))
    return out


def _check_row(
    contract: Contract,
    table: Table,
    row: Row,
    now: datetime,
    units: dict[str, str],
    seen: dict[tuple[str, str], int],
    out: ReturnCheck,
    is_late: Callable[[Period], bool] | None,
    reason: str | None,
    style: NumberStyle,
) -> None:
    kpi = find_kpi(contract, row["kpi"])
    if kpi is None:
        msg = unknown_kpi_message(contract, row["kpi"]) if row["kpi"] else "the KPI is empty"
        out.add(table.error(row, "kpi", msg))
        return
    period = check_period(contract, row["period"], now.date())
    if isinstance(period, str):
        out.add(table.error(row, "period", period))
        return
    key = (kpi.code, period.label)
    if key in seen:
        out.add(
            table.error(
                row,
                None,
                f"duplicate row: {kpi.code} for {period.label} is also on "
                f"{table.line_word} {seen[key]}",
            )
        )
        return
    seen[key] = row.line
    errors: list[CellError] = []
    parsed = parse_value(
        units[kpi.code],
        row.get("value"),
        row.get("numerator"),
        row.get("denominator"),
        lambda col, why: errors.append(table.error(row, col, why)),
        style,
        signed=bool(kpi.signed),
    )
    bench = None
    if row.get("benchmark"):
        try:
            bench = parse_number(row.get("benchmark"), style)
        except NumberError as exc:
            errors.append(table.error(row, "benchmark", not_a_number(row.get("benchmark"), exc)))
    for column, kind in (("note", freetext.NOTE), ("reason", freetext.REASON)):
        problem = freetext.text_problem(row.get(column), kind)
        if problem is not None:
            errors.append(table.error(row, column, problem.rstrip(".")))
    if errors or parsed is None:
        for error in errors:
            out.add(error)
        return
    if parsed.value is None:
        return

    out.figures.append(
        NewFigure(
            kpi.code,
            period,
            value=parsed.value,
            numerator=parsed.numerator,
            denominator=parsed.denominator,
            benchmark=bench,
            late=bool(is_late and is_late(period)),
            note=row.get("note") or None,
            reason=row.get("reason") or reason,
        )
    )
