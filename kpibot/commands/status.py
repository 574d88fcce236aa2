"""``status [contract] [kpi] [period]``: where contracts stand, reds and ambers first.

>>> # dispatch(Request.from_text("status childrens-trust", user="U1", platform="console"), ctx)
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pandas as pd

from kpibot.commands.base import CommandHandler, Context
from kpibot.commands.resolve import resolve_contract, resolve_kpi, take_period
from kpibot.core.protocol import Action, Cell, Reply, Request, error
from kpibot.core.services import Services
from kpibot.engine.describe import RAG_DOT, RAG_ORDER, format_value, trend_text
from kpibot.engine.explain import TREND_WORDS
from kpibot.engine.forecast import forecast_scorecard
from kpibot.engine.groups import group_lines
from kpibot.engine.milestones import milestone_lines, milestone_states
from kpibot.engine.model import KPI, Contract
from kpibot.engine.periods import Period
from kpibot.engine.scorecard import Scorecard, compiled
from kpibot.features.report import latest_period as report_period
from kpibot.features.returns import late_or_missing, pending_periods

MAX_ROWS = 12


def _value(row: Any, unit: str) -> str:
    v = row.value
    text = format_value(None if math.isnan(v) else v, unit)
    ytd = row.ytd_value
    if not math.isnan(ytd):
        text += f" (YTD {format_value(ytd, unit)} vs {format_value(row.ytd_target, unit)})"
    return text


def _target_cell(contract: Contract, row: Any) -> str:
    terms = compiled(contract)[row.kpi].years.get(row.year)
    text = str(row.target)
    if terms is not None and terms.tolerance is not None and terms.tolerance.kind != "none":
        text += f" (tol. {terms.tolerance.text.strip()})"
    return text


class StatusHandler(CommandHandler):
    verb = "status"
    summary = "where a contract stands: red, amber and green, values against targets, trends"
    usage = "status [contract] [kpi] [period]"
    examples = (
        "status",
        "status childrens-trust",
        "status childrens-trust C7",
        "status childrens-trust C7 2019/20 Q3",
    )

    def handle(self, request: Request, ctx: Context) -> Reply:
        if not request.args and ctx.policy.bound_contract(request.channel) is None:
            return self.overview_all(ctx)
        resolved = resolve_contract(request, ctx, "view")
        if isinstance(resolved, Reply):
            return resolved
        contract, rest = resolved
        today = ctx.services.now().date()
        period, rest2, why = take_period(contract, rest, today)
        if period is None and rest:
            kpi = resolve_kpi(contract, rest[0])
            if isinstance(kpi, Reply):
                return error(why, "Unknown period") if why and len(rest) > 1 else kpi
            period, extra, why = take_period(contract, rest[1:], today)
            if period is None and extra:
                return error(
                    why or f"I could not read '{' '.join(extra)}' as a period.", "Unknown period"
                )
            return self.kpi_detail(ctx, contract, kpi, period)
        if rest2:
            return error(
                f"I did not understand '{' '.join(rest2)}'. Usage: `{self.usage}`.", "Status"
            )
        return self.contract_overview(ctx, contract, period)

    # ------------------------------------------------------------------ views
    def overview_all(self, ctx: Context) -> Reply:
        ids = ctx.policy.visible(ctx.who, ctx.services.contract_ids())
        if not ids:
            return Reply(
                "No contracts yet",
                f"You have no kpibot contracts yet. {ctx.policy.grantor} can give you access.",
                kind="refusal",
                ephemeral=True,
            )
        reply = Reply(
            "Your contracts", columns=["Contract", "Period", "Red", "Amber", "Green", "Other"]
        )
        for cid in ids:
            contract = ctx.services.contract(cid)
            if contract is None:
                continue
            label, counts = cached_counts(ctx.services, contract)
            worst = "red" if counts["red"] else "amber" if counts["amber"] else "green"
            reply.rows.append(
                [
                    Cell(cid, worst),
                    Cell(label),
                    Cell(str(counts["red"]), "red"),
                    Cell(str(counts["amber"]), "amber"),
                    Cell(str(counts["green"]), "green"),
                    Cell(str(counts["grey"]), "grey"),
                ]
            )
        reply.actions = [Action(f"Status {cid}", f"status {cid}") for cid in ids[:5]]
        return reply

    def contract_overview(self, ctx: Context, contract: Contract, period: Period | None) -> Reply:
        """The one-screen overview, built once per change to the contract and date, then reused.

        Only the Submit button depends on who asks, so it is added to a copy of the shared reply.
        """
        base = cached_overview(ctx.services, contract, period)
        reply = replace(base, rows=[list(r) for r in base.rows], actions=list(base.actions))
        if ctx.policy.can(ctx.who, "submit", contract.id):
            reply.actions.append(Action("Submit a figure", f"submit {contract.id}"))
        return reply

    def kpi_detail(
        self, ctx: Context, contract: Contract, kpi: KPI, period: Period | None
    ) -> Reply:
        card: Scorecard = ctx.services.scorecard(contract, period)
        hist = card.kpi_history(kpi.code)
        comp = compiled(contract)[kpi.code]
        today_period = period or (
            contract.parse_period(hist["period"].iloc[-1])
            if not hist.empty
            else ctx.services.default_period(contract)
        )
        year = contract.year_for(today_period)
        terms = comp.years.get(year.year) if year else None
        lines = [f"*{kpi.name}* ({'higher' if kpi.polarity == 'bigger' else 'lower'} is better)"]
        if terms is not None:
            lines.append(
                f"*{year.name if year else ''} target:* {terms.target.explain()} — “{terms.target.text.strip()}”"
            )
            if terms.tolerance is not None:
                lines.append(f"*Tolerance:* {terms.tolerance.explain()}")
            if terms.critical is not None and terms.critical.kind != "none":
                lines.append(f"*Critical failure:* {terms.critical.explain()}")
            if terms.exempt:
                lines.append("*Exempt* from its performance level this year.")
        if kpi.kind == "milestone":
            state = next(
                (
                    m
                    for m in milestone_states(contract, card.frame, ctx.services.now().date())
                    if m.code == kpi.code
                ),
                None,
            )
            if state is not None:
                lines.append(f"*Milestone:* {state.text()}")
        if not hist.empty:
            last = hist[hist["value"].notna()]
            if not last.empty:
                method = TREND_WORDS.get(comp.trend, comp.trend)
                lines.append(f"*Trend (against {method}):* {trend_text(last['trend'].iloc[-1])}")
        outlook = _forecast_line(card, kpi.code, period)
        if outlook:
            lines.append(f"*Outlook:* {outlook}")
        nxt = ctx.services.next_due(contract, ctx.services.now().date())
        if nxt:
            lines.append(f"*Next return due:* {nxt}")
        reply = Reply(
            f"{contract.id} · {kpi.code}",
            "\n".join(lines),
            columns=["Period", "Value", "Target", "Position", "Trend"],
        )
        shown = hist if period is None else hist[hist["period_start"] <= period.start]
        for r in shown.tail(MAX_ROWS).itertuples():
            reply.rows.append(
                [
                    Cell(r.period, r.rag),
                    Cell(_value(r, comp.unit)),
                    Cell(str(r.target)),
                    Cell(r.position.replace("_", " ")),
                    Cell(trend_text(r.trend)),
                ]
            )
        if period is not None:
            versions = ctx.services.figures.history(contract.id, kpi.code, period)
            if len(versions) > 1:
                reply.footer = "Amendments: " + "; ".join(
                    f"{format_value(v.value, comp.unit)} by {v.submitted_by} {v.submitted_at:%-d %b %Y}"
                    + (f" ({v.reason})" if v.reason else "")
                    for v in versions
                )
        if hist.empty:
            reply.text += "\nNo figures yet."
        reply.actions.append(
            Action(f"Chart {kpi.code}", f"chart {contract.id} {kpi.code}", "primary")
        )
        return reply


def cached_overview(services: Services, contract: Contract, at: Period | None) -> Reply:
    """:func:`overview`, built once per change to the contract (``Services.view``); don't mutate it."""
    label = at.label if at else None
    return services.view(contract, "status", lambda: overview(services, contract, at), label)


