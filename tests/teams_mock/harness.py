"""The pieces a Teams end-to-end test needs: a seeded store, an access file, a served app, the text of a card.

The access file is config/access.yaml plus two Teams users (Priya by AAD object id, Casey by
e-mail, found through the connector's member lookup) and a Teams channel bound to the trust.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from starlette.applications import Starlette

from kpibot.app.wiring import build_services
from kpibot.core.settings import Settings
from tests.teams_mock.activities import CASEY, CHANNEL, PRIYA
from tests.teams_mock.connector import BotConnector

ROOT = Path(__file__).resolve().parents[2]
APP_PASSWORD = "test-app-password"
SECRET_KEY = "test-secret-key"
CASEY_EMAIL = "casey@council.example"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
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


def seed_database(path: Path) -> Path:
    """A SQLite file with config/contracts and their demo history loaded."""
    services = build_services(Settings(database_url=f"sqlite:///{path}"))
    services.db.upgrade()
    services.load_contracts([ROOT / "config" / "contracts"], actor="test")
    services.db.dispose()
    return path


def write_access_file(path: Path) -> Path:
    data = yaml.safe_load((ROOT / "config" / "access.yaml").read_text(encoding="utf-8"))
    data["users"][PRIYA["aadObjectId"]] = {
        "role": "provider",
        "name": "Priya (Children's Trust)",
        "contracts": ["childrens-trust"],
    }
    data["users"][CASEY_EMAIL] = {
        "role": "commissioner",
        "name": "Casey (Council commissioner)",
        "contracts": "all",
    }
    data["channels"][CHANNEL] = "childrens-trust"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def connector_members(connector: BotConnector) -> None:
    """Casey's member record carries her e-mail, as Teams' roster does."""
    connector.members[CASEY["id"]] = {
        "id": CASEY["id"],
        "name": CASEY["name"],
        "aadObjectId": CASEY["aadObjectId"],
        "email": CASEY_EMAIL,
        "userPrincipalName": CASEY_EMAIL,
    }


def teams_env(
    monkeypatch: pytest.MonkeyPatch,
    db: Path,
    access: Path,
    connector: BotConnector,
    *,
    auth: bool = True,
) -> None:
    """Environment for a Teams-enabled kpibot whose Microsoft endpoints are the connector's."""
    monkeypatch.setenv("KPIBOT_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("KPIBOT_TODAY", "2020-02-20")
    monkeypatch.setenv("KPIBOT_ACCESS_FILE", str(access))
    monkeypatch.setenv("KPIBOT_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("SSL_CERT_FILE", str(connector.cert_path))
    for name in (
        "SLACK_SIGNING_SECRET",
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "SLACK_API_URL",
        "CLIENT_ID",
        "CLIENT_SECRET",
        "TENANT_ID",
        "SERVICE_URL",
        "CLOUD",
        "DANGEROUSLY_ALLOW_UNAUTHENTICATED_REQUESTS",
        "MICROSOFT_APP_ID",
        "MICROSOFT_APP_PASSWORD",
        "TEAMS_TENANT_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    if auth:
        monkeypatch.setenv("TEAMS_APP_ID", connector.app_id)
        monkeypatch.setenv("TEAMS_APP_PASSWORD", APP_PASSWORD)
        monkeypatch.setenv("TEAMS_OPENID_URL", connector.openid_url)
        monkeypatch.setenv("TEAMS_TOKEN_URL", connector.token_url)
        monkeypatch.delenv("KPIBOT_TEAMS_AUTH_DISABLED", raising=False)
    else:
        for name in ("TEAMS_APP_ID", "TEAMS_APP_PASSWORD", "TEAMS_OPENID_URL", "TEAMS_TOKEN_URL"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("KPIBOT_TEAMS_AUTH_DISABLED", "true")


def copy_db(seeded: Path, tmp_path: Path) -> Path:
    db = tmp_path / "kpibot.db"
    shutil.copy(seeded, db)
    return db


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
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=15) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(10)


def card_text(card: dict[str, Any]) -> str:
    """Every text in a card (text blocks, table cells, inputs' labels, button titles), one per line."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "TextBlock":
                parts.append(str(node.get("text", "")))
            if str(node.get("type", "")).startswith("Input."):
                parts.append(str(node.get("label", "")))
            if str(node.get("type", "")).startswith("Action."):
                parts.append(f"[{node.get('title', '')}]")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(card)
    return "\n".join(parts)


def card_actions(card: dict[str, Any]) -> list[dict[str, Any]]:
    return list(card.get("actions") or [])


def table_rows(card: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The table's body rows (header left out) as lists of cells."""
    tables = [e for e in card["body"] if e.get("type") == "Table"]
    return [row["cells"] for table in tables for row in table["rows"][1:]]


def cell_text(cell: dict[str, Any]) -> str:
    return " ".join(str(item.get("text", "")) for item in cell["items"])
