"""kpibot's way out to Teams: the Bot Connector calls, the bot's token, and remembered inbound tokens.

``Connector`` is exercised against the recording ``BotConnector`` (real HTTP on 127.0.0.1); the
two token holders against stand-ins for the SDK's validator and token provider, with a clock the
test moves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from kpibot.chat.connector import Address, BotToken, Connector, RememberedTokens
from tests.teams_mock import BotConnector, personal_message

URL = "https://smba.trafficmanager.net/uk/"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Validator:
    """The SDK's validator as kpibot sees it: accepts tokens issued for one service URL."""

    def __init__(self, service_url: str, exp: float) -> None:
        self.service_url = service_url.rstrip("/")
        self.exp = exp
        self.calls: list[tuple[str, str | None]] = []

    async def validate_token(
        self, raw_token: str, service_url: str | None = None
    ) -> dict[str, Any]:
        self.calls.append((raw_token, service_url))
        if raw_token.startswith("bad") or (service_url or "").rstrip("/") != self.service_url:
            raise jwt.InvalidTokenError("refused")
        return {"aud": "bot", "exp": self.exp, "serviceurl": self.service_url}


def check(tokens: RememberedTokens, token: str, service_url: str) -> dict[str, Any]:
    return asyncio.run(tokens.validate_token(token, service_url))


# ---------------------------------------------------------------------- RememberedTokens
def test_an_accepted_token_is_checked_once_until_it_expires() -> None:
    clock = Clock()
    sdk = Validator(URL, exp=clock.now + 3600)
    tokens = RememberedTokens(sdk, clock=clock)

    first = check(tokens, "t1", URL)
    assert check(tokens, "t1", URL) == first
    assert check(tokens, "t1", URL.rstrip("/")) == first  # the SDK ignores a trailing slash too
    assert len(sdk.calls) == 1

    clock.now += 3600  # at its exp the token is the SDK's to judge again
    check(tokens, "t1", URL)
    assert len(sdk.calls) == 2


def test_a_remembered_token_is_not_taken_for_another_service_url() -> None:
    clock = Clock()
    sdk = Validator(URL, exp=clock.now + 3600)
    tokens = RememberedTokens(sdk, clock=clock)
    check(tokens, "t1", URL)

    with pytest.raises(jwt.InvalidTokenError):
        check(tokens, "t1", "https://evil.example/")
    assert sdk.calls[-1] == ("t1", "https://evil.example/")


def test_refused_and_already_expired_tokens_are_never_remembered() -> None:
    clock = Clock()
    sdk = Validator(URL, exp=clock.now - 10)  # the SDK allows clock skew; kpibot adds none
    tokens = RememberedTokens(sdk, clock=clock)

    for _ in range(2):
        with pytest.raises(jwt.InvalidTokenError):
            check(tokens, "bad-token", URL)
        check(tokens, "late", URL)
    assert [t for t, _ in sdk.calls] == ["bad-token", "late", "bad-token", "late"]


def test_only_the_newest_tokens_are_kept() -> None:
    clock = Clock()
    sdk = Validator(URL, exp=clock.now + 3600)
    tokens = RememberedTokens(sdk, size=2, clock=clock)
    for token in ("a", "b", "c"):
        check(tokens, token, URL)
    check(tokens, "c", URL)
    check(tokens, "b", URL)
    assert len(sdk.calls) == 3
    check(tokens, "a", URL)  # forgotten first
    assert len(sdk.calls) == 4


# ---------------------------------------------------------------------- BotToken
class SdkToken:
    def __init__(self, value: str, expired: bool = False) -> None:
        self.value = value
        self.expired = expired

    def is_expired(self, buffer_ms: int = 300_000) -> bool:
        return self.expired

    def __str__(self) -> str:
        return self.value


class Provider:
    def __init__(self, *tokens: SdkToken | None) -> None:
        self.tokens = list(tokens)
        self.asked = 0

    async def get_app_token(self) -> SdkToken | None:
        self.asked += 1
        return self.tokens.pop(0)


