"""The HTTP server: one ASGI app with health checks, metrics and each chat platform's routes.

``GET /healthz`` says the process is up (no database call). ``GET /readyz`` says it can serve:
the database answers within ``KPIBOT_READY_TIMEOUT`` (checked on a thread of its own, so a dead
or hanging database gives 503 in under a second and cannot starve command handling; see
:mod:`kpibot.app.health`), every chat platform was reached at start-up (retried in the
background until it is), and, unless ``KPIBOT_WARM_CACHES=false``, the start-up warm-up
(:mod:`kpibot.app.warmup`) has built every contract's status; until then it answers 503 saying
why. ``GET /metrics`` serves the Prometheus metrics (:mod:`kpibot.core.metrics`). Platform routes
come from ``PLATFORM_ROUTES``: Slack posts to ``/slack/events``; Teams to ``/api/messages``.

``serve`` runs it all in one process, in HTTP mode or Slack Socket Mode alike: the app under
uvicorn, the scheduler, the warm-up and the start-up connections. SIGTERM or SIGINT stops taking
work (uvicorn closes the listener and lets requests in flight finish), stops the scheduler (its
claimed outbox rows are handed back), closes the database pools, and exits 0 within
``KPIBOT_SHUTDOWN_TIMEOUT`` plus a second or two.

>>> app = create_app(Settings(database_url="sqlite://"))  # doctest: +SKIP
>>> serve(Settings(), socket_mode=False)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from kpibot.app.health import Connection, Connections, DatabaseProbe
from kpibot.app.limits import BodyLimit
from kpibot.app.warmup import Warmup
from kpibot.app.wiring import build_bot, scheduler_for
from kpibot.chat.slack import SocketMode, slack_reachable, slack_routes
from kpibot.chat.teams import teams_reachable, teams_routes
from kpibot.commands.bot import Bot
from kpibot.core import metrics
from kpibot.core.settings import Settings

log = logging.getLogger("kpibot.server")

RouteFactory = Callable[[Settings, Bot], list[BaseRoute]]

# How KPIBOT_SHUTDOWN_TIMEOUT is shared at shutdown: requests in flight, then the scheduler's job;
# the rest (closing connections and pools) takes about a second (kpibot.cli.base.exit_by caps it).
REQUESTS_SHARE = 0.4
SCHEDULER_SHARE = 0.4

# Each chat platform contributes its routes; a platform without settings contributes none.
PLATFORM_ROUTES: tuple[RouteFactory, ...] = (slack_routes, teams_routes)


class Background(Protocol):
    """Something that runs beside the app from start-up to shutdown (the scheduler, say)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def create_app(
    settings: Settings,
    bot: Bot | None = None,
    platforms: Sequence[RouteFactory] = PLATFORM_ROUTES,
    *,
    settle_heap: bool = False,
    connections: Connections | None = None,
    background: Sequence[Background] = (),
) -> Starlette:
    """The ASGI app: health checks, metrics and the routes of every configured chat platform.

    ``settle_heap`` (``kpibot serve`` sets it) exempts the warmed caches from the garbage
    collector once the warm-up is done; see :func:`kpibot.app.warmup.settle_heap`.
    ``connections`` are the chat platforms to reach at start-up (``/readyz`` waits for them);
    ``background`` runs from the app's start-up to its shutdown, stopped in reverse order.
    """
    bot = bot or build_bot(settings)
    probe = DatabaseProbe(bot.services.db, settings.ready_timeout)
    warmup = Warmup(bot.services, settle=settle_heap) if settings.warm_caches else None
    connections = connections or Connections()

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        answer: dict[str, Any] = {"status": "ok"}
        if not await probe.answers():
            answer = {"status": "unavailable", "reason": "database"}
        elif connections.waiting_for:
            answer = {"status": "unavailable", "reason": ", ".join(connections.waiting_for)}
        elif warmup is not None and not warmup.ready:
            answer = warmup.progress()
        metrics.READY.set(1 if answer["status"] == "ok" else 0)
        return JSONResponse(answer, status_code=200 if answer["status"] == "ok" else 503)

    async def prometheus(request: Request) -> Response:
        if warmup is not None:
            metrics.WARMUP.labels(state="warmed").set(warmup.warmed)
            metrics.WARMUP.labels(state="total").set(warmup.contracts)
        return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started: list[Background] = []
        runners: list[Background] = [connections, *([warmup] if warmup else []), *background]
        for runner in runners:
            runner.start()
            started.append(runner)
        try:
            yield
        finally:
            for runner in reversed(started):
                try:
                    runner.stop()
                except Exception:
                    log.exception("shutdown: stopping %s failed", type(runner).__name__)
            probe.close()

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]
    for platform in platforms:
        routes.extend(platform(settings, bot))
    # Bodies are capped before any route reads them (kpibot.app.limits).
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(BodyLimit)])


