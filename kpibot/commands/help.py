"""``help [verb]``: every verb with examples, or one verb in full.

>>> # dispatch(Request.from_text("help submit", ...), ctx).text
"""

from __future__ import annotations

from kpibot.commands.base import Cell, CommandHandler, Context, Reply, Request


class HelpHandler(CommandHandler):
    verb = "help"
    summary = "what kpibot can do, with examples"
    usage = "help [verb]"
    examples = ("help", "help submit")

    def handle(self, request: Request, ctx: Context) -> Reply:
        from kpibot.commands.registry import REGISTRY, closest_verb

        if request.args:
            name = request.args[0].lower().lstrip("/")
            handler = REGISTRY.get(name)
            if handler is None:
                return Reply(
                    "Help",
                    f"There is no `{name}` command.{closest_verb(name)} Type `help` to list them.",
                    kind="error",
                    ephemeral=True,
                )
            lines = [
                handler.summary.capitalize() + ".",
                f"*Usage:* `/kpi {handler.usage}`",
                "*Examples:*",
            ]
            lines += [f"• `/kpi {e}`" for e in handler.examples]
            return Reply(f"Help · {handler.verb}", "\n".join(lines), ephemeral=True)
        reply = Reply(
            "kpibot help",
            "Type `/kpi <verb> …`. In a contract channel the contract can be left out.",
            columns=["Verb", "What it does", "Example"],
            ephemeral=True,
        )
        for h in REGISTRY.values():
            reply.rows.append([Cell(h.verb), Cell(h.summary), Cell(f"/kpi {h.examples[0]}")])
        return reply
