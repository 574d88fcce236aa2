"""``kpibot evaluate KPIS.csv FIGURES.csv``: the spreadsheet interface other tools depend on.

The columns and values are fixed by DESIGN.md. Output columns, in order:
``kpi,period,value,target,position,rag,trend,critical``.

Optional KPIS.csv columns beyond DESIGN.md's (issue 13): ``kind`` (measure, milestone or group),
``due`` (a milestone's date), ``signed`` (yes: values may be negative), ``trend``
(``last_three`` or ``same_period_last_year``), ``values`` (``period`` or ``year_to_date``),
``in_year_targets`` ("Q1: 25%; Q2: 50%; Q3: 75%; Q4: 97%"), and for a group row ``members``
("A; B; C; D") and ``rule`` ("3 of 4"). A group row's output has the number of members met as
its value and met / not_met / missing (still pending) as its position.

>>> kpis = read_table_bytes(b"kpi,polarity,target,tolerance\\nA,bigger,Target 90%,Tolerance 85%\\n", "k.csv")
>>> figs = read_table_bytes(b"kpi,period,numerator,denominator\\nA,2019/20 Q1,86,100\\n", "f.csv")
>>> evaluate_tables(kpis, figs)[0]["rag"]
'amber'
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import pandas as pd

from kpibot.engine.evaluate import TermsEntry, annotate_periods, evaluate, terms_frame
from kpibot.engine.groups import judge
from kpibot.engine.model import GroupRule, normalise_polarity
from kpibot.engine.numbers import UK, NumberError, NumberStyle
from kpibot.engine.periods import PeriodError, frequency_kind, parse_period
from kpibot.engine.targets import (
    NEEDS_BASELINE,
    Target,
    TargetError,
    YearTerms,
    annual_share_unclear,
    check_consistency,
    needs_baseline,
    parse_target,
    tolerance_in_bands,
)
from kpibot.files.exports import safe_cells
from kpibot.files.figures import (
    MAX_PROBLEMS,
    MORE_PROBLEMS,
    not_a_number,
    parse_number,
    parse_value,
)
from kpibot.files.tables import CellError, Row, Table, read_table_bytes

OUTPUT_COLUMNS = ["kpi", "period", "value", "target", "position", "rag", "trend", "critical"]
UNITS: tuple[str, ...] = ("percent", "count", "days", "score", "rate", "grade")
UNITS += ("working_days", "weeks", "months", "hours", "minutes", "seconds", "gbp", "milestone")
TRENDS = {
    "last_three": "last_three",
    "last three values": "last_three",
    "same_period_last_year": "same_period_last_year",
    "same period last year": "same_period_last_year",
    "same quarter last year": "same_period_last_year",
}
YES = {"yes", "y", "true", "1"}
NO = {"no", "n", "false", "0", ""}

__all__ = ["OUTPUT_COLUMNS", "InputErrors", "evaluate_tables", "format_rows", "read_table_bytes"]


class InputErrors(Exception):
    """The problems found in the input files; nothing is evaluated when there are any.

    ``errors`` lists the first ``MAX_PROBLEMS``, then one line counting the rest.
    """

    def __init__(self, errors: Sequence[CellError]) -> None:
        self.errors = list(errors[:MAX_PROBLEMS])
        if len(errors) > MAX_PROBLEMS:
            more = MORE_PROBLEMS.format(n=len(errors) - MAX_PROBLEMS)
            self.errors.append(CellError(errors[MAX_PROBLEMS].file, None, None, more))
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass(frozen=True)
class _KpiDef:
    code: str
    polarity: str
    unit: str
    terms: YearTerms
    baseline: float | None
    national_average: float | None
    line: int
    signed: bool = False
    trend: str = "last_three"
    year_to_date: bool = False
    cumulative: tuple[float, ...] | None = None


@dataclass(frozen=True)
class _GroupDef:
    code: str
    rule: GroupRule
    line: int


def _implied_polarity(text: str, unit: str | None, measure: str | None, signed: bool) -> str:
    """The polarity a KPI with no ``polarity`` cell has: what its target's own words say
    ("No more than 3.5%", "Fewer than 10", "< 8%", "Zero" read as smaller is better),
    otherwise bigger is better, the common case. Only a target that reads one way and not the
    other sets it; a contradiction the file states itself is still refused when it is read."""
    if not text.strip():
        return "bigger"
    for polarity in ("bigger", "smaller"):
        try:
            target = parse_target(text, polarity, unit=unit, measure=measure)
        except TargetError:
            continue
        if check_consistency(target, None, None, signed=signed) is None:
            return polarity
    return "bigger"  # unreadable either way: the read below names the words


def _reported_every(row: Row) -> str:
    """The period a KPI row's ``frequency`` names ('quarter' when it names none: the figures
    may be quarterly); a frequency kpibot does not track is left to the figures' periods."""
    try:
        return frequency_kind(row.get("frequency")) or "quarter"
    except PeriodError:
        return "quarter"


