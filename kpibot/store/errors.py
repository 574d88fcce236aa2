"""Errors the store raises. ``str(error)`` is one sentence a user can act on; attributes carry detail.

All wording lives here so it stays consistent and reviewable.

>>> str(UnknownContract("one-you"))
"There is no contract 'one-you'; check the contract id ('/kpi status' lists them all)."
>>> try:
...     raise AmendmentNeedsReason("demo", (("1a", "2019/20 Q3"),))
... except StoreError as error:
...     print(error)
KPI 1a for 2019/20 Q3 already has a figure, so this is an amendment: give a reason for the change and submit again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Protocol

from sqlalchemy.exc import IntegrityError

# Rules the database enforces, by constraint name, in words a provider understands.
CONSTRAINT_RULES = {
    "ck_figures_numerator": "a numerator cannot be negative",
    "ck_figures_denominator": "a denominator cannot be negative",
    "ck_figures_period_dates": "a period must end after it starts",
    "ck_figures_period_kind": "a period must be a quarter, a year or a month",
    "ck_figures_status": "a figure's status must be submitted, pending, approved or queried",
    "ck_figures_amendment_reason": "an amendment must give a reason",
    "ck_submissions_source": "the source must be chat, import, cli, history or api",
}


class StoreError(Exception):
    """Base class: something the store refused, explained in one sentence."""


class UnknownContract(StoreError):
    """The contract id is not loaded in the store."""

    def __init__(self, contract_id: str) -> None:
        self.contract_id = contract_id
        super().__init__(
            f"There is no contract '{contract_id}'; check the contract id "
            "('/kpi status' lists them all)."
        )


class StoredContractInvalid(StoreError):
    """A stored definition no longer validates, usually because the contract model changed."""

    def __init__(self, contract_id: str, detail: str) -> None:
        self.contract_id = contract_id
        self.detail = detail
        super().__init__(
            f"The stored definition of contract '{contract_id}' no longer fits the current "
            "contract model; reload the contract file to refresh it."
        )


class UnknownKPI(StoreError):
    """A figure names a KPI the contract does not define."""

    def __init__(self, contract_id: str, kpi: str) -> None:
        self.contract_id = contract_id
        self.kpi = kpi
        super().__init__(
            f"Contract '{contract_id}' has no KPI '{kpi}'; check the KPI code "
            f"('/kpi status {contract_id}' lists them)."
        )


def _figure_list(figures: Sequence[tuple[str, str]]) -> str:
    named = [f"{kpi} for {period}" for kpi, period in figures]
    if len(named) > 3:
        named = [*named[:3], f"{len(figures) - 3} more"]
    return named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]


class AmendmentNeedsReason(StoreError):
    """Figures already exist for these (KPI, period) pairs and no reason was given to change them."""

    def __init__(self, contract_id: str, figures: Sequence[tuple[str, str]]) -> None:
        self.contract_id = contract_id
        self.figures = tuple(figures)
        has = "already has a figure" if len(self.figures) == 1 else "already have figures"
        super().__init__(
            f"KPI {_figure_list(self.figures)} {has}, so this is an amendment: "
            "give a reason for the change and submit again."
        )


class DuplicateFigureInBatch(StoreError):
    """One submission holds two figures for the same KPI and period."""

    def __init__(self, contract_id: str, kpi: str, period: str) -> None:
        self.contract_id = contract_id
        self.kpi = kpi
        self.period = period
        super().__init__(
            f"The submission gives KPI {kpi} for {period} twice; keep one row for it and "
            "submit again."
        )


class FigureRejected(StoreError):
    """A figure breaks a rule of the store (a negative count, a value that is not a number)."""

    def __init__(self, contract_id: str, rule: str, kpi: str | None = None) -> None:
        self.contract_id = contract_id
        self.rule = rule
        self.kpi = kpi
        where = f" for KPI {kpi}" if kpi else ""
        super().__init__(
            f"Nothing was saved because a figure{where} breaks a rule ({rule}); "
            "correct it and submit again."
        )


class ConcurrentChange(StoreError):
    """Someone else changed the same figure between our read and our write."""

    def __init__(self, contract_id: str) -> None:
        self.contract_id = contract_id
        super().__init__(
            f"Someone changed figures for '{contract_id}' at the same moment, so nothing was "
            "saved; check the latest figures and submit again."
        )


class IdempotencyKeyConflict(StoreError):
    """An idempotency key was reused for a different contract: a caller bug, not a replay."""

    def __init__(self, key: str, contract_id: str, used_for: str) -> None:
        self.key = key
        self.contract_id = contract_id
        self.used_for = used_for
        super().__init__(
            f"This submission's key was already used for contract '{used_for}', so nothing was "
            f"saved for '{contract_id}'; submit it again as a new submission."
        )


class _FigureValues(Protocol):
    @property
    def kpi_code(self) -> str: ...
    @property
    def numerator(self) -> float | None: ...
    @property
    def denominator(self) -> float | None: ...


# Unique indexes that only a concurrent writer can trip: someone amended the same figure first.
_RACE_CONSTRAINTS = {"uq_figures_supersedes_id", "uq_figures_first_version"}
# SQLite names the columns of a failed unique index, not the index.
_SQLITE_UNIQUE = {
    "figures.supersedes_id": "uq_figures_supersedes_id",
    "figures.contract_id, figures.kpi_code, figures.period_label": "uq_figures_first_version",
    "submissions.idempotency_key": "uq_submissions_idempotency_key",
}
_OFFENDS: dict[str, Callable[[_FigureValues], bool]] = {
    "ck_figures_numerator": lambda f: f.numerator is not None and f.numerator < 0,
    "ck_figures_denominator": lambda f: f.denominator is not None and f.denominator < 0,
}


def constraint_name(error: IntegrityError) -> str | None:
    """The name of the constraint behind ``error``, from psycopg's diagnostics or SQLite's text."""
    diag = getattr(error.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    if isinstance(name, str):
        return name
    message = str(error.orig)
    if match := re.search(r"CHECK constraint failed: (\w+)", message):
        return match[1]
    if match := re.search(r"UNIQUE constraint failed: (.+)$", message):
        return _SQLITE_UNIQUE.get(match[1].strip())
    return None


def rejection_for(
    contract_id: str, error: IntegrityError, figures: Sequence[_FigureValues]
) -> StoreError | None:
    """The store error a user should see for a failed figure insert, or None if it is a bug."""
    name = constraint_name(error)
    if name in _RACE_CONSTRAINTS:
        return ConcurrentChange(contract_id)
    if name in CONSTRAINT_RULES:
        offends = _OFFENDS.get(name)
        kpi = next((f.kpi_code for f in figures if offends and offends(f)), None)
        return FigureRejected(contract_id, CONSTRAINT_RULES[name], kpi)
    return None
