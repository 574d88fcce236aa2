"""Benchmark: the quarterly performance report of a 113-KPI contract, from the engine to each file.

The contract is one-you-lifestyle (seed 001, ``config/contracts/one-you-lifestyle.yaml``, 113
KPIs in eight groups). Seven quarters of history (2018/19 Q1 … 2019/20 Q3, quarters Nov–Jan) and
the annual figures of 2018/19 are generated deterministically (seeded random, each figure drawn
around its KPI's own target so some KPIs land red or amber) and stored through the real store
(``FigureRepository.submit``) in a SQLite file, as a monitoring return would be.

Each format is timed in-process as a user's request runs it: a fresh ``Services`` (no cached
contract, compiled targets or scorecard), ``build_report`` (the scorecard evaluated by the engine,
payments, action plans, returns) and the renderer. One warm-up, then the median of 5 runs. The
baseline, timed the same way: the same fresh ``Services`` and scorecard written as plain CSV with
the standard library (no report model, no formatting), so the gap is what the report itself costs.
For scale it also prints the build alone, cold and with the scorecard cached (a warm server).

The run is also a check: each file must hold every KPI and one chart per red or amber KPI, or it
exits non-zero.

    .venv/bin/python benchmarks/report.py            # or: make bench
    .venv/bin/python benchmarks/report.py --strict   # also exit non-zero when a goal is missed

Last line: ``report_xlsx_ms=<n> report_pdf_ms=<n> report_html_ms=<n>``.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import random
import re
import statistics
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from _common import BenchmarkFailure, emit_result, heading, repeat_timed, say, timed

from kpibot.app.wiring import services_for_database
from kpibot.core.services import Services
from kpibot.core.settings import Settings
from kpibot.engine.model import Contract
from kpibot.engine.periods import Period
from kpibot.engine.scorecard import compiled, reporting_kind
from kpibot.features.report import build_report
from kpibot.files.contracts import load_contracts
from kpibot.files.report import Report
from kpibot.files.report_formats import render
from kpibot.store.database import Database
from kpibot.store.rows import NewFigure

SEED = 20200124
ROOT = Path(__file__).resolve().parents[1]
CONTRACT = "one-you-lifestyle"
PERIOD = "2019/20 Q3"
QUARTERS = 7
NOW = datetime(2020, 9, 1, 10, 0, tzinfo=ZoneInfo("Europe/London"))
RUNS = 5
GOALS_MS = {"xlsx": 1_500, "pdf": 3_000, "html": 1_000}


def figure(rng: random.Random, contract: Contract, code: str, per_year: int) -> float:
    """One figure near the KPI's own target (a share of an annual count target per period)."""
    kpi = contract.kpi(code)
    terms = compiled(contract)[code]
    unit = terms.unit
    target = terms.years[2].target
    level = target.value if target.value is not None else None
    if level is None:
        level = 60.0 if unit == "percent" else 40.0
    if target.annual:
        level /= per_year
    # Mostly on the good side of the target, about a third short of it.
    sign = 1 if kpi.polarity == "bigger" else -1
    value = level * (1 + sign * rng.gauss(0.04, 0.12))
    if unit == "percent":
        return round(min(100.0, max(0.0, value)), 1)
    if unit == "score":
        return round(max(0.0, value), 1)
    return float(max(0, round(value)))


def history(rng: random.Random, contract: Contract, period: Period) -> list[NewFigure]:
    """Seven quarters up to ``period`` for every quarterly KPI, and the years' annual figures."""
    quarters = [period.shift(-i) for i in range(QUARTERS - 1, -1, -1)]
    years = {q.reporting_year().label: q.reporting_year() for q in quarters}
    rows = []
    for kpi in contract.kpis:
        kind = reporting_kind(kpi, contract.reporting.period)
        periods = (
            quarters if kind == "quarter" else [y for y in years.values() if y.end <= NOW.date()]
        )
        for p in periods:
            rows.append(
                NewFigure(
                    kpi.code,
                    p,
                    value=figure(rng, contract, kpi.code, 4 if kind == "quarter" else 1),
                )
            )
    return rows


def fresh(db: Database) -> tuple[Services, Contract]:
    """What a new request starts from: services with nothing cached, the contract read afresh."""
    services = services_for_database(db, Settings(), lambda: NOW)
    contract = services.contract(CONTRACT)
    assert contract is not None
    return services, contract


def plain_csv(db: Database, period: Period) -> bytes:
    """The baseline: the engine's scorecard at the period through csv.writer, nothing else."""
    services, contract = fresh(db)
    rows = services.scorecard(contract, period).at(period)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = ["kpi", "period", "value", "target", "position", "rag", "trend", "critical"]
    writer.writerow(columns)
    for row in rows[columns].itertuples(index=False):
        writer.writerow(row)
    return buffer.getvalue().encode("utf-8")


def report_in(db: Database, period: Period, fmt: str) -> tuple[Report, bytes]:
    services, contract = fresh(db)
    report = build_report(services, contract, period, QUARTERS)
    return report, render(report, fmt)


