"""The neutral chat protocol: the request and reply every platform is translated to and from.

Adapters (Slack, Teams, console) build a ``Request`` from a platform event, hand it to the bot and
render the ``Reply``. Commands, the scheduler and the chat adapters all speak it; none of them sees
another's platform objects.

>>> req = Request.from_text("status childrens-trust", user="U1", platform="console")
>>> req.verb, req.args
('status', ['childrens-trust'])
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from typing import Literal

from kpibot.core import texts
from kpibot.engine.freetext import COMMAND, control_character

Platform = Literal["slack", "teams", "console", "cli"]
ReplyKind = Literal["info", "preview", "done", "error", "refusal", "soon"]


@dataclass(frozen=True)
class Attachment:
    """A file sent with a message: a monitoring return coming in, a report going out.

    ``media_type`` says what the bytes are ("application/pdf"). ``command`` is the command that
    makes the same file again (``report childrens-trust 2019/20 Q3 xlsx``): Teams lets a bot send
    a file only after the user accepts it, and the file is made afresh, as that user, when they do.
    """

    name: str
    content: bytes
    media_type: str = "application/octet-stream"
    command: str | None = None


@dataclass(frozen=True)
class Request:
    """A command as the user gave it, with who, where and on which platform."""

    verb: str
    args: list[str]
    user: str
    platform: Platform
    channel: str | None = None
    text: str = ""
    user_name: str | None = None
    email: str | None = None
    files: tuple[Attachment, ...] = ()
    idempotency_key: str | None = None
    confirm_token: str | None = None
    #: Set when the text cannot be a command at all (too long, control characters): the one
    #: sentence the bot answers with, instead of running anything.
    problem: str | None = None

    @classmethod
    def from_text(
        cls, text: str, *, user: str, platform: Platform, channel: str | None = None, **kw: object
    ) -> Request:
        """Parse '/kpi status childrens-trust' (leading '/kpi' or 'kpi' optional).

        Text over the command limit, or with a control character in it, is not split into words
        at all (splitting a megabyte of text takes seconds): the request carries ``problem``.

        >>> Request.from_text("x" * 5000, user="U1", platform="console").problem[:40]
        'That command is 5,000 characters long; k'
        """
        problem = None
        if len(text) > COMMAND.limit:
            problem = texts.COMMAND_TOO_LONG.format(length=len(text), limit=COMMAND.limit)
        elif (code := control_character(text)) is not None:
            problem = texts.COMMAND_CONTROL.format(code=code)
        if problem is not None:
            return cls("", [], user, platform, channel, "", problem=problem, **kw)  # type: ignore[arg-type]
        body = text.strip()
        for prefix in ("/kpi", "kpi"):
            if body.lower().startswith(prefix + " ") or body.lower() == prefix:
                body = body[len(prefix) :].strip()
                break
        args = tokenise(body)
        verb = args[0].lower() if args else "help"
        rest = body[len(args[0]) :].strip() if args else ""
        return cls(verb, args[1:], user, platform, channel, rest, **kw)  # type: ignore[arg-type]

    def with_args(self, args: list[str]) -> Request:
        return replace(self, args=args)


def tokenise(text: str) -> list[str]:
    """Split like a shell, keeping quoted phrases; tolerate unbalanced or curly quotes."""
    cleaned = text.replace("“", '"').replace("”", '"').replace("‘", "'").replace("’", "'")
    try:
        return shlex.split(cleaned)
    except ValueError:
        return cleaned.replace('"', " ").split()


@dataclass(frozen=True)
class Cell:
    text: str
    rag: str | None = None


@dataclass(frozen=True)
class Action:
    """A button: ``command`` is the text it runs, ``token`` a signed confirmation, if any."""

    label: str
    command: str
    style: Literal["primary", "danger", "default"] = "default"
    token: str | None = None


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    placeholder: str = ""
    value: str = ""
    options: tuple[str, ...] = ()
    multiline: bool = False
    optional: bool = False


@dataclass(frozen=True)
class Form:
    """A form to collect missing arguments (Slack modal, Teams card, console prompts)."""

    title: str
    verb: str
    fields: tuple[FormField, ...]
    submit_label: str = "Preview"


@dataclass
class Reply:
    """What a command answers, platform-neutral."""

    title: str
    text: str = ""
    kind: ReplyKind = "info"
    columns: list[str] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)
    chart: bytes | None = None
    chart_name: str | None = None
    actions: list[Action] = field(default_factory=list)
    form: Form | None = None
    footer: str | None = None
    ephemeral: bool = False
    attachment: Attachment | None = None

    @property
    def ok(self) -> bool:
        return self.kind not in ("error", "refusal")

    def plain(self) -> str:
        """The reply as plain text (console logs, tests, notifications)."""
        lines = [self.title]
        if self.text:
            lines.append(self.text)
        if self.columns:
            lines.append(" | ".join(self.columns))
        for row in self.rows:
            lines.append(" | ".join(c.text for c in row))
        if self.footer:
            lines.append(self.footer)
        for a in self.actions:
            lines.append(f"[{a.label}] {a.command}")
        if self.attachment is not None:
            lines.append(f"(attached: {self.attachment.name})")
        return "\n".join(lines)


def error(text: str, title: str = "That didn't work") -> Reply:
    return Reply(title, text, kind="error", ephemeral=True)
