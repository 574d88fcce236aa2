"""The four shipped contracts load and read as the seeds say; a bad file is rejected whole."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from kpibot.engine.groups import group_verdicts
from kpibot.engine.scorecard import Scorecard
from kpibot.engine.targets import compile_contract
from kpibot.files.contracts import (
    ContractFilesInvalid,
    load_contract_file,
    load_contracts,
    parse_contract_text,
)
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


# ---------------------------------------------------------------------------------------------
# Two real public KPI tables kpibot was not built from (tests/fixtures/public_contracts): each
# loads, and its invented TEST FIGURES rate as worked out by hand from the contract's words.
PUBLIC = Path(__file__).resolve().parents[1] / "fixtures" / "public_contracts"


def _public_rags(name: str) -> tuple[dict[tuple[str, str], str], Scorecard]:
    contract = load_contract_file(PUBLIC / f"{name}.yaml")
    with (PUBLIC / f"{name}.figures.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert all(r["note"] == "TEST FIGURE (invented)" for r in rows)
    figures = pd.DataFrame(
        [
            {
                "contract": contract.id,
                "kpi": r["kpi"],
                "period": r["period"],
                "value": float(r["value"]),
                "benchmark": None,
            }
            for r in rows
        ]
    )
    card = Scorecard.build(contract, figures)
    rags = dict(
        zip(
            zip(card.frame["kpi"], card.frame["period"], strict=True),
            card.frame["rag"],
            strict=True,
        )
    )
    assert len(rags) == len(rows)
    return rags, card


def test_devon_cares_home_care_rates_as_its_table_says():
    rags, _ = _public_rags("devon-cares-home-care")
    assert rags == {
        # 1 Referrals refused, "0%", lower is better: any refusal misses it.
        ("1", "2019-10"): "green",
        ("1", "2019-11"): "red",
        ("1", "2019-12"): "green",
        # 2 Hand backs, "0%".
        ("2", "2019-10"): "green",
        ("2", "2019-11"): "green",
        ("2", "2019-12"): "red",
        # 5 Missed visits, "2%": at most 2% (2% itself meets it); 3.1% misses it.
        ("5", "2019-10"): "green",
        ("5", "2019-11"): "green",
        ("5", "2019-12"): "red",
        # 6 Placement suspensions, "0%".
        ("6", "2019-10"): "green",
        ("6", "2019-11"): "green",
        ("6", "2019-12"): "red",
        # 7 Punctuality, "90%": 90 meets it, 88 does not (no tolerance in the table).
        ("7", "2019-10"): "green",
        ("7", "2019-11"): "green",
        ("7", "2019-12"): "red",
        # 3a within 4 hours, "Yr 1 80%": 81 meets it. 3b within 2 days, "100%": 97 does not.
        ("3a", "2019/20 Q3"): "green",
        ("3b", "2019/20 Q3"): "red",
        # 4a on the planned start date, "Yr 1 80%": 79.5 misses it. 4b within 5 working days, 100%.
        ("4a", "2019/20 Q3"): "red",
        ("4b", "2019/20 Q3"): "green",
    }


def test_housing_repairs_rates_by_contract_year_and_its_group_rule():
    rags, card = _public_rags("housing-repairs-incentive")
    assert rags == {
        ("1", "2015/16 Q2"): "red",  # 99.6% against 100.00%
        ("2", "2015/16 Q2"): "green",  # 93% against the first year's 93.00%
        ("2", "2016/17 Q1"): "red",  # 94% against the 2nd year's 95.00%
        ("3", "2015/16 Q2"): "green",  # 96.1% against 95.00%
        ("4", "2015/16 Q2"): "red",  # an average of 11.5 days against 10 days (fewer is better)
        ("5", "2015/16 Q2"): "red",  # 84.9% against 85.00%
        ("6a", "2015/16 Q2"): "green",  # 95% against 92.00%
        ("6a", "2017/18 Q1"): "red",  # 97% against 98.00%, carried from the 2nd year
        ("6b", "2015/16 Q2"): "red",  # 89% against 90.00%
        ("7", "2015/16 Q2"): "green",  # 98.5% against 98.00%
    }
    (verdict,) = group_verdicts(card.contract, card.at(card.contract.parse_period("2015/16 Q2")))
    assert (verdict.verdict, verdict.met, verdict.not_met) == ("not performed", 1, ("6b",))


_ONE_KPI = """id: misread
name: Misread
commissioner: {{name: Council}}
provider: {{name: Provider}}
contract_years:
  - {{year: 1, start: 2019-04-01, end: 2020-03-31}}