def _needs_baseline_column(target: Target) -> str:
    """NEEDS_BASELINE, told as a spreadsheet user fixes it: in the ``baseline`` column."""
    return (
        NEEDS_BASELINE.split(";")[0].format(text=target.text.strip())
        + "; put the baseline figure in the KPI's 'baseline' column"
    )


def _read_kpis(
    table: Table, style: NumberStyle
) -> tuple[dict[str, _KpiDef], list[CellError], list[_GroupDef]]:
    errors: list[CellError] = []
    groups: list[_GroupDef] = []
    if "kpi" not in table.columns:
        return {}, [table.error(None, "kpi", "the header has no 'kpi' column; it is required")], []
    defs: dict[str, _KpiDef] = {}
    lines: dict[str, int] = {}
    for row in table:
        code = row["kpi"]
        if not code:
            errors.append(table.error(row, "kpi", "the KPI id is empty"))
            continue
        kind = (row.get("kind") or "measure").strip().lower()
        if kind not in ("measure", "milestone", "group"):
            errors.append(
                table.error(row, "kind", f"'{row.get('kind')}' is not measure, milestone or group")
            )
            continue
        if code in lines:
            errors.append(
                table.error(
                    row, "kpi", f"KPI '{code}' is defined twice (first on line {lines[code]})"
                )
            )
            continue
        lines[code] = row.line
        if kind == "group":
            group = _read_group(table, row, code, errors)
            if group is not None:
                groups.append(group)
            continue
        if code in defs:
            errors.append(
                table.error(
                    row, "kpi", f"KPI '{code}' is defined twice (first on line {defs[code].line})"
                )
            )
            continue
        pol_text = row.get("polarity")
        polarity = normalise_polarity(pol_text) if pol_text else None
        if pol_text and polarity is None:
            errors.append(
                table.error(
                    row,
                    "polarity",
                    f"'{pol_text}' is not a polarity; use bigger or smaller (or 'Bigger is better')",
                )
            )
            continue
        unit = row.get("unit").lower().replace(" ", "_") or None
        if kind == "milestone":
            unit = "milestone"
        if unit is not None and unit not in UNITS:
            errors.append(
                table.error(row, "unit", f"'{unit}' is not a unit; use one of {', '.join(UNITS)}")
            )
            continue
        measure = row.get("name") or None
        if polarity is None:
            signed = row.get("signed").strip().lower() in YES  # checked with the extras below
            polarity = _implied_polarity(row.get("target"), unit, measure, signed)
        parsed: dict[str, Target | None] = {}
        bad = False
        for column, role in (
            ("target", "target"),
            ("tolerance", "tolerance"),
            ("critical_failure", "critical"),
        ):
            text = row.get(column)
            if column == "tolerance" and not text and not bad:
                text = tolerance_in_bands(row.get("target")) or ""  # "Green ≥ 92%, Amber 85–91.9%"
            if not text or kind == "milestone":
                parsed[column] = None
                continue
            try:
                parsed[column] = parse_target(
                    text,
                    polarity,
                    unit=unit,
                    role=role,  # type: ignore[arg-type]
                    measure=measure,
                )
            except TargetError as exc:
                errors.append(table.error(row, column, str(exc)))
                bad = True
        if bad:
            continue
        extras = _read_extras(table, row, kind, polarity, unit, errors)
        if extras is None:
            continue
        target = parsed["target"] or parse_target("", polarity, unit=unit)
        if not extras["ytd"]:
            unclear = annual_share_unclear(target, unit, _reported_every(row))
            if unclear:
                if not row.get("frequency"):
                    unclear += "; if it is reported once a year, put 'Annually' in its 'frequency'"
                errors.append(table.error(row, "target", unclear))
                continue
        if kind == "milestone":
            words = row.get("target") or f"achieved by {extras['due']}"
            target = Target(
                words,
                "milestone",
                "bigger",
                "target",
                "ge",
                1.0,
                unit="milestone",
                due=extras["due"] if isinstance(extras["due"], date) else None,
            )
        why = check_consistency(
            target,
            parsed["tolerance"],
            parsed["critical_failure"],
            signed=bool(extras["signed"]),
        )
        if why:
            errors.append(table.error(row, "polarity", why))
            continue
        numbers: dict[str, float | None] = {}
        for column in ("baseline", "national_average"):
            text = row.get(column)
            try:
                numbers[column] = parse_number(text, style) if text else None
            except NumberError as exc:
                errors.append(table.error(row, column, not_a_number(text, exc)))
                bad = True
        if bad:
            continue
        if needs_baseline(target) and numbers["baseline"] is None:
            errors.append(table.error(row, "target", _needs_baseline_column(target)))
            continue
        unit = unit or target.unit or "count"
        terms = YearTerms(0, target, parsed["tolerance"], parsed["critical_failure"], False)
        defs[code] = _KpiDef(
            code,
            polarity,
            unit,
            terms,
            numbers["baseline"],
            numbers["national_average"],
            row.line,
            bool(extras["signed"]),
            str(extras["trend"]),
            bool(extras["ytd"]),
            extras["cumulative"],  # type: ignore[arg-type]
        )
    return defs, errors, groups


