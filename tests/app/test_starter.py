"""Installable and configured from one place: ``kpibot init``, ``.env`` for every command, ``kpibot config``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kpibot.app.starter import StarterExists, effective_settings, write_starter
from kpibot.core.settings import DATA_DIR, Settings

ROOT = Path(__file__).resolve().parents[2]


def kpibot(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("KPIBOT_", "SLACK_", "TEAMS_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "kpibot", *args],
        cwd=cwd,
        env={**clean, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_init_writes_the_four_seed_contracts_an_access_file_and_env_example(tmp_path: Path) -> None:
    written = write_starter(tmp_path / "config")
    names = sorted(str(p.relative_to(tmp_path)) for p in written)
    assert names == [
        "config/.env.example",
        "config/access.yaml",
        "config/contracts/childrens-trust.yaml",
        "config/contracts/healthy-child-0-19.yaml",
        "config/contracts/one-psychology.yaml",
        "config/contracts/one-you-lifestyle.yaml",
    ]
    for contract in (ROOT / "config" / "contracts").glob("*.yaml"):
        assert (
            tmp_path / "config" / "contracts" / contract.name
        ).read_bytes() == contract.read_bytes()
    assert (tmp_path / "config" / "access.yaml").read_bytes() == (
        ROOT / "config" / "access.yaml"
    ).read_bytes()
    env = (tmp_path / "config" / ".env.example").read_text()
    assert f"\nKPIBOT_CONFIG_DIR={tmp_path / 'config'}\n" in env
    # The files it wrote are a working configuration: they load, and nothing is missing.
    settings = Settings(config_dir=tmp_path / "config")
    from kpibot.app.checks import configuration_problems
    from kpibot.files.contracts import load_contracts

    assert len(load_contracts([settings.contracts_dir])) == 4
    assert configuration_problems(settings, serving=False) == []


def test_init_never_overwrites_unless_forced(tmp_path: Path) -> None:
    write_starter(tmp_path)
    (tmp_path / "access.yaml").write_text("users: {}\n")
    with pytest.raises(StarterExists, match="already exists"):
        write_starter(tmp_path)
    assert (tmp_path / "access.yaml").read_text() == "users: {}\n"
    write_starter(tmp_path, force=True)
    assert (tmp_path / "access.yaml").read_bytes() == (DATA_DIR / "access.yaml").read_bytes()


def test_the_packaged_starters_are_the_checkout_s_config() -> None:
    # One copy of each file: kpibot/data links to config/ and teams/ in the checkout.
    for name in ("contracts", "access.yaml", "teams"):
        assert (DATA_DIR / name).resolve() == (
            ROOT / ("teams" if name == "teams" else "config") / ("" if name == "teams" else name)
        ).resolve()


def test_paths_resolve_from_the_config_folder_unless_set_one_by_one(tmp_path: Path) -> None:
    settings = Settings(config_dir=tmp_path)
    assert settings.contracts_dir == tmp_path / "contracts"
    assert settings.access_file == tmp_path / "access.yaml"
    mixed = Settings(config_dir=tmp_path, access_file=Path("/etc/kpibot/access.yaml"))
    assert mixed.contracts_dir == tmp_path / "contracts"
    assert mixed.access_file == Path("/etc/kpibot/access.yaml")


def test_every_command_reads_dotenv_so_db_upgrade_and_config_agree(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "KPIBOT_DATABASE_URL=sqlite:///from-dotenv.db\n"
        "SLACK_BOT_TOKEN=xoxb-very-secret-token\n"
        "KPIBOT_DB_STATEMENT_TIMEOUT=12\n",
        encoding="utf-8",
    )
    upgraded = kpibot("db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "from-dotenv.db").is_file()  # the database named in .env, not kpibot.db
    assert not (tmp_path / "kpibot.db").exists()

    shown = kpibot("config", cwd=tmp_path, env={"KPIBOT_PORT": "3999"})
    assert shown.returncode == 0, shown.stderr
    lines = {line.split()[0]: line for line in shown.stdout.splitlines()}
    assert "sqlite:///from-dotenv.db" in lines["KPIBOT_DATABASE_URL"]
    assert lines["KPIBOT_DATABASE_URL"].endswith("(.env)")
    assert "12.0" in lines["KPIBOT_DB_STATEMENT_TIMEOUT"]
    assert lines["KPIBOT_PORT"].endswith("(environment)") and "3999" in lines["KPIBOT_PORT"]
    assert "********" in lines["SLACK_BOT_TOKEN"]
    assert "xoxb-very-secret-token" not in shown.stdout


def test_config_masks_a_database_password() -> None:
    settings = Settings(database_url="postgresql+psycopg://kpibot:hunter2@db/kpibot")
    shown = {name: value for name, value, _ in effective_settings(settings)}
    assert "hunter2" not in shown["KPIBOT_DATABASE_URL"]
    assert "kpibot:***@db/kpibot" in shown["KPIBOT_DATABASE_URL"]


def test_version_and_python_dash_m(tmp_path: Path) -> None:
    out = kpibot("--version", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("kpibot ")


def test_demo_runs_in_an_empty_folder_from_the_packaged_seeds(tmp_path: Path) -> None:
    out = kpibot("demo", "--run", "/kpi status childrens-trust", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "4 contracts loaded" in out.stdout and "6 red" in out.stdout


def test_teams_package_uses_the_installed_templates_outside_a_checkout(tmp_path: Path) -> None:
    out = kpibot(
        "teams",
        "package",
        "--out",
        "app.zip",
        cwd=tmp_path,
        env={"TEAMS_APP_ID": "00000000-0000-0000-0000-000000000001"},
    )
    assert out.returncode == 0, out.stderr
    import zipfile

    with zipfile.ZipFile(tmp_path / "app.zip") as package:
        assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
