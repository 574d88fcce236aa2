"""The Teams adapter: Microsoft's Teams SDK for Python turns activities into a ``Request``, replies are cards.

The SDK does the Bot Framework work on the way in: its ``InboundActivityTokenValidator`` checks
every request's JWT and its models parse every activity. Plain messages are checked by our own
instance of that public validator behind ``RememberedTokens`` (``inbound_validator``) and then go
straight to our handler; everything else runs through the SDK's ``App``, whose
HTTP layer is pluggable (``HttpServerAdapter``), so ``StarletteAdapter`` serves it at
``POST /api/messages`` in the same Starlette app as ``/slack/events``: one process serves both
platforms (``TeamsAdapter`` says why plain messages skip the ``App`` pipeline). Replies go out
through ``kpibot.chat.connector.Connector`` (the Bot Connector's REST API, with the SDK's app
token) to the activity's own ``serviceUrl``; that module says why.

The adapter only translates: a typed ``kpi status …`` or ``@kpibot status …``, a card button, a
card form or an uploaded return becomes a ``Request``; the ``Reply`` becomes an Adaptive Card
(``kpibot.chat.cards``). It also remembers each conversation's reference, so the scheduler can
post there later (``TeamsDeliverer``).

>>> routes = teams_routes(settings, bot)  # doctest: +SKIP
>>> deliverers["teams"] = teams_deliverer(settings, services)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import functools
import html
import logging
import os
import re
import threading
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import ValidationError
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from kpibot.chat import cards
from kpibot.chat.connector import SEND_TIMEOUT_S, Address, BotToken, Connector, RememberedTokens
from kpibot.chat.ratelimit import retry_after_seconds
from kpibot.commands.bot import Bot
from kpibot.core import logs, texts
from kpibot.core.protocol import Attachment, Reply, Request
from kpibot.core.services import Services, open_database
from kpibot.core.settings import Settings
from kpibot.features.bind import ConversationRef, ConversationStore
from kpibot.scheduler.delivery import DeliveryError, RateLimited
from kpibot.store.outbox import OutboxMessage

# The SDK builds its own deprecated bot client inside every API client; the notice is not for us.
warnings.filterwarnings("ignore", "The bot client is deprecated", DeprecationWarning)
with warnings.catch_warnings():
    # The SDK announces its preview features (HTML widgets) on import; kpibot uses none of them.
    warnings.simplefilter("ignore")
    from microsoft_teams.api.activities import ActivityTypeAdapter
    from microsoft_teams.api.activities.utils.strip_mentions_text import (
        StripMentionsTextOptions,
        strip_mentions_text,
    )
    from microsoft_teams.api.auth.cloud_environment import PUBLIC, with_overrides
    from microsoft_teams.apps import App
    from microsoft_teams.apps.auth import InboundActivityTokenValidator
    from microsoft_teams.apps.http.adapter import HttpRequest as SdkRequest
    from microsoft_teams.apps.http.adapter import HttpResponse as SdkResponse
    from microsoft_teams.apps.http.adapter import HttpRouteHandler
    from microsoft_teams.common import ClientOptions


log = logging.getLogger("kpibot.teams")
# The SDK's DEBUG lines print whole activities (message text, figures, tokens), so its loggers
# stop at INFO even when kpibot runs verbose, as Bolt's do in the Slack adapter.
logging.getLogger("microsoft_teams").setLevel(logging.INFO)

T = TypeVar("T")

# User-facing texts of the adapter itself (the bot's own texts live in kpibot.core.texts).
CANCELLED = "Cancelled; nothing was stored."
NOT_FROM_KPIBOT = (
    "That card action was altered or is not from kpibot, so nothing was done; ask again."
)
FILE_TOO_BIG = "{name} is over 5 MB, so split it and send the parts."
FILE_UNREADABLE = "I could not download {name} from Teams; send it again."
WELCOME = (
    "Hello, I'm kpibot. Type `kpi status` for your contracts, or `help` for everything I can "
    "do; a commissioner can bind this conversation to a contract with `kpi bind <contract>`."
)
FILE_DECLINED = "Fine: {name} was not sent. Ask again whenever you want it."
FILE_NOT_SENT = "I could not save {name} to your OneDrive; ask for it again."
AUTH_OFF = (
    "TEAMS AUTHENTICATION IS OFF (KPIBOT_TEAMS_AUTH_DISABLED=true): /api/messages accepts "
    "unsigned requests from anyone. Use this only on a development machine."
)

MESSAGING_ENDPOINT = "/api/messages"
MAX_FILE_BYTES = 5 * 1024 * 1024
DOWNLOAD_DEADLINE_S = 60.0
TABLE_FILE_TYPES = ("csv", "xlsx", "xlsm")
IMPORT_VERBS = ("import", "upload")
EMAIL_TTL_S = 3600.0
# Worker threads answer and post replies: the bot's work is a few milliseconds of CPU, the post
# mostly waits for Teams to answer (tens to hundreds of milliseconds), so the pool is wider than
# the machine.
WORKERS = 16
_OTHER_MENTIONS = re.compile(r"<at>.*?</at>", re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")


class FileRefused(Exception):
    """An uploaded file that cannot be imported; ``str(exc)`` is the sentence for the user."""


class StarletteAdapter:
    """The SDK's ``HttpServerAdapter`` for Starlette: it keeps the SDK's handler, our route calls it.

    kpibot's server owns the process (uvicorn, health checks, Slack), so ``start`` is not ours.
    """

    def __init__(self) -> None:
        self.handlers: dict[str, HttpRouteHandler] = {}

    def register_route(self, method: str, path: str, handler: HttpRouteHandler) -> None:
        if method != "POST":
            raise ValueError(f"unsupported method {method}")
        self.handlers[path] = handler

    def serve_static(self, path: str, directory: str) -> None:
        """kpibot serves no static files."""

    async def start(self, port: int) -> None:
        # The SDK may ask its adapter to serve; kpibot serve (uvicorn) owns the process instead.
        raise RuntimeError("kpibot serve runs the HTTP server; the Teams SDK does not start one")

    async def stop(self) -> None:
        """Nothing to stop: the server is kpibot's."""

    async def dispatch(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> Response:
        """Hand a parsed request to the SDK's handler for ``path``; its answer as a response."""
        result: SdkResponse = await self.handlers[path](SdkRequest(body=body, headers=headers))
        if result.get("body") is not None:
            return JSONResponse(result["body"], status_code=result["status"])
        return Response(status_code=result["status"])


class TokenEndpointProvider:
    """App-only tokens from an OAuth 2.0 client-credentials endpoint (``TEAMS_TOKEN_URL``).

    Production leaves ``TEAMS_TOKEN_URL`` unset and the SDK gets tokens with MSAL from Microsoft
    Entra ID; MSAL accepts only its own https authorities, so tests and emulators point this
    provider at a local endpoint instead. Tokens are cached until a minute before they expire.
    """

    def __init__(self, url: str, client_id: str, client_secret: str) -> None:
        self.url = url
        self.client_id = client_id
        self._secret = client_secret
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    async def get_app_token(self, scope: str, tenant_id: str | None) -> str:
        with self._lock:
            cached = self._token
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        # A client per fetch: the token is shared by the server's and the deliverer's event loops.
        async with httpx.AsyncClient(trust_env=False, timeout=SEND_TIMEOUT_S) as http:
            response = await http.post(
                self.url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.client_id,
                    "client_secret": self._secret,
                    "scope": scope,
                },
            )
            response.raise_for_status()
            data = response.json()
        token = str(data["access_token"])
        with self._lock:
            self._token = (token, time.monotonic() + float(data.get("expires_in", 3600)) - 60)
        return token


