"""``status [contract] [kpi] [period]``: where contracts stand, reds and ambers first.

>>> # dispatch(Request.from_text("status childrens-trust", user="U1", platform="console"), ctx)
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pandas as pd

from kpibot.commands.base import CommandHandler, Context
from kpibot.commands.resolve import resolve_contract, resolve_kpi, take_period
from kpibot.core.protocol import Action, Cell, Reply, Request, error
from kpibot.core.services import Services
from kpibot.core.status import batched_lines
from kpibot.engine.describe import RAG_DOT, RAG_ORDER, format_value, trend_text
from kpibot.engine.explain import TREND_WORDS
from kpibot.engine.forecast import forecast_scorecard
from kpibot.engine.groups import group_lines
from kpibot.engine.milestones import milestone_lines, milestone_states
from kpibot.engine.model import KPI, Contract
from kpibot.engine.periods import Period
from kpibot.engine.scorecard import Scorecard, compiled
from kpibot.engine.status import ContractStatus
from kpibot.engine.targets import CompiledKpi
from kpibot.features.returns import late_or_missing, pending_many, pending_periods

MAX_ROWS = 12
# Contracts evaluated together in one pass: big enough to amortise every query, small enough
# that the pass's arrays stay well under 100 MB.
WARM_BATCH = 1000


def _value(row: Any, unit: str) -> str:
    v = row.value
    text = format_value(None if math.isnan(v) else v, unit)
    ytd = row.ytd_value
    if not math.isnan(ytd):
        text += f" (YTD {format_value(ytd, unit)} vs {format_value(row.ytd_target, unit)})"
    return text


def _target_cell(
    contract: Contract, row: Any, comp: Mapping[str, CompiledKpi] | None = None
) -> str:
    terms = (comp if comp is not None else compiled(contract))[row.kpi].years.get(row.year)
    text = str(row.target)
    if terms is not None and terms.tolerance is not None and terms.tolerance.kind != "none":
        text += f" (tol. {terms.tolerance.text.strip()})"
    return text


def report_period(services: Services, contract: Contract) -> Period:
    """The latest period with figures in, else the latest ended period of the contract."""
    return services.status.standing(contract, None).period


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
        warm, version = self.warm_overview(request, ctx)
        if warm is not None:
            return warm
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
        if version is not None and contract.id != request.args[0]:
            version = None  # read for another id than the one resolved
        return self.contract_overview(ctx, contract, period, version)

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
        for cid, (label, counts) in all_counts(ctx.services, ids).items():
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

    def warm_overview(self, request: Request, ctx: Context) -> tuple[Reply | None, int | None]:
        """``status <contract>`` when its overview is already built at the contract's current
        version: answered from the id alone, without reading the contract's terms (with ten
        thousand contracts most are not kept parsed). Else (None, the version it read, if it
        read one: the full path builds the overview at that version)."""
        if len(request.args) != 1 or not ctx.services.has_contract(request.args[0]):
            return None, None
        cid = request.args[0]
        if not ctx.policy.can(ctx.who, "view", cid):
            return None, None
        version = ctx.services.contract_version(cid)
        base = ctx.services.peek_view(cid, "status", None, version=version)
        if not isinstance(base, Reply):
            return None, version
        return self._for(ctx, cid, base), version

    def _for(self, ctx: Context, contract_id: str, base: Reply) -> Reply:
        """A copy of a shared overview with the buttons of the person asking."""
        reply = replace(base, rows=[list(r) for r in base.rows], actions=list(base.actions))
        if ctx.policy.can(ctx.who, "submit", contract_id):
            reply.actions.append(Action("Submit a figure", f"submit {contract_id}"))
        return reply

    def contract_overview(
        self, ctx: Context, contract: Contract, period: Period | None, version: int | None = None
    ) -> Reply:
        """The one-screen overview, built once per change to the contract and date, then reused
        (``version``: the contract's, when the caller has just read it).

        Only the Submit button depends on who asks, so it is added to a copy of the shared reply.
        """
        overview = cached_overview(ctx.services, contract, period, version)
        return self._for(ctx, contract.id, overview)

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


def cached_overview(
    services: Services, contract: Contract, at: Period | None, version: int | None = None
) -> Reply:
    """:func:`overview`, built once per change to the contract (``Services.view``; ``version``
    when just read); don't mutate it."""
    label = at.label if at else None

    def build() -> Reply:
        return overview(services, contract, at)

    return services.view(contract, "status", build, label, version=version)


def cached_counts(services: Services, contract: Contract) -> tuple[str, dict[str, int]]:
    """The report period's label and its KPIs counted by RAG, for the all-contracts view (cached)."""

    def build() -> tuple[str, dict[str, int]]:
        status = services.status.standing(contract, None)
        return status.period.label, status.counts()

    return services.view(contract, "status-counts", build)


def all_counts(
    services: Services, contract_ids: Sequence[str]
) -> dict[str, tuple[str, dict[str, int]]]:
    """:func:`cached_counts` for many contracts, by id in their order (unknown ids left out).

    Their versions are read in one query; the contracts whose counts are not cached at those
    versions are warmed together in one pass (:func:`warm`), not one by one.
    """
    versions = services.contract_versions(contract_ids)
    found: dict[str, tuple[str, dict[str, int]]] = {}
    cold: list[str] = []
    for cid in contract_ids:
        hit = services.peek_view(cid, "status-counts", version=versions[cid])
        if hit is None:
            cold.append(cid)
        else:
            found[cid] = hit  # type: ignore[assignment]
    for start in range(0, len(cold), WARM_BATCH):
        part = cold[start : start + WARM_BATCH]
        for cid, counts in warm(services, part, versions).items():
            found[cid] = counts
    return {cid: found[cid] for cid in contract_ids if cid in found}


def rag_counts(rows: pd.DataFrame) -> dict[str, int]:
    return {rag: int((rows["rag"] == rag).sum()) if not rows.empty else 0 for rag in RAG_ORDER}


# Pending returns change only with a return's own events (submitted, approved, queried).
PENDING_CHANGED_BY = ("return:",)


def _pending(services: Services, contract: Contract, version: int) -> set[str]:
    return services.status.derived(
        contract,
        ("pending",),
        lambda: pending_periods(services, contract.id),
        PENDING_CHANGED_BY,
        version,
    )


def overview(services: Services, contract: Contract, at: Period | None) -> Reply:
    """A contract's status at ``at`` (default: its latest period with figures), for everyone.

    Its parts come from the status cache (``services.status``), which keeps each contract's
    evaluated KPI rows and feature lines until what they depend on changes.
    """
    version = services.contract_version(contract.id)
    status = services.status.standing(contract, at, version)
    return compose(
        services,
        contract,
        status,
        _pending(services, contract, version),
        services.status.lines(contract, status.period, version),
    )


def compose(
    services: Services,
    contract: Contract,
    status: ContractStatus,
    pending: set[str],
    extra: list[str],
) -> Reply:
    """The overview Reply from a contract's KPI rows, its pending returns and feature lines."""
    period = status.period
    rows = status.rows
    comp = status.terms if status.terms is not None else compiled(contract)
    year = contract.year_for(period)
    counts = status.counts()
    summary = (
        f"{RAG_DOT['red']} {counts['red']} red · {RAG_DOT['amber']} {counts['amber']} amber · "
        f"{RAG_DOT['green']} {counts['green']} green · {RAG_DOT['grey']} {counts['grey']} no target or no figure"
    )
    lines = [summary]
    if rows:
        crit = [r for r in rows if r.critical]
        if crit:
            lines.append(
                "*Critical failures:* "
                + ", ".join(f"{r.kpi} ({_value(r, comp[r.kpi].unit)})" for r in crit)
            )
        missing = [r for r in rows if r.position == "missing"]
        late = (
            late_or_missing(
                services,
                contract,
                [r.kpi for r in missing],
                contract.parse_period(missing[0].period),
            )
            if missing
            else ""
        )
        if late:
            lines.append("*Late or missing returns:* " + late)

    if period.label in pending:
        lines.append(
            f"The {period.label} return is *pending* approval; its figures may still change."
        )
    outlook = _year_end_outlook(services, contract, period)
    if outlook:
        lines.append(outlook)
    lines.extend(group_lines(contract, rows))
    if any(k.kind == "milestone" for k in contract.kpis):
        frame = services.scorecard(contract, period).frame
        lines.extend(milestone_lines(contract, frame, services.now().date()))
    if contract.trend != "last_three":
        lines.append(f"Trends compare with {TREND_WORDS[contract.trend]}.")
    lines.extend(extra)
    reply = Reply(
        f"{contract.name} · {period.label}" + (f" · {year.name}" if year else ""),
        "\n".join(lines),
        columns=["KPI", "Measure", "Value", "Target", "Trend"],
    )
    # Criticals first, then red before amber; a stable sort keeps the contract's KPI order.
    focus = sorted(
        (r for r in rows if r.rag in ("red", "amber") or r.critical),
        key=lambda r: (not r.critical, RAG_ORDER[r.rag]),
    )
    kpis = {k.code: k for k in contract.kpis}
    for r in focus[:MAX_ROWS]:
        kpi = kpis.get(r.kpi) or contract.kpi(r.kpi)
        reply.rows.append(
            [
                Cell(r.kpi, r.rag),
                Cell(_short(kpi.name)),
                Cell(_value(r, comp[r.kpi].unit)),
                Cell(_target_cell(contract, r, comp)),
                Cell(trend_text(r.trend)),
            ]
        )
    hidden = len(focus) - MAX_ROWS
    footer = [f"…and {hidden} more red or amber." if hidden > 0 else ""]
    if not focus and rows:
        footer.append("Nothing is red or amber.")
    footer.append(
        f"{counts['green']} green KPIs not listed. `status {contract.id} <kpi>` shows one KPI's history."
    )
    reply.footer = " ".join(f for f in footer if f)
    if focus:
        worst = focus[0].kpi
        reply.actions.append(Action(f"Chart {worst}", f"chart {contract.id} {worst}", "primary"))
    return reply


def warm(
    services: Services,
    contract_ids: Sequence[str],
    versions: Mapping[str, int] | None = None,
    figures: tuple[dict[str, int], Any] | None = None,
) -> dict[str, tuple[str, dict[str, int]]]:
    """Build the overview and counts of many contracts in one pass; returns the counts by id.

    Their versions, figures and feature lines are each read once for all of them and their
    KPIs evaluated together (``services.status.warm``); then each overview is composed and kept
    as ``status`` would have built it. ``versions`` and ``figures``, when given, are
    :func:`read_batch`'s for these contracts, read already.
    """
    with collector_paused():
        return _warm(services, contract_ids, versions, figures)


def read_batch(
    services: Services, contract_ids: Sequence[str]
) -> tuple[dict[str, int], tuple[dict[str, int], Any]]:
    """What :func:`warm` reads for these contracts: their versions, then their figures (in that
    order: a figure stored in between shows as a newer version later, never goes missing)."""
    versions = services.contract_versions(contract_ids)
    return versions, services.status.read_figures(list(contract_ids))


@contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection while a batch is warmed: it allocates millions of objects that
    live on, and every full collection on the way would walk all of them (and the caches).
    Nested pauses are free: an inner one finds the collector off and leaves it so."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _warm(
    services: Services,
    contract_ids: Sequence[str],
    versions: Mapping[str, int] | None,
    figures: tuple[dict[str, int], Any] | None,
) -> dict[str, tuple[str, dict[str, int]]]:
    if versions is None:
        versions = services.contract_versions(contract_ids)
    cache = services.status
    if figures is not None:
        contracts = services.contracts_by_id(contract_ids)
    elif services.db.dialect == "postgresql":
        # The server works out the figures while this process parses the contracts: the two
        # longest steps of a batch overlap on the machine's two cores.
        with ThreadPoolExecutor(1, thread_name_prefix="kpibot-warm-read") as reader:
            read = reader.submit(cache.read_figures, list(contract_ids))
            contracts = services.contracts_by_id(contract_ids)
            figures = read.result()
    else:  # SQLite reads in this process anyway (and an in-memory one has a single connection)
        contracts = services.contracts_by_id(contract_ids)
        figures = cache.read_figures(list(contract_ids))
    out: dict[str, tuple[str, dict[str, int]]] = {}
    if not contracts:
        return out
    statuses = cache.warm(contracts, versions, read=figures)
    pairs = [(c, statuses[c.id].period) for c in contracts]
    lines = batched_lines(services, pairs)
    pending = pending_many(services, [c.id for c in contracts])
    for contract, (_c, period) in zip(contracts, pairs, strict=True):
        status = statuses[contract.id]
        version = versions.get(contract.id, 0)
        for hook, hook_lines in zip(services.hooks.status, lines[contract.id], strict=True):
            cache.put(
                contract,
                ("lines", hook, period.label),
                hook_lines,
                services.hooks.status_changed_by.get(hook),
            )
        mine = pending.get(contract.id, set())
        cache.put(contract, ("pending",), mine, PENDING_CHANGED_BY)
        reply = compose(
            services, contract, status, mine, [x for h in lines[contract.id] for x in h]
        )
        services.remember_view(contract, "status", reply, None, version=version)
        out[contract.id] = (period.label, status.counts())
        services.remember_view(contract, "status-counts", out[contract.id], version=version)
    return out


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


def _year_end_outlook(services: Services, contract: Contract, period: Period) -> str | None:
    """Annual targets projected to miss: '*Year-end outlook:* PA-1 on this trajectory …'."""
    annual = {k.code for k in contract.kpis if k.target_basis == "annual"}
    if not annual:
        return None
    fc = _forecasts(services.scorecard(contract, period), period)
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
