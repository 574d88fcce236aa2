"""Import a monitoring return (CSV/XLSX) for one contract: validate every row, then store all or none.

Used by ``kpibot import`` and by file uploads in chat, so both give the same answers.

>>> # outcome = import_return(services, "childrens-trust", table, actor="U123", source="chat")
>>> # outcome.errors or outcome.summary
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kpibot.core import texts
from kpibot.core.services import Services
from kpibot.engine import freetext
from kpibot.engine.numbers import NumberStyle
from kpibot.features.returns import figures_arrived
from kpibot.files.figures import MORE_PROBLEMS, check_return, suggest
from kpibot.files.tables import CellError, Table
from kpibot.store.errors import StoreError
from kpibot.store.rows import Source, SubmissionResult


@dataclass
class ImportOutcome:
    """What happened: ``errors`` (nothing stored) or ``result`` with a one-line ``summary``."""

    errors: list[CellError] = field(default_factory=list)
    result: SubmissionResult | None = None
    summary: str = ""
    #: Problems beyond the ``errors`` listed (a return lists its first 50), counted only.
    more: int = 0

    def listed(self) -> list[CellError]:
        """The problems to show: the first ones, then one line counting the rest."""
        if not self.more or not self.errors:
            return list(self.errors)
        more = MORE_PROBLEMS.format(n=self.more)
        return [*self.errors, CellError(self.errors[0].file, None, None, more)]


def import_return(
    services: Services,
    contract_id: str,
    table: Table,
    *,
    actor: str,
    source: Source = "import",
    reason: str | None = None,
    idempotency_key: str | None = None,
    on_row: Callable[[], None] | None = None,
    number_style: NumberStyle | None = None,
) -> ImportOutcome:
    """Check ``table`` against the contract and store it in one transaction, or explain why not.

    Numbers are read by ``number_style`` when given, else by the contract's own.
    """
    problem = freetext.text_problem(reason, freetext.REASON)
    if problem is not None:
        return ImportOutcome([CellError(table.name, None, None, problem.rstrip("."))])
    contract = services.contract(contract_id)
    if contract is None:
        hint = suggest(contract_id, services.contracts.ids())
        return ImportOutcome(
            [
                CellError(
                    table.name,
                    None,
                    None,
                    texts.UNKNOWN_CONTRACT.format(contract=contract_id, hint=hint),
                )
            ]
        )
    check = check_return(
        contract,
        table,
        services.now(),
        is_late=services.is_late(contract),
        reason=reason,
        style=number_style,
    )
    if on_row is not None:
        for _ in table.rows:
            on_row()
    if check.errors:
        services.audit.record(
            actor,
            "import",
            contract.id,
            table.name,
            "refused",
            {
                "errors": [str(e) for e in check.errors],
                "more": check.more,
                "rows": len(table.rows),
            },
        )
        return ImportOutcome(check.errors, more=check.more)
    try:
        result = services.figures.submit(
            contract.id,
            check.figures,
            actor=actor,
            source=source,
            idempotency_key=idempotency_key,
            filename=table.name,
        )
    except StoreError as exc:
        services.audit.record(
            actor, "import", contract.id, table.name, "refused", {"error": str(exc)}
        )
        return ImportOutcome([CellError(table.name, None, None, str(exc))])
    if result.duplicate:
        return ImportOutcome(
            [],
            result,
            texts.IMPORT_DUPLICATE.format(when=f"{result.submitted_at:%-d %b %Y %H:%M}"),
        )

    for period in {f.period.label: f.period for f in check.figures}.values():
        figures_arrived(services, contract, period, actor)
    services.audit.record(
        actor,
        "import",
        contract.id,
        table.name,
        "ok",
        {
            "submission": result.submission_id,
            "rows": len(result.figures),
            "amendments": len(result.amendments),
        },
    )
    amended = f", {len(result.amendments)} amended" if result.amendments else ""
    late_n = sum(1 for f in result.figures if f.late)
    late = f", {late_n} late" if late_n else ""
    return ImportOutcome(
        [],
        result,
        texts.IMPORT_STORED.format(
            n=len(result.figures), contract=contract.id, file=table.name, amended=amended, late=late
        ),
    )
