"""The target grammar: contract wording in, a structured target that can explain itself out.

Contracts write targets in many ways: ``44.0%``, ``>40%``, ``Less than 40 %``, ``35% minimum``,
``Target 90%``, ``50-75%``, ``> National average or 5% increase on current baseline whichever is
greater``, ``Improvement on previous year``, ``100% with exception reporting``, ``At least good``,
``TBD*``. ``parse_target`` reads them all into a ``Target``; text it cannot read raises
``TargetError`` rather than being guessed.

Comparative words follow polarity: for a smaller-is-better KPI "at least the national average"
means *no worse than* it, so at or below it. Symbols (``>``, ``<``) and "more/less than" are
literal and strict.

>>> t = parse_target("100% with exception reporting", "bigger", unit="percent")
>>> t.explain()
'at least 100%, exceptions must be reported'
>>> parse_target("Tolerance 85%", "bigger").threshold_for()
85.0
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

from kpibot.engine.model import KPI, Contract
from kpibot.engine.numbers import UK, NumberError, parse_number

Op = Literal["gt", "ge", "lt", "le"]
Kind = Literal["threshold", "range", "benchmark", "improvement", "none"]
Role = Literal["target", "tolerance", "critical"]

GRADES = {"inadequate": 1.0, "requires improvement": 2.0, "good": 3.0, "outstanding": 4.0}
GRADE_NAMES = {v: k.capitalize() for k, v in GRADES.items()}
_GRADE_ALIASES = {"ri": "requires improvement", "req improvement": "requires improvement"}


class TargetError(ValueError):
    """Target text the grammar cannot read. ``loc`` locates it in the contract YAML."""

    def __init__(
        self,
        message: str,
        *,
        loc: tuple[str | int, ...] = (),
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.loc = loc
        self.field = field


@dataclass(frozen=True)
class Target:
    """A parsed target, tolerance or critical-failure threshold.

    ``kind`` says how the threshold is found: a constant (``threshold``), a band (``range``), the
    national average possibly combined with an uplifted baseline (``benchmark``), last year's
    value (``improvement``), or nothing at all (``none``: still collected and charted).
    """

    text: str
    kind: Kind
    polarity: str
    role: Role = "target"
    op: Op | None = None
    value: float | None = None
    high: float | None = None
    unit: str | None = None
    uplift: float | None = None
    combine: Literal["max", "min"] | None = None
    exception_reporting: bool = False
    subject: str | None = None
    baseline_hint: float | None = None
    reason: str | None = None
    grade: bool = False
    annual: bool = False

    # ---- evaluation (scalar; the vectorised path in evaluate.py mirrors it) ----
    def threshold_for(
        self,
        national_average: float | None = None,
        baseline: float | None = None,
        previous: float | None = None,
    ) -> float | None:
        """The number to compare against, given the references a period supplies."""
        if self.kind in ("threshold", "range"):
            return self.value
        if self.kind == "benchmark":
            candidates = [national_average]
            if self.uplift is not None:
                base = baseline if baseline is not None else self.baseline_hint
                candidates.append(None if base is None else base * (1.0 + self.uplift))
            known = [c for c in candidates if c is not None and not math.isnan(c)]
            if not known:
                return None
            return max(known) if self.combine != "min" else min(known)
        if self.kind == "improvement":
            ref = (
                previous
                if previous is not None and not math.isnan(previous)
                else self.baseline_hint
            )
            return ref
        return None

    def satisfied(self, value: float, threshold: float) -> bool:
        """Whether ``value`` meets this target (or sits inside this tolerance) at ``threshold``."""
        v = round(value, 9)
        t = round(threshold, 9)
        if self.kind == "range":
            hi = round(self.high if self.high is not None else threshold, 9)
            return v >= t if self.polarity == "bigger" else v <= hi
        op = self.op or ("ge" if self.polarity == "bigger" else "le")
        return _compare(v, op, t)

    def breached(self, value: float, threshold: float) -> bool:
        """For a critical-failure threshold: whether ``value`` falls into the failing region."""
        v = round(value, 9)
        t = round(threshold, 9)
        op = self.op or ("lt" if self.polarity == "bigger" else "gt")
        return _compare(v, op, t)

    # ---- explanation ----
    def explain(self) -> str:
        """Plain English, e.g. 'at least 95%, exceptions must be reported'."""
        if self.kind == "none":
            return self.reason or "no target"
        if self.role == "critical":
            base = f"critical failure if {_op_words(self.op or self._fail_op())} {self._fmt(self.value)}"
            return base + (" a year" if self.annual else "")
        if self.kind == "range":
            text = f"between {self._fmt(self.value)} and {self._fmt(self.high)}"
        elif self.kind == "benchmark":
            if self.op in (None, "ge", "le") and (
                self.op is None or (self.op == "le") == (self.polarity == "smaller")
            ):
                side = "at or above" if self.polarity == "bigger" else "at or below"
                text = f"no worse than the national average ({side} it)"
            else:
                text = f"{self._ref_words()} the national average"
            if self.uplift is not None:
                which = "greater" if self.combine != "min" else "lower"
                text += f" or the baseline {'+' if self.uplift >= 0 else '-'}{abs(self.uplift) * 100:g}%, whichever is {which}"
            if self.baseline_hint is not None:
                text += f" (baseline {self._fmt(self.baseline_hint)})"
        elif self.kind == "improvement":
            better = "higher" if self.polarity == "bigger" else "lower"
            text = f"better ({better}) than the previous year"
            if self.baseline_hint is not None:
                text += f" (baseline {self._fmt(self.baseline_hint)})"
        else:
            op = self.op or ("ge" if self.polarity == "bigger" else "le")
            text = f"{_op_words(op)} {self._fmt(self.value)}"
        if self.subject and self.kind == "threshold" and not self.grade:
            text += f" {self.subject}"
        if self.annual:
            text += " a year"
        if self.exception_reporting:
            text += ", exceptions must be reported"
        return text

    def _fail_op(self) -> Op:
        return "lt" if self.polarity == "bigger" else "gt"

    def _ref_words(self) -> str:
        op = self.op
        if op is None:
            return "no worse than" if self.polarity == "smaller" else "at least"
        return {"gt": "above", "ge": "at least", "lt": "below", "le": "at most"}[op]

    def _fmt(self, value: float | None) -> str:
        if value is None:
            return "?"
        if self.grade:
            return GRADE_NAMES.get(value, f"grade {value:g}")
        if self.unit == "percent":
            return f"{value:g}%"
        if self.unit == "days":
            return f"{value:g} days"
        return f"{value:,.10g}"


def _compare(v: float, op: str, t: float) -> bool:
    if op == "gt":
        return v > t
    if op == "ge":
        return v >= t
    if op == "lt":
        return v < t
    return v <= t


def _op_words(op: str) -> str:
    return {"gt": "more than", "ge": "at least", "lt": "less than", "le": "at most"}[op]


# ---------------------------------------------------------------------------- grammar

_NO_TARGET = [
    (
        re.compile(
            r"^(tbd|tbc|to be (determined|confirmed|agreed|included|set|defined|developed|finalised|finalized|decided|negotiated))\b"
        ),
        "no target yet: to be determined",
    ),
    (re.compile(r"^(n/?a|not applicable|none|nil|-+|—)$"), "no target: reported for note only"),
    (re.compile(r"^for (information|info)\b"), "no target: for information only"),
    (
        re.compile(r"^for baseline\b|^baseline( information| only)?$|^baselining$"),
        "no target: collected as a baseline",
    ),
    # "60-100% For information and baselining": an indicative level, not yet a target.
    (re.compile(r"\bfor (information|info|baseline|baselining)\b"), None),
    (
        re.compile(r"^to (record|collect|develop|measure|report|monitor|agree|establish|set)\b"),
        None,
    ),
    (re.compile(r"\bin agreement with (the )?commissioners?\b"), None),
    (
        re.compile(r"^as (outlined|set out|detailed|described) in\b"),
        "no target: as the service specification sets out",
    ),
    (
        re.compile(r"^target(s)? (to be )?set (from|following|after)\b"),
        "no target yet: to be set from baseline figures",
    ),
    (
        re.compile(r"^(numbers? )?included in\b"),
        "no target of its own: counted within another KPI's target",
    ),
    (re.compile(r"^data accuracy$"), "no numeric threshold: data accuracy"),
]

_WORD_OPS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(>=|≥|=>)"), "ge"),
    (re.compile(r"^(<=|≤|=<)"), "le"),
    (re.compile(r"^>"), "gt"),
    (re.compile(r"^<"), "lt"),
    (
        re.compile(r"^(more than|greater than|higher than|above|over|exceeding|in excess of)\b"),
        "gt",
    ),
    (re.compile(r"^(less than|fewer than|lower than|below|under)\b"), "lt"),
    (
        re.compile(
            r"^(at least|a minimum of|minimum of|minimum|min\.?|no less than|not less than|no fewer than|not fewer than)\b"
        ),
        "atleast",
    ),
    (
        re.compile(
            r"^(at most|a maximum of|maximum of|maximum|max\.?|no more than|not more than|up to)\b"
        ),
        "atmost",
    ),
]
_SUFFIX_OPS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(
            r"^(\+|or more|or above|and above|or higher|or greater|minimum|min\.?|at least)\b|^\+"
        ),
        "atleast",
    ),
    (
        re.compile(r"^(or less|or below|and below|or lower|or fewer|maximum|max\.?|at most)\b"),
        "atmost",
    ),
]
_PREFIXES = re.compile(
    r"^(target|targets|tolerance|critical failure|critical|threshold|performance level|kpi|all|"
    r"an average of|average of|average|mean)\s*[:\-–]?\s*",
)
_NUMBER = r"(?P<num>\d[\d,]*(?:\.\d+)?)"
_NUM_RE = re.compile(rf"^{_NUMBER}\s*(?P<pct>%|per ?cent\b|percent\b)?\s*")
_RANGE_RE = re.compile(
    r"^(?:between\s+)?(?P<lo>\d[\d,]*(?:\.\d+)?)\s*(?P<pct1>%)?\s*(?:-|–|—|to|and)\s*"
    r"(?P<hi>\d[\d,]*(?:\.\d+)?)\s*(?P<pct2>%|per ?cent\b|percent\b)?\s*"
)
_FILLER = re.compile(r"^(an |the )?(average|mean)( of)?\s+")
_NATIONAL = re.compile(
    r"^(the )?(national|england|england and wales|regional) (average|mean|rate|figure)\b"
)
_UPLIFT = re.compile(
    r"^or (?:an? )?(?P<pct>\d+(?:\.\d+)?)\s*% (?P<dir>increase|improvement|uplift|decrease|reduction) "
    r"(?:on|over|from|against) (?:the )?(?:current |existing |local )?baseline,?\s*"
    r"(?:whichever is (?P<which>greater|higher|larger|better|lower|less|smaller))?\s*"
)
_IMPROVE = re.compile(
    r"^(an? )?(improvement|improve|improved|better performance|increase|reduction|decrease) "
    r"(on|over|from|against|compared (with|to)) (the )?(previous|last|prior|preceding) (year|years|period)('s)?( figure| performance| result)?\s*"
)
_HINT = re.compile(r"\(\s*(?P<val>\d[\d,]*(?:\.\d+)?)\s*(?P<pct>%)?\s*(?P<note>[^)]*)\)")
_EXCEPTION = re.compile(r",?\s*(with|subject to|plus)?\s*exception reporting\b\.?", re.IGNORECASE)
_P_A = re.compile(r"\b(p\.?a\.?|per annum|per year|a year|annually|each year)\b\.?")
# "100% parents with at least 60% parental capacity improvement": a population described by a clause.
_POPULATION = re.compile(
    r"^(?!(an? )?(increase|decrease|reduction|improvement|change|rise|fall|drop)\b)"
    r"[a-z][a-z/&' -]*? (with|who|that|achieving|receiving|showing|having|seen|completing)\b"
)
_SEMANTIC = re.compile(
    r"\b(increase|decrease|reduction|reduce|improve|improvement|change|baseline|average|whichever|"
    r"previous|than|national|per cent of|or (more|less)|and|or|not)\b|[<>≤≥%]"
)


def _clean(text: str) -> str:
    t = text.replace("\u00a0", " ").replace("’", "'").replace("‘", "'")
    t = re.sub(r"[*†‡]+", "", t)
    t = re.sub(r"\s+", " ", t).strip().lower()
    return t.strip(" .;:")


def _num(s: str) -> float:
    # Contract words are read by the UK rule: "1,800" is eighteen hundred, and "8,5" (which
    # could be 8.5 or 85) is refused by parse_target rather than read as 85.
    return parse_number(s, UK)


def _polar(op: str, polarity: str) -> Op:
    """Resolve 'at least'/'at most' words: they follow polarity (no worse / no better than)."""
    if op == "atleast":
        return "ge" if polarity == "bigger" else "le"
    if op == "atmost":
        return "le" if polarity == "bigger" else "ge"
    return {"gt": "gt", "ge": "ge", "lt": "lt", "le": "le"}[op]  # type: ignore[return-value]


def _leading_op(t: str) -> tuple[str | None, str]:
    for pattern, op in _WORD_OPS:
        m = pattern.match(t)
        if m:
            return op, t[m.end() :].strip()
    return None, t


def _grade(t: str) -> tuple[str | None, float | None]:
    t2 = t.replace("'", "").replace('"', "")
    m = re.match(
        r"^(all|every centre|each)?\s*(?P<a>good|outstanding|requires improvement|inadequate)\s+or\s+(?P<b>good|outstanding|requires improvement|inadequate)$",
        t2,
    )
    if m:
        return "ge", min(GRADES[m["a"]], GRADES[m["b"]])
    op, rest = _leading_op(t2)
    rest = re.sub(r"^(an? )?", "", rest)
    rest = re.sub(
        r"\s*(grading|grade|rating|ofsted( rating| grade)?|or better|or above)$", "", rest
    ).strip()
    rest = _GRADE_ALIASES.get(rest, rest)
    if rest in GRADES and (op is not None or t2 == rest):
        return (op or "atleast"), GRADES[rest]
    return None, None


def parse_target(
    text: str,
    polarity: str,
    *,
    unit: str | None = None,
    role: Role = "target",
) -> Target:
    """Read one cell of contract text. Raise ``TargetError`` for anything it cannot read.

    >>> parse_target("Target 8,5%", "bigger")
    Traceback (most recent call last):
        ...
    kpibot.engine.targets.TargetError: cannot read 'Target 8,5%': '8,5' could mean 8.5 or 85; write 8.5 with a decimal point (or 85 without a comma)
    """
    try:
        return _parse_target(text, polarity, unit=unit, role=role)
    except NumberError as exc:
        raise TargetError(f"cannot read '{str(text).strip()}': {str(exc).rstrip('.')}") from None


def _parse_target(
    text: str,
    polarity: str,
    *,
    unit: str | None = None,
    role: Role = "target",
) -> Target:
    original = str(text)
    t = _clean(original)
    if not t:
        return Target(original, "none", polarity, role, reason="no target given")
    for pattern, reason in _NO_TARGET:
        if pattern.search(t):
            return Target(
                original,
                "none",
                polarity,
                role,
                reason=reason or f"no target: {original.strip().rstrip('.')}",
            )

    exception = bool(_EXCEPTION.search(t))
    t = _EXCEPTION.sub("", t).strip(" ,.")
    hint = None
    m = _HINT.search(t)
    if m:
        hint = _num(m["val"])
        if m["pct"] and unit is None:
            unit = "percent"
        t = (t[: m.start()] + t[m.end() :]).strip()
    annual = bool(_P_A.search(t))
    t = _P_A.sub("", t).strip(" ,.")
    t = _PREFIXES.sub("", t, count=1).strip()

    def fail(why: str) -> TargetError:
        return TargetError(f"cannot read '{original.strip()}': {why}")

    # Ofsted grades: "At least good", "Good or outstanding"
    gop, gval = _grade(t)
    if gval is not None and gop is not None:
        return Target(
            original,
            "threshold",
            "bigger",
            role,
            _polar(gop, "bigger"),
            gval,
            unit="grade",
            grade=True,
            exception_reporting=exception,
        )

    # Improvement on previous year
    m = _IMPROVE.match(t)
    if m and not t[m.end() :].strip():
        return Target(
            original,
            "improvement",
            polarity,
            role,
            "gt" if polarity == "bigger" else "lt",
            unit=unit,
            baseline_hint=hint,
            exception_reporting=exception,
        )

    op, rest = _leading_op(t)
    rest = _FILLER.sub("", rest).strip()
    op2, rest2_ = _leading_op(rest)
    if op2 is not None and op is not None:
        if role != "critical":
            raise fail("it has two comparisons")
        # "Minimum average Below 7.0": the second words name the failing region.
        op, rest = op2, rest2_
    elif op2 is not None:
        op, rest = op2, rest2_
    # Benchmarks: "> National average or 5% increase on current baseline whichever is greater"
    m = _NATIONAL.match(rest)
    if m:
        tail = rest[m.end() :].strip()
        uplift: float | None = None
        combine: Literal["max", "min"] | None = None
        mu = _UPLIFT.match(tail)
        if mu:
            sign = -1.0 if mu["dir"] in ("decrease", "reduction") else 1.0
            uplift = sign * float(mu["pct"]) / 100.0
            which = mu["which"] or ("greater" if polarity == "bigger" else "lower")
            if which == "better":
                which = "greater" if polarity == "bigger" else "lower"
            combine = "max" if which in ("greater", "higher", "larger") else "min"
            tail = tail[mu.end() :].strip()
        if tail:
            raise fail(f"unexpected words after the benchmark: '{tail}'")
        bench_op: Op | None = None if op is None else _polar(op, polarity)
        return Target(
            original,
            "benchmark",
            polarity,
            role,
            bench_op,
            unit=unit,
            uplift=uplift,
            combine=combine,
            baseline_hint=hint,
            exception_reporting=exception,
        )

    # Ranges: "50-75%"
    m = _RANGE_RE.match(rest)
    if m and op is None and not rest[m.end() :].strip():
        lo, hi = _num(m["lo"]), _num(m["hi"])
        if lo > hi:
            raise fail("the range runs backwards")
        is_pct = bool(m["pct1"] or m["pct2"])
        return Target(
            original,
            "range",
            polarity,
            role,
            None,
            lo,
            hi,
            unit="percent" if is_pct else unit,
            exception_reporting=exception,
        )

    m = _NUM_RE.match(rest)
    if not m:
        raise fail(
            "expected a number, a range, the national average, an Ofsted grade, "
            "'Improvement on previous year' or a no-target phrase such as 'TBD'"
        )
    value = _num(m["num"])
    rest2 = rest[m.end() :].strip()
    if (
        rest2
        and not m["pct"]
        and rest[m.end() - 1 : m.end()].strip()
        and not rest2.startswith(("+", "("))
    ):
        # "2e-5", "40x": letters glued to a number change its meaning.
        raise fail(f"'{m['num']}{rest2.split()[0]}' is not a number I can read")
    for pattern, sop in _SUFFIX_OPS:
        ms = pattern.match(rest2)
        if ms:
            if op is not None:
                raise fail("it has two comparisons")
            op = sop
            rest2 = rest2[ms.end() :].strip()
            break
    subject = None
    if rest2:
        if rest2.startswith("of ") or rest2.startswith("(") or _POPULATION.match(rest2):
            subject = rest2
        elif _SEMANTIC.search(rest2):
            raise fail(f"the words '{rest2}' change the meaning and I will not guess it")
        else:
            subject = rest2
    inferred = unit
    if m["pct"]:
        inferred = "percent"
    elif subject and re.match(r"^(working )?days?\b", subject):
        inferred = "days"
        subject = None if subject in ("day", "days") else subject
    elif inferred is None:
        inferred = "count"
    if op is None:
        resolved: Op | None = None
    else:
        resolved = _polar(op, polarity)
    return Target(
        original,
        "threshold",
        polarity,
        role,
        resolved,
        value,
        unit=inferred,
        subject=subject,
        exception_reporting=exception,
        baseline_hint=hint,
        annual=annual,
    )


# ----------------------------------------------------------------------- compiled KPIs


@dataclass(frozen=True)
class YearTerms:
    """The terms a KPI has in one contract year: target, tolerance, critical failure, exemption."""

    year: int
    target: Target
    tolerance: Target | None
    critical: Target | None
    exempt: bool


@dataclass(frozen=True)
class CompiledKpi:
    code: str
    polarity: str
    unit: str
    years: dict[int, YearTerms] = field(default_factory=dict)


def _better(a: float, b: float, polarity: str) -> bool:
    return a > b if polarity == "bigger" else a < b


def check_consistency(
    target: Target, tolerance: Target | None, critical: Target | None
) -> str | None:
    """A reason why these terms contradict the KPI's polarity, or None when they agree."""
    pol = target.polarity
    if target.kind == "threshold" and target.op in ("gt", "ge", "lt", "le") and not target.grade:
        wants_up = target.op in ("gt", "ge")
        if wants_up != (pol == "bigger"):
            return (
                f"target '{target.text.strip()}' asks for {'higher' if wants_up else 'lower'} values, "
                f"but the KPI's polarity is {pol} is better"
            )
    if (
        tolerance is not None
        and tolerance.kind == "threshold"
        and target.kind == "threshold"
        and tolerance.value is not None
        and target.value is not None
        and not target.grade
        and _better(tolerance.value, target.value, pol)
    ):
        return (
            f"tolerance '{tolerance.text.strip()}' is better than the target '{target.text.strip()}' "
            f"for a {pol}-is-better KPI; the tolerance must be the worse threshold"
        )
    if (
        critical is not None
        and critical.kind == "threshold"
        and critical.op is not None
        and critical.op in ("gt", "ge", "lt", "le")
    ):
        fails_up = critical.op in ("gt", "ge")
        if fails_up != (pol == "smaller"):
            return (
                f"critical failure '{critical.text.strip()}' points the wrong way for a "
                f"{pol}-is-better KPI"
            )
    return None


