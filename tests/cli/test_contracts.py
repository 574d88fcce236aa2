"""`kpibot contracts check|explain|draft` as an operator runs them."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from kpibot.cli.main import main
from kpibot.engine.targets import compile_contract
from kpibot.files.contracts import parse_contract_text

LATER_FIRST = """id: later
name: Later targets
commissioner: {name: Council}
provider: {name: Provider}
contract_years:
  - {year: 1, start: 2018-04-01, end: 2019-03-31}
  - {year: 2, start: 2019-04-01, end: 2020-03-31}
  - {year: 3, start: 2020-04-01, end: 2021-03-31}
kpis:
  - {code: "A", name: New measure, targets: {2: "90%"}}
  - {code: "B", name: Old measure, targets: {1: "80%"}}
"""


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_first_target_in_a_later_year_checks_cleanly(tmp_path, capsys):
    """Defect: an AssertionError traceback from `contracts check`."""
    path = tmp_path / "later.yaml"
    path.write_text(LATER_FIRST)
    code, out, err = run(capsys, "contracts", "check", str(path))
    assert code == 0 and "Traceback" not in err
    assert "ok  later: 2 KPIs" in out
    terms = compile_contract(parse_contract_text(LATER_FIRST))
    assert terms["A"].years[1].target.kind == "none"  # grey in the year before its first target
    assert terms["A"].years[2].target.value == 90.0


def test_check_says_which_targets_carry_into_later_years(tmp_path, capsys):
    """Defect: a target carried forward to later years silently."""
    path = tmp_path / "later.yaml"
    path.write_text(LATER_FIRST)
    _code, out, _err = run(capsys, "contracts", "check", str(path))
    assert "note: KPI A: Year 3 reuses Year 2's target '90%'" in out
    assert "note: KPI B: Year 2 and Year 3 reuse Year 1's target '80%'" in out


def test_explain_prints_every_kpi_and_year_beside_the_contract_words(capsys):
    code, out, _err = run(capsys, "contracts", "explain", "healthy-child-0-19")
    assert code == 0
    assert "1a  Breastfeeding at 6-8 weeks" in out
    assert 'Year 1: target "45.0%" → at least 45%' in out
    assert "exempt from its target this year" in out
    assert "Money" in out and "Per-KPI incentive (Table 1 footnote 1)" in out


def test_explain_as_csv(capsys):
    code, out, _err = run(
        capsys, "contracts", "explain", "config/contracts/childrens-trust.yaml", "--format", "csv"
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 44 * 2
    first = rows[0]
    assert (first["kpi"], first["year"], first["target_words"], first["target_reading"]) == (
        "C1",
        "2018/19",
        "Target 90%",
        "at least 90%",
    )
    assert first["polarity"] == "higher is better" and first["frequency"] == "Quarterly"


def test_explain_an_unknown_contract_is_one_sentence(capsys):
    code, _out, err = run(capsys, "contracts", "explain", "no-such-contract")
    assert code == 2 and "There is no contract 'no-such-contract'" in err


def test_draft_writes_the_yaml_and_the_figures(tmp_path, capsys):
    schedule = Path(__file__).resolve().parents[1] / "fixtures" / "seed004" / "kpi_schedule.csv"
    out = tmp_path / "trust.yaml"
    code, _stdout, err = run(
        capsys, "contracts", "draft", str(schedule), "--out", str(out), "--id", "trust"
    )
    assert code == 0
    assert f"wrote {out}: 43 KPIs, 3 lines to edit" in err
    assert (
        (tmp_path / "trust.figures.csv")
        .read_text()
        .startswith("kpi,period,value\nK1,2018/19 Q1,89%")
    )
    assert "need editing before `kpibot contracts check` accepts the draft" in err


@pytest.mark.parametrize("command", ["explain", "draft"])
def test_the_new_commands_have_help(capsys, command):
    with pytest.raises(SystemExit) as done:
        main(["contracts", command, "--help"])
    assert done.value.code == 0 and "usage:" in capsys.readouterr().out


PUBLIC = Path(__file__).resolve().parents[1] / "fixtures" / "public_contracts"


def test_check_reports_every_file_good_and_bad(tmp_path, capsys):
    """Defect: one bad file hid whether the others checked; now each file gets its answer."""
    bad = tmp_path / "missed.yaml"
    bad.write_text(
        LATER_FIRST.replace("id: later", "id: missed").replace(
            '{code: "A", name: New measure,', '{code: "A", name: Missed visits,'
        )
    )
    good = PUBLIC / "devon-cares-home-care.yaml"
    code, out, err = run(capsys, "contracts", "check", str(good), str(bad))
    assert code == 2
    assert "ok  devon-cares-home-care: 10 KPIs" in out and f"({good})" in out
    assert f"{bad}, line 10, field 'kpis[A].name': KPI A gives no polarity" in err
    assert "1 of 2 file(s) have problems; `kpibot contracts load` loads nothing" in err


def test_check_notes_a_target_that_targets_by_year_overrides(tmp_path, capsys):
    path = tmp_path / "shadowed.yaml"
    path.write_text(
        LATER_FIRST.replace(
            '{code: "B", name: Old measure, targets: {1: "80%"}}',
            '{code: "B", name: Old measure, target: "80- 99%", targets: {1: "80%", 2: "85%", 3: "90%"}}',
        )
    )
    code, out, _ = run(capsys, "contracts", "check", str(path))
    assert code == 0
    assert (
        "note: KPI B: its 'target' ('80- 99%') is never used, because 'targets' gives every "
        "contract year" in out
    )


def test_check_with_no_files_found_is_one_sentence(tmp_path, capsys):
    code, _, err = run(capsys, "contracts", "check", str(tmp_path / "nowhere.yaml"))
    assert code == 2
    assert err.strip() == (
        f"No contract files found at {tmp_path / 'nowhere.yaml'}; give YAML files or a folder of them."
    )


def test_a_newcomer_loads_a_public_contract_imports_a_quarter_and_gets_status(tmp_path):
    """The README's path for a new contract, end to end on SQLite, with invented TEST FIGURES."""
    from tests.cli.test_main import kpibot

    env = {"KPIBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "KPIBOT_TODAY": "2018-01-15"}
    kpibot("contracts", "check", str(PUBLIC), env=env)
    loaded = kpibot("contracts", "load", str(PUBLIC), env=env).stdout
    assert "loaded  housing-repairs-incentive: 8 KPIs" in loaded
    stored = kpibot(
        "import",
        str(PUBLIC / "housing-repairs-incentive.figures.csv"),
        "--contract",
        "housing-repairs-incentive",
        env=env,
    ).stdout
    assert "Stored 10 figure(s)" in stored
    out = kpibot("status", "housing-repairs-incentive", "--period", "2015/16 Q2", env=env).stdout
    # Worked by hand from the table: 1, 4, 5, 6b miss their first-year targets; 2, 3, 6a, 7 meet them.
    assert "4 red  0 amber  4 green  0 grey" in out
    assert "11.5 days" in out and "10 days" in out
    # "both targets to be met": 6a met, 6b not, so the group is not performed, as chat says it.
    assert "Group rule: KPI 6 Repairs completed on time" in out
    assert "not performed (1 of 2 met; the rule is all; not met: 6b)" in out


def test_load_from_a_folder_with_no_contracts_says_so(tmp_path, capsys, monkeypatch):
    """Defect: `contracts load` of an empty folder printed nothing and exited 0."""
    monkeypatch.setenv("KPIBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    empty = tmp_path / "contracts"
    empty.mkdir()
    code, out, err = run(capsys, "contracts", "load", str(empty))
    assert code == 2 and out == ""
    assert (
        err.strip()
        == f"There are no contract files (*.yaml, *.yml) in {empty}. Nothing was loaded."
    )


def test_explain_a_near_miss_id_suggests_the_contract(capsys):
    code, _, err = run(capsys, "contracts", "explain", "childrens-trus")
    assert code == 2
    assert "Did you mean 'childrens-trust'?" in err
    assert "give its YAML file: kpibot contracts explain path/to/contract.yaml" in err


def test_explain_as_csv_is_formula_safe(tmp_path, capsys):
    # A contract's words reach a spreadsheet: a name like '=HYPERLINK(…)' must not run there.
    path = tmp_path / "hostile.yaml"
    path.write_text(
        LATER_FIRST.replace("New measure", '\'=HYPERLINK("http://x","Open")\'').replace(
            "Old measure", "'@SUM(1+1)'"
        )
    )
    code, out, _err = run(capsys, "contracts", "explain", str(path), "--format", "csv")
    names = {row["kpi"]: row["name"] for row in csv.DictReader(io.StringIO(out))}
    assert code == 0
    assert names == {"A": '\'=HYPERLINK("http://x","Open")', "B": "'@SUM(1+1)"}