def _read_extras(
    table: Table, row: Row, kind: str, polarity: str, unit: str | None, errors: list[CellError]
) -> dict[str, object] | None:
    """The optional issue-13 columns of one KPI row; None (after an error) when one is bad."""
    out: dict[str, object] = {"due": None, "cumulative": None}
    signed = row.get("signed").strip().lower()
    if signed not in YES | NO:
        errors.append(table.error(row, "signed", f"'{row.get('signed')}' is not yes or no"))
        return None
    out["signed"] = signed in YES
    trend = " ".join(row.get("trend").lower().split()) or "last_three"
    if trend not in TRENDS:
        errors.append(
            table.error(
                row, "trend", f"'{row.get('trend')}' is not last_three or same_period_last_year"
            )
        )
        return None
    out["trend"] = TRENDS[trend]
    values = row.get("values").strip().lower().replace(" ", "_") or "period"
    if values not in ("period", "year_to_date", "cumulative"):
        errors.append(
            table.error(row, "values", f"'{row.get('values')}' is not period or year_to_date")
        )
        return None
    out["ytd"] = values != "period"
    if kind == "milestone":
        try:
            out["due"] = date.fromisoformat(row.get("due").strip())
        except ValueError:
            errors.append(
                table.error(row, "due", f"'{row.get('due')}' is not a date like 2020-01-31")
            )
            return None
    text = row.get("in_year_targets")
    if text:
        marks = []
        for part in re.split(r";", text):
            m = re.fullmatch(r"\s*(?:q|quarter)\s*([1-4])\s*:\s*(.+?)\s*", part, re.IGNORECASE)
            if not m:
                errors.append(
                    table.error(row, "in_year_targets", f"'{part.strip()}' is not like 'Q1: 25%'")
                )
                return None
            try:
                t = parse_target(m.group(2), polarity, unit=unit)
            except TargetError as exc:
                errors.append(table.error(row, "in_year_targets", str(exc)))
                return None
            if t.value is None:
                errors.append(
                    table.error(row, "in_year_targets", f"'{m.group(2)}' must be a figure")
                )
                return None
            marks.append((int(m.group(1)), t.value))
        marks.sort()
        if [q for q, _ in marks] != list(range(1, len(marks) + 1)) or len(marks) != 4:
            errors.append(
                table.error(row, "in_year_targets", "give all four quarters, Q1 to Q4, once each")
            )
            return None
        annual = marks[-1][1]
        out["cumulative"] = tuple(v / annual for _, v in marks) if annual else None
        out["ytd"] = True
    return out


