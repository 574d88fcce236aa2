"""Test doubles for Slack: a recording Web API server and signed request builders."""

from tests.slack_mock.server import RecordedRequest, SlackApiServer
from tests.slack_mock.signing import (
    app_home_opened_event,
    block_action_body,
    event_body,
    file_shared_event,
    message_with_file_event,
    signed_headers,
    slash_command_body,
    view_submission_body,
)

__all__ = [
    "RecordedRequest",
    "SlackApiServer",
    "app_home_opened_event",
    "block_action_body",
    "event_body",
    "file_shared_event",
    "message_with_file_event",
    "signed_headers",
    "slash_command_body",
    "view_submission_body",
]
