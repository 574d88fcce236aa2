"""The Slack app end to end: signed requests into the real ASGI app, Web API calls into a recorder.

As bolt-python tests itself: every request is signed with the signing secret and posted to the app
built by ``create_app``; the bot's ``WebClient`` points at ``SlackApiServer`` (SLACK_API_URL), and
the tests assert on the payloads Slack would have received and on what the store holds.
"""

from __future__ import annotations

import io
import json
import logging
import resource
import shutil
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from starlette.applications import Starlette

from kpibot.app.server import create_app
from kpibot.app.wiring import build_bot, build_services
from kpibot.chat import blocks as kit
from kpibot.chat.slack import CANCELLED, WORKING, run_socket_mode
from kpibot.commands.bot import Bot
from kpibot.commands.tokens import verify
from kpibot.core.protocol import Action, Cell, Reply, Request
from kpibot.core.settings import Settings
from tests.files.test_xlsx import BOMB_ROWS, deflate_pieces, raw_book, sheet
from tests.slack_mock import (
    SlackApiServer,
    app_home_opened_event,
    block_action_body,
    event_body,
    file_shared_event,
    message_with_file_event,
    signed_headers,
    slash_command_body,
    view_submission_body,
)

ROOT = Path(__file__).resolve().parents[2]
SIGNING_SECRET = "test-signing-secret"
SECRET_KEY = "test-secret-key"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BAD_CSV = b"kpi,period,value\nS11,2019/20 Q3,50\nC1,2019/20 Q3,abc\n"
GOOD_CSV = b"kpi,period,value\nS11,2019/20 Q3,50\n"
# A 1 GB sheet in a zip of about 1 MB, built as tests/files/test_xlsx.py builds its bombs.
GIGABYTE_SHEET = (
    (sheet(b"")[: -len(b"</sheetData></worksheet>")], 1),
    (BOMB_ROWS, 1024),
    (b"</sheetData></worksheet>", 1),
)


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that tries to reach beyond 127.0.0.1 (as python-telegram-bot's tests do)."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in (
            "127.0.0.1",
            "::1",
            "localhost",
        ):
            raise AssertionError(f"a test tried to reach {address}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with config/contracts and their demo history loaded once; tests copy it."""
    path = tmp_path_factory.mktemp("seed") / "kpibot.db"
    services = build_services(Settings(database_url=f"sqlite:///{path}"))
    services.db.upgrade()
    services.load_contracts([ROOT / "config" / "contracts"], actor="test")
    services.db.dispose()
    return path


def _settings(monkeypatch: pytest.MonkeyPatch, db: Path, api_url: str) -> Settings:
    monkeypatch.setenv("KPIBOT_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("KPIBOT_TODAY", "2020-02-20")
    monkeypatch.setenv("KPIBOT_ACCESS_FILE", str(ROOT / "config" / "access.yaml"))
    monkeypatch.setenv("KPIBOT_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_API_URL", api_url)
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    return Settings()


@contextmanager
def serving(app: Starlette) -> Iterator[httpx.Client]:
    """Run ``app`` under a real uvicorn on a free loopback port, in a thread, for one test."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=10) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(10)


@dataclass
class Harness:
    http: httpx.Client
    bot: Bot
    slack: SlackApiServer

    def post(self, body: str, **headers: str) -> Any:
        return self.http.post(
            "/slack/events", content=body, headers=signed_headers(body, SIGNING_SECRET) | headers
        )

    def command(self, text: str, user: str, channel: str = "C1", **kw: str) -> Any:
        url = self.slack.response_url(f"cmd{len(self.slack.requests)}")
        body = slash_command_body(text, user_id=user, channel_id=channel, response_url=url, **kw)
        return self.post(body)

    def current(self, contract: str, kpi: str, period: str) -> list[Any]:
        return [f for f in self.bot.services.figures.current(contract, kpi) if f.period == period]


@pytest.fixture
def harness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slack_api: SlackApiServer, seeded_db: Path
) -> Iterator[Harness]:
    db = tmp_path / "kpibot.db"
    shutil.copy(seeded_db, db)
    settings = _settings(monkeypatch, db, slack_api.api_url)
    bot = build_bot(settings)
    with serving(create_app(settings, bot)) as http:
        yield Harness(http, bot, slack_api)
    bot.services.db.dispose()


# ---------------------------------------------------------------------- helpers
def _decoded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def assert_within_slack_limits(blocks: list[dict[str, Any]], max_blocks: int = 50) -> None:
    assert 0 < len(blocks) <= max_blocks
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        elif block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        elif block["type"] == "context":
            assert all(len(e["text"]) <= 3000 for e in block["elements"])
        elif block["type"] == "actions":
            ids = [b["action_id"] for b in block["elements"]]
            assert len(ids) == len(set(ids)) and 0 < len(ids) <= 25
            assert all(
                len(b["value"]) <= 2000 and len(b["text"]["text"]) <= 75 for b in block["elements"]
            )


def texts(blocks: list[dict[str, Any]]) -> str:
    parts = []
    for block in blocks:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts.extend(
            e.get("text", "") for e in block.get("elements", []) if isinstance(e.get("text"), str)
        )
    return "\n".join(parts)


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def button(blocks: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    (found,) = [b for b in buttons(blocks) if b["action_id"].startswith(prefix)]
    return found


def _payload(form_body: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(parse_qs(form_body)["payload"][0])
    return payload


def _csv_event(slack: SlackApiServer, file_id: str, data: bytes, **kw: Any) -> dict[str, Any]:
    event = message_with_file_event(
        file_id=file_id, name=f"{file_id}.csv", url_private=slack.host_file(file_id, data), **kw
    )
    event["files"][0] |= {"size": len(data), "filetype": "csv", "mimetype": "text/csv"}
    return event


# ---------------------------------------------------------------------- slash commands
def test_status_acks_at_once_and_responds_with_the_reds(harness: Harness) -> None:
    started = time.monotonic()
    ack = harness.command("status childrens-trust", user="U-COMMISSIONER")
    assert ack.status_code == 200 and time.monotonic() - started < 3
    assert ack.text == WORKING

    (response,) = harness.slack.wait_for("/response/", timeout=10)
    assert response["response_type"] == "in_channel"
    assert_within_slack_limits(response["blocks"])
    body = texts(response["blocks"])
    assert "🔴 *C7*" in body and "42%" in body
    assert "Children's Trust" in response["text"]


def test_ack_does_not_wait_for_slow_work(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    real_handle = harness.bot.handle

    def slow_handle(request: Request) -> Reply:
        time.sleep(3.5)
        return real_handle(request)

    monkeypatch.setattr(harness.bot, "handle", slow_handle)
    started = time.monotonic()
    assert harness.command("whoami", user="U-TRUST").status_code == 200
    assert time.monotonic() - started < 1.5
    assert not harness.slack.responses
    (response,) = harness.slack.wait_for("/response/", timeout=10)
    assert "Priya" in response["text"] and response["response_type"] == "ephemeral"


def test_refusal_is_polite_ephemeral_and_audited(harness: Harness) -> None:
    harness.command("status healthy-child-0-19", user="U-TRUST", channel="C-TRUST")

    (response,) = harness.slack.wait_for("/response/", timeout=10)
    assert response["response_type"] == "ephemeral"
    assert "not open to you" in response["text"] and "Traceback" not in response["text"]
    refused = [e for e in harness.bot.services.audit.recent(10) if e.outcome == "refused"]
    assert [(e.actor, e.contract_id) for e in refused] == [("U-TRUST", "healthy-child-0-19")]


# ---------------------------------------------------------------------- submit, confirm, retries
def test_submit_preview_confirm_once_even_when_retried(harness: Harness) -> None:
    slack = harness.slack
    assert [f.value for f in harness.current("childrens-trust", "C1", "2019/20 Q3")] == [96.0]
    harness.command(
        "submit childrens-trust C1 2019/20 Q3 86/100 reason: recount",
        user="U-TRUST",
        channel="C-TRUST",
    )

    (preview,) = slack.wait_for("/response/", timeout=10)
    assert preview["response_type"] == "ephemeral"
    assert_within_slack_limits(preview["blocks"])
    confirm = button(preview["blocks"], "kpi_confirm")
    assert confirm["style"] == "primary"
    assert verify(confirm["value"], SECRET_KEY.encode())["u"] == "U-TRUST"
    assert button(preview["blocks"], "kpi_cancel")["value"] == "cancel"

    click = block_action_body(
        confirm["action_id"],
        confirm["value"],
        user_id="U-TRUST",
        channel_id="C-TRUST",
        response_url=slack.response_url("confirm"),
    )
    assert harness.post(click).status_code == 200
    done = slack.wait_for("/response/", 2, timeout=10)[1]
    assert done["replace_original"] is True and "Amended" in done["text"]
    assert [f.value for f in harness.current("childrens-trust", "C1", "2019/20 Q3")] == [86.0]

    # Slack redelivers after a failed attempt: it runs again, and the token stores nothing new.
    assert (
        harness.post(
            click, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_error"}
        ).status_code
        == 200
    )
    assert "Already recorded" in slack.wait_for("/response/", 3, timeout=10)[2]["text"]
    # A retry after a timeout means the first delivery is still running: it is skipped outright.
    again = harness.post(
        click, **{"X-Slack-Retry-Num": "2", "X-Slack-Retry-Reason": "http_timeout"}
    )
    assert again.status_code == 200 and again.text == ""

    history = harness.bot.services.figures.history("childrens-trust", "C1", "2019/20 Q3")
    assert [f.value for f in history] == [96.0, 86.0]
    time.sleep(0.3)
    assert len(slack.responses) == 3


def test_confirm_by_another_user_stores_nothing(harness: Harness) -> None:
    harness.command("submit childrens-trust C1 2019/20 Q3 86/100 reason: recount", user="U-TRUST")
    confirm = button(harness.slack.wait_for("/response/", timeout=10)[0]["blocks"], "kpi_confirm")

    click = block_action_body(
        confirm["action_id"],
        confirm["value"],
        user_id="U-BOARD",
        response_url=harness.slack.response_url("stolen"),
    )
    harness.post(click)

    assert "not open to you" in harness.slack.wait_for("/response/", 2, timeout=10)[1]["text"]
    assert [f.value for f in harness.current("childrens-trust", "C1", "2019/20 Q3")] == [96.0]


def test_cancel_replaces_the_preview(harness: Harness) -> None:
    harness.command("submit childrens-trust C1 2019/20 Q3 86/100 reason: recount", user="U-TRUST")
    cancel = button(harness.slack.wait_for("/response/", timeout=10)[0]["blocks"], "kpi_cancel")

    harness.post(
        block_action_body(
            cancel["action_id"],
            cancel["value"],
            user_id="U-TRUST",
            response_url=harness.slack.response_url("cancel"),
        )
    )

    response = harness.slack.wait_for("/response/", 2, timeout=10)[1]
    assert response["replace_original"] is True and response["text"] == CANCELLED
    assert not buttons(response["blocks"])


def test_a_note_at_the_limit_fits_the_button_and_confirms(harness: Harness) -> None:
    note = ("checked " * 70)[:500].strip()
    harness.command(
        f"submit childrens-trust C1 2019/20 Q3 86/100 {note} reason: recount", user="U-TRUST"
    )
    confirm = button(harness.slack.wait_for("/response/", timeout=10)[0]["blocks"], "kpi_confirm")
    assert len(confirm["value"]) <= 2000

    harness.post(
        block_action_body(
            confirm["action_id"],
            confirm["value"],
            user_id="U-TRUST",
            response_url=harness.slack.response_url("confirm"),
        )
    )

    assert "Amended" in harness.slack.wait_for("/response/", 2, timeout=10)[1]["text"]
    (figure,) = harness.current("childrens-trust", "C1", "2019/20 Q3")
    assert figure.value == 86.0 and figure.note == note


def test_a_note_over_the_limit_says_how_far_over(harness: Harness) -> None:
    harness.command(
        f"submit childrens-trust C1 2019/20 Q3 86/100 {'x' * 520} reason: recount", user="U-TRUST"
    )
    reply = harness.slack.wait_for("/response/", timeout=10)[0]
    assert "limited to 500 characters; yours is 20 over" in str(reply["blocks"])
    assert len(harness.current("childrens-trust", "C1", "2019/20 Q3")) == 1


# ---------------------------------------------------------------------- modal
def test_submit_without_arguments_opens_a_modal_and_its_submission_previews(
    harness: Harness,
) -> None:
    slack = harness.slack
    harness.command("submit", user="U-TRUST", channel="C-TRUST", trigger_id="trigger-42")

    (opened,) = slack.wait_for("views.open", timeout=10)
    assert opened["trigger_id"] == "trigger-42"
    view = _decoded(opened["view"])
    assert view["type"] == "modal" and view["callback_id"] == kit.FORM_CALLBACK
    fields = {b["block_id"]: b for b in view["blocks"]}
    assert list(fields) == ["contract", "kpi", "period", "value", "note", "reason"]
    contract = fields["contract"]["element"]
    assert contract["type"] == "static_select"
    assert [o["value"] for o in contract["options"]] == ["childrens-trust"]
    assert fields["reason"]["optional"] and not fields["value"]["optional"]

    values: dict[str, dict[str, Any]] = {
        "contract": {
            "value": {"type": "static_select", "selected_option": {"value": "childrens-trust"}}
        },
        "kpi": {"value": "C1"},
        "period": {"value": "2019/20 Q3"},
        "value": {"value": "86/100"},
        "note": {"value": None},
        "reason": {"value": "recount after audit"},
    }
    body = view_submission_body(
        kit.FORM_CALLBACK, values, view["private_metadata"], user_id="U-TRUST"
    )
    assert harness.post(body).status_code == 200

    (posted,) = slack.wait_for("chat.postEphemeral", timeout=10)
    assert posted["channel"] == "C-TRUST" and posted["user"] == "U-TRUST"
    blocks = _decoded(posted["blocks"])
    assert "86%" in texts(blocks) and button(blocks, "kpi_confirm")
    assert not slack.responses  # the modal replaced the answer, nothing else was said


# ---------------------------------------------------------------------- charts
def test_chart_is_uploaded_with_files_upload_v2(harness: Harness) -> None:
    harness.command("chart childrens-trust C7", user="U-COMMISSIONER", channel="C1")

    (complete,) = harness.slack.wait_for("files.completeUploadExternal", timeout=15)
    (url_call,) = harness.slack.calls("files.getUploadURLExternal")
    assert url_call["filename"] == "childrens-trust-C7.png"
    assert complete["channel_id"] == "C1" and "C7" in complete["initial_comment"]
    (uploaded,) = harness.slack.uploads.values()
    assert uploaded.startswith(PNG_SIGNATURE)
    assert not harness.slack.calls("files.upload")


def test_chart_that_cannot_be_posted_says_so(harness: Harness) -> None:
    harness.slack.fail_next("files.getUploadURLExternal", status=200, error="not_in_channel")
    harness.command("chart childrens-trust C7", user="U-COMMISSIONER", channel="C9")

    (response,) = harness.slack.wait_for("/response/", timeout=15)
    assert "/invite @kpibot" in response["text"]


# ---------------------------------------------------------------------- the quarterly report
def test_report_is_uploaded_with_files_upload_v2_as_an_xlsx(harness: Harness) -> None:
    harness.command("report childrens-trust 2019/20 Q3", user="U-COMMISSIONER", channel="C1")

    (complete,) = harness.slack.wait_for("files.completeUploadExternal", timeout=30)
    (url_call,) = harness.slack.calls("files.getUploadURLExternal")
    assert url_call["filename"] == "childrens-trust-2019-20-Q3-performance-report.xlsx"
    assert complete["channel_id"] == "C1"
    (uploaded,) = harness.slack.uploads.values()
    assert int(url_call["length"]) == len(uploaded)
    sheet = load_workbook(io.BytesIO(uploaded))["Scorecard"]
    refs = {c.value for c in sheet["B"]}
    assert {"C1", "C7", "S11", "S29"} <= refs
    # The summary follows in the conversation, with buttons for the other formats.
    (response,) = harness.slack.wait_for("/response/", timeout=15)
    assert "Performance report" in response["text"] and "red" in response["text"]
    assert {"PDF", "HTML", "CSV"} <= {
        b["text"]["text"]
        for blk in _decoded(response["blocks"])
        if blk["type"] == "actions"
        for b in blk["elements"]
    }


def test_a_provider_gets_no_report_of_another_contract(harness: Harness) -> None:
    harness.command("report healthy-child-0-19", user="U-TRUST", channel="C-TRUST")

    (response,) = harness.slack.wait_for("/response/", timeout=15)
    assert "Not allowed" in response["text"]
    assert not harness.slack.calls("files.getUploadURLExternal")


def test_a_report_that_cannot_be_posted_says_so(harness: Harness) -> None:
    harness.slack.fail_next("files.getUploadURLExternal", status=200, error="not_in_channel")
    harness.command("report childrens-trust 2019/20 Q3 pdf", user="U-COMMISSIONER", channel="C9")

    (response,) = harness.slack.wait_for("/response/", timeout=30)
    assert "/invite @kpibot" in response["text"] and ".pdf" in response["text"]


# ---------------------------------------------------------------------- file imports
def test_file_with_a_bad_row_is_rejected_and_nothing_stored(harness: Harness) -> None:
    event = _csv_event(harness.slack, "FBAD", BAD_CSV, user_id="U-TRUST", channel_id="C-TRUST")
    assert harness.post(event_body(event)).status_code == 200

    (posted,) = harness.slack.wait_for("chat.postMessage", timeout=10)
    assert posted["channel"] == "C-TRUST" and posted["thread_ts"] == event["ts"]
    body = texts(_decoded(posted["blocks"]))
    assert (
        "rejected" in posted["text"] and "line 3, value" in body and "'abc' is not a number" in body
    )
    assert harness.current("childrens-trust", "S11", "2019/20 Q3") == []
    (download,) = [r for r in harness.slack.requests if r.path == "/files/FBAD"]
    assert download.headers["Authorization"] == "Bearer xoxb-test"


def test_good_file_is_stored_once_even_when_slack_redelivers(harness: Harness) -> None:
    event = _csv_event(harness.slack, "FGOOD", GOOD_CSV, user_id="U-TRUST", channel_id="C-TRUST")
    harness.post(event_body(event))

    (posted,) = harness.slack.wait_for("chat.postMessage", timeout=10)
    assert "imported" in posted["text"]
    (figure,) = harness.current("childrens-trust", "S11", "2019/20 Q3")
    assert figure.value == 50.0 and figure.submitted_by == "U-TRUST"

    harness.post(
        event_body(event), **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_error"}
    )
    assert (
        "already received" in harness.slack.wait_for("chat.postMessage", 2, timeout=10)[1]["text"]
    )
    assert len(harness.bot.services.figures.history("childrens-trust", "S11", "2019/20 Q3")) == 1


def test_import_text_names_the_contract_outside_a_bound_channel(harness: Harness) -> None:
    unaddressed = _csv_event(harness.slack, "FCHAT", GOOD_CSV, user_id="U-TRUST", channel_id="C1")
    harness.post(event_body(unaddressed))
    named = _csv_event(
        harness.slack,
        "FNAMED",
        GOOD_CSV,
        user_id="U-TRUST",
        channel_id="C1",
        text="import childrens-trust",
    )
    harness.post(event_body(named))

    (posted,) = harness.slack.wait_for("chat.postMessage", timeout=10)
    assert posted["channel"] == "C1" and "imported" in posted["text"]
    assert not [r for r in harness.slack.requests if r.path == "/files/FCHAT"]
    assert [f.value for f in harness.current("childrens-trust", "S11", "2019/20 Q3")] == [50.0]


def test_file_over_5_mb_is_refused_before_downloading(harness: Harness) -> None:
    event = _csv_event(harness.slack, "FBIG", GOOD_CSV, user_id="U-TRUST", channel_id="C-TRUST")
    event["files"][0]["size"] = 6 * 1024 * 1024
    harness.post(event_body(event))

    (posted,) = harness.slack.wait_for("chat.postMessage", timeout=10)
    assert "5 MB" in texts(_decoded(posted["blocks"]))
    assert not [r for r in harness.slack.requests if r.path.startswith("/files/")]


def _xlsx_event(slack: SlackApiServer, file_id: str, data: bytes, **kw: Any) -> dict[str, Any]:
    event = message_with_file_event(
        file_id=file_id, name=f"{file_id}.xlsx", url_private=slack.host_file(file_id, data), **kw
    )
    event["files"][0] |= {"size": len(data), "filetype": "xlsx"}
    return event


def _refusal_of(harness: Harness, event: dict[str, Any]) -> tuple[str, float, int]:
    """Post ``event`` and wait for the reply: its text, seconds from the download to the reply,
    and the peak Python memory traced meanwhile (the reader's work happens in this process)."""
    tracemalloc.start()
    try:
        harness.post(event_body(event))
        # A file that cannot be read is answered privately to whoever shared it.
        (posted,) = harness.slack.wait_for("chat.postEphemeral", timeout=30)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    (download,) = [r for r in harness.slack.requests if r.path.startswith("/files/")]
    (reply,) = [r for r in harness.slack.requests if r.method == "chat.postEphemeral"]
    return texts(_decoded(posted["blocks"])), reply.at - download.at, peak


def test_an_xlsx_bomb_shared_in_slack_is_refused_in_under_a_second_and_100_mb(
    harness: Harness,
) -> None:
    data = raw_book(deflate_pieces(*GIGABYTE_SHEET))
    assert len(data) < 5 * 1024 * 1024  # small enough to be downloaded: the reader must cope
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    event = _xlsx_event(harness.slack, "FBOMB", data, user_id="U-TRUST", channel_id="C-TRUST")

    text, seconds, peak = _refusal_of(harness, event)

    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    print(
        f"\nslack bomb: refused {seconds * 1000:.0f} ms after download, traced {peak / 1e6:.1f} MB"
    )
    assert "expands to more than 50 MB when unzipped" in text and "FBOMB.xlsx" in text
    assert seconds < 1.0 and peak < 100 * 1024 * 1024 and rss_growth < 100 * 1024 * 1024
    assert harness.current("childrens-trust", "S11", "2019/20 Q3") == []


def test_an_xlsx_bomb_that_lies_about_its_size_is_refused_as_damaged(harness: Harness) -> None:
    data = raw_book(deflate_pieces(*GIGABYTE_SHEET), declared=1024 * 1024)
    event = _xlsx_event(harness.slack, "FLIAR", data, user_id="U-TRUST", channel_id="C-TRUST")

    text, seconds, peak = _refusal_of(harness, event)

    assert "damaged" in text and seconds < 1.0 and peak < 100 * 1024 * 1024


def test_a_csv_of_a_hundred_thousand_rows_is_refused_at_the_row_limit(harness: Harness) -> None:
    data = b"kpi,period,value\n" + b"S11,2019/20 Q3,1\n" * 100_000
    event = _csv_event(harness.slack, "FROWS", data, user_id="U-TRUST", channel_id="C-TRUST")
    harness.post(event_body(event))

    (posted,) = harness.slack.wait_for("chat.postEphemeral", timeout=30)
    assert "more than 20,000 rows" in texts(_decoded(posted["blocks"]))


def test_a_return_with_thousands_of_bad_rows_lists_the_first_and_counts_the_rest(
    harness: Harness,
) -> None:
    data = b"kpi,period,value\n" + b"".join(b"S11,2019/20 Q3,bad%d\n" % i for i in range(5_000))
    event = _csv_event(harness.slack, "FMANY", data, user_id="U-TRUST", channel_id="C-TRUST")
    harness.post(event_body(event))

    (posted,) = harness.slack.wait_for("chat.postMessage", timeout=30)
    body = texts(_decoded(posted["blocks"]))
    assert "5,000 problem(s)" in body and "…and 4,980 more" in body
    assert_within_slack_limits(_decoded(posted["blocks"]))


def test_a_decimal_comma_in_a_shared_return_is_refused_showing_both_readings(
    harness: Harness,
) -> None:
    data = b"kpi,period,value\nS11,2019/20 Q3,8,5\n".replace(b"8,5", b'"8,5"')
    event = _csv_event(harness.slack, "FCOMMA", data, user_id="U-TRUST", channel_id="C-TRUST")
    harness.post(event_body(event))

    (posted,) = harness.slack.wait_for("chat.postMessage", timeout=10)
    assert "'8,5' could mean 8.5 or 85" in texts(_decoded(posted["blocks"]))
    assert harness.current("childrens-trust", "S11", "2019/20 Q3") == []


def test_file_shared_imports_only_in_private_channels(harness: Harness) -> None:
    slack = harness.slack
    url = slack.host_file("FPRIV", GOOD_CSV)
    files = {
        "FPUB": {"channels": ["C-TRUST"], "groups": []},
        "FPRIV": {"channels": [], "groups": ["C-TRUST"]},
    }

    def files_info(body: dict[str, Any]) -> dict[str, Any]:
        # The recorder has no files.info; answer it the way Slack does for these two files.
        fid = body["file"]
        file = {"id": fid, "name": f"{fid}.csv", "filetype": "csv", "size": len(GOOD_CSV)}
        return {"ok": True, "file": file | files[fid] | {"url_private": url}}

    slack._routes["files.info"] = files_info
    harness.post(event_body(file_shared_event("FPUB", user_id="U-TRUST", channel_id="C-TRUST")))
    harness.post(event_body(file_shared_event("FPRIV", user_id="U-TRUST", channel_id="C-TRUST")))

    (posted,) = slack.wait_for("chat.postMessage", timeout=10)
    assert "imported" in posted["text"] and posted["channel"] == "C-TRUST"
    assert len(slack.calls("files.info")) == 2
    assert [r.path for r in slack.requests if r.path.startswith("/files/")] == ["/files/FPRIV"]


# ---------------------------------------------------------------------- mentions and DMs
def test_mention_answers_in_the_thread_and_dm_commands_answer_in_the_dm(harness: Harness) -> None:
    mention = {
        "type": "app_mention",
        "user": "U-COMMISSIONER",
        "channel": "C1",
        "text": "<@UBOT> status childrens-trust",
        "ts": "1700000000.000777",
    }
    harness.post(event_body(mention | {"event_ts": mention["ts"]}))
    (posted,) = harness.slack.wait_for("chat.postMessage", timeout=10)
    assert posted["channel"] == "C1" and posted["thread_ts"] == "1700000000.000777"
    assert "🔴 *C7*" in texts(_decoded(posted["blocks"]))

    dm = {
        "type": "message",
        "channel_type": "im",
        "user": "U-TRUST",
        "channel": "D0TRUST",
        "text": "whoami",
        "ts": "1700000000.000888",
    }
    harness.post(event_body(dm | {"event_ts": dm["ts"]}))
    posted = harness.slack.wait_for("chat.postMessage", 2, timeout=10)[1]
    assert posted["channel"] == "D0TRUST" and "Priya" in posted["text"]
    assert not harness.slack.calls("chat.postEphemeral")


# ---------------------------------------------------------------------- App Home
def test_app_home_lists_the_users_contracts(harness: Harness) -> None:
    harness.post(event_body(app_home_opened_event("U-TRUST")))

    (published,) = harness.slack.wait_for("views.publish", timeout=10)
    assert published["user_id"] == "U-TRUST"
    view = _decoded(published["view"])
    assert view["type"] == "home" and view["private_metadata"] == "D0HOME1"
    assert_within_slack_limits(view["blocks"], max_blocks=100)
    body = texts(view["blocks"])
    assert "🔴 *childrens-trust*" in body and "🔴 6" in body
    assert "healthy-child-0-19" not in body

    # A click on the home tab has no channel or response_url: the answer goes to the app's DM.
    run = button(view["blocks"], "kpi_run")
    payload = _payload(block_action_body(run["action_id"], run["value"], user_id="U-TRUST"))
    for key in ("channel", "container", "response_url", "message"):
        payload.pop(key)
    payload["view"] = {
        "id": published["view"].get("id", "V1"),
        "type": "home",
        "private_metadata": "D0HOME1",
    }
    harness.post(urlencode({"payload": json.dumps(payload)}))
    (posted,) = harness.slack.wait_for("chat.postMessage", timeout=10)
    assert posted["channel"] == "D0HOME1" and "Children's Trust" in posted["text"]


# ---------------------------------------------------------------------- security and health
def test_bad_signature_and_stale_timestamp_are_rejected(harness: Harness) -> None:
    body = slash_command_body(
        "status childrens-trust",
        user_id="U-COMMISSIONER",
        response_url=harness.slack.response_url(),
    )
    forged = signed_headers(body, "not-the-secret")
    stale = signed_headers(body, SIGNING_SECRET, timestamp=int(time.time()) - 301)

    assert harness.http.post("/slack/events", content=body, headers=forged).status_code == 401
    assert harness.http.post("/slack/events", content=body, headers=stale).status_code == 401
    time.sleep(0.2)
    assert not harness.slack.responses


def test_health_and_readiness(harness: Harness) -> None:
    assert harness.http.get("/healthz").json() == {"status": "ok"}
    deadline = time.monotonic() + 60
    while (ready := harness.http.get("/readyz")).status_code == 503:  # the warm-up may still run
        assert ready.json()["status"] == "warming" and time.monotonic() < deadline
        time.sleep(0.05)
    assert ready.status_code == 200 and ready.json() == {"status": "ok"}


def test_not_ready_until_every_contract_is_warm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slack_api: SlackApiServer, seeded_db: Path
) -> None:
    import kpibot.app.warmup

    db = tmp_path / "kpibot.db"
    shutil.copy(seeded_db, db)
    settings = _settings(monkeypatch, db, slack_api.api_url)
    release = threading.Event()
    real = kpibot.app.warmup.warm

    def slow_warm(*args: Any) -> Any:  # the warm-up's batches wait until the test says go
        release.wait(30)
        return real(*args)

    monkeypatch.setattr(kpibot.app.warmup, "warm", slow_warm)
    bot = build_bot(settings)
    with serving(create_app(settings, bot)) as http:
        assert http.get("/healthz").status_code == 200
        warming = http.get("/readyz")
        assert warming.status_code == 503
        assert warming.json() == {"status": "warming", "contracts_warmed": 0, "contracts": 4}
        release.set()
        deadline = time.monotonic() + 60
        while http.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the warm-up never finished"
            time.sleep(0.05)
    bot.services.db.dispose()


def test_warm_up_can_be_switched_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slack_api: SlackApiServer, seeded_db: Path
) -> None:
    import kpibot.app.warmup

    db = tmp_path / "kpibot.db"
    shutil.copy(seeded_db, db)
    monkeypatch.setenv("KPIBOT_WARM_CACHES", "false")
    settings = _settings(monkeypatch, db, slack_api.api_url)
    monkeypatch.setattr(kpibot.app.warmup, "cached_overview", lambda *a: pytest.fail("warmed"))
    with serving(create_app(settings)) as http:
        assert http.get("/readyz").json() == {"status": "ok"}


def test_readiness_fails_without_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slack_api: SlackApiServer
) -> None:
    settings = _settings(monkeypatch, tmp_path / "missing" / "dir" / "kpibot.db", slack_api.api_url)
    with serving(create_app(settings)) as http:
        assert http.get("/healthz").status_code == 200
        ready = http.get("/readyz")
    assert ready.status_code == 503 and "missing" not in ready.text