def platform_connections(settings: Settings, bot: Bot, socket_mode: bool) -> Connections:
    """The chat platforms ``serve`` reaches at start-up: Slack (HTTP or Socket Mode), Teams."""
    items: list[Connection] = []
    if socket_mode:
        # Built here, so a missing app token fails start-up; connected in the background.
        slack = SocketMode(settings, bot)
        items.append(Connection("slack", slack.connect, slack.close))
    elif settings.slack_signing_secret is not None and settings.slack_bot_token is not None:
        items.append(Connection("slack", lambda: slack_reachable(settings)))
    if settings.teams_app_id and settings.teams_app_password and not settings.teams_auth_disabled:
        items.append(Connection("teams", lambda: teams_reachable(settings)))
    return Connections(items)


class _Scheduler:
    """The reminder scheduler as a ``Background``: stopped with the shutdown deadline."""

    def __init__(self, bot: Bot, settings: Settings) -> None:
        self.settings = settings
        self.service = scheduler_for(bot.services, bot.policy, settings)

    def start(self) -> None:
        self.service.start()

    def stop(self) -> None:
        self.service.shutdown(wait=True, timeout=self.settings.shutdown_timeout * SCHEDULER_SHARE)


def serve(settings: Settings, socket_mode: bool = False) -> None:
    """Run the bot until SIGTERM or SIGINT: HTTP app, scheduler, warm-up, Slack and Teams.

    In Socket Mode Slack comes over its WebSocket instead of ``/slack/events``; everything else
    (``/healthz``, ``/readyz``, ``/metrics``, Teams, the scheduler, the warm-up) is the same.
    """
    # Loaded here, not at the top: only `kpibot serve` pays for the HTTP server.
    import uvicorn

    bot = build_bot(settings)
    platforms: Sequence[RouteFactory] = (teams_routes,) if socket_mode else PLATFORM_ROUTES
    background: list[Background] = []
    if settings.run_scheduler:
        background.append(_Scheduler(bot, settings))
    app = create_app(
        settings,
        bot,
        platforms,
        settle_heap=True,
        connections=platform_connections(settings, bot, socket_mode),
        background=background,
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # kpibot.core.logs configured the loggers (text or JSON)
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=max(round(settings.shutdown_timeout * REQUESTS_SHARE), 1),
    )
    server = _Server(config)
    try:
        with _stop_on_signals(server):
            server.run()
    finally:
        bot.services.db.dispose()
    log.info("kpibot serve stopped")


class _Server:
    """uvicorn's server, without its habit of re-raising the stop signal once it has stopped.

    uvicorn (0.29 and later) re-raises SIGTERM after a graceful shutdown, so the process would
    end with 143 instead of 0; kpibot handles the signals itself (``_stop_on_signals``).
    """

    def __init__(self, config: Any) -> None:
        import uvicorn

        class Quiet(uvicorn.Server):
            @contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        self.server = Quiet(config)

    def run(self) -> None:
        self.server.run()

    def stop(self, force: bool = False) -> None:
        self.server.should_exit = True
        if force:
            self.server.force_exit = True


@contextmanager
def _stop_on_signals(server: _Server) -> Iterator[None]:
    """SIGTERM or SIGINT: stop taking work and shut down; a second SIGINT: stop at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        seen.append(signum)
        log.info("received %s: shutting down", signal.Signals(signum).name)
        server.stop(force=len(seen) > 1 and signum == signal.SIGINT)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
