"""``mute <contract> <duration>``: pause a contract's alerts for a while (``off`` lifts it).

In a direct message it mutes the alerts you get as a watcher; in a channel, the alerts the
channel gets as a watcher. A contract's own channels always hear its built-in alerts. Durations:
``30m``, ``2h``, ``3d``, ``1w`` (up to 90 days).

>>> # dispatch(Request.from_text("mute childrens-trust 1d", user="U-BOARD", ...), ctx).title
>>> # 'Muted childrens-trust'
"""

from __future__ import annotations

from kpibot.commands.base import CommandHandler, Context
from kpibot.commands.resolve import resolve_contract
from kpibot.core.protocol import Reply, Request, error
from kpibot.engine.calendar import LONDON
from kpibot.engine.subscriptions import parse_duration
from kpibot.features.subscriptions import mute, place_of, unmute

# User-facing wording for this verb, kept together.
USAGE = "mute <contract> <duration> | mute <contract> off"
HOW_LONG = (
    "For how long? Write it like `30m`, `2h`, `3d` or `1w` (up to 90 days), or `off` to unmute."
)
TEAMS_DM = "Send `mute` to me in a 1:1 chat to mute your own alerts, or type it in a channel."
MUTED = (
    "{place} will hear no alerts about {contract} until {until}; `mute {contract} off` lifts it."
)
UNMUTED = "{contract} is unmuted: alerts reach {where} again."
NOT_MUTED = "{contract} was not muted {where}."


class MuteHandler(CommandHandler):
    verb = "mute"
    summary = "pause the alerts you (or this channel) get about a contract for a while"
    usage = USAGE
    examples = ("mute childrens-trust 2h", "mute one-you-lifestyle 1w", "mute childrens-trust off")

    def handle(self, request: Request, ctx: Context) -> Reply:
        resolved = resolve_contract(request, ctx, "view")
        if isinstance(resolved, Reply):
            return resolved
        contract, rest = resolved
        place = place_of(ctx.services, request.platform, request.user, request.channel)
        if place is None:
            return error(TEAMS_DM, "Where?")
        now = ctx.services.now()
        where = "you" if place.direct else "here"
        if rest and rest[0].lower() in ("off", "unmute", "stop"):
            if unmute(ctx.services, request.user, place, contract.id, now):
                text = UNMUTED.format(contract=contract.id, where=where)
            else:
                text = NOT_MUTED.format(contract=contract.id, where="for " + where)
            return Reply(f"Unmuted {contract.id}", text, kind="done", ephemeral=True)
        span = parse_duration(" ".join(rest)) if rest else None
        if span is None:
            return error(HOW_LONG, "Mute")
        until = now + span
        mute(ctx.services, request.user, place, contract.id, until, now)
        text = MUTED.format(
            place="You" if place.direct else "This channel",
            contract=contract.id,
            until=f"{until.astimezone(LONDON):%a %-d %b %Y %H:%M}",
        )
        return Reply(f"Muted {contract.id}", text, kind="done", ephemeral=True)
