"""The Slack adapter: Bolt listeners that turn Slack payloads into a ``Request`` and a ``Reply`` back.

Every listener acknowledges at once and does its work in a Bolt *lazy listener*, so Slack gets its
answer within 3 seconds however slow a chart or an import is. The adapter decides only where a
reply goes (response_url, ephemeral, thread, DM, modal, file upload); the bot decides what it says.

>>> adapter = SlackAdapter(build_bot(settings), settings)  # doctest: +SKIP
>>> adapter.app.dispatch(bolt_request)  # doctest: +SKIP
>>> run_socket_mode(settings)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from slack_bolt import Ack, App, BoltRequest, BoltResponse
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from kpibot.chat import blocks
from kpibot.commands.bot import Bot
from kpibot.core import logs, texts
from kpibot.core.protocol import Attachment, Reply, Request
from kpibot.core.settings import Settings
from kpibot.store.shared import SharedValues

log = logging.getLogger("kpibot.slack")
# Bolt's and the SDK's DEBUG lines echo request and response bodies, which carry figures and
# tokens, so their logger stops at INFO even when kpibot runs verbose.
_QUIET_LOG = logging.getLogger("kpibot.slack.bolt")
_QUIET_LOG.setLevel(logging.INFO)


class _WithoutBodies(logging.Filter):
    """Bolt writes whole request bodies into some INFO and WARNING lines (a failed signature, an
    unhandled request, a listener error); they carry figures and confirmation tokens, and from an
    attacker anything at all. The line is kept, the body withheld."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "body" in message.lower() or message.startswith("Unhandled request"):
            record.msg = (
                re.split(r"[(:]", message, maxsplit=1)[0].strip() + " (request body withheld)"
            )
            record.args = None
        return True


_QUIET_LOG.addFilter(_WithoutBodies())

# User-facing texts of the adapter itself (the bot's own texts live in kpibot.core.texts).
WORKING = "Working on it…"
CANCELLED = "Cancelled; nothing was stored."
PREVIEW_GONE = "That preview is no longer available here; preview the figure again."
FILE_TOO_BIG = "{name} is {size:.1f} MB; the limit is 5 MB, so split it and send the parts."
FILE_UNREADABLE = "I could not download {name} from Slack; send it again."
FILE_TOO_SLOW = (
    "{name} did not finish downloading from Slack within {seconds:g} seconds; send it again."
)
# A whole download's deadline: httpx's timeout bounds each read, so a host that sends a byte
# just inside it, again and again, would otherwise hold a worker for hours.
DOWNLOAD_DEADLINE_S = 60.0
CHART_NOT_POSTED = (
    "I could not post the chart here; invite me with `/invite @kpibot` and ask again."
)
FILE_NOT_POSTED = "I could not post {name} here; invite me with `/invite @kpibot` and ask again."

MAX_FILE_BYTES = 5 * 1024 * 1024
# Slack refuses a request whose timestamp is more than five minutes from now, and so do we.
MAX_CLOCK_SKEW_S = 5 * 60
# How long the start-up check waits for Slack's answer.
REACH_TIMEOUT_S = 5
TABLE_FILE_TYPES = ("csv", "xlsx", "xlsm")
IMPORT_VERBS = ("import", "upload")
_MENTION = re.compile(r"<@[A-Z0-9]+(\|[^>]*)?>")


def _action(name: str) -> re.Pattern[str]:
    return re.compile(rf"^{name}(:\d+)?$")


@dataclass(frozen=True)
class Target:
    """Where a reply goes: a response_url if Slack gave one, else the channel (or a DM).

    ``direct`` marks the bot's own DM with the user, where a reply needs no ephemeral privacy
    (and an ephemeral one would vanish on reload).
    """

    user: str
    channel: str | None = None
    response_url: str | None = None
    thread_ts: str | None = None
    direct: bool = False


class FileRefused(Exception):
    """A shared file that cannot be imported; ``str(exc)`` is the sentence for the user."""


