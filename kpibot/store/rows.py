"""Plain values the repositories take and return, so callers never hold ORM objects or sessions.

>>> from kpibot.engine.periods import parse_period
>>> NewFigure("1a", parse_period("2019/20 Q3"), numerator=45, denominator=50).period.label
'2019/20 Q3'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from kpibot.engine.periods import Period

Source = Literal["chat", "import", "cli", "history", "api"]
Outcome = Literal["ok", "refused", "error"]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock: now, aware, in UTC. Pass your own clock to a repository in tests."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class NewFigure:
    """One figure to submit. Give ``reason`` when it replaces a figure already in the store.

    >>> from kpibot.engine.periods import parse_period
    >>> NewFigure("2", parse_period("2019/20 Q3"), value=91.5, reason="late data from one site")
    ... # doctest: +ELLIPSIS
    NewFigure(kpi='2', ...)
    """

    kpi: str
    period: Period
    value: float | None = None
    numerator: float | None = None
    denominator: float | None = None
    benchmark: float | None = None
    late: bool = False
    note: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class FigureRow:
    """One stored version of a figure: the numbers, who submitted it, when, and why it changed."""

    id: int
    contract_id: str
    kpi: str
    period: str
    period_start: date
    period_end: date
    period_kind: str
    value: float | None
    numerator: float | None
    denominator: float | None
    benchmark: float | None
    submission_id: int
    submitted_by: str
    submitted_at: datetime
    late: bool
    note: str | None
    supersedes_id: int | None
    reason: str | None
    status: str

    @property
    def is_amendment(self) -> bool:
        """True when this version replaced an earlier one."""
        return self.supersedes_id is not None


@dataclass(frozen=True)
class SubmissionResult:
    """What one ``FigureRepository.submit`` call stored, or found already stored (``duplicate``).

    >>> result = figures.submit("demo", rows, actor="U123", source="chat")  # doctest: +SKIP
    >>> result.duplicate, len(result.figures), len(result.amendments)  # doctest: +SKIP
    (False, 3, 1)
    """

    submission_id: int
    contract_id: str
    submitted_by: str
    submitted_at: datetime
    source: str
    filename: str | None
    row_count: int
    idempotency_key: str | None
    note: str | None
    duplicate: bool
    figures: tuple[FigureRow, ...]

    @property
    def amendments(self) -> tuple[FigureRow, ...]:
        """The figures in this submission that replaced earlier ones."""
        return tuple(f for f in self.figures if f.is_amendment)


@dataclass(frozen=True)
class ContractLoad:
    """The outcome of loading a contract: ``changed`` is False when the definition was identical."""

    contract_id: str
    content_hash: str
    created: bool
    changed: bool


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log."""

    id: int
    at: datetime
    actor: str
    action: str
    contract_id: str | None
    subject: str | None
    outcome: str
    detail: dict[str, Any]
