"""Benchmark: the quarterly scorecard in XLSX, PDF and HTML for a large contract.

Builds one synthetic, deterministic report (seeded random): a 113-KPI contract in three groups
with seven quarters of history (2018/19 Q1 … 2019/20 Q3), contract wording of seed 004's kind
(long measures, "<45 days", "&", "TBD*", a "-5% on last year" tolerance), about 40% of KPIs red
or amber at the period and so about 45 small charts. Each renderer is timed in-process: one
warm-up, then the median of 5 runs. For scale, the same table written as plain CSV with the
standard library (no model, no formatting) is timed the same way as a baseline, and so is
``render_csv``.

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
import os
import random
import re
import statistics
import sys
import zipfile
from collections import Counter
from collections.abc import Callable
from datetime import date

from _common import BenchmarkFailure, emit_result, heading, repeat_timed, say

from kpibot.files.report import (
    Rag,
    Report,
    ReportCell,
    ReportChart,
    ReportGroup,
    ReportRow,
    Unit,
    render_csv,
)
from kpibot.files.report_html import render_html
from kpibot.files.report_pdf import render_pdf
from kpibot.files.report_xlsx import render_xlsx

SEED = 20200124
KPIS = 113
GROUPS = (
    ("Contractual Key Performance Indicators", 48),
    ("Strategic Partnership Indicators", 41),
    ("Data quality and returns", 24),
)
COLUMNS = tuple(
    f"{y} Q{q}" for y, qs in (("2018/19", (1, 2, 3, 4)), ("2019/20", (1, 2, 3))) for q in qs
)
RUNS = 5
GOALS_MS = {"xlsx": 1_500, "pdf": 3_000, "html": 1_000}

# The kinds of KPI in seed 004: (measure, unit, bigger is better, target, tolerance, mean,
# spread, decimals).
KINDS: tuple[tuple[str, Unit, bool, float, float, float, float, int], ...] = (
    ("Assessments completed within <45 days", "percent", True, 90, 85, 91, 4, 0),
    ("Children in need with an appropriate and current plan in place", "percent", True, 95, 90, 95.5, 2.5, 0),
    ("Short term stability of placements of children in care: % of children experiencing 3 or "
     "more placements in the year", "percent", False, 9, 12, 9, 2, 1),
    ("Children who wait less than 14 months between entering care and moving in with their "
     "adoptive family", "percent", True, 60, 56, 63, 9, 0),
    ("Care leavers in employment, training & education (age 19-21)", "percent", True, 48, 40, 51, 5, 0),
    ("Percentage of cases where the lead social worker has seen the child or young person in "
     "accordance with the timescales specified in the child protection plan", "percent", True,
     80, 75, 85, 6, 0),
    ("Referrals that are re-referrals within 12 months", "percent", False, 22, 28, 22, 3, 0),
    ("Length of intervention for family support services (days)", "days", False, 140, 180, 150, 40, 0),
    ("Rate of first time entrants to youth justice (per 100,000)", "rate", False, 170, 210, 180, 35, 0),
    ("Early help assessments completed", "count", True, 1500, 1350, 1560, 150, 0),
)  # fmt: skip


def rag_of(value: float, target: float, tolerance: float, bigger: bool) -> Rag:
    sign = 1 if bigger else -1
    if sign * (value - target) >= 0:
        return "green"
    return "amber" if sign * (value - tolerance) >= 0 else "red"


def _words(level: float, unit: Unit) -> str:
    return {"percent": f"{level:g}%", "days": f"{level:g} days"}.get(unit, f"{level:,.0f}")


def build_report(rng: random.Random) -> Report:
    """The synthetic 113-KPI report, the same on every run."""
    groups: list[ReportGroup] = []
    charts: list[ReportChart] = []
    counts: Counter[str] = Counter()
    number = 0
    for name, size in GROUPS:
        rows: list[ReportRow] = []
        for _ in range(size):
            number += 1
            subject, unit, bigger, target, tolerance, mean, sd, decimals = rng.choice(KINDS)
            no_target = rng.random() < 0.07
            new = rng.random() < 0.1  # a measure new this year: no 2018/19 figures
            drift = rng.gauss(0, sd / 4)
            values: list[float | None] = []
            for i in range(len(COLUMNS)):
                if new and i < 4:
                    values.append(None)
                    continue
                v = max(0.0, mean + drift * (i - 3) + rng.gauss(0, sd))
                values.append(round(min(v, 100.0) if unit == "percent" else v, decimals))
            cells = []
            for v in values:
                if v is None:
                    cells.append(ReportCell("New measure"))
                else:
                    rag: Rag = "grey" if no_target else rag_of(v, target, tolerance, bigger)
                    cells.append(ReportCell.of(v, unit, rag, decimals))
            last = cells[-1].rag or "grey"
            position = {"green": "met", "amber": "within_tolerance", "red": "not_met"}
            ref = f"{name[0]}{number:03d}"
            measure = subject + ("" if rng.random() < 0.7 else " (all cases, year to date)")
            row = ReportRow(
                ref=ref,
                measure=measure,
                frequency="Quarterly",
                polarity="Bigger is better" if bigger else "Smaller is better",
                target="TBD*" if no_target else f"Target {_words(target, unit)}",
                tolerance="TBD*"
                if no_target
                else (
                    "-5% on last year"
                    if rng.random() < 0.05
                    else f"Tolerance {_words(tolerance, unit)}"
                ),  # fmt: skip
                unit=unit,
                cells=tuple(cells),
                position=position.get(last, "no_target"),  # type: ignore[arg-type]
                rag=last,  # type: ignore[arg-type]
                trend=rng.choice(("improving", "stable", "worsening", "volatile")),
                critical=last == "red" and rng.random() < 0.15,
                benchmark=rng.choice(("Yes", "No")),
                note="To be determined: a new measure needs three quarters' data."
                if no_target
                else None,
            )
            rows.append(row)
            counts[last] += 1
            if last in ("red", "amber"):
                charts.append(
                    ReportChart(
                        ref=ref,
                        title=measure,
                        periods=COLUMNS,
                        values=tuple(values),
                        target=(target,) * len(COLUMNS),
                        tolerance=(tolerance,) * len(COLUMNS),
                        rags=tuple(c.rag for c in cells),
                        unit=unit,
                    )
                )
        groups.append(ReportGroup(name, tuple(rows)))
    return Report(
        contract_id="childrens-trust",
        contract_name="Children's Trust",
        commissioner="The Council",
        provider="The Children's Trust",
        period_label=COLUMNS[-1],
        contract_year_label="Year 1 (2019/20)",
        generated_on=date(2020, 1, 24),
        columns=COLUMNS,
        groups=tuple(groups),
        rag_counts=dict(counts),
        money_lines=("£12,400 withheld if CKPI07 stays red next quarter.",),
        action_plan_lines=tuple(f"{c.ref}: action plan agreed, review due" for c in charts[:5]),
        late_returns_lines=("Data quality return for 2019/20 Q3: 3 working days late.",),
        exceptions=tuple(
            (c.ref, "Exception report: " + "reasons given case by case. " * 6) for c in charts[:10]
        ),
        narrative=tuple(
            (f"Theme {i}", "Performance narrative paragraph. " * 12) for i in range(1, 5)
        ),
        charts=tuple(charts),
        notes=("Targets for 2018/19 are the 2019/20 targets carried back.",) * 3,
    )


def plain_csv(report: Report) -> bytes:
    """The baseline: the same table through csv.writer, no formatting and no safety."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["group", "ref", "measure", "polarity", "target", "tolerance", *report.columns])
    for group in report.groups:
        for row in group.rows:
            writer.writerow([group.name, row.ref, row.measure, row.polarity, row.target, row.tolerance,
                             *(c.text for c in row.cells)])  # fmt: skip
    return buffer.getvalue().encode("utf-8")


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
        if ref.encode() not in sheet or f"<td>{ref}</td>" not in html:
            problems.append(f"{ref} is missing from the xlsx or the html")
    if problems:
        raise BenchmarkFailure("; ".join(problems[:10]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)

    heading("data: building (not timed)")
    report = build_report(random.Random(SEED))
    rags = Counter(row.rag for row in report.rows())
    say(
        f"{sum(1 for _ in report.rows())} KPIs in {len(report.groups)} groups x {len(COLUMNS)} "
        f"quarters; RAG at {report.period_label}: "
        + ", ".join(f"{k} {v}" for k, v in sorted(rags.items(), key=str))
        + f"; {len(report.charts)} charts"
    )

    renderers: dict[str, Callable[[Report], bytes]] = {
        "baseline csv.writer": plain_csv,
        "csv": render_csv,
        "xlsx": render_xlsx,
        "pdf": render_pdf,
        "html": render_html,
    }
    heading(f"timing: one warm-up, then the median of {RUNS} runs each")
    medians: dict[str, float] = {}
    files: dict[str, bytes] = {}
    for name, render in renderers.items():
        render(report)
        times, data = repeat_timed(RUNS, lambda render=render: render(report))  # type: ignore[misc]
        medians[name] = statistics.median(times) * 1000
        files[name] = data
        say(
            f"{name}: median {medians[name]:,.1f} ms (runs {', '.join(f'{t * 1000:.0f}' for t in times)}"
            f" ms), {len(data):,} bytes"
        )
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
