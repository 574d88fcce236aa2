"""The planner's view of a stored contract: what it needs, light enough for ten thousand."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from kpibot.engine.model import Contract
from kpibot.files.contracts import load_contract_file
from kpibot.scheduler.inputs import PLANNER_FIELDS, planner_contract
from kpibot.store.repositories import stored_definition

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(
    [
        *ROOT.joinpath("config", "contracts").glob("*.yaml"),
        *ROOT.glob("tests/fixtures/contracts/*.yaml"),
    ]
)


def validated_alone(definition: Mapping[str, Any]) -> Contract:
    """The planner contract as it was first built: every part validated for itself."""
    data = {k: definition[k] for k in PLANNER_FIELDS if k in definition}
    kpis = list(definition.get("kpis", []))
    data["kpis"] = kpis[:1] + [k for k in kpis[1:] if k.get("kind") == "milestone"]
    return Contract.model_validate(data)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_a_planner_contract_is_the_contract_its_parts_make(path: Path) -> None:
    contract = load_contract_file(path)
    for definition in (stored_definition(contract), contract.model_dump(mode="json")):
        planned = planner_contract(definition)
        assert planned == validated_alone(definition)
        assert (
            planned.id == contract.id and planned.calendar == validated_alone(definition).calendar
        )


def test_contracts_alike_share_their_parts_and_differ_where_they_differ() -> None:
    contract = load_contract_file(FILES[0])
    first = stored_definition(contract)
    second = {**first, "id": "another", "provider": {"name": "Another Provider"}}
    a, b = planner_contract(first), planner_contract(second)
    assert a.reporting is b.reporting and a.contract_years[0] is b.contract_years[0]
    assert a.payments is b.payments  # the defaults the planner never reads
    assert (a.id, b.id) == (contract.id, "another")
    assert a.provider.name == contract.provider.name and b.provider.name == "Another Provider"
