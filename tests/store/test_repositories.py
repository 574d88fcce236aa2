"""The store's contract: every test runs on SQLite and PostgreSQL through the ``db`` fixtures."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, String, func, insert, inspect, select, text, update
from sqlalchemy.exc import IntegrityError, StatementError

from kpibot.engine.model import Contract
from kpibot.engine.periods import parse_period
from kpibot.files.contracts import load_contract_file
from kpibot.store import (
    FRAME_COLUMNS,
    AmendmentNeedsReason,
    AuditLog,
    ConcurrentChange,
    ContractRepository,
    Database,
    DuplicateFigureInBatch,
    FigureRejected,
    FigureRepository,
    IdempotencyKeyConflict,
    NewFigure,
    StoreError,
    SubmissionResult,
    UnknownContract,
    UnknownKPI,
)
from kpibot.store.repositories import stored_definition
from kpibot.store.schema import (
    AuditEventRecord,
    Base,
    FigureRecord,
    KPIRecord,
    OutboxRecord,
    SchedulerStateRecord,
    SubmissionRecord,
    TargetRecord,
)

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_FIXTURES = ROOT / "tests" / "fixtures" / "contracts"

# Every table the models describe, plus Alembic's own; later revisions add to the models too.
TABLES = {*Base.metadata.tables, "alembic_version"}
STORE_TABLES = {
    "contracts",
    "kpis",
    "targets",
    "submissions",
    "figures",
    "audit_events",
    "outbox",
    "scheduler_state",
}
Q1, Q2, Q3 = (parse_period(f"2019/20 Q{q}") for q in (1, 2, 3))


def make_contract(contract_id: str = "demo", *, drop_kpi: str | None = None) -> Contract:
    kpis: list[dict[str, Any]] = [
        {
            "code": "1a",
            "name": "New birth visits within 14 days",
            "polarity": "bigger",
            "unit": "percent",
            "targets": {0: "85%", 1: "90%"},
            "tolerance": {0: "80%", 1: "85%"},
            "incentive_weight": "0.005",
        },
        {
            "code": "2",
            "name": "Waiting time",
            "polarity": "Smaller is better",
            "unit": "days",
            "target": "< 28",
            "critical_failure": "> 60",
            "benchmarks": {"national_average": {"2019/20": 30.5}},
        },
        {"code": "3", "name": "Satisfaction", "target": "For information only"},
    ]
    return Contract.model_validate(
        {
            "id": contract_id,
            "name": f"Contract {contract_id}",
            "commissioner": {"name": "Council", "slack_channel": "C1"},
            "provider": {"name": "Provider Trust"},
            "annual_contract_value": "1250000.00",
            "contract_years": [
                {"year": 0, "start": "2018-10-01", "end": "2019-03-31"},
                {"year": 1, "start": "2019-04-01", "end": "2020-03-31"},
            ],
            "kpis": [k for k in kpis if k["code"] != drop_kpi],
            "history": [{"kpi": "1a", "period": "2018/19 Q4", "value": 82.0}],
            "calendar": {"returns": {"rule": "15th of month after period"}},
        }
    )


def counts(db: Database) -> dict[str, int]:
    with db.session(read_only=True) as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (SubmissionRecord, FigureRecord, AuditEventRecord)
        }


@pytest.fixture
def contracts(db: Database) -> ContractRepository:
    repository = ContractRepository(db)
    repository.upsert(make_contract(), actor="loader")
    return repository


@pytest.fixture
def figures(db: Database, contracts: ContractRepository) -> FigureRepository:
    return FigureRepository(db)


def test_upgrade_creates_the_schema_the_models_describe(bare_db: Database) -> None:
    assert bare_db.revision() is None
    bare_db.upgrade()
    bare_db.upgrade()  # a second run is a no-op
    head = ScriptDirectory.from_config(bare_db.alembic_config()).get_current_head()
    assert bare_db.revision() == head
    assert STORE_TABLES < TABLES == set(inspect(bare_db.engine).get_table_names())
    with bare_db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        # The comparison is not vacuous: a drifted model is noticed.
        drifted = MetaData()
        for table in Base.metadata.tables.values():
            table.to_metadata(drifted)
        drifted.tables["contracts"].append_column(Column("extra", String(10)))
        assert [d[0] for d in compare_metadata(context, drifted)] == ["add_column"]


def test_downgrade_removes_everything_and_upgrade_restores_it(bare_db: Database) -> None:
    bare_db.upgrade()
    config = bare_db.alembic_config()
    with bare_db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(bare_db.engine).get_table_names()) == {"alembic_version"}
    bare_db.upgrade()
    assert set(inspect(bare_db.engine).get_table_names()) == TABLES


def test_dialect_is_reported(db: Database) -> None:
    assert db.dialect in {"sqlite", "postgresql"}


def test_contract_upsert_round_trips(db: Database) -> None:
    contracts = ContractRepository(db)
    contract = make_contract()
    load = contracts.upsert(contract, actor="loader")
    assert (load.created, load.changed) == (True, True)
    assert contracts.get("demo") == contract
    assert contracts.get("demo").kpis[0].incentive_weight == Decimal("0.005")  # type: ignore[union-attr]
    assert contracts.get("missing") is None
    contracts.upsert(make_contract("other"), actor="loader")
    assert contracts.ids() == ["demo", "other"]
    assert [c.id for c in contracts.all()] == ["demo", "other"]

    with db.session(read_only=True) as session:
        kpis = session.scalars(
            select(KPIRecord).where(KPIRecord.contract_id == "demo").order_by(KPIRecord.position)
        ).all()
        assert [(k.code, k.polarity, k.unit) for k in kpis] == [
            ("1a", "bigger", "percent"),
            ("2", "smaller", "days"),
            ("3", "bigger", None),
        ]
        targets = {
            (t.kpi_code, t.year): (t.target_text, t.tolerance_text, t.critical_text)
            for t in session.scalars(select(TargetRecord).where(TargetRecord.contract_id == "demo"))
        }
    assert targets[("1a", 0)] == ("85%", "80%", None)
    assert targets[("1a", 1)] == ("90%", "85%", None)
    assert targets[("2", 1)] == ("< 28", None, "> 60")
    assert len(targets) == 3 * 2

    again = contracts.upsert(contract, actor="loader")
    assert (again.created, again.changed) == (False, False)
    smaller = contracts.upsert(make_contract(drop_kpi="3"), actor="editor")
    assert (smaller.created, smaller.changed) == (False, True)
    assert [k.code for k in contracts.get("demo").kpis] == ["1a", "2"]  # type: ignore[union-attr]
    with db.session(read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(TargetRecord)) == 2 * 2 + 3 * 2
    loads = [e for e in AuditLog(db).recent(10, "demo") if e.action == "load_contract"]
    assert [e.detail["changed"] for e in loads] == [True, False, True]
    assert loads[0].actor == "editor"


@pytest.mark.parametrize(
    "path",
    sorted(
        [*ROOT.joinpath("config", "contracts").glob("*.yaml"), *CONTRACT_FIXTURES.glob("*.yaml")]
    ),
    ids=lambda p: p.stem,
)
def test_a_stored_definition_reads_back_to_the_same_contract(path: Path) -> None:
    # Only what differs from the model's defaults is stored: nothing the contract says may be
    # lost or changed on the way back (a default that re-derives differently would show here).
    contract = load_contract_file(path)
    stored = stored_definition(contract)
    whole = Contract.model_validate_json(contract.model_dump_json())
    assert Contract.model_validate_json(json.dumps(stored)) == whole
    assert Contract.model_validate(stored) == whole
    assert len(json.dumps(stored)) < len(contract.model_dump_json())


def test_submit_then_amend_without_reason_is_refused_and_writes_nothing(
    db: Database, figures: FigureRepository
) -> None:
    figures.submit("demo", [NewFigure("1a", Q1, numerator=45, denominator=50)], "U1", "chat")
    before = counts(db)
    amended = [
        NewFigure("1a", Q1, numerator=46, denominator=50),
        NewFigure("2", Q1, value=20.0),
    ]
    with pytest.raises(AmendmentNeedsReason) as refused:
        figures.submit("demo", amended, "U1", "chat")
    assert refused.value.figures == (("1a", "2019/20 Q1"),)
    assert "1a for 2019/20 Q1" in str(refused.value)
    with pytest.raises(AmendmentNeedsReason):
        figures.submit("demo", [NewFigure("1A", Q1, value=1.0, reason="  ")], "U1", "chat")
    assert counts(db) == before
    assert [f.numerator for f in figures.current("demo")] == [45]


def test_amend_with_reason_supersedes_and_keeps_history(
    db: Database, figures: FigureRepository
) -> None:
    first = figures.submit(
        "demo",
        [NewFigure("1a", Q1, numerator=45, denominator=50), NewFigure("2", Q1, value=30)],
        "provider",
        "import",
        filename="q1.xlsx",
    )
    second = figures.submit(
        "demo",
        [NewFigure("1A", Q1, numerator=47, denominator=50, reason="two visits were miscoded")],
        "officer",
        "chat",
    )
    [new] = second.figures
    assert new.supersedes_id == first.figures[0].id
    assert second.amendments == (new,)
    assert (new.kpi, new.reason) == ("1a", "two visits were miscoded")

    current = figures.current("demo", kpi="1a")
    assert [(f.id, f.numerator) for f in current] == [(new.id, 47)]
    assert {f.kpi for f in figures.current("demo")} == {"1a", "2"}

    history = figures.history("demo", "1a", Q1)
    assert [(f.numerator, f.submitted_by, f.reason) for f in history] == [
        (45, "provider", None),
        (47, "officer", "two visits were miscoded"),
    ]
    assert history[0].submitted_at <= history[1].submitted_at
    assert figures.history("demo", "1a", "2019/20  Q1") == history

    third = figures.submit(
        "demo", [NewFigure("1a", Q1, numerator=48, denominator=50, reason="late case")], "o", "cli"
    )
    assert third.figures[0].supersedes_id == new.id
    assert len(figures.history("demo", "1a", Q1)) == 3
    assert [f.numerator for f in figures.current("demo", "1a")] == [48]


def test_idempotency_key_replay_writes_nothing_and_returns_the_earlier_submission(
    db: Database, figures: FigureRepository
) -> None:
    rows = [NewFigure("1a", Q2, numerator=45, denominator=50), NewFigure("2", Q2, value=25.0)]
    first = figures.submit("demo", rows, "U1", "chat", idempotency_key="slack:123.456")
    before = counts(db)
    replay = figures.submit("demo", rows, "U1", "chat", idempotency_key="slack:123.456")
    assert counts(db) == before
    assert (first.duplicate, replay.duplicate) == (False, True)
    assert replay.submission_id == first.submission_id
    assert replay.figures == first.figures
    ContractRepository(db).upsert(make_contract("other"), actor="loader")
    with pytest.raises(IdempotencyKeyConflict):
        figures.submit("other", rows, "U1", "chat", idempotency_key="slack:123.456")


def test_a_batch_with_one_bad_row_leaves_the_store_unchanged(
    db: Database, figures: FigureRepository
) -> None:
    figures.submit("demo", [NewFigure("2", Q1, value=30.0)], "U1", "chat")
    before = counts(db)
    good = [NewFigure("1a", Q3, numerator=40, denominator=50), NewFigure("2", Q3, value=31.0)]
    with pytest.raises(FigureRejected) as broken:
        figures.submit("demo", [*good, NewFigure("3", Q3, numerator=1, denominator=-4)], "U", "api")
    assert broken.value.kpi == "3"
    assert "denominator cannot be negative" in str(broken.value)
    with pytest.raises(UnknownKPI):
        figures.submit("demo", [*good, NewFigure("99", Q3, value=1.0)], "U", "api")
    with pytest.raises(DuplicateFigureInBatch):
        figures.submit("demo", [*good, NewFigure("2", Q3, value=32.0)], "U", "api")
    with pytest.raises(FigureRejected):
        figures.submit("demo", [*good, NewFigure("3", Q3, value=float("nan"))], "U", "api")
    with pytest.raises(UnknownContract):
        figures.submit("nope", good, "U", "api")
    assert counts(db) == before
    assert [f.period for f in figures.current("demo")] == ["2019/20 Q1"]


def test_store_errors_are_one_sentence() -> None:
    for error in (
        UnknownContract("x"),
        UnknownKPI("x", "9"),
        AmendmentNeedsReason("x", [("1", "2019/20 Q1"), ("2", "2019/20 Q1")]),
        DuplicateFigureInBatch("x", "1", "2019/20 Q1"),
        FigureRejected("x", "a numerator cannot be negative", "1"),
        ConcurrentChange("x"),
        IdempotencyKeyConflict("k", "x", "y"),
    ):
        assert isinstance(error, StoreError)
        message = str(error)
        assert message[0].isupper() and message.endswith(".") and message.count(". ") == 0


def test_audit_rows_are_recorded(db: Database, figures: FigureRepository) -> None:
    figures.submit("demo", [NewFigure("1a", Q1, value=80.0)], "provider", "chat")
    figures.submit("demo", [NewFigure("1a", Q1, value=81.0, reason="typo")], "officer", "chat")
    audit = AuditLog(db)
    manual = audit.record(
        "U9",
        "refuse",
        "demo",
        "submit 2",
        outcome="refused",
        detail={"why": "not a provider", "on": date(2020, 1, 1)},
    )
    assert manual.detail == {"why": "not a provider", "on": "2020-01-01"}
    entries = audit.recent(10, contract_id="demo")
    assert [(e.action, e.actor, e.outcome) for e in entries] == [
        ("refuse", "U9", "refused"),
        ("amend", "officer", "ok"),
        ("submit", "officer", "ok"),
        ("submit", "provider", "ok"),
        ("load_contract", "loader", "ok"),
    ]
    amend = entries[1]
    assert amend.subject == "1a 2019/20 Q1"
    assert amend.detail["reason"] == "typo"
    assert (amend.detail["before"]["value"], amend.detail["after"]["value"]) == (80.0, 81.0)
    assert audit.recent(2) == entries[:2]
    with pytest.raises(ValueError):
        audit.record("U9", "submit", outcome="maybe")  # type: ignore[arg-type]


def test_figures_and_audit_events_are_append_only(db: Database, figures: FigureRepository) -> None:
    [row] = figures.submit("demo", [NewFigure("1a", Q1, value=80.0)], "U1", "chat").figures
    with db.session() as session:
        session.execute(update(FigureRecord).values(status="approved"))
    assert figures.current("demo")[0].status == "approved"
    for statement in (
        "UPDATE figures SET value = 99",
        "DELETE FROM figures",
        "UPDATE audit_events SET actor = 'someone else'",
        "DELETE FROM audit_events",
    ):
        with pytest.raises(IntegrityError, match="append-only"), db.session() as session:
            session.execute(text(statement))
    assert figures.current("demo")[0].value == 80.0


def test_aware_datetimes_round_trip_as_utc(db: Database) -> None:
    eastern = timezone(timedelta(hours=-5))
    submitted = datetime(2020, 1, 15, 19, 30, 15, 123456, tzinfo=eastern)
    ContractRepository(db).upsert(make_contract(), actor="loader")
    figures = FigureRepository(db, clock=lambda: submitted)
    result = figures.submit("demo", [NewFigure("1a", Q3, value=90.0)], "U1", "chat")
    [stored] = figures.current("demo")
    for when in (result.submitted_at, stored.submitted_at):
        assert when == submitted
        assert when.tzinfo is UTC
        assert when.hour == 0 and when.day == 16
    frame = figures.current_frame()
    assert frame.loc[0, "submitted_at"] == submitted

    due = datetime(2020, 4, 15, 9, 0, tzinfo=UTC)
    with db.session() as session:
        session.add(
            OutboxRecord(
                idempotency_key="demo|2019/20 Q3|reminder|provider|T-7",
                contract_id="demo",
                kind="reminder",
                audience="provider",
                platform="slack",
                channel="C1",
                period="2019/20 Q3",
                step="T-7",
                due_at=due.astimezone(eastern),
                payload={"text": "Return due"},
                created_at=submitted,
            )
        )
        session.add(SchedulerStateRecord(name="reminders", watermark=submitted))
    with db.session(read_only=True) as session:
        outbox = session.scalars(select(OutboxRecord)).one()
        state = session.get(SchedulerStateRecord, "reminders")
    assert (outbox.due_at, outbox.next_attempt_at, outbox.status, outbox.attempts) == (
        due,
        due,
        "pending",
        0,
    )
    assert outbox.due_at.tzinfo is UTC and state is not None and state.watermark.tzinfo is UTC
    assert state.watermark == submitted
    with pytest.raises(ValueError, match="naive datetime"):
        SchedulerStateRecord(name="naive", watermark=datetime(2020, 1, 1))
    with pytest.raises(StatementError, match="naive datetime"), db.session() as session:
        session.execute(
            insert(SchedulerStateRecord).values(name="naive", watermark=datetime(2020, 1, 1))
        )


def test_current_frame_has_one_row_per_current_figure(
    db: Database, figures: FigureRepository
) -> None:
    assert list(figures.current_frame().columns) == FRAME_COLUMNS
    assert figures.current_frame().empty
    ContractRepository(db).upsert(make_contract("other"), actor="loader")
    figures.submit(
        "demo", [NewFigure("1a", q, numerator=40, denominator=50) for q in (Q1, Q2)], "U1", "import"
    )
    figures.submit("demo", [NewFigure("1a", Q2, value=81.0, late=True, reason="x")], "U1", "chat")
    figures.submit("other", [NewFigure("2", Q1, value=12.0, benchmark=30.5)], "U1", "chat")

    frame = figures.current_frame()
    assert list(frame.columns) == FRAME_COLUMNS
    assert list(zip(frame.contract, frame.kpi, frame.period, strict=True)) == [
        ("demo", "1a", "2019/20 Q1"),
        ("demo", "1a", "2019/20 Q2"),
        ("other", "2", "2019/20 Q1"),
    ]
    assert frame.late.tolist() == [False, True, False]
    assert frame.value.iloc[1] == 81.0 and frame.benchmark.iloc[2] == 30.5
    assert frame.period_start.iloc[0] == datetime(2019, 4, 1)
    only_other = figures.current_frame(["other"])
    assert only_other.contract.tolist() == ["other"]
    assert figures.current_frame([]).empty


def run_together(*calls: Callable[[], object]) -> list[object]:
    """Run each call on its own thread, all released at once; return each result or error."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[object] = [None] * len(calls)

    def run(index: int, call: Callable[[], object]) -> None:
        barrier.wait()
        try:
            outcomes[index] = call()
        except Exception as error:
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=item) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_concurrent_submits_with_one_key_store_one_submission(
    db: Database, figures: FigureRepository
) -> None:
    for attempt in range(5):
        rows = [NewFigure("1a", Q1.shift(attempt), value=float(attempt))]
        key = f"key-{attempt}"
        results = run_together(
            *[
                lambda rows=rows, key=key: figures.submit(
                    "demo", rows, "U1", "chat", idempotency_key=key
                )
            ]
            * 2
        )
        assert all(isinstance(r, SubmissionResult) for r in results), results
        submitted = [r for r in results if isinstance(r, SubmissionResult)]
        assert sorted(r.duplicate for r in submitted) == [False, True]
        assert len({r.submission_id for r in submitted}) == 1
    with db.session(read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(SubmissionRecord)) == 5
        assert session.scalar(select(func.count()).select_from(FigureRecord)) == 5


