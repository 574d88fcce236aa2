"""``submit <contract> <kpi> <period> <numerator>/<denominator> | <value> [note] [reason: …]``.

Two steps: a preview that evaluates the figure ("86% against a 90% target: amber"), then a confirm
carrying a signed token of exactly what was previewed. An amendment needs a reason; a late
submission is recorded as late. Confirming twice (a double click, a Slack retry) stores it once.

>>> # preview = dispatch(Request.from_text("submit childrens-trust C1 2019/20 Q4 86/100", ...), ctx)
>>> # done = dispatch(replace(request, confirm_token=preview.actions[0].token), ctx)
"""

from __future__ import annotations

import math
import time

import pandas as pd

from kpibot.commands.base import CommandHandler, Context
from kpibot.commands.resolve import refuse, resolve_contract, resolve_kpi, take_period
from kpibot.commands.tokens import TokenInvalid, digest, sign, verify
from kpibot.core.protocol import Action, Form, FormField, Reply, Request, error
from kpibot.engine import freetext
from kpibot.engine.describe import POSITION_WORDS, RAG_DOT, format_value
from kpibot.engine.model import Contract
from kpibot.engine.periods import Period
from kpibot.engine.scorecard import Scorecard, compiled
from kpibot.features.alerts import figures_stored
from kpibot.features.returns import figures_arrived
from kpibot.files.figures import check_period, parse_value
from kpibot.store.errors import StoreError
from kpibot.store.rows import NewFigure

TOKEN_TTL_S = 24 * 3600


def submit_form(ctx: Context, contract_id: str = "", kpi: str = "", period: str = "") -> Form:
    ids = [c for c in ctx.services.contract_ids() if ctx.policy.can(ctx.who, "submit", c)]
    return Form(
        "Submit a figure",
        "submit",
        (
            FormField("contract", "Contract", "childrens-trust", contract_id, tuple(ids)),
            FormField("kpi", "KPI", "e.g. C1", kpi),
            FormField("period", "Period", "e.g. 2019/20 Q3", period),
            FormField("value", "Figure", "86/100 or 86%"),
            FormField("note", "Note", "optional", optional=True),
            FormField(
                "reason", "Reason (amendments only)", "why the figure changed", optional=True
            ),
        ),
    )


def _split_note(words: list[str]) -> tuple[str | None, str | None]:
    """Trailing words: 'reason: …' marks the amendment reason, the rest is a note."""
    text = " ".join(words).strip()
    if not text:
        return None, None
    low = text.lower()
    idx = low.find("reason:")
    if idx < 0:
        return text.removeprefix("note:").strip() or None, None
    note = text[:idx].strip().removeprefix("note:").strip() or None
    return note, text[idx + len("reason:") :].strip() or None


