"""kpibot's messages out to Teams, and the memory of Teams tokens already checked.

The Teams SDK (``microsoft-teams-apps``) receives every activity: it checks the Bot Framework JWT,
parses the activity and routes it to ``TeamsAdapter``. Sending is two REST calls of the Bot
Connector API, which ``Connector`` makes itself, authorised with the SDK's own app token
(``App.token_provider``)::

    POST {serviceUrl}/v3/conversations/{conversationId}/activities        a new message
    PUT  {serviceUrl}/v3/conversations/{conversationId}/activities/{id}   a card replaced

The SDK's ``ctx.send`` makes the same calls, but measured under load it cost about three times the
CPU of everything else in a reply: per message it clones an API client (whose constructor resets
the ``httpx`` logger, clearing every logger's cache), converts the activity to a pydantic model
and back, and sends on an asyncio ``httpx`` pool that polls every idle connection's socket through
anyio on each request (encode/httpcore#928). ``Connector`` posts the JSON kpibot already has, on
one synchronous, keep-alive ``httpx.Client`` used from the adapter's worker threads.

``RememberedTokens`` wraps the SDK's inbound validator: Teams signs every activity of the next
hour or so with the same token, so a token the SDK accepted for a service URL is taken on its
word until the token's own ``exp``, instead of decoding it three times and checking its RSA
signature again for every message.

>>> connector = Connector()
>>> connector.send(Address.of(activity), render(reply), token)  # doctest: +SKIP
'1700000000001'
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import httpx

SEND_TIMEOUT_S = 30.0
USER_AGENT = "kpibot/0.1 (Teams)"
# Teams ids hold ':', ';', '=' and '@' ("19:…@thread.tacv2;messageid=…"); they stay as sent.
_ID_SAFE = ":;=@.-_"
REMEMBERED_TOKENS = 1024
# Asked again at least this often, even for a token that does not say when it expires.
BOT_TOKEN_MAX_AGE_S = 600.0


@dataclass(frozen=True)
class Address:
    """Where a message goes: the service URL, the conversation (a channel thread's id included)
    and the bot's own account, all as Teams sent them."""

    service_url: str
    conversation: dict[str, Any]
    bot: dict[str, Any]

    @classmethod
    def of(cls, activity: Any) -> Address:
        """The address that answers an inbound activity in its own conversation or thread."""
        return cls(
            str(activity.service_url),
            activity.conversation.model_dump(by_alias=True, exclude_none=True),
            activity.recipient.model_dump(by_alias=True, exclude_none=True),
        )

    @property
    def conversation_id(self) -> str:
        return str(self.conversation["id"])

    def url(self, activity_id: str | None = None) -> str:
        base = (
            f"{self.service_url.rstrip('/')}/v3/conversations/"
            f"{quote(self.conversation_id, safe=_ID_SAFE)}/activities"
        )
        return base if activity_id is None else f"{base}/{quote(activity_id, safe=_ID_SAFE)}"


class Connector:
    """Posts and replaces activities in Teams conversations; thread-safe, one per process.

    Each thread sends on its own keep-alive ``httpx.Client``. One client shared by many threads
    was measured to queue them behind its pool's lock: on every request the pool polls each
    idle connection's socket, and each poll gives up the GIL, to be won back only after the
    busy threads' switch interval; posts then took 150–230 ms on a loopback connector.

    ``send`` raises ``httpx.HTTPStatusError`` when the connector refuses (429, 403, …) and
    ``httpx.HTTPError`` when it cannot be reached; callers decide what that means to a user.
    """

    def __init__(
        self, timeout: float = SEND_TIMEOUT_S, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.timeout = timeout
        self._transport = transport
        self._tls = ssl.create_default_context()  # made once, shared by every thread's client
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                trust_env=False,
                timeout=self.timeout,
                verify=self._tls,
                transport=self._transport,
                headers={"User-Agent": USER_AGENT},
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def send(
        self,
        to: Address,
        activity: dict[str, Any],
        token: str | None,
        *,
        replace: str | None = None,
    ) -> str:
        """Post ``activity`` to ``to`` (or, with ``replace``, put it in place of that activity);
        return the id Teams gave it. ``token`` is the bot's; None sends none (auth off)."""
        body = {**activity, "from": to.bot, "conversation": to.conversation}
        if replace is not None:
            body["id"] = replace
        response = self._http().request(
            "PUT" if replace is not None else "POST",
            to.url(replace),
            json=body,
            headers={"Authorization": f"Bearer {token}"} if token else None,
        )
        response.raise_for_status()
        try:
            sent = response.json()
        except ValueError:
            sent = {}
        return str(sent.get("id") or replace or "") if isinstance(sent, dict) else ""

    def upload(self, url: str, data: bytes) -> None:
        """Put ``data`` into the upload session Teams gave for a file the user accepted.

        The session is the user's OneDrive, reached over https only, without the bot's token
        (the URL itself is the permission). Raises ``httpx.HTTPError`` like ``send``.
        """
        if urlsplit(url).scheme != "https":
            raise httpx.InvalidURL(f"refusing a non-https upload URL for {len(data)} bytes")
        size = len(data)
        response = self._http().put(
            url,
            content=data,
            headers={"Content-Range": f"bytes 0-{max(size - 1, 0)}/{size}"},
        )
        response.raise_for_status()

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()


class AppToken(Protocol):
    """What the SDK's token provider gives: a token that knows when it expires."""

    def is_expired(self, buffer_ms: int = ...) -> bool: ...


class TokenSource(Protocol):
    """The SDK's ``App.token_provider``."""

    def get_app_token(self) -> Awaitable[AppToken | None]: ...


class BotToken:
    """The bot's own token for the Bot Connector, asked of the SDK again only near its expiry.

    The SDK's token manager caches the token too, but hands back a fresh ``JsonWebToken`` each
    time, decoding it again; this keeps the decoded one until five minutes before it expires (the
    SDK's own margin) or ``max_age`` seconds, whichever is sooner. None: no credentials (auth off).
    """

    def __init__(
        self,
        source: TokenSource,
        max_age: float = BOT_TOKEN_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.max_age = max_age
        self._clock = clock
        self._token: tuple[AppToken, float] | None = None

    async def get(self) -> str | None:
        kept = self._token
        if kept is not None and self._clock() < kept[1] and not kept[0].is_expired():
            return str(kept[0])
        token = await self.source.get_app_token()
        self._token = None if token is None else (token, self._clock() + self.max_age)
        return None if token is None else str(token)


class TokenValidator(Protocol):
    """The SDK's inbound validator, as ``HttpServer`` calls it."""

    def validate_token(
        self, raw_token: str, service_url: str | None = None
    ) -> Awaitable[dict[str, Any]]: ...


class RememberedTokens:
    """``validator``, remembering each token it accepted, per service URL, until the token expires.

    Only accepted tokens are remembered, with the service URL the SDK checked their
    ``serviceurl`` claim against; a different service URL, an expired or an unknown token goes
    to the SDK again. At most ``size`` tokens are kept, the oldest forgotten first.
    """

    def __init__(
        self,
        validator: TokenValidator,
        size: int = REMEMBERED_TOKENS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.validator = validator
        self.size = size
        self._clock = clock
        self._accepted: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    async def validate_token(
        self, raw_token: str, service_url: str | None = None
    ) -> dict[str, Any]:
        key = (raw_token, (service_url or "").rstrip("/"))
        remembered = self._accepted.get(key)
        if remembered is not None and self._clock() < remembered[0]:
            return remembered[1]
        payload = await self.validator.validate_token(raw_token, service_url)
        expires = payload.get("exp")
        if isinstance(expires, int | float) and self._clock() < expires:
            self._accepted.pop(key, None)
            while len(self._accepted) >= self.size:
                del self._accepted[next(iter(self._accepted))]
            self._accepted[key] = (float(expires), payload)
        return payload
