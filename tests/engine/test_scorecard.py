"""Scorecards built for many contracts in one pass equal the ones built one contract at a time."""

from __future__ import annotations

import random

import pandas as pd

from kpibot.engine.scorecard import Scorecard
from tests.engine.test_status import generated, history_frame, periods_of


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
