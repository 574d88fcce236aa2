"""Scorecards evaluated together (many contracts, or many states of one: ``build_many``,
``evaluate_states``) equal the ones built one at a time."""

from __future__ import annotations

import random

import pandas as pd

from kpibot.engine.model import Contract
from kpibot.engine.scorecard import Scorecard, evaluate_states, history_frame
from tests.engine.test_status import generated, periods_of


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
