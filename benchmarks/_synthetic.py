"""Synthetic contracts and figures shared by the status benchmarks (``status_latency.py``, ``scale.py``).

Contracts of ``KPIS`` KPIs drawn from ``PROFILES`` (real target phrasings, one text per contract
year), three contract years 2017/18 … 2019/20, and twelve quarters of figures per KPI: a level, a
drift and noise, with 3% of returns missing.

>>> rng = np.random.default_rng(1)
>>> [c.id for c in contract_definitions(rng, 2)]
['bench-001', 'bench-002']
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from kpibot.engine.model import Contract
from kpibot.engine.periods import parse_period
from kpibot.engine.targets import compile_contract
from kpibot.store.readings import kept_readings
from kpibot.store.repositories import content_hash, stored_definition
from kpibot.store.rows import NewFigure

JsonDict = dict[str, Any]
KPIS = 40
FIRST_YEAR = 2017
YEARS = 3
PERIODS = [
    f"{FIRST_YEAR + y}/{(FIRST_YEAR + y + 1) % 100:02d} Q{q}"
    for y in range(YEARS)
    for q in (1, 2, 3, 4)
]
MISSING_RATE = 0.03


@dataclass(frozen=True)
class KpiProfile:
    """A kind of KPI as contracts word it (one text per contract year) and how its figures run."""

    label: str
    unit: str
    polarity: str
    targets: tuple[str, str, str]
    mean: float
    sd: float
    weight: float
    tolerance: str | None = None
    critical: str | None = None
    decimals: int = 1
    ceiling: float | None = None


PROFILES = [
    KpiProfile(
        "Assessments completed within 45 days",
        "percent",
        "bigger",
        ("Target 90%", "Target 92%", "Target 95%"),
        90,
        6,
        6,
        tolerance="Tolerance 85%",
        ceiling=100,
    ),
    KpiProfile(
        "Children with a current plan",
        "percent",
        "bigger",
        ("95%",) * 3,
        94,
        4,
        6,
        tolerance="90%",
        ceiling=100,
    ),
    KpiProfile(
        "Smokers quit at four weeks",
        "percent",
        "bigger",
        (">40%", ">40%", ">45%"),
        45,
        8,
        4,
        critical="Below 25%",
    ),
    KpiProfile(
        "Participants leaving early",
        "percent",
        "smaller",
        ("<22.5%", "<22.5%", "<20%"),
        24,
        10,
        3,
        critical="Higher than 55% leaving early",
    ),
    KpiProfile(
        "Days from referral to adoption",
        "days",
        "smaller",
        ("140 days",) * 3,
        150,
        30,
        3,
        tolerance="180 days",
        decimals=0,
    ),
    KpiProfile(
        "Health checks taken up",
        "percent",
        "bigger",
        ("35% minimum", "35% minimum", "40% minimum"),
        40,
        7,
        2,
    ),
    KpiProfile(
        "Families actively supported",
        "count",
        "bigger",
        ("100 active families",) * 3,
        105,
        15,
        2,
        tolerance="Tolerance 90 active families",
        decimals=0,
    ),
    KpiProfile("Visits within the agreed window", "percent", "bigger", ("50-75%",) * 3, 60, 12, 2),
    KpiProfile(
        "New measure: repeat referrals", "percent", "bigger", ("TBD*", "80%", "80%"), 78, 9, 1
    ),
    KpiProfile(
        "Clients reporting improved wellbeing",
        "percent",
        "bigger",
        (
            "Improvement on previous year (62%)",
            "Improvement on previous year",
            "Improvement on previous year",
        ),
        63,
        6,
        1,
    ),
]


# ------------------------------------------------------------------------------ the data


def contract_definitions(
    rng: np.random.Generator, count: int, *, first: int = 1, compile_terms: bool = True
) -> list[Contract]:
    """``count`` contracts of ``KPIS`` KPIs each, drawn from ``PROFILES``, validated (and
    compiled, unless ``compile_terms`` is false); ids count from ``first``."""
    weights = np.array([p.weight for p in PROFILES])
    kinds = rng.choice(len(PROFILES), size=(count, KPIS), p=weights / weights.sum())
    years = [
        {
            "year": y + 1,
            "label": f"{FIRST_YEAR + y}/{(FIRST_YEAR + y + 1) % 100:02d}",
            "start": f"{FIRST_YEAR + y}-04-01",
            "end": f"{FIRST_YEAR + y + 1}-03-31",
        }
        for y in range(YEARS)
    ]
    contracts = []
    for c in range(first - 1, first - 1 + count):
        kpis: list[JsonDict] = []
        for k in range(KPIS):
            p = PROFILES[int(kinds[c - first + 1, k])]
            kpi: JsonDict = {
                "code": f"K{k + 1:02d}",
                "name": f"{p.label} ({k + 1})",
                "unit": p.unit,
                "polarity": p.polarity,
                "frequency": "Quarterly",
                "category": "quality",
            }
            if len(set(p.targets)) == 1:
                kpi["target"] = p.targets[0]
            else:
                kpi["targets"] = {y + 1: text for y, text in enumerate(p.targets)}
            if p.tolerance:
                kpi["tolerance"] = p.tolerance
            if p.critical:
                kpi["critical_failure"] = p.critical
            kpis.append(kpi)
        contract = Contract.model_validate(
            {
                "id": f"bench-{c + 1:03d}",
                "name": f"Benchmark contract {c + 1:03d}",
                "commissioner": {"name": "The Council"},
                "provider": {"name": f"Provider {c + 1:03d}"},
                "reporting": {"period": "quarter", "year_start_month": 4},
                "contract_years": years,
                "kpis": kpis,
            }
        )
        if compile_terms:
            compile_contract(contract)  # every phrasing must read, as at a real contract load
        contracts.append(contract)
    return contracts


def figures_for(contract: Contract, rng: np.random.Generator) -> list[NewFigure]:
    """Twelve quarters of figures for every KPI: a level, a drift and noise; some returns missing."""
    periods = [parse_period(label, 4) for label in PERIODS]
    by_label = {p.label: p for p in PROFILES}
    rows = []
    step = np.arange(len(periods), dtype=float)
    for kpi in contract.kpis:
        p = by_label[kpi.name.rsplit(" (", 1)[0]]
        values = p.mean + p.sd * (
            rng.normal(0, 0.6) + rng.normal(0, 0.08) * step + rng.normal(0, 0.6, len(periods))
        )
        values = np.clip(values, 0.0, p.ceiling if p.ceiling is not None else np.inf)
        values = np.round(values, p.decimals)
        missing = rng.random(len(periods)) < MISSING_RATE
        rows.extend(
            NewFigure(kpi.code, period, value=float(v))
            for period, v, gone in zip(periods, values, missing, strict=True)
            if not gone
        )
    return rows


# ------------------------------------------------------------------------------ bulk loading


def copy_rows(cursor: Any, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def copy_frame(cursor: Any, table: str, frame: pd.DataFrame) -> None:
    text = io.StringIO()
    frame.to_csv(text, header=False, index=False)
    with cursor.copy(
        f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN WITH (FORMAT csv)"
    ) as copy:
        copy.write(text.getvalue())


def copy_load(connection: Any, count: int, rng: np.random.Generator, chunk: int = 1000) -> int:
    """Contracts, KPIs, targets, one submission of twelve quarters each and their audit entries,
    straight into PostgreSQL with COPY on ``connection`` (a psycopg connection to the schema,
    already migrated). Returns how many figures were stored."""
    from kpibot.engine.periods import parse_period

    periods = [parse_period(label, 4) for label in PERIODS]
    by_label = {p.label: p for p in PROFILES}
    now = datetime(2020, 5, 1, tzinfo=UTC)
    figure_id = audit_id = 0
    stored = 0
    with connection.cursor() as cursor:
        # A bulk load of rows consistent by construction: skip the per-row foreign-key triggers,
        # and build the figures' plain indexes once at the end instead of row by row.
        cursor.execute("SET session_replication_role = replica")
        indexes = cursor.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "WHERE t.relname = 'figures' AND t.relnamespace = current_schema()::regnamespace "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
        ).fetchall()
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        for first in range(1, count + 1, chunk):
            size = min(chunk, count - first + 1)
            contracts = contract_definitions(rng, size, first=first, compile_terms=False)
            contract_rows, kpi_rows, target_rows, audit_rows, submission_rows = [], [], [], [], []
            for c in contracts:
                # As ContractRepository.upsert stores it: content hash, phrase readings.
                definition = json.dumps(stored_definition(c))
                contract_rows.append(
                    (
                        c.id,
                        c.name,
                        c.provider.name,
                        c.commissioner.name,
                        definition,
                        content_hash(c),
                        *kept_readings(c),
                        now,
                        "benchmark",
                    )
                )
                for position, k in enumerate(c.kpis):
                    kpi_rows.append(
                        (c.id, k.code, position, k.name, k.unit, k.polarity, k.category)
                    )
                    for y in c.contract_years:
                        target_rows.append(
                            (
                                c.id,
                                k.code,
                                y.year,
                                k.target_text(y.year),
                                k.tolerance_text(y.year),
                                k.critical_text(y.year),
                            )
                        )
                audit_id += 1
                audit_rows.append(
                    (audit_id, now, "benchmark", "load_contract", c.id, c.name, "ok", "{}")
                )
            # Twelve quarters per KPI: a level, a drift and noise; some returns missing.
            profile = [by_label[k.name.rsplit(" (", 1)[0]] for c in contracts for k in c.kpis]
            mean = np.asarray([p.mean for p in profile])[:, None]
            sd = np.asarray([p.sd for p in profile])[:, None]
            ceiling = np.asarray([p.ceiling if p.ceiling is not None else np.inf for p in profile])
            step = np.arange(len(periods), dtype=float)[None, :]
            n = len(profile)
            values = mean + sd * (
                rng.normal(0, 0.6, (n, 1))
                + rng.normal(0, 0.08, (n, 1)) * step
                + rng.normal(0, 0.6, (n, len(periods)))
            )
            values = np.clip(values, 0.0, ceiling[:, None])
            decimals = np.asarray([p.decimals for p in profile])[:, None]
            values = np.where(decimals == 0, np.round(values), np.round(values, 1))
            present = rng.random((n, len(periods))) >= MISSING_RATE
            kpi_index, period_index = np.nonzero(present)
            owners = np.repeat(np.arange(size), KPIS)[kpi_index]
            codes = np.asarray([k.code for c in contracts for k in c.kpis], dtype=object)
            ids = np.asarray([c.id for c in contracts], dtype=object)
            submission_ids = first + np.arange(size)
            for c, sid in zip(contracts, submission_ids.tolist(), strict=True):
                submission_rows.append(
                    (sid, c.id, "benchmark", now, "import", None, 0, f"bench:{c.id}", None)
                )
                audit_id += 1
                audit_rows.append(
                    (
                        audit_id,
                        now,
                        "benchmark",
                        "submit",
                        c.id,
                        None,
                        "ok",
                        json.dumps({"submission_id": sid}),
                    )
                )
            rows = len(kpi_index)
            frame = pd.DataFrame(
                {
                    "id": figure_id + 1 + np.arange(rows),
                    "contract_id": ids[owners],
                    "kpi_code": codes[kpi_index],
                    "period_label": np.asarray(PERIODS, dtype=object)[period_index],
                    "period_start": np.asarray(
                        [p.start.isoformat() for p in periods], dtype=object
                    )[period_index],
                    "period_end": np.asarray([p.end.isoformat() for p in periods], dtype=object)[
                        period_index
                    ],
                    "period_kind": "quarter",
                    "value": values[kpi_index, period_index],
                    "submission_id": submission_ids[owners],
                    "submitted_by": "benchmark",
                    "submitted_at": now.isoformat(),
                    "late": False,
                    "status": "submitted",
                }
            )
            figure_id += rows
            stored += rows
            copy_rows(
                cursor,
                "contracts",
                [
                    "id",
                    "name",
                    "provider_name",
                    "commissioner_name",
                    "definition",
                    "content_hash",
                    "readings",
                    "readings_key",
                    "loaded_at",
                    "loaded_by",
                ],
                contract_rows,
            )
            copy_rows(
                cursor,
                "kpis",
                ["contract_id", "code", "position", "name", "unit", "polarity", "category"],
                kpi_rows,
            )
            copy_rows(
                cursor,
                "targets",
                [
                    "contract_id",
                    "kpi_code",
                    "year",
                    "target_text",
                    "tolerance_text",
                    "critical_text",
                ],
                target_rows,
            )
            copy_rows(
                cursor,
                "submissions",
                [
                    "id",
                    "contract_id",
                    "submitted_by",
                    "submitted_at",
                    "source",
                    "filename",
                    "row_count",
                    "idempotency_key",
                    "note",
                ],
                submission_rows,
            )
            copy_frame(cursor, "figures", frame)
            copy_rows(
                cursor,
                "audit_events",
                ["id", "at", "actor", "action", "contract_id", "subject", "outcome", "detail"],
                audit_rows,
            )
            connection.commit()
            print(f"  loaded {first + size - 1:,} contracts, {stored:,} figures", flush=True)
        for table in ("figures", "submissions", "audit_events"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                f"(SELECT max(id) FROM {table}))"
            )
        for _name, definition in indexes:
            cursor.execute(definition)
        connection.commit()
        for table in ("contracts", "kpis", "targets", "submissions", "figures", "audit_events"):
            cursor.execute(f"ANALYZE {table}")  # this schema's tables only (search_path)
        connection.commit()
    return stored
