"""The Slack test doubles behave like Slack for the real WebClient, SignatureVerifier and bolt."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from slack_bolt import App
from slack_bolt.adapter.starlette import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import Clock, SignatureVerifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.slack_mock import (
    SlackApiServer,
    app_home_opened_event,
    block_action_body,
    event_body,
    message_with_file_event,
    signed_headers,
    slash_command_body,
    view_submission_body,
)
from tests.slack_mock.fixtures import slack_api_fixture  # noqa: F401

SECRET = "test-signing-secret"
NOW = 1_700_000_000


# A 1x1 greyscale PNG: the upload must arrive byte for byte.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGOoBwAAgQCA05RTSgAAAABJRU5ErkJggg=="
)


def _client(slack: SlackApiServer, **kwargs: Any) -> WebClient:
    return WebClient(token="xoxb-test", base_url=slack.api_url, **kwargs)


def test_post_message_is_recorded_with_blocks(slack_api: SlackApiServer) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*ACME-7* 99.2%"}}]
    reply = _client(slack_api).chat_postMessage(channel="C1", text="ACME-7", blocks=blocks)

    assert reply["channel"] == "C1" and reply["message"]["blocks"] == blocks
    (call,) = slack_api.calls("chat.postMessage")
    assert call == {"channel": "C1", "text": "ACME-7", "blocks": blocks}
    assert slack_api.requests[0].headers["Authorization"] == "Bearer xoxb-test"


def test_files_upload_v2_stores_exact_bytes_and_shares_to_channel(
    slack_api: SlackApiServer,
) -> None:
    client = _client(slack_api)
    reply = client.files_upload_v2(channel="C1", content=PNG, filename="chart.png", title="March")

    file_id = reply["file"]["id"]
    assert slack_api.uploads == {file_id: PNG}
    (complete,) = slack_api.calls("files.completeUploadExternal")
    assert complete["channel_id"] == "C1"
    assert json.loads(complete["files"])[0] == {"id": file_id, "title": "March"}
    assert reply["file"]["size"] == len(PNG) and reply["file"]["name"] == "chart.png"


def test_rate_limit_surfaces_status_and_retry_after(slack_api: SlackApiServer) -> None:
    slack_api.fail_next("chat.postMessage", retry_after=7)

    with pytest.raises(SlackApiError) as raised:
        _client(slack_api).chat_postMessage(channel="C1", text="x")

    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "7"
    assert raised.value.response["error"] == "ratelimited"
    assert _client(slack_api).chat_postMessage(channel="C1", text="x")["ok"]


def test_rate_limit_retry_handler_retries_and_succeeds(slack_api: SlackApiServer) -> None:
    slack_api.fail_next("chat.postMessage", retry_after=0)
    client = _client(slack_api, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])

    assert client.chat_postMessage(channel="C1", text="x")["ok"]
    assert len(slack_api.calls("chat.postMessage")) == 2


def test_api_errors_and_unknown_methods(slack_api: SlackApiServer) -> None:
    slack_api.fail_next("chat.postMessage", status=200, error="channel_not_found")
    client = _client(slack_api)

    with pytest.raises(SlackApiError, match="channel_not_found"):
        client.chat_postMessage(channel="C404", text="x")
    with pytest.raises(SlackApiError, match="unknown_method"):
        client.api_call("kpi.nonsense", json={"a": 1})
    assert slack_api.calls("kpi.nonsense") == [{"a": 1}]
    assert client.users_info(user="U1")["user"]["tz"] == "Europe/Berlin"
    assert client.conversations_info(channel="C1")["channel"]["is_member"]


class _FixedClock(Clock):
    def now(self) -> float:
        return NOW


def test_signed_headers_verify_and_expire_after_five_minutes() -> None:
    verifier = SignatureVerifier(SECRET, clock=_FixedClock())
    body = slash_command_body("status ACME-7")

    assert verifier.is_valid_request(body, signed_headers(body, SECRET, timestamp=NOW))
    assert not verifier.is_valid_request(body, signed_headers(body, SECRET, timestamp=NOW - 301))
    assert not verifier.is_valid_request(body, signed_headers(body, "wrong", timestamp=NOW))
    assert SignatureVerifier(SECRET).is_valid_request(body, signed_headers(body, SECRET))


def _bolt_over_http(slack: SlackApiServer) -> TestClient:
    app = App(client=_client(slack), signing_secret=SECRET)

    @app.command("/kpi")
    def kpi(ack: Any, command: dict[str, Any], say: Any, respond: Any) -> None:
        ack("Working on it")
        say(f"status {command['text']}")
        respond("done")

    @app.action("approve")
    def approve(ack: Any, body: dict[str, Any], say: Any) -> None:
        ack()
        say(f"approved {body['actions'][0]['value']}")

    @app.view("submit_kpi")
    def submit(ack: Any, view: dict[str, Any], client: WebClient) -> None:
        ack()
        client.chat_postMessage(channel="C1", text=view["state"]["values"]["figure"]["v"]["value"])

    @app.event("app_home_opened")
    def home(event: dict[str, Any], client: WebClient) -> None:
        client.views_publish(user_id=event["user"], view={"type": "home", "blocks": []})

    @app.event("message")
    def file_share(event: dict[str, Any], say: Any) -> None:
        say(f"got {event['files'][0]['name']}")

    handler = SlackRequestHandler(app)

    async def endpoint(request: Request) -> Response:
        return await handler.handle(request)

    return TestClient(Starlette(routes=[Route("/slack/events", endpoint, methods=["POST"])]))


def test_bolt_slash_command_says_and_responds(slack_api: SlackApiServer) -> None:
    http = _bolt_over_http(slack_api)
    body = slash_command_body("ACME-7", response_url=slack_api.response_url())

    reply = http.post("/slack/events", content=body, headers=signed_headers(body, SECRET))

    assert reply.status_code == 200 and reply.text == "Working on it"
    assert slack_api.wait_for("chat.postMessage")[0]["text"] == "status ACME-7"
    assert slack_api.wait_for("/response/")[0]["text"] == "done"
    assert (
        http.post("/slack/events", content=body, headers=signed_headers(body, "x")).status_code
        == 401
    )


@pytest.mark.parametrize(
    ("body", "method", "expected"),
    [
        (block_action_body("approve", "ACME-7"), "chat.postMessage", {"text": "approved ACME-7"}),
        (
            view_submission_body("submit_kpi", {"figure": {"v": "99.2"}}),
            "chat.postMessage",
            {"text": "99.2"},
        ),
        (event_body(app_home_opened_event("U7")), "views.publish", {"user_id": "U7"}),
        (event_body(message_with_file_event()), "chat.postMessage", {"text": "got kpi-march.xlsx"}),
    ],
)
def test_bolt_routes_every_payload_shape(
    slack_api: SlackApiServer, body: str, method: str, expected: dict[str, str]
) -> None:
    reply = _bolt_over_http(slack_api).post(
        "/slack/events", content=body, headers=signed_headers(body, SECRET)
    )

    assert reply.status_code == 200
    (call,) = slack_api.wait_for(method)
    assert expected.items() <= call.items()
