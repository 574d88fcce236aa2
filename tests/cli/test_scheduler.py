"""``kpibot schedule preview`` with digests and ``--figures``: what a contract would send, and
nothing written to the store."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kpibot.app.wiring import build_services
from kpibot.core.settings import Settings
from kpibot.features.subscriptions import Place, set_digest
from kpibot.store.schema import AlertRecord, AlertRunRecord, FigureRecord, OutboxRecord

ROOT = Path(__file__).resolve().parents[2]


def kpibot(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from kpibot.cli.main import main

    try:
        code = main(list(args))
    except SystemExit as done:  # --help
        code = int(done.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def counts(url: str) -> tuple[int, ...]:
    services = build_services(Settings(database_url=url))
    with services.db.session(read_only=True) as session:
        found = tuple(
            int(session.scalar(select(func.count()).select_from(t)) or 0)
            for t in (OutboxRecord, AlertRecord, AlertRunRecord, FigureRecord)
        )
    services.db.dispose()
    return found


def test_preview_lists_digests_and_the_alerts_a_return_would_raise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("KPIBOT_TODAY", "2020-02-20")
    url = f"sqlite:///{tmp_path / 'p.db'}"
    assert kpibot(capsys, "contracts", "load", "config/contracts", "--database", url)[0] == 0
    services = build_services(Settings(database_url=url))
    set_digest(
        services,
        "U-COMMISSIONER",
        None,
        Place("slack", "U-COMMISSIONER", True),
        "weekly",
        [],
        services.now(),
    )
    services.db.dispose()
    figures = tmp_path / "q1.csv"
    figures.write_text(
        "kpi,period,value,numerator,denominator\n"
        "PA-5,2019/20 Q1,6.5,,\nPA-6,2019/20 Q1,,30,50\nPA-2,2019/20 Q1,60,,\n"
    )
    before = counts(url)
    code, out, err = kpibot(
        capsys,
        "schedule",
        "preview",
        "one-you-lifestyle",
        "--from",
        "2020-02-21",
        "--to",
        "2020-03-03",
        "--figures",
        str(figures),
        "--database",
        url,
    )
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["when", "contract", "kind", "audience", "period", "text"]
    kinds = [(r["when"][:16], r["kind"], r["audience"]) for r in rows]
    assert kinds[:3] == [
        ("2020-02-21T09:00", "alert_critical", "channel"),
        ("2020-02-21T09:00", "alert_critical", "commissioner"),
        ("2020-02-21T09:00", "alert_red", "channel"),
    ]
    red = rows[2]["text"]
    assert red.startswith("🔴 2 KPIs turned red on One You Lifestyle Programmes")
    assert "• PA-5 " in red and "• PA-6 " in red and "PA-2" not in red  # 60% is within 50-75%
    digests = [r for r in rows if r["kind"] == "digest"]
    assert [(d["when"][:16], d["audience"]) for d in digests] == [
        ("2020-02-24T09:00", "subscriber"),
        ("2020-03-02T09:00", "subscriber"),
    ]
    assert "Weekly digest of your contracts for U-COMMISSIONER" in digests[0]["text"]
    # The return counts as received on --from: its reminder ladder is gone from the preview.
    assert not [r for r in rows if r["kind"] in ("reminder", "due", "overdue")]
    assert counts(url) == before  # nothing written


def test_preview_refuses_a_bad_figures_file_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("KPIBOT_TODAY", "2020-02-20")
    bad = tmp_path / "bad.csv"
    bad.write_text("kpi,period,value\nPA-5,2019/20 Q1,abc\n")
    code, _out, err = kpibot(
        capsys,
        "schedule",
        "preview",
        "one-you-lifestyle",
        "--from",
        "2020-02-21",
        "--to",
        "2020-02-22",
        "--figures",
        str(bad),
        "--database",
        f"sqlite:///{tmp_path / 'b.db'}",
    )
    assert code == 2 and "bad.csv, line 2, column 'value'" in err and "Traceback" not in err


def test_preview_reads_figures_in_the_number_style_kpibot_import_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("KPIBOT_TODAY", "2020-02-20")
    url = f"sqlite:///{tmp_path / 'e.db'}"
    assert kpibot(capsys, "contracts", "load", "config/contracts", "--database", url)[0] == 0
    european = tmp_path / "q1-eu.csv"
    european.write_text('kpi,period,value\nPA-5,2019/20 Q1,"6,5"\n')
    args = ["schedule", "preview", "one-you-lifestyle", "--from", "2020-02-21"]
    args += ["--to", "2020-02-22", "--figures", str(european), "--database", url]
    code, _out, err = kpibot(capsys, *args)
    assert code == 2 and "q1-eu.csv, line 2, column 'value'" in err  # not a UK number
    code, out, err = kpibot(capsys, *args, "--number-style", "european")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    critical = [r for r in rows if r["kind"] == "alert_critical"]
    assert critical and "PA-5" in critical[0]["text"] and "6.5" in critical[0]["text"]


def test_preview_refuses_a_range_it_would_take_ages_to_simulate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    code, _out, err = kpibot(
        capsys,
        "schedule",
        "preview",
        "one-you-lifestyle",
        "--from",
        "2020-01-01",
        "--to",
        "9999-12-31",
        "--database",
        f"sqlite:///{tmp_path / 'c.db'}",
    )
    assert code == 2 and "Traceback" not in err
    assert "is 2,914,635 days; preview at most 3,660 days (ten years) at a time." in err
