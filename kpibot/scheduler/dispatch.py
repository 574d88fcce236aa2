"""The dispatcher: claims due outbox rows, composes each message fresh, and delivers it.

Every replica may dispatch: claims are atomic, so no row goes to two dispatchers at once. A row
is marked sent only after its platform accepted it. Per channel the dispatcher keeps to about one
message a second (Slack's limit for ``chat.postMessage``); a row that would wait longer than
``max_pause`` is put back for later instead of holding up the batch. HTTP 429 reschedules the row
after Retry-After without counting a failure; any other error is retried with exponential
backoff and given up (status ``failed``, ``last_error``) after ``max_attempts``. A batch slowed
by pacing hands its remaining rows back once half the claim's lease is spent, so no other
dispatcher takes over a row this one still means to send. ``stop()`` (at shutdown) makes the
batch in progress hand its remaining rows back at once, and interrupts a pacing pause.

The clock is an argument: ``run_once(now)`` uses ``now`` for everything it records, and the
pacing between messages uses the injected ``monotonic`` and ``sleep`` (tests pass fakes).

>>> dispatcher = Dispatcher(OutboxRepository(db), {"console": ConsoleDeliverer()})
... # doctest: +SKIP
>>> dispatcher.run_once(now)  # doctest: +SKIP
2
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from kpibot.core import metrics
from kpibot.core.protocol import Reply
from kpibot.engine import reminders
from kpibot.scheduler.delivery import Deliverer, DeliveryError, RateLimited, TransactionalDeliverer
from kpibot.store.outbox import OutboxMessage, OutboxRepository

log = logging.getLogger(__name__)

Composer = Callable[[OutboxMessage], Reply]
DEFAULT_PACING: Mapping[str, float] = {"slack": 1.0, "teams": 1.0}


def plain_composer(message: OutboxMessage) -> Reply:
    """The row's own text under its kind as title: no store access, nothing to go stale."""
    title = reminders.title(message.kind)
    if message.contract_id:
        title += f" · {message.contract_id}"
    return Reply(title, message.text)


