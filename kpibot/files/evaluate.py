"""``kpibot evaluate KPIS.csv FIGURES.csv``: the spreadsheet interface other tools depend on.

The columns and values are fixed by DESIGN.md. Output columns, in order:
``kpi,period,value,target,position,rag,trend,critical``.

>>> kpis = read_table_bytes(b"kpi,polarity,target,tolerance\\nA,bigger,Target 90%,Tolerance 85%\\n", "k.csv")
>>> figs = read_table_bytes(b"kpi,period,numerator,denominator\\nA,2019/20 Q1,86,100\\n", "f.csv")
>>> evaluate_tables(kpis, figs)[0]["rag"]
'amber'
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from kpibot.engine.evaluate import TermsEntry, annotate_periods, evaluate, terms_frame
from kpibot.engine.model import normalise_polarity
from kpibot.engine.numbers import UK, NumberError, NumberStyle
from kpibot.engine.periods import PeriodError, parse_period
from kpibot.engine.targets import Target, TargetError, YearTerms, check_consistency, parse_target
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
UNITS = ("percent", "count", "days", "score", "rate", "grade")

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


def _read_kpis(table: Table, style: NumberStyle) -> tuple[dict[str, _KpiDef], list[CellError]]:
    errors: list[CellError] = []
    if "kpi" not in table.columns:
        return {}, [table.error(None, "kpi", "the header has no 'kpi' column; it is required")]
    defs: dict[str, _KpiDef] = {}
    for row in table:
        code = row["kpi"]
        if not code:
            errors.append(table.error(row, "kpi", "the KPI id is empty"))
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
        unit = row.get("unit").lower() or None
        if unit is not None and unit not in UNITS:
            errors.append(
                table.error(row, "unit", f"'{unit}' is not a unit; use one of {', '.join(UNITS)}")
            )
            continue
        target_text = row.get("target")
        if polarity is None:
            # Read the direction from the target's own comparator where the file gives no polarity.
            probe = target_text.strip()
            polarity = (
                "smaller"
                if probe.startswith(("<", "≤")) or probe.lower().startswith(("less than", "below"))
                else "bigger"
            )
        parsed: dict[str, Target | None] = {}
        bad = False
        for column, role in (
            ("target", "target"),
            ("tolerance", "tolerance"),
            ("critical_failure", "critical"),
        ):
            text = row.get(column)
            if not text:
                parsed[column] = None
                continue
            try:
                parsed[column] = parse_target(text, polarity, unit=unit, role=role)  # type: ignore[arg-type]
            except TargetError as exc:
                errors.append(table.error(row, column, str(exc)))
                bad = True
        if bad:
            continue
        target = parsed["target"] or parse_target("", polarity, unit=unit)
        why = check_consistency(target, parsed["tolerance"], parsed["critical_failure"])
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
        unit = unit or target.unit or "count"
        terms = YearTerms(0, target, parsed["tolerance"], parsed["critical_failure"], False)
        defs[code] = _KpiDef(
            code, polarity, unit, terms, numbers["baseline"], numbers["national_average"], row.line
        )
    return defs, errors


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
    defs, errors = _read_kpis(kpis, style)
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
    for row in figures:
        code = row["kpi"]
        kdef = defs.get(code)
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
        TermsEntry("", k.code, 0, k.polarity, k.unit, k.terms, k.baseline) for k in defs.values()
    )
    result = evaluate(frame, terms)
    if as_of_period is not None:
        result = result[result["period"] == as_of_period.label]
        order = {code: i for i, code in enumerate(defs)}
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
        import csv
        import io

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
