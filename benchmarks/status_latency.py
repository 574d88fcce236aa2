"""Benchmark: how long a Slack user waits for ``/kpi status <contract>``, against a bare Bolt app.

Loads 500 synthetic contracts × 40 KPIs × 12 quarters (2017/18 Q1 … 2019/20 Q4, three contract
years; a mix of real target phrasings, 3% of returns missing) into a temporary SQLite store in
WAL mode, with ``KPIBOT_TODAY=2020-06-01`` and one commissioner who sees every contract. Then:

* **status**: the real app (``create_app``, as ``kpibot serve`` builds it) under uvicorn on
  127.0.0.1. As a load balancer would, the load starts once ``/readyz`` answers 200, that is
  once the start-up warm-up has built every contract's status (its length is printed). 20
  simulated users each send a signed ``/kpi status <random contract>``, wait for the answer, and send the next: 50
  warm-up requests, then 2,000 measured. The app acks with "Working on it…" and a Bolt lazy
  listener posts the status to the request's own ``response_url``, served by a recording Slack
  stand-in (``tests.slack_mock.SlackApiServer``) that timestamps each arrival.
  Measured per request: **ack** = signed POST sent → HTTP response; **reply** = signed POST sent
  → status reply received at its response_url (what the user waits for).
* **bare**: a fresh ``slack_bolt.App`` with the same signing secret and the same Starlette route,
  whose ``/kpi`` listener only calls ``ack()``; the same load. Measured: POST sent → HTTP response.
* **teams**: the same load as Microsoft Teams activities, on a freshly started app (warmed up
  before the load, as the Slack run's was): each user posts ``kpi status <contract>`` in its 1:1 chat to
  ``/api/messages`` with a Bot Framework JWT that the SDK validates (signed with a local key the
  app is pointed at, ``TEAMS_OPENID_URL``), and is answered when the reply activity, an Adaptive
  Card, reaches the activity's ``serviceUrl``: a recording connector (``_teams_load.py``). The
  bot's own outbound token comes from a local token endpoint (``TEAMS_TOKEN_URL``).
* **chart**: ``bot.handle("chart <contract> <kpi>")`` 30 times, serially and in-process, and
  separately ``render_kpi_chart`` alone on the same chart data.

The load runs in a separate process, so the client's work does not compete for the server's GIL;
both clocks are read there. Both recorders (Slack's response_url, Teams' connector) note the
arrival time, answer at once, as the real services do, and keep only the time and the text they
check: holding thousands of parsed replies made the load process's garbage collector pause the
simulated users, which was counted as the server's latency. Nothing is timed while the data is
built or loaded. When the status
p99 misses its goal (or with ``--profile``) a serial run of 100 status requests through
``bot.handle`` is timed by phase and profiled with cProfile, and the top costs are printed.

    .venv/bin/python benchmarks/status_latency.py            # or: make bench
    .venv/bin/python benchmarks/status_latency.py --strict   # also exit 1 when a goal is missed
    .venv/bin/python benchmarks/status_latency.py --scale    # 10,000 contracts on PostgreSQL

With ``--scale`` the store is 10,000 such contracts (about 4.7 million figures) in a PostgreSQL
schema of its own (``KPIBOT_BENCH_POSTGRES_URL``, default the test server), loaded with COPY as
``scale.py`` loads it and dropped at the end; the users then ask for any of the 10,000.

Last line: ``status_p99_ms=<a> bare_p99_ms=<b> ratio=<a/b> chart_median_ms=<c> teams_p99_ms=<t>``,
where ``a`` is the Slack reply p99, ``c`` the median of the whole ``chart`` command through
``bot.handle`` and ``t`` the Teams reply p99 (goal: at most 1.5 × ``a``).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import pstats
import queue
import re
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from multiprocessing import get_context
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import numpy as np
import uvicorn
from _common import (
    BenchmarkFailure,
    emit_result,
    heading,
    peak_rss_mb,
    percentile,
    say,
    timed,
)
from _synthetic import (
    KPIS,
    MISSING_RATE,
    PERIODS,
    contract_definitions,
    copy_load,
    figures_for,
)
from _teams_load import TeamsJob, TeamsSample, run_teams_load
from cryptography.hazmat.primitives import serialization
from slack_bolt import Ack, App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_sdk import WebClient
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as HttpRequest
from starlette.responses import Response
from starlette.routing import Route

from kpibot.app.server import create_app
from kpibot.app.wiring import build_bot, build_services
from kpibot.commands.bot import Bot
from kpibot.core.protocol import Request
from kpibot.core.services import Services
from kpibot.core.settings import Settings
from kpibot.engine.charts import PNG_SIGNATURE, render_kpi_chart
from kpibot.engine.model import Contract
from kpibot.engine.scorecard import Scorecard

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for tests.slack_mock, here and in the load process
from tests.slack_mock import SlackApiServer, signed_headers, slash_command_body  # noqa: E402
from tests.teams_mock.connector import BotConnector  # noqa: E402

SEED = 20240612
CONTRACTS = 500
SCALE_CONTRACTS = 10_000
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TODAY = "2020-06-01"
REQUESTS = 2_000
WARMUP = 50
CONCURRENCY = 20
CHART_RUNS = 30
PROFILE_RUNS = 100
REPLY_TIMEOUT_S = 60.0
SIGNING_SECRET = "bench-signing-secret"
USER = "U-BENCH"
CHANNEL = "C-BENCH"

GOAL_STATUS_P99_MS = 250
GOAL_RATIO = 3.0
GOAL_CHART_MEDIAN_MS = 200
GOAL_TEAMS_RATIO = 1.5
TEAMS_APP_ID = "00000000-0000-0000-0000-0000000b07b0"


def load_store(
    services: Services, contracts: list[Contract], rng: np.random.Generator
) -> tuple[int, float, float]:
    """Upsert every contract, then submit its figures (one submission per contract)."""
    services.db.upgrade()
    contracts_s, _ = timed(
        lambda: [services.contracts.upsert(c, actor="benchmark") for c in contracts]
    )
    stored = 0
    start = time.perf_counter()
    for c in contracts:
        rows = figures_for(c, rng)
        services.figures.submit(
            c.id,
            rows,
            actor="benchmark",
            source="import",
            idempotency_key=f"benchmark:{c.id}",
            note="synthetic history",
        )
        stored += len(rows)
    return stored, contracts_s, time.perf_counter() - start


def access_file(path: Path) -> Path:
    path.write_text(
        "grantor: the benchmark\n"
        "default_role: none\n"
        "users:\n"
        f"  {USER}:\n"
        "    role: commissioner\n"
        "    name: Benchmark commissioner\n"
        "    contracts: all\n",
        encoding="utf-8",
    )
    return path


# ------------------------------------------------------------------------------ the apps


def bare_app(api_url: str) -> Starlette:
    """A Bolt app configured like kpibot's, whose ``/kpi`` listener only acks, on the same route."""
    app = App(
        client=WebClient(token="xoxb-bench", base_url=api_url),
        signing_secret=SIGNING_SECRET,
        request_verification_enabled=True,
        process_before_response=True,
    )

    @app.command("/kpi")
    def ack_only(ack: Ack) -> None:
        ack()

    async def events(request: HttpRequest) -> Response:
        body = await request.body()
        response = await run_in_threadpool(app.dispatch, to_bolt_request(request, body))
        return to_starlette_response(response)

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"])])