def test_concurrent_first_figures_leave_exactly_one_current(
    db: Database, figures: FigureRepository
) -> None:
    outcomes = run_together(
        *[
            lambda v=v: figures.submit("demo", [NewFigure("2", Q1, value=v)], "U", "chat")
            for v in (1.0, 2.0)
        ]
    )
    refused = [o for o in outcomes if isinstance(o, StoreError)]
    assert len(refused) == 1 and sum(isinstance(o, SubmissionResult) for o in outcomes) == 1
    assert isinstance(refused[0], AmendmentNeedsReason | ConcurrentChange)
    assert len(figures.current("demo", "2")) == 1
    assert len(figures.history("demo", "2", Q1)) == 1


def awkward_contract(contract_id: str) -> Contract:
    """make_contract with KPI codes that CSV and COPY must not mangle."""
    base = make_contract(contract_id)
    codes = ["K,1", "NA", 'K "3"']
    kpis = [k.model_copy(update={"code": code}) for k, code in zip(base.kpis, codes, strict=True)]
    return base.model_copy(update={"kpis": kpis, "history": []})


def value_rows(frame) -> list[tuple[object, ...]]:
    out = []
    for c, k, p, v, b in zip(
        frame["contract"],
        frame["kpi"],
        frame["period"],
        frame["value"],
        frame["benchmark"],
        strict=True,
    ):
        out.append((str(c), str(k), str(p), repr(float(v)), repr(float(b))))
    return sorted(out)


