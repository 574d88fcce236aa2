"""Hostile requests against the real app: oversize, unsigned, malformed, NUL bytes.

Every request goes to the ASGI app ``create_app`` builds, served by a real uvicorn (as in
tests/chat/test_slack.py). Each test asserts the status code a well-behaved server owes the
sender (413, 401, 400; never 500) and that the log holds neither the body sent nor any secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from kpibot.app.limits import SLACK_EVENTS_LIMIT, TEAMS_MESSAGES_LIMIT, BodyLimit
from kpibot.app.server import create_app
from kpibot.app.wiring import build_bot
from kpibot.commands.bot import Bot
from kpibot.core.protocol import Request
from kpibot.features.incidents import IncidentRegister
from tests.chat.test_slack import (
    SECRET_KEY,
    SIGNING_SECRET,
    _settings,
    seeded_db,  # noqa: F401 (the session fixture this module's harness copies)
    serving,
)
from tests.slack_mock import SlackApiServer, signed_headers, slash_command_body

MARKER = "HOSTILE-BODY-MARKER"
SECRETS = (SIGNING_SECRET, SECRET_KEY, "xoxb-test")


class App:
    """The served app, its bot, the recording Slack API and the captured log."""

    def __init__(self, http: httpx.Client, bot: Bot, slack: SlackApiServer, log: Any) -> None:
        self.http, self.bot, self.slack, self.log = http, bot, slack, log

    def post(self, body: str | bytes, headers: dict[str, Any] | None = None) -> httpx.Response:
        return self.http.post("/slack/events", content=body, headers=headers or {})

    def signed(self, body: str, content_type: str | None = None) -> httpx.Response:
        headers = signed_headers(body, SIGNING_SECRET)
        if content_type is not None:
            headers["Content-Type"] = content_type
        return self.post(body, headers)

    def nothing_sent(self) -> bool:
        """No call reached Slack beyond the ``auth.test`` Bolt makes as it starts."""
        return not [r for r in self.slack.requests if r.method != "auth.test"]

    def assert_clean_log(self, *also: str) -> None:
        """Neither the hostile body nor any secret reached the log."""
        text = self.log.text
        for needle in (MARKER, *SECRETS, *also):
            assert needle not in text, f"{needle[:30]!r} is in the log"


@pytest.fixture
def app(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    slack_api: SlackApiServer,
    seeded_db: Path,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> Iterator[App]:
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "kpibot.db"
    shutil.copy(seeded_db, db)
    settings = _settings(monkeypatch, db, slack_api.api_url)
    bot = build_bot(settings)
    with serving(create_app(settings, bot)) as http:
        yield App(http, bot, slack_api, caplog)
    bot.services.db.dispose()


# ---------------------------------------------------------------------- oversize bodies
def test_an_unsigned_5_mb_post_is_refused_413_before_it_is_read(app: App) -> None:
    body = MARKER + "x" * (5 * 1024 * 1024)
    started = time.monotonic()
    response = app.post(body, {"Content-Type": "application/json"})
    assert response.status_code == 413
    assert time.monotonic() - started < 2
    app.assert_clean_log()


def test_an_oversize_body_without_a_length_is_cut_off_at_the_limit(app: App) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(64):  # 8 MB offered in 128 kB chunks, with no Content-Length
            sent += 1
            yield (MARKER + "y" * (128 * 1024 - len(MARKER))).encode()

    response = app.http.post("/slack/events", content=chunks())
    assert response.status_code == 413
    app.assert_clean_log()


def test_a_teams_post_over_its_limit_is_refused_413(app: App) -> None:
    body = json.dumps({"type": "message", "text": MARKER + "z" * TEAMS_MESSAGES_LIMIT})
    response = app.http.post(
        "/api/messages", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    app.assert_clean_log()


def test_a_body_on_a_route_that_takes_none_is_refused_413(app: App) -> None:
    assert app.http.request("GET", "/healthz", content=b"x" * 100_000).status_code == 413
    assert app.http.get("/healthz").status_code == 200


def test_a_body_just_under_the_slack_limit_is_still_checked_for_its_signature(app: App) -> None:
    body = MARKER + "w" * (SLACK_EVENTS_LIMIT - len(MARKER) - 10)
    assert app.post(body, {"Content-Type": "text/plain"}).status_code == 401
    app.assert_clean_log()


# ---------------------------------------------------------------------- unsigned requests
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{" + MARKER + " not json", "application/json"),
        ("payload=" + MARKER + "%7Bnot-json", "application/x-www-form-urlencoded"),
        (MARKER + "\x00\x01 binary-ish", "application/octet-stream"),
        ("[1, 2, " + json.dumps(MARKER) + "]", "application/json"),
    ],
)
def test_unsigned_bodies_of_any_kind_get_401_and_never_reach_the_log(
    app: App, body: str, content_type: str
) -> None:
    assert app.post(body, {"Content-Type": content_type}).status_code == 401
    app.assert_clean_log()


def test_bytes_that_are_not_utf8_get_401_unsigned(app: App) -> None:
    body = MARKER.encode() + b"\xff\xfe\x80"
    assert app.post(body, {"Content-Type": "application/json"}).status_code == 401
    app.assert_clean_log()


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Request-Timestamp": "not-a-number", "X-Slack-Signature": "v0=abc"},
        {"X-Slack-Request-Timestamp": "1e9", "X-Slack-Signature": "v0=abc"},
        {"X-Slack-Request-Timestamp": "9" * 40, "X-Slack-Signature": "v0=abc"},
        {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": b"v0=\xe9"},
        {"X-Slack-Signature": "v0=abc"},
        {},
    ],
)
def test_malformed_signature_headers_get_401(app: App, headers: dict[str, Any]) -> None:
    body = slash_command_body(MARKER)
    response = app.post(body, headers | {"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 401
    app.assert_clean_log()


def test_a_signature_made_with_another_secret_gets_401_and_logs_no_body(app: App) -> None:
    body = slash_command_body(f"status childrens-trust {MARKER}", user_id="U-COMMISSIONER")
    assert app.post(body, signed_headers(body, "not-the-secret")).status_code == 401
    time.sleep(0.2)
    assert app.nothing_sent()
    app.assert_clean_log()


# ---------------------------------------------------------------------- signed but malformed
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{" + MARKER + " not json", "application/json"),
        ("[1, 2, 3]", "application/json"),
        ('"just a string"', "application/json"),
        ("payload=%7Bnot-json-" + MARKER, "application/x-www-form-urlencoded"),
        ("payload=" + json.dumps([1, 2]), "application/x-www-form-urlencoded"),
        (
            urlencode({"payload": json.dumps({"type": "block_actions", "user": "U1"})}),
            "application/x-www-form-urlencoded",
        ),
        (
            urlencode(
                {
                    "payload": json.dumps(
                        {"type": "block_actions", "user": {"id": "U1"}, "actions": []}
                    )
                }
            ),
            "application/x-www-form-urlencoded",
        ),
        (
            urlencode(
                {
                    "payload": json.dumps(
                        {"type": "block_actions", "user": {"id": "U1"}, "actions": ["x"]}
                    )
                }
            ),
            "application/x-www-form-urlencoded",
        ),
        (
            urlencode({"payload": json.dumps({"type": "view_submission", "user": {"id": "U1"}})}),
            "application/x-www-form-urlencoded",
        ),
        (
            # passes the shape check, then breaks Bolt's action matcher (an id that is no text)
            urlencode(
                {
                    "payload": json.dumps(
                        {
                            "type": "block_actions",
                            "user": {"id": MARKER},
                            "actions": [{"action_id": 5, "value": MARKER}],
                        }
                    )
                }
            ),
            "application/x-www-form-urlencoded",
        ),
        (json.dumps({"type": "event_callback", "event": "not a dict"}), "application/json"),
        (json.dumps({"type": "event_callback"}), "application/json"),
        (json.dumps({"no": "type"}), "application/json"),
        ("command=%2Fkpi&text=status", "application/x-www-form-urlencoded"),
    ],
)
def test_signed_malformed_payloads_get_400_never_500(
    app: App, body: str, content_type: str
) -> None:
    response = app.signed(body, content_type)
    assert response.status_code == 400, response.text
    time.sleep(0.1)
    assert app.nothing_sent()
    app.assert_clean_log()


def test_signed_bytes_that_are_not_utf8_get_400(app: App) -> None:
    body = b"text=" + MARKER.encode() + b"\xff\xfe"
    timestamp = str(int(time.time()))
    signature = (
        "v0="
        + hmac.new(
            SIGNING_SECRET.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256
        ).hexdigest()
    )
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
    }
    assert app.post(body, headers).status_code == 400
    app.assert_clean_log()


# ---------------------------------------------------------------------- signed, hostile text
def test_a_nul_byte_in_a_signed_command_is_answered_in_one_sentence_and_stored_nowhere(
    app: App,
) -> None:
    register = IncidentRegister(app.bot.services)
    before = (len(app.bot.services.audit.recent(10_000)), register.list())
    text = f"incident childrens-trust sui Child hurt {MARKER}\x00 at the centre"
    url = app.slack.response_url("nul")
    body = slash_command_body(text, user_id="U-TRUST", channel_id="C-TRUST", response_url=url)
    assert app.signed(body).status_code == 200

    (response,) = app.slack.wait_for("/response/", timeout=10)
    assert "control character (U+0000)" in response["text"]
    assert MARKER not in json.dumps(response)
    assert (len(app.bot.services.audit.recent(10_000)), register.list()) == before
    app.assert_clean_log()


def test_a_megabyte_command_is_answered_with_one_sentence_at_once(app: App) -> None:
    started = time.monotonic()
    reply = app.bot.handle(
        Request.from_text("submit " + "9" * 1_000_000, user="U-TRUST", platform="slack")
    )
    assert time.monotonic() - started < 0.5
    assert reply.kind == "error" and "1,000,007 characters long" in reply.text
    assert reply.text.count(".") <= 2 and "\n" not in reply.text


def test_a_command_near_the_body_limit_is_answered_with_one_sentence(app: App) -> None:
    text = MARKER + " " + "q" * 900_000
    url = app.slack.response_url("long")
    body = slash_command_body(text, user_id="U-TRUST", response_url=url)
    assert len(body) < SLACK_EVENTS_LIMIT
    started = time.monotonic()
    assert app.signed(body).status_code == 200

    (response,) = app.slack.wait_for("/response/", timeout=10)
    assert time.monotonic() - started < 3
    assert "characters long; kpibot reads commands of up to 4,000" in response["text"]
    assert MARKER not in json.dumps(response)
    app.assert_clean_log()


# ---------------------------------------------------------------------- the middleware alone
def test_the_limit_passes_a_body_within_it_through_unchanged() -> None:
    seen: list[bytes] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        seen.append(message["body"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limited = BodyLimit(inner, {"/x": 10})
    transport = httpx.ASGITransport(app=limited)

    async def run() -> list[int]:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            within = await client.post("/x", content=b"0123456789")
            over = await client.post("/x", content=b"0123456789!")
            other = await client.post("/y", content=b"a" * 20_000)
            return [within.status_code, over.status_code, other.status_code]

    assert asyncio.run(run()) == [204, 413, 413]
    assert seen == [b"0123456789"]


def test_slacks_own_ssl_check_still_gets_200(app: App) -> None:
    assert app.signed("ssl_check=1&token=unused", "application/x-www-form-urlencoded").is_success
