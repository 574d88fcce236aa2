"""``kpibot demo``: the bot in the terminal on the seed contracts.

>>> # kpibot.cli.main calls register(subparsers, add, db_arg) while building its parser.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date


def cmd_demo(args: argparse.Namespace) -> int:
    # Loaded here, not at the top: `kpibot --help` must not pay for the whole bot.
    from kpibot.app.demo import DemoOptions, run_demo

    today = date.fromisoformat(args.today) if args.today else None
    return run_demo(
        DemoOptions(run=args.run or [], user=args.user, today=today, database=args.database)
    )


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    add: Callable[..., argparse.ArgumentParser],
    db_arg: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``demo`` to the ``kpibot`` parser."""
    p = add(
        "demo",
        cmd_demo,
        "Run kpibot in the terminal on the seed contracts (fresh SQLite database). "
        "Without a terminal it tours every command and exits.",
    )
    p.add_argument(
        "--run",
        action="append",
        metavar="COMMAND",
        help="run one command (repeatable), e.g. --run '/kpi status childrens-trust', then exit",
    )
    p.add_argument(
        "--user", default="U-COMMISSIONER", help="act as this user from config/access.yaml"
    )
    p.add_argument("--today", help="pin the clock to this date (default 2020-02-20)")
    db_arg(p)
