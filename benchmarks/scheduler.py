"""Benchmark: the reminder tick over 10,000 contracts, against just reading its rows.

Builds a temporary SQLite store with 10,000 contracts × 40 KPIs on six calendar shapes
(quarterly from April, custom Nov–Jan quarters with an annual return, monthly, a due-date table
over a rule with roll-forward, calendar quarters with a short ladder, "within 2 months"), contract
years starting in any month of 2017–2019, and figures for the two latest periods of most
contracts (about 720,000 figure rows; a fifth of the contracts owe their latest return). The
store is built in a child process, so its memory does not count in the peak RSS.

Timed (best of 3):

* **tick**: ``ReminderTick.tick`` over Friday 14 February 2020, 00:00 to 00:00, warm (the tick
  ran the day before, so contract inputs are cached, as in production), with the day's outbox
  rows and the watermark reset between runs: reading contract hashes, planning 10,000
  contracts, the grouped receipts query, writing the outbox and moving the watermark;
* **store read**: the same reads alone (contract hashes and the same receipts query), the floor
  a tick cannot go below;
* **preview**: ``preview`` of one contract over a year of daily windows, warm: the bank
  holiday tables and the contract's calendar are loaded by a first, untimed preview;
* the cold first tick (loading and building everything) is reported, not a goal.

The run is also a check: for a sample of contracts, the messages the tick planned (through its
horizon-limited inputs) must equal ``plan_window`` over the whole calendar.

    .venv/bin/python benchmarks/scheduler.py            # or: make bench
    .venv/bin/python benchmarks/scheduler.py --strict   # exit 1 when a goal is missed

Last line: ``tick_ms=<a> store_read_ms=<b> preview_ms=<c> peak_rss_mb=<m>``.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import subprocess
import sys
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import BenchmarkFailure, best_of, emit_result, heading, peak_rss_mb, say, timed
from sqlalchemy import delete, func, select, update

from kpibot.app.wiring import services_for_database
from kpibot.core.settings import Settings
from kpibot.engine.calendar import LONDON, ReturnCalendar
from kpibot.engine.model import Contract
from kpibot.engine.periods import period_containing
from kpibot.scheduler.inputs import planner_contract, read_receipts
from kpibot.scheduler.plan import ContractInputs, plan_window
from kpibot.scheduler.preview import preview
from kpibot.scheduler.tick import STATE, ReminderTick
from kpibot.store.database import Database
from kpibot.store.outbox import OUTBOX, OutboxRepository
from kpibot.store.schema import ContractRecord, FigureRecord

SEED = 20240612
CONTRACTS = 10_000
KPIS = 40
DAY = date(2020, 2, 14)  # a Friday: reminders, dues and overdues across the calendars
CHECK_SAMPLE = 300
RUNS = 3

GOAL_TICK_MS = 1_000
GOAL_PREVIEW_MS = 200
GOAL_RSS_MB = 500

CALENDARS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("quarterly from April", {"period": "quarter", "year_start_month": 4},
     {"due": "15th of the month after the period"}),
    ("Nov-Jan quarters + annual return", {"period": "quarter", "year_start_month": 11},
     {"due": "15th of the month directly after the reporting period",
      "annual_return": {"name": "annual monitoring return", "due": "no later than 30 April"},
      "meetings": {"rule": "end of the month the return is due"}}),
    ("monthly", {"period": "month", "year_start_month": 4},
     {"due": "10 working days after period end"}),
    ("table over a rule", {"period": "quarter", "year_start_month": 4},
     {"due": "2nd Friday of the month after the period", "roll_forward": True,
      "due_dates": {"2019/20 Q2": "2019-10-11", "2019/20 Q3": "2020-01-10",
                    "2019/20 Q4": "2020-04-09"},
      "meetings": {"rule": "end of the month the return is due", "monthly_in_first_year": True}}),
    ("calendar quarters, short ladder", {"period": "quarter", "year_start_month": 1},
     {"due": "last working day of the month after the period",
      "reminders": {"before_days": [7, 1], "escalate_after_working_days": 3}}),
    ("within 2 months", {"period": "quarter", "year_start_month": 4},
     {"due": "within 2 months of the period end", "summary_grace_days": 10}),
]  # fmt: skip


def definition(i: int, rng: random.Random) -> dict[str, Any]:
    """One contract as the store keeps it (``Contract.model_dump(mode="json")``'s shape)."""
    _, reporting, calendar = CALENDARS[i % len(CALENDARS)]
    start = date(2017 + rng.randrange(3), rng.randrange(1, 13), 1)
    years = []
    for y in range(3):
        first = start.replace(year=start.year + y)
        years.append(
            {"year": y + 1, "label": None, "start": first.isoformat(),
             "end": (first.replace(year=first.year + 1) - timedelta(days=1)).isoformat()}
        )  # fmt: skip
    table = calendar.get("due_dates", {})
    own = {k: v for k, v in table.items() if _inside(k, reporting, years)}
    kpis = [
        {"code": f"K{k + 1}", "name": f"Measure {k + 1}", "target": "95%", "polarity": "bigger"}
        for k in range(KPIS)
    ]
    return {
        "id": f"bench-{i:05d}",
        "name": f"Benchmark contract {i}",
        "commissioner": {"name": "The Council", "slack_channel": f"CCOMM{i % 50:03d}"},
        "provider": {"name": f"Provider {i}", "slack_channel": f"CPROV{i:05d}"},
        "financial_year_start_month": 4,
        "reporting": reporting,
        "contract_years": years,
        "kpis": kpis,
        "calendar": {**calendar, "due_dates": own} if table else calendar,
    }


def _inside(label: str, reporting: dict[str, Any], years: list[dict[str, Any]]) -> bool:
    from kpibot.engine.periods import parse_period

    period = parse_period(label, reporting["year_start_month"])
    return (
        years[0]["start"] <= period.end.isoformat() and period.start.isoformat() <= years[-1]["end"]
    )


def build_store(path: Path) -> int:
    """The contracts and figures, inserted in bulk straight through sqlite3 (not timed).

    Runs in a child process (``--build``), so its memory does not count in the tick's peak RSS.
    Returns the number of figure rows.
    """
    import json
    import sqlite3

    rng = random.Random(SEED)
    Database(f"sqlite:///{path}").upgrade()
    definitions = [definition(i, rng) for i in range(CONTRACTS)]
    for d in definitions[: len(CALENDARS)]:
        Contract.model_validate(d)  # the shapes are valid contracts
    stamp = "2020-01-01 00:00:00.000000"
    connection = sqlite3.connect(path)
    connection.executemany(
        "INSERT INTO contracts (id, name, provider_name, commissioner_name, definition,"
        " content_hash, loaded_at, loaded_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            (d["id"], d["name"], d["provider"]["name"], d["commissioner"]["name"], json.dumps(d),
             hashlib.sha256(d["id"].encode()).hexdigest(), stamp, "benchmark")
            for d in definitions
        ),
    )  # fmt: skip
    submissions: list[tuple[Any, ...]] = []
    figures: list[tuple[Any, ...]] = []
    for d in definitions:
        reporting = d["reporting"]
        latest = period_containing(DAY, reporting["period"], reporting["year_start_month"])
        periods = [latest.shift(-2), latest.shift(-1)]
        if rng.random() < 0.2:  # a fifth owe their latest return
            periods = periods[:1]
        for period in periods:
            at = f"{period.end + timedelta(days=rng.randrange(3, 20))} 10:00:00.000000"
            submissions.append((len(submissions) + 1, d["id"], "bench", at, "import", KPIS))
            figures.extend(
                (d["id"], f"K{k + 1}", period.label, period.start.isoformat(),
                 period.end.isoformat(), period.kind, 90.0 + k % 10, len(submissions), "bench",
                 at, 0, "submitted")
                for k in range(KPIS)
            )  # fmt: skip
    connection.executemany(
        "INSERT INTO submissions (id, contract_id, submitted_by, submitted_at, source, row_count)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        submissions,
    )
    # Their alerts were worked out as they arrived, as a running kpibot's would have been:
    # without these rows the tick's catch-up would take all recent ones for a crash to mend.
    connection.executemany(
        "INSERT INTO alert_runs (submission_id, processed_at, rows) VALUES (?, ?, 0)",
        [(s[0], s[3]) for s in submissions],
    )
    connection.executemany(
        "INSERT INTO figures (contract_id, kpi_code, period_label, period_start, period_end,"
        " period_kind, value, submission_id, submitted_by, submitted_at, late, status)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        figures,
    )
    connection.commit()
    connection.execute("ANALYZE")
    connection.close()
    return len(figures)