def _read_group(table: Table, row: Row, code: str, errors: list[CellError]) -> _GroupDef | None:
    members = [m.strip() for m in re.split(r"[;,]", row.get("members")) if m.strip()]
    if not members:
        errors.append(table.error(row, "members", "a group row needs its members, like 'A; B; C'"))
        return None
    try:
        rule = GroupRule(name=code, kpis=members, rule=row.get("rule") or row.get("target"))
    except ValueError as exc:
        errors.append(table.error(row, "rule", _pydantic_reason(exc)))
        return None
    return _GroupDef(code, rule, row.line)


def _pydantic_reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):  # a ValidationError: its message alone, not pydantic's repr of the input
        return str(errors()[0]["msg"]).removeprefix("Value error, ")
    text = str(exc).splitlines()
    reason = next((t.strip() for t in text if t.strip().startswith("Value error")), text[-1])
    return reason.removeprefix("Value error, ")


def _figure_value(
    table: Table, row: Row, kdef: _KpiDef, errors: list[CellError], style: NumberStyle
) -> float | None:
    """The figure's value from ``value`` or ``numerator``/``denominator``; None if it is an error."""
    parsed = parse_value(
        kdef.unit,
        row.get("value"),
        row.get("numerator"),
        row.get("denominator"),
        lambda col, why: errors.append(table.error(row, col, why)),
        style,
        signed=kdef.signed,
    )
    if parsed is None:
        return None
    return math.nan if parsed.value is None else parsed.value


def evaluate_tables(
    kpis: Table, figures: Table, as_of: str | None = None, style: NumberStyle = UK
) -> list[dict[str, object]]:
    """Validate both tables and evaluate; raise ``InputErrors`` listing the problems found.

    Figures, baselines and benchmarks are read by ``style`` (``--number-style``); target words
    are read by the target grammar, where a number such as '8,5' is refused as ambiguous.
    """
    defs, errors, groups = _read_kpis(kpis, style)
    for g in groups:
        for member in g.rule.kpis:
            if member not in defs:
                errors.append(
                    CellError(
                        kpis.name,
                        g.line,
                        "members",
                        f"group '{g.code}' names KPI '{member}', which is not in {kpis.name}",
                    )
                )
    for col in ("kpi", "period"):
        if col not in figures.columns:
            errors.append(
                figures.error(None, col, f"the header has no '{col}' column; it is required")
            )
    if not (
        {"value"} <= set(figures.columns) or {"numerator", "denominator"} <= set(figures.columns)
    ):
        errors.append(
            figures.error(
                None,
                "value",
                "the header needs a 'value' column or both 'numerator' and 'denominator'",
            )
        )
    if errors and not defs:
        raise InputErrors(errors)
    as_of_period = None
    if as_of is not None:
        try:
            as_of_period = parse_period(as_of)
        except PeriodError as exc:
            errors.append(CellError("--as-of", None, None, str(exc)))
    records: list[dict[str, object]] = []
    seen: dict[tuple[str, str], int] = {}
    listed = {row["kpi"] for row in kpis} if errors else set()
    for row in figures:
        code = row["kpi"]
        kdef = defs.get(code)
        if kdef is None and code in listed:
            continue  # its KPI row could not be read: that error names the row
        if kdef is None:
            errors.append(
                figures.error(
                    row,
                    "kpi",
                    f"KPI '{code}' is not in {kpis.name}" if code else "the KPI id is empty",
                )
            )
            continue
        try:
            period = parse_period(row["period"])
        except PeriodError as exc:
            errors.append(figures.error(row, "period", str(exc)))
            continue
        key = (code, period.label)
        if key in seen:
            errors.append(
                figures.error(
                    row,
                    None,
                    f"duplicate row: KPI '{code}' for {period.label} is also on line {seen[key]}",
                )
            )
            continue
        seen[key] = row.line
        value = _figure_value(figures, row, kdef, errors, style)
        if value is None:
            continue
        bench_text = row.get("benchmark")
        bench: float | None = kdef.national_average
        if bench_text:
            try:
                bench = parse_number(bench_text, style)
            except NumberError as exc:
                errors.append(figures.error(row, "benchmark", not_a_number(bench_text, exc)))
                continue
        records.append(
            {
                "contract": "",
                "kpi": code,
                "period": period.label,
                "value": value,
                "benchmark": math.nan if bench is None else bench,
                "_line": row.line,
            }
        )
    if errors:
        raise InputErrors(errors)
    if as_of_period is not None:
        present = {(r["kpi"], r["period"]) for r in records}
        for code, kdef in defs.items():
            if (code, as_of_period.label) not in present:
                records.append(
                    {
                        "contract": "",
                        "kpi": code,
                        "period": as_of_period.label,
                        "value": math.nan,
                        "benchmark": math.nan
                        if kdef.national_average is None
                        else kdef.national_average,
                        "_line": 10**9,
                    }
                )
    if not records:
        return []
    frame = annotate_periods(pd.DataFrame(records), year_of=lambda _c, _p: 0)
    terms = terms_frame(
        TermsEntry(
            "",
            k.code,
            0,
            k.polarity,
            k.unit,
            k.terms,
            k.baseline,
            k.trend,
            k.year_to_date,
            k.cumulative,
        )
        for k in defs.values()
    )
    result = evaluate(frame, terms)
    if groups:
        result = pd.concat([result, _group_rows(result, groups)], ignore_index=True)
    if as_of_period is not None:
        result = result[result["period"] == as_of_period.label]
        order = {code: i for i, code in enumerate([*defs, *(g.code for g in groups)])}
        result = result.assign(_o=result["kpi"].map(order)).sort_values("_o")
    else:
        result = result.sort_values("_line", kind="stable")
    return [
        {
            "kpi": r.kpi,
            "period": r.period,
            "value": None if math.isnan(r.value) else r.value,
            "target": r.target,
            "position": r.position,
            "rag": r.rag,
            "trend": r.trend,
            "critical": bool(r.critical),
        }
        for r in result.itertuples(index=False)
    ]


