"""Read contract YAML files into validated ``Contract`` objects, naming file, line and field on error.

A file that does not validate is rejected whole: nothing from it is used.

>>> from pathlib import Path
>>> contracts = load_contract_dir(Path("config/contracts"))  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from kpibot.engine import model
from kpibot.engine.calendar import CalendarError, ReturnCalendar, incident_rules
from kpibot.engine.model import Contract
from kpibot.engine.periods import PeriodError, frequency_kind
from kpibot.engine.scorecard import reporting_kind
from kpibot.engine.targets import (
    CompiledKpi,
    TargetError,
    annual_share_unclear,
    compile_contract,
)
from kpibot.files.draft import smaller_words


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


# Keys that KPI tables use for a term kpibot names otherwise.
_ALIASES = {
    "title": "name",
    "measure": "name",
    "indicator": "name",
    "ref": "code",
    "reference": "code",
    "kpi": "code",
    "direction": "polarity",
    "targets_by_year": "targets",
}


def _known_fields() -> set[str]:
    """Every field name any contract term takes, to suggest one for a misspelt key."""
    names: set[str] = set()
    for value in vars(model).values():
        if isinstance(value, type) and issubclass(value, BaseModel):
            names.update(value.model_fields)
    return names


def _reason(err: Any, loc: Sequence[int | str]) -> str:
    """One sentence for a pydantic error: what was written, and what to write instead."""
    kind = err.get("type")
    last = str(loc[-1]) if loc else ""
    given = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        close = [_ALIASES[last]] if last in _ALIASES else []
        close = close or difflib.get_close_matches(last, sorted(_known_fields()), n=1, cutoff=0.75)
        hint = f"; did you mean '{close[0]}'?" if close else "; remove it or check its spelling"
        return f"'{last}' is not a term kpibot knows here{hint}"
    if kind == "missing":
        return f"'{last}' is required here and missing"
    if kind == "literal_error" and isinstance(given, str | int | float):
        expected = ctx.get("expected", "one of the values kpibot knows")
        hint = ""
        if last == "polarity":
            hint = " (or 'higher is better', 'lower is better')"
        elif last == "unit" and str(given).strip().lower() in ("%", "per cent", "percentage"):
            hint = f"; '{given}' is written 'percent'"
        return f"'{given}' is not allowed here; write {expected}{hint}"
    if kind in ("date_from_datetime_parsing", "date_parsing", "date_type") and isinstance(
        given, str
    ):
        return (
            f"'{given}' is not a date kpibot can read; write dates as YYYY-MM-DD, like 2019-04-01"
        )
    return str(err["msg"]).removeprefix("Value error, ")


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
                    _reason(err, loc),
                )
            )
        raise ContractFilesInvalid(errors) from None

    try:
        compiled = compile_contract(contract)
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
    misreads = [
        ContractFileError(path, _line_for(node(), loc), _field_name(loc, data), reason)
        for loc, reason in _misreads(contract, compiled, data)
    ]
    if misreads:
        raise ContractFilesInvalid(misreads)
    return contract


def _misreads(
    contract: Contract, compiled: dict[str, CompiledKpi], data: dict[str, Any]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Terms that read cleanly but would rate figures the wrong way round: refused, naming why.

    A KPI that gives no polarity is read as higher is better; when its name says a lower
    figure is better ("missed visits", "average days to complete") and its target is a bare
    figure whose direction only the polarity decides, the file must say which it is. A
    percentage target for a KPI declared in another unit (or the other way round) is refused
    too: figures would be compared with a threshold of a different kind.
    """
    raw = data.get("kpis")
    raw_kpis = raw if isinstance(raw, list) else []
    out: list[tuple[tuple[str | int, ...], str]] = []
    for i, kpi in enumerate(contract.kpis):
        given = raw_kpis[i] if i < len(raw_kpis) and isinstance(raw_kpis[i], dict) else {}
        years = compiled[kpi.code].years
        bare = [
            t.target
            for t in years.values()
            if t.target.kind in ("threshold", "range")
            and t.target.op is None
            and t.target.within is None
            and not t.target.grade
        ]
        if kpi.frequency:
            try:
                frequency_kind(kpi.frequency)
            except PeriodError as exc:
                out.append((("kpis", i, "frequency"), str(exc)))
        if kpi.values != "year_to_date" and not kpi.in_year_targets:
            period = reporting_kind(kpi, contract.reporting.period)
            for year, terms in years.items():
                unclear = annual_share_unclear(terms.target, kpi.unit, period)
                if unclear:
                    field = "targets" if year in kpi.targets else "target"
                    out.append((("kpis", i, field), f"KPI {kpi.code}, year {year}: {unclear}"))
                    break
        words = smaller_words(kpi.name)
        if "polarity" not in given and bare and words:
            out.append(
                (
                    ("kpis", i, "name"),
                    f"KPI {kpi.code} gives no polarity, so its target '{bare[0].text.strip()}' "
                    f"would be read as higher is better, but its name says '{words}'; add "
                    "'polarity: smaller' (or 'polarity: bigger' if a higher figure really is "
                    "better)",
                )
            )
        for year, terms in years.items():
            for role, term in (
                ("target", terms.target),
                ("tolerance", terms.tolerance),
                ("critical_failure", terms.critical),
            ):
                if term is None or term.kind not in ("threshold", "range") or not term.unit:
                    continue
                unit = term.unit
                if kpi.unit and (unit == "percent") != (kpi.unit == "percent"):
                    field = "targets" if role == "target" and year in kpi.targets else role
                    out.append(
                        (
                            ("kpis", i, field),
                            f"KPI {kpi.code}'s unit is '{kpi.unit}' but its "
                            f"{role.replace('_', ' ')} '{term.text.strip()}' is in "
                            f"{unit.replace('_', ' ')}; make 'unit:' match the figures the "
                            "contract reports (or leave 'unit:' out)",
                        )
                    )
                    break
            else:
                continue
            break
    return out


# The largest shipped contract is 66 KB; a file thirty times that is not a contract.
MAX_CONTRACT_BYTES = 2 * 1024 * 1024


def load_contract_file(path: Path) -> Contract:
    """One contract file, validated. Never more than ``MAX_CONTRACT_BYTES`` + 1 bytes are read,
    whatever size the file declares (``/dev/zero`` or a pipe is refused, not read for ever)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONTRACT_BYTES + 1)
        if len(data) > MAX_CONTRACT_BYTES:
            raise ContractFilesInvalid(
                [
                    ContractFileError(
                        str(path),
                        None,
                        None,
                        f"the file is over {MAX_CONTRACT_BYTES // (1024 * 1024)} MB; a contract "
                        "definition is a few hundred KB at most",
                    )
                ]
            )
        text = data.decode("utf-8")
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


def unused_terms(contract: Contract) -> list[str]:
    """Notes on terms a file gives that are never used, for ``kpibot contracts check``.

    A KPI's ``target:`` is only the default for years ``targets:`` leaves out; when ``targets:``
    names every contract year, the ``target:`` words are never read.
    """
    years = {y.year for y in contract.contract_years}
    return [
        f"KPI {k.code}: its 'target' ('{k.target}') is never used, because 'targets' gives "
        "every contract year; move its words to a comment or drop a year from 'targets'"
        for k in contract.kpis
        if k.target is not None and k.targets and years <= set(k.targets)
    ]


def load_contract_dir(directory: Path) -> list[Contract]:
    return load_contracts([directory])
