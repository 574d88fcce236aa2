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
   figures ("81.2% ... against a target of 80%", "15 MRSA bacteraemias ... against a target of
   11", "the Trust achieved 95.1%"), baselines ("from a baseline of 100.0"), and figures that say
   which cases count ("100% of parents *with at least 50%* ...", "15 to 24 year olds", "post 72
   hour cases") are set aside, each with a note. A phrase that only reports performance ("we are
   at 58%"), calls two figures the target, or gives one aim for two reporting periods is refused.
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
from dataclasses import replace

from kpibot.engine.changes import GRADE_RANK
from kpibot.engine.clauses import read_clause
from kpibot.engine.phrases import Lexed, Tok, lex, normalise
from kpibot.engine.readings import (
    CHANGE,
    CONFLICT,
    DANGLING_PER,
    DURATION,
    NO_NUMBER,
    NO_WINDOW,
    PLACEHOLDER,
    UNREAD_CLAUSE,
    UNREAD_NUMBER,
    VAGUE,
    Clause,
    PhraseRefused,
    Reading,
    vague,
)

__all__ = ["GRADE_RANK", "PhraseRefused", "Reading", "read_phrase"]

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
    (
        re.compile(r"^no ([a-z-]+ )?(standard|target)s?( (set|applies|agreed))?$"),
        "no target: none is set",
        True,
    ),
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


APPROXIMATE = "'{words}' is approximate; write the figure the contract holds the provider to"


_APPROX_BEFORE = {"around", "about", "approximately", "approx", "circa", "roughly", "nearly"}


_APPROX_BEFORE |= {"almost", "c", "ca", "towards"}


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
    figures = [t for t in lexed.tokens if t.kind in ("qty", "badnum") and t.unit not in DURATION]
    reason = _no_target(low, bool(figures), any(t.kind == "date" for t in lexed.tokens))
    if reason is not None and low in ("none", "nil") and polarity == "smaller" and role == "target":
        # Beside never events or complaints, 'None' may be the aim itself: none at all.
        raise PhraseRefused(
            f"'{shown}' could mean no target or none at all (0) for a smaller-is-better KPI; "
            "write 0 or 'no target'"
        )
    if reason is not None:
        if reason == "no target":
            reason = f"no target: {shown}"
        return Reading(original, "no_target", reason=reason)
    _refuse_outright(shown, low, lexed)
    _refuse_start_date(shown, lexed)
    if _FAILURE_LEAD.match(low) and role != "critical":
        failure = read_phrase(text, polarity, measure=measure, unit=unit, role="critical")
        if failure.kind in ("threshold", "range"):
            note = "the words name a failure band, not the target"
            return replace(
                failure,
                kind="failure" if failure.kind == "threshold" else "range",
                notes=(*failure.notes, note),
            )
    ctx = Clause(shown, lexed, polarity, (measure or "").lower(), unit, role)
    ctx.hi = len(lexed.tokens)
    ctx.notes.extend(lexed.notes)
    _set_aside(ctx)
    _refuse_report(ctx, low)
    readings = []
    clauses = _clauses(ctx)
    if len(clauses) > 1 and _one_target_beside_outturns(ctx):
        clauses = [(0, len(lexed.tokens))]
    for lo, hi in clauses:
        sub = ctx.clause(lo, hi)
        if any(ctx.toks[k].kind == "qty" for k in sub.idx()) and not sub.qtys():
            continue  # every figure in it was set aside: a restatement or reported figures
        r = read_clause(sub)
        if r is not None:
            readings.append(r)
        elif len(clauses) > 1 and _OBLIGATION.search(sub.words()) and not sub.qtys():
            raise PhraseRefused(UNREAD_CLAUSE.format(clause=sub.clause_text(), text=shown))
    _check_all_read(ctx)
    if len(clauses) > 1 and readings and all(r.kind == "threshold" for r in readings):
        headers = [ctx.clause(lo, hi) for lo, hi in clauses]
        aims = [
            h
            for h in headers
            if not h.qtys()
            and h.has_word(*CHANGE)
            and not any(h.toks[k].kind == "qty" for k in h.idx())
        ]
        named = re.search(r"\btarget (will be|is|of)\b", low)
        if aims and not named and any(r.unit == "percent" for r in readings):
            pct = next(r for r in readings if r.unit == "percent")
            raise PhraseRefused(
                f"I could not tell whether '{pct.value:g}%' in '{shown}' is the level to reach or "
                f"the size of the change '{aims[0].clause_text()}' asks for; write 'at least "
                f"{pct.value:g}%' or 'a {pct.value:g}% reduction'"
            )
    if not readings:
        if vague(ctx):
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
    annual = bool(re.search(_ANNUAL, low))
    exception = bool(re.search(r"\bexception reporting\b", low))
    return replace(
        reading,
        text=original,
        annual=annual or reading.annual,
        exception_reporting=exception,
        notes=tuple(dict.fromkeys(ctx.notes)),
    )


# A target for the whole year ('per annum', 'each year'); not 'a year-to-date rate of 2.2 per
# cent' or 'a year ago', which describe an outturn or a comparison.
_ANNUAL = re.compile(
    r"\b(p\.?a\.?|per annum|per year|a year|annually|each year)\b"
    r"(?!-|\s+(ago|earlier|before|on year)\b)"
)


def _one_target_beside_outturns(ctx: Clause) -> bool:
    """One target figure left once reported figures are set aside, with the measure's time limit.

    '... arriving at the scene within eight minutes was 74.6 per cent in October. This falls
    short of the 75 per cent target': the time limit sits in the outturn's sentence, the target in
    the next; they are one target and are read together.
    """
    if not any("is a reported figure" in n for n in ctx.notes):
        return False
    left = [i for i, t in enumerate(ctx.toks) if t.kind == "qty" and i not in ctx.used]
    shares = [i for i in left if ctx.toks[i].unit not in DURATION]
    limits = [i for i in left if ctx.toks[i].unit in DURATION]
    return len(shares) == 1 and len(limits) == 1


def _without_restated_zero(
    readings: list[Reading], polarity: str | None, shown: str
) -> list[Reading]:
    """'100% of planned visits are attended. There are no missed visits.': said twice."""
    out = []
    for r in readings:
        if r.direction_words == "no" and polarity == "bigger":
            if any(o.unit == "percent" and o.value == 100.0 for o in readings if o is not r):
                continue
            raise PhraseRefused(CONFLICT.format(words="no", implied="smaller", polarity=polarity))
        out.append(r)
    return out


def _refuse_outright(shown: str, low: str, lexed: Lexed) -> None:
    bad = next((t for t in lexed.tokens if t.kind == "badnum"), None)
    if bad is not None:
        raise PhraseRefused(bad.note or f"'{bad.text}' is not a number I can read in '{shown}'")
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
    if m:
        raise PhraseRefused(NO_WINDOW.format(words=m.group(0)))
    _refuse_two_periods(shown, low)
    figures = [t for t in lexed.tokens if t.kind == "qty"]
    limits = [t for t in figures if t.unit in DURATION]
    if re.search(r"\brespectively\b", low) and len(figures) > 1 and not limits:
        raise PhraseRefused(
            f"'respectively' in '{shown}' pairs {', '.join(repr(t.text) for t in figures)} with "
            "different measures; give each KPI its own target"
        )
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
                words = " ".join(x.text for x in toks[i : i + 4]).replace(" ,", ",").strip(",")
                raise PhraseRefused(DANGLING_PER.format(words=words, text=shown))


def _check_all_read(ctx: Clause) -> None:
    for i, t in enumerate(ctx.toks):
        if t.kind == "qty" and i not in ctx.used:
            raise PhraseRefused(UNREAD_NUMBER.format(number=t.text, text=ctx.text))


def _clauses(ctx: Clause) -> list[tuple[int, int]]:
    """Token ranges of the phrase's clauses: split at ';', sentence ends, ', and', 'and to'."""
    toks = ctx.toks
    cuts = [0]
    inside = _bracketed(toks)
    for i, t in enumerate(toks):
        if i in inside:
            continue
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if (
            t.text == ";"
            and i > cuts[-1]
            or t.text == "."
            and nxt is not None
            and nxt.text[:1].isupper()
            and i > cuts[-1]
            or t.text == ","
            and nxt is not None
            and nxt.low == "and"
            and i > cuts[-1]
        ):
            cuts.append(i + 1)
        elif (
            t.low == "with"
            and nxt is not None
            and nxt.low in ("all", "none")
            and i > cuts[-1]
            and any(x.kind == "qty" for x in toks[cuts[-1] : i])
        ) or (
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


def _set_aside(ctx: Clause) -> None:
    _ages(ctx)
    _onsets(ctx)
    _frequencies(ctx)
    _restatements(ctx)
    _outturns(ctx)
    _baselines(ctx)
    _restated_durations(ctx)
    _filters(ctx)
    _windows(ctx)


def _ages(ctx: Clause) -> None:
    """'15 to 24 year olds', '15-24 year-olds', '(aged 15 to 24)': the people counted, not figures."""
    toks = ctx.toks
    n = len(toks)

    def olds(k: int) -> bool:
        """Whether the quantity at ``k`` is 'N year' followed by 'olds'/'old' (a '-' between)."""
        if toks[k].kind != "qty" or not re.search(r"\byears?$", toks[k].low):
            return False
        j = k + 1
        while j < n and toks[j].text == "-":
            j += 1
        return j < n and toks[j].low in ("olds", "old")

    for i, t in enumerate(toks):
        if t.kind != "qty" or i in ctx.used:
            continue
        band = [i]
        if i + 2 < n and toks[i + 1].low in ("to", "-") and toks[i + 2].kind == "qty":
            band.append(i + 2)
        aged = i > 0 and toks[i - 1].low in ("aged", "ages", "age")
        if not (aged and all(toks[k].unit == "count" for k in band) or olds(band[-1])):
            continue
        ctx.used.update(band)
        words = " ".join(x.text for x in toks[band[0] : band[-1] + 1])
        ctx.notes.append(f"'{words}' is the age band counted, not a figure to reach")


def _onsets(ctx: Clause) -> None:
    """'post 72 hour cases', 'post-48 hour cases': which cases count (onset after admission)."""
    toks = ctx.toks
    for i, t in enumerate(toks):
        if t.kind != "qty" or t.unit not in DURATION or i in ctx.used:
            continue
        j = i - 1
        while j >= 0 and toks[j].kind == "punct" and toks[j].text in ("-", '"', "'"):
            j -= 1
        if j >= 0 and toks[j].low in ("post", "pre"):
            ctx.used.add(i)
            ctx.notes.append(f"'{toks[j].text} {t.text}' says which cases count, not a time limit")


def _frequencies(ctx: Clause) -> None:
    """'a review every 12 months': how often, not a level to reach.

    Beside a figure it is set aside; alone it is refused, since reading it as the threshold would
    compare the KPI's share against 12.
    """
    toks = ctx.toks
    every = [
        i
        for i, t in enumerate(toks)
        if t.kind == "qty" and t.unit in DURATION and i > 0 and toks[i - 1].low in ("every", "each")
    ]
    if not every:
        return
    others = [i for i, t in enumerate(toks) if t.kind == "qty" and i not in every]
    if not others:
        words = f"{toks[every[0] - 1].text} {toks[every[0]].text}"
        raise PhraseRefused(
            f"'{words}' in '{ctx.text}' says how often, not a level to reach; write the share, "
            f"such as '100% within {toks[every[0]].text}'"
        )
    ctx.used.update(every)
    for i in every:
        ctx.notes.append(f"'{toks[i - 1].text} {toks[i].text}' is how often, not a figure")


def _restatements(ctx: Clause) -> None:
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
            if toks[k].text == ")" or (
                toks[k].text == "." and k + 1 < n and toks[k + 1].text[:1].isupper()
            ):
                end = k
                break
        seen = [k for k in range(start, end) if toks[k].kind == "qty"]
        if seen:
            ctx.used.update(seen)
            words_text = " ".join(x.text for x in toks[start:end])
            ctx.notes.append(f"'{words_text}' restates the target")


def _outturns(ctx: Clause) -> None:
    """'81.2% ... against a target of 80%': the figure after 'target of' is the target."""
    toks = ctx.toks
    marks = []
    for i, t in enumerate(toks):
        if t.kind != "qty" or i in ctx.used:
            continue
        before = ctx.words_before(i, 5)
        if (
            before[:2]
            in (
                ["of", "target"],
                ["of", "goal"],
                ["of", "threshold"],
                ["of", "trajectory"],
                ["of", "limit"],
                ["of", "total"],
            )
            or (before[:2] == ["target", "("] and any(x.kind == "qty" for x in toks[:i]))
            or (
                before[1:3] in (["to", "target"], ["of", "target"])
                and any(x.kind == "qty" for x in toks[:i])
            )
            or (before[:3] == ["fact", "in", "is"] and "target" in before)
            or (before[:1] == ["was"] and "target" in before)
            or (before[:2] == ["be", "will"] and "target" in before)
            or (before[:1] == ["is"] and "target" in before)
            or (before[:2] == ["of", "achieving"] and "target" in before)
        ) or ctx.words_after(i, 1) in (["goal"], ["target"]):
            marks.append(i)
    low = " ".join(t.low for t in toks if t.kind == "word")
    if len(marks) > 1:
        _refuse_rival_targets(ctx, marks)
    bracketed = any(ctx.words_before(m, 2) == ["target", "("] for m in marks)
    if not marks or not (
        bracketed
        or re.search(
            r"\b(against|compared|was|were|which|fell|exactly|outturn|performance|met|missed|"
            r"reported|exceeded|ahead|behind|short|meeting|failing|hit|surpassed)\b",
            low,
        )
    ):
        return
    for i, t in enumerate(toks):
        if t.kind != "qty" or i in marks or i in ctx.used:
            continue
        if t.unit in DURATION and not any(toks[m].unit in DURATION for m in marks):
            continue  # the time limit of the measure, said with the outturn
        ctx.used.add(i)
        ctx.notes.append(f"'{t.text}' is a reported figure, not the target")


def _baselines(ctx: Clause) -> None:
    """'from a baseline of 100.0', 'the 2007-08 baseline of 41 per cent' (kept as the baseline)."""
    toks = ctx.toks
    for i, t in enumerate(toks):
        if t.kind != "qty" or i in ctx.used:
            continue
        before = ctx.words_before(i, 4)
        stated = before[2:3] in (["a"], ["the"], ["level"]) or "from" in before or "over" in before
        if before[:2] == ["of", "baseline"] and "maintain" not in ctx.words() and stated:
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


def _restated_durations(ctx: Clause) -> None:
    """'62 days (two months)', '1 month (31 days)': one limit said twice; keep the finer.

    'the four hour standard of 98 per cent ... within four hours': the standard's name repeats
    the time limit the sentence gives; the name is set aside.
    """
    toks = ctx.toks
    for i, t in enumerate(toks):
        if t.kind != "qty" or t.unit not in DURATION or i + 1 >= len(toks) or i in ctx.used:
            continue
        if toks[i + 1].low not in ("standard", "target", "maximum", "wait", "wait,"):
            continue
        same = [
            k
            for k, x in enumerate(toks)
            if k != i and x.kind == "qty" and (x.value, x.unit) == (t.value, t.unit)
        ]
        if same and _within_word_before(toks, same[0]):
            ctx.used.add(i)
            ctx.notes.append(f"'{t.text} {toks[i + 1].text}' names the standard by its time limit")
    for i, t in enumerate(toks):
        if t.kind != "qty" or t.unit not in DURATION or i + 3 >= len(toks):
            continue
        if toks[i + 1].text == "(" and toks[i + 3].text == ")":
            inner = toks[i + 2]
            if inner.kind == "qty" and inner.unit in DURATION:
                # working days state a limit most exactly; otherwise the smaller unit is finer
                inner_finer = inner.unit == "working_days" or (
                    t.unit != "working_days"
                    and DURATION.index(inner.unit) < DURATION.index(t.unit or "days")
                )
                if inner_finer:
                    toks[i] = replace(inner, cmp=t.cmp, cmp_words=t.cmp_words)
                ctx.used.add(i + 2)
                ctx.notes.append(f"'({inner.text})' restates '{t.text}'")


def _filters(ctx: Clause) -> None:
    """'100% of parents with at least 50% ...': a figure that says which cases count."""
    toks = ctx.toks
    qs = [i for i, t in enumerate(toks) if t.kind == "qty" and i not in ctx.used]
    if len(qs) < 2:
        return
    for i in qs[1:]:
        before = ctx.words_before(i, 2)
        t = toks[i]
        first = next((q for q in qs if q < i and toks[q].unit == "percent"), None)
        if first is None and before[:1] != ["excluding"]:
            continue
        if (
            before[:1] and before[0] in ("with", "serving", "aged", "experiencing", "excluding")
        ) or (before[:2] == ["be", "to"] and t.unit == "percent"):
            ctx.used.add(i)
            ctx.notes.append(f"'{t.text}' says which cases count, it is not the target")


def _windows(ctx: Clause) -> None:
    """'averaged over the past five years', 'over the two years': a period, not a figure."""
    toks = ctx.toks
    for i, t in enumerate(toks):
        if t.kind != "qty" or i in ctx.used or t.unit not in DURATION:
            continue
        before = ctx.words_before(i, 3)
        past = before[:1] in (["past"], ["last"])
        over = before[:2] == ["the", "over"] or (before[:1] == ["over"] and t.unit == "months")
        if past or (over and t.unit == "months" and (t.value or 0) >= 12):
            ctx.used.add(i)
            ctx.notes.append(f"'{t.text}' is the period averaged or counted over")


def _with_measure(ctx: Clause, r: Reading) -> Reading:
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
    if (
        r.unit == "count"
        and r.within is not None
        and re.search(r"\b(share|percentage|proportion)\b|%", ctx.measure)
    ):
        ctx.notes.append("the measure is a share, so the figure is a percentage")
        r = replace(r, unit="percent")
    m = _MEASURE_LIMIT.search(ctx.measure)
    if r.within is None and r.unit == "percent" and m:
        lexed = lex(m.group(2))
        q = lexed.quantities()
        if len(q) == 1 and q[0].unit in DURATION:
            ctx.notes.append(f"the time limit '{q[0].text}' comes from the measure's name")
            beyond = m.group(1) in ("longer than", "more than")
            r = replace(r, within=(q[0].value or 0.0, q[0].unit or "days"), beyond=beyond)
    return r


_MEASURE_LIMIT = re.compile(
    r"\b(within|in|under|inside|longer than|more than)\s+((?:\d[\d,.]*|[a-z]+)"
    r"(?:[ -](?:working|calendar))?[ -](?:seconds?|secs?|minutes?|mins?|hours?|days?|weeks?|"
    r"months?|years?))\b"
)


_PERIOD_WORDS = {"annum": "year", "year": "year", "quarter": "quarter", "month": "month"}
_PER_PERIOD = re.compile(
    r"(\d[\d,.]*\s*(?:%|per cent|percent)?)\s*(?:per|a|each) (annum|year|quarter|month)\b"
)


def _refuse_two_periods(shown: str, low: str) -> None:
    """'15 per cent per annum (3.75 per cent per quarter)': one aim, two reporting periods."""
    found = [(m.group(0), _PERIOD_WORDS[m.group(2)]) for m in _PER_PERIOD.finditer(low)]
    periods = {period for _words, period in found}
    if len(periods) > 1:
        (a, _), (b, _) = found[0], next(f for f in found if f[1] != found[0][1])
        raise PhraseRefused(
            f"'{a}' and '{b}' in '{shown}' give the target for two reporting periods; write the "
            "one that matches how often the KPI is reported"
        )


def _refuse_start_date(shown: str, lexed: Lexed) -> None:
    """'since 1 October 2004 ... have had responsibility': a start, not a deadline or a target."""
    toks = lexed.tokens
    if any(t.kind == "qty" for t in toks):
        return
    for i, t in enumerate(toks):
        if t.kind == "date" and i > 0 and toks[i - 1].low == "since":
            raise PhraseRefused(
                f"'{toks[i - 1].text} {t.text}' in '{shown}' says when something began; it is "
                "not a deadline or a figure to reach"
            )


# Words that report performance rather than set a target. Before a figure: 'we are at 58%',
# 'the Trust achieved 95.1%', 'standing at 73.18 per cent', 'only 72 per cent of calls'. About the
# figures before them: '92.5 per cent ... were held within 15 working days', '... which exceeded
# the national standard'.
_REPORTED_BEFORE = re.compile(
    r"\b(we are (at|on)|we were|currently (at|stands at)|stood at|stands at|standing at|"
    r"performance (is|was) at|(clinics?|providers?|trusts?|we|it|they) (achieved|reached)|"
    r"showed|shows)\b"
)
_REPORTED_AFTER = re.compile(
    r"\bwere (held|completed|seen|screened|reviewed|visited|offered|made|answered)\b"
)
_COMPARED = re.compile(
    r"\b(which|that) (?:\w+ )?(exceeded|exceeds|surpassed|beat|missed|met|remains? (higher|lower|"
    r"above|below|better|worse)|was (higher|lower|above|below|better|worse))\b"
)


def _refuse_report(ctx: Clause, low: str) -> None:
    """Reported performance: set aside beside a target, refused when there is no target.

    '... achieved an uptake rate of 66 per cent. in 2004 ..., which exceeded the national
    standard' gives outturns and a standard whose level it does not state; reading the outturn as
    the target would rate every later figure against last year's performance. In 'requires an
    emergency response within 19 minutes for 95% of incidents and the Trust achieved 95.1%' the
    outturn is set aside and 95% read.
    """
    toks = ctx.toks
    left = [i for i, t in enumerate(toks) if t.kind == "qty" and i not in ctx.used]
    shares = [i for i in left if toks[i].unit not in DURATION]
    if not shares:
        return
    named_words = {"target", "targets", "threshold", "standard", "goal", "aim"}
    named = any(set(ctx.words_before(i, 4)) & named_words for i in shares)
    reported: dict[int, str] = {}
    # 'only 2% of visits may be missed' sets a ceiling; 'only 72 per cent ... are reached' reports
    allowed = re.search(r"\b(may|can|should|must|allowed|permitted|to be)\b", low)
    for i in shares:
        before = ctx.words_before(i, 8)
        if set(before[:4]) & named_words:
            continue
        cue = _REPORTED_BEFORE.search(" ".join(reversed(before)))
        if before[:1] == ["only"] and toks[i].unit == "percent" and not allowed:
            reported[i] = "only"
        elif before[:2] in (["to", "compared"], ["with", "compared"]):
            reported[i] = "compared " + before[0]
        elif cue:
            reported[i] = cue.group(0)
    if not named:
        after = _REPORTED_AFTER.search(low)
        compared = _COMPARED.search(low)
        past = re.search(r"\b(achieved|were|was|had been)\b", low)
        cue = after or (compared if past else None)
        if cue:
            reported.update({i: cue.group(0) for i in shares if i not in reported})
    if not reported:
        return
    if any(i not in reported for i in shares):
        ctx.used.update(reported)
        for i in reported:
            ctx.notes.append(f"'{toks[i].text}' is a reported figure, not the target")
        return
    words = next(iter(reported.values()))
    figures = ", ".join(f"'{toks[i].text}'" for i in shares)
    raise PhraseRefused(
        f"{figures} in '{ctx.text}' {'is' if len(shares) == 1 else 'are'} reported performance "
        f"('{words}'), and it gives no target to compare with; write the target itself, such as "
        "'at least 90%'"
    )


_RIVAL = re.compile(
    r"\b(interim|official|lowered|revised|original|previous|old|new|national|local|below|above|"
    r"rather than|instead of|replaced|replacing)\b"
)


def _refuse_rival_targets(ctx: Clause, marks: list[int]) -> None:
    """'an interim target of 76% ..., significantly below the official target of 95%'."""
    toks = ctx.toks
    values = {(toks[m].value, toks[m].unit) for m in marks}
    if len(values) < 2 or len({u for _v, u in values}) > 1:
        return
    between = " ".join(t.low for t in toks[marks[0] : marks[-1] + 1] if t.kind == "word")
    before = " ".join(ctx.words_before(marks[0], 4))
    if _RIVAL.search(between) or _RIVAL.search(before):
        a, b = toks[marks[0]].text, toks[marks[-1]].text
        raise PhraseRefused(
            f"'{a}' and '{b}' are both called the target in '{ctx.text}'; give only the target "
            "that applies"
        )


def _within_word_before(toks: list[Tok], i: int) -> bool:
    """Whether the quantity at ``i`` follows a time-limit word ('within four hours')."""
    return i > 0 and toks[i - 1].low in ("within", "in", "under", "inside")