def test_app_without_slack_settings_serves_health_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slack_api: SlackApiServer
) -> None:
    settings = _settings(monkeypatch, tmp_path / "kpibot.db", slack_api.api_url)
    settings = settings.model_copy(update={"slack_signing_secret": None})
    with serving(create_app(settings)) as http:
        assert http.get("/healthz").status_code == 200
        assert http.post("/slack/events", content="{}").status_code == 404


def test_socket_mode_needs_an_app_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slack_api: SlackApiServer
) -> None:
    settings = _settings(monkeypatch, tmp_path / "kpibot.db", slack_api.api_url)
    with pytest.raises(RuntimeError, match="SLACK_APP_TOKEN"):
        run_socket_mode(settings, build_bot(settings))
    assert not slack_api.requests


# ---------------------------------------------------------------------- Block Kit limits
def test_long_tables_are_cut_with_and_n_more_within_50_blocks() -> None:
    reply = Reply(
        "Many",
        "x" * 7000,
        columns=["KPI", "Value"],
        rows=[[Cell(f"K{i}", "red"), Cell("y" * 200)] for i in range(2000)],
        footer="f",
        actions=[Action(f"Run {i}", f"status c{i}") for i in range(40)],
    )
    blocks = kit.reply_to_blocks(reply)

    assert_within_slack_limits(blocks)
    body = texts(blocks)
    assert "🔴 *K0*" in body and "…and " in body and " more" in body
    shown = body.count("🔴 *K")
    assert f"…and {2000 - shown} more" in body