def check_horizon(tick: ReminderTick, db: Database, rng: random.Random) -> int:
    """The tick's horizon-limited inputs must plan exactly what the whole calendar plans."""
    start = datetime.combine(DAY, datetime.min.time(), tzinfo=LONDON) - timedelta(days=3)
    end = start + timedelta(days=6)
    planned = tick.messages(start, end)
    with db.session(read_only=True) as session:
        ids = sorted(session.scalars(select(ContractRecord.id)))
        sample = rng.sample(ids, CHECK_SAMPLE)
        rows = dict(
            session.execute(
                select(ContractRecord.id, ContractRecord.definition).where(
                    ContractRecord.id.in_(sample)
                )
            ).all()
        )
    receipts = read_receipts(db, sample)
    full = []
    for cid in sample:
        contract = planner_contract(rows[cid])
        inputs = ContractInputs(contract, ReturnCalendar(contract), receipts.get(cid, {}))
        full.extend(plan_window([inputs], start, end))
    mine = [m for m in planned if m.contract in set(sample)]
    if sorted(mine, key=lambda m: m.key) != sorted(full, key=lambda m: m.key):
        raise BenchmarkFailure(
            f"the tick planned {len(mine)} messages for {CHECK_SAMPLE} sampled contracts, "
            f"the whole calendars {len(full)}"
        )
    return len(full)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--build", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build:
        print(build_store(Path(args.build)))
        return 0
    rng = random.Random(SEED)

    with tempfile.TemporaryDirectory(prefix="kpibot-bench-") as tmp:
        heading("data: building the store in a child process (not timed)")
        path = Path(tmp) / "bench.db"
        build_s, out = timed(
            lambda: subprocess.run(
                [sys.executable, __file__, "--build", str(path)],
                check=True, capture_output=True, text=True,
            )
        )  # fmt: skip
        n_figures = int(out.stdout.split()[-1])
        say(
            f"{CONTRACTS:,} contracts x {KPIS} KPIs on {len(CALENDARS)} calendar shapes, "
            f"{n_figures:,} figure rows; built in {build_s:.1f} s"
        )
        db = Database(f"sqlite:///{path}")
        services = services_for_database(db, Settings(database_url=str(db.url)))
        day0 = datetime.combine(DAY, datetime.min.time(), tzinfo=LONDON)
        day1 = day0 + timedelta(days=1)
        tick = ReminderTick(
            services, None, lambda *_: {}, name="bench", start=day0 - timedelta(days=1)
        )

        heading("cold start: the first tick loads and builds every contract (reported only)")
        cold_s, cold_rows = timed(lambda: tick.tick(day0))
        say(
            f"first tick, the day before: {cold_s:.2f} s ({cold_rows} outbox rows), "
            f"peak RSS so far {peak_rss_mb()} MB"
        )

        heading(f"timing: best of {RUNS} ticks over {DAY:%a %d %b %Y}, state reset between")
        times: list[float] = []
        results: list[int] = []
        for _ in range(RUNS):
            with db.session() as session:  # not timed: forget the day, keep the caches warm
                session.execute(delete(OUTBOX).where(OUTBOX.c.due_at > day0))
                session.execute(update(STATE).where(STATE.c.name == "bench").values(watermark=day0))
            seconds, written = timed(lambda: tick.tick(day1))
            times.append(seconds)
            results.append(written)
        tick_s = min(times)
        ids, labels = tick.last_reads

        def store_read() -> int:
            with db.session(read_only=True) as session:
                hashes = session.execute(
                    select(ContractRecord.id, ContractRecord.content_hash)
                ).all()
            return len(hashes) + len(read_receipts(db, ids, labels))

        read_s, _ = best_of(RUNS, store_read)
        with db.session(read_only=True) as session:
            receipts = session.scalar(
                select(func.count()).select_from(
                    select(FigureRecord.contract_id, FigureRecord.period_label)
                    .group_by(FigureRecord.contract_id, FigureRecord.period_label)
                    .subquery()
                )
            )
        say(
            f"tick: {tick_s * 1000:.0f} ms for the day over {CONTRACTS:,} contracts "
            f"(runs {', '.join(f'{t * 1000:.0f}' for t in times)} ms; {results[-1]:,} outbox "
            f"rows); store read alone: "
            f"{read_s * 1000:.0f} ms (contract hashes, and receipts of the {len(ids):,} contracts "
            f"that may owe a return that day over {len(labels)} period labels; {receipts:,} "
            "receipts in the store)"
        )
        say(f"outbox now: {OutboxRepository(db).counts()}")

        heading("preview: one contract, one year of daily windows (warm: holidays loaded)")
        contract = planner_contract(definition(1, random.Random(SEED)))
        preview(contract, DAY, DAY + timedelta(days=30), no_submissions=True)
        preview_s, rows = best_of(
            RUNS, lambda: preview(contract, DAY, DAY + timedelta(days=364), no_submissions=True)
        )
        say(f"preview: {preview_s * 1000:.1f} ms, {len(rows)} messages over 365 days")

        heading("check: horizon-limited inputs plan what the whole calendar plans")
        checked = check_horizon(tick, db, rng)
        say(f"{CHECK_SAMPLE} sampled contracts over 6 days: {checked} messages, identical")
        db.dispose()

    rss = peak_rss_mb()
    goals = {
        f"tick <= {GOAL_TICK_MS} ms": tick_s * 1000 <= GOAL_TICK_MS,
        f"preview <= {GOAL_PREVIEW_MS} ms": preview_s * 1000 <= GOAL_PREVIEW_MS,
        f"peak RSS < {GOAL_RSS_MB} MB": rss < GOAL_RSS_MB,
    }
    heading("goals")
    say("; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in goals.items()))
    emit_result(
        tick_ms=round(tick_s * 1000),
        store_read_ms=round(read_s * 1000),
        preview_ms=round(preview_s * 1000, 1),
        peak_rss_mb=rss,
    )
    return 1 if args.strict and not all(goals.values()) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkFailure as exc:
        print(f"scheduler benchmark FAILED: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