# Compiled terms by what they are read from (never by KPI code), so the many KPIs that share
# their wording across thousands of contracts are parsed once; YearTerms are frozen, so sharing
# them is safe. Bounded: a process that sees ever new wordings starts again from empty.
_TERMS_CACHE: dict[tuple[object, ...], tuple[str | None, dict[int, YearTerms]]] = {}
TERMS_CACHE_SIZE = 50_000


def _frozen(value: object) -> object:
    return tuple(sorted(value.items())) if isinstance(value, dict) else value


def _terms_key(kpi: KPI, years: list[int]) -> tuple[object, ...]:
    return (
        kpi.kind,
        kpi.polarity,
        kpi.unit,
        kpi.target,
        _frozen(kpi.targets),
        _frozen(kpi.tolerance),
        _frozen(kpi.critical_failure),
        tuple(kpi.exempt_years),
        _frozen(kpi.disputed_years),
        kpi.target_basis,
        tuple(years),
    )


def compile_kpi(kpi: KPI, years: list[int], loc: tuple[str | int, ...] = ()) -> CompiledKpi:
    """Parse every year's terms for one KPI, naming KPI, year and text on failure.

    KPIs worded alike share one parse (and one ``years`` mapping: treat it as read-only).
    """
    key = _terms_key(kpi, years)
    hit = _TERMS_CACHE.get(key)
    if hit is None:
        hit = _compile_years(kpi, years, loc)
        if len(_TERMS_CACHE) >= TERMS_CACHE_SIZE:
            _TERMS_CACHE.clear()
        _TERMS_CACHE[key] = hit
    unit, out = hit
    return CompiledKpi(kpi.code, kpi.polarity, unit or "count", out)


