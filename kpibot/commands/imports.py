"""``import [contract]`` with a CSV or XLSX monitoring return attached: all rows or none.

>>> # Request.from_text("import childrens-trust", ..., files=(Attachment("q3.csv", data),))
"""

from __future__ import annotations

from kpibot.commands.base import Context
from kpibot.commands.resolve import resolve_contract
from kpibot.commands.tokens import digest
from kpibot.core.protocol import Cell, Reply, Request, error
from kpibot.engine.numbers import NumberError, NumberStyle
from kpibot.features.figures import import_return
from kpibot.files.tables import TableError, read_table_bytes

MAX_ERRORS_SHOWN = 20
_STYLE_WORDS = ("number-style:", "--number-style=")


def take_number_style(words: list[str]) -> tuple[NumberStyle | None, list[str]]:
    """``number-style:european`` (or ``--number-style european``) among the words, and the rest.

    >>> style, rest = take_number_style(["--number-style", "european", "reason:", "recount"])
    >>> style.name, rest
    ('european', ['reason:', 'recount'])
    """
    rest: list[str] = []
    style: NumberStyle | None = None
    i = 0
    while i < len(words):
        word = words[i]
        low = word.lower()
        if low == "--number-style" and i + 1 < len(words):
            style, i = NumberStyle.named(words[i + 1]), i + 2
            continue
        prefix = next((p for p in _STYLE_WORDS if low.startswith(p)), None)
        if prefix is not None:
            style = NumberStyle.named(word[len(prefix) :])
        else:
            rest.append(word)
        i += 1
    return style, rest


class ImportHandler:
    verb = "import"
    summary = "import a CSV or XLSX monitoring return (attach the file); all rows or none"
    usage = (
        "import <contract> [number-style:european] [reason: …] (with the file attached, or drop "
        "the file in a contract channel)"
    )
    examples = (
        "import childrens-trust  (attach q3-return.csv)",
        "import childrens-trust number-style:european  (a file that writes 8,5 for 8.5)",
    )

    def check(self, request: Request, ctx: Context) -> Reply | None:
        if not request.files:
            return error(
                "Attach a CSV or XLSX file with columns kpi, period and value (or numerator and "
                "denominator), then send `import <contract>` with it.",
                "No file",
            )
        return None

    def handle(self, request: Request, ctx: Context) -> Reply:
        resolved = resolve_contract(request, ctx, "submit")
        if isinstance(resolved, Reply):
            return resolved
        contract, rest = resolved
        try:
            style, rest = take_number_style(rest)
        except NumberError as exc:
            return error(str(exc), "Which number style?")
        reason = " ".join(rest).removeprefix("reason:").strip() or None
        replies = []
        for f in request.files:
            try:
                table = read_table_bytes(f.content, f.name)
            except TableError as exc:
                replies.append(error(str(exc), f"{f.name} rejected"))
                continue
            # The same file read by another number style may give other figures: another key.
            read_as = f"{style.name}:" if style is not None else ""
            content_key = digest(read_as + f.name + ":" + f.content.hex())
            key = (
                f"{request.idempotency_key}:{content_key}"
                if request.idempotency_key
                else f"import:{contract.id}:{content_key}"
            )
            outcome = import_return(
                ctx.services,
                contract.id,
                table,
                actor=request.user,
                source="chat",
                reason=reason,
                idempotency_key=key,
                number_style=style,
            )
            if outcome.errors:
                total = len(outcome.errors) + outcome.more
                reply = Reply(
                    f"{f.name} rejected: nothing was stored",
                    f"{total:,} problem(s). Fix them and send the whole file again.",
                    kind="error",
                    columns=["Where", "Problem"],
                )
                for e in outcome.errors[:MAX_ERRORS_SHOWN]:
                    where = (
                        f"{'row' if table.line_word == 'row' else 'line'} {e.line}"
                        if e.line
                        else "file"
                    )
                    if e.column:
                        where += f", {e.column}"
                    reply.rows.append([Cell(where), Cell(e.reason)])
                if total > MAX_ERRORS_SHOWN:
                    reply.footer = f"…and {total - MAX_ERRORS_SHOWN:,} more"
                replies.append(reply)
            else:
                replies.append(Reply(f"{f.name} imported", outcome.summary, kind="done"))
        if len(replies) == 1:
            return replies[0]
        merged = Reply(
            "Imports",
            "\n".join(f"{r.title}: {r.text}" for r in replies),
            kind="done" if all(r.ok for r in replies) else "error",
        )
        return merged