class SubmitHandler(CommandHandler):
    verb = "submit"
    summary = "submit a figure: preview its RAG, then confirm"
    usage = (
        "submit <contract> <kpi> <period> <numerator>/<denominator> | <value> [note] [reason: …]"
    )
    examples = (
        "submit childrens-trust C1 2019/20 Q4 86/100",
        "submit childrens-trust C7 2019/20 Q3 45% reason: two adoptions recoded after audit",
    )

    def handle(self, request: Request, ctx: Context) -> Reply:
        if request.confirm_token:
            return self.confirm(request, ctx)
        resolved = resolve_contract(request, ctx, "submit")
        if isinstance(resolved, Reply):
            if not request.args:
                return Reply(
                    "Submit a figure", "Fill in the figure to preview it.", form=submit_form(ctx)
                )
            return resolved
        contract, rest = resolved
        if len(rest) < 3:
            reply = Reply(
                "Submit a figure",
                f"I need the KPI, the period and the figure. Usage: `{self.usage}`",
                kind="info",
                ephemeral=True,
            )
            reply.form = submit_form(ctx, contract.id, rest[0] if rest else "")
            return reply
        kpi = resolve_kpi(contract, rest[0])
        if isinstance(kpi, Reply):
            return kpi
        period, after, why = take_period(contract, rest[1:], ctx.services.now().date())
        if period is None:
            return error(why or f"I could not read '{rest[1]}' as a period.", "Which period?")
        if not after:
            return error(
                f"What is the figure for {kpi.code} in {period.label}? e.g. `86/100` or `86%`.",
                "Which figure?",
            )
        raw, words = after[0], after[1:]
        unit = compiled(contract)[kpi.code].unit
        problems: list[str] = []
        num = den = ""
        value_text = raw
        if "/" in raw:
            num, den = raw.split("/", 1)
            value_text = ""
        if unit == "milestone" and raw.lower() == "not" and words:
            value_text, words = f"not {words[0]}", words[1:]
        parsed = parse_value(
            unit,
            value_text,
            num,
            den,
            lambda _c, why_: problems.append(why_),
            contract.numbers,
            signed=bool(kpi.signed),
        )
        if parsed is None or parsed.value is None:
            return error(
                (problems[0] if problems else f"'{raw}' is not a figure")
                + ". Write it as `86/100` or `86%`.",
                "That figure doesn't look right",
            )
        note, reason = _split_note(words)
        problem = freetext.first_problem((note, freetext.NOTE), (reason, freetext.REASON))
        if problem is not None:
            return error(problem, "Too long" if "limited to" in problem else "Not read")
        return self.preview(
            request,
            ctx,
            contract,
            kpi.code,
            period,
            parsed.value,
            parsed.numerator,
            parsed.denominator,
            note,
            reason,
        )

    def preview(
        self,
        request: Request,
        ctx: Context,
        contract: Contract,
        code: str,
        period: Period,
        value: float,
        num: float | None,
        den: float | None,
        note: str | None,
        reason: str | None,
    ) -> Reply:
        comp = compiled(contract)[code]
        figures = ctx.services.figures_frame([contract.id])
        existing = figures[(figures["kpi"] == code) & (figures["period"] == period.label)]
        figures = figures[~((figures["kpi"] == code) & (figures["period"] == period.label))]
        new_row = pd.DataFrame(
            [
                {
                    "contract": contract.id,
                    "kpi": code,
                    "period": period.label,
                    "value": value,
                    "benchmark": math.nan,
                }
            ]
        )
        card = Scorecard.build(contract, pd.concat([figures, new_row], ignore_index=True))
        row = card.frame[(card.frame["kpi"] == code) & (card.frame["period"] == period.label)].iloc[
            0
        ]
        shown = format_value(value, comp.unit)
        target_words = (
            f"a {format_value(row['threshold'], comp.unit)} target"
            if not math.isnan(row["threshold"]) and row["position"] != "no_target"
            else "no target"
        )
        lines = [
            f"{RAG_DOT[row['rag']]} *{shown}* against {target_words}: "
            f"*{row['rag'] if row['rag'] != 'grey' else 'not rated'}* ({POSITION_WORDS[row['position']]})"
        ]
        if num is not None:
            lines.append(f"{num:g} of {den:g}")
        if not math.isnan(row["ytd_value"]):
            lines.append(
                f"Year to date {format_value(row['ytd_value'], comp.unit)} against a profile of "
                f"{format_value(row['ytd_target'], comp.unit)}."
            )
        if row["critical"]:
            lines.append("⚠️ This breaches the *critical failure* threshold.")
        if row["exception_required"]:
            lines.append("An *exception report* is required for each case below target.")
        due = ctx.services.due_date(contract, period)
        late = due is not None and ctx.services.now().date() > due
        if late:
            lines.append(
                f"The return was due on {due:%-d %b %Y}, so this will be recorded as *late*."
            )
        amending = not existing.empty
        if amending:
            old = existing.iloc[0]
            lines.append(
                f"This *replaces* {format_value(old['value'], comp.unit)} already submitted."
            )
            if not reason:
                lines.append(
                    "An amendment needs a reason: add `reason: …` at the end and preview again."
                )
                return Reply(
                    f"Preview · {contract.id} {code} {period.label}",
                    "\n".join(lines),
                    kind="preview",
                    ephemeral=True,
                )
        payload = {
            "x": "submit",
            "c": contract.id,
            "k": code,
            "p": period.label,
            "v": value,
            "n": num,
            "d": den,
            "note": note,
            "reason": reason,
            "u": request.user,
            "t": int(time.time()),
        }
        token = sign(payload, ctx.secret)
        reply = Reply(
            f"Preview · {contract.id} {code} {period.label}",
            "\n".join(lines),
            kind="preview",
            ephemeral=True,
        )
        reply.actions = [
            Action("Confirm", f"confirm {digest(token)}", "primary", token=token),
            Action("Cancel", "cancel", "danger"),
        ]
        return reply

    def confirm(self, request: Request, ctx: Context) -> Reply:
        try:
            data = verify(request.confirm_token or "", ctx.secret)
        except TokenInvalid:
            ctx.services.audit.record(
                request.user,
                "refuse:submit",
                None,
                "tampered confirmation",
                "refused",
                {"platform": request.platform},
            )
            return Reply(
                "Not accepted",
                "That confirmation was altered or is not from kpibot, so nothing was "
                "stored. Preview the figure again.",
                kind="refusal",
                ephemeral=True,
            )
        if data.get("u") != request.user:
            return refuse(request, ctx, "submit", str(data.get("c")))
        if time.time() - float(data.get("t", 0)) > TOKEN_TTL_S:
            return error(
                "That preview is more than a day old; preview the figure again.", "Preview expired"
            )
        contract = ctx.services.contract(str(data["c"]))
        if contract is None or not ctx.policy.can(ctx.who, "submit", contract.id):
            return refuse(request, ctx, "submit", str(data.get("c")))
        period = check_period(contract, str(data["p"]), ctx.services.now().date())
        if isinstance(period, str):
            return error(period, "Which period?")
        late_fn = ctx.services.is_late(contract)
        fig = NewFigure(
            str(data["k"]),
            period,
            value=float(data["v"]),
            numerator=data.get("n"),
            denominator=data.get("d"),
            late=late_fn(period),
            note=data.get("note"),
            reason=data.get("reason"),
        )
        try:
            result = ctx.services.figures.submit(
                contract.id,
                [fig],
                actor=request.user,
                source="chat",
                idempotency_key=f"submit:{digest(request.confirm_token or '')}",
            )
        except StoreError as exc:
            ctx.services.audit.record(
                request.user,
                "submit",
                contract.id,
                f"{fig.kpi} {period.label}",
                "refused",
                {"error": str(exc)},
            )
            return error(str(exc), "Not stored")
        unit = compiled(contract)[fig.kpi].unit
        if result.duplicate:
            return Reply(
                "Already recorded",
                f"{fig.kpi} {period.label} = {format_value(fig.value, unit)} was already "
                "stored from this preview; nothing changed.",
                kind="done",
                ephemeral=True,
            )

        figures_arrived(ctx.services, contract, period, request.user)
        figures_stored(ctx.services, contract, result, ctx.policy)
        ctx.services.audit.record(
            request.user,
            "amend" if result.amendments else "submit",
            contract.id,
            f"{fig.kpi} {period.label}",
            "ok",
            {"submission": result.submission_id, "late": fig.late, "platform": request.platform},
        )
        words = "Amended" if result.amendments else "Recorded"
        late = " (late)" if fig.late else ""
        reply = Reply(
            f"{words} · {contract.id} {fig.kpi} {period.label}",
            f"{words} {format_value(fig.value, unit)} for {fig.kpi} {period.label}{late}.",
            kind="done",
        )
        reply.actions = [Action(f"Status {fig.kpi}", f"status {contract.id} {fig.kpi}")]
        return reply
