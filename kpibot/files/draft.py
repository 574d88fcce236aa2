"""``kpibot contracts draft``: a council's KPI table in, a contract YAML draft and its figures out.

The table is read through ``kpibot.files.tables`` (CSV or XLSX) with columns found by their
headers: a reference, the measure, polarity ("Bigger is better", "Lower is better"), target,
tolerance, frequency, a type or group, and optionally one column per quarter or year of past
figures ("2018/19 Q1", "2019/20"). The draft keeps every target in the table's words with
kpibot's reading beside it as a comment; a phrase kpibot cannot read is marked
``# CANNOT READ: <reason>`` on its own line, so editing only the marked lines makes a file
``kpibot contracts check`` accepts. A polarity the table does not give is guessed (from the
target and tolerance, else from the measure's words) and every guess is marked ``# GUESSED``.
Past figures become an import file in the ``kpibot import`` format (kpi, period, value).

>>> # draft = draft_contract(read_table(Path("schedule.csv")))
>>> # draft.yaml, draft.figures_csv
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from kpibot.engine.model import normalise_polarity
from kpibot.engine.periods import Period, PeriodError, parse_period
from kpibot.engine.targets import Role, Target, TargetError, check_consistency, parse_target
from kpibot.files.exports import safe_cells
from kpibot.files.tables import Row, Table

CANNOT_READ = "# CANNOT READ:"
GUESSED = "# GUESSED:"
HEADER = """\
# Draft contract written by `kpibot contracts draft` from {source}: {n} KPIs.
# Every target is in the table's own words, with kpibot's reading beside it.
# Lines marked "{cannot}" must be edited before `kpibot contracts check` accepts the file.
# Lines marked "{guessed}" are kpibot's guesses: check each one.
# Past figures are in {figures} (load them with `kpibot import {figures} --contract {id}`).
"""

# Header words that name each column (after tables.normalise_header: lower case, underscores).
_COLUMNS = {
    "reference": ("ref", "reference", "code", "kpi", "kpi_ref", "kpi_no", "no", "number", "id"),
    "measure": (
        "measure",
        "indicator",
        "kpi_name",
        "name",
        "description",
        "title",
        "measure_name",
        "key_performance_indicator",
        "performance_indicator",
        "kpi_description",
        "indicator_name",
    ),
    "polarity": ("polarity", "direction", "good_performance_is", "better"),
    "target": ("target", "targets", "target_range", "target_level"),
    "tolerance": ("tolerance", "tolerance_range", "amber", "amber_threshold"),
    "critical_failure": ("critical_failure", "critical", "failure_threshold"),
    "frequency": ("frequency", "reporting_frequency", "reporting", "frequency_of_reporting"),
    "group": ("type", "group", "category", "section", "theme", "measure_type"),
}
# Words in a measure's name that make a lower figure better (used only when the table is silent).
_SMALLER_WORDS = re.compile(
    r"\b(re-?referrals?|reoffend\w*|turnover|agency staff|second or subsequent|waiting|wait|"
    r"delays?|time taken|average time|length of|time in days|days between|complaints?|missed|"
    r"late|overdue|lasting|3 or more|inadequate|requires improvement|open for|absence|sickness|"
    r"vacanc\w+|escapes?|errors?|cost per|backlog|incidents?|exclusions?|deaths?|injur\w+|"
    r"days to|time to|re-?let|turnaround)\b",
    re.IGNORECASE,
)


def smaller_words(measure: str) -> str | None:
    """The words in a measure's name that say a lower figure is better, or None."""
    m = _SMALLER_WORDS.search(measure)
    return m.group(0) if m else None


# Words in a measure's name that let its figures go below zero (days behind, a fall).
_SIGNED_WORDS = re.compile(
    r"\b(ahead (of )?or behind|ahead/behind|variance|variation|slippage|% change|% reduction|"
    r"% increase|surplus or deficit|net change)\b",
    re.IGNORECASE,
)


