"""Event logs checked before storing: every problem with file, line and column; all or nothing."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook

from kpibot.files.contracts import load_contract_file
from kpibot.files.events import check_event, check_events, parse_moment
from kpibot.files.tables import read_table_bytes

LONDON = ZoneInfo("Europe/London")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "contracts"
NOW = datetime(2016, 1, 15, 12, tzinfo=LONDON)


@pytest.fixture(scope="module")
def hospital():
    return load_contract_file(FIXTURES / "acute-hospital.yaml")


@pytest.fixture(scope="module")
def waste():
    return load_contract_file(FIXTURES / "waste-collection.yaml")


def test_a_good_log_is_read_with_times_in_london(hospital):
    data = (
        b"Date,Kind,Reference,Value,Rectified at,Note\n"
        b"2015-11-02 10:15,handover-delay,HO-1,45,,\n"
        b"03/11/2015 18:20,Handover-Delay,HO-2,61,2015-11-03,ambulance queue\n"
    )
    check = check_events(hospital, read_table_bytes(data, "log.csv"), NOW)
    assert check.errors == []
    first, second = check.events
    assert (first.kind, first.reference, first.value, first.line) == (
        "handover-delay",
        "HO-1",
        45.0,
        2,
    )
    assert first.occurred_at == datetime(2015, 11, 2, 10, 15, tzinfo=LONDON)
    assert second.kind == "handover-delay"  # the kind's case is forgiven
    # A rectification given as a bare date counts as the end of that day.
    assert second.rectified_at.hour == 23 and second.note == "ambulance queue"


def test_a_note_is_bounded_and_free_of_control_characters(hospital):
    data = b"date,kind,reference,value,note\n2015-11-02 10:15,handover-delay,HO-1,45," + b"n" * 501
    check = check_events(hospital, read_table_bytes(data, "log.csv"), NOW)
    assert check.events == []
    assert [str(e) for e in check.errors] == [
        "log.csv, line 2, column 'note': a note is limited to 500 characters; yours is 1 over"
    ]
    # Typed in chat, where no file reader has already refused the character.
    cells = {"date": "2015-11-02", "kind": "handover-delay", "reference": "HO-2", "value": "45"}
    event, errors = check_event(hospital, {**cells, "note": "queue\x1b[31m"}, NOW)
    assert event is None
    assert [str(e) for e in errors] == [
        "your message, column 'note': a note contains a control character (U+001B), which "
        "kpibot cannot store; delete it (it is often pasted in invisibly) and send it again"
    ]


def test_every_problem_names_file_line_and_column_and_nothing_is_kept(hospital):
    data = (
        b"date,kind,reference,value,affected,rectified_at\n"
        b"2015-11-02 10:15,handover-delay,HO-1,45,,\n"
        b"2015-11-31,handover-delay,HO-2,45,,\n"
        b"2015-11-03,handover-dealy,HO-3,45,,\n"
        b"2015-11-04,handover-delay,,45,,\n"
        b"2015-11-05,handover-delay,HO-5,,,\n"
        b"2015-11-06,handover-delay,HO-6,abc,0,\n"
        b"2015-11-07 10:00,handover-delay,HO-7,45,,2015-11-06\n"
        b"2016-02-01,handover-delay,HO-8,45,,\n"
        b"2014-01-01,handover-delay,HO-9,45,,\n"
        b"2015-11-02 10:15,handover-delay,HO-1,45,,\n"
    )
    check = check_events(hospital, read_table_bytes(data, "log.csv"), NOW)
    assert check.events == []
    got = [str(e) for e in check.errors]
    assert got == [
        "log.csv, line 3, column 'date': '2015-11-31' is not a date I can read; write it like "
        "2019-11-04 or 2019-11-04 14:30",
        "log.csv, line 4, column 'kind': 'handover-dealy' is not an event kind of "
        "acute-hospital-example. Did you mean 'handover-delay'? Its kinds: handover-delay",
        "log.csv, line 5, column 'reference': the reference is missing",
        "log.csv, line 6, column 'value': handover-delay events are charged by their value "
        "(over 30: £200, over 60: £1,000); give it",
        "log.csv, line 7, column 'value': 'abc' is not a number",
        "log.csv, line 7, column 'affected': '0' should be a whole number from 1 to 1,000,000",
        "log.csv, line 8, column 'rectified_at': it says the event was put right before it happened",
        "log.csv, line 9, column 'date': 1 Feb 2016 is in the future",
        "log.csv, line 10, column 'date': 1 Jan 2014 is outside the contract, which runs from "
        "1 Apr 2015 to 31 Mar 2017",
        "log.csv, line 11, column 'reference': the same handover-delay event (HO-1 on 2 Nov 2015 "
        "10:15) is already on line 2",
    ]


def test_a_log_without_a_required_column_is_refused_at_its_header(waste):
    check = check_events(
        waste, read_table_bytes(b"date,reference\n2019-11-04,UPRN-1\n", "log.csv"), NOW
    )
    assert [str(e) for e in check.errors] == [
        "log.csv, line 1, column 'kind': the header has no 'kind' column; an event log needs "
        "date, kind and reference (and may give rectified_at, value, affected, note)"
    ]


def test_xlsx_logs_are_read_by_row(waste):
    book = Workbook()
    sheet = book.active
    sheet.append(["date", "kind", "reference", "affected"])
    sheet.append([datetime(2019, 11, 4, 8, 30), "missed-collection", "COMMUNAL-7", 12])
    sheet.append(["not a date", "missed-collection", "UPRN-2", 1])
    buffer = io.BytesIO()
    book.save(buffer)
    check = check_events(
        waste,
        read_table_bytes(buffer.getvalue(), "log.xlsx"),
        datetime(2020, 1, 1, tzinfo=LONDON),
    )
    assert [str(e) for e in check.errors] == [
        "log.xlsx, line 3, column 'date': 'not a date' is not a date I can read; write it like "
        "2019-11-04 or 2019-11-04 14:30"
    ]
    assert check.events == []  # one bad row rejects the whole sheet


def test_one_event_typed_in_chat_has_no_line(waste):
    now = datetime(2019, 12, 1, tzinfo=LONDON)
    event, problems = check_event(
        waste, {"kind": "missed-collection", "reference": "UPRN-1", "date": "2019-11-04"}, now
    )
    assert problems == [] and event is not None and event.line is None
    _none, problems = check_event(waste, {"kind": "missed", "reference": "UPRN-1"}, now)
    assert [str(p) for p in problems] == [
        "your message, column 'date': the date is missing",
        "your message, column 'kind': 'missed' is not an event kind of waste-collection-example."
        " Did you mean 'missed-collection'? Its kinds: missed-collection, ombudsman-upheld, "
        "spillage-not-cleared",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-11-04", "2019-11-04T00:00:00+00:00"),
        ("2019-07-04 14:30", "2019-07-04T14:30:00+01:00"),
        ("04/07/2019 14:30", "2019-07-04T14:30:00+01:00"),
        ("2019-11-04T08:05", "2019-11-04T08:05:00+00:00"),
    ],
)
def test_moments_are_london_times(text, expected):
    assert parse_moment(text).isoformat() == expected


def test_unreadable_moments_are_none():
    assert parse_moment("4th November") is None
    assert parse_moment("2019-02-30") is None


def test_two_columns_for_the_same_field_are_refused_not_one_of_them_read(hospital):
    # 'When' is another name for 'date': reading either would be a guess at when it happened.
    data = (
        b"date,kind,reference,value,when\n"
        b"2015-11-02 10:15,handover-delay,HO-1,45,2015-11-09 10:15\n"
    )
    check = check_events(hospital, read_table_bytes(data, "log.csv"), NOW)
    assert check.events == []
    assert [str(e) for e in check.errors] == [
        "log.csv, line 1, column 'when': 'date' and 'when' both give the date; delete one of them"
    ]


@pytest.mark.parametrize("affected", ["9" * 5000, "10000001"])
def test_an_affected_count_beyond_any_real_one_is_refused_in_one_sentence(waste, affected):
    data = (
        "date,kind,reference,affected\n2019-11-04,missed-collection,P-1," + affected + "\n"
    ).encode()
    check = check_events(
        waste, read_table_bytes(data, "log.csv"), datetime(2020, 1, 15, tzinfo=LONDON)
    )
    assert check.events == []
    [error] = check.errors
    assert (error.line, error.column) == (2, "affected")
    assert "should be a whole number from 1 to 1,000,000" in error.reason
