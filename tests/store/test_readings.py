"""Phrase readings kept beside each contract: used only when this very code made them.

Every test runs on SQLite and PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from kpibot.engine import targets
from kpibot.engine.model import Contract
from kpibot.engine.targets import compile_contract
from kpibot.store import ContractRepository, Database
from kpibot.store.audit import AuditLog
from kpibot.store.readings import grammar_files, grammar_key
from kpibot.store.schema import ContractRecord


@pytest.fixture
def seed(seed_contracts: dict[str, Contract]) -> Contract:
    return seed_contracts["childrens-trust"]


@pytest.fixture
def phrases_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The phrases the grammar reads from now on (each one, as it reads it)."""
    read: list[str] = []
    real = targets.read_phrase

    def counting(text: str, *args: object, **kwargs: object) -> object:
        read.append(text)
        return real(text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(targets, "read_phrase", counting)
    yield read
    targets.clear_terms_cache()


def a_new_process() -> None:
    """What a process that has read no phrase yet knows: nothing."""
    targets.clear_terms_cache()


def test_a_contract_read_back_compiles_without_reading_a_phrase_again(
    db: Database, seed: Contract, phrases_read: list[str]
) -> None:
    expected = compile_contract(seed)
    repository = ContractRepository(db)
    repository.upsert(seed, actor="loader")
    a_new_process()
    phrases_read.clear()
    stored = repository.get(seed.id)
    assert stored is not None
    assert compile_contract(stored) == expected
    assert phrases_read == []
    assert repository.stale_readings() == []


def test_readings_made_by_other_code_are_ignored_then_stored_afresh(
    db: Database, seed: Contract, phrases_read: list[str]
) -> None:
    expected = compile_contract(seed)
    repository = ContractRepository(db)
    repository.upsert(seed, actor="loader")
    with db.session() as session:  # as a release with another grammar would have left them
        session.execute(update(ContractRecord).values(readings_key="0" * 64))
    version = AuditLog(db).recent(1, seed.id)[0].id
    assert repository.stale_readings() == [seed.id]

    a_new_process()
    phrases_read.clear()
    stored = repository.get(seed.id)
    assert stored is not None
    assert compile_contract(stored) == expected
    assert phrases_read, "stale readings must not be used: the phrases are read afresh"

    assert repository.keep_readings([stored]) == 1
    assert repository.stale_readings() == []
    # Derived data, not a change to the contract: no audit entry, so no cached status moves.
    assert AuditLog(db).recent(1, seed.id)[0].id == version
    a_new_process()
    phrases_read.clear()
    again = repository.get(seed.id)
    assert again is not None and compile_contract(again) == expected
    assert phrases_read == []


def test_damaged_readings_are_ignored_with_a_warning(
    db: Database, seed: Contract, phrases_read: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    expected = compile_contract(seed)
    repository = ContractRepository(db)
    repository.upsert(seed, actor="loader")
    with db.session() as session:
        session.execute(update(ContractRecord).values(readings='[["not", "a reading"]]'))
    a_new_process()
    with caplog.at_level(logging.WARNING, logger="kpibot.store.readings"):
        stored = repository.get(seed.id)
    assert stored is not None and compile_contract(stored) == expected
    assert "did not validate" in caplog.text


def test_readings_are_not_kept_for_a_contract_loaded_again_meanwhile(
    db: Database, seed: Contract
) -> None:
    repository = ContractRepository(db)
    repository.upsert(seed, actor="loader")
    changed = seed.model_copy(update={"name": "Renamed while the readings were worked out"})
    repository.upsert(changed, actor="editor")
    with db.session() as session:
        session.execute(update(ContractRecord).values(readings_key=None))
    assert repository.keep_readings([seed]) == 0  # the stored definition is another one now
    assert repository.stale_readings() == [seed.id]
    assert repository.keep_readings([changed]) == 1
    assert repository.stale_readings() == []


def test_the_grammar_key_covers_every_module_a_reading_depends_on() -> None:
    key = grammar_key()
    assert len(key) == 64 and int(key, 16) >= 0
    names = {path.name for path in grammar_files()}
    # targets.py and what it imports, directly (reading) or not (phrases, through reading) ...
    assert {"targets.py", "reading.py", "phrases.py", "numbers.py", "model.py"} <= names
    # ... and not what only uses readings: changing how figures are evaluated keeps them.
    assert not {"evaluate.py", "status.py", "scorecard.py"} & names
