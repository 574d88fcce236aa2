"""The ``slack_api`` pytest fixture: a fresh recording Slack Web API per test.

Import the function under its own name, so that the ``slack_api`` test argument does not
shadow an import (ruff F811)::

    from tests.slack_mock.fixtures import slack_api_fixture  # noqa: F401

    def test_posts(slack_api: SlackApiServer) -> None:
        WebClient(token="xoxb-test", base_url=slack_api.api_url).chat_postMessage(channel="C1")
        assert slack_api.calls("chat.postMessage")

``from tests.slack_mock.fixtures import slack_api`` works too, at the price of F811 noqa.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.slack_mock.server import SlackApiServer


@pytest.fixture(name="slack_api")
def slack_api_fixture() -> Iterator[SlackApiServer]:
    # One server per test (starting one takes about a millisecond) keeps the fixture
    # importable on its own and makes leaked state between tests impossible.
    with SlackApiServer() as server:
        yield server


slack_api = slack_api_fixture
