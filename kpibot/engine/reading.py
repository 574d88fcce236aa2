"""What a target phrase says: the second half of the target grammar (``phrases`` is the first).

``read_phrase`` turns contract words into a :class:`Reading`: a comparator, a threshold and its
unit, the time limit that is part of the measure ("90% *within 15 working days*"), a rate's
denominator, a baseline for relative targets, a due date for milestones, the parts of a compound
target, and notes on every assumption made. One rule above all: a phrase is read completely or
refused. A number the reading does not account for, words that set two different directions, or
a change that could be points or per cent, raise :class:`PhraseRefused` with a sentence naming
the words.

How a phrase is read, in order:

1. No-target phrases ("TBD", "n/a", "For information only", "to be agreed") read as no target.
2. ``phrases.lex`` finds the quantities and sets aside years, dates, labels and footnotes.
3. Figures that restate the target ("This represents a 38 per cent improvement ..."), reported
   figures ("81.2% ... against a target of 80%"), baselines ("from a baseline of 100.0"), and
   figures that say which cases count ("100% of parents *with at least 50%* ...") are set aside,
   each with a note.
4. The phrase is split into clauses (";", sentences, ", and", "and to"); each clause is read as
   a grade, a benchmark, a relative change, a share with its time limit, a single figure, or a
   milestone. One reading is the phrase's; several make a compound.
5. Every quantity must have been used or set aside; otherwise the phrase is refused naming it.

>>> r = read_phrase("To resolve 97 per cent of complaints within 15 working days", "bigger")
>>> (r.comparator, r.value, r.unit, r.within)
('>=', 97.0, 'percent', (15.0, 'working_days'))
>>> read_phrase("no more than 5 weeks", "smaller").comparator
'<='
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date

from kpibot.engine.phrases import TIME_CODES, Lexed, Tok, lex, normalise

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
    "'{words}' is a change of something that is itself a percentage: it could mean {n} "
    "percentage points or {n}% of the baseline; write the level to reach (such as 'at least 81%') "
    "or say 'percentage points'"
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


_DIRECTION = {">=": "bigger", ">": "bigger", "<=": "smaller", "<": "smaller"}
_DURATION = (*TIME_CODES, "working_days")


# ---------------------------------------------------------------------------- no target

_NO_TARGET: list[tuple[re.Pattern[str], str | None, bool]] = [
    # (pattern, reason, applies even when the phrase has figures)
    (
        re.compile(
            r"^(tbd|tbc|to be (determined|confirmed|agreed|included|set|defined|developed|finalised|"
            r"finalized|decided|negotiated))\b"
        ),
        "no target yet: to be determined",
        True,
    ),
    (
        re.compile(r"^(n/?a|not applicable|none|nil|-+|no target|new target)$"),
        "no target: reported for note only",
        True,
    ),
    (re.compile(r"^(data only|annual indicator|monitoring only)$"), "no target: data only", True),
    (re.compile(r"^for (information|info)\b"), "no target: for information only", True),
    (
        re.compile(r"^for baseline\b|^baseline( information| only)?$|^baselining$"),
        "no target: collected as a baseline",
        True,
    ),
    (re.compile(r"\bfor (information|info|baseline|baselining)\b"), None, True),
    (
        re.compile(
            r"^to (record|collect|develop|measure|report|monitor|agree|establish|set|undertake)\b"
        ),
        None,
        False,
    ),
    (re.compile(r"\bin agreement with (the )?commissioners?\b"), None, True),
    (
        re.compile(r"^as (outlined|set out|detailed|described) in\b"),
        "no target: as the service specification sets out",
        True,
    ),
    (
        re.compile(r"^target(s)? (to be )?set (from|following|after)\b"),
        "no target yet: to be set from baseline figures",
        True,
    ),
    (
        re.compile(r"^(numbers? )?included in\b"),
        "no target of its own: counted within another KPI's target",
        True,
    ),
    (re.compile(r"^data accuracy$"), "no numeric threshold: data accuracy", True),
    (
        re.compile(
            r"\b(to be agreed|to be set|being scoped|no target (had been|has been|was) set)\b"
        ),
        "no target yet: to be agreed",
        False,
    ),
    (
        re.compile(
            r"\b(defaulted to grey|trend indicators?|basis for setting|act as the baseline)\b"
        ),
        "no target: a monitoring measure",
        False,
    ),
    (re.compile(r"^to set a baseline\b"), "no target: collected as a baseline", False),
]


def _no_target(low: str, has_figures: bool, has_date: bool = False) -> str | None:
    for pattern, reason, always in _NO_TARGET:
        if pattern.search(low) and (always or not (has_figures or has_date)):
            return reason or "no target"
    return None


# ---------------------------------------------------------------------------- context

_REDUCE = {"reduce", "reduced", "reducing", "reduction", "reductions", "decrease", "decreased"}
_REDUCE |= {"lower", "cut", "fall", "falling"}
_INCREASE = {"increase", "increased", "increasing", "improve", "improved", "improvement", "raise"}
_INCREASE |= {"rise", "rising", "growth", "grow", "gain", "uplift", "improvements"}
_CHANGE = _REDUCE | _INCREASE
_PCT_MEASURE = re.compile(
    r"\b(proportion|percentage|per cent of|% of|rate|share|ratio|satisfaction|overheads against)\b"
)
_MONEYISH = re.compile(r"\b(cost|costs|volume|number|income|revenue|spend|expenditure|output)\b")
_SHARE_ALL = {"all", "every", "each"}
_WITHIN_WORDS = {"within", "in", "under", "inside", "taking", "after"}
_OBLIGATION = re.compile(
    r"\b(are|is|be|been) (met|achieved|delivered|completed)\b|\bmust\b|\bshould\b|\brequired\b"
)
_RESTATE = re.compile(
    r"\b(this represents|this is an improvement|this is equivalent|which represents|representing|"
    r"that is equivalent to|equivalent to|for example|this is a)\b"
)
_FAILURE_LEAD = re.compile(
    r"^(kpi )?(service threshold|critical failure|minor kpi failure|serious kpi failure|"
    r"severe kpi failure|kpi failure)\b"
)


@dataclass
class _Ctx:
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

    def clause(self, lo: int, hi: int) -> _Ctx:
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


# ---------------------------------------------------------------------------- entry point


def read_phrase(
    text: str,
    polarity: str | None = None,
    *,
    measure: str | None = None,
    unit: str | None = None,
    role: str = "target",
) -> Reading:
    """Read one phrase completely, or raise :class:`PhraseRefused` naming what could not be read.

    ``polarity`` (bigger/smaller or None) decides comparator-free figures and "better than";
    ``measure`` (the KPI's name) may supply the time limit, unit or rate denominator the cell
    leaves out; ``unit`` is the KPI's declared unit, if any; ``role`` is target, tolerance or
    critical (a critical-failure threshold names the failing region).
    """
    original = normalise(text)
    shown = original.strip().rstrip(".;:,! ").strip()
    low = re.sub(r"[*†‡]+|\[\d{1,2}\]", "", original.lower()).strip(" .;:,!")
    if not low:
        return Reading(original, "no_target", reason="no target given")
    lexed = lex(original)
    figures = [t for t in lexed.tokens if t.kind in ("qty", "badnum") and t.unit not in _DURATION]
    reason = _no_target(low, bool(figures), any(t.kind == "date" for t in lexed.tokens))
    if reason is not None:
        if reason == "no target":
            reason = f"no target: {shown}"
        return Reading(original, "no_target", reason=reason, notes=tuple(lexed.notes))
    _refuse_outright(shown, low, lexed)
    if _FAILURE_LEAD.match(low) and role != "critical":
        failure = read_phrase(text, polarity, measure=measure, unit=unit, role="critical")
        if failure.kind in ("threshold", "range"):
            note = "the words name a failure band, not the target"
            return replace(failure, kind="failure" if failure.kind == "threshold" else "range",
                           notes=(*failure.notes, note))
    ctx = _Ctx(shown, lexed, polarity, (measure or "").lower(), unit, role)
    ctx.hi = len(lexed.tokens)
    ctx.notes.extend(lexed.notes)
    _set_aside(ctx)
    readings = []
    clauses = _clauses(ctx)
    for lo, hi in clauses:
        sub = ctx.clause(lo, hi)
        if any(ctx.toks[k].kind == "qty" for k in sub.idx()) and not sub.qtys():
            continue  # every figure in it was set aside: a restatement or reported figures
        r = _read_clause(sub)
        if r is not None:
            readings.append(r)
        elif len(clauses) > 1 and _OBLIGATION.search(sub.words()) and not sub.qtys():
            raise PhraseRefused(UNREAD_CLAUSE.format(clause=sub.clause_text(), text=shown))
    _check_all_read(ctx)
    if len(clauses) > 1 and readings and all(r.kind == "threshold" for r in readings):
        headers = [ctx.clause(lo, hi) for lo, hi in clauses]
        vague = [h for h in headers if not h.qtys() and h.has_word(*_CHANGE) and not any(
            h.toks[k].kind == "qty" for k in h.idx())]
        named = re.search(r"\btarget (will be|is|of)\b", low)
        if vague and not named and any(r.unit == "percent" for r in readings):
            pct = next(r for r in readings if r.unit == "percent")
            raise PhraseRefused(
                f"I could not tell whether '{pct.value:g}%' in '{shown}' is the level to reach or "
                f"the size of the change '{vague[0].clause_text()}' asks for; write 'at least "
                f"{pct.value:g}%' or 'a {pct.value:g}% reduction'"
            )
    if not readings:
        if _vague(ctx):
            example = "at least 85%" if polarity != "smaller" else "no more than 10%"
            raise PhraseRefused(VAGUE.format(text=shown, example=example))
        raise PhraseRefused(NO_NUMBER.format(text=shown))
    readings = _without_restated_zero(readings, polarity, shown)
    if len(readings) == 1:
        reading = readings[0]
    else:
        parts: list[Reading] = []
        for r in readings:
            parts.extend(r.parts if r.kind == "compound" else [r])
        reading = Reading(shown, "compound", parts=tuple(parts))
    reading = _with_measure(ctx, reading)
    annual = bool(re.search(r"\b(p\.?a\.?|per annum|per year|a year|annually|each year)\b", low))
    exception = bool(re.search(r"\bexception reporting\b", low))
    return replace(
        reading,
        text=original,
        annual=annual or reading.annual,
        exception_reporting=exception,
        notes=tuple(dict.fromkeys(ctx.notes)),
    )


def _without_restated_zero(readings: list[Reading], polarity: str | None, shown: str) -> list[Reading]:
    """'100% of planned visits are attended. There are no missed visits.': said twice."""
    out = []
    for r in readings:
        if r.direction_words == "no" and polarity == "bigger":
            if any(o.unit == "percent" and o.value == 100.0 for o in readings if o is not r):
                continue
            raise PhraseRefused(CONFLICT.format(words="no", implied="smaller", polarity=polarity))
        out.append(r)
    return out


APPROXIMATE = "'{words}' is approximate; write the figure the contract holds the provider to"
_APPROX_BEFORE = {"around", "about", "approximately", "approx", "circa", "roughly", "nearly"}
_APPROX_BEFORE |= {"almost", "c", "ca", "towards"}


def _refuse_outright(shown: str, low: str, lexed: Lexed) -> None:
    bad = next((t for t in lexed.tokens if t.kind == "badnum"), None)
    if bad is not None:
        raise PhraseRefused(f"'{bad.text}' is not a number I can read in '{shown}'")
    toks = lexed.tokens
    for i, t in enumerate(toks):
        if t.kind != "qty":
            continue
        before = toks[i - 1].low if i > 0 else ""
        after = " ".join(x.low for x in toks[i + 1 : i + 3])
        if before in _APPROX_BEFORE or after.startswith(("or so", "- ish", "ish")):
            words = " ".join(x.text for x in toks[max(0, i - 1) : i + 3])
            raise PhraseRefused(APPROXIMATE.format(words=words.strip()))
    if re.search(r"\[\s*(\d[\d.,]*\s*-\s*[\d.,]*|x+|n|tbc|\.+|_+|\s*)\s*\]", low):
        raise PhraseRefused(PLACEHOLDER.format(text=shown))
    m = re.search(r"\b(taking|take|taken) one year with another\b", low)
    if m and re.search(r"\baverage\b|\brate of return\b", low):
        raise PhraseRefused(NO_WINDOW.format(words=m.group(0)))
    toks = lexed.tokens
    for i, t in enumerate(toks):
        if t.low == "per" and t.kind == "word":
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            if nxt is None:
                continue
            ok = nxt.kind in ("qty", "per") or nxt.low in (
                "cent",
                "person",
                "head",
                "fte",
                "household",
                "member",
                "annum",
                "year",
                "week",
                "day",
                "month",
                "quarter",
                "unit",
                "post",
                "prisoner",
                "company",
                "bill",
                "claim",
                "case",
                "capita",
                "pupil",
                "child",
                "1,000",
                "100,000",
            )
            if not ok and nxt.low in ("categories", "category", "each"):
                words = " ".join(x.text for x in toks[i : i + 4])
                raise PhraseRefused(DANGLING_PER.format(words=words, text=shown))


def _check_all_read(ctx: _Ctx) -> None:
    for i, t in enumerate(ctx.toks):
        if t.kind == "qty" and i not in ctx.used:
            raise PhraseRefused(UNREAD_NUMBER.format(number=t.text, text=ctx.text))


def _vague(ctx: _Ctx) -> bool:
    """Change words ('reduce', 'improve') in the clause, and no figure to reach."""
    return ctx.has_word(*_CHANGE, "maintain", "sustain")


def _clauses(ctx: _Ctx) -> list[tuple[int, int]]:
    """Token ranges of the phrase's clauses: split at ';', sentence ends, ', and', 'and to'."""
    toks = ctx.toks
    cuts = [0]
    inside = _bracketed(toks)
    for i, t in enumerate(toks):
        if i in inside:
            continue
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if t.text == ";" and i > cuts[-1]:
            cuts.append(i + 1)
        elif t.text == "." and nxt is not None and nxt.text[:1].isupper() and i > cuts[-1]:
            cuts.append(i + 1)
        elif t.text == "," and nxt is not None and nxt.low == "and" and i > cuts[-1]:
            cuts.append(i + 1)
        elif (
            t.low == "with"
            and nxt is not None
            and nxt.low in ("all", "none")
            and i > cuts[-1]
            and any(x.kind == "qty" for x in toks[cuts[-1] : i])
        ):
            cuts.append(i)
        elif (
            t.low == "and"
            and nxt is not None
            and nxt.low in ("to", "that")
            and i > cuts[-1]
            and not (nxt.low == "to" and i + 2 < len(toks) and toks[i + 2].kind == "qty")
        ):
            cuts.append(i)
        elif (
            t.kind == "word"
            and t.text in ("The", "To")
            and i > 0
            and toks[i - 1].kind in ("qty", "word")
            and i > cuts[-1] + 1
        ):
            cuts.append(i)  # two table cells run together without punctuation
    cuts.append(len(toks))
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def _bracketed(toks: list[Tok]) -> set[int]:
    """Token indexes inside balanced brackets (an unclosed '(' brackets nothing)."""
    inside: set[int] = set()
    stack: list[int] = []
    for i, t in enumerate(toks):
        if t.text == "(":
            stack.append(i)
        elif t.text == ")" and stack:
            inside.update(range(stack.pop(), i + 1))
    return inside


# ---------------------------------------------------------------------------- set aside


def _set_aside(ctx: _Ctx) -> None:
    _restatements(ctx)
    _outturns(ctx)
    _baselines(ctx)
    _restated_durations(ctx)
    _filters(ctx)
    _windows(ctx)


def _restatements(ctx: _Ctx) -> None:
    """'This represents a cumulative improvement of 38 per cent...': a figure said again."""
    toks = ctx.toks
    n = len(toks)
    for i, t in enumerate(toks):
        if t.text != "(":
            continue
        j = next((k for k in range(i, n) if toks[k].text == ")"), n)
        inner = {x.low for x in toks[i:j] if x.kind == "word"}
        restate = (inner & {"reduction", "increase", "improvement"} and inner & {"over", "on"}) or (
            inner & {"example"}
        )
        if restate and any(x.kind == "qty" for x in toks[:i]):
            seen = [k for k in range(i, j) if toks[k].kind == "qty"]
            ctx.used.update(seen)
            if seen:
                ctx.notes.append("the figures in brackets restate how the target was set")
    words = [t.low if t.kind in ("word", "punct") else "\x00" for t in toks]
    text = " ".join(words)
    for m in _RESTATE.finditer(text):
        start = text[: m.start()].count(" ")
        if not any(t.kind == "qty" and k not in ctx.used for k, t in enumerate(toks[:start])):
            continue
        end = n
        for k in range(start, n):
            if toks[k].text == ")" or (toks[k].text == "." and k + 1 < n and toks[k + 1].text[:1].isupper()):
                end = k
                break
        seen = [k for k in range(start, end) if toks[k].kind == "qty"]
        if seen:
            ctx.used.update(seen)
            words_text = " ".join(x.text for x in toks[start:end])
            ctx.notes.append(f"'{words_text}' restates the target")


def _outturns(ctx: _Ctx) -> None:
    """'81.2% ... against a target of 80%': the figure after 'target of' is the target."""
    toks = ctx.toks
    marks = []
    for i, t in enumerate(toks):
        if t.kind != "qty" or i in ctx.used:
            continue
        before = ctx.words_before(i, 5)
        if (
            before[:2] in (["of", "target"], ["of", "goal"])
            or (before[:1] == ["was"] and "target" in before)
            or (before[:2] == ["be", "will"] and "target" in before)
            or (before[:1] == ["is"] and "target" in before)
            or (before[:2] == ["of", "achieving"] and "target" in before)
        ):
            marks.append(i)
        elif ctx.words_after(i, 1) == ["goal"]:
            marks.append(i)
    low = " ".join(t.low for t in toks if t.kind == "word")
    if not marks or not re.search(
        r"\b(against|compared|was|were|which|fell|exactly|outturn|performance)\b", low
    ):
        return
    for i, t in enumerate(toks):
        if t.kind != "qty" or i in marks or i in ctx.used:
            continue
        if t.unit in _DURATION and not any(toks[m].unit in _DURATION for m in marks):
            continue  # the time limit of the measure, said with the outturn
        ctx.used.add(i)
        ctx.notes.append(f"'{t.text}' is a reported figure, not the target")


def _baselines(ctx: _Ctx) -> None:
    """'from a baseline of 100.0', 'the 2007-08 baseline of 41 per cent' (kept as the baseline)."""
    toks = ctx.toks
    for i, t in enumerate(toks):
        if t.kind != "qty" or i in ctx.used:
            continue
        before = ctx.words_before(i, 4)
        if before[:2] == ["of", "baseline"] and "maintain" not in ctx.words():
            if before[2:3] in (["a"], ["the"], ["level"]) or "from" in before or "over" in before:
                ctx.used.add(i)
                ctx.notes.append(f"'{t.text}' is the baseline it starts from")
                continue
        if before[:3] == ["of", "level", "baseline"] or ctx.words_after(i, 1) == ["baseline"]:
            ctx.used.add(i)
            ctx.notes.append(f"'{t.text}' is the baseline it starts from")
            continue
        if any(w in ("ambition", "aspiration", "aspire") for w in ctx.words_before(i, 4)):
            others = [k for k, x in enumerate(toks) if x.kind == "qty" and k != i]
            if others:
                ctx.used.add(i)
                ctx.notes.append(f"'{t.text}' is an aspiration, not the target")


def _restated_durations(ctx: _Ctx) -> None:
    """'62 days (two months)', '1 month (31 days)': one limit said twice; keep the finer."""
    toks = ctx.toks
    for i, t in enumerate(toks):
        if t.kind != "qty" or t.unit not in _DURATION or i + 3 >= len(toks):
            continue
        if toks[i + 1].text == "(" and toks[i + 3].text == ")":
            inner = toks[i + 2]
            if inner.kind == "qty" and inner.unit in _DURATION:
                finer, other = (
                    (i + 2, i)
                    if _DURATION.index(inner.unit) < _DURATION.index(t.unit)  # type: ignore[arg-type]
                    or inner.unit == "working_days"
                    else (i, i + 2)
                )
                if inner.unit == "working_days" or t.unit != "working_days":
                    keep = toks[finer]
                    toks[i] = replace(keep, cmp=t.cmp, cmp_words=t.cmp_words)
                ctx.used.add(i + 2)
                ctx.notes.append(f"'({inner.text})' restates '{t.text}'")
                del other


def _filters(ctx: _Ctx) -> None:
    """'100% of parents with at least 50% ...': a figure that says which cases count."""
    toks = ctx.toks
    qs = [i for i, t in enumerate(toks) if t.kind == "qty" and i not in ctx.used]
    if len(qs) < 2:
        return
    for i in qs[1:]:
        before = ctx.words_before(i, 2)
        t = toks[i]
        first = next((q for q in qs if q < i and toks[q].unit == "percent"), None)
        if first is None and not (before[:1] == ["excluding"]):
            continue
        if (
            before[:1] and before[0] in ("with", "serving", "aged", "experiencing", "excluding")
        ) or (before[:2] == ["be", "to"] and t.unit == "percent"):
            ctx.used.add(i)
            ctx.notes.append(f"'{t.text}' says which cases count, it is not the target")


def _windows(ctx: _Ctx) -> None:
    """'averaged over the past five years', 'over the two years': a period, not a figure."""
    toks = ctx.toks
    for i, t in enumerate(toks):
        if t.kind != "qty" or i in ctx.used or t.unit not in _DURATION:
            continue
        before = ctx.words_before(i, 3)
        if before[:1] in (["past"], ["last"]) or (
            before[:2] == ["the", "over"] or before[:1] == ["over"] and t.unit == "months"
        ):
            if t.unit == "months" and (t.value or 0) >= 12 or before[:1] in (["past"], ["last"]):
                ctx.used.add(i)
                ctx.notes.append(f"'{t.text}' is the period averaged or counted over")


# ---------------------------------------------------------------------------- clauses


def _read_clause(ctx: _Ctx) -> Reading | None:
    return (
        _grade(ctx)
        or _benchmark(ctx)
        or _improvement(ctx)
        or _relative_tolerance(ctx)
        or _relative(ctx)
        or _profile(ctx)
        or _quantities(ctx)
        or _whole(ctx)
        or _milestone(ctx)
    )


_GRADE_WORDS = {
    "outstanding": "Outstanding",
    "good": "Good",
    "requires improvement": "Requires improvement",
    "satisfactory": "Satisfactory",
    "inadequate": "Inadequate",
}
GRADE_RANK = {"Outstanding": 4.0, "Good": 3.0, "Requires improvement": 2.0, "Satisfactory": 2.0}
GRADE_RANK["Inadequate"] = 1.0


def _grade(ctx: _Ctx) -> Reading | None:
    """Ofsted-style grades: 'At least good', 'Good or outstanding', 'achieve Outstanding (Ofsted)'."""
    low = re.sub(r"['\"]", "", ctx.words())
    low = re.sub(r"\bri\b|\breq improvement\b", "requires improvement", low)
    found = sorted(
        (m.start(), name)
        for word, name in _GRADE_WORDS.items()
        for m in re.finditer(rf"\b{word}\b(?! (patent|cases?|debts?|appeals?|applications?|"
                             r"claims?|work|balances?|items?|examinations?|invoices?))", low)
    )
    if not found:
        return None
    qs = ctx.qtys()
    if qs:
        if any(ctx.toks[i].unit == "percent" for i in qs):
            return None  # "rated good or better: 80%" is a share, not a grade target
        if re.search(r"\b(outstanding|satisfactory|inadequate)\b", low) or "grade" in low:
            raise PhraseRefused(
                GRADE_AND_FIGURE.format(grade=found[0][1], number=ctx.toks[qs[0]].text, text=ctx.text)
            )
        return None
    if re.search(r"\b(per cent|percentage|proportion|share)\b", low):
        return None
    names = [n for _, n in found]
    if re.search(r"\bfrom\b.*\bto\b", low) and len(names) >= 2:
        grade = names[-1]
        ctx.notes.append(f"'{names[0]}' is where it starts from")
    elif re.search(r"\bor\b", low) and len(set(names)) == 2:
        grade = min(names, key=lambda n: GRADE_RANK[n])
    elif len(set(names)) == 1:
        grade = names[0]
    else:
        raise PhraseRefused(
            f"'{ctx.text}' names several grades ({', '.join(names)}); write one, such as "
            "'at least Good'"
        )
    cmp = ">="
    if re.search(r"\b(at most|no better than|or worse)\b", low):
        cmp = "<="
    ctx.notes.append("grades rank Outstanding > Good > Requires improvement > Inadequate")
    return Reading(ctx.text, "grade", cmp, GRADE_RANK[grade], unit="grade", grade=grade)


_NATIONAL = re.compile(
    r"^(the )?(national|england|england and wales|regional) (average|mean|rate|figure)\b"
)
_BENCH_OPS = [
    (re.compile(r"^(>=|≥|=>)\s*"), ">="),
    (re.compile(r"^(<=|≤|=<)\s*"), "<="),
    (re.compile(r"^>\s*"), ">"),
    (re.compile(r"^<\s*"), "<"),
    (re.compile(r"^(more than|greater than|higher than|above|over|exceeding) "), ">"),
    (re.compile(r"^(less than|fewer than|lower than|below|under) "), "<"),
    (re.compile(r"^(at least|no less than|not less than|no worse than|minimum of|a minimum of) "),
     "no-worse"),
    (re.compile(r"^(at most|no more than|not more than|no better than) "), "no-better"),
]
_UPLIFT = re.compile(
    r"^or (?:an? )?(?P<pct>\d+(?:\.\d+)?)\s*(?:%|per ?cent) (?P<dir>increase|improvement|uplift|"
    r"decrease|reduction) (?:on|over|from|against) (?:the )?(?:current |existing |local )?baseline,?"
    r"\s*(?:whichever is (?P<which>greater|higher|larger|better|lower|less|smaller))?\s*$"
)


def _hint(ctx: _Ctx) -> tuple[float | None, str | None, str]:
    """'(53% 2014)', '(4.5% 13/14)': last year's figure written beside the words, and the rest."""
    toks = ctx.toks
    for i in ctx.idx():
        if toks[i].text != "(":
            continue
        j = next((k for k in range(i, ctx.hi) if toks[k].text == ")"), None)
        if j is None:
            continue
        inner = [k for k in range(i + 1, j) if toks[k].kind == "qty"]
        others = [k for k in range(i + 1, j) if toks[k].kind not in ("qty", "year")]
        if len(inner) == 1 and not others:
            ctx.used.add(inner[0])
            rest = " ".join(toks[k].text for k in ctx.idx() if not i <= k <= j)
            ctx.notes.append(f"'{toks[inner[0]].text}' beside the words is the baseline figure")
            return toks[inner[0]].value, toks[inner[0]].unit, rest
    return None, None, ctx.clause_text()


def _benchmark(ctx: _Ctx) -> Reading | None:
    """'> National average or 5% increase on current baseline whichever is greater'."""
    if not _NATIONAL.search(re.sub(r"^\W+|^(at least|no worse than|above|below|more than|less than"
                                   r"|higher than|lower than|no less than) ", "", ctx.words())):
        low = ctx.words()
        if re.search(r"\b(national|england)\b", low) and ctx.qtys():
            if re.search(r"\b(ahead of|above|below|behind|more than|less than)\b", low):
                pct = next((ctx.toks[i] for i in ctx.qtys() if ctx.toks[i].unit == "percent"), None)
                if pct is not None:
                    raise PhraseRefused(POINTS_OR_PERCENT.format(words=ctx.text, n=f"{pct.value:g}"))
        return None
    hint, hint_unit, rest = _hint(ctx)
    t = " ".join(rest.lower().split())
    cmp = None
    for pattern, sym in _BENCH_OPS:
        m = pattern.match(t)
        if m:
            cmp, t = sym, t[m.end() :]
            break
    m = _NATIONAL.match(t)
    if not m:
        return None
    tail = t[m.end() :].strip(" ,.")
    uplift = None
    combine = None
    if tail:
        mu = _UPLIFT.match(tail)
        if not mu:
            raise PhraseRefused(f"I could not read '{tail}' after the benchmark in '{ctx.text}'")
        sign = -1.0 if mu["dir"] in ("decrease", "reduction") else 1.0
        uplift = sign * float(mu["pct"])
        which = mu["which"] or ("greater" if ctx.polarity != "smaller" else "lower")
        if which == "better":
            which = "greater" if ctx.polarity != "smaller" else "lower"
        combine = "max" if which in ("greater", "higher", "larger") else "min"
        ctx.used.update(i for i in ctx.qtys() if ctx.toks[i].unit == "percent")
    return Reading(
        ctx.text,
        "benchmark",
        cmp,
        uplift,
        unit=hint_unit,
        baseline=hint,
        change=combine,
    )


def _improvement(ctx: _Ctx) -> Reading | None:
    low = ctx.words()
    if re.match(
        r"^(an? )?(improvement|improve|improved|better performance) (on|over|from|against|"
        r"compared (with|to)) (the )?(previous|last|prior|preceding) (year|years|period)",
        low,
    ):
        hint, unit, rest = _hint(ctx)
        tail = re.sub(
            r"^(an? )?(improvement|improve|improved|better performance) (on|over|from|against|"
            r"compared (with|to)) (the )?(previous|last|prior|preceding) (year|years|period)"
            r"('s)?( figure| performance| result)?",
            "",
            " ".join(rest.lower().split()),
        ).strip(" ,.")
        if tail:
            raise PhraseRefused(f"I could not read '{tail}' after the words in '{ctx.text}'")
        return Reading(ctx.text, "improvement", unit=unit, baseline=hint)
    return None


def _relative_tolerance(ctx: _Ctx) -> Reading | None:
    """'within 10% of target', '90% of target', 'within the 5% threshold'."""
    low = ctx.words()
    if not re.search(r"\b(target|threshold|tolerance|variance)\b", low):
        return None
    for i in ctx.qtys():
        t = ctx.toks[i]
        if t.unit != "percent":
            continue
        before = ctx.words_before(i, 3)
        after = ctx.words_after(i, 3)
        if "within" in before and (
            after[:2] in (["of", "target"], ["of", "the"]) or after[:1] in (["threshold"], [")"])
        ):
            ctx.used.add(i)
            _quarter_labels(ctx)
            ctx.notes.append(
                f"'{t.text}' is read as {t.value:g}% of the target's value, not "
                f"{t.value:g} percentage points"
            )
            return Reading(ctx.text, "tolerance_relative", "<=", t.value, unit="percent")
        if after[:2] == ["of", "target"] and not before:
            ctx.used.add(i)
            return Reading(ctx.text, "tolerance_share", ">=", t.value, unit="percent")
        if t.cmp in (">", ">=") and after[:1] == ["off"]:
            raise PhraseRefused(
                f"'{t.cmp_words} {t.text} off the target' in '{ctx.text}' sets a band with a "
                "condition I will not guess; write the tolerance as 'within N% of target'"
            )
    return None


def _quarter_labels(ctx: _Ctx) -> None:
    for i in ctx.qtys():
        if ctx.words_before(i, 1) == ["quarter"]:
            ctx.used.add(i)


# ---------------------------------------------------------------------------- relative


def _relative(ctx: _Ctx) -> Reading | None:
    """'reduce by 15 per cent from the 400 days baseline', 'a 2 per cent reduction', 'from A to B'."""
    toks = ctx.toks
    low = ctx.words()
    qs = ctx.qtys()
    r = _from_to(ctx, qs)
    if r is not None:
        return r
    verbs = [toks[i].low for i in ctx.idx() if toks[i].kind == "word" and toks[i].low in _CHANGE]
    level = _level_compare(ctx, qs)
    if level is not None or not verbs:
        return level
    change = "reduction" if verbs[0] in _REDUCE else "increase"
    if any(w in _REDUCE for w in verbs) and any(w in _INCREASE for w in verbs):
        reductions = [w for w in verbs if w in _REDUCE]
        if "improve" in verbs and reductions:
            change = "reduction"
    pcts = [i for i in qs if toks[i].unit == "percent"]
    ends = [i for i in qs if ctx.words_before(i, 1) == ["to"] and not _is_limit_word(ctx, i)]
    # "by 1 per cent. to 87 per cent.", "to reduce net expenditure ... to £93,200,000": the level
    if len(ends) > 1:
        return _end_profile(ctx, ends, change)
    if ends:
        e = ends[-1]
        end = toks[e]
        for i in qs:
            if i != e and toks[i].unit == "percent" and end.unit != "percent":
                ctx.used.add(i)
                ctx.notes.append(f"'{toks[i].text}' restates the change to {end.text}")
            elif i != e and toks[i].unit == "percent" and ctx.words_before(i, 1) == ["by"]:
                ctx.used.add(i)
                ctx.notes.append(f"'{toks[i].text}' restates the change to {end.text}")
        ctx.used.add(e)
        direction = "smaller" if change == "reduction" else "bigger"
        cmp = end.cmp or (">=" if direction == "bigger" else "<=")
        value, unit = end.value, end.unit
        if unit in _DURATION:
            value, unit = end.value, end.unit
        if unit == "count":
            unit = _count_unit(ctx, e)[0]
        within = None
        for i in qs:
            if i != e and i not in ctx.used and toks[i].unit in _DURATION and _within_word(ctx, i):
                ctx.used.add(i)
                within = (toks[i].value or 0.0, toks[i].unit or "days")
        kind = "average" if _average_near(ctx, e) else "threshold"
        return _directed(
            ctx,
            Reading(ctx.text, kind, cmp, value, unit=unit, within=within),
            f"{verbs[0]} ... to {end.text}",
            direction,
        )
    if not pcts:
        if change and len(qs) == 1 and ctx.words_before(qs[0], 1) == ["by"] and toks[qs[0]].unit != "percent":
            return None
        return None
    ci = next((i for i in pcts if _change_near(ctx, i)), None)
    if ci is None:
        first_change = min(i for i in ctx.idx() if toks[i].kind == "word" and toks[i].low in _CHANGE)
        if all(_share_of(ctx, i) or toks[i].cmp or i < first_change for i in pcts):
            return None  # shares and levels ("100% parents with ... improvement"), read as figures
        if len(pcts) == 1 and not _average_near(ctx, pcts[0]):
            raise PhraseRefused(
                f"I could not tell whether '{toks[pcts[0]].text}' in '{ctx.text}' is the level to "
                f"reach or the size of the {change}; write 'at least {toks[pcts[0]].text}' or "
                f"'a {toks[pcts[0]].text} {change}'"
            )
        return None
    cq = toks[ci]
    others = [i for i in pcts if i != ci and i not in ctx.used]
    if others:
        return None  # several changes: read clause by clause, or refused as unread
    ctx.used.add(ci)
    baseline_from = "baseline"
    if re.search(r"\b(previous|last|prior) year'?s?\b|\byear on year\b|\bin the year\b|\bper annum\b", low):
        baseline_from = "previous_year"
    if _PCT_MEASURE.search(low + " " + ctx.measure) and not _MONEYISH.search(low):
        raise PhraseRefused(POINTS_OR_PERCENT.format(words=ctx.text, n=f"{cq.value:g}"))
    if ctx.unit == "percent":
        raise PhraseRefused(POINTS_OR_PERCENT.format(words=ctx.text, n=f"{cq.value:g}"))
    cmp = cq.cmp or ">="
    if cmp in ("<=", "<"):
        raise PhraseRefused(
            f"'{cq.cmp_words} {cq.text}' caps a {change} in '{ctx.text}'; I will not guess whether "
            "a bigger change is better"
        )
    baseline = _baseline_value(ctx)
    against = "the previous year" if baseline_from == "previous_year" else "the baseline"
    ctx.notes.append(f"the figure compared is the % {change} against {against}")
    return _directed(
        ctx,
        Reading(
            ctx.text,
            "relative",
            cmp,
            cq.value,
            unit="percent",
            change=change,
            baseline=baseline,
            baseline_from=baseline_from,
        ),
        change,
        "smaller" if change == "reduction" else "bigger",
        of_measure=True,
    )


def _end_profile(ctx: _Ctx, ends: list[int], change: str) -> Reading | None:
    """'reduce ... to 12 days by 2008-09 with an overall reduction to 11 days by 2009-10'."""
    toks = ctx.toks
    parts = []
    for e in ends:
        k = e + 1
        while k < ctx.hi and toks[k].kind in ("word", "per") and toks[k].low != "by":
            k += 1
        if not (k + 1 < ctx.hi and toks[k].low == "by" and toks[k + 1].kind in ("year", "date")):
            return None
        end = toks[e]
        direction = "smaller" if change == "reduction" else "bigger"
        cmp = end.cmp or (">=" if direction == "bigger" else "<=")
        ctx.used.add(e)
        parts.append(
            _directed(
                ctx,
                Reading(ctx.text, "threshold", cmp, end.value, unit=end.unit,
                        period=toks[k + 1].text),
                f"{change} to {end.text}",
                direction,
            )
        )
    ctx.notes.append("a figure for each period: " + ", ".join(p.period or "" for p in parts))
    return Reading(ctx.text, "profile", parts=tuple(parts))


def _baseline_value(ctx: _Ctx) -> float | None:
    for i in range(len(ctx.toks)):
        t = ctx.toks[i]
        if t.kind == "qty" and i in ctx.used and "baseline" in ctx.words_before(i, 4):
            return t.value
    return None


_CHANGE_NOUNS = {"reduction", "reductions", "decrease", "increase", "improvement", "gain"}
_CHANGE_NOUNS |= {"growth", "rise", "uplift", "cut", "fall"}


def _change_near(ctx: _Ctx, i: int) -> bool:
    """'by 15 per cent', 'a 26 per cent increase', 'a reduction ... of no less than 4%'.

    A figure with a comparator of its own after a change *verb* is the level to reach
    ('improve the timeliness ... not lower than 97 per cent'), not the size of the change.
    """
    before = [w for w in ctx.words_before(i, 10) if w not in (",", ".")]
    after = [w for w in ctx.words_after(i, 3) if w not in (",", ".")]
    if before[:1] == ["by"] or (before[:2] == ["average", "an"] and "by" in before):
        return True
    if after[:1] and after[0] in _CHANGE:
        return True
    if before[:1] in (["of"], ["averaging"]) and any(w in _CHANGE_NOUNS for w in before[1:10]):
        return True
    return False


def _share_of(ctx: _Ctx, i: int) -> bool:
    """'80% of its recipients', '90 percent, of search reports': a share, not a change."""
    after = [w for w in ctx.words_after(i, 2) if w != ","]
    return after[:1] == ["of"] and ctx.words_before(i, 1) != ["by"]


def _is_limit_word(ctx: _Ctx, i: int) -> bool:
    return ctx.toks[i].unit in _DURATION and "within" in ctx.words_before(i, 3)


def _from_to(ctx: _Ctx, qs: list[int]) -> Reading | None:
    """'From 24 per cent to 17 per cent', 'increase from 81,000 to 97,000 the number of ...'."""
    toks = ctx.toks
    for a, b in zip(qs, qs[1:], strict=False):
        before_a = ctx.words_before(a, 4)
        if not ("from" in before_a[:1] or before_a[:3] == ["of", "baseline", "a"] and "from" in before_a):
            continue
        mid = [toks[k].low for k in range(a + 1, b) if toks[k].kind in ("word", "punct")]
        if "to" not in mid or len([w for w in mid if w not in ("to", "in", "by", ",")]) > 0 and mid[-1] != "to":
            continue
        base, end = toks[a], toks[b]
        if base.unit != end.unit or base.value is None or end.value is None or base.value == end.value:
            continue
        if "target" in ctx.words().split()[:6]:
            return None
        ctx.used.update({a, b})
        direction = "smaller" if end.value < base.value else "bigger"
        cmp = end.cmp or (">=" if direction == "bigger" else "<=")
        ctx.notes.append(f"'{base.text}' is the baseline it starts from")
        unit = end.unit if end.unit != "count" else _count_unit(ctx, b)[0]
        return _directed(
            ctx,
            Reading(ctx.text, "relative_level", cmp, end.value, unit=unit, baseline=base.value),
            f"from {base.text} to {end.text}",
            direction,
        )
    return None


def _level_compare(ctx: _Ctx, qs: list[int]) -> Reading | None:
    """'less than current levels', 'maintain ... at the level of 1998-99': a change of 0."""
    low = ctx.words()
    if qs:
        return None
    if re.search(r"\bimprovement\b.*\b(compared (with|to)|against|over)\b", low) and any(
        ctx.toks[k].kind == "year" for k in ctx.idx()
    ):
        ctx.notes.append("strictly better than the baseline year: a change of more than 0%")
        return _directed(
            ctx,
            Reading(ctx.text, "relative", ">", 0.0, unit="percent", change="increase",
                    baseline_from="baseline"),
            "improvement ... compared with",
            "bigger",
        )
    if re.search(r"\b(less|lower|fewer) than (the )?current levels?\b", low):
        ctx.notes.append("strictly below the baseline: a change of less than 0%")
        return _directed(
            ctx,
            Reading(ctx.text, "relative", "<", 0.0, unit="percent", change="reduction",
                    baseline_from="baseline"),
            "less than current levels",
            "smaller",
        )
    if re.search(r"\bmaintain\b.*\bat the level of\b", low) and any(
        t.kind == "year" for t in ctx.toks
    ):
        ctx.notes.append("kept at the baseline year's level: a change of at most 0%")
        return _directed(
            ctx,
            Reading(ctx.text, "relative", "<=", 0.0, unit="percent", change="increase",
                    baseline_from="baseline"),
            "maintain ... at the level of",
            ctx.polarity or "smaller",
        )
    return None


def _directed(
    ctx: _Ctx, r: Reading, words: str, direction: str, *, of_measure: bool = False
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


# ---------------------------------------------------------------------------- figures


def _profile(ctx: _Ctx) -> Reading | None:
    """'Yr 1 80% Yr 2 85% Yr 3 90%', 'by 2003/04-75 per cent': a figure for each period."""
    toks = ctx.toks
    qs = ctx.qtys()
    labelled = []
    for i in qs:
        j = i - 1
        while j >= ctx.lo and toks[j].kind in ("punct",) and toks[j].text in ("-", ":"):
            j -= 1
        if j >= ctx.lo and toks[j].kind in ("period",):
            labelled.append((i, toks[j].text))
    if len(labelled) < 2 or len(labelled) != len(qs):
        return None
    parts = []
    for i, label in labelled:
        sub = ctx.clause(i, i + 1)
        r = _single(sub, i, [], average=False)
        parts.append(replace(r, period=label))
    ctx.notes.append("a figure for each period: " + ", ".join(p.period or "" for p in parts))
    return Reading(ctx.text, "profile", parts=tuple(parts))


def _average_near(ctx: _Ctx, i: int) -> bool:
    before = ctx.words_before(i, 6)
    after = ctx.words_after(i, 2)
    if "average" in before[:6] or "mean" in before[:3] or "averaging" in before[:3]:
        return True
    if after[:2] == ["on", "average"] or after[:1] in (["average"], ["averaged"]):
        return True
    return False


def _is_average(ctx: _Ctx) -> bool:
    low = ctx.words()
    if re.search(r"\bon average\b|\baverage\b|\bmean\b", low):
        return True
    if ctx.measure and re.search(r"\b(average|mean)\b", ctx.measure):
        return not re.search(r"\b(per cent|percentage|proportion|%)\b", low)
    return False


def _quantities(ctx: _Ctx) -> Reading | None:
    toks = ctx.toks
    qs = ctx.qtys()
    if not qs:
        return None
    if re.search(r"\brecover full\b|\bfull (cost )?recovery\b", ctx.words()):
        raise PhraseRefused(UNREAD_NUMBER.format(number=toks[qs[0]].text, text=ctx.text))
    for i in qs:
        after = " ".join(ctx.words_after(i, 3))
        if toks[i].unit == "percent" and re.match(r"(ahead of|behind|above|below) ", after):
            raise PhraseRefused(POINTS_OR_PERCENT.format(words=ctx.text, n=f"{toks[i].value:g}"))
        if ctx.words_before(i, 2) == ["of", "instead"]:
            raise PhraseRefused(
                f"'{toks[i].text}' after 'instead of' in '{ctx.text}' is an old target; give only "
                "the target that applies"
            )
        if toks[i].unit == "count" and _within_word(ctx, i) and not ctx.words_before(i, 1) == ["in"]:
            raise PhraseRefused(
                f"I could not tell what 'within {toks[i].text} {' '.join(ctx.words_after(i, 1))}' "
                f"measures in '{ctx.text}'; give a time limit in seconds, minutes, hours or days"
            )
    r = _range(ctx, qs)
    if r is not None:
        return r
    shares = [i for i in qs if toks[i].unit == "percent"]
    remainder = _remainder(ctx)
    durations = [i for i in qs if toks[i].unit in _DURATION]
    others = [i for i in qs if i not in shares and i not in durations]
    averages = [i for i in durations if _average_near(ctx, i)]
    plain = [i for i in durations if i not in averages]
    has_share = bool(shares) or remainder is not None
    if not has_share and re.search(r"\bclear all\b", ctx.words()):
        older = [i for i in durations if toks[i].cmp in (">", ">=")]
        if len(older) == 1 and len(qs) == 1:
            i = older[0]
            ctx.used.add(i)
            ctx.notes.append(f"'clear all' means none left older than {toks[i].text}")
            return _directed(
                ctx,
                Reading(ctx.text, "milestone", "<=", 0.0, unit="count",
                        within=(toks[i].value or 0.0, toks[i].unit or "days"), beyond=True),
                "clear all",
                "smaller",
            )
    if not has_share and ctx.has_word("none"):
        beyond = [i for i in durations if toks[i].cmp in (">", ">=")]
        if len(beyond) == 1 and len(qs) == 1:
            i = beyond[0]
            ctx.used.add(i)
            ctx.notes.append(f"'none' means 0% of cases beyond {toks[i].text}")
            return Reading(ctx.text, "threshold", "<=", 0.0, unit="percent",
                           within=(toks[i].value or 0.0, toks[i].unit or "days"), beyond=True)
    limits: list[int] = []
    thresholds_d: list[int] = []
    for i in plain:
        if has_share or (_all_words(ctx) and _within_word(ctx, i)) or (others and _within_word(ctx, i)):
            limits.append(i)
        else:
            thresholds_d.append(i)
    thresholds_d += averages
    if not has_share and not others and thresholds_d:
        if not averages and not _is_average(ctx):
            for i in thresholds_d:
                if _within_word(ctx, i) and toks[i].cmp is None:
                    if _all_words(ctx) and len(thresholds_d) == 1:
                        return _share_all(ctx, [i])
                    raise PhraseRefused(TIME_ONLY.format(text=ctx.text, limit=toks[i].text))
        if len(thresholds_d) == 1:
            return _single(ctx, thresholds_d[0], [], average=bool(averages) or _is_average(ctx))
        return _compound(ctx, sorted(thresholds_d), [], average=True)
    if has_share:
        primaries = sorted(
            shares + ([remainder] if remainder is not None else []), key=_position
        )
        if others:
            return _compound(ctx, sorted(primaries + others + thresholds_d, key=_position), limits)
        if thresholds_d:
            return _compound(ctx, sorted(primaries + thresholds_d, key=_position), limits)
        if len(primaries) == 1:
            return _share(ctx, primaries[0], limits)
        return _compound(ctx, primaries, limits)
    if not others and not thresholds_d:
        if limits and _all_words(ctx):
            return _share_all(ctx, limits)
        return None
    # counts, money, rates, scores
    if len(others) == 1 and not thresholds_d:
        return _single(ctx, others[0], limits, average=_is_average(ctx))
    return _compound(ctx, sorted(others + thresholds_d), limits)


def _position(i: int) -> int:
    """A primary's token position (the remainder marker -i-1 stands for the word at i)."""
    return -i - 1 if i < 0 else i


def _remainder(ctx: _Ctx) -> int | None:
    """'(remainder within 20 working days)': the rest, so 100% by then. Returns the limit's index."""
    toks = ctx.toks
    for i in ctx.idx():
        if toks[i].low in ("remainder", "rest") and i not in ctx.used:
            nxt = next((k for k in range(i + 1, ctx.hi) if toks[k].kind == "qty"), None)
            if nxt is not None and toks[nxt].unit in _DURATION:
                return -i - 1  # a marker: the share is the word at i
    return None


def _within_word(ctx: _Ctx, i: int) -> bool:
    """'within 5 days', 'in 60 secs', or a limit said as an adjective ('a 24 hour return')."""
    before = ctx.words_before(i, 3)
    if before and (before[0] in _WITHIN_WORDS or "within" in before):
        return True
    after = ctx.words_after(i, 1)
    return before[:1] in (["a"], ["an"]) and bool(after) and after[0] in _LIMIT_NOUNS


_LIMIT_NOUNS = {"return", "response", "turnaround", "service", "wait", "target", "standard"}


def _all_words(ctx: _Ctx) -> bool:
    return ctx.has_word(*_SHARE_ALL, "required") and not ctx.has_word("average")


def _range(ctx: _Ctx, qs: list[int]) -> Reading | None:
    """'50-75%', 'between 0.7 and 1.0', '100-90%', '99.8 % - 99.89%', '1-4 hours'."""
    toks = ctx.toks
    if len(qs) != 2:
        return None
    a, b = qs
    mid = [toks[k] for k in range(a + 1, b)]
    if not (len(mid) == 1 and mid[0].low in ("-", "to", "and")):
        return None
    lo_t, hi_t = toks[a], toks[b]
    if mid[0].low == "and" and "between" not in ctx.words_before(a, 1):
        return None
    unit = hi_t.unit
    if lo_t.unit not in (unit, "count"):
        return None
    lo, hi = sorted([lo_t.value or 0.0, hi_t.value or 0.0])
    if lo_t.cmp or hi_t.cmp:
        return None
    ctx.used.update({a, b})
    if unit == "count":
        unit = _count_unit(ctx, b)[0]
    within = None
    for i in ctx.qtys():
        if toks[i].unit in _DURATION and _within_word(ctx, i):
            ctx.used.add(i)
            within = (toks[i].value or 0.0, toks[i].unit or "days")
    if (lo_t.value or 0) > (hi_t.value or 0):
        ctx.notes.append("the band is written high to low")
    return Reading(ctx.text, "range", "between", lo, hi, unit=unit, within=within)


def _share(ctx: _Ctx, i: int, limits: list[int]) -> Reading:
    toks = ctx.toks
    if i < 0:  # the remainder: every case by the limit
        ctx.notes.append("'remainder' means every case by then: 100%")
        t = Tok("qty", "remainder", 100.0, "percent")
    else:
        t = toks[i]
        ctx.used.add(i)
    within = None
    beyond = False
    if len(limits) > 1:
        raise PhraseRefused(
            UNPAIRED.format(
                text=ctx.text,
                shares=1,
                limits=len(limits),
                example=f"at least {t.text} within {toks[limits[0]].text}",
            )
        )
    if limits:
        li = limits[0]
        ctx.used.add(li)
        lt = toks[li]
        within = (lt.value or 0.0, lt.unit or "days")
        beyond = lt.cmp in (">", ">=") and (lt.cmp_words or "").lower() != "within"
        if beyond:
            ctx.notes.append(f"the share counts cases beyond {lt.text}")
        if "further" in ctx.words_before(li, 2):
            prev = _previous_limit(ctx, li)
            if "remaining" not in ctx.words().split():
                raise PhraseRefused(
                    f"'a further {lt.text}' in '{ctx.text}' could run from the start or from the "
                    "first limit; write each limit from the same start"
                )
            if prev is not None:
                within = (within[0] + prev[0], within[1])
                ctx.notes.append(f"'a further {lt.text}' is added to the first limit")
    if t.low.startswith("remaining") or "remaining" in ctx.words_before(i, 2) and i >= 0:
        ctx.notes.append(f"'the remaining {t.text}' means every case by then: 100%")
        t = replace(t, value=100.0)
    cmp = _resolve_cmp(t.cmp, ctx.polarity, t.cmp_words)
    words = t.cmp_words
    if cmp is None:
        cmp, words = _default_cmp(ctx, t, beyond if within is not None else None)
    r = Reading(ctx.text, "threshold", cmp, t.value, unit="percent", within=within, beyond=beyond)
    return _check_polarity(ctx, r, words)


def _previous_limit(ctx: _Ctx, li: int) -> tuple[float, str] | None:
    for k in range(li - 1, -1, -1):
        t = ctx.toks[k]
        if t.kind == "qty" and t.unit == ctx.toks[li].unit:
            return (t.value or 0.0, t.unit or "days")
    return None


def _share_all(ctx: _Ctx, limits: list[int]) -> Reading:
    if len(limits) > 1:
        raise PhraseRefused(
            UNPAIRED.format(text=ctx.text, shares=1, limits=len(limits), example="100% within ...")
        )
    ctx.notes.append("'all' means 100%")
    ctx.used.update(limits)
    lt = ctx.toks[limits[0]]
    return _check_polarity(
        ctx,
        Reading(
            ctx.text,
            "threshold",
            ">=",
            100.0,
            unit="percent",
            within=(lt.value or 0.0, lt.unit or "days"),
        ),
        "all",
    )


def _single(ctx: _Ctx, i: int, limits: list[int], average: bool) -> Reading:
    t = ctx.toks[i]
    ctx.used.add(i)
    within = None
    if len(limits) > 1:
        raise PhraseRefused(
            UNPAIRED.format(text=ctx.text, shares=1, limits=len(limits), example=f"{t.text}")
        )
    if limits:
        ctx.used.add(limits[0])
        lt = ctx.toks[limits[0]]
        within = (lt.value or 0.0, lt.unit or "days")
    cmp = _resolve_cmp(t.cmp, ctx.polarity, t.cmp_words)
    words = t.cmp_words
    if cmp is None:
        cmp, words = _default_cmp(ctx, t)
    unit = t.unit
    per = t.per
    if unit == "count":
        unit, per = _count_unit(ctx, i)
    if unit == "times":
        unit = "rate"
    if unit == "days" and _loose_working_days(ctx):
        unit = "working_days"
        ctx.notes.append("'days' are working days, as the lead-in says")
    kind = "average" if average else "threshold"
    thing = _thing(ctx, i) if unit in ("count", "rate") else None
    r = Reading(ctx.text, kind, cmp, t.value, unit=unit, per=per, within=within, thing=thing)
    return _check_polarity(ctx, r, words)


_NOT_THINGS = {"of", "in", "by", "per", "for", "to", "within", "during", "each", "a", "the", "and"}
_NOT_THINGS |= {"or", "with", "from", "is", "are", "be", "will", "should", "on", "at", "than"}


def _thing(ctx: _Ctx, i: int) -> str | None:
    """What a count counts: '100 active families', '6,000 appeals' (up to four words)."""
    words = []
    for k in range(i + 1, min(ctx.hi, i + 5)):
        t = ctx.toks[k]
        if t.kind != "word" or t.low in _NOT_THINGS:
            break
        words.append(t.text)
    return " ".join(words) or None


def _loose_working_days(ctx: _Ctx) -> bool:
    """'within an average number of working days: IB 15 days, IS 10 days' (the lead-in's unit)."""
    toks = ctx.toks
    for k, t in enumerate(toks):
        if t.low == "working" and k + 1 < len(toks) and toks[k + 1].low == "days":
            return True
    return False


def _count_unit(ctx: _Ctx, i: int) -> tuple[str, float | None]:
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


def _resolve_cmp(cmp: str | None, polarity: str | None, words: str | None) -> str | None:
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


def _default_cmp(
    ctx: _Ctx, t: Tok, within_limit: bool | None = None
) -> tuple[str, str | None]:
    """No comparator word: polarity decides (meeting the figure exactly counts as met)."""
    low = ctx.words()
    if t.unit in ("gbp", *_DURATION) and re.search(r"\b(limit|ceiling|cap)\b", low):
        return "<=", "limit"
    if ctx.polarity is None:
        if t.unit in _DURATION:
            return "<=", None
        if t.unit == "percent" and within_limit is not None:
            ctx.notes.append("a share of cases within a time limit: more is better")
            return (">=" if not within_limit else "<="), None
        raise PhraseRefused(NEED_POLARITY.format(text=ctx.text, value=t.text))
    if ctx.role == "critical":
        return ("<" if ctx.polarity == "bigger" else ">"), None
    return (">=" if ctx.polarity == "bigger" else "<="), None


def _check_polarity(ctx: _Ctx, r: Reading, words: str | None) -> Reading:
    direction = _DIRECTION.get(r.comparator or "")
    if not (words and direction):
        return r
    if ctx.polarity and words != "limit":
        wants = ctx.polarity if ctx.role != "critical" else _opposite(ctx.polarity)
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


def _opposite(polarity: str) -> str:
    return "smaller" if polarity == "bigger" else "bigger"


def _compound(ctx: _Ctx, primaries: list[int], limits: list[int], average: bool = False) -> Reading:
    toks = ctx.toks
    if len(primaries) == 1:
        i = primaries[0]
        if i < 0 or toks[i].unit == "percent":
            return _share(ctx, i, limits)
        return _single(ctx, i, limits, average or _is_average(ctx))
    units = {("percent" if i < 0 else toks[i].unit) for i in primaries}
    if len(units) > 1 and not average:
        shares = {"percent"}
        timed = {u for u in units if u in _DURATION}
        mixed_ok = units <= shares | timed and all(
            _average_near(ctx, i) for i in primaries if i >= 0 and toks[i].unit in _DURATION
        )
        if not mixed_ok and not all(i >= 0 and toks[i].cmp for i in primaries):
            odd = next(
                (i for i in primaries if i >= 0 and toks[i].unit not in ("percent", "gbp")),
                primaries[-1],
            )
            raise PhraseRefused(UNREAD_NUMBER.format(number=toks[odd].text, text=ctx.text))
    for a, b in zip(primaries, primaries[1:], strict=False):
        if a >= 0 and b >= 0:
            mid = [toks[k].low for k in range(a + 1, b) if toks[k].kind == "word"]
            if mid and mid[-1] == "to" and "from" in ctx.words_before(a, 3):
                raise PhraseRefused(
                    f"'from {toks[a].text} to {toks[b].text}' in '{ctx.text}' could be a baseline "
                    "and a target or an old and a new target; give only the target that applies"
                )
    parts = []
    pairing = _pair(ctx, primaries, limits)
    for i in primaries:
        lim = pairing.get(i, [])
        t = toks[i] if i >= 0 else None
        if t is not None and t.cmp is None and primaries[0] >= 0 and toks[primaries[0]].cmp:
            first = toks[primaries[0]]
            if first.unit == t.unit:
                toks[i] = replace(t, cmp=first.cmp, cmp_words=first.cmp_words)
        if i < 0 or toks[i].unit == "percent":
            parts.append(_share(ctx, i, lim))
        else:
            parts.append(_single(ctx, i, lim, average or _average_near(ctx, i)))
    return Reading(ctx.text, "compound", parts=tuple(parts))


def _pair(ctx: _Ctx, primaries: list[int], limits: list[int]) -> dict[int, list[int]]:
    """Pair figures with time limits: in order when they match in number, else shared."""
    if not limits:
        return {}
    primaries = [
        i for i in primaries if i < 0 or not (ctx.toks[i].unit in _DURATION and _average_near(ctx, i))
    ]
    pos = [(-i - 1 if i < 0 else i) for i in primaries]
    if len(limits) == len(primaries):
        return {p: [lim] for p, lim in zip(primaries, limits, strict=True)}
    if len(limits) == 1:
        li = limits[0]
        if li > max(pos) or li < min(pos):
            return {p: [li] for p in primaries}
        owner = max((p for p, x in zip(primaries, pos, strict=True) if x < li), key=lambda p: p)
        return {owner: [li]}
    if len(limits) == len(primaries) + 1 and limits[0] < min(pos):
        raise PhraseRefused(
            UNPAIRED.format(
                text=ctx.text,
                shares=len(primaries),
                limits=len(limits),
                example=f"100% within {ctx.toks[limits[0]].text}",
            )
        )
    raise PhraseRefused(
        UNPAIRED.format(
            text=ctx.text,
            shares=len(primaries),
            limits=len(limits),
            example=f"at least {ctx.toks[primaries[0]].text} within {ctx.toks[limits[0]].text}",
        )
    )


def _whole(ctx: _Ctx) -> Reading | None:
    """'To deliver all work on time' (100%), 'no escapes' (none), 'a balanced outturn' (£0 over)."""
    low = ctx.words()
    if ctx.qtys():
        return None
    if re.search(r"\bno (escapes?|excess|missed|failures?|breaches)\b", low):
        ctx.notes.append("'no' means none: a ceiling of zero")
        unit = "gbp" if re.search(r"\bno excess\b", low) else "count"
        return Reading(
            ctx.text, "threshold", "<=", 0.0, unit=unit, direction="smaller", direction_words="no"
        )
    if re.search(r"\bnone (taking|waiting|longer|more)\b", low):
        return None
    if re.search(r"\bclear all\b", low):
        limit = [i for i in range(len(ctx.toks)) if ctx.toks[i].kind == "qty"]
        ctx.notes.append("'clear all' means none left")
        return _directed(
            ctx, Reading(ctx.text, "milestone", "<=", 0.0, unit="count"), "clear all", "smaller"
        ) if not limit else None
    if re.search(r"\b(all|every)\b.*\b(on time|to time|in full|to timescale|in timescale)\b", low):
        ctx.notes.append("'all' means 100%")
        return _directed(
            ctx, Reading(ctx.text, "threshold", ">=", 100.0, unit="percent"), "all", "bigger"
        )
    if re.search(r"\brecover full\b|\bfull (cost )?recovery\b", low):
        ctx.notes.append("'full' means 100%")
        return _directed(
            ctx, Reading(ctx.text, "threshold", ">=", 100.0, unit="percent"), "full", "bigger"
        )
    if re.search(r"\bbalanced (revenue )?(budget|outturn)\b", low):
        ctx.notes.append("'balanced' means no overspend: a variance of at most £0 (signed)")
        return replace(
            Reading(ctx.text, "threshold", "<=", 0.0, unit="gbp"),
            direction="smaller",
            direction_words="balanced",
        )
    return None


_MILESTONE_VERB = re.compile(
    r"^(to )?(implement|introduce|publish|lay|undergo|commence|be able|bring into force|"
    r"bringing into force|achieve$|"
    r"make [a-z ]+ available)\b"
)


def _milestone(ctx: _Ctx) -> Reading | None:
    """A deliverable with a due date: 'By 31 January, to introduce ...', 'Implement the Act'."""
    toks = ctx.toks
    if ctx.qtys():
        return None
    low = ctx.words()
    if re.search(r"\b(on ?-? ?time)\b", low) and not re.search(r"\b(all|every|deliver)\b", low):
        ctx.notes.append("'on time' means zero days late")
        return Reading(ctx.text, "milestone", "<=", 0.0, unit="days")
    dates = [toks[i] for i in ctx.idx() if toks[i].kind == "date"]
    deadline = bool(dates) or bool(re.search(r"\bprior to the\b|\bby (the )?end\b", low))
    verb = _MILESTONE_VERB.search(low)
    if _vague(ctx) or re.search(r"\b(less|more|fewer|higher|lower) than\b", low):
        return None
    if not (deadline or verb):
        return None
    if len(dates) > 1 and len({d.text for d in dates}) > 1 and not re.search(r"\bfrom\b", low):
        raise PhraseRefused(TWO_DEADLINES.format(text=ctx.text, n=len(dates)))
    due = dates[-1].when if dates else None
    due_text = dates[-1].text if dates else None
    if due_text and not re.search(r"\b(19|20)\d\d\b", due_text):
        ctx.notes.append(f"'{due_text}' gives no year: the contract year decides it")
        due = None
    return Reading(
        ctx.text, "milestone", "==" if low.strip() == "achieve" else None, due=due, due_text=due_text
    )


# ---------------------------------------------------------------------------- the measure


def _with_measure(ctx: _Ctx, r: Reading) -> Reading:
    """Fill what the cell leaves to the measure's name: its time limit, unit or denominator."""
    if r.parts:
        return replace(r, parts=tuple(_with_measure(ctx, p) for p in r.parts))
    if not ctx.measure or r.kind in ("no_target", "milestone", "grade", "benchmark"):
        return r
    if r.unit == "count" and r.per is None:
        m2 = re.search(r"\(?per ([\d,]+)\)?", ctx.measure)
        if m2:
            r = replace(r, unit="rate", per=float(m2.group(1).replace(",", "")))
        elif re.search(r"\(£ ?millions?\)", ctx.measure) and r.value is not None:
            ctx.notes.append("'(£Millions)' in the measure's name gives the unit")
            r = replace(r, unit="gbp", value=r.value * 1e6)
        elif re.search(r"\bworking days\b", ctx.measure):
            r = replace(r, unit="working_days")
        elif re.search(r"\bdays\b", ctx.measure) and not _MEASURE_LIMIT.search(ctx.measure):
            r = replace(r, unit="days")
        elif re.search(r"^%|^percentage|% of\b|\bper cent\b", ctx.measure):
            r = replace(r, unit="percent")
        elif re.search(r"\b(time taken|how long|duration)\b", ctx.measure):
            raise PhraseRefused(
                f"'{ctx.text}' has no unit and the measure is a time; write it with its unit, "
                f"such as '{ctx.text} days'"
            )
    if r.unit == "count" and r.within is not None and re.search(
        r"\b(share|percentage|proportion)\b|%", ctx.measure
    ):
        ctx.notes.append("the measure is a share, so the figure is a percentage")
        r = replace(r, unit="percent")
    m = _MEASURE_LIMIT.search(ctx.measure)
    if r.within is None and r.unit == "percent" and m:
        lexed = lex(m.group(2))
        q = lexed.quantities()
        if len(q) == 1 and q[0].unit in _DURATION:
            ctx.notes.append(f"the time limit '{q[0].text}' comes from the measure's name")
            beyond = m.group(1) in ("longer than", "more than")
            r = replace(r, within=(q[0].value or 0.0, q[0].unit or "days"), beyond=beyond)
    return r


_MEASURE_LIMIT = re.compile(
    r"\b(within|in|under|inside|longer than|more than)\s+((?:\d[\d,.]*|[a-z]+)"
    r"(?:[ -](?:working|calendar))?[ -](?:seconds?|secs?|minutes?|mins?|hours?|days?|weeks?|"
    r"months?|years?))\b"
)
