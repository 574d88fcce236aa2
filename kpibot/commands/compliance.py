"""``compliance <contract>``: data-submission KPIs and the service-level RAG rating.

Timeliness and accuracy come from the submission records (nobody types them in); three
consecutive returns missed or late is shown as a service failure. The service-level RAG is seed
003's Schedule 2, for contracts that set it. Features such as action plans add sections through
``services.hooks.compliance`` (registered in ``kpibot.app.wiring``).

>>> # dispatch(Request.from_text("compliance one-you-lifestyle", user="U1", platform="console"), ctx)
"""

from __future__ import annotations

from kpibot.commands.base import CommandHandler, Context
from kpibot.commands.resolve import resolve_contract
from kpibot.core.protocol import Action, Cell, Reply, Request
from kpibot.engine.calendar import LONDON
from kpibot.features.compliance import ComplianceReport, compliance_report

MAX_RETURNS = 8
STATUS_WORDS = {
    "on_time": "on time",
    "late": "late",
    "missing": "not received",
    "not_due": "not due yet",
}
STATUS_RAG = {"on_time": "green", "late": "amber", "missing": "red", "not_due": "grey"}


class ComplianceHandler(CommandHandler):
    verb = "compliance"
    summary = (
        "data-submission KPIs (timeliness, accuracy, service failure) and the service RAG rating"
    )
    usage = "compliance <contract>"
    examples = ("compliance one-you-lifestyle", "compliance one-psychology")

    def handle(self, request: Request, ctx: Context) -> Reply:
        resolved = resolve_contract(request, ctx, "view")
        if isinstance(resolved, Reply):
            return resolved
        contract, rest = resolved
        if rest:
            return Reply(
                "Compliance",
                f"`compliance` takes only a contract; I did not understand "
                f"'{' '.join(rest)}'. Usage: `{self.usage}`.",
                kind="error",
                ephemeral=True,
            )
        return render(compliance_report(ctx.services, contract))


def render(report: ComplianceReport) -> Reply:
    """The report as a Reply: KPIs and rating as text, the latest returns as a table."""
    lines = [
        "*Data submission*",
        *report.submission_lines(),
        "*Service rating*",
        *report.rating_lines(),
    ]
    if report.extra:
        lines += ["*Also*", *report.extra]
    reply = Reply(
        f"Compliance · {report.contract.name}",
        "\n".join(lines),
        columns=["Return", "Due", "Received", "Status", "Amended"],
    )
    records = report.submissions.records if report.submissions is not None else ()
    due = [r for r in records if r.status != "not_due"]
    upcoming = [r for r in records if r.status == "not_due"][:1]
    for r in [*due[-MAX_RETURNS:], *upcoming]:
        got = "—" if r.received_at is None else f"{r.received_at.astimezone(LONDON):%-d %b %Y}"
        amended = "—" if r.received_at is None else f"{r.amended} of {r.figures}"
        name = r.label if r.kind != "annual" else f"{r.label} ({r.name})"
        reply.rows.append(
            [
                Cell(name, STATUS_RAG[r.status]),
                Cell(f"{r.due_at.astimezone(LONDON):%-d %b %Y}"),
                Cell(got),
                Cell(STATUS_WORDS[r.status]),
                Cell(amended),
            ]
        )
    if len(due) > MAX_RETURNS:
        reply.footer = f"The last {MAX_RETURNS} of {len(due)} returns due so far."
    reply.actions.append(Action("Payments", f"payments {report.contract.id}"))
    reply.actions.append(Action("Status", f"status {report.contract.id}"))
    return reply
