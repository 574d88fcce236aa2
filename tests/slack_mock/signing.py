"""Signed Slack requests, built from real payload shapes in ``payloads/``.

Bodies are the exact strings Slack posts; sign them and send them to the app::

    body = slash_command_body("status ACME-7", response_url=slack.response_url())
    http.post("/slack/events", content=body, headers=signed_headers(body, SECRET))
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

JsonDict = dict[str, Any]
APP_ID = "A0KPIBOT1"
TRIGGER_ID = "1337.42.c0ffee"
# Loopback discard port: a test that forgets to pass a URL fails fast and never reaches Slack.
UNROUTED_URL = "http://127.0.0.1:9"
_event_ids = itertools.count(1)
PAYLOADS = Path(__file__).parent / "payloads"


def _payload(name: str) -> JsonDict:
    """A fresh copy of a stored real-shaped payload, safe to modify."""
    payload: JsonDict = json.loads((PAYLOADS / f"{name}.json").read_text())
    return payload


def signed_headers(body: str, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack sends with ``body``; ``timestamp`` defaults to now (bolt rejects >5 min)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body) or ""
    is_json = body.startswith("{")
    content_type = "application/json" if is_json else "application/x-www-form-urlencoded"
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }


def slash_command_body(
    text: str,
    user_id: str = "U1",
    channel_id: str = "C1",
    command: str = "/kpi",
    response_url: str = f"{UNROUTED_URL}/response/unset",
    team_id: str = "T1",
    trigger_id: str = TRIGGER_ID,
) -> str:
    """The form-encoded body of a slash command invocation."""
    return urlencode(
        {
            "token": "unused-verification-token",
            "team_id": team_id,
            "team_domain": "kpibot-test",
            "channel_id": channel_id,
            "channel_name": "kpi-reports",
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    )


def _form(payload: JsonDict) -> str:
    return urlencode({"payload": json.dumps(payload)})


def block_action_body(
    action_id: str,
    value: str,
    user_id: str = "U1",
    channel_id: str = "C1",
    response_url: str = f"{UNROUTED_URL}/response/unset",
    block_id: str = "kpi_actions",
) -> str:
    """A button click on a message, as the ``payload=`` form Slack posts."""
    payload = _payload("block_actions")
    payload["user"] |= {"id": user_id, "username": user_id.lower(), "name": user_id.lower()}
    payload["channel"]["id"] = payload["container"]["channel_id"] = channel_id
    payload["response_url"] = response_url
    payload["actions"][0] |= {"action_id": action_id, "value": value, "block_id": block_id}
    return _form(payload)


def view_submission_body(
    callback_id: str,
    values: dict[str, dict[str, Any]],
    private_metadata: str = "",
    user_id: str = "U1",
) -> str:
    """A modal submission; ``values`` is ``{block_id: {action_id: "text" or state dict}}``."""
    payload = _payload("view_submission")
    payload["user"] |= {"id": user_id, "username": user_id.lower(), "name": user_id.lower()}
    state = {
        block: {
            action: v if isinstance(v, dict) else {"type": "plain_text_input", "value": v}
            for action, v in actions.items()
        }
        for block, actions in values.items()
    }
    payload["view"] |= {"callback_id": callback_id, "private_metadata": private_metadata}
    payload["view"]["state"]["values"] = state
    return _form(payload)


def event_body(event: JsonDict, team_id: str = "T1", event_time: int = 1700000000) -> str:
    """An Events API ``event_callback`` envelope around ``event``."""
    envelope = _payload("event_callback")
    envelope |= {"team_id": team_id, "context_team_id": team_id, "event": event}
    envelope |= {"event_id": f"Ev{next(_event_ids):010d}", "event_time": event_time}
    envelope["authorizations"][0]["team_id"] = team_id
    return json.dumps(envelope)


def app_home_opened_event(user_id: str = "U1", tab: str = "home") -> JsonDict:
    event = {"type": "app_home_opened", "user": user_id, "channel": "D0HOME1", "tab": tab}
    return event | {"event_ts": "1700000000.000400"}


def file_shared_event(file_id: str = "F1", user_id: str = "U1", channel_id: str = "C1") -> JsonDict:
    event = {
        "type": "file_shared",
        "channel_id": channel_id,
        "file_id": file_id,
        "user_id": user_id,
    }
    return event | {"file": {"id": file_id}, "event_ts": "1700000000.000500"}


def message_with_file_event(
    file_id: str = "F1",
    name: str = "kpi-march.xlsx",
    url_private: str = f"{UNROUTED_URL}/files/F1",
    user_id: str = "U1",
    channel_id: str = "C1",
    text: str = "March figures",
) -> JsonDict:
    """A ``message``/``file_share`` event; pass ``slack.host_file(...)`` as ``url_private``."""
    event: JsonDict = _payload("event_callback")["event"]
    event |= {"user": user_id, "channel": channel_id, "text": text}
    urls = {"url_private": url_private, "url_private_download": url_private}
    event["files"][0] |= {"id": file_id, "name": name, "title": name, "user": user_id, **urls}
    return event
