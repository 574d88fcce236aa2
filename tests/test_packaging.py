"""The repository's shape for operators: locked dependencies, a Dockerfile that caches them, the manifest.

No Docker engine runs here, so the Dockerfile is read: dependencies are installed from the lock in
a layer before any of kpibot's code is copied, the code is then installed without touching them,
and the image runs as a non-root user.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def _project() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_every_dependency_has_a_major_version_bound_and_a_pin_that_meets_it() -> None:
    runtime, dev = _pins(ROOT / "requirements.lock"), _pins(ROOT / "requirements-dev.lock")
    for text, pins in [(t, runtime) for t in _project()["dependencies"]] + [
        (t, dev) for t in _project()["optional-dependencies"]["dev"]
    ]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if not name.startswith("types-"):
            assert any(s.operator == "<" for s in requirement.specifier), f"{text}: no upper bound"
        assert name in pins, f"{name} is not in the lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (text, pins[name])
    # The dev lock was compiled under the runtime lock: the same versions in both.
    assert all(dev[name] == version for name, version in runtime.items() if name in dev)


def test_make_installs_under_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "LOCK := requirements-dev.lock" in makefile
    assert "$(BIN)/pip install --quiet -c $(LOCK) -e '.[dev]'" in makefile
    assert re.search(r"^\$\(STAMP\): pyproject.toml \$\(LOCK\)$", makefile, re.M)


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_the_image_installs_locked_dependencies_before_the_code() -> None:
    steps = _instructions()
    copies = [i for i, (word, _) in enumerate(steps) if word == "COPY"]
    locked = next(
        i for i, (w, rest) in enumerate(steps) if w == "RUN" and "-r requirements.lock" in rest
    )
    assert steps[copies[0]] == ("COPY", "requirements.lock ./")
    assert copies[0] < locked < copies[1], "dependencies must be their own layer, before the code"
    code = next(i for i, (w, rest) in enumerate(steps) if w == "COPY" and rest.startswith("kpibot"))
    install = next(i for i, (w, rest) in enumerate(steps) if w == "RUN" and "--no-deps ." in rest)
    assert locked < code < install
    for word, rest in steps:
        if word == "COPY":
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: no such file"
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert ("ENTRYPOINT", '["kpibot", "serve"]') in steps


def test_the_slack_manifest_asks_only_for_scopes_kpibot_uses() -> None:
    manifest = yaml.safe_load((ROOT / "slack" / "manifest.yml").read_text(encoding="utf-8"))
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert "users:read" not in scopes
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "kpibot").rglob("*.py"))
    assert "users_info" not in sources and "users.info" not in sources