@dataclass
class Draft:
    """The YAML text, the figures as CSV, and what was marked."""

    yaml: str
    figures_csv: str
    kpis: int
    cannot_read: int
    guessed: int
    figures: int
    notes: list[str] = field(default_factory=list)


_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5}
_YEAR_TARGET = re.compile(
    r"(?:^|_)(?:(first|second|third|fourth|fifth|(\d)(?:st|nd|rd|th)?)_(?:contract_)?(?:year|yr)"
    r"|(?:year|yr)\.?_?(\d))(?:\.|_|$)"
)


def _year_target_header(col: str) -> int | None:
    """The contract year a target column is for: 'First year target', 'Target 2nd yr. onwards',
    'Year 3 target' → 1, 2, 3; None for any other column."""
    if "target" not in col:
        return None
    m = _YEAR_TARGET.search(col)
    if not m:
        return None
    word, digit, after = m.groups()
    if word in _ORDINALS:
        return _ORDINALS[word]
    return int(digit or after)


def _find_columns(table: Table) -> tuple[dict[str, str], dict[str, Period]]:
    roles: dict[str, str] = {}
    figures: dict[str, Period] = {}
    for col in table.columns:
        period = _period_header(col)
        if period is not None:
            figures[col] = period
            continue
        if _year_target_header(col) is not None:
            continue
        for role, names in _COLUMNS.items():
            if role not in roles and (col in names or any(col.startswith(n + "_") for n in names)):
                roles[role] = col
                break
    return roles, figures


def _period_header(col: str) -> Period | None:
    text = col.replace("_", " ")
    text = re.sub(r"\b(qtr|quarter)\s*(\d)\b", r"Q\2", text, flags=re.IGNORECASE)
    try:
        return parse_period(text)
    except PeriodError:
        return None


def _q(text: str) -> str:
    """A YAML double-quoted string (JSON's escaping is valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def guess_polarity(measure: str, target: str, tolerance: str) -> tuple[str, str]:
    """(bigger|smaller, why) when the table gives no polarity: from the target and tolerance
    when both are figures (the tolerance is the worse side), else from the measure's words."""
    t: Target | None
    tol: Target | None
    try:
        t = parse_target(target, "bigger")
        tol = parse_target(tolerance, "bigger", role="tolerance")
    except TargetError:
        t = tol = None
    if (
        t is not None
        and tol is not None
        and t.kind == "threshold"
        and tol.kind == "threshold"
        and t.value is not None
        and tol.value is not None
        and t.value != tol.value
        and t.op is None
        and tol.op is None
    ):
        if tol.value > t.value:
            return "smaller", f"the tolerance ({tolerance}) is above the target ({target})"
        return "bigger", f"the tolerance ({tolerance}) is below the target ({target})"
    m = _SMALLER_WORDS.search(measure)
    if m:
        return "smaller", f"'{m.group(0)}' in the measure's name"
    return "bigger", "no words in the measure's name suggest lower is better"


