"""The server an operator runs: honest readiness, chat that says when the database is gone, metrics,
start-up connections retried, and ``kpibot serve`` as a real process that stops cleanly.

The hanging database is ``HangingProxy``: a local TCP proxy in front of the test PostgreSQL that
accepts connections and never answers. The app under test is the real one (``create_app`` under
uvicorn, signed Slack requests, Slack's Web API played by ``SlackApiServer``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from kpibot.app.health import Connection, Connections
from kpibot.app.server import create_app, platform_connections
from kpibot.app.wiring import build_bot, services_for_database
from kpibot.chat.slack import slack_reachable
from kpibot.core import texts
from kpibot.core.settings import Settings
from kpibot.store.database import Database
from kpibot.store.outbox import OutboxEntry, OutboxRepository
from tests.chat.test_slack import serving
from tests.conftest import ACCESS_FILE
from tests.hanging_proxy import HangingProxy
from tests.slack_mock import SlackApiServer, signed_headers, slash_command_body

ROOT = Path(__file__).resolve().parents[2]
SIGNING_SECRET = "test-signing-secret-value"
BOT_TOKEN = "xoxb-test-bot-token-value"
SECRET_KEY = "test-secret-key-value"


def _settings(url: str, slack: SlackApiServer, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "access_file": ACCESS_FILE,
        "contracts_dir": ROOT / "config" / "contracts",
        "today": datetime(2020, 2, 20).date(),
        "secret_key": SECRET_KEY,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_bot_token": BOT_TOKEN,
        "slack_api_url": slack.api_url,
        "warm_caches": False,
        "db_connect_timeout": 2,
        "db_statement_timeout": 1,
        "db_pool_timeout": 1,
        "ready_timeout": 0.8,
    }
    values.update(extra)
    return Settings(**values)


def _seed(db: Database) -> None:
    from kpibot.files.contracts import load_contracts

    services = services_for_database(db, Settings(access_file=ACCESS_FILE))
    services.store_contracts(load_contracts([ROOT / "config" / "contracts"]), actor="test")


def _command(http: httpx.Client, slack: SlackApiServer, text: str, ref: str) -> httpx.Response:
    body = slash_command_body(text, user_id="U-COMMISSIONER", response_url=slack.response_url(ref))
    return http.post("/slack/events", content=body, headers=signed_headers(body, SIGNING_SECRET))


def _answer(slack: SlackApiServer, count: int, timeout: float) -> dict[str, Any]:
    return slack.wait_for("/response/", count, timeout)[-1]


def _timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def _url(db: Database, proxy: HangingProxy | None = None) -> str:
    url = db.url if proxy is None else db.url.set(host="127.0.0.1", port=proxy.port)
    return url.render_as_string(hide_password=False)


# ---------------------------------------------------------------------- a hanging database
@pytest.mark.postgres
def test_a_hanging_database_gives_503_in_a_second_a_sentence_in_chat_and_recovers(
    postgres_only: Database, slack_api: SlackApiServer
) -> None:
    db = postgres_only
    _seed(db)
    target = (db.url.host or "127.0.0.1", db.url.port or 5432)
    with HangingProxy(target) as proxy:
        proxy.hang()
        settings = _settings(_url(db, proxy), slack_api)
        bot = build_bot(settings)
        try:
            with serving(create_app(settings, bot)) as http:
                health, seconds = _timed(lambda: http.get("/healthz"))
                assert health.status_code == 200 and seconds < 0.5

                for _ in range(3):
                    ready, seconds = _timed(lambda: http.get("/readyz"))
                    assert ready.status_code == 503 and seconds < 1.2, seconds
                    assert ready.json() == {"status": "unavailable", "reason": "database"}

                # A burst of probes: each answered within the second, one check thread in all.
                answers: list[tuple[int, float]] = []

                def probe() -> None:
                    response, took = _timed(lambda: http.get("/readyz"))
                    answers.append((response.status_code, took))

                burst = [threading.Thread(target=probe) for _ in range(10)]
                for thread in burst:
                    thread.start()
                for thread in burst:
                    thread.join()
                assert [code for code, _ in answers] == [503] * 10
                assert max(took for _, took in answers) < 2.0, answers
                checkers = [t for t in threading.enumerate() if "kpibot-readiness" in t.name]
                assert len(checkers) <= 1

                # Chat: acknowledged within Slack's 3 s, then the sentence, nothing changed.
                ack, seconds = _timed(
                    lambda: _command(http, slack_api, "status childrens-trust", "a")
                )
                assert ack.status_code == 200 and seconds < 3, seconds
                said = _answer(slack_api, 1, timeout=6)
                assert texts.DATABASE_UNAVAILABLE in json.dumps(said, ensure_ascii=False)

                # The database comes back: ready again, and chat answers, with no restart.
                proxy.recover()
                deadline = time.monotonic() + 15
                while http.get("/readyz").status_code != 200:
                    assert time.monotonic() < deadline, "never ready again"
                    time.sleep(0.2)
                _command(http, slack_api, "status childrens-trust", "b")
                again = json.dumps(_answer(slack_api, 2, timeout=15), ensure_ascii=False)
                assert "Children's Trust" in again and texts.DATABASE_UNAVAILABLE not in again
                metrics = http.get("/metrics").text
                assert 'kpibot_commands_total{outcome="unavailable",verb="status"}' in metrics
        finally:
            bot.services.db.dispose()


def test_a_locked_sqlite_database_gets_the_sentence_not_a_traceback(
    tmp_path: Path, slack_api: SlackApiServer
) -> None:
    import sqlite3

    path = tmp_path / "kpibot.db"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    _seed(db)
    db.dispose()
    settings = _settings(f"sqlite:///{path}", slack_api, db_statement_timeout=0.5)
    bot = build_bot(settings)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock and does not let go
    try:
        with serving(create_app(settings, bot)) as http:
            ack = _command(http, slack_api, 'incident childrens-trust sui "Flooded clinic"', "c")
            assert ack.status_code == 200
            said = json.dumps(_answer(slack_api, 1, timeout=10), ensure_ascii=False)
            assert texts.DATABASE_UNAVAILABLE in said
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        bot.services.db.dispose()
    with Database(f"sqlite:///{path}").session(read_only=True) as session:
        from kpibot.store.schema import IncidentRecord

        assert session.scalars(select(IncidentRecord)).all() == []  # nothing was changed


# ---------------------------------------------------------------------- metrics
def test_metrics_count_commands_by_verb_and_outcome_and_hold_no_secrets(
    tmp_path: Path, slack_api: SlackApiServer
) -> None:
    path = tmp_path / "kpibot.db"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    _seed(db)
    db.dispose()
    settings = _settings(f"sqlite:///{path}", slack_api)
    bot = build_bot(settings)
    try:
        with serving(create_app(settings, bot)) as http:
            _command(http, slack_api, "status childrens-trust", "m1")
            _command(http, slack_api, "frobnicate zebra-words", "m2")
            _command(http, slack_api, "submit childrens-trust C7 2019/20 Q3 45% giraffe-note", "m3")
            _answer(slack_api, 3, timeout=10)
            response = http.get("/metrics")
    finally:
        bot.services.db.dispose()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    body = response.text
    assert 'kpibot_commands_total{outcome="ok",verb="status"}' in body
    assert 'kpibot_commands_total{outcome="error",verb="unknown"}' in body
    assert 'kpibot_command_duration_seconds_bucket{le="0.5",verb="status"}' in body
    for name in ("kpibot_ready", "kpibot_outbox_backlog", "kpibot_database_errors_total"):
        assert name in body, name
    for secret in (
        SIGNING_SECRET,
        BOT_TOKEN,
        SECRET_KEY,
        "zebra-words",
        "giraffe-note",
        "frobnicate",
    ):
        assert secret not in body


# ---------------------------------------------------------------------- start-up connections
def test_an_unreachable_slack_at_start_up_is_retried_with_readyz_at_503(
    tmp_path: Path, slack_api: SlackApiServer
) -> None:
    path = tmp_path / "kpibot.db"
    Database(f"sqlite:///{path}").upgrade()
    settings = _settings(f"sqlite:///{path}", slack_api)
    bot = build_bot(settings)
    slack_api.fail_next("auth.test", status=500, times=3)
    connections = Connections(
        [Connection("slack", lambda: slack_reachable(settings))], sleep_first=0.05
    )
    try:
        with serving(create_app(settings, bot, connections=connections)) as http:
            first = http.get("/readyz")
            assert first.status_code == 503
            assert first.json() in (
                {"status": "unavailable", "reason": "slack"},
                {"status": "ok"},  # the three failures may already be behind us
            )
            assert connections.wait(10)
            assert http.get("/readyz").json() == {"status": "ok"}
            assert connections.items[0].attempts == 4
    finally:
        bot.services.db.dispose()


def test_serve_reaches_the_configured_platforms_at_start_up(
    tmp_path: Path, slack_api: SlackApiServer
) -> None:
    settings = _settings(f"sqlite:///{tmp_path / 'x.db'}", slack_api)
    bot = build_bot(settings)
    assert [c.name for c in platform_connections(settings, bot, socket_mode=False).items] == [
        "slack"
    ]
    off = settings.model_copy(update={"slack_signing_secret": None, "slack_bot_token": None})
    assert platform_connections(off, bot, socket_mode=False).items == []
    bot.services.db.dispose()


# ---------------------------------------------------------------------- kpibot serve, a real process
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _serve_process(env: dict[str, str], *args: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "kpibot", "serve", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def _wait_http(port: int, path: str, ok: Callable[[httpx.Response], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ok(httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2, trust_env=False)):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{path} never answered as expected")


def _enqueue(db: Database, platform: str, channel: str, n: int) -> None:
    now = datetime.now(UTC)
    entries = [
        OutboxEntry(
            key=f"test|{platform}|{i}",
            contract_id=None,
            kind="reminder",
            audience="provider",
            platform=platform,
            channel=channel,
            period=None,
            step=None,
            due_at=now - timedelta(minutes=1),
            payload={"text": f"message {i}"},
        )
        for i in range(n)
    ]
    OutboxRepository(db).enqueue(entries, now)


def _statuses(db: Database) -> dict[str, int]:
    return OutboxRepository(db).counts()


def _serve_env(db: Database, slack: SlackApiServer, port: int) -> dict[str, str]:
    return {
        "KPIBOT_DATABASE_URL": _url(db),
        "KPIBOT_CONFIG_DIR": str(ROOT / "config"),
        "KPIBOT_PORT": str(port),
        "KPIBOT_HOST": "127.0.0.1",
        "KPIBOT_WARM_CACHES": "false",
        "KPIBOT_SECRET_KEY": SECRET_KEY,
        "KPIBOT_LOG_FORMAT": "json",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": slack.api_url,
    }


def _stops_cleanly(db: Database, slack_api: SlackApiServer, stop: signal.Signals) -> None:
    port = _free_port()
    # One Slack channel, 30 messages due: at about one a second, the dispatcher holds its claim
    # on the rest of the batch when the signal comes.
    _enqueue(db, "slack", "C-BUSY", 30)
    with _serve_process(_serve_env(db, slack_api, port)) as process:
        _wait_http(port, "/readyz", lambda r: r.status_code == 200, 60)
        slack_api.wait_for("chat.postMessage", 2, timeout=30)
        assert _statuses(db).get("claimed", 0) > 0
        process.send_signal(stop)
        started = time.monotonic()
        try:
            _, stderr = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate(timeout=5)
            raise AssertionError(
                f"still running 15 s after {stop.name}:\n{stderr[-4000:]}"
            ) from None
        code = process.returncode
        took = time.monotonic() - started
    assert code == 0, stderr[-3000:]
    assert took < 10, took
    statuses = _statuses(db)
    assert statuses.get("claimed", 0) == 0, statuses
    sent = len(slack_api.calls("chat.postMessage"))
    assert statuses.get("sent", 0) == sent and statuses.get("pending", 0) == 30 - sent
    # The rows handed back are due at once, for any replica: not after a 2-minute lease.
    again = OutboxRepository(db).claim("another-replica", datetime.now(UTC), limit=50)
    assert len(again) == 30 - sent
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any("shutting down" in line["message"] for line in lines)
    assert "Traceback" not in stderr


def test_serve_stops_on_sigterm_exits_0_and_hands_back_its_claims(
    db: Database, slack_api: SlackApiServer
) -> None:
    _stops_cleanly(db, slack_api, signal.SIGTERM)


def test_serve_stops_on_sigint_too(tmp_path: Path, slack_api: SlackApiServer) -> None:
    db = Database(f"sqlite:///{tmp_path / 'kpibot.db'}")
    db.upgrade()
    try:
        _stops_cleanly(db, slack_api, signal.SIGINT)
    finally:
        db.dispose()


def test_socket_mode_serves_health_runs_the_scheduler_and_retries_slack(
    tmp_path: Path, slack_api: SlackApiServer
) -> None:
    path = tmp_path / "kpibot.db"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    _enqueue(db, "console", "terminal", 2)
    port = _free_port()
    env = _serve_env(db, slack_api, port) | {"SLACK_APP_TOKEN": "xapp-test-app-token"}
    del env["SLACK_SIGNING_SECRET"]
    with _serve_process(env, "--socket-mode") as process:
        # Slack's Socket Mode endpoint is not there (the recorder does not know
        # apps.connections.open): the server runs anyway, unready, and keeps trying.
        _wait_http(port, "/healthz", lambda r: r.status_code == 200, 60)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", trust_env=False, timeout=5)
        assert ready.status_code == 503 and ready.json() == {
            "status": "unavailable",
            "reason": "slack",
        }
        # The scheduler runs in Socket Mode too: the console rows are delivered.
        deadline = time.monotonic() + 30
        while _statuses(db).get("sent", 0) < 2:
            assert time.monotonic() < deadline, _statuses(db)
            time.sleep(0.2)
        assert len(slack_api.calls("apps.connections.open")) >= 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    db.dispose()


def test_serve_refuses_a_broken_configuration_with_one_sentence_each(tmp_path: Path) -> None:
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "bad.yaml").write_text("id: [unclosed\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "kpibot", "serve"],
        env={
            **os.environ,
            "KPIBOT_CONFIG_DIR": str(tmp_path),
            "KPIBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}",
            "SLACK_SIGNING_SECRET": "s",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert any(line.startswith("There is no access file at") for line in lines), lines
    assert any(line.startswith("SLACK_SIGNING_SECRET is set but SLACK_BOT_TOKEN") for line in lines)
    assert lines[-1].startswith("kpibot did not start")
    assert "Traceback" not in out.stderr

    (tmp_path / "access.yaml").write_text("users: {}\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "kpibot", "serve"],
        env={
            **os.environ,
            "KPIBOT_CONFIG_DIR": str(tmp_path),
            "KPIBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}",
            "SLACK_SIGNING_SECRET": "s",
            "SLACK_BOT_TOKEN": "xoxb-t",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert "bad.yaml" in out.stderr and "kpibot did not start" in out.stderr
    assert "Traceback" not in out.stderr
