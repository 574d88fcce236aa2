"""What ``/readyz`` asks: does the database answer, are the chat platforms connected, is it warm?

``DatabaseProbe`` checks the database on one thread of its own, with a short deadline: ``/readyz``
answers 503 within ``ready_timeout`` (under a second by default) when the database is down or
hangs, and a hung check is never stacked with another, so readiness can neither starve command
handling of threads or connections nor pile up behind a dead database.

``Connections`` reaches each chat platform once at start-up (Slack's ``auth.test``, the Socket
Mode connection, the Teams bot token), on a background thread, retrying with backoff: a platform
that is unreachable at start-up keeps ``/readyz`` at 503 with its name instead of crashing
``kpibot serve``. Once connected, a platform's own later outages do not make the replica unready
(every replica would be pulled out of the load balancer at once for something none can fix).

>>> probe = DatabaseProbe(db, timeout=0.8)  # doctest: +SKIP
>>> await probe.answers()  # doctest: +SKIP
True
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from kpibot.core import metrics
from kpibot.store.database import Database

log = logging.getLogger("kpibot.health")

# Backoff between start-up connection attempts to a chat platform, in seconds.
FIRST_RETRY_S = 1.0
MAX_RETRY_S = 30.0


class DatabaseProbe:
    """``SELECT 1`` on a thread of its own, answered within ``timeout`` or taken as a failure."""

    def __init__(self, db: Database, timeout: float) -> None:
        self.db = db
        self.timeout = timeout
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="kpibot-readiness")
        self._check: Future[bool] | None = None
        self._lock = threading.Lock()

    def _ping(self) -> bool:
        try:
            self.db.ping(self.timeout)
            return True
        except Exception as error:
            log.warning("readiness: the database did not answer (%s)", type(error).__name__)
            metrics.DATABASE_ERRORS.labels(where="readiness").inc()
            return False

    def _current(self) -> Future[bool]:
        # One check at a time: while one is still running (a hung database), wait on it.
        with self._lock:
            if self._check is None or self._check.done():
                self._check = self._thread.submit(self._ping)
            return self._check

    async def answers(self) -> bool:
        """True if the database answered within ``timeout``."""
        check = asyncio.wrap_future(self._current())
        try:
            return await asyncio.wait_for(asyncio.shield(check), self.timeout)
        except TimeoutError:
            metrics.DATABASE_ERRORS.labels(where="readiness").inc()
            return False

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)


@dataclass
class Connection:
    """One chat platform to reach at start-up: ``connect`` raises until it can."""

    name: str
    connect: Callable[[], None]
    close: Callable[[], None] = lambda: None
    connected: bool = False
    attempts: int = 0
    last_error: str | None = None


@dataclass
class Connections:
    """Connects every platform in the background, retrying with backoff until each is up."""

    items: list[Connection] = field(default_factory=list)
    sleep_first: float = FIRST_RETRY_S
    sleep_max: float = MAX_RETRY_S
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def waiting_for(self) -> list[str]:
        """The platforms not connected yet."""
        return [c.name for c in self.items if not c.connected]

    def start(self) -> None:
        if self._thread is None and self.items:
            self._thread = threading.Thread(target=self._run, name="kpibot-connect", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1)  # a daemon thread: an attempt still waiting is left behind
        for connection in self.items:
            if connection.connected:
                try:
                    connection.close()
                except Exception as error:
                    log.warning("closing %s failed (%s)", connection.name, error)

    def _run(self) -> None:
        pause = self.sleep_first
        while not self._stop.is_set():
            for connection in self.items:
                if connection.connected or self._stop.is_set():
                    continue
                connection.attempts += 1
                try:
                    connection.connect()
                except Exception as error:
                    # The platform's own words (Slack's "invalid_auth", say); never a token.
                    connection.last_error = f"{type(error).__name__}: {str(error)[:200]}"
                    log.warning(
                        "%s is unreachable (%s, attempt %d); trying again in %.0f s",
                        connection.name,
                        connection.last_error,
                        connection.attempts,
                        pause,
                    )
                else:
                    connection.connected = True
                    log.info("%s connected", connection.name)
            if not self.waiting_for:
                return
            self._stop.wait(pause)
            pause = min(pause * 2, self.sleep_max)

    def wait(self, timeout: float) -> bool:
        """Wait until every platform is connected (tests); False on timeout."""
        deadline = time.monotonic() + timeout
        while self.waiting_for and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.waiting_for
