"""``kpibot teams package``: the Teams app package (manifest and two icons, zipped) for sideloading.

The manifest in ``teams/manifest.json`` (installed with kpibot as ``kpibot/data/teams``) names the bot as ``${TEAMS_APP_ID}``; the package gets
the real id from ``TEAMS_APP_ID`` (or ``MICROSOFT_APP_ID``). The icons are ``teams/color.png``
(192×192) and ``teams/outline.png`` (32×32, white on transparent), checked before zipping.

>>> # kpibot.cli calls register(subparsers, add, db_arg) while building its parser.
>>> # $ TEAMS_APP_ID=… kpibot teams package --out kpibot-teams.zip
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

PLACEHOLDER = "${TEAMS_APP_ID}"
ICONS = {"color.png": (192, 192), "outline.png": (32, 32)}
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

NO_APP_ID = (
    "Set TEAMS_APP_ID (or MICROSOFT_APP_ID) to the Azure bot's Microsoft App ID before "
    "`kpibot teams package`; the README's Teams section says where to find it."
)
BAD_APP_ID = "TEAMS_APP_ID '{app_id}' is not a GUID; copy the Microsoft App ID from the Azure bot."
NO_SOURCE = "There is no {path}; pass --source DIR with manifest.json and the two icons."
BAD_MANIFEST = "{path} is not valid JSON after filling in the app id ({error}); fix the file."
BAD_ICON = "{path} must be a {w}×{h} PNG (it is {actual}); replace it and package again."
WROTE = "Wrote {out}: in Teams, Apps → Manage your apps → Upload an app, and choose it."


class PackageError(Exception):
    """A problem the user can fix; ``str(exc)`` is the one sentence to show."""


def build_package(source: Path, out: Path, app_id: str) -> Path:
    """Zip ``source``'s manifest (with ``app_id`` filled in) and icons into ``out``."""
    if not GUID.match(app_id):
        raise PackageError(BAD_APP_ID.format(app_id=app_id))
    manifest_path = source / "manifest.json"
    if not manifest_path.is_file():
        raise PackageError(NO_SOURCE.format(path=manifest_path))
    text = manifest_path.read_text(encoding="utf-8").replace(PLACEHOLDER, app_id)
    try:
        json.loads(text)
    except ValueError as exc:
        raise PackageError(BAD_MANIFEST.format(path=manifest_path, error=exc)) from None
    icons = {name: _checked_icon(source / name, size) for name, size in ICONS.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as package:
        package.writestr("manifest.json", text)
        for name, data in icons.items():
            package.writestr(name, data)
    return out


def _checked_icon(path: Path, size: tuple[int, int]) -> bytes:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise PackageError(NO_SOURCE.format(path=path))
    data = path.read_bytes()
    try:
        with Image.open(path) as image:
            actual = f"{image.format} {image.width}×{image.height}"
            ok = image.format == "PNG" and image.size == size
    except (OSError, UnidentifiedImageError):
        actual, ok = "not an image", False
    if not ok:
        raise PackageError(BAD_ICON.format(path=path, w=size[0], h=size[1], actual=actual))
    return data


def source_folder(given: str | None) -> Path:
    """``--source``, else ``./teams`` when it is there (a checkout), else the packaged templates."""
    from kpibot.core.settings import DATA_DIR

    if given:
        return Path(given)
    local = Path("teams")
    return local if (local / "manifest.json").is_file() else DATA_DIR / "teams"


def cmd_teams_package(args: argparse.Namespace) -> int:
    from kpibot.core.settings import Settings

    app_id = Settings().teams_app_id
    try:
        if not app_id:
            raise PackageError(NO_APP_ID)
        out = build_package(source_folder(args.source), Path(args.out), app_id.strip())
    except PackageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(WROTE.format(out=out))
    return 0


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    add: Callable[..., argparse.ArgumentParser],
    db_arg: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``kpibot teams package`` to the ``kpibot`` parser."""
    teams = sub.add_parser(
        "teams", help="Microsoft Teams app tools", description="Microsoft Teams app tools."
    )
    actions = teams.add_subparsers(dest="teams_command", metavar="ACTION", required=True)
    p = add(
        "package",
        cmd_teams_package,
        "Build the Teams app package (manifest.json with the bot id from TEAMS_APP_ID, and "
        "the two icons) as a zip to upload in Teams.",
        actions,
    )
    p.add_argument(
        "--out",
        default="kpibot-teams.zip",
        metavar="FILE",
        help="where to write the zip (default kpibot-teams.zip)",
    )
    p.add_argument(
        "--source",
        default=None,
        metavar="DIR",
        help="folder with manifest.json, color.png and outline.png "
        "(default: ./teams if there, else the templates installed with kpibot)",
    )
