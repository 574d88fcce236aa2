"""Benchmark: the reminder tick over 10,000 contracts, against just reading its rows.

Builds a temporary SQLite store with 10,000 contracts × 40 KPIs on six calendar shapes
(quarterly from April, custom Nov–Jan quarters with an annual return, monthly, a due-date table
over a rule with roll-forward, calendar quarters with a short ladder, "within 2 months"), contract
years starting in any month of 2017–2019, and figures for the two latest quarters of most
contracts (about 800,000 figure rows; a fifth of the contracts owe their latest return).

Timed:

* **tick**: ``ReminderTick.tick`` over one day's window, warm (the tick process has run before,
  so contract inputs are cached, as in production): reading contract hashes, the grouped
  receipts query, planning 10,000 contracts, writing the outbox and the watermark;
* **store read**: the same reads alone (contract hashes and the receipts query), the floor a
  tick cannot go below;
* **preview**: ``preview`` of one contract over a year of daily windows, warm: the bank
  holiday tables and the contract's calendar are loaded first;
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
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import BenchmarkFailure, best_of, emit_result, heading, peak_rss_mb, say, timed
from sqlalchemy import func, insert, select

from kpibot.engine.calendar import LONDON, ReturnCalendar
from kpibot.engine.model import Contract
from kpibot.engine.periods import period_containing
from kpibot.scheduler.outbox import OutboxRepository
from kpibot.scheduler.plan import ContractInputs, plan_window
from kpibot.scheduler.preview import preview
from kpibot.scheduler.tick import ReminderTick, planner_contract, read_receipts
from kpibot.services import Services
from kpibot.settings import Settings
from kpibot.store.database import Database
from kpibot.store.schema import ContractRecord, FigureRecord, SubmissionRecord

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
    return years[0]["start"] <= period.end.isoformat() and period.start.isoformat() <= years[-1][
        "end"
    ]


def build_store(path: Path, rng: random.Random) -> tuple[Database, int]:
    """The contracts and figures, inserted in bulk (not timed). Returns the db and figure count."""
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    loaded = datetime(2020, 1, 1, tzinfo=UTC)
    definitions = [definition(i, rng) for i in range(CONTRACTS)]
    for d in definitions[: len(CALENDARS)]:
        Contract.model_validate(d)  # the shapes are valid contracts
    contracts = [
        {
            "id": d["id"],
            "name": d["name"],
            "provider_name": d["provider"]["name"],
            "commissioner_name": d["commissioner"]["name"],
            "definition": d,
            "content_hash": hashlib.sha256(d["id"].encode()).hexdigest(),
            "loaded_at": loaded,
            "loaded_by": "benchmark",
        }
        for d in definitions
    ]
    submissions: list[dict[str, Any]] = []
    figures: list[dict[str, Any]] = []
    for d in definitions:
        reporting = d["reporting"]
        latest = period_containing(DAY, reporting["period"], reporting["year_start_month"])
        periods = [latest.shift(-2), latest.shift(-1)]
        if rng.random() < 0.2:  # a fifth owe their latest return
            periods = periods[:1]
        for period in periods:
            at = datetime.combine(period.end + timedelta(days=rng.randrange(3, 20)),
                                  datetime.min.time(), tzinfo=UTC)  # fmt: skip
            submission_id = len(submissions) + 1
            submissions.append(
                {"id": submission_id, "contract_id": d["id"], "submitted_by": "bench",
                 "submitted_at": at, "source": "import", "row_count": KPIS}
            )  # fmt: skip
            figures.extend(
                {"contract_id": d["id"], "kpi_code": f"K{k + 1}", "period_label": period.label,
                 "period_start": period.start, "period_end": period.end,
                 "period_kind": period.kind, "value": 90.0 + k % 10, "submission_id": submission_id,
                 "submitted_by": "bench", "submitted_at": at, "late": False, "status": "submitted"}
                for k in range(KPIS)
            )  # fmt: skip
    with db.session() as session:
        session.execute(insert(ContractRecord), contracts)
        session.execute(insert(SubmissionRecord), submissions)
        session.execute(insert(FigureRecord), figures)
    return db, len(figures)


def check_horizon(tick: ReminderTick, db: Database, rng: random.Random) -> int:
    """The tick's horizon-limited inputs must plan exactly what the whole calendar plans."""
    start = datetime.combine(DAY, datetime.min.time(), tzinfo=LONDON) - timedelta(days=3)
    end = start + timedelta(days=6)
    planned = tick.messages(start, end)
    receipts = read_receipts(db)
    with db.session(read_only=True) as session:
        rows = dict(session.execute(select(ContractRecord.id, ContractRecord.definition)).all())
    sample = rng.sample(sorted(rows), CHECK_SAMPLE)
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
    args = parser.parse_args(argv)
    rng = random.Random(SEED)

    with tempfile.TemporaryDirectory(prefix="kpibot-bench-") as tmp:
        heading("data: building the store (not timed)")
        build_s, (db, n_figures) = timed(lambda: build_store(Path(tmp) / "bench.db", rng))
        say(
            f"{CONTRACTS:,} contracts x {KPIS} KPIs on {len(CALENDARS)} calendar shapes, "
            f"{n_figures:,} figure rows; built in {build_s:.1f} s"
        )
        services = Services.for_database(db, Settings(database_url=str(db.url)))
        day0 = datetime.combine(DAY, datetime.min.time(), tzinfo=LONDON)
        # Windows end at midnight; the last one is DAY itself.
        ends = [day0 + timedelta(days=k) for k in range(2 - RUNS, 2)]
        first = ends[0] - timedelta(days=1)
        tick = ReminderTick(
            services, None, lambda *_: {}, name="bench", start=first - timedelta(days=1)
        )

        heading("cold start: the first tick loads and builds every contract (reported only)")
        cold_s, cold_rows = timed(lambda: tick.tick(first))
        say(f"first tick {cold_s:.2f} s ({cold_rows} outbox rows), peak RSS {peak_rss_mb()} MB")

        heading(f"timing: best of {RUNS}, one day's window each")
        windows = iter(ends)
        results: list[int] = []

        def one_day() -> int:
            n = tick.tick(next(windows))
            results.append(n)
            return n

        tick_s, _ = best_of(RUNS, one_day)
        labels = tick.last_labels

        def store_read() -> int:
            with db.session(read_only=True) as session:
                hashes = session.execute(
                    select(ContractRecord.id, ContractRecord.content_hash)
                ).all()
            return len(hashes) + len(read_receipts(db, labels=labels))

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
            f"tick: {tick_s * 1000:.0f} ms for a day of {CONTRACTS:,} contracts "
            f"(outbox rows per day: {', '.join(map(str, results))}); store read alone: "
            f"{read_s * 1000:.0f} ms ({receipts:,} receipts in all, {len(labels)} period labels "
            "in the horizons)"
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