def _group_rows(result: pd.DataFrame, groups: list[_GroupDef]) -> pd.DataFrame:
    """One row per group and period: how many members met, and whether the rule holds."""
    rows = []
    for g in groups:
        sub = result[result["kpi"].isin(g.rule.kpis)]
        for period, part in sub.groupby("period", sort=False):
            verdict = judge(g.rule, dict(zip(part["kpi"], part["position"], strict=False)))
            position = {"performed": "met", "not performed": "not_met"}.get(
                verdict.verdict, "missing"
            )
            rows.append(
                {
                    "kpi": g.code,
                    "period": period,
                    "value": float(verdict.met),
                    "target": g.rule.rule,
                    "position": position,
                    "rag": {"met": "green", "not_met": "red"}.get(position, "grey"),
                    "trend": "new",
                    "critical": False,
                    "_line": 10**10 + g.line,
                }
            )
    return pd.DataFrame(rows)


def format_value(value: object) -> str:
    if value is None:
        return ""
    v = float(value)  # type: ignore[arg-type]
    return str(int(v)) if v.is_integer() else f"{round(v, 4):g}"


def format_rows(rows: list[dict[str, object]], fmt: str) -> str:
    """Render rows as csv, json or an aligned text table, columns in the fixed order."""
    if fmt == "json":
        return json.dumps([{c: r[c] for c in OUTPUT_COLUMNS} for r in rows], indent=2)
    cells = [
        [
            format_value(r["value"])
            if c == "value"
            else ("true" if r[c] is True else "false" if r[c] is False else str(r[c]))
            for c in OUTPUT_COLUMNS
        ]
        for r in rows
    ]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(OUTPUT_COLUMNS)
        # KPI ids and target words come from the input files: a spreadsheet must not run them.
        writer.writerows(safe_cells(row) for row in cells)
        return buf.getvalue().rstrip("\n")
    widths = [
        max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
        for i, c in enumerate(OUTPUT_COLUMNS)
    ]
    lines = ["  ".join(c.ljust(w) for c, w in zip(OUTPUT_COLUMNS, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)
