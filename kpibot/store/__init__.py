"""The store: contracts, append-only figures, the audit log, and the scheduler's outbox tables.

>>> from kpibot.store import Database, FigureRepository
>>> db = Database("sqlite://")
>>> db.upgrade()
>>> FigureRepository(db).current("healthy-child-0-19")
[]
"""

from __future__ import annotations

from kpibot.store.database import DEFAULT_URL, Database
from kpibot.store.errors import (
    AmendmentNeedsReason,
    ConcurrentChange,
    DuplicateFigureInBatch,
    FigureRejected,
    IdempotencyKeyConflict,
    StoredContractInvalid,
    StoreError,
    UnknownContract,
    UnknownKPI,
)
from kpibot.store.repositories import (
    FRAME_COLUMNS,
    AuditLog,
    ContractRepository,
    FigureRepository,
    content_hash,
)
from kpibot.store.rows import (
    AuditEntry,
    Clock,
    ContractLoad,
    FigureRow,
    NewFigure,
    Outcome,
    Source,
    SubmissionResult,
    utc_now,
)

__all__ = [
    "DEFAULT_URL",
    "FRAME_COLUMNS",
    "AmendmentNeedsReason",
    "AuditEntry",
    "AuditLog",
    "Clock",
    "ConcurrentChange",
    "ContractLoad",
    "ContractRepository",
    "Database",
    "DuplicateFigureInBatch",
    "FigureRejected",
    "FigureRepository",
    "FigureRow",
    "IdempotencyKeyConflict",
    "NewFigure",
    "Outcome",
    "Source",
    "StoreError",
    "StoredContractInvalid",
    "SubmissionResult",
    "UnknownContract",
    "UnknownKPI",
    "content_hash",
    "utc_now",
]