def clear_terms_cache() -> None:
    """Forget every compiled wording (benchmarks measuring a cold start call this)."""
    _TERMS_CACHE.clear()


def _compile_years(
    kpi: KPI, years: list[int], loc: tuple[str | int, ...]
) -> tuple[str | None, dict[int, YearTerms]]:
    out: dict[int, YearTerms] = {}
    unit: str | None = kpi.unit
    for year in years:
        if year in kpi.disputed_years:
            disputed = kpi.target_text(year) or ""
            none = Target(
                disputed,
                "none",
                kpi.polarity,
                reason=f"target under review: {kpi.disputed_years[year]}",
            )
            out[year] = YearTerms(year, none, None, None, kpi.is_exempt(year))
            continue
        if kpi.kind == "deliverable":
            words = kpi.target_text(year) or ""
            none = Target(
                words,
                "none",
                kpi.polarity,
                reason=f"deliverable, no numeric target: {words.strip()}",
            )
            out[year] = YearTerms(year, none, None, None, kpi.is_exempt(year))
            continue
        texts = {
            "targets": kpi.target_text(year),
            "tolerance": kpi.tolerance_text(year),
            "critical_failure": kpi.critical_text(year),
        }
        parsed: dict[str, Target | None] = {}
        for fname, text in texts.items():
            role: Role = {
                "targets": "target",
                "tolerance": "tolerance",
                "critical_failure": "critical",
            }[fname]  # type: ignore[assignment]
            if text is None:
                parsed[fname] = None
                continue
            try:
                parsed[fname] = parse_target(text, kpi.polarity, unit=unit, role=role)
            except TargetError as exc:
                floc: tuple[str | int, ...] = (*loc, fname)
                if fname == "targets" and year in kpi.targets:
                    floc = (*floc, year)
                elif fname == "targets":
                    floc = (*loc, "target")
                raise TargetError(
                    f"KPI {kpi.code}, year {year}: {exc}",
                    loc=floc,
                    field=f"kpis[{kpi.code}].{fname}",
                ) from None
        target = parsed["targets"]
        assert target is not None
        if unit is None and target.unit:
            unit = target.unit
        why = check_consistency(target, parsed["tolerance"], parsed["critical_failure"])
        if why:
            raise TargetError(
                f"KPI {kpi.code}, year {year}: {why}",
                loc=(*loc, "polarity"),
                field=f"kpis[{kpi.code}].polarity",
            )
        annual = kpi.target_basis == "annual"
        out[year] = YearTerms(
            year,
            replace(target, annual=annual or target.annual),
            parsed["tolerance"],
            parsed["critical_failure"],
            kpi.is_exempt(year),
        )
    return unit, out


def compile_contract(contract: Contract) -> dict[str, CompiledKpi]:
    """Parse every KPI's targets for every contract year; the first unreadable text raises."""
    years = [y.year for y in contract.contract_years]
    return {k.code: compile_kpi(k, years, ("kpis", i)) for i, k in enumerate(contract.kpis)}


def iter_phrasings(contract: Contract) -> Iterator[tuple[str, int, str]]:
    """Every (kpi, year, text) target phrasing in a contract, for reports and tests."""
    for k in contract.kpis:
        for y in contract.contract_years:
            text = k.target_text(y.year)
            if text is not None:
                yield k.code, y.year, text


def parse_grade(value: str) -> float | None:
    """An Ofsted grade word as its rank (Outstanding 4 … Inadequate 1), or None."""
    key = _GRADE_ALIASES.get(_clean(value), _clean(value))
    return GRADES.get(key)
