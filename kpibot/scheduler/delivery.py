"""Deliverers: the edge where an outbox row becomes a message on a platform.

A deliverer sends one composed ``Reply`` for one claimed ``OutboxMessage`` and returns the
platform's id for it (Slack's ``ts``). It raises ``RateLimited`` when the platform says "slow
down" (the dispatcher reschedules without counting a failure) and ``DeliveryError`` for anything
else (retried with backoff, or given up at once when ``permanent``). ``find_delivered`` answers
"did an earlier, interrupted attempt already send this?", which is how a crash between the
platform's answer and our commit is kept from showing the user a duplicate.

A ``TransactionalDeliverer`` writes into the store itself (a table another system reads); the
dispatcher then commits the delivery and the ``sent`` mark in one transaction: exactly once.

>>> deliverers = {"console": ConsoleDeliverer(), "slack": SlackDeliverer(WebClient(token))}
... # doctest: +SKIP
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from rich.console import Console
from rich.markup import escape
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session

from kpibot.commands.base import Reply
from kpibot.engine.calendar import LONDON
from kpibot.scheduler.outbox import OutboxMessage

log = logging.getLogger(__name__)

METADATA_EVENT = "kpibot_outbox"
# Slack errors that no retry will cure: give up at once and show the operator why.
PERMANENT_SLACK_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "no_permission",
        "missing_scope",
        "restricted_action",
        "msg_too_long",
        "invalid_blocks",
    }
)
_HISTORY_PAGES = 5


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


class ConsoleDeliverer:
    """Prints each message, ``[when] kind → audience: text``; the embedded default platform.

    >>> ConsoleDeliverer(Console(width=200)).deliver(message, Reply("Return due", "…"))
    ... # doctest: +SKIP
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()

    def deliver(self, message: OutboxMessage, reply: Reply) -> str | None:
        when = message.due_at.astimezone(LONDON).strftime("%Y-%m-%d %H:%M")
        text = reply.text if reply.text == message.text and not reply.rows else reply.plain()
        chart = f" [dim](chart {reply.chart_name or 'attached'})[/]" if reply.chart else ""
        self.console.print(
            f"[dim]\\[{when}][/] [bold]{message.kind}[/] → {message.audience}"
            f" [dim]({message.contract_id or message.channel})[/]: {escape(text)}{chart}",
            soft_wrap=True,
        )
        return None

    def find_delivered(self, message: OutboxMessage) -> str | None:
        return None


def _slack_error(exc: SlackApiError, what: str, progress: dict[str, Any] | None) -> DeliveryError:
    response = exc.response
    headers = {k.lower(): v for k, v in (getattr(response, "headers", None) or {}).items()}
    error = str(response.get("error") or "unknown_error")
    if response.status_code == 429 or error == "ratelimited":
        retry = headers.get("retry-after", "1")
        return RateLimited(float(retry[0] if isinstance(retry, list) else retry), progress=progress)
    reason = f"Slack refused {what}: {error}"
    return DeliveryError(reason, progress=progress, permanent=error in PERMANENT_SLACK_ERRORS)


class SlackDeliverer:
    """Posts with ``chat.postMessage`` (Block Kit when available) and uploads any chart.

    Each message carries the outbox id in its metadata, so ``find_delivered`` can search the
    channel's recent history after a crash; this needs the ``channels:history`` scope, and
    without it delivery is at-least-once (see ``kpibot.scheduler.outbox``).

    >>> SlackDeliverer(WebClient(token="xoxb-…"))  # doctest: +SKIP
    """

    def __init__(self, client: WebClient, *, lookback: timedelta = timedelta(minutes=5)) -> None:
        self.client = client
        self.lookback = lookback

    def deliver(self, message: OutboxMessage, reply: Reply) -> str | None:
        progress = message.progress
        ts = progress.get("ts")
        if ts is None:
            text, blocks = _render(reply)
            try:
                response = self.client.chat_postMessage(
                    channel=message.channel,
                    text=text,
                    blocks=blocks,
                    metadata={
                        "event_type": METADATA_EVENT,
                        "event_payload": {"outbox_id": message.id, "key": message.key},
                    },
                    unfurl_links=False,
                )
            except SlackApiError as exc:
                raise _slack_error(exc, "chat.postMessage", None) from exc
            ts = str(response.get("ts") or "")
        if reply.chart is not None and not progress.get("chart"):
            try:
                self.client.files_upload_v2(
                    channel=message.channel,
                    content=reply.chart,
                    filename=reply.chart_name or "chart.png",
                    title=reply.title,
                )
            except SlackApiError as exc:
                raise _slack_error(exc, "files.uploadV2", {"ts": ts}) from exc
        return ts or None

    def find_delivered(self, message: OutboxMessage) -> str | None:
        oldest = (message.due_at - self.lookback).timestamp()
        cursor: str | None = None
        try:
            for _ in range(_HISTORY_PAGES):
                page = self.client.conversations_history(
                    channel=message.channel,
                    oldest=f"{oldest:.6f}",
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
                for item in page.get("messages") or []:
                    meta = item.get("metadata") or {}
                    payload = meta.get("event_payload") or {}
                    if meta.get("event_type") == METADATA_EVENT and (
                        payload.get("outbox_id") == message.id
                    ):
                        return str(item.get("ts"))
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                if cursor is None:
                    return None
        except SlackApiError as exc:
            if exc.response.status_code == 429:
                raise _slack_error(exc, "conversations.history", None) from exc
            log.info(
                "cannot check Slack history for outbox %s (%s); delivering again",
                message.id,
                exc.response.get("error"),
            )
        return None


def _render(reply: Reply) -> tuple[str, list[dict[str, Any]] | None]:
    try:
        from kpibot.chat.blocks import fallback_text, reply_to_blocks
    except ImportError:
        return reply.plain(), None
    return fallback_text(reply), reply_to_blocks(reply)
