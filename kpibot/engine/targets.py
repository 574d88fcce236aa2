"""Targets in the contract's words: the one entry point of the target grammar.

``parse_target`` reads one cell of contract text (a target, tolerance or critical-failure
threshold) into a :class:`Target` that evaluates and explains itself; ``compile_contract`` reads
every KPI's terms for every contract year. The grammar behind them is a few focused modules:
``vocabulary`` (number words, units, comparators), ``phrases`` (the lexer: quantities, and the
numbers that are not targets), ``readings`` (what a reading is), ``changes`` and ``clauses``
(the readers of each kind) and ``reading`` (``read_phrase``, which puts a phrase's clauses
together). Text that cannot be read completely raises ``TargetError`` naming the words; nothing
is guessed.

Comparator words mean what they say: "no more than 30 days" is at most 30 whatever the KPI's
polarity, and words that point the other way from the polarity are refused with both named.
Only comparisons with a reference ("at least the national average", "Good or better") follow
polarity, because they mean *no worse than*.

>>> t = parse_target("100% with exception reporting", "bigger", unit="percent")
>>> t.explain()
'at least 100%, exceptions must be reported'
>>> parse_target("Tolerance 85%", "bigger").threshold_for()
85.0
>>> parse_target("90% of complaints within 15 working days", "bigger").explain()
'at least 90% within 15 working days'
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Literal

from kpibot.engine.bands import Bands, BandsError, read_bands
from kpibot.engine.model import KPI, Contract
from kpibot.engine.reading import GRADE_RANK, PhraseRefused, Reading, read_phrase
from kpibot.engine.readings import opposite

Op = Literal["gt", "ge", "lt", "le"]
Kind = Literal[
    "threshold",
    "range",
    "benchmark",
    "improvement",
    "relative",
    "tolerance_relative",
    "milestone",
    "none",
]
Role = Literal["target", "tolerance", "critical"]

GRADES = {"inadequate": 1.0, "requires improvement": 2.0, "good": 3.0, "outstanding": 4.0}
GRADE_NAMES = {v: k.capitalize() for k, v in GRADES.items()}
_GRADE_ALIASES = {
    "ri": "requires improvement",
    "req improvement": "requires improvement",
    "satisfactory": "requires improvement",
}
_OPS: dict[str, Op] = {">=": "ge", ">": "gt", "<=": "le", "<": "lt"}
# How units read in explanations: "15 working days", "£3,000,000", "60 seconds".
UNIT_WORDS = {
    "days": "days",
    "working_days": "working days",
    "weeks": "weeks",
    "months": "months",
    "hours": "hours",
    "minutes": "minutes",
    "seconds": "seconds",
}
TIME_UNITS = tuple(UNIT_WORDS)

# User-facing sentences (the grammar's own are in kpibot.engine.reading).
CANNOT_READ = "cannot read '{text}': {why}"
COMPOUND = (
    "it sets {n} targets ({parts}); a KPI has one figure a period, so write them as {n} KPIs "
    "with one target each"
)
PROFILE = (
    "it gives a figure for each period ({parts}); write each contract year's figure under "
    "'targets:' (or each quarter's under 'in_year_targets:')"
)
TOLERANCE_AS_TARGET = "'{text}' is a tolerance, not a target; put it under 'tolerance:'"
FAILURE_AS_TARGET = (
    "'{text}' names a failure band, not the target; put it under 'critical_failure:'"
)
MILESTONE_AS_THRESHOLD = "'{text}' is a milestone; a {role} needs a figure"
SHARE_OF_TARGET_SMALLER = (
    "'{text}' could mean 110% of the target or the target divided by 0.9 for a "
    "smaller-is-better KPI; write it as 'within 10% of target' or as the level itself"
)


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
    value (``improvement``), a change against a baseline or last year (``relative``: ``uplift``
    is the fraction, ``baseline_from`` which reference), a share of the target itself
    (``tolerance_relative``: ``uplift`` is the allowed fraction), a deliverable achieved by a
    date (``milestone``), or nothing at all (``none``: still collected and charted).
    ``within`` is the time limit that is part of the measure; ``notes`` every assumption made.
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
    within: tuple[float, str] | None = None
    beyond: bool = False
    per: float | None = None
    baseline_from: Literal["baseline", "previous_year"] | None = None
    due: date | None = None
    due_text: str | None = None
    average: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    # ---- evaluation (scalar; the vectorised path in evaluate.py mirrors it) ----
    def threshold_for(
        self,
        national_average: float | None = None,
        baseline: float | None = None,
        previous: float | None = None,
        target: float | None = None,
    ) -> float | None:
        """The number to compare against, given the references a period supplies.

        ``target`` is the target's own threshold, which a relative tolerance is a share of.
        """
        if self.kind in ("threshold", "range"):
            return self.value
        if self.kind == "milestone":
            return 1.0
        if self.kind == "benchmark":
            candidates = [national_average]
            if self.uplift is not None:
                base = baseline if baseline is not None else self.baseline_hint
                candidates.append(None if base is None else base * (1.0 + self.uplift))
            known = [c for c in candidates if c is not None and not math.isnan(c)]
            if not known:
                return None
            return max(known) if self.combine != "min" else min(known)
        if self.kind in ("improvement", "relative"):
            if self.kind == "relative" and self.baseline_from != "previous_year":
                ref = baseline if baseline is not None else self.baseline_hint
            else:
                ref = (
                    previous
                    if previous is not None and not math.isnan(previous)
                    else self.baseline_hint
                )
            if ref is None:
                return None
            return ref * (1.0 + (self.uplift or 0.0))
        if self.kind == "tolerance_relative":
            if target is None or math.isnan(target):
                return None
            return target * self.tolerance_factor()
        return None

    def tolerance_factor(self) -> float:
        """For a relative tolerance: the target is multiplied by this (0.9 for 'within 10%')."""
        share = self.uplift or 0.0
        return 1.0 - share if self.polarity == "bigger" else 1.0 + share

    def satisfied(self, value: float, threshold: float) -> bool:
        """Whether ``value`` meets this target (or sits inside this tolerance) at ``threshold``."""
        v = round(value, 9)
        t = round(threshold, 9)
        if self.kind == "range":
            hi = round(self.high if self.high is not None else threshold, 9)
            return v >= t if self.polarity == "bigger" else v <= hi
        op = self.op or ("ge" if self.polarity == "bigger" else "le")
        if self.kind == "tolerance_relative":
            op = "ge" if self.polarity == "bigger" else "le"
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
        if self.kind == "milestone":
            due = f" by {self.due_text}" if self.due_text else ""
            return f"achieved{due} (a milestone: achieved or not)"
        if self.role == "critical":
            op = self.op or self._fail_op()
            base = f"critical failure if {_op_words(op)} {self._fmt(self.value)}"
            return base + self._tail() + (" a year" if self.annual else "")
        if self.kind == "range":
            low, high, tail = self._fmt(self.value), self._fmt(self.high), self._tail()
            if self.polarity == "bigger":
                text = f"between {low} and {high}{tail} (at least {low} meets; above {high} too)"
            else:
                text = f"between {low} and {high}{tail} (at most {high} meets; below {low} too)"
        elif self.kind == "benchmark":
            text = self._benchmark_words()
        elif self.kind == "improvement":
            better = "higher" if self.polarity == "bigger" else "lower"
            text = f"better ({better}) than the previous year"
            if self.uplift:
                text = f"{self._change_words()} the previous year's figure"
            if self.baseline_hint is not None:
                text += f" (baseline {self._fmt(self.baseline_hint)})"
        elif self.kind == "relative":
            text = self._change_words()
            if self.baseline_from == "previous_year":
                text += " the same period last year"
            else:
                text += " the baseline"
            if self.baseline_hint is not None:
                text += f" ({self._fmt(self.baseline_hint)})"
        elif self.kind == "tolerance_relative":
            share = (self.uplift or 0.0) * 100
            side = "below" if self.polarity == "bigger" else "above"
            text = f"within {share:g}% of the target ({share:g}% of the target's value {side} it)"
        else:
            op = self.op or ("ge" if self.polarity == "bigger" else "le")
            what = "an average of " if self.average else ""
            text = f"{what}{_op_words(op)} {self._fmt(self.value)}"
            if self.subject and not self.grade:
                text += f" {self.subject}"
            text += self._tail()
        if self.annual:
            text += " a year"
        if self.exception_reporting:
            text += ", exceptions must be reported"
        return text

    def _tail(self) -> str:
        text = ""
        if self.per is not None:
            text += f" per {self.per:,.10g}"
        if self.within is not None:
            limit = _format_amount(self.within[0], self.within[1])
            text += f" beyond {limit}" if self.beyond else f" within {limit}"
        return text

    def _benchmark_words(self) -> str:
        if self.op in (None, "ge", "le") and (
            self.op is None or (self.op == "le") == (self.polarity == "smaller")
        ):
            side = "at or above" if self.polarity == "bigger" else "at or below"
            text = f"no worse than the national average ({side} it)"
        else:
            text = f"{self._ref_words()} the national average"
        if self.uplift is not None:
            which = "greater" if self.combine != "min" else "lower"
            sign = "+" if self.uplift >= 0 else "-"
            text += f" or the baseline {sign}{abs(self.uplift) * 100:g}%, whichever is {which}"
        if self.baseline_hint is not None:
            text += f" (baseline {self._fmt(self.baseline_hint)})"
        return text

    def _change_words(self) -> str:
        share = abs(self.uplift or 0.0) * 100
        if share == 0:
            return {"lt": "below", "le": "no higher than", "gt": "above", "ge": "no lower than"}[
                self.op or "ge"
            ]
        strict = self.op in ("gt", "lt")
        size = f"more than {share:g}%" if strict else f"at least {share:g}%"
        direction = "below" if (self.uplift or 0.0) < 0 else "above"
        return f"{size} {direction}"

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
        return _format_amount(value, self.unit)


def _format_amount(value: float, unit: str | None) -> str:
    """'95%', '15 working days', '£3,000,000', '1,800'."""
    if unit == "percent":
        return f"{value:g}%"
    if unit in UNIT_WORDS:
        word = UNIT_WORDS[unit]
        if value == 1:
            word = word[:-1]
        return f"{value:g} {word}"
    if unit == "gbp":
        return f"£{value:,.2f}".removesuffix(".00")
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


# ---------------------------------------------------------------------------- reading → Target


def parse_target(
    text: str,
    polarity: str,
    *,
    unit: str | None = None,
    role: Role = "target",
    measure: str | None = None,
) -> Target:
    """Read one cell of contract text. Raise ``TargetError`` for anything it cannot read.

    ``measure`` (the KPI's name) may supply what the cell leaves out, such as the time limit in
    "Complaints answered within 15 working days" beside a target of "90%". Figures are read by the
    UK rule (``kpibot.engine.numbers``): "1,800" is eighteen hundred, and "8,5" is refused.

    >>> parse_target("Target 8,5%", "bigger")
    Traceback (most recent call last):
        ...
    kpibot.engine.targets.TargetError: cannot read 'Target 8,5%': '8,5' could mean 8.5 or 85; write 8.5 with a decimal point (or 85 without a comma)
    """
    return _parse_target(str(text), polarity, unit, role, measure)


ReadingKey = tuple[str, str, str | None, str, str | None]
"""What a reading depends on: (text, polarity, unit, role, measure)."""

# Contracts repeat the same few phrasings thousands of times (and a Target is frozen), so each
# distinct key is read once; refusals are not kept. Bounded: a process that sees ever new
# phrasings starts again from empty. ``remember_readings`` fills it from the store.
_READINGS: dict[ReadingKey, Target] = {}
READINGS_SIZE = 16_384
_RECORDING = threading.local()


def _parse_target(
    original: str, polarity: str, unit: str | None, role: Role, measure: str | None
) -> Target:
    key: ReadingKey = (original, polarity, unit, role, measure)
    hit = _READINGS.get(key)
    if hit is None:
        hit = _read_target(original, polarity, unit, role, measure)
        if len(_READINGS) >= READINGS_SIZE:
            _READINGS.clear()
        _READINGS[key] = hit
    used: list[ReadingKey] | None = getattr(_RECORDING, "keys", None)
    if used is not None:
        used.append(key)
    return hit


def _read_target(
    original: str, polarity: str, unit: str | None, role: Role, measure: str | None
) -> Target:
    shown = " ".join(original.split()).strip()
    try:
        bands = read_bands(original)
    except BandsError as exc:
        raise TargetError(CANNOT_READ.format(text=shown, why=exc)) from None
    if bands is not None:
        return _banded(bands, original, shown, polarity, unit, role, measure)
    try:
        r = read_phrase(original, polarity, measure=measure, unit=unit, role=role)
    except PhraseRefused as exc:
        raise TargetError(CANNOT_READ.format(text=shown, why=exc)) from None
    t = _target(r, original, shown, polarity, unit, role)
    if t.kind == "none":
        return t
    return replace(
        t,
        exception_reporting=r.exception_reporting,
        annual=r.annual or t.annual,
        notes=t.notes or r.notes,
    )


def _banded(
    bands: Bands,
    original: str,
    shown: str,
    polarity: str,
    unit: str | None,
    role: Role,
    measure: str | None,
) -> Target:
    """A cell of RAG bands ("Green >= 92%, Amber 85-91.9%, Red < 85%", ``kpibot.engine.bands``):
    the green edge is the target, the amber band's outer edge the tolerance."""

    def refuse(why: str) -> TargetError:
        return TargetError(CANNOT_READ.format(text=shown, why=why))

    if bands.polarity is not None and bands.polarity != polarity:
        if bands.labelled:
            raise refuse(
                f"its tolerance is {'below' if bands.polarity == 'bigger' else 'above'} its "
                f"target, so {bands.polarity} is better, but the KPI's polarity is {polarity} "
                "is better"
            )
        end = "high" if bands.polarity == "bigger" else "low"
        raise refuse(
            f"its bands put green at the {end} end, so {bands.polarity} is better, but the "
            f"KPI's polarity is {polarity} is better"
        )
    if role == "critical":
        raise refuse("it gives a target and a tolerance, not a critical failure threshold")
    words = bands.target if role == "target" else bands.tolerance
    if words is None:
        raise refuse("its bands give no amber band, so they set no tolerance")
    t = _read_target(words, polarity, unit, role, measure)
    return replace(t, text=original, notes=(*t.notes, bands.note))


def tolerance_in_bands(target_text: str | None) -> str | None:
    """The target's own text when it is RAG bands with an amber band, to read the tolerance
    from where the contract gives no separate one; otherwise None."""
    if not target_text:
        return None
    try:
        bands = read_bands(target_text)
    except BandsError:
        return None
    return target_text if bands is not None and bands.tolerance is not None else None


def _target(
    r: Reading, original: str, shown: str, polarity: str, unit: str | None, role: Role
) -> Target:
    def fail(why: str) -> TargetError:
        return TargetError(CANNOT_READ.format(text=shown, why=why))

    if r.kind == "no_target":
        return Target(original, "none", polarity, role, reason=r.reason, notes=r.notes)
    if r.kind in ("compound", "profile"):
        parts = "; ".join(_part_words(p) for p in r.parts)
        template = COMPOUND if r.kind == "compound" else PROFILE
        raise fail(template.format(n=len(r.parts), parts=parts))
    if r.kind == "failure" and role != "critical":
        raise TargetError(FAILURE_AS_TARGET.format(text=shown))
    if r.kind in ("tolerance_relative", "tolerance_share"):
        if role != "tolerance":
            raise TargetError(TOLERANCE_AS_TARGET.format(text=shown))
        if r.kind == "tolerance_share":
            if polarity != "bigger":
                raise TargetError(SHARE_OF_TARGET_SMALLER.format(text=shown))
            share = 1.0 - (r.value or 0.0) / 100.0
            note = f"'{shown}' is read as {r.value:g}% of the target's value"
        else:
            share = (r.value or 0.0) / 100.0
            note = f"'{shown}' is read as {r.value:g}% of the target's value, not points"
        return Target(
            original,
            "tolerance_relative",
            polarity,
            role,
            uplift=share,
            notes=(*r.notes, note),
        )
    if r.kind == "milestone":
        if role != "target":
            raise TargetError(MILESTONE_AS_THRESHOLD.format(text=shown, role=role))
        if r.comparator == "<=" and r.value == 0.0 and r.unit is not None:
            # "clear all ... by March 2011", "On-time": a ceiling of zero
            return Target(
                original,
                "threshold",
                polarity,
                role,
                "le",
                0.0,
                unit=r.unit,
                within=r.within,
                beyond=r.beyond,
            )
        return Target(
            original,
            "milestone",
            "bigger",
            role,
            "ge",
            1.0,
            unit="milestone",
            due=r.due,
            due_text=r.due_text,
            notes=r.notes,
        )
    op = _OPS.get(r.comparator or "") if r.direction_words else None
    if r.kind == "grade":
        return Target(
            original,
            "threshold",
            "bigger",
            role,
            _OPS.get(r.comparator or ">="),
            r.value,
            unit="grade",
            grade=True,
        )
    if r.kind == "benchmark":
        bench_op = _reference_op(r.comparator, polarity)
        return Target(
            original,
            "benchmark",
            polarity,
            role,
            bench_op,
            unit=_unit(r.unit, unit),
            uplift=None if r.value is None else r.value / 100.0,
            combine="max" if r.change == "max" else "min" if r.change == "min" else None,
            baseline_hint=r.baseline,
        )
    if r.kind == "improvement":
        return Target(
            original,
            "improvement",
            polarity,
            role,
            "gt" if polarity == "bigger" else "lt",
            unit=_unit(r.unit, unit),
            baseline_hint=r.baseline,
        )
    if r.kind == "relative":
        sign = -1.0 if r.change == "reduction" else 1.0
        size = (r.value or 0.0) / 100.0
        if r.comparator in (">=", ">"):
            # "reduce by at least 15%": the raw value must be at or below baseline x 0.85
            raw_op: Op = (
                ("le" if r.comparator == ">=" else "lt")
                if sign < 0
                else ("ge" if r.comparator == ">=" else "gt")
            )
        else:
            raw_op = _OPS[r.comparator or "<="]
        return Target(
            original,
            "relative",
            polarity,
            role,
            raw_op,
            unit=unit,
            uplift=sign * size,
            baseline_hint=r.baseline,
            baseline_from="previous_year" if r.baseline_from == "previous_year" else "baseline",
        )
    if r.kind == "range":
        return Target(
            original,
            "range",
            polarity,
            role,
            None,
            r.value,
            r.high,
            unit=_unit(r.unit, unit),
            within=r.within,
        )
    # threshold, average, relative_level, failure (critical role)
    if role == "critical" and r.comparator and not r.direction_words:
        op = None
    return Target(
        original,
        "threshold",
        polarity,
        role,
        op,
        r.value,
        unit=_unit(r.unit, unit),
        within=r.within,
        beyond=r.beyond,
        per=r.per,
        baseline_hint=r.baseline,
        average=r.kind == "average",
        subject=r.thing,
    )


def _unit(read: str | None, declared: str | None) -> str | None:
    if read in (None, "count") and declared is not None:
        return declared
    return read


def _reference_op(comparator: str | None, polarity: str) -> Op | None:
    """Comparisons with a reference follow polarity: 'at least the national average'."""
    if comparator == "no-worse":
        return "ge" if polarity == "bigger" else "le"
    if comparator == "no-better":
        return "le" if polarity == "bigger" else "ge"
    return _OPS.get(comparator or "")


def _part_words(r: Reading) -> str:
    """One part of a compound target in plain English, for the refusal that splits it."""
    if r.kind == "milestone":
        return "a milestone" + (f" by {r.due_text}" if r.due_text else "")
    cmp = {">=": "at least", ">": "more than", "<=": "at most", "<": "less than"}.get(
        r.comparator or "", r.comparator or ""
    )
    text = f"{cmp} {_format_amount(r.value or 0.0, r.unit)}".strip()
    if r.kind == "relative":
        text = f"a {r.change} of {text}"
    if r.within is not None:
        text += f" within {_format_amount(*r.within)}"
    if r.period:
        text = f"{r.period}: {text}"
    return text


# ----------------------------------------------------------------------- compiled KPIs


@dataclass(frozen=True)
class YearTerms:
    """The terms a KPI has in one contract year: target, tolerance, critical failure, exemption.

    ``carried_from`` is the earlier contract year whose target text this year reuses because the
    contract states none of its own (None when the year has its own words).
    """

    year: int
    target: Target
    tolerance: Target | None
    critical: Target | None
    exempt: bool
    carried_from: int | None = None


@dataclass(frozen=True)
class CompiledKpi:
    code: str
    polarity: str
    unit: str
    years: dict[int, YearTerms] = field(default_factory=dict)
    trend: str = "last_three"
    signed: bool = False
    cumulative: tuple[float, ...] | None = None


NEEDS_BASELINE = (
    "target '{text}' is a change against a baseline the contract does not give; add the "
    "baseline figure to the KPI ('baseline: 400')"
)


def needs_baseline(target: Target) -> bool:
    """A relative target measured against a baseline figure that nobody has given."""
    return (
        target.kind == "relative"
        and target.baseline_from == "baseline"
        and target.baseline_hint is None
    )


def _better(a: float, b: float, polarity: str) -> bool:
    return a > b if polarity == "bigger" else a < b


def _met_by_every_figure(target: Target, signed: bool) -> bool:
    """True for a threshold no figure can miss: at least 0 of something never negative, or at
    most 100% of a share."""
    if (
        target.kind != "threshold"
        or target.value is None
        or target.grade
        or target.role != "target"
    ):
        return False
    op = target.op or ("ge" if target.polarity == "bigger" else "le")  # None: as polarity says
    if op == "ge" and target.polarity == "bigger":
        return target.value <= 0 and not signed and target.unit not in ("gbp", "score")
    if op == "le" and target.polarity == "smaller":
        return target.unit == "percent" and target.value >= 100 and target.per is None
    return False


ANNUAL_SHARE = (
    "target '{text}' is a share for the whole year, but the KPI is reported each {period}: "
    "kpibot cannot tell whether each {period}'s figure is its own rate (then drop the yearly "
    "words) or a part of the year's share that adds up through the year (then say "
    "'values: year_to_date' or give in-year targets)"
)


def annual_share_unclear(target: Target, unit: str | None, period: str) -> str | None:
    """Why a yearly percentage ("95% per annum", "5% of smokers each year") cannot be checked
    part-way through a year, or None. A yearly count is pro-rated (1,800 a year is 450 by Q1);
    a percentage may be a rate (95% seen on time: each quarter's own 95%) or a share that
    accumulates (5% of a year's smokers quit: 1.25% by Q1), and the words do not say which.
    """
    if not target.annual or period == "year" or target.kind not in ("threshold", "range"):
        return None
    if (target.unit or unit) != "percent":
        return None
    return ANNUAL_SHARE.format(text=" ".join(target.text.split()), period=period)


def check_consistency(
    target: Target, tolerance: Target | None, critical: Target | None, *, signed: bool = False
) -> str | None:
    """A reason why these terms contradict each other or the KPI's polarity, or None.

    A target every figure meets is refused too: "0" on a bigger-is-better KPI whose figures
    cannot be negative (``signed`` says they can) would show green for ever, when a contract
    writing "0" or "Zero" means none is the aim (smaller is better).

    >>> zero = parse_target("0", "bigger")
    >>> check_consistency(zero, None, None)  # doctest: +ELLIPSIS
    "target '0' is met by every figure ... the KPI's polarity is smaller is better"
    >>> check_consistency(parse_target("0", "smaller"), None, None) is None
    True
    """
    pol = target.polarity
    if _met_by_every_figure(target, signed):
        return (
            f"target '{target.text.strip()}' is met by every figure on a {pol}-is-better KPI "
            f"(no figure is {'below 0' if pol == 'bigger' else 'above 100%'}); if "
            f"{'none' if pol == 'bigger' else 'all'} is the aim, the KPI's polarity is "
            f"{opposite(pol)} is better"
        )
    if target.kind == "threshold" and target.op in ("gt", "ge", "lt", "le") and not target.grade:
        wants_up = target.op in ("gt", "ge")
        if wants_up != (pol == "bigger") and target.within is None:
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
    ):
        if _better(tolerance.value, target.value, pol):
            return (
                f"tolerance '{tolerance.text.strip()}' is better than the target "
                f"'{target.text.strip()}' for a {pol}-is-better KPI; the tolerance must be the "
                "worse threshold"
            )
        if (
            pol == "bigger"
            and tolerance.unit == "percent"
            and target.unit == "percent"
            and tolerance.op is None
            and 0 < tolerance.value <= target.value / 2
        ):
            gap = target.value - tolerance.value
            return (
                f"tolerance '{tolerance.text.strip()}' beside a target of "
                f"'{target.text.strip()}' could be a level ({tolerance.value:g}%, an amber band "
                f"{gap:g} points wide) or a margin; write the level, 'within "
                f"{tolerance.value:g}% of target' or 'within {tolerance.value:g} percentage "
                "points'"
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
    # In the order written: two KPIs listing the same years in another order share no entry,
    # which only costs a second parse. Sorting every KPI's maps cost more than that saves.
    if isinstance(value, dict):
        return tuple(value.items()) if value else ()
    return value


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
        # issue 13: what else the reading depends on
        kpi.name,
        kpi.due,
        _frozen(kpi.in_year_targets),
        kpi.baseline is None,
    )


