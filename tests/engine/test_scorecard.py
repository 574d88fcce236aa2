"""``evaluate_states``: many scorecards in one engine pass give what ``Scorecard.build`` gives."""

from __future__ import annotations

import pandas as pd

from kpibot.engine.model import Contract
from kpibot.engine.scorecard import Scorecard, evaluate_states, history_frame


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
