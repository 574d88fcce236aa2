"""What kpibot sends on its own: the kinds of message, their titles and order, and the message.

A kind is declared once, here: its name (stored in the outbox), the title people read, and its
place in the order messages of one moment are listed in. The planner, the tick, the features that
send their own messages (action plans, finance exceptions, return queries) and the composer all
read this table, so adding a kind is one line here plus the rule that produces it.

>>> TITLES["escalation"]
'Escalation: return overdue'
>>> order("reminder") < order("summary")
True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from kpibot.engine.calendar import LONDON


@dataclass(frozen=True)
class Kind:
    """One kind of message: ``name`` as stored, ``title`` as read."""

    name: str
    title: str


REGISTERED = (
    Kind("reminder", "Return reminder"),
    Kind("due", "Return due today"),
    Kind("overdue", "Return overdue"),
    Kind("escalation", "Escalation: return overdue"),
    Kind("service_failure", "Service failure"),
    Kind("incident_reminder", "Incident report due"),
    Kind("incident_escalation", "Incident deadline passed"),
    Kind("summary", "Quarterly RAG summary"),
    Kind("meeting", "Contract review meeting"),
    Kind("return_query", "Return queried"),
    Kind("points_band", "Penalty points: a deduction band reached"),
    Kind("termination_warning", "Penalty points: termination threshold nearing"),
    Kind("rectification_missed", "Failure not put right in time"),
    Kind("alert_critical", "Critical failure"),
    Kind("alert_red", "Turned red"),
    Kind("alert_red_run", "Red periods running"),
    Kind("alert_money", "Money at risk"),
    Kind("alert_change", "Figures changed"),
    Kind("alert_clear", "Back to amber or green"),
    Kind("digest", "Your kpibot digest"),
    Kind("milestone", "Milestone due"),
    Kind("milestone_overdue", "Milestone overdue"),
)
KINDS = tuple(k.name for k in REGISTERED)
TITLES = {k.name: k.title for k in REGISTERED}
# The provider's ladder for one return: a receipt stops it, and a catch-up collapses it to one.
LADDER = ("reminder", "due", "overdue")
_ORDER = {name: i for i, name in enumerate(KINDS)}
# Reminders, summaries and deadlines go out at 09:00 London time on their day.
SEND_AT = time(9, 0)


def order(kind: str) -> int:
    """Where ``kind`` sorts among messages of the same moment (unknown kinds last)."""
    return _ORDER.get(kind, len(_ORDER))


def at(day: date, moment: time = SEND_AT) -> datetime:
    """``day`` at ``moment`` (09:00 by default), Europe/London."""
    return datetime.combine(day, moment, tzinfo=LONDON)


def title(kind: str) -> str:
    """The title people read for ``kind``."""
    return TITLES.get(kind, kind.replace("_", " ").capitalize())


@dataclass(frozen=True)
class Message:
    """One message to send at ``when`` (Europe/London) to an audience of a contract.

    ``target`` (platform, channel) addresses it directly instead (a subscriber's digest);
    ``contract`` is then empty when it spans several contracts.
    """

    when: datetime
    contract: str
    kind: str
    audience: str
    period: str
    step: str
    text: str
    # Set for a message to one person or channel of its own (a digest), not a contract's audience.
    target: tuple[str, str] | None = None

    @property
    def key(self) -> str:
        return f"{self.contract}|{self.period}|{self.kind}|{self.audience}|{self.step}"


@dataclass(frozen=True)
class IncidentClock:
    """An incident's reporting window: reminders at 50% and 90%, escalation at the deadline."""

    id: int
    contract: str
    kind: str
    label: str
    opened_at: datetime
    deadline: datetime
    reported_at: datetime | None = None