def test_lean_figure_reads_agree_in_bulk_and_one_by_one(db: Database) -> None:
    contracts = ContractRepository(db)
    figures = FigureRepository(db)
    ids = [f"awkward-{i:03d}" for i in range(70)]  # more than one query's worth of placeholders
    for cid in ids:
        contracts.upsert(awkward_contract(cid), actor="loader")
        figures.submit(
            cid,
            [NewFigure("K,1", Q1, value=1.5), NewFigure("NA", Q2, value=None, numerator=1.0)],
            actor="u",
            source="import",
        )
    figures.submit(
        ids[3],
        [
            NewFigure('K "3"', Q3, value=7.0, benchmark=30.5),
            NewFigure("K,1", Q1, value=2.5, reason="r"),
        ],
        actor="u",
        source="chat",
    )
    bulk = figures.current_values(ids)
    alone = [row for cid in ids for row in value_rows(figures.current_values([cid]))]
    everything = figures.current_values()
    assert value_rows(bulk) == sorted(alone) == value_rows(everything)
    assert ("awkward-003", "K,1", "2019/20 Q1", "2.5", "nan") in value_rows(bulk)
    assert ("awkward-003", 'K "3"', "2019/20 Q3", "7.0", "30.5") in value_rows(bulk)
    assert ("awkward-005", "NA", "2019/20 Q2", "nan", "nan") in value_rows(bulk)
    only = figures.current_values([ids[3]], ["K,1"])
    assert value_rows(only) == [("awkward-003", "K,1", "2019/20 Q1", "2.5", "nan")]

    latest = figures.latest_ids(ids)
    assert set(latest) == set(ids) and latest[ids[3]] == max(latest.values())
    first = figures.latest_ids([ids[4]])[ids[4]]
    added = figures.added_since(ids[3], first)
    assert sorted((k, p, has) for _i, k, p, has in added) == [
        ('K "3"', "2019/20 Q3", True),
        ("K,1", "2019/20 Q1", True),
    ]
    assert max(i for i, *_ in added) == latest[ids[3]]
    assert [c.id for c in contracts.many(ids[::-1])] == ids
    assert contracts.many([ids[0], "no-such"])[0] == contracts.get(ids[0])


