"""``watch``, ``unwatch`` and ``watching``: choose which alerts about a contract you hear.

``watch <contract> [kpi] [red|critical|any-change|money]`` in a direct message (or the console)
is yours and arrives by DM; in a channel it is the channel's. Without a word you hear every
alert (turned red, red periods running, critical failures, money at risk, and the all-clear).
Anyone who may see the contract may watch it; whether you still may is checked again each time
an alert is built.

>>> # dispatch(Request.from_text("watch childrens-trust C7 red", user="U-BOARD", ...), ctx).title
>>> # 'Watching childrens-trust C7'
"""

from __future__ import annotations

from kpibot.commands.base import CommandHandler, Context
from kpibot.commands.resolve import resolve_contract
from kpibot.core.protocol import Cell, Reply, Request, error
from kpibot.engine.calendar import LONDON
from kpibot.engine.model import KPI, Contract
from kpibot.engine.subscriptions import DEFAULT_FILTER, FILTER_WORDS, WATCH_FILTERS
from kpibot.features.subscriptions import (
    Place,
    mutes_for,
    personal_place,
    place_of,
    subscriptions_for,
    unwatch,
    watch,
)
from kpibot.files.figures import find_kpi, unknown_kpi_message

# User-facing wording for these verbs, kept together.
WATCH_USAGE = "watch <contract> [kpi] [red|critical|any-change|money]"
UNWATCH_USAGE = "unwatch <contract> [kpi] [red|critical|any-change|money]"
TEAMS_DM = (
    "I can only message you directly in Teams from a 1:1 chat: send me `{line}` there, "
    "or type it in a channel to subscribe the channel."
)
WATCHING = "Watching {subject}"
WATCHING_TEXT = "{place} will hear about {subject}: {what}. `unwatch {contract}` stops it."
ALREADY = "{place} already hear about {subject}: {what}; nothing changed."
STOPPED = "Stopped: {items}."
NOT_WATCHING = "{place} watch nothing on {subject}{which}; `watching` lists what you watch."
TOO_MANY = (
    "I read '{word}' as neither a KPI of {contract} nor one of red, critical, any-change, money."
)
NOTHING = (
    "You watch nothing and get no digest. Try `watch <contract>` for its alerts or "
    "`digest weekly` for a Monday summary."
)
MUTED_LINE = "Muted: {contract} until {until}"


def parse_watch(contract: Contract, words: list[str]) -> tuple[KPI | None, str | None] | str:
    """[kpi] [filter] from ``words``; a string is the reason they cannot be read."""
    kpi: KPI | None = None
    what: str | None = None
    for word in words:
        low = word.lower().strip(",")
        if low in WATCH_FILTERS and what is None:
            what = low
            continue
        found = find_kpi(contract, word) if kpi is None else None
        if found is None:
            if kpi is None and what is None and len(words) == 1:
                return unknown_kpi_message(contract, word)
            return TOO_MANY.format(word=word, contract=contract.id)
        kpi = found
    return kpi, what


def _where(request: Request, ctx: Context) -> Place | Reply:
    place = place_of(ctx.services, request.platform, request.user, request.channel)
    if place is None:
        return error(TEAMS_DM.format(line=f"{request.verb} {request.text}".strip()), "Where to?")
    return place


def _places(request: Request, ctx: Context) -> list[Place]:
    """The caller's own DMs and, typed in a channel, that channel."""
    out = []
    own = personal_place(ctx.services, request.platform, request.user, request.channel)
    if own is not None:
        out.append(own)
    here = place_of(ctx.services, request.platform, request.user, request.channel)
    if here is not None and here not in out:
        out.append(here)
    return out


def _place_words(place: Place) -> str:
    return "You" if place.direct else "This channel"


class WatchHandler(CommandHandler):
    verb = "watch"
    summary = (
        "hear about a contract's alerts (red, critical, money, or every change), by DM or here"
    )
    usage = WATCH_USAGE
    examples = (
        "watch childrens-trust",
        "watch childrens-trust C7 red",
        "watch one-you-lifestyle critical",
        "watch healthy-child-0-19 money",
    )

    def handle(self, request: Request, ctx: Context) -> Reply:
        resolved = resolve_contract(request, ctx, "view")
        if isinstance(resolved, Reply):
            return resolved
        contract, rest = resolved
        parsed = parse_watch(contract, rest)
        if isinstance(parsed, str):
            return error(parsed, "What to watch?")
        kpi, what = parsed
        place = _where(request, ctx)
        if isinstance(place, Reply):
            return place
        sub, new = watch(
            ctx.services,
            request.user,
            request.email,
            place,
            contract.id,
            kpi.code if kpi else None,
            what or DEFAULT_FILTER,
            ctx.services.now(),
        )
        subject = f"{contract.id} {kpi.code}" if kpi else contract.id
        what_words = FILTER_WORDS[sub.what or DEFAULT_FILTER]
        if not new:
            text = ALREADY.format(place=_place_words(place), subject=subject, what=what_words)
            return Reply(WATCHING.format(subject=subject), text, kind="info", ephemeral=True)
        text = WATCHING_TEXT.format(
            place=_place_words(place), subject=subject, what=what_words, contract=contract.id
        )
        return Reply(WATCHING.format(subject=subject), text, kind="done", ephemeral=True)


class UnwatchHandler(CommandHandler):
    verb = "unwatch"
    summary = "stop hearing about a contract (or one KPI of it)"
    usage = UNWATCH_USAGE
    examples = ("unwatch childrens-trust", "unwatch childrens-trust C7")

    def handle(self, request: Request, ctx: Context) -> Reply:
        resolved = resolve_contract(request, ctx, "view")
        if isinstance(resolved, Reply):
            return resolved
        contract, rest = resolved
        parsed = parse_watch(contract, rest)
        if isinstance(parsed, str):
            return error(parsed, "What to stop watching?")
        kpi, what = parsed
        place = _where(request, ctx)
        if isinstance(place, Reply):
            return place
        gone = unwatch(
            ctx.services,
            request.user,
            place,
            contract.id,
            kpi.code if kpi else None,
            what,
            ctx.services.now(),
        )
        subject = f"{contract.id} {kpi.code}" if kpi else contract.id
        if not gone:
            which = f" ({FILTER_WORDS[what]})" if what else ""
            text = NOT_WATCHING.format(place=_place_words(place), subject=subject, which=which)
            return Reply(f"Not watching {subject}", text, kind="info", ephemeral=True)
        text = STOPPED.format(items="; ".join(s.describe() for s in gone))
        return Reply(f"Stopped watching {subject}", text, kind="done", ephemeral=True)


class WatchingHandler(CommandHandler):
    verb = "watching"
    summary = "what you (and this channel) watch, your digest and your mutes"
    usage = "watching"
    examples = ("watching",)

    def handle(self, request: Request, ctx: Context) -> Reply:
        places = _places(request, ctx)
        subs = subscriptions_for(ctx.services, places)
        mutes = mutes_for(ctx.services, places, ctx.services.now())
        if not subs and not mutes:
            return Reply("Watching nothing", NOTHING, kind="info", ephemeral=True)
        reply = Reply("What you hear about", "", kind="info", ephemeral=True)
        reply.columns = ["Subscription"]
        for sub in subs:
            reply.rows.append([Cell(sub.describe())])
        lines = [
            MUTED_LINE.format(contract=cid, until=f"{until.astimezone(LONDON):%a %-d %b %H:%M}")
            for cid, until in mutes
        ]
        reply.text = "\n".join(lines)
        return reply


HANDLERS = (WatchHandler(), UnwatchHandler(), WatchingHandler())
