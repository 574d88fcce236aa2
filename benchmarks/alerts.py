"""Benchmark: alert fan-out for one big import, and a Monday's weekly digests, on PostgreSQL.

The store is a fresh schema on the PostgreSQL test server (``KPIBOT_TEST_POSTGRES_URL``, default
the local trust-auth server; the schema is dropped at the end) with 50 contracts of 20 KPIs
(quarterly returns, a tenth of them with a per-KPI incentive so money is worked out too), two
quarters of history each, 2,000 watches spread over the contracts (people by DM and channels;
red, critical, money, every change; some on one KPI) and 2,000 weekly digests (each of one to
five contracts, a tenth of all of them).

Timed:

* **alert fan-out** (goal ≤ 1,000 ms): one import of 500 figures across the 50 contracts
  (2019/20 Q3, ten KPIs each, a third of them red, some below their critical-failure floor),
  from the figures stored until every outbox row is written: ``alerts.process`` over the 50
  submissions, which evaluates every contract before and after in one engine pass, fills the
  ledger and writes each grouped message per kind and audience;
* **baseline, same run**: the 50 imports themselves with the alerts left out (checking and
  storing the figures, the return workflow, the audit), so the fan-out is seen against what an
  import costs anyway; and, reported, the same imports of the next quarter with the alerts
  written inline, as ``kpibot import`` and chat do;
* **digests** (goal ≤ 5,000 ms): the tick plans Monday 09:00, then all 2,000 weekly digests are
  built as the dispatcher builds them at delivery (the composer: the subscription's window is
  claimed, each contract's changes worked out once per window, access checked per reader).

The run is also a check: every red KPI must be named in its contract channel's grouped message,
and every digest must name the changes of its contracts.

    .venv/bin/python benchmarks/alerts.py            # or: make bench
    .venv/bin/python benchmarks/alerts.py --strict   # exit 1 when a goal is missed

Last line: ``alert_fanout_ms=<a> digest_ms=<b> import_baseline_ms=<c> import_inline_ms=<d>``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from _common import BenchmarkFailure, emit_result, heading, peak_rss_mb, say, timed
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from kpibot.app.wiring import services_for_database
from kpibot.core.access import AccessPolicy, Grant
from kpibot.core.services import Services
from kpibot.core.settings import Settings
from kpibot.engine.calendar import LONDON
from kpibot.engine.model import Contract
from kpibot.engine.periods import parse_period
from kpibot.features import alerts
from kpibot.features import figures as figures_feature
from kpibot.features.figures import import_return
from kpibot.features.subscriptions import Place, set_digest, watch
from kpibot.features.summary import composer
from kpibot.files.tables import read_table_bytes
from kpibot.scheduler.tick import ReminderTick
from kpibot.store.database import Database, normalise_url
from kpibot.store.outbox import OutboxMessage, OutboxRepository
from kpibot.store.rows import NewFigure
from kpibot.store.schema import OutboxRecord, SubscriptionRecord

SEED = 20261124
CONTRACTS = 50
KPIS = 20
PER_CONTRACT = 10  # figures per contract in the import: 50 x 10 = 500
WATCHES = 2_000
DIGESTS = 2_000
GOAL_FANOUT_MS = 1_000
GOAL_DIGEST_MS = 5_000
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FILTERS = ("red", "critical", "any-change", "money", "alerts")


def definition(i: int) -> dict[str, Any]:
    """One contract as ``contracts load`` would store it: 20 percentage KPIs, quarterly returns."""
    kpis = [
        {
            "code": f"K{k + 1}",
            "name": f"Measure {k + 1}",
            "unit": "percent",
            "polarity": "bigger",
            "target": "95%",
            "tolerance": "90%",
            "critical_failure": "Less than 50%",
            **({"incentive_weight": "0.005"} if i % 10 == 0 and k < 4 else {}),
        }
        for k in range(KPIS)
    ]
    data: dict[str, Any] = {
        "id": f"bench-{i:03d}",
        "name": f"Benchmark contract {i}",
        "commissioner": {"name": "The Council", "slack_channel": f"CCOMM{i % 5:02d}"},
        "provider": {"name": f"Provider {i}", "slack_channel": f"CPROV{i:03d}"},
        "contract_years": [
            {"year": y, "start": f"{2018 + y}-04-01", "end": f"{2019 + y}-03-31"}
            for y in range(1, 4)
        ],
        "kpis": kpis,
        "calendar": {"due": "15th of the month after the period"},
    }
    if i % 10 == 0:
        data["annual_contract_value"] = "1000000"
        data["payments"] = {
            "per_kpi_incentive": {"clause": "Schedule 4, 1.1", "kpis": ["K1", "K2", "K3", "K4"]}
        }
    return data


@contextmanager
def postgres() -> Iterator[Database]:
    url = normalise_url(os.environ.get("KPIBOT_TEST_POSTGRES_URL", DEFAULT_URL))
    admin = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as error:
        raise BenchmarkFailure(
            f"PostgreSQL is unreachable at {url.render_as_string(hide_password=True)}: "
            "start it or set KPIBOT_TEST_POSTGRES_URL"
        ) from error
    schema = f"kpibot_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = Database(url.update_query_dict({"options": f"-csearch_path={schema}"}))
    try:
        yield db
    finally:
        db.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def build(services: Services, policy: AccessPolicy, rng: random.Random) -> list[Contract]:
    contracts = [Contract.model_validate(definition(i)) for i in range(CONTRACTS)]
    services.store_contracts(contracts, actor="bench", with_history=False)
    for c in contracts:  # two quarters of history, mostly green (quiet: no alerts)
        rows = [
            NewFigure(k.code, parse_period(p), value=rng.choice((96.0, 97.0, 99.0, 92.0)))
            for k in c.kpis
            for p in ("2019/20 Q1", "2019/20 Q2")
        ]
        services.figures.submit(c.id, rows, actor="bench", source="history")
    now = services.now()
    users = [f"UBENCH{u:04d}" for u in range(WATCHES)]
    for n, user in enumerate(users):
        contract = contracts[n % CONTRACTS]
        policy.users[user] = policy.users.get(user) or _viewer(user)
        place = Place("slack", user, True) if n % 4 else Place("slack", f"CWATCH{n:04d}", False)
        kpi = f"K{1 + n % KPIS}" if n % 3 == 0 else None
        watch(services, user, None, place, contract.id, kpi, FILTERS[n % len(FILTERS)], now)
    ids = [c.id for c in contracts]
    for n in range(DIGESTS):
        user = f"UDIGEST{n:04d}"
        policy.users[user] = _viewer(user)
        wanted = [] if n % 10 == 0 else rng.sample(ids, 1 + n % 5)
        set_digest(services, user, None, Place("slack", user, True), "weekly", wanted, now)
    return contracts


def _viewer(user: str) -> Grant:
    return Grant(role="viewer", name=user, contracts="all")


def import_quarter(
    services: Services, policy: AccessPolicy, contracts: list[Contract], period: str, seed: int
) -> tuple[list[int], dict[str, list[str]]]:
    """One import of PER_CONTRACT figures per contract; returns the submissions and the reds."""
    rng = random.Random(seed)
    submissions: list[int] = []
    reds: dict[str, list[str]] = {}
    for c in contracts:
        lines = ["kpi,period,value"]
        for k in c.kpis[:PER_CONTRACT]:
            value = rng.choice((97.0, 96.0, 92.0, 60.0, 40.0))
            if value < 90:
                reds.setdefault(c.id, []).append(k.code)
            lines.append(f"{k.code},{period},{value}")
        table = read_table_bytes(("\n".join(lines) + "\n").encode(), f"{c.id}.csv")
        out = import_return(services, c.id, table, actor="UBENCH0001", policy=policy)
        if out.errors or out.result is None:
            raise BenchmarkFailure(f"import refused: {out.errors[:2]}")
        submissions.append(out.result.submission_id)
    return submissions, reds


def check_fanout(services: Services, reds: dict[str, list[str]]) -> int:
    with services.db.session(read_only=True) as session:
        rows = session.scalars(select(OutboxRecord).where(OutboxRecord.kind.like("alert_%"))).all()
    by_channel = {
        (r.contract_id, r.channel): r.payload["text"] for r in rows if r.kind == "alert_red"
    }
    for cid, codes in reds.items():
        provider = f"CPROV{int(cid.rsplit('-', 1)[1]):03d}"
        text_ = by_channel.get((cid, provider))
        # Turned red only where the KPI's previous quarter was not red: all of them here.
        if text_ is None or any(f"• {code} " not in text_ for code in codes):
            raise BenchmarkFailure(f"{cid}: the channel's grouped red alert misses a KPI")
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    rng = random.Random(SEED)
    clock = Clock(datetime(2020, 1, 20, 10, 0, tzinfo=LONDON))  # Q3 (Oct-Dec) has ended
    with postgres() as db:
        heading("data: 50 contracts, 2,000 watches, 2,000 weekly digests (not timed)")
        db.upgrade()
        services = services_for_database(db, Settings(database_url=str(db.url)), clock)
        policy = AccessPolicy()
        setup_s, contracts = timed(lambda: build(services, policy, rng))
        with db.session(read_only=True) as session:
            subs = session.scalar(select(func.count()).select_from(SubscriptionRecord))
        say(f"{len(contracts)} contracts x {KPIS} KPIs, {subs:,} subscriptions; {setup_s:.1f} s")

        heading("baseline: one import of 500 figures across 50 contracts, alerts left out")
        # The imports write their alerts inline (alerts.figures_stored): leave that out here.
        real = figures_feature.figures_stored
        figures_feature.figures_stored = lambda *_a, **_k: 0  # type: ignore[assignment]
        try:
            base_s, (submissions, reds) = timed(
                lambda: import_quarter(services, policy, contracts, "2019/20 Q3", SEED)
            )
        finally:
            figures_feature.figures_stored = real  # type: ignore[assignment]
        say(f"imports alone: {base_s * 1000:.0f} ms ({len(submissions)} submissions)")

        heading("alert fan-out: from the figures stored to every outbox row written")
        cpu = time.process_time()
        fan_s, written = timed(lambda: alerts.process(services, policy, submissions, clock.now))
        fan_cpu = time.process_time() - cpu
        rows = check_fanout(services, reds)
        red_kpis = sum(len(v) for v in reds.values())
        say(
            f"fan-out: {fan_s * 1000:.0f} ms ({fan_cpu * 1000:.0f} ms of it this process's CPU; "
            f"the rest PostgreSQL and waiting), {written:,} outbox rows ({rows:,} alert rows), "
            f"{red_kpis} KPIs turned red across {len(reds)} contracts; every one named"
        )

        heading("reported: the next quarter's imports with alerts written inline")
        clock.now = datetime(2020, 4, 20, 10, 0, tzinfo=LONDON)
        inline_s, _ = timed(lambda: import_quarter(services, policy, contracts, "2019/20 Q4", 7))
        say(f"imports with alerts inline: {inline_s * 1000:.0f} ms")

        heading("digests: Monday 09:00, 2,000 weekly digests built as they are delivered")
        monday = datetime(2020, 4, 27, 9, 0, tzinfo=LONDON)
        tick = ReminderTick(services, policy, name="bench", start=monday - timedelta(minutes=1))
        planned = tick.tick(monday)
        outbox = OutboxRepository(db)
        messages: list[OutboxMessage] = [
            m for m in outbox.claim("bench", monday, limit=10_000) if m.kind == "digest"
        ]
        if len(messages) != DIGESTS:
            raise BenchmarkFailure(f"{len(messages)} digests planned, not {DIGESTS}")
        compose = composer(services, policy)
        clock.now = monday
        cpu = time.process_time()
        digest_s, replies = timed(lambda: [compose(m) for m in messages])
        digest_cpu = time.process_time() - cpu
        named = sum(1 for r in replies if r is not None and "Turned red" in r.text)
        if any(r is None for r in replies) or named < DIGESTS * 0.9:
            raise BenchmarkFailure(f"only {named} of {DIGESTS} digests name the reds")
        say(
            f"digests: {digest_s * 1000:.0f} ms ({digest_cpu * 1000:.0f} ms CPU) for "
            f"{len(replies):,} ({planned:,} rows planned; "
            f"{named:,} name KPIs that turned red)"
        )

    rss = peak_rss_mb()
    goals = {
        f"fan-out <= {GOAL_FANOUT_MS} ms": fan_s * 1000 <= GOAL_FANOUT_MS,
        f"digests <= {GOAL_DIGEST_MS} ms": digest_s * 1000 <= GOAL_DIGEST_MS,
    }
    heading("goals")
    say("; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in goals.items()))
    say(f"peak RSS {rss} MB; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    emit_result(
        alert_fanout_ms=round(fan_s * 1000),
        digest_ms=round(digest_s * 1000),
        import_baseline_ms=round(base_s * 1000),
        import_inline_ms=round(inline_s * 1000),
    )
    return 1 if args.strict and not all(goals.values()) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkFailure as exc:
        print(f"alerts benchmark FAILED: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
