"""The bot: services, access policy, signing secret and verbs; adapters hand it requests.

``kpibot.app.wiring.build_bot`` makes the one a process uses; tests build their own.

>>> # bot = Bot(services, policy, secret); reply = bot.handle(Request.from_text("help", ...))
"""

from __future__ import annotations

import secrets

from kpibot.commands.base import Context
from kpibot.commands.registry import Registry, default_registry
from kpibot.core.access import AccessPolicy
from kpibot.core.protocol import Reply, Request
from kpibot.core.services import Services
from kpibot.core.settings import Settings


class Bot:
    """One bot instance, shared by every adapter in the process."""

    def __init__(
        self,
        services: Services,
        policy: AccessPolicy,
        secret: bytes,
        registry: Registry | None = None,
    ) -> None:
        self.services = services
        self.policy = policy
        self.secret = secret
        self.registry = registry or default_registry()

    @staticmethod
    def secret_from(settings: Settings) -> bytes:
        """``KPIBOT_SECRET_KEY``, or a random key for this process alone."""
        if settings.secret_key is not None:
            return settings.secret_key.get_secret_value().encode()
        # Confirmation tokens only need to outlive a preview; replicas must share KPIBOT_SECRET_KEY.
        return secrets.token_bytes(32)

    def context(self, request: Request) -> Context:
        who = self.policy.identify(request.user, request.email, name=request.user_name)
        return Context(self.services, self.policy, who, self.secret)

    def handle(self, request: Request) -> Reply:
        return self.registry.dispatch(request, self.context(request))
