"""The scheduler service: APScheduler keeps time, our tick and dispatcher do the work.

Like python-telegram-bot's ``JobQueue``, APScheduler sits behind a small interface of our own:
two interval jobs, never one job per reminder. The tick job runs only on the replica holding the
``LeaderLock``; the dispatch job runs on every replica (claims keep it safe). Both jobs are
``max_instances=1`` and ``coalesce=True``, so a slow run is never stacked or replayed, and any
job error goes to one logging listener. APScheduler 3 cannot share its job store between
processes, so it stores nothing: all state (watermark, outbox) is in our database.

This module is the scheduler's edge: it is the one place that reads the clock, through
``clock`` (``Services.now`` by default), and hands ``now`` to the rest.

Shutdown (``shutdown``) stops both jobs, lets a delivery in flight finish (the dispatcher hands
the rest of its batch back), waits at most ``timeout`` seconds for a running job, then hands back
any row this process still holds (``OutboxRepository.release``) and gives up leadership: another
replica, or this one restarted, picks the rows up at once instead of after the claim's lease.

>>> service = SchedulerService(services, policy, {"console": ConsoleDeliverer()})
... # doctest: +SKIP
>>> service.start()  # doctest: +SKIP
>>> service.shutdown()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_ERROR, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from kpibot.core import metrics
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
        self.outbox = outbox
        self.dispatcher = Dispatcher(
            outbox,
            deliverers,
            composer or plain_composer,
            worker=worker or default_worker(),
        )
        self._scheduler: BackgroundScheduler | None = None
        self._jobs = 0  # jobs running now
        self._idle = threading.Condition()

    @contextmanager
    def _job(self) -> Iterator[None]:
        with self._idle:
            self._jobs += 1
        try:
            yield
        finally:
            with self._idle:
                self._jobs -= 1
                self._idle.notify_all()

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

    def shutdown(self, wait: bool = True, timeout: float = 8.0) -> int:
        """Stop the jobs, hand back this process's claims and give up leadership.

        With ``wait``, a running job gets up to ``timeout`` seconds to finish (a dispatch batch
        stops after the message in flight). Returns how many claimed rows were handed back.
        """
        self.dispatcher.stop()
        if self._scheduler is not None:
            if self._scheduler.running:
                self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if wait:
            deadline = time.monotonic() + timeout
            with self._idle:
                while self._jobs and time.monotonic() < deadline:
                    self._idle.wait(deadline - time.monotonic())
                if self._jobs:
                    log.warning("scheduler: a job was still running at shutdown; leaving it")
        released = 0
        try:
            released = self.outbox.release(self.dispatcher.worker, self.clock())
        except Exception as error:  # the database may be what is failing; the lease covers it
            log.warning("scheduler: could not hand back claims at shutdown (%s)", error)
        if released:
            log.info("scheduler: handed back %d claimed outbox row(s)", released)
        try:
            self.leader.release()
        except Exception as error:
            log.warning("scheduler: could not release the leader lock (%s)", error)
        return released

    def run_tick(self) -> int:
        """One tick if this replica leads; returns the outbox rows written."""
        with self._job():
            if self.dispatcher.stopping or not self.leader.acquire():
                return 0
            started = time.perf_counter()
            written = self.tick.tick(self.clock())
            metrics.TICK_SECONDS.observe(time.perf_counter() - started)
            metrics.LAST_TICK.set_to_current_time()
            return written

    def run_dispatch(self) -> int:
        """One dispatch batch; returns the messages sent. Refreshes the outbox gauges after."""
        with self._job():
            if self.dispatcher.stopping:
                return 0
            now = self.clock()
            sent = self.dispatcher.run_once(now)
            counts, oldest = self.outbox.backlog()
            for status, n in counts.items():
                metrics.OUTBOX_BACKLOG.labels(status=status).set(n)
            age = 0.0 if oldest is None else (now - oldest).total_seconds()
            metrics.OUTBOX_OLDEST_DUE.set(max(age, 0.0))
            return sent

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
