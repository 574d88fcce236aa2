"""Deliverers: the edge where an outbox row becomes a message on a platform.

A deliverer sends one composed ``Reply`` for one claimed ``OutboxMessage`` and returns the
platform's id for it (Slack's ``ts``). It raises ``RateLimited`` when the platform says "slow
down" (the dispatcher reschedules without counting a failure) and ``DeliveryError`` for anything
else (retried with backoff, or given up at once when ``permanent``). ``find_delivered`` answers
"did an earlier, interrupted attempt already send this?", which is how a crash between the
platform's answer and our commit is kept from showing the user a duplicate.

A ``TransactionalDeliverer`` writes into the store itself (a table another system reads); the
dispatcher then commits the delivery and the ``sent`` mark in one transaction: exactly once.

The deliverers themselves live with their platforms in ``kpibot.chat`` (``ConsoleDeliverer``,
``SlackDeliverer``, ``TeamsDeliverer``); ``kpibot.app.wiring`` hands them to the dispatcher.

>>> # Dispatcher(outbox, {"console": ConsoleDeliverer(), "slack": SlackDeliverer(client)})
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.orm import Session

from kpibot.core.protocol import Reply
from kpibot.store.outbox import OutboxMessage

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A delivery that did not happen (or only partly: ``progress`` says what was done)."""

    def __init__(
        self, reason: str, *, progress: dict[str, Any] | None = None, permanent: bool = False
    ) -> None:
        super().__init__(reason)
        self.progress = progress
        self.permanent = permanent


class RateLimited(DeliveryError):
    """The platform asked us to wait ``retry_after`` seconds (HTTP 429); not a failure."""

    def __init__(self, retry_after: float, *, progress: dict[str, Any] | None = None) -> None:
        super().__init__(f"rate limited; retry after {retry_after:g}s", progress=progress)
        self.retry_after = retry_after


class Deliverer(Protocol):
    """Sends to one platform; see the module docstring for the contract."""

    def deliver(self, message: OutboxMessage, reply: Reply) -> str | None:
        """Send ``reply`` for ``message``; return the platform's message id, if it has one."""

    def find_delivered(self, message: OutboxMessage) -> str | None:
        """The id of ``message`` if an earlier attempt sent it, else None (or unknown)."""


@runtime_checkable
class TransactionalDeliverer(Protocol):
    """Delivers by writing in the store, inside the dispatcher's transaction."""

    def deliver_in(self, session: Session, message: OutboxMessage, reply: Reply) -> str | None:
        """Record the delivery through ``session``; the dispatcher commits it with the mark."""
