"""``SlackDeliverer``: outbox messages posted to Slack channels, exactly once.

Posts with ``chat.postMessage`` (Block Kit) and uploads any chart and attached file (the quarterly
summary's performance report) with ``files_upload_v2``; a retry skips what already went out. Each post carries the outbox
row's id in its message metadata, so after a crash between Slack's answer and our commit
``find_delivered`` finds the earlier post in the channel's history instead of posting twice.
A 429 becomes ``RateLimited`` (Retry-After); errors no retry will cure are permanent.

>>> # SlackDeliverer(WebClient(token=...)).deliver(outbox_message, reply)
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from kpibot.chat.blocks import fallback_text, reply_to_blocks
from kpibot.chat.ratelimit import retry_after_seconds
from kpibot.core.protocol import Reply
from kpibot.scheduler.delivery import DeliveryError, RateLimited
from kpibot.store.outbox import OutboxMessage

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


def _slack_error(exc: SlackApiError, what: str, progress: dict[str, Any] | None) -> DeliveryError:
    response = exc.response
    headers = {k.lower(): v for k, v in (getattr(response, "headers", None) or {}).items()}
    error = str(response.get("error") or "unknown_error")
    if response.status_code == 429 or error == "ratelimited":
        return RateLimited(retry_after_seconds(headers.get("retry-after")), progress=progress)
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
            # A follow-up ("back to amber/green") goes in the thread of the alert it follows.
            thread = message.payload.get("thread_ref")
            threaded: dict[str, Any] = {"thread_ts": str(thread)} if thread else {}
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
                    **threaded,
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
        file = reply.attachment
        if file is not None and not progress.get("file"):
            done = {"ts": ts, "chart": reply.chart is not None}
            try:
                self.client.files_upload_v2(
                    channel=message.channel,
                    content=file.content,
                    filename=file.name,
                    title=file.name,
                )
            except SlackApiError as exc:
                raise _slack_error(exc, "files.uploadV2", done) from exc
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
    return fallback_text(reply), reply_to_blocks(reply)