kpis:
  - code: "5"
    name: {name}
{extra}    target: "{target}"
"""


def test_a_lower_is_better_name_without_polarity_is_refused_not_read_upside_down():
    """Defect: 'missed visits' with target '2%' and no polarity rated 3.1% green."""
    text = _ONE_KPI.format(name="Missed visits (% of planned visits)", extra="", target="2%")
    with pytest.raises(ContractFilesInvalid) as exc:
        parse_contract_text(text, "home-care.yaml")
    assert str(exc.value) == (
        "home-care.yaml, line 9, field 'kpis[5].name': KPI 5 gives no polarity, so its target "
        "'2%' would be read as higher is better, but its name says 'Missed'; add 'polarity: "
        "smaller' (or 'polarity: bigger' if a higher figure really is better)"
    )
    # Either polarity, written down, is the author's decision and loads.
    for polarity in ("smaller", "bigger"):
        extra = f"    polarity: {polarity}\n"
        text = _ONE_KPI.format(name="Missed visits", extra=extra, target="2%")
        assert parse_contract_text(text).kpi("5").polarity == polarity
    # A time limit in the measure makes a share within it bigger-is-better: not refused.
    text = _ONE_KPI.format(name="Complaints answered within 15 days", extra="", target="90%")
    assert parse_contract_text(text).kpi("5").polarity == "bigger"


def test_a_percentage_target_for_a_count_kpi_is_refused():
    text = _ONE_KPI.format(
        name="Placement suspensions", extra="    unit: count\n    polarity: smaller\n", target="0%"
    )
    with pytest.raises(ContractFilesInvalid) as exc:
        parse_contract_text(text, "home-care.yaml")
    assert str(exc.value) == (
        "home-care.yaml, line 12, field 'kpis[5].target': KPI 5's unit is 'count' but its target "
        "'0%' is in percent; make 'unit:' match the figures the contract reports (or leave "
        "'unit:' out)"
    )


def test_a_newcomers_slips_are_refused_with_what_to_write_instead():
    """Defect: pydantic's 'Extra inputs are not permitted', 'Field required' and 'Input should
    be ...' named the field but not what to write."""
    text = """id: slips
name: Slips
commissioner: {name: C}
provider: {name: P}
reporting: {period: monthly}
contract_years:
  - {year: 1, start: 01/04/2019, end: 2020-03-31}
kpis:
  - code: "1"
    name: Something
    polarity: high
    unit: "%"
    tolerence: "85%"
    target: "90%"
  - code: "2"
    title: Other
    target: "90%"
"""
    with pytest.raises(ContractFilesInvalid) as exc:
        parse_contract_text(text, "slips.yaml")
    said = [str(e) for e in exc.value.errors]
    assert (
        "slips.yaml, line 5, field 'reporting.period': 'monthly' is not allowed here; write "
        "'quarter', 'month' or 'year'"
    ) in said
    assert (
        "slips.yaml, line 7, field 'contract_years[0].start': '01/04/2019' is not a date kpibot "
        "can read; write dates as YYYY-MM-DD, like 2019-04-01"
    ) in said
    assert any(s.endswith("; '%' is written 'percent'") for s in said)
    assert (
        "slips.yaml, line 11, field 'kpis[1].polarity': 'high' is not allowed here; write "
        "'bigger' or 'smaller' (or 'higher is better', 'lower is better')"
    ) in said
    assert (
        "slips.yaml, line 13, field 'kpis[1].tolerence': 'tolerence' is not a term kpibot knows "
        "here; did you mean 'tolerance'?"
    ) in said
    assert "slips.yaml, line 15, field 'kpis[2].name': 'name' is required here and missing" in said
    assert (
        "slips.yaml, line 16, field 'kpis[2].title': 'title' is not a term kpibot knows here; "
        "did you mean 'name'?"
    ) in said