def default_worker() -> str:
    """This process's name in ``claimed_by``: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _ClaimLost(Exception):
    """Our lease ended and another dispatcher owns the row; our transaction must not commit."""


class Dispatcher:
    """Delivers due outbox rows through one deliverer per platform.

    ``pacing`` maps a platform to the seconds to keep between two messages in one channel.

    >>> Dispatcher(outbox, {"slack": SlackDeliverer(client)}, composer(services),
    ...            max_attempts=8).run_once(now)  # doctest: +SKIP
    """

    def __init__(
        self,
        outbox: OutboxRepository,
        deliverers: Mapping[str, Deliverer | TransactionalDeliverer],
        composer: Composer = plain_composer,
        *,
        worker: str | None = None,
        batch: int = 50,
        max_attempts: int = 8,
        backoff: timedelta = timedelta(seconds=30),
        max_backoff: timedelta = timedelta(hours=1),
        pacing: Mapping[str, float] = DEFAULT_PACING,
        max_pause: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self.deliverers = dict(deliverers)
        self.composer = composer
        self.worker = worker or default_worker()
        self.batch = batch
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.pacing = dict(pacing)
        self.max_pause = max_pause
        self.sleep = sleep
        self.monotonic = monotonic
        self._free_at: dict[tuple[str, str], float] = {}
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Stop after the message being delivered: the rest of the batch is handed back."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` between two messages; False if ``stop()`` came meanwhile."""
        if self.sleep is time.sleep:
            return not self._stopping.wait(seconds)
        self.sleep(seconds)
        return not self._stopping.is_set()

    def _hand_back(self, message: OutboxMessage, now: datetime, reason: str) -> None:
        self.outbox.reschedule(message, now, reason)
        metrics.DELIVERIES.labels(platform=message.platform, status="handed_back").inc()

    def run_once(self, now: datetime) -> int:
        """Claim one batch of due rows and deliver them; returns how many were sent."""
        return self._run(now)[1]

    def drain(self, now: datetime, max_batches: int = 1000) -> int:
        """Run batches until nothing is due at ``now``; returns how many were sent."""
        sent = 0
        for _ in range(max_batches):
            claimed, done = self._run(now)
            sent += done
            if not claimed:
                break
        return sent

    def _run(self, now: datetime) -> tuple[int, int]:
        messages = self.outbox.claim(self.worker, now, self.batch, platforms=list(self.deliverers))
        # A composer may get the claimed batch ready at once (the summary composer evaluates
        # every summary's contract in one pass); composing stays per message.
        prepare = getattr(self.composer, "prepare", None)
        if prepare is not None and messages:
            try:
                prepare(messages)
            except Exception:  # each message is still composed on its own below
                log.exception("could not prepare %d claimed message(s) together", len(messages))
        claimed_at, sent = self.monotonic(), 0
        for message in messages:
            if self._stopping.is_set():
                self._hand_back(message, now, "handed back: shutting down")
                continue
            # Pacing can make a batch slow; hand rows back well before their lease ends, or
            # another dispatcher would take them over while they still wait here.
            if self.monotonic() - claimed_at > self.outbox.lease.total_seconds() / 2:
                self._hand_back(message, now, "handed back: the batch ran long")
                continue
            sent += self._dispatch(message, now)
        return len(messages), sent

    def backoff_for(self, attempts: int) -> timedelta:
        """The pause after a failed attempt: ``backoff`` doubling per attempt, capped."""
        factor: int = 2 ** max(attempts - 1, 0)
        return min(self.max_backoff, self.backoff * factor)

    # ------------------------------------------------------------------ one row
    def _dispatch(self, message: OutboxMessage, now: datetime) -> int:
        channel = (message.platform, message.channel)
        wait = self._free_at.get(channel, 0.0) - self.monotonic()
        if wait > self.max_pause:
            self.outbox.reschedule(message, now + timedelta(seconds=wait), "paced: channel busy")
            return 0
        if wait > 0 and not self._pause(wait):
            self._hand_back(message, now, "handed back: shutting down")
            return 0
        deliverer = self.deliverers[message.platform]
        try:
            if isinstance(deliverer, TransactionalDeliverer):
                return self._deliver_in_transaction(deliverer, message, now)
            return self._deliver(deliverer, message, now, channel)
        except _ClaimLost:
            log.warning("outbox %s: lease lost to another dispatcher; not sent here", message.id)
            return 0
        except RateLimited as limited:
            self._free_at[channel] = self.monotonic() + limited.retry_after
            at = now + timedelta(seconds=limited.retry_after)
            self.outbox.reschedule(message, at, str(limited), limited.progress)
            metrics.DELIVERIES.labels(platform=message.platform, status="rate_limited").inc()
            log.info("outbox %s: rate limited, again at %s", message.id, at.isoformat())
            return 0
        except Exception as error:  # a platform, composer or deliverer fault: retry or give up
            self._failed(message, now, error)
            return 0

    def _deliver(
        self,
        deliverer: Deliverer,
        message: OutboxMessage,
        now: datetime,
        channel: tuple[str, str],
    ) -> int:
        # A row claimed before may have gone out just before a crash: look before resending.
        if message.attempts > 1 and not message.progress:
            ref = deliverer.find_delivered(message)
            if ref is not None:
                log.info("outbox %s: already delivered as %s; marking it sent", message.id, ref)
                self.outbox.mark_sent(message, now, ref)
                metrics.DELIVERIES.labels(platform=message.platform, status="sent").inc()
                return 1
        reply = self.composer(message)
        try:
            ref = deliverer.deliver(message, reply)
        finally:
            self._free_at[channel] = self.monotonic() + self.pacing.get(message.platform, 0.0)
        if not self.outbox.mark_sent(message, now, ref):
            log.warning("outbox %s: delivered, but the lease was lost; it may repeat", message.id)
        metrics.DELIVERIES.labels(platform=message.platform, status="sent").inc()
        return 1

    def _deliver_in_transaction(
        self, deliverer: TransactionalDeliverer, message: OutboxMessage, now: datetime
    ) -> int:
        reply = self.composer(message)
        with self.outbox.db.session() as session:
            ref = deliverer.deliver_in(session, message, reply)
            if not self.outbox.mark_sent_in(session, message, now, ref):
                raise _ClaimLost
        metrics.DELIVERIES.labels(platform=message.platform, status="sent").inc()
        return 1

    def _failed(self, message: OutboxMessage, now: datetime, error: Exception) -> None:
        reason = f"{type(error).__name__}: {error}"
        progress = error.progress if isinstance(error, DeliveryError) else None
        permanent = isinstance(error, DeliveryError) and error.permanent
        if permanent or message.attempts >= self.max_attempts:
            self.outbox.fail(message, reason, progress)
            metrics.DELIVERIES.labels(platform=message.platform, status="failed").inc()
            log.error(
                "outbox %s (%s to %s:%s) failed after %d attempt(s): %s",
                message.id,
                message.kind,
                message.platform,
                message.channel,
                message.attempts,
                reason,
            )
            return
        delay = self.backoff_for(message.attempts)
        self.outbox.retry(message, now, delay, reason, progress)
        metrics.DELIVERIES.labels(platform=message.platform, status="retried").inc()
        log.warning(
            "outbox %s: attempt %d failed (%s); retrying in %s",
            message.id,
            message.attempts,
            reason,
            delay,
            exc_info=not isinstance(error, DeliveryError),
        )
