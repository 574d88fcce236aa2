"""The kpibot command line as an operator uses it: load, status, import, --help everywhere."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest


def kpibot(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "kpibot", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **env},
        timeout=180,
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out


@pytest.fixture
def env(tmp_path):
    return {"KPIBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "KPIBOT_TODAY": "2020-02-20"}


def test_load_then_status_shows_every_seed_004_kpi(env, seed_contracts):
    kpibot("db", "upgrade", env=env)
    loaded = kpibot("contracts", "load", "config/contracts", env=env)
    assert "loaded  childrens-trust: 44 KPIs" in loaded.stdout
    out = kpibot("status", "childrens-trust", "--period", "2019/20 Q3", env=env).stdout
    for k in seed_contracts["childrens-trust"].kpis:
        assert f"│ {k.code} " in out, k.code
    assert "not met" in out and "within tolerance" in out and "improving" in out
    assert "6 red" in out


def test_status_piped_without_a_terminal_width_is_readable(env):
    # `kpibot status … | less` or a cron log: no terminal, no COLUMNS. The table is printed
    # wide; short cells are never folded ("missi / ng").
    kpibot("contracts", "load", "config/contracts", env=env)
    plain = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run(
        [sys.executable, "-m", "kpibot", "status", "childrens-trust", "--period", "2019/20 Q3"],
        capture_output=True,
        text=True,
        env={**plain, **env},
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    assert max(len(line) for line in out.stdout.splitlines()) > 80
    assert "within tolerance" in out.stdout and "not met" in out.stdout
    assert "│ Position" in out.stdout or "┃ Position" in out.stdout


def test_import_is_all_or_nothing_from_the_cli(env, tmp_path):
    kpibot("contracts", "load", "config/contracts", env=env)
    bad = tmp_path / "bad.csv"
    bad.write_text("kpi,period,value\nS11,2019/20 Q3,98\nC99,2019/20 Q3,1\n")
    out = kpibot("import", str(bad), "--contract", "childrens-trust", env=env, check=False)
    assert (
        out.returncode == 2
        and "bad.csv, line 3, column 'kpi'" in out.stderr
        and "Nothing was stored" in out.stderr
    )
    good = tmp_path / "good.csv"
    good.write_text("kpi,period,value\nS11,2019/20 Q3,98\n")
    assert (
        "Stored 1 figure(s)"
        in kpibot("import", str(good), "--contract", "childrens-trust", env=env).stdout
    )


def test_import_reads_numbers_by_the_number_style_option(env, tmp_path):
    kpibot("contracts", "load", "config/contracts", env=env)
    european = tmp_path / "european.csv"
    european.write_text("kpi;period;value\nS11;2019/20 Q3;98,5\nS16;2019/20 Q3;1.234,5\n")
    refused = kpibot("import", str(european), "--contract", "childrens-trust", env=env, check=False)
    assert refused.returncode == 2
    assert "'98,5' could mean 98.5 or 985" in refused.stderr
    stored = kpibot(
        "import",
        str(european),
        "--contract",
        "childrens-trust",
        "--number-style",
        "european",
        "--reason",
        "recount",
        env=env,
    )
    assert "Stored 2 figure(s)" in stored.stdout
    from kpibot.app.wiring import build_services
    from kpibot.core.settings import Settings

    services = build_services(Settings(database_url=env["KPIBOT_DATABASE_URL"]))
    assert services.figures.current("childrens-trust", "S11")[-1].value == 98.5
    assert services.figures.current("childrens-trust", "S16")[-1].value == 1234.5
    services.db.dispose()


def test_status_of_an_unknown_contract_suggests(env):
    kpibot("contracts", "load", "config/contracts", env=env)
    out = kpibot("status", "childrens-trst", env=env, check=False)
    assert (
        out.returncode == 2
        and "Did you mean 'childrens-trust'" in out.stderr
        and "Traceback" not in out.stderr
    )


def test_contracts_check_reports_bad_files(tmp_path, env):
    f = tmp_path / "x.yaml"
    f.write_text("id: Bad Id\n")
    out = kpibot("contracts", "check", str(f), env=env, check=False)
    assert out.returncode == 2 and "x.yaml" in out.stderr


@pytest.mark.parametrize(
    "cmd",
    [
        [],
        ["db", "upgrade"],
        ["contracts", "check"],
        ["contracts", "load"],
        ["import"],
        ["status"],
        ["evaluate"],
        ["demo"],
        ["events"],
        ["events", "import"],
        ["payments"],
    ],
)
def test_every_command_has_help(cmd):
    from kpibot.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main([*cmd, "--help"])
    assert exit_.value.code == 0


def test_report_writes_the_board_report_in_the_asked_format(env, tmp_path, seed_contracts):
    from openpyxl import load_workbook

    kpibot("contracts", "load", "config/contracts", env=env)
    out = tmp_path / "board" / "q3.xlsx"
    done = kpibot("report", "childrens-trust", "--period", "2019/20 Q3", "--out", str(out), env=env)
    assert f"Wrote {out}" in done.stdout and "6 red" in done.stdout
    refs = {c.value for c in load_workbook(out)["Scorecard"]["B"]}
    assert {k.code for k in seed_contracts["childrens-trust"].kpis} <= refs

    pdf = tmp_path / "q3.pdf"
    kpibot("report", "childrens-trust", "--period", "2019/20 Q3", "--out", str(pdf), env=env)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    html = tmp_path / "q3.report"
    kpibot(
        "report",
        "childrens-trust",
        "--format",
        "html",
        "--quarters",
        "4",
        "--out",
        str(html),
        env=env,
    )
    assert html.read_text(encoding="utf-8").count('scope="col">2019/20 Q') == 3

    bad = kpibot("report", "childrens-trust", "--quarters", "0", env=env, check=False)
    assert (
        bad.returncode == 2 and "between 1 and 20" in bad.stderr and "Traceback" not in bad.stderr
    )
    assert "--format" in kpibot("report", "--help", env=env).stdout


HEAVY = ("pandas", "numpy", "matplotlib", "slack_sdk", "slack_bolt", "microsoft_teams")
HEAVY_TOO = ("sqlalchemy", "openpyxl", "fpdf", "alembic", "pydantic")


def imported_by(*args: str) -> set[str]:
    """Top-level packages a ``kpibot`` process imports, read from ``-X importtime``."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kpibot", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    names = set()
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert "kpibot" in names  # the report was read
    return names


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_load_no_heavy_library(flag):
    loaded = imported_by(flag)
    assert not loaded & {*HEAVY, *HEAVY_TOO}, sorted(loaded & {*HEAVY, *HEAVY_TOO})


