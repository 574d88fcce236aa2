"""``kpibot init`` and ``kpibot config``: a starter config folder, and the settings in effect.

The starters ship inside the package (``kpibot/data``, ``DATA_DIR``): the four seed contracts, an
access file and ``.env.example``. ``kpibot init [DIR]`` copies them into DIR (``./config`` by
default), which is where the settings look unless told otherwise (``KPIBOT_CONFIG_DIR``), so a
kpibot installed from a wheel runs with no checkout at all.

>>> write_starter(Path("config"))  # doctest: +SKIP
[PosixPath('config/contracts/childrens-trust.yaml'), …, PosixPath('config/.env.example')]
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from dotenv import dotenv_values
from pydantic import AliasChoices, SecretStr
from sqlalchemy.engine import make_url

from kpibot.core.settings import DATA_DIR, Settings

ENV_EXAMPLE = ".env.example"
EXISTS = (
    "{path} already exists; kpibot init leaves existing files alone. Choose another folder, "
    "or add --force to overwrite the starter files."
)
NO_STARTERS = "The packaged starter files are missing from {path}; reinstall kpibot."
MASK = "********"


class StarterExists(Exception):
    """A starter file is already there; ``str(exc)`` is the sentence to show."""


def starter_files() -> list[tuple[Path, Path]]:
    """(packaged file, path relative to the config folder) for every starter file."""
    contracts = sorted((DATA_DIR / "contracts").glob("*.yaml"))
    if not contracts or not (DATA_DIR / "access.yaml").is_file():
        raise StarterExists(NO_STARTERS.format(path=DATA_DIR))
    files = [(c, Path("contracts") / c.name) for c in contracts]
    files.append((DATA_DIR / "access.yaml", Path("access.yaml")))
    files.append((DATA_DIR / "env.example", Path(ENV_EXAMPLE)))
    return files


def write_starter(folder: Path, *, force: bool = False) -> list[Path]:
    """Copy the starter files into ``folder``; nothing is written if any exists (unless ``force``)."""
    files = starter_files()
    if not force:
        for _, relative in files:
            if (folder / relative).exists():
                raise StarterExists(EXISTS.format(path=folder / relative))
    written = []
    for source, relative in files:
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if relative == Path(ENV_EXAMPLE):
            text = source.read_text(encoding="utf-8")
            text = text.replace("\nKPIBOT_CONFIG_DIR=config\n", f"\nKPIBOT_CONFIG_DIR={folder}\n")
            target.write_text(text, encoding="utf-8")
        else:
            shutil.copyfile(source, target)
        written.append(target)
    return written


def env_names(name: str, settings: type[Settings] = Settings) -> list[str]:
    """The environment variables a setting is read from, the first one preferred."""
    field = settings.model_fields[name]
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [f"KPIBOT_{name.upper()}"]


def _shown(name: str, value: object) -> str:
    if isinstance(value, SecretStr):
        return MASK
    if value is None:
        return "-"
    if name == "database_url":
        try:
            return make_url(str(value)).render_as_string(hide_password=True)
        except Exception:
            return MASK  # unparseable: it may hold a password, so show none of it
    if isinstance(value, Path):
        state = "" if value.exists() else ", missing"
        return f"{value} (resolves to {value.resolve()}{state})"
    return str(value)


def effective_settings(
    settings: Settings, env_file: Path = Path(".env")
) -> Iterator[tuple[str, str, str]]:
    """(variable, value shown, where it came from) for every setting; secrets masked."""
    dotenv = (
        {k.upper(): v for k, v in dotenv_values(env_file).items()} if env_file.is_file() else {}
    )
    environment = {k.upper() for k in os.environ}
    for name in type(settings).model_fields:
        names = env_names(name)
        source = "default"
        for variable in names:
            if variable.upper() in environment:
                source = "environment"
                break
            if variable.upper() in dotenv:
                source = ".env"
                break
        if source == "default" and name in ("contracts_dir", "access_file"):
            source = "from KPIBOT_CONFIG_DIR"
        yield names[0], _shown(name, getattr(settings, name)), source