def cached_counts(services: Services, contract: Contract) -> tuple[str, dict[str, int]]:
    """The report period's label and its KPIs counted by RAG, for the all-contracts view (cached)."""

    def build() -> tuple[str, dict[str, int]]:
        period = report_period(services, contract)
        rows = services.scorecard(contract, period).at(period)
        return period.label, rag_counts(rows)

    return services.view(contract, "status-counts", build)


def rag_counts(rows: pd.DataFrame) -> dict[str, int]:
    return {rag: int((rows["rag"] == rag).sum()) if not rows.empty else 0 for rag in RAG_ORDER}


def overview(services: Services, contract: Contract, at: Period | None) -> Reply:
    """A contract's status at ``at`` (default: its latest period with figures), for everyone."""
    period = at or report_period(services, contract)
    card = services.scorecard(contract, period)
    rows = card.at(period)
    comp = compiled(contract)
    year = contract.year_for(period)
    counts = rag_counts(rows)
    summary = (
        f"{RAG_DOT['red']} {counts['red']} red · {RAG_DOT['amber']} {counts['amber']} amber · "
        f"{RAG_DOT['green']} {counts['green']} green · {RAG_DOT['grey']} {counts['grey']} no target or no figure"
    )
    lines = [summary]
    if not rows.empty:
        crit = rows[rows["critical"]]
        if len(crit):
            lines.append(
                "*Critical failures:* "
                + ", ".join(f"{r.kpi} ({_value(r, comp[r.kpi].unit)})" for r in crit.itertuples())
            )
        missing = rows[rows["position"] == "missing"]
        late = ""
        if not missing.empty:
            at_period = contract.parse_period(missing["period"].iloc[0])
            late = late_or_missing(services, contract, list(missing["kpi"]), at_period)
        if late:
            lines.append("*Late or missing returns:* " + late)

    if period.label in pending_periods(services, contract.id):
        lines.append(
            f"The {period.label} return is *pending* approval; its figures may still change."
        )
    outlook = _year_end_outlook(card, contract, period)
    if outlook:
        lines.append(outlook)
    lines.extend(group_lines(contract, rows))
    lines.extend(milestone_lines(contract, card.frame, services.now().date()))
    if contract.trend != "last_three":
        lines.append(f"Trends compare with {TREND_WORDS[contract.trend]}.")
    extra = services.status_extras(contract, period)
    lines.extend(extra)
    reply = Reply(
        f"{contract.name} · {period.label}" + (f" · {year.name}" if year else ""),
        "\n".join(lines),
        columns=["KPI", "Measure", "Value", "Target", "Trend"],
    )
    focus = rows[rows["rag"].isin(["red", "amber"]) | rows["critical"]] if not rows.empty else rows
    if not focus.empty:
        focus = focus.assign(_o=focus["rag"].map(RAG_ORDER), _c=~focus["critical"]).sort_values(
            ["_c", "_o"]
        )
    for r in list(focus.itertuples())[:MAX_ROWS]:
        kpi = contract.kpi(r.kpi)
        reply.rows.append(
            [
                Cell(r.kpi, r.rag),
                Cell(_short(kpi.name)),
                Cell(_value(r, comp[r.kpi].unit)),
                Cell(_target_cell(contract, r)),
                Cell(trend_text(r.trend)),
            ]
        )
    hidden = len(focus) - MAX_ROWS
    footer = [f"…and {hidden} more red or amber." if hidden > 0 else ""]
    if focus.empty and not rows.empty:
        footer.append("Nothing is red or amber.")
    footer.append(
        f"{counts['green']} green KPIs not listed. `status {contract.id} <kpi>` shows one KPI's history."
    )
    reply.footer = " ".join(f for f in footer if f)
    worst = next(iter(focus["kpi"]), None) if not focus.empty else None
    if worst:
        reply.actions.append(Action(f"Chart {worst}", f"chart {contract.id} {worst}", "primary"))
    return reply


