"""The quarterly RAG summary, and the composer that turns an outbox row into what people read.

Reminders carry their text from the planner. A quarterly summary is built when it is sent, so it
shows the latest figures: RAG counts, the reds and ambers with value against target and trend,
critical failures, missing returns, and one chart, a KPI × quarter RAG grid. It carries the
quarter's performance report (``kpibot.features.report``) as an attachment: XLSX, or the
contract's ``report_format``. The scheduler's dispatcher is handed ``composer(services, policy)``
by ``kpibot.app.wiring``.

>>> # reply = composer(services, policy)(outbox_row)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kpibot.core.access import AccessPolicy
from kpibot.core.protocol import Cell, Reply
from kpibot.core.services import Services
from kpibot.engine import reminders
from kpibot.engine.describe import RAG_DOT, RAG_ORDER, format_value, trend_text
from kpibot.engine.groups import group_lines
from kpibot.engine.milestones import milestone_lines
from kpibot.engine.model import Contract
from kpibot.engine.periods import Period
from kpibot.engine.scorecard import compiled
from kpibot.features.report import build_report, report_command, report_file
from kpibot.features.returns import pending_periods
from kpibot.store.outbox import OutboxMessage

if TYPE_CHECKING:
    from kpibot.engine.charts import RagGridData

GRID_PERIODS = 8
MAX_LISTED = 15
REPORT_ATTACHED = "The quarter's performance report is attached ({name})."
REPORT_FAILED = "The performance report could not be attached; ask for it with `/kpi {command}`."

log = logging.getLogger(__name__)


class SummaryComposer:
    """What the dispatcher calls for each claimed row, at delivery time.

    A kind a feature builds itself (``services.hooks.composers``: digests, alerts) goes to that
    feature, with the access ``policy`` to check the reader against; None withholds the row.
    ``prepare`` is handed each claimed batch first: the quarterly summaries in it (after a
    quarter, one per contract) have their scorecards evaluated together, in one pass.
    """

    def __init__(self, services: Services, policy: AccessPolicy | None = None) -> None:
        self._services = services
        self._policy = policy

    def __call__(self, message: OutboxMessage) -> Reply | None:
        own = self._services.hooks.composers.get(message.kind)
        if own is not None:
            return own(self._services, self._policy, message)
        return compose(
            self._services, message.kind, message.contract_id, message.period, message.text
        )

    def prepare(self, messages: Sequence[OutboxMessage]) -> None:
        wanted: dict[str, Period] = {}
        for m in messages:
            if m.kind == "summary" and m.contract_id and m.period:
                contract = self._services.contract(m.contract_id)
                if contract is not None:
                    wanted[contract.id] = contract.parse_period(m.period)
        if len(wanted) > 1:
            contracts = [c for c in map(self._services.contract, wanted) if c is not None]
            self._services.prefetch_scorecards(contracts, wanted)


def composer(
    services: Services, policy: AccessPolicy | None = None
) -> Callable[[OutboxMessage], Reply | None]:
    """What the dispatcher calls for each claimed row, at delivery time (``SummaryComposer``)."""
    return SummaryComposer(services, policy)


def compose(
    services: Services, kind: str, contract_id: str | None, period: str | None, text: str
) -> Reply:
    """The Reply to send for one message: a summary is built fresh, anything else is its own text."""
    contract = services.contract(contract_id) if contract_id else None
    if kind == "summary" and contract is not None and period:
        return quarterly_summary(services, contract, contract.parse_period(period))
    title = reminders.title(kind)
    if contract is not None:
        title += f" · {contract.id}"
    return Reply(title, text, kind="info")


def quarterly_summary(
    services: Services,
    contract: Contract,
    period: Period,
    grid: bool = True,
    report: bool = True,
) -> Reply:
    """The board's RAG summary for one period, with a KPI × quarter RAG grid and the report."""
    card = services.scorecard(contract, period)
    rows = card.at(period)
    comp = compiled(contract)
    counts = {rag: int((rows["rag"] == rag).sum()) if not rows.empty else 0 for rag in RAG_ORDER}
    lines = [
        f"{RAG_DOT['red']} {counts['red']} red · {RAG_DOT['amber']} {counts['amber']} amber · "
        f"{RAG_DOT['green']} {counts['green']} green · {RAG_DOT['grey']} {counts['grey']} not rated"
    ]
    if not rows.empty:
        crit = rows[rows["critical"]]
        if len(crit):
            lines.append(
                "*Critical failures:* "
                + ", ".join(
                    f"{r.kpi} ({format_value(r.value, comp[r.kpi].unit)})"
                    for r in crit.itertuples()
                )
            )
        missing = rows[rows["position"] == "missing"]
        if len(missing):
            lines.append(
                f"*Missing returns:* {len(missing)} KPI(s) have no figure: "
                + ", ".join(list(missing["kpi"])[:12])
                + (" …" if len(missing) > 12 else "")
            )
        if "status" in rows and (rows["status"] == "pending").any():
            lines.append("Figures marked pending are awaiting approval.")
    lines.extend(group_lines(contract, rows))
    lines.extend(milestone_lines(contract, card.frame, services.now().date()))
    lines.extend(services.status_extras(contract, period))
    if period.label in pending_periods(services, contract.id):
        lines.append(f"The {period.label} return is *pending* approval: figures may still change.")
    reply = Reply(
        f"Quarterly RAG summary · {contract.name} · {period.label}",
        "\n".join(lines),
        columns=["KPI", "Value", "Target", "Trend"],
    )
    focus = rows[rows["rag"].isin(["red", "amber"])] if not rows.empty else rows
    if not focus.empty:
        focus = focus.assign(_o=focus["rag"].map(RAG_ORDER)).sort_values("_o")
    for r in list(focus.itertuples())[:MAX_LISTED]:
        value = None if math.isnan(r.value) else r.value
        reply.rows.append(
            [
                Cell(r.kpi, r.rag),
                Cell(format_value(value, comp[r.kpi].unit)),
                Cell(str(r.target)),
                Cell(trend_text(r.trend)),
            ]
        )
    if not reply.rows:
        reply.columns = []
        reply.text += "\nNothing is red or amber." if counts["green"] else ""
    if len(focus) > MAX_LISTED:
        reply.footer = f"…and {len(focus) - MAX_LISTED} more red or amber"
    data = rag_grid(card.frame, contract, period) if grid and not card.frame.empty else None
    if data is not None and data.rows and data.columns:
        # Loaded here, not at the top, for start-up speed: matplotlib only when a grid is drawn.
        from kpibot.engine.charts import render_rag_grid

        reply.chart = render_rag_grid(data)
        reply.chart_name = (
            f"{contract.id}-{period.label.replace('/', '-').replace(' ', '-')}-rag-grid.png"
        )
    if report:
        _attach_report(services, contract, period, reply)
    return reply