def build_app(settings: Settings, adapter: StarletteAdapter) -> App:
    """The SDK's ``App`` for ``settings``: credentials, JWT validation and our HTTP adapter."""
    stop_meter_leak()
    cloud = cloud_for(settings)
    app_id = settings.teams_app_id
    secret = settings.teams_app_password.get_secret_value() if settings.teams_app_password else None
    token = None
    if settings.teams_token_url and app_id and secret:
        token, secret = TokenEndpointProvider(settings.teams_token_url, app_id, secret), None
    return App(
        client_id=app_id,
        client_secret=secret,
        tenant_id=settings.teams_tenant_id,
        token=token,
        cloud=cloud,
        http_server_adapter=adapter,
        messaging_endpoint=MESSAGING_ENDPOINT,
        dangerously_allow_unauthenticated_requests=settings.teams_auth_disabled,
        client=ClientOptions(timeout=SEND_TIMEOUT_S),
        telemetry={"agent365": False},
    )


def stop_meter_leak() -> None:
    """Give OpenTelemetry a no-op meter provider when nobody has configured one.

    The SDK asks ``metrics.get_meter`` afresh each time it counts something, several times per
    activity. Until a meter provider is set, OpenTelemetry's API answers with a proxy meter and
    keeps every one it made, to upgrade them if a provider ever arrives: measured here, about
    seven meters with their instruments and locks per message, never freed, and full garbage
    collections (pauses of 50–130 ms every few seconds under load) growing with them. kpibot
    exports no metrics; an operator who does (``opentelemetry-instrument``,
    ``OTEL_PYTHON_METER_PROVIDER``) has set a provider before this runs, and it is kept.
    """
    if "OTEL_PYTHON_METER_PROVIDER" in os.environ:
        return
    from opentelemetry import metrics

    if type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider":
        metrics.set_meter_provider(metrics.NoOpMeterProvider())