def test_the_bot_token_is_asked_for_again_only_near_expiry_or_after_its_max_age() -> None:
    clock = Clock()
    first, second, third = SdkToken("one"), SdkToken("two"), SdkToken("three")
    provider = Provider(first, second, third)
    token = BotToken(provider, max_age=600, clock=clock)

    assert [asyncio.run(token.get()) for _ in range(3)] == ["one"] * 3
    assert provider.asked == 1
    first.expired = True  # within the SDK's five-minute margin
    assert asyncio.run(token.get()) == "two"
    clock.now += 601
    assert asyncio.run(token.get()) == "three"
    assert provider.asked == 3


def test_without_credentials_there_is_no_bot_token() -> None:
    provider = Provider(None, None)
    token = BotToken(provider)
    assert asyncio.run(token.get()) is None
    assert asyncio.run(token.get()) is None
    assert provider.asked == 2  # nothing to keep, so asked each time


# ---------------------------------------------------------------------- Connector
@pytest.fixture
def connector(tmp_path: Path) -> Iterator[BotConnector]:
    with BotConnector(tmp_path) as server:
        yield server


@pytest.fixture
def client() -> Iterator[Connector]:
    c = Connector(timeout=5)
    yield c
    c.close()


def address(connector: BotConnector, conversation: str) -> Address:
    return Address(
        connector.url,
        {"id": conversation, "conversationType": "channel", "tenantId": "t-1"},
        {"id": "28:bot", "name": "kpibot"},
    )


def test_a_message_is_posted_to_the_conversation_as_the_bot_with_its_token(
    connector: BotConnector, client: Connector
) -> None:
    thread = "19:abc@thread.tacv2;messageid=1700000000000"
    activity = {"type": "message", "attachments": [{"contentType": "text/plain", "content": "x"}]}

    sent_id = client.send(address(connector, thread), activity, "tok")

    (sent,) = connector.wait_for_activities(1)
    assert sent.verb == "POST" and sent.conversation == thread and sent.activity_id is None
    assert sent_id.startswith("1700000000")  # the id the connector gave it
    assert sent.headers["Authorization"] == "Bearer tok"
    assert sent.headers["User-Agent"].startswith("kpibot/")
    assert sent.body["from"] == {"id": "28:bot", "name": "kpibot"}
    assert sent.body["conversation"]["id"] == thread and sent.body["type"] == "message"
    assert sent.body["attachments"] == activity["attachments"]
    assert "from" not in activity  # the caller's activity is left as it was


def test_replace_puts_the_activity_in_place_of_the_card(
    connector: BotConnector, client: Connector
) -> None:
    to = address(connector, "a:personal")
    assert client.send(to, {"type": "message"}, None, replace="1700000000042") == "1700000000042"

    (sent,) = connector.wait_for_activities(1)
    assert sent.verb == "PUT" and sent.activity_id == "1700000000042"
    assert sent.body["id"] == "1700000000042"
    assert "Authorization" not in sent.headers  # no credentials (auth off): none sent


def test_a_refusal_is_raised_with_its_status(connector: BotConnector, client: Connector) -> None:
    connector.fail_next(403)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        client.send(address(connector, "a:personal"), {"type": "message"}, "tok")
    assert refused.value.response.status_code == 403


def test_the_address_of_an_inbound_activity_answers_in_its_own_thread() -> None:
    from microsoft_teams.api.activities import ActivityTypeAdapter

    raw = personal_message(URL, "kpi status")
    activity = ActivityTypeAdapter.validate_python(raw)
    to = Address.of(activity)
    assert to.service_url == URL and to.conversation_id == raw["conversation"]["id"]
    assert to.bot["id"] == raw["recipient"]["id"]
    assert to.url().startswith(f"{URL}v3/conversations/") and to.url().endswith("/activities")
    assert to.url("17/x?y").endswith("/activities/17%2Fx%3Fy")  # an id cannot leave its path
