"""Group rules: a category is performed when N of its M KPIs meet their targets.

Contracts write them as "Number of standards to be met: 3 of 4". A contract's ``groups:`` lists
each rule (``GroupRule`` in ``kpibot.engine.model``); ``group_verdicts`` judges them at a period
from the scorecard's rows, for status, the quarterly summary and any payment tied to a group.

A KPI counts as met only when its position is ``met`` (green): within tolerance is not met. A
group with figures still to come is ``pending`` while those could still make it, and ``not
performed`` once they cannot.

>>> # group_verdicts(contract, card.at(period)) -> [GroupVerdict("Quality standards", ...)]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kpibot.engine.model import Contract, GroupRule

Verdict = str  # "performed", "not performed" or "pending"


@dataclass(frozen=True)
class GroupVerdict:
    """One group rule judged at one period."""

    name: str
    rule: str
    need: int
    of: int
    met: int
    awaiting: int
    verdict: Verdict
    not_met: tuple[str, ...]
    clause: str | None = None

    def text(self) -> str:
        """'Quality standards: performed (3 of 4 met; the rule is 3 of 4)'."""
        detail = f"{self.met} of {self.of} met; the rule is {self.rule}"
        if self.awaiting:
            detail += f"; {self.awaiting} without a figure"
        if self.not_met and self.verdict != "performed":
            detail += f"; not met: {', '.join(self.not_met)}"
        clause = f" ({self.clause})" if self.clause else ""
        return f"{self.name}{clause}: {self.verdict} ({detail})"


def judge(rule: GroupRule, positions: dict[str, str]) -> GroupVerdict:
    """Judge one rule from KPI code → position (met, within_tolerance, not_met, missing, ...)."""
    codes = [c.strip() for c in rule.kpis]
    met = [c for c in codes if positions.get(c) == "met"]
    awaiting = [c for c in codes if positions.get(c) in (None, "missing")]
    not_met = [c for c in codes if c not in met and c not in awaiting]
    need = rule.need
    if len(met) >= need:
        verdict = "performed"
    elif len(met) + len(awaiting) >= need:
        verdict = "pending"
    else:
        verdict = "not performed"
    return GroupVerdict(
        rule.name,
        rule.rule,
        need,
        len(codes),
        len(met),
        len(awaiting),
        verdict,
        tuple(not_met),
        rule.clause,
    )


def group_verdicts(contract: Contract, rows: pd.DataFrame | Iterable[Any]) -> list[GroupVerdict]:
    """Every group rule of ``contract`` judged on ``rows``: one row per KPI at a period, as a
    scorecard's ``at`` frame or as rows with ``kpi`` and ``position`` (status's ``KpiStatus``)."""
    if not contract.groups:
        return []
    positions: dict[str, str] = {}
    if isinstance(rows, pd.DataFrame):
        if not rows.empty:
            positions = dict(zip(rows["kpi"], rows["position"], strict=False))
    else:
        positions = {str(r.kpi): str(r.position) for r in rows}
    return [judge(rule, positions) for rule in contract.groups]


def group_lines(contract: Contract, rows: pd.DataFrame | Iterable[Any]) -> list[str]:
    """Status and summary lines: '*Group rule:* Quality standards: performed (3 of 4 met; ...)'."""
    return [f"*Group rule:* {v.text()}" for v in group_verdicts(contract, rows)]