@contextmanager
def served(app: Starlette, wait_ready: bool = False) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port in a thread; yield its base URL.

    With ``wait_ready``, first wait, as a load balancer would, until ``/readyz`` answers 200
    (kpibot's start-up warm-up is done), and say how long that took.
    """
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise BenchmarkFailure("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    if wait_ready:
        wait_until_ready(url)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


def wait_until_ready(url: str, timeout_s: float = 900.0) -> None:
    """Poll ``/readyz`` until it answers 200; print the warm-up's length and last progress."""
    started = time.perf_counter()
    last: Any = None
    with httpx.Client(base_url=url, trust_env=False, timeout=10) as http:
        while True:
            response = http.get("/readyz")
            if response.status_code == 200:
                break
            last = response.json()
            if time.perf_counter() - started > timeout_s:
                raise BenchmarkFailure(f"/readyz still 503 after {timeout_s:.0f} s: {last}")
            time.sleep(0.2)
    say(
        f"start-up warm-up: /readyz answered 200 after {time.perf_counter() - started:.1f} s "
        f"(not timed for the result; before that it answered 503, last {last})"
    )


class WarningTally(logging.Handler):
    """Counts warnings by their message template, instead of printing each one as it comes."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[str(record.msg).splitlines()[0][:120]] += 1


@contextmanager
def tallied_warnings(*names: str) -> Iterator[Counter[str]]:
    """While the block runs, the named loggers' warnings are counted, not printed."""
    tally = WarningTally()
    loggers = [logging.getLogger(name) for name in names]
    saved = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(tally)
        logger.propagate = False
    try:
        yield tally.counts
    finally:
        for logger, propagate in zip(loggers, saved, strict=True):
            logger.removeHandler(tally)
            logger.propagate = propagate


# ------------------------------------------------------------------------------ the load (own process)


OK_BODY = b'{"ok": true}'


class ArrivalRecorder(SlackApiServer):
    """The recording Slack stand-in, noting when each response_url post arrived and its text.

    Only the time and the text are kept: thousands of parsed replies held until the end would
    make this process's garbage collector pause the simulated users, and the pauses would be
    counted as the server's latency.
    """

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: dict[str, tuple[float, str]] = {}

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        if not handler.path.startswith("/response/"):
            super()._serve(handler)
            return
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        arrived = time.perf_counter()
        # Answer first, as Slack does: the bot's poster is not kept waiting on this bookkeeping.
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(OK_BODY)))
        handler.end_headers()
        handler.wfile.write(OK_BODY)
        text = str(json.loads(raw or b"{}").get("text"))
        with self._cond:
            self.arrivals[handler.path.removeprefix("/response/")] = (arrived, text)
            self._cond.notify_all()

    def wait_arrival(self, token: str, timeout: float) -> tuple[float, str] | None:
        with self._cond:
            self._cond.wait_for(lambda: token in self.arrivals, timeout)
            return self.arrivals.get(token)