def test_a_command_group_loads_only_its_own_module():
    loaded = imported_by("teams", "--help")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_version_names_the_installed_package():
    out = kpibot("--version", env={})
    assert out.stdout.startswith("kpibot ") and out.stdout.split()[1][0].isdigit()


def test_the_light_command_table_matches_what_each_group_registers():
    from kpibot.cli.main import GROUPS, build_parser

    parser = build_parser(everything=True)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    for name, (_module, help_text) in GROUPS.items():
        assert helps[name] == help_text, name
    for name in GROUPS:
        with pytest.raises(SystemExit) as exit_:
            build_parser([name, "--help"]).parse_args([name, "--help"])
        assert exit_.value.code == 0


def test_a_read_only_database_gets_one_sentence_and_no_traceback(env, tmp_path):
    # A full disk or a read-only file refuses the write; the operator reads why, not a traceback.
    kpibot("contracts", "load", "config/contracts", env=env)
    good = tmp_path / "good.csv"
    good.write_text("kpi,period,value\nS11,2019/20 Q3,98\n")
    read_only = {
        **env,
        "KPIBOT_DATABASE_URL": f"sqlite:///file:{tmp_path / 'cli.db'}?mode=ro&uri=true",
    }
    out = kpibot("import", str(good), "--contract", "childrens-trust", env=read_only, check=False)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "INSERT" not in out.stderr
    assert "nothing was changed" in out.stderr
    status = kpibot("status", "childrens-trust", "--period", "2019/20 Q3", env=env).stdout
    assert "98" not in status.split("S11", 1)[1].splitlines()[0]


def test_an_unexpected_error_is_one_sentence_without_a_traceback_unless_verbose(env, tmp_path):
    kpibot("contracts", "load", "config/contracts", env=env)
    # a figures table that is not there: the store's bug-shaped error, not an unavailable database
    import sqlite3

    with sqlite3.connect(tmp_path / "cli.db") as db:
        db.execute("DROP TABLE audit_events")
    args = ("import", str(tmp_path / "x.csv"), "--contract", "childrens-trust")
    (tmp_path / "x.csv").write_text("kpi,period,value\nS11,2019/20 Q3,98\n")
    out = kpibot(*args, env=env, check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "something went wrong on our side" in out.stderr
    verbose = kpibot("-v", *args, env=env, check=False)
    assert "Traceback" in verbose.stderr