class SlackAdapter:
    """The Bolt app for one bot: ``/kpi``, buttons, the submit modal, file imports and App Home."""

    def __init__(self, bot: Bot, settings: Settings, client: WebClient | None = None) -> None:
        self.bot = bot
        # Long button values live in the database, so a click on any replica finds them.
        self.buttons = blocks.ButtonValues(shared=SharedValues(bot.services.db))
        self._bot_token = _secret(settings.slack_bot_token)
        self._api_url = settings.slack_api_url or WebClient.BASE_URL
        client = client or WebClient(
            token=self._bot_token or None,
            base_url=self._api_url,
            retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
            logger=_QUIET_LOG,
        )
        self.app = App(
            client=client,
            signing_secret=_secret(settings.slack_signing_secret),
            request_verification_enabled=True,
            # No auth.test while building the app: an unreachable Slack at start-up must not
            # crash `kpibot serve` (kpibot.app.health retries it); Bolt asks on first use.
            token_verification_enabled=False,
            process_before_response=True,
            logger=_QUIET_LOG,
        )
        self._register()

    def _register(self) -> None:
        app = self.app
        app.middleware(self._skip_timed_out_retries)
        app.command("/kpi")(ack=self._ack_command, lazy=[self.run_command])
        app.action(_action(blocks.RUN_ACTION))(ack=self._ack, lazy=[self.run_button])
        app.action(_action(blocks.CONFIRM_ACTION))(ack=self._ack, lazy=[self.confirm])
        app.action(_action(blocks.CANCEL_ACTION))(ack=self._ack, lazy=[self.cancel])
        app.view(blocks.FORM_CALLBACK)(ack=self._ack, lazy=[self.submit_form])
        app.event("app_home_opened")(ack=self._ack, lazy=[self.publish_home])
        app.event({"type": "message", "subtype": "file_share"})(
            ack=self._ack, lazy=[self.import_message_files]
        )
        app.event("file_shared")(ack=self._ack, lazy=[self.import_shared_file])
        app.event("app_mention")(ack=self._ack, lazy=[self.run_mention])
        app.event("message")(ack=self._ack, lazy=[self.run_direct_message])

    # ------------------------------------------------------------------ acks and retries
    @staticmethod
    def _ack(ack: Ack) -> None:
        ack()

    @staticmethod
    def _ack_command(ack: Ack) -> None:
        ack(text=WORKING)

    @staticmethod
    def _skip_timed_out_retries(req: BoltRequest, next: Callable[[], BoltResponse]) -> BoltResponse:
        # Slack retries after http_timeout while the first delivery is still being worked on; other
        # retries mean the first delivery failed, so they run again (idempotency keys and signed
        # confirmation tokens make a second run store nothing twice).
        if req.headers.get("x-slack-retry-reason", [""])[0] == "http_timeout":
            log.info("slack retry skipped retry=%s", req.headers.get("x-slack-retry-num", ["?"])[0])
            return BoltResponse(status=200, body="")
        return next()

    # ------------------------------------------------------------------ listeners (lazy)
    def run_command(self, command: dict[str, Any], client: WebClient) -> None:
        """``/kpi <text>``: run it as the user and answer through the command's response_url."""
        target = Target(command["user_id"], command.get("channel_id"), command.get("response_url"))
        with self._guard(command.get("trigger_id"), target):
            request = Request.from_text(
                command.get("text", ""),
                user=target.user,
                platform="slack",
                channel=target.channel,
                user_name=command.get("user_name"),
            )
            reply = self._handle(request, command.get("trigger_id"))
            self._answer(client, reply, target, command.get("trigger_id"))

    def run_button(self, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        """A ``kpi_run`` button: run the command it carries as the user who clicked."""
        target = _action_target(body)
        with self._guard(body.get("trigger_id"), target):
            text = self.buttons.unpack(action.get("value", ""))
            if text is None:
                reply = Reply("Not available", PREVIEW_GONE, kind="error", ephemeral=True)
            else:
                request = Request.from_text(
                    text,
                    user=target.user,
                    platform="slack",
                    channel=target.channel,
                    user_name=body["user"].get("username"),
                )
                reply = self._handle(request, body.get("trigger_id"))
            self._answer(client, reply, target, body.get("trigger_id"))

    def confirm(self, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        """A ``kpi_confirm`` button: confirm the signed preview; the token makes a repeat store once."""
        target = _action_target(body)
        with self._guard(body.get("trigger_id"), target):
            token = self.buttons.unpack(action.get("value", ""))
            if token is None:
                reply = Reply("Not available", PREVIEW_GONE, kind="error", ephemeral=True)
            else:
                # Only submit previews carry confirmation tokens today (see Action in commands.base).
                request = Request(
                    "submit",
                    [],
                    target.user,
                    "slack",
                    target.channel,
                    user_name=body["user"].get("username"),
                    confirm_token=token,
                )
                reply = self._handle(request, body.get("trigger_id"))
            self.deliver(client, reply, target, replace=True)

    def cancel(self, body: dict[str, Any], client: WebClient) -> None:
        """A ``kpi_cancel`` button: replace the preview, so its Confirm button is gone."""
        target = _action_target(body)
        with self._guard(body.get("trigger_id"), target):
            self.deliver(
                client, Reply(CANCELLED, kind="done", ephemeral=True), target, replace=True
            )

    def submit_form(self, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        """The modal was submitted: run the command it stands for and show the user the answer."""
        text, channel = blocks.form_submission(view)
        target = Target(body["user"]["id"], channel)
        with self._guard(body.get("trigger_id"), target):
            request = Request.from_text(
                text,
                user=target.user,
                platform="slack",
                channel=channel,
                user_name=body["user"].get("username"),
            )
            self.deliver(client, self._handle(request, body.get("trigger_id")), target)

    def publish_home(self, body: dict[str, Any], event: dict[str, Any], client: WebClient) -> None:
        """App Home: the user's contracts with their red, amber and green counts."""
        if event.get("tab", "home") != "home":
            return
        user = event["user"]
        request_id = body.get("event_id")
        with self._guard(request_id, None):
            reply = self._handle(Request("status", [], user, "slack"), request_id)
            # The home tab's DM channel comes back with every click, for charts and answers.
            view = blocks.home_view(
                reply, self.buttons, private_metadata=event.get("channel") or ""
            )
            client.views_publish(user_id=user, view=view)

    def run_mention(self, body: dict[str, Any], event: dict[str, Any], client: WebClient) -> None:
        """``@kpibot status …`` in a channel: answer in the thread."""
        if event.get("files"):
            return  # the file_share message event carries the files and imports them
        self._run_text(body.get("event_id"), event, client)

    def run_direct_message(
        self, body: dict[str, Any], event: dict[str, Any], client: WebClient
    ) -> None:
        """A typed command in the bot's DM; other messages are not for the bot."""
        if (
            event.get("channel_type") == "im"
            and not event.get("subtype")
            and not event.get("bot_id")
        ):
            self._run_text(body.get("event_id"), event, client)

    def import_message_files(self, event: dict[str, Any], client: WebClient) -> None:
        """Files posted with a message: import them if the message is addressed to the bot."""
        if event.get("bot_id"):
            return
        parsed = Request.from_text(
            _strip_mentions(event.get("text") or ""), user=event["user"], platform="slack"
        )
        named = parsed.verb in IMPORT_VERBS
        channel = event["channel"]
        to_bot = (
            named or event.get("channel_type") == "im" or self.bot.policy.bound_contract(channel)
        )
        if not to_bot:
            return
        target = Target(
            event["user"],
            channel,
            thread_ts=event.get("thread_ts") or event.get("ts"),
            direct=event.get("channel_type") == "im",
        )
        for file in event.get("files", []):
            if named or event.get("channel_type") == "im" or _is_table(file):
                self._import_file(client, file, parsed.args if named else [], target)

    def import_shared_file(self, event: dict[str, Any], client: WebClient, context: Any) -> None:
        """``file_shared`` in a private channel, where no message event carries the file."""
        channel, user = event.get("channel_id"), event.get("user_id")
        if not channel or not user or user == context.bot_user_id:
            return
        if not self.bot.policy.bound_contract(channel):
            return
        with self._guard(event.get("event_ts"), Target(user, channel)):
            file = client.files_info(file=event["file_id"])["file"]
            # In public channels and DMs the message event delivers this file with its text.
            if channel not in file.get("groups", []) or not _is_table(file):
                return
            self._import_file(client, file, [], Target(user, channel))

    # ------------------------------------------------------------------ translation
    def _run_text(self, request_id: str | None, event: dict[str, Any], client: WebClient) -> None:
        target = Target(
            event["user"],
            event.get("channel"),
            thread_ts=event.get("thread_ts") or event.get("ts"),
            direct=event.get("channel_type") == "im",
        )
        with self._guard(request_id, target):
            request = Request.from_text(
                _strip_mentions(event.get("text") or ""),
                user=target.user,
                platform="slack",
                channel=target.channel,
            )
            self._answer(client, self._handle(request, request_id), target, None)

    def _import_file(
        self, client: WebClient, file: dict[str, Any], args: list[str], target: Target
    ) -> None:
        file_id, name = str(file.get("id")), str(file.get("name") or file.get("title") or "file")
        request_id = f"slack-file:{file_id}"
        with self._guard(request_id, target):
            try:
                content = self._download(file, name)
            except FileRefused as exc:
                reply = Reply(f"{name} rejected", str(exc), kind="error")
            else:
                request = Request(
                    "import",
                    args,
                    target.user,
                    "slack",
                    target.channel,
                    files=(Attachment(name, content),),
                    idempotency_key=request_id,
                )
                reply = self._handle(request, request_id)
            self.deliver(client, reply, target)

    def _download(self, file: dict[str, Any], name: str) -> bytes:
        size = int(file.get("size") or 0)
        if size > MAX_FILE_BYTES:
            raise FileRefused(FILE_TOO_BIG.format(name=name, size=size / 1024 / 1024))
        url = str(file.get("url_private_download") or file.get("url_private") or "")
        if not self._trusted(url):
            log.warning("slack file refused: untrusted download host file=%s", file.get("id"))
            raise FileRefused(FILE_UNREADABLE.format(name=name))
        data = bytearray()
        deadline = time.monotonic() + DOWNLOAD_DEADLINE_S
        try:
            with httpx.stream(
                "GET",
                url,
                headers={"Authorization": f"Bearer {self._bot_token}"},
                follow_redirects=True,
                timeout=30.0,
            ) as response:
                response.raise_for_status()
                # A bad token gets Slack's HTML sign-in page with status 200, not the file.
                if response.headers.get("content-type", "").startswith("text/html"):
                    raise httpx.HTTPError("sign-in page instead of the file")
                for chunk in response.iter_bytes():
                    data += chunk
                    if time.monotonic() > deadline:
                        log.warning("slack file download too slow file=%s", file.get("id"))
                        raise FileRefused(
                            FILE_TOO_SLOW.format(name=name, seconds=DOWNLOAD_DEADLINE_S)
                        )
                    if len(data) > MAX_FILE_BYTES:
                        raise FileRefused(
                            FILE_TOO_BIG.format(name=name, size=len(data) / 1024 / 1024)
                        )
        except httpx.HTTPError as exc:
            log.warning(
                "slack file download failed file=%s error=%s", file.get("id"), type(exc).__name__
            )
            raise FileRefused(FILE_UNREADABLE.format(name=name)) from None
        return bytes(data)

    def _trusted(self, url: str) -> bool:
        """Only Slack's own hosts (or the configured API host) may see the bot token."""
        host = urlsplit(url).hostname or ""
        return (
            host == "slack.com"
            or host.endswith(".slack.com")
            or host == urlsplit(self._api_url).hostname
        )

    def _handle(self, request: Request, request_id: str | None) -> Reply:
        # The bot logs the command in one line (verb, outcome, duration; never its arguments,
        # which may hold figures); every line logged meanwhile carries this request's id.
        token = logs.request_id.set(request_id)
        try:
            return self.bot.handle(request)
        finally:
            logs.request_id.reset(token)

    # ------------------------------------------------------------------ delivery
    def _answer(
        self, client: WebClient, reply: Reply, target: Target, trigger_id: str | None
    ) -> None:
        """A form opens as a modal when Slack gave a trigger; anything else is delivered."""
        if reply.form is not None and trigger_id:
            try:
                client.views_open(
                    trigger_id=trigger_id, view=blocks.form_view(reply.form, target.channel)
                )
                return
            except SlackApiError as exc:
                log.warning("slack views.open failed error=%s", exc.response.get("error"))
        self.deliver(client, reply, target)

    def deliver(
        self, client: WebClient, reply: Reply, target: Target, replace: bool = False
    ) -> None:
        """Post ``reply``: a chart as a file upload, else blocks via response_url, ephemeral or in
        channel; an attached file (a report) is uploaded to the conversation first."""
        if reply.attachment is not None and not self._upload_file(client, reply, target):
            note = FILE_NOT_POSTED.format(name=reply.attachment.name)
            reply.text = f"{reply.text}\n{note}".strip()
        if reply.chart is not None and self._upload_chart(client, reply, target):
            return
        if reply.chart is not None:
            reply.text = f"{reply.text}\n{CHART_NOT_POSTED}".strip()
        text = blocks.fallback_text(reply)
        payload = blocks.reply_to_blocks(reply, self.buttons)
        if target.response_url:
            kind = "ephemeral" if reply.ephemeral else "in_channel"
            sent = WebhookClient(target.response_url, logger=_QUIET_LOG).send(
                text=text, blocks=payload, response_type=kind, replace_original=replace or None
            )
            if sent.status_code == 200:
                return
            log.warning("slack response_url failed status=%s", sent.status_code)
        if reply.ephemeral and target.channel and not target.direct:
            try:
                client.chat_postEphemeral(
                    channel=target.channel,
                    user=target.user,
                    text=text,
                    blocks=payload,
                    thread_ts=target.thread_ts,
                )
                return
            except SlackApiError as exc:
                log.info("slack ephemeral failed, sending a DM error=%s", exc.response.get("error"))
                target = Target(target.user)
        channel = target.channel or target.user
        client.chat_postMessage(
            channel=channel, text=text, blocks=payload, thread_ts=target.thread_ts
        )

    def _upload_chart(self, client: WebClient, reply: Reply, target: Target) -> bool:
        try:
            client.files_upload_v2(
                channel=target.channel or target.user,
                content=reply.chart,
                filename=reply.chart_name or "chart.png",
                title=reply.title,
                initial_comment=blocks.fallback_text(reply),
                thread_ts=target.thread_ts,
            )
            return True
        except SlackApiError as exc:
            log.warning("slack chart upload failed error=%s", exc.response.get("error"))
            return False

    def _upload_file(self, client: WebClient, reply: Reply, target: Target) -> bool:
        file = reply.attachment
        assert file is not None
        try:
            client.files_upload_v2(
                channel=target.channel or target.user,
                content=file.content,
                filename=file.name,
                title=file.name,
                initial_comment=reply.title,
                thread_ts=target.thread_ts,
            )
            return True
        except SlackApiError as exc:
            log.warning("slack file upload failed error=%s", exc.response.get("error"))
            return False

    @contextmanager
    def _guard(self, request_id: str | None, target: Target | None) -> Iterator[None]:
        """Log any failure with a reference, and tell the user in one sentence, never a traceback."""
        try:
            yield
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("slack listener failed request_id=%s ref=%s", request_id, ref)
            if target is None:
                return
            sorry = Reply(
                "Sorry",
                texts.INTERNAL_ERROR.format(error=f"ref {ref}"),
                kind="error",
                ephemeral=True,
            )
            try:
                self.deliver(self.app.client, sorry, target)
            except Exception:
                log.exception("slack could not report failure ref=%s", ref)


def _action_target(body: dict[str, Any]) -> Target:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    if channel is None and body.get("view"):
        # A click in App Home: answer in the app's DM, whose id the home view carries.
        channel = body["view"].get("private_metadata") or None
        return Target(body["user"]["id"], channel, body.get("response_url"), direct=True)
    return Target(body["user"]["id"], channel, body.get("response_url"))


def _is_table(file: dict[str, Any]) -> bool:
    name = str(file.get("name") or "").lower()
    return file.get("filetype") in TABLE_FILE_TYPES or name.endswith(
        tuple(f".{t}" for t in TABLE_FILE_TYPES)
    )


def _strip_mentions(text: str) -> str:
    return _MENTION.sub(" ", text).strip()


def _secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


# ---------------------------------------------------------------------- entry points
def slack_routes(settings: Settings, bot: Bot) -> list[BaseRoute]:
    """``POST /slack/events`` for Events API, commands and interactivity; none without Slack settings."""
    if settings.slack_signing_secret is None or settings.slack_bot_token is None:
        log.warning(
            "Slack is off: set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN to enable /slack/events"
        )
        return []
    adapter = SlackAdapter(bot, settings)
    secret = _secret(settings.slack_signing_secret).encode()

    async def events(request: HttpRequest) -> Response:
        # The body is already capped (kpibot.app.limits). The signature is checked on the raw
        # bytes before anything parses them, so an unsigned body costs one HMAC and no more.
        body = await request.body()
        headers = request.headers
        if not signed_by_slack(
            secret,
            body,
            headers.get("x-slack-request-timestamp", ""),
            headers.get("x-slack-signature", ""),
            time.time(),
        ):
            log.warning("slack request refused: bad or missing signature (%d bytes)", len(body))
            return JSONResponse({"error": "invalid request"}, status_code=401)
        bolt_request = parsed_request(request, body)
        if bolt_request is None:
            log.warning(
                "slack request refused: signed, but not a Slack payload (%d bytes)", len(body)
            )
            return JSONResponse({"error": "bad request"}, status_code=400)
        # Bolt's dispatch is synchronous (signature check, then listeners until ack), so it runs on a
        # worker thread and the event loop stays free for other requests and health checks.
        response = await run_in_threadpool(adapter.app.dispatch, bolt_request)
        if response.status >= 500:
            # kpibot's acks cannot fail, so a 500 from Bolt means a payload shape its matchers
            # could not handle: the request is at fault, and the details are in Bolt's log line.
            log.warning("slack request refused: Bolt could not handle the payload's shape")
            return JSONResponse({"error": "bad request"}, status_code=400)
        return to_starlette_response(response)

    return [Route("/slack/events", events, methods=["POST"])]


def signed_by_slack(secret: bytes, body: bytes, timestamp: str, signature: str, now: float) -> bool:
    """Whether ``signature`` is Slack's v0 signature of ``body`` at a ``timestamp`` near ``now``.

    Computed on the raw bytes (the SDK's verifier decodes them as UTF-8 first, which fails on a
    body that is not), and false, never an exception, for any malformed header.

    >>> sig = "v0=" + hmac.new(b"s", b"v0:100:x", hashlib.sha256).hexdigest()
    >>> signed_by_slack(b"s", b"x", "100", sig, 100.0), signed_by_slack(b"s", b"x", "1e3", sig, 100.0)
    (True, False)
    """
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    if abs(now - int(timestamp)) > MAX_CLOCK_SKEW_S:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()
    return signature.isascii() and hmac.compare_digest(expected, signature)


def parsed_request(request: HttpRequest, body: bytes) -> BoltRequest | None:
    """The signed body as Bolt's request, or None when it is not a payload Slack sends.

    Bolt parses the body (JSON, a form, or a form carrying a JSON ``payload``) and reads ids out
    of it as it builds the request; a body Slack would never send fails there with one of many
    exception types, or parses to a shape the listeners cannot use.
    """
    try:
        bolt_request = to_bolt_request(request, body)
    except (UnicodeDecodeError, ValueError, TypeError, AttributeError, KeyError, IndexError):
        return None
    return bolt_request if well_formed(bolt_request.body) else None


def well_formed(payload: object) -> bool:
    """Whether ``payload`` has the shape kpibot's listeners rely on for its kind.

    >>> well_formed({"type": "block_actions", "user": {"id": "U1"}, "actions": [{}]})
    True
    >>> well_formed({"type": "block_actions", "user": "U1", "actions": []})
    False
    """
    if not isinstance(payload, dict) or not payload:
        return False
    kind = payload.get("type")
    if payload.get("ssl_check") == "1":  # Slack checking the slash command URL's certificate
        return True
    if "command" in payload:  # a slash command, form-encoded
        return isinstance(payload.get("user_id"), str) and isinstance(payload.get("text", ""), str)
    if kind in ("block_actions", "view_submission", "view_closed", "shortcut", "message_action"):
        user = payload.get("user")
        if not isinstance(user, dict) or not isinstance(user.get("id"), str):
            return False
        if kind == "block_actions":
            actions = payload.get("actions")
            return (
                isinstance(actions, list)
                and bool(actions)
                and all(isinstance(a, dict) for a in actions)
            )
        if kind in ("view_submission", "view_closed"):
            return isinstance(payload.get("view"), dict)
        return True
    if kind == "event_callback":
        event = payload.get("event")
        return isinstance(event, dict) and isinstance(event.get("type"), str)
    if kind == "url_verification":
        return isinstance(payload.get("challenge"), str)
    return isinstance(kind, str)


def slack_reachable(settings: Settings) -> None:
    """Raise unless Slack answers ``auth.test`` with the bot token (the start-up check)."""
    client = WebClient(
        token=_secret(settings.slack_bot_token) or None,
        base_url=settings.slack_api_url or WebClient.BASE_URL,
        timeout=REACH_TIMEOUT_S,
        logger=_QUIET_LOG,
    )
    client.auth_test()


class SocketMode:
    """Slack over Socket Mode (no public URL): the same adapter, over Slack's WebSocket.

    Building it reaches nothing; ``connect`` opens the connection (and raises while Slack is
    unreachable; the SDK reconnects by itself once connected); ``close`` ends it.
    """

    def __init__(self, settings: Settings, bot: Bot) -> None:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        if settings.slack_app_token is None or settings.slack_bot_token is None:
            raise RuntimeError(
                "Socket Mode needs SLACK_APP_TOKEN (xapp-…) and SLACK_BOT_TOKEN (xoxb-…)."
            )
        self.adapter = SlackAdapter(bot, settings)
        self.handler = SocketModeHandler(
            self.adapter.app, settings.slack_app_token.get_secret_value(), logger=_QUIET_LOG
        )

    def connect(self) -> None:
        self.handler.connect()  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self.handler.close()  # type: ignore[no-untyped-call]


def run_socket_mode(settings: Settings, bot: Bot) -> None:
    """Connect to Slack over Socket Mode and serve until interrupted (without the HTTP app).

    ``kpibot serve --socket-mode`` does more: health endpoints, the scheduler and the warm-up
    beside the connection (``kpibot.app.server.serve``).
    """
    connection = SocketMode(settings, bot)
    connection.connect()
    try:
        threading.Event().wait()
    finally:
        connection.close()
