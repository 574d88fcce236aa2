"""Resolve command arguments to a contract, KPI and period, with helpful refusals.

Every verb that names a contract goes through here, so unknown names get the same suggestions
and access is checked the same way (and refusals are audited).

>>> # contract, rest = resolve_contract(request, ctx, "view")
"""

from __future__ import annotations

from datetime import date

from kpibot.commands.base import Context
from kpibot.core import texts
from kpibot.core.protocol import Reply, Request, error
from kpibot.engine.model import KPI, Contract
from kpibot.engine.periods import Period
from kpibot.features.bind import bound_contract
from kpibot.files.figures import check_period, find_kpi, suggest, unknown_kpi_message

ACTION_WORDS = {
    "view": "viewing",
    "submit": "submitting figures",
    "amend_terms": "changing contract terms",
    "approve": "approving returns",
    "incident": "logging incidents",
    "admin": "administration",
    "waive": "waiving sanctions",
}


def refuse(request: Request, ctx: Context, action: str, contract_id: str | None) -> Reply:
    """A polite refusal naming who can grant access; recorded in the audit trail."""
    ctx.services.audit.record(
        request.user,
        f"refuse:{request.verb}",
        contract_id,
        " ".join(request.args)[:200],
        "refused",
        {"role": ctx.who.role, "action": action, "platform": request.platform},
    )
    text = texts.NOT_ALLOWED.format(
        action=ACTION_WORDS.get(action, action),
        contract=f"'{contract_id}'" if contract_id else "this",
        role=ctx.who.role if ctx.who.role != "none" else "no kpibot role yet",
        grantor=ctx.policy.grantor[0].upper() + ctx.policy.grantor[1:],
    )
    return Reply("Not allowed", text, kind="refusal", ephemeral=True)


def resolve_contract(
    request: Request, ctx: Context, action: str, args: list[str] | None = None
) -> tuple[Contract, list[str]] | Reply:
    """The contract named first in ``args`` (or bound to the channel) and the remaining args."""
    args = list(request.args if args is None else args)
    # A named contract is one read; the list of every contract is needed only when it is not.
    contract: Contract | None = ctx.services.contract(args[0]) if args else None
    if contract is not None:
        args = args[1:]
    else:
        ids = ctx.services.contract_ids()
        bound = channel_contract(ctx, request)
        if bound is not None and (not args or args[0] not in ids):
            looks_like_id = (
                bool(args)
                and "-" in args[0]
                and find_kpi(ctx.services.contract(bound), args[0]) is None  # type: ignore[arg-type]
            )
            if not looks_like_id:
                contract = ctx.services.contract(bound)
        if contract is None:
            if not args:
                return error(
                    "Name a contract, e.g. `status childrens-trust`. "
                    f"Yours: {', '.join(ctx.policy.visible(ctx.who, ids)) or 'none yet'}.",
                    "Which contract?",
                )
            visible = ctx.policy.visible(ctx.who, ids) or ids
            return error(
                texts.UNKNOWN_CONTRACT.format(
                    contract=args[0],
                    hint=suggest(args[0], visible)
                    or f" Contracts you can see: {', '.join(visible) or 'none'}.",
                ),
                "Unknown contract",
            )
    if contract is None:
        return error(
            texts.UNKNOWN_CONTRACT.format(contract=args[0] if args else "", hint=""),
            "Unknown contract",
        )
    if not ctx.policy.can(ctx.who, action, contract.id):  # type: ignore[arg-type]
        return refuse(request, ctx, action, contract.id)
    return contract, args


def resolve_kpi(contract: Contract, text: str) -> KPI | Reply:
    kpi = find_kpi(contract, text)
    if kpi is None:
        return error(unknown_kpi_message(contract, text), "Unknown KPI")
    return kpi


def take_period(
    contract: Contract, args: list[str], today: date
) -> tuple[Period | None, list[str], str | None]:
    """Read a period from the front of ``args`` ('2019/20 Q3' may arrive as one or two tokens)."""
    if not args:
        return None, args, None
    if len(args) >= 2:
        two = f"{args[0]} {args[1]}"
        p = check_period(contract, two, today)
        if isinstance(p, Period):
            return p, args[2:], None
        if "not ended" in p or "outside" in p:
            return None, args, p
    p = check_period(contract, args[0], today)
    if isinstance(p, Period):
        return p, args[1:], None
    return None, args, p


def channel_contract(ctx: Context, request: Request) -> str | None:
    """The contract the request's channel is bound to: the access file first, then ``kpi bind``."""
    return ctx.policy.bound_contract(request.channel) or bound_contract(
        ctx.services, request.platform, request.channel
    )
