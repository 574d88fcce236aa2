"""Logs an operator can use: kpibot's loggers obey KPIBOT_LOG_LEVEL, JSON lines on request, no secrets."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from kpibot.core import logs

ROOT = Path(__file__).resolve().parents[2]


def _demo(*commands: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("KPIBOT_", "SLACK_", "TEAMS_"))
    }
    args = [a for c in commands for a in ("--run", c)]
    return subprocess.run(
        [sys.executable, "-m", "kpibot", "demo", "--user", "U-TRUST", *args],
        cwd=cwd,
        env={**clean, "KPIBOT_SECRET_KEY": "do-not-log-this-key", **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_json_lines_carry_the_command_fields_and_never_its_text(tmp_path: Path) -> None:
    out = _demo(
        "/kpi status childrens-trust",
        "/kpi submit childrens-trust C7 2019/20 Q3 45% the-private-note reason: a-private-reason",
        env={"KPIBOT_LOG_LEVEL": "INFO", "KPIBOT_LOG_FORMAT": "json"},
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stderr.splitlines() if line.strip()]
    commands = [line for line in lines if line["logger"] == "kpibot.commands"]
    assert [c["verb"] for c in commands] == ["status", "submit"]
    status = commands[0]
    assert status["level"] == "INFO" and status["outcome"] == "ok"
    assert status["contract"] == "childrens-trust" and status["user"] == "U-TRUST"
    assert isinstance(status["duration_ms"], float) and "time" in status
    for secret in ("the-private-note", "a-private-reason", "45%", "do-not-log-this-key"):
        assert secret not in out.stderr


def test_kpibot_loggers_obey_the_level(tmp_path: Path) -> None:
    quiet = _demo("/kpi status childrens-trust", env={"KPIBOT_LOG_LEVEL": "WARNING"}, cwd=tmp_path)
    assert quiet.returncode == 0 and "kpibot.commands" not in quiet.stderr
    chatty = _demo("/kpi status childrens-trust", env={"KPIBOT_LOG_LEVEL": "debug"}, cwd=tmp_path)
    assert chatty.returncode == 0 and "INFO kpibot.commands command status: ok" in chatty.stderr


def test_the_formatter_copies_only_known_fields() -> None:
    record = logging.LogRecord(
        "kpibot.x", logging.WARNING, __file__, 1, "went %s", ("wrong",), None
    )
    record.verb = "submit"
    record.body = "a message body"  # not a known field: never written
    token = logs.request_id.set("Ev123")
    try:
        line = json.loads(logs.JsonFormatter().format(record))
    finally:
        logs.request_id.reset(token)
    assert line["message"] == "went wrong" and line["verb"] == "submit"
    assert line["request_id"] == "Ev123" and "body" not in line


def test_configure_leaves_libraries_at_warning() -> None:
    before = logging.getLogger().handlers[:]
    try:
        logs.configure("DEBUG", "json")
        assert logging.getLogger("kpibot").level == logging.DEBUG
        assert logging.getLogger("uvicorn.error").level == logging.DEBUG
        assert logging.getLogger().level == logging.WARNING
        assert isinstance(logging.getLogger().handlers[0].formatter, logs.JsonFormatter)
    finally:
        root = logging.getLogger()
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in before:
            root.addHandler(handler)
        for name in logs.FOLLOWERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