def check(report: Report, files: dict[str, bytes]) -> None:
    """Raise BenchmarkFailure unless every file holds every KPI and every chart."""
    refs = [row.ref for row in report.rows()]
    problems = []
    with zipfile.ZipFile(io.BytesIO(files["xlsx"])) as archive:
        charts = [n for n in archive.namelist() if re.fullmatch(r"xl/charts/chart\d+\.xml", n)]
        sheet = archive.read("xl/worksheets/sheet1.xml")  # openpyxl 3.1 writes inline strings
    if len(charts) != len(report.charts):
        problems.append(f"xlsx has {len(charts)} charts for {len(report.charts)} red/amber KPIs")
    html = files["html"].decode("utf-8")
    if html.count("<svg ") != len(report.charts):
        problems.append(f"html has {html.count('<svg ')} charts for {len(report.charts)}")
    if not files["pdf"].startswith(b"%PDF-") or b"/Subtype /Image" in files["pdf"]:
        problems.append("the pdf is not a PDF, or draws its charts as images")
    for ref in refs:
        if f">{ref}<".encode() not in sheet or f"<td>{ref}</td>" not in html:
            problems.append(f"{ref} is missing from the xlsx or the html")
    flagged = sum(1 for row in report.rows() if row.rag in ("red", "amber"))
    if len(refs) != 113 or flagged != len(report.charts):
        problems.append(f"{len(refs)} KPIs and {len(report.charts)} charts for {flagged} flagged")
    if problems:
        raise BenchmarkFailure("; ".join(problems[:10]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="kpibot-report-bench-") as tmp:
        heading(
            "data: one-you-lifestyle with seven quarters of history, through the store (not timed)"
        )
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.upgrade()
        services = services_for_database(db, Settings(), lambda: NOW)
        (contract,) = [
            c for c in load_contracts([ROOT / "config" / "contracts"]) if c.id == CONTRACT
        ]
        services.store_contracts([contract], actor="bench", with_history=False)
        period = contract.parse_period(PERIOD)
        rows = history(random.Random(SEED), contract, period)
        services.figures.submit(contract.id, rows, actor="bench", source="import")
        report, _ = report_in(db, period, "csv")
        rags = Counter(row.rag for row in report.rows())
        say(
            f"{len(contract.kpis)} KPIs in {len(report.groups)} groups, {len(rows):,} figures stored; "
            f"{len(report.columns)} quarters {report.columns[0]} … {report.columns[-1]}; RAG at "
            f"{report.period_label}: "
            + ", ".join(f"{k} {v}" for k, v in sorted(rags.items(), key=str))
            + f"; {len(report.charts)} charts"
        )

        heading("the build alone (not in the result line)")
        cold = statistics.median(
            timed(lambda: build_report(*fresh(db), period, QUARTERS))[0] for _ in range(RUNS)
        )
        warm_services, warm_contract = fresh(db)
        build_report(warm_services, warm_contract, period, QUARTERS)
        warm = statistics.median(
            timed(lambda: build_report(warm_services, warm_contract, period, QUARTERS))[0]
            for _ in range(RUNS)
        )
        say(
            f"build_report: {cold * 1000:,.0f} ms from nothing cached, {warm * 1000:,.0f} ms with the scorecard cached"
        )

        steps: dict[str, Callable[[], bytes]] = {
            "baseline scorecard + csv.writer": lambda: plain_csv(db, period),
            "csv": lambda: report_in(db, period, "csv")[1],
            "xlsx": lambda: report_in(db, period, "xlsx")[1],
            "pdf": lambda: report_in(db, period, "pdf")[1],
            "html": lambda: report_in(db, period, "html")[1],
        }
        heading(f"timing, each from a fresh Services: one warm-up, then the median of {RUNS} runs")
        medians: dict[str, float] = {}
        files: dict[str, bytes] = {}
        for name, step in steps.items():
            step()
            times, data = repeat_timed(RUNS, step)
            medians[name] = statistics.median(times) * 1000
            files[name] = data
            say(
                f"{name}: median {medians[name]:,.1f} ms (runs "
                f"{', '.join(f'{t * 1000:.0f}' for t in times)} ms), {len(data):,} bytes"
            )
        db.dispose()
    load1, load5, _ = os.getloadavg()
    say(f"machine load average {load1:.1f} (1 min), {load5:.1f} (5 min) on {os.cpu_count()} cores")

    heading("check: every KPI and every chart in each file")
    check(report, files)
    say("all present")

    heading("goals")
    met = {fmt: medians[fmt] <= goal for fmt, goal in GOALS_MS.items()}
    say(
        "; ".join(
            f"{fmt} <= {GOALS_MS[fmt]:,} ms: {'met' if ok else 'MISSED'}" for fmt, ok in met.items()
        )
    )
    assert not any(math.isnan(v) for v in medians.values())
    emit_result(
        report_xlsx_ms=round(medians["xlsx"]),
        report_pdf_ms=round(medians["pdf"]),
        report_html_ms=round(medians["html"]),
    )
    return 1 if args.strict and not all(met.values()) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkFailure as exc:
        print(f"report benchmark FAILED: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
