"""Reporting calendars, due-rule grammar, working days and incident deadlines, against the seeds."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from kpibot.engine.calendar import (
    LONDON,
    AnnualDateRule,
    CalendarError,
    DayOfMonthRule,
    OffsetRule,
    ReturnCalendar,
    add_working_days,
    incident_rules,
    is_working_day,
    parse_calendar_spec,
    parse_due_rule,
    parse_incident_rule,
    roll_back,
    roll_forward,
    working_days_between,
)
from kpibot.engine.model import Contract
from kpibot.engine.periods import make_period, parse_period

# Seed 003, section 4a, transcribed as printed (the "Date report due" column).
SEED_003_CALENDAR = """
periods: quarter
due: "2nd Friday of the month after the period"
due_dates:
  "2018/19 Q2": 13th October 2018
  "2018/19 Q3": 11th  Jan 2019
  "2018/19 Q4": 12th April 2019
  "2019/20 Q1": 12th  July 2019
  "2019/20 Q2": 11th October 2019
  "2019/20 Q3": 10th  Jan 2020
  "2019/20 Q4": 10th April 2020
  "2020/21 Q1": 10th  July 2020
  "2020/21 Q2": 9th October 2020
  "2020/21 Q3": 8th  Jan 2021
  "2020/21 Q4": 9th April 2021
  "2021/22 Q1": 30th June  2021
meetings:
  rule: "end of the month the return is due"
  monthly_in_first_year: true
