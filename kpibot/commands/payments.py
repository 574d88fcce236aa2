"""``payments <contract> [year]``: what a contract pays this year, and what is at risk and why.

One line per payable item (an incentive KPI, a programme tier, the block, the Schedule 2 share),
with its status and a reason that cites the clause and the figures, under a one-line verdict such
as "£41,000 of £60,000 incentive at risk: 1b, 5b below target".

>>> # dispatch(Request.from_text("payments healthy-child-0-19 0", user="U1", platform="console"), ctx)
"""

from __future__ import annotations

from kpibot.commands.base import CommandHandler, Context
from kpibot.commands.resolve import resolve_contract
from kpibot.core.protocol import Action, Cell, Reply, Request, error
from kpibot.engine.payments import STATUS_WORDS, PaymentReport
from kpibot.features.payments import (
    NO_ACV,
    NO_PAYMENT_TERMS,
    default_year,
    find_year,
    payment_report,
    totals_line,
)

STATUS_RAG = {
    "guaranteed": "green",
    "earned": "green",
    "on_track": "green",
    "at_risk": "amber",
    "not_earned": "red",
    "withheld": "red",
}


class PaymentsHandler(CommandHandler):
    verb = "payments"
    summary = (
        "what a contract pays this year: guaranteed, earned, at risk and withheld, with reasons"
    )
    usage = "payments <contract> [year]"
    examples = (
        "payments one-you-lifestyle",
        "payments healthy-child-0-19 0",
        "payments one-psychology 2019/20",
    )

    def handle(self, request: Request, ctx: Context) -> Reply:
        resolved = resolve_contract(request, ctx, "view")
        if isinstance(resolved, Reply):
            return resolved
        contract, rest = resolved
        if not contract.payments.has_money:
            return error(NO_PAYMENT_TERMS.format(contract=contract.id), "No payment terms")
        if rest:
            year = find_year(contract, " ".join(rest))
            if isinstance(year, str):
                return error(year, "Unknown contract year")
        else:
            year = default_year(contract, ctx.services.now().date())
        return render(payment_report(ctx.services, contract, year))


def render(report: PaymentReport) -> Reply:
    """The report as a Reply: verdict and totals, a line per item, readings and notes below."""
    lines = [f"*{report.verdict()}*", totals_line(report)]
    if report.acv is None:
        lines.append(NO_ACV)
    reply = Reply(
        f"Payments · {report.contract_name} · {report.year_name}",
        "\n".join(lines),
        columns=["Item", "Status", "Amount", "Reason"],
    )
    order = {
        s: i
        for i, s in enumerate(
            ("withheld", "not_earned", "at_risk", "on_track", "earned", "guaranteed")
        )
    }
    for line in sorted(report.lines, key=lambda ln: order[ln.status]):
        status = STATUS_WORDS[line.status] + (" · CRITICAL" if line.critical else "")
        reply.rows.append(
            [
                Cell(line.item, STATUS_RAG[line.status]),
                Cell(status),
                Cell(report.amount(line.share)),
                Cell(line.reason),
            ]
        )
    reply.footer = " ".join([*report.readings, *report.notes])
    reply.actions.append(Action("Compliance", f"compliance {report.contract_id}"))
    reply.actions.append(Action("Status", f"status {report.contract_id}"))
    return reply
