"""The HTTP server: one ASGI app with health checks and each chat platform's routes.

``GET /healthz`` says the process is up (no database call); ``GET /readyz`` says it can serve,
which needs the database to answer and, unless ``KPIBOT_WARM_CACHES=false``, the start-up warm-up
(:mod:`kpibot.app.warmup`) to have built every contract's status; until then it answers 503 with the
progress. Platform routes come from ``PLATFORM_ROUTES``: Slack posts to
``/slack/events``; a Teams adapter adds its factory there for ``POST /api/messages``.

>>> app = create_app(Settings(database_url="sqlite://"))  # doctest: +SKIP
>>> serve(Settings(), socket_mode=False)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from kpibot.app.limits import BodyLimit
from kpibot.app.warmup import Warmup
from kpibot.app.wiring import build_bot, scheduler_for
from kpibot.chat.slack import run_socket_mode, slack_routes
from kpibot.chat.teams import teams_routes
from kpibot.commands.bot import Bot
from kpibot.core.settings import Settings
from kpibot.store.database import Database

log = logging.getLogger("kpibot.server")

RouteFactory = Callable[[Settings, Bot], list[BaseRoute]]

# Each chat platform contributes its routes; a platform without settings contributes none.
PLATFORM_ROUTES: tuple[RouteFactory, ...] = (slack_routes, teams_routes)


def create_app(
    settings: Settings,
    bot: Bot | None = None,
    platforms: tuple[RouteFactory, ...] = PLATFORM_ROUTES,
    *,
    settle_heap: bool = False,
) -> Starlette:
    """The ASGI app: health checks plus the routes of every configured chat platform.

    ``settle_heap`` (``kpibot serve`` sets it) exempts the warmed caches from the garbage
    collector once the warm-up is done; see :func:`kpibot.app.warmup.settle_heap`.
    """
    bot = bot or build_bot(settings)
    db = bot.services.db
    warmup = Warmup(bot.services, settle=settle_heap) if settings.warm_caches else None

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        if not await run_in_threadpool(database_answers, db):
            return JSONResponse({"status": "unavailable", "reason": "database"}, status_code=503)
        if warmup is not None and not warmup.ready:
            return JSONResponse(warmup.progress(), status_code=503)
        return JSONResponse({"status": "ok"})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if warmup is not None:
            warmup.start()
        try:
            yield
        finally:
            if warmup is not None:
                warmup.stop()

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    for platform in platforms:
        routes.extend(platform(settings, bot))
    # Bodies are capped before any route reads them (kpibot.app.limits).
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(BodyLimit)])


def database_answers(db: Database) -> bool:
    """Whether the database answers ``SELECT 1``; the reason for a failure goes to the log only."""
    try:
        with db.session(read_only=True) as session:
            session.execute(text("SELECT 1"))
        return True
    except Exception as exc:
        log.warning("readiness: database did not answer (%s)", type(exc).__name__)
        return False


def serve(settings: Settings, socket_mode: bool = False) -> None:
    """Run the bot: Slack over Socket Mode, or the HTTP app under uvicorn on settings.host:port."""
    if socket_mode:
        run_socket_mode(settings, build_bot(settings))
        return
    # Loaded here, not at the top: only `kpibot serve` pays for the HTTP server.
    import uvicorn

    bot = build_bot(settings)
    scheduler = None
    if settings.run_scheduler:
        scheduler = scheduler_for(bot.services, bot.policy, settings)
        scheduler.start()
    try:
        uvicorn.run(
            create_app(settings, bot, settle_heap=True),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
        )
    finally:
        if scheduler is not None:
            scheduler.shutdown()
