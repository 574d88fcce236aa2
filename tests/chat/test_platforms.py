"""One scenario, Slack and Teams, one process: both platforms must tell people the same facts.

The app serves ``/slack/events`` and ``/api/messages`` side by side. A commissioner asks for the
trust's status, a provider previews and confirms a figure, then asks about a contract that is not
theirs. Each platform's answer is read back to plain lines (Block Kit sections or Adaptive Card
text and table cells, markdown removed), and the facts read from those lines must be the same.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from kpibot.app.server import create_app
from kpibot.app.wiring import build_bot
from kpibot.commands.bot import Bot
from kpibot.core.settings import Settings
from tests.slack_mock import SlackApiServer, block_action_body, signed_headers, slash_command_body
from tests.teams_mock import CASEY, PRIYA, BotConnector, card_submit, personal_message
from tests.teams_mock.harness import (
    connector_members,
    copy_db,
    loopback_only,  # noqa: F401  (autouse)
    seed_database,
    serving,
    teams_env,
    write_access_file,
)

SIGNING_SECRET = "test-signing-secret"
EXPECTED = {
    "C7": ("🔴", "42%"),
    "preview": "86% against a 90% target: amber",
    "confirmed": "Amended 86% for C1 2019/20 Q3",
    "stored": [96.0, 86.0],
    "refused": "Sorry, viewing on 'healthy-child-0-19' is not open to you",
    "both_routes": True,
}


class Driver(Protocol):
    users: dict[str, str]

    def ask(self, role: str, text: str) -> list[str]: ...

    def confirm(self, role: str) -> list[str]: ...


def plain(text: str) -> str:
    """Markdown and quotes removed, so Slack's and Teams' renderings read alike."""
    return (
        re.sub(r"[*`“”]", "", text).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    )


@dataclass
class SlackDriver:
    http: Any
    slack: SlackApiServer
    users: dict[str, str] = field(
        default_factory=lambda: {"commissioner": "U-COMMISSIONER", "provider": "U-TRUST"}
    )
    last: list[dict[str, Any]] = field(default_factory=list)

    def ask(self, role: str, text: str) -> list[str]:
        seen = len(self.slack.responses)
        body = slash_command_body(
            text,
            user_id=self.users[role],
            channel_id="C1",
            response_url=self.slack.response_url(f"r{seen}"),
        )
        self.http.post("/slack/events", content=body, headers=signed_headers(body, SIGNING_SECRET))
        return self._lines(self.slack.wait_for("/response/", seen + 1, timeout=15)[-1])

    def confirm(self, role: str) -> list[str]:
        (button,) = [
            e
            for b in self.last
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"].startswith("kpi_confirm")
        ]
        seen = len(self.slack.responses)
        body = block_action_body(
            button["action_id"],
            button["value"],
            user_id=self.users[role],
            channel_id="C1",
            response_url=self.slack.response_url(f"r{seen}"),
        )
        self.http.post("/slack/events", content=body, headers=signed_headers(body, SIGNING_SECRET))
        return self._lines(self.slack.wait_for("/response/", seen + 1, timeout=15)[-1])

    def _lines(self, response: dict[str, Any]) -> list[str]:
        self.last = response["blocks"]
        lines = []
        for block in self.last:
            texts = [block["text"]["text"]] if "text" in block else []
            texts += [
                e["text"] for e in block.get("elements", []) if isinstance(e.get("text"), str)
            ]
            lines += [plain(line) for t in texts for line in t.splitlines()]
        return lines


@dataclass
class TeamsDriver:
    http: Any
    connector: BotConnector
    users: dict[str, Any] = field(
        default_factory=lambda: {"commissioner": CASEY, "provider": PRIYA}
    )
    last: dict[str, Any] = field(default_factory=dict)
    last_id: str = ""

    def ask(self, role: str, text: str) -> list[str]:
        return self._post(personal_message(self.connector.url, f"kpi {text}", self.users[role]))

    def confirm(self, role: str) -> list[str]:
        (data,) = [a["data"] for a in self.last["actions"] if a["title"] == "Confirm"]
        return self._post(
            card_submit(self.connector.url, data, reply_to=self.last_id, user=self.users[role])
        )

    def _post(self, activity: dict[str, Any]) -> list[str]:
        seen = len(self.connector.activities)
        token = self.connector.token(activity["serviceUrl"])
        self.http.post("/api/messages", json=activity, headers={"Authorization": f"Bearer {token}"})
        sent = self.connector.wait_for_activities(seen + 1)[-1]
        self.last_id = f"1700000000{seen + 1:03d}"
        (self.last,) = sent.cards
        lines: list[str] = []
        for element in self.last["body"]:
            if element["type"] == "TextBlock":
                lines += [plain(line) for line in element["text"].splitlines()]
            elif element["type"] == "Table":
                for row in element["rows"][1:]:
                    cells = [" ".join(i["text"] for i in c["items"]) for c in row["cells"]]
                    lines.append(plain(" · ".join(cells)))
        return lines


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed_database(tmp_path_factory.mktemp("cross-seed") / "kpibot.db")


@pytest.fixture
def app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slack_api: SlackApiServer, seeded: Path
) -> Iterator[tuple[Any, Bot, SlackApiServer, BotConnector]]:
    with BotConnector(tmp_path) as connector:
        connector_members(connector)
        teams_env(
            monkeypatch,
            copy_db(seeded, tmp_path),
            write_access_file(tmp_path / "a.yaml"),
            connector,
        )
        monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
        monkeypatch.setenv("SLACK_API_URL", slack_api.api_url)
        settings = Settings()
        bot = build_bot(settings)
        with serving(create_app(settings, bot)) as http:
            yield http, bot, slack_api, connector
        bot.services.db.dispose()


def facts_of(driver: Driver, bot: Bot) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    status = driver.ask("commissioner", "status childrens-trust")
    for line in status:
        found = re.match(r"^(🔴|🟠|🟢|⚪) C7 · .*? · (\d+%) · ", line)
        if found:
            facts["C7"] = found.groups()
    preview = " ".join(
        driver.ask("provider", "submit childrens-trust C1 2019/20 Q3 86/100 reason: recount")
    )
    found = re.search(r"(\d+%) against a (\d+%) target: (\w+)", preview)
    facts["preview"] = found.group(0) if found else preview
    confirmed = " ".join(driver.confirm("provider"))
    found = re.search(r"Amended \S+ for C1 2019/20 Q3", confirmed)
    facts["confirmed"] = found.group(0) if found else confirmed
    facts["stored"] = [
        f.value for f in bot.services.figures.history("childrens-trust", "C1", "2019/20 Q3")
    ]
    refusal = " ".join(driver.ask("provider", "status healthy-child-0-19"))
    found = re.search(r"Sorry, \w+ on '[\w-]+' is not open to you", refusal)
    facts["refused"] = found.group(0) if found else refusal
    return facts


@pytest.mark.parametrize("platform", ["slack", "teams"])
def test_the_same_scenario_gives_the_same_facts_on_slack_and_teams(app: Any, platform: str) -> None:
    http, bot, slack, connector = app
    driver: Driver = (
        SlackDriver(http, slack) if platform == "slack" else TeamsDriver(http, connector)
    )

    facts = facts_of(driver, bot)

    # One process serves both: the other platform's route answers too (401/401 unsigned, not 404).
    time.sleep(0.05)
    facts["both_routes"] = (
        http.post("/slack/events", content="x").status_code == 401
        and http.post("/api/messages", json={}).status_code == 401
    )
    assert facts == EXPECTED