"""
SEED_003_DUE = [
    ("2018/19 Q2", date(2018, 10, 13)),
    ("2018/19 Q3", date(2019, 1, 11)),
    ("2018/19 Q4", date(2019, 4, 12)),
    ("2019/20 Q1", date(2019, 7, 12)),
    ("2019/20 Q2", date(2019, 10, 11)),
    ("2019/20 Q3", date(2020, 1, 10)),
    ("2019/20 Q4", date(2020, 4, 10)),
    ("2020/21 Q1", date(2020, 7, 10)),
    ("2020/21 Q2", date(2020, 10, 9)),
    ("2020/21 Q3", date(2021, 1, 8)),
    ("2020/21 Q4", date(2021, 4, 9)),
    ("2021/22 Q1", date(2021, 6, 30)),
]
SEED_001_CALENDAR = {
    "periods": "quarter",
    "year_start_month": 11,
    "due": "15th of the month directly after the reporting period",
    "annual_return": "no later than 30 April",
    "meetings": {"rule": "To be arranged for the end of the month of the monitoring return"},
}


def make_contract(
    calendar: dict[str, Any], years: list[tuple[str, str]], year_start_month: int = 4
) -> Contract:
    return Contract.model_validate(
        {
            "id": "test-contract",
            "name": "Test",
            "commissioner": {"name": "Council"},
            "provider": {"name": "Provider"},
            "reporting": {"period": "quarter", "year_start_month": year_start_month},
            "contract_years": [
                {"year": i, "start": start, "end": end} for i, (start, end) in enumerate(years)
            ],
            "kpis": [{"code": "1", "name": "Returns on time", "target": "95%"}],
            "calendar": calendar,
        }
    )


SEED_003_YEARS = [
    ("2018-07-01", "2019-06-30"),
    ("2019-07-01", "2020-06-30"),
    ("2020-07-01", "2021-06-30"),
]
SEED_001_YEARS = [
    ("2018-11-01", "2019-10-31"),
    ("2019-11-01", "2020-10-31"),
    ("2020-11-01", "2021-10-31"),
]
SEED_000_YEARS = [
    ("2016-10-01", "2017-03-31"),
    ("2017-04-01", "2018-03-31"),
    ("2018-04-01", "2019-03-31"),
    ("2019-04-01", "2020-03-31"),
]


def seed_003(**overrides: Any) -> ReturnCalendar:
    calendar = yaml.safe_load(SEED_003_CALENDAR) | overrides
    return ReturnCalendar(make_contract(calendar, SEED_003_YEARS))


def seed_001() -> ReturnCalendar:
    return ReturnCalendar(make_contract(SEED_001_CALENDAR, SEED_001_YEARS, year_start_month=11))


# Seed 003: the table of report due dates


def test_seed_003_table_is_reproduced_exactly() -> None:
    returns = seed_003().returns_due_between(date(2018, 1, 1), date(2021, 12, 31))
    assert [(r.period.label, r.due_date) for r in returns] == SEED_003_DUE
    assert {r.kind for r in returns} == {"quarterly"}


def test_seed_003_table_wins_over_the_rule_and_is_not_rolled() -> None:
    cal = seed_003(roll_forward=True)
    q2 = parse_period("2018/19 Q2")
    # The rule would give Friday 12 October; the contract printed Saturday the 13th.
    assert parse_due_rule("2nd Friday of the month after the period").due_date(q2) == date(
        2018, 10, 12
    )
    assert cal.due_date(q2) == date(2018, 10, 13)
    # 10 April 2020 was Good Friday, but the table's date stands.
    assert cal.due_date(parse_period("2019/20 Q4")) == date(2020, 4, 10)


def test_seed_003_rule_matches_the_table_except_two_printed_exceptions() -> None:
    rule = parse_due_rule("2nd Friday of the month after the period")
    differ = [label for label, due in SEED_003_DUE if rule.due_date(parse_period(label)) != due]
    assert differ == ["2018/19 Q2", "2021/22 Q1"]


def test_seed_003_meetings_monthly_in_first_year_then_quarterly() -> None:
    meetings = seed_003().meetings_between(date(2018, 7, 1), date(2019, 12, 31))
    assert [(m.kind, m.period.label, m.day) for m in meetings] == [
        ("monthly", "2018-07", date(2018, 7, 31)),
        ("monthly", "2018-08", date(2018, 8, 31)),
        ("monthly", "2018-09", date(2018, 9, 28)),
        ("monthly", "2018-10", date(2018, 10, 31)),
        ("monthly", "2018-11", date(2018, 11, 30)),
        ("monthly", "2018-12", date(2018, 12, 31)),
        ("monthly", "2019-01", date(2019, 1, 31)),
        ("monthly", "2019-02", date(2019, 2, 28)),
        ("monthly", "2019-03", date(2019, 3, 29)),
        ("monthly", "2019-04", date(2019, 4, 30)),
        ("monthly", "2019-05", date(2019, 5, 31)),
        ("monthly", "2019-06", date(2019, 6, 28)),
        ("quarterly", "2019/20 Q1", date(2019, 7, 31)),
        ("quarterly", "2019/20 Q2", date(2019, 10, 31)),
    ]


# Seed 001: quarters Nov-Jan, due the 15th, annual return by 30 April


def test_seed_001_quarter_one_nov_to_jan_is_due_15_february() -> None:
    cal = seed_001()
    q1 = parse_period("2019/20 Q1", year_start_month=11)
    assert (q1.start, q1.end) == (date(2019, 11, 1), date(2020, 1, 31))
    assert cal.due_date(q1) == date(2020, 2, 15)
    quarterly = [
        (r.period.label, r.due_date)
        for r in cal.returns_due_between(date(2020, 1, 1), date(2020, 12, 31))
        if r.kind == "quarterly"
    ]
    assert quarterly == [
        ("2019/20 Q1", date(2020, 2, 15)),
        ("2019/20 Q2", date(2020, 5, 15)),
        ("2019/20 Q3", date(2020, 8, 15)),
        ("2019/20 Q4", date(2020, 11, 15)),
    ]


def test_seed_001_annual_return_by_30_april_covers_the_financial_year() -> None:
    returns = seed_001().returns_due_between(date(2019, 1, 1), date(2023, 1, 1))
    annual = [r for r in returns if r.kind == "annual"]
    assert [(r.period.label, r.due_date, r.name) for r in annual] == [
        ("2018/19", date(2019, 4, 30), "annual return"),
        ("2019/20", date(2020, 4, 30), "annual return"),
        ("2020/21", date(2021, 4, 30), "annual return"),
        ("2021/22", date(2022, 4, 30), "annual return"),
    ]


def test_seed_001_meeting_at_end_of_the_month_the_return_is_due() -> None:
    meetings = seed_001().meetings_between(date(2020, 1, 1), date(2020, 12, 31))
    # 29 Feb 2020 is a Saturday; 31 Aug 2020 is the late summer bank holiday.
    assert [(m.period.label, m.day) for m in meetings] == [
        ("2019/20 Q1", date(2020, 2, 28)),
        ("2019/20 Q2", date(2020, 5, 29)),
        ("2019/20 Q3", date(2020, 8, 28)),
        ("2019/20 Q4", date(2020, 11, 30)),
    ]


# Seed 000: annual survey within 3 months of the year end, part-year Year 0


def test_seed_000_annual_survey_and_part_year_periods() -> None:
    calendar = {
        "due": "last working day of the month after the period",
        "annual_return": {
            "name": "annual service user survey",
            "due": "within 3 months of the year end",
        },
    }
    cal = ReturnCalendar(make_contract(calendar, SEED_000_YEARS))
    surveys = [
        (r.period.label, r.due_date)
        for r in cal.returns_due_between(date(2016, 1, 1), date(2021, 1, 1))
        if r.name == "annual service user survey"
    ]
    assert surveys == [
        ("2016/17", date(2017, 6, 30)),
        ("2017/18", date(2018, 6, 30)),
        ("2018/19", date(2019, 6, 30)),
        ("2019/20", date(2020, 6, 30)),
    ]
    labels = [p.label for p in cal.periods_between(date(2016, 1, 1), date(2017, 6, 30))]
    assert labels == ["2016/17 Q3", "2016/17 Q4", "2017/18 Q1"]
    assert cal.periods_between(date(2020, 4, 1), date(2021, 3, 31)) == []


def test_contract_without_calendar_section_has_no_return_calendar() -> None:
    assert ReturnCalendar.for_contract(make_contract({}, SEED_000_YEARS)) is None


# The due-rule grammar


@pytest.mark.parametrize(
    ("text", "period", "expected"),
    [
        ("15th of the month after the period", "2019/20 Q3", date(2020, 1, 15)),
        ("15th of the month directly after the reporting period", "2019/20 Q3", date(2020, 1, 15)),
        ("The fifteenth day of the following month", "2019/20 Q3", date(2020, 1, 15)),
        ("1st of the month following the end of the quarter", "2019/20 Q3", date(2020, 1, 1)),
        ("2nd Friday of the month after the period", "2019/20 Q3", date(2020, 1, 10)),
        ("second friday of the month after the period", "2019/20 Q3", date(2020, 1, 10)),
        ("last Friday of the month after the period", "2019/20 Q3", date(2020, 1, 31)),
        ("last working day of the month after the period", "2019/20 Q4", date(2020, 4, 30)),
        ("3rd working day of the month after the period", "2019/20 Q3", date(2020, 1, 6)),
        ("10 working days after period end", "2019/20 Q3", date(2020, 1, 15)),
        (
            "within ten (10) business days of the end of the quarter",
            "2019/20 Q3",
            date(2020, 1, 15),
        ),
        ("the 10th working day after the end of the quarter", "2019/20 Q3", date(2020, 1, 15)),
        ("20 days after the end of the period", "2019/20 Q3", date(2020, 1, 20)),
        ("within 6 weeks of quarter end", "2019/20 Q3", date(2020, 2, 11)),
        ("within 2 months of the period end", "2020/21 Q1", date(2020, 8, 31)),
        ("within one month of the period end", "2019/20 Q3", date(2020, 1, 31)),
        ("within 3 months of year end", "2019/20 Q2", date(2020, 6, 30)),
        ("within 3 months of the financial year-end", "2019/20", date(2020, 6, 30)),
        ("15th of the month after the year end", "2019/20 Q1", date(2020, 4, 15)),
        ("30 April each year", "2019/20", date(2020, 4, 30)),
        ("by 30 April", "2019/20 Q4", date(2020, 4, 30)),
        ("No later than 30th April", "2019/20 Q1", date(2020, 4, 30)),
        ("April 30th annually", "2019/20", date(2020, 4, 30)),
        ("on the last day of the period", "2021/22 Q1", date(2021, 6, 30)),
        ("at the end of the period", "2019/20 Q3", date(2019, 12, 31)),
        ("15th of the second month after the period", "2019/20 Q3", date(2020, 2, 15)),
    ],
)
def test_due_rule_reads_contract_wording(text: str, period: str, expected: date) -> None:
    assert parse_due_rule(text).due_date(parse_period(period)) == expected


def test_equivalent_wordings_parse_to_the_same_rule() -> None:
    fixed = {parse_due_rule(t) for t in ("30 April each year", "by 30 April", "April 30")}
    assert fixed == {AnnualDateRule(4, 30)}
    assert parse_due_rule("within 3 months of year end") == OffsetRule(3, "months", "year")
    assert parse_due_rule("15TH OF THE MONTH FOLLOWING THE PERIOD") == DayOfMonthRule(15, "day")


@pytest.mark.parametrize(
    ("text", "description"),
    [
        ("15th of the month after the period", "the 15th of the month after the period"),
        (
            "2nd Friday of the month after the period",
            "the 2nd Friday of the month after the period",
        ),
        (
            "last working day of the month after the period",
            "the last working day of the month after the period",
        ),
        ("1 working day after period end", "1 working day after the period ends"),
        ("within 3 months of year end", "3 months after the reporting year ends"),
        ("no later than 30 April", "30 April each year, the first after the period ends"),
        ("on the last day of the period", "the last day of the period"),
        (
            "21st of the second month after the period",
            "the 21st of the second month after the period",
        ),
    ],
)
def test_describe_is_plain_english(text: str, description: str) -> None:
    assert parse_due_rule(text).describe() == description


def test_second_friday_rule_over_a_year() -> None:
    rule = parse_due_rule("2nd Friday of the month after the period")
    months = [make_period("month", date(2018, 12, 1)).shift(i) for i in range(12)]
    assert [rule.due_date(m) for m in months] == [
        date(2019, 1, 11),
        date(2019, 2, 8),
        date(2019, 3, 8),
        date(2019, 4, 12),
        date(2019, 5, 10),
        date(2019, 6, 14),
        date(2019, 7, 12),
        date(2019, 8, 9),
        date(2019, 9, 13),
        date(2019, 10, 11),
        date(2019, 11, 8),
        date(2019, 12, 13),
    ]


_ORDINAL_WORDS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"]


@given(
    day=st.integers(1, 28),
    as_word=st.booleans(),
    the=st.sampled_from(["", "the ", "The "]),
    after=st.sampled_from(["after", "directly after", "following", "immediately after"]),
    noun=st.sampled_from(["period", "reporting period", "quarter", "end of the quarter"]),
    shout=st.booleans(),
    quarter=st.integers(0, 80),
)
def test_day_of_month_rule_tolerates_wording(
    day: int, as_word: bool, the: str, after: str, noun: str, shout: bool, quarter: int
) -> None:
    suffix = "th" if 10 <= day <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    ordinal = _ORDINAL_WORDS[day - 1] if as_word and day <= 8 else f"{day}{suffix}"
    text = f"{the}{ordinal} of the month {after} the {noun}"
    period = make_period("quarter", date(2000, 4, 1)).shift(quarter)
    expected = (period.end + timedelta(days=1)).replace(day=day)
    assert parse_due_rule(text.upper() if shout else text).due_date(period) == expected


@given(
    n=st.integers(1, 4),
    weekday=st.sampled_from(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]),
    month=st.integers(0, 400),
)
def test_nth_weekday_is_that_weekday_in_the_right_week(n: int, weekday: str, month: int) -> None:
    period = make_period("month", date(2000, 1, 1)).shift(month)
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(n, "th")
    due = parse_due_rule(f"{n}{suffix} {weekday} of the month after the period").due_date(period)
    following = period.end + timedelta(days=1)
    assert due.strftime("%A") == weekday
    assert (due.year, due.month) == (following.year, following.month)
    assert 7 * (n - 1) < due.day <= 7 * n


# Working days: England & Wales bank holidays


def test_working_days_across_christmas_2019() -> None:
    assert not is_working_day(date(2019, 12, 25))
    assert not is_working_day(date(2019, 12, 26))
    assert not is_working_day(date(2020, 1, 1))
    assert add_working_days(date(2019, 12, 24), 1) == date(2019, 12, 27)
    assert add_working_days(date(2019, 12, 24), 3) == date(2019, 12, 31)
    assert add_working_days(date(2019, 12, 27), -1) == date(2019, 12, 24)
    # 23, 24, 27, 30, 31 December and 2 January.
    assert working_days_between(date(2019, 12, 20), date(2020, 1, 2)) == 6
    assert working_days_between(date(2020, 1, 2), date(2019, 12, 20)) == -6
    assert roll_forward(date(2019, 12, 25)) == date(2019, 12, 27)
    assert roll_back(date(2019, 12, 26)) == date(2019, 12, 24)


def test_working_days_across_easter_2019() -> None:
    assert not is_working_day(date(2019, 4, 19))  # Good Friday
    assert not is_working_day(date(2019, 4, 22))  # Easter Monday
    assert add_working_days(date(2019, 4, 18), 1) == date(2019, 4, 23)
    assert working_days_between(date(2019, 4, 17), date(2019, 4, 24)) == 3


def test_early_may_bank_holiday_2020_moved_to_8_may() -> None:
    assert is_working_day(date(2020, 5, 4))
    assert not is_working_day(date(2020, 5, 8))
    assert roll_forward(date(2020, 5, 8)) == date(2020, 5, 11)
    assert is_working_day(date(2020, 5, 7))


def test_substitute_bank_holiday_when_boxing_day_is_a_saturday() -> None:
    assert not is_working_day(date(2020, 12, 28))
    assert roll_forward(date(2020, 12, 25)) == date(2020, 12, 29)


@given(start=st.dates(date(2015, 1, 1), date(2030, 12, 31)), n=st.integers(0, 60))
def test_add_and_count_working_days_agree(start: date, n: int) -> None:
    end = add_working_days(start, n)
    assert working_days_between(start, end) == n
    if n:
        assert is_working_day(end)
        assert working_days_between(start, end - timedelta(days=1)) == n - 1


@given(day=st.dates(date(2015, 1, 1), date(2030, 12, 31)))
def test_roll_forward_lands_on_the_first_working_day_not_before(day: date) -> None:
    rolled = roll_forward(day)
    assert is_working_day(rolled)
    assert all(not is_working_day(day + timedelta(days=i)) for i in range((rolled - day).days))


def test_roll_forward_applies_to_rule_dates() -> None:
    calendar = dict(SEED_001_CALENDAR, roll_forward=True)
    cal = ReturnCalendar(make_contract(calendar, SEED_001_YEARS, year_start_month=11))
    # 15 February 2020 is a Saturday.
    assert cal.due_date(parse_period("2019/20 Q1", year_start_month=11)) == date(2020, 2, 17)
    assert seed_001().due_date(parse_period("2019/20 Q1", year_start_month=11)) == date(2020, 2, 15)


# Due moments in Europe/London


def test_due_time_is_local_on_both_sides_of_the_clock_change() -> None:
    cal = seed_003(due_time="09:00")
    winter = cal.due_at(parse_period("2018/19 Q3"))  # 11 January 2019
    summer = cal.due_at(parse_period("2018/19 Q4"))  # 12 April 2019
    assert (winter.hour, winter.minute, summer.hour, summer.minute) == (9, 0, 9, 0)
    assert winter.utcoffset() == timedelta(0)
    assert summer.utcoffset() == timedelta(hours=1)
    assert winter.astimezone(UTC).hour == 9
    assert summer.astimezone(UTC).hour == 8


def test_due_at_on_the_days_the_clocks_change() -> None:
    calendar = {"periods": "month", "due": "last Sunday of the period", "due_time": "9am"}
    cal = ReturnCalendar(make_contract(calendar, SEED_003_YEARS))
    spring = cal.due_at(parse_period("2019-03"))
    autumn = cal.due_at(parse_period("2019-10"))
    assert spring == datetime(2019, 3, 31, 8, 0, tzinfo=UTC)
    assert autumn == datetime(2019, 10, 27, 9, 0, tzinfo=UTC)
    assert spring.tzinfo == LONDON


def test_due_time_in_the_spring_gap_moves_to_a_real_instant() -> None:
    calendar = {"periods": "month", "due": "last Sunday of the period", "due_time": "01:30"}
    cal = ReturnCalendar(make_contract(calendar, SEED_003_YEARS))
    assert cal.due_at(parse_period("2019-03")).isoformat() == "2019-03-31T02:30:00+01:00"


def test_default_due_time_is_end_of_day() -> None:
    due = seed_003().due_at(parse_period("2018/19 Q3"))
    assert due == datetime(2019, 1, 11, 23, 59, tzinfo=LONDON)


def test_returns_carry_their_due_moment_and_summary_waits_for_grace() -> None:
    cal = seed_003(due_time="17:00", summary_grace_days=5)
    (ret,) = cal.returns_due_between(date(2019, 1, 11), date(2019, 1, 11))
    assert ret.due_at == datetime(2019, 1, 11, 17, 0, tzinfo=LONDON)
    assert cal.summary_date(ret.period) == date(2019, 1, 16)


# Incident deadlines


def test_default_incident_rules_follow_the_seeds() -> None:
    rules = incident_rules()
    assert {kind: rule.describe() for kind, rule in rules.items()} == {
        "sui": "within 24 hours",
        "near-miss": "within 72 hours",
        "interruption": "immediately",
        "inspection": "within 2 working days",
    }
    assert incident_rules({"sui": "48h"})["sui"].describe() == "within 48 hours"


def test_incident_rules_read_the_shipped_contract_shape() -> None:
    incidents = {
        "inspection": {"label": "Inspection report", "deadline": "2 working days"},
        "critical_failure": {"label": "Critical PI breached", "deadline": "immediately"},
    }
    rules = incident_rules(incidents)
    assert rules["critical_failure"].describe() == "immediately"
    assert rules["inspection"].describe() == "within 2 working days"
    assert rules["sui"].describe() == "within 24 hours"
    with pytest.raises(CalendarError) as caught:
        incident_rules({"sui": {"label": "SUI", "deadline": "a day or so"}})
    assert (caught.value.field, caught.value.text) == ("incidents.sui.deadline", "a day or so")


def test_inspection_report_skips_weekend_and_bank_holiday() -> None:
    rule = incident_rules()["inspection"]
    friday = datetime(2019, 5, 24, 14, 0, tzinfo=LONDON)  # spring bank holiday on 27 May
    assert rule.deadline(friday) == datetime(2019, 5, 29, 14, 0, tzinfo=LONDON)
    christmas_eve = datetime(2019, 12, 24, 10, 0, tzinfo=LONDON)
    assert rule.deadline(christmas_eve) == datetime(2019, 12, 30, 10, 0, tzinfo=LONDON)


def test_sui_hours_run_through_the_weekend() -> None:
    friday = datetime(2019, 3, 22, 18, 0, tzinfo=LONDON)
    assert incident_rules()["sui"].deadline(friday) == datetime(2019, 3, 23, 18, 0, tzinfo=LONDON)


def test_near_miss_72_hours_across_the_clock_change_is_72_real_hours() -> None:
    opened = datetime(2019, 3, 29, 12, 0, tzinfo=LONDON)  # GMT; clocks go forward on the 31st
    deadline = incident_rules()["near-miss"].deadline(opened)
    # Subtracting two datetimes that share a tzinfo ignores the offset, so compare in UTC.
    assert deadline.astimezone(UTC) - opened.astimezone(UTC) == timedelta(hours=72)
    assert deadline.isoformat() == "2019-04-01T13:00:00+01:00"


def test_calendar_days_keep_the_local_time_of_day() -> None:
    opened = datetime(2019, 3, 30, 12, 0, tzinfo=LONDON)
    deadline = parse_incident_rule("within 5 days").deadline(opened)
    assert deadline.isoformat() == "2019-04-04T12:00:00+01:00"


def test_interruption_is_immediate() -> None:
    opened = datetime(2020, 8, 31, 9, 15, tzinfo=UTC)
    assert incident_rules()["interruption"].deadline(opened) == opened


@pytest.mark.parametrize(
    ("text", "amount", "unit"),
    [
        ("24 hours", 24, "hours"),
        ("72h", 72, "hours"),
        ("48 hrs", 48, "hours"),
        ("Immediately.", 0, "immediately"),
        ("2 working days", 2, "working days"),
        ("within two (2) business days", 2, "working days"),
        ("within 5 days", 5, "days"),
        ("30 mins", 30, "minutes"),
        ("1 week", 1, "weeks"),
    ],
)
def test_incident_rule_wording(text: str, amount: int, unit: str) -> None:
    rule = parse_incident_rule(text)
    assert (rule.amount, rule.unit) == (amount, unit)


@given(
    opened=st.datetimes(datetime(2015, 1, 1), datetime(2030, 12, 31), timezones=st.just(LONDON)),
    hours=st.integers(1, 200),
)
def test_hour_deadlines_are_elapsed_time(opened: datetime, hours: int) -> None:
    deadline = parse_incident_rule(f"{hours} hours").deadline(opened)
    assert deadline.astimezone(UTC) - opened.astimezone(UTC) == timedelta(hours=hours)


def test_naive_opened_at_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        incident_rules()["sui"].deadline(datetime(2019, 5, 24, 14, 0))


# Bad input: one CalendarError naming the field and the text


@pytest.mark.parametrize(
    ("calendar", "field", "text"),
    [
        ({"due": "15th of teh month"}, "calendar.due", "15th of teh month"),
        (
            {"due": "5th Friday of the month after the period"},
            "calendar.due",
            "5th Friday of the month after the period",
        ),
        ({"due": "sometime soon", "periods": "quarter"}, "calendar.due", "sometime soon"),
        (
            {"due": "15th of the month after the period", "annual_return": "31 February each year"},
            "calendar.annual_return.due",
            "31 February each year",
        ),
        (
            {"due": "15th of the month after the period", "annual_return": "29 February"},
            "calendar.annual_return.due",
            "29 February",
        ),
        (
            {"due_dates": {"Autumn 2018": "2018-10-13"}},
            "calendar.due_dates.Autumn 2018",
            "Autumn 2018",
        ),
        (
            {"due_dates": {"2018/19 Q4": "31 February 2019"}},
            "calendar.due_dates.2018/19 Q4",
            "31 February 2019",
        ),
        (
            {"due_dates": {"2018/19 Q4": "2019-02-31"}},
            "calendar.due_dates.2018/19 Q4",
            "2019-02-31",
        ),
        (
            {"due_dates": {"2018/19 Q4": "soon"}},
            "calendar.due_dates.2018/19 Q4",
            "soon",
        ),
        (
            {"due_dates": {"2018/19 Q4": "2019-04-12", "Q4 2018/19": "2019-04-13"}},
            "calendar.due_dates.Q4 2018/19",
            "Q4 2018/19",
        ),
        ({"periods": "fortnight"}, "calendar.periods", "fortnight"),
        ({"year_start_month": 13}, "calendar.year_start_month", "13"),
        ({"due_rule": "15th"}, "calendar.due_rule", None),
        ({"due_time": "25:00"}, "calendar.due_time", "25:00"),
        (yaml.safe_load("due_time: 17:00"), "calendar.due_time", "1020"),
        ({"reminders": {"before_days": [7, -1]}}, "calendar.reminders.before_days", "[7, -1]"),
        ({"reminders": {"every": 3}}, "calendar.reminders.every", None),
        ({"meetings": {"rule": "whenever"}}, "calendar.meetings.rule", "whenever"),
        ({"annual_return": {"name": "survey"}}, "calendar.annual_return.due", None),
        ({"roll_forward": "maybe"}, "calendar.roll_forward", "maybe"),
    ],
)
def test_bad_calendar_settings_name_the_field(
    calendar: dict[str, Any], field: str, text: str | None
) -> None:
    with pytest.raises(CalendarError) as caught:
        parse_calendar_spec(calendar)
    assert caught.value.field == field
    assert caught.value.text == text
    assert str(caught.value).startswith(field)
    assert isinstance(caught.value, ValueError)


def test_unknown_due_rule_lists_the_accepted_forms() -> None:
    with pytest.raises(CalendarError) as caught:
        parse_due_rule("fortnightly-ish")
    message = str(caught.value)
    assert "'fortnightly-ish'" in message
    assert "'2nd Friday of the month after the period'" in message
    assert "'30 April each year'" in message


def test_yaml_hint_for_unquoted_time() -> None:
    with pytest.raises(CalendarError, match="in quotes"):
        parse_calendar_spec(yaml.safe_load("due_time: 17:00"))


@pytest.mark.parametrize(
    ("calendar", "field", "fragment"),
    [
        ({"due_dates": {"2025/26 Q1": "2025-07-11"}}, "calendar.due_dates.2025/26 Q1", "outside"),
        ({"due_dates": {"2019-07": "2019-08-09"}}, "calendar.due_dates.2019-07", "month"),
        ({"due_dates": {"2018/19 Q2": "2018-10-13"}}, "calendar.due", "2018/19 Q3"),
        (
            {"periods": "year", "due": "by 30 April", "annual_return": "by 30 April"},
            "calendar.annual_return",
            "repeats",
        ),
    ],
)
def test_calendar_checked_against_the_contract(
    calendar: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(CalendarError) as caught:
        ReturnCalendar(make_contract(calendar, SEED_003_YEARS))
    assert caught.value.field == field
    assert fragment in str(caught.value)


def test_period_of_the_wrong_kind_is_refused() -> None:
    with pytest.raises(CalendarError) as caught:
        seed_003().due_date(parse_period("2019-07"))
    assert caught.value.field == "period"


def test_bad_incident_wording_names_the_kind() -> None:
    with pytest.raises(CalendarError) as caught:
        incident_rules({"sui": "soonish"})
    assert (caught.value.field, caught.value.text) == ("incidents.sui", "soonish")
    with pytest.raises(CalendarError) as caught:
        incident_rules({"near-miss": 72})
    assert caught.value.field == "incidents.near-miss"


def test_spec_defaults() -> None:
    spec = parse_calendar_spec({"due": "15th of the month after the period"})
    assert spec.due_time == time(23, 59)
    assert spec.reminders.before_days == (14, 7, 1)
    assert (
        spec.reminders.overdue_every_working_days,
        spec.reminders.escalate_after_working_days,
    ) == (1, 5)
    assert spec.summary_grace_days == 5
    assert spec.roll_forward is False
