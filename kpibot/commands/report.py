"""``report <contract> [period] [format]``: the quarterly performance report as a file.

The board's scorecard (``kpibot.features.report``) as XLSX (the default, or the contract's own
``report_format``), PDF, HTML or CSV, attached to the reply; each adapter sends the file its own
way (Slack uploads it, Teams offers it in a 1:1 chat, the console saves it). The reply's text and
rows are an inline summary: RAG counts, money at risk, and the red and amber KPIs.

>>> # dispatch(Request.from_text("report childrens-trust 2019/20 Q3 pdf", ...), ctx).attachment.name
>>> # 'childrens-trust-2019-20-Q3-performance-report.pdf'
"""

from __future__ import annotations

from kpibot.commands.base import CommandHandler, Context
from kpibot.commands.resolve import resolve_contract, take_period
from kpibot.core.protocol import Action, Cell, Reply, Request, error
from kpibot.engine.describe import trend_text
from kpibot.features.report import (
    DEFAULT_QUARTERS,
    ReportError,
    build_report,
    check_format,
    latest_period,
    report_command,
    report_file,
    summary_line,
)
from kpibot.files.report import FORMATS

MAX_LISTED = 12

# User-facing texts of the verb.
TITLE = "Performance report · {contract} · {period}"
ATTACHED = "The full report is attached ({name})."
NOT_UNDERSTOOD = "I did not understand '{words}'. Usage: `{usage}`; formats: {formats}."
MORE = "…and {n} more red or amber; the report lists every KPI."
NOTHING_RED = "Nothing is red or amber."


class ReportHandler(CommandHandler):
    verb = "report"
    summary = "the quarterly performance report for the board, as XLSX, PDF, HTML or CSV"
    usage = "report <contract> [period] [xlsx|pdf|html|csv]"
    examples = (
        "report childrens-trust",
        "report childrens-trust 2019/20 Q3",
        "report childrens-trust 2019/20 Q3 pdf",
    )

    def handle(self, request: Request, ctx: Context) -> Reply:
        resolved = resolve_contract(request, ctx, "view")
        if isinstance(resolved, Reply):
            return resolved
        contract, rest = resolved
        formats = [w for w in rest if w.lower().lstrip(".") in FORMATS]
        words = [w for w in rest if w not in formats]
        period, extra, why = take_period(contract, words, ctx.services.now().date())
        if extra or len(formats) > 1:
            text = why or NOT_UNDERSTOOD.format(
                words=" ".join(extra or formats), usage=self.usage, formats=", ".join(FORMATS)
            )
            return error(text, "Report")
        try:
            fmt = check_format(formats[0]) if formats else contract.report_format
            period = period or latest_period(ctx.services, contract)
            report = build_report(ctx.services, contract, period, DEFAULT_QUARTERS)
            attachment = report_file(report, fmt, report_command(contract, period, fmt))
        except ReportError as exc:
            return error(str(exc), "Report")
        reply = Reply(
            TITLE.format(contract=contract.name, period=period.label),
            "\n".join((summary_line(report), *report.money_lines[:1])),
            columns=["KPI", "Measure", "Value", "Target", "Trend"],
            footer=ATTACHED.format(name=attachment.name),
            attachment=attachment,
        )
        focus = [r for r in report.rows() if r.rag in ("red", "amber")]
        focus.sort(key=lambda r: (not r.critical, r.rag != "red"))
        for row in focus[:MAX_LISTED]:
            reply.rows.append(
                [
                    Cell(row.ref, row.rag),
                    Cell(_short(row.measure)),
                    Cell(row.cells[-1].text if row.cells else ""),
                    Cell(row.target),
                    Cell(trend_text(row.trend)),
                ]
            )
        if len(focus) > MAX_LISTED:
            reply.footer = f"{MORE.format(n=len(focus) - MAX_LISTED)} {reply.footer}"
        if not focus:
            reply.columns = []
            reply.text += f"\n{NOTHING_RED}"
        for other in FORMATS:
            if other != fmt:
                command = report_command(contract, period, other)
                reply.actions.append(Action(other.upper(), command))
        return reply


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
