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
from kpibot.engine.periods import Period
from kpibot.engine.sanctions import Ledger, LedgerLine
from kpibot.features.payments import (
    NO_ACV,
    NO_PAYMENT_TERMS,
    default_year,
    find_year,
    payment_report,
    totals_line,
)
from kpibot.features.sanctions import default_month, ledger, line_note, month_range

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
    usage = "payments <contract> [year | month | quarter]"
    examples = (
        "payments one-you-lifestyle",
        "payments healthy-child-0-19 0",
        "payments one-psychology 2019/20",
        "payments waste-collection-example 2019-11",
        "payments acute-hospital-example 2015/16 Q3",
    )

    def handle(self, request: Request, ctx: Context) -> Reply:
        resolved = resolve_contract(request, ctx, "view")
        if isinstance(resolved, Reply):
            return resolved
        contract, rest = resolved
        terms = contract.payments
        if terms.has_sanctions:
            months = month_range(contract, " ".join(rest)) if rest else None
            if isinstance(months, list) or not terms.has_money:
                if months is None:
                    months = [default_month(contract, ctx.services.now().date())]
                if isinstance(months, str):
                    return error(months, "Which month?")
                return render_ledger(ledger(ctx.services, contract, months), contract.name)
        if not terms.has_money:
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


LINE_RAG = {"charged": "red", "waived": None, "suspended": None, "earned": "green"}
MAX_REFS = 6


def _refs(line: LedgerLine) -> str:
    shown = ", ".join(line.events[:MAX_REFS])
    more = len(line.events) - MAX_REFS
    return f"{shown} …and {more} more" if more > 0 else shown


def render_ledger(result: Ledger, name: str) -> Reply:
    """The sanctions ledger as a Reply: the verdict, then every line with its reasons."""
    months: list[Period] = [m.month for m in result.months]
    span = months[0].label if len(months) == 1 else f"{months[0].label} to {months[-1].label}"
    lines = [f"*{result.verdict()}*"]
    if len(result.months) > 1:
        lines += [m.verdict() for m in result.months]
    for m in result.months[-1:]:
        lines += [r.sentence() for r in m.rolling]
    reply = Reply(
        f"Payments · {name} · {span}",
        "\n".join(lines),
        columns=["Month", "Rule", "Events or figures", "Points", "Amount", "Clause", "Why"],
    )
    for line in result.lines:
        rag = LINE_RAG.get(line.status)
        if line.status == "charged" and not (line.amount.gbp < 0 or line.amount.share < 0):
            rag = "amber" if line.points else "green" if line.amount else None
        reply.rows.append(
            [
                Cell(line.month),
                Cell(line.rule, rag),
                Cell(_refs(line)),
                Cell(str(line.points) if line.points else ""),
                Cell(line.amount.text() if line.amount else ""),
                Cell(line.clause),
                Cell(line_note(line)),
            ]
        )
    reply.footer = (
        "Amounts are the effect on the provider's payment (a deduction is negative). A "
        "commissioner can waive an event or a rule for a month: "
        '`waive <contract> <event reference | rule:month> "why"`.'
    )
    reply.actions.append(Action("Status", f"status {result.contract_id}"))
    return reply
