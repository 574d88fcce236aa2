"""Start-up checks: a broken configuration is refused with one sentence per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpibot.app import checks
from kpibot.app.checks import configuration_problems
from kpibot.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def good(tmp_path: Path) -> dict[str, object]:
    return {
        "config_dir": ROOT / "config",
        "database_url": f"sqlite:///{tmp_path / 'k.db'}",
        "SLACK_SIGNING_SECRET": "s",
        "SLACK_BOT_TOKEN": "xoxb-t",
    }


def test_a_complete_configuration_has_no_problems(good: dict[str, object]) -> None:
    assert configuration_problems(Settings(**good)) == []


def test_a_missing_access_file_is_refused_not_taken_as_nobody_has_access(
    good: dict[str, object], tmp_path: Path
) -> None:
    settings = Settings(**good | {"access_file": tmp_path / "nope.yaml"})
    assert configuration_problems(settings) == [
        checks.NO_ACCESS_FILE.format(path=tmp_path / "nope.yaml")
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [("users: [unclosed\n", "YAML error at line"), ("users:\n  U1: {role: king}\n", "users.U1")],
)
def test_an_unusable_access_file_says_where(
    good: dict[str, object], tmp_path: Path, text: str, reason: str
) -> None:
    access = tmp_path / "access.yaml"
    access.write_text(text, encoding="utf-8")
    (problem,) = configuration_problems(Settings(**good | {"access_file": access}))
    assert problem.startswith(f"The access file {access} cannot be used (") and reason in problem


def test_slack_half_configured_is_refused(good: dict[str, object]) -> None:
    no_token = Settings(**{k: v for k, v in good.items() if k != "SLACK_BOT_TOKEN"})
    assert configuration_problems(no_token) == [checks.SECRET_WITHOUT_TOKEN]
    no_secret = Settings(**{k: v for k, v in good.items() if k != "SLACK_SIGNING_SECRET"})
    assert configuration_problems(no_secret) == [checks.TOKEN_WITHOUT_SECRET]
    assert configuration_problems(Settings(**good), socket_mode=True) == [checks.SOCKET_MODE_TOKENS]
    socket = Settings(**good | {"SLACK_APP_TOKEN": "xapp-1"})
    assert configuration_problems(socket, socket_mode=True) == []


def test_teams_without_its_password_and_no_platform_at_all(good: dict[str, object]) -> None:
    base = {k: v for k, v in good.items() if not k.startswith("SLACK")}
    assert configuration_problems(Settings(**base)) == [checks.NO_PLATFORM]
    teams = Settings(**base | {"TEAMS_APP_ID": "00000000-0000-0000-0000-000000000001"})
    assert configuration_problems(teams) == [checks.TEAMS_WITHOUT_PASSWORD]
    # The scheduler alone needs no chat platform.
    assert configuration_problems(Settings(**base), serving=False) == []


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    settings = Settings(
        config_dir=tmp_path,
        database_url="not a url",
        log_format="xml",
        SLACK_SIGNING_SECRET="s",
    )
    problems = configuration_problems(settings)
    assert problems == [
        checks.NO_ACCESS_FILE.format(path=tmp_path / "access.yaml"),
        checks.NO_CONTRACTS_DIR.format(path=tmp_path / "contracts"),
        checks.BAD_DATABASE_URL.format(url="not a url"),
        checks.BAD_LOG_FORMAT.format(value="xml", choices="text, json"),
        checks.SECRET_WITHOUT_TOKEN,
    ]