def _forecasts(card: Scorecard, period: Period | None) -> pd.DataFrame:

    if card.frame.empty:
        return pd.DataFrame()
    return forecast_scorecard(card, period)


def _forecast_line(card: Scorecard, code: str, period: Period | None) -> str | None:
    """The KPI's year-end (annual targets) or next-period outlook in one sentence."""
    fc = _forecasts(card, period)
    if fc.empty:
        return None
    row = fc[fc["kpi"] == code]
    if row.empty or not isinstance(row["statement"].iloc[0], str) or not row["statement"].iloc[0]:
        return None
    return str(row["statement"].iloc[0])


def _year_end_outlook(card: Scorecard, contract: Contract, period: Period) -> str | None:
    """Annual targets projected to miss: '*Year-end outlook:* PA-1 on this trajectory …'."""
    annual = {k.code for k in contract.kpis if k.target_basis == "annual"}
    if not annual:
        return None
    fc = _forecasts(card, period)
    if fc.empty:
        return None
    risky = fc[fc["kpi"].isin(annual) & fc["rag"].isin(["red", "amber"])]
    if risky.empty:
        return None
    parts = [f"{r.kpi}: {r.statement}" for r in risky.itertuples() if isinstance(r.statement, str)][
        :4
    ]
    return "*Year-end outlook:* " + "; ".join(parts)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
