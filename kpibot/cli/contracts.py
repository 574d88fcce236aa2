"""``kpibot db upgrade``, ``kpibot contracts check`` and ``kpibot contracts load``.

>>> # kpibot.cli.main calls register(subparsers, add, db_arg) while building its parser.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from kpibot.cli.base import services_for
from kpibot.core.services import open_database
from kpibot.core.settings import Settings
from kpibot.files.contracts import ContractFilesInvalid, load_contracts


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = Settings()
    db = open_database(settings, args.database)
    db.upgrade()
    print(f"Database is at the latest schema ({db.revision()}).")
    return 0


def cmd_contracts_check(args: argparse.Namespace) -> int:
    try:
        contracts = load_contracts([Path(p) for p in args.files])
    except ContractFilesInvalid as exc:
        for e in exc.errors:
            print(str(e), file=sys.stderr)
        return 2
    for c in contracts:
        print(
            f"ok  {c.id}: {len(c.kpis)} KPIs, {len(c.contract_years)} contract years, "
            f"{len(c.history)} history figures"
        )
    return 0


def cmd_contracts_load(args: argparse.Namespace) -> int:
    services = services_for(args)
    try:
        contracts = services.load_contracts(
            [Path(args.dir)], actor=args.actor, with_history=not args.no_history
        )
    except ContractFilesInvalid as exc:
        for e in exc.errors:
            print(str(e), file=sys.stderr)
        print("Nothing was loaded.", file=sys.stderr)
        return 2
    for c in contracts:
        print(f"loaded  {c.id}: {len(c.kpis)} KPIs")
    return 0


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    add: Callable[..., argparse.ArgumentParser],
    db_arg: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``db`` and ``contracts`` to the ``kpibot`` parser."""
    db = sub.add_parser(
        "db", help="database administration", description="Database administration."
    )
    dbs = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_arg(
        add(
            "upgrade",
            cmd_db_upgrade,
            "Create or migrate the database schema to the latest version.",
            dbs,
        )
    )

    contracts = sub.add_parser(
        "contracts",
        help="validate and load contract definitions",
        description="Validate and load contract definitions (YAML).",
    )
    cs = contracts.add_subparsers(dest="contracts_command", metavar="ACTION", required=True)
    p = add("check", cmd_contracts_check, "Validate contract YAML files without loading them.", cs)
    p.add_argument("files", nargs="+", help="contract YAML files or directories")
    p = add(
        "load",
        cmd_contracts_load,
        "Validate every contract in DIR, then load them all (or none).",
        cs,
    )
    p.add_argument("dir", help="directory of contract YAML files, e.g. config/contracts")
    p.add_argument("--actor", default="cli", help="who is loading (recorded in the audit trail)")
    p.add_argument(
        "--no-history", action="store_true", help="do not load the contracts' demo history"
    )
    db_arg(p)
