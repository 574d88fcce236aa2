"""``help [verb]``: every verb with examples, or one verb in full.

>>> # dispatch(Request.from_text("help submit", ...), ctx).text
"""

from __future__ import annotations

from typing import Protocol

from kpibot.commands.base import CommandHandler, Context, Handler
from kpibot.core.protocol import Cell, Reply, Request


class Verbs(Protocol):
    """What help needs of the registry it is handed: the verbs, and a near-miss hint."""

    def get(self, verb: str) -> Handler | None: ...

    def handlers(self) -> list[Handler]: ...

    def closest(self, word: str) -> str: ...


class HelpHandler(CommandHandler):
    verb = "help"
    summary = "what kpibot can do, with examples"
    usage = "help [verb]"
    examples = ("help", "help submit")

    def __init__(self, verbs: Verbs) -> None:
        self.verbs = verbs

    def handle(self, request: Request, ctx: Context) -> Reply:
        if request.args:
            name = request.args[0].lower().lstrip("/")
            handler = self.verbs.get(name)
            if handler is None:
                return Reply(
                    "Help",
                    f"There is no `{name}` command.{self.verbs.closest(name)} Type `help` to list them.",
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
        for h in self.verbs.handlers():
            reply.rows.append([Cell(h.verb), Cell(h.summary), Cell(f"/kpi {h.examples[0]}")])
        return reply