def draft_contract(
    table: Table, contract_id: str | None = None, figures_name: str = "figures.csv"
) -> Draft:
    """Build the draft from a table; see the module docstring."""
    roles, figure_cols = _find_columns(table)
    cid = (
        contract_id
        or re.sub(r"[^a-z0-9]+", "-", Path(table.name).stem.lower()).strip("-")
        or "draft"
    )
    if not re.match(r"^[a-z0-9]", cid):
        cid = f"draft-{cid}"
    body: list[str] = ["kpis:"]
    figures: list[tuple[str, str, str]] = []
    cannot = guessed = 0
    codes: set[str] = set()
    count = 0
    year_cols = sorted(
        ((y, col) for col in table.columns if (y := _year_target_header(col)) is not None),
    )
    for row in table:
        measure = " ".join(row.get(roles.get("measure", "")).split())
        target = " ".join(row.get(roles.get("target", "")).split())
        tolerance = " ".join(row.get(roles.get("tolerance", "")).split())
        by_year = {y: t for y, col in year_cols if (t := " ".join(row.get(col).split()))}
        if by_year and not target:
            target = by_year[min(by_year)]
        else:
            by_year = {}
        if not measure and not target:
            continue
        count += 1
        code = row.get(roles.get("reference", "")).strip() or f"K{count}"
        if code in codes:
            code = f"{code}-{count}"
        codes.add(code)
        lines, c, g = _kpi_lines(row, roles, code, measure, target, tolerance, by_year)
        body.extend(lines)
        cannot += c
        guessed += g
        for col, period in figure_cols.items():
            value = row.get(col).strip()
            if value and re.fullmatch(r"[-+]?[£]?\d[\d,]*(\.\d+)?\s*%?", value):
                figures.append((code, period.label, value))
    years = sorted(
        {p.reporting_year().label: p.reporting_year() for p in figure_cols.values()}.items()
    )
    head = [
        f"id: {cid}  # from the file name; change it to the contract's id",
        f"name: {_q(Path(table.name).stem)}  # the file's name; give the contract's name",
        'commissioner: {name: "The commissioner"}  # name the parties',
        'provider: {name: "The provider"}',
    ]
    kinds = {p.kind for p in figure_cols.values()}
    reporting = "quarter" if "quarter" in kinds or not kinds else sorted(kinds)[0]
    head.append(f"reporting: {{period: {reporting}, year_start_month: 4}}")
    head.append("contract_years:")
    last_year = max((y for y, _ in year_cols), default=0)
    if last_year and not years:
        for y in range(1, last_year + 1):
            head.append(
                f"  - {{year: {y}, start: YYYY-MM-DD, end: YYYY-MM-DD}}  {CANNOT_READ} the table "
                f"names contract year {y} but gives no dates; write them"
            )
            cannot += 1
    elif years:
        for i, (label, p) in enumerate(years, start=1):
            head.append(
                f"  - {{year: {i}, label: {_q(label)}, start: {p.start.isoformat()}, "
                f"end: {p.end.isoformat()}}}  # from the figures' column headers"
            )
    else:
        today = date.today()
        start = date(today.year if today.month >= 4 else today.year - 1, 4, 1)
        head.append(
            f"  - {{year: 1, start: {start.isoformat()}, end: {date(start.year + 1, 3, 31).isoformat()}}}"
            f"  {CANNOT_READ} the table gives no years; write the contract years"
        )
        cannot += 1
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["kpi", "period", "value"])
    writer.writerows(safe_cells(row) for row in figures)  # the table's own cells, into Excel
    header = HEADER.format(
        source=Path(table.name).name,
        n=count,
        cannot=CANNOT_READ,
        guessed=GUESSED,
        figures=figures_name,
        id=cid,
    )
    text = header + "\n".join(head) + "\n" + "\n".join(body) + "\n"
    return Draft(text, out.getvalue(), count, cannot, guessed, len(figures))


