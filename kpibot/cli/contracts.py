"""``kpibot db upgrade`` and ``kpibot contracts check|load|explain|draft``.

>>> # kpibot.cli.main calls register(subparsers, add, db_arg) while building its parser.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable
from pathlib import Path

from kpibot.cli.base import UserError, services_for
from kpibot.core.services import open_database
from kpibot.core.settings import Settings
from kpibot.engine.model import Contract
from kpibot.engine.targets import carried_forward
from kpibot.files.contracts import (
    ContractFilesInvalid,
    contract_paths,
    load_contracts,
    unused_terms,
)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = Settings()
    db = open_database(settings, args.database)
    db.upgrade()
    print(f"Database is at the latest schema ({db.revision()}).")
    return 0


def cmd_contracts_check(args: argparse.Namespace) -> int:
    """Check each file on its own, so a bad file does not hide what the good ones say."""
    paths = contract_paths([Path(p) for p in args.files])
    missing = [str(p) for p in paths if not p.exists()]
    if not paths or missing:
        what = ", ".join(missing) if missing else " ".join(args.files)
        print(
            f"No contract files found at {what}; give YAML files or a folder of them.",
            file=sys.stderr,
        )
        return 2
    failed = 0
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            c = load_contracts([path])[0]
        except ContractFilesInvalid as exc:
            failed += 1
            for e in exc.errors:
                print(str(e), file=sys.stderr)
            continue
        if c.id in seen:
            failed += 1
            print(
                f"{path}, field 'id': contract id '{c.id}' is also used by {seen[c.id]}",
                file=sys.stderr,
            )
            continue
        seen[c.id] = path
        print(
            f"ok  {c.id}: {len(c.kpis)} KPIs, {len(c.contract_years)} contract years, "
            f"{len(c.history)} history figures ({path})"
        )
        for line in [*carried_forward(c), *unused_terms(c)]:
            print(f"    note: {line}")
    if failed:
        print(
            f"{failed} of {len(paths)} file(s) have problems; `kpibot contracts load` loads "
            "nothing until every file checks.",
            file=sys.stderr,
        )
        return 2
    return 0


def _one_contract(name: str) -> Contract:
    """A contract by YAML path, or by id from the contracts directory."""
    path = Path(name)
    folder = Settings().contracts_dir
    try:
        if path.suffix in (".yaml", ".yml") or path.exists():
            return load_contracts([path])[0]
        known = load_contracts([folder])
    except ContractFilesInvalid as exc:
        raise UserError(str(exc)) from None
    for c in known:
        if c.id == name:
            return c
    close = difflib.get_close_matches(name, [c.id for c in known], n=1)
    hint = f"Did you mean '{close[0]}'? " if close else ""
    raise UserError(
        f"There is no contract '{name}' in {folder} (KPIBOT_CONTRACTS_DIR). {hint}For a contract "
        "kept elsewhere, give its YAML file: kpibot contracts explain path/to/contract.yaml"
    )


def cmd_contracts_explain(args: argparse.Namespace) -> int:
    from kpibot.engine.explain import explain_text
    from kpibot.files.exports import explain_csv

    contract = _one_contract(args.contract)
    sys.stdout.write(explain_csv(contract) if args.format == "csv" else explain_text(contract))
    return 0


def cmd_contracts_draft(args: argparse.Namespace) -> int:
    from kpibot.files.draft import CANNOT_READ, draft_contract, write_draft
    from kpibot.files.tables import TableError, read_table

    try:
        table = read_table(Path(args.schedule))
    except TableError as exc:
        raise UserError(str(exc)) from None
    out = Path(args.out) if args.out else None
    figures = Path(args.figures) if args.figures else None
    if figures is None and out is not None:
        figures = out.with_name(out.stem + ".figures.csv")
    draft = draft_contract(
        table, args.id, figures_name=figures.name if figures else "the figures file"
    )
    if out is None:
        sys.stdout.write(draft.yaml)
    for line in write_draft(draft, out, figures):
        print(line, file=sys.stderr)
    if figures is None and draft.figures:
        print(
            f"{draft.figures} past figures not written; give --figures FILE (or --out) to keep them",
            file=sys.stderr,
        )
    if draft.cannot_read:
        print(
            f"{draft.cannot_read} line(s) marked '{CANNOT_READ}' need editing before "
            "`kpibot contracts check` accepts the draft.",
            file=sys.stderr,
        )
    return 0


def cmd_contracts_load(args: argparse.Namespace) -> int:
    source = Path(args.dir)
    if source.is_dir() and not contract_paths([source]):
        print(
            f"There are no contract files (*.yaml, *.yml) in {source}. Nothing was loaded.",
            file=sys.stderr,
        )
        return 2
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
    p = add(
        "check",
        cmd_contracts_check,
        "Validate contract YAML files without loading them; notes targets carried into later years.",
        cs,
    )
    p.add_argument("files", nargs="+", help="contract YAML files or directories")
    p = add(
        "explain",
        cmd_contracts_explain,
        "Every KPI and year in plain English beside the contract's words, with tolerance, "
        "polarity, unit, frequency, assumptions, groups, milestones and money, for sign-off.",
        cs,
    )
    p.add_argument("contract", help="a contract id (from the contracts directory) or a YAML file")
    p.add_argument(
        "--format", choices=("text", "csv"), default="text", help="text (default) or csv"
    )
    p = add(
        "draft",
        cmd_contracts_draft,
        "Draft a contract YAML from a KPI table (CSV or XLSX): targets in the table's words with "
        "their reading, unreadable phrases marked, past figures as an import file.",
        cs,
    )
    p.add_argument("schedule", help="the KPI table: a .csv or .xlsx file")
    p.add_argument("--out", help="write the YAML here (default: print it)")
    p.add_argument(
        "--figures", help="write past figures here (default: beside --out as NAME.figures.csv)"
    )
    p.add_argument("--id", help="the contract id to use (default: from the file name)")
    p = add(
        "load",
        cmd_contracts_load,
        "Validate every contract in DIR (or one YAML file), then load them all (or none).",
        cs,
    )
    p.add_argument(
        "dir", help="a directory of contract YAML files (e.g. config/contracts) or one YAML file"
    )
    p.add_argument("--actor", default="cli", help="who is loading (recorded in the audit trail)")
    p.add_argument(
        "--no-history", action="store_true", help="do not load the contracts' demo history"
    )
    db_arg(p)
