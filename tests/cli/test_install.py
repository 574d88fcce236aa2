"""kpibot installed from a wheel, in a fresh virtual environment outside the checkout, in an empty folder.

The wheel is built from a copy of the sources (so the checkout gets no build/ folder) and installed
with ``--no-deps`` into a new venv; the venv sees the test venv's dependencies through a ``.pth``
line (their versions are the tested ones, and nothing is downloaded), but not its kpibot: that
comes from the wheel alone, which the test checks before running anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "MANIFEST.in", "kpibot", "config", "teams")


def _run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, f"{args}: {out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh venv with the kpibot wheel in it, and an environment without KPIBOT_* settings."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    source.mkdir()
    for name in SOURCES:
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(
                item, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(item, source / name)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KPIBOT_", "SLACK_", "TEAMS_", "PYTHON", "VIRTUAL_ENV"))
    }
    dist = base / "dist"
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--wheel-dir",
        dist,
        source,
        cwd=base,
        env=env,
    )
    (wheel,) = dist.glob("kpibot-*.whl")
    target = base / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    python = target / "bin" / "python"
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        wheel,
        cwd=base,
        env=env,
    )
    site = Path(
        _run(
            python,
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
            cwd=base,
            env=env,
        ).stdout.strip()
    )
    # The tested dependencies, without the checkout's editable kpibot (.pth files found through
    # a .pth line are not read, so its finder stays out).
    (site / "_kpibot_test_dependencies.pth").write_text(
        sysconfig.get_path("purelib") + "\n", encoding="utf-8"
    )
    return target, env


def test_the_wheel_carries_the_starters_as_files(installed: tuple[Path, dict[str, str]]) -> None:
    (wheel,) = (installed[0].parent / "dist").glob("kpibot-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for name in (
            "kpibot/data/access.yaml",
            "kpibot/data/env.example",
            "kpibot/data/contracts/childrens-trust.yaml",
            "kpibot/data/contracts/healthy-child-0-19.yaml",
            "kpibot/data/contracts/one-psychology.yaml",
            "kpibot/data/contracts/one-you-lifestyle.yaml",
            "kpibot/data/teams/manifest.json",
            "kpibot/data/teams/color.png",
            "kpibot/data/teams/outline.png",
            "kpibot/store/migrations/versions/0012_operations.py",
        ):
            assert name in names, name
        contract = archive.read("kpibot/data/contracts/childrens-trust.yaml")
    assert contract == (ROOT / "config" / "contracts" / "childrens-trust.yaml").read_bytes()


def test_an_installed_kpibot_runs_in_an_empty_folder(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    target, env = installed
    kpibot = target / "bin" / "kpibot"
    python = target / "bin" / "python"
    where = _run(python, "-c", "import kpibot; print(kpibot.__file__)", cwd=tmp_path, env=env)
    assert where.stdout.strip().startswith(str(target)), where.stdout  # the wheel, not the checkout

    version = _run(kpibot, "--version", cwd=tmp_path, env=env)
    assert version.stdout.strip() == "kpibot 0.1.0"
    assert _run(python, "-m", "kpibot", "--version", cwd=tmp_path, env=env).stdout == version.stdout

    # The demo needs nothing but the package: no config folder, no database.
    demo = _run(kpibot, "demo", "--run", "/kpi status childrens-trust", cwd=tmp_path, env=env)
    assert "4 contracts loaded" in demo.stdout and "6 red" in demo.stdout

    # A deployment starts from `kpibot init`: the config folder and .env come from the package.
    init = _run(kpibot, "init", cwd=tmp_path, env=env)
    assert "wrote  config/access.yaml" in init.stdout
    shutil.copy(tmp_path / "config" / ".env.example", tmp_path / ".env")
    _run(kpibot, "db", "upgrade", cwd=tmp_path, env=env)
    assert (tmp_path / "kpibot.db").is_file()  # the database named in .env
    loaded = _run(kpibot, "contracts", "load", "config/contracts", cwd=tmp_path, env=env)
    assert "loaded  childrens-trust: 44 KPIs" in loaded.stdout
    status = _run(kpibot, "demo", "--run", "/kpi status childrens-trust", cwd=tmp_path, env=env)
    assert "6 red" in status.stdout
    shown = _run(kpibot, "config", cwd=tmp_path, env=env).stdout
    assert f"resolves to {tmp_path / 'config' / 'access.yaml'}" in shown

    # Serving without chat settings is refused in sentences, not a traceback.
    serve = subprocess.run(
        [str(kpibot), "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert serve.returncode == 2 and "Traceback" not in serve.stderr
    assert serve.stderr.strip().splitlines()[-1].startswith("kpibot did not start")
