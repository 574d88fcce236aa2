"""``chart <contract> <kpi> [--years N]``: a PNG of values by period against the stepping target.

Rendering uses matplotlib's object API (no pyplot state), so adapters may run it off the request
thread, several at once.

>>> # reply = dispatch(Request.from_text("chart childrens-trust C7", ...), ctx); reply.chart[:4]
"""

from __future__ import annotations

from kpibot.commands.base import CommandHandler, Context
from kpibot.commands.resolve import resolve_contract, resolve_kpi
from kpibot.core.protocol import Action, Reply, Request, error


class ChartHandler(CommandHandler):
    verb = "chart"
    summary = "a chart of one KPI: values, target line by contract year, tolerance band, benchmark"
    usage = "chart <contract> <kpi> [--years N]"
    examples = ("chart childrens-trust C7", "chart childrens-trust S16 --years 1")

    def handle(self, request: Request, ctx: Context) -> Reply:
        args = list(request.args)
        years: int | None = None
        if "--years" in args:
            i = args.index("--years")
            try:
                years = int(args[i + 1])
                if years < 1:
                    raise ValueError
            except (IndexError, ValueError):
                return error("`--years` needs a whole number of years, e.g. `--years 2`.", "Chart")
            del args[i : i + 2]
        resolved = resolve_contract(request, ctx, "view", args)
        if isinstance(resolved, Reply):
            return resolved
        contract, rest = resolved
        if not rest:
            return error(f"Which KPI? Usage: `{self.usage}`.", "Chart")
        kpi = resolve_kpi(contract, rest[0])
        if isinstance(kpi, Reply):
            return kpi
        card = ctx.services.scorecard(contract)
        data = card.chart_data(kpi.code, years)
        # Loaded here, not at the top, for start-up speed: matplotlib only when a chart is drawn.
        from kpibot.engine.charts import render_kpi_chart

        png = render_kpi_chart(data)
        reply = Reply(
            f"{contract.id} · {kpi.code} · {kpi.name}",
            f"{len([p for p in data.points if p.value is not None])} figure(s) against the target line; "
            "points are coloured by RAG.",
        )
        reply.chart = png
        reply.chart_name = f"{contract.id}-{kpi.code}.png".replace("/", "-")
        reply.actions = [Action(f"Status {kpi.code}", f"status {contract.id} {kpi.code}")]
        return reply
