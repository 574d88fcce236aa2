"""Request bodies capped before they are read: an ASGI middleware around the whole app.

Slack and Teams post small JSON or form bodies. Anything far larger is not from them, and reading
it whole before saying no would let one request hold megabytes of memory (and, before the
signature check moved ahead of parsing, fill the log). ``BodyLimit`` answers 413 as soon as a
declared ``Content-Length`` is over the route's limit, or as soon as the bytes read pass it, so
a body over the limit is never held whole. Bodies within the limit are read here and handed on
unchanged; requests without a body (``GET /healthz``) pass straight through.

>>> app = BodyLimit(inner_app, {"/slack/events": SLACK_EVENTS_LIMIT})  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("kpibot.server")

KB = 1024
# Slack's largest posts are view submissions: a modal of up to 100 blocks of up to 3,000
# characters each, with its state, a few hundred kB form-encoded. 1 MB leaves headroom.
SLACK_EVENTS_LIMIT = 1024 * KB
# The Bot Framework service refuses content over 262,144 bytes (MessageSizeTooBig) and Teams
# keeps bot messages near 100 kB, so an activity over 512 kB is not from them.
TEAMS_MESSAGES_LIMIT = 512 * KB
# Anything else kpibot serves takes no body at all.
DEFAULT_LIMIT = 16 * KB

LIMITS: dict[str, int] = {
    "/slack/events": SLACK_EVENTS_LIMIT,
    "/api/messages": TEAMS_MESSAGES_LIMIT,
}

TOO_LARGE = b'{"error": "request body too large"}'
BAD_LENGTH = b'{"error": "bad Content-Length"}'


class BodyLimit:
    """Refuse a request whose body is over its path's limit, before reading more than the limit."""

    def __init__(
        self, app: ASGIApp, limits: Mapping[str, int] = LIMITS, default: int = DEFAULT_LIMIT
    ) -> None:
        self.app = app
        self.limits = dict(limits)
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = self.limits.get(path, self.default)
        declared = _content_length(scope)
        if declared == -1:
            await _answer(send, 400, BAD_LENGTH)
            return
        if declared is not None and declared > limit:
            log.warning("request refused: body of %d bytes over %d for %s", declared, limit, path)
            await _answer(send, 413, TOO_LARGE)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > limit:
                log.warning("request refused: body over %d bytes for %s", limit, path)
                await _answer(send, 413, TOO_LARGE)
                return
        await self.app(scope, _replay(bytes(body), receive), send)


def _content_length(scope: Scope) -> int | None:
    """The declared length; None when there is none, -1 when it is not a number."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) < 19 else -1
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body already read, then waits as the server would."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is not read, so the connection cannot be reused.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
