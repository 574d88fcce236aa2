"""``kpibot report CONTRACT [--period P] [--quarters N] [--format F] [--out FILE]``: the board's report.

The same quarterly performance report as ``/kpi report`` (``kpibot.features.report``), written to
a file: XLSX, PDF, HTML or CSV. The format comes from ``--format``, else from the ``--out``
file's extension, else the contract's ``report_format`` (XLSX unless the contract says PDF).

>>> # kpibot.cli calls register(subparsers, add, db_arg) while building its parser.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from kpibot.cli.base import UserError, contract_for, services_for

WROTE = "Wrote {path} ({size:,} bytes): {contract}, {period}; {summary}."
CANNOT_WRITE = "Cannot write {path}: {why}."


def cmd_report(args: argparse.Namespace) -> int:
    from kpibot.features.report import (
        ReportError,
        build_report,
        check_format,
        latest_period,
        report_file,
        summary_line,
    )
    from kpibot.files.figures import check_period
    from kpibot.files.report import FORMATS

    services = services_for(args)
    contract = contract_for(services, args.contract)
    out = Path(args.out) if args.out else None
    suffix = out.suffix.lower().lstrip(".") if out is not None else ""
    try:
        fmt = check_format(args.format or (suffix if suffix in FORMATS else contract.report_format))
        if args.period:
            period = check_period(contract, args.period, services.now().date())
            if isinstance(period, str):
                raise UserError(period)
        else:
            period = latest_period(services, contract)
        report = build_report(services, contract, period, args.quarters)
        attachment = report_file(report, fmt)
    except ReportError as exc:
        raise UserError(str(exc)) from None
    target = out or Path(attachment.name)
    _write(target, attachment.content)
    print(
        WROTE.format(
            path=target,
            size=len(attachment.content),
            contract=contract.id,
            period=report.period_label,
            summary=summary_line(report),
        )
    )
    return 0


def _write(path: Path, data: bytes) -> None:
    """Write all of ``data`` or nothing: a temporary file beside ``path``, then a rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except OSError as exc:
        raise UserError(CANNOT_WRITE.format(path=path, why=exc.strerror or exc)) from None


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    add: Callable[..., argparse.ArgumentParser],
    db_arg: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``report`` to the ``kpibot`` parser."""
    p = add(
        "report",
        cmd_report,
        "Write a contract's quarterly performance report for its board: every KPI with this "
        "year's target and tolerance in the contract's words, the last quarters' figures coloured "
        "and lettered by RAG, position, trend, money at risk, action plans, notes and charts.",
    )
    p.add_argument("contract", help="contract id, e.g. childrens-trust")
    p.add_argument(
        "--period",
        help="the quarter to report, e.g. '2019/20 Q3' (default: the latest with figures)",
    )
    p.add_argument(
        "--quarters",
        type=int,
        default=7,
        help="how many quarters of figures, up to the period (default 7, as seed 004's table)",
    )
    p.add_argument(
        "--format",
        choices=["xlsx", "pdf", "html", "csv"],
        help="file format (default: the --out extension, else the contract's report_format, xlsx)",
    )
    p.add_argument(
        "--out",
        help="file to write (default: CONTRACT-PERIOD-performance-report.FORMAT here)",
    )
    db_arg(p)