def test_a_group_rule_in_the_contracts_words_says_how_kpibot_writes_it():
    text = (PUBLIC / "housing-repairs-incentive.yaml").read_text(encoding="utf-8")
    text = text.replace('rule: "all"', 'rule: "both targets to be met"')
    with pytest.raises(ContractFilesInvalid) as exc:
        parse_contract_text(text, "repairs.yaml")
    assert str(exc.value).endswith(
        "field 'groups[0]': 'both targets to be met' is not a group rule I can read; write "
        "'1 of 2', 'all' or '75%' ('both' is written 'all')"
    )


@pytest.mark.parametrize(
    ("frequency", "kind"),
    [
        ("Quarterly & Annually", "quarter"),
        ("Every 3 months", "quarter"),
        # a duration is not a frequency: this KPI is reported once a year, not monthly
        ("After at least 6 months of service, thereafter annually", "year"),
        ("In line with Ofsted Framework", "quarter"),  # no period named: as the contract reports
    ],
)
def test_a_kpi_is_reported_in_the_period_its_frequency_words_name(frequency, kind):
    from kpibot.engine.scorecard import reporting_kind

    contract = parse_contract_text(
        GOOD.replace(
            "    polarity: bigger\n", f'    polarity: bigger\n    frequency: "{frequency}"\n'
        )
        + "reporting: {period: quarter}\n",
        "demo.yaml",
    )
    assert reporting_kind(contract.kpi("1"), contract.reporting.period) == kind


@pytest.mark.parametrize("frequency", ["Six-monthly", "Bi-annually", "Weekly", "Termly"])
def test_a_frequency_kpibot_does_not_track_is_refused_not_filed_as_another(frequency):
    text = GOOD.replace(
        "    polarity: bigger\n", f'    polarity: bigger\n    frequency: "{frequency}"\n'
    )
    with pytest.raises(ContractFilesInvalid) as err:
        parse_contract_text(text, "demo.yaml")
    (e,) = err.value.errors
    assert (e.path, e.line, e.field) == ("demo.yaml", 11, "kpis[1].frequency")
    assert f"names '{frequency}'" in e.reason and "'Quarterly'" in e.reason


def test_a_contract_target_written_as_rag_bands_gives_its_tolerance_too():
    from kpibot.engine.scorecard import compiled

    contract = parse_contract_text(
        GOOD.replace('target: "95%"', 'target: "Green >= 95%, Amber 90-94.9%, Red < 90%"'),
        "demo.yaml",
    )
    terms = compiled(contract)["1"].years[1]
    assert (terms.target.op, terms.target.value) == ("ge", 95.0)
    assert terms.tolerance is not None and terms.tolerance.value == 90.0


def test_a_yearly_percentage_on_a_quarterly_kpi_is_refused_until_it_says_how_figures_add_up():
    text = (
        GOOD.replace('target: "95%"', 'target: "95% per annum"') + "reporting: {period: quarter}\n"
    )
    with pytest.raises(ContractFilesInvalid) as err:
        parse_contract_text(text, "demo.yaml")
    (e,) = err.value.errors
    assert e.field == "kpis[1].target" and "is a share for the whole year" in e.reason
    cumulative = text.replace(
        "    polarity: bigger\n", "    polarity: bigger\n    values: year_to_date\n"
    )
    assert parse_contract_text(cumulative, "demo.yaml").kpi("1").values == "year_to_date"


def test_a_contract_file_is_read_only_up_to_its_bound(tmp_path: Path):
    # A file far bigger than any contract, or an endless one (/dev/zero, a pipe), is one
    # sentence; the read stops at the bound instead of filling memory.
    from kpibot.files.contracts import MAX_CONTRACT_BYTES

    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"# " + b"x" * MAX_CONTRACT_BYTES)
    for path in (huge, Path("/dev/zero")):
        with pytest.raises(ContractFilesInvalid) as err:
            load_contract_file(path)
        (e,) = err.value.errors
        assert e.path == str(path) and "over 2 MB" in e.reason