class Turn(Protocol):
    """What kpibot's handlers use of the SDK's ``ActivityContext``."""

    @property
    def activity(self) -> Any: ...

    @property
    def api(self) -> Any: ...

    @property
    def files(self) -> Any: ...


@dataclass(frozen=True)
class Inbound:
    """What one activity asks for: a request to run, or a reply decided without the bot."""

    request: Request | None = None
    reply: Reply | None = None
    replace: bool = False


class TeamsAdapter:
    """The Teams side of one bot: typed commands, mentions, card buttons and forms, file imports.

    Every activity's JWT is checked by the SDK's validator: plain messages by our own instance
    of its public ``InboundActivityTokenValidator`` behind ``RememberedTokens``, the rest by the
    ``App`` pipeline's own, which kpibot leaves as the SDK set it up.
    Messages without attachments (typed commands and card buttons, nearly all of the traffic)
    are then parsed into the SDK's activity model and handled directly; everything else (files,
    installs, conversation updates, invokes) goes through the SDK's ``App`` pipeline. That
    pipeline builds, per activity, two API clients, a streaming sender, telemetry spans and an
    eagerly formatted debug line of the whole activity: measured under load, it cost kpibot's
    Teams replies about twice their CPU, and nothing in it serves a plain message.
    """

    def __init__(self, bot: Bot, settings: Settings) -> None:
        self.bot = bot
        self.http = StarletteAdapter()
        self.app = build_app(settings, self.http)
        self.validator = inbound_validator(settings)
        self.conversations = ConversationStore(bot.services.db)
        self._emails: dict[str, tuple[float, str | None]] = {}
        self._ready = asyncio.Lock()
        self._workers = ThreadPoolExecutor(WORKERS, thread_name_prefix="kpibot-teams")
        self.connector = Connector()
        self.token = BotToken(self.app.token_provider)
        self.app.on_message(self.on_message)
        self.app.on_conversation_update(self.on_conversation_update)
        self.app.on_install_add(self.on_install)
        self.app.on_file_consent(self.on_file_consent)

    def routes(self) -> list[BaseRoute]:
        async def messages_endpoint(request: HttpRequest) -> Response:
            if MESSAGING_ENDPOINT not in self.http.handlers:
                async with self._ready:
                    if MESSAGING_ENDPOINT not in self.http.handlers:
                        await self.app.initialize()
            try:
                body = await request.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return JSONResponse({"error": "Bad request"}, status_code=400)
            headers = dict(request.headers)
            validator = self.validator
            if (
                validator is not None
                and body.get("type") == "message"
                and not body.get("attachments")
            ):
                return await self._direct(validator, body, headers)
            return await self.http.dispatch(MESSAGING_ENDPOINT, body, headers)

        return [Route(MESSAGING_ENDPOINT, messages_endpoint, methods=["POST"])]

    async def _direct(
        self, validator: RememberedTokens, body: dict[str, Any], headers: dict[str, str]
    ) -> Response:
        """A plain message: the SDK's JWT check here, then the whole turn on a worker thread."""
        authorization = headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            log.warning("teams activity refused: missing or malformed Authorization header")
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
        try:
            await validator.validate_token(
                authorization.removeprefix("Bearer "), body.get("serviceUrl")
            )
        except Exception as exc:  # the SDK raises PyJWT's errors, and others for bad key sets
            log.warning("teams activity refused: %s", type(exc).__name__)
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
        token = await self.token.get()
        return await self._work(self._direct_turn, body, token, asyncio.get_running_loop())

    def _direct_turn(
        self, body: dict[str, Any], token: str | None, loop: asyncio.AbstractEventLoop
    ) -> Response:
        """A plain message's whole turn, from the SDK's activity model to the posted reply, on a
        worker thread (as Bolt runs Slack's listeners): the event loop only reads requests."""
        try:
            activity = ActivityTypeAdapter.validate_python(body)
        except ValidationError:
            log.warning("teams activity refused: not a valid message activity")
            return JSONResponse({"error": "Bad request"}, status_code=400)
        self._plain(activity, token, loop)
        return Response(status_code=200)

    # ------------------------------------------------------------------ handlers
    async def on_message(self, ctx: Turn) -> None:
        """A message: typed text, a card's button or form, or files; answered in the same place."""
        activity = ctx.activity
        if not activity.attachments:
            token = await self.token.get()
            await self._work(self._plain, activity, token, asyncio.get_running_loop())
            return
        await self._guard(ctx, self._on_files(ctx))

    def _plain(self, activity: Any, token: str | None, loop: asyncio.AbstractEventLoop) -> None:
        """Typed text or a card's button or form, answered in place; on a worker thread."""
        try:
            self.conversations.remember(reference(activity))  # no database call when known
            user, email = self._identity(activity, loop)
            name = activity.from_.name
            channel = channel_of(activity)
            if activity.value is not None:
                inbound = card_submission(activity.value, user, channel, name, email)
            else:
                inbound = Inbound(typed_request(activity, user, name, email))
            reply = inbound.reply
            if inbound.request is not None:
                reply = self._handle(inbound.request, activity.id)
            if reply is not None:
                target = activity.reply_to_id if inbound.replace and reply.ok else None
                personal = is_personal(activity)
                self._post(Address.of(activity), render(reply, personal), token, target)
                offer = file_offer(reply, personal)
                if offer is not None:
                    self._post(Address.of(activity), offer, token, None)
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("teams handler failed activity=%s ref=%s", activity.id, ref)
            sorry = Reply("Sorry", texts.INTERNAL_ERROR.format(error=f"ref {ref}"), kind="error")
            try:
                self._post(Address.of(activity), render(sorry), token, None)
            except Exception:
                log.exception("teams could not report failure ref=%s", ref)

    async def _on_files(self, ctx: Turn) -> None:
        """A message with attachments: each table file is imported, and answered, in turn."""
        activity = ctx.activity
        await self._remember(activity)
        user, email = await self._identify(ctx.api, activity)
        inbound = await self._typed(ctx, user, activity.from_.name, email)
        if inbound.request is not None:
            await self.send(ctx, await self._work(self._handle, inbound.request, activity.id))
        elif inbound.reply is not None:
            await self.send(ctx, inbound.reply)

    async def on_conversation_update(self, ctx: Turn) -> None:
        """The bot was added to a chat or team: remember where, and say hello."""
        activity = ctx.activity
        await self._guard(ctx, self._remember(activity))
        added = {m.id for m in activity.members_added or []}
        if activity.recipient.id in added:
            await self._guard(ctx, self.send(ctx, Reply("kpibot is here", WELCOME)))

    async def on_install(self, ctx: Turn) -> None:
        """The app was installed for a user or a team: remember the conversation."""
        await self._guard(ctx, self._remember(ctx.activity))

    async def on_file_consent(self, ctx: Turn) -> None:
        """The user answered a file consent card: on Allow, make the file again and upload it."""
        await self._guard(ctx, self._file_consent(ctx))

    async def _file_consent(self, ctx: Turn) -> None:
        activity = ctx.activity
        answer = activity.value
        command = consent_command(answer.context)
        info = answer.upload_info
        name = (info.name if info is not None else None) or "the file"
        if command is None:
            await self.send(ctx, Reply("Not accepted", NOT_FROM_KPIBOT, kind="refusal"))
            return
        if str(getattr(answer.action, "value", answer.action)) != "accept" or info is None:
            await self.send(ctx, Reply(FILE_DECLINED.format(name=name), kind="done"))
            return
        user, email = await self._identify(ctx.api, activity)
        # Made afresh as the user who accepted, through the same access checks as typing it.
        request = Request.from_text(
            command,
            user=user,
            platform="teams",
            channel=channel_of(activity),
            user_name=activity.from_.name,
            email=email,
        )
        reply = await self._work(self._handle, request, activity.id)
        file = reply.attachment
        if file is None:
            await self.send(ctx, reply)
            return
        try:
            await self._work(self.connector.upload, str(info.upload_url), file.content)
        except httpx.HTTPError as exc:
            log.warning("teams file upload failed error=%s", type(exc).__name__)
            await self.send(ctx, Reply(FILE_NOT_SENT.format(name=name), kind="error"))
            return
        sent = cards.file_info(
            str(info.name or file.name),
            str(info.content_url),
            str(info.unique_id),
            str(info.file_type or file.name.rsplit(".", 1)[-1]),
        )
        token = await self.token.get()
        message = {"type": "message", "attachments": [sent]}
        await self._work(self._post, Address.of(activity), message, token, None)

    async def _remember(self, activity: Any) -> None:
        ref = reference(activity)
        if not self.conversations.is_fresh(ref):  # most messages: no database call at all
            await self._work(self.conversations.remember, ref)

    # ------------------------------------------------------------------ translation
    async def _typed(self, ctx: Turn, user: str, name: str | None, email: str | None) -> Inbound:
        parsed = typed_request(ctx.activity, user, name, email)
        named = parsed.verb in IMPORT_VERBS
        files = [
            f
            for f in await ctx.files.list()
            if named or (f.extension or f.name.rsplit(".", 1)[-1]).lower() in TABLE_FILE_TYPES
        ]
        if not files:
            return Inbound(parsed)
        for file in files[:-1]:
            reply = await self._import(ctx, file, parsed, named)
            await self.send(ctx, reply)
        return Inbound(reply=await self._import(ctx, files[-1], parsed, named))

    async def _import(self, ctx: Turn, file: Any, parsed: Request, named: bool) -> Reply:
        request_id = f"teams-file:{file.unique_id or ctx.activity.id}:{file.name}"
        try:
            content = await download(file)
        except FileRefused as exc:
            return Reply(f"{file.name} rejected", str(exc), kind="error")
        request = Request(
            "import",
            parsed.args if named else [],
            parsed.user,
            "teams",
            parsed.channel,
            user_name=parsed.user_name,
            email=parsed.email,
            files=(Attachment(file.name, content),),
            idempotency_key=request_id,
        )
        return await self._work(self._handle, request, request_id)

    def _known(self, activity: Any) -> tuple[str, str | None] | None:
        """The user's AAD object id and e-mail when no roster look-up is needed, else None."""
        account = activity.from_
        user = account.aad_object_id or account.id
        email = account.email
        policy = self.bot.policy
        by_email = any("@" in key or grant.email for key, grant in policy.users.items())
        if email or user in policy.users or not by_email:
            return user, email
        cached = self._emails.get(user)
        if cached is not None and cached[0] > time.monotonic():
            return user, cached[1]
        return None

    async def _identify(self, api: Any, activity: Any) -> tuple[str, str | None]:
        """The user's AAD object id and, when the access file needs it, their e-mail, which is
        looked up in the conversation's roster (through the SDK) and kept for an hour."""
        known = self._known(activity)
        if known is not None:
            return known
        account = activity.from_
        user, email = account.aad_object_id or account.id, None
        try:
            member = await api.conversations.get_member_by_id(activity.conversation.id, account.id)
            email = member.email or member.user_principal_name
        except httpx.HTTPError as exc:
            log.info("teams member lookup failed user=%s error=%s", user, type(exc).__name__)
        if len(self._emails) > 10_000:
            self._emails.clear()
        self._emails[user] = (time.monotonic() + EMAIL_TTL_S, email)
        return user, email

    def _identity(self, activity: Any, loop: asyncio.AbstractEventLoop) -> tuple[str, str | None]:
        """``_identify`` from a worker thread: a roster look-up runs on the event loop."""
        known = self._known(activity)
        if known is not None:
            return known
        api = self.app.api.from_service_url(str(activity.service_url))
        lookup = asyncio.run_coroutine_threadsafe(self._identify(api, activity), loop)
        return lookup.result(SEND_TIMEOUT_S)

    async def _work(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the adapter's worker pool, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._workers, functools.partial(fn, *args))

    def _handle(self, request: Request, request_id: str | None) -> Reply:
        # The bot logs the command in one line (verb, outcome, duration; never its arguments,
        # which may hold figures); every line logged meanwhile carries this request's id.
        token = logs.request_id.set(request_id)
        try:
            return self.bot.handle(request)
        finally:
            logs.request_id.reset(token)

    # ------------------------------------------------------------------ delivery
    async def send(self, ctx: Turn, reply: Reply, replace: bool = False) -> None:
        """Post ``reply`` in the conversation, a channel's thread; ``replace`` updates the card
        that was clicked instead."""
        token = await self.token.get()
        target = ctx.activity.reply_to_id if replace and reply.ok else None
        personal = is_personal(ctx.activity)
        to = Address.of(ctx.activity)
        await self._work(self._post, to, render(reply, personal), token, target)
        offer = file_offer(reply, personal)
        if offer is not None:
            await self._work(self._post, to, offer, token, None)

    def _post(
        self, to: Address, activity: dict[str, Any], token: str | None, target: str | None
    ) -> str:
        """Replace the ``target`` card with ``activity`` or, failing that, post it (a worker thread)."""
        if target:
            try:
                return self.connector.send(to, activity, token, replace=target)
            except httpx.HTTPError as exc:
                log.info("teams card update failed, posting instead error=%s", type(exc).__name__)
        return self.connector.send(to, activity, token)

    async def _guard(self, ctx: Turn, work: Awaitable[Any]) -> None:
        """Log any failure with a reference and tell the user in one sentence, never a traceback."""
        try:
            await work
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("teams handler failed activity=%s ref=%s", ctx.activity.id, ref)
            sorry = Reply("Sorry", texts.INTERNAL_ERROR.format(error=f"ref {ref}"), kind="error")
            try:
                await self.send(ctx, sorry)
            except Exception:
                log.exception("teams could not report failure ref=%s", ref)


# ---------------------------------------------------------------------- pure translation
def channel_of(activity: Any) -> str:
    """The conversation id without a channel thread's ``;messageid=…``: what bindings key on."""
    return str(activity.conversation.id).split(";messageid=", 1)[0]


def message_text(activity: Any) -> str:
    """The typed text without the bot's ``<at>`` mention, other tags or HTML entities."""
    bot_only = StripMentionsTextOptions(account_id=activity.recipient.id)
    text = strip_mentions_text(activity, bot_only) or ""
    text = _TAGS.sub(" ", _OTHER_MENTIONS.sub(" ", text))
    # Not cut to length: Request.from_text refuses an over-long command in one sentence, where
    # cutting it would store a shortened note or report without a word.
    return " ".join(html.unescape(text).replace("\xa0", " ").split())


def typed_request(activity: Any, user: str, name: str | None, email: str | None) -> Request:
    """The ``Request`` a typed message (or an @mention) asks for."""
    return Request.from_text(
        message_text(activity),
        user=user,
        platform="teams",
        channel=channel_of(activity),
        user_name=name,
        email=email,
    )


def card_submission(
    value: Any, user: str, channel: str, name: str | None, email: str | None
) -> Inbound:
    """A card's ``Action.Submit``: run its command, confirm its token, or submit its form."""
    data = value.get(cards.DATA_KEY) if isinstance(value, dict) else None
    kw: dict[str, Any] = {"user_name": name, "email": email}
    refused = Inbound(reply=Reply("Not accepted", NOT_FROM_KPIBOT, kind="refusal"))
    if not isinstance(data, dict) or len(data) not in (1, 2):
        return refused
    if set(data) == {"token"} and isinstance(data["token"], str):
        request = Request("submit", [], user, "teams", channel, confirm_token=data["token"], **kw)
        return Inbound(request, replace=True)
    if set(data) == {"command"} and isinstance(data["command"], str):
        command = data["command"].strip()
        if command.lower() == cards.CANCEL_COMMAND:
            return Inbound(reply=Reply(CANCELLED, kind="done"), replace=True)
        return Inbound(
            Request.from_text(command, user=user, platform="teams", channel=channel, **kw)
        )
    fields = data.get("fields")
    if (
        set(data) == {"form", "fields"}
        and isinstance(data["form"], str)
        and isinstance(fields, list)
        and all(isinstance(f, str) for f in fields)
    ):
        words = [data["form"]]
        for field in fields:
            raw = value.get(field)
            text = " ".join(str(raw).split()) if isinstance(raw, str | int | float) else ""
            if text:
                words.append(f"reason: {text}" if field == "reason" else text)
        command = " ".join(words)
        return Inbound(
            Request.from_text(command, user=user, platform="teams", channel=channel, **kw)
        )
    return refused


def render(reply: Reply, personal: bool = False) -> dict[str, Any]:
    """The reply as a message activity's JSON: one Adaptive Card, plus the chart as an inline image.

    An attached file goes separately (``file_offer``) in a 1:1 chat; anywhere else Teams lets a
    bot send none, so the card says where to ask for it.
    """
    file = reply.attachment
    if file is not None and file_offer(reply, personal) is None:
        note = (
            cards.FILE_ONLY_IN_CHAT.format(command=f"kpi {file.command}", name=file.name)
            if file.command
            else cards.FILE_NOT_HERE.format(name=file.name)
        )
        reply.text = f"{reply.text}\n{note}".strip()
    chart = None
    if reply.chart is not None:
        chart = cards.chart_attachment(reply.chart, reply.chart_name or "chart.png")
        if chart is None:
            reply.text = f"{reply.text}\n{cards.CHART_TOO_BIG}".strip()
    card = cards.form_card(reply.form, reply.text) if reply.form else cards.reply_card(reply)
    attachments = [{"contentType": cards.CARD_CONTENT_TYPE, "content": card}]
    if chart is not None:
        attachments.append(chart)
    return {"type": "message", "attachments": attachments}


def file_offer(reply: Reply, personal: bool) -> dict[str, Any] | None:
    """The file consent card for the reply's attachment, as its own message; None where Teams
    lets a bot send no file (channels and group chats) or the file cannot be made again."""
    file = reply.attachment
    if file is None or not personal or not file.command:
        return None
    return {"type": "message", "attachments": [cards.file_consent(file)]}


def consent_command(context: Any) -> str | None:
    """The report command a consent card carried back, or None if it is not one of ours."""
    data = context.get(cards.DATA_KEY) if isinstance(context, dict) else None
    command = data.get("command") if isinstance(data, dict) else None
    if not isinstance(command, str) or not command.strip():
        return None
    command = command.strip()
    # Only a report is offered as a file; anything else in the context was not put there by us.
    return (
        command if Request.from_text(command, user="", platform="teams").verb == "report" else None
    )


def is_personal(activity: Any) -> bool:
    """A 1:1 chat with the bot: the only place Teams lets a bot send files."""
    return str(getattr(activity.conversation, "conversation_type", "") or "") == "personal"


def cloud_for(settings: Settings) -> Any:
    """The SDK's public cloud, with the OpenID metadata URL overridden when tests set one."""
    return with_overrides(PUBLIC, openid_metadata_url=settings.teams_openid_url)


def inbound_validator(settings: Settings) -> RememberedTokens | None:
    """The SDK's public ``InboundActivityTokenValidator`` behind ``RememberedTokens``.

    kpibot builds its own instance (the SDK's ``App`` keeps its own, untouched, for the
    activities that go through its pipeline), so no private SDK attribute is replaced. None when
    auth is off or no app id is set, as the SDK itself does then.
    """
    if settings.teams_auth_disabled or not settings.teams_app_id:
        return None
    return RememberedTokens(
        InboundActivityTokenValidator(settings.teams_app_id, cloud=cloud_for(settings))
    )


def reference(activity: Any) -> ConversationRef:
    """The conversation reference of an inbound activity, as stored for proactive messages."""
    conversation = activity.conversation
    channel_data = activity.channel_data
    tenant = conversation.tenant_id or (
        channel_data.tenant.id if channel_data is not None and channel_data.tenant else None
    )
    raw = {
        "serviceUrl": activity.service_url,
        "channelId": activity.channel_id,
        "bot": activity.recipient.model_dump(by_alias=True, exclude_none=True),
        "conversation": conversation.model_dump(by_alias=True, exclude_none=True),
    }
    return ConversationRef(
        "teams",
        channel_of(activity),
        str(activity.service_url),
        activity.recipient.id,
        tenant,
        conversation.conversation_type,
        raw,
    )


async def download(file: Any) -> bytes:
    """An uploaded file's bytes through the SDK (https only, no bot token sent), at most 5 MB
    and within ``DOWNLOAD_DEADLINE_S`` in all (a host trickling bytes trips no read timeout)."""
    data = bytearray()
    try:
        async with asyncio.timeout(DOWNLOAD_DEADLINE_S):
            async for chunk in file.stream():
                data += chunk
                if len(data) > MAX_FILE_BYTES:
                    raise FileRefused(FILE_TOO_BIG.format(name=file.name))
    except FileRefused:
        raise
    except Exception as exc:  # the SDK raises RuntimeError, FileError or httpx errors
        log.warning("teams file download failed name=%s error=%s", file.name, type(exc).__name__)
        raise FileRefused(FILE_UNREADABLE.format(name=file.name)) from None
    return bytes(data)


# ---------------------------------------------------------------------- proactive delivery
class _LoopThread:
    """One event loop on a daemon thread, so synchronous callers can run the SDK's coroutines.

    The SDK's HTTP client belongs to the loop that first uses it, so the deliverer keeps its own.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(
                    target=self._loop.run_forever, name="kpibot-teams-deliverer", daemon=True
                ).start()
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def close(self) -> None:
        with self._lock:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._loop = None


class TeamsDeliverer:
    """Posts outbox messages to the Teams conversations kpibot has a stored reference for.

    The Bot Connector lets a bot neither list nor search a conversation's messages, so
    ``find_delivered`` cannot look for an earlier attempt: delivery is at-least-once in the few
    milliseconds between Teams' answer and the outbox's commit (see ``kpibot.scheduler.outbox``).

    >>> TeamsDeliverer(ConversationStore(db), build_app(settings, StarletteAdapter()))  # doctest: +SKIP
    """

    def __init__(
        self,
        conversations: ConversationStore,
        app: App,
        timeout: float = SEND_TIMEOUT_S,
        connector: Connector | None = None,
    ) -> None:
        self.conversations = conversations
        self.app = app
        self.timeout = timeout
        self.connector = connector or Connector(timeout)
        self.token = BotToken(app.token_provider)
        self._loop = _LoopThread()

    def deliver(self, message: OutboxMessage, reply: Reply) -> str | None:
        ref = self.conversations.get("teams", message.channel)
        if ref is None:
            raise DeliveryError(
                f"no Teams conversation reference for {message.channel}: install "
                "the app there or message the bot there once",
                permanent=True,
            )
        # A channel's reference is the channel itself, so the message starts a new thread there;
        # a follow-up ("back to amber/green") replies in the thread of the alert it follows.
        conversation = ref.conversation_id
        thread = message.payload.get("thread_ref")
        if thread and ref.conversation_type == "channel":
            conversation = f"{conversation};messageid={thread}"
        to = Address(ref.service_url, {"id": conversation}, {"id": ref.bot_id})
        personal = ref.conversation_type == "personal"
        try:
            # The SDK's token manager belongs to the deliverer's own event loop (see _LoopThread).
            token = self._loop.run(self.token.get(), self.timeout)
            sent = message.progress.get("id")
            if sent is None:
                sent = self.connector.send(to, render(reply, personal), token)
            offer = file_offer(reply, personal)
            if offer is not None:
                try:
                    self.connector.send(to, offer, token)
                except httpx.HTTPError as exc:
                    # The summary is out; a retry sends only the file offer.
                    raise _partial(exc, {"id": sent}) from exc
            return str(sent)
        except httpx.HTTPStatusError as exc:
            raise delivery_error(exc) from exc
        except (httpx.HTTPError, TimeoutError) as exc:
            raise DeliveryError(f"Teams did not answer: {type(exc).__name__}") from exc

    def find_delivered(self, message: OutboxMessage) -> str | None:
        return None

    def close(self) -> None:
        self._loop.close()
        self.connector.close()


def _partial(exc: httpx.HTTPError, progress: dict[str, Any]) -> DeliveryError:
    error = delivery_error(exc) if isinstance(exc, httpx.HTTPStatusError) else None
    if isinstance(error, RateLimited):
        return RateLimited(error.retry_after, progress=progress)
    reason = str(error) if error is not None else f"Teams did not answer: {type(exc).__name__}"
    permanent = error.permanent if error is not None else False
    return DeliveryError(reason, progress=progress, permanent=permanent)


def delivery_error(exc: httpx.HTTPStatusError) -> DeliveryError:
    """A connector refusal as the dispatcher understands it: rate limit, permanent or retryable."""
    status = exc.response.status_code
    if status == 429:
        return RateLimited(retry_after_seconds(exc.response.headers.get("Retry-After")))
    # Removed from the conversation, unknown conversation, bad credentials or too large: no retry cures it.
    return DeliveryError(
        f"Teams refused the message: HTTP {status}", permanent=status in (400, 401, 403, 404, 413)
    )


# ---------------------------------------------------------------------- entry points
def teams_routes(settings: Settings, bot: Bot) -> list[BaseRoute]:
    """``POST /api/messages`` for Teams; none without ``TEAMS_APP_ID`` (or auth explicitly off)."""
    if settings.teams_auth_disabled:
        log.warning(AUTH_OFF)
    elif not settings.teams_app_id:
        log.warning("Teams is off: set TEAMS_APP_ID and TEAMS_APP_PASSWORD to enable /api/messages")
        return []
    return TeamsAdapter(bot, settings).routes()


def teams_reachable(settings: Settings) -> None:
    """Raise unless Microsoft's token endpoint gives the bot its token (the start-up check)."""
    app = build_app(settings, StarletteAdapter())
    if asyncio.run(app.token_provider.get_app_token()) is None:
        raise RuntimeError("Teams gave no bot token; check TEAMS_APP_ID and TEAMS_APP_PASSWORD")


def teams_deliverer(settings: Settings, services: Services | None = None) -> TeamsDeliverer | None:
    """The scheduler's Teams deliverer, or None when Teams is not configured.

    Pass the process's ``services`` to share its database engine; without them the deliverer
    opens its own on ``settings.database_url``.
    """
    if not settings.teams_app_id:
        return None

    db = services.db if services is not None else open_database(settings)
    return TeamsDeliverer(ConversationStore(db), build_app(settings, StarletteAdapter()))