def compile_kpi(
    kpi: KPI,
    years: list[int],
    loc: tuple[str | int, ...] = (),
    default_trend: str = "last_three",
) -> CompiledKpi:
    """Parse every year's terms for one KPI, naming KPI, year and text on failure.

    KPIs worded alike share one parse (and one ``years`` mapping: treat it as read-only). A year
    before the KPI's first stated target has no target (grey), not an error; a year after its
    last stated target reuses that text, and ``YearTerms.carried_from`` says so.
    """
    key = _terms_key(kpi, years)
    hit = _TERMS_CACHE.get(key)
    if hit is None:
        hit = _compile_years(kpi, years, loc)
        if len(_TERMS_CACHE) >= TERMS_CACHE_SIZE:
            _TERMS_CACHE.clear()
        _TERMS_CACHE[key] = hit
    unit, out = hit
    return CompiledKpi(
        kpi.code,
        kpi.polarity,
        unit or ("milestone" if kpi.kind == "milestone" else "count"),
        out,
        kpi.trend or default_trend,
        bool(kpi.signed),
        _cumulative_shares(kpi, loc),
    )


def clear_terms_cache() -> None:
    """Forget every compiled wording and every phrase read (benchmarks measuring a cold start
    call this)."""
    _TERMS_CACHE.clear()
    _READINGS.clear()


