"""A hold-out test: the grammar on real health and social-care contract KPI phrasings.

``tests/engine/data/contract_phrasings.csv`` holds target cells copied verbatim from public UK
health, public-health and social-care contract schedules, service standards and monitoring
reports that ``target_phrasings.csv`` does not draw on (see ``tests/engine/data/README.md``).
Each row is checked as ``test_reading.py`` checks its table, with the same helpers: a ``read``
row must read with the row's comparator, threshold, unit and time limit, and a ``refuse`` row
must be refused with a sentence that quotes the words it could not read. A reading that differs
from the label is a silent misread and fails.

Rows with ``samples`` also pin what a figure against the phrase comes to: each ``value:position``
pair is evaluated with the target (and the row's ``tolerance`` cell, when it has one) exactly as
a contract's terms are. A few whole rows go through ``kpibot evaluate`` as a user would write
them, polarity words and all.

``STILL_REFUSED`` lists ``read`` rows kpibot refuses, each with its reason: honest refusals, not
misreads. The test fails if one starts being read, so the list shrinks as the grammar learns.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from kpibot.engine.evaluate import RAG_OF, evaluate_scalar
from kpibot.engine.reading import PhraseRefused, read_phrase
from kpibot.engine.targets import YearTerms, parse_target
from tests.engine.test_reading import _describe, _matches_label, _names_words, _polarity, _read

DATA = Path(__file__).parent / "data" / "contract_phrasings.csv"
ROWS = list(csv.DictReader(DATA.open(encoding="utf-8")))
BY_ID = {r["id"]: r for r in ROWS}

# 'read' rows kpibot refuses, each with the reason its refusal gives.
STILL_REFUSED: dict[str, str] = {
    "C005": "'Within 4 hours – 80- 99%': a band beside a time limit (the band reader takes two figures)",
    "C046": "'an improvement on 5.6 per cent' reads as a change, so '5 per cent' could be a change",
    "C130": "one share (95%) with two time limits for two kinds of case",
    "C135": "'every 12 months' is a frequency; 'all' with it is not read as 100% within 12 months",
}


def _quotes_its_words(message: str, phrase: str) -> bool:
    """test_reading's check; a quote that elides words ('increase ... to 9.6 per cent') counts
    as quoting both ends."""
    return _names_words(message.replace(" ... ", "' '"), phrase)


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_every_contract_phrasing_reads_as_labelled_or_is_refused_naming_its_words(row):
    rid = row["id"]
    if row["expect"] == "refuse" or rid in STILL_REFUSED:
        with pytest.raises(PhraseRefused) as err:
            r = _read(row)
            pytest.fail(
                f"{rid} was read as {_describe(r)} ({r.kind}); it should be refused"
            )  # pragma: no cover
        assert _quotes_its_words(str(err.value), row["phrase"]), str(err.value)
        return
    r = _read(row)
    problem = _matches_label(row, r)
    assert problem is None, f"{rid}: {problem} ({_describe(r)})"


def _samples(row: dict[str, str]) -> list[tuple[float, str]]:
    out = []
    for pair in row["samples"].split():
        value, position = pair.split(":")
        out.append((float(value), position))
    return out


SAMPLED = [r for r in ROWS if r["samples"] and r["id"] not in STILL_REFUSED]


def _terms(row: dict[str, str]) -> YearTerms:
    polarity = _polarity(row) or "bigger"
    target = parse_target(row["phrase"], polarity, measure=row["measure"])
    tolerance = (
        parse_target(row["tolerance"], polarity, role="tolerance", measure=row["measure"])
        if row["tolerance"]
        else None
    )
    return YearTerms(0, target, tolerance, None, False)


@pytest.mark.parametrize("row", SAMPLED, ids=[r["id"] for r in SAMPLED])
def test_sample_figures_land_where_a_careful_reader_puts_them(row):
    terms = _terms(row)
    for value, position in _samples(row):
        got = evaluate_scalar(value, terms).position
        assert got == position, f"{row['id']}: {value:g} against {row['phrase']!r} is {got}"


# Whole rows as a user would put them in KPIS.csv: the target and tolerance cells verbatim, the
# polarity in words. (kpi, row id, polarity words, tolerance cell)
E2E = [
    ("AMB", "C031", "Bigger is better", ""),
    ("IAPT", "C066", "higher", ""),
    ("DIAG", "C057", "Smaller is better", ""),
    ("RR", "C044", "lower", ""),
    ("NWAS", "C028", "bigger", ""),
    ("CAM", "C012", "Bigger is better", ""),
    ("PERT", "C072", "Bigger is better", "50%"),
    ("MISS", "C008", "Smaller is better", ""),
    ("MRSA", "C089", "Smaller is better", ""),
    ("CDIF", "C095", "lower", ""),
    ("TRAJ", "C098", "smaller", ""),
    ("A19", "C110", "Bigger is better", ""),
    ("DTOC", "C116", "Smaller is better", ""),
    ("CPA", "C129", "higher", ""),
]


@pytest.fixture
def run(tmp_path, capsys):
    from kpibot.cli.main import main

    def go(kpis: str, figures: str) -> tuple[int, str, str]:
        k, f = tmp_path / "KPIS.csv", tmp_path / "FIGURES.csv"
        k.write_text(kpis, encoding="utf-8")
        f.write_text(figures, encoding="utf-8")
        code = main(["evaluate", str(k), str(f)])
        out = capsys.readouterr()
        return code, out.out, out.err

    return go


def _csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def test_whole_rows_through_kpibot_evaluate(run):
    kpis = [["kpi", "name", "polarity", "target", "tolerance", "critical_failure"]]
    figures = [["kpi", "period", "value"]]
    expected = {}
    for kpi, rid, polarity, tolerance in E2E:
        row = BY_ID[rid]
        kpis.append([kpi, row["measure"], polarity, row["phrase"], tolerance, ""])
        for q, (value, position) in enumerate(_samples(row), 1):
            period = f"2019/20 Q{q}"
            figures.append([kpi, period, f"{value:g}"])
            expected[(kpi, period)] = (position, RAG_OF[position])
    code, out, err = run(_csv(kpis), _csv(figures))
    assert code == 0, err
    got = {
        (r["kpi"], r["period"]): (r["position"], r["rag"]) for r in csv.DictReader(io.StringIO(out))
    }
    assert got == expected


def test_a_refused_contract_phrase_is_a_bad_file_naming_the_words(run):
    row = BY_ID["C062"]  # two targets in one cell: an interim 76% and the official 95%
    kpis = _csv([["kpi", "polarity", "target"], ["AE", "bigger", row["phrase"]]])
    code, out, err = run(kpis, "kpi,period,value\nAE,2019/20 Q1,80\n")
    assert code == 2 and out == ""
    assert "KPIS.csv" in err and "76%" in err and "95%" in err


# The fixes the table called for are general rules; these phrasings sit next to them and must
# read as before: (phrase, polarity, comparator, value).
STILL_READ = [
    ("90% of services delivered on time", "bigger", ">=", 90.0),
    ("95% (target 90%)", "bigger", ">=", 90.0),
    ("Performance was 91% against a target of 95%", "bigger", ">=", 95.0),
    ("80% of people aged 65 and over", "bigger", ">=", 80.0),
    ("a target of 90% per quarter", "bigger", ">=", 90.0),
    ("no more than 5% wait more than 62 days", "smaller", "<=", 5.0),
    ("only 2% of visits may be missed", "smaller", "<=", 2.0),
    ("at least 5% of smokers each year", "bigger", ">=", 5.0),
    ("95% of patients reviewed every 12 months", "bigger", ">=", 95.0),
]


@pytest.mark.parametrize(("phrase", "polarity", "comparator", "value"), STILL_READ)
def test_the_fixes_stay_narrow(phrase, polarity, comparator, value):
    r = read_phrase(phrase, polarity)
    assert (r.comparator, r.value) == (comparator, value)


@pytest.mark.parametrize(
    ("phrase", "annual"),
    [
        ("a year-to-date rate of 2.2 per cent against a threshold of 3.5 per cent", False),
        ("40 a year", True),
        ("100 per annum", True),
    ],
)
def test_a_year_to_date_outturn_does_not_make_the_target_annual(phrase, annual):
    assert read_phrase(phrase, "smaller").annual is annual


def test_a_milestone_from_a_date_is_still_a_milestone():
    assert read_phrase("From 1 April 2020, implement the new system", "bigger").kind == "milestone"


def test_the_table_is_as_its_readme_describes():
    assert len(ROWS) == 138
    assert sum(r["expect"] == "read" for r in ROWS) == 112
    assert len({r["source"] for r in ROWS}) == 70
    assert set(STILL_REFUSED) <= {r["id"] for r in ROWS if r["expect"] == "read"}
