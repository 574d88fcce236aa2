"""The Teams app end to end: signed activities into the real ASGI app, replies into a recording connector.

Every activity is a recorded Teams shape (``tests/fixtures/teams/``) whose ``serviceUrl`` points
at ``BotConnector``, and carries a Bot Framework JWT signed with a key the connector publishes
where the SDK's validator looks (``TEAMS_OPENID_URL``). The bot fetches its own token from the
connector's token endpoint. Tests assert on the Adaptive Cards Teams would have received.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from microsoft_teams.apps.auth import InboundActivityTokenValidator
from openpyxl import load_workbook
from PIL import Image

from kpibot.app.server import create_app
from kpibot.app.wiring import build_bot
from kpibot.chat import cards
from kpibot.chat.connector import Address, Connector
from kpibot.chat.slack_deliverer import SlackDeliverer
from kpibot.chat.teams import (
    AUTH_OFF,
    FILE_DECLINED,
    NOT_FROM_KPIBOT,
    render,
    teams_deliverer,
)
from kpibot.commands.bot import Bot
from kpibot.commands.tokens import verify
from kpibot.core.audience import audience_targets
from kpibot.core.protocol import Action, Cell, Reply
from kpibot.core.settings import Settings
from kpibot.features.bind import ConversationStore, bindings_by_contract, stored_binding
from kpibot.scheduler.dispatch import Dispatcher
from kpibot.store.outbox import OutboxEntry, OutboxRepository
from tests.teams_mock import (
    CASEY,
    CHANNEL,
    PRIYA,
    STRANGER,
    TEAM_GENERAL,
    BotConnector,
    Recorded,
    bot_added,
    card_submit,
    channel_message,
    file_consent,
    file_upload,
    personal_message,
)
from tests.teams_mock.auth import TokenIssuer
from tests.teams_mock.harness import (
    SECRET_KEY,
    card_actions,
    card_text,
    cell_text,
    connector_members,
    copy_db,
    loopback_only,  # noqa: F401  (autouse)
    seed_database,
    serving,
    table_rows,
    teams_env,
    write_access_file,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BAD_CSV = b"kpi,period,value\nS11,2019/20 Q3,50\nC1,2019/20 Q3,abc\n"
GOOD_CSV = b"kpi,period,value\nS11,2019/20 Q3,50\n"


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def seeded_teams_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed_database(tmp_path_factory.mktemp("teams-seed") / "kpibot.db")


@pytest.fixture
def connector(tmp_path: Path) -> Iterator[BotConnector]:
    with BotConnector(tmp_path) as server:
        connector_members(server)
        yield server


@dataclass
class Harness:
    http: Any
    bot: Bot
    connector: BotConnector
    settings: Settings

    def post(self, activity: dict[str, Any], token: str | None = "valid") -> Any:
        headers = {}
        if token == "valid":
            headers["Authorization"] = f"Bearer {self.connector.token(activity['serviceUrl'])}"
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.post("/api/messages", json=activity, headers=headers)

    def say(self, text: str, user: dict[str, str] = PRIYA) -> Recorded:
        """Type ``text`` in the user's 1:1 chat; return the bot's answer."""
        before = len(self.connector.activities)
        assert self.post(personal_message(self.connector.url, text, user)).status_code == 200
        return self.connector.wait_for_activities(before + 1)[-1]

    def click(self, value: Any, reply_to: str, user: dict[str, str] = PRIYA) -> Recorded:
        before = len(self.connector.activities)
        activity = card_submit(self.connector.url, value, reply_to=reply_to, user=user)
        assert self.post(activity).status_code == 200
        return self.connector.wait_for_activities(before + 1)[-1]

    def current(self, contract: str, kpi: str, period: str) -> list[Any]:
        return [f for f in self.bot.services.figures.current(contract, kpi) if f.period == period]


@pytest.fixture
def harness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, connector: BotConnector, seeded_teams_db: Path
) -> Iterator[Harness]:
    teams_env(
        monkeypatch,
        copy_db(seeded_teams_db, tmp_path),
        write_access_file(tmp_path / "access.yaml"),
        connector,
    )
    settings = Settings()
    bot = build_bot(settings)
    with serving(create_app(settings, bot)) as http:
        yield Harness(http, bot, connector, settings)
    bot.services.db.dispose()


def the_card(recorded: Recorded) -> dict[str, Any]:
    (card,) = recorded.cards
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.5"
    assert cards.card_size(card) <= cards.MAX_CARD_BYTES
    return card


def action_data(card: dict[str, Any], title: str) -> dict[str, Any]:
    (action,) = [a for a in card_actions(card) if a["title"] == title]
    assert action["type"] == "Action.Submit"
    data: dict[str, Any] = action["data"]
    return data


# ---------------------------------------------------------------------- status
def test_status_in_the_personal_chat_is_a_card_with_a_rag_table(harness: Harness) -> None:
    sent = harness.say("kpi status childrens-trust")

    assert (
        sent.verb == "POST" and sent.conversation == personal_message("x", "")["conversation"]["id"]
    )
    assert sent.headers["Authorization"].startswith("Bearer ey")  # the bot's own token, fetched
    asked = personal_message("x", "")
    assert sent.body["from"]["id"] == asked["recipient"]["id"]  # as the bot, to the same chat
    assert sent.body["conversation"]["id"] == asked["conversation"]["id"]
    card = the_card(sent)
    assert "Children's Trust" in card["body"][0]["text"]
    (c7, *_rest) = table_rows(card)
    assert cell_text(c7[0]) == "🔴 C7" and c7[0]["style"] == "attention"
    assert c7[0]["items"][0]["color"] == "Attention"
    assert cell_text(c7[2]) == "42%" and "60%" in cell_text(c7[3])
    assert cell_text(c7[4]) == "↘ worsening"
    styles = {c[0].get("style") for c in table_rows(card)}
    assert styles <= {"attention", "warning"} and "warning" in styles
    assert action_data(card, "Chart C7") == {"kpibot": {"command": "chart childrens-trust C7"}}
    assert action_data(card, "Chart C7") and card_actions(card)[0]["style"] == "positive"
    stored = ConversationStore(harness.bot.services.db).get("teams", sent.conversation or "")
    assert stored is not None and stored.service_url == harness.connector.url


def test_channel_mention_answers_in_the_thread_with_the_bound_contract(harness: Harness) -> None:
    activity = channel_message(harness.connector.url, "status")
    assert harness.post(activity).status_code == 200

    (sent,) = harness.connector.wait_for_activities(1)
    assert sent.conversation == activity["conversation"]["id"]  # the thread (;messageid=…)
    card = the_card(sent)
    assert "Children's Trust" in card["body"][0]["text"]  # from the channel's binding
    # Casey is known by e-mail only: one member lookup, then the cached address.
    harness.post(channel_message(harness.connector.url, "whoami"))
    whoami = harness.connector.wait_for_activities(2)[1]
    assert "Casey (Council commissioner)" in card_text(the_card(whoami))
    lookups = [r for r in harness.connector.requests if "/members/" in r.path]
    assert len(lookups) == 1 and lookups[0].verb == "GET"


def test_a_provider_asking_about_another_contract_is_refused_and_audited(harness: Harness) -> None:
    card = the_card(harness.say("kpi status healthy-child-0-19"))

    assert "not open to you" in card_text(card) and "Traceback" not in card_text(card)
    refused = [e for e in harness.bot.services.audit.recent(10) if e.outcome == "refused"]
    assert [(e.actor, e.contract_id) for e in refused] == [
        (PRIYA["aadObjectId"], "healthy-child-0-19")
    ]


# ---------------------------------------------------------------------- submit, confirm, tampering
def test_submit_previews_then_confirm_updates_the_card_and_stores_once(harness: Harness) -> None:
    assert [f.value for f in harness.current("childrens-trust", "C1", "2019/20 Q3")] == [96.0]
    preview = harness.say("kpi submit childrens-trust C1 2019/20 Q3 86/100 reason: recount")
    card = the_card(preview)
    text = card_text(card)
    assert "**86%** against a 90% target: **amber**" in text and "**replaces** 96%" in text
    confirm = action_data(card, "Confirm")
    assert verify(confirm["kpibot"]["token"], SECRET_KEY.encode())["u"] == PRIYA["aadObjectId"]
    assert action_data(card, "Cancel") == {"kpibot": {"command": "cancel"}}

    preview_id = "1700000000001"
    done = harness.click(confirm, reply_to=preview_id)
    assert done.verb == "PUT" and done.activity_id == preview_id  # the preview card is replaced
    assert "Amended" in card_text(the_card(done))
    assert [f.value for f in harness.current("childrens-trust", "C1", "2019/20 Q3")] == [86.0]

    # A double click (or Teams redelivering) stores nothing new.
    again = harness.click(confirm, reply_to=preview_id)
    assert "Already recorded" in card_text(the_card(again))
    history = harness.bot.services.figures.history("childrens-trust", "C1", "2019/20 Q3")
    assert [f.value for f in history] == [96.0, 86.0]


@pytest.mark.parametrize("tamper", ["token", "value", "shape", "foreign", "other-user"])
def test_a_tampered_card_submit_is_refused_and_stores_nothing(
    harness: Harness, tamper: str
) -> None:
    preview = the_card(harness.say("kpi submit childrens-trust S25 2019/20 Q3 8/100"))
    token = action_data(preview, "Confirm")["kpibot"]["token"]
    body, mac = token.rsplit(".", 1)
    user = PRIYA
    value: Any
    if tamper == "token":  # the figure inside the token changed, the signature kept
        value = {
            "kpibot": {"token": body[:-4] + ("AAAA" if body[-4:] != "AAAA" else "BBBB") + "." + mac}
        }
    elif tamper == "value":
        value = {"kpibot": {"token": token, "command": "status"}}
    elif tamper == "shape":
        value = {"kpibot": {"command": ["submit", "childrens-trust"]}}
    elif tamper == "foreign":
        value = {"action": "approve", "amount": 1}
    else:  # another user's confirmation, clicked by someone who sees the card
        value, user = {"kpibot": {"token": token}}, STRANGER

    answer = harness.click(value, reply_to="1700000000001", user=user)

    assert answer.verb == "POST"  # a refusal never replaces the preview card
    text = card_text(the_card(answer))
    assert "Not accepted" in text or "not open to you" in text
    if tamper in ("value", "shape", "foreign"):
        assert NOT_FROM_KPIBOT in text
    assert harness.bot.services.figures.history("childrens-trust", "S25", "2019/20 Q3") == []


def test_cancel_replaces_the_preview_card(harness: Harness) -> None:
    preview = the_card(harness.say("kpi submit childrens-trust S25 2019/20 Q3 8/100"))

    answer = harness.click(action_data(preview, "Cancel"), reply_to="1700000000001")

    assert answer.verb == "PUT" and answer.activity_id == "1700000000001"
    card = the_card(answer)
    assert "Cancelled" in card_text(card) and not card_actions(card)


def test_submit_without_arguments_is_a_form_card_whose_submission_previews(
    harness: Harness,
) -> None:
    form = the_card(harness.say("kpi submit"))
    inputs = {e["id"]: e for e in form["body"] if e["type"].startswith("Input.")}
    assert list(inputs) == ["contract", "kpi", "period", "value", "note", "reason"]
    assert inputs["contract"]["type"] == "Input.ChoiceSet"
    assert [c["value"] for c in inputs["contract"]["choices"]] == ["childrens-trust"]
    assert inputs["value"]["isRequired"] and not inputs["reason"]["isRequired"]
    (submit,) = card_actions(form)

    # Teams sends the button's data with every input's value beside it.
    value = submit["data"] | {
        "contract": "childrens-trust",
        "kpi": "C1",
        "period": "2019/20 Q3",
        "value": "86/100",
        "note": "",
        "reason": "recount after audit",
    }
    preview = the_card(harness.click(value, reply_to="1700000000001"))

    assert "**86%** against a 90% target" in card_text(preview)
    assert action_data(preview, "Confirm")["kpibot"]["token"]


# ---------------------------------------------------------------------- charts
def test_chart_is_an_inline_png_within_teams_limits(harness: Harness) -> None:
    sent = harness.say("kpi chart childrens-trust C7")

    (image,) = sent.images
    assert image["contentType"] == "image/png" and image["name"] == "childrens-trust-C7.png"
    prefix, data = image["contentUrl"].split(",", 1)
    assert prefix == "data:image/png;base64"
    png = base64.b64decode(data)
    assert png.startswith(PNG_SIGNATURE) and len(png) <= cards.MAX_IMAGE_BYTES
    assert max(Image.open(io.BytesIO(png)).size) <= cards.MAX_IMAGE_SIDE
    assert "C7" in card_text(the_card(sent))


def test_a_large_chart_is_downscaled_and_one_that_cannot_fit_is_left_out_with_a_note() -> None:
    out = io.BytesIO()
    Image.new("RGB", (3000, 1500), "white").save(out, format="PNG")
    fitted = cards.fit_image(out.getvalue())
    assert fitted is not None and max(Image.open(io.BytesIO(fitted)).size) <= 1024

    noise = io.BytesIO()
    Image.frombytes("RGB", (600, 600), bytes(range(256)) * 4218 + bytes(192)).save(noise, "PNG")
    assert cards.fit_image(noise.getvalue(), max_bytes=2_000) is None
    reply = Reply("Chart", "", chart=b"not a png", chart_name="x.png")
    activity = render(reply)
    assert [a["contentType"] for a in activity["attachments"]] == [cards.CARD_CONTENT_TYPE]
    assert cards.CHART_TOO_BIG.split(";")[0] in card_text(activity["attachments"][0]["content"])


def test_long_tables_are_cut_to_the_card_budget_with_and_n_more() -> None:
    reply = Reply(
        "Many",
        "x" * 7000,
        columns=["KPI", "Value"],
        rows=[[Cell(f"K{i}", "red"), Cell("y" * 200)] for i in range(2000)],
        actions=[Action(f"Run {i}", f"status c{i}") for i in range(40)],
    )
    card = cards.reply_card(reply)

    assert cards.card_size(card) <= cards.MAX_CARD_BYTES
    shown = len(table_rows(card))
    assert 0 < shown < 2000 and f"…and {2000 - shown} more rows." in card_text(card)
    assert len(card_actions(card)) == cards.MAX_ACTIONS


# ---------------------------------------------------------------------- file imports
def test_a_file_with_a_bad_row_is_rejected_by_the_same_validator(harness: Harness) -> None:
    url = harness.connector.host_file("q3-bad.csv", BAD_CSV)
    activity = file_upload(harness.connector.url, url, "q3-bad.csv", text="import childrens-trust")
    assert harness.post(activity).status_code == 200

    (sent,) = harness.connector.wait_for_activities(1)
    card = the_card(sent)
    text = card_text(card)
    assert "rejected" in text and "'abc' is not a number" in text
    assert ["line 3, value" in cell_text(row[0]) for row in table_rows(card)] == [True]
    assert harness.current("childrens-trust", "S11", "2019/20 Q3") == []
    (download,) = [r for r in harness.connector.requests if r.path == "/files/q3-bad.csv"]
    assert "Authorization" not in download.headers  # the bot's token never goes to storage


def test_a_good_file_is_stored_once_even_when_teams_redelivers(harness: Harness) -> None:
    url = harness.connector.host_file("q3.csv", GOOD_CSV)
    activity = file_upload(harness.connector.url, url, "q3.csv", text="import childrens-trust")
    harness.post(activity)
    assert "imported" in card_text(the_card(harness.connector.wait_for_activities(1)[0]))
    (figure,) = harness.current("childrens-trust", "S11", "2019/20 Q3")
    assert figure.value == 50.0 and figure.submitted_by == PRIYA["aadObjectId"]

    harness.post(activity)
    assert "already received" in card_text(the_card(harness.connector.wait_for_activities(2)[1]))
    assert len(harness.bot.services.figures.history("childrens-trust", "S11", "2019/20 Q3")) == 1


def test_a_file_over_5_mb_is_refused(harness: Harness) -> None:
    url = harness.connector.host_file("big.csv", GOOD_CSV + b"x" * (5 * 1024 * 1024))
    harness.post(file_upload(harness.connector.url, url, "big.csv"))

    assert "over 5 MB" in card_text(the_card(harness.connector.wait_for_activities(1)[0]))


# ---------------------------------------------------------------------- bad input, unbound chats
@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("frobnicate", "I don't know “frobnicate”"),
        ("status childrns-trust", "Did you mean 'childrens-trust'"),
        ("status childrens-trust C99", "Did you mean 'C9'"),
        ("submit childrens-trust C1 2019/20 Q4 86%", "has not ended yet"),
        ("submit childrens-trust C1 2025/26 Q1 86%", "outside the contract"),
        ("submit childrens-trust C1 2019/20 Q3 86/0", "above zero"),
        ("submit childrens-trust C1 2019/20 Q3 abc", "not a number"),
        ("submit childrens-trust C1 2019/20 Q3 120/100", "above the denominator"),
        ("chart childrens-trust C7 --years x", "whole number"),
        ("submit childrens-trust C1 2019/20 Q3 4,5%", "'4,5%' could mean 4.5% or 45%"),
        ("status childrens-trust C1 9999/00 Q4", "outside the years kpibot reads"),
        ('incident childrens-trust sui "Hurt\x00 badly"', "control character (U+0000)"),
        (
            "submit childrens-trust C1 2019/20 Q3 86% " + "n" * 5000,
            "kpibot reads commands of up to",
        ),
    ],
)
def test_bad_input_gets_one_helpful_sentence_on_teams(
    harness: Harness, text: str, words: str
) -> None:
    activity = channel_message(harness.connector.url, text, channel=TEAM_GENERAL)
    harness.post(activity)

    text_out = card_text(the_card(harness.connector.wait_for_activities(1)[0]))
    assert words in text_out and "Traceback" not in text_out


def test_a_conversation_bound_to_no_contract_gets_a_helpful_reply(harness: Harness) -> None:
    harness.post(channel_message(harness.connector.url, "status", user=PRIYA, channel=TEAM_GENERAL))
    overview = the_card(harness.connector.wait_for_activities(1)[0])
    assert "Your contracts" in card_text(overview)
    assert [cell_text(r[0]) for r in table_rows(overview)] == ["🔴 childrens-trust"]

    harness.post(
        channel_message(harness.connector.url, "status C7", user=PRIYA, channel=TEAM_GENERAL)
    )
    text = card_text(the_card(harness.connector.wait_for_activities(2)[1]))
    assert "There is no contract 'C7'" in text and "childrens-trust" in text


def test_a_stranger_gets_a_polite_answer(harness: Harness) -> None:
    text = card_text(the_card(harness.say("kpi status", user=STRANGER)))
    assert "can give you access" in text


# ---------------------------------------------------------------------- install, bind
def test_being_added_to_a_team_stores_the_reference_and_says_hello(harness: Harness) -> None:
    assert harness.post(bot_added(harness.connector.url)).status_code == 200

    (hello,) = harness.connector.wait_for_activities(1)
    assert hello.conversation == TEAM_GENERAL and "kpi bind" in card_text(the_card(hello))
    ref = ConversationStore(harness.bot.services.db).get("teams", TEAM_GENERAL)
    assert ref is not None and ref.service_url == harness.connector.url
    assert ref.conversation_type == "channel" and ref.tenant_id and ref.bot_id.startswith("28:")


def test_bind_is_for_commissioners_audited_and_stored(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = harness.connector.url
    harness.post(channel_message(url, "bind childrens-trust", user=PRIYA, channel=TEAM_GENERAL))
    assert "not open to you" in card_text(the_card(harness.connector.wait_for_activities(1)[0]))

    harness.post(channel_message(url, "bind childrens-trust", channel=TEAM_GENERAL))
    bound = the_card(harness.connector.wait_for_activities(2)[1])
    assert "Bound to childrens-trust" in card_text(bound)
    db = harness.bot.services.db
    assert stored_binding(db, "teams", TEAM_GENERAL) == "childrens-trust"
    assert bindings_by_contract(db)["childrens-trust"] == [("teams", TEAM_GENERAL)]
    (event,) = [e for e in harness.bot.services.audit.recent(10) if e.action == "bind"]
    assert event.actor == CASEY["aadObjectId"] and event.contract_id == "childrens-trust"

    harness.post(
        channel_message(url, "bind one-you-lifestyle")
    )  # CHANNEL is bound in the access file
    assert "in the access file" in card_text(the_card(harness.connector.wait_for_activities(3)[2]))
    assert stored_binding(db, "teams", CHANNEL) is None


# ---------------------------------------------------------------------- the quarterly report
REPORT_XLSX = "childrens-trust-2019-20-Q3-performance-report.xlsx"


def test_report_in_a_1_to_1_chat_is_offered_as_a_file_and_uploaded_when_accepted(
    harness: Harness,
) -> None:
    connector = harness.connector
    assert (
        harness.post(
            personal_message(connector.url, "kpi report childrens-trust 2019/20 Q3")
        ).status_code
        == 200
    )
    summary, offer = connector.wait_for_activities(2, timeout=30)[-2:]
    card = card_text(the_card(summary))
    assert "Performance report" in card and "red" in card and REPORT_XLSX in card
    (consent,) = offer.body["attachments"]
    assert consent["contentType"] == cards.FILE_CONSENT_TYPE and consent["name"] == REPORT_XLSX
    context = consent["content"]["acceptContext"]
    assert context == {"kpibot": {"command": "report childrens-trust 2019/20 Q3 xlsx"}}
    assert consent["content"]["sizeInBytes"] > 10_000

    before = len(connector.activities)
    accept = file_consent(connector.url, connector.upload_url(REPORT_XLSX), context)
    assert harness.post(accept).status_code == 200
    (sent,) = connector.wait_for_activities(before + 1, timeout=30)[before:]
    (info,) = sent.body["attachments"]
    assert info["contentType"] == cards.FILE_INFO_TYPE and info["name"] == REPORT_XLSX
    assert info["content"] == {
        "uniqueId": "1150D938-8870-4044-9F2C-5BBDEBA70C9D",
        "fileType": "xlsx",
    }
    assert info["contentUrl"].endswith(REPORT_XLSX)
    data = connector.uploads[REPORT_XLSX]
    (put,) = [r for r in connector.requests if r.path == f"/upload/{REPORT_XLSX}"]
    assert (
        put.verb == "PUT" and put.headers["Content-Range"] == f"bytes 0-{len(data) - 1}/{len(data)}"
    )
    assert "Authorization" not in put.headers  # the session URL is the permission, not our token
    refs = {c.value for c in load_workbook(io.BytesIO(data))["Scorecard"]["B"]}
    assert {"C1", "C7", "S29"} <= refs


def test_a_declined_or_forged_file_consent_sends_nothing(harness: Harness) -> None:
    connector = harness.connector
    context = {"kpibot": {"command": "report childrens-trust 2019/20 Q3 xlsx"}}
    harness.post(file_consent(connector.url, "", context, action="decline"))
    (declined,) = connector.wait_for_activities(1, timeout=15)
    assert FILE_DECLINED.split(":")[0] in card_text(the_card(declined))

    forged = {"kpibot": {"command": "submit C7 2019/20 Q3 99%"}}
    harness.post(file_consent(connector.url, connector.upload_url("x.xlsx"), forged))
    (refused,) = connector.wait_for_activities(2, timeout=15)[1:]
    assert NOT_FROM_KPIBOT in card_text(the_card(refused))
    assert not connector.uploads
    assert harness.current("childrens-trust", "C7", "2019/20 Q3")[0].value == 42


def test_a_provider_accepting_another_contracts_report_is_refused(harness: Harness) -> None:
    connector = harness.connector
    context = {"kpibot": {"command": "report healthy-child-0-19 2019/20 Q3 xlsx"}}
    harness.post(file_consent(connector.url, connector.upload_url("h.xlsx"), context, user=PRIYA))
    (refused,) = connector.wait_for_activities(1, timeout=15)
    assert "Not allowed" in card_text(the_card(refused))
    assert not connector.uploads


def test_report_in_a_channel_is_an_inline_summary_that_says_where_to_get_the_file(
    harness: Harness,
) -> None:
    harness.post(channel_message(harness.connector.url, "report 2019/20 Q3"))
    (sent,) = harness.connector.wait_for_activities(1, timeout=30)
    text = card_text(the_card(sent))
    assert "Performance report" in text and "C7" in text
    assert "only in a 1:1 chat" in text and "kpi report childrens-trust 2019/20 Q3 xlsx" in text
    assert [a["contentType"] for a in sent.body["attachments"]] == [cards.CARD_CONTENT_TYPE]


def test_a_summary_with_a_report_is_offered_in_1_to_1_chats_and_named_in_channels() -> None:
    from kpibot.chat.teams import file_offer
    from kpibot.core.protocol import Attachment

    file = Attachment(
        REPORT_XLSX, b"PK..", "application/xlsx", "report childrens-trust 2019/20 Q3 xlsx"
    )
    in_channel = Reply("Quarterly RAG summary", "6 red", attachment=file)
    assert file_offer(in_channel, personal=False) is None
    card = render(in_channel, personal=False)["attachments"][0]["content"]
    assert "message me “kpi report childrens-trust 2019/20 Q3 xlsx” there" in card_text(card)

    in_chat = Reply("Quarterly RAG summary", "6 red", attachment=file)
    offer = file_offer(in_chat, personal=True)
    assert offer is not None and offer["attachments"][0]["content"]["sizeInBytes"] == 4
    assert "1:1 chat" not in card_text(render(in_chat, personal=True)["attachments"][0]["content"])


# ---------------------------------------------------------------------- proactive delivery
def _entry(channel: str, platform: str = "teams", key: str = "r1") -> OutboxEntry:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return OutboxEntry(
        key=f"{key}|{platform}:{channel}",
        contract_id="childrens-trust",
        kind="reminder",
        audience="channel",
        platform=platform,
        channel=channel,
        period="2019/20 Q3",
        step="due",
        payload={"text": "The Q3 return is due."},
        due_at=datetime(2020, 2, 20, 9, 0, tzinfo=ZoneInfo("Europe/London")),
    )


def test_a_proactive_reminder_reaches_the_recorded_conversation_exactly_once(
    harness: Harness,
) -> None:
    harness.post(bot_added(harness.connector.url))
    harness.connector.wait_for_activities(1)
    services = harness.bot.services
    outbox = OutboxRepository(services.db)
    now = services.now()
    outbox.enqueue([_entry(TEAM_GENERAL), _entry("19:never-seen@thread.tacv2")], now)
    outbox.enqueue([_entry(TEAM_GENERAL)], now)  # the tick wrote it twice: stored once
    deliverer = teams_deliverer(harness.settings, services)
    assert deliverer is not None
    harness.connector.fail_next(429, retry_after=1)
    dispatcher = Dispatcher(outbox, {"teams": deliverer}, sleep=lambda _s: None)
    try:
        assert dispatcher.drain(now) == 0  # throttled: rescheduled, not failed
        assert dispatcher.drain(now + timedelta(seconds=2)) == 1
        assert dispatcher.drain(now + timedelta(minutes=10)) == 0
    finally:
        deliverer.close()

    reminders = [r for r in harness.connector.activities if r.conversation == TEAM_GENERAL][1:]
    assert len(reminders) == 2  # one refused with 429, one delivered
    card = the_card(reminders[-1])
    assert "The Q3 return is due." in card_text(card)
    assert reminders[-1].headers["Authorization"].startswith("Bearer ey")
    counts = outbox.counts()
    assert counts.get("sent") == 1 and counts.get("failed") == 1  # no reference: given up at once


def test_a_contract_notifies_a_slack_channel_and_a_teams_channel_at_once(
    harness: Harness,
    slack_api: Any,
) -> None:
    from slack_sdk import WebClient

    harness.post(channel_message(harness.connector.url, "status"))  # stores CHANNEL's reference
    harness.connector.wait_for_activities(1)
    services = harness.bot.services
    contract = services.contract("childrens-trust")
    assert contract is not None
    targets = audience_targets(contract, "channel", harness.bot.policy)
    assert ("slack", "C-TRUST") in targets and ("teams", CHANNEL) in targets
    outbox = OutboxRepository(services.db)
    now = services.now()
    outbox.enqueue(
        [
            _entry(channel, platform)
            for platform, channel in targets
            if platform in ("slack", "teams")
        ],
        now,
    )
    deliverer = teams_deliverer(harness.settings)  # as the scheduler's runner builds it
    assert deliverer is not None
    slack = SlackDeliverer(WebClient(token="xoxb-test", base_url=slack_api.api_url))
    try:
        sent = Dispatcher(
            outbox, {"teams": deliverer, "slack": slack}, sleep=lambda _s: None
        ).drain(now)
    finally:
        deliverer.close()

    assert sent == 2
    (posted,) = slack_api.calls("chat.postMessage")
    assert posted["channel"] == "C-TRUST"
    teams = [r for r in harness.connector.activities if r.conversation == CHANNEL]
    assert len(teams) == 1 and "The Q3 return is due." in card_text(the_card(teams[0]))


class _RefuseFirstOffer(Connector):
    """Teams throttles the first file offer (after the summary went out), as a 429 would."""

    armed = True

    def send(self, to: Address, activity: dict[str, Any], token: str | None, **kw: Any) -> str:
        attachments = activity.get("attachments") or [{}]
        if self.armed and attachments[0].get("contentType") == cards.FILE_CONSENT_TYPE:
            self.armed = False
            request = httpx.Request("POST", to.url())
            response = httpx.Response(429, headers={"Retry-After": "1"}, request=request)
            raise httpx.HTTPStatusError("throttled", request=request, response=response)
        return super().send(to, activity, token, **kw)


def test_a_summary_in_a_1_to_1_chat_offers_its_report_and_a_retry_sends_only_the_offer(
    harness: Harness,
) -> None:
    from kpibot.features.summary import composer

    reply = harness.say("kpi whoami")  # Priya's 1:1 chat: its reference is stored
    chat = reply.conversation
    assert chat is not None and chat.startswith("a:")
    services = harness.bot.services
    now = services.now()
    outbox = OutboxRepository(services.db)
    entry = OutboxEntry(
        "summary|teams:chat", "childrens-trust", "summary", "channel", "teams", chat,
        "2019/20 Q3", "summary", now, {"text": "Quarterly RAG summary"},
    )  # fmt: skip
    outbox.enqueue([entry], now)
    deliverer = teams_deliverer(harness.settings, services)
    assert deliverer is not None
    deliverer.connector = _RefuseFirstOffer()
    dispatcher = Dispatcher(outbox, {"teams": deliverer}, composer(services), sleep=lambda _s: None)
    try:
        assert dispatcher.drain(now) == 0  # the summary went out; the offer was throttled
        assert dispatcher.drain(now + timedelta(seconds=2)) == 1
    finally:
        deliverer.close()

    sent = [r for r in harness.connector.activities if r.conversation == chat][1:]
    assert len(sent) == 2  # the summary once, then the offer: nothing twice
    assert "Quarterly RAG summary" in card_text(the_card(sent[0]))
    (offer,) = sent[1].body["attachments"]
    assert offer["contentType"] == cards.FILE_CONSENT_TYPE and offer["name"] == REPORT_XLSX
    assert offer["content"]["acceptContext"]["kpibot"]["command"] == (
        "report childrens-trust 2019/20 Q3 xlsx"
    )


# ---------------------------------------------------------------------- security
def test_a_missing_or_invalid_token_is_rejected(harness: Harness) -> None:
    url = harness.connector.url
    now_activity = personal_message(url, "kpi status childrens-trust")
    forged = TokenIssuer(kid=harness.connector.issuer.kid).token(harness.connector.app_id, url)
    cases = {
        "missing": None,
        "not a jwt": "not-a-token",
        "another key": forged,
        "wrong audience": harness.connector.issuer.token("someone-else", url),
        "other serviceUrl": harness.connector.token("https://evil.example/"),
        "expired": harness.connector.token(url, lifetime_s=-3600),
    }
    for name, token in cases.items():
        assert harness.post(now_activity, token=token).status_code == 401, name
    assert harness.post(now_activity).status_code == 200
    assert len(harness.connector.wait_for_activities(1)) == 1


def test_a_token_is_checked_once_and_never_accepted_for_another_service_url(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[str | None] = []
    sdk_check = InboundActivityTokenValidator.validate_token

    async def counted(self: Any, raw_token: str, service_url: str | None = None) -> Any:
        checks.append(service_url)
        return await sdk_check(self, raw_token, service_url)

    monkeypatch.setattr(InboundActivityTokenValidator, "validate_token", counted)
    url = harness.connector.url
    token = harness.connector.token(url)
    for text in ("kpi whoami", "kpi help", "kpi status childrens-trust"):
        assert harness.post(personal_message(url, text), token=token).status_code == 200
    assert len(harness.connector.wait_for_activities(3)) == 3
    assert checks == [url]  # the signature was checked for the first activity only

    elsewhere = personal_message("https://evil.example/teams/", "kpi status childrens-trust")
    assert harness.post(elsewhere, token=token).status_code == 401
    assert checks == [url, "https://evil.example/teams/"]
    assert len(harness.connector.activities) == 3


def test_the_token_cache_rests_on_the_sdk_s_public_validator_only(harness: Harness) -> None:
    """kpibot wraps its own instance of the SDK's public validator and replaces nothing inside
    the SDK; this fails if the SDK moves, renames or reshapes what kpibot builds on."""
    import inspect

    import microsoft_teams.apps.auth as sdk_auth

    assert "InboundActivityTokenValidator" in sdk_auth.__all__
    init = list(inspect.signature(InboundActivityTokenValidator.__init__).parameters)
    assert init[:3] == ["self", "app_id", "cloud"]
    check = InboundActivityTokenValidator.validate_token
    assert inspect.iscoroutinefunction(check)
    assert list(inspect.signature(check).parameters)[:3] == ["self", "raw_token", "service_url"]

    # Activities that go through the SDK's own pipeline are still checked by the SDK itself.
    url = harness.connector.url
    forged = TokenIssuer(kid=harness.connector.issuer.kid).token(harness.connector.app_id, url)
    assert harness.post(bot_added(url), token=forged).status_code == 401
    assert harness.post(bot_added(url)).status_code == 200


def test_a_malformed_message_or_body_is_a_bad_request_and_answers_nothing(
    harness: Harness,
) -> None:
    url = harness.connector.url
    broken = personal_message(url, "kpi status childrens-trust")
    broken["from"] = "not an account"
    assert harness.post(broken).status_code == 400
    not_json = harness.http.post(
        "/api/messages",
        content=b"{not json",
        headers={"Authorization": f"Bearer {harness.connector.token(url)}"},
    )
    assert not_json.status_code == 400
    assert harness.post(personal_message(url, "kpi whoami")).status_code == 200
    assert len(harness.connector.wait_for_activities(1)) == 1  # only the good one was answered


def test_running_without_auth_is_explicit_and_loud(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    connector: BotConnector,
    seeded_teams_db: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    teams_env(
        monkeypatch,
        copy_db(seeded_teams_db, tmp_path),
        write_access_file(tmp_path / "access.yaml"),
        connector,
        auth=False,
    )
    with caplog.at_level(logging.WARNING, "kpibot.teams"):
        app = create_app(Settings())
    assert AUTH_OFF in caplog.text
    with serving(app) as http:
        answer = http.post("/api/messages", json=personal_message(connector.url, "kpi whoami"))
        assert answer.status_code == 200
        (sent,) = connector.wait_for_activities(1)
    assert "Authorization" not in sent.headers  # no credentials, so none sent


def test_without_teams_settings_there_is_no_endpoint(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    connector: BotConnector,
    seeded_teams_db: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    teams_env(
        monkeypatch,
        copy_db(seeded_teams_db, tmp_path),
        write_access_file(tmp_path / "access.yaml"),
        connector,
        auth=False,
    )
    monkeypatch.delenv("KPIBOT_TEAMS_AUTH_DISABLED")
    with caplog.at_level(logging.WARNING, "kpibot.teams"), serving(create_app(Settings())) as http:
        assert http.post("/api/messages", json={}).status_code == 404
    assert "Teams is off" in caplog.text


# ---------------------------------------------------------------------- the app package
def _run_package(*argv: str) -> int:
    import argparse

    from kpibot.cli.teams import register

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()

    def add(name: str, handler: Any, help_text: str, parent: Any = sub) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text)
        p.set_defaults(handler=handler)
        return p

    register(sub, add, lambda _p: None)
    args = parser.parse_args(["teams", "package", *argv])
    code: int = args.handler(args)
    return code


def test_teams_package_fills_in_the_bot_id_and_zips_the_icons(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json
    import zipfile

    app_id = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
    source = Path(__file__).resolve().parents[2] / "teams"
    monkeypatch.delenv("TEAMS_APP_ID", raising=False)
    monkeypatch.delenv("MICROSOFT_APP_ID", raising=False)
    assert _run_package("--source", str(source), "--out", str(tmp_path / "a.zip")) == 2
    assert "Set TEAMS_APP_ID" in capsys.readouterr().err

    monkeypatch.setenv("MICROSOFT_APP_ID", app_id)
    out = tmp_path / "kpibot-teams.zip"
    assert _run_package("--source", str(source), "--out", str(out)) == 0
    assert "Upload an app" in capsys.readouterr().out
    with zipfile.ZipFile(out) as package:
        assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(package.read("manifest.json"))
        sizes = {
            n: Image.open(io.BytesIO(package.read(n))).size for n in ("color.png", "outline.png")
        }
    assert manifest["id"] == app_id and manifest["bots"][0]["botId"] == app_id
    assert manifest["bots"][0]["supportsFiles"] is True
    assert sizes == {"color.png": (192, 192), "outline.png": (32, 32)}

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text((source / "manifest.json").read_text(), encoding="utf-8")
    (bad / "color.png").write_bytes((source / "outline.png").read_bytes())
    (bad / "outline.png").write_bytes((source / "outline.png").read_bytes())
    assert _run_package("--source", str(bad), "--out", str(tmp_path / "b.zip")) == 2
    assert "must be a 192×192 PNG" in capsys.readouterr().err


# ---------------------------------------------------------------------- the store, on both backends
def test_conversation_references_are_written_once_and_follow_a_moved_service_url(services) -> None:
    from kpibot.features.bind import ConversationRef

    store = ConversationStore(services.db)
    ref = ConversationRef(
        "teams",
        CHANNEL,
        "https://smba.trafficmanager.net/uk/",
        "28:bot",
        "tenant",
        "channel",
        {"conversation": {"id": CHANNEL}},
    )
    assert store.remember(ref) is True
    assert store.remember(ref) is False  # cached: a busy channel does not write per message
    first = store.get("teams", CHANNEL)
    moved = ConversationRef("teams", CHANNEL, "https://smba.trafficmanager.net/emea/", "28:bot")
    assert store.remember(moved) is True
    again = ConversationStore(services.db).get("teams", CHANNEL)
    assert first is not None and again is not None
    assert again.service_url.endswith("/emea/") and again.reference == {}
    assert store.get("teams", "19:unknown@thread.tacv2") is None


def test_bindings_replace_each_other_and_are_audited(services) -> None:
    from kpibot.features.bind import bind

    db, now = services.db, services.now()
    assert bind(db, "teams", CHANNEL, "childrens-trust", actor="U1", now=now) is None
    assert bind(db, "teams", CHANNEL, "one-psychology", actor="U1", now=now) == "childrens-trust"
    bind(db, "slack", "C-PSY", "one-psychology", actor="U2", now=now)
    assert stored_binding(db, "teams", CHANNEL) == "one-psychology"
    assert (
        stored_binding(db, "slack", CHANNEL) is None and stored_binding(db, "teams", None) is None
    )
    assert sorted(bindings_by_contract(db)["one-psychology"]) == [
        ("slack", "C-PSY"),
        ("teams", CHANNEL),
    ]
    events = [e for e in services.audit.recent(10) if e.action == "bind"]
    assert [e.detail["previous"] for e in events] == [None, "childrens-trust", None]


# ---------------------------------------------------------------------- alerts and subscriptions
def test_a_teams_watcher_hears_in_their_1_1_chat_and_the_all_clear_threads_in_the_channel(
    harness: Harness,
) -> None:
    import json
    from dataclasses import replace

    from sqlalchemy import text as text_sql

    from kpibot.core.protocol import Request
    from kpibot.features.summary import composer

    personal = personal_message(harness.connector.url, "x")["conversation"]["id"]
    answer = harness.say("kpi watch childrens-trust red")
    assert "Watching childrens-trust" in card_text(the_card(answer))
    harness.post(channel_message(harness.connector.url, "status"))  # the channel's reference
    harness.connector.wait_for_activities(2)
    services = harness.bot.services

    def submit(text: str) -> None:
        request = Request.from_text(
            text, user=PRIYA["aadObjectId"], platform="teams", channel=personal
        )
        preview = harness.bot.handle(request)
        harness.bot.handle(replace(request, confirm_token=preview.actions[0].token))

    deliverer = teams_deliverer(harness.settings, services)
    assert deliverer is not None
    dispatcher = Dispatcher(
        OutboxRepository(services.db),
        {"teams": deliverer},
        composer(services, harness.bot.policy),
        sleep=lambda _s: None,
    )
    try:
        submit("submit childrens-trust S26 2019/20 Q3 10% reason: recount")
        assert dispatcher.drain(services.now()) == 2
        alerts = harness.connector.activities[2:]
        by_conversation = {r.conversation: r for r in alerts}
        assert set(by_conversation) == {personal, CHANNEL}
        assert "turned red" in card_text(the_card(by_conversation[personal]))
        assert "You get this because you watch" in card_text(the_card(by_conversation[personal]))
        submit("submit childrens-trust S26 2019/20 Q3 99% reason: keyed wrongly")
        assert dispatcher.drain(services.now() + timedelta(seconds=5)) == 2
    finally:
        deliverer.close()
    with services.db.session(read_only=True) as session:
        ref = session.execute(
            text_sql("SELECT payload FROM outbox WHERE kind = 'alert_red' AND channel = :c"),
            {"c": CHANNEL},
        ).scalar_one()
    ref = (ref if isinstance(ref, dict) else json.loads(ref))["delivered"]["ref"]
    follow = harness.connector.activities[4:]
    threaded = [
        r.conversation for r in follow if r.conversation and r.conversation.startswith(CHANNEL)
    ]
    assert threaded == [f"{CHANNEL};messageid={ref}"]  # in the alert's thread
    assert any(r.conversation == personal for r in follow)  # the watcher's all-clear, in the 1:1


def test_a_file_that_trickles_in_from_teams_is_refused_at_the_download_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each chunk arrives inside any read timeout; only a deadline on the whole download ends it.
    import asyncio

    from kpibot.chat import teams

    class Trickle:
        name = "slow.csv"

        async def stream(self):
            while True:
                await asyncio.sleep(0.05)
                yield b"k"

    monkeypatch.setattr(teams, "DOWNLOAD_DEADLINE_S", 0.5)
    started = time.monotonic()
    with pytest.raises(teams.FileRefused) as refused:
        asyncio.run(teams.download(Trickle()))
    assert time.monotonic() - started < 2
    assert str(refused.value) == "I could not download slow.csv from Teams; send it again."
