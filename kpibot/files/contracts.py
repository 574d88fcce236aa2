"""Read contract YAML files into validated ``Contract`` objects, naming file, line and field on error.

A file that does not validate is rejected whole: nothing from it is used.

>>> from pathlib import Path
>>> contracts = load_contract_dir(Path("config/contracts"))  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kpibot.engine.calendar import CalendarError, ReturnCalendar, incident_rules
from kpibot.engine.model import Contract
from kpibot.engine.targets import TargetError, compile_contract


@dataclass(frozen=True)
class ContractFileError(Exception):
    """One problem in one contract file, located as precisely as the YAML allows."""

    path: str
    line: int | None
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}, line {self.line}" if self.line else self.path
        field = f", field '{self.field}'" if self.field else ""
        return f"{where}{field}: {self.reason}"


class ContractFilesInvalid(Exception):
    """Raised when one or more files fail; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[ContractFileError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def _line_for(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """Walk the composed YAML tree along a pydantic error location; return the deepest line."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if str(key.value) == str(part):
                    node = value
                    line = key.start_mark.line + 1
                    break
            else:
                return line
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _impossible_date_line(text: str) -> int | None:
    for i, line in enumerate(text.splitlines(), start=1):
        for y, m, d in re.findall(r"\b(\d{4})-(\d{2})-(\d{2})\b", line):
            try:
                date(int(y), int(m), int(d))
            except ValueError:
                return i
    return None


def _field_name(loc: Sequence[int | str], data: Any) -> str:
    """A readable field path, naming KPIs by code rather than list index: ``kpis[1a].targets``."""
    parts: list[str] = []
    cur = data
    for part in loc:
        if isinstance(part, int) and isinstance(cur, list) and part < len(cur):
            item = cur[part]
            label = item.get("code") if isinstance(item, dict) and "code" in item else part
            parts[-1:] = [f"{parts[-1]}[{label}]"] if parts else [f"[{label}]"]
            cur = item
        else:
            parts.append(str(part))
            cur = cur.get(part) if isinstance(cur, dict) else None
    return ".".join(parts)


def parse_contract_text(text: str, path: str = "<contract>") -> Contract:
    """Validate one contract's YAML text; raise ``ContractFilesInvalid`` naming every error."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise ContractFilesInvalid(
            [ContractFileError(path, line, None, f"not valid YAML: {reason}")]
        ) from None
    except ValueError as exc:
        # PyYAML turns 2019-02-31 into a date and fails outside its own error type.
        line = _impossible_date_line(text)
        raise ContractFilesInvalid(
            [ContractFileError(path, line, None, f"an impossible date ({exc})")]
        ) from None

    def node() -> yaml.Node | None:
        # Line numbers are only needed to report an error, so compose lazily.
        return yaml.compose(text, Loader=loader)

    if not isinstance(data, dict):
        raise ContractFilesInvalid(
            [ContractFileError(path, 1, None, "a contract file must be a YAML mapping")]
        )
    try:
        contract = Contract.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
            errors.append(
                ContractFileError(
                    path,
                    _line_for(node(), loc),
                    _field_name(loc, data) or None,
                    err["msg"].removeprefix("Value error, "),
                )
            )
        raise ContractFilesInvalid(errors) from None

    try:
        compile_contract(contract)
        ReturnCalendar.for_contract(contract)
        incident_rules(contract.incidents)
    except (TargetError, CalendarError) as exc:
        eloc: tuple[str | int, ...] = tuple(exc.loc)
        if (
            isinstance(exc, CalendarError)
            and eloc
            and eloc[0] != "calendar"
            and exc.field
            and exc.field.startswith("incidents")
        ):
            eloc = ("incidents", *eloc)
        raise ContractFilesInvalid(
            [ContractFileError(path, _line_for(node(), eloc), exc.field, str(exc))]
        ) from None
    return contract


def load_contract_file(path: Path) -> Contract:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ContractFilesInvalid(
            [ContractFileError(str(path), None, None, "the file is not UTF-8 text")]
        ) from None
    except OSError as exc:
        raise ContractFilesInvalid(
            [ContractFileError(str(path), None, None, exc.strerror or str(exc))]
        ) from None
    return parse_contract_text(text, str(path))


def contract_paths(paths: Iterable[Path]) -> list[Path]:
    """Expand directories into their ``*.yaml``/``*.yml`` files, sorted."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]))
        else:
            out.append(p)
    return out


def load_contracts(paths: Iterable[Path]) -> list[Contract]:
    """Load every file; if any fails, raise with all errors and load none."""
    contracts: list[Contract] = []
    errors: list[ContractFileError] = []
    seen: dict[str, str] = {}
    for path in contract_paths(paths):
        try:
            c = load_contract_file(path)
        except ContractFilesInvalid as exc:
            errors.extend(exc.errors)
            continue
        if c.id in seen:
            errors.append(
                ContractFileError(
                    str(path), None, "id", f"contract id '{c.id}' is also used by {seen[c.id]}"
                )
            )
            continue
        seen[c.id] = str(path)
        contracts.append(c)
    if errors:
        raise ContractFilesInvalid(errors)
    return contracts


def load_contract_dir(directory: Path) -> list[Contract]:
    return load_contracts([directory])