def readings_of(contract: Contract) -> list[tuple[ReadingKey, Target]]:
    """Every phrase reading compiling ``contract`` uses, to keep beside it in the store.

    A process that has not read these phrasings yet (a contract's first status after a start
    or an amendment) then compiles the contract from them in a fraction of a millisecond
    instead of reading each phrase again (about 0.3 ms each, a hundred or more per contract).
    Raises ``TargetError`` as ``compile_contract`` does.
    """
    years = [y.year for y in contract.contract_years]
    used: list[ReadingKey] = []
    _RECORDING.keys = used
    try:
        for i, kpi in enumerate(contract.kpis):
            # Not through the compiled-terms cache: a hit there would read nothing.
            _compile_years(kpi, years, ("kpis", i))
            _cumulative_shares(kpi, ("kpis", i))
    finally:
        _RECORDING.keys = None
    found = ((key, _READINGS.get(key)) for key in dict.fromkeys(used))
    return [(key, target) for key, target in found if target is not None]


def remember_readings(readings: Iterable[tuple[ReadingKey, Target]]) -> None:
    """Take readings kept by ``readings_of`` (made by this very grammar: the caller checks)."""
    for key, target in readings:
        if len(_READINGS) >= READINGS_SIZE:
            _READINGS.clear()
        _READINGS.setdefault(key, target)