def test_form_submission_round_trips_to_command_text() -> None:
    view = {
        "private_metadata": json.dumps(
            {"channel": "C9", "verb": "submit", "fields": ["contract", "kpi", "note", "reason"]}
        ),
        "state": {
            "values": {
                "contract": {
                    "value": {"type": "static_select", "selected_option": {"value": "ct"}}
                },
                "kpi": {"value": {"type": "plain_text_input", "value": " C1 "}},
                "note": {"value": {"type": "plain_text_input", "value": None}},
                "reason": {"value": {"type": "plain_text_input", "value": "two\nlines"}},
            }
        },
    }
    assert kit.form_submission(view) == ("submit ct C1 reason: two lines", "C9")


# ---------------------------------------------------------------------- fuzz through the bot
@pytest.fixture(scope="module")
def fuzz_bot(tmp_path_factory: pytest.TempPathFactory, seeded_db: Path) -> Iterator[Bot]:
    db = tmp_path_factory.mktemp("fuzz") / "kpibot.db"
    shutil.copy(seeded_db, db)
    settings = Settings(
        database_url=f"sqlite:///{db}",
        access_file=ROOT / "config" / "access.yaml",
        today=date(2020, 2, 20),
    )
    bot = build_bot(settings)
    yield bot
    bot.services.db.dispose()


