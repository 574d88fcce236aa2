"""A scheduler process for the kill and replica tests in ``tests/scheduler/test_tick.py``.

Run from the repository root as ``python -m tests.scheduler.worker MODE …``:

``dispatch``
    Drain the outbox at ``--now`` through deliberately slow sinks, so that a SIGKILL lands in the
    middle of a batch. Platform ``table`` records each delivery in the ``delivery_log`` table
    inside the dispatcher's transaction (a transactional outbox consumer: exactly once);
    platform ``file`` appends to a file and fsyncs, outside any transaction, and finds earlier
    deliveries by outbox id after a crash (the dedupe the Slack deliverer does with metadata).
``replica``
    One replica of a deployment over a simulated month: each loop it takes the leader lock if it
    can, ticks when it leads (logging the tick's wall-clock interval in ``leader_log``), and
    dispatches. The simulated clock is ``--start`` plus the wall time since the epoch in the
    ``go`` file times ``--speed``, so every replica shares it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from kpibot.app.wiring import services_for_database
from kpibot.core.protocol import Reply
from kpibot.core.settings import Settings
from kpibot.scheduler.dispatch import Dispatcher, plain_composer
from kpibot.scheduler.leader import LeaderLock
from kpibot.scheduler.tick import ReminderTick
from kpibot.store.database import Database
from kpibot.store.outbox import OutboxMessage, OutboxRepository


class TableSink:
    """Records a delivery in ``delivery_log`` within the dispatcher's transaction."""

    def __init__(self, worker: str, delay: float) -> None:
        self.worker = worker
        self.delay = delay

    def deliver_in(self, session: Session, message: OutboxMessage, reply: Reply) -> str | None:
        session.execute(
            text("INSERT INTO delivery_log (outbox_id, worker, body) VALUES (:id, :w, :b)"),
            {"id": message.id, "w": self.worker, "b": reply.text[:200]},
        )
        session.flush()
        time.sleep(self.delay)  # the kill should land here, with the transaction open
        return f"log:{message.id}"


class FileSink:
    """Appends ``outbox_id`` lines to a file and fsyncs; dedupes on the outbox id."""

    def __init__(self, path: Path, worker: str, delay: float) -> None:
        self.path = path
        self.worker = worker
        self.delay = delay

    def deliver(self, message: OutboxMessage, reply: Reply) -> str | None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(f"{message.id}\t{self.worker}\n")
            handle.flush()
            os.fsync(handle.fileno())
        time.sleep(self.delay)  # delivered, not yet marked sent: the at-least-once window
        return f"line:{message.id}"

    def find_delivered(self, message: OutboxMessage) -> str | None:
        if not self.path.exists():
            return None
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.split("\t")[0] == str(message.id):
                return f"line:{message.id}"
        return None


def dispatch(args: argparse.Namespace) -> int:
    db = Database(args.db)
    outbox = OutboxRepository(db)
    sinks: dict[str, TableSink | FileSink] = {
        "table": TableSink(args.worker, args.delay),
        "file": FileSink(Path(args.file), args.worker, args.delay),
    }
    dispatcher = Dispatcher(outbox, sinks, plain_composer, worker=args.worker, batch=100, pacing={})
    if args.wait_for:  # a standby, started early so its imports are done: go when told
        while not Path(args.wait_for).exists():
            time.sleep(0.01)
    sent = dispatcher.drain(datetime.fromisoformat(args.now))
    print(f"sent {sent}", flush=True)
    return 0


def replica(args: argparse.Namespace) -> int:
    db = Database(args.db)
    services = services_for_database(db, Settings(database_url=args.db))
    start, end = datetime.fromisoformat(args.start), datetime.fromisoformat(args.end)
    tick = ReminderTick(services, None, None, name="replica-test", start=start)
    outbox = OutboxRepository(db)
    dispatcher = Dispatcher(
        outbox, {"console": TableSink(args.worker, 0.0)}, plain_composer, worker=args.worker
    )
    leader = LeaderLock(db, "replica-test")
    control = Path(args.control)
    (control / f"ready-{args.worker}").touch()
    go = control / "go"
    while not go.exists() or not go.read_text().strip():
        time.sleep(0.01)
    epoch = float(go.read_text())

    def simulated() -> datetime:
        elapsed = max(time.time() - epoch, 0.0)
        return min(start + timedelta(seconds=elapsed * args.speed), end)

    def lead(now: datetime) -> None:
        if leader.acquire():
            began = time.time()
            # A live tick runs every minute; when this loop falls behind the simulated clock,
            # catch up in half days: ladder steps are a day apart, so none collapse, as live.
            step = tick.watermark(now)
            while step < now:
                step = min(step + timedelta(hours=12), now)
                tick.tick(step)
            with db.session() as session:
                session.execute(
                    text("INSERT INTO leader_log (worker, t0, t1, sim) VALUES (:w, :a, :b, :s)"),
                    {"w": args.worker, "a": began, "b": time.time(), "s": now.isoformat()},
                )

    while (now := simulated()) < end:
        lead(now)
        dispatcher.run_once(now)
        time.sleep(args.step)
    lead(end)
    dispatcher.drain(end)
    leader.release()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    p = modes.add_parser("dispatch")
    p.add_argument("--db", required=True)
    p.add_argument("--now", required=True)
    p.add_argument("--file", required=True)
    p.add_argument("--wait-for")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--worker", required=True)
    p.set_defaults(run=dispatch)
    p = modes.add_parser("replica")
    p.add_argument("--db", required=True)
    p.add_argument("--start", required=True)
    p.add_argument("--end", required=True)
    p.add_argument("--speed", type=float, required=True)
    p.add_argument("--step", type=float, default=0.02)
    p.add_argument("--control", required=True)
    p.add_argument("--worker", required=True)
    p.set_defaults(run=replica)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
