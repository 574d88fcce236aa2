"""Reporting periods: financial-year quarters, years and months, in the contract's own labels.

A period is a closed date range with a kind and a label. Labels follow the seeds:
``2019/20 Q3`` (a quarter of a reporting year), ``2019/20`` (a reporting year) and
``2019-07`` (a calendar month). The reporting year starts in ``year_start_month``: April for
financial years, November for seed 001's Nov–Jan quarters.

>>> p = parse_period("2019/20 Q3")
>>> (p.start.isoformat(), p.end.isoformat())
('2019-10-01', '2019-12-31')
>>> parse_period("2019/20 Q1", year_start_month=11).end.isoformat()
'2020-01-31'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Literal

from dateutil.relativedelta import relativedelta

PeriodKind = Literal["quarter", "year", "month"]

_MONTHS = {
    m: i
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for m in names
}

_YEAR = r"(?P<y1>\d{4})(?:\s*[/-]\s*(?P<y2>\d{2}|\d{4}))?"
_QUARTER_RE = re.compile(
    rf"^(?:{_YEAR}\s*(?:q|qtr|quarter)\s*(?P<q>[1-4])|(?:q|qtr|quarter)\s*(?P<qb>[1-4])\s*(?P<yb1>\d{{4}})(?:\s*[/-]\s*(?P<yb2>\d{{2}}|\d{{4}}))?)$",
    re.IGNORECASE,
)
_YEAR_RE = re.compile(rf"^(?:fy\s*)?{_YEAR}$", re.IGNORECASE)
_MONTH_RE = re.compile(r"^(?P<y>\d{4})-(?P<m>\d{1,2})$")
_MONTH_NAME_RE = re.compile(r"^(?P<m>[a-z]+)\.?\s+(?P<y>\d{4})$", re.IGNORECASE)


class PeriodError(ValueError):
    """A period label that cannot be read, with a hint on the accepted forms."""


# Reporting years kpibot reads. Contracts run for years, not centuries, so a year outside these is
# a typing slip ('9999/00 Q4', '0000/01 Q1'), refused in one sentence rather than left to fail as
# a date the calendar cannot hold.
MIN_YEAR = 1900
MAX_YEAR = 2999
OUT_OF_RANGE = (
    "'{raw}' is outside the years kpibot reads ({low} to {high}); check the year and write it "
    "like '2019/20 Q3'."
)


def _in_range(raw: str, *years: int) -> None:
    if any(not MIN_YEAR <= year <= MAX_YEAR for year in years):
        raise PeriodError(OUT_OF_RANGE.format(raw=raw, low=MIN_YEAR, high=MAX_YEAR))


@dataclass(frozen=True, order=True)
class Period:
    """A reporting period: ``start`` and ``end`` are inclusive dates."""

    start: date
    end: date
    kind: PeriodKind = field(compare=False)
    label: str = field(compare=False)
    year_start_month: int = field(default=4, compare=False)

    def __str__(self) -> str:
        return self.label

    @property
    def year_start(self) -> int:
        """The calendar year in which this period's reporting year begins."""
        ysm = self.year_start_month
        return self.start.year if self.start.month >= ysm else self.start.year - 1

    @property
    def months(self) -> int:
        return {"quarter": 3, "year": 12, "month": 1}[self.kind]

    @property
    def ordinal(self) -> int:
        """A dense integer index: consecutive periods of one kind differ by one."""
        months = self.start.year * 12 + self.start.month - 1
        if self.kind == "month":
            return months
        return (months - self.year_start_month + 1) // self.months

    def shift(self, n: int) -> Period:
        """The period ``n`` steps later (or earlier, for negative ``n``) of the same kind."""
        start = self.start + relativedelta(months=self.months * n)
        return make_period(self.kind, start, self.year_start_month)

    def previous(self) -> Period:
        return self.shift(-1)

    def same_period_last_year(self) -> Period:
        return self.shift(-(12 // self.months))

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end

    def within(self, other: Period) -> bool:
        return other.start <= self.start and self.end <= other.end

    def reporting_year(self) -> Period:
        """The reporting year that holds this period."""
        return make_period(
            "year", date(self.year_start, self.year_start_month, 1), self.year_start_month
        )

    def quarter_number(self) -> int:
        return ((self.start.month - self.year_start_month) % 12) // 3 + 1


def year_label(start_year: int, year_start_month: int) -> str:
    if year_start_month == 1:
        return str(start_year)
    return f"{start_year}/{(start_year + 1) % 100:02d}"


# Periods are immutable and few (a contract's quarters, months and years), while status and
# scorecards ask for the same ones on every evaluation: each is worked out once.
PERIOD_CACHE_SIZE = 8192


@lru_cache(maxsize=PERIOD_CACHE_SIZE)
def make_period(kind: PeriodKind, start: date, year_start_month: int = 4) -> Period:
    """Build the period of ``kind`` that begins on ``start`` (the first of a month)."""
    start = start.replace(day=1)
    months = {"quarter": 3, "year": 12, "month": 1}[kind]
    end = start + relativedelta(months=months) - timedelta(days=1)
    ys = start.year if start.month >= year_start_month else start.year - 1
    if kind == "month":
        label = f"{start.year}-{start.month:02d}"
    elif kind == "year":
        label = year_label(ys, year_start_month)
    else:
        q = ((start.month - year_start_month) % 12) // 3 + 1
        label = f"{year_label(ys, year_start_month)} Q{q}"
    return Period(start, end, kind, label, year_start_month)


def period_containing(day: date, kind: PeriodKind, year_start_month: int = 4) -> Period:
    """The period of ``kind`` that contains ``day``."""
    if kind == "month":
        return make_period("month", day, year_start_month)
    offset = (day.month - year_start_month) % 12
    if kind == "quarter":
        offset %= 3
    return make_period(
        kind, date(day.year, day.month, 1) - relativedelta(months=offset), year_start_month
    )


def _start_year(y1: str, y2: str | None, raw: str) -> int:
    start = int(y1)
    _in_range(raw, start)
    if y2 is not None:
        second = int(y2) if len(y2) == 4 else (start // 100) * 100 + int(y2)
        if len(y2) == 2 and second < start:
            second += 100
        if second != start + 1:
            raise PeriodError(
                f"'{y1}/{y2}' is not a reporting year: the second year must follow the first."
            )
    return start


@lru_cache(maxsize=PERIOD_CACHE_SIZE)
def parse_period(text: str, year_start_month: int = 4) -> Period:
    """Read a period label: ``2019/20 Q3``, ``Q3 2019/20``, ``2019/20``, ``2019-07`` or ``Jul 2019``."""
    raw = " ".join(str(text).split())
    if not raw:
        raise PeriodError(
            "The period is empty; write it like '2019/20 Q3', '2019/20' or '2019-07'."
        )
    m = _QUARTER_RE.match(raw)
    if m:
        y1, y2, q = (m["y1"], m["y2"], m["q"]) if m["y1"] else (m["yb1"], m["yb2"], m["qb"])
        if y2 is None and year_start_month != 1:
            raise PeriodError(
                f"'{raw}' names a quarter without its reporting year; write it like '{int(y1)}/"
                f"{(int(y1) + 1) % 100:02d} Q{q}'."
            )
        ys = _start_year(y1, y2, raw)
        start = date(ys, year_start_month, 1) + relativedelta(months=3 * (int(q) - 1))
        return make_period("quarter", start, year_start_month)
    m = _MONTH_RE.match(raw)
    if m and 1 <= int(m["m"]) <= 12:
        _in_range(raw, int(m["y"]))
        return make_period("month", date(int(m["y"]), int(m["m"]), 1), year_start_month)
    m = _YEAR_RE.match(raw)
    if m and (m["y2"] is not None or year_start_month == 1):
        return make_period(
            "year", date(_start_year(m["y1"], m["y2"], raw), year_start_month, 1), year_start_month
        )
    m = _MONTH_NAME_RE.match(raw)
    if m and m["m"].lower() in _MONTHS:
        _in_range(raw, int(m["y"]))
        return make_period("month", date(int(m["y"]), _MONTHS[m["m"].lower()], 1), year_start_month)
    raise PeriodError(
        f"'{raw}' is not a period I can read; write a quarter as '2019/20 Q3', a year as '2019/20' "
        "or a month as '2019-07'."
    )


# ------------------------------------------------------------------ reporting frequency words

# Durations inside a frequency ("after at least 6 months, thereafter annually") are not how often
# a figure is reported; they are dropped before the period words are looked for.
_DURATION_RE = re.compile(
    r"\b(?:\d+|one|two|three|four|six|nine|twelve|eighteen)\s*(?:-\s*)?(?:calendar\s+)?"
    r"(?:months?|quarters?|years?)\b(?!\s*-?\s*ly)",
    re.IGNORECASE,
)
# Periods kpibot does not track: a figure reported so is refused, not filed under another kind.
_UNTRACKED_RE = re.compile(
    r"\b(?:(?:six|6|two|2)\s*-?\s*monthly|bi-?monthly|bi-?annual(?:ly)?"
    r"|semi-?annual(?:ly)?|half[\s-]*year(?:ly)?|twice\s+(?:a|per|each|every)\s+year"
    r"|every\s+(?:six|6|two|2|other)\s+months?|daily|weekly|fortnightly|termly"
    r"|each\s+term|per\s+term|every\s+(?:day|week|term))\b",
    re.IGNORECASE,
)
_FREQUENCY_WORDS: tuple[tuple[PeriodKind, re.Pattern[str]], ...] = (
    (
        "quarter",
        re.compile(r"\bevery\s+(?:three|3)\s+months\b|\b(?:three|3)\s*-?\s*monthly\b", re.I),
    ),
    ("year", re.compile(r"\bevery\s+(?:twelve|12)\s+months\b|\bevery\s+year\b", re.I)),
    ("month", re.compile(r"\b(?:monthly|months?|per\s+month)\b", re.IGNORECASE)),
    ("quarter", re.compile(r"\b(?:quarterly|quarters?|per\s+quarter)\b", re.IGNORECASE)),
    (
        "year",
        re.compile(r"\b(?:annual(?:ly)?|yearly|years?|per\s+annum|ncmp|annum)\b", re.IGNORECASE),
    ),
)
UNTRACKED_FREQUENCY = (
    "frequency '{text}' names '{words}', a period kpibot does not track (it tracks months, "
    "quarters and years); write the period the figure is reported for, such as 'Quarterly' or "
    "'Annually', and keep the contract's words in a note"
)


@lru_cache(maxsize=1024)
def frequency_kind(text: str) -> PeriodKind | None:
    """The period kind a KPI's frequency words name, the most frequent when several are named
    ("Quarterly & Annually" is quarterly); None when they name none ("In line with Ofsted
    Framework": as the contract reports). A period kpibot does not track ("Six-monthly",
    "Weekly", "Termly") raises ``PeriodError`` naming the words rather than being read as
    another kind.

    >>> frequency_kind("Quarterly & Annually"), frequency_kind("after at least 6 months, thereafter annually")
    ('quarter', 'year')
    >>> frequency_kind("Six-monthly")
    Traceback (most recent call last):
        ...
    kpibot.engine.periods.PeriodError: frequency 'Six-monthly' names 'Six-monthly', a period kpibot does not track (it tracks months, quarters and years); write the period the figure is reported for, such as 'Quarterly' or 'Annually', and keep the contract's words in a note
    """
    text = " ".join(text.split())  # single spaces: the patterns' optional gaps cannot backtrack
    untracked = _UNTRACKED_RE.search(text)
    if untracked:
        raise PeriodError(UNTRACKED_FREQUENCY.format(text=text.strip(), words=untracked.group(0)))
    for kind, pattern in _FREQUENCY_WORDS[:2]:  # "every 3 months": before durations go
        if pattern.search(text):
            return kind
    words = _DURATION_RE.sub(" ", text)
    found = {kind for kind, pattern in _FREQUENCY_WORDS[2:] if pattern.search(words)}
    return next((kind for kind in ("month", "quarter", "year") if kind in found), None)
