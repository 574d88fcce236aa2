"""``bind <contract>``: bind this channel or chat to a contract (commissioners only; audited).

In a bound channel commands may leave the contract out, and the contract's reminders, escalations
and quarterly summaries are posted there too (a contract may be bound to a Slack channel and a
Teams channel at once). Bindings in the access file win over chat: a channel bound there is
changed there.

>>> # dispatch(Request.from_text("bind childrens-trust", user="U1", platform="teams",
>>> #                            channel="19:abc@thread.tacv2"), ctx).title  -> 'Bound to childrens-trust'
"""

from __future__ import annotations

from kpibot.commands.base import Context
from kpibot.commands.resolve import refuse
from kpibot.core import texts
from kpibot.core.protocol import Reply, Request, error
from kpibot.features.bind import bind, stored_binding
from kpibot.files.figures import suggest

NO_CHANNEL = "Run `bind <contract>` in the channel or chat you want to bind, not here."
BOUND_IN_CONFIG = (
    "This channel is bound to '{contract}' in the access file, so it is changed there; "
    "ask {grantor}."
)
ALREADY = "This channel is already bound to '{contract}'; nothing changed."
BOUND = (
    "This channel is now bound to '{contract}': commands here may leave the contract out, and its "
    "reminders, escalations and quarterly summaries will be posted here{previous}."
)
CURRENT = (
    "This channel is bound to '{contract}'; a commissioner can change that with `bind <contract>`."
)
UNBOUND = "This channel is bound to no contract; a commissioner can bind it with `bind <contract>`."


class BindHandler:
    verb = "bind"
    summary = (
        "bind this channel or chat to a contract (commissioners), for reminders and short commands"
    )
    usage = "bind <contract>"
    examples = ("bind childrens-trust",)

    def check(self, request: Request, ctx: Context) -> Reply | None:
        if not request.channel:
            return error(NO_CHANNEL, "Bind")
        return None

    def handle(self, request: Request, ctx: Context) -> Reply:
        configured = ctx.policy.bound_contract(request.channel)
        stored = stored_binding(ctx.services.db, request.platform, request.channel)
        if not request.args:
            current = configured or stored
            text = CURRENT.format(contract=current) if current else UNBOUND
            return Reply("Channel binding", text, ephemeral=True)
        ids = ctx.services.contracts.ids()
        contract_id = request.args[0]
        if contract_id not in ids:
            visible = ctx.policy.visible(ctx.who, ids) or ids
            hint = (
                suggest(contract_id, visible)
                or f" Contracts you can see: {', '.join(visible) or 'none'}."
            )
            return error(
                texts.UNKNOWN_CONTRACT.format(contract=contract_id, hint=hint),
                "Unknown contract",
            )
        if not ctx.policy.can(ctx.who, "admin", contract_id):
            return refuse(request, ctx, "admin", contract_id)
        if configured is not None and configured != contract_id:
            grantor = ctx.policy.grantor
            return error(
                BOUND_IN_CONFIG.format(contract=configured, grantor=grantor), "Bound in config"
            )
        if configured == contract_id or stored == contract_id:
            return Reply(
                "Already bound", ALREADY.format(contract=contract_id), kind="done", ephemeral=True
            )
        channel = request.channel or ""
        before = bind(
            ctx.services.db,
            request.platform,
            channel,
            contract_id,
            actor=request.user,
            now=ctx.services.now(),
        )
        previous = f" instead of '{before}'" if before else ""
        return Reply(
            f"Bound to {contract_id}",
            BOUND.format(contract=contract_id, previous=previous),
            kind="done",
        )