WORDS = [
    "status",
    "submit",
    "chart",
    "import",
    "help",
    "whoami",
    "s",
    "?",
    "/kpi",
    "kpi",
    "childrens-trust",
    "healthy-child-0-19",
    "C7",
    "c1",
    "S16",
    "2019/20",
    "Q3",
    "2019/20 Q3",
    "2019-07",
    "86/100",
    "0/0",
    "-5%",
    "1e309",
    "nan",
    "reason:",
    "note:",
    "--years",
    "0",
    "'",
    '"',
    "“",
    "’",
    "/",
    "\\",
    "\x00",
    "ünïcödé",
    "💥",
    "<@U1>",
    "&lt;",
]
commands = st.one_of(
    st.text(max_size=80),
    st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=8)), max_size=8).map(" ".join),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=commands,
    user=st.sampled_from(["U-COMMISSIONER", "U-TRUST", "U-STRANGER"]),
    channel=st.sampled_from([None, "C1", "C-TRUST"]),
)
def test_any_command_text_gets_a_titled_reply(
    fuzz_bot: Bot, text: str, user: str, channel: str | None
) -> None:
    reply = fuzz_bot.handle(Request.from_text(text, user=user, platform="slack", channel=channel))

    assert reply.title.strip()
    assert "went wrong on our side" not in reply.text, f"a handler crashed on {text!r}"
    assert_within_slack_limits(kit.reply_to_blocks(reply))
    assert kit.fallback_text(reply).strip()


