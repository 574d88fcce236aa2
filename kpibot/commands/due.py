"""``due [contract]``: the coming return deadlines, and any overdue returns not yet in.

>>> # dispatch(Request.from_text("due one-psychology", ...), ctx)
"""

from __future__ import annotations

from datetime import timedelta

from kpibot.commands.base import CommandHandler, Context
from kpibot.commands.resolve import resolve_contract
from kpibot.core.protocol import Cell, Reply, Request
from kpibot.engine.calendar import calendar_for
from kpibot.engine.model import Contract

AHEAD_DAYS = 120
BEHIND_DAYS = 200


class DueHandler(CommandHandler):
    verb = "due"
    summary = "coming return deadlines, and overdue returns not yet in"
    usage = "due [contract]"
    examples = ("due", "due one-psychology")

    def handle(self, request: Request, ctx: Context) -> Reply:
        if request.args or ctx.policy.bound_contract(request.channel):
            resolved = resolve_contract(request, ctx, "view")
            if isinstance(resolved, Reply):
                return resolved
            contracts = [resolved[0]]
        else:
            ids = ctx.policy.visible(ctx.who, ctx.services.contract_ids())
            contracts = [c for c in (ctx.services.contract(i) for i in ids) if c is not None]
        today = ctx.services.now().date()
        reply = Reply(
            f"Returns due · from {today:%-d %b %Y}", columns=["Contract", "Return", "Due", "Status"]
        )
        no_calendar = []
        for c in contracts:
            rows = self._rows(ctx, c)
            if rows is None:
                no_calendar.append(c.id)
                continue
            reply.rows.extend(rows)
        if not reply.rows:
            reply.text = "Nothing is due in the next four months."
        if no_calendar:
            reply.footer = (
                f"No return calendar in the contract for: {', '.join(no_calendar)}. "
                "Add a `calendar:` section to its YAML to have kpibot chase returns."
            )
        return reply

    def _rows(self, ctx: Context, contract: Contract) -> list[list[Cell]] | None:
        cal = calendar_for(contract)
        if cal is None:
            return None
        today = ctx.services.now().date()
        received = ctx.services.received_periods(contract.id)
        out = []
        for ret in cal.returns_due_between(
            today - timedelta(days=BEHIND_DAYS), today + timedelta(days=AHEAD_DAYS)
        ):
            got = received.get(ret.period.label) if ret.kind != "annual" else None
            if ret.due_date < today and got is not None:
                continue
            if got is not None:
                status, rag = f"received {got:%-d %b}", "green"
            elif ret.due_date < today:
                status, rag = f"overdue by {(today - ret.due_date).days} days", "red"
            elif (ret.due_date - today).days <= 14:
                status, rag = f"due in {(ret.due_date - today).days} days", "amber"
            else:
                status, rag = f"due in {(ret.due_date - today).days} days", None
            name = ret.name if ret.kind == "annual" else f"{ret.period.label} {ret.kind} return"
            out.append(
                [
                    Cell(contract.id, rag),
                    Cell(name),
                    Cell(f"{ret.due_date:%a %-d %b %Y}"),
                    Cell(status, rag),
                ]
            )
        return out
