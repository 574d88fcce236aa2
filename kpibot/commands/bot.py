"""The bot: services, access policy, signing secret and verbs; adapters hand it requests.

``kpibot.app.wiring.build_bot`` makes the one a process uses; tests build their own.

>>> # bot = Bot(services, policy, secret); reply = bot.handle(Request.from_text("help", ...))
"""

from __future__ import annotations

import logging
import time

from kpibot.commands.base import Context
from kpibot.commands.registry import Registry, database_unavailable, default_registry
from kpibot.core import metrics
from kpibot.core.access import AccessPolicy
from kpibot.core.protocol import Reply, Request
from kpibot.core.services import Services
from kpibot.core.settings import Settings
from kpibot.store.database import unavailable
from kpibot.store.shared import secret as shared_secret

log = logging.getLogger("kpibot.commands")


class Bot:
    """One bot instance, shared by every adapter in the process."""

    def __init__(
        self,
        services: Services,
        policy: AccessPolicy,
        secret: bytes | None,
        registry: Registry | None = None,
    ) -> None:
        self.services = services
        self.policy = policy
        self._secret = secret
        self.registry = registry or default_registry()

    @property
    def secret(self) -> bytes:
        """The key that signs confirmations: ``KPIBOT_SECRET_KEY``, else the database's own.

        Without a configured key, one is generated once per database and kept there
        (``kpibot.store.shared.secret``), so every replica on it verifies what another signed.
        Read on first use, so building a bot never waits for the database.
        """
        if self._secret is None:
            self._secret = shared_secret(self.services.db)
        return self._secret

    @staticmethod
    def secret_from(settings: Settings) -> bytes | None:
        """``KPIBOT_SECRET_KEY``, or None to use the key generated and kept in the database."""
        if settings.secret_key is not None:
            return settings.secret_key.get_secret_value().encode()
        return None

    def context(self, request: Request) -> Context:
        who = self.policy.identify(request.user, request.email, name=request.user_name)
        return Context(self.services, self.policy, who, self.secret)

    def handle(self, request: Request) -> Reply:
        """Run one request, never raising; counted in the metrics and logged in one line."""
        started = time.perf_counter()
        verb = self.registry.verb_of(request)
        try:
            reply, outcome = self.registry.run(request, self.context(request))
        except Exception as error:
            if not unavailable(error):
                raise
            log.warning("command %s: the database is unavailable (%s)", verb, type(error).__name__)
            reply, outcome = database_unavailable(), "unavailable"
        seconds = time.perf_counter() - started
        metrics.COMMANDS.labels(verb=verb, outcome=outcome).inc()
        metrics.COMMAND_SECONDS.labels(verb=verb).observe(seconds)
        if outcome == "unavailable":
            metrics.DATABASE_ERRORS.labels(where="command").inc()
        if log.isEnabledFor(logging.INFO):
            # Arguments may hold figures and notes: only the verb and a known contract id are logged.
            contract = self._contract_named(request) if outcome != "unavailable" else None
            log.info(
                "command %s: %s in %.0f ms",
                verb,
                outcome,
                seconds * 1000,
                extra={
                    "platform": request.platform,
                    "user": request.user,
                    "channel": request.channel,
                    "verb": verb,
                    "contract": contract,
                    "outcome": outcome,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )
        return reply

    def _contract_named(self, request: Request) -> str | None:
        """The contract id a request names first, if it is a loaded one (never free text)."""
        if not request.args:
            return None
        try:
            known = self.services.contract_ids()
        except Exception:
            return None
        first = request.args[0]
        return first if first in known else None