def test_bolts_log_lines_that_carry_a_request_body_keep_the_line_and_withhold_the_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bolt_log = logging.getLogger("kpibot.slack.bolt")
    with caplog.at_level(logging.INFO):
        bolt_log.info(
            "Invalid request signature detected (signature: v0=1, timestamp: 2, body: %s)",
            "text=SECRET-FIGURE",
        )
        bolt_log.warning("Unhandled request ({'type': 'block_actions', 'value': 'SECRET-TOKEN'})")
        bolt_log.info("request body: %s", {"text": "SECRET-NOTE"})
    assert "SECRET" not in caplog.text
    assert caplog.messages == [
        "Invalid request signature detected (request body withheld)",
        "Unhandled request (request body withheld)",
        "request body (request body withheld)",
    ]


def test_a_file_that_trickles_in_is_refused_at_the_download_deadline(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpx's timeout bounds each read; a byte every 0.2 s never trips it, and held a worker.
    import kpibot.chat.slack as slack_module

    monkeypatch.setattr(slack_module, "DOWNLOAD_DEADLINE_S", 1.0)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 1000000\r\n\r\n"
            )
            while not stop.wait(0.2):
                try:
                    connection.sendall(b"k")
                except OSError:
                    return

    threading.Thread(target=trickle, daemon=True).start()
    try:
        event = message_with_file_event(
            file_id="FSLOW",
            name="FSLOW.csv",
            url_private=f"http://127.0.0.1:{listener.getsockname()[1]}/files/FSLOW",
            user_id="U-TRUST",
            channel_id="C-TRUST",
        )
        event["files"][0] |= {"size": 1000, "filetype": "csv"}
        started = time.monotonic()
        harness.post(event_body(event))
        (posted,) = harness.slack.wait_for("chat.postMessage", timeout=10)
        assert time.monotonic() - started < 5
        assert posted["text"].endswith(
            "FSLOW.csv did not finish downloading from Slack within 1 seconds; send it again."
        )
    finally:
        stop.set()
        listener.close()
    assert harness.current("childrens-trust", "S11", "2019/20 Q3") == []