@pytest.mark.postgres
def test_a_server_that_hangs_mid_submission_stores_none_of_it_and_says_unavailable(
    postgres_only: Database,
) -> None:
    # The database goes away between a submission's writes: all of it or none, never half.
    from sqlalchemy import event

    from kpibot.store.database import Timeouts, unavailable
    from tests.hanging_proxy import HangingProxy

    db = postgres_only
    ContractRepository(db).upsert(make_contract(), actor="loader")
    before = counts(db)
    with HangingProxy((db.url.host or "127.0.0.1", db.url.port or 5432)) as proxy:
        flaky = Database(
            db.url.set(host="127.0.0.1", port=proxy.port),
            timeouts=Timeouts(connect=2, statement=1, pool=1, ping=0.5),
        )
        written: list[str] = []

        @event.listens_for(flaky.engine, "after_cursor_execute")
        def hang_after_the_first_figure(_conn, _cursor, statement, *_args) -> None:
            if statement.lstrip().upper().startswith("INSERT INTO FIGURES") and not written:
                written.append(statement)
                proxy.hang()

        try:
            with pytest.raises(Exception) as caught:
                FigureRepository(flaky).submit(
                    "demo",
                    [NewFigure("1a", Q1, value=80.0), NewFigure("2", Q1, value=20.0)],
                    "U1",
                    "import",
                )
        finally:
            flaky.dispose()
    assert written and unavailable(caught.value), repr(caught.value)
    assert counts(db) == before
    assert FigureRepository(db).current("demo") == []
