"""The scheduler service: APScheduler keeps time, our tick and dispatcher do the work.

Like python-telegram-bot's ``JobQueue``, APScheduler sits behind a small interface of our own:
two interval jobs, never one job per reminder. The tick job runs only on the replica holding the
``LeaderLock``; the dispatch job runs on every replica (claims keep it safe). Both jobs are
``max_instances=1`` and ``coalesce=True``, so a slow run is never stacked or replayed, and any
job error goes to one logging listener. APScheduler 3 cannot share its job store between
processes, so it stores nothing: all state (watermark, outbox) is in our database.

This module is the scheduler's edge: it is the one place that reads the clock, through
``clock`` (``Services.now`` by default), and hands ``now`` to the rest.

>>> service = SchedulerService(services, policy, {"console": ConsoleDeliverer()})
... # doctest: +SKIP
>>> service.start()  # doctest: +SKIP
>>> service.shutdown()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_ERROR, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from kpibot.core.access import AccessPolicy
from kpibot.core.services import IncidentsProvider, Services
from kpibot.engine.calendar import LONDON
from kpibot.scheduler.delivery import Deliverer, TransactionalDeliverer
from kpibot.scheduler.dispatch import Composer, Dispatcher, default_worker, plain_composer
from kpibot.scheduler.leader import LeaderLock
from kpibot.scheduler.tick import FROM_SERVICES, FromServices, ReminderTick
from kpibot.store.outbox import OutboxRepository

log = logging.getLogger(__name__)

TICK_JOB = "kpibot-tick"
DISPATCH_JOB = "kpibot-dispatch"


class SchedulerService:
    """The reminder tick (leader only) and the dispatcher, every few seconds, in one thread pool.

    >>> service = SchedulerService(services, policy, deliverers, tick_seconds=60,
    ...                            dispatch_seconds=5)  # doctest: +SKIP
    """

    def __init__(
        self,
        services: Services,
        policy: AccessPolicy | None,
        deliverers: Mapping[str, Deliverer | TransactionalDeliverer],
        tick_seconds: float = 60,
        dispatch_seconds: float = 5,
        timezone: ZoneInfo = LONDON,
        *,
        clock: Callable[[], datetime] | None = None,
        composer: Composer | None = None,
        incidents_provider: IncidentsProvider | None | FromServices = FROM_SERVICES,
        worker: str | None = None,
        tick: ReminderTick | None = None,
        leader: LeaderLock | None = None,
    ) -> None:
        self.services = services
        self.clock = clock or services.now
        self.tick_seconds = tick_seconds
        self.dispatch_seconds = dispatch_seconds
        self.timezone = timezone
        outbox = OutboxRepository(services.db)
        self.tick = tick or ReminderTick(services, policy, incidents_provider, outbox=outbox)
        self.leader = leader or LeaderLock(services.db)
        self.dispatcher = Dispatcher(
            outbox,
            deliverers,
            composer or plain_composer,
            worker=worker or default_worker(),
        )
        self._scheduler: BackgroundScheduler | None = None

    @property
    def running(self) -> bool:
        return self._scheduler is not None and self._scheduler.running

    def start(self) -> None:
        """Start both jobs in a background thread; the first runs happen at once."""
        if self.running:
            return
        scheduler = BackgroundScheduler(
            timezone=self.timezone,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        scheduler.add_listener(self._on_job_error, EVENT_JOB_ERROR)
        first = datetime.now(self.timezone)
        for job_id, func, seconds in (
            (TICK_JOB, self.run_tick, self.tick_seconds),
            (DISPATCH_JOB, self.run_dispatch, self.dispatch_seconds),
        ):
            scheduler.add_job(
                func,
                IntervalTrigger(seconds=seconds, timezone=self.timezone),
                id=job_id,
                name=job_id,
                next_run_time=first,
            )
        scheduler.start()
        self._scheduler = scheduler
        log.info(
            "scheduler started: tick every %gs (leader only), dispatch every %gs as %s",
            self.tick_seconds,
            self.dispatch_seconds,
            self.dispatcher.worker,
        )

    def shutdown(self, wait: bool = True) -> None:
        """Stop the jobs (letting a running one finish when ``wait``) and give up leadership."""
        if self._scheduler is not None:
            if self._scheduler.running:
                self._scheduler.shutdown(wait=wait)
            self._scheduler = None
        self.leader.release()

    def run_tick(self) -> int:
        """One tick if this replica leads; returns the outbox rows written."""
        if not self.leader.acquire():
            return 0
        return self.tick.tick(self.clock())

    def run_dispatch(self) -> int:
        """One dispatch batch; returns the messages sent."""
        return self.dispatcher.run_once(self.clock())

    def run_once(self) -> tuple[int, int]:
        """One tick (if leader) and dispatch until nothing is due; for ``scheduler run --once``."""
        written = self.run_tick()
        return written, self.dispatcher.drain(self.clock())

    def _on_job_error(self, event: JobExecutionEvent) -> None:
        log.error(
            "scheduler job %s failed: %r\n%s",
            event.job_id,
            event.exception,
            event.traceback or "",
        )
