"""``waive <contract> <item> "reason"``: a commissioner waives a sanction, recorded with who and why.

``item`` is an event reference (every charge arising from that event) or ``<rule>:<month>``
(the rule's whole charge that month, e.g. ``points:2019-11``); ``payments <contract> <month>``
lists both. Commissioners only; the waiver and any refusal are in the audit trail, and the ledger
shows the waiver beside the item from then on.

>>> # dispatch(Request.from_text('waive acute-hospital-example HO-1 "major incident"', ...), ctx)
"""

from __future__ import annotations

from kpibot.commands.base import CommandHandler, Context
from kpibot.commands.resolve import resolve_contract
from kpibot.core.protocol import Action, Reply, Request, error
from kpibot.features.sanctions import (
    NO_SANCTIONS,
    WAIVE_NO_REASON,
    SanctionError,
    item_month,
    ledger,
    waive,
)

USAGE = 'waive <contract> <event reference | rule:month> "reason"'
NO_ITEM = 'Say what to waive and why, e.g. `waive {contract} points:2019-11 "storm damage closed the depot"`.'


class WaiveHandler(CommandHandler):
    verb = "waive"
    summary = "commissioners: waive a sanction (an event, or a rule for a month), saying why"
    usage = USAGE
    examples = (
        'waive acute-hospital-example HO-2231 "major incident declared that afternoon"',
        'waive waste-collection-example points:2019-11 "storm closed the depot for two days"',
    )

    def handle(self, request: Request, ctx: Context) -> Reply:
        resolved = resolve_contract(request, ctx, "waive")
        if isinstance(resolved, Reply):
            return resolved
        contract, rest = resolved
        if not contract.payments.has_sanctions:
            return error(NO_SANCTIONS.format(contract=contract.id), "Nothing to waive")
        if not rest:
            return error(NO_ITEM.format(contract=contract.id), "What to waive?")
        item, reason = rest[0], " ".join(rest[1:])
        if not reason.strip():
            return error(WAIVE_NO_REASON.format(contract=contract.id, item=item), "Why?")
        who = ctx.who.name or request.user_name or request.user
        try:
            waiver = waive(ctx.services, contract, item, reason, request.user, who)
        except SanctionError as exc:
            return error(str(exc), "Not waived")
        month = item_month(ctx.services, contract, item)
        verdict = ledger(ctx.services, contract, [month]).verdict() if month else ""
        reply = Reply(
            f"Waived · {contract.name}",
            f"Waived {item}: {waiver.reason}. Recorded as waived by {who}.\n{verdict}".strip(),
            kind="done",
        )
        if month is not None:
            reply.actions.append(Action("Ledger", f"payments {contract.id} {month.label}"))
        return reply
