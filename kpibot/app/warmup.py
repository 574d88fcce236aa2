"""Start-up warm-up: every contract's status is built once in the background as the server starts.

The first ``/kpi status`` of a contract evaluates its KPIs; every later one is a cached reply
checked against the contract's version. Building them all at start-up means no user pays for the
first one. Contracts are warmed a thousand at a time, each thousand evaluated in one vectorised
pass (``kpibot.commands.status.warm``), so ten thousand contracts take seconds, not minutes. ``/readyz`` answers 503 with the progress
until the warm-up is done, so a load balancer sends traffic only to a warm process; ``/healthz``
answers at once. Set ``KPIBOT_WARM_CACHES=false`` to skip it.

>>> warmup = Warmup(services)  # doctest: +SKIP
>>> warmup.start(); warmup.wait(60)  # doctest: +SKIP
True
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

from kpibot.commands.status import (
    WARM_BATCH,
    cached_counts,
    cached_overview,
    collector_paused,
    read_batch,
    warm,
)
from kpibot.core.services import Services

log = logging.getLogger("kpibot.warmup")


def settle_heap() -> None:
    """Exempt everything alive now from future garbage collections.

    The warm caches are millions of long-lived objects; without this, every full collection
    walks them all, and a request that triggers one waits hundreds of milliseconds. Objects
    made later are collected as usual (this is ``gc.freeze``, as CPython's docs advise for a
    server after start-up). No collection first: the warm-up leaves almost no cyclic garbage
    (30 unreachable objects after 1,000 contracts), and collecting would walk the whole warm
    heap once more (about 0.4 s a thousand contracts) to free it.
    """
    gc.freeze()


class Warmup:
    """Builds the status overview of every stored contract once, on a background thread."""

    def __init__(self, services: Services, *, settle: bool = False) -> None:
        self._services = services
        self._settle = settle  # kpibot serve: settle_heap() once warm (a test process must not)
        self._done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.contracts = 0
        self.warmed = 0
        self.failed = 0

    @property
    def ready(self) -> bool:
        return self._done.is_set()

    def progress(self) -> dict[str, object]:
        """What ``/readyz`` shows while warming."""
        return {"status": "warming", "contracts_warmed": self.warmed, "contracts": self.contracts}

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="kpibot-warmup", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:  # a daemon thread: shutdown does not wait long
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def _one_by_one(self, ids: list[str]) -> None:
        """After a failed batch: each contract alone, so one bad contract costs only itself."""
        for cid in ids:
            try:
                contract = self._services.contract(cid)
                if contract is not None:
                    cached_overview(self._services, contract, None)
                    cached_counts(self._services, contract)
                self.warmed += 1
            except Exception:
                self.failed += 1
                log.exception("warm-up failed for contract %s; its first status will build it", cid)

    def run(self) -> None:
        """Warm every contract; one that fails is logged and skipped (its first status builds it)."""
        started = time.perf_counter()
        # While warming, a collection would walk every object warmed so far, again at each
        # threshold, to find almost nothing (see settle_heap): a quarter of the warm-up's time.
        # Only a server that settles its heap pauses the collector for the whole run (tests
        # share the process; each batch pauses it anyway, in ``warm``).
        with collector_paused() if self._settle else nullcontext():
            try:
                ids = self._services.contract_ids()
                self.contracts = len(ids)
                batches = [ids[at : at + WARM_BATCH] for at in range(0, len(ids), WARM_BATCH)]
                with ThreadPoolExecutor(1, thread_name_prefix="kpibot-warm-read") as reader:
                    self._warm_batches(batches, reader)
            except Exception:
                log.exception("warm-up could not list the contracts; status will build on demand")
            finally:
                if self._settle:
                    settle_heap()  # before the collector runs again
                self._done.set()
        log.info(
            "warm-up: %d contract(s) ready in %.1f s (%d failed)",
            self.warmed,
            time.perf_counter() - started,
            self.failed,
        )
        self.keep_readings()

    def _warm_batches(self, batches: list[list[str]], reader: ThreadPoolExecutor) -> None:
        """Warm each batch; on PostgreSQL the next batch's versions and figures are read on
        ``reader`` while this one is evaluated (the server works, this process waits on a
        socket), so only the first batch waits for its read."""
        services = self._services
        ahead = services.db.dialect == "postgresql"
        read = reader.submit(read_batch, services, batches[0]) if ahead and batches else None
        for n, batch in enumerate(batches):
            if self._stop.is_set():
                return
            current, read = read, None
            if ahead and n + 1 < len(batches):
                read = reader.submit(read_batch, services, batches[n + 1])
            try:
                if current is None:
                    self.warmed += len(warm(services, batch))
                else:
                    versions, figures = current.result()
                    self.warmed += len(warm(services, batch, versions, figures))
            except Exception:
                log.exception(
                    "warm-up failed for contracts %s…%s; warming them one by one",
                    batch[0],
                    batch[-1],
                )
                self._one_by_one(batch)

    def keep_readings(self) -> None:
        """Once ready: store the phrase readings of contracts whose kept ones are missing or
        from other code (after an upgrade), so their first status in a new process reads no
        phrase again (``kpibot.store.readings``). Best effort: a failure costs only speed."""
        repository = self._services.contracts
        try:
            stale = repository.stale_readings()
            for start in range(0, len(stale), WARM_BATCH):
                if self._stop.is_set():
                    return
                repository.keep_readings(repository.many(stale[start : start + WARM_BATCH]))
        except Exception:
            log.exception("could not store the contracts' phrase readings; they will be read again")
            return
        if stale:
            log.info("phrase readings stored for %d contract(s)", len(stale))
