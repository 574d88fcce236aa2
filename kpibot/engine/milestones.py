"""Milestones: deliverables with a due date, achieved or not ("By 31 January, to introduce ...").

A milestone is a KPI with ``kind: milestone`` and a ``due`` date. Its figure is 1 when achieved
and 0 when not (typed as "achieved" or "not achieved"); the first period with an achieved figure
is when it was met. ``milestone_states`` says where each stands on a day, for status, the
summary and the reminders that chase it (``kpibot.scheduler.plan``).

>>> # milestone_states(contract, card.frame, today) -> [MilestoneState("M1", ...)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import pandas as pd

from kpibot.engine.model import Contract

# When a milestone is chased: days before its due date (provider reminders).
REMIND_BEFORE_DAYS = (14, 1)


@dataclass(frozen=True)
class MilestoneState:
    """Where one milestone stands on a day."""

    code: str
    name: str
    due: date
    state: str  # "achieved", "not achieved", "due", "overdue" or "upcoming"
    period: str | None = None
    days: int = 0

    def text(self) -> str:
        """'M1 Introduce the complaints panel: due 31 Jan 2020, overdue by 5 days'."""
        due = f"due {self.due:%-d %b %Y}"
        if self.state == "achieved":
            return f"{self.code} {self.name}: achieved ({self.period}; {due})"
        if self.state == "not achieved":
            return f"{self.code} {self.name}: not achieved ({self.period}; {due})"
        if self.state == "overdue":
            plural = "s" if self.days != 1 else ""
            return f"{self.code} {self.name}: {due}, overdue by {self.days} day{plural}"
        if self.state == "due":
            return f"{self.code} {self.name}: due today"
        plural = "s" if self.days != 1 else ""
        return f"{self.code} {self.name}: {due}, in {self.days} day{plural}"

    @property
    def rag(self) -> str:
        return {"achieved": "green", "not achieved": "red", "overdue": "red"}.get(
            self.state, "grey"
        )


def milestone_states(contract: Contract, frame: pd.DataFrame, today: date) -> list[MilestoneState]:
    """Each milestone KPI's state on ``today`` from the scorecard frame (figures 1 or 0)."""
    out = []
    for k in contract.kpis:
        if k.kind != "milestone" or k.due is None:
            continue
        rows = frame[frame["kpi"] == k.code] if not frame.empty else frame
        achieved = None
        refused = None
        if not rows.empty:
            rows = rows.sort_values("period_start")
            for r in rows.itertuples():
                value = float(r.value)
                if math.isnan(value):
                    continue
                if value >= 1:
                    achieved = achieved or str(r.period)
                else:
                    refused = str(r.period)
        if achieved is not None:
            out.append(MilestoneState(k.code, k.name, k.due, "achieved", achieved))
        elif refused is not None and today > k.due:
            out.append(MilestoneState(k.code, k.name, k.due, "not achieved", refused))
        elif today > k.due:
            out.append(MilestoneState(k.code, k.name, k.due, "overdue", days=(today - k.due).days))
        elif today == k.due:
            out.append(MilestoneState(k.code, k.name, k.due, "due"))
        else:
            out.append(MilestoneState(k.code, k.name, k.due, "upcoming", days=(k.due - today).days))
    return out


def milestone_lines(contract: Contract, frame: pd.DataFrame, today: date) -> list[str]:
    """Status and summary lines: '*Milestone:* M1 Introduce ...: due 31 Jan 2020, in 12 days'."""
    return [f"*Milestone:* {s.text()}" for s in milestone_states(contract, frame, today)]
