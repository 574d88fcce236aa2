"""A contract read back in plain English, for both parties to sign off (``kpibot contracts explain``).

Every KPI, every contract year: the contract's words beside kpibot's reading of them, the
tolerance and critical failure, polarity, unit, reporting frequency, trend method, and every
assumption kpibot made (a number set aside as a year, a time limit taken from the KPI's name, a
target carried into a later year). Then the group rules, the milestones and the money.

>>> # explain_rows(contract) -> [ExplainRow(kpi="C1", year="2018/19", ...), ...]
>>> # explain_text(contract) -> "Children's Trust ... \\n C1  Assessments completed ..."
"""

from __future__ import annotations

from dataclasses import dataclass

from kpibot.engine.model import KPI, Contract
from kpibot.engine.payments import explain_payments
from kpibot.engine.scorecard import reporting_kind
from kpibot.engine.targets import CompiledKpi, Target, YearTerms, compile_contract

TREND_WORDS = {
    "last_three": "the last three values",
    "same_period_last_year": "the same period last year",
}
FREQUENCY_DEFAULT = "frequency not stated: reported as the contract reports ({kind}ly)"
CARRIED = "the contract states no target for {year}; {source}'s is used"
UNIT_INFERRED = "unit not stated: read as {unit} from the target's words"
EXEMPT = "exempt from its target this year: rated grey"
COLUMNS = [
    "kpi",
    "name",
    "year",
    "polarity",
    "unit",
    "frequency",
    "trend",
    "target_words",
    "target_reading",
    "tolerance_words",
    "tolerance_reading",
    "critical_words",
    "critical_reading",
    "assumptions",
]


@dataclass(frozen=True)
class ExplainRow:
    """One KPI in one contract year, as ``contracts explain --format csv`` writes it."""

    kpi: str
    name: str
    year: str
    polarity: str
    unit: str
    frequency: str
    trend: str
    target_words: str
    target_reading: str
    tolerance_words: str
    tolerance_reading: str
    critical_words: str
    critical_reading: str
    assumptions: str


def _words(t: Target | None) -> str:
    return "" if t is None else " ".join(t.text.split())


def _reading(t: Target | None) -> str:
    return "" if t is None else t.explain()


def _assumptions(
    contract: Contract, kpi: KPI, comp: CompiledKpi, terms: YearTerms, names: dict[int, str]
) -> list[str]:
    out: list[str] = []
    if terms.carried_from is not None:
        out.append(
            CARRIED.format(
                year=names[terms.year], source=names.get(terms.carried_from, "an earlier year")
            )
        )
    if terms.exempt:
        out.append(EXEMPT)
    if kpi.unit is None and comp.unit not in ("count", "milestone"):
        out.append(UNIT_INFERRED.format(unit=comp.unit))
    for t in (terms.target, terms.tolerance, terms.critical):
        if t is not None:
            out.extend(t.notes)
    if kpi.frequency is None:
        out.append(FREQUENCY_DEFAULT.format(kind=reporting_kind(kpi, contract.reporting.period)))
    return list(dict.fromkeys(out))


def explain_rows(contract: Contract) -> list[ExplainRow]:
    """One row per KPI per contract year."""
    comp = compile_contract(contract)
    names = {y.year: y.name for y in contract.contract_years}
    rows = []
    for k in contract.kpis:
        ck = comp[k.code]
        for y in contract.contract_years:
            terms = ck.years[y.year]
            rows.append(
                ExplainRow(
                    k.code,
                    " ".join(k.name.split()),
                    y.name,
                    "higher is better" if k.polarity == "bigger" else "lower is better",
                    ck.unit.replace("_", " "),
                    k.frequency or f"{reporting_kind(k, contract.reporting.period)}ly (default)",
                    TREND_WORDS.get(ck.trend, ck.trend),
                    _words(terms.target),
                    _reading(terms.target),
                    _words(terms.tolerance),
                    _reading(terms.tolerance),
                    _words(terms.critical),
                    _reading(terms.critical),
                    "; ".join(_assumptions(contract, k, ck, terms, names)),
                )
            )
    return rows


def explain_text(contract: Contract) -> str:
    """The whole contract in plain English, KPI by KPI, then groups, milestones and money."""
    lines = [
        f"{contract.name} ({contract.id})",
        f"{contract.commissioner.name} and {contract.provider.name}; "
        + ", ".join(
            f"{y.name} {y.start:%-d %b %Y} to {y.end:%-d %b %Y}" for y in contract.contract_years
        ),
        f"Trends compare with {TREND_WORDS[contract.trend]} unless a KPI says otherwise.",
        "",
    ]
    by_kpi: dict[str, list[ExplainRow]] = {}
    for row in explain_rows(contract):
        by_kpi.setdefault(row.kpi, []).append(row)
    for k in contract.kpis:
        rows = by_kpi[k.code]
        first = rows[0]
        lines.append(f"{k.code}  {first.name}")
        lines.append(
            f"    {first.polarity} · unit: {first.unit} · reported: {first.frequency} · "
            f"trend: {first.trend}"
        )
        previous: tuple[str, ...] | None = None
        for r in rows:
            same = (r.target_words, r.tolerance_words, r.critical_words, r.assumptions)
            if same == previous:
                lines.append(f"    {r.year}: as above")
                continue
            previous = same
            target = f'"{r.target_words}"' if r.target_words else "(none)"
            lines.append(f"    {r.year}: target {target} → {r.target_reading}")
            if r.tolerance_words:
                lines.append(f'        tolerance "{r.tolerance_words}" → {r.tolerance_reading}')
            if r.critical_words:
                lines.append(
                    f'        critical failure "{r.critical_words}" → {r.critical_reading}'
                )
            if r.assumptions:
                lines.append(f"        assumed: {r.assumptions}")
        lines.append("")
    if contract.groups:
        lines.append("Group rules")
        for g in contract.groups:
            clause = f" ({g.clause})" if g.clause else ""
            lines.append(
                f"    {g.name}{clause}: performed when {g.need} of {len(g.kpis)} KPIs meet their "
                f"targets ({', '.join(g.kpis)}); a KPI within tolerance is not met"
            )
        lines.append("")
    milestones = [k for k in contract.kpis if k.kind == "milestone" and k.due is not None]
    if milestones:
        lines.append("Milestones")
        for k in milestones:
            assert k.due is not None
            lines.append(
                f"    {k.code} {' '.join(k.name.split())}: due {k.due:%-d %B %Y}; report 'achieved' "
                "or 'not achieved'"
            )
        lines.append("")
    lines.append("Money")
    lines.extend(f"    {line}" for line in explain_payments(contract))
    return "\n".join(lines).rstrip() + "\n"
