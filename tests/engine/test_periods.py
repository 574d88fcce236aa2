"""Periods as contracts write them: financial quarters, custom Nov–Jan quarters, years, months."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpibot.engine.periods import PeriodError, make_period, parse_period, period_containing


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2019/20 Q3", date(2019, 10, 1), date(2019, 12, 31)),
        ("Q4 2018/19", date(2019, 1, 1), date(2019, 3, 31)),
        ("2019/20 Qtr1", date(2019, 4, 1), date(2019, 6, 30)),
        ("2019-20 Q2", date(2019, 7, 1), date(2019, 9, 30)),
        ("2019/20", date(2019, 4, 1), date(2020, 3, 31)),
        ("2019-07", date(2019, 7, 1), date(2019, 7, 31)),
        ("Feb 2020", date(2020, 2, 1), date(2020, 2, 29)),
    ],
)
def test_reads_the_period_labels_people_use(text, start, end):
    p = parse_period(text)
    assert (p.start, p.end) == (start, end)


def test_seed_001_quarters_run_november_to_january():
    q1 = parse_period("2019/20 Q1", year_start_month=11)
    assert (q1.start, q1.end) == (date(2019, 11, 1), date(2020, 1, 31))
    assert q1.shift(1).label == "2019/20 Q2"
    assert q1.shift(4).label == "2020/21 Q1"
    assert period_containing(date(2020, 1, 15), "quarter", 11) == q1


@pytest.mark.parametrize(
    "bad", ["", "2019 Q3", "2019/22 Q1", "Q5 2019/20", "2019-13", "soon", "2019/20 Q"]
)
def test_unreadable_periods_say_how_to_write_them(bad):
    with pytest.raises(PeriodError) as err:
        parse_period(bad)
    assert "'" in str(err.value) or "empty" in str(err.value)


@given(
    st.integers(2000, 2090), st.integers(1, 4), st.integers(-12, 12), st.sampled_from([1, 4, 11])
)
def test_shift_and_ordinal_agree(year, q, n, ysm):
    label = f"{year}/{(year + 1) % 100:02d} Q{q}" if ysm != 1 else f"{year} Q{q}"
    p = parse_period(label, ysm)
    assert p.shift(n).ordinal == p.ordinal + n
    assert parse_period(p.label, ysm) == p
    assert p.same_period_last_year().ordinal == p.ordinal - 4
    assert p.reporting_year().start <= p.start and p.end <= p.reporting_year().end


def test_month_and_year_ordinals_are_dense():
    m = make_period("month", date(2019, 12, 1))
    assert m.shift(1).label == "2020-01"
    assert m.shift(1).ordinal == m.ordinal + 1
    y = parse_period("2019/20")
    assert y.shift(1).label == "2020/21" and y.shift(1).ordinal == y.ordinal + 1


@pytest.mark.parametrize(
    "text", ["9999/00 Q4", "0000/01 Q1", "Q4 9999/00", "9999/00", "0000-01", "Jan 0000", "1899/00"]
)
def test_periods_outside_the_years_kpibot_reads_are_refused_in_one_sentence(text: str) -> None:
    with pytest.raises(PeriodError) as refused:
        parse_period(text)
    assert str(refused.value) == (
        f"'{text}' is outside the years kpibot reads (1900 to 2999); check the year and write "
        "it like '2019/20 Q3'."
    )


@pytest.mark.parametrize("text", ["2019/21 Q5", "2019/21 Q4", "2019/20 Q0"])
def test_impossible_quarters_are_refused_in_one_sentence(text: str) -> None:
    with pytest.raises(PeriodError) as refused:
        parse_period(text)
    assert "\n" not in str(refused.value) and str(refused.value).endswith(".")


def test_the_last_years_kpibot_reads_still_work() -> None:
    assert parse_period("2999/00 Q4").end.isoformat() == "3000-03-31"
    assert parse_period("1900/01 Q1").start.isoformat() == "1900-04-01"


def test_a_frequency_padded_with_spaces_reads_as_its_words():
    from kpibot.engine.periods import frequency_kind

    gap = " " * 5000
    assert frequency_kind(f"after at least 6{gap}months, thereafter{gap}annually") == "year"
    with pytest.raises(PeriodError, match="names 'Six -monthly'"):
        frequency_kind(f"Six{gap}-monthly")
