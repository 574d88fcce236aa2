"""The console adapter: the same ``/kpi …`` commands as Slack, in a terminal, rendered with rich.

It is a first-class platform (opsdroid's shell connector is the model): ``make demo`` runs it, and
it is the easiest end-to-end test. Console-only extras: ``as <user>`` switches the acting user, and
``@path`` arguments attach files (``/kpi import childrens-trust @q3.csv``). Charts and files a
reply carries (a report) are saved in the chart folder, and their paths printed.

>>> # ConsoleAdapter(bot, user="U-TRUST").run_line("/kpi status childrens-trust")
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kpibot.commands.bot import Bot
from kpibot.core.protocol import Attachment, Reply, Request, tokenise
from kpibot.engine.calendar import LONDON
from kpibot.store.outbox import OutboxMessage

RAG_STYLE = {"green": "bold green", "amber": "bold yellow", "red": "bold red", "grey": "dim"}
KIND_STYLE = {
    "error": "bold red",
    "refusal": "bold magenta",
    "done": "bold green",
    "preview": "bold cyan",
    "soon": "bold blue",
    "info": "bold",
}


def _markup(text: str) -> str:
    """Slack-style *bold* and `code` to rich markup, escaping everything else."""
    out = escape(text)
    out = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"[bold]\1[/bold]", out)
    return re.sub(r"`([^`\n]+)`", r"[cyan]\1[/cyan]", out)


class ConsoleAdapter:
    """Reads command lines, runs them through the bot as ``user``, prints the replies."""

    def __init__(
        self,
        bot: Bot,
        user: str = "U-COMMISSIONER",
        console: Console | None = None,
        chart_dir: Path = Path("charts"),
        channel: str | None = None,
        auto_confirm: bool = False,
        interactive: bool = False,
    ) -> None:
        self.bot = bot
        self.user = user
        self.console = console or Console()
        self.chart_dir = chart_dir
        self.channel = channel
        self.auto_confirm = auto_confirm
        self.interactive = interactive

    def request(self, line: str) -> Request:
        words = tokenise(line)
        files = tuple(self._attach(w[1:]) for w in words if w.startswith("@") and len(w) > 1)
        kept = " ".join(
            f'"{w}"' if " " in w else w for w in words if not (w.startswith("@") and len(w) > 1)
        )
        return Request.from_text(
            kept, user=self.user, platform="console", channel=self.channel, files=files
        )

    def _attach(self, path: str) -> Attachment:
        p = Path(path)
        return Attachment(p.name, p.read_bytes() if p.is_file() else b"")

    def run_line(self, line: str) -> Reply | None:
        """Run one line; returns the final reply (after any confirmation)."""
        line = line.strip()
        if not line or line.startswith("#"):
            return None
        if line.lower().startswith("as "):
            self.user = line[3:].strip()
            who = self.bot.policy.identify(self.user)
            self.console.print(f"[dim]Now acting as {escape(who.name)} ({who.role}).[/dim]")
            return None
        if line.lower().startswith("in "):
            self.channel = line[3:].strip() or None
            self.console.print(f"[dim]Now in channel {escape(self.channel or 'DM')}.[/dim]")
            return None
        try:
            request = self.request(line)
        except OSError as exc:
            self.console.print(f"[bold red]Cannot read that file: {escape(str(exc))}[/bold red]")
            return None
        reply = self.bot.handle(request)
        if reply.form is not None and self.interactive:
            reply = self._fill_form(request, reply)
        self.render(reply)
        confirm = next((a for a in reply.actions if a.token), None)
        if confirm is not None and self._confirmed():
            reply = self.bot.handle(replace(request, confirm_token=confirm.token))
            self.render(reply)
        return reply

    def _confirmed(self) -> bool:
        if self.auto_confirm:
            self.console.print("[dim]> Confirm[/dim]")
            return True
        if not self.interactive:
            return False
        answer = self.console.input("[bold cyan]Confirm? [y/N] [/bold cyan]")
        return answer.strip().lower() in ("y", "yes")

    def _fill_form(self, request: Request, reply: Reply) -> Reply:
        form = reply.form
        assert form is not None
        self.console.print(f"[bold]{escape(form.title)}[/bold]")
        values = []
        for f in form.fields:
            hint = (
                f" ({', '.join(f.options)})"
                if f.options
                else f" [{f.placeholder}]"
                if f.placeholder
                else ""
            )
            answer = self.console.input(f"{escape(f.label)}{escape(hint)}: ") or f.value
            if f.name == "reason" and answer:
                answer = "reason: " + answer
            values.append(answer)
        line = (
            form.verb
            + " "
            + " ".join(
                f'"{v}"' if " " in v and not v.startswith("reason:") else v for v in values if v
            )
        )
        return self.bot.handle(
            Request.from_text(line, user=self.user, platform="console", channel=self.channel)
        )

    def render(self, reply: Reply) -> None:
        c = self.console
        c.print(f"[{KIND_STYLE.get(reply.kind, 'bold')}]{escape(reply.title)}[/]")
        if reply.text:
            c.print(_markup(reply.text))
        if reply.columns:
            table = Table(show_header=True, header_style="bold", show_lines=False)
            for col in reply.columns:
                table.add_column(col, overflow="fold", max_width=48)
            for row in reply.rows:
                cells = []
                for i, cell in enumerate(row):
                    text = escape(cell.text)
                    if cell.rag and i == 0:
                        text = f"[{RAG_STYLE[cell.rag]}]●[/] {text}"
                    elif cell.rag:
                        text = f"[{RAG_STYLE[cell.rag]}]{text}[/]"
                    cells.append(text)
                table.add_row(*cells)
            c.print(table)
        if reply.form is not None and not self.interactive:
            c.print("Form fields: " + ", ".join(f.label for f in reply.form.fields))
        if reply.chart:
            self.chart_dir.mkdir(parents=True, exist_ok=True)
            path = self.chart_dir / (reply.chart_name or "chart.png")
            path.write_bytes(reply.chart)
            c.print(f"[green]Chart saved to {escape(str(path))}[/green]")
        if reply.attachment is not None:
            path = save_file(self.chart_dir, reply.attachment)
            c.print(f"[green]{escape(reply.attachment.name)} saved to {escape(str(path))}[/green]")
        if reply.footer:
            c.print(f"[dim]{_markup(reply.footer)}[/dim]")
        suggestions = [a for a in reply.actions if not a.token and a.command != "cancel"]
        if suggestions:
            c.print(
                "[dim]Next: "
                + " · ".join(f"/kpi {escape(a.command)}" for a in suggestions)
                + "[/dim]"
            )
        c.print()


def save_file(folder: Path, file: Attachment) -> Path:
    """Write an attached file into ``folder`` under its own name (never a path); return where."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / Path(file.name).name
    path.write_bytes(file.content)
    return path


