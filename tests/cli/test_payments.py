"""``kpibot events import`` and ``kpibot payments --month/--quarter [--format csv]`` as an
operator runs them: the acute hospital fixture's November 2015, with the arithmetic shown.
Events and figures are invented; the sums are those public sources report (see the fixture)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.cli.test_main import kpibot

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "contracts"


@pytest.fixture
def env(tmp_path):
    return {"KPIBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "KPIBOT_TODAY": "2016-01-15"}


def test_import_events_then_the_month_as_csv_and_table(env, tmp_path):
    kpibot("contracts", "load", str(FIXTURES), env=env)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "date,kind,reference,value\n2015-11-02 10:15,handover-delay,HO-1,45\n"
        "2015-11-03,handover-delay,HO-2,soon\n"
    )
    out = kpibot(
        "events", "import", str(bad), "--contract", "acute-hospital-example", env=env, check=False
    )
    assert out.returncode == 2
    assert "bad.csv, line 3, column 'value': 'soon' is not a number" in out.stderr
    assert "Nothing was stored" in out.stderr and "Traceback" not in out.stderr
    log = tmp_path / "handovers.csv"
    log.write_text(
        "date,kind,reference,value\n"
        "2015-11-02 10:15,handover-delay,=HO-1101,45\n"
        "2015-11-03 11:00,handover-delay,HO-1102,31\n"
        "2015-11-04 18:20,handover-delay,HO-1103,61\n"
        "2015-11-05 09:00,handover-delay,HO-1104,25\n"
        "2015-11-06 13:30,handover-delay,HO-1105,90\n"
    )
    stored = kpibot("events", "import", str(log), "--contract", "acute-hospital-example", env=env)
    assert (
        stored.stdout.strip() == "Stored 5 event(s) for acute-hospital-example from handovers.csv."
    )
    figures = tmp_path / "figures.csv"
    figures.write_text(
        "kpi,period,value,numerator,denominator\nRTT52,2015-11,3,,\nRTT18,2015-11,,2150,25000\n"
    )
    kpibot("import", str(figures), "--contract", "acute-hospital-example", env=env)

    out = kpibot(
        "payments", "acute-hospital-example", "--month", "2015-11", "--format", "csv", env=env
    )
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows[0] == [
        "contract",
        "month",
        "kpi",
        "rule",
        "events",
        "points",
        "amount_gbp",
        "clause",
        "note",
    ]
    by_rule = {(r[3], r[8].startswith("info")): r for r in rows[1:]}
    # Handovers: 45 and 31 minutes → 2 × £200; 61 and 90 → 2 × £1,000: £400 + £2,000 = £2,400.
    handovers = by_rule[("handover-delay", False)]
    assert handovers[4] == "'=HO-1101; HO-1102; HO-1103; HO-1105"  # formula-safe
    assert handovers[6] == "-2400.00"
    assert handovers[8].startswith("2 × £200 + 2 × £1,000 = £2,400, per event")
    assert by_rule[("handover-delay", True)][4] == "HO-1104"  # 25 minutes: not over 30
    # 52-week waits: 3 × £5,000 = £15,000.
    assert by_rule[("over-52-weeks", False)][6] == "-15000.00"
    # RTT: 2,150 − 8% × 25,000 = 150 over the tolerance × £300 (from 1 Oct 2015) = £45,000.
    rtt = by_rule[("rtt-incomplete", False)]
    assert rtt[6] == "-45000.00" and rtt[4] == "RTT18 2015-11: 2,150 of 25,000"
    assert "150 × £300 = £45,000 (rate: Contract variation, August 2015, from 1 Oct 2015)" in rtt[8]
    # In all: £2,400 + £15,000 + £45,000 = £62,400.
    assert sum(float(r[6]) for r in rows[1:]) == -62400.0

    table = kpibot("payments", "acute-hospital-example", "--quarter", "2015/16 Q3", env=env).stdout
    assert "2015-10 to 2015-12: £62,400 off the payment in all; 0 points" in table
    assert (
        "2015-11: £62,400 off the payment (handover-delay £2,400, over-52-weeks £15,000," in table
    )

    wrong = kpibot(
        "payments", "acute-hospital-example", "--month", "2015/16 Q3", env=env, check=False
    )
    assert wrong.returncode == 2 and "--month takes one month" in wrong.stderr
    kpibot("contracts", "load", "config/contracts", "--no-history", env=env)
    seed = kpibot("payments", "healthy-child-0-19", "--month", "2019-11", env=env, check=False)
    assert seed.returncode == 2 and "sets no sums per event" in seed.stderr
