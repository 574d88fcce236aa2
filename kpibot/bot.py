"""The bot: services plus access policy plus signing secret; adapters hand it requests.

>>> # bot = Bot.from_settings(Settings()); reply = bot.handle(Request.from_text("help", user="U1", platform="console"))
"""

from __future__ import annotations

import logging
import secrets

from kpibot.access import AccessPolicy
from kpibot.commands.base import Context, Reply, Request
from kpibot.commands.registry import dispatch
from kpibot.services import Services
from kpibot.settings import Settings

log = logging.getLogger("kpibot")


class Bot:
    """One bot instance, shared by every adapter in the process."""

    def __init__(self, services: Services, policy: AccessPolicy, secret: bytes) -> None:
        self.services = services
        self.policy = policy
        self.secret = secret

    @classmethod
    def from_settings(cls, settings: Settings, services: Services | None = None) -> Bot:
        services = services or Services.from_settings(settings)
        policy = AccessPolicy.load(settings.access_file)
        if settings.secret_key is not None:
            secret = settings.secret_key.get_secret_value().encode()
        else:
            # Confirmation tokens only need to outlive a preview; replicas must share KPIBOT_SECRET_KEY.
            secret = secrets.token_bytes(32)
        return cls(services, policy, secret)

    def context(self, request: Request) -> Context:
        who = self.policy.identify(request.user, request.email, name=request.user_name)
        return Context(self.services, self.policy, who, self.secret)

    def handle(self, request: Request) -> Reply:
        return dispatch(request, self.context(request))
