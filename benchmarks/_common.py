"""What every benchmark shares: timing, peak memory and the one-line result format.

A benchmark prints a short human summary and then, as its last line, ``key=value`` pairs that
``run_all.py`` (and CI logs) pick up:

>>> from _common import best_of, emit_result, peak_rss_mb
>>> seconds, total = best_of(3, lambda: sum(range(1000)))
>>> emit_result(sum_per_s=int(1000 / seconds), peak_rss_mb=peak_rss_mb())  # doctest: +SKIP
sum_per_s=... peak_rss_mb=...
"""

from __future__ import annotations

import math
import resource
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def peak_rss_mb() -> int:
    """The process's peak resident memory so far, in MB (Linux reports ``ru_maxrss`` in KB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":  # macOS reports bytes
        kb //= 1024
    return int(kb // 1024)


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Run ``fn`` once; return (wall seconds, its result)."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def repeat_timed(runs: int, fn: Callable[[], T]) -> tuple[list[float], T]:
    """Run ``fn`` ``runs`` times; return every run's wall seconds and the last result."""
    if runs < 1:
        raise ValueError("repeat_timed needs at least one run")
    times = []
    for _ in range(runs):
        seconds, result = timed(fn)
        times.append(seconds)
    return times, result


def best_of(runs: int, fn: Callable[[], T]) -> tuple[float, T]:
    """Run ``fn`` ``runs`` times; return the fastest wall time and the last result.

    The best run is the least disturbed by other work on the machine, so it is the fairest
    figure to compare between runs.
    """
    times, result = repeat_timed(runs, fn)
    return min(times), result


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 to 100) of ``samples``, interpolated between ranks as numpy does.

    >>> percentile([4.0, 1.0, 3.0, 2.0], 50)
    2.5
    """
    if not samples:
        raise ValueError("percentile needs at least one sample")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be between 0 and 100, not {q}")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def say(message: str = "") -> None:
    """Print a summary line at once, so ``run_all.py`` can stream it while the benchmark runs."""
    print(message, flush=True)


def heading(title: str) -> None:
    say(f"== {title}")


def format_metric(value: object) -> str:
    """Integers as they are, floats to one decimal, anything else as text."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def emit_result(**metrics: object) -> str:
    """Print the final ``key=value ...`` line (it must be the benchmark's last line) and return it."""
    line = " ".join(f"{key}={format_metric(value)}" for key, value in metrics.items())
    say(line)
    return line


class BenchmarkFailure(AssertionError):
    """A benchmark's own correctness check failed: the run must exit non-zero."""
