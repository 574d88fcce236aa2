"""Scorecards: the seed contracts evaluate exactly as before issue 13 generalised the grammar,
and scorecards evaluated together (many contracts, or many states of one: ``build_many``,
``evaluate_states``) equal the ones built one at a time.

Each seed contract in ``config/contracts`` is evaluated through ``Scorecard.build`` (the code path
behind ``kpibot status``, the quarterly summary and payments) over a fixed set of figures: its own
demo history (seed 004) plus, for every KPI and every period of its reporting kind, a value taken
from a grid built around the numbers written in the KPI's own target, tolerance and critical
failure texts (one under, on and over each number). The grid is built with a plain regular
expression, not the grammar, so a change to the grammar cannot move the figures it is checked on.

Every resulting KPI × period row is compared with ``tests/fixtures/scorecard_golden/<id>.csv``,
generated from the code as it stood before issue 13 changed the grammar. A difference is a
change in how a seed contract rates: either a bug, or a deliberate change that must be explained
in the commit that regenerates the fixture (``KPIBOT_REGENERATE_GOLDEN=1 pytest this file``).
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import random
import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from kpibot.engine.model import Contract
from kpibot.engine.periods import make_period
from kpibot.engine.scorecard import FIGURE_COLUMNS, Scorecard, evaluate_states, history_frame
from kpibot.files.contracts import load_contract_file
from tests.engine.test_status import generated, periods_of

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = sorted((ROOT / "config" / "contracts").glob("*.yaml"))
GOLDEN = ROOT / "tests" / "fixtures" / "scorecard_golden"
COLUMNS = [
    "kpi",
    "period",
    "value",
    "target",
    "position",
    "rag",
    "trend",
    "critical",
    "threshold",
    "tolerance_threshold",
    "critical_threshold",
]
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _grid(texts: list[str | None]) -> list[float]:
    numbers = sorted({float(n) for t in texts if t for n in _NUMBER.findall(t)})
    values: list[float] = []
    for n in numbers or [50.0]:
        values += [n - 1.0, n - 0.5, n, n + 0.5, n + 1.0]
    return [v for v in values if v >= 0] + [0.0]


def _periods(contract: Contract, kind: str) -> list[str]:
    ysm = contract.reporting.year_start_month
    out: list[str] = []
    for year in contract.contract_years:
        p = make_period(kind, date(year.start.year, year.start.month, 1), ysm)  # type: ignore[arg-type]
        while p.start <= year.end:
            if p.end <= year.end and p.label not in out:
                out.append(p.label)
            p = p.shift(1)
    return out


def demo_figures(contract: Contract) -> pd.DataFrame:
    """The contract's history plus a grid figure for every KPI and period of its reporting kinds."""
    rows = []
    have = set(zip(*(history_frame(contract)[c] for c in ("kpi", "period")), strict=False))
    for kpi in contract.kpis:
        texts: list[str | None] = []
        for y in contract.contract_years:
            texts += [
                kpi.target_text(y.year),
                kpi.tolerance_text(y.year),
                kpi.critical_text(y.year),
            ]
        grid = itertools.cycle(_grid(texts))
        freq = (kpi.frequency or "").lower()
        kinds = ["quarter"] if ("quarter" in freq or not freq) else []
        if "annual" in freq or "year" in freq or "ncmp" in freq or not kinds:
            kinds.append("year")
        for kind in kinds:
            for label in _periods(contract, kind):
                if (kpi.code, label) in have:
                    continue
                rows.append(
                    {
                        "contract": contract.id,
                        "kpi": kpi.code,
                        "period": label,
                        "value": next(grid),
                        "benchmark": math.nan,
                    }
                )
    grid_frame = pd.DataFrame(rows, columns=FIGURE_COLUMNS)
    return pd.concat([history_frame(contract), grid_frame], ignore_index=True)


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def snapshot(contract: Contract) -> list[dict[str, str]]:
    card = Scorecard.build(contract, demo_figures(contract))
    frame = card.frame.sort_values(["kpi", "period_start", "period"], kind="stable")
    return [{c: _fmt(getattr(r, c)) for c in COLUMNS} for r in frame.itertuples(index=False)]


