"""Test doubles for Teams: a recording Bot Connector (with Microsoft's token endpoints) and activities."""

from tests.teams_mock.activities import (
    BOT_ID,
    CASEY,
    CHANNEL,
    PRIYA,
    STRANGER,
    TEAM_GENERAL,
    bot_added,
    card_submit,
    channel_message,
    file_consent,
    file_upload,
    personal_message,
)
from tests.teams_mock.connector import BotConnector, Recorded

__all__ = [
    "BOT_ID",
    "CASEY",
    "CHANNEL",
    "PRIYA",
    "STRANGER",
    "TEAM_GENERAL",
    "BotConnector",
    "Recorded",
    "bot_added",
    "card_submit",
    "channel_message",
    "file_consent",
    "file_upload",
    "personal_message",
]
