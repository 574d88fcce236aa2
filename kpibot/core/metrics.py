"""kpibot's Prometheus metrics, defined once here and served at ``GET /metrics`` by ``kpibot serve``.

Labels are bounded and carry no user text: a verb is one of the registry's verbs (anything else is
``unknown``), an outcome one of ``OUTCOMES``, a platform one of the deliverers' names. Secrets and
message texts never reach a metric. The values live in this process: each replica serves its own,
and Prometheus adds them up.

>>> COMMANDS.labels(verb="status", outcome="ok").inc()
>>> b"kpibot_commands_total" in exposition()
True
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "exposition"]

OUTCOMES = ("ok", "refused", "error", "failed", "unavailable")
"""ok: answered; refused: not allowed; error: the user's input was wrong; failed: a bug on our
side; unavailable: the database could not be reached."""

COMMANDS = Counter("kpibot_commands", "Commands handled, by verb and outcome", ["verb", "outcome"])
COMMAND_SECONDS = Histogram(
    "kpibot_command_duration_seconds",
    "Time to handle one command (not counting the chat platform's own delivery)",
    ["verb"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
DELIVERIES = Counter(
    "kpibot_outbox_deliveries",
    "Outbox rows settled by the dispatcher, by platform and status "
    "(sent, retried, rate_limited, failed, handed_back)",
    ["platform", "status"],
)
OUTBOX_BACKLOG = Gauge(
    "kpibot_outbox_backlog", "Outbox rows waiting, by status (pending, claimed)", ["status"]
)
OUTBOX_OLDEST_DUE = Gauge(
    "kpibot_outbox_oldest_due_age_seconds",
    "How long ago the oldest row still waiting fell due (0 when none is overdue)",
)
TICK_SECONDS = Histogram(
    "kpibot_scheduler_tick_duration_seconds",
    "Time one reminder tick took (leader only)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
LAST_TICK = Gauge(
    "kpibot_scheduler_last_tick_timestamp_seconds",
    "When this replica last finished a tick (Unix time); now minus this is the scheduler's lag",
)
READY = Gauge("kpibot_ready", "1 when /readyz answers 200, else 0")
WARMUP = Gauge(
    "kpibot_warmup_contracts", "Start-up warm-up: contracts warmed and in all", ["state"]
)
DATABASE_ERRORS = Counter(
    "kpibot_database_errors",
    "Times the database could not be reached or did not answer in time, by where it was noticed",
    ["where"],
)


def exposition() -> bytes:
    """Every metric of this process in Prometheus text format."""
    return generate_latest(REGISTRY)
