"""`kpibot contracts draft`: seed 004's table becomes a contract YAML that `contracts check`
accepts after editing only the marked lines, and that `contracts explain` prints back."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from kpibot.engine.explain import explain_text
from kpibot.files.contracts import ContractFilesInvalid, parse_contract_text
from kpibot.files.draft import CANNOT_READ, GUESSED, draft_contract, guess_polarity
from kpibot.files.tables import read_table, read_table_bytes

SCHEDULE = Path(__file__).resolve().parents[1] / "fixtures" / "seed004" / "kpi_schedule.csv"


@pytest.fixture(scope="module")
def draft():
    return draft_contract(read_table(SCHEDULE), "childrens-trust-draft", "trust.figures.csv")


def _edit_marked_lines(text: str) -> str:
    """What a contract officer does: fix each line marked CANNOT READ, and nothing else."""
    out = []
    for line in text.splitlines():
        if CANNOT_READ in line and not line.startswith("#"):
            key = line.split(":", 1)[0]
            if key.strip() in ("target", "tolerance", "critical_failure"):
                line = f'{key}: "TBD"  # edited: the RI+ and Good+ terms become their own KPIs'
            elif key.strip() == "polarity":
                line = f"{key}: bigger  # edited: outstanding is the best grade"
            else:  # pragma: no cover - the seed's table has no other kind of marked line
                raise AssertionError(f"unexpected marked line: {line}")
        out.append(line)
    return "\n".join(out) + "\n"


def test_the_draft_is_refused_until_the_marked_lines_are_edited(draft):
    assert draft.kpis == 43 and draft.cannot_read == 3
    with pytest.raises(ContractFilesInvalid) as err:
        parse_contract_text(draft.yaml, "draft.yaml")
    assert "RI+: 95% Good+ 80%" in str(err.value)
    marked = [x for x in draft.yaml.splitlines() if CANNOT_READ in x and not x.startswith("#")]
    assert any("write them as 2 KPIs" in line for line in marked)


def test_after_editing_only_the_marked_lines_check_accepts_it_and_explain_prints_it_back(draft):
    edited = _edit_marked_lines(draft.yaml)
    changed = [
        (a, b) for a, b in zip(draft.yaml.splitlines(), edited.splitlines(), strict=True) if a != b
    ]
    assert len(changed) == draft.cannot_read and all(CANNOT_READ in a for a, _ in changed)
    assert all(not a.startswith("#") for a, _ in changed)
    contract = parse_contract_text(edited, "draft.yaml")
    assert len(contract.kpis) == 43 and [y.name for y in contract.contract_years] == [
        "2018/19",
        "2019/20",
    ]
    text = explain_text(contract)
    assert 'target "Target 90%" → at least 90%' in text
    assert 'tolerance "Tolerance 85%" → at least 85%' in text
    assert 'target "140 days" → at most 140 days' in text
    assert 'target "TBD*" → no target yet: to be determined' in text
    assert "Money" in text


def test_every_target_is_kept_in_the_tables_words_with_its_reading(draft):
    table = read_table(SCHEDULE)
    for row in table:
        if row["target"]:
            quoted = '"' + row["target"].replace('"', '\\"') + '"'
            line = next(x for x in draft.yaml.splitlines() if f"target: {quoted}" in x)
            assert "# reads:" in line or CANNOT_READ in line


def test_polarity_is_guessed_only_when_the_table_has_none_and_each_guess_is_marked(draft):
    guessed = [line for line in draft.yaml.splitlines() if GUESSED in line and "polarity" in line]
    assert len(guessed) == draft.guessed == 7
    # the split row 'Assessments completed within 20 days' has no polarity cell: 25% / 15%
    assert guess_polarity("Assessments completed within 20 days", "25%", "15%")[0] == "bigger"
    assert guess_polarity("b) >1 year", "25%", "30%")[0] == "smaller"
    assert guess_polarity("Case file audits graded inadequate", "", "")[0] == "smaller"
    stated = [line for line in draft.yaml.splitlines() if "# table:" in line]
    assert len(stated) == 43 - 7 - 1


def test_past_figures_become_an_import_file(draft):
    rows = list(csv.DictReader(io.StringIO(draft.figures_csv)))
    assert list(rows[0]) == ["kpi", "period", "value"]
    assert rows[0] == {"kpi": "K1", "period": "2018/19 Q1", "value": "89%"}
    assert len(rows) == draft.figures == 243  # as many as childrens-trust.yaml's history
    assert "kpibot import trust.figures.csv --contract childrens-trust-draft" in draft.yaml


def test_a_table_with_references_and_year_columns():
    table = read_table_bytes(
        b"Ref,Indicator,Direction,Target 2019/20,2017/18,2018/19\n"
        b"HC1,Homes improved,Higher is better,no fewer than 40 homes,35,38\n"
        b"HC2,Days to re-let,,within an average of 27 days,30,29\n"
        b"HC3,Repairs done,Higher is better,90% within 7 days; 99% within 28 days,,\n",
        "housing.csv",
    )
    d = draft_contract(table)
    assert 'code: "HC1"' in d.yaml and "made up" not in d.yaml
    assert re.search(r'target: "no fewer than 40 homes"  # reads: at least 40 homes', d.yaml)
    assert "polarity: smaller  # GUESSED" in d.yaml  # 'Days to re-let': from its words
    assert CANNOT_READ in d.yaml and "write them as 2 KPIs" in d.yaml
    assert "2017/18" in d.yaml and "2018/19" in d.yaml
    assert d.figures == 4


def test_a_table_with_a_target_column_per_contract_year():
    """A real repairs appendix: 'Key Performance Indicator', 'First year target', 'Target 2nd yr.
    onwards'. Defect: the measure column was not found (each KPI was named after its target) and
    only the 2nd year's column was read, as the target for every year."""
    table = read_table_bytes(
        b"KPI no.,Key Performance Indicator,First year target,Target 2nd yr. onwards\n"
        b"2,Percentage of tenants satisfied with the repairs service,93.00%,95.00%\n"
        b"4,Average number of calendar days to complete standard voids,10 days,10 days\n",
        "repairs.csv",
    )
    d = draft_contract(table)
    assert 'name: "Percentage of tenants satisfied with the repairs service"' in d.yaml
    assert '      1: "93.00%"  # reads: at least 93%' in d.yaml
    assert '      2: "95.00%"  # reads: at least 95%' in d.yaml
    assert "polarity: smaller  # GUESSED: the table gives none; 'days to'" in d.yaml
    assert '      1: "10 days"  # reads: an average of at most 10 days' in d.yaml
    assert "target:" not in d.yaml.split("kpis:")[1]
    assert d.yaml.count("the table names contract year") == 2
    # Writing the years' dates (the marked lines) is all it takes for check to accept it.
    edited = d.yaml.replace(
        "{year: 1, start: YYYY-MM-DD, end: YYYY-MM-DD}",
        "{year: 1, start: 2015-04-01, end: 2016-03-31}",
    ).replace(
        "{year: 2, start: YYYY-MM-DD, end: YYYY-MM-DD}",
        "{year: 2, start: 2016-04-01, end: 2017-03-31}",
    )
    contract = parse_contract_text(edited, "repairs.yaml")
    assert contract.kpi("2").targets == {1: "93.00%", 2: "95.00%"}
    assert contract.kpi("4").polarity == "smaller"


def test_the_drafted_figures_file_is_formula_safe():
    # The table's own cells go into a CSV the officer opens in Excel before importing it.
    table = read_table_bytes(
        b"Ref,Indicator,Direction,Target 2019/20,2018/19\n"
        b"@SUM(1+1),Homes improved,Higher is better,no fewer than 40 homes,35\n",
        "housing.csv",
    )
    rows = list(csv.reader(io.StringIO(draft_contract(table).figures_csv)))
    assert rows[1][0] == "'@SUM(1+1)" and rows[1][2] == "35"
