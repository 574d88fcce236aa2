"""Registers the CLI commands that live beside their features (demo, serve, scheduler, money).

>>> # kpibot.cli calls register(subparsers, add, db_arg) while building its parser.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    add: Callable[..., argparse.ArgumentParser],
    db_arg: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the feature commands to the ``kpibot`` parser."""
    return None
