"""Start-up checks: ``kpibot serve`` and ``kpibot scheduler run`` refuse a broken configuration.

Each problem is one sentence saying what is wrong and how to fix it; all are reported at once,
before anything starts. A missing access file used to mean, silently, that nobody had access; a
signing secret without a bot token started a server with no chat routes. Contract files are
checked when they are loaded (``kpibot serve`` loads them at start), with the same sentences as
``kpibot contracts check``.

>>> configuration_problems(Settings(access_file=Path("/nowhere.yaml")), serving=False)
['There is no access file at /nowhere.yaml, so nobody would have access; run `kpibot init` to write a starter one, or point KPIBOT_ACCESS_FILE at yours.']
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError
from sqlalchemy.exc import ArgumentError

from kpibot.core.access import AccessPolicy
from kpibot.core.logs import FORMATS
from kpibot.core.settings import Settings
from kpibot.store.database import normalise_url

NO_ACCESS_FILE = (
    "There is no access file at {path}, so nobody would have access; run `kpibot init` to write "
    "a starter one, or point KPIBOT_ACCESS_FILE at yours."
)
BAD_ACCESS_FILE = "The access file {path} cannot be used ({reason}); fix it and start again."
NO_CONTRACTS_DIR = (
    "There is no contracts folder at {path}; run `kpibot init` to write one with the four seed "
    "contracts, or point KPIBOT_CONTRACTS_DIR at yours."
)
SECRET_WITHOUT_TOKEN = (
    "SLACK_SIGNING_SECRET is set but SLACK_BOT_TOKEN is not, so kpibot could not answer in "
    "Slack; set the bot token (xoxb-…) too, or unset the secret."
)
TOKEN_WITHOUT_SECRET = (
    "SLACK_BOT_TOKEN is set but SLACK_SIGNING_SECRET is not, so /slack/events could not check "
    "who is calling; set the signing secret too, or use --socket-mode with SLACK_APP_TOKEN."
)
SOCKET_MODE_TOKENS = (
    "Socket Mode needs SLACK_APP_TOKEN (xapp-…) and SLACK_BOT_TOKEN (xoxb-…); set both."
)
TEAMS_WITHOUT_PASSWORD = (
    "TEAMS_APP_ID is set but TEAMS_APP_PASSWORD is not, so kpibot could not answer in Teams; "
    "set the client secret too (the README's Teams section says where to find it)."
)
NO_PLATFORM = (
    "Set SLACK_SIGNING_SECRET (and SLACK_BOT_TOKEN) for Slack, or TEAMS_APP_ID and "
    "TEAMS_APP_PASSWORD for Teams, before `kpibot serve`; the README says where to find them."
)
BAD_DATABASE_URL = (
    "KPIBOT_DATABASE_URL '{url}' is not a database URL; write it like "
    "postgresql+psycopg://user@host/db or sqlite:///kpibot.db."
)
BAD_LOG_FORMAT = "KPIBOT_LOG_FORMAT '{value}' is not one of: {choices}."
NOT_STARTED = "kpibot did not start: fix the problem(s) above and start it again."


def configuration_problems(
    settings: Settings, *, socket_mode: bool = False, serving: bool = True
) -> list[str]:
    """Every problem with ``settings`` that would make kpibot start broken; [] when none.

    ``serving``: the chat platforms must be configured (``kpibot serve``); the scheduler alone
    (``kpibot scheduler run``) needs only the store, the access file and the contracts.
    """
    problems = [*_access_problems(settings.access_file)]
    if not settings.contracts_dir.is_dir():
        problems.append(NO_CONTRACTS_DIR.format(path=settings.contracts_dir))
    try:
        normalise_url(settings.database_url)
    except ArgumentError:
        problems.append(BAD_DATABASE_URL.format(url=_masked(settings.database_url)))
    if settings.log_format.strip().lower() not in FORMATS:
        problems.append(
            BAD_LOG_FORMAT.format(value=settings.log_format, choices=", ".join(FORMATS))
        )
    if serving:
        problems.extend(_platform_problems(settings, socket_mode))
    return problems


def _access_problems(path: Path) -> list[str]:
    if not path.is_file():
        return [NO_ACCESS_FILE.format(path=path)]
    try:
        AccessPolicy.load(path)
    except OSError as error:
        return [BAD_ACCESS_FILE.format(path=path, reason=error.strerror or str(error))]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"YAML error at line {mark.line + 1}" if mark is not None else "not YAML"
        return [BAD_ACCESS_FILE.format(path=path, reason=where)]
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        return [BAD_ACCESS_FILE.format(path=path, reason=f"{field}: {first['msg']}")]
    return []


def _platform_problems(settings: Settings, socket_mode: bool) -> list[str]:
    problems: list[str] = []
    secret, token = settings.slack_signing_secret, settings.slack_bot_token
    if socket_mode:
        if settings.slack_app_token is None or token is None:
            problems.append(SOCKET_MODE_TOKENS)
    elif secret is not None and token is None:
        problems.append(SECRET_WITHOUT_TOKEN)
    elif token is not None and secret is None:
        problems.append(TOKEN_WITHOUT_SECRET)
    teams = settings.teams_app_id is not None or settings.teams_auth_disabled
    password = settings.teams_app_password
    if settings.teams_app_id and password is None and not settings.teams_auth_disabled:
        problems.append(TEAMS_WITHOUT_PASSWORD)
    if not socket_mode and secret is None and token is None and not teams:
        problems.append(NO_PLATFORM)
    return problems


def _masked(url: str) -> str:
    """A URL with any password hidden, for a message."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
    return url
