"""Settings from environment variables (``KPIBOT_*``, ``SLACK_*``), with sensible embedded defaults.

>>> Settings(database_url="sqlite:///:memory:").database_url
'sqlite:///:memory:'
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

LONDON = ZoneInfo("Europe/London")
_STARTED = time.monotonic()


class Settings(BaseSettings):
    """Everything a deployment configures. Secrets are ``SecretStr`` so they never reach logs."""

    model_config = SettingsConfigDict(env_prefix="KPIBOT_", extra="ignore")

    database_url: str = "sqlite:///kpibot.db"
    contracts_dir: Path = Path("config/contracts")
    access_file: Path = Path("config/access.yaml")
    today: date | None = Field(default=None, description="Pin the clock (demos and previews only)")
    chart_dir: Path = Path("charts")
    host: str = "0.0.0.0"
    port: int = 3000
    run_scheduler: bool = True
    warm_caches: bool = Field(
        default=True, description="Build every contract's status at start-up; /readyz waits for it"
    )
    log_level: str = "INFO"
    secret_key: SecretStr | None = Field(
        default=None, description="Signs confirmation buttons; share across replicas"
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias="SLACK_SIGNING_SECRET"
    )
    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str | None = Field(default=None, validation_alias="SLACK_API_URL")
    teams_app_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TEAMS_APP_ID", "MICROSOFT_APP_ID"),
        description="The Azure bot's Microsoft App ID (client id); enables POST /api/messages",
    )
    teams_app_password: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TEAMS_APP_PASSWORD", "MICROSOFT_APP_PASSWORD")
    )
    teams_tenant_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TEAMS_TENANT_ID", "MICROSOFT_APP_TENANT_ID"),
        description="Single-tenant bots only",
    )
    teams_auth_disabled: bool = Field(
        default=False,
        description="Development only: accept unsigned Teams requests (logged loudly)",
    )
    teams_openid_url: str | None = Field(
        default=None,
        validation_alias="TEAMS_OPENID_URL",
        description="Bot Framework OpenID metadata URL (tests point it at a local key set)",
    )
    teams_token_url: str | None = Field(
        default=None,
        validation_alias="TEAMS_TOKEN_URL",
        description="Client-credentials token endpoint instead of MSAL (tests and emulators)",
    )

    def now(self) -> datetime:
        """The current time in Europe/London; with ``today`` pinned, a clock that started at 09:00 that day."""
        if self.today is not None:
            start = datetime(self.today.year, self.today.month, self.today.day, 9, 0, tzinfo=LONDON)
            return start + timedelta(seconds=time.monotonic() - _STARTED)
        return datetime.now(LONDON)
