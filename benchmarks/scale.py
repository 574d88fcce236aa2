"""Benchmark: ten thousand contracts on one PostgreSQL database, and how fast the CLI answers.

Loads 10,000 synthetic contracts × 40 KPIs × 12 quarters (``_synthetic.py``: real target
phrasings, 3% of returns missing; about 4.7 million figures) into a schema of its own on the
PostgreSQL server (``KPIBOT_BENCH_POSTGRES_URL``, default the test server at 127.0.0.1:5432,
database ``test``), with COPY through psycopg. Nothing of the load is timed, and the schema is
dropped at the end. Then a fresh process, as a server starts, measures:

* **warmup_s**: the start-up warm-up (``kpibot.app.warmup.Warmup``, what ``/readyz`` waits for)
  building every contract's status overview; **per_contract_ms** is that over the contracts;
* **rss_mb**: that process's peak resident memory, with every overview cached (its RSS just
  after the warm-up is printed too);
* **cold_status_ms**: the median of ``status <contract>`` through ``bot.handle`` on services
  with nothing cached (no contract, no compiled terms, no figures, no overview) over contracts
  not asked for before: one contract's overview built from nothing;
* **refresh_ms**: the median of ``status <contract>`` just after a new figure (an amendment of
  one KPI at the report period) was stored for it, on the warm services; each refreshed reply is
  checked against one built from nothing;

and this process measures **help_ms**, the median wall time of ``kpibot --help`` as a process,
and **bare_python_ms**, of ``python -c pass``, the two interleaved in the same run.

    .venv/bin/python benchmarks/scale.py              # or: make bench
    .venv/bin/python benchmarks/scale.py --strict     # exit 1 when a goal is missed
    .venv/bin/python benchmarks/scale.py --contracts 1000   # a smaller run

Last line: ``warmup_s=… per_contract_ms=… cold_status_ms=… refresh_ms=… rss_mb=… help_ms=…
bare_python_ms=…``. Goals: warmup_s ≤ 20, cold_status_ms ≤ 20, refresh_ms ≤ 5, rss_mb ≤ 1500,
help_ms ≤ 3 × bare_python_ms + 150.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from _common import BenchmarkFailure, emit_result, heading, peak_rss_mb, say, timed
from _synthetic import KPIS, PERIODS, copy_load

CONTRACTS = 10_000
SEED = 20261201
TODAY = "2020-06-01"
USER = "U-BENCH"
SAMPLES = 25
CLI_RUNS = 15
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

GOAL_WARMUP_S = 20.0
GOAL_COLD_MS = 20.0
GOAL_REFRESH_MS = 5.0
GOAL_RSS_MB = 1500
GOAL_HELP_FACTOR, GOAL_HELP_PLUS_MS = 3.0, 150.0


# ------------------------------------------------------------------------------ the server process


def rss_now_mb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


def child(count: int) -> dict[str, object]:
    """Run in a fresh process: warm up as a server does, then time cold and refreshed status."""
    from kpibot.app.warmup import Warmup
    from kpibot.app.wiring import build_bot, services_for_database
    from kpibot.commands.bot import Bot
    from kpibot.core.protocol import Request
    from kpibot.core.settings import Settings
    from kpibot.engine import scorecard, targets
    from kpibot.store.rows import NewFigure

    settings = Settings()
    bot = build_bot(settings)
    services = bot.services
    services.db.read_scalar("SELECT 1")  # the pool's first connection, before any clock

    def status(b: Bot, cid: str) -> tuple[float, Any]:
        request = Request.from_text(f"status {cid}", user=USER, platform="console")
        return timed(lambda: b.handle(request))

    warmup = Warmup(services, settle=True)  # as kpibot serve: the warm heap is frozen
    warm_s, _ = timed(warmup.run)
    if warmup.warmed != count or warmup.failed:
        raise BenchmarkFailure(f"warm-up built {warmup.warmed} of {count} ({warmup.failed} failed)")
    rss_warm = rss_now_mb()

    rng = random.Random(SEED)
    picks = rng.sample(range(1, count + 1), 2 * SAMPLES)
    cold_ids = [f"bench-{i:03d}" for i in picks[:SAMPLES]]
    refresh_ids = [f"bench-{i:03d}" for i in picks[SAMPLES:]]

    warm_hits = [status(bot, cid)[0] for cid in refresh_ids]

    def nothing_cached() -> Bot:
        scorecard.clear_caches()
        targets.clear_terms_cache()
        fresh = services_for_database(services.db, settings, services.clock)
        return Bot(fresh, bot.policy, Bot.secret_from(settings))

    cold = []
    for cid in cold_ids:
        b = nothing_cached()
        seconds, reply = status(b, cid)
        if not reply.ok or cid not in reply.actions[0].command:
            raise BenchmarkFailure(f"cold status {cid}: {reply.plain()[:200]}")
        cold.append(seconds)

    refresh = []
    for n, cid in enumerate(refresh_ids):
        contract = services.contract(cid)
        assert contract is not None
        code = contract.kpis[n % len(contract.kpis)].code
        period = contract.parse_period(PERIODS[-1])
        services.figures.submit(
            cid,
            [NewFigure(code, period, value=float(n % 100), reason="benchmark recount")],
            actor="benchmark",
            source="chat",
        )
        seconds, reply = status(bot, cid)
        refresh.append(seconds)
        expected = status(nothing_cached(), cid)[1]
        if reply != expected:
            raise BenchmarkFailure(f"refreshed status of {cid} differs from one built from nothing")
    return {
        "warmup_s": warm_s,
        "rss_warm_mb": rss_warm,
        "rss_peak_mb": peak_rss_mb(),
        "cold_ms": [s * 1000 for s in cold],
        "refresh_ms": [s * 1000 for s in refresh],
        "warm_hit_ms": [s * 1000 for s in warm_hits],
    }


# ------------------------------------------------------------------------------ the CLI


def process_ms(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def cli_times(runs: int) -> tuple[float, float]:
    """Medians of ``kpibot --help`` and ``python -c pass`` as processes, interleaved."""
    kpibot = str(Path(sys.executable).with_name("kpibot"))
    process_ms([kpibot, "--help"])  # the first run pays for cold file caches
    process_ms([sys.executable, "-c", "pass"])
    helps, bares = [], []
    for _ in range(runs):
        helps.append(process_ms([kpibot, "--help"]))
        bares.append(process_ms([sys.executable, "-c", "pass"]))
    return statistics.median(helps), statistics.median(bares)


# ------------------------------------------------------------------------------ main


def spread(values: list[float]) -> str:
    q = np.percentile(values, [50, 90])
    return f"median {q[0]:.1f} · p90 {q[1]:.1f} · max {max(values):.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--contracts", type=int, default=CONTRACTS, help="how many contracts")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.contracts)), flush=True)
        return 0

    import psycopg
    from sqlalchemy.engine import make_url

    from kpibot.store.database import Database, normalise_url

    say(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    url = normalise_url(os.environ.get("KPIBOT_BENCH_POSTGRES_URL", DEFAULT_URL))
    schema = f"kpibot_scale_{uuid.uuid4().hex[:10]}"
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = psycopg.connect(plain, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        raise BenchmarkFailure(
            f"PostgreSQL is unreachable at {make_url(plain).render_as_string()} ({error}); "
            "start it or set KPIBOT_BENCH_POSTGRES_URL"
        ) from None
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        scoped = url.update_query_dict({"options": f"-csearch_path={schema}"})
        db = Database(scoped)
        db.upgrade()
        db.dispose()
        heading(
            f"data: {args.contracts:,} contracts x {KPIS} KPIs x {len(PERIODS)} quarters into "
            f"PostgreSQL schema {schema} with COPY, not timed"
        )
        rng = np.random.default_rng(SEED)
        with psycopg.connect(plain, options=f"-csearch_path={schema}") as connection:
            load_s, stored = timed(lambda: copy_load(connection, args.contracts, rng))
        say(f"{stored:,} figures loaded in {load_s:.1f} s")

        heading("a fresh process as a server starts: warm-up, cold status, status after a figure")
        with tempfile.TemporaryDirectory(prefix="kpibot-scale-") as tmp:
            access = Path(tmp) / "access.yaml"
            access.write_text(
                f"grantor: the benchmark\ndefault_role: none\nusers:\n  {USER}:\n"
                "    role: commissioner\n    name: Benchmark\n    contracts: all\n",
                encoding="utf-8",
            )
            env = {
                **os.environ,
                "KPIBOT_DATABASE_URL": scoped.render_as_string(hide_password=False),
                "KPIBOT_ACCESS_FILE": str(access),
                "KPIBOT_TODAY": TODAY,
                "KPIBOT_SECRET_KEY": "bench-secret-key",
            }
            out = subprocess.run(
                [sys.executable, __file__, "--child", "--contracts", str(args.contracts)],
                env=env,
                capture_output=True,
                text=True,
                timeout=3600,
            )
        if out.returncode != 0:
            raise BenchmarkFailure(f"the server process failed:\n{out.stderr[-3000:]}")
        m = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()

    warmup_s = float(m["warmup_s"])
    per_contract = warmup_s * 1000 / args.contracts
    say(
        f"warm-up: {warmup_s:.1f} s for {args.contracts:,} contracts ({per_contract:.2f} ms each); "
        f"RSS {m['rss_warm_mb']:,} MB just after, peak {m['rss_peak_mb']:,} MB"
    )
    say(f"status of a warm contract (cached): {spread(m['warm_hit_ms'])}")
    say(f"status built from nothing ({SAMPLES} contracts): {spread(m['cold_ms'])}")
    say(f"status just after a new figure ({SAMPLES} contracts): {spread(m['refresh_ms'])}")

    heading(f"CLI start-up: {CLI_RUNS} runs each, interleaved")
    help_ms, bare_ms = cli_times(CLI_RUNS)
    say(f"kpibot --help median {help_ms:.0f} ms; python -c pass median {bare_ms:.0f} ms")

    cold_ms = statistics.median(m["cold_ms"])
    refresh_ms = statistics.median(m["refresh_ms"])
    rss_mb = int(m["rss_peak_mb"])
    goals = {
        f"warmup_s <= {GOAL_WARMUP_S:.0f}": warmup_s <= GOAL_WARMUP_S,
        f"cold_status_ms <= {GOAL_COLD_MS:.0f}": cold_ms <= GOAL_COLD_MS,
        f"refresh_ms <= {GOAL_REFRESH_MS:.0f}": refresh_ms <= GOAL_REFRESH_MS,
        f"rss_mb <= {GOAL_RSS_MB}": rss_mb <= GOAL_RSS_MB,
        "help_ms <= 3 x bare_python_ms + 150": help_ms
        <= GOAL_HELP_FACTOR * bare_ms + GOAL_HELP_PLUS_MS,
    }
    heading("goals")
    say(
        "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in goals.items())
        + f" (load average {os.getloadavg()[0]:.1f} at the end)"
    )
    emit_result(
        warmup_s=round(warmup_s, 1),
        per_contract_ms=f"{per_contract:.2f}",
        cold_status_ms=round(cold_ms, 1),
        refresh_ms=round(refresh_ms, 2),
        rss_mb=rss_mb,
        help_ms=round(help_ms),
        bare_python_ms=round(bare_ms),
    )
    return 1 if args.strict and not all(goals.values()) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkFailure as exc:
        print(f"scale benchmark FAILED: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
