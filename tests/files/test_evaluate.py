"""`kpibot evaluate KPIS.csv FIGURES.csv`: the exact interface DESIGN.md fixes, and its bad-input answers."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

KPIS = """kpi,name,polarity,target,tolerance,critical_failure,unit,extra
A,Assessments,Bigger is better,Target 90%,Tolerance 85%,,,ignored
B,Placements,smaller,9%,12%,,percent,
C,Re-referrals,lower,TBD*,TBD*,,,
D,Attrition,Smaller is better,Less than 40 %,,Higher than 55% leaving early,,
E,Breastfeeding,higher,> National average,,,percent,
"""
FIGURES = """kpi,period,value,numerator,denominator,benchmark
A,2019/20 Q1,87,,,
A,2019/20 Q2,91,,,
A,2019/20 Q3,,96,100,
B,2019/20 Q3,12,,,
C,2019/20 Q3,55,,,
D,2019/20 Q3,56,,,
E,2019/20 Q3,46,,,45.5
"""


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run(tmp_path, capsys):
    """Run `kpibot evaluate` in-process (the subprocess test below checks the real command line)."""
    from kpibot.cli.main import main

    def go(_tmp, kpis: str | bytes, figures: str | bytes, *extra: str) -> Result:
        k, f = tmp_path / "KPIS.csv", tmp_path / "FIGURES.csv"
        for path, data in ((k, kpis), (f, figures)):
            path.write_bytes(data if isinstance(data, bytes) else data.encode())
        code = main(["evaluate", str(k), str(f), *extra])
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return go


def test_the_real_command_line(tmp_path):
    (tmp_path / "KPIS.csv").write_text(KPIS)
    (tmp_path / "FIGURES.csv").write_text(FIGURES)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "kpibot",
            "evaluate",
            str(tmp_path / "KPIS.csv"),
            str(tmp_path / "FIGURES.csv"),
            "--as-of",
            "2019/20 Q3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "kpi,period,value,target,position,rag,trend,critical"
    assert out.stdout.splitlines()[1] == "A,2019/20 Q3,96,Target 90%,met,green,improving,false"


def test_csv_output_has_the_fixed_columns_and_values(tmp_path, run):
    out = run(tmp_path, KPIS, FIGURES)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert list(rows[0]) == [
        "kpi",
        "period",
        "value",
        "target",
        "position",
        "rag",
        "trend",
        "critical",
    ]
    got = {(r["kpi"], r["period"]): r for r in rows}
    assert len(rows) == 7
    a3 = got[("A", "2019/20 Q3")]
    assert (a3["value"], a3["target"], a3["position"], a3["rag"], a3["trend"], a3["critical"]) == (
        "96",
        "Target 90%",
        "met",
        "green",
        "improving",
        "false",
    )
    assert got[("A", "2019/20 Q1")]["position"] == "within_tolerance"
    assert got[("B", "2019/20 Q3")]["rag"] == "amber"  # on the tolerance threshold
    assert got[("C", "2019/20 Q3")]["position"] == "no_target"
    assert (got[("D", "2019/20 Q3")]["rag"], got[("D", "2019/20 Q3")]["critical"]) == (
        "red",
        "true",
    )
    assert got[("E", "2019/20 Q3")]["position"] == "met"


def test_as_of_gives_one_row_per_kpi_including_missing(tmp_path, run):
    out = run(tmp_path, KPIS, FIGURES, "--as-of", "2019/20 Q2", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["kpi"] for r in rows] == ["A", "B", "C", "D", "E"]
    assert (
        rows[0]["position"] == "met"
        and rows[1]["position"] == "missing"
        and rows[1]["rag"] == "grey"
    )
    assert set(rows[0]) == {
        "kpi",
        "period",
        "value",
        "target",
        "position",
        "rag",
        "trend",
        "critical",
    }


def test_table_format(tmp_path, run):
    out = run(tmp_path, KPIS, FIGURES, "--format", "table")
    assert out.returncode == 0 and out.stdout.splitlines()[0].split() == [
        "kpi",
        "period",
        "value",
        "target",
        "position",
        "rag",
        "trend",
        "critical",
    ]


@pytest.mark.parametrize(
    ("kpis", "figures", "expect"),
    [
        (
            KPIS,
            "kpi,period,value\nA,2019/20 Q1,abc\n",
            "FIGURES.csv, line 2, column 'value': 'abc' is not a number",
        ),
        (
            KPIS,
            "kpi,period,numerator,denominator\nA,2019/20 Q1,120,100\n",
            "line 2, column 'numerator'",
        ),
        (KPIS, "kpi,period,value\nZ,2019/20 Q1,5\n", "line 2, column 'kpi': KPI 'Z' is not in"),
        (KPIS, "kpi,period,value\nA,2019 Q5,5\n", "line 2, column 'period'"),
        (KPIS, "kpi,period,value\nA,2019/20 Q1,5\nA,2019/20 Q1,6\n", "line 3: duplicate row"),
        (KPIS, "", "FIGURES.csv: the file is empty"),
        (KPIS, "kpi,period,value\nA,2019/20 Q1,\xe9\n".encode("latin-1"), "not UTF-8"),
        (
            "kpi,target\nA,ninety or so\n",
            "kpi,period,value\nA,2019/20 Q1,5\n",
            "KPIS.csv, line 2, column 'target'",
        ),
        ("kpi,unit,target\nA,count,100\n", "kpi,period,value\nA,2019/20 Q1,-3\n", "negative"),
        (
            KPIS,
            "kpi,period,value,numerator,denominator\nA,2019/20 Q1,95,10,100\n",
            "FIGURES.csv, line 2, column 'value': the value (95) and the numerator and "
            "denominator (10/100 = 10%) disagree",
        ),
        (
            "kpi,kind,members,rule\nG,group,A,99999999999999999999 of 1\nA,,,\n",
            "kpi,period,value\nA,2019/20 Q1,5\n",
            "KPIS.csv, line 2, column 'rule': the rule '99999999999999999999 of 1' needs "
            "between 1 and 1 KPIs met\n",
        ),
    ],
)
def test_bad_files_exit_2_naming_file_line_column(tmp_path, run, kpis, figures, expect):
    out = run(tmp_path, kpis, figures)
    assert out.returncode == 2
    assert expect in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_a_decimal_comma_is_refused_showing_both_readings(tmp_path, run):
    out = run(tmp_path, KPIS, 'kpi,period,value\nA,2019/20 Q1,"87,5"\n')
    assert out.returncode == 2
    assert "line 2, column 'value': '87,5' could mean 87.5 or 875" in out.stderr


def test_european_figures_are_read_with_the_number_style_option(tmp_path, run):
    figures = "kpi;period;value;numerator;denominator;benchmark\nA;2019/20 Q1;87,5;;;\n"
    out = run(tmp_path, KPIS, figures, "--number-style", "european")
    assert out.returncode == 0, out.stderr
    assert (
        out.stdout.splitlines()[1]
        == "A,2019/20 Q1,87.5,Target 90%,within_tolerance,amber,new,false"
    )


def test_an_ambiguous_number_in_a_target_is_refused(tmp_path, run):
    out = run(
        tmp_path,
        "kpi,polarity,target\nA,bigger,Target 8,5%\n".replace("Target 8,5%", '"Target 8,5%"'),
        FIGURES,
    )
    assert out.returncode == 2 and "'8,5' could mean 8.5 or 85" in out.stderr


def test_hundreds_of_problems_list_the_first_50_and_count_the_rest(tmp_path, run):
    figures = "kpi,period,value\n" + "".join(f"Z{i},2019/20 Q1,1\n" for i in range(120))
    out = run(tmp_path, KPIS, figures)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 51
    assert lines[-1].endswith(
        "…and 70 more problem(s) after these; fix these first and send the file again"
    )


# ---------------------------------------------------------------------------- issue 13 columns

NEW_KPIS = """kpi,name,polarity,target,tolerance,kind,due,members,rule,trend,signed,values,in_year_targets,baseline
A,Complaints answered within 15 working days,bigger,90%,within 10% of target,,,,,same_period_last_year,,,,
B,Days ahead of or behind timetable,bigger,0,,,,,,,yes,,,
C,Council tax collected,bigger,97%,,,,,,,,,Q1: 25%; Q2: 50%; Q3: 74%; Q4: 97%,
D,Waiting time,smaller,reduce by 15 per cent from the baseline,,,,,,,,,,400
M,Introduce the complaints panel,,,,milestone,2019-10-31,,,,,,,
G,Quality standards,,,,group,,A;B;C,2 of 3,,,,,
"""
NEW_FIGURES = """kpi,period,value
A,2018/19 Q1,80
A,2019/20 Q1,84
B,2019/20 Q1,-10
B,2019/20 Q2,2
C,2019/20 Q1,25.5
C,2019/20 Q2,48
D,2019/20 Q1,330
M,2019/20 Q3,achieved
"""


def test_the_new_optional_columns(run, tmp_path):
    r = run(tmp_path, NEW_KPIS, NEW_FIGURES, "--format", "csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == [
        "kpi",
        "period",
        "value",
        "target",
        "position",
        "rag",
        "trend",
        "critical",
    ]
    got = {(x["kpi"], x["period"]): (x["value"], x["position"], x["trend"]) for x in rows}
    # 84 against 90% with "within 10% of target" (81): amber, improving on the same quarter last year
    assert got[("A", "2019/20 Q1")] == ("84", "within_tolerance", "improving")
    # a signed measure takes -10 (10 days behind) and rates it
    assert got[("B", "2019/20 Q1")] == ("-10", "not_met", "new")
    assert got[("B", "2019/20 Q2")][1] == "met"
    # year-to-date figures against in-year targets: 25.5 by Q1 meets 25%, 48 by Q2 misses 50%
    assert got[("C", "2019/20 Q1")][1] == "met" and got[("C", "2019/20 Q2")][1] == "not_met"
    # 15% below the 400 baseline is 340: 330 meets it
    assert got[("D", "2019/20 Q1")][1] == "met"
    assert got[("M", "2019/20 Q3")] == ("1", "met", "new")
    # the group in 2019/20 Q1: A within tolerance, B not met, C met: 1 of 3, not performed
    assert got[("G", "2019/20 Q1")][:2] == ("1", "not_met")
    # in Q2 B is met and C is not, with A still to come: it could still make 2 of 3 (pending)
    assert got[("G", "2019/20 Q2")][:2] == ("1", "missing")


@pytest.mark.parametrize(
    ("kpis", "where", "words"),
    [
        (
            "kpi,polarity,target\nA,bigger,no more than 5 weeks\n",
            "KPIS.csv, line 2, column 'target'",
            "'no more than' implies smaller is better",
        ),
        (
            "kpi,polarity,target\nA,bigger,at least 95% 1998\n",
            "KPIS.csv, line 2, column 'target'",
            "I could not tell what '1998' means",
        ),
        (
            "kpi,polarity,target\nA,bigger,60 per cent in 5 days and 85 per cent in 15 days\n",
            "KPIS.csv, line 2, column 'target'",
            "write them as 2 KPIs",
        ),
        (
            "kpi,polarity,target\nA,bigger,a 5% increase on the baseline\n",
            "KPIS.csv, line 2, column 'target'",
            "put the baseline figure in the KPI's 'baseline' column",
        ),
        ("kpi,kind,due\nM,milestone,soon\n", "KPIS.csv, line 2, column 'due'", "is not a date"),
        (
            "kpi,kind,members,rule\nG,group,A;B,3 of 4\n",
            "KPIS.csv, line 2, column 'rule'",
            "counts 4 KPIs but the group lists 2",
        ),
        ("kpi,trend\nA,sideways\n", "KPIS.csv, line 2, column 'trend'", "is not last_three"),
    ],
)
def test_a_refused_phrase_or_setting_names_file_line_column_and_reason(
    run, tmp_path, kpis, where, words
):
    r = run(tmp_path, kpis, "kpi,period,value\nA,2019/20 Q1,5\n")
    assert r.returncode == 2
    assert where in r.stderr and words in r.stderr, r.stderr


def test_with_no_polarity_the_target_words_set_it(run, tmp_path):
    # A KPI table with no polarity column: "No more than", "Fewer than", "Zero" say smaller is
    # better themselves, so the tolerance is read on the same side and the RAG comes out right.
    kpis = (
        "kpi,name,target,tolerance\n"
        "A,Delayed transfers of care,No more than 3.5%,5%\n"
        "B,Complaints,Fewer than 10,12\n"
        "C,Never events,Zero,\n"
        "D,Reviews on time,95%,90%\n"
    )
    figures = (
        "kpi,period,value\n"
        "A,2019/20 Q1,4\nA,2019/20 Q2,6\nB,2019/20 Q1,9\nC,2019/20 Q1,2\nD,2019/20 Q1,92\n"
    )
    r = run(tmp_path, kpis, figures)
    assert r.returncode == 0, r.stderr
    got = {(x["kpi"], x["period"]): x["rag"] for x in csv.DictReader(io.StringIO(r.stdout))}
    assert got == {
        ("A", "2019/20 Q1"): "amber",  # 4% over 3.5%, within 5%
        ("A", "2019/20 Q2"): "red",  # 6% over 5%
        ("B", "2019/20 Q1"): "green",
        ("C", "2019/20 Q1"): "red",  # two never events against none
        ("D", "2019/20 Q1"): "amber",  # bare figures: bigger is better, as ever
    }


def test_a_target_every_figure_meets_is_refused_not_shown_green(run, tmp_path):
    # "0" on a bigger-is-better KPI would be met by anything: one sentence on the KPI's row,
    # and no second complaint about its figures.
    r = run(tmp_path, "kpi,polarity,target\nA,bigger,0\n", "kpi,period,value\nA,2019/20 Q1,2\n")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1, r.stderr
    assert "KPIS.csv, line 2, column 'polarity': target '0' is met by every figure" in r.stderr
    assert "smaller is better" in r.stderr
    # A measure that may be negative (a balance, days ahead or behind) keeps its zero target.
    r = run(
        tmp_path,
        "kpi,polarity,target,signed\nA,bigger,0,yes\n",
        "kpi,period,value\nA,2019/20 Q1,-2\n",
    )
    assert r.returncode == 0, r.stderr
    assert next(csv.DictReader(io.StringIO(r.stdout)))["rag"] == "red"


def test_a_target_written_as_rag_bands_sets_the_tolerance_and_the_polarity(run, tmp_path):
    # Council frameworks give the bands, not a target and a tolerance; no polarity column.
    kpis = (
        "kpi,name,target\n"
        'A,Seen within 4 hours,"Green >= 92%, Amber 85-91.9%, Red < 85%"\n'
        'B,Missed visits,"G: <5% A: 5-10% R: >10%"\n'
    )
    figures = (
        "kpi,period,value\nA,2019/20 Q1,92\nA,2019/20 Q2,91.9\nA,2019/20 Q3,84.9\nB,2019/20 Q1,5\n"
    )
    r = run(tmp_path, kpis, figures)
    assert r.returncode == 0, r.stderr
    got = {(x["kpi"], x["period"]): x["rag"] for x in csv.DictReader(io.StringIO(r.stdout))}
    assert got == {
        ("A", "2019/20 Q1"): "green",
        ("A", "2019/20 Q2"): "amber",
        ("A", "2019/20 Q3"): "red",
        ("B", "2019/20 Q1"): "amber",  # 5% is amber's, not green's (< 5%)
    }
    r = run(tmp_path, 'kpi,target\nA,"Green >= 90%, Amber 85-95%, Red < 85%"\n', figures)
    assert r.returncode == 2
    assert "KPIS.csv, line 2, column 'target'" in r.stderr and "overlap" in r.stderr


def test_a_yearly_percentage_checked_each_quarter_must_say_how_its_figures_add_up(run, tmp_path):
    # "95% per annum" with a quarter's 30%: summed and pro-rated it would be green (30 >= 23.75),
    # read as a rate it is red. The words do not say which, so the row is refused.
    figures = "kpi,period,value\nA,2019/20 Q1,30\n"
    r = run(tmp_path, "kpi,name,target\nA,Reviews on time,95% per annum\n", figures)
    assert r.returncode == 2 and r.stdout == ""
    assert (
        "KPIS.csv, line 2, column 'target': target '95% per annum' is a share for the whole year"
        in r.stderr
    )
    assert "put 'Annually' in its 'frequency'" in r.stderr
    # Said to add up through the year, it is pro-rated: 30% by Q1 against 95% / 4.
    r = run(tmp_path, "kpi,target,values\nA,95% per annum,year_to_date\n", figures)
    assert r.returncode == 0, r.stderr
    assert next(csv.DictReader(io.StringIO(r.stdout)))["rag"] == "green"
    # Reported once a year, there is nothing to add up.
    r = run(
        tmp_path,
        "kpi,target,frequency\nA,95% per annum,Annually\n",
        "kpi,period,value\nA,2019/20,94\n",
    )
    assert r.returncode == 0, r.stderr
    assert next(csv.DictReader(io.StringIO(r.stdout)))["rag"] == "red"
    # A yearly count is pro-rated as ever: 460 by Q1 against 1,800 a year (450).
    r = run(
        tmp_path,
        'kpi,target\nA,"1,800 health checks per annum"\n',
        "kpi,period,value\nA,2019/20 Q1,460\n",
    )
    assert r.returncode == 0, r.stderr
    assert next(csv.DictReader(io.StringIO(r.stdout)))["rag"] == "green"


def test_a_figure_typed_as_a_percentage_in_excel_is_read_as_excel_shows_it(tmp_path, capsys):
    # Excel stores '87%' as 0.87 in a percent-formatted cell; read as 0.87% it would be red.
    import openpyxl

    from kpibot.cli.main import main

    wb = openpyxl.Workbook()
    wb.active.append(["kpi", "period", "value"])
    wb.active.append(["A", "2019/20 Q1", 0.87])
    wb.active["C2"].number_format = "0%"
    wb.save(tmp_path / "FIGURES.xlsx")
    (tmp_path / "KPIS.csv").write_text(KPIS)
    code = main(["evaluate", str(tmp_path / "KPIS.csv"), str(tmp_path / "FIGURES.xlsx")])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[1] == "A,2019/20 Q1,87,Target 90%,within_tolerance,amber,new,false"
