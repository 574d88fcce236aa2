"""Subscriptions as rules: what a watch hears, when digests go out, how long a mute lasts.

* A **watch** names a contract, optionally a KPI, and what to hear about: ``red`` (turned red,
  red periods running, and the all-clear), ``critical`` (critical failures and their all-clear),
  ``money`` (money newly at risk or withheld), ``any-change`` (every figure that arrives or
  changes, and every alert), or, by default, every alert.
* A **digest** goes out at 09:00 Europe/London on working days: ``daily`` every working day,
  ``weekly`` on the first working day of the week, ``monthly`` on the first working day of the
  month (bank holidays of England and Wales are skipped).
* A **mute** lasts a duration written ``30m``, ``2h``, ``3d``, ``1w`` (or words: ``2 hours``).

>>> hears("red", "alert_red"), hears("red", "alert_money"), hears("alerts", "alert_change")
(True, False, False)
>>> [d.isoformat() for d in digest_days("weekly", date(2020, 4, 6), date(2020, 4, 20))]  # Easter Monday 13th
['2020-04-06', '2020-04-14', '2020-04-20']
>>> parse_duration("2h"), parse_duration("1w")
(datetime.timedelta(seconds=7200), datetime.timedelta(days=7))
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from kpibot.engine.calendar import LONDON, is_working_day
from kpibot.engine.reminders import at

WATCH_FILTERS = ("red", "critical", "any-change", "money")
DEFAULT_FILTER = "alerts"
FREQUENCIES = ("daily", "weekly", "monthly")
# What each filter hears, by message kind.
_HEARS: dict[str, frozenset[str]] = {
    "red": frozenset({"alert_red", "alert_red_run", "alert_clear"}),
    "critical": frozenset({"alert_critical", "alert_clear"}),
    "money": frozenset({"alert_money"}),
    "alerts": frozenset(
        {"alert_critical", "alert_red", "alert_red_run", "alert_money", "alert_clear"}
    ),
}
_HEARS["any-change"] = _HEARS["alerts"] | {"alert_change"}
FILTER_WORDS = {
    "red": "turning red and red periods running",
    "critical": "critical failures",
    "money": "money at risk or withheld",
    "any-change": "every change",
    "alerts": "every alert",
}
MAX_MUTE = timedelta(days=90)
_UNITS = {
    "m": timedelta(minutes=1),
    "min": timedelta(minutes=1),
    "mins": timedelta(minutes=1),
    "minute": timedelta(minutes=1),
    "minutes": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "hr": timedelta(hours=1),
    "hrs": timedelta(hours=1),
    "hour": timedelta(hours=1),
    "hours": timedelta(hours=1),
    "d": timedelta(days=1),
    "day": timedelta(days=1),
    "days": timedelta(days=1),
    "w": timedelta(weeks=1),
    "wk": timedelta(weeks=1),
    "week": timedelta(weeks=1),
    "weeks": timedelta(weeks=1),
}
_DURATION = re.compile(r"^\s*(\d{1,4})\s*([a-z]+)\s*$")


def hears(what: str, kind: str) -> bool:
    """Whether a watch for ``what`` hears a message of ``kind``."""
    return kind in _HEARS.get(what, frozenset())


def kinds_heard(what: str) -> frozenset[str]:
    """Every message kind a watch for ``what`` hears."""
    return _HEARS.get(what, frozenset())


def parse_duration(text: str) -> timedelta | None:
    """'2h', '3 days', '1w' as a timedelta; None when it is not a duration (or over 90 days)."""
    m = _DURATION.match(text.lower())
    if m is None or m.group(2) not in _UNITS:
        return None
    span = int(m.group(1)) * _UNITS[m.group(2)]
    return span if timedelta(0) < span <= MAX_MUTE else None


def _is_send_day(frequency: str, day: date) -> bool:
    if not is_working_day(day):
        return False
    if frequency == "daily":
        return True
    first = day.replace(day=1) if frequency == "monthly" else day - timedelta(days=day.weekday())
    probe = first
    while probe < day:
        if is_working_day(probe):
            return False
        probe += timedelta(days=1)
    return True


def digest_days(frequency: str, start: date, end: date) -> list[date]:
    """The days from ``start`` to ``end`` (inclusive) a ``frequency`` digest goes out."""
    if frequency not in FREQUENCIES:
        raise ValueError(f"digest frequency must be one of {', '.join(FREQUENCIES)}")
    out = []
    day = start
    while day <= end:
        if _is_send_day(frequency, day):
            out.append(day)
        day += timedelta(days=1)
    return out


def digest_moments(frequency: str, start: datetime, end: datetime) -> list[datetime]:
    """The 09:00 Europe/London moments in ``(start, end]`` a ``frequency`` digest goes out."""
    first = start.astimezone(LONDON).date()
    last = end.astimezone(LONDON).date()
    return [m for d in digest_days(frequency, first, last) if start < (m := at(d)) <= end]


def next_digest(frequency: str, after: datetime) -> datetime:
    """The first digest moment after ``after`` (within the next 40 days)."""
    found = digest_moments(frequency, after, after + timedelta(days=40))
    if not found:
        raise ValueError(f"no {frequency} digest day within 40 days of {after:%Y-%m-%d}")
    return found[0]