class ConsoleDeliverer:
    """Prints each message, ``[when] kind → audience: text``; the embedded default platform.

    An attached file (the quarterly summary's report) is saved in ``file_dir`` when one is given.

    >>> ConsoleDeliverer(Console(width=200)).deliver(message, Reply("Return due", "…"))
    ... # doctest: +SKIP
    """

    def __init__(self, console: Console | None = None, file_dir: Path | None = None) -> None:
        self.console = console or Console()
        self.file_dir = file_dir

    def deliver(self, message: OutboxMessage, reply: Reply) -> str | None:
        when = message.due_at.astimezone(LONDON).strftime("%Y-%m-%d %H:%M")
        text = reply.text if reply.text == message.text and not reply.rows else reply.plain()
        chart = f" [dim](chart {reply.chart_name or 'attached'})[/]" if reply.chart else ""
        if reply.attachment is not None:
            file = reply.attachment
            where = file.name if self.file_dir is None else save_file(self.file_dir, file)
            chart += f" [dim](file {escape(str(where))})[/]"
        self.console.print(
            f"[dim]\\[{when}][/] [bold]{message.kind}[/] → {message.audience}"
            f" [dim]({message.contract_id or message.channel})[/]: {escape(text)}{chart}",
            soft_wrap=True,
        )
        return None

    def find_delivered(self, message: OutboxMessage) -> str | None:
        return None