def _kpi_lines(
    row: Row,
    roles: dict[str, str],
    code: str,
    measure: str,
    target: str,
    tolerance: str,
    by_year: dict[int, str] | None = None,
) -> tuple[list[str], int, int]:
    cannot = guessed = 0
    lines = [f"  - code: {_q(code)}"]
    if "reference" not in roles:
        lines[-1] += "  # the table has no reference column: a code was made up"
    lines.append(f"    name: {_q(measure or target)}")
    group = " ".join(row.get(roles.get("group", "")).split())
    if group:
        lines.append(f"    group: {_q(group)}")
    pol_text = " ".join(row.get(roles.get("polarity", "")).split())
    polarity = normalise_polarity(pol_text) if pol_text else None
    if polarity is not None:
        lines.append(f"    polarity: {polarity}  # table: {_q(pol_text)}")
    else:
        guess, why = guess_polarity(measure, target, tolerance)
        polarity = guess
        if pol_text:
            lines.append(
                f"    polarity: {guess}  {CANNOT_READ} '{pol_text}' is not higher or lower is "
                f"better; guessed {guess} ({why}): confirm it"
            )
            cannot += 1
        else:
            lines.append(f"    polarity: {guess}  {GUESSED} the table gives none; {why}")
            guessed += 1
    signed = _SIGNED_WORDS.search(measure)
    if signed:
        lines.append(
            f"    signed: true  {GUESSED} '{signed.group(0)}' in the measure's name: figures may "
            "be below zero"
        )
        guessed += 1
    frequency = " ".join(row.get(roles.get("frequency", "")).split())
    if frequency:
        lines.append(f"    frequency: {_q(frequency)}")
    parsed: dict[str, Target | None] = {}
    critical = " ".join(row.get(roles.get("critical_failure", "")).split())
    cells: tuple[tuple[str, str, Role], ...] = (
        ("target", target, "target"),
        ("tolerance", tolerance, "tolerance"),
        ("critical_failure", critical, "critical"),
    )
    for field_name, text, role in cells:
        if field_name != "target" and not text:
            parsed[field_name] = None
            continue
        if field_name == "target" and by_year:
            lines.append(
                "    targets:  # one column per contract year; a later year reuses the last"
            )
            parsed["target"] = None
            for year, words in by_year.items():
                try:
                    t = parse_target(words, polarity, role="target", measure=measure)
                except TargetError as exc:
                    why = str(exc).removeprefix(f"cannot read '{words}': ")
                    lines.append(f"      {year}: {_q(words)}  {CANNOT_READ} {_one_line(why)}")
                    cannot += 1
                    continue
                parsed["target"] = parsed["target"] or t
                lines.append(f"      {year}: {_q(words)}  # reads: {_one_line(t.explain())}")
            continue
        try:
            t = parse_target(text, polarity, role=role, measure=measure)
        except TargetError as exc:
            reason = str(exc).removeprefix(f"cannot read '{text}': ")
            lines.append(f"    {field_name}: {_q(text)}  {CANNOT_READ} {_one_line(reason)}")
            cannot += 1
            parsed[field_name] = None
            continue
        parsed[field_name] = t
        reading = t.explain() if text else "no target in the table"
        lines.append(f"    {field_name}: {_q(text)}  # reads: {_one_line(reading)}")
    target_t = parsed.get("target")
    if target_t is not None:
        conflict = check_consistency(
            target_t, parsed.get("tolerance"), parsed.get("critical_failure")
        )
        if conflict:
            # put the mark on the tolerance line, the usual culprit, else on the target's
            key = "    tolerance:" if parsed.get("tolerance") is not None else "    target:"
            for i, line in enumerate(lines):
                if line.startswith(key):
                    lines[i] = line.split("  # ")[0] + f"  {CANNOT_READ} {_one_line(conflict)}"
                    cannot += 1
                    break
        if target_t.unit and target_t.unit not in ("count", "milestone"):
            lines.insert(3 if group else 2, f"    unit: {target_t.unit}  # read from the target")
    return lines, cannot, guessed


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def write_draft(draft: Draft, out: Path | None, figures: Path | None) -> list[str]:
    """Write the files; returns one line per file written, for the CLI to print."""
    said = []
    if out is not None:
        out.write_text(draft.yaml, encoding="utf-8")
        said.append(
            f"wrote {out}: {draft.kpis} KPIs, {draft.cannot_read} lines to edit "
            f"(marked {CANNOT_READ}), {draft.guessed} guesses (marked {GUESSED})"
        )
    if figures is not None and draft.figures:
        figures.write_text(draft.figures_csv, encoding="utf-8")
        said.append(f"wrote {figures}: {draft.figures} past figures")
    return said
