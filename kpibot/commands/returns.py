"""The quarterly return workflow in chat: ``return``, ``narrative``, ``approve`` and ``query``.

One workflow, so its four verbs live together::

    return childrens-trust 2019/20 Q3                      state and what is missing
    return childrens-trust 2019/20 Q3 submit               submit it when complete
    return childrens-trust 2019/20 Q3 exception C5 "…"     file an exception report
    narrative one-psychology 2019/20 Q3 working: "…" challenges: "…" actions: "…"
    narrative one-psychology 2019/20 Q3                    (no text: a form)
    approve childrens-trust 2019/20 Q3                     commissioners
    query childrens-trust 2019/20 Q3 "C5 looks doubled"    commissioners; the provider is told

>>> # dispatch(Request.from_text("return childrens-trust 2019/20 Q3", ...), ctx).title
"""

from __future__ import annotations

import re
from collections.abc import Callable

from kpibot.commands.base import CommandHandler, Context
from kpibot.commands.resolve import resolve_contract, resolve_kpi, take_period
from kpibot.core.protocol import Action, Form, FormField, Reply, Request, error
from kpibot.engine.model import Contract
from kpibot.engine.periods import Period
from kpibot.engine.returns import SECTIONS, STATE_WORDS, Role, TransitionRefused
from kpibot.features import returns

_LABELS = re.compile(r"\b(working(?: well)?|challenges|actions)\s*:", re.IGNORECASE)
_SECTION_OF = {
    "working": "working",
    "working well": "working",
    "challenges": "challenges",
    "actions": "actions",
}


def _role(ctx: Context) -> Role:
    return "commissioner" if ctx.who.role == "commissioner" else "provider"


def _target(
    request: Request, ctx: Context, action: str, usage: str
) -> tuple[Contract, Period, list[str]] | Reply:
    resolved = resolve_contract(request, ctx, action)
    if isinstance(resolved, Reply):
        return resolved
    contract, rest = resolved
    if not rest:
        return error(f"Which period? Usage: `{usage}`.", "Which period?")
    period, after, why = take_period(contract, rest, ctx.services.now().date())
    if period is None:
        return error(why or f"I could not read '{rest[0]}' as a period.", "Which period?")
    return contract, period, after


def render(view: returns.ReturnView, note: str = "", kind: str = "info") -> Reply:
    """A return as a reply: state, progress line, narrative and exception reports."""
    lines = [f"This return is {STATE_WORDS[view.state]}."]
    if note:
        lines.insert(0, note)
    if view.state in ("draft", "queried"):
        lines.append(view.missing.summary(bool(view.figures_in)).capitalize() + ".")
        if not view.missing.empty:
            lines.append(f"Still needed: {view.missing.needed()}.")
    if view.state == "queried" and view.last_query:
        lines.append(f"Query: {view.last_query}")
    for s in SECTIONS:
        if view.narrative.get(s):
            lines.append(f"*{s.capitalize()}*: {view.narrative[s][:300]}")
    for kpi, text in view.exceptions.items():
        lines.append(f"*Exception {kpi}*: {text[:300]}")
    reply = Reply(
        f"Return · {view.contract_id} {view.period}",
        "\n".join(lines),
        kind="done" if kind == "done" else "info",
    )
    base = f"{view.contract_id} {view.period}"
    if view.state in ("draft", "queried") and view.missing.empty:
        reply.actions.append(Action("Submit return", f"return {base} submit", "primary"))
    if view.state == "submitted":
        reply.actions.append(Action("Approve", f"approve {base}", "primary"))
    return reply


def _run(fn: Callable[[], returns.ReturnView], note: str) -> Reply:
    try:
        view = fn()
    except TransitionRefused as refused:
        return Reply("Not done", refused.reason, kind="refusal", ephemeral=True)
    return render(view, note, "done")