@pytest.mark.parametrize("path", CONTRACTS, ids=[p.stem for p in CONTRACTS])
def test_seed_contract_evaluates_exactly_as_before(path: Path) -> None:
    contract = load_contract_file(path)
    rows = snapshot(contract)
    golden = GOLDEN / f"{contract.id}.csv"
    if os.environ.get("KPIBOT_REGENERATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        with golden.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    with golden.open(encoding="utf-8") as fh:
        expected = list(csv.DictReader(fh))
    assert len(rows) == len(expected), (
        f"{contract.id}: {len(rows)} rows, golden has {len(expected)}"
    )
    diffs = [
        f"{e['kpi']} {e['period']}: {c} was {e[c]!r}, now {r[c]!r}"
        for r, e in zip(rows, expected, strict=True)
        for c in COLUMNS
        if r[c] != e[c]
    ]
    assert not diffs, f"{contract.id}: {len(diffs)} differences, first: " + "; ".join(diffs[:10])


def test_the_golden_files_cover_every_seed_kpi() -> None:
    for path in CONTRACTS:
        contract = load_contract_file(path)
        with (GOLDEN / f"{contract.id}.csv").open(encoding="utf-8") as fh:
            codes = {r["kpi"] for r in csv.DictReader(fh)}
        assert codes == {k.code for k in contract.kpis}, contract.id


def test_an_annual_target_is_profiled_by_the_kpis_seasonal_shares():
    """'Profiled from the annual figure': 1,800 a year with shares 10/20/30/40 is 180 by Q1."""
    from kpibot.files.contracts import parse_contract_text

    contract = parse_contract_text(
        """
id: profiled
name: Profiled
commissioner: {name: Council}
provider: {name: Provider}
contract_years:
  - {year: 1, start: 2019-04-01, end: 2020-03-31}
kpis:
  - {code: PA, name: Participants, target: "1800", target_basis: annual, rollup: sum,
     profile: [10, 20, 30, 40]}
history:
  - {kpi: PA, period: "2019/20 Q1", value: 190}
  - {kpi: PA, period: "2019/20 Q2", value: 300}
""",
        "profiled.yaml",
    )
    frame = Scorecard.build(contract, history_frame(contract)).frame
    assert list(frame["ytd_target"]) == pytest.approx([180.0, 540.0])
    assert list(frame["position"]) == ["met", "not_met"]


def test_many_scorecards_in_one_pass_equal_one_at_a_time(seed_contracts):
    rng = random.Random(3)
    contracts, frames = [], []
    for c in seed_contracts.values():
        contracts.append(c)
        frames.append(history_frame(c))
        twin, figures = generated(c, rng, 0)
        contracts.append(twin)
        frames.append(figures)
    figures = pd.concat(frames, ignore_index=True)
    for extra in (None, "last"):
        periods = (
            {c.id: [periods_of(c, c.reporting.period)[-1]] for c in contracts} if extra else None
        )
        many = Scorecard.build_many(contracts, figures, periods)
        rows = 0
        for c in contracts:
            own = figures[figures["contract"] == c.id]
            one = Scorecard.build(c, own, periods[c.id] if periods else None)
            pd.testing.assert_frame_equal(many[c.id].frame, one.frame)
            rows += len(one.frame)
        assert rows > 1000  # every generated contract has a scorecard to compare


def test_states_evaluated_together_equal_each_built_alone(
    seed_contracts: dict[str, Contract],
) -> None:
    trust = seed_contracts["childrens-trust"]
    health = seed_contracts["healthy-child-0-19"]
    history = history_frame(trust)
    amended = history.copy()
    amended.loc[amended["kpi"] == "C7", "value"] = 70.0  # a second state of the same contract
    health_figures = pd.DataFrame(
        [
            {"contract": health.id, "kpi": "1a", "period": "2019/20 Q3", "value": 30.0},
            {"contract": health.id, "kpi": "1a", "period": "2019/20 Q2", "value": 50.0},
        ]
    )
    together = evaluate_states(
        {trust.id: trust, health.id: health},
        pd.concat(
            [history.assign(state=0), amended.assign(state=1), health_figures.assign(state=2)],
            ignore_index=True,
        ),
    )
    for state, (contract, figures) in enumerate(
        [(trust, history), (trust, amended), (health, health_figures)]
    ):
        alone = Scorecard.build(contract, figures).frame
        mine = together[together["state"] == state].drop(columns="state").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, alone, check_dtype=False)
    c7 = together[(together["kpi"] == "C7") & (together["period"] == "2019/20 Q3")]
    assert list(c7.sort_values("state")["rag"]) == ["red", "green"]
    assert evaluate_states({}, pd.DataFrame()).empty
