"""Each contract's return calendar, built once per contract and cached.

>>> # due_date_for(contract, contract.parse_period("2019/20 Q1"))  -> date(2020, 2, 15) for seed 001
"""

from __future__ import annotations

from datetime import date

from kpibot.engine.calendar import ReturnCalendar
from kpibot.engine.model import Contract
from kpibot.engine.periods import Period

_CACHE: dict[int, tuple[Contract, ReturnCalendar | None]] = {}


def calendar_for(contract: Contract) -> ReturnCalendar | None:
    """The contract's calendar, or None when the contract sets no return dates."""
    hit = _CACHE.get(id(contract))
    if hit is None:
        cal = ReturnCalendar(contract) if contract.calendar else None
        if len(_CACHE) > 512:
            _CACHE.clear()
        hit = _CACHE[id(contract)] = (contract, cal)
    return hit[1]


def due_date_for(contract: Contract, period: Period) -> date | None:
    cal = calendar_for(contract)
    if cal is None or period.kind != contract.reporting.period:
        return None
    return cal.due_date(period)
