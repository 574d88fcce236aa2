"""Teams activities for tests, built from the recorded shapes in ``tests/fixtures/teams/``.

Each builder loads a fixture and changes only what a test is about (text, user, card value, the
file's download URL) plus the ``serviceUrl``, which points at the local connector.
"""

from __future__ import annotations

import copy
import itertools
import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "teams"
BOT_ID = "28:00000000-0000-0000-0000-0000000b07b0"
CHANNEL = "19:7f3c5e1a9b2d4c6e8f0a1b3c5d7e9f1a@thread.tacv2"
TEAM_GENERAL = "19:0a2c4e6f8b1d3f5a7c9e1b3d5f7a9c1e@thread.tacv2"

# Who is who in tests/chat/test_teams.py's access file: Priya by AAD object id, Casey by e-mail.
PRIYA = {
    "id": "29:1TrGqDxV4Pv0hGQ3xZc6bHdXhU9vJwP1oYzPq0s8Bc2kJtZcRvC5xWfE0aG7nL3mQpR2tY4uI6oP8aS9dF1gH",
    "name": "Priya Shah",
    "aadObjectId": "6e1b8a2c-4f3d-4c1e-9a55-1d2b3c4d5e6f",
}
CASEY = {
    "id": "29:1Xk2cQ9rT5vB8nM1zL4aS7dF0gH3jK6lP9oI2uY5tR8eW1qA4sD7fG0hJ3kL6zX9cV2bN5mQ8wE1rT4yU7iO0p",
    "name": "Casey Morgan",
    "aadObjectId": "c0ffee00-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
}
STRANGER = {
    "id": "29:1Zz9yX8wV7uT6sR5qP4oN3mL2kJ1iH0gF9eD8cB7aZ6yX5wV4uT3sR2qP1oN0mL9kJ8iH7gF6eD5cB4aZ3yX2w",
    "name": "Sam Stranger",
    "aadObjectId": "0badc0de-0000-4000-8000-000000000000",
}
_ids = itertools.count(1)


@cache
def _fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def fixture(name: str, service_url: str, **changes: Any) -> dict[str, Any]:
    """A fresh copy of fixture ``name`` with a unique id, ``serviceUrl`` and ``changes`` applied."""
    activity = copy.deepcopy(_fixture(name))
    activity["serviceUrl"] = service_url
    activity["id"] = f"{activity['id']}{next(_ids)}"
    activity.update(changes)
    return activity


def personal_message(service_url: str, text: str, user: dict[str, str] = PRIYA) -> dict[str, Any]:
    """A message typed in the user's 1:1 chat with kpibot."""
    return fixture("personal_message", service_url, text=text, **{"from": dict(user)})


def channel_message(
    service_url: str, text: str, user: dict[str, str] = CASEY, channel: str = CHANNEL
) -> dict[str, Any]:
    """``@kpibot <text>`` in a channel: the mention is an entity, the reply goes to the thread."""
    activity = fixture("channel_mention", service_url, **{"from": dict(user)})
    activity["text"] = f"<at>kpibot</at> {text}\n"
    thread = activity["conversation"]["id"].split(";messageid=", 1)[1]
    activity["conversation"]["id"] = f"{channel};messageid={thread}"
    activity["channelData"]["channel"]["id"] = activity["channelData"]["teamsChannelId"] = channel
    return activity


def card_submit(
    service_url: str,
    value: Any,
    reply_to: str = "1582192950011",
    user: dict[str, str] = PRIYA,
    conversation: str | None = None,
) -> dict[str, Any]:
    """An ``Action.Submit`` click: a message activity with the card's data (and inputs) as ``value``."""
    activity = fixture(
        "card_submit", service_url, value=value, replyToId=reply_to, **{"from": dict(user)}
    )
    if conversation is not None:
        activity["conversation"] = {
            "isGroup": True,
            "conversationType": "channel",
            "tenantId": activity["conversation"]["tenantId"],
            "id": conversation,
        }
    return activity


def file_upload(
    service_url: str, download_url: str, name: str, text: str = "", user: dict[str, str] = PRIYA
) -> dict[str, Any]:
    """A file sent in the 1:1 chat (Teams delivers files to bots only there)."""
    activity = fixture("file_upload", service_url, text=text, **{"from": dict(user)})
    attachment = activity["attachments"][0]
    attachment["name"] = name
    attachment["content"]["downloadUrl"] = download_url
    attachment["content"]["fileType"] = name.rsplit(".", 1)[-1]
    attachment["content"]["uniqueId"] = f"{attachment['content']['uniqueId'][:-4]}{next(_ids):04d}"
    return activity


def file_consent(
    service_url: str,
    upload_url: str,
    context: Any,
    action: str = "accept",
    user: dict[str, str] = PRIYA,
) -> dict[str, Any]:
    """The user chose Allow (or Decline) on a file consent card: ``fileConsent/invoke``.

    Teams carries the card's ``acceptContext`` back as ``context``, and an upload session in the
    user's OneDrive as ``uploadInfo.uploadUrl``, here the connector's own https upload address.
    """
    activity = fixture("file_consent_invoke", service_url, **{"from": dict(user)})
    value = activity["value"]
    value["action"], value["context"] = action, context
    if action == "accept":
        value["uploadInfo"]["uploadUrl"] = upload_url
    else:
        del value["uploadInfo"]
    return activity


def bot_added(service_url: str, conversation: str = TEAM_GENERAL) -> dict[str, Any]:
    """kpibot added to a team: ``conversationUpdate`` with the bot in ``membersAdded``."""
    activity = fixture("conversation_update_bot_added", service_url)
    activity["conversation"]["id"] = conversation
    return activity
