"""The target grammar: every phrasing in the seeds, boundaries, and text it must refuse to guess."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kpibot.engine.evaluate import POSITIONS, evaluate_scalar
from kpibot.engine.targets import TargetError, YearTerms, parse_target

# (text, polarity, role, kind, op, value, explanation fragment)
SEED_PHRASINGS = [
    ("44.0%", "bigger", "target", "threshold", None, 44.0, "at least 44%"),
    (">40%", "bigger", "target", "threshold", "gt", 40.0, "more than 40%"),
    ("<22.5%", "smaller", "target", "threshold", "lt", 22.5, "less than 22.5%"),
    ("≥ 95%", "bigger", "target", "threshold", "ge", 95.0, "at least 95%"),
    ("Less than 40 %", "smaller", "target", "threshold", "lt", 40.0, "less than 40%"),
    ("35% minimum", "bigger", "target", "threshold", "ge", 35.0, "at least 35%"),
    ("Minimum average 8.5", "bigger", "target", "threshold", "ge", 8.5, "at least 8.5"),
    (
        "Higher than 55% leaving early",
        "smaller",
        "critical",
        "threshold",
        "gt",
        55.0,
        "more than 55%",
    ),
    (
        "100 active families",
        "bigger",
        "target",
        "threshold",
        None,
        100.0,
        "at least 100 active families",
    ),
    (">2000", "bigger", "target", "threshold", "gt", 2000.0, "more than 2,000"),
    ("140 days", "smaller", "target", "threshold", None, 140.0, "at most 140 days"),
    ("50-75%", "bigger", "target", "range", None, 50.0, "between 50% and 75%"),
    ("Target 90%", "bigger", "target", "threshold", None, 90.0, "at least 90%"),
    ("Tolerance 85%", "bigger", "tolerance", "threshold", None, 85.0, "at least 85%"),
    (
        "> National average",
        "bigger",
        "target",
        "benchmark",
        "gt",
        None,
        "above the national average",
    ),
    (
        "At least national average",
        "smaller",
        "target",
        "benchmark",
        "le",
        None,
        "no worse than the national average (at or below it)",
    ),
    (
        "<national average",
        "smaller",
        "target",
        "benchmark",
        "lt",
        None,
        "below the national average",
    ),
    (
        "> National average or 5% increase on current baseline whichever is greater",
        "bigger",
        "target",
        "benchmark",
        "gt",
        None,
        "whichever is greater",
    ),
    (
        "Improvement on previous year",
        "bigger",
        "target",
        "improvement",
        "gt",
        None,
        "better (higher) than the previous year",
    ),
    (
        "100% with exception reporting",
        "bigger",
        "target",
        "threshold",
        None,
        100.0,
        "at least 100%, exceptions must be reported",
    ),
    ("At least good", "bigger", "target", "threshold", "ge", 3.0, "at least Good"),
    ("TBD*", "bigger", "target", "none", None, None, "to be determined"),
    ("n/a**", "bigger", "target", "none", None, None, "no target"),
    ("For information only", "bigger", "target", "none", None, None, "for information only"),
    ("For baseline information", "bigger", "target", "none", None, None, "baseline"),
    (
        "To record BF rates for IMD 1 & 2 in agreement with commissioner",
        "bigger",
        "target",
        "none",
        None,
        None,
        "To record",
    ),
    (
        "To collect data required in agreement with commissioner",
        "bigger",
        "target",
        "none",
        None,
        None,
        "no target",
    ),
    (
        "To develop method in agreement with commissioner and record reviews",
        "bigger",
        "target",
        "none",
        None,
        None,
        "no target",
    ),
    ("Minimum average Below 7.0", "bigger", "critical", "threshold", "lt", 7.0, "less than 7"),
    (
        "100% of parents with at least 50% parental capacity improvement with exception reporting",
        "bigger",
        "target",
        "threshold",
        None,
        100.0,
        "exceptions must be reported",
    ),
    ("<32% academic year 15/16", "smaller", "target", "threshold", "lt", 32.0, "less than 32%"),
    (
        "Improvement on previous year (53% 2014)",
        "bigger",
        "target",
        "improvement",
        "gt",
        None,
        "baseline 53%",
    ),
]


@pytest.mark.parametrize(
    ("text", "polarity", "role", "kind", "op", "value", "words"), SEED_PHRASINGS
)
def test_every_seed_phrasing_is_read(text, polarity, role, kind, op, value, words):
    t = parse_target(text, polarity, role=role)
    assert t.kind == kind
    assert t.op == op
    assert t.value == value
    assert words in t.explain()


def test_explains_itself_in_plain_english():
    assert (
        parse_target("100% with exception reporting", "bigger").explain()
        == "at least 100%, exceptions must be reported"
    )


@pytest.mark.parametrize(
    "text",
    [
        "50% reduction on baseline",  # a reduction for a bigger-is-better KPI
        "RI+: 95% Good+ 80%",
        "around about forty",
        "> 40% and < 50% or more",
        "95% or 90%",
        "2e-5",
        "40x",
    ],
)
def test_refuses_to_guess(text):
    with pytest.raises(TargetError) as err:
        parse_target(text, "bigger")
    assert text.strip() in str(err.value)


def test_uplift_reads_whichever_is_greater():
    t = parse_target(
        "> National average or 5% increase on current baseline whichever is greater", "bigger"
    )
    assert t.threshold_for(national_average=60.0, baseline=60.0) == pytest.approx(63.0)
    assert t.threshold_for(national_average=70.0, baseline=60.0) == pytest.approx(70.0)
    assert t.threshold_for(national_average=None, baseline=None) is None


def _terms(target: str, tol: str | None, pol: str) -> YearTerms:
    return YearTerms(
        1,
        parse_target(target, pol),
        parse_target(tol, pol, role="tolerance") if tol else None,
        None,
        False,
    )


@pytest.mark.parametrize(
    ("target", "tol", "pol", "value", "position"),
    [
        ("95%", "90%", "bigger", 95.0, "met"),  # meeting exactly is met
        ("95%", "90%", "bigger", 90.0, "within_tolerance"),  # on the tolerance threshold: within
        ("95%", "90%", "bigger", 89.99, "not_met"),
        (">40%", None, "bigger", 40.0, "not_met"),  # '>' is strict
        ("9%", "12%", "smaller", 9.0, "met"),
        ("9%", "12%", "smaller", 12.0, "within_tolerance"),
        ("9%", "12%", "smaller", 12.01, "not_met"),
        ("140 days", "180 days", "smaller", 141.0, "within_tolerance"),
        ("TBD*", "TBD*", "bigger", 55.0, "no_target"),
    ],
)
def test_boundaries_follow_the_glossary(target, tol, pol, value, position):
    assert evaluate_scalar(value, _terms(target, tol, pol)).position == position


def test_95_of_95_computed_from_a_fraction_is_met():
    # 57/60 is 95.00000000000001 or 94.99999999999999 in floating point; it must still be met.
    value = 100 * 57 / 60
    assert evaluate_scalar(value, _terms("95%", None, "bigger")).position == "met"


_RANK = {p: i for i, p in enumerate(["met", "within_tolerance", "not_met"])}


@given(
    target=st.floats(1, 1000),
    gap=st.floats(0, 100),
    a=st.floats(0, 2000),
    b=st.floats(0, 2000),
    pol=st.sampled_from(["bigger", "smaller"]),
    strict=st.booleans(),
)
def test_a_better_value_never_gets_a_worse_position(target, gap, a, b, pol, strict):
    tol = target - gap if pol == "bigger" else target + gap
    assume(tol >= 0)
    sym = (">" if pol == "bigger" else "<") if strict else ""
    terms = _terms(f"{sym}{target:.4f}", f"{tol:.4f}", pol)
    better, worse = (max(a, b), min(a, b)) if pol == "bigger" else (min(a, b), max(a, b))
    pb = evaluate_scalar(better, terms).position
    pw = evaluate_scalar(worse, terms).position
    assert _RANK[pb] <= _RANK[pw]


@given(st.text(max_size=60))
def test_any_text_is_read_or_refused_never_crashes(text):
    try:
        t = parse_target(text, "bigger")
    except TargetError as exc:
        assert "cannot read" in str(exc)
    else:
        assert t.kind in ("threshold", "range", "benchmark", "improvement", "none")
        assert isinstance(t.explain(), str)


@given(
    st.sampled_from(["", ">", "<", "≥ ", "at least ", "less than "]),
    st.floats(0, 10_000, allow_nan=False),
    st.booleans(),
)
def test_numbers_with_comparators_round_trip(prefix, number, pct):
    text = f"{prefix}{number:.4f}{'%' if pct else ''}"
    pol = "smaller" if prefix in ("<", "less than ") else "bigger"
    t = parse_target(text, pol)
    assert t.kind == "threshold"
    assert math.isclose(t.value, float(f"{number:.4f}"))
    assert (t.unit == "percent") == pct


def test_positions_are_the_designed_set():
    assert POSITIONS == ("met", "within_tolerance", "not_met", "no_target", "missing")


# ---------------------------------------------------------------------------- issue 13: by kind
# Our own phrasings, one table per kind the issue names. Each row: text, polarity, then what the
# target must read as (kind, op, value, unit, within) and a fragment of its explanation.

SENTENCES = [
    (
        "To resolve 92 per cent of complaints within 15 working days",
        "bigger",
        "threshold",
        None,
        92.0,
        "percent",
        (15.0, "working_days"),
        "at least 92% within 15 working days",
    ),
    (
        "88 per cent of enquiries to be answered within 5 working days",
        "bigger",
        "threshold",
        None,
        88.0,
        "percent",
        (5.0, "working_days"),
        "within 5 working days",
    ),
    (
        "in at least 85 per cent of cases",
        "bigger",
        "threshold",
        "ge",
        85.0,
        "percent",
        None,
        "at least 85%",
    ),
    (
        "For 93 per cent of cases to meet the quality standard",
        "bigger",
        "threshold",
        None,
        93.0,
        "percent",
        None,
        "at least 93%",
    ),
    (
        "to make the right payment in 97 per cent. of cases",
        "bigger",
        "threshold",
        None,
        97.0,
        "percent",
        None,
        "at least 97%",
    ),
    (
        "an average bed occupancy of 91 per cent over the year",
        "bigger",
        "threshold",
        None,
        91.0,
        "percent",
        None,
        "at least 91%",
    ),
    (
        "To collect 71% of the council tax due",
        "bigger",
        "threshold",
        None,
        71.0,
        "percent",
        None,
        "at least 71%",
    ),
]
CEILINGS_AND_FLOORS = [
    ("no more than 12 days", "smaller", "le", 12.0, "days"),
    ("not more than 12 days", "smaller", "le", 12.0, "days"),
    ("at most 4 complaints", "smaller", "le", 4.0, "count"),
    ("maximum 18 weeks", "smaller", "le", 18.0, "weeks"),
    ("a maximum of 3 missed visits", "smaller", "le", 3.0, "count"),
    ("up to 2 hours", "smaller", "le", 2.0, "hours"),
    ("5 or less", "smaller", "le", 5.0, "count"),
    ("fewer than 8 incidents", "smaller", "lt", 8.0, "count"),
    ("no fewer than 40 homes", "bigger", "ge", 40.0, "count"),
    ("not less than 75%", "bigger", "ge", 75.0, "percent"),
    ("120 or more", "bigger", "ge", 120.0, "count"),
]
AVERAGES = [
    ("within an average of 40 working days", "smaller", "le", 40.0, "working_days"),
    ("in an average of no more than 30 working days", "smaller", "le", 30.0, "working_days"),
    ("within an average of 15 seconds", "smaller", "le", 15.0, "seconds"),
    ("an average of at least 20 hours a week", "bigger", "ge", 20.0, "hours"),
]
UNITS = [
    ("answered within 20 seconds on average", "smaller", 20.0, "seconds"),
    ("an average of 7 minutes", "smaller", 7.0, "minutes"),
    ("at most 72 hours", "smaller", 72.0, "hours"),
    ("no more than 6 weeks", "smaller", 6.0, "weeks"),
    ("no more than 26 months", "smaller", 26.0, "months"),
    ("£3 million", "bigger", 3_000_000.0, "gbp"),
    ("£250k savings", "bigger", 250_000.0, "gbp"),
    ("£36,539", "smaller", 36_539.0, "gbp"),
    ("1,200 visits", "bigger", 1200.0, "count"),
]


@pytest.mark.parametrize(
    ("text", "pol", "kind", "op", "value", "unit", "within", "words"), SENTENCES
)
def test_sentence_targets_read_the_figure_and_its_time_limit(
    text, pol, kind, op, value, unit, within, words
):
    t = parse_target(text, pol)
    assert (t.kind, t.op, t.value, t.unit, t.within) == (kind, op, value, unit, within)
    assert words in t.explain()


@pytest.mark.parametrize(("text", "pol", "op", "value", "unit"), CEILINGS_AND_FLOORS)
def test_ceilings_and_floors_mean_what_they_say(text, pol, op, value, unit):
    t = parse_target(text, pol)
    assert (t.op, t.value, t.unit) == (op, value, unit)


@pytest.mark.parametrize(
    ("text", "pol", "words"),
    [
        ("no more than 5 weeks", "bigger", "'no more than' implies smaller is better"),
        ("at least 95%", "smaller", "'at least' implies bigger is better"),
        ("fewer than 8 incidents", "bigger", "'fewer than' implies smaller is better"),
        ("Reduce waiting times by 10 per cent", "bigger", "'reduction' implies smaller is better"),
    ],
)
def test_a_polarity_conflict_names_the_words_and_the_polarity(text, pol, words):
    with pytest.raises(TargetError) as err:
        parse_target(text, pol)
    assert words in str(err.value) and f"polarity is {pol} is better" in str(err.value)


@pytest.mark.parametrize(("text", "pol", "op", "value", "unit"), AVERAGES)
def test_an_average_makes_its_duration_the_threshold(text, pol, op, value, unit):
    t = parse_target(text, pol)
    assert (t.op, t.value, t.unit, t.within, t.average) == (op, value, unit, None, True)
    assert "an average of" in t.explain()


@pytest.mark.parametrize(("text", "pol", "value", "unit"), UNITS)
def test_units_of_time_money_and_named_things(text, pol, value, unit):
    t = parse_target(text, pol)
    assert (t.value, t.unit) == (value, unit)


def test_a_count_names_what_it_counts():
    assert parse_target("1,200 visits", "bigger").explain() == "at least 1,200 visits"


RELATIVE = [
    # text, polarity, KPI baseline, previous year's figure, threshold on the raw figures
    ("reduce by 15 per cent from the 400 days baseline", "smaller", None, None, 340.0),
    ("a 2 per cent reduction against the previous year's outturn", "smaller", None, 500.0, 490.0),
    ("a 10% increase on last year", "bigger", None, 1000.0, 1100.0),
    ("an increase of at least 5% on the baseline", "bigger", 200.0, None, 210.0),
]


@pytest.mark.parametrize(("text", "pol", "baseline", "previous", "threshold"), RELATIVE)
def test_relative_targets_are_a_change_against_a_reference(
    text, pol, baseline, previous, threshold
):
    t = parse_target(text, pol)
    assert t.kind == "relative"
    assert t.threshold_for(baseline=baseline, previous=previous) == pytest.approx(threshold)


@pytest.mark.parametrize(
    "text",
    [
        "Reduce by 5 per cent the proportion of disputed claims resolved by a hearing",
        "an improvement of at least 1 per cent over a baseline of 80 per cent",
        "3 per cent ahead of the national average",
    ],
)
def test_a_per_cent_change_of_a_percentage_is_refused_as_points_or_per_cent(text):
    with pytest.raises(TargetError) as err:
        parse_target(text, "bigger" if "Reduce" not in text else "smaller")
    assert "percentage points" in str(err.value)


RELATIVE_TOLERANCE = [
    # tolerance words, polarity, target threshold, tolerance threshold
    ("within 10% of target", "bigger", 95.0, 85.5),
    ("within 10% of target", "smaller", 20.0, 22.0),
    ("90% of target", "bigger", 80.0, 72.0),
    ("within the 5% threshold", "bigger", 60.0, 57.0),
]


@pytest.mark.parametrize(("text", "pol", "target", "threshold"), RELATIVE_TOLERANCE)
def test_relative_tolerance_is_a_share_of_the_target(text, pol, target, threshold):
    t = parse_target(text, pol, role="tolerance")
    assert t.kind == "tolerance_relative"
    assert t.threshold_for(target=target) == pytest.approx(threshold)


def test_twenty_per_cent_is_no_longer_amber_against_95_within_10_per_cent_of_target():
    terms = YearTerms(
        1,
        parse_target("95%", "bigger"),
        parse_target("within 10% of target", "bigger", role="tolerance"),
        None,
        False,
    )
    assert evaluate_scalar(20.0, terms).position == "not_met"
    assert evaluate_scalar(86.0, terms).position == "within_tolerance"


@pytest.mark.parametrize(
    ("text", "pol", "why"),
    [
        ("90% of target", "smaller", "110% of the target"),
        ("within 10% of target", None, "tolerance, not a target"),
        ("5%", "bigger", "could be a level"),
    ],
)
def test_ambiguous_or_misplaced_tolerances_are_refused(text, pol, why):
    with pytest.raises(TargetError) as err:
        if why == "tolerance, not a target":
            parse_target(text, "bigger")
        elif text == "5%":
            target = parse_target("95%", pol)
            tol = parse_target(text, pol, role="tolerance")
            from kpibot.engine.targets import check_consistency

            raise TargetError(check_consistency(target, tol, None) or "")
        else:
            parse_target(text, pol, role="tolerance")
    assert why in str(err.value)


def test_signed_measures_read_a_zero_and_a_negative_target():
    ahead = parse_target("0", "bigger", measure="Days ahead of or behind timetable")
    assert (ahead.value, ahead.unit) == (0.0, "days")
    assert evaluate_scalar(-10.0, YearTerms(1, ahead, None, None, False)).position == "not_met"
    assert evaluate_scalar(3.0, YearTerms(1, ahead, None, None, False)).position == "met"


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        (
            "60 per cent in 5 days and 85 per cent in 15 days",
            "at least 60% within 5 days; at least 85% within 15 days",
        ),
        (
            "Yr 1 80% Yr 2 85% Yr 3 90%",
            "Yr 1: at least 80%; Yr 2: at least 85%; Yr 3: at least 90%",
        ),
    ],
)
def test_compound_targets_are_refused_showing_how_to_split_them(text, parts):
    with pytest.raises(TargetError) as err:
        parse_target(text, "bigger")
    assert parts in str(err.value)


def test_a_milestone_reads_its_due_date():
    from kpibot.engine.reading import read_phrase

    r = read_phrase("By 31 January 2020, to introduce an independent complaints panel")
    assert (r.kind, r.due_text) == ("milestone", "31 January 2020")
    r = read_phrase("to pass an external accreditation by June 2021")
    assert r.kind == "milestone" and r.due is not None and r.due.isoformat() == "2021-06-30"


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("95% in 1998 and beyond", None),
        ("at least 95% 1998", "1998"),
        ("at least 90% of 40 cases", "40"),
        ("Target 85% (see note 7)", "7"),
    ],
)
def test_a_number_the_reading_does_not_account_for_is_named(text, number):
    from kpibot.engine.reading import read_phrase

    if number is None:
        # '1998' after 'in' is a year: set aside deliberately, with a note.
        r = read_phrase(text, "bigger")
        assert r.value == 95.0 and "'1998' is a year" in r.notes
        return
    with pytest.raises(TargetError) as err:
        parse_target(text, "bigger")
    assert f"I could not tell what '{number}' means" in str(err.value)


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("Complete 98 per cent of cases within 40 working days1", "footnote marker"),
        ("90% by 2019/20 Q4", "is a quarter"),
        ("Rate of re-offending (per 100,000): no more than 170", "rate's denominator"),
        ("75% of trials commence within target time (16 weeks) or less", None),
        ("Key Target 1: 95% within 20 working days", "is a name"),
    ],
)
def test_numbers_that_are_not_targets_are_set_aside_deliberately(text, note):
    from kpibot.engine.reading import read_phrase

    r = read_phrase(text, "bigger" if "no more" not in text else "smaller")
    assert r.value in (98.0, 90.0, 170.0, 75.0, 95.0)
    if note:
        assert any(note in n for n in r.notes), r.notes
    if "16 weeks" in text:
        assert r.within == (16.0, "weeks")


@pytest.mark.parametrize(
    "text",
    ["15 working days", "98 per cent.", "Target: 95% .", "140 days.", "at most 3 working days"],
)
def test_explanations_have_no_stray_punctuation_or_repeated_units(text):
    pol = "smaller" if "days" in text else "bigger"
    words = parse_target(text, pol).explain()
    assert " ." not in words and " ," not in words and "  " not in words
    assert "days working days" not in words and "days days" not in words


_POSITION = {"met": 0, "within_tolerance": 1, "not_met": 2}
TARGETS = [
    "50%",
    ">50%",
    "at least 50%",
    "no more than 50%",
    "less than 50%",
    "40-60%",
    "an average of 50 days",
    "reduce by 10 per cent",
    "a 10% increase on last year",
]
TOLERANCES = [
    None,
    "within 10% of target",
    "90% of target",
    "45%",
    "55%",
    "within the 5% threshold",
]


@given(
    target=st.sampled_from(TARGETS),
    tolerance=st.sampled_from(TOLERANCES),
    pol=st.sampled_from(["bigger", "smaller"]),
    a=st.floats(0, 200),
    b=st.floats(0, 200),
)
def test_no_reading_ever_rates_a_better_value_worse(target, tolerance, pol, a, b):
    """For every polarity, comparator and tolerance kind that reads, better is never worse."""
    try:
        t = parse_target(target, pol, measure="Waiting time" if "days" in target else None)
        tol = parse_target(tolerance, pol, role="tolerance") if tolerance else None
    except TargetError:
        return  # refused (e.g. a conflict with the polarity): never read, never misrated
    terms = YearTerms(1, t, tol, None, False)
    better, worse = (max(a, b), min(a, b)) if pol == "bigger" else (min(a, b), max(a, b))
    refs = {"baseline": 100.0, "previous": 100.0}
    pb = evaluate_scalar(better, terms, **refs).position
    pw = evaluate_scalar(worse, terms, **refs).position
    assert _POSITION[pb] <= _POSITION[pw]


@pytest.mark.parametrize(
    ("text", "polarity", "unit", "signed", "refused"),
    [
        ("0", "bigger", None, False, True),  # never events "0": at least none, met by anything
        ("Zero tolerance", "bigger", None, False, True),
        ("0%", "bigger", "percent", False, True),
        ("100%", "smaller", "percent", False, True),  # at most all of a share
        ("0", "smaller", None, False, False),  # none is the aim: fine
        ("0", "bigger", None, True, False),  # a measure that may be negative: fine
        ("£0", "bigger", "gbp", False, False),  # a balance may be negative: break even is a target
        ("> 0", "bigger", None, False, False),  # at least one: a real target
        ("100%", "bigger", "percent", False, False),
    ],
)
def test_a_target_every_figure_meets_is_inconsistent(text, polarity, unit, signed, refused):
    from kpibot.engine.targets import check_consistency

    why = check_consistency(parse_target(text, polarity, unit=unit), None, None, signed=signed)
    assert (why is not None) == refused, why
    if refused:
        assert "is met by every figure" in why and "polarity" in why


@pytest.mark.parametrize("text", ["None", "Nil", "nil."])
def test_none_as_the_target_of_a_smaller_is_better_kpi_is_refused_as_ambiguous(text):
    # Beside never events, "None" may be the aim (0), not the absence of a target: a grey
    # "no target" there would hide every event. Bigger is better, it can only mean no target.
    with pytest.raises(TargetError, match="could mean no target or none at all"):
        parse_target(text, "smaller")
    assert parse_target(text, "bigger").kind == "none"
    assert parse_target(text, "smaller", role="tolerance").kind == "none"


def test_within_a_time_is_the_most_a_figure_may_be_when_the_figures_are_times():
    # 'unit: hours' (an average or longest response time): 'Within 4 hours' is at most 4 hours.
    t = parse_target("Within 4 hours", "smaller", unit="hours")
    assert (t.op, t.value, t.unit, t.within) == ("le", 4.0, "hours", None)
    # With no unit it stays a time limit without its share, and is refused so.
    with pytest.raises(TargetError, match="not the share of cases"):
        parse_target("Within 4 hours", "smaller")
    with pytest.raises(TargetError, match="not the share of cases"):
        parse_target("Within 4 hours", "bigger", unit="percent")