@dataclass(frozen=True)
class Job:
    token: str
    text: str
    expect: str  # the reply must contain this (the contract's name); "" for ack-only apps


@dataclass(frozen=True)
class Sample:
    token: str
    text: str
    measured: bool
    ack_s: float
    status: int
    reply_s: float | None  # None for ack-only apps, or when no reply came
    reply_ok: bool  # the reply came and is the contract's status (always True for ack-only apps)

    @property
    def acked(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class LoadRun:
    samples: list[Sample]
    measured_wall_s: float


def run_load(
    url: str, warmup: list[Job], jobs: list[Job], concurrency: int, wait_reply: bool
) -> LoadRun:
    """Closed-loop load: ``concurrency`` users, each sending its next command once answered.

    With ``wait_reply`` a user is answered when the reply reaches its response_url, else when
    the HTTP response arrives. Runs in its own process; every clock is read here.
    """
    samples: list[Sample] = []
    lock = threading.Lock()

    # One HTTP client per user, made before any clock starts: making one costs tens of ms of CPU
    # (its TLS context), which would otherwise land on the first measured requests.
    with ArrivalRecorder() as receiver, ExitStack() as stack:
        clients = [
            stack.enter_context(
                httpx.Client(base_url=url, trust_env=False, timeout=REPLY_TIMEOUT_S)
            )
            for _ in range(concurrency)
        ]

        def user(todo: queue.SimpleQueue[Job], measured: bool, http: httpx.Client) -> None:
            while True:
                try:
                    job = todo.get_nowait()
                except queue.Empty:
                    return
                body = slash_command_body(
                    job.text,
                    user_id=USER,
                    channel_id=CHANNEL,
                    response_url=receiver.response_url(job.token),
                )
                headers = signed_headers(body, SIGNING_SECRET)
                sent = time.perf_counter()
                response = http.post("/slack/events", content=body, headers=headers)
                ack_s = time.perf_counter() - sent
                reply_s, ok = None, True
                if wait_reply:
                    # Wait even when the ack failed: Bolt starts the lazy listener anyway.
                    arrival = receiver.wait_arrival(job.token, REPLY_TIMEOUT_S)
                    ok = arrival is not None and job.expect in arrival[1]
                    reply_s = None if arrival is None else arrival[0] - sent
                with lock:
                    samples.append(
                        Sample(
                            job.token,
                            job.text,
                            measured,
                            ack_s,
                            response.status_code,
                            reply_s,
                            ok,
                        )
                    )

        def phase(batch: list[Job], measured: bool) -> float:
            todo: queue.SimpleQueue[Job] = queue.SimpleQueue()
            for job in batch:
                todo.put(job)
            users = [threading.Thread(target=user, args=(todo, measured, http)) for http in clients]
            start = time.perf_counter()
            for t in users:
                t.start()
            for t in users:
                t.join()
            return time.perf_counter() - start

        phase(warmup, measured=False)
        wall_s = phase(jobs, measured=True)
    return LoadRun(samples, wall_s)


# ------------------------------------------------------------------------------ reporting


def ms(seconds: float) -> float:
    return seconds * 1000


def spread(values_s: Sequence[float]) -> str:
    """'p50 12.3 · p95 45.6 · p99 78.9 · max 99.0 ms' for latencies in seconds."""
    if not values_s:
        return "no samples"
    parts = [f"p{q} {ms(percentile(values_s, q)):.1f}" for q in (50, 95, 99)]
    return " · ".join(parts) + f" · max {ms(max(values_s)):.1f} ms"


def check_run(name: str, run: LoadRun, expected: int) -> list[Sample]:
    """The measured samples; raise ``BenchmarkFailure`` if a reply was wrong or never came.

    A failed ack is not a failure of the run but a result: it is counted and reported.
    """
    measured = [s for s in run.samples if s.measured]
    bad = [s for s in run.samples if not s.reply_ok]
    if bad or len(measured) != expected:
        raise BenchmarkFailure(
            f"{name}: {len(bad)} missing or wrong repl(ies), {len(measured)} of {expected} "
            f"measured; e.g. {bad[0] if bad else None}"
        )
    return measured


def ack_failures(samples: Sequence[Sample]) -> str:
    failed = [s for s in samples if not s.acked]
    if not failed:
        return "every ack was HTTP 200"
    slowest = max(s.ack_s for s in failed)
    return (
        f"{len(failed):,} of {len(samples):,} acks FAILED (HTTP {failed[0].status} after up to "
        f"{slowest:.1f} s: Bolt gave up waiting for ack(); Slack would show the user an error)"
    )


def time_charts(
    bot: Bot, contracts: list[Contract], rng: np.random.Generator, runs: int
) -> tuple[list[float], list[float]]:
    """Seconds per ``chart`` command through ``bot.handle`` and per ``render_kpi_chart`` alone."""
    picks = [
        (contracts[int(rng.integers(len(contracts)))], f"K{int(rng.integers(KPIS)) + 1:02d}")
        for _ in range(runs + 2)
    ]
    command_s, render_s = [], []
    for i, (contract, code) in enumerate(picks):
        request = Request.from_text(
            f"chart {contract.id} {code}", user=USER, platform="slack", channel=CHANNEL
        )
        seconds, reply = timed(lambda request=request: bot.handle(request))
        if not (reply.chart or b"").startswith(PNG_SIGNATURE):
            raise BenchmarkFailure(
                f"chart {contract.id} {code} gave no PNG: {reply.title}: {reply.text}"
            )
        data = bot.services.scorecard(bot.services.contract(contract.id) or contract).chart_data(
            code
        )
        render, _ = timed(lambda data=data: render_kpi_chart(data))
        if i >= 2:  # the first renders load fonts and warm matplotlib's caches
            command_s.append(seconds)
            render_s.append(render)
    return command_s, render_s


def status_phases(bot: Bot, ids: list[str]) -> dict[str, list[float]]:
    """Serial ``status <contract>`` through ``bot.handle``, and the engine steps it repeats, timed apart."""
    services = bot.services
    phases: dict[str, list[float]] = {
        k: []
        for k in (
            "bot.handle(status)",
            "figures_frame (store read)",
            "Scorecard.build (evaluate)",
            "Scorecard.at",
        )
    }
    for cid in ids:
        request = Request.from_text(f"status {cid}", user=USER, platform="slack", channel=CHANNEL)
        phases["bot.handle(status)"].append(timed(lambda request=request: bot.handle(request))[0])
        contract = services.contract(cid)
        assert contract is not None
        read_s, frame = timed(lambda cid=cid: services.figures_frame([cid]))
        build_s, card = timed(
            lambda contract=contract, frame=frame: Scorecard.build(contract, frame)
        )
        period = card.latest_period()
        assert period is not None
        at_s, _ = timed(lambda card=card, period=period: card.at(period))
        phases["figures_frame (store read)"].append(read_s)
        phases["Scorecard.build (evaluate)"].append(build_s)
        phases["Scorecard.at"].append(at_s)
    return phases


def profile_status(bot: Bot, ids: list[str], top: int = 12) -> list[str]:
    """cProfile ``status <contract>`` over ``ids``: the costliest kpibot calls, own time by package."""
    requests = [
        Request.from_text(f"status {cid}", user=USER, platform="slack", channel=CHANNEL)
        for cid in ids
    ]
    profiler = cProfile.Profile()
    profiler.enable()
    for request in requests:
        bot.handle(request)
    profiler.disable()
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    n = len(requests)

    def where(key: tuple[str, int, str]) -> str:
        file, line, name = key
        if file == "~":  # a built-in, such as a sqlite3 cursor method
            return name
        file = re.sub(r"^.*/(site-packages|python3\.\d+)/", "", file)
        return f"{name} ({file.removeprefix(str(ROOT) + '/')}:{line})"

    def package(file: str) -> str:
        if file == "~":
            return "C built-ins"
        if "/kpibot/" in file:
            return "kpibot"
        found = re.search(r"/site-packages/([^/]+)", file)
        return found[1].removesuffix(".py") if found else "stdlib"

    total = sum(v[2] for v in stats.values())
    by_package: Counter[str] = Counter()
    for key, v in stats.items():
        by_package[package(key[0])] += v[2]
    lines = [
        f"cProfile, {n} serial requests; per request, inflated by the profiler: total "
        f"{ms(total / n):.1f} ms, own time by package: "
        + ", ".join(f"{name} {t / total:.0%}" for name, t in by_package.most_common(6)),
        "  cumulative time, kpibot functions:",
    ]
    ours = sorted(
        ((k, v) for k, v in stats.items() if "/kpibot/" in k[0]), key=lambda kv: -kv[1][3]
    )
    lines += [
        f"    {ms(v[3] / n):7.2f} ms {v[1] / n:7.1f} calls  {where(k)}" for k, v in ours[:top]
    ]
    lines.append("  own time, any function:")
    flat = sorted(stats.items(), key=lambda kv: -kv[1][2])
    lines += [
        f"    {ms(v[2] / n):7.2f} ms {v[1] / n:7.1f} calls  {where(k)}" for k, v in flat[:top]
    ]
    return lines


# ------------------------------------------------------------------------------ main


def prepare(settings: Settings, rng: np.random.Generator, count: int) -> list[Contract]:
    """Build, store and load the contracts and their figures; nothing here is timed for the result."""
    heading(
        f"data: {count} contracts x {KPIS} KPIs x {len(PERIODS)} quarters into SQLite (WAL), "
        "not timed"
    )
    build_s, contracts = timed(lambda: contract_definitions(rng, count))
    loader = build_services(settings)
    stored, contracts_s, figures_s = load_store(loader, contracts, rng)
    loader.db.dispose()
    say(
        f"{stored:,} figures ({MISSING_RATE:.0%} of returns left out); contracts built and compiled "
        f"in {build_s:.1f} s, stored in {contracts_s:.1f} s; figures stored in {figures_s:.1f} s; "
        f"KPIBOT_TODAY={TODAY}"
    )
    return contracts


class Named(NamedTuple):
    """A contract as the load needs it: its id and the name its status reply shows."""

    id: str
    name: str


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A schema of its own on the benchmark PostgreSQL server, migrated; dropped at the end."""
    import psycopg
    from sqlalchemy.engine import make_url

    from kpibot.store.database import Database, normalise_url

    url = normalise_url(os.environ.get("KPIBOT_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    schema = f"kpibot_latency_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(plain, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            scoped = url.update_query_dict({"options": f"-csearch_path={schema}"})
            db = Database(scoped)
            db.upgrade()
            db.dispose()
            yield scoped.render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def prepare_postgres(url: str, rng: np.random.Generator, count: int) -> list[Named]:
    """``count`` contracts and their figures into PostgreSQL with COPY; not timed."""
    import psycopg
    from sqlalchemy.engine import make_url

    heading(
        f"data: {count:,} contracts x {KPIS} KPIs x {len(PERIODS)} quarters into PostgreSQL "
        "with COPY, not timed"
    )
    parsed = make_url(url)
    options = parsed.query.get("options")
    plain = parsed.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    with psycopg.connect(plain, options=str(options)) as connection:
        seconds, stored = timed(lambda: copy_load(connection, count, rng))
    say(f"{stored:,} figures loaded in {seconds:.1f} s; KPIBOT_TODAY={TODAY}")
    return [Named(f"bench-{i:03d}", f"Benchmark contract {i:03d}") for i in range(1, count + 1)]


def measure_status(
    client: ProcessPoolExecutor, url: str, jobs: list[Job], concurrency: int
) -> list[Sample]:
    """The status load against the served kpibot app; prints acks, replies and throughput."""
    heading(
        f"/kpi status <contract>: {concurrency} users, each waits for its reply before its next "
        f"command; {WARMUP} warm-up + {len(jobs) - WARMUP:,} measured"
    )
    run = client.submit(run_load, url, jobs[:WARMUP], jobs[WARMUP:], concurrency, True).result()
    status = check_run("status", run, len(jobs) - WARMUP)
    seen = {j.text for j in jobs[:WARMUP]}
    first, repeat = [], []
    for s in sorted(status, key=lambda s: s.token):  # tokens number the commands in send order
        (repeat if s.text in seen else first).append(s.reply_s or 0.0)
        seen.add(s.text)
    rate = len(status) / run.measured_wall_s
    say(f"ack   (signed POST -> HTTP response): {spread([s.ack_s for s in status])}")
    say(f"      {ack_failures(status)}")
    say(f"reply (signed POST -> status at its response_url): {spread(replies_s(status))}")
    say(f"      first status of a contract since start ({len(first):,}): {spread(first)}")
    say(f"      a contract asked for before ({len(repeat):,}): {spread(repeat)}")
    say(
        f"throughput {rate:.1f} replies/s over {run.measured_wall_s:.1f} s; with {concurrency} "
        f"users waiting, the mean reply is about {concurrency}/throughput = "
        f"{ms(concurrency / rate):.0f} ms (Little's law)"
    )
    return status


def measure_bare(
    client: ProcessPoolExecutor, url: str, jobs: list[Job], concurrency: int
) -> list[Sample]:
    """The same load against a Bolt app that only acks; prints latency and throughput."""
    heading(
        f"bare Bolt app (/kpi only acks): {concurrency} users, {WARMUP} warm-up + "
        f"{len(jobs) - WARMUP:,} measured"
    )
    run = client.submit(run_load, url, jobs[:WARMUP], jobs[WARMUP:], concurrency, False).result()
    bare = check_run("bare", run, len(jobs) - WARMUP)
    say(f"signed POST -> HTTP response: {spread([s.ack_s for s in bare])}; {ack_failures(bare)}")
    say(
        f"throughput {len(bare) / run.measured_wall_s:.1f} requests/s over {run.measured_wall_s:.1f} s"
    )
    return bare


def measure_teams(
    client: ProcessPoolExecutor,
    settings: Settings,
    connector: BotConnector,
    jobs: list[Job],
    concurrency: int,
) -> list[TeamsSample]:
    """The status load as Teams activities against a freshly started app; prints its replies."""
    heading(
        f"Teams: kpi status <contract> in {concurrency} users' 1:1 chats, signed activities to "
        f"/api/messages, on a fresh app; {WARMUP} warm-up + {len(jobs) - WARMUP:,} measured"
    )
    teams_jobs = [TeamsJob(f"t{j.token[1:]}", f"kpi {j.text}", j.expect) for j in jobs]
    key_pem = connector.issuer.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    bot = build_bot(settings)  # no caches, as the Slack run's bot had at its start
    with served(create_app(settings, bot, settle_heap=True), wait_ready=True) as url:
        samples, wall_s = client.submit(
            run_teams_load,
            url,
            key_pem,
            connector.issuer.kid,
            connector.app_id,
            USER,
            teams_jobs[:WARMUP],
            teams_jobs[WARMUP:],
            concurrency,
        ).result()
    bot.services.db.dispose()
    measured = [s for s in samples if s.measured]
    bad = [s for s in samples if not s.reply_ok or s.status != 200]
    if bad or len(measured) != len(jobs) - WARMUP:
        raise BenchmarkFailure(
            f"teams: {len(bad)} failed or wrong repl(ies), {len(measured)} measured; "
            f"e.g. {bad[0] if bad else None}"
        )
    say(
        f"reply (signed activity POST -> card at the connector): {spread(teams_replies_s(measured))}"
    )
    say(f"throughput {len(measured) / wall_s:.1f} replies/s over {wall_s:.1f} s")
    return measured


def teams_replies_s(samples: Sequence[TeamsSample]) -> list[float]:
    return [s.reply_s for s in samples if s.reply_s is not None]


def replies_s(samples: Sequence[Sample]) -> list[float]:
    return [s.reply_s for s in samples if s.reply_s is not None]


def explain_status(bot: Bot, ids: list[str]) -> None:
    """Time status serially by phase and profile it, to show where its time goes."""
    heading(
        f"where status time goes: {len(ids)} serial status requests through bot.handle "
        "(no HTTP, no concurrency, caches warm)"
    )
    for name, values in status_phases(bot, ids).items():
        say(f"{name}: {spread(values)}")
    for line in profile_status(bot, ids):
        say(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--profile", action="store_true", help="profile status even if on goal")
    parser.add_argument(
        "--scale",
        action="store_true",
        help=f"{SCALE_CONTRACTS:,} contracts on PostgreSQL (loaded with COPY into a schema of its "
        "own, dropped at the end) instead of 500 on SQLite",
    )
    parser.add_argument("--contracts", type=int, default=None, help="how many contracts")
    parser.add_argument("--requests", type=int, default=REQUESTS, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(SEED)
    say(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")

    with (
        ExitStack() as stack,
        tempfile.TemporaryDirectory(prefix="kpibot-bench-") as tmp,
        SlackApiServer() as slack,
        BotConnector(Path(tmp), app_id=TEAMS_APP_ID) as connector,
    ):
        os.environ.update(
            {
                "KPIBOT_DATABASE_URL": f"sqlite:///{Path(tmp) / 'kpibot.db'}",
                "KPIBOT_ACCESS_FILE": str(access_file(Path(tmp) / "access.yaml")),
                "KPIBOT_TODAY": TODAY,
                "KPIBOT_SECRET_KEY": "bench-secret-key",
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_BOT_TOKEN": "xoxb-bench",
                "SLACK_API_URL": slack.api_url,
                "TEAMS_APP_ID": TEAMS_APP_ID,
                "TEAMS_APP_PASSWORD": "test-app-password",
                "TEAMS_OPENID_URL": connector.openid_url,
                "TEAMS_TOKEN_URL": connector.token_url,
            }
        )
        os.environ.pop("SLACK_APP_TOKEN", None)
        contracts: list[Any]
        if args.scale:
            url = stack.enter_context(postgres_schema())
            os.environ["KPIBOT_DATABASE_URL"] = url
            contracts = prepare_postgres(url, rng, args.contracts or SCALE_CONTRACTS)
            settings = Settings()
        else:
            settings = Settings()
            contracts = prepare(settings, rng, args.contracts or CONTRACTS)

        # A fresh bot, as a newly started server has: no contract or compiled-terms caches.
        bot = build_bot(settings)
        picks = [
            contracts[int(i)] for i in rng.integers(len(contracts), size=WARMUP + args.requests)
        ]
        status_jobs = [Job(f"s{i:05d}", f"status {c.id}", c.name) for i, c in enumerate(picks)]
        bare_jobs = [Job(f"b{i:05d}", f"status {c.id}", "") for i, c in enumerate(picks)]
        with (
            tallied_warnings("kpibot", "slack_bolt", "microsoft_teams") as warnings,
            ProcessPoolExecutor(1, mp_context=get_context("spawn")) as client,
            served(create_app(settings, bot, settle_heap=True), wait_ready=True) as status_url,
            served(bare_app(slack.api_url)) as bare_url,
        ):
            status = measure_status(client, status_url, status_jobs, args.concurrency)
            bare = measure_bare(client, bare_url, bare_jobs, args.concurrency)
            teams = measure_teams(client, settings, connector, status_jobs, args.concurrency)
        if warnings:
            say(
                "warnings logged while serving (counted, not printed): "
                + "; ".join(f"{n:,}x {message!r}" for message, n in warnings.most_common(5))
            )

        heading(f"chart <contract> <kpi>: {CHART_RUNS} runs, serial, in-process (after 2 warm-up)")
        command_s, render_s = time_charts(bot, contracts, rng, CHART_RUNS)
        say(f"bot.handle(chart): {spread(command_s)}")
        say(f"render_kpi_chart alone: {spread(render_s)}")

        status_p99 = ms(percentile(replies_s(status), 99))
        bare_p99 = ms(percentile([s.ack_s for s in bare], 99))
        ratio = status_p99 / bare_p99
        chart_median = ms(percentile(command_s, 50))
        teams_p99 = ms(percentile(teams_replies_s(teams), 99))
        if args.profile or status_p99 > GOAL_STATUS_P99_MS:
            explain_status(
                bot, [contracts[int(i)].id for i in rng.integers(len(contracts), size=PROFILE_RUNS)]
            )
        bot.services.db.dispose()

    goals = {
        f"status p99 <= {GOAL_STATUS_P99_MS} ms": status_p99 <= GOAL_STATUS_P99_MS,
        f"status p99 <= {GOAL_RATIO:.0f}x bare p99": ratio <= GOAL_RATIO,
        f"chart median <= {GOAL_CHART_MEDIAN_MS} ms": chart_median <= GOAL_CHART_MEDIAN_MS,
        "every status acked": all(s.acked for s in status),
        f"Teams p99 <= {GOAL_TEAMS_RATIO}x Slack p99": teams_p99 <= GOAL_TEAMS_RATIO * status_p99,
    }
    heading("goals")
    say(
        "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in goals.items())
        + f" (load average {os.getloadavg()[0]:.1f} at the end; peak RSS {peak_rss_mb():,} MB)"
    )
    emit_result(
        status_p99_ms=round(status_p99),
        bare_p99_ms=round(bare_p99),
        ratio=f"{ratio:.2f}",
        chart_median_ms=round(chart_median),
        teams_p99_ms=round(teams_p99),
    )
    return 1 if args.strict and not all(goals.values()) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkFailure as exc:
        print(f"status latency benchmark FAILED: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
