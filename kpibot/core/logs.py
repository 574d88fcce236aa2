"""Logging for every kpibot command: ``KPIBOT_LOG_LEVEL`` for kpibot's own loggers, text or JSON lines.

``configure`` is called once by the CLI. kpibot's loggers (``kpibot.*``) follow
``KPIBOT_LOG_LEVEL``; other libraries stay at WARNING, except uvicorn's, which follow it too.
``KPIBOT_LOG_FORMAT=json`` writes one JSON object per line with ``time``, ``level``, ``logger``,
``message`` and, where a line has them, the fields in ``FIELDS`` (request id, user, verb,
contract, outcome, duration). Only those named fields are copied from a record, so whatever else
a caller attaches (a message body, a token) never reaches the output.

>>> import logging
>>> record = logging.LogRecord("kpibot.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
>>> record.verb = "status"
>>> line = json.loads(JsonFormatter().format(record))
>>> line["message"], line["verb"]
('hello you', 'status')
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# The id of the chat request being handled on this thread, for every line logged while it runs.
request_id: ContextVar[str | None] = ContextVar("kpibot_request_id", default=None)

FIELDS = (
    "request_id",
    "platform",
    "user",
    "channel",
    "verb",
    "contract",
    "outcome",
    "duration_ms",
)
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Libraries whose loggers follow KPIBOT_LOG_LEVEL with kpibot's own.
FOLLOWERS = ("kpibot", "uvicorn", "uvicorn.error", "uvicorn.access")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and the known ``FIELDS``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = request_id.get()
        if current is not None:
            line["request_id"] = current
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def level_of(name: str) -> int:
    """A logging level from its name (``info``, ``DEBUG``…); unknown names mean INFO."""
    value = logging.getLevelName(name.strip().upper())
    return value if isinstance(value, int) else logging.INFO


def configure(level: str = "INFO", fmt: str = "text", *, verbose: bool = False) -> None:
    """Send every log line to stderr in ``fmt``; kpibot's loggers at ``level`` (DEBUG if verbose).

    Replaces any handler set before, so calling it twice (tests) does not double the lines.
    """
    handler = logging.StreamHandler(sys.stderr)
    json_lines = fmt.strip().lower() == "json"
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    ours = logging.DEBUG if verbose else level_of(level)
    for name in FOLLOWERS:
        follower = logging.getLogger(name)
        follower.setLevel(ours)
        follower.handlers.clear()
        follower.propagate = True
