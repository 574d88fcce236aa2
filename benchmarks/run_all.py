"""Run every benchmark in this folder and collect their result lines (``make bench``).

Each ``benchmarks/*.py`` other than this runner and private helpers (``_common.py``, any
``_*.py``) runs as its own process with this interpreter, so one benchmark's memory peak or
imports cannot colour another's. Output streams through as it comes; at the end each
benchmark's last ``key=value`` line is printed again. The exit status is 1 when any benchmark
exits non-zero or prints no result line.

    .venv/bin/python benchmarks/run_all.py           # all of them
    .venv/bin/python benchmarks/run_all.py engine    # only benchmarks/engine.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULT_LINE = re.compile(r"^\s*[A-Za-z_][\w.-]*=\S+(\s+[A-Za-z_][\w.-]*=\S+)*\s*$")


@dataclass(frozen=True)
class Outcome:
    name: str
    returncode: int
    seconds: float
    result: str | None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.result is not None


def discover(names: list[str]) -> list[Path]:
    """The benchmark scripts, in name order; ``names`` (without ``.py``) narrows the list."""
    found = sorted(
        p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_")
    )
    if not names:
        return found
    wanted = {n.removesuffix(".py") for n in names}
    unknown = wanted - {p.stem for p in found}
    if unknown:
        raise SystemExit(
            f"No benchmark named {', '.join(sorted(unknown))}; "
            f"choose from {', '.join(p.stem for p in found)}."
        )
    return [p for p in found if p.stem in wanted]


def run(script: Path) -> Outcome:
    """Run one benchmark, echoing its output line by line, and keep its last result line."""
    print(f"\n######## {script.name}", flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    result = None
    with subprocess.Popen(
        [sys.executable, str(script)],
        cwd=HERE.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            if RESULT_LINE.match(line):
                result = line.strip()
        returncode = proc.wait()
    return Outcome(script.stem, returncode, time.perf_counter() - start, result)


def _status(o: Outcome) -> str:
    if o.ok:
        return "ok"
    if o.returncode != 0:
        return f"FAILED (exit {o.returncode})"
    return "FAILED (no key=value result line)"


def main(argv: list[str]) -> int:
    outcomes = [run(script) for script in discover(argv)]
    print("\n######## results", flush=True)
    rows = [(o.name, _status(o), f"{o.seconds:6.1f} s", o.result or "") for o in outcomes]
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(3)]
    for name, status, seconds, result in rows:
        print(
            f"{name:<{widths[0]}}  {status:<{widths[1]}}  {seconds}  {result}".rstrip(), flush=True
        )
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
