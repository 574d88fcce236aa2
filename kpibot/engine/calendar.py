"""Reporting calendars: when returns are due, when meetings fall, and incident deadlines.

Contracts state due dates in words ("15th of the month directly after the reporting period",
"no later than 30 April"), sometimes as a table of dates, and incident deadlines as durations
("24h", "2 working days"). This module reads those words, counts England & Wales working days,
and turns a contract's ``calendar:`` section into concrete dates and Europe/London moments. It is
pure: it never reads the clock or any file, so the scheduler can replay any date range.

>>> rule = parse_due_rule("15th of the month directly after the reporting period")
>>> rule.due_date(parse_period("2019/20 Q1", year_start_month=11))
datetime.date(2020, 2, 15)
>>> parse_incident_rule("2 working days").describe()
'within 2 working days'
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, cached_property, lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

import holidays
from dateutil.relativedelta import FR, MO, SA, SU, TH, TU, WE, relativedelta
from dateutil.rrule import YEARLY, rrule
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from kpibot.engine.model import Contract
from kpibot.engine.periods import (
    Period,
    PeriodError,
    PeriodKind,
    make_period,
    parse_period,
    period_containing,
)

LONDON = ZoneInfo("Europe/London")
Anchor = Literal["period", "year"]
OffsetUnit = Literal["days", "working days", "weeks", "months"]
IncidentUnit = Literal["immediately", "minutes", "hours", "days", "working days", "weeks"]
ReturnKind = Literal["monthly", "quarterly", "annual"]
Loc = tuple[str | int, ...]

# User-facing wording lives here so that every message reads the same way.
DUE_RULE_FORMS = (
    "'15th of the month after the period', '2nd Friday of the month after the period', "
    "'last working day of the month after the period', '10 working days after period end', "
    "'within 2 months of the period end', 'within 3 months of year end', '30 April each year' "
    "or 'on the last day of the period'"
)
INCIDENT_FORMS = "'immediately', '24 hours', '72h', '2 working days' or 'within 5 days'"
MEETING_RETURN_MONTH = "end of the month the return is due"
_KIND_WORD: dict[PeriodKind, ReturnKind] = {
    "month": "monthly",
    "quarter": "quarterly",
    "year": "annual",
}

# Vocabulary tables read best as tables, so the formatter leaves them alone.
# fmt: off
_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_ORDINALS = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
    "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth",
    "seventeenth", "eighteenth", "nineteenth", "twentieth",
)
_NUMBERS = (
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty",
)
# fmt: on
_MONTHS = {name.lower()[:n]: i for i, name in enumerate(_MONTH_NAMES, 1) for n in (3, len(name))}
_MONTHS["sept"] = 9
_WEEKDAYS = {name.lower()[:n]: i for i, name in enumerate(_DAY_NAMES) for n in (3, len(name))}
_RELATIVE_WEEKDAYS = (MO, TU, WE, TH, FR, SA, SU)
_ORDINAL_WORDS = {w: i for i, w in enumerate(_ORDINALS, 1)}
_ORDINAL_WORDS |= {f"twenty {w}": 20 + i for i, w in enumerate(_ORDINALS[:9], 1)}
_ORDINAL_WORDS |= {"thirtieth": 30, "thirty first": 31}
_NUMBER_WORDS = {w: i for i, w in enumerate(_NUMBERS, 1)}
_NUMBER_WORDS |= {"a": 1, "an": 1, "thirty": 30, "sixty": 60, "ninety": 90}


def _alternation(words: Mapping[str, object]) -> str:
    # Longest first, so "twenty first" wins over "twenty" and "monday" over "mon".
    return "|".join(sorted(map(re.escape, words), key=len, reverse=True))


_DAY_NUMBER = rf"(?:\d{{1,2}}(?:st|nd|rd|th)?|{_alternation(_ORDINAL_WORDS)})"
_ORD = rf"(?:{_DAY_NUMBER}|last)"
_NUM = rf"(?:\d{{1,3}}|{_alternation(_NUMBER_WORDS)})"
_WHAT = rf"(?:day|working day|{_alternation(_WEEKDAYS)})"
_NOUN = r"(?:period|quarter|month|financial year|contract year|year)"
_ANCHOR = rf"(?P<anchor>(?:end of )?{_NOUN}(?: end| ends| has ended)?)"
_DUE_PATTERNS = {
    "month_day": re.compile(
        rf"^(?P<nth>{_ORD})(?: (?P<what>{_WHAT}))? of (?:(?P<mnth>{_ORD}) )?month after {_ANCHOR}$"
    ),
    "in_period": re.compile(rf"^(?P<nth>{_ORD})(?: (?P<what>{_WHAT}))? of {_ANCHOR}$"),
    "period_end": re.compile(rf"^{_ANCHOR}$"),
    "offset": re.compile(
        rf"^(?:within )?(?P<n>{_NUM}) (?P<unit>working days?|days?|weeks?|months?) "
        rf"(?:after|of|from) {_ANCHOR}$"
    ),
    "nth_working_day": re.compile(rf"^(?P<n>{_ORD}) (?P<unit>working day|day) after {_ANCHOR}$"),
    "fixed": re.compile(
        rf"^(?:(?P<day>{_DAY_NUMBER}) (?:day )?(?:of )?(?P<month>{_alternation(_MONTHS)})|"
        rf"(?P<month2>{_alternation(_MONTHS)}) (?P<day2>{_DAY_NUMBER}))(?: after {_ANCHOR})?$"
    ),
}
_PREFIXES = re.compile(
    r"^(?:(?:to be |must be |shall be )?(?:submitted|received|returned|provided|sent|due)"
    r"|by|no later than|not later than|on or before|on|at)\s+"
)


class CalendarError(ValueError):
    """A calendar setting that cannot be used; ``field`` and ``loc`` locate it, ``text`` quotes it.

    The message is one sentence a contract author can act on, ready for the contract loader.

    >>> try:
    ...     parse_due_rule("whenever suits")
    ... except CalendarError as exc:
    ...     (exc.field, exc.text)
    ('calendar.due', 'whenever suits')
    """

    def __init__(self, loc: Loc, text: object | None, reason: str) -> None:
        self.loc = loc
        self.field = ".".join(str(part) for part in loc)
        self.text = None if text is None else str(text)
        self.reason = reason
        quoted = "" if self.text is None else f" '{self.text}'"
        super().__init__(f"{self.field}{quoted} {reason}")


def _loc(field: str) -> Loc:
    return tuple(field.split("."))


def _normalise(text: str) -> str:
    s = text.lower().replace("\u2013", " ").replace("\u2014", " ").replace("-", " ")
    # Contracts spell numbers twice, "two (2) working days"; keep one.
    s = re.sub(r"\((?:\d+|[a-z ]+)\)", " ", s)
    s = re.sub(r"[,.;:!'\"]", " ", s)
    s = re.sub(r"\b(?:in |of )?(?:each|every) (?:year|annum)\b|\bper annum\b|\bannually\b", " ", s)
    s = re.sub(r"\bbusiness days?\b", lambda m: m[0].replace("business", "working"), s)
    s = re.sub(r"\b(?:following|next|subsequent|succeeding) month\b", "month after period", s)
    s = re.sub(r"\b(?:following|subsequent|succeeding)\b", "after", s)
    s = re.sub(
        r"\b(?:the|directly|immediately|reporting|monitoring|relevant|calendar|each)\b", "", s
    )
    s = " ".join(s.split())
    while (stripped := _PREFIXES.sub("", s)) != s:
        s = stripped
    return s


def _ordinal(token: str) -> int:
    """Read '15th', '15', 'fifteenth' or 'last' (-1)."""
    if token == "last":
        return -1
    if token in _ORDINAL_WORDS:
        return _ORDINAL_WORDS[token]
    return int(re.sub(r"(?:st|nd|rd|th)$", "", token))


def _number(token: str) -> int:
    return _NUMBER_WORDS[token] if token in _NUMBER_WORDS else int(token)


def _nth_text(n: int) -> str:
    if n == -1:
        return "last"
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _anchor(text: str) -> Anchor:
    return "year" if "year" in text else "period"


def _anchor_end(period: Period, anchor: Anchor) -> date:
    return period.end if anchor == "period" else period.reporting_year().end


def _anchor_name(anchor: Anchor) -> str:
    return "period" if anchor == "period" else "reporting year"


class DueRule(ABC):
    """A contract's rule for when a period's return is due; build one with ``parse_due_rule``.

    >>> parse_due_rule("by 30 April").due_date(parse_period("2019/20"))
    datetime.date(2020, 4, 30)
    """

    @abstractmethod
    def due_date(self, period: Period) -> date:
        """The date the return for ``period`` is due."""

    @abstractmethod
    def describe(self) -> str:
        """The rule in plain English, for ``/kpi due`` and reminders."""


@dataclass(frozen=True)
class DayOfMonthRule(DueRule):
    """The nth day, working day or weekday of a month counted from the period's (or year's) end.

    ``months_after`` 0 means the anchor's own last month ("the last day of the period").

    >>> parse_due_rule("2nd Friday of the month after the period").describe()
    'the 2nd Friday of the month after the period'
    """

    nth: int
    what: Literal["day", "working day"] | int
    months_after: int = 1
    anchor: Anchor = "period"

    def due_date(self, period: Period) -> date:
        first = _anchor_end(period, self.anchor) + relativedelta(months=self.months_after, day=1)
        last = first + relativedelta(day=31)
        if self.what == "day":
            # relativedelta clamps, so "the 30th" in February is the last day of February.
            return last if self.nth == -1 else first + relativedelta(day=self.nth)
        if self.what == "working day":
            if self.nth == -1:
                return roll_back(last)
            return add_working_days(first - timedelta(days=1), self.nth)
        weekday = _RELATIVE_WEEKDAYS[self.what]
        if self.nth == -1:
            return last + relativedelta(weekday=weekday(-1))
        return first + relativedelta(weekday=weekday(self.nth))

    def describe(self) -> str:
        if isinstance(self.what, int):
            day = f"{_nth_text(self.nth)} {_DAY_NAMES[self.what]}"
        elif self.what == "working day":
            day = f"{_nth_text(self.nth)} working day"
        else:
            day = "last day" if self.nth == -1 else _nth_text(self.nth)
        if self.months_after == 0:
            return f"the {day} of the {_anchor_name(self.anchor)}"
        month = "month" if self.months_after == 1 else f"{_ORDINALS[self.months_after - 1]} month"
        after = "the period" if self.anchor == "period" else "the reporting year ends"
        return f"the {day} of the {month} after {after}"


@dataclass(frozen=True)
class OffsetRule(DueRule):
    """A fixed span after the period (or reporting year) ends: "10 working days after period end".

    >>> parse_due_rule("within 3 months of year end").due_date(parse_period("2019/20"))
    datetime.date(2020, 6, 30)
    """

    amount: int
    unit: OffsetUnit
    anchor: Anchor = "period"

    def due_date(self, period: Period) -> date:
        end = _anchor_end(period, self.anchor)
        if self.unit == "working days":
            return add_working_days(end, self.amount)
        if self.unit == "months":
            # Periods end on a month's last day, so "2 months after 30 June" is 31 August.
            return end + relativedelta(months=self.amount, day=31)
        return end + relativedelta(days=self.amount if self.unit == "days" else 7 * self.amount)

    def describe(self) -> str:
        unit = self.unit[:-1] if self.amount == 1 else self.unit
        return f"{self.amount} {unit} after the {_anchor_name(self.anchor)} ends"


@dataclass(frozen=True)
class AnnualDateRule(DueRule):
    """A fixed date each year, the first one after the period (or reporting year) ends.

    >>> parse_due_rule("no later than 30 April").describe()
    '30 April each year, the first after the period ends'
    """

    month: int
    day: int
    anchor: Anchor = "period"

    def due_date(self, period: Period) -> date:
        start = datetime.combine(_anchor_end(period, self.anchor) + timedelta(days=1), time())
        return rrule(YEARLY, dtstart=start, bymonth=self.month, bymonthday=self.day)[0].date()

    def describe(self) -> str:
        month = _MONTH_NAMES[self.month - 1]
        return f"{self.day} {month} each year, the first after the {_anchor_name(self.anchor)} ends"


@lru_cache(maxsize=1024)
def parse_due_rule(text: str, field: str = "calendar.due") -> DueRule:
    """Read a due rule in the contract's words; ``field`` names the setting in any error.

    >>> parse_due_rule("last working day of the month after the period").due_date(
    ...     parse_period("2019/20 Q3"))
    datetime.date(2020, 1, 31)
    """
    s = _normalise(text)
    unknown = CalendarError(
        _loc(field), text, f"is not a due rule I can read; write it like {DUE_RULE_FORMS}."
    )
    if m := _DUE_PATTERNS["fixed"].match(s):
        day, month = _ordinal(m["day"] or m["day2"]), _MONTHS[m["month"] or m["month2"]]
        if (month, day) == (2, 29):
            raise CalendarError(
                _loc(field), text, "falls only in leap years; use 28 February or 1 March."
            )
        try:
            date(2001, month, day)
        except ValueError:
            reason = f"names a day that {_MONTH_NAMES[month - 1]} does not have; check the date."
            raise CalendarError(_loc(field), text, reason) from None
        return AnnualDateRule(month, day, _anchor(m["anchor"] or "period"))
    if m := _DUE_PATTERNS["offset"].match(s):
        return OffsetRule(_number(m["n"]), _OFFSET_UNITS[m["unit"]], _anchor(m["anchor"]))
    if (m := _DUE_PATTERNS["nth_working_day"].match(s)) and m["n"] != "last":
        return OffsetRule(_ordinal(m["n"]), _OFFSET_UNITS[m["unit"]], _anchor(m["anchor"]))
    if m := _DUE_PATTERNS["month_day"].match(s):
        months = _ordinal(m["mnth"]) if m["mnth"] else 1
        if not 1 <= months <= 12:
            raise unknown
        return _day_rule(text, field, _ordinal(m["nth"]), m["what"], months, _anchor(m["anchor"]))
    if (m := _DUE_PATTERNS["in_period"].match(s)) and m["nth"] == "last":
        return _day_rule(text, field, -1, m["what"], 0, _anchor(m["anchor"]))
    if (m := _DUE_PATTERNS["period_end"].match(s)) and "end" in m["anchor"]:
        return DayOfMonthRule(-1, "day", 0, _anchor(m["anchor"]))
    raise unknown


_OFFSET_UNITS: dict[str, OffsetUnit] = {
    "day": "days",
    "days": "days",
    "working day": "working days",
    "working days": "working days",
    "week": "weeks",
    "weeks": "weeks",
    "month": "months",
    "months": "months",
}


def _day_rule(
    text: str, field: str, nth: int, what_text: str | None, months: int, anchor: Anchor
) -> DayOfMonthRule:
    what: Literal["day", "working day"] | int = "day"
    if what_text is not None and what_text in _WEEKDAYS:
        what = _WEEKDAYS[what_text]
    elif what_text == "working day":
        what = "working day"
    # Every month has 4 of each weekday and at least 18 working days, even with bank holidays.
    limit = 31 if what == "day" else 18 if what == "working day" else 4
    if nth != -1 and not 1 <= nth <= limit:
        raise CalendarError(
            _loc(field),
            text,
            f"asks for a day that not every month has; use 1 to {limit} or 'last'.",
        )
    return DayOfMonthRule(nth, what, months, anchor)


@cache
def _bank_holidays(year: int) -> frozenset[date]:
    # One lookup per year, shared by every contract, keeps working-day counting cheap.
    return frozenset(holidays.country_holidays("GB", subdiv="ENG", years=year))


def is_working_day(day: date) -> bool:
    """True on Monday to Friday unless it is an England & Wales bank holiday.

    >>> is_working_day(date(2020, 5, 8))  # early May bank holiday, moved for VE Day
    False
    """
    return day.weekday() < 5 and day not in _bank_holidays(day.year)


def add_working_days(day: date, n: int) -> date:
    """The date ``n`` working days after ``day`` (before it when ``n`` is negative).

    ``day`` itself never counts, so ``n == 0`` returns it unchanged.

    >>> add_working_days(date(2019, 12, 24), 1)
    datetime.date(2019, 12, 27)
    """
    step = timedelta(days=1 if n >= 0 else -1)
    remaining = abs(n)
    while remaining:
        day += step
        remaining -= is_working_day(day)
    return day


def working_days_between(start: date, end: date) -> int:
    """How many working days fall after ``start`` up to and including ``end`` (negative if reversed).

    >>> working_days_between(date(2019, 12, 20), date(2020, 1, 2))
    6
    """
    if end < start:
        return -working_days_between(end, start)
    return sum(is_working_day(start + timedelta(days=i)) for i in range(1, (end - start).days + 1))


def roll_forward(day: date) -> date:
    """``day`` if it is a working day, otherwise the next working day.

    >>> roll_forward(date(2019, 12, 25))
    datetime.date(2019, 12, 27)
    """
    return day if is_working_day(day) else add_working_days(day, 1)


def roll_back(day: date) -> date:
    """``day`` if it is a working day, otherwise the working day before it.

    >>> roll_back(date(2020, 2, 29))
    datetime.date(2020, 2, 28)
    """
    return day if is_working_day(day) else add_working_days(day, -1)


def _localise(wall: datetime) -> datetime:
    # The round trip through UTC moves a wall time in the spring gap to a real instant.
    return wall.replace(tzinfo=LONDON).astimezone(UTC).astimezone(LONDON)


@dataclass(frozen=True)
class IncidentRule:
    """How soon an incident must be reported: "24 hours", "immediately", "2 working days".

    Hours and minutes are elapsed time, so 24 hours across a clock change is 24 real hours.
    Days and working days keep the local time of day; working days skip weekends and bank
    holidays, counting from the day after the incident was opened.

    >>> opened = datetime(2019, 5, 24, 14, 0, tzinfo=LONDON)  # Friday before a bank holiday
    >>> parse_incident_rule("2 working days").deadline(opened).isoformat()
    '2019-05-29T14:00:00+01:00'
    """

    amount: int
    unit: IncidentUnit

    def deadline(self, opened_at: datetime) -> datetime:
        """The Europe/London moment by which the incident must be reported."""
        if opened_at.tzinfo is None or opened_at.utcoffset() is None:
            raise ValueError("opened_at must be timezone-aware")
        local = opened_at.astimezone(LONDON)
        if self.unit in ("minutes", "hours"):
            elapsed = timedelta(**{self.unit: self.amount})
            return (opened_at.astimezone(UTC) + elapsed).astimezone(LONDON)
        wall = local.replace(tzinfo=None)
        if self.unit == "working days":
            day = add_working_days(local.date(), self.amount)
            return _localise(datetime.combine(day, wall.time()))
        days = {"immediately": 0, "days": 1, "weeks": 7}[self.unit] * self.amount
        return _localise(wall + relativedelta(days=days)) if days else local

    def describe(self) -> str:
        if self.unit == "immediately":
            return "immediately"
        unit = self.unit[:-1] if self.amount == 1 else self.unit
        return f"within {self.amount} {unit}"


# No bare "m": in "3m" a reader cannot tell minutes from months.
_INCIDENT_UNITS: dict[str, IncidentUnit] = {
    "min": "minutes",
    "mins": "minutes",
    "minute": "minutes",
    "minutes": "minutes",
    "h": "hours",
    "hr": "hours",
    "hrs": "hours",
    "hour": "hours",
    "hours": "hours",
    "d": "days",
    "day": "days",
    "days": "days",
    "working day": "working days",
    "working days": "working days",
    "week": "weeks",
    "weeks": "weeks",
}
_INCIDENT_RE = re.compile(
    rf"^(?:within |no later than |no more than |up to )?(?P<n>{_NUM}) ?"
    rf"(?P<unit>{_alternation(_INCIDENT_UNITS)})$"
)
_IMMEDIATE = {"immediately", "at once", "straight away", "without delay", "0", "0 hours"}
# Seed 000 Table 5 (SUIs, near misses), seed 001 2.1.1(d) (interruption) and 2.6 (inspection).
DEFAULT_INCIDENT_RULES: Mapping[str, str] = {
    "sui": "24 hours",
    "near-miss": "72 hours",
    "interruption": "immediately",
    "inspection": "2 working days",
}


@lru_cache(maxsize=256)
def parse_incident_rule(text: str, field: str = "incidents") -> IncidentRule:
    """Read an incident reporting deadline; ``field`` names the setting in any error.

    >>> parse_incident_rule("72h").describe()
    'within 72 hours'
    """
    s = " ".join(re.sub(r"\((?:\d+|[a-z ]+)\)|[.,]", " ", text.lower()).split())
    s = s.replace("business day", "working day").replace("calendar day", "day")
    if s in _IMMEDIATE:
        return IncidentRule(0, "immediately")
    m = _INCIDENT_RE.match(s)
    if not m:
        raise CalendarError(
            _loc(field), text, f"is not a reporting deadline I can read; write {INCIDENT_FORMS}."
        )
    return IncidentRule(_number(m["n"]), _INCIDENT_UNITS[m["unit"]])


def incident_rules(overrides: Mapping[str, object] | None = None) -> dict[str, IncidentRule]:
    """The contract's incident deadlines: DESIGN.md's defaults, with the contract's own on top.

    Pass ``contract.incidents``; each kind maps to its deadline text, or to a mapping with a
    ``deadline`` key as the shipped contracts write it.

    >>> incident_rules({"sui": {"label": "SUI", "deadline": "48 hours"}})["sui"].describe()
    'within 48 hours'
    """
    rules = {kind: parse_incident_rule(text) for kind, text in DEFAULT_INCIDENT_RULES.items()}
    for kind, value in (overrides or {}).items():
        loc: Loc = ("incidents", kind)
        text = value
        if isinstance(value, Mapping):
            loc, text = (*loc, "deadline"), value.get("deadline")
        if not isinstance(text, str):
            raise CalendarError(loc, text, "should be text in quotes, like '24 hours'.")
        rules[kind] = parse_incident_rule(text, ".".join(map(str, loc)))
    return rules


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReminderSpec(_Strict):
    """When providers hear about a return: days before it is due, then while it is overdue.

    >>> ReminderSpec(before_days=(1, 7, 7)).before_days
    (7, 1)
    """

    before_days: tuple[int, ...] = (14, 7, 1)
    overdue_every_working_days: int = Field(default=1, ge=1)
    escalate_after_working_days: int = Field(default=5, ge=1)

    @field_validator("before_days")
    @classmethod
    def _before(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(d < 0 for d in value):
            raise CalendarError(
                ("calendar", "reminders", "before_days"),
                list(value),
                "must count days before the due date, so use 0 or more.",
            )
        return tuple(sorted(set(value), reverse=True))


class MeetingSpec(_Strict):
    """When performance meetings fall: a due rule read against each period, or the special
    rule "end of the month the return is due" (the last working day of that month, seed 001).
    ``monthly_in_first_year`` holds monthly reviews, on each month's last working day, through
    the first contract year before the per-period rule takes over (seed 003).

    >>> MeetingSpec(monthly_in_first_year=True).rule
    'end of the month the return is due'
    """

    rule: str = MEETING_RETURN_MONTH
    monthly_in_first_year: bool = False

    @field_validator("rule")
    @classmethod
    def _rule(cls, value: str) -> str:
        meeting_rule(value)
        return value


# Seed 001 words it "To be arrange[d] for the end of the month of the monitoring return".
_RETURN_MONTH_RE = re.compile(
    r"\bend of (?:the )?month (?:that |when |in which )?(?:the |of the |of )?"
    r"(?:monitoring )?return(?: is due)?$"
)


def meeting_rule(text: str) -> DueRule | None:
    """The meeting rule as a ``DueRule``, or None for "end of the month the return is due".

    >>> meeting_rule("To be arranged for the end of the month of the monitoring return") is None
    True
    """
    if _RETURN_MONTH_RE.search(" ".join(text.lower().split())):
        return None
    try:
        return parse_due_rule(text, "calendar.meetings.rule")
    except CalendarError:
        reason = (
            f"is not a meeting rule I can read; write '{MEETING_RETURN_MONTH}' "
            "or a due rule like '2nd Friday of the month after the period'."
        )
        raise CalendarError(("calendar", "meetings", "rule"), text, reason) from None


class AnnualReturnSpec(_Strict):
    """An annual return beside the periodic ones. ``year_start_month`` is the year it covers;
    it defaults to the contract's financial year (April).

    >>> AnnualReturnSpec(due="no later than 30 April").name
    'annual return'
    """

    name: str = "annual return"
    due: str
    year_start_month: int | None = Field(default=None, ge=1, le=12)

    @field_validator("due")
    @classmethod
    def _due(cls, value: str) -> str:
        parse_due_rule(value, "calendar.annual_return.due")
        return value


class CalendarSpec(_Strict):
    """The ``calendar:`` section of a contract. Build it with ``parse_calendar_spec``.

    ``periods`` and ``year_start_month`` default to the contract's ``reporting`` section.
    ``due_dates`` (period label to date) overrides ``due`` and is taken exactly as written,
    because a contract that prints a date means that date. ``roll_forward`` moves a date from
    the ``due`` rule off weekends and bank holidays. ``due_time`` is Europe/London local time
    and defaults to 23:59: "by 15 February" allows all of 15 February, so nothing filed on the
    day counts as late. ``summary_grace_days`` is how long after a due date the board summary
    waits for late returns.

    >>> spec = parse_calendar_spec({"due": "15th of the month after the period"})
    >>> spec.due_time.isoformat(), spec.roll_forward
    ('23:59:00', False)
    """

    periods: PeriodKind | None = None
    year_start_month: int | None = Field(default=None, ge=1, le=12)
    due: str | None = None
    due_dates: dict[str, date] = Field(default_factory=dict)
    roll_forward: bool = False
    due_time: time = time(23, 59)
    annual_return: AnnualReturnSpec | None = None
    meetings: MeetingSpec | None = None
    reminders: ReminderSpec = Field(default_factory=ReminderSpec)
    summary_grace_days: int = Field(default=5, ge=0)

    @field_validator("due")
    @classmethod
    def _due(cls, value: str | None) -> str | None:
        if value is not None:
            parse_due_rule(value, "calendar.due")
        return value

    @field_validator("due_dates", mode="before")
    @classmethod
    def _due_dates(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, Mapping):
            return value
        ysm = info.data.get("year_start_month")
        table: dict[str, date] = {}
        for key, when in value.items():
            loc = ("calendar", "due_dates", str(key))
            try:
                label = _period_label(str(key), ysm)
            except PeriodError:
                raise CalendarError(
                    loc, key, "is not a period label; write it like '2018/19 Q2' or '2019-07'."
                ) from None
            if label in table:
                raise CalendarError(loc, key, "repeats a period already in due_dates.")
            table[label] = _table_date(when, loc)
        return table

    @field_validator("due_time", mode="before")
    @classmethod
    def _due_time(cls, value: object) -> time:
        parsed = value if isinstance(value, time) else _time_of_day(value)
        if parsed is None:
            # YAML reads an unquoted 17:00 as the number 1020, hence the advice to quote.
            raise CalendarError(
                ("calendar", "due_time"),
                value,
                "is not a time of day; write it in quotes, like '17:00'.",
            )
        return parsed

    @field_validator("annual_return", mode="before")
    @classmethod
    def _annual_shorthand(cls, value: object) -> object:
        return {"due": value} if isinstance(value, str) else value

    @cached_property
    def due_rule(self) -> DueRule | None:
        """The parsed ``due`` rule, or None when only the ``due_dates`` table is given."""
        return None if self.due is None else parse_due_rule(self.due)


def _time_of_day(value: object) -> time | None:
    """Read '09:00', '9:30', '5pm' or '5:30 pm'; None for anything else."""
    m = re.fullmatch(r"(\d{1,2})(?::(\d{2}))? ?([ap]m)?", str(value).strip().lower())
    if not isinstance(value, str) or not m or not (m[2] or m[3]):
        return None
    hour, minute = int(m[1]), int(m[2] or 0)
    if m[3]:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if m[3] == "pm" else 0)
    return time(hour, minute) if hour < 24 and minute < 60 else None


def _period_label(text: str, year_start_month: int | None) -> str:
    # Without the contract, try financial then calendar years; ReturnCalendar checks again.
    try:
        return _parse_period(text, year_start_month or 4).label
    except PeriodError:
        if year_start_month is not None:
            raise
        return _parse_period(text, 1).label


@lru_cache(maxsize=4096)
def _parse_period(text: str, year_start_month: int) -> Period:
    return parse_period(text, year_start_month)


_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_UK_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_WORDS_DATE = re.compile(rf"(\d{{1,2}})(?:st|nd|rd|th)? ({_alternation(_MONTHS)}) (\d{{4}})")


def _table_date(value: object, loc: Loc) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    text = " ".join(str(value).lower().split())
    iso, uk, words = (pattern.fullmatch(text) for pattern in (_ISO_DATE, _UK_DATE, _WORDS_DATE))
    try:
        if iso:
            return date(int(iso[1]), int(iso[2]), int(iso[3]))
        if uk:
            return date(int(uk[3]), int(uk[2]), int(uk[1]))
        if words:
            return date(int(words[3]), _MONTHS[words[2]], int(words[1]))
    except ValueError:
        raise CalendarError(loc, value, "is not a real date; check the day and month.") from None
    raise CalendarError(loc, value, "is not a date; write it like 2018-10-13 or '13 October 2018'.")


_SUBMODELS: dict[Loc, type[BaseModel]] = {
    (): CalendarSpec,
    ("reminders",): ReminderSpec,
    ("meetings",): MeetingSpec,
    ("annual_return",): AnnualReturnSpec,
}


def parse_calendar_spec(data: Mapping[str, Any]) -> CalendarSpec:
    """Validate a contract's ``calendar:`` mapping; any problem raises one ``CalendarError``.

    >>> parse_calendar_spec({"due": "15th of the month after the period"}).due_rule.describe()
    'the 15th of the month after the period'
    """
    try:
        return CalendarSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        original = err.get("ctx", {}).get("error")
        if isinstance(original, CalendarError):
            raise original from None
        loc: Loc = ("calendar", *err["loc"])
        if err["type"] == "missing":
            raise CalendarError(loc, None, "is required.") from None
        if err["type"] == "extra_forbidden":
            model = _SUBMODELS.get(tuple(err["loc"][:-1]), CalendarSpec)
            known = ", ".join(model.model_fields)
            raise CalendarError(loc, None, f"is not a setting I know; use {known}.") from None
        reason = err["msg"][:1].lower() + err["msg"][1:]
        raise CalendarError(loc, err.get("input"), f"is not valid: {reason}.") from None


@dataclass(frozen=True)
class DueReturn:
    """One return a provider owes: which period, when, and whether periodic or annual.

    ``due_at`` is a Europe/London datetime; compare or subtract such moments in UTC, because
    Python ignores the offset when both sides share a tzinfo.
    """

    period: Period
    due_date: date
    due_at: datetime
    kind: ReturnKind
    name: str


@dataclass(frozen=True)
class Meeting:
    """A scheduled performance review for ``period``; ``kind`` is its frequency."""

    period: Period
    day: date
    kind: ReturnKind

    @property
    def label(self) -> str:
        return f"{self.kind} performance review for {self.period.label}"


# Ten thousand contracts share a handful of rules and periods, and relativedelta arithmetic is
# slow enough to matter at that scale, so periods and rule dates are computed once each.
@lru_cache(maxsize=4096)
def _periods(kind: PeriodKind, year_start_month: int, start: date, end: date) -> tuple[Period, ...]:
    if end < start:
        return ()
    period = period_containing(start, kind, year_start_month)
    periods: list[Period] = []
    while period.start <= end:
        periods.append(period)
        period = period.shift(1)
    return tuple(periods)


@lru_cache(maxsize=65536)
def _rule_date(
    rule: DueRule, kind: PeriodKind, start: date, year_start_month: int, roll: bool
) -> date:
    due = rule.due_date(make_period(kind, start, year_start_month))
    return roll_forward(due) if roll else due


@lru_cache(maxsize=4096)
def _last_working_day_of_month(first: date) -> date:
    return roll_back(first + relativedelta(day=31))


class ReturnCalendar:
    """A contract's reporting calendar: its periods, due dates and moments, returns and meetings.

    >>> from kpibot.engine.model import Contract
    >>> c = Contract.model_validate({
    ...     "id": "demo", "name": "Demo", "commissioner": {"name": "C"}, "provider": {"name": "P"},
    ...     "contract_years": [{"year": 1, "start": "2019-11-01", "end": "2020-10-31"}],
    ...     "reporting": {"period": "quarter", "year_start_month": 11},
    ...     "kpis": [{"code": "1", "name": "Reviews", "target": "95%"}],
    ...     "calendar": {"due": "15th of the month directly after the reporting period"},
    ... })
    >>> cal = ReturnCalendar(c)
    >>> [(r.period.label, r.due_date.isoformat()) for r in cal.returns_due_between(
    ...     date(2020, 1, 1), date(2020, 6, 30))]
    [('2019/20 Q1', '2020-02-15'), ('2019/20 Q2', '2020-05-15')]
    """

    def __init__(self, contract: Contract, spec: CalendarSpec | None = None) -> None:
        self.contract = contract
        self.spec = spec if spec is not None else parse_calendar_spec(contract.calendar)
        self.kind: PeriodKind = self.spec.periods or contract.reporting.period
        self.year_start_month = self.spec.year_start_month or contract.reporting.year_start_month
        self._table = self._check_table()
        annual = self.spec.annual_return
        if annual is not None and self.kind == "year":
            raise CalendarError(
                ("calendar", "annual_return"),
                annual.due,
                "repeats the yearly returns; remove it or report by quarter.",
            )
        if self.spec.due_rule is None:
            missing = [p.label for p in self.all_periods if p.label not in self._table]
            if missing:
                raise CalendarError(
                    ("calendar", "due"),
                    None,
                    f"is missing and due_dates has no date for {missing[0]}; "
                    "add a rule like '15th of the month after the period' or the missing dates.",
                )

    @classmethod
    def for_contract(cls, contract: Contract) -> ReturnCalendar | None:
        """The contract's calendar, or None when its YAML has no ``calendar:`` section."""
        return cls(contract) if contract.calendar else None

    def _check_table(self) -> dict[str, date]:
        table: dict[str, date] = {}
        for key, when in self.spec.due_dates.items():
            loc = ("calendar", "due_dates", key)
            try:
                period = _parse_period(key, self.year_start_month)
            except PeriodError as exc:
                raise CalendarError(loc, key, f"is not a period of this contract: {exc}") from None
            if period.kind != self.kind:
                raise CalendarError(
                    loc, key, f"is a {period.kind}, but returns are by {self.kind}."
                )
            if not self.contract.covers(period):
                raise CalendarError(loc, key, "falls outside the contract years.")
            table[period.label] = when
        return table

    @cached_property
    def all_periods(self) -> tuple[Period, ...]:
        """Every reporting period that overlaps the contract's years."""
        return _periods(self.kind, self.year_start_month, self.contract.start, self.contract.end)

    def periods_between(self, start: date, end: date) -> list[Period]:
        """Contract periods that overlap ``start`` to ``end`` (inclusive)."""
        return [p for p in self.all_periods if p.start <= end and start <= p.end]

    def due_date(self, period: Period) -> date:
        """When ``period``'s return is due: the table's date, else the rule's (rolled if asked)."""
        own = period
        if period.kind != self.kind or period.year_start_month != self.year_start_month:
            own = period_containing(period.start, self.kind, self.year_start_month)
        if own != period or (own.start.month - self.year_start_month) % own.months:
            raise CalendarError(
                ("period",), period.label, f"does not match this contract's {self.kind}s."
            )
        if own.label in self._table:
            return self._table[own.label]
        rule = self.spec.due_rule
        if rule is None:
            raise CalendarError(("calendar", "due_dates"), own.label, "has no due date.")
        return _rule_date(rule, own.kind, own.start, self.year_start_month, self.spec.roll_forward)

    def due_at(self, period: Period) -> datetime:
        """The Europe/London moment the return for ``period`` is due."""
        return self._moment(self.due_date(period))

    def _moment(self, day: date) -> datetime:
        return _localise(datetime.combine(day, self.spec.due_time))

    def summary_date(self, period: Period) -> date:
        """When the board summary for ``period`` goes out, after the grace for late returns."""
        return self.due_date(period) + timedelta(days=self.spec.summary_grace_days)

    @cached_property
    def _returns(self) -> list[DueReturn]:
        kind = _KIND_WORD[self.kind]
        out: list[DueReturn] = []
        for period in self.all_periods:
            due = self.due_date(period)
            out.append(DueReturn(period, due, self._moment(due), kind, f"{kind} return"))
        annual = self.spec.annual_return
        if annual is not None:
            rule = parse_due_rule(annual.due, "calendar.annual_return.due")
            ysm = annual.year_start_month or self.contract.financial_year_start_month
            for year in _periods("year", ysm, self.contract.start, self.contract.end):
                due = _rule_date(rule, "year", year.start, ysm, self.spec.roll_forward)
                out.append(DueReturn(year, due, self._moment(due), "annual", annual.name))
        return sorted(out, key=lambda r: (r.due_date, r.period.start))

    def returns_due_between(self, start: date, end: date) -> list[DueReturn]:
        """Returns (periodic and annual) whose due date falls from ``start`` to ``end`` inclusive."""
        return [r for r in self._returns if start <= r.due_date <= end]

    @cached_property
    def _meetings(self) -> list[Meeting]:
        spec = self.spec.meetings
        if spec is None:
            return []
        first = min(self.contract.contract_years, key=lambda y: y.start)
        monthly_until = first.end if spec.monthly_in_first_year else date.min
        meetings = [
            Meeting(month, _last_working_day_of_month(month.start), "monthly")
            for month in _periods("month", self.year_start_month, first.start, monthly_until)
        ]
        rule = meeting_rule(spec.rule)
        for period in self.all_periods:
            if rule is None:
                day = _last_working_day_of_month(self.due_date(period).replace(day=1))
            else:
                day = _rule_date(rule, period.kind, period.start, self.year_start_month, True)
            if day > monthly_until:
                meetings.append(Meeting(period, day, _KIND_WORD[self.kind]))
        return sorted(meetings, key=lambda m: m.day)

    def meetings_between(self, start: date, end: date) -> list[Meeting]:
        """Performance meetings dated from ``start`` to ``end`` inclusive."""
        return [m for m in self._meetings if start <= m.day <= end]


# ------------------------------------------------------------------ each contract's calendar

_CALENDARS: dict[int, tuple[Contract, ReturnCalendar | None]] = {}


def calendar_for(contract: Contract) -> ReturnCalendar | None:
    """The contract's calendar, or None when the contract sets no return dates."""
    hit = _CALENDARS.get(id(contract))
    if hit is None:
        cal = ReturnCalendar(contract) if contract.calendar else None
        if len(_CALENDARS) > 512:
            _CALENDARS.clear()
        hit = _CALENDARS[id(contract)] = (contract, cal)
    return hit[1]


def due_date_for(contract: Contract, period: Period) -> date | None:
    cal = calendar_for(contract)
    if cal is None or period.kind != contract.reporting.period:
        return None
    return cal.due_date(period)
