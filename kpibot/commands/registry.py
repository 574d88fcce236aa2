"""The verb registry: maps verbs to handlers and runs one command, never raising.

``Registry.dispatch`` resolves aliases, runs the handler's check and handle steps, turns unknown
verbs into help, and turns any unexpected failure into one polite sentence (details go to the
log). The registry is built (``default_registry``) and handed to whoever needs it — the bot, and
``help``, which lists it — so no verb module imports it back.

>>> registry = default_registry()
>>> registry.get("st").verb
'status'
>>> # reply = registry.dispatch(Request.from_text("status", user="U1", platform="console"), ctx)
"""

from __future__ import annotations

import base64
import difflib
import json
import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping

from kpibot.commands.actionplan import ActionPlanHandler
from kpibot.commands.base import Context, Handler
from kpibot.commands.bind import BindHandler
from kpibot.commands.chart import ChartHandler
from kpibot.commands.compliance import ComplianceHandler
from kpibot.commands.digest import DigestHandler
from kpibot.commands.due import DueHandler
from kpibot.commands.event import EventHandler
from kpibot.commands.expenditure import ExpenditureHandler
from kpibot.commands.help import HelpHandler
from kpibot.commands.imports import ImportHandler
from kpibot.commands.incidents import IncidentHandler, IncidentsHandler
from kpibot.commands.mute import MuteHandler
from kpibot.commands.payments import PaymentsHandler
from kpibot.commands.report import ReportHandler
from kpibot.commands.returns import HANDLERS as RETURN_HANDLERS
from kpibot.commands.status import StatusHandler
from kpibot.commands.submit import SubmitHandler
from kpibot.commands.waive import WaiveHandler
from kpibot.commands.watch import HANDLERS as WATCH_HANDLERS
from kpibot.commands.whoami import WhoamiHandler
from kpibot.core import texts
from kpibot.core.protocol import Reply, Request
from kpibot.core.protocol import error as refusal
from kpibot.store.database import unavailable

log = logging.getLogger("kpibot.commands")

ALIASES = {
    "st": "status",
    "s": "status",
    "?": "help",
    "me": "whoami",
    "upload": "import",
    "graph": "chart",
}


class Registry:
    """Verbs and their handlers, in the order ``help`` lists them."""

    def __init__(
        self, handlers: Iterable[Handler] = (), aliases: Mapping[str, str] = ALIASES
    ) -> None:
        self._handlers: dict[str, Handler] = {}
        self.aliases = dict(aliases)
        for handler in handlers:
            self.register(handler)

    def register(self, handler: Handler) -> None:
        """Add a verb, or replace the handler of one already registered."""
        self._handlers[handler.verb] = handler

    def get(self, verb: str) -> Handler | None:
        return self._handlers.get(self.aliases.get(verb, verb))

    def __contains__(self, verb: object) -> bool:
        return verb in self._handlers

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def handlers(self) -> list[Handler]:
        return list(self._handlers.values())

    def closest(self, word: str) -> str:
        """' Did you mean `status`?' for a near miss, else ''."""
        close = difflib.get_close_matches(word, list(self._handlers), n=1, cutoff=0.5)
        return f" Did you mean `{close[0]}`?" if close else ""

    def _verb_of_token(self, token: str) -> str:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.rsplit(".", 1)[0].encode()))
        except (ValueError, json.JSONDecodeError):
            return "submit"
        verb = data.get("x", "submit") if isinstance(data, dict) else "submit"
        return verb if verb in self._handlers else "submit"

    def dispatch(self, request: Request, ctx: Context) -> Reply:
        """Run one command; never raises."""
        return self.run(request, ctx)[0]

    def verb_of(self, request: Request) -> str:
        """The registered verb ``request`` runs, or ``unknown`` (a bounded metric label)."""
        verb = self.aliases.get(request.verb, request.verb)
        if request.confirm_token:
            # The handler verifies the token's signature; here we only route by the verb it names.
            verb = self._verb_of_token(request.confirm_token)
        return verb if verb in self._handlers else "unknown"

    def run(self, request: Request, ctx: Context) -> tuple[Reply, str]:
        """Run one command, never raising; the reply and its outcome (see ``metrics.OUTCOMES``)."""
        if request.problem is not None:
            # Text that cannot be a command (too long, control characters) is answered without
            # running anything; the text itself is neither stored nor logged.
            return refusal(request.problem, "Not read"), "error"
        verb = self.verb_of(request)
        handler = self._handlers.get(verb)
        try:
            if handler is None:
                help_reply = self._handlers["help"].handle(request.with_args([]), ctx)
                help_reply.title = f"I don't know `{request.verb}`.{self.closest(request.verb)}"
                help_reply.kind = "error"
                return help_reply, "error"
            early = handler.check(request, ctx)
            reply = early if early is not None else handler.handle(request, ctx)
            return reply, outcome_of(reply)
        except Exception as error:
            if unavailable(error):
                log.warning(
                    "command %s: the database is unavailable (%s)", verb, type(error).__name__
                )
                return database_unavailable(), "unavailable"
            ref = uuid.uuid4().hex[:8]
            log.exception("command %s failed (ref %s)", verb, ref)
            return Reply(
                "Sorry",
                texts.INTERNAL_ERROR.format(error=f"ref {ref}"),
                kind="error",
                ephemeral=True,
            ), "failed"


def outcome_of(reply: Reply) -> str:
    """A reply's outcome for metrics and logs: ok, refused (not allowed) or error (bad input)."""
    if reply.kind == "refusal":
        return "refused"
    return "error" if reply.kind == "error" else "ok"


def database_unavailable() -> Reply:
    """What a user is told when the database cannot be reached: nothing changed, try later."""
    return Reply("Sorry", texts.DATABASE_UNAVAILABLE, kind="error", ephemeral=True)


def default_registry() -> Registry:
    """Every verb kpibot ships, with ``help`` handed the registry it lists."""
    registry = Registry(
        (
            StatusHandler(),
            SubmitHandler(),
            ChartHandler(),
            ImportHandler(),
            DueHandler(),
            IncidentHandler(),
            IncidentsHandler(),
            PaymentsHandler(),
            EventHandler(),
            WaiveHandler(),
            ComplianceHandler(),
            ActionPlanHandler(),
            ExpenditureHandler(),
            *RETURN_HANDLERS,
            BindHandler(),
            *WATCH_HANDLERS,
            DigestHandler(),
            MuteHandler(),
            WhoamiHandler(),
            ReportHandler(),
        )
    )
    registry.register(HelpHandler(registry))
    return registry