class ReturnHandler(CommandHandler):
    verb = "return"
    summary = "a quarterly return: what is missing, submit it, file exception reports"
    usage = 'return <contract> <period> [submit | exception <kpi> "text"]'
    examples = (
        "return childrens-trust 2019/20 Q3",
        "return childrens-trust 2019/20 Q3 submit",
        'return healthy-child-0-19 2019/20 Q3 exception 3.4 "two families moved away"',
    )

    def handle(self, request: Request, ctx: Context) -> Reply:
        words = [a.lower() for a in request.args]
        action = "submit" if ("submit" in words or "exception" in words) else "view"
        found = _target(request, ctx, action, self.usage)
        if isinstance(found, Reply):
            return found
        contract, period, rest = found
        svc, who, role = ctx.services, request.user, _role(ctx)
        if not rest:
            return render(returns.load(svc, contract, period))
        if rest[0].lower() == "submit":
            return _run(
                lambda: returns.submit_return(svc, contract, period, who, role),
                "Submitted: the commissioner has been asked to approve it.",
            )
        if rest[0].lower() == "exception" and len(rest) >= 2:
            kpi = resolve_kpi(contract, rest[1])
            if isinstance(kpi, Reply):
                return kpi
            text = " ".join(rest[2:])
            return _run(
                lambda: returns.file_exception(svc, contract, period, kpi.code, text, who, role),
                f"Exception report for {kpi.code} filed.",
            )
        return error(
            f"I did not understand '{' '.join(rest)}'. Usage: `{self.usage}`.",
            "What should I do with the return?",
        )


def parse_sections(args: list[str]) -> dict[str, str]:
    """``working: "…" challenges: "…" actions: "…"`` (or three positional texts) → sections."""
    text = " ".join(args)
    marks = list(_LABELS.finditer(text))
    if marks:
        out: dict[str, str] = {}
        for i, m in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
            out[_SECTION_OF[m.group(1).lower()]] = text[m.end() : end].strip()
        return out
    return dict(zip(SECTIONS, args, strict=False))


def narrative_form(contract: Contract, period: Period, view: returns.ReturnView) -> Form:
    return Form(
        f"Narrative · {contract.id} {period.label}",
        "narrative",
        (
            FormField("contract", "Contract", contract.id, contract.id),
            FormField("period", "Period", period.label, period.label),
            FormField(
                "working",
                "What is working well",
                "",
                view.narrative.get("working", ""),
                multiline=True,
            ),
            FormField(
                "challenges",
                "Challenges and how they are being overcome",
                "",
                view.narrative.get("challenges", ""),
                multiline=True,
            ),
            FormField("actions", "Actions", "", view.narrative.get("actions", ""), multiline=True),
        ),
        submit_label="Save",
    )


class NarrativeHandler(CommandHandler):
    verb = "narrative"
    summary = "write a return's narrative: working well, challenges, actions"
    usage = 'narrative <contract> <period> working: "…" challenges: "…" actions: "…"'
    examples = (
        'narrative one-psychology 2019/20 Q3 working: "Referrals up" '
        'challenges: "Two vacancies" actions: "Recruiting"',
    )

    def handle(self, request: Request, ctx: Context) -> Reply:
        found = _target(request, ctx, "submit", self.usage)
        if isinstance(found, Reply):
            return found
        contract, period, rest = found
        svc = ctx.services
        if not rest:
            view = returns.load(svc, contract, period)
            reply = Reply(
                f"Narrative · {contract.id} {period.label}",
                "Fill in the narrative; each section may be up to "
                f"{returns.SECTION_LIMIT:,} characters.",
                ephemeral=True,
            )
            reply.form = narrative_form(contract, period, view)
            return reply
        sections = parse_sections(rest)
        return _run(
            lambda: returns.set_narrative(
                svc, contract, period, sections, request.user, _role(ctx)
            ),
            "Narrative saved.",
        )


class ApproveHandler(CommandHandler):
    verb = "approve"
    summary = "approve a submitted return (commissioners)"
    usage = "approve <contract> <period>"
    examples = ("approve childrens-trust 2019/20 Q3",)

    def handle(self, request: Request, ctx: Context) -> Reply:
        found = _target(request, ctx, "approve", self.usage)
        if isinstance(found, Reply):
            return found
        contract, period, _rest = found
        return _run(
            lambda: returns.approve(ctx.services, contract, period, request.user, _role(ctx)),
            "Approved: its figures now count.",
        )


class QueryHandler(CommandHandler):
    verb = "query"
    summary = "query a submitted return with a reason (commissioners); the provider is told"
    usage = 'query <contract> <period> "reason"'
    examples = ('query childrens-trust 2019/20 Q3 "C5 numerator looks doubled"',)

    def handle(self, request: Request, ctx: Context) -> Reply:
        found = _target(request, ctx, "approve", self.usage)
        if isinstance(found, Reply):
            return found
        contract, period, rest = found
        reason = " ".join(rest).strip()
        return _run(
            lambda: returns.query(ctx.services, contract, period, reason, request.user, _role(ctx)),
            "Queried: the provider has been told.",
        )


HANDLERS = (ReturnHandler(), NarrativeHandler(), ApproveHandler(), QueryHandler())
