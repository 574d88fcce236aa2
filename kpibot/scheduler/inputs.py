"""What the planner is given: contracts as it sees them, shared calendars, horizons, receipts.

The live tick and ``kpibot schedule preview`` build their ``ContractInputs`` with the functions
here, so both run the planner on the same inputs.

>>> inputs = contract_inputs(contract, calendar_for(contract), read_receipts(db, [contract.id])
...                          .get(contract.id))  # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import json
import logging
import weakref
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from pydantic import BaseModel, TypeAdapter
from sqlalchemy import func, select

from kpibot.engine.calendar import CalendarError, DueReturn, ReturnCalendar
from kpibot.engine.model import Contract
from kpibot.engine.reminders import IncidentClock
from kpibot.scheduler.plan import ContractInputs
from kpibot.store.database import Database
from kpibot.store.schema import FigureRecord, as_utc

log = logging.getLogger(__name__)

# The planner reads a contract's identity, parties, years, reporting and calendar; nothing else.
PLANNER_FIELDS = (
    "id",
    "name",
    "commissioner",
    "provider",
    "financial_year_start_month",
    "reporting",
    "contract_years",
    "calendar",
)


def read_receipts(
    db: Database,
    contract_ids: Iterable[str] | None = None,
    labels: Iterable[str] | None = None,
) -> dict[str, dict[str, datetime]]:
    """When each return was received: the earliest figure per (contract, period), in UTC.

    Every figure counts, amendments and demo history included. One grouped query.

    >>> # read_receipts(db, ["one-psychology"]) -> {"one-psychology": {"2019/20 Q3": datetime(…)}}
    """
    first = FigureRecord.submitted_at
    # func.min keeps the column's type, so SQLite's text comes back as an aware UTC datetime.
    query = select(FigureRecord.contract_id, FigureRecord.period_label, func.min(first)).group_by(
        FigureRecord.contract_id, FigureRecord.period_label
    )
    if contract_ids is not None:
        query = query.where(FigureRecord.contract_id.in_(list(contract_ids)))
    if labels is not None:
        query = query.where(FigureRecord.period_label.in_(sorted(set(labels))))
    with db.session(read_only=True) as session:
        rows = session.execute(query).all()
    out: dict[str, dict[str, datetime]] = {}
    for contract_id, label, when in rows:
        out.setdefault(contract_id, {})[label] = when
    return out


def contract_inputs(
    contract: Contract,
    calendar: ReturnCalendar | None,
    received: Mapping[str, datetime] | None = None,
    incidents: Sequence[IncidentClock] = (),
) -> ContractInputs:
    """The planner's inputs for one contract: the same construction for the tick and preview.

    Receipts are normalised to UTC: the planner compares them with Europe/London moments, and
    Python compares two datetimes sharing one zone by wall time, which is wrong in the autumn's
    repeated hour.
    """
    got = {label: as_utc(when) for label, when in (received or {}).items()}
    return ContractInputs(contract, calendar, received=got, incidents=tuple(incidents))


def planner_contract(definition: Mapping[str, Any]) -> Contract:
    """A stored contract as the planner sees it: identity, parties, years, reporting, calendar.

    The planner never reads KPIs, so only the first is kept (the model requires one); with 40
    KPIs per contract that makes loading 10,000 contracts a matter of seconds, not minutes.
    """
    data = {k: definition[k] for k in PLANNER_FIELDS if k in definition}
    kpis = list(definition.get("kpis", []))
    # ... and the milestones, which it chases.
    milestones = [k for k in kpis[1:] if isinstance(k, Mapping) and k.get("kind") == "milestone"]
    data["kpis"] = kpis[:1] + milestones
    # Parts many contracts have alike (parties, reporting, years, calendar) are validated once
    # and shared, and parts left at their defaults (the terms the planner never reads) are one
    # instance for all: pydantic keeps a value it is given already validated, and a Contract is
    # frozen. Ten thousand contracts held by the tick are 70 MB smaller for it.
    for name in _SHARED_FIELDS:
        if name in data:
            data[name] = _shared(name, data[name])
    return Contract.model_validate({**_planner_defaults(), **data})


_SHARED_FIELDS = ("commissioner", "provider", "reporting", "contract_years", "calendar")
_SHARED: dict[tuple[str, str], Any] = {}
_SHARED_SIZE = 4096


def _shared(name: str, raw: Any) -> Any:
    """``raw`` validated as Contract field ``name``, one object for every contract alike."""
    key = (name, json.dumps(raw, sort_keys=True, default=str))
    hit = _SHARED.get(key)
    if hit is None:
        if len(_SHARED) >= _SHARED_SIZE:
            _SHARED.clear()
        hit = _SHARED[key] = _adapter(name).validate_python(raw)
    return hit


@cache
def _adapter(name: str) -> TypeAdapter[Any]:
    annotation = Contract.model_fields[name].annotation
    assert annotation is not None  # every Contract field is annotated
    return TypeAdapter(annotation)


@cache
def _planner_defaults() -> dict[str, Any]:
    """The default of every Contract field that holds a model (a contract's own value, when it
    has one, replaces it)."""
    defaults = {
        name: field.get_default(call_default_factory=True)
        for name, field in Contract.model_fields.items()
    }
    return {name: value for name, value in defaults.items() if isinstance(value, BaseModel)}


def read_milestones(db: Database, contracts: Iterable[Contract]) -> dict[str, dict[str, datetime]]:
    """When each milestone was reported achieved: the earliest current figure of 1 or more.

    >>> # read_milestones(db, [contract]) -> {"one-psychology": {"M1": datetime(…)}}
    """
    wanted = {c.id: [k.code for k in c.kpis if k.kind == "milestone"] for c in contracts}
    wanted = {cid: codes for cid, codes in wanted.items() if codes}
    out: dict[str, dict[str, datetime]] = {}
    if not wanted:
        return out
    codes = sorted({code for codes in wanted.values() for code in codes})
    query = select(
        FigureRecord.contract_id,
        FigureRecord.kpi_code,
        FigureRecord.value,
        FigureRecord.submitted_at,
        FigureRecord.supersedes_id,
        FigureRecord.id,
    ).where(FigureRecord.contract_id.in_(list(wanted)), FigureRecord.kpi_code.in_(codes))
    with db.session(read_only=True) as session:
        rows = session.execute(query).all()
    replaced = {r.supersedes_id for r in rows if r.supersedes_id is not None}
    for cid, code, value, when, _sup, rid in rows:
        if rid in replaced or code not in wanted.get(cid, ()) or value is None or value < 1:
            continue
        got = out.setdefault(cid, {})
        stamp = as_utc(when)
        if code not in got or stamp < got[code]:
            got[code] = stamp
    return out


def _calendar_key(contract: Contract) -> str:
    years = sorted((y.start.isoformat(), y.end.isoformat()) for y in contract.contract_years)
    terms = [
        contract.calendar,
        contract.reporting.model_dump(),
        contract.financial_year_start_month,
        years,
    ]
    return json.dumps(terms, sort_keys=True, default=str)


class HorizonCalendar:
    """A calendar seen over ``[start, end]``: only the returns whose messages can fall there.

    For any window inside the horizon the planner gives exactly what it gives with the whole
    calendar (the test suite checks this), provided it keeps its current reach: a ladder from
    ``max(before_days)`` before a due date to the escalation after it, a summary
    ``summary_grace_days`` after, and a service failure looking back two periodic returns.
    Everything else is read from the full calendar.
    """

    def __init__(self, calendar: ReturnCalendar, start: date, end: date) -> None:
        self._calendar = calendar
        spec = calendar.spec.reminders
        before = timedelta(days=max(spec.before_days, default=0) + 2)
        # A working-day ladder of N days spans at most 2N + 14 calendar days, holidays included.
        after_days = max(calendar.spec.summary_grace_days, 2 * spec.escalate_after_working_days)
        after = timedelta(days=after_days + 16)
        rets = calendar.returns_due_between(date.min, date.max)
        dues = [r.due_date for r in rets]
        lo = bisect.bisect_left(dues, start - after)
        # Two earlier periodic returns: a service failure looks back over three in a row.
        earlier = 0
        while lo > 0 and earlier < 2:
            lo -= 1
            earlier += rets[lo].kind != "annual"
        # One return past the end: the planner lists meetings up to its last return.
        hi = bisect.bisect_right(dues, end + before) + 1
        self._returns = rets[lo:hi]

    def returns_due_between(self, start: date, end: date) -> list[DueReturn]:
        return [r for r in self._returns if start <= r.due_date <= end]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._calendar, name)


class SharedCalendars:
    """One ``ReturnCalendar`` per set of calendar terms, shared by every contract that has them.

    A calendar depends only on the ``calendar:`` section, the reporting periods, the financial
    year and the contract years, so thousands of contracts on a council's standard terms share
    a handful; a calendar lives as long as a contract uses it.
    """

    def __init__(self) -> None:
        self._calendars: weakref.WeakValueDictionary[str, ReturnCalendar] = (
            weakref.WeakValueDictionary()
        )

    def get(self, contract: Contract) -> ReturnCalendar | None:
        """The contract's calendar; None without one, or when its terms cannot be used."""
        if not contract.calendar:
            return None
        key = _calendar_key(contract)
        calendar = self._calendars.get(key)
        if calendar is None:
            try:
                calendar = ReturnCalendar(contract)
            except CalendarError as error:
                log.warning("contract %s has an unusable calendar: %s", contract.id, error)
                return None
            self._calendars[key] = calendar
        return calendar
