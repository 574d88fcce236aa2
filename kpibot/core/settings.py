"""Settings from environment variables (``KPIBOT_*``, ``SLACK_*``) and a ``.env`` file, with defaults.

One source for every command: the environment wins over ``.env`` in the working directory, which
wins over the defaults below. Paths resolve from one place: ``KPIBOT_CONFIG_DIR`` (``config``,
relative to the working directory) holds ``contracts/`` and ``access.yaml`` unless
``KPIBOT_CONTRACTS_DIR`` or ``KPIBOT_ACCESS_FILE`` name others. The starter files that
``kpibot init`` copies (and ``kpibot demo`` falls back to) ship inside the package: ``DATA_DIR``.

>>> Settings(database_url="sqlite:///:memory:").database_url
'sqlite:///:memory:'
>>> Settings(config_dir=Path("/etc/kpibot")).access_file
PosixPath('/etc/kpibot/access.yaml')
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LONDON = ZoneInfo("Europe/London")
_STARTED = time.monotonic()
# The packaged starters: the four seed contracts, an access file, .env.example, the Teams app.
DATA_DIR = Path(__file__).resolve().parents[1] / "data"


class Settings(BaseSettings):
    """Everything a deployment configures. Secrets are ``SecretStr`` so they never reach logs."""

    model_config = SettingsConfigDict(
        env_prefix="KPIBOT_", extra="ignore", env_file=".env", env_file_encoding="utf-8"
    )

    database_url: str = "sqlite:///kpibot.db"
    config_dir: Path = Field(
        default=Path("config"), description="Holds contracts/ and access.yaml (kpibot init)"
    )
    # Each defaults to its place in config_dir unless set (see _paths_from_config_dir).
    contracts_dir: Path = Field(
        default=Path("config/contracts"), description="Contract YAML (<config_dir>/contracts)"
    )
    access_file: Path = Field(
        default=Path("config/access.yaml"), description="Roles and users (<config_dir>/access.yaml)"
    )
    today: date | None = Field(default=None, description="Pin the clock (demos and previews only)")
    chart_dir: Path = Path("charts")
    host: str = "0.0.0.0"
    port: int = 3000
    run_scheduler: bool = True
    warm_caches: bool = Field(
        default=True, description="Build every contract's status at start-up; /readyz waits for it"
    )
    log_level: str = Field(default="INFO", description="kpibot's own loggers and uvicorn's")
    log_format: str = Field(default="text", description="text, or json: one object per line")
    db_connect_timeout: float = Field(
        default=2.0, gt=0, description="Seconds to connect to PostgreSQL (libpq's minimum is 2)"
    )
    db_statement_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a statement may run (PostgreSQL) or wait for the lock (SQLite)",
    )
    db_pool_timeout: float = Field(
        default=2.0, gt=0, description="Seconds to wait for a free pooled connection"
    )
    ready_timeout: float = Field(
        default=0.8, gt=0, description="Seconds /readyz waits for the database before 503"
    )
    shutdown_timeout: float = Field(
        default=8.0, gt=0, description="Seconds SIGTERM waits for work in progress before exit"
    )
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

    @model_validator(mode="after")
    def _paths_from_config_dir(self) -> Settings:
        if "contracts_dir" not in self.model_fields_set:
            self.contracts_dir = self.config_dir / "contracts"
        if "access_file" not in self.model_fields_set:
            self.access_file = self.config_dir / "access.yaml"
        return self

    def now(self) -> datetime:
        """The current time in Europe/London; with ``today`` pinned, a clock that started at 09:00 that day."""
        if self.today is not None:
            start = datetime(self.today.year, self.today.month, self.today.day, 9, 0, tzinfo=LONDON)
            return start + timedelta(seconds=time.monotonic() - _STARTED)
        return datetime.now(LONDON)
