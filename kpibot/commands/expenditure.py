"""``expenditure``: quarterly statements of actual and projected spend, and variance exception
reports (seed 003, 5d).

Syntax (the contract may be left out in a channel bound to one)::

    expenditure <contract>                                   statements, variances, reports owed
    expenditure <contract> <quarter> actual:£… projected:£… [correction:"why"] [reasons…]
    expenditure <contract> <quarter> reasons:"…" measures:"…" budget:£…

``projected`` is the projection for the *following* quarter. The actual is compared with the
projection the previous quarter's statement made; more than 15% either way needs an exception
report: the reasons, the corrective measures taken and the re-profiled annual budget. They can come
with the statement or later; until they do, the provider is reminded. Untagged words after the
amounts are read as the reasons.

>>> # dispatch(Request.from_text("expenditure childrens-trust 2019/20 Q3 actual:£115,010 "
>>> #                            "projected:£100,000", ...), ctx)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from kpibot.commands.actionplan import split_tags
from kpibot.commands.base import CommandHandler, Context
from kpibot.commands.resolve import refuse, resolve_contract
from kpibot.core.protocol import Action, Cell, Form, FormField, Reply, Request, error
from kpibot.engine.calendar import LONDON
from kpibot.engine.model import Contract
from kpibot.engine.numbers import UK, NumberError, NumberStyle
from kpibot.engine.periods import Period
from kpibot.features.expenditure import (
    BadPeriod,
    ExpenditureLedger,
    FinanceError,
    Variance,
    check_quarter,
    money,
    pct_text,
    read_money,
)

TAGS = {
    "actual": "actual",
    "projected": "projected",
    "projection": "projected",
    "correction": "correction",
    "reasons": "reasons",
    "reason": "reasons",
    "measures": "measures",
    "measure": "measures",
    "budget": "budget",
}
MAX_ROWS = 12
_QUARTER_WORD = re.compile(r"q\d+", re.IGNORECASE)
UNREADABLE = "is not a period I can read"

# User-facing wording for this verb, kept together.
USAGE = (
    'expenditure <contract> <quarter> actual:£… projected:£… | reasons:"…" measures:"…" budget:£…'
)
NO_QUARTER = "Name the quarter first, e.g. `expenditure {contract} 2019/20 Q3 actual:£120,000 projected:£125,000`."
BOTH_AMOUNTS = (
    "Give both actual:£… (this quarter's spend) and projected:£… (the following quarter's), "
    "e.g. `expenditure {contract} {label} actual:£120,000 projected:£125,000`."
)
NOTHING_GIVEN = (
    "Give the statement (actual:£… projected:£…) or the exception report "
    '(reasons:"…" measures:"…" budget:£…) for {label}.'
)
NO_STATEMENTS = "No expenditure statements for {contract} yet. Usage: `{usage}`."


@dataclass(frozen=True)
class ExpenditureArgs:
    """What a line gave after the quarter: amounts, a correction reason and report parts."""

    actual: Decimal | None
    projected: Decimal | None
    correction: str | None
    reasons: str
    measures: str
    budget: Decimal | None

    @property
    def has_statement(self) -> bool:
        return self.actual is not None or self.projected is not None

    @property
    def has_report(self) -> bool:
        return bool(self.reasons or self.measures or self.budget is not None)


def parse_args(words: list[str], style: NumberStyle = UK) -> ExpenditureArgs | str:
    """Read the tagged words after the quarter; a string says which amount is unreadable.

    Amounts are read by ``style``, the contract's number style.

    >>> parse_args(["actual:£115,010", "projected:£100k", "Agency", "staff"]).reasons
    'Agency staff'
    """
    free, tags = split_tags(words, TAGS)
    amounts: dict[str, Decimal | None] = {}
    for name in ("actual", "projected", "budget"):
        # An amount is one word; words after it are untagged text (the reasons).
        text, _, after = tags.get(name, "").partition(" ")
        if text.lower() in ("£", "gbp"):
            more, _, after = after.strip().partition(" ")
            text += more
        free = " ".join(x for x in (free, after.strip()) if x)
        if not text:
            amounts[name] = None
            continue
        try:
            amounts[name] = read_money(text, style)
        except NumberError as exc:
            return str(exc)
    reasons = " ".join(x for x in (tags.get("reasons", ""), free) if x).strip()
    return ExpenditureArgs(
        amounts["actual"],
        amounts["projected"],
        tags.get("correction") or None,
        reasons,
        tags.get("measures", ""),
        amounts["budget"],
    )


def take_quarter(
    contract: Contract, args: list[str], today: date
) -> tuple[Period, list[str]] | str:
    """The quarter at the front of ``args`` ('2019/20 Q3' may be one or two words)."""
    if not args:
        return NO_QUARTER.format(contract=contract.id)
    errors: dict[int, str] = {}
    for n in (2, 1):
        if len(args) < n or any(":" in a for a in args[:n]):
            continue
        try:
            return check_quarter(contract, " ".join(args[:n]), today), args[n:]
        except BadPeriod as exc:
            errors[n] = str(exc)
    two, one = errors.get(2), errors.get(1)
    # '2019/20 Q5' is one unreadable quarter, not the year 2019/20 followed by a word.
    if two is not None and (
        one is None or _QUARTER_WORD.fullmatch(args[1]) or UNREADABLE not in two
    ):
        return two
    return one or NO_QUARTER.format(contract=contract.id)


def _status(v: Variance) -> tuple[str, str]:
    if v.expected is None:
        return "no comparison yet", "grey"
    if not v.required:
        return f"within {pct_text(v.threshold)}%", "green"
    if v.report is None:
        return "owed", "red"
    return f"filed {v.report.filed_at.astimezone(LONDON):%-d %b %Y}", "amber"


class ExpenditureHandler(CommandHandler):
    verb = "expenditure"
    summary = "quarterly expenditure statements and variance exception reports"
    usage = USAGE
    examples = (
        "expenditure childrens-trust",
        "expenditure childrens-trust 2019/20 Q3 actual:£115,010 projected:£100,000",
        'expenditure childrens-trust 2019/20 Q3 reasons:"Agency cover for 4 vacancies" '
        'measures:"Two posts recruited" budget:£460,000',
    )

    def handle(self, request: Request, ctx: Context) -> Reply:
        resolved = resolve_contract(request, ctx, "view")
        if isinstance(resolved, Reply):
            return resolved
        contract, rest = resolved
        ledger = ExpenditureLedger(ctx.services)
        if not rest:
            return self.listing(ctx, contract, ledger)
        if not ctx.policy.can(ctx.who, "submit", contract.id):
            return refuse(request, ctx, "submit", contract.id)
        now = ctx.services.now()
        quarter = take_quarter(contract, rest, now.astimezone(LONDON).date())
        if isinstance(quarter, str):
            return error(quarter, "Which quarter?")
        period, words = quarter
        parsed = parse_args(words, contract.numbers)
        if isinstance(parsed, str):
            return error(parsed, "That amount doesn't look right")
        if not parsed.has_statement and not parsed.has_report:
            return error(NOTHING_GIVEN.format(label=period.label), "Expenditure")
        try:
            if parsed.has_statement:
                return self.record(request, ctx, contract, ledger, period, parsed)
            found = ledger.file_exception(
                contract, period, parsed.reasons, parsed.measures, parsed.budget, request.user, now
            )
        except FinanceError as exc:
            return error(str(exc), "Not recorded")
        return self.filed(contract, found)

    def record(
        self,
        request: Request,
        ctx: Context,
        contract: Contract,
        ledger: ExpenditureLedger,
        period: Period,
        parsed: ExpenditureArgs,
    ) -> Reply:
        if parsed.actual is None or parsed.projected is None:
            return error(
                BOTH_AMOUNTS.format(contract=contract.id, label=period.label), "Both amounts"
            )
        now = ctx.services.now()
        v = ledger.record(
            contract,
            period,
            parsed.actual,
            parsed.projected,
            request.user,
            now,
            correction=parsed.correction,
        )
        if v.required and parsed.has_report:
            try:
                return self.filed(
                    contract,
                    ledger.file_exception(
                        contract,
                        period,
                        parsed.reasons,
                        parsed.measures,
                        parsed.budget,
                        request.user,
                        now,
                    ),
                )
            except FinanceError as exc:
                return self.owed(
                    contract, v, f"The statement is recorded, but not the report: {exc}"
                )
        if v.required:
            return self.owed(contract, v, "")
        words = "Corrected" if v.statement.supersedes_id else "Recorded"
        text = (
            f"{words} {period.label}: {v.describe()}; projected {money(v.statement.projected)} "
            "for the following quarter."
        )
        if v.expected is not None:
            text += f" Within {pct_text(v.threshold)}%, so no exception report is needed."
        reply = Reply(f"{words} · {contract.id} expenditure {period.label}", text, kind="done")
        reply.actions = [Action("Expenditure", f"expenditure {contract.id}")]
        return reply

    def owed(self, contract: Contract, v: Variance, prefix: str) -> Reply:
        label = v.statement.period
        text = (
            f"Recorded {label}: {v.describe()}. That is more than {pct_text(v.threshold)}%, so an exception "
            "report is needed: the reasons, the corrective measures taken and the re-profiled "
            "annual budget."
        )
        reply = Reply(
            f"Exception report needed · {contract.id} {label}",
            (prefix + "\n" if prefix else "") + text,
            kind="done",
        )
        reply.form = Form(
            f"Exception report {label}",
            f"expenditure {contract.id} {label}",
            (
                FormField(
                    "reasons", "Reasons for the variance", "reasons: …", "reasons: ", multiline=True
                ),
                FormField(
                    "measures",
                    "Corrective measures taken",
                    "measures: …",
                    "measures: ",
                    multiline=True,
                ),
                FormField("budget", "Re-profiled annual budget", "budget: £480,000", "budget: "),
            ),
            submit_label="File report",
        )
        reply.actions = [Action("Expenditure", f"expenditure {contract.id}")]
        return reply

    def filed(self, contract: Contract, v: Variance) -> Reply:
        report = v.report
        assert report is not None
        text = (
            f"Filed the exception report for {v.statement.period} ({v.describe()}): reasons "
            f"“{report.reasons}”; measures “{report.measures}”; re-profiled annual budget "
            f"{money(report.budget)}."
        )
        reply = Reply(
            f"Exception report filed · {contract.id} {v.statement.period}", text, kind="done"
        )
        reply.actions = [Action("Expenditure", f"expenditure {contract.id}")]
        return reply

    def listing(self, ctx: Context, contract: Contract, ledger: ExpenditureLedger) -> Reply:
        variances = ledger.variances(contract)
        if not variances:
            return Reply(
                f"Expenditure · {contract.id}",
                NO_STATEMENTS.format(contract=contract.id, usage=USAGE),
            )
        owed = [v for v in variances if v.outstanding]
        text = (
            f"{len(owed)} exception report{'s' if len(owed) != 1 else ''} owed."
            if owed
            else "No exception report owed."
        )
        reply = Reply(
            f"Expenditure · {contract.id}",
            text,
            columns=["Quarter", "Actual", "Projected next", "Variance", "Exception report"],
        )
        for v in variances[-MAX_ROWS:]:
            words, rag = _status(v)
            pct = v.pct
            shown = "—" if v.expected is None else "∞" if pct is None else f"{pct:+.2f}%"
            reply.rows.append(
                [
                    Cell(v.statement.period, rag),
                    Cell(money(v.statement.actual)),
                    Cell(money(v.statement.projected)),
                    Cell(shown),
                    Cell(words),
                ]
            )
        reply.footer = (
            f"More than {pct_text(ledger.threshold_for(contract))}% between a quarter's actual spend and the "
            "projection made for it needs an exception report."
        )
        return reply
