"""What a verb handler is: a check step and a handle step over a ``Context``.

Adapters hand the bot a ``Request`` (``kpibot.core.protocol``); the registry finds the verb's
handler, runs its ``check`` then its ``handle``, and returns the ``Reply``. Handlers never see a
platform object.

>>> # class WhoamiHandler(CommandHandler): verb = "whoami"; def handle(self, request, ctx): ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kpibot.core.access import AccessPolicy, Identity
from kpibot.core.protocol import Reply, Request
from kpibot.core.services import Services


@dataclass
class Context:
    """What a handler may use: the services, the access policy and the caller's identity."""

    services: Services
    policy: AccessPolicy
    who: Identity
    secret: bytes


class Handler(Protocol):
    """One verb: ``check`` may refuse early (arguments, access); ``handle`` does the work."""

    @property
    def verb(self) -> str: ...

    @property
    def summary(self) -> str: ...

    @property
    def usage(self) -> str: ...

    @property
    def examples(self) -> tuple[str, ...]: ...

    def check(self, request: Request, ctx: Context) -> Reply | None: ...

    def handle(self, request: Request, ctx: Context) -> Reply: ...


class CommandHandler:
    """Base for verbs: ``check`` refuses nothing unless a verb overrides it; ``handle`` does the work."""

    def check(self, request: Request, ctx: Context) -> Reply | None:
        return None
