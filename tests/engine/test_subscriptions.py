"""Subscription rules: what a watch hears, when digests go out, how long a mute lasts."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from kpibot.engine.calendar import LONDON
from kpibot.engine.subscriptions import (
    digest_days,
    digest_moments,
    hears,
    kinds_heard,
    next_digest,
    parse_duration,
)


def test_each_watch_hears_its_own_kinds() -> None:
    assert hears("red", "alert_red") and hears("red", "alert_red_run")
    assert hears("red", "alert_clear") and not hears("red", "alert_critical")
    assert hears("critical", "alert_critical") and not hears("critical", "alert_money")
    assert hears("money", "alert_money") and not hears("money", "alert_red")
    assert kinds_heard("any-change") == kinds_heard("alerts") | {"alert_change"}
    assert not hears("alerts", "alert_change") and not hears("alerts", "digest")
    assert kinds_heard("nonsense") == frozenset()


def test_daily_digests_skip_weekends_and_bank_holidays() -> None:
    days = digest_days("daily", date(2019, 12, 23), date(2020, 1, 3))
    assert days == [
        date(2019, 12, 23),
        date(2019, 12, 24),
        date(2019, 12, 27),
        date(2019, 12, 30),
        date(2019, 12, 31),
        date(2020, 1, 2),
        date(2020, 1, 3),
    ]


def test_weekly_digests_go_out_on_the_first_working_day_of_the_week() -> None:
    # Easter Monday (13 April 2020) moves that week's digest to the Tuesday.
    assert digest_days("weekly", date(2020, 4, 6), date(2020, 4, 26)) == [
        date(2020, 4, 6),
        date(2020, 4, 14),
        date(2020, 4, 20),
    ]


def test_monthly_digests_go_out_on_the_first_working_day_of_the_month() -> None:
    assert digest_days("monthly", date(2019, 12, 1), date(2020, 3, 31)) == [
        date(2019, 12, 2),  # 1 December 2019 was a Sunday
        date(2020, 1, 2),  # New Year's Day is a bank holiday
        date(2020, 2, 3),
        date(2020, 3, 2),
    ]
    with pytest.raises(ValueError):
        digest_days("hourly", date(2020, 1, 1), date(2020, 1, 2))


def test_digest_moments_are_09_00_london_inside_the_window() -> None:
    start = datetime(2020, 1, 6, 9, 0, tzinfo=LONDON)  # the Monday digest itself: excluded
    end = datetime(2020, 1, 13, 9, 0, tzinfo=LONDON)  # the next one: included
    assert digest_moments("weekly", start, end) == [end]
    assert digest_moments("weekly", start, end - timedelta(minutes=1)) == []
    summer = digest_moments(
        "daily", datetime(2020, 6, 30, 12, tzinfo=LONDON), datetime(2020, 7, 1, 12, tzinfo=LONDON)
    )
    assert [m.astimezone(LONDON).hour for m in summer] == [9]  # BST: still 09:00 local
    assert next_digest("monthly", end) == datetime(2020, 2, 3, 9, 0, tzinfo=LONDON)


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        ("2 hours", timedelta(hours=2)),
        ("1 WEEK", timedelta(weeks=1)),
        ("90d", timedelta(days=90)),
    ],
)
def test_mute_durations(text: str, span: timedelta) -> None:
    assert parse_duration(text) == span


@pytest.mark.parametrize("text", ["", "soon", "0h", "91d", "2 fortnights", "-1d", "h2"])
def test_mute_durations_that_are_refused(text: str) -> None:
    assert parse_duration(text) is None