def _compile_years(
    kpi: KPI, years: list[int], loc: tuple[str | int, ...]
) -> tuple[str | None, dict[int, YearTerms]]:
    out: dict[int, YearTerms] = {}
    unit: str | None = kpi.unit
    for year in years:
        carried = _carried_from(kpi, year)
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
                reason=f"deliverable, no numeric target: {' '.join(words.split())}",
            )
            out[year] = YearTerms(year, none, None, None, kpi.is_exempt(year))
            continue
        if kpi.kind == "milestone":
            out[year] = YearTerms(year, _milestone_target(kpi), None, None, kpi.is_exempt(year))
            continue
        target_text = kpi.target_text(year)
        texts = {
            "targets": target_text,
            "tolerance": kpi.tolerance_text(year) or tolerance_in_bands(target_text),
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
                parsed[fname] = parse_target(
                    text, kpi.polarity, unit=unit, role=role, measure=kpi.name
                )
            except TargetError as exc:
                floc: tuple[str | int, ...] = (*loc, fname)
                if fname == "targets" and year in kpi.targets:
                    floc = (*floc, year)
                elif fname == "targets" and kpi.targets and kpi.target is None:
                    floc = (*floc, min(kpi.targets))
                elif fname == "targets":
                    floc = (*loc, "target")
                raise TargetError(
                    f"KPI {kpi.code}, year {year}: {exc}",
                    loc=floc,
                    field=f"kpis[{kpi.code}].{floc[len(loc)]}",
                ) from None
        target = parsed["targets"]
        if target is None:
            # No words for this year: the KPI's first stated target is in a later year.
            target = Target(
                "",
                "none",
                kpi.polarity,
                reason="no target this year: the contract's first target for it is later",
            )
        if unit is None and target.unit and target.unit != "milestone":
            unit = target.unit
        why = check_consistency(
            target, parsed["tolerance"], parsed["critical_failure"], signed=bool(kpi.signed)
        )
        if why is None and needs_baseline(target) and kpi.baseline is None:
            why = NEEDS_BASELINE.format(text=" ".join(target.text.split()))
        if why:
            where = "baseline" if why.startswith("target '") and "baseline" in why else "polarity"
            raise TargetError(
                f"KPI {kpi.code}, year {year}: {why}",
                loc=(*loc, where if where == "polarity" else "target"),
                field=f"kpis[{kpi.code}].{where}",
            )
        if kpi.target_basis == "annual" and not target.annual:
            target = replace(target, annual=True)
        out[year] = YearTerms(
            year,
            target,
            parsed["tolerance"],
            parsed["critical_failure"],
            kpi.is_exempt(year),
            carried,
        )
    return unit, out


def _milestone_target(kpi: KPI) -> Target:
    words = kpi.target or next(iter(kpi.targets.values()), "") or kpi.name
    due = kpi.due
    return Target(
        words,
        "milestone",
        "bigger",
        "target",
        "ge",
        1.0,
        unit="milestone",
        due=due,
        due_text=f"{due:%-d %B %Y}" if due else None,
    )


def _carried_from(kpi: KPI, year: int) -> int | None:
    """The earlier year whose stated target ``year`` reuses, or None if it has its own."""
    if year in kpi.targets or not kpi.targets:
        return None
    earlier = [y for y in kpi.targets if y < year]
    return max(earlier) if earlier else None


def _cumulative_shares(kpi: KPI, loc: tuple[str | int, ...]) -> tuple[float, ...] | None:
    """Each period's cumulative share of the annual target, from ``in_year_targets``."""
    if not kpi.in_year_targets:
        return None
    marks = sorted(kpi.in_year_targets.items())
    values = []
    for key, text in marks:
        try:
            t = parse_target(text, kpi.polarity, unit=kpi.unit, measure=kpi.name)
        except TargetError as exc:
            raise TargetError(
                f"KPI {kpi.code}, in-year target {key}: {exc}",
                loc=(*loc, "in_year_targets", key),
                field=f"kpis[{kpi.code}].in_year_targets",
            ) from None
        if t.kind != "threshold" or t.value is None:
            raise TargetError(
                f"KPI {kpi.code}, in-year target {key}: '{text}' must be a figure",
                loc=(*loc, "in_year_targets", key),
                field=f"kpis[{kpi.code}].in_year_targets",
            )
        values.append(t.value)
    annual = values[-1]
    if annual == 0:
        return None
    return tuple(v / annual for v in values)


def compile_contract(contract: Contract) -> dict[str, CompiledKpi]:
    """Parse every KPI's targets for every contract year; the first unreadable text raises."""
    years = [y.year for y in contract.contract_years]
    default = contract.trend or "last_three"
    return {
        k.code: compile_kpi(k, years, ("kpis", i), default) for i, k in enumerate(contract.kpis)
    }


def carried_forward(contract: Contract) -> list[str]:
    """One line per KPI whose target carries into later years without words of its own.

    >>> # carried_forward(contract) -> ["KPI 1a: 2017/18 and 2018/19 reuse Year 1's target '80%'"]
    """
    names = {y.year: y.name for y in contract.contract_years}
    out = []
    for k in contract.kpis:
        if not k.targets or k.target is not None:
            continue
        carried: dict[int, list[int]] = {}
        for y in contract.contract_years:
            src = _carried_from(k, y.year)
            if src is not None:
                carried.setdefault(src, []).append(y.year)
        for src, later in carried.items():
            years = " and ".join(names.get(y, str(y)) for y in later)
            verb = "reuses" if len(later) == 1 else "reuse"
            text = " ".join((k.targets[src] or "").split())
            out.append(
                f"KPI {k.code}: {years} {verb} {names.get(src, src)}'s target '{text}' "
                "(the contract states none for it)"
            )
    return out


def iter_phrasings(contract: Contract) -> Iterator[tuple[str, int, str]]:
    """Every (kpi, year, text) target phrasing in a contract, for reports and tests."""
    for k in contract.kpis:
        for y in contract.contract_years:
            text = k.target_text(y.year)
            if text is not None:
                yield k.code, y.year, text


def parse_grade(value: str) -> float | None:
    """An Ofsted grade word as its rank (Outstanding 4 … Inadequate 1), or None."""
    key = " ".join(str(value).lower().replace("*", "").split()).strip(" .")
    key = _GRADE_ALIASES.get(key, key)
    if key in GRADES:
        return GRADES[key]
    return GRADE_RANK.get(key.capitalize())
