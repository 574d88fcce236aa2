"""``digest daily|weekly|monthly [contracts…]``: a DM summary of what changed, or ``digest off``.

At 09:00 Europe/London on working days (weekly: the first working day of the week; monthly: of
the month) you get a direct message with what changed since your last digest: KPIs that turned
red or back to green, critical failures, returns now late, incidents, action plan actions due.
Without contracts it covers every contract you may see on the day it is built.

>>> # dispatch(Request.from_text("digest weekly childrens-trust", user="U-BOARD", ...), ctx).title
>>> # 'Weekly digest'
"""

from __future__ import annotations

from kpibot.commands.base import CommandHandler, Context
from kpibot.commands.resolve import refuse
from kpibot.core import texts
from kpibot.core.protocol import Reply, Request, error
from kpibot.engine.calendar import LONDON
from kpibot.engine.subscriptions import FREQUENCIES, next_digest
from kpibot.features.subscriptions import (
    FREQUENCY_WORDS,
    personal_place,
    set_digest,
    stop_digest,
)
from kpibot.files.figures import suggest

# User-facing wording for this verb, kept together.
USAGE = "digest daily|weekly|monthly [contracts…] | digest off"
WHICH = "How often? `digest daily`, `digest weekly` or `digest monthly`, or `digest off` to stop."
TEAMS_DM = (
    "In Teams I can send a digest only to a 1:1 chat: send me `digest {args}` there and I will "
    "message you in it."
)
STARTED = (
    "{word} digest of {which} by direct message, at 09:00 on {days}; the first on {first}. "
    "`digest off` stops it."
)
DAYS = {
    "daily": "working days",
    "weekly": "the first working day of each week",
    "monthly": "the first working day of each month",
}
STOPPED = "Your digest is stopped."
NONE = "You have no digest; `digest weekly` starts one."


class DigestHandler(CommandHandler):
    verb = "digest"
    summary = "a DM at 09:00 with what changed since the last one: daily, weekly or monthly"
    usage = USAGE
    examples = ("digest weekly", "digest daily childrens-trust one-you-lifestyle", "digest off")

    def handle(self, request: Request, ctx: Context) -> Reply:
        if not request.args:
            return error(WHICH, "Digest")
        word = request.args[0].lower()
        place = personal_place(ctx.services, request.platform, request.user, request.channel)
        if place is None:
            return error(TEAMS_DM.format(args=" ".join(request.args)), "Where to?")
        now = ctx.services.now()
        if word in ("off", "stop", "none"):
            stopped = stop_digest(ctx.services, request.user, place, now)
            return Reply("Digest", STOPPED if stopped else NONE, kind="done", ephemeral=True)
        if word not in FREQUENCIES:
            return error(WHICH, "Digest")
        ids = ctx.services.contract_ids()
        wanted: list[str] = []
        for cid in request.args[1:]:
            cid = cid.strip(",")
            if cid not in ids:
                visible = ctx.policy.visible(ctx.who, ids)
                hint = suggest(cid, visible) or f" Contracts you can see: {', '.join(visible)}."
                return error(
                    texts.UNKNOWN_CONTRACT.format(contract=cid, hint=hint), "Unknown contract"
                )
            if not ctx.policy.can(ctx.who, "view", cid):
                return refuse(request, ctx, "view", cid)
            wanted.append(cid)
        if not wanted and not ctx.policy.visible(ctx.who, ids):
            return refuse(request, ctx, "view", None)
        sub = set_digest(
            ctx.services, request.user, request.email, place, word, list(dict.fromkeys(wanted)), now
        )
        first = next_digest(word, now).astimezone(LONDON)
        text = STARTED.format(
            word=FREQUENCY_WORDS[word],
            which=", ".join(sub.contracts) or "every contract you can see",
            days=DAYS[word],
            first=f"{first:%a %-d %b %Y}",
        )
        return Reply(f"{FREQUENCY_WORDS[word]} digest", text, kind="done", ephemeral=True)
