"""Phrase readings kept beside each contract, so a process compiles a contract's terms without
reading its prose again.

Reading a target phrase ("At least 85% within 15 working days") takes about 0.3 ms, and a
contract of 40 KPIs over three years has a hundred or more; compiling from kept readings takes
a fraction of a millisecond. A process reads every phrasing once anyway
(``kpibot.engine.targets`` keeps what it read), so this matters for the first status of a
contract in a process: after a start, and after the contract is loaded again.

Readings are derived data. Each set is stamped with the grammar that made it (a digest of the
source of ``kpibot/engine/targets.py`` and every engine module it imports): after any change
to them the stamp differs and the phrases are read afresh, so a reading never outlives the
code that made it.
"""

from __future__ import annotations

import ast
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
    """A digest of the source of every engine module a reading depends on: readings made by
    other code are not used."""
    digest = hashlib.sha256()
    for path in grammar_files():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def grammar_files() -> list[Path]:
    """``kpibot/engine/targets.py`` and every engine module it imports, directly or not.

    Read from the imports themselves, so a new grammar module is covered the day it is
    imported; a change elsewhere in the engine (evaluation, say) leaves the readings valid.
    """
    root = Path(engine.__file__).resolve().parent
    todo, seen = ["targets"], set()
    while todo:
        name = todo.pop()
        if name in seen or not (root / f"{name}.py").is_file():
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((root / f"{name}.py").read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "kpibot.engine":
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                todo += _engine_module(node.module)
            elif isinstance(node, ast.Import):
                todo += [m for alias in node.names for m in _engine_module(alias.name)]
    return sorted(root / f"{name}.py" for name in seen)


def _engine_module(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [parts[2]] if len(parts) > 2 and parts[:2] == ["kpibot", "engine"] else []


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