def _attach_report(services: Services, contract: Contract, period: Period, reply: Reply) -> None:
    """Attach the quarter's report; a report that fails must not hold back the summary itself."""
    command = report_command(contract, period, contract.report_format)
    try:
        board = build_report(services, contract, period)
        reply.attachment = report_file(board, contract.report_format, command)
    except Exception:
        log.exception("quarterly report for %s %s failed", contract.id, period.label)
        reply.text += "\n" + REPORT_FAILED.format(command=command)
        return
    note = REPORT_ATTACHED.format(name=reply.attachment.name)
    reply.footer = f"{reply.footer} {note}" if reply.footer else note


def rag_grid(frame: Any, contract: Contract, period: Period) -> RagGridData:
    """KPIs with a target × the last quarters up to ``period``."""
    # Loaded here, not at the top, for start-up speed: the charts module loads matplotlib.
    from kpibot.engine.charts import RagGridData

    kind = contract.reporting.period
    labels = [period.shift(-i).label for i in range(GRID_PERIODS - 1, -1, -1)]
    sub = frame[(frame["kind"] == kind) & frame["period"].isin(labels)]
    present = [lab for lab in labels if (sub["period"] == lab).any()]
    rated = sub[sub["rag"] != "grey"]["kpi"].unique()
    codes = [k.code for k in contract.kpis if k.code in set(rated)]
    lookup = {(r.kpi, r.period): r.rag for r in sub.itertuples()}
    cells = [[lookup.get((code, lab)) for lab in present] for code in codes]
    names = [f"{code} {contract.kpi(code).name}" for code in codes]
    return RagGridData(f"{contract.id} · RAG by quarter to {period.label}", names, present, cells)
