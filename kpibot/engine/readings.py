"""The reading of a target phrase: what it says (:class:`Reading`), or why not (:class:`PhraseRefused`).

Shared by the grammar's modules: ``kpibot.engine.phrases`` turns a phrase into tokens,
``kpibot.engine.changes`` reads grades, benchmarks and changes against a baseline,
``kpibot.engine.clauses`` reads figures, shares and time limits, and ``kpibot.engine.reading``
(the entry point, ``read_phrase``) puts a phrase's clauses together. This module holds the
result types, the refusal sentences, and :class:`Clause`, the part of a phrase being read, with
the small rules every reader uses (which way a comparator points, what a count counts).

>>> Reading("95%", "threshold", ">=", 95.0, unit="percent").comparators()
'>='
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date

from kpibot.engine.phrases import Lexed, Tok
from kpibot.engine.vocabulary import TIME_CODES

# User-facing sentences of the grammar, kept together so the wording stays consistent.
# User-facing sentences of the grammar, kept together so the wording stays consistent.
UNREAD_NUMBER = "I could not tell what '{number}' means in '{text}'"


NO_NUMBER = (
    "'{text}' has no figure to compare with; write the target as a number, such as "
    "'at least 95%', or as a no-target phrase such as 'TBD'"
)


CONFLICT = "'{words}' implies {implied} is better, but the KPI's polarity is {polarity} is better"


NEED_POLARITY = (
    "'{text}' has no comparator and the KPI has no polarity, so I cannot tell whether {value} is "
    "a floor or a ceiling; say 'at least {value}' or 'no more than {value}', or give the polarity"
)


POINTS_OR_PERCENT = (
    "'{words}' is a change of something that is itself a percentage: it could mean a change of "
    "{n} in percentage points or of {n}% of the baseline; write the level to reach (such as "
    "'at least 81%') or say 'percentage points'"
)


UNPAIRED = (
    "'{text}' has {shares} figure(s) and {limits} time limits that I cannot pair up; write one "
    "target per KPI, such as '{example}'"
)


VAGUE = "'{text}' gives a direction but no figure to reach; write the level, such as '{example}'"


TIME_ONLY = (
    "'{text}' gives a time limit ({limit}) but not the share of cases that must meet it; write "
    "it as '95% within {limit}' (or 'an average of {limit}')"
)


NO_WINDOW = (
    "'{words}' gives no period to average over; say over how many years, such as "
    "'averaged over three years'"
)


PLACEHOLDER = "'{text}' is a template placeholder, not a target; write the agreed figure"


DANGLING_PER = (
    "I could not tell what '{words}' divides by in '{text}'; write the rate with its "
    "denominator, such as 'per 1,000 prisoners'"
)


TWO_DEADLINES = "'{text}' has {n} deadlines; write one milestone per KPI"


UNREAD_CLAUSE = "I could not read '{clause}' in '{text}' as a target"


GRADE_AND_FIGURE = (
    "I could not tell how the grade '{grade}' and the figure '{number}' combine in '{text}'"
)


class PhraseRefused(ValueError):
    """A phrase the grammar will not read, with one sentence saying why (naming the words)."""


@dataclass(frozen=True)
class Reading:
    """A phrase read completely.

    ``kind``: threshold, average, range, relative (a change against a baseline: ``value`` is
    the per cent change required and ``change`` its direction), tolerance_relative ("within 10%
    of target": ``value`` per cent of the target), tolerance_share ("90% of target"), grade,
    benchmark, improvement, milestone, no_target, failure (a failure band such as "KPI Service
    Threshold: below 99.6%"), compound (``parts``) or profile (``parts``, one per period).
    ``within`` is the time limit that is part of the measure; ``beyond`` says the measure counts
    cases *beyond* it ("no more than 5% wait longer than four hours").
    """

    text: str
    kind: str
    comparator: str | None = None
    value: float | None = None
    high: float | None = None
    unit: str | None = None
    within: tuple[float, str] | None = None
    beyond: bool = False
    per: float | None = None
    change: str | None = None
    baseline: float | None = None
    baseline_from: str | None = None
    grade: str | None = None
    due: date | None = None
    due_text: str | None = None
    period: str | None = None
    parts: tuple[Reading, ...] = ()
    direction: str | None = None
    direction_words: str | None = None
    reason: str | None = None
    thing: str | None = None
    annual: bool = False
    exception_reporting: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    def comparators(self) -> str:
        """The comparator, or each part's joined by ';' (the phrasings table's convention)."""
        if self.parts:
            return ";".join(p.comparator or "" for p in self.parts)
        return self.comparator or ""


DIRECTION = {">=": "bigger", ">": "bigger", "<=": "smaller", "<": "smaller"}


DURATION = (*TIME_CODES, "working_days")


REDUCE = {"reduce", "reduced", "reducing", "reduction", "reductions", "decrease", "decreased"}


REDUCE |= {"lower", "cut", "fall", "falling"}


INCREASE = {"increase", "increased", "increasing", "improve", "improved", "improvement", "raise"}


INCREASE |= {"rise", "rising", "growth", "grow", "gain", "uplift", "improvements"}


CHANGE = REDUCE | INCREASE


CHANGE_NOUNS = {"reduction", "reductions", "decrease", "increase", "improvement", "gain"}


CHANGE_NOUNS |= {"growth", "rise", "uplift", "cut", "fall"}


PCT_MEASURE = re.compile(
    r"\b(proportion|percentage|per cent of|% of|rate|share|ratio|satisfaction|overheads against)\b"
)


MONEYISH = re.compile(r"\b(cost|costs|volume|number|income|revenue|spend|expenditure|output)\b")


SHARE_ALL = {"all", "every", "each"}


WITHIN_WORDS = {"within", "in", "under", "inside", "taking", "after"}


LIMIT_NOUNS = {"return", "response", "turnaround", "service", "wait", "target", "standard"}


@dataclass
class Clause:
    text: str
    lexed: Lexed
    polarity: str | None
    measure: str
    unit: str | None
    role: str
    used: set[int] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    lo: int = 0
    hi: int = 0

    @property
    def toks(self) -> list[Tok]:
        return self.lexed.tokens

    def clause(self, lo: int, hi: int) -> Clause:
        sub = replace(self, lo=lo, hi=hi)
        sub.used = self.used
        sub.notes = self.notes
        return sub

    def idx(self) -> range:
        return range(self.lo, self.hi)

    def qtys(self) -> list[int]:
        return [i for i in self.idx() if self.toks[i].kind == "qty" and i not in self.used]

    def words(self) -> str:
        return " ".join(
            self.toks[i].low for i in self.idx() if self.toks[i].kind in ("word", "punct")
        )

    def clause_text(self) -> str:
        return " ".join(self.toks[i].text for i in self.idx()).replace(" ,", ",").strip(" ,;.")

    def has_word(self, *words: str) -> bool:
        return any(self.toks[i].kind == "word" and self.toks[i].low in words for i in self.idx())

    def words_before(self, i: int, n: int = 3) -> list[str]:
        """Up to ``n`` words before token ``i`` in this clause, nearest first (stops at a figure)."""
        out: list[str] = []
        j = i - 1
        while j >= self.lo and len(out) < n:
            t = self.toks[j]
            if t.kind in ("word", "punct"):
                out.append(t.low)
            elif t.kind == "qty":
                break
            j -= 1
        return out

    def words_after(self, i: int, n: int = 3) -> list[str]:
        out: list[str] = []
        j = i + 1
        while j < self.hi and len(out) < n:
            t = self.toks[j]
            if t.kind in ("word", "punct"):
                out.append(t.low)
            elif t.kind == "qty":
                break
            j += 1
        return out


def vague(ctx: Clause) -> bool:
    """Change words ('reduce', 'improve') in the clause, and no figure to reach."""
    return ctx.has_word(*CHANGE, "maintain", "sustain")


def directed(
    ctx: Clause, r: Reading, words: str, direction: str, *, of_measure: bool = False
) -> Reading:
    if (
        ctx.polarity is not None
        and ctx.polarity != direction
        and ctx.role == "target"
        and not of_measure
    ):
        raise PhraseRefused(CONFLICT.format(words=words, implied=direction, polarity=ctx.polarity))
    if of_measure and ctx.polarity is not None and ctx.polarity != direction:
        raise PhraseRefused(CONFLICT.format(words=words, implied=direction, polarity=ctx.polarity))
    return replace(r, direction=direction, direction_words=words)


def resolve_cmp(cmp: str | None, polarity: str | None, words: str | None) -> str | None:
    """'better than'/'no worse than' follow polarity; refused when polarity is unknown."""
    if cmp in ("better", "worse", "no-worse", "no-better"):
        if polarity is None:
            raise PhraseRefused(
                f"'{words}' depends on which way is better, and the KPI has no polarity; "
                "give the polarity or write 'at least' or 'no more than'"
            )
        up = polarity == "bigger"
        return {
            "better": ">" if up else "<",
            "worse": "<" if up else ">",
            "no-worse": ">=" if up else "<=",
            "no-better": "<=" if up else ">=",
        }[cmp]
    return cmp


def default_cmp(ctx: Clause, t: Tok, within_limit: bool | None = None) -> tuple[str, str | None]:
    """No comparator word: polarity decides (meeting the figure exactly counts as met)."""
    low = ctx.words()
    if t.unit in ("gbp", *DURATION) and re.search(r"\b(limit|ceiling|cap)\b", low):
        return "<=", "limit"
    if t.unit in DURATION and ctx.role == "target" and "within" in low.split():
        return "<=", "within"
    if ctx.polarity is None:
        if t.unit in DURATION:
            return "<=", None
        if t.unit == "percent" and within_limit is not None:
            ctx.notes.append("a share of cases within a time limit: more is better")
            return (">=" if not within_limit else "<="), None
        raise PhraseRefused(NEED_POLARITY.format(text=ctx.text, value=t.text))
    if ctx.role == "critical":
        return ("<" if ctx.polarity == "bigger" else ">"), None
    return (">=" if ctx.polarity == "bigger" else "<="), None


def check_polarity(ctx: Clause, r: Reading, words: str | None) -> Reading:
    direction = DIRECTION.get(r.comparator or "")
    if not (words and direction):
        return r
    if ctx.polarity and words != "limit":
        wants = ctx.polarity if ctx.role != "critical" else opposite(ctx.polarity)
        if direction != wants and ctx.role in ("target", "critical"):
            if ctx.role == "critical":
                raise PhraseRefused(
                    f"'{words}' names values on the better side for a {ctx.polarity}-is-better "
                    "KPI, but a critical failure names the failing side"
                )
            raise PhraseRefused(
                CONFLICT.format(words=words, implied=direction, polarity=ctx.polarity)
            )
    return replace(r, direction=direction, direction_words=words)


def opposite(polarity: str) -> str:
    return "smaller" if polarity == "bigger" else "bigger"


def count_unit(ctx: Clause, i: int) -> tuple[str, float | None]:
    toks = ctx.toks
    t = toks[i]
    if t.unit == "rate":
        return "rate", t.per
    for j in range(i + 1, min(len(toks), i + 6)):
        if toks[j].kind == "per":
            return "rate", toks[j].value
        if toks[j].kind == "qty":
            break
    m = re.search(r"\(?per ([\d,]+)\)?", ctx.measure)
    if m:
        return "rate", float(m.group(1).replace(",", ""))
    low = ctx.words() + " " + ctx.measure
    if re.search(r"\b(index|score|rating|points|rank|league|position)\b", low):
        return "score", None
    if ctx.unit in ("score", "rate", "grade", "days", "percent"):
        return ctx.unit, None
    return "count", None


def within_word(ctx: Clause, i: int) -> bool:
    """'within 5 days', 'in 60 secs', or a limit said as an adjective ('a 24 hour return')."""
    before = ctx.words_before(i, 3)
    if before and (before[0] in WITHIN_WORDS or "within" in before):
        return True
    after = ctx.words_after(i, 1)
    return before[:1] in (["a"], ["an"]) and bool(after) and after[0] in LIMIT_NOUNS


def average_near(ctx: Clause, i: int) -> bool:
    before = ctx.words_before(i, 6)
    after = ctx.words_after(i, 2)
    if "average" in before[:6] or "mean" in before[:3] or "averaging" in before[:3]:
        return True
    return after[:2] == ["on", "average"] or after[:1] in (["average"], ["averaged"])


def is_average(ctx: Clause) -> bool:
    low = ctx.words()
    if re.search(r"\bon average\b|\baverage\b|\bmean\b", low):
        return True
    if ctx.measure and re.search(r"\b(average|mean)\b", ctx.measure):
        return not re.search(r"\b(per cent|percentage|proportion|%)\b", low)
    return False


def all_words(ctx: Clause) -> bool:
    return ctx.has_word(*SHARE_ALL, "required") and not ctx.has_word("average")


_NOT_THINGS = {"of", "in", "by", "per", "for", "to", "within", "during", "each", "a", "the", "and"}


_NOT_THINGS |= {"or", "with", "from", "is", "are", "be", "will", "should", "on", "at", "than"}


def thing_of(ctx: Clause, i: int) -> str | None:
    """What a count counts: '100 active families', '6,000 appeals' (up to four words)."""
    words = []
    for k in range(i + 1, min(ctx.hi, i + 5)):
        t = ctx.toks[k]
        if t.kind != "word" or t.low in _NOT_THINGS:
            break
        words.append(t.text)
    return " ".join(words) or None
