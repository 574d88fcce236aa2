"""`make demo` as a person runs it: the scripted tour without a terminal, and --run for one command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from openpyxl import load_workbook


def demo(*args: str, cwd: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPIBOT_")}
    env.update({"KPIBOT_CHART_DIR": str(tmp_path / "charts"), "COLUMNS": "160"})
    return subprocess.run(
        [sys.executable, "-m", "kpibot", "demo", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


ROOT = Path(__file__).resolve().parents[2]


def test_tour_runs_every_verb_and_exits_0(tmp_path):
    out = demo(cwd=ROOT, tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    from kpibot.commands.registry import default_registry

    for verb in default_registry():
        assert f"/kpi {verb}" in text, verb
    assert "Recorded · childrens-trust S25 2019/20 Q3" in text
    assert "Amended · childrens-trust C7 2019/20 Q3" in text
    assert "rejected: nothing was stored" in text and "q3-return.csv imported" in text
    assert "Not allowed" in text and "Traceback" not in text + out.stderr
    assert (
        "overdue → provider" in text
        and "summary → channel" in text
        and "Quarterly RAG summary" in text
    )
    assert "incident_escalation → commissioner" in text
    # The provider submitted on 14 Jan, so the 17 Jan escalation for that return never went out.
    assert "escalation → commissioner (console one-psychology)" not in text
    assert (tmp_path / "charts" / "childrens-trust-C7.png").read_bytes()[:4] == b"\x89PNG"

    # The board's report, in the three formats the tour asks for.
    assert "/kpi report childrens-trust 2019/20 Q3" in text
    report = tmp_path / "charts" / "childrens-trust-2019-20-Q3-performance-report"
    sheet = load_workbook(report.with_suffix(".xlsx"))["Scorecard"]
    assert {"C1", "C7", "S11", "S29"} <= {c.value for c in sheet["B"]}
    assert report.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    assert report.with_suffix(".html").read_bytes().startswith(b"<!DOCTYPE html>")
    # The quarterly summary on the accelerated clock carries the quarter's report.
    summary = text[text.index("summary → channel") :]
    attached = "one-psychology-2019-20-Q3-performance-report.xlsx"
    assert f"The quarter's performance report is attached ({attached})" in " ".join(summary.split())
    assert (tmp_path / "charts" / attached).read_bytes()[:2] == b"PK"


def test_run_one_command(tmp_path):
    out = demo("--run", "/kpi status childrens-trust", cwd=ROOT, tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Children's Trust" in out.stdout and "6 red" in out.stdout and "C7" in out.stdout
