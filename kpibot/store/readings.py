"""Phrase readings kept beside each contract, so a process compiles a contract's terms without
reading its prose again.

Reading a target phrase ("At least 85% within 15 working days") takes about 0.3 ms, and a
contract of 40 KPIs over three years has a hundred or more; compiling from kept readings takes
a fraction of a millisecond. A process reads every phrasing once anyway
(``kpibot.engine.targets`` keeps what it read), so this matters for the first status of a
contract in a process: after a start, and after the contract is loaded again.

Readings are derived data. Each set is stamped with the grammar that made it (a digest of
``kpibot/engine``'s source): after any change to the engine the stamp differs and the phrases
are read afresh, so a reading can never outlive the code that made it.
"""

from __future__ import annotations

import hashlib
import logging
from functools import cache
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from kpibot import engine
from kpibot.engine.model import Contract
from kpibot.engine.targets import (
    ReadingKey,
    Target,
    TargetError,
    readings_of,
    remember_readings,
)

log = logging.getLogger(__name__)

_READINGS = TypeAdapter(list[tuple[ReadingKey, Target]])


@cache
def grammar_key() -> str:
    """A digest of the engine's source files: readings made by other code are not used."""
    digest = hashlib.sha256()
    for path in sorted(Path(engine.__file__).resolve().parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def kept_readings(contract: Contract) -> tuple[str | None, str | None]:
    """(the readings as JSON, the grammar key) to store with ``contract``; (None, None) when
    its terms do not compile (the contract is then refused before it is stored anyway)."""
    try:
        pairs = readings_of(contract)
    except TargetError:
        return None, None
    return _READINGS.dump_json(pairs, exclude_defaults=True).decode(), grammar_key()


def recall_readings(text: str | None, key: str | None) -> bool:
    """Take stored readings into this process when this grammar made them; whether it did."""
    if not text or key != grammar_key():
        return False
    try:
        pairs = _READINGS.validate_json(text)
    except ValidationError:
        log.warning("stored phrase readings did not validate; the phrases will be read afresh")
        return False
    remember_readings(pairs)
    return True
