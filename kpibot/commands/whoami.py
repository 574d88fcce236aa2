"""``whoami``: your role and the contracts you can see.

>>> # dispatch(Request.from_text("whoami", ...), ctx).text
"""

from __future__ import annotations

from kpibot.commands.base import CommandHandler, Context
from kpibot.core.protocol import Reply, Request

ROLE_WORDS = {
    "commissioner": "Commissioner: you can see your contracts, submit and correct figures, approve returns "
    "and change contract terms.",
    "provider": "Provider: you can see and submit figures for your own contracts, and log incidents.",
    "viewer": "Viewer: you can see your contracts' status and charts.",
    "none": "You have no kpibot role yet.",
}


class WhoamiHandler(CommandHandler):
    verb = "whoami"
    summary = "your role and contracts"
    usage = "whoami"
    examples = ("whoami",)

    def handle(self, request: Request, ctx: Context) -> Reply:
        ids = ctx.policy.visible(ctx.who, ctx.services.contract_ids())
        lines = [ROLE_WORDS[ctx.who.role], f"*Contracts:* {', '.join(ids) if ids else 'none'}"]
        bound = ctx.policy.bound_contract(request.channel)
        if bound:
            lines.append(f"This channel is bound to *{bound}*, so you can leave the contract out.")
        if ctx.who.role == "none" or not ids:
            lines.append(
                f"{ctx.policy.grantor[0].upper() + ctx.policy.grantor[1:]} can give you access."
            )
        return Reply(
            f"{ctx.who.name} ({request.platform} user {request.user})",
            "\n".join(lines),
            ephemeral=True,
        )
