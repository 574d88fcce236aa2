"""How long a platform's 429 asks us to wait, read so that no header can stall or crash delivery.

Slack and the Bot Connector send ``Retry-After`` in seconds. A proxy or a fault can send
anything: ``soon``, ``inf``, ``nan``, a negative number or a thousand years, and the dispatcher
would fail on it (``timedelta(seconds=inf)``) or park a channel for ever. Anything that is not a
sensible number of seconds becomes one second; a long wait is capped at fifteen minutes.

>>> retry_after_seconds("30"), retry_after_seconds("soon"), retry_after_seconds("1e12")
(30.0, 1.0, 900.0)
"""

from __future__ import annotations

import math

DEFAULT_S = 1.0
LONGEST_S = 15 * 60.0


def retry_after_seconds(header: object) -> float:
    """``header`` (a Retry-After value, or a list of them) as seconds to wait, within bounds."""
    if isinstance(header, list | tuple):
        header = header[0] if header else None
    try:
        seconds = float(str(header).strip()[:32])
    except ValueError:
        return DEFAULT_S
    if not math.isfinite(seconds) or seconds <= 0:
        return DEFAULT_S
    return min(seconds, LONGEST_S)
