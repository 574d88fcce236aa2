"""The four shipped contracts load and read as the seeds say; a bad file is rejected whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpibot.engine.targets import compile_contract
from kpibot.files.contracts import ContractFilesInvalid, load_contracts, parse_contract_text
from tests.conftest import CONTRACTS_DIR


def test_all_four_contracts_ship_with_the_fixed_ids(seed_contracts):
    assert set(seed_contracts) == {
        "healthy-child-0-19",
        "one-you-lifestyle",
        "one-psychology",
        "childrens-trust",
    }


def test_every_kpi_and_year_parses(seed_contracts):
    for c in seed_contracts.values():
        comp = compile_contract(c)
        assert set(comp) == {k.code for k in c.kpis}
        for ck in comp.values():
            assert set(ck.years) == {y.year for y in c.contract_years}


def test_seed_000_year_0_is_a_part_year_with_four_exemptions(seed_contracts):
    c = seed_contracts["healthy-child-0-19"]
    y0 = next(y for y in c.contract_years if y.year == 0)
    assert (y0.start.isoformat(), y0.end.isoformat()) == ("2016-10-01", "2017-03-31")
    exempt = sorted(k.code for k in c.kpis if 0 in k.exempt_years)
    assert exempt == ["2a", "3a", "3b", "6b"]
    assert c.kpi("1a").targets == {0: "44.0%", 1: "45.0%", 2: "45.5%", 3: "46.0%"}
    assert c.kpi("1b").target_text(3) == ">40%"
    assert "whichever is greater" in c.kpi("2a").target_text(1)


def test_seed_001_programmes_have_baselines_and_critical_floors(seed_contracts):
    c = seed_contracts["one-you-lifestyle"]
    assert c.reporting.year_start_month == 11
    participation = {
        k.group: (k.target, k.critical_failure)
        for k in c.kpis
        if k.target_basis == "annual" and k.critical_failure
    }
    assert ("1800", "1200") in participation.values()
    assert ("570", "340") in participation.values()
    assert {k.code for k in c.kpis if k.category == "data_submission"} == {"DS-1", "DS-2"}


def test_seed_004_history_is_the_seven_quarters(seed_contracts):
    c = seed_contracts["childrens-trust"]
    c1 = [(h.period, h.value) for h in c.history if h.kpi == "C1"]
    assert c1 == [
        ("2018/19 Q1", 89),
        ("2018/19 Q2", 91),
        ("2018/19 Q3", 89),
        ("2018/19 Q4", 86),
        ("2019/20 Q1", 87),
        ("2019/20 Q2", 91),
        ("2019/20 Q3", 96),
    ]
    assert c.kpi("C1").target == "Target 90%" and c.kpi("C1").tolerance == "Tolerance 85%"


GOOD = """id: demo
name: Demo
commissioner: {name: Council}
provider: {name: Provider}
contract_years:
  - {year: 1, start: 2019-04-01, end: 2020-03-31}
kpis:
  - code: "1"
    name: Reviews
    polarity: bigger
    target: "95%"
"""


def test_errors_name_file_line_and_field():
    bad = GOOD.replace('target: "95%"', 'target: "around ninety-ish"')
    with pytest.raises(ContractFilesInvalid) as err:
        parse_contract_text(bad, "demo.yaml")
    e = err.value.errors[0]
    assert (e.path, e.line) == ("demo.yaml", 11)
    assert "KPI 1" in e.reason and "around ninety-ish" in e.reason


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("polarity: bigger", "polarity: sideways"), "kpis[1].polarity"),
        (("end: 2020-03-31", "end: 2018-03-31"), "contract_years"),
        (("name: Reviews\n", "name: Reviews\n    colour: blue\n"), "kpis[1].colour"),
    ],
)
def test_schema_errors_are_located(change, field):
    with pytest.raises(ContractFilesInvalid) as err:
        parse_contract_text(GOOD.replace(*change), "demo.yaml")
    assert any((e.field or "").startswith(field) for e in err.value.errors), err.value.errors
    assert all(e.line for e in err.value.errors)


def test_polarity_contradiction_is_caught():
    with pytest.raises(ContractFilesInvalid) as err:
        parse_contract_text(GOOD.replace('target: "95%"', 'target: "<95%"'), "demo.yaml")
    assert "polarity" in str(err.value)


def test_one_bad_file_means_none_load(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(
        GOOD.replace("id: demo", "id: other").replace('"95%"', '"ninety or so"')
    )
    with pytest.raises(ContractFilesInvalid) as err:
        load_contracts([tmp_path])
    assert "b.yaml" in str(err.value)


def test_shipped_directory_loads_cleanly():
    assert len(load_contracts([CONTRACTS_DIR])) == 4


def test_report_format_defaults_to_xlsx_and_a_contract_may_choose_pdf():
    default = parse_contract_text(GOOD, "demo.yaml")
    assert default.report_format == "xlsx"
    pdf = parse_contract_text(GOOD + "report_format: pdf\n", "demo.yaml")
    assert pdf.report_format == "pdf"
    with pytest.raises(ContractFilesInvalid) as err:
        parse_contract_text(GOOD + "report_format: docx\n", "demo.yaml")
    (e,) = err.value.errors
    assert e.field == "report_format" and e.line


def test_a_contract_names_its_number_style():
    contract = parse_contract_text(GOOD + "number_style: European\n", "demo.yaml")
    assert contract.number_style == "european" and contract.numbers.decimal_mark == ","
    default = parse_contract_text(GOOD, "demo.yaml")
    assert default.numbers.name == "uk"
    with pytest.raises(ContractFilesInvalid) as err:
        parse_contract_text(GOOD + "number_style: french\n", "demo.yaml")
    assert any(e.field == "number_style" and e.line for e in err.value.errors), err.value.errors


def test_an_ambiguous_number_in_a_target_is_refused_naming_the_kpi():
    with pytest.raises(ContractFilesInvalid) as err:
        parse_contract_text(GOOD.replace('target: "95%"', 'target: "95,5%"'), "demo.yaml")
    assert "'95,5' could mean 95.5 or 955" in str(err.value)
